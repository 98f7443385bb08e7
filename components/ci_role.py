"""CiRole: the AWS identity GitHub Actions of one repository's main branch assume through OIDC."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from scoutflo.aws.policies import ECR_PUSH_ACTIONS, ecr_access, github_subject, github_trust
from scoutflo.naming import CI_PUSH_POLICY_NAME


@dataclass(frozen=True, kw_only=True)
class CiRoleArgs:
    owner: str
    """GitHub owner of the repository, as configured."""
    owner_login: pulumi.Input[str]
    """The owner's login as GitHub spells it (the `sub` claim is compared case-sensitively)."""
    owner_id: pulumi.Input[str]
    """GitHub's numeric id of the owner (user or organisation)."""
    repo: str
    """Repository name (also the role's name suffix)."""
    repo_id: pulumi.Input[int]
    """GitHub's numeric repository id."""
    oidc_provider_arn: pulumi.Input[str]
    """The account's token.actions.githubusercontent.com provider."""
    ecr_repository_arn: pulumi.Input[str]
    """The one ECR repository this role may push to."""
    role_name: str
    """IAM role name (deterministic: the repo's Actions variable names it)."""


class CiRole(pulumi.ComponentResource):
    arn: pulumi.Output[str]
    push_policy: aws.iam.RolePolicy
    """What lets the role push: anything that starts a release must wait for it, not the role."""

    def __init__(self, name: str, args: CiRoleArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("scoutflo:index:CiRole", name, None, opts)
        trust = pulumi.Output.all(args.oidc_provider_arn, args.owner_login, args.owner_id, args.repo_id).apply(
            lambda v: json.dumps(github_trust(v[0], github_subject(v[1], v[2], args.repo, v[3])), sort_keys=True)
        )
        role = aws.iam.Role(
            f"{name}-role",
            name=args.role_name,
            description=f"GitHub Actions of {args.owner}/{args.repo} (main) push charts to ECR",
            assume_role_policy=trust,
            max_session_duration=3600,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.push_policy = aws.iam.RolePolicy(
            f"{name}-push",
            name=CI_PUSH_POLICY_NAME,
            role=role.name,
            policy=pulumi.Output.from_input(args.ecr_repository_arn).apply(
                lambda arn: json.dumps(ecr_access([arn], ECR_PUSH_ACTIONS), sort_keys=True)
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.arn = role.arn
        self.register_outputs({"arn": self.arn})
