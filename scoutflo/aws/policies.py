"""IAM policy documents as plain dicts (JSON-serialised by the components)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
STS_AUDIENCE = "sts.amazonaws.com"
ECR_PUSH_ACTIONS = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:CompleteLayerUpload",
    "ecr:DescribeImages",
    "ecr:GetDownloadUrlForLayer",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
]
# An ECR token carries its principal's rights: the token Argo CD pulls with must be able to read.
ECR_PULL_ACTIONS = ["ecr:BatchGetImage", "ecr:DescribeImages", "ecr:GetDownloadUrlForLayer", "ecr:ListImages"]


def github_subject(owner: str, owner_id: int | str, repo: str, repo_id: int | str, branch: str = "main") -> str:
    """The one `sub` the CI role trusts: pushes to `branch` of exactly this repository, by id.

    repo:OWNER@OWNER_ID/REPO@REPO_ID:ref:refs/heads/BRANCH is what GitHub sends for repositories
    created now. Both numeric ids come from the providers (the repository's `repo_id`, the
    owner's id from the github getUser invoke), so a deleted and re-created owner or repository of
    the same name (name recycling, what attacks on OIDC trust rely on) cannot assume the role.
    The name-only form repo:OWNER/REPO:... is not trusted.
    """
    for what, value in (("owner id", owner_id), ("repository id", repo_id)):
        if not str(value).isdigit():
            raise ValueError(f"GitHub {what} must be a positive number, got {value!r}")
    return f"repo:{owner}@{owner_id}/{repo}@{repo_id}:ref:refs/heads/{branch}"


def _web_identity(provider_arn: str, conditions: dict[str, Any]) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": conditions,
            }
        ],
    }


def github_trust(provider_arn: str, subject: str) -> dict[str, Any]:
    # StringEquals: the subject is exact, with no wildcard for anything to match.
    return _web_identity(
        provider_arn,
        {
            "StringEquals": {f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE, f"{GITHUB_OIDC_HOST}:sub": subject},
        },
    )


def irsa_trust(provider_arn: str, issuer_url: str, namespace: str, service_account: str) -> dict[str, Any]:
    issuer = issuer_url.removeprefix("https://")
    return _web_identity(
        provider_arn,
        {
            "StringEquals": {
                f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                f"{issuer}:aud": STS_AUDIENCE,
            }
        },
    )


def ecr_access(repository_arns: Sequence[str], actions: Sequence[str]) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            # GetAuthorizationToken has no resource-level scoping; everything else is per repository.
            {"Sid": "Token", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Sid": "Repositories", "Effect": "Allow", "Action": list(actions), "Resource": sorted(repository_arns)},
        ],
    }


def role_name_of(role_arn: str) -> str:
    """The name of a role from its ARN (the last path segment): what iam:PutRolePolicy takes."""
    return role_arn.rsplit("/", 1)[-1]


def capability_policy_name(tenant: str) -> str:
    """The inline policy on the EKS Argo CD capability's role that lets it read one tenant's ECR.

    The role is shared by every tenant on that cluster and owned by whoever created the
    capability: each tenant's grant is its own named policy, so adding or removing one tenant
    never rewrites another's, nor any policy of the role's owner."""
    return f"scoutflo-{tenant}-ecr-read"


def oidc_provider_arn(account_id: str, issuer_url: str) -> str:
    return f"arn:aws:iam::{account_id}:oidc-provider/{issuer_url.removeprefix('https://')}"
