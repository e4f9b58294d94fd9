"""Every link in README.md and docs/ leads somewhere a reader of the repository can go:
a relative link names a file or folder inside the repository (and, with #anchor, a
heading of that Markdown file); nothing points outside it (../shared is no part of
the project); http(s) links are allowed, and not fetched."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
#: [text](target) and ![alt](target); the target may sit in <...> and carry a "title"
_INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^\s)]+)(?:\s+\"[^\"]*\")?\s*\)")
#: [label]: target
_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
#: <https://...> autolinks and href="..." / src="..." in HTML
_AUTOLINK = re.compile(r"<([a-zA-Z][a-zA-Z0-9+.-]*:[^\s<>]*)>")
_HTML_ATTR = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']*)["']""")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_HTML_ANCHOR = re.compile(r"""<a\s+(?:name|id)\s*=\s*["']([^"']+)["']""")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of the lines outside fenced code blocks."""
    out, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        m = _FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif m.group(1) == fence:
                fence = None
            continue
        if fence is None:
            out.append((number, line))
    return out


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every link in Markdown ``text``."""
    found = []
    for number, line in prose_lines(text):
        line = _CODE_SPAN.sub(lambda c: " " * len(c.group(0)), line)  # code is no link
        for pattern in (_INLINE, _DEFINITION, _AUTOLINK, _HTML_ATTR):
            for m in pattern.finditer(line):
                found.append((number, m.group(1).strip("<>")))
    return found


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text (code and link marks dropped),
    lowercased, without punctuation, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file: its headings' (numbered when repeated, as GitHub
    does) and any <a name/id>."""
    seen: dict[str, int] = {}
    out = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        m = _HEADING.match(line)
        if m:
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
        out.update(_HTML_ANCHOR.findall(line))
    return out


def problem(page: Path, target: str) -> str | None:
    """What is wrong with a link from ``page`` to ``target``, or None."""
    parts = urllib.parse.urlsplit(target)
    if parts.scheme in ("http", "https"):
        return None if parts.netloc else "an http(s) link without a host"
    if parts.scheme or parts.netloc:
        return f"a {parts.scheme or '//'} link: use a relative path or http(s)"
    path, fragment = urllib.parse.unquote(parts.path), urllib.parse.unquote(parts.fragment)
    if path.startswith("/"):
        return "an absolute path: use a path relative to this file"
    dest = (page.parent / path).resolve() if path else page
    if not dest.is_relative_to(ROOT):
        return "points outside the repository"
    if not dest.exists():
        return f"no such file or folder {dest.relative_to(ROOT)}"
    if fragment:
        if dest.suffix != ".md" or not dest.is_file():
            return f"#{fragment}: anchors are checked in Markdown files only"
        if fragment not in anchors(dest):
            return f"no heading #{fragment} in {dest.relative_to(ROOT)}"
    return None


def test_the_pages_exist():
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert {"README.md", "docs/producers.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_link_resolves_inside_the_repository(page):
    text = page.read_text(encoding="utf-8")
    bad = []
    for number, target in links(text):
        why = problem(page, target)
        if why:
            bad.append(f"{page.relative_to(ROOT)}:{number}: ({target}) {why}")
    assert not bad, "\n".join(bad)
    # nor is ../shared named in the text: readers of the project never see it
    assert "../shared" not in text and "/work/shared" not in text


def test_the_readme_links_every_docs_page():
    readme = ROOT / "README.md"
    linked = {
        (readme.parent / urllib.parse.urlsplit(t).path).resolve()
        for _, t in links(readme.read_text(encoding="utf-8"))
        if not urllib.parse.urlsplit(t).scheme
    }
    pages = sorted((ROOT / "docs").glob("*.md"))
    assert len(pages) >= 5
    missing = [p.relative_to(ROOT).as_posix() for p in pages if p.resolve() not in linked]
    assert not missing, f"README.md links no {missing}"


def test_the_link_checker_catches_what_it_should(tmp_path):
    """The checker itself: each kind of bad link is reported, good ones are not."""
    page = ROOT / "docs" / "example.md"
    assert problem(page, "https://opentelemetry.io/docs/") is None
    assert problem(page, "producers.md#the-thread-id") is None
    assert problem(page, "../README.md#quickstart") is None
    assert problem(page, "../examples/") is None
    assert "outside" in problem(page, "../../shared/CONTRACT.md")
    assert "outside" in problem(page, "../../../etc/passwd")
    assert "no such file" in problem(page, "nowhere.md")
    assert "no heading" in problem(page, "producers.md#no-such-heading")
    assert "absolute" in problem(page, "/etc/passwd")
    assert "file" in problem(page, "file:///etc/passwd")
    text = "\n".join(
        [
            '[a](one.md) and ![b](two.png) and [c](<three four.md> "title")',
            "`[not](a-link.md)` and <https://example.com/x>",
            "```",
            "[not](in-a-fence.md)",
            "```",
            "[ref]: five.md",
            '<a href="six.md">six</a>',
        ]
    )
    assert [t for _, t in links(text)] == [
        "one.md",
        "two.png",
        "three four.md",
        "https://example.com/x",
        "five.md",
        "six.md",
    ]
    heading = tmp_path / "h.md"
    heading.write_text(
        "# Big threads: `GET /threads/{id}` in pages\n## Notes\n## Notes\n"
        "```\n# not a heading\n```\n"
    )
    assert anchors(heading) == {"big-threads-get-threadsid-in-pages", "notes", "notes-1"}
