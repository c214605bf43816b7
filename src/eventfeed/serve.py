"""``eventfeed serve``: build, serve ``out/`` on loopback, rebuild when a record changes.

A local preview, not a production server. It answers GET and HEAD for files inside the output
folder only: the request path is percent-decoded, refused if any segment is ``..`` or holds a
backslash or NUL, and the resolved file must still lie inside the folder (so a symbolic link
cannot lead out either). Responses carry the media types a static host should send
(:func:`eventfeed.pages.content_type`), an ``ETag`` (a hash of the bytes) and ``Last-Modified``;
a conditional request that matches gets ``304 Not Modified`` (RFC 9110 section 13.1).

A background thread polls the records' modification times and rebuilds with the same library
calls as ``eventfeed build``. A failed rebuild prints its problems and the last good build stays
in place, because the writer replaces ``out/`` only after a successful compile.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import click

from . import paths
from .errors import EventfeedError, ProblemsFound, format_problems
from .load import display_path
from .options import events_option, out_option
from .pages import content_type
from .pipeline import compile_into
from .write import write_tree

Snapshot = dict[str, tuple[int, int]]


def rebuild(events_dir: Path, out_dir: Path, now: datetime | None = None) -> str:
    """Build ``events_dir`` into ``out_dir`` as ``eventfeed build`` does; return a summary.

    Raises :class:`~eventfeed.errors.EventfeedError` (problems in records, output refused).
    """
    clock = now or _clock()
    site, artifacts = compile_into(events_dir, out_dir, clock)
    write_tree(out_dir, artifacts, events_dir=events_dir, files=artifacts.manifest_files)
    where = display_path(out_dir)
    return f"built {len(site.events)} event(s) into {where} ({len(artifacts)} files)"


def _clock() -> datetime:
    from .cli import resolve_now  # the build command's clock (SOURCE_DATE_EPOCH or now)

    return resolve_now(None)


def snapshot(events_dir: Path) -> Snapshot:
    """Modification time and size of every file under the events folder."""
    found: Snapshot = {}
    for dirpath, _dirnames, filenames in os.walk(events_dir):
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                info = os.stat(path)
            except OSError:  # removed while we looked
                continue
            found[path] = (info.st_mtime_ns, info.st_size)
    return found


class Watcher(threading.Thread):
    """Polls the events folder and rebuilds when anything in it changes."""

    def __init__(
        self,
        events_dir: Path,
        out_dir: Path,
        *,
        interval: float = 0.5,
        report: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(name="eventfeed-watch", daemon=True)
        self.events_dir = events_dir
        self.out_dir = out_dir
        self.interval = interval
        self.report = report or (lambda text: click.echo(text, err=True))
        self.stopped = threading.Event()
        self.builds = 0
        self.last = snapshot(events_dir)

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            current = snapshot(self.events_dir)
            if current == self.last:
                continue
            self.last = current
            self.build_once()

    def build_once(self) -> None:
        try:
            self.report("change detected; " + rebuild(self.events_dir, self.out_dir))
        except ProblemsFound as exc:
            self.report(format_problems(exc.problems, "text"))
            self.report("build failed; still serving the last good build")
        except EventfeedError as exc:
            self.report(f"error: {exc}\nstill serving the last good build")
        self.builds += 1

    def stop(self) -> None:
        self.stopped.set()


def resolve(root: Path, request_path: str) -> Path | None:
    """The file a request path names inside ``root``, or None when it names none or escapes."""
    raw = urlsplit(request_path).path
    text = unquote(raw, errors="strict") if raw else "/"
    if not text.startswith("/") or "\\" in text or "\x00" in text:
        return None
    parts = [p for p in text.split("/") if p]
    if any(p in (".", "..") for p in parts):
        return None
    base = root.resolve()
    candidate = base.joinpath(*parts)
    if text.endswith("/") or candidate.is_dir():
        candidate = candidate / paths.INDEX
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not real.is_relative_to(base) or not real.is_file():
        return None
    return real


def make_handler(out_dir: Path, log: Callable[[str], None]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "eventfeed-serve"
        sys_version = ""

        def do_GET(self) -> None:
            self.respond(body=True)

        def do_HEAD(self) -> None:
            self.respond(body=False)

        def respond(self, *, body: bool) -> None:
            try:
                target = resolve(out_dir, self.path)
            except UnicodeDecodeError:
                target = None
            if target is None:
                self.not_found(body)
                return
            try:
                data = target.read_bytes()
                mtime = target.stat().st_mtime
            except OSError:  # replaced by a rebuild between resolve and read
                self.not_found(body)
                return
            etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
            modified = formatdate(int(mtime), usegmt=True)
            if self.not_modified(etag, int(mtime)):
                self.send_response(HTTPStatus.NOT_MODIFIED)
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", modified)
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                return
            name = target.relative_to(out_dir.resolve()).as_posix()
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type(name))
            self.send_header("Content-Length", str(len(data)))
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", modified)
            self.send_header("Cache-Control", "no-cache")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if body:
                self.wfile.write(data)

        def not_modified(self, etag: str, mtime: int) -> bool:
            match = self.headers.get("If-None-Match")
            if match is not None:  # takes precedence over If-Modified-Since (RFC 9110 13.2.2)
                tags = [t.strip().removeprefix("W/") for t in match.split(",")]
                return "*" in tags or etag in tags
            since = self.headers.get("If-Modified-Since")
            if since is None:
                return False
            try:
                when = parsedate_to_datetime(since)
            except (TypeError, ValueError, IndexError):
                return False
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return mtime <= int(when.timestamp())

        def not_found(self, body: bool) -> None:
            page = out_dir / paths.NOT_FOUND
            try:
                data = page.read_bytes()
            except OSError:
                data = b"<!DOCTYPE html><title>Not found</title><h1>Not found</h1>\n"
            self.send_response(HTTPStatus.NOT_FOUND)
            self.send_header("Content-Type", content_type(paths.NOT_FOUND))
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            if body:
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log(f"{self.address_string()} {format % args}")

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-response is not worth a traceback.
        exc = sys.exc_info()[1]
        click.echo(f"request from {client_address[0]} failed: {exc}", err=True)


def make_server(
    out_dir: Path, host: str = "127.0.0.1", port: int = 0, log: Callable[[str], None] | None = None
) -> Server:
    return Server((host, port), make_handler(out_dir, log or (lambda text: None)))


@click.command("serve")
@events_option()
@out_option("Output folder to build into and serve.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port to listen on; 0 picks a free one.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. The default is reachable from this computer only.",
)
@click.option(
    "--interval",
    type=click.FloatRange(0.05, 60),
    default=0.5,
    show_default=True,
    help="Seconds between checks of the records for changes.",
)
def serve_command(events_dir: Path, out_dir: Path, port: int, host: str, interval: float) -> None:
    """Build, then serve --out locally and rebuild whenever a record changes.

    A preview of the site with the media types, ETag and Last-Modified a static host sends.
    A build that fails prints its problems and the last good build keeps being served.

    \b
    Examples:
      eventfeed serve                 # http://127.0.0.1:8000/
      eventfeed serve --port 0        # any free port; the address is printed
    """
    try:
        click.echo(rebuild(events_dir, out_dir), err=True)
    except ProblemsFound as exc:
        click.echo(format_problems(exc.problems, "text"), err=True)
        if not (out_dir / paths.INDEX).is_file():
            click.echo("build failed and there is no earlier build to serve", err=True)
            sys.exit(1)
        click.echo("build failed; serving the last good build", err=True)
    except EventfeedError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    try:
        server = make_server(out_dir, host, port, log=lambda text: click.echo(text, err=True))
    except OSError as exc:
        click.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        click.echo("fix: choose another --port (0 picks a free one)", err=True)
        sys.exit(1)
    bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: listening on {host}, reachable from other computers", err=True)
    watcher = Watcher(events_dir, out_dir, interval=interval)
    watcher.start()
    click.echo(f"serving {display_path(out_dir)} at http://{shown}:{bound_port}/", nl=True)
    sys.stdout.flush()
    click.echo("watching for changes; press Ctrl+C to stop", err=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    finally:
        watcher.stop()
        server.server_close()
