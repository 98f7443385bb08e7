"""Every bad input fails in parse_config with the key, the app and the fix named."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from charts_catalog import load_catalog
from scoutflo.config import OPTIONAL_KEYS, ConfigError, deep_merge, field_defaults, parse_config

ROOT = Path(__file__).resolve().parent.parent
CATALOG = load_catalog()
BASE: dict[str, Any] = {
    "scoutflo:tenant": "acme",
    "github:owner": "acme",
    "github:token": "t0ken",
    "aws:region": "eu-west-1",
    "scoutflo:clusterOidcIssuer": "https://oidc.eks.eu-west-1.amazonaws.com/id/X",
    "scoutflo:apps": [{"name": "web", "chart": "webapp"}],
}


def parse(**changes: Any) -> Any:
    raw = {**BASE, **{k.replace("__", ":"): v for k, v in changes.items()}}
    return parse_config({k: v for k, v in raw.items() if v is not None}, CATALOG)


def app(**fields: Any) -> list[dict[str, Any]]:
    return [{"name": "web", "chart": "webapp", **fields}]


def test_valid_minimal_config_gets_catalog_defaults() -> None:
    cfg = parse()
    (web,) = cfg.apps
    assert web.namespace == "web"
    assert web.target_revision == "*"
    assert web.mode == "vendor"
    assert web.values == {"replicaCount": 2}
    assert cfg.token_refresh_mode == "irsa"


def test_namespace_defaults_to_the_app_name_so_two_apps_of_one_chart_do_not_collide() -> None:
    cfg = parse(
        scoutflo__apps=[
            {"name": "shop", "chart": "webapp"},
            {"name": "blog", "chart": "webapp"},
            {"name": "cms", "chart": "webapp", "namespace": "content"},
        ]
    )
    assert [a.namespace for a in cfg.apps] == ["shop", "blog", "content"]


def test_apps_as_json_text_like_the_cli_passes_them() -> None:
    cfg = parse(scoutflo__apps='[{"name": "db", "chart": "mongodb", "version": ">=16.1.0 <17.0.0"}]')
    assert cfg.apps[0].version == ">=16.1.0 <17.0.0"


def test_values_deep_merge_over_catalog_defaults() -> None:
    cfg = parse(
        scoutflo__apps=[{"name": "db", "chart": "mongodb", "values": {"global": {"x": 1}, "image": {"tag": "8"}}}]
    )
    values = cfg.apps[0].values
    assert values["global"] == {"security": {"allowInsecureImages": True}, "x": 1}
    assert values["image"] == {"repository": "bitnamilegacy/mongodb", "tag": "8"}
    assert values["architecture"] == "replicaset"


def test_deep_merge_replaces_lists_and_copies() -> None:
    base = {"a": {"b": [1, 2]}, "c": 1}
    merged = deep_merge(base, {"a": {"b": [3]}})
    assert merged == {"a": {"b": [3]}, "c": 1}
    assert base == {"a": {"b": [1, 2]}, "c": 1}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"scoutflo__tenant": None}, ["'scoutflo:tenant'", "pulumi config set tenant"]),
        ({"scoutflo__tenant": "Acme Corp"}, ["'scoutflo:tenant'", "DNS-1123"]),
        ({"github__owner": None}, ["'github:owner'", "pulumi config set github:owner"]),
        ({"github__token": None}, ["'github:token'", "GITHUB_TOKEN"]),
        ({"aws__region": None}, ["'aws:region'"]),
        ({"scoutflo__apps": None}, ["'scoutflo:apps'"]),
        ({"scoutflo__apps": []}, ["'scoutflo:apps'", "non-empty list"]),
        ({"scoutflo__apps": "[not json"}, ["'scoutflo:apps'", "JSON"]),
        ({"scoutflo__apps": ["web"]}, ["apps[0]", "mapping"]),
        ({"scoutflo__apps": app(name="Web_App")}, ["apps[0]", "'name'", "lower-case"]),
        ({"scoutflo__apps": app(name="a" * 54)}, ["'name'", "at most 53"]),
        ({"scoutflo__apps": app(name="a--b")}, ["'name'", "single hyphens"]),
        ({"scoutflo__apps": [*app(), *app()]}, ["apps[1]", "(app 'web')", "unique"]),
        ({"scoutflo__apps": app(chart="oracle")}, ["(app 'web')", "'chart' 'oracle'", "catalogPath"]),
        ({"scoutflo__apps": app(version="newest")}, ["(app 'web')", "'version'", "'>=1.2.0 <2.0.0'"]),
        ({"scoutflo__apps": app(targetRevision="latest")}, ["(app 'web')", "'targetRevision'", "'1.2.3'"]),
        ({"scoutflo__apps": app(namespace="Prod NS")}, ["(app 'web')", "'namespace'"]),
        ({"scoutflo__apps": app(values=[1])}, ["(app 'web')", "'values'"]),
        ({"scoutflo__apps": app(mode="fork")}, ["(app 'web')", "'mode'", "umbrella"]),
        ({"scoutflo__apps": app(mode="umbrella")}, ["(app 'web')", "needs a public chart"]),
        ({"scoutflo__apps": app(replicas=3)}, ["(app 'web')", "unknown key 'replicas'"]),
        ({"scoutflo__ecrPrefix": "/charts/"}, ["'scoutflo:ecrPrefix'"]),
        ({"scoutflo__argocdNamespace": "Argo"}, ["'scoutflo:argocdNamespace'"]),
        ({"scoutflo__tokenRefreshMode": "vault"}, ["'scoutflo:tokenRefreshMode'", "'static'"]),
        ({"scoutflo__clusterOidcIssuer": None}, ["'scoutflo:clusterOidcIssuer'", "describe-cluster"]),
        ({"scoutflo__tokenRefreshMode": "static"}, ["'scoutflo:refresherAccessKeyId'", "--secret"]),
        ({"scoutflo__githubOidcProviderArn": "arn:aws:iam::1:role/x"}, ["'scoutflo:githubOidcProviderArn'"]),
        ({"scoutflo__refreshSchedule": "hourly"}, ["'scoutflo:refreshSchedule'", "cron"]),
        ({"scoutflo__revisionHistoryLimit": "ten"}, ["'scoutflo:revisionHistoryLimit'", "integer"]),
        ({"scoutflo__revisionHistoryLimit": "0"}, ["'scoutflo:revisionHistoryLimit'", "at least 1"]),
        ({"github__baseUrl": "https://ghe.example.com/api/v3/"}, ["'github:baseUrl'", "config rm github:baseUrl"]),
    ],
)
def test_bad_input_is_named(changes: dict[str, Any], expected: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        parse(**changes)
    for text in expected:
        assert text in str(err.value)


def test_chart_registry_credentials() -> None:
    creds = '{"registry.example.com": {"username": "u", "password": "TOPSECRET"}}'
    cfg = parse(scoutflo__chartRegistryCredentials=creds)
    assert cfg.chart_registry_credentials == {"registry.example.com": ("u", "TOPSECRET")}
    assert "TOPSECRET" not in repr(cfg)
    for bad in ('{"h": {"username": "u"}}', "[1]", "{nope"):
        with pytest.raises(ConfigError, match="chartRegistryCredentials") as err:
            parse(scoutflo__chartRegistryCredentials=bad)
        assert "TOPSECRET" not in str(err.value)


def test_secret_values_never_appear_in_errors() -> None:
    with pytest.raises(ConfigError) as err:
        parse(scoutflo__tokenRefreshMode="static", scoutflo__refresherAccessKeyId="AKIASECRETVALUE")
    assert "AKIASECRETVALUE" not in str(err.value)


def test_static_mode_needs_no_cluster_issuer() -> None:
    cfg = parse(
        scoutflo__tokenRefreshMode="static",
        scoutflo__clusterOidcIssuer=None,
        scoutflo__refresherAccessKeyId="id",
        scoutflo__refresherSecretAccessKey="key",
    )
    assert cfg.token_refresh_mode == "static"


def test_pulumi_yaml_declares_every_key_with_the_same_defaults() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    declared = project["config"]
    assert project["name"] == "scoutflo"
    defaults = field_defaults()
    for key, attr in OPTIONAL_KEYS.items():
        assert declared[key]["description"]
        assert declared[key]["default"] == defaults[attr], key
    for key in ("tenant", "apps", "refresherAccessKeyId", "refresherSecretAccessKey", "chartRegistryCredentials"):
        assert declared[key]["description"]
        assert "default" not in declared[key]
    assert declared["refresherSecretAccessKey"]["secret"] is True


def test_a_catalog_description_too_long_for_githubs_limit_is_refused_before_any_resource() -> None:
    """GitHub refuses a repository description over 350 characters (scoutflo/github/adoption.py
    GITHUB_DESCRIPTION_MAX); with the suffix and a 40-character tenant's mark, the longest entry
    text that fits is 350 - 91 characters."""
    import dataclasses

    from scoutflo.github.adoption import GITHUB_DESCRIPTION_MAX, app_description, repo_description

    tenant = "t" * 40
    fits = 350 - len(repo_description(app_description(""), tenant))
    for length, ok in ((fits, True), (fits + 1, False)):
        entry = dataclasses.replace(CATALOG["webapp"], description="d" * length)
        raw = {**BASE, "scoutflo:tenant": tenant}
        if ok:
            (web,) = parse_config(raw, {**CATALOG, "webapp": entry}).apps
            assert len(repo_description(app_description(web.entry.description), tenant)) == GITHUB_DESCRIPTION_MAX
        else:
            with pytest.raises(ConfigError, match=r"'webapp' .*'description' is 1 characters too long.*'web'"):
                parse_config(raw, {**CATALOG, "webapp": entry})


@pytest.mark.parametrize("text", ["Web app\n", "Web\tapp", "two\nlines"])
def test_a_catalog_description_with_a_line_break_is_refused_before_any_resource(text: str) -> None:
    """GitHub refuses control characters in a repository description (422 "description control
    characters are not allowed"); a YAML block scalar (`description: |`) ends with a newline."""
    import dataclasses

    entry = dataclasses.replace(CATALOG["webapp"], description=text)
    with pytest.raises(ConfigError, match=r"'webapp' .*'description' holds a line break"):
        parse_config(BASE, {**CATALOG, "webapp": entry})
