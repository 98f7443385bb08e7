"""The real __main__.py under recording mocks: structure, options, determinism, secrets, errors."""

import json
from collections import Counter
from pathlib import Path

import pytest

from automation import render
from charts_catalog import load_catalog
from scoutflo.github.adoption import app_description, repo_description
from tests.conftest import of_type, run_main

COMPONENT_TOKENS = {
    "components.chart_repo.ChartRepo": "scoutflo:index:ChartRepo",
    "components.chart_registry.ChartRegistry": "scoutflo:index:ChartRegistry",
    "components.argo_app.ArgoApp": "scoutflo:index:ArgoApp",
    "components.registry_access.RegistryAccess": "scoutflo:index:RegistryAccess",
    "components.ci_role.CiRole": "scoutflo:index:CiRole",
    "components.github_oidc.GithubOidc": "scoutflo:index:GithubOidc",
}


def test_type_tokens_are_permanent(dev_recording: render.Recording) -> None:
    # A token is part of every URN: changing one replaces resources. Pin them all.
    registered = {r.type for r in dev_recording.resources if not r.custom}
    assert registered == set(COMPONENT_TOKENS.values())


def per_app_custom(recording: render.Recording) -> dict[str, Counter[str]]:
    apps = {r.name for r in of_type(recording, "scoutflo:index:ChartRepo")}
    owner = render.app_of(recording, apps)
    counts: dict[str, Counter[str]] = {}
    for r in recording.resources:
        if r.custom:
            counts.setdefault(owner[r.urn], Counter())[r.type] += 1
    return counts


def test_every_app_gets_repo_registry_role_and_application(dev_recording: render.Recording) -> None:
    counts = per_app_custom(dev_recording)
    expected = Counter(
        {
            render.REPOSITORY_TYPE: 1,
            "github:index/branchProtection:BranchProtection": 1,
            "github:index/branchDefault:BranchDefault": 1,
            "pulumi-python:dynamic:Resource": 1,
            "aws:ecr/repository:Repository": 1,
            "aws:iam/role:Role": 1,
            "aws:iam/rolePolicy:RolePolicy": 1,
            "kubernetes:argoproj.io/v1alpha1:Application": 1,
        }
    )
    for app in ("storefront", "admin"):
        assert counts[app] == expected, app
    # One credential and one refresher for the whole tenant, not one per app.
    shared = counts["shared"]
    assert shared["kubernetes:core/v1:Secret"] == 1
    assert shared["kubernetes:batch/v1:CronJob"] == 1
    assert shared["kubernetes:batch/v1:Job"] == 1
    assert shared["aws:iam/openIdConnectProvider:OpenIdConnectProvider"] == 1


def test_resources_per_app_do_not_grow_with_apps() -> None:
    apps = [{"name": f"app-{i}", "chart": "webapp"} for i in range(5)]
    counts = per_app_custom(run_main({"scoutflo:apps": apps}))
    assert len({sum(counts[f"app-{i}"].values()) for i in range(5)}) == 1


def test_user_data_is_never_deleted(dev_recording: render.Recording) -> None:
    for ecr in of_type(dev_recording, "aws:ecr/repository:Repository"):
        assert ecr.retain_on_delete, ecr.name
        assert ecr.inputs["imageTagMutability"] == "IMMUTABLE"
        assert ecr.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
        assert ecr.inputs["forceDelete"] is False
    # AppRepository archives on delete and creates private, auto_init'ed repositories: its
    # provider's behaviour, tested against the GitHub stand-in in tests/test_github_repo.py.
    repos = of_type(dev_recording, render.REPOSITORY_TYPE)
    assert {r.inputs["tenant"] for r in repos} == {"acme"}
    # Both apps are of the catalog's webapp: the description is composed exactly as
    # scoutflo/config.py measures it against GitHub's 350 characters.
    webapp = repo_description(app_description(load_catalog()["webapp"].description), "acme")
    for repo in repos:
        assert repo.inputs["description"] == webapp and webapp.endswith(" (Scoutflo tenant acme)")
        assert repo.inputs["token"] == render.SECRET
    (oidc,) = of_type(dev_recording, "aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert oidc.retain_on_delete


def test_names_line_up(dev_recording: render.Recording) -> None:
    ecr = {r.inputs["name"] for r in of_type(dev_recording, "aws:ecr/repository:Repository")}
    repos = {r.inputs["name"] for r in of_type(dev_recording, render.REPOSITORY_TYPE)}
    assert repos == {"storefront", "admin"}
    assert ecr == {f"scoutflo/{name}" for name in repos}


def test_main_is_protected_after_the_first_commit(dev_recording: render.Recording) -> None:
    commits = {r.urn: r for r in of_type(dev_recording, "pulumi-python:dynamic:Resource")}
    for protection in of_type(dev_recording, "github:index/branchProtection:BranchProtection"):
        assert protection.inputs["pattern"] == "main"
        assert protection.inputs["requiredStatusChecks"] == [{"contexts": ["lint"], "strict": True}]
        assert protection.inputs["requiredPullRequestReviews"][0]["requiredApprovingReviewCount"] == 0
        assert protection.inputs["allowsForcePushes"] is False
        assert any(dep in commits for dep in protection.depends_on), "protection must wait for the commit"
    for commit in commits.values():
        if commit.name.endswith("-initial"):
            # The first push runs the release: the role (and its push policy) must exist first.
            app = commit.name.removesuffix("-initial")
            assert {f"::{app}-ci-role", f"::{app}-ci-push"} <= {"::" + d.rsplit("::", 1)[1] for d in commit.depends_on}
        assert any("BranchDefault" in d for d in commit.depends_on), "main must exist under that name"
    for default in of_type(dev_recording, "github:index/branchDefault:BranchDefault"):
        assert default.inputs["branch"] == "main" and default.inputs["rename"] is True


def test_release_settings_are_a_committed_file_not_actions_variables(dev_recording: render.Recording) -> None:
    assert not of_type(dev_recording, "github:index/actionsVariable:ActionsVariable"), "3 GitHub writes per app"
    initial = next(r for r in of_type(dev_recording, "pulumi-python:dynamic:Resource") if r.name == "admin-initial")
    assert initial.inputs["files"]["ci/settings.env"].splitlines()[-3:] == [
        "CHART_REGISTRY=oci://123456789012.dkr.ecr.eu-west-1.amazonaws.com/scoutflo",
        "AWS_REGION=eu-west-1",
        "AWS_ROLE_ARN=arn:aws:iam::123456789012:role/scoutflo-acme-admin-ci",
    ]
    assert "ci/settings" in initial.inputs["executable"] and "ci/settings.env" not in initial.inputs["executable"]


def test_ci_role_trusts_only_main_of_its_repo(dev_recording: render.Recording) -> None:
    roles = {r.inputs["name"]: r for r in of_type(dev_recording, "aws:iam/role:Role")}
    trust = json.loads(roles["scoutflo-acme-admin-ci"].inputs["assumeRolePolicy"])
    (stmt,) = trust["Statement"]
    assert stmt["Principal"]["Federated"].endswith(":oidc-provider/token.actions.githubusercontent.com")
    repo_id = render.fake_outputs(render.REPOSITORY_TYPE, "admin-repo", {"name": "admin"}, "x")["repo_id"]
    owner_id = render.fake_invoke("github:index/getUser:getUser", {"username": "acme-gitops"}, "x")["id"]
    # Only the id-based subject, exactly: no name-only form, no wildcard (name recycling).
    subject = f"repo:acme-gitops@{owner_id}/admin@{repo_id}:ref:refs/heads/main"
    assert stmt["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": subject,
        }
    }
    policies = {r.name: json.loads(r.inputs["policy"]) for r in of_type(dev_recording, "aws:iam/rolePolicy:RolePolicy")}
    push = policies["admin-ci-push"]["Statement"]
    assert push[0] == {"Sid": "Token", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}
    assert push[1]["Resource"] == ["arn:aws:ecr:eu-west-1:123456789012:repository/scoutflo/admin"]
    assert "ecr:PutImage" in push[1]["Action"]
    reader = policies["registry-access-reader-ecr"]["Statement"]
    assert "ecr:PutImage" not in reader[1]["Action"]
    assert len(reader[1]["Resource"]) == 2


def test_adopting_an_existing_github_oidc_provider() -> None:
    arn = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
    recording = run_main({"scoutflo:githubOidcProviderArn": arn})
    assert not of_type(recording, "aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    role = next(r for r in of_type(recording, "aws:iam/role:Role") if r.inputs["name"].endswith("-ci"))
    assert json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Principal"]["Federated"] == arn


def test_exports(dev_recording: render.Recording) -> None:
    assert dev_recording.outputs["tenant"] == "acme"
    assert dev_recording.outputs["apps"]["admin"] == {
        "repoUrl": "https://github.com/acme-gitops/admin",
        "ecrRepositoryUrl": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/scoutflo/admin",
        "argocdApp": "admin",
    }


def test_render_is_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    render.write(render.run_program("dev"), first)
    render.write(render.run_program("dev"), second)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel


def test_secrets_never_reach_rendered_files(tmp_path: Path) -> None:
    recording = run_main(
        {
            "github:token": "ghp_SUPERSECRET",
            "scoutflo:tokenRefreshMode": "static",
            "scoutflo:refresherAccessKeyId": "AKIA_SECRET_ID",
            "scoutflo:refresherSecretAccessKey": "wJalrXUtnFEMIsecretKEY",
        }
    )
    render.write(recording, tmp_path)
    blob = "\n".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    for secret in ("ghp_SUPERSECRET", "AKIA_SECRET_ID", "wJalrXUtnFEMIsecretKEY", "render-fake-ecr-token"):
        assert secret not in blob
    assert "[secret]" in blob
    keys = next(r for r in of_type(recording, "kubernetes:core/v1:Secret") if "aws" in r.name)
    assert keys.inputs["stringData"] == {"AWS_ACCESS_KEY_ID": "[secret]", "AWS_SECRET_ACCESS_KEY": "[secret]"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"scoutflo:apps": [{"name": "x", "chart": "nope"}]}, "'chart' 'nope' is not in the catalog"),
        ({"scoutflo:apps": [{"name": "x", "chart": "webapp"}, {"name": "x", "chart": "redis"}]}, "unique"),
        ({"scoutflo:catalogPath": "/nonexistent"}, "does not exist"),
        ({"scoutflo:apps": [{"name": "Shop_DB", "chart": "webapp"}]}, "'name' must be lower-case"),
        ({"scoutflo:apps": [{"name": "x", "chart": "webapp", "targetRevision": "latest"}]}, "'targetRevision'"),
        ({"scoutflo:apps": [{"name": "x", "chart": "redis", "version": "newest"}]}, "'version'"),
        ({"scoutflo:tokenRefreshMode": "static"}, "refresherAccessKeyId"),
    ],
)
def test_bad_input_fails_before_any_resource(overrides: dict[str, object], message: str) -> None:
    import pulumi

    recording = render.Recording(region="x")
    with pytest.raises(pulumi.RunError, match=message):
        run_main(overrides, recording=recording)
    assert recording.resources == []


def test_malformed_catalog_file_fails_before_any_resource(tmp_path: Path) -> None:
    import pulumi

    (tmp_path / "kafka.yaml").write_text("name: kafka\nsource:\n  repo: ftp://nope\n")
    recording = render.Recording(region="x")
    with pytest.raises(pulumi.RunError, match=r"kafka\.yaml: field 'source\.repo'"):
        run_main({"scoutflo:catalogPath": str(tmp_path)}, recording=recording)
    assert recording.resources == []


def test_missing_required_config_fails_before_any_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    import pulumi

    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    recording = render.Recording(region="x")
    with pytest.raises(pulumi.RunError, match="'scoutflo:tenant'"):
        run_main(drop=("scoutflo:tenant",), recording=recording)
    assert recording.resources == []


def test_a_failing_run_still_shows_what_it_registered() -> None:
    """The 'nothing registered' checks above can fail: a program that fails late leaves resources."""
    import pulumi
    import pulumi_aws as aws

    def program() -> None:
        aws.ecr.Repository("early", name="early")
        raise pulumi.RunError("late failure")

    recording = render.Recording(region="x")
    with pytest.raises(pulumi.RunError, match="late failure"):
        render.run(program, {"aws:region": "x"}, recording=recording)
    assert [r.name for r in recording.resources] == ["early"]
