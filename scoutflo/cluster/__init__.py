"""Cluster: the Kubernetes objects the program places in a tenant's cluster, as plain dicts.

`manifests` builds the Argo CD Application, the registry credential template and the ECR token
refresher; components/argo_app.py and components/registry_access.py wrap them in resources, and
the tests validate them against the schemas in tests/schemas/. Nothing here registers a resource.
"""
