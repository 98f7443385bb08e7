"""ChartRegistry: the app's ECR repository, where every released chart version lives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from scoutflo.aws.adoption import TENANT_TAG


@dataclass(frozen=True, kw_only=True)
class ChartRegistryArgs:
    repository_name: str
    """`<prefix>/<app>`: where `helm push` lands a chart called `<app>`."""
    tenant: str
    """Tagged on the repository (scoutflo.aws.adoption.TENANT_TAG): a later adoption checks it."""
    exists: bool = False
    """The repository is already in the region (kept from a removed app or a destroyed stack):
    adopt it with `import_` (its id is its name) instead of failing on a duplicate create."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """An adopted repository's current tags: kept (`tags` is not computed, so leaving one out
    would remove it)."""
    encryption_type: str = "AES256"
    kms_key: str = ""
    """An adopted repository's encryption, kept: it cannot change in place (scoutflo.aws.adoption
    FoundRegistry)."""


class ChartRegistry(pulumi.ComponentResource):
    repository_url: pulumi.Output[str]
    repository_arn: pulumi.Output[str]

    def __init__(self, name: str, args: ChartRegistryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("scoutflo:index:ChartRegistry", name, None, opts)
        repo = aws.ecr.Repository(
            f"{name}-ecr",
            name=args.repository_name,
            # A released version can never change under Argo CD; a merge race fails loudly.
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[
                {"encryption_type": args.encryption_type, **({"kms_key": args.kms_key} if args.kms_key else {})}
            ],
            force_delete=False,
            tags={**args.tags, TENANT_TAG: args.tenant},
            # Chart history is user data: removing the app from the stack keeps the repository
            # (and every version in it) in AWS; `retain_on_delete` drops it from state only.
            # Adding the app again adopts it (scoutflo/aws/adoption.py explains why `import_` is
            # safe on every run).
            opts=pulumi.ResourceOptions(
                parent=self, retain_on_delete=True, import_=args.repository_name if args.exists else None
            ),
        )
        self.repository_url = repo.repository_url
        self.repository_arn = repo.arn
        self.register_outputs({"repository_url": self.repository_url, "repository_arn": self.repository_arn})
