"""The site in a real headless browser (Debian's chromium), driven over the DevTools Protocol.

Opens the index, an event page and a collection page from a local ``eventfeed serve`` server,
and checks that the browser reports no console errors (failed loads included), that every
link the browser resolves points to a file in out/ (internal, feed and calendar links; webcal
and https subscription addresses mapped to out/), and saves phone- and desktop-size
screenshots. With ``EVENTFEED_UPDATE_GOLDEN=1`` the screenshots are written to ``docs/`` for
the README.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from urllib.request import urlopen

import pytest
import websocket

from eventfeed import paths
from eventfeed.build import compile_site
from eventfeed.load import load_site
from eventfeed.serve import make_server
from eventfeed.write import write_tree

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SITE_URL = "https://example.org/untfsse-events/"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
]
PHONE = (390, 844, 2, True)
DESKTOP = (1280, 900, 1, False)


def chromium() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    if os.environ.get("CI"):
        pytest.fail("chromium is missing; .ci/run installs it with apt-get")
    pytest.skip("chromium is not installed (apt-get install chromium)")


class DevTools:
    """The few DevTools Protocol calls the test needs, over one page's websocket."""

    def __init__(self, url: str) -> None:
        self.ws = websocket.create_connection(url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        ident = self.next_id
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    def wait_for(self, method: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv())
            self.events.append(message)
            if message.get("method") == method:
                return
        raise TimeoutError(method)

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        # let late console messages arrive
        self.call("Runtime.evaluate", expression="1", awaitPromise=True)

    def errors(self) -> list[str]:
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(json.dumps(params["exceptionDetails"])[:300])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(json.dumps(params["args"])[:300])
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(params["entry"]["text"] + " " + params["entry"].get("url", ""))
        return found

    def links(self) -> list[str]:
        script = (
            "JSON.stringify(Array.from(document.querySelectorAll('a[href], link[href]'))"
            ".map(e => e.href))"
        )
        result = self.call("Runtime.evaluate", expression=script, returnByValue=True)
        value: list[str] = json.loads(result["result"]["value"])
        return value

    def screenshot(self, width: int, height: int, scale: int, mobile: bool) -> bytes:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=scale,
            mobile=mobile,
        )
        data = self.call("Page.captureScreenshot", format="png")["data"]
        return base64.b64decode(data)

    def close(self) -> None:
        self.ws.close()


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site") / "out"
    site = load_site(ROOT / "events")
    now = datetime(2024, 1, 1, tzinfo=UTC)
    write_tree(folder, compile_site(site, None, now, as_of=date(2022, 12, 10)), events_dir=None)
    return folder


@pytest.fixture(scope="module")
def base(out: Path) -> Iterator[str]:
    server = make_server(out, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevTools]:
    program = chromium()
    profile = tmp_path_factory.mktemp("profile")
    process = subprocess.Popen(
        [program, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail("chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as response:
            targets = json.load(response)
        page = next(t for t in targets if t["type"] == "page")
        tools = DevTools(page["webSocketDebuggerUrl"])
        for domain in ("Page", "Runtime", "Log"):
            tools.call(f"{domain}.enable")
        yield tools
        tools.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def in_out(url: str, base: str) -> str | None:
    """The out/ path a resolved link names, or None for another site."""
    url = url.split("#")[0]
    if url.startswith("webcal://"):
        url = "https://" + url.removeprefix("webcal://")
    for prefix in (base, SITE_URL):
        if url.startswith(prefix):
            return url.removeprefix(prefix) or "index.html"
    return None


PAGES = ["index.html", "events/untfsse-coordination-calls.html", "collections/webinars.html"]


@pytest.mark.parametrize("page", PAGES)
def test_page_loads_without_errors_and_links_resolve(
    browser: DevTools, base: str, out: Path, page: str
) -> None:
    browser.open(base + page)
    assert browser.errors() == []
    links = browser.links()
    internal = [path for path in (in_out(u, base) for u in links) if path is not None]
    missing = sorted({path for path in internal if not (out / path).is_file()})
    assert missing == []
    assert len(internal) >= 10
    kinds = {Path(p).suffix for p in internal}
    assert {".html", ".css", ".ics", ".xml", ".json"} <= kinds


#: A page whose "add to calendar" links carry text beyond ASCII (Spanish).
SPANISH = "events/trabajo-decente-ess-america-latina.html"
ADD_LINKS = (
    "JSON.stringify(Array.from(document.querySelectorAll("
    '\'a[href^="https://calendar.google.com/"], a[href^="https://outlook."]\'))'
    ".map(e => [e.getAttribute('href'), e.href]))"
)


def test_add_to_calendar_links_ask_for_the_form_encoded_text(browser: DevTools, base: str) -> None:
    """The links keep characters beyond ASCII as they are; the browser, following one, asks
    for the address with every such character in ``%XX`` of its UTF-8 bytes: the standard
    form encoding of the event's own text (the browser is the reader here, not our code)."""
    site = load_site(ROOT / "events")
    event = next(e for e in site.events if paths.event_page(e.id) == SPANISH)
    browser.open(base + SPANISH)
    result = browser.call("Runtime.evaluate", expression=ADD_LINKS, returnByValue=True)
    pairs: list[list[str]] = json.loads(result["result"]["value"])
    assert len(pairs) == 3
    for written, followed in pairs:
        assert not written.isascii()  # "América", "desafíos"
        assert followed.isascii()
        assert len(followed) > len(written)
        query = urlsplit(followed).query
        fields = parse_qsl(query, strict_parsing=True)
        assert urlencode(fields) == query
        title = dict(fields).get("text") or dict(fields)["subject"]
        assert title == event.record.title


def test_a_missing_stylesheet_would_be_reported(browser: DevTools, base: str, out: Path) -> None:
    """The console check can fail: a page whose stylesheet is missing gives an error."""
    (out / "broken.html").write_text(
        '<!DOCTYPE html><html lang="en"><title>x</title>'
        '<link rel="stylesheet" href="missing.css"><p>x</p></html>'
    )
    try:
        browser.open(base + "broken.html")
        assert any("404" in e for e in browser.errors())
    finally:
        (out / "broken.html").unlink()


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_screenshots(browser: DevTools, base: str, tmp_path: Path) -> None:
    shots = {}
    for name, page, size in (
        ("site-phone.png", "index.html", PHONE),
        ("site-desktop.png", "index.html", DESKTOP),
        ("event-phone.png", "events/accelerating-sdgs-through-sse-bangkok.html", PHONE),
    ):
        browser.open(base + page)
        shots[name] = browser.screenshot(*size)
        width, height, scale, _mobile = size
        assert png_size(shots[name]) == (width * scale, height * scale)
    browser.call("Emulation.clearDeviceMetricsOverride")
    if os.environ.get("EVENTFEED_UPDATE_GOLDEN") == "1":
        DOCS.mkdir(exist_ok=True)
        for name, data in shots.items():
            (DOCS / name).write_bytes(data)
    for name in shots:  # the README shows them
        assert png_size((DOCS / name).read_bytes()) == png_size(shots[name])
        assert f"docs/{name}" in (ROOT / "README.md").read_text(encoding="utf-8")
