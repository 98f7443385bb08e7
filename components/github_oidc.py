"""GithubOidc: the account's OIDC provider for GitHub Actions, adopted when it exists, else created."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from scoutflo.aws.adoption import OIDC_URL, OidcProvider
from scoutflo.aws.policies import STS_AUDIENCE


@dataclass(frozen=True, kw_only=True)
class GithubOidcArgs:
    existing_arn: str = ""
    """ARN from config: used as is, nothing registered (the provider is someone else's to manage)."""
    found: OidcProvider | None = None
    """What the look-up found (scoutflo.aws.adoption): adopted with `import_`; None creates it."""


class GithubOidc(pulumi.ComponentResource):
    arn: pulumi.Output[str]

    def __init__(self, name: str, args: GithubOidcArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("scoutflo:index:GithubOidc", name, None, opts)
        if args.existing_arn:
            self.arn = pulumi.Output.from_input(args.existing_arn)
        else:
            found = args.found
            provider = aws.iam.OpenIdConnectProvider(
                f"{name}-provider",
                url=OIDC_URL,
                # Keep every audience other stacks or people added; ours must be among them.
                client_id_lists=sorted({STS_AUDIENCE, *(found.client_ids if found else ())}),
                # `tags` is not computed (TagsSchema): leaving it out would strip an adopted
                # provider's tags. thumbprint_list is Optional+Computed, so it is left to AWS
                # (terraform-provider-aws internal/service/iam/openid_connect_provider.go).
                tags=dict(found.tags) if found and found.tags else None,
                # One provider per URL per account: other stacks rely on it, so no stack ever
                # deletes it. Importing is inert once this stack holds it (scoutflo/aws/adoption.py).
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True, import_=found.arn if found else None),
            )
            self.arn = provider.arn
        self.register_outputs({"arn": self.arn})
