"""ChartRepo: the app's private GitHub repository with its chart, CI pipeline and CI identity."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_github as github

from components.app_repository import AppRepository, AppRepositoryArgs
from components.ci_role import CiRole, CiRoleArgs
from components.repo_commit import RepoCommit, RepoCommitArgs
from scoutflo.github.adoption import READOPTED_FILES, READOPTED_MESSAGE, FoundRepo, repo_description
from scoutflo.github.repo_files import SETTINGS_PATH, settings_file


@dataclass(frozen=True, kw_only=True)
class ChartRepoArgs:
    owner: str
    """GitHub user or organisation."""
    name: str
    """Repository name (= app name)."""
    description: str
    files: Mapping[str, str]
    """The initial commit on main: CI pipeline, README and, for templates, the chart."""
    executable: Sequence[str] = field(default_factory=tuple)
    """Paths of `files` committed as executables."""
    token: pulumi.Input[str]
    """GitHub token for the commit (secret)."""
    registry_url: pulumi.Input[str]
    """`oci://<host>/<prefix>`: where CI pushes charts."""
    region: str
    oidc_provider_arn: pulumi.Input[str]
    ecr_repository_arn: pulumi.Input[str]
    ci_role_name: str
    required_check: str = "lint"
    """PR workflow job branch protection requires."""
    branch_protection: bool = True
    """False on GitHub Free (private repos get no protection there): nothing is registered."""
    existing: FoundRepo | None = None
    """The repository exists (archived by an earlier removal, or ours): AppRepository adopts it."""
    tenant: str
    """Marks the repository as this tenant's (the end of its description)."""
    import_files: Mapping[str, str | bytes] = field(default_factory=dict)
    """An imported chart, proposed as one pull request ({} for templates); bytes = a binary file."""
    import_branch: str = ""
    import_title: str = ""
    import_body: str = ""


class ChartRepo(pulumi.ComponentResource):
    html_url: pulumi.Output[str]
    full_name: pulumi.Output[str]
    ci_role_arn: pulumi.Output[str]

    def __init__(self, name: str, args: ChartRepoArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("scoutflo:index:ChartRepo", name, None, opts)
        self._name, self._args = name, args
        repo, default_branch = self._create_repository()
        # The owner's numeric id for the CI role's subject. The github provider's getUser reads
        # GET /users/{name} (integrations/terraform-provider-github
        # github/data_source_github_user.go:111, id set at :135), which GitHub answers for users
        # and organisations alike; getOrganization would fail for a user account.
        owner = github.get_user_output(username=args.owner, opts=pulumi.InvokeOutputOptions(parent=self))
        ci = CiRole(
            f"{name}-ci",
            CiRoleArgs(
                owner=args.owner,
                owner_login=owner.login,
                owner_id=owner.id,
                repo=args.name,
                repo_id=repo.repo_id,
                oidc_provider_arn=args.oidc_provider_arn,
                ecr_repository_arn=args.ecr_repository_arn,
                role_name=args.ci_role_name,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Configuration, not credentials: committed as ci/settings.env with the scaffold, which the
        # release workflow reads (no Actions variables: 3 GitHub writes less per app). The first
        # commit's push runs the release, so it waits for the role through this input.
        settings = pulumi.Output.all(args.registry_url, ci.arn).apply(
            lambda v: settings_file(registry_url=v[0], region=args.region, role_arn=v[1])
        )
        # The first commit on main starts the release workflow, which pushes with the role's
        # policy: wait for the policy itself, not just the role the settings name.
        self._create_commits(repo, {**args.files, SETTINGS_PATH: settings}, depends_on=[default_branch, ci.push_policy])
        self.html_url = repo.html_url
        self.full_name = repo.full_name
        self.ci_role_arn = ci.arn
        self.register_outputs({"html_url": self.html_url, "full_name": self.full_name, "ci_role_arn": self.ci_role_arn})

    def _create_repository(self) -> tuple[AppRepository, github.BranchDefault]:
        name, args = self._name, self._args
        child = pulumi.ResourceOptions(parent=self)
        # Private, issues on, wiki and projects off, squash merges only, branches deleted on merge
        # (scoutflo/github/repository.py SETTINGS), created with auto_init in one write. Removing the
        # app archives it; adding the app again adopts the archive and unarchives it.
        repo = AppRepository(
            f"{name}-repo",
            AppRepositoryArgs(
                owner=args.owner,
                name=args.name,
                tenant=args.tenant,
                description=repo_description(args.description, args.tenant),
                token=args.token,
                # Known in a preview of an update (components/app_repository.py): the protection
                # and the CI role's trust, which use them, show no change there.
                repo_id=args.existing.repo_id or None if args.existing else None,
                node_id=args.existing.node_id or None if args.existing else None,
            ),
            opts=child,
        )
        # auto_init creates the owner's default branch, which is not always `main`; the pipeline,
        # the CI role's trust and the protection all name `main`, so rename it when it differs.
        default_branch = github.BranchDefault(
            f"{name}-default-branch",
            repository=repo.name,
            branch="main",
            rename=True,
            wait_for_rename=True,
            opts=child,
        )
        return repo, default_branch

    def _create_commits(
        self,
        repo: AppRepository,
        files: Mapping[str, str | bytes | pulumi.Output[str]],
        depends_on: list[pulumi.Resource],
    ) -> None:
        name, args = self._name, self._args
        readopted = bool(args.existing and args.existing.archived)
        initial = RepoCommit(
            f"{name}-initial",
            RepoCommitArgs(
                owner=args.owner,
                repo=repo.name,
                # An archived repository adopted again has its pipeline and the user's chart: the
                # scaffold would overwrite them on main, so this stack's first commit adds a note.
                files=READOPTED_FILES if readopted else files,
                executable=() if readopted else args.executable,
                message=READOPTED_MESSAGE if readopted else "Scoutflo: chart repository scaffold",
                token=args.token,
                # The repository's identity: deleted on GitHub, then `pulumi refresh` and `up`,
                # the repository is created again with a new id and the commit follows it
                # (components/repo_commit.py). Known in a preview whenever the repository exists
                # (AppRepository takes the look-up's id as an input), so an update never previews
                # as a replacement.
                repo_id=repo.repo_id,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on),
        )
        # Protection binds API writes too: it must come after the direct commit to main. On GitHub
        # Free, private repositories get none (the API answers 403): nothing is registered then.
        if args.branch_protection:
            github.BranchProtection(
                f"{name}-main",
                repository_id=repo.node_id,
                pattern="main",
                enforce_admins=False,
                allows_deletions=False,
                allows_force_pushes=False,
                required_linear_history=True,
                required_status_checks=[{"strict": True, "contexts": [args.required_check]}],
                required_pull_request_reviews=[{"required_approving_review_count": 0, "dismiss_stale_reviews": True}],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[initial]),
            )
        if args.import_files:
            RepoCommit(
                f"{name}-import",
                RepoCommitArgs(
                    owner=args.owner,
                    repo=repo.name,
                    files=args.import_files,
                    message=args.import_title,
                    token=args.token,
                    branch=args.import_branch,
                    pr_title=args.import_title,
                    pr_body=args.import_body,
                    repo_id=repo.repo_id,
                    # A newer upstream version: a three-way merge with main (scoutflo/github/upgrade.py).
                    upgrade=True,
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[initial]),
            )
