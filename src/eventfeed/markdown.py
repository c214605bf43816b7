"""Record bodies: CommonMark to sanitised HTML, and to readable plain text.

HTML goes through an allow-list sanitiser (nh3) after rendering, so raw HTML in a body, script,
event handlers and ``javascript:``/``data:`` URLs never reach a feed, page or calendar. Relative
links become absolute against the site's base URL, because feeds and calendars are read far from
the site.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from urllib.parse import urljoin, urlsplit

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

ALLOWED_TAGS = frozenset(
    {
        "a",
        "abbr",
        "b",
        "blockquote",
        "br",
        "code",
        "dd",
        "del",
        "dl",
        "dt",
        "em",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "img",
        "li",
        "ol",
        "p",
        "pre",
        "s",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "th",
        "thead",
        "tr",
        "ul",
    }
)
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "abbr": {"title"},
    "td": {"align"},
    "th": {"align"},
    "ol": {"start"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})


@cache
def _parser() -> MarkdownIt:
    # CommonMark with tables; raw HTML is parsed so the sanitiser can remove what is unsafe.
    return MarkdownIt("commonmark", {"html": True}).enable("table")


def absolute(url: str, base_url: str) -> str:
    """Resolve a link against the site; keep absolute http(s)/mailto links as they are."""
    url = url.strip()
    scheme = urlsplit(url).scheme.lower()
    if scheme:
        return url
    return urljoin(base_url, url)


#: Renderings of the current build, (HTML, text) by (body, base URL); None outside a build.
_MEMO: ContextVar[dict[tuple[str, str], tuple[str, str]] | None] = ContextVar(
    "eventfeed_markdown_memo", default=None
)


@contextmanager
def memoised() -> Iterator[None]:
    """Within the block, render each (body, base URL) once, to HTML and to text together.

    The calendars, feeds and pages all show the same bodies; rendering is pure, so a second
    request gets the first result, and both forms come from one parse. The memo lives for one
    build only, so a long-running process (``eventfeed serve``) does not keep the renderings
    of every build it made.
    """
    token = _MEMO.set({})
    try:
        yield
    finally:
        _MEMO.reset(token)


def _both(body: str, base_url: str) -> tuple[str, str]:
    memo = _MEMO.get()
    assert memo is not None
    key = (body, base_url)
    found = memo.get(key)
    if found is None:
        env: dict[str, object] = {}
        tokens = _parser().parse(body, env)
        text = _text_of(tokens, base_url)  # first: rendering HTML sets attributes on images
        raw = _parser().renderer.render(tokens, _parser().options, env)
        found = memo[key] = (_clean(raw, base_url), text)
    return found


def to_html(body: str, base_url: str) -> str:
    """Render Markdown to sanitised HTML with absolute links."""
    if _MEMO.get() is None:
        return _clean(_parser().render(body), base_url)
    return _both(body, base_url)[0]


def to_text(body: str, base_url: str) -> str:
    """Plain text for calendar DESCRIPTION: paragraphs, list bullets, links as ``text (URL)``."""
    if _MEMO.get() is None:
        return _text_of(_parser().parse(body), base_url)
    return _both(body, base_url)[1]


def _clean(raw: str, base_url: str) -> str:
    """Sanitise rendered HTML; relative links become absolute, unsafe ones are dropped."""
    cleaned: str = _cleaner(base_url).clean(raw)
    return cleaned.strip() + "\n" if cleaned.strip() else ""


@cache
def _cleaner(base_url: str) -> nh3.Cleaner:
    """The sanitiser for one site, made once: setting one up (its allow-lists) cost about as
    much as cleaning a body with it."""

    def rewrite(tag: str, attribute: str, value: str) -> str | None:
        if attribute in ("href", "src"):
            value = absolute(value, base_url)
            if urlsplit(value).scheme.lower() not in URL_SCHEMES:
                return None
        return value

    return nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        attribute_filter=rewrite,
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


def _text_of(tokens: list[Token], base_url: str) -> str:
    out: list[str] = []
    prefix: list[str] = []
    counters: list[int] = []
    pending_bullet = ""
    for token in tokens:
        kind = token.type
        if kind in ("bullet_list_open", "ordered_list_open"):
            counters.append(int(token.attrGet("start") or 1) if kind == "ordered_list_open" else 0)
        elif kind in ("bullet_list_close", "ordered_list_close"):
            counters.pop()
            out.append("\n")
        elif kind == "list_item_open":
            if counters and counters[-1]:
                pending_bullet = f"{counters[-1]}. "
                counters[-1] += 1
            else:
                pending_bullet = "- "
        elif kind == "blockquote_open":
            prefix.append("> ")
        elif kind == "blockquote_close":
            prefix.pop()
        elif kind == "inline":
            indent = "  " * max(0, len(counters) - 1)
            text = _inline_text(token.children or [], base_url)
            lead = "".join(prefix) + indent + pending_bullet
            pending_bullet = ""
            out.append(lead + text.replace("\n", "\n" + "".join(prefix) + indent) + "\n")
        elif kind in ("paragraph_close", "heading_close") and not counters:
            out.append("\n")
        elif kind in ("fence", "code_block"):
            out.append(token.content.rstrip("\n") + "\n\n")
        elif kind == "hr":
            out.append("---\n\n")
    text = "".join(out)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip() + "\n" if text.strip() else ""


def _inline_text(children: list[Token], base_url: str) -> str:
    parts: list[str] = []
    links: list[tuple[str, int]] = []
    for child in children:
        kind = child.type
        if kind in ("text", "code_inline"):
            parts.append(child.content)
        elif kind == "softbreak":
            parts.append(" ")
        elif kind == "hardbreak":
            parts.append("\n")
        elif kind == "link_open":
            links.append((absolute(str(child.attrGet("href") or ""), base_url), len(parts)))
        elif kind == "link_close" and links:
            href, start = links.pop()
            label = "".join(parts[start:])
            if urlsplit(href).scheme.lower() in URL_SCHEMES and label.strip() != href:
                parts.append(f" ({href.removeprefix('mailto:')})")
        elif kind == "image":
            src = absolute(str(child.attrGet("src") or ""), base_url)
            parts.append(f"{child.content} ({src})" if child.content else src)
    return "".join(parts)
