"""`eventfeed serve` facing hostile requests: loopback only, nothing outside out/, no traceback.

Requests are written byte for byte on a socket, so no client library normalises them first.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventfeed.serve import make_server, serve_command

SECRET = b"SECRET-OUTSIDE-OUT"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, int, list[str]]]:
    out = tmp_path / "out"
    (out / "events").mkdir(parents=True)
    (out / "index.html").write_bytes(b"<p>index</p>")
    (out / "events" / "one.html").write_bytes(b"<p>one</p>")
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (out / "link.txt").symlink_to(tmp_path / "secret.txt")
    (out / "linked").symlink_to(tmp_path, target_is_directory=True)
    log: list[str] = []
    httpd = make_server(out, log=log.append)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    host, port = str(httpd.server_address[0]), int(httpd.server_address[1])
    try:
        yield host, port, log
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def raw_request(host: str, port: int, request: bytes) -> bytes:
    with socket.create_connection((host, port), timeout=5) as conn:
        conn.sendall(request)
        conn.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def get(host: str, port: int, target: bytes) -> bytes:
    return raw_request(host, port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")


def status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def test_binds_to_loopback_by_default(server: tuple[str, int, list[str]]) -> None:
    host, _port, _log = server
    assert host == "127.0.0.1"
    host_option = next(p for p in serve_command.params if p.name == "host")
    assert host_option.default == "127.0.0.1"


def test_serves_files_inside_out(server: tuple[str, int, list[str]]) -> None:
    host, port, _ = server
    response = get(host, port, b"/events/one.html")
    assert status(response) == 200
    assert response.endswith(b"<p>one</p>")


TRAVERSALS = [
    b"/../secret.txt",
    b"/events/../../secret.txt",
    b"/%2e%2e/secret.txt",
    b"/%2E%2E%2Fsecret.txt",
    b"/..%2fsecret.txt",
    b"/events/..%2F..%2Fsecret.txt",
    b"/%252e%252e/secret.txt",
    b"/..%5csecret.txt",
    b"/..\\secret.txt",
    b"//secret.txt",
    b"/%2F" + b"%2F".join([b"etc", b"passwd"]),
    b"/" + b"/".join([b"", b"etc", b"passwd"]),
    b"http://127.0.0.1/../secret.txt",
    b"/index.html%00../../secret.txt",
    b"/link.txt",
    b"/linked/secret.txt",
]


@pytest.mark.parametrize("target", TRAVERSALS, ids=[t.decode() for t in TRAVERSALS])
def test_nothing_outside_out_is_served(server: tuple[str, int, list[str]], target: bytes) -> None:
    host, port, log = server
    response = get(host, port, target)
    assert status(response) in (400, 403, 404), response[:200]
    assert SECRET not in response
    assert b"root:" not in response
    assert not any("Traceback" in line for line in log)


BAD = [
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"BREW /coffee HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
    b"GET /%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /caf\xc3\xa9\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /index.html HTTP/1.1\r\nNo colon here\r\n\r\n",
    b"GET /index.html HTTP/1.1\r\nIf-Modified-Since: not a date\r\n\r\n",
    b"GET /index.html HTTP/1.1\r\nIf-None-Match: " + b'"' * 5000 + b"\r\n\r\n",
    b"\x00\x01\x02\x16\x03\x01",  # a TLS handshake on the plain port
]


@pytest.mark.parametrize("request_bytes", BAD, ids=[repr(b[:24]) for b in BAD])
def test_bad_requests_get_an_answer_and_no_traceback(
    server: tuple[str, int, list[str]], request_bytes: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    host, port, log = server
    response = raw_request(host, port, request_bytes)
    if response.startswith(b"HTTP/"):
        assert status(response) in (200, 304, 400, 404, 405, 414, 501, 505), response[:200]
    elif response:  # no usable HTTP version in the request: a bare error page (HTTP/0.9)
        assert re.search(rb"<p>Error code: (400|505)</p>", response), response[:200]
    assert "Traceback" not in capsys.readouterr().err
    assert not any("Traceback" in line for line in log)
    # the server is still answering
    assert status(get(host, port, b"/index.html")) == 200
