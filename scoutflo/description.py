"""What an app repository's description is: the catalog entry's text, a suffix, the tenant's mark.

A bottom-layer rule beside `naming`: `config` checks a description's length against it before
anything runs, and `github/` sets it and reads the mark back; neither layer imports the other.
"""

from __future__ import annotations

GITHUB_DESCRIPTION_MAX = 350
"""GitHub refuses a longer repository description ("Description cannot be more than 350
characters", quoted in Ylianst/MeshCentral#4724 and owasp-modsecurity/ModSecurity#3130): the create
would fail with a 422 only at `pulumi up`, after the app's other resources were made."""


def tenant_mark(tenant: str) -> str:
    """The end of every app repository's description: set by the one request that creates it
    (scoutflo/github/repository.py), so even a repository whose creation answer was lost is known."""
    return f"(Scoutflo tenant {tenant})"


def app_description(text: str) -> str:
    """An app repository's description before the tenant's mark (the catalog entry's own text)."""
    return f"{text} - Helm chart deployed by Argo CD"


def repo_description(text: str, tenant: str) -> str:
    return f"{text} {tenant_mark(tenant)}"
