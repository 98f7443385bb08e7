"""GithubOidc: the account's OIDC provider for GitHub Actions, created once per stack or adopted."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from scoutflo.policies import GITHUB_OIDC_HOST, STS_AUDIENCE


@dataclass(frozen=True, kw_only=True)
class GithubOidcArgs:
    existing_arn: str = ""
    """ARN of a provider the account already has ('' creates one; an account holds one per URL)."""


class GithubOidc(pulumi.ComponentResource):
    arn: pulumi.Output[str]

    def __init__(self, name: str, args: GithubOidcArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("scoutflo:index:GithubOidc", name, None, opts)
        if args.existing_arn:
            self.arn = pulumi.Output.from_input(args.existing_arn)
        else:
            provider = aws.iam.OpenIdConnectProvider(
                f"{name}-provider",
                url=f"https://{GITHUB_OIDC_HOST}",
                client_id_lists=[STS_AUDIENCE],
                # Other stacks or people may rely on the account's only GitHub provider.
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
            )
            self.arn = provider.arn
        self.register_outputs({"arn": self.arn})
