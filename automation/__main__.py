"""python -m automation {render,preview,apply,destroy,diff} --stack NAME [--json]"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m automation", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="run the program offline under mocks and write what it would create")
    render.add_argument("--stack", default="dev")
    render.add_argument("--out", type=Path, required=True)
    for name, text in (
        ("preview", "the approval diff of a stack (needs the Pulumi CLI)"),
        ("apply", "apply exactly the approved changes"),
        ("destroy", "destroy a stack (user repos and ECR history are kept)"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--stack", required=True, help="stack name (the tenant id)")
        cmd.add_argument("--tenant", type=Path, help="tenant spec JSON; without it the stack file's config is used")
        cmd.add_argument("--backend", default="file://~/.pulumi-scoutflo", help="state backend URL")
        cmd.add_argument("--secrets-provider", help="e.g. awskms://alias/scoutflo (default: passphrase)")
        cmd.add_argument("--json", action="store_true")
    sub.choices["apply"].add_argument("--fingerprint", required=True, help="the approved preview's fingerprint")
    sub.choices["destroy"].add_argument("--confirm", help="the stack name again")
    diff = sub.add_parser("diff", help="render the approval diff from a saved engine event log")
    diff.add_argument("--events", type=Path, required=True, help="JSON lines from `pulumi preview --event-log FILE`")
    diff.add_argument("--stack", default="")
    diff.add_argument("--json", action="store_true")
    return parser


def _emit(value: Any, as_json: bool) -> None:
    if as_json:
        print(
            json.dumps(value.to_json() if hasattr(value, "to_json") else value, indent=2, sort_keys=True, default=str)
        )
    else:
        print(value.to_text() if hasattr(value, "to_text") else json.dumps(value, indent=2, default=str))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
    if args.command == "diff":
        from automation.changeset import changeset_from_events, events_from_log

        try:
            changes = changeset_from_events(events_from_log(args.events), stack=args.stack)
        except (OSError, ValueError) as err:
            print(f"diff: {err}", file=sys.stderr)
            return 2
        _emit(changes, args.json)
        return 0

    from automation import operations as ops
    from automation.tenant import Tenant, TenantError

    try:
        target: ops.Target = args.stack
        if args.tenant:
            target = Tenant.from_dict(json.loads(args.tenant.read_text()))
            if target.id != args.stack:
                raise TenantError(f"--stack {args.stack} does not match the tenant spec's id {target.id}")
        stacks = ops.Stacks(ops.Backend(url=args.backend, secrets_provider=args.secrets_provider))
        if args.command == "preview":
            _emit(ops.preview(target, stacks), args.json)
        elif args.command == "apply":
            _emit(ops.apply(target, args.fingerprint, stacks), args.json)
        else:
            _emit(ops.destroy(target, args.confirm, stacks), args.json)
        return 0
    except (ops.AutomationError, TenantError, OSError, ValueError) as err:
        mapped = ops.map_error(err)
        if args.json:
            print(json.dumps({"error": mapped.kind, "message": str(mapped)}))
        else:
            print(f"{args.command}: {mapped}", file=sys.stderr)
        return 3 if isinstance(mapped, ops.ChangesDiffer) else 1


if __name__ == "__main__":
    sys.exit(main())
