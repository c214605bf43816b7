"""The model's fast paths decide as the full checks do.

``_url`` accepts a plain http(s) URL by one pattern before it would split it; the site's host
name is worked out once per base URL. Both are held to the straightforward code on generated
values.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st

from eventfeed import model


def straightforward_url(value: str) -> str:
    """``model._url`` as it was, before its fast path."""
    if model._CONTROL.search(value) or any(c.isspace() for c in value):
        raise ValueError("URL must not contain spaces or control characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{model.shown(value)} is not an http(s) URL")
    if '"' in value or "<" in value or ">" in value or "\\" in value:
        raise ValueError("URL contains characters that must be percent-encoded")
    return value


def outcome(check: object, value: str) -> tuple[str, str]:
    try:
        return ("ok", check(value))  # type: ignore[operator]
    except ValueError as exc:
        return ("error", str(exc))


PIECES = [":", "//", "/", "?", "#", "@", "[", "]", "[::1]", "a", "example.org", "-", ".", "%22"]
PIECES += ['"', "<", ">", "\\", " ", "\t", "\n", "\x7f", "\u00e9", "\u0430", "\uff0f", "\u2028"]
PIECES += ["x:8080", "", "~", "!", "A-Z"]
part = st.lists(st.sampled_from(PIECES), max_size=4).map("".join)
URLS = st.tuples(
    st.sampled_from(["http", "https", "HTTPS", "ftp", "", "http "]),
    st.sampled_from(["://", ":/", ":", "//", ""]),
    st.one_of(st.just(""), st.sampled_from(["a", "example.org", "a-b.example"]), part),
    st.one_of(st.just(""), st.sampled_from(["/", "/x?y=1#z", "?q", "#f"]), part),
).map("".join)


@settings(derandomize=True, max_examples=1000, deadline=None)
@given(URLS)
def test_urls_are_judged_as_before(value: str) -> None:
    assert outcome(model._url, value) == outcome(straightforward_url, value)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.text(max_size=30).map(lambda tail: "https://example.org/" + tail))
def test_url_paths_are_judged_as_before(value: str) -> None:
    assert outcome(model._url, value) == outcome(straightforward_url, value)


def test_the_site_domain_is_the_host_of_its_url() -> None:
    for url, host in [
        ("https://events.example.org/sub/", "events.example.org"),
        ("https://EVENTS.example.org", "events.example.org"),
        ("https://user@[::1]:8080/x", "::1"),
    ]:
        assert model._hostname(url) == host == (urlsplit(url).hostname or "localhost")
