"""The README, the pages under docs/ and benchmarks/RESULTS.md hold together: every relative link points to a file
that exists (and to a heading of it, when the link names an anchor), and no user-facing page speaks of the
project's issue numbers."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
PAGES = [*DOCS, ROOT / "benchmarks" / "RESULTS.md"]
NO_ISSUE_NUMBERS = PAGES

LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_BLOCK = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
ISSUE_NUMBER = re.compile(r"\bissues?\s*#?\s*\d+", re.I)


def prose(text: str) -> str:
    """``text`` without fenced code blocks and inline code, where brackets and parentheses are not links."""
    return INLINE_CODE.sub("", CODE_BLOCK.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())  # a link keeps its text
    text = text.lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a page offers: its headings' slugs, numbered as GitHub numbers repeats."""
    seen: dict[str, int] = {}
    result = set()
    for line in CODE_BLOCK.sub("", path.read_text(encoding="utf-8")).splitlines():
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def relative_links(path: Path) -> list[str]:
    targets = LINK.findall(prose(path.read_text(encoding="utf-8")))
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t, re.I)]  # http:, https:, mailto:


def test_pages_are_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert {"README.md", "docs/architecture.md", "docs/recipes.md", "docs/metrics.md", "docs/robustness.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        file_part, _, anchor = target.partition("#")
        destination = (page.parent / unquote(file_part)).resolve() if file_part else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and unquote(anchor) not in anchors(destination):
            broken.append(f"{target}: no heading with that anchor in {destination.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_every_docs_page_is_linked_from_the_readme_or_another_page() -> None:
    linked = set()
    for page in PAGES:
        for target in relative_links(page):
            file_part = target.partition("#")[0]
            if file_part:
                linked.add((page.parent / unquote(file_part)).resolve())
    orphans = [p.relative_to(ROOT).as_posix() for p in PAGES if p.name != "README.md" and p.resolve() not in linked]
    assert not orphans, f"pages nothing links to: {orphans}"


def test_readme_links_every_model_page() -> None:
    readme = {(ROOT / t.partition("#")[0]).resolve() for t in relative_links(ROOT / "README.md")}
    pages = sorted((ROOT / "docs" / "models").glob("*.md"))
    assert pages and all(p.resolve() in readme for p in pages), [p.name for p in pages if p.resolve() not in readme]


@pytest.mark.parametrize("page", NO_ISSUE_NUMBERS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_issue_numbers(page: Path) -> None:
    hits = [
        f"line {n}: {m.group(0)!r}"
        for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
        for m in ISSUE_NUMBER.finditer(line)
    ]
    assert not hits, f"{page.relative_to(ROOT)} speaks of issue numbers: {hits}"


def test_slug_matches_githubs() -> None:
    assert slug("`polyinr compare`: every generator on the built-in data, CPU") == (
        "polyinr-compare-every-generator-on-the-built-in-data-cpu"
    )
    assert slug("The imagenet / ffhq recipes as the authors' code ran them") == (
        "the-imagenet--ffhq-recipes-as-the-authors-code-ran-them"
    )


def test_a_broken_link_is_caught(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[here](page.md#title) [gone](missing.md) `[code](x.md)`\n", encoding="utf-8")
    assert relative_links(page) == ["page.md#title", "missing.md"]
    assert "title" in anchors(page)


def test_readme_opens_with_the_two_set_up_commands() -> None:
    first_block = CODE_BLOCK.search((ROOT / "README.md").read_text(encoding="utf-8"))
    assert first_block is not None
    lines = first_block.group(0).splitlines()[1:-1]
    assert [line.split("#")[0].strip() for line in lines] == [
        'pip install -e ".[dev]" && polyinr demo',
        'pip install -e ".[dev]" && python -m pytest -q',
    ]
