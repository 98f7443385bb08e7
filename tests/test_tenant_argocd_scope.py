"""A tenant in an Argo CD shared with other tenants cannot name another tenant's project. An
Application in Argo CD's own namespace may use any project (argo-cd app_project_types.go
IsAppNamespacePermitted), and the project's destinations decide where it deploys: a tenant that
set `argocdProject` to another tenant's project deployed into that tenant's clusters and
namespaces. Refused before any CLI call, as invalid-tenant naming the key."""

from __future__ import annotations

import pytest

from automation.tenant import Tenant, TenantError, tenant_settings
from tests.kubeconfigs import tenant_spec


def settings_for(config: dict[str, object]) -> object:
    spec = tenant_spec()
    return tenant_settings(Tenant.from_dict({**spec, "config": {**spec["config"], **config}}))


@pytest.mark.parametrize("project", ["globex", "acme-prod", "acm", "platform", "*"])
def test_a_tenant_cannot_name_another_project(project: str) -> None:
    with pytest.raises(TenantError, match=rf"'argocdProject' is '{project}'.*named after it \('acme'\)"):
        settings_for({"argocdProject": project})


@pytest.mark.parametrize("project", ["acme", "default"])
def test_a_tenant_uses_its_own_project_or_default(project: str) -> None:
    settings = settings_for({"argocdProject": project})
    assert settings.plain["scoutflo:argocdProject"] == project  # type: ignore[attr-defined]


def test_without_the_key_the_program_default_holds() -> None:
    settings = settings_for({})
    assert "scoutflo:argocdProject" not in settings.plain  # type: ignore[attr-defined]
