"""Shared and retained things are adopted, not created twice: the account's GitHub OIDC provider,
an app's archived GitHub repository and its retained ECR repository. The look-ups answer like the
real providers do (absent OIDC provider: an error; absent GitHub repo: empty attributes; ECR: a
name list); what the engine does with `import_` is ported from pulumi/pulumi below."""

from __future__ import annotations

import json
import runpy
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from automation import render
from components.app_repository import AppRepositoryProvider
from components.repo_commit import RepoCommitProvider
from scoutflo.aws.adoption import TENANT_TAG
from scoutflo.github.adoption import READOPTED_FILES, tenant_mark, tenant_topic
from tests.conftest import MAIN, dev_config, of_type, run_main

OIDC_TYPE = "aws:iam/openIdConnectProvider:OpenIdConnectProvider"
ECR_TYPE = "aws:ecr/repository:Repository"
REPO_TYPE = render.REPOSITORY_TYPE
MARK = tenant_mark("acme")  # the dev stack's tenant
OIDC_ARN = f"arn:aws:iam::{render.FAKE_ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
Answer = Callable[[Mapping[str, Any]], dict[str, Any]]


def engine_imports(old_id: str | None, old_import_id: str, goal_id: str) -> bool:
    """pulumi/pulumi pkg/resource/deploy/step_generator.go:1102-1113: an import happens when the
    goal has an id and the resource is not in state, or its stored import id (else its id)
    differs from the goal's."""
    if not goal_id:
        return False
    return old_id is None or (old_import_id or old_id) != goal_id


def oidc_present(client_ids: tuple[str, ...] = ("sts.amazonaws.com",), tags: dict[str, str] | None = None) -> Answer:
    return lambda args: {
        "arn": OIDC_ARN,
        "id": OIDC_ARN,
        "url": "token.actions.githubusercontent.com",
        "clientIdLists": list(client_ids),
        "thumbprintLists": ["6938fd4d98bab03faadb97b34396831e3780aea1"],
        "tags": tags or {},
    }


def oidc_fails(message: str) -> Answer:
    def answer(args: Mapping[str, Any]) -> dict[str, Any]:
        raise render.NotFound(message)  # the mock engine turns it into the invoke's gRPC error

    return answer


def repos(**state: str) -> Answer:
    """GitHub repositories by name: 'archived' (ours, as an app's removal leaves it: archiving
    keeps the description), 'ours' (our mark), 'topic' (an earlier version's: our topic, no mark),
    'foreign' (live, no mark of ours), 'stranger-archive' (archived, no mark), 'other-tenant'
    (archived, another tenant's mark), 'quoted' (live, our mark inside the description, not at its
    end) or 'renamed' (GitHub redirects the old name to a renamed repo); others absent."""

    def answer(args: Mapping[str, Any]) -> dict[str, Any]:
        name = args["fullName"].split("/")[1]
        if name not in state:
            return {"id": "", "fullName": args["fullName"]}
        # data_source_github_repository.go sets name and full_name from the API's answer, which
        # for a renamed repo is the one GitHub redirected to (go-github follows the 301).
        real = f"{name}-old" if state[name] == "renamed" else name
        description, topics = {
            "ours": (f"Shop {MARK}", ["team-web"]),
            "archived": (f"Shop {MARK}", ["team-web"]),
            "topic": ("Shop", [tenant_topic("acme")]),
            "foreign": ("Our website", ["website"]),
            "stranger-archive": ("Old shop", ["legacy"]),
            "other-tenant": (f"Shop {tenant_mark('globex')}", []),
            "renamed": (f"Shop {MARK}", []),
            "quoted": (f"Fork of {MARK}, now bob's", []),
        }[state[name]]
        return {
            "id": name,
            "name": real,
            "fullName": f"{args['fullName'].split('/')[0]}/{real}",
            "repoId": 4242,
            "nodeId": "R_x",
            "archived": state[name] in ("archived", "other-tenant", "stranger-archive"),
            "description": description,
            "topics": topics,
        }

    return answer


def as_left_by(recording: render.Recording) -> Answer:
    """GitHub's answer after `recording`'s repository inputs were applied."""
    left = {r.inputs["name"]: r for r in of_type(recording, REPO_TYPE)}

    def answer(args: Mapping[str, Any]) -> dict[str, Any]:
        name = args["fullName"].split("/")[1]
        repo = left[name]
        # The ids are the ones AppRepository's create answered (render.fake_outputs).
        outs = render.fake_outputs(REPO_TYPE, repo.name, repo.inputs, "eu-west-1")
        return {
            "id": name,
            "name": name,
            "fullName": args["fullName"],
            **repo.inputs,
            "repoId": outs["repo_id"],
            "nodeId": outs["node_id"],
        }

    return answer


def ecr(*names: str, tenant: str = "acme") -> dict[str, Answer]:
    """The region's ECR repositories, each tagged as `tenant`'s (and by a team)."""
    return {
        render.ECR_LIST: lambda args: {"id": "eu-west-1", "names": list(names)},
        render.ECR_LOOKUP: lambda args: {
            "id": args["name"],
            "name": args["name"],
            "tags": {TENANT_TAG: tenant, "team": "web"} if tenant else {},
        },
    }


def cloud(ecr: dict[str, Answer] | None = None, **answers: Answer) -> dict[str, Answer]:
    tokens = {"oidc": render.OIDC_LOOKUP, "repos": render.REPO_LOOKUP}
    return {**(ecr or {}), **{tokens[k]: v for k, v in answers.items()}}


def by_name(recording: render.Recording, type_: str) -> dict[str, render.Registered]:
    return {r.name: r for r in of_type(recording, type_)}


# ---------------------------------------------------------------- the account's OIDC provider


def test_absent_oidc_provider_is_created_and_kept(dev_recording: render.Recording) -> None:
    (oidc,) = of_type(dev_recording, OIDC_TYPE)
    assert oidc.import_id == ""
    assert oidc.retain_on_delete
    assert oidc.inputs["clientIdLists"] == ["sts.amazonaws.com"]
    assert (render.OIDC_LOOKUP, {"url": "https://token.actions.githubusercontent.com"}) in dev_recording.invokes


def test_present_oidc_provider_is_adopted_keeping_other_audiences_and_tags() -> None:
    recording = run_main(cloud=cloud(oidc=oidc_present(("other.example",), {"owner": "platform"})))
    (oidc,) = of_type(recording, OIDC_TYPE)
    assert oidc.import_id == OIDC_ARN and oidc.retain_on_delete
    assert oidc.inputs["clientIdLists"] == ["other.example", "sts.amazonaws.com"]
    assert oidc.inputs["tags"] == {"owner": "platform"}
    assert "thumbprintLists" not in oidc.inputs  # Optional+Computed: left to AWS, no diff
    for role in of_type(recording, "aws:iam/role:Role"):
        if role.inputs["name"].endswith("-ci"):
            assert OIDC_ARN in role.inputs["assumeRolePolicy"]


def test_the_stack_that_created_the_provider_does_not_flip_to_adopting_it() -> None:
    first = run_main()  # the account has none: this stack creates it
    (created,) = of_type(first, OIDC_TYPE)
    created_id = render.fake_id(OIDC_TYPE, created.name, created.inputs, {"arn": OIDC_ARN})
    second = run_main(cloud=cloud(oidc=oidc_present()))  # now the look-up finds it
    (again,) = of_type(second, OIDC_TYPE)
    # Same resource, same inputs; the import id is the id the engine already holds: no import.
    assert again.urn == created.urn and again.inputs == created.inputs
    assert not engine_imports(old_id=created_id, old_import_id="", goal_id=again.import_id)
    # A second stack in the account has no old state: it imports, and from then on holds it.
    assert engine_imports(old_id=None, old_import_id="", goal_id=again.import_id)
    assert not engine_imports(old_id=OIDC_ARN, old_import_id=OIDC_ARN, goal_id=again.import_id)


def test_oidc_lookup_failing_otherwise_stops_before_anything_is_registered() -> None:
    recording = render.Recording(region="eu-west-1")
    denied = "reading IAM OIDC Provider (https://token.actions.githubusercontent.com): AccessDenied"
    with pytest.raises(Exception, match="iam:ListOpenIDConnectProviders"):
        run_main(recording=recording, cloud=cloud(oidc=oidc_fails(denied)))
    assert not recording.resources


@pytest.mark.parametrize(
    "arn",
    [
        f"{OIDC_ARN}/extra",  # another issuer under the host: its sub/aud keys are not ours
        f"{OIDC_ARN} ",
        OIDC_ARN.replace("arn:aws:", "arn:awsx:"),
        OIDC_ARN.replace(render.FAKE_ACCOUNT, "12345"),
        OIDC_ARN.replace(":iam::", ":iam:eu-west-1:"),
        "arn:aws:iam::123456789012:role/x:oidc-provider/token.actions.githubusercontent.com",
    ],
)
def test_odd_configured_oidc_arns_are_refused(arn: str) -> None:
    recording = render.Recording(region="eu-west-1")
    with pytest.raises(Exception, match="scoutflo:githubOidcProviderArn"):
        run_main({"scoutflo:githubOidcProviderArn": arn}, recording=recording)
    assert not recording.resources


def test_configured_oidc_arn_skips_the_lookup() -> None:
    recording = run_main({"scoutflo:githubOidcProviderArn": OIDC_ARN})
    assert not of_type(recording, OIDC_TYPE)
    assert all(token != render.OIDC_LOOKUP for token, _ in recording.invokes)


# ---------------------------------------------------------------- app repositories kept by a removal


def test_new_app_creates_its_repositories(dev_recording: render.Recording) -> None:
    for type_ in (REPO_TYPE, ECR_TYPE):
        assert all(r.import_id == "" for r in of_type(dev_recording, type_))
    for repo in of_type(dev_recording, REPO_TYPE):
        assert repo.inputs["description"].endswith(f" {MARK}")


def test_app_added_again_adopts_and_unarchives_its_repo_and_keeps_its_registry() -> None:
    recording = run_main(cloud=cloud(repos=repos(storefront="archived"), ecr=ecr("scoutflo/storefront", "other")))
    gh, registries = by_name(recording, REPO_TYPE), by_name(recording, ECR_TYPE)
    # AppRepository's create finds it, checks the mark again and unarchives it with one write
    # (tests/test_github_repo.py); its goal is the one a new app's repository has, with the ids
    # the look-up found (known in a preview: test_preview_of_a_repository_update_keeps_its_ids_known).
    new = by_name(run_main(), REPO_TYPE)["storefront-repo"]
    assert gh["storefront-repo"].inputs == {**new.inputs, "repo_id": 4242, "node_id": "R_x"}
    assert gh["storefront-repo"].import_id == ""
    assert registries["storefront-ecr"].import_id == "scoutflo/storefront"
    assert registries["storefront-ecr"].retain_on_delete
    assert registries["storefront-ecr"].inputs["tags"] == {TENANT_TAG: "acme", "team": "web"}
    # Its content is the user's: the first commit adds a note instead of the scaffold (which
    # would overwrite the chart and pipeline on main); the new app gets the scaffold.
    trees = render.repo_trees(recording)
    assert set(trees["storefront"]) == set(READOPTED_FILES)
    assert "chart/Chart.yaml" in trees["admin"]
    # The other app is new.
    assert gh["admin-repo"].import_id == "" and registries["admin-ecr"].import_id == ""


def test_a_repository_of_an_earlier_version_is_recognised_by_its_topic() -> None:
    # Stacks from before AppRepository marked their repositories with the topic only.
    recording = run_main(cloud=cloud(repos=repos(storefront="topic")))
    assert "storefront-repo" in by_name(recording, REPO_TYPE)
    assert "chart/Chart.yaml" in render.repo_trees(recording)["storefront"]  # live: not re-adopted


def test_destroyed_stack_deployed_again_converges() -> None:
    everything = cloud(
        oidc=oidc_present(),
        repos=repos(storefront="archived", admin="archived"),
        ecr=ecr("scoutflo/storefront", "scoutflo/admin"),
    )
    first = run_main(cloud=everything)
    assert all(r.import_id for t in (OIDC_TYPE, ECR_TYPE) for r in of_type(first, t))
    # The next run's look-up sees each repo as the first run left it (its inputs applied): it
    # must recognise them as ours, give the same goals, and the engine must not import again.
    settled = run_main(cloud={**everything, render.REPO_LOOKUP: as_left_by(first)})
    for a, b in zip(first.resources, settled.resources, strict=True):
        assert (a.urn, a.import_id) == (b.urn, b.import_id)
        if a.type == REPO_TYPE:
            olds = render.fake_outputs(a.type, a.name, a.inputs, "eu-west-1")
            assert not AppRepositoryProvider().diff(a.name, olds, b.inputs).changes, a.urn
        elif a.type == render.DYNAMIC_TYPE:
            # The first commit carried a note, later runs pass the scaffold: the commit's own
            # diff ignores file changes once it exists, so nothing is written again.
            assert not RepoCommitProvider().diff("id", a.inputs, b.inputs).changes, a.urn
        else:
            assert a.inputs == b.inputs, a.urn
        if b.import_id:
            assert not engine_imports(old_id=b.import_id, old_import_id=a.import_id, goal_id=b.import_id)


def test_adopted_registry_keeps_its_encryption() -> None:
    # terraform-provider-aws internal/service/ecr/repository.go: encryption_configuration, its
    # encryption_type and kms_key are ForceNew, and the engine refuses to replace a resource that
    # names an import id (pulumi/pulumi step_generator.go:1975-1996): a repository encrypted with
    # a KMS key, tagged by the user for adoption, would fail every `up` if our AES256 were sent.
    kms = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    world = ecr("scoutflo/admin")
    tagged = world[render.ECR_LOOKUP]
    world[render.ECR_LOOKUP] = lambda args: {
        **tagged(args),
        "encryptionConfigurations": [{"encryptionType": "KMS", "kmsKey": kms}],
    }
    registries = by_name(run_main(cloud=cloud(ecr=world)), ECR_TYPE)
    assert registries["admin-ecr"].import_id == "scoutflo/admin"
    assert registries["admin-ecr"].inputs["encryptionConfigurations"] == [{"encryptionType": "KMS", "kmsKey": kms}]
    # New (and AES256-adopted) repositories send exactly what the first run sent.
    assert registries["storefront-ecr"].inputs["encryptionConfigurations"] == [{"encryptionType": "AES256"}]


@pytest.mark.parametrize(
    ("world", "message"),
    [
        (cloud(repos=repos(admin="foreign")), r"acme-gitops/admin already exists and is not tenant acme's"),
        (cloud(repos=repos(admin="other-tenant")), r"acme-gitops/admin .*it is tenant globex's"),
        # The mark is ours only at the end of the description.
        (
            cloud(repos=repos(admin="quoted")),
            r"acme-gitops/admin already exists and is not tenant acme's \(its description does not end with",
        ),
        # An archive without our mark is not what removing an app leaves (archiving keeps the
        # description): someone's old project. Adopting it would unarchive it, make it private
        # and rename its default branch. An archived repo is read-only: unarchive it first.
        (cloud(repos=repos(admin="stranger-archive")), r"acme-gitops/admin .*archived.*unarchive it"),
        # GitHub redirects a renamed repo's old name (the data source follows it): that repo is
        # not `admin` any more, and importing `admin` would act on it under its old name.
        (cloud(repos=repos(admin="renamed")), r"acme-gitops/admin now redirects to acme-gitops/admin-old"),
        (cloud(ecr=ecr("scoutflo/admin", tenant="globex")), r"ECR repository scoutflo/admin .*tenant 'globex'"),
        (cloud(ecr=ecr("scoutflo/admin", tenant="")), r"scoutflo/admin .*not tagged scoutflo:tenant=acme"),
    ],
)
def test_someone_elses_repository_is_never_taken_over(world: dict[str, Answer], message: str) -> None:
    recording = render.Recording(region="eu-west-1")
    with pytest.raises(Exception, match=message):
        run_main(recording=recording, cloud=world)
    assert not recording.resources


# ---------------------------------------------------------------- GitHub Free, and the smaller ones


def test_without_branch_protection_nothing_is_registered_and_the_readme_says_so() -> None:
    recording = run_main({"scoutflo:branchProtection": "false"})
    assert not of_type(recording, "github:index/branchProtection:BranchProtection")
    readme = render.repo_trees(recording)["storefront"]["README.md"][0]
    assert isinstance(readme, str) and "no branch protection" in readme and "advisory" in readme


def test_branch_protection_is_on_by_default(dev_recording: render.Recording) -> None:
    assert len(of_type(dev_recording, "github:index/branchProtection:BranchProtection")) == 2
    readme = render.repo_trees(dev_recording)["storefront"]["README.md"][0]
    assert isinstance(readme, str) and "no branch protection" not in readme and "${" not in readme


def test_deprecated_vulnerability_alerts_is_not_used(dev_recording: render.Recording) -> None:
    # terraform-provider-github github/resource_github_repository.go:398-405: Deprecated.
    for repo in of_type(dev_recording, REPO_TYPE):
        assert "vulnerabilityAlerts" not in repo.inputs


def test_first_commit_waits_for_the_ci_push_policy(dev_recording: render.Recording) -> None:
    policies = {r.urn: r for r in of_type(dev_recording, "aws:iam/rolePolicy:RolePolicy")}
    commits = [
        r for r in of_type(dev_recording, render.DYNAMIC_TYPE) if not r.inputs.get("branch")
    ]  # the direct commits to main
    assert len(commits) == 2
    for commit in commits:
        waited = [policies[d] for d in commit.depends_on if d in policies]
        assert len(waited) == 1 and waited[0].name == f"{commit.inputs['repo']}-ci-push", commit.name


@pytest.mark.parametrize("value", ["maybe", "1", "", "True"])
def test_branch_protection_must_be_a_boolean(value: str) -> None:
    recording = render.Recording(region="eu-west-1")
    with pytest.raises(Exception, match="scoutflo:branchProtection' must be true or false"):
        run_main({"scoutflo:branchProtection": value}, recording=recording)
    assert not recording.resources


def test_second_run_of_a_new_stack_changes_nothing() -> None:
    first = run_main()  # empty account and owner: everything is created
    # The account and owner as the first run left them: the provider, the repos with the inputs
    # it applied, the ECR repositories with exactly its tags.
    left_tags = {r.inputs["name"]: r.inputs["tags"] for r in of_type(first, ECR_TYPE)}
    after = cloud(oidc=oidc_present(), repos=as_left_by(first), ecr=ecr(*left_tags))
    after[render.ECR_LOOKUP] = lambda args: {"id": args["name"], "name": args["name"], "tags": left_tags[args["name"]]}
    second = run_main(cloud=after)
    assert [r.urn for r in first.resources] == [r.urn for r in second.resources]
    for a, b in zip(first.resources, second.resources, strict=True):
        if a.type == REPO_TYPE:
            # The second run passes the ids its look-up found; the engine hands the provider's
            # diff the old outputs (pulumi/pulumi pkg/resource/plugin/provider_plugin.go:1363
            # `Olds: mOldOutputs`), and the ids it ignores are the ones the create answered.
            olds = render.fake_outputs(a.type, a.name, a.inputs, "eu-west-1")
            assert {k: b.inputs[k] for k in ("repo_id", "node_id")} == {k: olds[k] for k in ("repo_id", "node_id")}
            assert not AppRepositoryProvider().diff(a.name, olds, b.inputs).changes, a.urn
        else:
            assert a.inputs == b.inputs, a.urn
    for res in second.resources:
        if res.import_id:  # present now, and already in state under the provider's own id
            created_id = render.fake_id(res.type, res.name, res.inputs, {"arn": OIDC_ARN})
            assert not engine_imports(old_id=created_id, old_import_id="", goal_id=res.import_id), res.urn
    # The provider and 2 registries; GitHub repositories are adopted by AppRepository itself.
    assert sum(bool(r.import_id) for r in second.resources) == 3


def test_a_failing_github_lookup_names_the_token_and_registers_nothing() -> None:
    def unauthorized(args: Mapping[str, Any]) -> dict[str, Any]:
        raise render.NotFound("GET https://api.github.com/repos/acme-gitops/storefront: 401 Bad credentials")

    recording = render.Recording(region="eu-west-1")
    with pytest.raises(Exception, match=r"looking up GitHub repository acme-gitops/storefront failed.*github:token"):
        run_main(recording=recording, cloud=cloud(repos=unauthorized))
    assert not recording.resources


def test_a_stack_of_pulumi_githubs_repository_takes_it_over_instead_of_archiving_it(
    dev_recording: render.Recording,
) -> None:
    # Before AppRepository, ChartRepo registered github.Repository(f"{app}-repo", parent=self)
    # with archive_on_destroy: without the alias the engine would delete (archive) it after
    # creating AppRepository. Same name and parent, the old type: the engine finds the old state
    # under the alias (pulumi/pulumi step_generator.go:655-693 getOldResource) and, the dynamic
    # provider having no DiffConfig, diffs it as an update (components/app_repository.py).
    for repo in of_type(dev_recording, REPO_TYPE):
        assert repo.aliases == ["github:index/repository:Repository"], repo.name
        assert repo.name == f"{repo.inputs['name']}-repo"
        assert repo.parent.endswith(f"scoutflo:index:ChartRepo::{repo.inputs['name']}")


# ---------------------------------------------------------------- a real engine's preview


def test_preview_of_a_repository_update_keeps_its_ids_known(monkeypatch: pytest.MonkeyPatch) -> None:
    # The Python dynamic provider host does not support previews (sdk/python/lib/pulumi/dynamic/
    # __main__.py Configure answers only acceptSecrets), so the engine's preview of an AppRepository
    # update (a rotated token, a new description, the takeover of a github Repository's state)
    # returns the new inputs as its state (pulumi/pulumi pkg/resource/plugin/provider_plugin.go
    # :1718-1719), and the SDK resolves each output missing there as unknown in a preview
    # (sdk/python/lib/pulumi/runtime/rpc.py resolve_properties). An unknown repository_id is a
    # replacement of the protection (ForceNew, terraform-provider-github github/
    # resource_github_branch_protection.go:20-23) that `up --plan` never does: the engine then
    # fails the approved update (pkg/resource/deploy/deployment_executor.go:371-392).
    steady = render.fake_outputs

    def engine_preview(type_: str, name: str, inputs: Mapping[str, Any], region: str) -> dict[str, Any]:
        return dict(inputs) if type_ == REPO_TYPE else steady(type_, name, inputs, region)

    monkeypatch.setattr(render, "fake_outputs", engine_preview)
    config, secrets = dev_config()
    recording = render.run(
        lambda: runpy.run_path(MAIN, run_name="__main__"),
        config,
        secrets,
        cloud=cloud(repos=repos(storefront="ours", admin="topic")),
        preview=True,
    )
    protections = of_type(recording, "github:index/branchProtection:BranchProtection")
    assert len(protections) == 2
    assert {p.inputs["repositoryId"] for p in protections} == {"R_x"}
    for role in of_type(recording, "aws:iam/role:Role"):
        if role.inputs["name"].endswith("-ci"):
            (stmt,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
            assert stmt["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"].endswith(
                "@4242:ref:refs/heads/main"
            )


def engine_alias_urn(name: str, type_: str, parent: str, spec: Mapping[str, Any], stack: str, project: str) -> str:
    """pulumi/pulumi pkg/resource/deploy/source_eval.go:2596-2621 (an alias spec's parentUrn "" is
    "no parent given": ParseOptionalURN) and step_generator.go:545-586 collapseAliasToUrn (empty
    name/type/parent/stack/project: the resource's own), sdk/go/common/resource/alias.go:40-57
    CreateURN (a parent's URN up to its last "::", "$", the type: the parent's type chain)."""
    if spec.get("urn"):
        return str(spec["urn"])
    spec = spec["spec"]
    alias_parent = "" if spec.get("noParent") else (spec.get("parentUrn") or parent)
    if alias_parent.split("::")[-2:-1] == ["pulumi:pulumi:Stack"]:
        alias_parent = ""
    kind, alias_name = spec.get("type") or type_, spec.get("name") or name
    if not alias_parent:
        return f"urn:pulumi:{spec.get('stack') or stack}::{spec.get('project') or project}::{kind}::{alias_name}"
    return f"{alias_parent[: alias_parent.rindex('::')]}${kind}::{alias_name}"


def test_the_alias_reaches_the_old_repositorys_urn(dev_recording: render.Recording) -> None:
    # The URN the previous version's github.Repository had: same name and parent, its type last
    # in the parent's type chain (the old URNs the engine looks up: step_generator.go:655-693).
    # The engine leaves the root stack's type out of its children's URNs (pulumi/pulumi
    # pkg/resource/deploy/deployment.go:796-805 generateURN); the SDK's mock monitor keeps it.
    for repo in of_type(dev_recording, REPO_TYPE):
        parent = repo.parent.replace("::pulumi:pulumi:Stack$", "::", 1)
        old = f"urn:pulumi:dev::scoutflo::scoutflo:index:ChartRepo$github:index/repository:Repository::{repo.name}"
        assert parent == f"urn:pulumi:dev::scoutflo::scoutflo:index:ChartRepo::{repo.inputs['name']}"
        (spec,) = repo.alias_specs
        assert engine_alias_urn(repo.name, repo.type, parent, spec, "dev", "scoutflo") == old
