"""tokenRefreshMode=none: a capability role of another account is refused before anything is
registered. Raised inside the grant's apply (after the account look-up resolved), the error came
after the ECR and GitHub repositories had been registered, so an `up` created them and then
failed; the account is one plain invoke away, the same kind of look-up the adoption checks make
before registering."""

from __future__ import annotations

import pytest

from automation import render
from tests.conftest import run_main, run_main_volatile
from tests.test_refresher_lifecycle import NONE_MODE


def test_a_capability_role_of_another_account_stops_the_run_before_any_resource() -> None:
    recording = render.Recording("eu-west-1")
    with pytest.raises(Exception, match="'scoutflo:argocdCapabilityRoleArn' names a role in account 999999999999"):
        run_main(
            {**NONE_MODE, "scoutflo:argocdCapabilityRoleArn": "arn:aws:iam::999999999999:role/Other"},
            recording=recording,
        )
    assert [r.urn for r in recording.resources] == []


def test_a_capability_role_of_the_deployed_account_is_granted() -> None:
    rec = run_main(NONE_MODE)
    assert [r.inputs["role"] for r in rec.resources if r.name == "registry-access-capability-ecr"] == [
        "ArgoCDCapabilityRole"
    ]


def test_a_second_run_in_none_mode_registers_the_same_inputs() -> None:
    """As test_registry_access's per-mode check, for mode none (not among its modes): look-ups
    that answer differently each run (a new STS session) change no input, so a second `up` is a
    no-op and a saved plan holds."""
    first, invoked = run_main_volatile(NONE_MODE)
    second, _ = run_main_volatile(NONE_MODE)
    assert "aws:index/getCallerIdentity:getCallerIdentity" in invoked
    assert [r.urn for r in first.resources] == [r.urn for r in second.resources]
    for a, b in zip(first.resources, second.resources, strict=True):
        assert (a.inputs, a.depends_on) == (b.inputs, b.depends_on), a.urn
