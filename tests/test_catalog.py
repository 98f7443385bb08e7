from pathlib import Path

import pytest
import yaml

from charts_catalog import BUILTIN_DIR, CatalogError, load_catalog, load_dir, parse_entry


def test_builtin_catalog_has_the_promised_offerings() -> None:
    catalog = load_catalog()
    for name in ("mongodb", "postgresql", "redis", "cert-manager", "kube-prometheus-stack", "grafana", "webapp"):
        assert name in catalog
    assert catalog["mongodb"].source.kind == "oci"
    assert catalog["mongodb"].source.repo == "oci://registry-1.docker.io/bitnamicharts"
    assert catalog["grafana"].source.repo == "https://grafana-community.github.io/helm-charts"
    webapp = catalog["webapp"]
    assert webapp.source.kind == "template"
    assert webapp.source.template_dir == BUILTIN_DIR / "templates" / "webapp"


def write(tmp: Path, name: str, doc: object) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc), encoding="utf-8")
    return path


GOOD = {"name": "kafka", "source": {"repo": "https://charts.example.com", "chart": "kafka", "version": ">=1.0.0"}}


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ("name: [unclosed", "not valid YAML"),
        (["a list"], "must be a YAML mapping"),
        ({**GOOD, "name": "Kafka_1"}, "field 'name'"),
        ({**GOOD, "name": "other"}, "name the file other.yaml"),
        ({**GOOD, "extra": 1}, "field 'extra'"),
        ({"name": "kafka"}, "field 'source'"),
        ({**GOOD, "source": {"chart": "kafka", "version": "*"}}, "field 'source.repo'"),
        ({**GOOD, "source": {**GOOD["source"], "repo": "ftp://x"}}, "field 'source.repo'"),
        ({**GOOD, "source": {**GOOD["source"], "repo": "oci://"}}, "has no host"),
        ({**GOOD, "source": {**GOOD["source"], "chart": "../evil"}}, "field 'source.chart'"),
        ({**GOOD, "source": {**GOOD["source"], "version": "newest"}}, "field 'source.version'"),
        ({**GOOD, "source": {"repo": "https://x", "chart": "kafka"}}, "field 'source.version'"),
        ({**GOOD, "source": {**GOOD["source"], "tag": 1}}, "field 'source.tag'"),
        ({**GOOD, "source": {"repo": "template:nope"}}, "no Chart.yaml"),
        ({**GOOD, "source": {"repo": "template:../../etc"}}, "must name a directory under"),
        ({**GOOD, "defaults": {"namespace": "kafka"}}, "field 'defaults.namespace' is no longer read"),
        ({**GOOD, "sync": {"prune": "no"}}, "field 'sync.prune'"),
        ({**GOOD, "sync": {"prune": "false"}}, "field 'sync.prune'"),
        ({**GOOD, "sync": {"selfHeal": False}}, "field 'sync.selfHeal'"),
        ({**GOOD, "sync": {"serverSideApply": "true"}}, "field 'sync.serverSideApply'"),
        ({**GOOD, "sync": {"serverSideApply": 1}}, "field 'sync.serverSideApply'"),
        ({**GOOD, "sync": [1]}, "field 'sync'"),
        ({**GOOD, "defaults": {"values": [1]}}, "field 'defaults.values'"),
    ],
)
def test_malformed_entries_name_file_and_field(tmp_path: Path, doc: object, field: str) -> None:
    path = write(tmp_path, "kafka", doc)
    with pytest.raises(CatalogError) as err:
        load_dir(tmp_path)
    assert str(path) in str(err.value)
    assert field in str(err.value)


def test_extra_dir_overrides_builtin_and_adds(tmp_path: Path) -> None:
    write(tmp_path, "kafka", GOOD)
    write(tmp_path, "redis", {**GOOD, "name": "redis", "source": {**GOOD["source"], "chart": "redis"}})
    catalog = load_catalog(tmp_path)
    assert catalog["kafka"].source.repo == "https://charts.example.com"
    assert catalog["redis"].source.repo == "https://charts.example.com"
    assert catalog["mongodb"].source.kind == "oci"


def test_missing_extra_dir(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="does not exist"):
        load_catalog(tmp_path / "nope")


def test_entry_defaults(tmp_path: Path) -> None:
    entry = parse_entry(tmp_path / "kafka.yaml", GOOD)
    assert entry.sync.prune == "true"
    assert dict(entry.values) == {}


@pytest.mark.parametrize(
    "repo",
    [
        "http://robot:s3cr3t-pw@charts.example.com/stable",
        "https://s3cr3t-pw@charts.example.com",
        "oci://robot:s3cr3t-pw@registry.example.com/ns",
        "HTTPS://robot:s3cr3t-pw@charts.example.com",
        "ftp://robot:s3cr3t-pw@charts.example.com",
        "https:/robot:s3cr3t-pw@charts.example.com",
    ],
)
def test_userinfo_in_a_source_url_is_refused_without_repeating_it(tmp_path: Path, repo: str) -> None:
    path = write(tmp_path, "kafka", {**GOOD, "source": {**GOOD["source"], "repo": repo}})
    with pytest.raises(CatalogError) as err:
        load_dir(tmp_path)
    message = str(err.value)
    assert str(path) in message and "source.repo" in message and "chartRegistryCredentials" in message
    assert "s3cr3t" not in message and "robot" not in message


@pytest.mark.parametrize(
    ("source", "field"),
    [
        ({"chart": "kaf\nka"}, "source.chart"),
        ({"chart": "kaf$ka"}, "source.chart"),
        ({"chart": "a" * 251}, "source.chart"),
        ({"repo": "https://charts.example.com:99999"}, "invalid host or port"),
        ({"repo": "https://charts.exa\tmple.com"}, "has no host"),
    ],
)
def test_chart_names_outside_helms_charset_and_bad_hosts(tmp_path: Path, source: dict[str, str], field: str) -> None:
    """Helm's chart name rule: helm/helm pkg/chart/v2/util/create.go:38 `^[a-zA-Z0-9._-]+$`, 250 max."""
    write(tmp_path, "kafka", {**GOOD, "source": {**GOOD["source"], **source}})
    with pytest.raises(CatalogError, match=field):
        load_dir(tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "name: kafka\nsource: &s {repo: 'https://x', chart: kafka, version: '*'}\ndefaults: {values: {a: *s}}\n",
            "aliases",
        ),
        ("name: kafka\nname: kafka\nsource: {repo: 'https://x', chart: kafka, version: '*'}\n", "duplicate key"),
    ],
)
def test_catalog_yaml_without_aliases_or_duplicate_keys(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, "kafka", text)
    with pytest.raises(CatalogError, match=message):
        load_dir(tmp_path)


@pytest.mark.parametrize(("prune", "expected"), [(True, "true"), (False, "false"), ("confirm", "confirm")])
def test_sync_prune_setting(tmp_path: Path, prune: object, expected: str) -> None:
    assert parse_entry(tmp_path / "kafka.yaml", {**GOOD, "sync": {"prune": prune}}).sync.prune == expected


def test_stateful_builtin_entries_never_prune() -> None:
    # Charts that render PersistentVolumeClaims or CRDs: a new version that drops one must not
    # delete the user's data with it.
    catalog = load_catalog()
    for name in ("mongodb", "postgresql", "redis", "grafana", "kube-prometheus-stack", "cert-manager"):
        assert catalog[name].sync.prune == "false", name
    assert catalog["webapp"].sync.prune == "true"
