"""Chart acquisition: the layer between the catalog and the components.

`versions` (Helm/Argo CD semver ranges) → `http` (one hardened GET over httpx) → `fetch` (Helm
repositories and OCI registries, verified and cached) → `archive` (reading a .tgz in memory under
one budget) → `chart_yaml` (names, versions and Chart.yaml edits Helm and Git can hold) →
`plan` (the files of one import pull request). Everything here is pure apart from the network and
the cache directory, and raises `ChartError` subclasses that name the source.
"""
