"""tokenRefreshMode=none: a capability role of another account is refused before anything is
registered. Raised inside the grant's apply (after the account look-up resolved), the error came
after the ECR and GitHub repositories had been registered, so an `up` created them and then
failed; the account is one plain invoke away, the same kind of look-up the adoption checks make
before registering."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from automation import render
from components.registry_access import capability_trust_problem
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


# ------------------------------------------- the role is the EKS capability's, and only its own

CAPABILITY_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "capabilities.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
        }
    ],
}


def _role(trust: Any, arn: str = NONE_MODE["scoutflo:argocdCapabilityRoleArn"]) -> Callable[[Any], dict[str, Any]]:
    def answer(args: Any) -> dict[str, Any]:
        return {"id": args["name"], "name": args["name"], "arn": arn, "assumeRolePolicy": json.dumps(trust)}

    return answer


def _allow(principal: Any) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}],
    }


@pytest.mark.parametrize(
    ("trust", "says"),
    [
        # Another tenant's CI role, a person's admin role, the deployer's own: not a capability's.
        (_allow({"AWS": "arn:aws:iam::123456789012:root"}), "not only the service"),
        (
            _allow({"Federated": "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"}),
            "not only",
        ),
        (_allow({"Service": ["capabilities.eks.amazonaws.com", "ec2.amazonaws.com"]}), "not only"),
        (_allow("*"), "not only"),
        (
            {"Statement": [CAPABILITY_TRUST["Statement"][0], _allow({"AWS": "*"})["Statement"][0]]},
            "not only the service",
        ),
        ({"Statement": [{"Effect": "Allow", "NotPrincipal": {"AWS": "x"}, "Action": "sts:AssumeRole"}]}, "exclusion"),
        ({"Statement": []}, "does not trust the service"),
    ],
)
def test_a_role_not_only_the_capabilitys_is_refused_before_any_resource(trust: Any, says: str) -> None:
    """The tenant names the role and the grant makes it a reader of the tenant's charts: a role
    any other principal may assume is refused, naming the key, before anything is registered."""
    recording = render.Recording("eu-west-1")
    with pytest.raises(Exception, match=rf"'scoutflo:argocdCapabilityRoleArn': the role .*{says}"):
        run_main(NONE_MODE, recording=recording, cloud={render.CAPABILITY_ROLE_LOOKUP: _role(trust)})
    assert [r.urn for r in recording.resources] == []


def test_a_capability_role_with_conditions_or_deny_statements_is_granted() -> None:
    trust = {
        "Statement": [
            {**CAPABILITY_TRUST["Statement"][0], "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}}},
            {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"},
        ]
    }
    rec = run_main(NONE_MODE, cloud={render.CAPABILITY_ROLE_LOOKUP: _role(trust)})
    assert [r.inputs["role"] for r in rec.resources if r.name == "registry-access-capability-ecr"] == [
        "ArgoCDCapabilityRole"
    ]


def test_a_role_found_under_another_path_or_not_at_all_is_refused() -> None:
    other_path = _role(CAPABILITY_TRUST, arn="arn:aws:iam::123456789012:role/team-b/ArgoCDCapabilityRole")
    with pytest.raises(Exception, match=r"the account's role of that name is arn:aws:iam::123456789012:role/team-b/"):
        run_main(NONE_MODE, cloud={render.CAPABILITY_ROLE_LOOKUP: other_path})

    def absent(args: Any) -> dict[str, Any]:
        raise render.NotFound(f"reading IAM Role ({args['name']}): couldn't find resource")

    recording = render.Recording("eu-west-1")
    with pytest.raises(Exception, match=r"the role ArgoCDCapabilityRole could not be read: .*couldn't find resource"):
        run_main(NONE_MODE, recording=recording, cloud={render.CAPABILITY_ROLE_LOOKUP: absent})
    assert [r.urn for r in recording.resources] == []


def test_the_trust_check_reads_what_get_role_answers() -> None:
    assert capability_trust_problem(json.dumps(CAPABILITY_TRUST)) is None
    # A single statement object, as IAM accepts it.
    assert capability_trust_problem(json.dumps({"Statement": CAPABILITY_TRUST["Statement"][0]})) is None
    assert capability_trust_problem("{not json") == "has a trust policy that is not JSON"
    assert capability_trust_problem("[]") == "has no trust policy statements"
