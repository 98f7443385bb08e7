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


def github_subjects(owner: str, repo: str, repo_id: int | str, branch: str = "main") -> list[str]:
    """Both `sub` forms GitHub may send for pushes to `branch` of exactly this repository.

    Classic: repo:OWNER/REPO:ref:...; ID-based (repos created from mid-2026):
    repo:OWNER@OWNER_ID/REPO@REPO_ID:ref:... The repository id pins the repository itself, so a
    deleted and re-created repo of the same name cannot assume the role through that form.
    """
    ref = f"ref:refs/heads/{branch}"
    return [f"repo:{owner}/{repo}:{ref}", f"repo:{owner}@*/{repo}@{repo_id}:{ref}"]


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


def github_trust(provider_arn: str, subjects: Sequence[str]) -> dict[str, Any]:
    return _web_identity(
        provider_arn,
        {
            "StringEquals": {f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE},
            "StringLike": {f"{GITHUB_OIDC_HOST}:sub": list(subjects)},
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


def oidc_provider_arn(account_id: str, issuer_url: str) -> str:
    return f"arn:aws:iam::{account_id}:oidc-provider/{issuer_url.removeprefix('https://')}"
