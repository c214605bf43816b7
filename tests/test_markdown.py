"""Record bodies: the plain-text form, the links, and the HTML checked against another parser.

The HTML comes from pulldown-cmark (through pyromark). markdown-it-py, a separate CommonMark
implementation, reads the same bodies here; after the same sanitiser both must give the same
markup, except where this file says why not.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from eventfeed import markdown

from .bench_records import generate

BASE = "https://events.example.org/network/"
FIXTURES = Path(__file__).parent / "fixtures"


def text(body: str) -> str:
    return markdown.to_text(body, BASE)


def html(body: str) -> str:
    return markdown.to_html(body, BASE)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Two\nlines, one *paragraph*.\n\nAnother.", "Two lines, one paragraph.\n\nAnother.\n"),
        ("Hard  \nbreak", "Hard\nbreak\n"),
        ("# Heading\n\nText", "Heading\n\nText\n"),
        ("- one\n- two\n\nAfter", "- one\n- two\n\nAfter\n"),
        ("3. three\n4. four", "3. three\n4. four\n"),
        ("0. zero\n1. one", "0. zero\n1. one\n"),  # a list may start at 0
        ("- a\n  - nested\n  - more\n- b", "- a\n  - nested\n  - more\n- b\n"),
        ("1. loose\n\n2. list", "1. loose\n2. list\n"),
        ("> quoted\n> on two lines\n>\n> - item", "> quoted on two lines\n\n> - item\n"),
        (
            "See [the agenda](docs/a.html).",
            "See the agenda (https://events.example.org/network/docs/a.html).\n",
        ),
        ("Root [link](/x).", "Root link (https://events.example.org/x).\n"),
        ("Write to <team@example.org>.", "Write to team@example.org.\n"),  # not twice
        ("[mail us](mailto:team@example.org)", "mail us (team@example.org)\n"),
        ("<https://example.org/a>", "https://example.org/a\n"),
        ("[https://example.org](https://example.org)", "https://example.org\n"),
        (
            "![the *group* photo](img/g.jpg)",
            "the group photo (https://events.example.org/network/img/g.jpg)\n",
        ),
        ("![](img/g.jpg)", "https://events.example.org/network/img/g.jpg\n"),
        ("[a script](javascript:alert(1))", "a script\n"),  # the label only, as in the HTML
        ("![pixel](data:image/svg+xml;base64,PHN2Zz4=)", "pixel\n"),
        ("Use `code` here", "Use code here\n"),
        ("```\nline 1\n  line 2\n```\n\nAfter", "line 1\n  line 2\n\nAfter\n"),
        ("    indented\n\nAfter", "indented\n\nAfter\n"),
        ("Before\n\n---\n\nAfter", "Before\n\n---\n\nAfter\n"),
        ("Raw <b>inline</b> html\n\n<div>a block</div>\n\nEnd", "Raw inline html\n\nEnd\n"),
        ("| a | b |\n|---|--:|\n| 1 | [x](/y) |", "a\nb\n1\nx (https://events.example.org/y)\n"),
        (
            "[ref][r] and [r]\n\n[r]: https://example.org/r",
            "ref (https://example.org/r) and r (https://example.org/r)\n",
        ),
        ("&amp; &copy; \\*not emphasis\\*", "& © *not emphasis*\n"),
        ("", ""),
        ("   \n\n", ""),
    ],
)
def test_plain_text(body: str, expected: str) -> None:
    assert text(body) == expected


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("https://例え.jp/パス?q=ü", "https://xn--r8jz45g.jp/%E3%83%91%E3%82%B9?q=%C3%BC"),
        ("https://user:pw@例え.jp:8080/p", "https://user:pw@xn--r8jz45g.jp:8080/p"),
        ("<a b.html>", "https://events.example.org/network/a%20b.html"),
        ("https://example.org/%41%zz", "https://example.org/%41%25zz"),  # a bad escape
        ("https://example.org/x|y^{}", "https://example.org/x%7Cy%5E%7B%7D"),
        ("mailto:ä@例え.jp", "mailto:%C3%A4@xn--r8jz45g.jp"),
        ("//cdn.example.org/ü", "https://cdn.example.org/%C3%BC"),
        ("?q=ä", "https://events.example.org/network/?q=%C3%A4"),
        ("https://example.org/plain?a=1&b=2#f", "https://example.org/plain?a=1&b=2#f"),
    ],
)
def test_links_are_the_same_in_html_and_text(link: str, expected: str) -> None:
    body = f"[label]({link})"
    hrefs = re.findall(r'href="([^"]*)"', html(body))
    assert [h.replace("&amp;", "&") for h in hrefs] == [expected]
    assert text(body) == f"label ({expected.removeprefix('mailto:')})\n"


def bodies(tmp_path: Path) -> list[str]:
    """The benchmark's synthetic bodies (several scripts, lists, links) and every fixture's."""
    files = sorted(generate(tmp_path, 300).rglob("*.md")) + sorted(FIXTURES.rglob("*.md"))
    found = []
    for path in files:
        source = path.read_text(encoding="utf-8", errors="replace").lstrip("\ufeff")
        if source.startswith("---\n"):
            found.append(source.split("\n---\n", 1)[-1])
    return found


def unsafe_links_as_text(body: str) -> bool:
    """Whether markdown-it-py leaves a link as literal text because of its scheme.

    markdown-it-py refuses ``javascript:``, ``data:`` (but for some images) and the like
    already at parsing, so its sanitised HTML shows the Markdown source; pulldown-cmark makes
    the link and the sanitiser removes its ``href``, so ours shows the label only.
    """
    return re.search(r"\]\(\s*(javascript|vbscript|file|data):", body, re.IGNORECASE) is not None


def between_tags(markup: str) -> str:
    # the two renderers break lines between table tags differently; a browser shows no difference
    return re.sub(r">\n<", "><", markup)


def test_html_agrees_with_another_commonmark_parser(tmp_path: Path) -> None:
    reference = MarkdownIt("commonmark", {"html": True}).enable("table")
    cleaner = markdown._cleaner(BASE)
    compared = 0
    for body in bodies(tmp_path):
        if unsafe_links_as_text(body):
            continue
        theirs = cleaner.clean(reference.render(body)).strip()
        ours = html(body).strip()
        assert between_tags(ours) == between_tags(theirs), body
        compared += 1
    assert compared > 300


def test_memoised_forms_are_the_unmemoised_ones(tmp_path: Path) -> None:
    sample = bodies(tmp_path)[:50]
    plain = [(html(b), text(b)) for b in sample]
    with markdown.memoised():
        assert [(html(b), text(b)) for b in sample] == plain
        assert [(html(b), text(b)) for b in sample] == plain  # the second time from the memo
