"""What the program commits to an app's repository, as `{path: text}`.

The initial commit on main holds the CI pipeline and README and, for a template app, the chart.
The chart sits in `chart/` so the pipeline files never end up inside a packaged chart.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

from scoutflo.charts.chart_yaml import CHART_DIR, INITIAL_VERSION, yaml_scalar

SCAFFOLD = Path(__file__).resolve().parents[1] / "scaffold"
EXECUTABLES = ("ci/dependencies", "ci/release", "ci/settings", "ci/version")
SETTINGS_PATH = "ci/settings.env"
_NAME = re.compile(r"^name:.*$", re.M)
_VERSION = re.compile(r"^version:.*$", re.M)


def set_chart_identity(chart_yaml: str, name: str, version: str) -> str:
    """Rewrite only the `name` and `version` lines, keeping the rest of Chart.yaml as written."""
    for pattern, line in ((_NAME, f"name: {yaml_scalar(name)}"), (_VERSION, f"version: {version}")):
        if not pattern.search(chart_yaml):
            raise ValueError(f"Chart.yaml has no top-level '{line.split(':')[0]}:' line")
        chart_yaml = pattern.sub(line, chart_yaml, count=1)
    return chart_yaml


def read_tree(root: Path) -> dict[str, str]:
    """Every regular file under root as text, keyed by its POSIX path relative to root."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            out[path.relative_to(root).as_posix()] = path.read_text(encoding="utf-8")
    return out


def template_chart(template_dir: Path, app: str) -> dict[str, str]:
    files = read_tree(template_dir)
    files["Chart.yaml"] = set_chart_identity(files["Chart.yaml"], app, INITIAL_VERSION)
    return {f"{CHART_DIR}/{path}": text for path, text in files.items()}


# The README section a repository without branch protection gets (scoutflo:branchProtection=false).
UNPROTECTED_NOTE = """**This repository has no branch protection** (the stack sets `branchProtection: false`,
as GitHub Free offers none for private repositories). The `lint` check is then advisory:
anyone with write access can push to `main` or merge a PR whose check failed (a chart that does
not lint, a version lower than main's), and the `release` workflow is what fails (lint) or
numbers it above every release (version) instead of the merge being stopped. Wait for `lint`
before merging.

"""


def pipeline_files(*, app: str, source: str, branch_protection: bool = True) -> dict[str, str]:
    files = {}
    note = "" if branch_protection else UNPROTECTED_NOTE
    for path, text in read_tree(SCAFFOLD).items():
        if path.endswith(".tmpl"):
            files[path.removesuffix(".tmpl")] = Template(text).substitute(app=app, source=source, protection_note=note)
        else:
            files[path] = text
    return files


def settings_file(*, registry_url: str, region: str, role_arn: str) -> str:
    """ci/settings.env: where the release workflow pushes and as whom (configuration, no secret).

    Committed with the scaffold instead of three Actions variables (3 GitHub writes less per
    app); the workflow reads it through ci/settings, which accepts only these keys.
    """
    for key, value in (("registry_url", registry_url), ("region", region), ("role_arn", role_arn)):
        if not value or any(c.isspace() for c in value):
            raise ValueError(f"settings file: {key} must be a non-empty value without spaces, got {value!r}")
    return (
        "# Written by Scoutflo when this repository was created; read by ci/settings.\n"
        "# The chart registry (oci://<registry>/<namespace>), its AWS region and the IAM role the\n"
        "# release workflow assumes through GitHub's OIDC token (no stored keys).\n"
        f"CHART_REGISTRY={registry_url}\n"
        f"AWS_REGION={region}\n"
        f"AWS_ROLE_ARN={role_arn}\n"
    )


def initial_files(
    *, app: str, source: str, template_dir: Path | None, branch_protection: bool = True
) -> dict[str, str]:
    """The first commit on main: pipeline and README, plus the chart when it is a template."""
    files = pipeline_files(app=app, source=source, branch_protection=branch_protection)
    if template_dir is not None:
        files.update(template_chart(template_dir, app))
    return files
