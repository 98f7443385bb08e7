"""The service's typed errors: AutomationErrors, so the backend and `python -m automation` handle
them like the rest. `kind` is stable for the backend; `exit_code` continues the CLI's table
(automation/__main__.py: 0-10 are taken; new codes are added only at its end)."""

from __future__ import annotations

from automation.operations import AutomationError, ChangesDiffer


class DatabaseUnavailable(AutomationError):
    """PostgreSQL could not be reached or dropped the connection; nothing of the call was committed
    (every write is one transaction), so the call can be repeated once the database is back."""

    kind, exit_code = "database-unavailable", 11


class UnknownPreview(AutomationError):
    kind, exit_code = "unknown-preview", 12

    def __init__(self, preview_id: int):
        super().__init__(f"preview {preview_id} does not exist; list the tenant's history for its previews")
        self.preview_id = preview_id


class PreviewSuperseded(AutomationError):
    """Only the tenant's latest preview can be approved (or rejected)."""

    kind, exit_code = "preview-superseded", 13

    def __init__(self, preview_id: int, tenant: str, latest: int):
        super().__init__(
            f"preview {preview_id} of tenant {tenant} is not its latest (preview {latest} is): "
            "review and approve the latest preview instead"
        )
        self.preview_id, self.tenant, self.latest = preview_id, tenant, latest


class AlreadyDecided(AutomationError):
    """The preview was approved or rejected already: one decision per preview, ever (a replayed
    approval is refused, it never queues a second apply)."""

    kind, exit_code = "already-decided", 14

    def __init__(self, preview_id: int, status: str):
        super().__init__(f"preview {preview_id} is {status} already: one approval per preview; request a new preview")
        self.preview_id, self.status = preview_id, status


class PreviewNotReady(AutomationError):
    """The preview is still running, found nothing to change, or failed: nothing to approve."""

    kind, exit_code = "preview-not-ready", 15

    def __init__(self, preview_id: int, status: str):
        hint = {
            "running": "wait until it is ready",
            "empty": "it found nothing to change",
            "failed": "it failed; request a new preview",
        }.get(status, "request a new preview")
        super().__init__(f"preview {preview_id} is {status}, not ready for approval: {hint}")
        self.preview_id, self.status = preview_id, status


class PreviewFinished(AutomationError):
    """A preview's outcome is recorded once: a replayed preview job changes nothing."""

    kind, exit_code = "preview-finished", 18

    def __init__(self, preview_id: int, status: str):
        super().__init__(f"preview {preview_id} is {status} already: its outcome was recorded once")
        self.preview_id, self.status = preview_id, status


class FingerprintMismatch(ChangesDiffer):
    """The approver saw other changes than the preview holds (exit code and kind of changes-differ)."""

    def __init__(self, preview_id: int, approved: str, actual: str):
        super().__init__(approved, f"preview {preview_id} has fingerprint {actual}")
        self.preview_id = preview_id


class ApplyReplayed(AutomationError):
    """An apply runs once: only a queued apply can start; a replayed job or a second worker is refused."""

    kind, exit_code = "apply-replayed", 16

    def __init__(self, apply_id: int, status: str):
        super().__init__(f"apply {apply_id} is {status}, not queued: an approval is applied at most once")
        self.apply_id, self.status = apply_id, status


class UnknownApply(AutomationError):
    kind, exit_code = "unknown-apply", 17

    def __init__(self, apply_id: int):
        super().__init__(f"apply {apply_id} does not exist")
        self.apply_id = apply_id


class InvalidRequest(AutomationError):
    """A call's own argument is malformed (an empty approver, an unknown reason): nothing was written."""

    kind, exit_code = "invalid-request", 19


ERRORS = (
    DatabaseUnavailable,
    UnknownPreview,
    PreviewSuperseded,
    AlreadyDecided,
    PreviewNotReady,
    ApplyReplayed,
    UnknownApply,
    PreviewFinished,
    InvalidRequest,
)
"""The service's new kinds, in exit-code order (11 onwards); FingerprintMismatch reuses
changes-differ (3); bad settings are the engine's InvalidSetup (8)."""
