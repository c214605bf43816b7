"""Record bodies: CommonMark to sanitised HTML, and to readable plain text.

HTML goes through an allow-list sanitiser (nh3) after rendering, so raw HTML in a body, script,
event handlers and ``javascript:``/``data:`` URLs never reach a feed, page or calendar. Relative
links become absolute against the site's base URL, because feeds and calendars are read far from
the site.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache, partial
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit

import nh3
import pyromark
from pyromark.event import Event

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
def _parser() -> pyromark.Markdown:
    # CommonMark with pipe tables; raw HTML passes through the parser so the sanitiser can
    # remove what is unsafe.
    return pyromark.Markdown(options=pyromark.Options.ENABLE_TABLES)


def absolute(url: str, base_url: str) -> str:
    """Resolve a link against the site; keep absolute http(s)/mailto links as they are."""
    url = url.strip()
    scheme = urlsplit(url).scheme.lower()
    if scheme:
        return url
    return urljoin(base_url, url)


#: What a link may hold as it is; anything else is percent-encoded.
_NEEDS_ENCODING = re.compile(r"[^A-Za-z0-9;/?:@&=+$,\-_.!~*'()#]|%(?![0-9A-Fa-f]{2})")
_URL_SAFE = ";/?:@&=+$,-_.!~*'()#"
_ESCAPE = re.compile(r"(%[0-9A-Fa-f]{2})")


def _link(url: str, base_url: str) -> str:
    """A body's link as a page, feed or calendar shows it: absolute, its host name in ASCII
    (punycode), and anything else a URL cannot hold percent-encoded (an escape already there
    stays), so the HTML's link and the text's are the same string.
    """
    url = absolute(url, base_url)
    if "%" not in url and not _NEEDS_ENCODING.search(url):
        return url
    parts = urlsplit(url)
    if parts.netloc:
        cut = url.index("//") + 2 + len(parts.netloc)
        head = url[: url.index("//") + 2] + _ascii_netloc(parts.netloc)
    elif parts.scheme == "mailto":
        cut, head = len(url), url[:7] + _ascii_address(url[7:])
    else:
        cut, head = 0, ""
    return _encoded(head) + _encoded(url[cut:])


def _encoded(text: str) -> str:
    """Percent-encode what a URL cannot hold, keeping well-formed escapes as they are."""
    return "".join(
        piece if _ESCAPE.fullmatch(piece) else quote(piece, safe=_URL_SAFE)
        for piece in _ESCAPE.split(text)
    )


def _ascii_name(name: str) -> str:
    """A host name in ASCII: escapes decoded, then IDNA; left as it was where IDNA cannot."""
    try:
        return unquote(name).encode("idna").decode("ascii")
    except UnicodeError:
        return name


def _ascii_netloc(netloc: str) -> str:
    """``user@host:port`` with the host name in ASCII; an IPv6 literal stays as it is."""
    user, at, host = netloc.rpartition("@")
    if host.startswith("["):  # an IPv6 literal
        return netloc
    name, colon, port = host.partition(":")
    if name.isascii() and "%" not in name:
        return netloc
    return f"{user}{at}{_ascii_name(name)}{colon}{port}"


def _ascii_address(address: str) -> str:
    """A ``mailto:`` address (and its query) with the domain in ASCII."""
    local, at, rest = address.rpartition("@")
    if not at:
        return address
    domain, mark, query = rest.partition("?")
    if domain.isascii() and "%" not in domain:
        return address
    return f"{local}@{_ascii_name(domain)}{mark}{query}"


#: Links worked out by :func:`_resolved`, by link and base URL; at most :data:`_MAX_LINKS`.
_LINKS: dict[tuple[str, str], tuple[str, bool]] = {}
_MAX_LINKS = 1 << 14


def _resolved(url: str, base_url: str) -> tuple[str, bool]:
    """:func:`_link` of ``url``, and whether its scheme is allowed (else the sanitiser drops
    the link and the text keeps only its label). Kept for the next body: bodies link the same
    pages again and again, and working a link out cost a third of cleaning a body."""
    key = (url, base_url)
    found = _LINKS.get(key)
    if found is None:
        link = _link(url, base_url)
        found = link, urlsplit(link).scheme.lower() in URL_SCHEMES
        if len(_LINKS) < _MAX_LINKS:
            _LINKS[key] = found
    return found


#: Renderings of the current build, (HTML, text) by (body, base URL); None outside a build.
_MEMO: ContextVar[dict[tuple[str, str], tuple[str, str]] | None] = ContextVar(
    "eventfeed_markdown_memo", default=None
)


@contextmanager
def memoised() -> Iterator[None]:
    """Within the block, render each (body, base URL) once, to HTML and to text together.

    The calendars, feeds and pages all show the same bodies; rendering is pure, so a second
    request gets the first result, and both forms are made at the first. The memo lives for one
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
        parser = _parser()
        raw = parser.html(body)
        plain = _plain(raw, body)
        text = _text_plain(raw, base_url) if plain else None
        if text is None:
            text = _text_of(parser.events(body), base_url)
        found = memo[key] = (_clean(raw, base_url, body, plain), text)
    return found


def to_html(body: str, base_url: str) -> str:
    """Render Markdown to sanitised HTML with absolute links."""
    if _MEMO.get() is None:
        return _clean(_parser().html(body), base_url, body)
    return _both(body, base_url)[0]


def to_text(body: str, base_url: str) -> str:
    """Plain text for calendar DESCRIPTION: paragraphs, list bullets, links as ``text (URL)``."""
    if _MEMO.get() is None:
        return _text_of(_parser().events(body), base_url)
    return _both(body, base_url)[1]


def _clean(raw: str, base_url: str, body: str, plain: bool | None = None) -> str:
    """Sanitise HTML rendered from ``body``; relative links become absolute, unsafe ones are
    dropped.

    When the body holds no ``<`` (no raw HTML, no autolink), every tag was written by the
    parser, balanced and in order; such HTML, when it is plain (:func:`_is_plain`), is
    cleaned without the sanitiser. Raw HTML always goes through it: an unclosed ``<a>`` or
    ``<em>`` there, closed by the sanitiser, would otherwise run on into the rest of the page.
    ``plain``: :func:`_plain` of the two, when the caller has it.
    """
    if plain is None:
        plain = _plain(raw, body)
    cleaned = _clean_plain(raw, base_url) if plain else None
    if cleaned is None:
        cleaned = _cleaner(base_url).clean(raw)
    return cleaned.strip() + "\n" if cleaned.strip() else ""


def _plain(raw: str, body: str) -> bool:
    """Whether the HTML ``raw`` the parser wrote of ``body`` is all the parser's own (no
    ``<`` in the body) and plain (:func:`_is_plain`)."""
    return "<" not in body and _is_plain(raw)


#: The tags of HTML the sanitiser would only rewrite, not change (:func:`_is_plain`), but
#: for links: what the parser writes for paragraphs, emphasis, code spans, lists, quotes and
#: headings (``h1`` is not allowed).
_PLAIN_NAMES = ("p", "strong", "em", "code", "ul", "ol", "li", "blockquote", "a")
_PLAIN_TAGS = frozenset(
    f"<{end}{tag}>" for tag in (*_PLAIN_NAMES, "h2", "h3", "h4", "h5", "h6") for end in ("", "/")
) - {"<a>"}
#: a link without a title, as the parser writes it (``"`` in a link as ``%22``)
_PLAIN_A = re.compile(r'<a href="(?:[^"<>&\x00-\x20\x7f-\xa0]|&amp;)+">')
_TAG = re.compile(r"<[^<>]*>")
_ENTITIES = ("&amp;", "&lt;", "&gt;", "&quot;")


def _is_plain(raw: str) -> bool:
    """Whether the sanitiser would only rewrite the links of ``raw`` (and write a quote in
    text as itself): the tags are those of :data:`_PLAIN_TAGS` and plain links, and the text
    has nothing HTML parsing treats specially: only printable characters and line breaks (no
    control character, no no-break space, no noncharacter) and no entity but the four the
    parser writes. Checked with whole-string operations: a regular expression over each
    character cost as much as the sanitiser."""
    if not raw.replace("\n", "").isprintable():
        return False
    amps = raw.count("&")
    if amps and amps != sum(map(raw.count, _ENTITIES)):
        return False
    tags = _TAG.findall(raw)
    if raw.count("<") != len(tags) or raw.count(">") != len(tags):
        return False
    return all(_PLAIN_A.fullmatch(tag) for tag in set(tags) - _PLAIN_TAGS)


#: A link the sanitiser keeps as it is: http(s) with a host name of plain labels (no user,
#: no port: a link it cannot parse as a URL, an invalid host above all, it drops), or an
#: e-mail address.
_PLAIN_URL = re.compile(
    r"https?://[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(?:[/?#][!#$%&'()*+,\-./0-9:;=?@A-Z_a-z~]*)?"
    r"|mailto:[A-Za-z0-9._+\-]+@[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?"
)
#: the link of each ``<a>`` of such HTML (the parser writes ``"`` in a link as ``%22``)
_PLAIN_LINK = re.compile(r'<a href="([^"]+)">')


def _clean_plain(raw: str, base_url: str) -> str | None:
    """What the sanitiser makes of HTML that :func:`_is_plain` accepts, without parsing it:
    the same markup, with text written as the HTML serialiser writes it (a quote as itself)
    and each link resolved as :func:`_cleaner` resolves it, marked ``rel`` as it marks them.
    None when a link's scheme is not allowed (the sanitiser drops it)."""
    parts = _PLAIN_LINK.split(raw.replace("&quot;", '"'))
    for i in range(1, len(parts), 2):
        link, allowed = _resolved(parts[i].replace("&amp;", "&"), base_url)
        if not allowed or not _PLAIN_URL.fullmatch(link):
            return None
        shown = link.replace("&", "&amp;").replace('"', "&quot;").replace("\xa0", "&nbsp;")
        parts[i] = f'<a href="{shown}" rel="noopener noreferrer">'
    return "".join(parts)


@cache
def _cleaner(base_url: str) -> nh3.Cleaner:
    """The sanitiser for one site, made once: setting one up (its allow-lists) cost about as
    much as cleaning a body with it."""

    def rewrite(tag: str, attribute: str, value: str) -> str | None:
        if attribute != "href" and attribute != "src":
            return value
        link, allowed = _resolved(value, base_url)
        return link if allowed else None

    return nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        attribute_filter=rewrite,
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


#: the end of a paragraph or heading (but ``h1``: not plain), as the parser writes it
_BLOCK_END = re.compile(r"</(?:p|h[2-6])>\n")
#: tags that leave only their text: emphasis, code spans, the start of a block
_DROPPED = re.compile(r"</?(?:strong|em|code)>|<(?:p|h[2-6])>")
#: a link of plain HTML once those are dropped from its label, as the body wrote it (no %)
_TEXT_LINK = re.compile(r'<a href="([^"%]*)">([^<]*)</a>')


def _text_plain(raw: str, base_url: str) -> str | None:
    """:func:`_text_of` of a body whose HTML the parser wrote (``raw``) is its own and plain
    (:func:`_plain`), worked out from that HTML when it is only paragraphs and headings
    with emphasis, code spans and links, each link as the body wrote it (no ``%`` in it: the
    parser escaped nothing in it but ``&``): a line of text for each block and a blank line
    after it, a soft line break read as a space. None for any other (lists, quotes): the
    parser's events give the text.

    Taking the text from the events cost more than rendering and cleaning the HTML (the
    parser makes a Python dictionary of each); this takes it with whole-string operations,
    as :func:`_clean_plain` cleans."""
    if "<ul>" in raw or "<ol>" in raw or "<blockquote>" in raw:
        return None
    text = _DROPPED.sub("", _BLOCK_END.sub("\x00", raw)).replace("\n", " ")
    if "<a" in text:
        text = _TEXT_LINK.sub(partial(_link_text, base_url), text)
    if "<" in text or not text.endswith("\x00"):
        return None  # a link with % in it
    text = "\n\n".join(_unescaped(text).split("\x00"))
    return text.strip() + "\n" if text.strip() else ""


def _link_text(base_url: str, found: re.Match[str]) -> str:
    """A link's label as the text reads it (:func:`_labelled`), escaped as the text around."""
    link, allowed = _resolved(found[1].replace("&amp;", "&"), base_url)
    return _escaped(_labelled(_unescaped(found[2]), link, allowed))


def _labelled(label: str, url: str, allowed: bool) -> str:
    """A link's label as the text reads it: ``label (URL)``, unless the label is the URL,
    or the link's scheme is not allowed (the sanitiser drops the link: the label stays)."""
    if not allowed:
        return label
    shown = url.removeprefix("mailto:")
    return label if label.strip() in (url, shown) else f"{label} ({shown})"


def _unescaped(text: str) -> str:
    """Text of plain HTML as the parser had it: the four entities it writes (and only
    those: :func:`_is_plain`) read back."""
    if "&" not in text:
        return text
    return (
        text.replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    )


def _escaped(text: str) -> str:
    """``text`` written with those four entities, as :func:`_unescaped` reads them back."""
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def _text_of(events: Iterable[Event], base_url: str) -> str:
    """The body as plain text, from the parser's events.

    A paragraph, heading or table cell becomes a line of its own; list items get ``- `` or
    ``N. `` and an indent per nesting level; block quotes keep ``> `` on every line; links
    read ``text (URL)`` unless the text already is the URL. Raw HTML is left out.
    """
    out: list[str] = []
    prefix: list[str] = []
    counters: list[int | None] = []  # per open list: the next number, None for bullets
    pending_bullet = ""
    line: _Line | None = None  # the inline content being collected
    code: list[str] | None = None  # the text of the code block being read

    def flush() -> None:
        nonlocal line, pending_bullet
        if line is None:
            return
        indent = "  " * max(0, len(counters) - 1)
        lead = "".join(prefix) + indent
        text = "".join(line.parts)
        out.append(lead + pending_bullet + text.replace("\n", "\n" + lead) + "\n")
        line, pending_bullet = None, ""

    for event in events:
        if isinstance(event, str):  # SoftBreak, HardBreak, Rule
            if event == "Rule":
                flush()
                out.append("---\n\n")
            else:
                line = line or _Line()
                line.parts.append(" " if event == "SoftBreak" else "\n")
            continue
        ((kind, value),) = event.items()  # each event is a dictionary of one item
        if kind == "Text" or kind == "Code":
            if code is not None:
                code.append(str(value))
            else:
                line = line or _Line()
                line.parts.append(str(value))
        elif kind == "Start":
            tag: Any = value
            if isinstance(tag, dict) and ("Link" in tag or "Image" in tag):
                data = tag["Image"] if "Image" in tag else tag["Link"]
                url = str(data["dest_url"])
                if data["link_type"] == "Email":
                    url = "mailto:" + url
                line = line or _Line()
                line.open(*_resolved(url, base_url))
                continue
            if tag in ("Emphasis", "Strong", "Strikethrough", "Superscript", "Subscript"):
                continue
            flush()  # any block begins a new line: a tight item's nested list, a quote, a table
            if tag == "Item":
                number = counters[-1] if counters else None
                if number is not None:
                    pending_bullet = f"{number}. "
                    counters[-1] = number + 1
                else:
                    pending_bullet = "- "
            elif isinstance(tag, dict):
                if "List" in tag:
                    counters.append(tag["List"])
                elif "BlockQuote" in tag:
                    prefix.append("> ")
                elif "CodeBlock" in tag:
                    code = []
        elif kind == "End":
            if value == "CodeBlock" and code is not None:
                out.append("".join(code).rstrip("\n") + "\n\n")
                code = None
            elif value in ("Link", "Image") and line is not None:
                line.close(value == "Image")
            elif value in ("Paragraph", "TableCell", "Item") or (
                isinstance(value, dict) and "Heading" in value
            ):
                flush()
                if value != "TableCell" and value != "Item" and not counters:
                    out.append("\n")
            elif isinstance(value, dict) and "List" in value:
                flush()
                counters.pop()
                if not counters:  # a nested list goes on with its parent's items
                    out.append("\n")
            elif isinstance(value, dict) and "BlockQuote" in value:
                flush()
                prefix.pop()
    flush()
    text = "".join(out)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip() + "\n" if text.strip() else ""


class _Line:
    """The inline content of one paragraph, heading, table cell or tight list item."""

    __slots__ = ("links", "parts")

    def __init__(self) -> None:
        self.parts: list[str] = []
        # each open link's URL, whether its scheme is allowed, and where its label starts
        self.links: list[tuple[str, bool, int]] = []

    def open(self, url: str, allowed: bool) -> None:
        self.links.append((url, allowed, len(self.parts)))

    def close(self, is_image: bool) -> None:
        if not self.links:
            return
        url, allowed, start = self.links.pop()
        label = "".join(self.parts[start:])
        if allowed and is_image:  # the alt text, then where the picture is
            self.parts[start:] = [f"{label} ({url})" if label else url]
        else:
            self.parts[start:] = [_labelled(label, url, allowed)]
