"""Chart names, versions and Chart.yaml edits that Helm, Git and the app repo's scripts all read alike.

A chart name becomes a directory (`charts/<name>/`), part of a Git branch
(`scoutflo/import-<chart>-<version>`) and a key of the umbrella chart's `values.yaml`, so it must
be in Helm's own character set: helm/helm pkg/chart/v2/util/create.go:38
`chartName = regexp.MustCompile("^[a-zA-Z0-9._-]+$")` ("Newline characters, as well as $, quotes,
+, parens, and % are known to be problematic") with at most 250 characters (create.go:77
`maxChartNameLength`), and not `.`/`..` (pkg/chart/v2/metadata.go:116).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import yaml

from scoutflo.charts import safe_yaml
from scoutflo.charts.errors import ArchiveError
from scoutflo.charts.versions import VersionError, parse_version

CHART_DIR = "chart"
"""Where an app's repository keeps its chart, so the CI pipeline's files never end up inside a
packaged chart (scoutflo/github/repo_files.py commits it there; the scaffold's ci/ scripts read it)."""
INITIAL_VERSION = "0.1.0"
"""The version of an app's chart in its first commit and of every imported chart's umbrella."""
CHART_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")
MAX_CHART_NAME = 250
_TOP_LINE = {key: re.compile(rf"^{key}:[^\n]*$", re.M) for key in ("name", "version")}
_ANNOTATIONS_BLOCK = re.compile(r"^annotations:[ \t]*\n", re.M)
# Helm reads Chart.yaml, Chart.lock and values.yaml with sigs.k8s.io/yaml (helm/helm
# pkg/chart/v2/loader/load.go:84), i.e. go.yaml.in/yaml/v2, whose resolve.go takes plain
# y/Y/n/N/yes/on/off... as booleans (`resolveMapList`) and whatever Go's ParseInt(s, 0)/ParseFloat
# take (0o17, 017, 1e3, 1_0) as numbers. PyYAML's YAML 1.1 resolvers keep `y`, `0o17`, `1e3`
# strings, so a plain scalar PyYAML reads back as the app name can reach Helm as `true` or `1000`
# and the chart is packaged under that name. Such strings are written double-quoted.
_GO_WORDS = {"y", "yes", "n", "no", "true", "false", "on", "off", "null", "~", ""}
_SEMVER_LIKE = re.compile(r"\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]*)?")


def go_reads_as_non_string(value: str) -> bool:
    """Whether go-yaml v2 could resolve this plain scalar to a bool, null, number or timestamp.

    Conservative: anything starting like a number is quoted, except MAJOR.MINOR.PATCH versions
    (two dots are neither an int, a float nor a timestamp to Go)."""
    if value.lower() in _GO_WORDS:
        return True
    return bool(re.match(r"[-+.0-9]", value)) and not _SEMVER_LIKE.fullmatch(value)


def yaml_scalar(value: str) -> str:
    """`value` as a YAML scalar that Go and PyYAML both read as this string (JSON is YAML)."""
    return json.dumps(value) if go_reads_as_non_string(value) else value


class _HelmDumper(yaml.SafeDumper):
    def represent_str(self, data: str) -> yaml.ScalarNode:
        if go_reads_as_non_string(data):
            return self.represent_scalar("tag:yaml.org,2002:str", data, style='"')
        return super().represent_str(data)


_HelmDumper.add_representer(str, _HelmDumper.represent_str)


def dump_for_helm(data: Any) -> str:
    """Block-style YAML that go-yaml v2 (Helm) and PyYAML read alike."""
    return yaml.dump(data, Dumper=_HelmDumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def chart_name_problem(name: object) -> str | None:
    if not isinstance(name, str) or not name:
        return "must be a non-empty string"
    if len(name) > MAX_CHART_NAME or not CHART_NAME.match(name) or name in (".", ".."):
        return f"{name!r} is not a Helm chart name: letters, digits, '.', '_', '-', at most {MAX_CHART_NAME}"
    return None


def version_problem(version: object) -> str | None:
    """A chart version as written: semver (a leading `v` allowed, as Helm does), nothing around it."""
    if not isinstance(version, str) or not version:
        return "must be a non-empty string"
    if any(ch.isspace() for ch in version):
        return f"{version!r} contains whitespace"
    try:
        parse_version(version)
    except VersionError as err:
        return str(err)
    return None


def normalize_text(data: bytes, source: str) -> str:
    """UTF-8 without a byte-order mark and with LF line ends: what Git stores and the scripts read."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ArchiveError(f"{source} is not UTF-8") from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def read_metadata(data: bytes, source: str) -> dict[str, Any]:
    """Chart.yaml as a mapping with a valid name and version; one document, no aliases or duplicates."""
    try:
        meta = safe_yaml.load(normalize_text(data, source), source)
    except safe_yaml.UntrustedYamlError as err:
        raise ArchiveError(str(err)) from None
    if not isinstance(meta, dict):
        raise ArchiveError(f"{source} must be a YAML mapping")
    if problem := chart_name_problem(meta.get("name")):
        raise ArchiveError(f"{source}: name {problem}")
    if problem := version_problem(meta.get("version")):
        raise ArchiveError(f"{source}: version {problem}")
    return meta


def set_identity(data: bytes, source: str, *, name: str, version: str, annotations: Mapping[str, str]) -> str:
    """Chart.yaml with `name` and `version` replaced and `annotations` added.

    The file is edited line by line, keeping the upstream comments, when its top level is a block
    mapping; the edit is then read back and must equal the intended metadata. Any other form (a
    flow mapping, a multi-line plain scalar) is written anew as a block mapping: ci/release and
    ci/version read `^name:`/`^version:` lines, so those lines must exist.
    """
    meta = read_metadata(data, source)
    text = normalize_text(data, source)
    wanted = {**meta, "name": name, "version": version}
    existing = meta.get("annotations")
    if existing is not None and not isinstance(existing, dict):
        raise ArchiveError(f"{source}: annotations must be a mapping")
    wanted["annotations"] = {**(existing or {}), **annotations}
    edited = _edit_lines(text, name, version, annotations)
    if edited is not None:
        try:
            if safe_yaml.load(edited, source) == wanted:
                return edited
        except safe_yaml.UntrustedYamlError:
            pass
    return dump_for_helm(wanted)


def _edit_lines(text: str, name: str, version: str, annotations: Mapping[str, str]) -> str | None:
    for key, value in (("name", name), ("version", version)):
        pattern = _TOP_LINE[key]
        if len(pattern.findall(text)) != 1:
            return None
        text = pattern.sub(f"{key}: {yaml_scalar(value)}", text, count=1)
    lines = "".join(f"  {k}: {yaml.safe_dump(v, default_style=chr(34)).strip()}\n" for k, v in annotations.items())
    m = _ANNOTATIONS_BLOCK.search(text)
    if m:
        return text[: m.end()] + lines + text[m.end() :]
    if re.search(r"^annotations:", text, re.M):
        return None  # an inline mapping: written anew
    return text.rstrip("\n") + "\nannotations:\n" + lines
