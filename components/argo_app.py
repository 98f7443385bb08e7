"""ArgoApp: the Argo CD Application that deploys the app's chart versions from ECR."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from scoutflo.cluster import manifests


@dataclass(frozen=True, kw_only=True)
class ArgoAppArgs:
    name: str
    """Application, chart and Helm release name."""
    argocd_namespace: str = "argocd"
    project: str = "default"
    repo_url: pulumi.Input[str]
    """Registry host and namespace, no scheme (Helm over OCI)."""
    target_revision: str = "*"
    """'*' follows the newest version; an exact version pins (rollback)."""
    namespace: str
    """Where the app's workloads go (created by Argo CD)."""
    values: Mapping[str, Any] = field(default_factory=dict)
    revision_history_limit: int = 10
    prune: str = "true"
    """The catalog entry's `sync.prune`: 'true', 'false' (stateful charts keep what a new chart
    version no longer renders, volumes included) or 'confirm' (a person approves each prune)."""
    server_side_apply: bool = False
    """The catalog entry's `sync.serverSideApply`: Argo CD applies server-side (big CRDs)."""
    destination: str = manifests.IN_CLUSTER
    """`scoutflo:argocdDestination`: the cluster's API server URL, EKS cluster ARN or Argo CD name."""


class ArgoApp(pulumi.ComponentResource):
    app_name: pulumi.Output[str]

    def __init__(self, name: str, args: ArgoAppArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("scoutflo:index:ArgoApp", name, None, opts)
        doc = manifests.application(
            name=args.name,
            argocd_namespace=args.argocd_namespace,
            project=args.project,
            repo_url=args.repo_url,
            target_revision=args.target_revision,
            destination_namespace=args.namespace,
            values=args.values,
            revision_history_limit=args.revision_history_limit,
            prune=args.prune,
            server_side_apply=args.server_side_apply,
            destination=args.destination,
        )
        app = k8s.apiextensions.CustomResource(
            f"{name}-application",
            api_version=doc["apiVersion"],
            kind=doc["kind"],
            metadata=doc["metadata"],
            spec=doc["spec"],
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Carries a dependency on the Application, so exports resolve after it exists.
        self.app_name = app.id.apply(lambda _: args.name)
        self.register_outputs({"app_name": self.app_name})
