"""deploy/deployer-iam-policy.json grants exactly what `pulumi up` / `refresh` / removing an app
need for the AWS resources and look-ups the program makes, on exactly those resources.

The program runs under mocks in every mode and adoption case; each registered AWS resource type
and each AWS invoke maps to the API calls its terraform-provider-aws implementation makes (cited
per entry). A new AWS resource type or invoke without an entry here fails the test, and so does
an action in the policy that nothing needs. Retained resources (the OIDC provider, ECR
repositories) are never deleted by the engine (`retain_on_delete`), so no Delete* is granted:
the deployer cannot destroy chart history even by mistake.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest

from automation import render
from tests.conftest import ROOT, run_main
from tests.test_adoption import OIDC_ARN, cloud, ecr, oidc_present, repos

POLICY = ROOT / "deploy" / "deployer-iam-policy.json"
ACCT, REGION = render.FAKE_ACCOUNT, "eu-west-1"

# Resource type -> API calls of create, read (refresh, and after every create/update), update of
# the inputs the program sets, and delete where the engine may delete (not retained).
RESOURCE_ACTIONS: dict[str, dict[str, str]] = {
    # internal/service/iam/openid_connect_provider.go: Create -> CreateOpenIDConnectProvider;
    # Read -> GetOpenIDConnectProvider (tags come back in its output); Update -> AddClientID...
    # for an adopted provider that lacks our audience (client_id_list Difference), and
    # RemoveClientID... for an audience someone removed since this stack's last run (the inputs
    # mirror the look-up, the state still has it: os.Difference(ns)). Tags (@Tags: transparent
    # tagging, internal/provider/sdkv2/tags_interceptor.go Before/Update -> UpdateTags): a tag
    # someone added or removed since the last run is Tag/UntagOpenIDConnectProvider, and so is
    # tag-on-create under provider default tags. Without them the next `up` of every stack
    # holding the shared provider fails with AccessDenied. Retained: no Delete. No thumbprint is
    # set, so UpdateOpenIDConnectProviderThumbprint is never called.
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": {
        "iam:CreateOpenIDConnectProvider": "create",
        "iam:GetOpenIDConnectProvider": "read",
        "iam:AddClientIDToOpenIDConnectProvider": "update",
        "iam:RemoveClientIDFromOpenIDConnectProvider": "update",
        "iam:TagOpenIDConnectProvider": "update",
        "iam:UntagOpenIDConnectProvider": "update",
    },
    # internal/service/iam/role.go: CreateRole; Read -> GetRole, ListRolePolicies + GetRolePolicy
    # (readRoleInlinePolicies), ListAttachedRolePolicies (readRolePolicyAttachments); Update ->
    # UpdateAssumeRolePolicy, UpdateRoleDescription, UpdateRole (max_session_duration); Delete
    # (removing an app) -> ListInstanceProfilesForRole (deleteRoleInstanceProfiles), DeleteRole.
    "aws:iam/role:Role": {
        "iam:CreateRole": "create",
        "iam:GetRole": "read",
        "iam:ListRolePolicies": "read",
        "iam:GetRolePolicy": "read",
        "iam:ListAttachedRolePolicies": "read",
        "iam:UpdateAssumeRolePolicy": "update",
        "iam:UpdateRoleDescription": "update",
        "iam:UpdateRole": "update",
        "iam:ListInstanceProfilesForRole": "delete",
        "iam:DeleteRole": "delete",
    },
    # internal/service/iam/role_policy.go: PutRolePolicy (create and update), GetRolePolicy,
    # DeleteRolePolicy.
    "aws:iam/rolePolicy:RolePolicy": {
        "iam:PutRolePolicy": "create",
        "iam:GetRolePolicy": "read",
        "iam:DeleteRolePolicy": "delete",
    },
    # internal/service/ecr/repository.go: CreateRepository (with tags, which IAM also checks as
    # ecr:TagResource); Read -> DescribeRepositories, ListTagsForResource; Update (an adopted
    # repository) -> PutImageTagMutability, PutImageScanningConfiguration, TagResource (our tag);
    # @Tags(identifierAttribute="arn") -> UntagResource when a tag the state holds was removed
    # since (the inputs mirror the look-up's tags). Retained: no DeleteRepository.
    "aws:ecr/repository:Repository": {
        "ecr:CreateRepository": "create",
        "ecr:TagResource": "create",
        "ecr:UntagResource": "update",
        "ecr:DescribeRepositories": "read",
        "ecr:ListTagsForResource": "read",
        "ecr:PutImageTagMutability": "update",
        "ecr:PutImageScanningConfiguration": "update",
    },
}
INVOKE_ACTIONS: dict[str, dict[str, str]] = {
    # sts:GetCallerIdentity needs no permission (AWS STS API reference, GetCallerIdentity).
    "aws:index/getCallerIdentity:getCallerIdentity": {},
    # internal/service/iam/openid_connect_provider_data_source.go: ListOpenIDConnectProviders
    # (findOpenIDConnectProviderByURL), then GetOpenIDConnectProvider.
    render.OIDC_LOOKUP: {"iam:ListOpenIDConnectProviders": "*", "iam:GetOpenIDConnectProvider": "oidc"},
    # internal/service/ecr/repositories_data_source.go: DescribeRepositories paginated.
    render.ECR_LIST: {"ecr:DescribeRepositories": "repository"},
    # internal/service/ecr/repository_data_source.go: findRepository (DescribeRepositories),
    # findImageDetails (DescribeImages), tags (@Tags: ListTagsForResource). Asked only about
    # names the list answered.
    render.ECR_LOOKUP: {
        "ecr:DescribeRepositories": "repository",
        "ecr:DescribeImages": "repository",
        "ecr:ListTagsForResource": "repository",
    },
    # internal/service/iam/role_data_source.go (0929dbaa): GetRole by name, tags in its answer.
    render.CAPABILITY_ROLE_LOOKUP: {"iam:GetRole": "capability"},
}
# tokenRefreshMode=none: the inline grant lands on the EKS Argo CD capability's role, which the
# stack does not own; the policy names it (AWS's example name, docs.aws.amazon.com/eks/latest/
# userguide/argocd-create-eksctl.html "ArgoCDCapabilityRole"), and an operator whose role is named
# otherwise puts that name in the one statement.
CAPABILITY_ROLE = "ArgoCDCapabilityRole"
NONE_MODE = {
    "scoutflo:tokenRefreshMode": "none",
    "scoutflo:argocdCapabilityRoleArn": f"arn:aws:iam::{ACCT}:role/{CAPABILITY_ROLE}",
    "scoutflo:argocdDestination": f"arn:aws:eks:{REGION}:{ACCT}:cluster/prod",
}
STATIC = {
    "scoutflo:tokenRefreshMode": "static",
    "scoutflo:refresherAccessKeyId": "AKIAEXAMPLE",
    "scoutflo:refresherSecretAccessKey": "secret",
}


def policy_statements() -> list[dict[str, Any]]:
    doc = json.loads(POLICY.read_text(encoding="utf-8"))
    assert doc["Version"] == "2012-10-17"
    for stmt in doc["Statement"]:
        assert stmt["Effect"] == "Allow" and stmt["Sid"] and stmt["Action"] and stmt["Resource"]
        assert "NotAction" not in stmt and "NotResource" not in stmt
    return list(doc["Statement"])


def allowed(statements: list[dict[str, Any]], action: str, arn: str) -> bool:
    for stmt in statements:
        actions = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
        resources = stmt["Resource"] if isinstance(stmt["Resource"], list) else [stmt["Resource"]]
        if action in actions and any(fnmatch.fnmatchcase(arn, pattern) for pattern in resources):
            return True
    return False


def arn_of(res: render.Registered) -> str:
    if res.type == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
        return f"arn:aws:iam::{ACCT}:oidc-provider/{res.inputs['url'].removeprefix('https://')}"
    if res.type == "aws:iam/role:Role":
        return f"arn:aws:iam::{ACCT}:role/{res.inputs['name']}"
    if res.type == "aws:iam/rolePolicy:RolePolicy":
        return f"arn:aws:iam::{ACCT}:role/{res.inputs['role']}"  # inline policies live on the role
    if res.type == "aws:ecr/repository:Repository":
        return f"arn:aws:ecr:{REGION}:{ACCT}:repository/{res.inputs['name']}"
    raise AssertionError(f"no ARN rule for {res.type}")


def invoke_arn(target: str) -> str:
    return {
        "*": "*",
        "oidc": OIDC_ARN,
        # DescribeRepositories without names is authorised against the region's repositories.
        "repository": f"arn:aws:ecr:{REGION}:{ACCT}:repository/*",
        "capability": f"arn:aws:iam::{ACCT}:role/{CAPABILITY_ROLE}",
    }[target]


@pytest.fixture(scope="module")
def recordings() -> list[render.Recording]:
    adopted = cloud(oidc=oidc_present(), repos=repos(storefront="archived"), ecr=ecr("scoutflo/storefront"))
    return [
        run_main(),
        run_main(STATIC),
        run_main({"scoutflo:tokenRefreshMode": "eso"}),
        run_main(NONE_MODE),
        run_main(cloud=adopted),
        run_main({"scoutflo:githubOidcProviderArn": OIDC_ARN}),
    ]


def needed(recordings: list[render.Recording]) -> dict[str, set[str]]:
    """action -> the ARNs it is needed on, across every run."""
    out: dict[str, set[str]] = {}
    for rec in recordings:
        for res in rec.resources:
            if res.custom and res.type.startswith("aws:"):
                assert res.type in RESOURCE_ACTIONS, f"{res.type}: add the API calls its provider makes"
                for action in RESOURCE_ACTIONS[res.type]:
                    out.setdefault(action, set()).add(arn_of(res))
        for token, _args in rec.invokes:
            if token.startswith("aws:"):
                assert token in INVOKE_ACTIONS, f"{token}: add the API calls its data source makes"
                for action, target in INVOKE_ACTIONS[token].items():
                    out.setdefault(action, set()).add(invoke_arn(target))
    return out


def test_policy_allows_every_call_the_program_needs_on_its_resources(recordings: list[render.Recording]) -> None:
    statements = policy_statements()
    missing = [
        (action, arn)
        for action, arns in sorted(needed(recordings).items())
        for arn in sorted(arns)
        if not allowed(statements, action, arn)
    ]
    assert not missing, f"deploy/deployer-iam-policy.json lacks {missing}"


def test_policy_grants_nothing_the_program_does_not_need(recordings: list[render.Recording]) -> None:
    granted = {a for stmt in policy_statements() for a in stmt["Action"]}
    assert granted == set(needed(recordings)), sorted(granted ^ set(needed(recordings)))
    # Nothing that destroys what a user keeps: chart history and the shared OIDC provider.
    assert not {a for a in granted if a.startswith(("ecr:Delete", "ecr:BatchDelete"))}
    assert "iam:DeleteOpenIDConnectProvider" not in granted


def test_every_mapped_invoke_is_one_the_program_makes(recordings: list[render.Recording]) -> None:
    """A look-up the program stopped making (the ECR token) must not keep its rights here."""
    made = {token for rec in recordings for token, _args in rec.invokes}
    assert sorted(set(INVOKE_ACTIONS) - made) == []


def test_policy_is_scoped_to_scoutflo_roles() -> None:
    for stmt in policy_statements():
        if stmt["Sid"] == "ArgoCdCapabilityRoleGrant":
            # One named role, and only its inline policies and a read of its trust (the program
            # checks only the capability service may assume it): never changing the trust, never
            # deleting the role.
            assert stmt["Resource"] == f"arn:aws:iam::*:role/{CAPABILITY_ROLE}"
            assert sorted(stmt["Action"]) == [
                "iam:DeleteRolePolicy",
                "iam:GetRole",
                "iam:GetRolePolicy",
                "iam:PutRolePolicy",
            ]
        elif any(a.startswith("iam:") and "Role" in a for a in stmt["Action"]):
            assert stmt["Resource"] == "arn:aws:iam::*:role/scoutflo-*"
    assert not allowed(policy_statements(), "iam:PutRolePolicy", f"arn:aws:iam::{ACCT}:role/Admin")
