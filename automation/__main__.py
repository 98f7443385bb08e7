"""python -m automation {render,preview,apply,destroy,diff} (one host, one tenant) and
{migrate,worker,request-preview,latest,approve,reject,status,history} (many tenants: the service
on PostgreSQL, docs/service.md; settings from SCOUTFLO_* variables).

Exit codes: 0 done; 1 failed; 2 bad arguments, unreadable event log, render could not run or write;
3 changes-differ; 4 confirmation-required; 5 stack-busy; 6 invalid-tenant (the spec or the --tenant
file); 7 cli-missing; 8 invalid-setup; 9 plan-mismatch; 10 cli-too-old; 11 database-unavailable;
12 unknown-preview; 13 preview-superseded; 14 already-decided; 15 preview-not-ready;
16 apply-replayed; 17 unknown-apply; 18 preview-finished; 19 invalid-request.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

EXIT_USAGE = 2
"""A tenant spec with hundreds of apps and their values is a few MB."""


class _Parser(argparse.ArgumentParser):
    json_errors = False
    """Set when the command line asks for --json: a caller parsing stdout gets its error as JSON too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No abbreviations: argparse takes `--js` for `--json` (allow_abbrev, argparse.py
        # _parse_optional's prefix match), so a run asked for JSON that way printed its argument
        # errors as text. Subcommand parsers are made by this class too (add_subparsers).
        super().__init__(*args, **{**kwargs, "allow_abbrev": False})

    def error(self, message: str) -> NoReturn:
        # argparse writes an unrecognized argument as given ("unrecognized arguments: %s",
        # argparse.py parse_args): an escape in it would reach the terminal like any other text.
        from automation.changeset import terminal_safe

        if self.json_errors:
            # json.dumps escapes every control and non-ASCII character (ensure_ascii).
            print(json.dumps({"error": "bad-arguments", "message": f"{self.prog}: {message}"}))
            self.exit(EXIT_USAGE)
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, terminal_safe(f"{self.prog}: error: {message}\n"))


def _parser(json_errors: bool = False) -> argparse.ArgumentParser:
    # add_subparsers makes the subcommands' parsers of this same class (parser_class=type(self)),
    # so they answer in JSON as well.
    parser_class = type("_Parser", (_Parser,), {"json_errors": json_errors})
    parser = parser_class(
        prog="python -m automation", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="run the program offline under mocks and write what it would create")
    render.add_argument("--stack", default="dev")
    render.add_argument("--out", type=Path, required=True)
    for name, text in (
        ("preview", "the approval diff of a tenant (needs the Pulumi CLI); saves its plan"),
        ("apply", "apply exactly the approved preview's plan"),
        ("destroy", "show what a destroy removes and keeps; with --confirm, destroy"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--tenant", type=Path, required=True, help="tenant spec JSON (names its own credentials)")
        cmd.add_argument("--stack", help="the tenant id again, as a check")
        cmd.add_argument("--backend", default=os.environ.get("SCOUTFLO_BACKEND_URL"), help="state backend URL")
        cmd.add_argument(
            "--secrets-provider",
            default=os.environ.get("SCOUTFLO_SECRETS_PROVIDER"),
            help="awskms://alias/… in production, or 'passphrase' (with PULUMI_CONFIG_PASSPHRASE_FILE)",
        )
        cmd.add_argument(
            "--state-dir", default=os.environ.get("SCOUTFLO_STATE_DIR"), help="tenant workspaces, outside the checkout"
        )
        cmd.add_argument("--json", action="store_true")
    sub.choices["apply"].add_argument("--fingerprint", required=True, help="the approved preview's fingerprint")
    sub.choices["destroy"].add_argument("--confirm", help="the tenant id again")
    diff = sub.add_parser("diff", help="render the approval diff from a saved engine event log")
    diff.add_argument("--events", type=Path, required=True, help="JSON lines from `pulumi preview --event-log FILE`")
    diff.add_argument("--stack", default="")
    diff.add_argument("--json", action="store_true")
    _service_parsers(sub)
    return parser


SERVICE_COMMANDS = ("migrate", "worker", "request-preview", "latest", "approve", "reject", "status", "history")


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
        return value

    parse.__name__ = kind.__name__
    return parse


def _service_parsers(sub: Any) -> None:
    """The service's commands (docs/service.md): settings from SCOUTFLO_* variables, never from a tenant."""
    sub.add_parser("migrate", help="bring SCOUTFLO_DATABASE_URL to this checkout's schema (idempotent)")
    worker = sub.add_parser("worker", help="run jobs until SIGTERM (any number of workers, on any host)")
    worker.add_argument("--name", default="", help="shown in applies.worker; default <host>:<pid>")
    worker.add_argument("--concurrency", type=_positive(int), default=4, help="jobs at once (each runs a CLI)")
    worker.add_argument("--poll-interval", type=_positive(float), default=5.0, help="seconds between polls")
    worker.add_argument("--heartbeat-interval", type=_positive(float), default=10.0, help="seconds")
    worker.add_argument("--reap-every", type=_positive(int), default=60, help="seconds between reaper runs")
    worker.add_argument("--sweep-every", type=_positive(int), default=300, help="seconds between drift sweeps")
    worker.add_argument("--program-dir", type=Path, help="the Pulumi program the CLI runs (default: this checkout)")
    worker.add_argument(
        "--chart-cache-dir",
        type=Path,
        help="one chart cache for every tenant (absolute; the same path on every worker: it is in each config digest)",
    )
    request = sub.add_parser("request-preview", help="queue a preview of a tenant; prints its id")
    request.add_argument("--tenant-id", required=True)
    for name, text in (
        ("latest", "the tenant's latest preview with its changes"),
        ("status", "the tenant's latest preview and open applies"),
        ("history", "every preview of the tenant with its decision and apply, newest first"),
    ):
        sub.add_parser(name, help=text).add_argument("--tenant-id", required=True)
    sub.choices["history"].add_argument("--limit", type=_positive(int), default=100)
    approve = sub.add_parser("approve", help="approve the tenant's latest preview: queues its apply")
    approve.add_argument("--preview", type=_positive(int), required=True, help="the preview's id")
    approve.add_argument("--fingerprint", required=True, help="the fingerprint the approver saw")
    approve.add_argument("--approver", required=True, help="who approves (recorded, and in `up --message`)")
    reject = sub.add_parser("reject", help="reject the tenant's latest preview")
    reject.add_argument("--preview", type=_positive(int), required=True)
    reject.add_argument("--by", required=True, help="who rejects")
    reject.add_argument("--reason", default="")
    for name in SERVICE_COMMANDS:
        sub.choices[name].add_argument("--json", action="store_true")


def _service(args: argparse.Namespace) -> int:
    """The service's commands; every failure is a typed error with its exit code."""
    from automation import operations as ops

    try:
        value = _run_service(args)
    except ops.AutomationError as err:
        if args.json:
            _say(json.dumps({"error": err.kind, "message": str(err)}))
        else:
            _say(f"{args.command}: {err}", err=True)
        return err.exit_code
    except ValueError as err:  # an argument the API refuses (an empty approver)
        if args.json:
            _say(json.dumps({"error": "bad-arguments", "message": f"{args.command}: {err}"}))
        else:
            _say(f"{args.command}: {err}", err=True)
        return EXIT_USAGE
    if value is not None:
        _emit(value, args.json)
    return 0


def _run_service(args: argparse.Namespace) -> Any:
    from automation.operations import InvalidSetup

    if args.command == "migrate":
        from service import db

        url = os.environ.get("SCOUTFLO_DATABASE_URL", "").strip()
        if not url:
            raise InvalidSetup("SCOUTFLO_DATABASE_URL is not set: the PostgreSQL conninfo")
        return {"applied": db.migrate(url)}
    if args.command == "worker":
        from service import worker
        from service.settings import ServiceSettings

        settings = ServiceSettings.from_env()
        options = worker.WorkerOptions(
            name=args.name,
            concurrency=args.concurrency,
            poll_interval=args.poll_interval,
            heartbeat_interval=args.heartbeat_interval,
            reap_every=args.reap_every,
            sweep_every=args.sweep_every,
            stale_after=settings.heartbeat_stale_seconds,
            program_dir=args.program_dir,
            chart_cache_dir=args.chart_cache_dir,
        )
        options.check()
        worker.run(settings, options)
        return None
    api = _api()
    tenant = getattr(args, "tenant_id", None)
    if args.command == "request-preview":
        return {"tenant": tenant, "preview": api.request_preview(tenant)}
    if args.command == "latest":
        latest = api.latest_preview(tenant)
        return latest.to_json() if latest is not None else {"tenant": tenant, "preview": None}
    if args.command == "approve":
        return api.approve(args.preview, args.fingerprint, args.approver).to_json()
    if args.command == "reject":
        api.reject(args.preview, args.by, args.reason)
        return {"preview": args.preview, "rejected": True}
    if args.command == "status":
        return api.status(tenant)
    return api.history(tenant, args.limit)


def _api() -> Any:
    """The backend's calls need the database and the tenant source only (not the engine's settings)."""
    from automation.operations import InvalidSetup
    from service import jobs
    from service.api import ServiceApi
    from service.tenants import load_source

    missing = [n for n in ("SCOUTFLO_DATABASE_URL", "SCOUTFLO_TENANT_SOURCE") if not os.environ.get(n, "").strip()]
    if missing:
        raise InvalidSetup(f"{' and '.join(missing)} not set (docs/service.md)")
    return ServiceApi(
        database_url=os.environ["SCOUTFLO_DATABASE_URL"].strip(),
        tenants=load_source(os.environ["SCOUTFLO_TENANT_SOURCE"].strip()),
        defer_preview=jobs.defer_preview,
        defer_apply=jobs.defer_apply,
    )


def _say(text: str, err: bool = False) -> None:
    """Print through the approval text's escaping (automation/changeset.py terminal_safe): error
    messages carry what charts, tenants and the engine wrote, and a terminal obeys escapes in them."""
    from automation.changeset import terminal_safe

    print(terminal_safe(text), file=sys.stderr if err else sys.stdout)


def _emit(value: Any, as_json: bool) -> None:
    if as_json:
        # json.dumps escapes every control and non-ASCII character (ensure_ascii).
        _say(json.dumps(value.to_json() if hasattr(value, "to_json") else value, indent=2, sort_keys=True, default=str))
    else:
        _say(value.to_text() if hasattr(value, "to_text") else json.dumps(value, indent=2, default=str))


def _usage_error(message: str, as_json: bool) -> int:
    if as_json:
        _say(json.dumps({"error": "bad-event-log", "message": message}))
    else:
        _say(message, err=True)
    return EXIT_USAGE


def _render(args: argparse.Namespace) -> int:
    from automation.render import RenderError, run_program, tree_text, write

    try:
        recording = run_program(args.stack)
        counts = write(recording, args.out)
    except RenderError as err:
        _say(f"render: {err}", err=True)
        return EXIT_USAGE
    except Exception as err:  # noqa: BLE001 - the program's own error, shown without a traceback
        _say(f"render: the program failed: {err}", err=True)
        return 1
    _say(tree_text(recording, str(recording.outputs.get("tenant", args.stack))))
    _say(f"wrote {counts['resources']} resources, {counts['repos']} repos, {counts['k8s']} k8s objects to {args.out}")
    return 0


def _load_tenant(path: Path) -> Any:
    """The tenant spec file, or a TenantError naming the file and what is wrong (never a traceback)."""
    from automation.tenant import MAX_TENANT_FILE, TenantError, tenant_from_json

    try:
        with path.open("rb") as f:
            raw = f.read(MAX_TENANT_FILE + 1)
    except OSError as err:
        raise TenantError(f"--tenant {path}: cannot read it ({err.strerror or err})") from None
    return tenant_from_json(raw, f"--tenant {path}")


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    # `--json=x` asks for JSON too (argparse then refuses the value: store_true takes none).
    args = _parser(json_errors=any(w == "--json" or w.startswith("--json=") for w in words)).parse_args(words)
    if args.command == "render":
        return _render(args)
    if args.command in SERVICE_COMMANDS:
        return _service(args)
    if args.command == "diff":
        from automation.changeset import changeset_from_events, events_from_log

        try:
            changes = changeset_from_events(events_from_log(args.events), stack=args.stack)
        except OSError as err:
            return _usage_error(f"diff: {args.events}: cannot read it ({err.strerror or err})", args.json)
        except ValueError as err:
            return _usage_error(f"diff: {err}", args.json)
        _emit(changes, args.json)
        return 0

    from automation import operations as ops
    from automation.tenant import TenantError

    try:
        tenant = _load_tenant(args.tenant)
        if args.stack and tenant.id != args.stack:
            raise TenantError(f"--stack {args.stack} does not match the tenant spec's id {tenant.id}")
        missing = [flag for flag in ("backend", "secrets_provider", "state_dir") if not getattr(args, flag)]
        if missing:
            raise ops.InvalidSetup(
                "missing " + ", ".join(f"--{m.replace('_', '-')}" for m in missing) + " (or SCOUTFLO_* variables)"
            )
        passphrase_env = {
            k: os.environ[k] for k in ("PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_CONFIG_PASSPHRASE") if k in os.environ
        }
        backend = ops.Backend(
            url=args.backend,
            secrets_provider=args.secrets_provider,
            state_dir=Path(args.state_dir),
            env=passphrase_env if args.secrets_provider == ops.PASSPHRASE else {},
        )
        stacks = ops.Stacks(backend)
        if args.command == "preview":
            _emit(ops.preview(tenant, stacks), args.json)
        elif args.command == "apply":
            _emit(ops.apply(tenant, args.fingerprint, stacks), args.json)
        else:
            _emit(ops.destroy(tenant, args.confirm, stacks), args.json)
        return 0
    except (ops.AutomationError, TenantError) as err:
        mapped = ops.map_error(err)
        if args.json:
            _say(json.dumps({"error": mapped.kind, "message": str(mapped)}))
        else:
            _say(f"{args.command}: {mapped}", err=True)
        return mapped.exit_code


if __name__ == "__main__":
    sys.exit(main())
