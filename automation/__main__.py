"""python -m automation COMMAND --stack NAME ..."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m automation", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="run the program offline under mocks and write what it would create")
    render.add_argument("--stack", default="dev")
    render.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    if args.command == "render":
        from automation.render import RenderError, run_program, tree_text, write

        try:
            recording = run_program(args.stack)
        except RenderError as err:
            print(f"render: {err}", file=sys.stderr)
            return 2
        except Exception as err:  # noqa: BLE001 - the program's own error, shown without a traceback
            print(f"render: the program failed: {err}", file=sys.stderr)
            return 1
        counts = write(recording, args.out)
        print(tree_text(recording, str(recording.outputs.get("tenant", args.stack))))
        print(
            f"wrote {counts['resources']} resources, {counts['repos']} repos, {counts['k8s']} k8s objects to {args.out}"
        )
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
