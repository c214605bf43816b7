"""The sanitiser's result for plain HTML, worked out without it (markdown._clean_plain),
compared with the sanitiser itself on generated bodies."""

from __future__ import annotations

import random

import pytest

from eventfeed import markdown

#: pieces of Markdown, plain and not: quotes, entities, links of every kind, blocks, raw
#: HTML, control characters, no-break spaces, noncharacters
FRAGMENTS = [
    *("word", " ", "\n", "\n\n", "'", '"', "&", "&amp;", "&quot;", "&copy;", "&#39;"),
    *("&#x22;", "&nbsp;", "\u00a0", "<", ">", "**b**", "*i*", "`c<&>\"'`", "~~s~~"),
    *("[l](https://x.org/a?b=1&c=2)", "[l](/rel/path)", "[l](rel path)", "[l](<a b>)"),
    *("[l](mailto:a@b.org)", "<mailto:a@b.org>", '<https://x.org/?q="a">', "[l](#frag)"),
    *("[l](javascript:alert(1))", '[l](https://x.org/"q)', "[l](https://x.org/é)"),
    *("[l](https://bü.org/x)", "[l](%41%zz)", "[l](?q)", "[l](https://x.org/ 'title')"),
    *("[l](https://X.ORG/A)", "[l](https://x.org:8080/)", "[l](https://u:p@x.org/)"),
    *("[l](https://[::1]/)", "[l](https://x..org/)", "[l](https://x_y.org/)", "[l]()"),
    *("[l](https://x.org/a|b{c}^`)", "[l](mailto:A.b+c@X.org?subject=hi)", "[l](ftp://x)"),
    *("[l]: https://ref.org", "[l]", "[](https://empty.org)", "[a [b](/x)](/y)"),
    *("- item", "1. item", "3. item", "> quote", "# h1", "## h2", "###### h6", "---"),
    *("```\ncode\n```", "    indented", "![img](/p.png)", "<b>raw</b>", "<script>x</script>"),
    *("\x01", "\x7f", "\x85", "\ufdd0", "\uffff", "\U0001fffe", "😀", "\r\n", "\t", "\\*"),
    *("a|b\n-|-\nc|d", "https://auto.org", "a  \nb", "<!-- c -->", "&lt;", "\x00", "экономика"),
]


def _sanitised(raw: str, base: str) -> str:
    cleaned = markdown._cleaner(base).clean(raw)
    return cleaned.strip() + "\n" if cleaned.strip() else ""


@pytest.mark.parametrize("seed", range(4))
def test_plain_html_is_cleaned_as_the_sanitiser_cleans_it(seed: int) -> None:
    pick = random.Random(seed)
    plain = 0
    for _ in range(1500):
        body = "".join(pick.choice(FRAGMENTS) for _ in range(pick.randint(1, 12)))
        raw = markdown._parser().html(body)
        for base in ("https://example.org/site/", "https://example.org/"):
            if markdown._is_plain(raw) and markdown._clean_plain(raw, base) is not None:
                plain += 1
            assert markdown._clean(raw, base, body) == _sanitised(raw, base), body
    assert plain > 300  # the way round the sanitiser is taken, not only the sanitiser


def test_plain_html_examples() -> None:
    raw = markdown._parser().html('He said "hi" & [left](/a?b=1&c=2).\n\n- one\n- two\n')
    assert markdown._is_plain(raw)
    body = 'He said "hi" & [left](/a?b=1&c=2).\n\n- one\n- two\n'
    cleaned = markdown._clean(raw, "https://example.org/site/", body)
    assert cleaned == (
        '<p>He said "hi" &amp; <a href="https://example.org/a?b=1&amp;c=2"'
        ' rel="noopener noreferrer">left</a>.</p>\n<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n'
    )
    assert cleaned == _sanitised(raw, "https://example.org/site/")
    for body in ("a\u00a0b", "<b>x</b>", "# Title", "![i](/p.png)", "[x](javascript:y)"):
        raw = markdown._parser().html(body)
        assert markdown._clean(raw, "https://example.org/", body) == _sanitised(
            raw, "https://example.org/"
        )
    assert not markdown._is_plain(markdown._parser().html("a\u00a0b"))
    assert not markdown._is_plain(markdown._parser().html("# Title"))


@pytest.mark.parametrize(
    "body",
    [
        "Hello <em>world",
        'See <a href="https://evil.example/">this',
        "x </blockquote> y",
        "a <strong>b</em> c",
        "<li>item",
        "<p>open",
        "**bold** <code>unclosed",
    ],
)
def test_raw_html_always_goes_through_the_sanitiser(body: str) -> None:
    """Raw HTML may leave tags open or close tags it never opened: the sanitiser balances
    them, so that nothing of a body runs on into the rest of the page."""
    raw = markdown._parser().html(body)
    base = "https://example.org/"
    assert markdown._clean(raw, base, body) == _sanitised(raw, base)


@pytest.mark.parametrize("seed", range(4))
def test_the_text_of_plain_html_is_the_text_of_the_parsers_events(seed: int) -> None:
    """The calendars' text of a body whose HTML is plain paragraphs and headings is taken
    from that HTML (markdown._text_plain): the text the parser's events give."""
    pick = random.Random(seed)
    taken = 0
    for _ in range(1500):
        body = "".join(pick.choice(FRAGMENTS) for _ in range(pick.randint(1, 12)))
        parser = markdown._parser()
        raw = parser.html(body)
        for base in ("https://example.org/site/", "https://example.org/"):
            text = markdown._text_plain(raw, base) if markdown._plain(raw, body) else None
            if text is not None:
                taken += 1
                assert text == markdown._text_of(parser.events(body), base), body
    assert taken > 200  # (plain paragraphs and headings: about one body in nine)


def test_the_text_of_plain_html_examples() -> None:
    body = (
        '## A "heading" & more\n\nA *soft*\nbreak, `code &>`, [a link](/a?b=1&c=2), '
        "[https://x.org/](https://x.org/) and [bad](javascript:alert(1)).\n\nLast."
    )
    raw = markdown._parser().html(body)
    assert markdown._plain(raw, body)
    expected = (
        'A "heading" & more\n\nA soft break, code &>, a link (https://example.org/a?b=1&c=2),'
        " https://x.org/ and bad.\n\nLast.\n"
    )
    assert markdown._text_plain(raw, "https://example.org/site/") == expected
    with markdown.memoised():
        assert markdown.to_text(body, "https://example.org/site/") == expected
    assert markdown.to_text(body, "https://example.org/site/") == expected  # (the events')
    for other in ("- a list", "> a quote", "[l](https://x.org/%41)", "a  \nb"):
        raw = markdown._parser().html(other)
        if markdown._plain(raw, other):
            assert markdown._text_plain(raw, "https://example.org/") is None, other
