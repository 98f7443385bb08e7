"""A three-way merge of two chart trees against a base: libgit2's merge (through pygit2), no diff3
of our own.

`base` is the upstream version the repository last took (its files exactly as that import or
upgrade prepared them), `ours` is what the user's main holds now, `theirs` is the new upstream
version prepared exactly as an import prepares it. Each is a path -> text (`str`) or binary
(`bytes`) map, as `scoutflo.charts.plan.ImportPlan.files` holds it.

libgit2 does everything a merge decides: `git_merge_trees` takes the tree-level decisions (a path
changed on one side only takes that side; deleted on one side and unchanged on the other is
deleted; changed on both is merged line by line with xdiff, the same code git's own merge runs)
and `git_merge_file_from_index` writes a conflicting text file with standard markers. Rename
detection is off (pygit2's `merge_trees` turns it on by default, pygit2/repository.py
`merge_trees` `flags=MergeFlag.FIND_RENAMES`): a path is a path, so a file the user deleted is
never matched to a similar file upstream added, and an upstream rename of a file the user
edited is a conflict to review, never a silent move of their edits.

Conflicts are never resolved here: a text conflict is committed with markers (`<<<<<<< main`,
`=======`, `>>>>>>> upstream <version>`; labels are the index entries' paths,
libgit2 src/libgit2/merge_file.c:96-111), the empty side of a delete/modify conflict included; a
binary conflict (libgit2 merges no binary file: merge_file.c:178-188, 227-229) keeps the user's
file, or upstream's when the user has none, and is listed like the others.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

import pygit2

from scoutflo.charts.plan import FileContent, content

_MODE = pygit2.enums.FileMode.BLOB


@dataclass(frozen=True)
class Conflict:
    path: str
    kind: str
    """'both changed', 'deleted on main, changed upstream', 'changed on main, deleted upstream',
    'added on both' (no base: every path that differs), 'binary changed on both'."""


@dataclass(frozen=True)
class MergeResult:
    files: dict[str, FileContent]
    """The merged tree: path -> text or bytes (what the pull request's last commit holds)."""
    conflicts: tuple[Conflict, ...]
    changed_upstream: tuple[str, ...]
    """Paths upstream added, changed or removed between base and theirs."""
    merged: tuple[str, ...]
    """Changed upstream and on main, merged without conflict (the user's edits kept)."""
    taken: tuple[str, ...]
    """Changed upstream only: taken as upstream has them (deletions included)."""
    kept_deleted: tuple[str, ...]
    """Deleted on main and unchanged upstream: they stay deleted."""


def _data(value: FileContent) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def _tree(repo: pygit2.Repository, files: Mapping[str, FileContent]) -> pygit2.Oid:
    index = pygit2.Index()
    for path, value in files.items():
        index.add(pygit2.IndexEntry(path, repo.create_blob(_data(value)), _MODE))
    return index.write_tree(repo)


def _blob(repo: pygit2.Repository, oid: pygit2.Oid) -> bytes:
    blob = repo[oid]
    assert isinstance(blob, pygit2.Blob)
    return blob.data


def _kind(ancestor: object, ours: object, theirs: object) -> str:
    if ancestor is None:
        return "added on both"
    if ours is None:
        return "deleted on main, changed upstream"
    if theirs is None:
        return "changed on main, deleted upstream"
    return "both changed"


def merge_charts(
    base: Mapping[str, FileContent],
    ours: Mapping[str, FileContent],
    theirs: Mapping[str, FileContent],
    *,
    their_label: str = "upstream",
) -> MergeResult:
    """Merge `theirs` into `ours` against `base` (see the module docstring). An empty `base`
    (a repository with no recorded import) makes every path both sides hold with different
    content an 'added on both' conflict: nothing of the user's is overwritten silently."""
    with tempfile.TemporaryDirectory(prefix="scoutflo-merge-") as tmp:
        # A bare repository in a fresh directory holds only the objects written here.
        repo = pygit2.init_repository(tmp, bare=True)
        index = repo.merge_trees(
            _tree(repo, base), _tree(repo, ours), _tree(repo, theirs), flags=pygit2.enums.MergeFlag(0)
        )
        conflicts: list[Conflict] = []
        out: dict[str, FileContent] = {}
        conflicted: set[str] = set()
        for ancestor, mine, upstream in list(index.conflicts or ()):
            entry = mine or upstream or ancestor
            assert entry is not None
            path = entry.path
            conflicted.add(path)
            sides = [None if e is None else _blob(repo, e.id) for e in (ancestor, mine, upstream)]
            if any(s is not None and b"\0" in s for s in sides) or any(
                s is not None and isinstance(content(s), bytes) for s in sides
            ):
                conflicts.append(Conflict(path, "binary changed on both"))
                kept = sides[1] if sides[1] is not None else sides[2]
                if kept is not None:
                    out[path] = kept
                continue
            conflicts.append(Conflict(path, _kind(ancestor, mine, upstream)))
            # Labels are the entries' paths (merge_file.c:96-111): name the sides, not the file.
            a, o, t = (
                None if e is None else pygit2.IndexEntry(label, e.id, e.mode)
                for e, label in ((ancestor, "base"), (mine, "main"), (upstream, their_label))
            )
            merged = repo.merge_file_from_index(a, o, t)
            out[path] = content(merged.contents.encode("utf-8"))
        for entry in index:
            if entry.path not in conflicted:
                out[entry.path] = content(_blob(repo, entry.id))
    changed = sorted(p for p in set(base) | set(theirs) if base.get(p) != theirs.get(p))
    edited = {p for p in set(base) | set(ours) if base.get(p) != ours.get(p)}
    merged_clean = tuple(p for p in changed if p in edited and p not in conflicted)
    taken = tuple(p for p in changed if p not in edited)
    kept_deleted = tuple(sorted(p for p in base if p not in ours and base.get(p) == theirs.get(p)))
    return MergeResult(
        files=dict(sorted(out.items())),
        conflicts=tuple(sorted(conflicts, key=lambda c: c.path)),
        changed_upstream=tuple(changed),
        merged=merged_clean,
        taken=taken,
        kept_deleted=kept_deleted,
    )
