"""The daily preview's class: a newer upstream chart is an `upgrade` waiting for a person, even when
the program did not change (issue 19: the upgrade shows as a change request before anything is
written; issue 18: drift and upgrade previews on a schedule)."""

from __future__ import annotations

from typing import Any

from automation.changeset import ChangeSet, ResourceChange
from service import schedule

COMMIT = "pulumi-python:dynamic:Resource"  # RepoCommit: no type of its own (components/repo_commit.py)


def changes(*resources: ResourceChange) -> ChangeSet:
    return ChangeSet(stack="acme", resources=resources, program_digest="program:one")


class NoDatabase:
    """classify answers an upstream move before it asks the database."""

    def execute(self, *_args: Any) -> Any:
        raise AssertionError("an upstream upgrade needs no look-up")


def test_a_new_upstream_version_is_an_upgrade_without_a_program_change() -> None:
    bumped = changes(
        ResourceChange("mongo", COMMIT, "mongo-import", "urn:mongo-import", "replace"),
        ResourceChange("mongo", "aws:ecr/repository:Repository", "mongo", "urn:ecr", "same"),
    )
    assert schedule.upstream_upgrades(bumped) == ["mongo"]
    assert schedule.classify(NoDatabase(), "acme", bumped) == "upgrade"


def test_other_changes_are_not_upgrades() -> None:
    drift = changes(
        ResourceChange("mongo", COMMIT, "mongo-initial", "urn:mongo-initial", "update"),
        ResourceChange("mongo", COMMIT, "mongo-import", "urn:mongo-import", "same"),
        # An app may be named `x-import`: its ECR repository is no import commit.
        ResourceChange("x-import", "aws:ecr/repository:Repository", "x-import", "urn:ecr", "update"),
    )
    assert schedule.upstream_upgrades(drift) == []


def test_a_new_or_removed_app_is_no_upstream_upgrade() -> None:
    """A tenant's first deploy, or an app added to (removed from) its spec since the last apply,
    creates (deletes) its import commit: nothing upstream moved, an existing commit did not change."""
    added = changes(
        ResourceChange("redis", COMMIT, "redis-import", "urn:redis-import", "create"),
        ResourceChange("mongo", COMMIT, "mongo-import", "urn:mongo-import", "delete"),
    )
    assert schedule.upstream_upgrades(added) == []
