"""Every relative link of README.md and docs/*.md leads to a file of the repository (and, for a
Markdown page with a `#fragment`, to one of its headings); the README, the front door, links every
page of docs/."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+).+?\1", re.S)
# [text](target) and ![alt](target), an optional "title" after the target.
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def links(text: str) -> list[str]:
    """Link targets outside code blocks and code spans (text in backticks is not a link)."""
    return LINK.findall(CODE_SPAN.sub("", FENCE.sub("", text)))


def slug(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    text = CODE_SPAN.sub(lambda m: m.group(0).strip("`"), heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {slug(m) for m in re.findall(r"^#{1,6} +(.+?) *#*$", text, re.M)}


def broken_links(page: Path, root: Path) -> list[str]:
    """The page's relative links that name no file under root, or no heading of a Markdown page."""
    broken = []
    for target in links(page.read_text(encoding="utf-8")):
        if SCHEME.match(target):
            continue
        path, _, fragment = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.is_relative_to(root.resolve()) or not resolved.is_file():
            broken.append(target)
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(target)
    return broken


def test_every_relative_link_resolves() -> None:
    assert len(pages()) > 1, "docs/ holds the guides"
    for page in pages():
        assert broken_links(page, ROOT) == [], page.relative_to(ROOT)


def test_the_readme_links_every_docs_page() -> None:
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in links((ROOT / "README.md").read_text())}
    for page in pages()[1:]:
        assert page.resolve() in linked, f"README.md does not link {page.relative_to(ROOT)}"


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    """The check itself: a missing file, a missing heading and a path out of the tree are caught;
    links in code, URLs and good links are not."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "deploy.json").write_text("{}")
    page = tmp_path / "docs" / "a.md"
    page.write_text(
        "# A page\n## Configuration (`Pulumi.<stack>.yaml`)\n"
        "[ok](../deploy.json) [ok](#a-page) [ok](a.md#configuration-pulumistackyaml) [web](https://x/y)\n"
        "`[code](nowhere.md)`\n```\n[fenced](nowhere.md)\n```\n"
        "[gone](missing.md) [no heading](a.md#nothing) [outside](../../etc/passwd)\n"
    )
    assert broken_links(page, tmp_path) == ["missing.md", "a.md#nothing", "../../etc/passwd"]


# The repository's own top-level directories: a path in backticks that starts with one of them is
# a claim about this tree (upstream paths such as `pkg/...` or `controller/sync.go` are not).
OWN_DIRS = ("automation", "bench", "charts_catalog", "components", "deploy", "docs", "scoutflo", "scripts", "tests")
# A file (its last part has a suffix) or a directory (a trailing slash): `scoutflo/svc00` is an ECR
# repository's name, not a path.
OWN_PATH = re.compile(rf"`((?:{'|'.join(OWN_DIRS)})/(?:[\w./-]*\.\w+|[\w./-]*/)?)`")


def missing_paths(page: Path, root: Path) -> list[str]:
    """Paths of this repository the page names in backticks that do not exist (a file moved by a refactor)."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return [path for path in OWN_PATH.findall(text) if not (root / path.split(":")[0]).exists()]


def test_every_repository_path_named_exists() -> None:
    for page in pages():
        assert missing_paths(page, ROOT) == [], page.relative_to(ROOT)


def test_a_moved_file_is_found(tmp_path: Path) -> None:
    (tmp_path / "scoutflo" / "github").mkdir(parents=True)
    (tmp_path / "scoutflo" / "github" / "api.py").write_text("")
    page = tmp_path / "README.md"
    page.write_text(
        "`scoutflo/github/api.py`, `scoutflo/github_api.py`, `pkg/getter/httpgetter.go`, `scoutflo/github/`, "
        "`scoutflo/svc00`, `scoutflo/aws/`\n"
    )
    assert missing_paths(page, tmp_path) == ["scoutflo/github_api.py", "scoutflo/aws/"]
