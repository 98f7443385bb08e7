"""Pure logic of the Scoutflo GitOps program, one subpackage per layer.

`config`, `naming` and `description` (every key validated once) → `charts/` (chart acquisition;
its grammar modules, versions and YAML, serve the bottom layer too) → `github/`,
`cluster/`, `aws/` (what GitHub, the cluster and AWS are sent) → the components; `adoption` asks
GitHub and AWS what already exists. Nothing in this package registers a Pulumi resource, so it is
tested without mocks.
"""
