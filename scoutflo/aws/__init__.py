"""AWS: the IAM documents and account look-ups the AWS resources are built from.

`policies` (IAM policy and trust documents as plain dicts: ECR access, the GitHub OIDC trust of a
CI role) → `adoption` (whether the account's GitHub OIDC provider and an app's ECR repository
already exist and are this tenant's, so they are adopted with `import_` rather than created).
components/ci_role.py, github_oidc.py, chart_registry.py and registry_access.py register the
resources; nothing here does.
"""
