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
