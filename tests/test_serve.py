"""`eventfeed serve` over real HTTP on loopback: types, conditional GET, confinement, rebuilds."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventfeed.serve import resolve

from .conftest import MINIMAL, SiteDir

EVENTFEED = [sys.executable, "-m", "eventfeed"]


class Served:
    def __init__(self, process: subprocess.Popen[str], host: str, port: int) -> None:
        self.process = process
        self.host = host
        self.port = port

    def get(
        self, path: str, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request(method, path, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()


@pytest.fixture
def served(site: SiteDir) -> Iterator[Served]:
    site.record("one.md", MINIMAL)
    (site.root / "secret.txt").write_text("outside of out/")
    process = subprocess.Popen(
        [*EVENTFEED, "serve", "--port", "0", "--interval", "0.1"],
        cwd=site.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SOURCE_DATE_EPOCH": "1672531200"},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("serving out at http://127.0.0.1:"), line
    port = int(line.rsplit(":", 1)[1].strip().rstrip("/"))
    try:
        yield Served(process, "127.0.0.1", port)
    finally:
        process.terminate()
        _out, err = process.communicate(timeout=10)
        assert "Traceback" not in err, err


def test_content_types(served: Served) -> None:
    expected = {
        "/": "text/html; charset=utf-8",
        "/index.html": "text/html; charset=utf-8",
        "/events/one.html": "text/html; charset=utf-8",
        "/style.css": "text/css; charset=utf-8",
        "/calendar.ics": "text/calendar; charset=utf-8",
        "/events/one.ics": "text/calendar; charset=utf-8",
        "/calendar.json": "application/calendar+json",
        "/feeds/atom.xml": "application/atom+xml",
        "/feeds/rss.xml": "application/rss+xml",
        "/feeds/feed.json": "application/feed+json",
    }
    found = {}
    for path in expected:
        status, headers, body = served.get(path)
        assert status == 200, path
        assert headers["Content-Length"] == str(len(body))
        found[path] = headers["Content-Type"]
    assert found == expected
    status, headers, body = served.get("/calendar.ics", method="HEAD")
    assert (status, body) == (200, b"")
    assert int(headers["Content-Length"]) > 100


def test_conditional_get_answers_304(served: Served) -> None:
    status, headers, body = served.get("/calendar.ics")
    assert status == 200
    assert body.startswith(b"BEGIN:VCALENDAR")
    etag, modified = headers["ETag"], headers["Last-Modified"]
    status, again, body = served.get("/calendar.ics", {"If-None-Match": etag})
    assert (status, body, again["ETag"]) == (304, b"", etag)
    status, _, body = served.get("/calendar.ics", {"If-Modified-Since": modified})
    assert (status, body) == (304, b"")
    status, _, body = served.get("/calendar.ics", {"If-None-Match": '"other"'})
    assert status == 200
    assert body.startswith(b"BEGIN:VCALENDAR")
    status, _, _ = served.get(
        "/calendar.ics", {"If-Modified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"}
    )
    assert status == 200


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/events/..%2f..%2fsecret.txt",
        "/..%5csecret.txt",
        "//secret.txt",
        "/events/%00.html",
        "/%ff",
        "/nothing-here.html",
    ],
)
def test_never_serves_outside_out(served: Served, path: str) -> None:
    status, headers, body = served.get(path)
    assert status == 404
    assert b"outside of out/" not in body
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"Page not found" in body


def test_bad_request_without_traceback(served: Served) -> None:
    with socket.create_connection((served.host, served.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1 extra words\r\n\r\n")
        answer = sock.recv(1000)
    assert b"Error code explanation: 400 - Bad request syntax" in answer
    status, _, _ = served.get("/", method="DELETE")
    assert status == 501


def wait_for(check: object, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    pytest.fail("timed out")


def test_rebuilds_after_an_edit_and_keeps_the_last_good_build(
    served: Served, site: SiteDir
) -> None:
    status, _, body = served.get("/events/one.html")
    assert b'<h1 class="p-name">A meeting</h1>' in body
    site.record("one.md", MINIMAL.replace("title: A meeting", "title: A renamed meeting"))
    wait_for(lambda: b"A renamed meeting</h1>" in served.get("/events/one.html")[2])
    # a broken record: problems are printed, the last good build stays
    site.record("one.md", MINIMAL.replace("end: 2022-12-07T17:00", "end: 2022-12-07T10:00"))
    time.sleep(1.0)
    status, _, body = served.get("/events/one.html")
    assert status == 200
    assert b"A renamed meeting</h1>" in body
    served.process.terminate()
    _, err = served.process.communicate(timeout=10)
    assert "events/one.md:5: end: must be after start" in err
    assert "build failed; still serving the last good build" in err


def test_resolve_confines_paths_to_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "out"
    (root / "events").mkdir(parents=True)
    (root / "index.html").write_text("i")
    (root / "events" / "a.html").write_text("a")
    (tmp_path / "secret").write_text("s")
    (root / "link").symlink_to(tmp_path / "secret")
    assert resolve(root, "/") == (root / "index.html").resolve()
    assert resolve(root, "/events/a.html?x=1#y") == (root / "events" / "a.html").resolve()
    assert resolve(root, "/events/") is None
    assert resolve(root, "/link") is None
    assert resolve(root, "/../secret") is None
    assert resolve(root, "/%2e%2e/secret") is None


def test_port_in_use_is_a_clear_error(site: SiteDir) -> None:
    site.record("one.md", MINIMAL)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*EVENTFEED, "serve", "--port", str(port)],
            cwd=site.root,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"error: cannot listen on 127.0.0.1:{port}: " in result.stderr
    assert "fix: choose another --port (0 picks a free one)" in result.stderr
    assert "Traceback" not in result.stderr
