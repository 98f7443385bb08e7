"""Pure logic of the Scoutflo GitOps program: config, naming, versions, manifests, repo files.

Nothing in this package registers a Pulumi resource, so it is tested without mocks.
"""
