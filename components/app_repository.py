"""AppRepository: the app's private GitHub repository, through a dynamic provider, in one write.

Why not pulumi-github's Repository: it makes 5 writes for what one request does
(scoutflo/github/repository.py), and GitHub allows 500 content-creating writes an hour per token.
Removing the app archives the repository (never deletes it). Adding it again adopts the archive:
create finds it, checks the tenant's mark, and unarchives it.

THIS MODULE'S PATH AND `AppRepositoryProvider`'S NAME ARE PERMANENT: Pulumi pickles the provider
into every AppRepository's state and loads it by that path in a fresh process (see
components/repo_commit.py's docstring, and tests/test_github_api.py, which loads a pickled one).

Stacks created before this resource existed hold a `github:index/repository:Repository` under the
same name; the alias below makes the engine take that state for this resource instead of deleting
it, which would archive the repository (archive_on_destroy). Changing the provider of a resource
is not a replacement when the new provider has no DiffConfig: pulumi/pulumi
pkg/resource/deploy/step_generator.go:2800-2879 `providerChanged` asks the new provider's
DiffConfig, which the Python dynamic provider leaves unimplemented (sdk/python/lib/pulumi/dynamic/
__main__.py DiffConfig: UNIMPLEMENTED), and pkg/resource/plugin/provider_plugin.go:842-857 turns
that into "no replacement". `diff` then sees the old provider's outputs (no `tenant`) and asks for
an update, which reads the repository and records this resource's state (0 writes when it is
already set as ours). The old state's id is the repository's name (resource_github_repository.go
:766 `d.SetId(repo.GetName())`), the id this resource uses too.

Previews: an input computed from a resource not created yet reaches `check` and `diff` as a
`pulumi.output.Unknown` (components/repo_commit.py's docstring says how). The program passes only
known values today (config, and the look-up's ids), but an unknown one is accepted by `check` and
taken by `diff` as a change: a replacement for `owner`/`name`, an update otherwise.

A repository deleted on GitHub: `pulumi refresh` drops it (`read`), and the next `up` creates it
again with a new id; the commits (RepoCommit, which carries `repo_id` as identity and notices the
deletion in its own `read`) land on the new repository. An update (a rotated token, a new
description) that finds the repository deleted creates it again itself (`update`): a refresh with a
revoked token in the state cannot run first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from components.repo_commit import is_unknown

LEGACY_TYPE = "github:index/repository:Repository"
# Inputs whose change is another repository (new owner, new name): create it, archive the old one.
_IDENTITY = ("owner", "name")
_REQUIRED = ("owner", "name", "tenant", "description", "token")


def _client(props: dict[str, Any]) -> Any:
    from scoutflo.github.api import API, GitHub

    return GitHub(props["token"], api=props.get("api_url") or API)


# Permanent: see the module docstring.
class AppRepositoryProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Known values as strictly as at `up`; an unknown (a preview) is checked by the Check of
        the `up` that knows it, and goes back to the engine unknown (module docstring)."""
        failures = [
            CheckFailure(key, f"{key} is required")
            for key in _REQUIRED
            if not is_unknown(news.get(key)) and not news.get(key)
        ]
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        from scoutflo.github.repository import ensure_repository

        gh = _client(props)
        facts = ensure_repository(
            gh, owner=props["owner"], name=props["name"], tenant=props["tenant"], description=props["description"]
        )
        outs = {**props, **facts.outputs(), "adopted": facts.adopted, "github_writes": gh.writes}
        return CreateResult(props["name"], outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        if "tenant" not in olds:
            # A github.Repository's state taken over through the alias (module docstring).
            return DiffResult(changes=True, replaces=[], delete_before_replace=False)
        # An unknown new value is a change (never equal to the old one): a replacement for the
        # identity, what the engine expects for an input it cannot compare yet.
        replaces = [key for key in _IDENTITY if is_unknown(news.get(key)) or olds.get(key) != news.get(key)]
        # A new token is recorded too (an update with no write): removing the app later archives
        # with the token in the state, and a rotated-out one would fail.
        recorded = ("description", "tenant", "token", "api_url")
        changed = replaces or [k for k in recorded if is_unknown(news.get(k)) or olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        from scoutflo.github.adoption import with_mark
        from scoutflo.github.repository import (
            RepositoryGone,
            ensure_repository,
            rename_default_branch,
            update_repository,
        )

        gh = _client(news)
        adopted = bool(olds.get("adopted"))
        if "tenant" not in olds:
            # Taken over from github.Repository: the repository is ours already (it carries the
            # topic that version set); settings it lacks are set. Its description gets the mark
            # appended (one write, once), the user's text kept: the mark, unlike the topic, is what
            # this version's repositories carry, and a removed topic would otherwise orphan it.
            facts = ensure_repository(
                gh, owner=news["owner"], name=news["name"], tenant=news["tenant"], description=news["description"]
            )
            adopted = True
            if marked := with_mark(facts.description, news["tenant"]):
                facts = update_repository(
                    gh, owner=news["owner"], name=news["name"], fields={"description": marked}, repo_id=facts.repo_id
                )
        else:
            # Only what the program changed is written: the user's own edits of the repository's
            # description on GitHub are left alone otherwise.
            fields = {"description": news["description"]} if olds.get("description") != news["description"] else {}
            try:
                facts = update_repository(
                    gh, owner=news["owner"], name=news["name"], fields=fields, repo_id=olds.get("repo_id")
                )
            except RepositoryGone:
                # Deleted on GitHub: created again here, not left to `pulumi refresh`. A refresh
                # reads with the state's token (ReadRequest.properties are the prior outputs,
                # dynamic/__main__.py:229-236), and the update exists precisely because the
                # token changed (or the description): when the old token was revoked, the
                # refresh fails with 401 and this update was the only way to record the new
                # one, a loop. The new id reaches the commits (a replacement onto this
                # repository, components/repo_commit.py `_repo_changed`), the CI role's trust
                # and the protection; the preview planned all three, since the program's
                # look-up found no repository and so passed no known id (chart_repo.py).
                # BranchDefault's state is unchanged, so it renames nothing: `main`, which the
                # commits, the protection and the CI trust name, is made here.
                facts = rename_default_branch(
                    gh,
                    owner=news["owner"],
                    name=news["name"],
                    facts=ensure_repository(
                        gh,
                        owner=news["owner"],
                        name=news["name"],
                        tenant=news["tenant"],
                        description=news["description"],
                    ),
                )
        return UpdateResult({**news, **facts.outputs(), "adopted": adopted, "github_writes": gh.writes})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        from scoutflo.github.repository import archive_repository

        archive_repository(_client(props), owner=props["owner"], name=props["name"], repo_id=props.get("repo_id"))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """`pulumi refresh`: the repository as it is (gone: an empty id, which drops it from state)."""
        from scoutflo.github.repository import refresh_repository, repo_facts

        repo = refresh_repository(
            _client(props), props["owner"], props["name"], f"the repository {props['owner']}/{props['name']}"
        )
        if repo is None or (props.get("repo_id") is not None and int(repo["id"]) != int(props["repo_id"])):
            # Gone, or the name now holds another repository (ours deleted, the name reused):
            # recording that one's id would make the next update act on it.
            return ReadResult(None, {})
        # `description` stays the program's: it is what `diff` compares with the program's next
        # one. GitHub's (which the user may have edited since) taken into the state would show
        # as a change on the next `up` and be overwritten, against `update`'s promise.
        return ReadResult(id_, {**props, **repo_facts(repo).outputs()})


@dataclass(frozen=True, kw_only=True)
class AppRepositoryArgs:
    owner: str
    """GitHub user or organisation."""
    name: str
    """Repository name (= app name)."""
    tenant: str
    description: str
    """Ends with the tenant's mark (scoutflo.github.adoption.repo_description)."""
    token: pulumi.Input[str]
    """GitHub token (a Pulumi secret)."""
    api_url: str = "https://api.github.com"
    repo_id: int | None = None
    node_id: str | None = None
    """GitHub's ids of the repository when the program's look-up found it (scoutflo.github.adoption
    FoundRepo), None when it is to be created. See `AppRepository.__init__`."""


class AppRepository(pulumi.dynamic.Resource, module="scoutflo", name="AppRepository"):
    """Type `pulumi-python:dynamic/scoutflo:AppRepository` (pulumi.dynamic.Resource.__init_subclass__)."""

    name: pulumi.Output[str]
    """The repository's name (the `name` input, kept as an output like every input)."""
    repo_id: pulumi.Output[int]
    node_id: pulumi.Output[str]
    full_name: pulumi.Output[str]
    html_url: pulumi.Output[str]
    default_branch: pulumi.Output[str]

    def __init__(self, name: str, args: AppRepositoryArgs, opts: pulumi.ResourceOptions | None = None):
        props = {
            "owner": args.owner,
            "name": args.name,
            "tenant": args.tenant,
            "description": args.description,
            "token": pulumi.Output.secret(args.token),
            "api_url": args.api_url,
            # Known ids are inputs, not only outputs: the Python dynamic provider host does not
            # support previews (sdk/python/lib/pulumi/dynamic/__main__.py Configure answers only
            # acceptSecrets, so supportsPreview is false), and the engine's preview of an update
            # then returns the new inputs as the state (pulumi/pulumi pkg/resource/plugin/
            # provider_plugin.go:1718-1719); the SDK resolves every output missing there as
            # unknown (sdk/python/lib/pulumi/runtime/rpc.py resolve_properties). Without them,
            # every update (a rotated token, a new description, the takeover of a github
            # Repository's state) previews BranchProtection.repository_id, which is ForceNew
            # (terraform-provider-github github/resource_github_branch_protection.go:20-23), as
            # unknown: a replacement. `up --plan` then sees no change, and the engine fails the
            # update with "expected resource operations ... but none were seen"
            # (pkg/resource/deploy/deployment_executor.go:371-392): the replace left two of its
            # planned ops undone after a same (step.go:2404-2418 ConstrainedTo). `diff` ignores
            # these keys; create and update overwrite them with GitHub's answer.
            "repo_id": args.repo_id,
            "node_id": args.node_id,
            **dict.fromkeys(("full_name", "html_url", "default_branch", "adopted")),
            "github_writes": None,
        }
        mine = pulumi.ResourceOptions(
            additional_secret_outputs=["token"],
            aliases=[pulumi.Alias(type_=LEGACY_TYPE)],
        )
        super().__init__(AppRepositoryProvider(), name, props, pulumi.ResourceOptions.merge(opts, mine))
