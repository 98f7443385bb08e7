"""Whether the account's GitHub OIDC provider and an app's ECR repository already exist and are
this tenant's: both are adopted with Pulumi's `import_` option rather than created twice.

The OIDC provider is one per URL per AWS account, shared by every stack; an app's ECR repository is
retained with every chart version when the app is removed. scoutflo/adoption.py asks AWS and hands
the answers to `oidc_from_lookup` and `registry_to_adopt`.

Why `import_` is set on *every* run where the thing exists, also once this stack owns it: the
engine imports only when the resource is not in the stack's state or its stored id differs from
the import id (pulumi/pulumi pkg/resource/deploy/step_generator.go:1102-1113, `isImport :=
goal.Custom && goal.ID != "" && (old == nil || old.External || oldImportID != goal.ID)`). Each
id used here is the provider's own resource id (OIDC provider: its ARN, terraform-provider-aws
internal/service/iam/openid_connect_provider.go `d.SetId(...Arn)`; ECR repository: its name,
internal/service/ecr/repository.go `d.SetId(RepositoryName)`), so for a resource this stack
created the option is inert and nothing flips between create and adopt. After an import the
engine diffs the imported state against the program's inputs like any update
(step_generator.go:1241-1270 `continueStepsFromImport`). A diff that needs a replacement is
refused for an imported resource (step_generator.go:1975-1996).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scoutflo.aws.policies import GITHUB_OIDC_HOST
from scoutflo.github.adoption import AdoptionError

OIDC_URL = f"https://{GITHUB_OIDC_HOST}"
TENANT_TAG = "scoutflo:tenant"
"""ECR repositories carry it; GitHub repositories carry `tenant_mark` at the end of their
description (scoutflo/github/adoption.py). Both tell a tenant's own kept repository from someone
else's, or another tenant's, of the same name."""
# terraform-provider-aws internal/retry/error.go NotFoundError.Error(): the text the OIDC data
# source fails with when no provider has the URL (openid_connect_provider_data_source.go
# findOpenIDConnectProviderByURL returns &retry.NotFoundError{}).
_AWS_NOT_FOUND = "couldn't find resource"


@dataclass(frozen=True, kw_only=True)
class OidcProvider:
    arn: str
    client_ids: tuple[str, ...]
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class FoundRegistry:
    tags: Mapping[str, str]
    """Kept when adopted (ours is added): `tags` is not computed, a left-out one is removed."""
    encryption_type: str = "AES256"
    kms_key: str = ""
    """Kept as found: encryption_type and kms_key are ForceNew (terraform-provider-aws
    internal/service/ecr/repository.go), and the engine refuses to replace a resource that names
    an import id (pulumi/pulumi pkg/resource/deploy/step_generator.go:1975-1996)."""


def registry_to_adopt(tenant: str, name: str, found: Any) -> FoundRegistry:
    """An ECR repository `aws.ecr.get_repository` found: adopt it when it is this tenant's."""
    tags = dict(getattr(found, "tags", None) or {})
    if tags.get(TENANT_TAG) == tenant:
        encryption = (getattr(found, "encryption_configurations", None) or [None])[0]
        return FoundRegistry(
            tags=tags,
            encryption_type=str(getattr(encryption, "encryption_type", "") or "AES256"),
            kms_key=str(getattr(encryption, "kms_key", "") or ""),
        )
    owner = f"tenant {tags[TENANT_TAG]!r}'s" if TENANT_TAG in tags else f"not tagged {TENANT_TAG}={tenant}"
    raise AdoptionError(
        f"ECR repository {name} already exists and is {owner}: set scoutflo:ecrPrefix to give this "
        f"tenant its own namespace, or, if it is this tenant's, tag it {TENANT_TAG}={tenant} "
        f"(`aws ecr tag-resource`) so Scoutflo adopts it with every chart version in it"
    )


def oidc_from_lookup(lookup: Any) -> OidcProvider | None:
    """Call `lookup()` (the OIDC data source); None when the account has no provider for the URL.

    The data source fails instead of answering empty, and the engine passes the provider's
    error to the program as the invoke's error (pulumi/pulumi pkg/resource/deploy/
    source_eval.go resmon.Invoke: "invocation of %v returned an error"); the Python SDK raises
    it as an Exception (sdk/python/lib/pulumi/runtime/invoke.py). Only the not-found text means
    absent: any other failure (e.g. AccessDenied) stops the run instead of creating a duplicate.
    """
    try:
        found = lookup()
    except Exception as err:  # noqa: BLE001 - the SDK raises a bare Exception for a failed invoke
        if _AWS_NOT_FOUND in str(err):
            return None
        raise AdoptionError(
            f"looking up the account's GitHub OIDC provider ({OIDC_URL}) failed: {err}. The deployer "
            "needs iam:ListOpenIDConnectProviders and iam:GetOpenIDConnectProvider "
            "(deploy/deployer-iam-policy.json)"
        ) from None
    return OidcProvider(arn=found.arn, client_ids=tuple(found.client_id_lists or ()), tags=dict(found.tags or {}))
