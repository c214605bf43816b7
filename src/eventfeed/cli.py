"""The command line: parse options, call the library, map known errors to messages and exit codes.

Exit codes: 0 success, 1 problems in the input or the output folder, 2 usage errors (click).
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import stat
import sys
from collections.abc import Callable, MutableMapping
from datetime import UTC, date, datetime
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import __version__
from .cache import Fingerprint
from .errors import EventfeedError, ProblemsFound, Severity, errors_in, format_problems
from .options import events_option, out_option

# What parsing and compiling need (the validation, calendar and template libraries) is
# imported where it is used, so a no-change build, which needs none of it, starts quickly.
if TYPE_CHECKING:
    from .build import Artifacts
    from .load import Site

F = TypeVar("F", bound=Callable[..., Any])

EVENTS_OPTION = events_option()
OUT_OPTION = out_option()


def handle_errors(func: F) -> F:
    """The one place where known errors become messages and exit code 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ProblemsFound as exc:
            fmt = click.get_current_context().params.get("fmt", "text")
            _print_problems(exc.problems, fmt)
            sys.exit(1)
        except EventfeedError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def run() -> None:
    """The ``eventfeed`` command: :func:`main`, then out of the process without taking it apart.

    At exit Python frees every object one by one; after a build of 100,000 records that is
    millions of them, for two seconds that change nothing. So once the command has ended
    (click always ends it with ``SystemExit``), the exit functions still run (they remove the
    build's temporary folders, among others), the output is flushed, and the process ends.
    Anything else raised (a bug, an interrupt) ends it the usual way.
    """
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    else:  # pragma: no cover - click's standalone mode always exits
        code = 0
    if code is not None and not isinstance(code, int):
        raise SystemExit(code)  # a message: Python prints it and exits with 1
    atexit._run_exitfuncs()  # what Python runs at exit, before freeing everything
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        raise SystemExit(code) from None  # a closed pipe: Python's usual report and code
    os._exit(code or 0)


def _print_problems(problems: list[Any], fmt: str) -> None:
    errors = len(errors_in(problems))
    warnings = sum(1 for p in problems if p.severity is Severity.WARNING)
    if fmt == "json":
        click.echo(format_problems(problems, "json"))
        return
    if problems:
        click.echo(format_problems(problems, fmt), err=fmt == "text")
    if fmt == "text":
        summary = f"{errors} error(s), {warnings} warning(s)"
        click.echo(summary, err=True)


def resolve_now(now: datetime | None) -> datetime:
    """The build's clock: --now, else SOURCE_DATE_EPOCH (reproducible builds), else the time."""
    if now is not None:
        return now if now.tzinfo else now.replace(tzinfo=UTC)
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            return datetime.fromtimestamp(int(epoch), tz=UTC)
        except ValueError:
            raise click.UsageError(
                f"SOURCE_DATE_EPOCH={epoch!r} is not a whole number of seconds"
            ) from None
    return datetime.now(tz=UTC)


class LazyGroup(click.Group):
    """A group whose commands defined in other modules are imported when first used."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._lazy: dict[str, tuple[str, str]] = {}
        super().__init__(*args, **kwargs)

    @property
    def commands(self) -> MutableMapping[str, click.Command]:
        for name in list(self._lazy):
            self._load(name)
        return self._commands

    @commands.setter
    def commands(self, value: MutableMapping[str, click.Command]) -> None:
        self._commands = value

    def add_lazy_command(self, name: str, module: str, attribute: str) -> None:
        self._lazy[name] = (module, attribute)

    def _load(self, name: str) -> None:
        module, attribute = self._lazy.pop(name)
        self._commands[name] = getattr(importlib.import_module(module, __package__), attribute)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            self._load(cmd_name)
        return self._commands.get(cmd_name)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="eventfeed")
def main() -> None:
    """Compile event records into calendar subscriptions, news feeds and a static site.

    \b
    Typical use, from the root of a repository of records:
      eventfeed check            # report every problem in every record
      eventfeed build            # write calendars, feeds and pages into out/
      eventfeed schema > event.schema.json
    """


@main.command()
@EVENTS_OPTION
@OUT_OPTION
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="text for people, json for tools, github for workflow annotations.",
)
@handle_errors
def check(events_dir: Path, out_dir: Path, strict: bool, fmt: str) -> None:
    """Validate every record and the site settings; report all problems at once.

    Exit code 0 when clean, 1 when there are errors (or warnings with --strict).
    The previous build in --out is read to warn about published events that disappeared
    without being cancelled.

    \b
    Examples:
      eventfeed check
      eventfeed check --events path/to/events --strict
      eventfeed check --format github     # annotations on pull request lines
    """
    from .load import display_path, load

    loaded = load(events_dir, today=resolve_now(None).date())
    problems = list(loaded.problems)
    problems.extend(_vanished(loaded.events, out_dir, display_path(events_dir)))
    failing = problems if strict else errors_in(problems)
    _print_problems(problems, fmt)
    if fmt == "text" and not failing:
        click.echo(
            f"{len(loaded.events)} record(s) checked in {display_path(events_dir)}", err=True
        )
    sys.exit(1 if failing else 0)


def _vanished(events: Any, out_dir: Path, root: str) -> list[Any]:
    """A warning for each event the build in ``out_dir`` published that no record gives now,
    at the record it was made of (below the events folder, shown as ``root``)."""
    from .errors import Problem
    from .load import shown_path
    from .state import read_manifest

    try:
        previous = read_manifest(out_dir)
    except EventfeedError:
        return []
    if previous is None:
        return []
    present = {e.id for e in events}
    return [
        Problem(
            shown_path(root, state.source),
            0,
            "",
            f"event '{key}' was published and has disappeared without "
            "being cancelled; subscribers will keep the old event",
            hint="restore the record with 'status: cancelled' so calendars remove it",
            severity=Severity.WARNING,
        )
        for key, state in sorted(previous.events.items())
        if key not in present and not state.cancelled
    ]


@main.command()
@EVENTS_OPTION
@OUT_OPTION
@click.option(
    "--check",
    "check_only",
    is_flag=True,
    help="Write nothing; exit 1 and name the files that differ if --out is stale.",
)
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
@click.option(
    "--now",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]),
    default=None,
    help="The build's clock (UTC), for edits without an 'updated' date. "
    "Default: SOURCE_DATE_EPOCH, else the current time.",
)
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="The day that splits upcoming from past events. Default: today, "
    "or with --check the day the existing build was made.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
@handle_errors
def build(
    events_dir: Path,
    out_dir: Path,
    check_only: bool,
    strict: bool,
    now: datetime | None,
    as_of: datetime | None,
    quiet: bool,
) -> None:
    """Build calendars, feeds and pages from the records into --out.

    Everything is validated and compiled in memory first; then one writer replaces --out as a
    whole. A build that fails leaves the previous --out exactly as it was.

    \b
    Examples:
      eventfeed build
      eventfeed build --events events --out public
      eventfeed build --check        # in CI: is the committed out/ fresh?
    """
    clock = resolve_now(now)
    day_given = as_of.date() if as_of else None
    fingerprint = (
        None if check_only else Fingerprint.of(events_dir, out_dir, clock, day_given, strict)
    )
    try:
        _build(events_dir, out_dir, clock, day_given, strict, check_only, quiet, fingerprint)
    finally:
        if fingerprint is not None:
            fingerprint.close()


def _build(
    events_dir: Path,
    out_dir: Path,
    clock: datetime,
    day_given: date | None,
    strict: bool,
    check_only: bool,
    quiet: bool,
    fingerprint: Fingerprint | None,
) -> None:
    done = fingerprint.lookup(out_dir) if fingerprint is not None else None
    if done is not None:  # out/ already holds this very build: nothing to parse or write
        if not quiet:
            from .load import display_path

            if done:
                click.echo(done, err=True)
            click.echo(f"{display_path(out_dir)} is up to date (nothing changed)", err=True)
        return
    from .load import display_path

    if fingerprint is not None and not check_only:
        # a few records edited since the build in out/: made from that build, when it can be
        from .quick import quick_build

        quick = quick_build(events_dir, out_dir, clock, day_given, fingerprint)
        if quick is not None:
            count, written, warned = quick
            if not quiet:
                if warned:
                    click.echo(warned, err=True)
                _built(count, out_dir, written)
            return
    from .pipeline import compile_into
    from .write import write_tree

    warned = ""

    def show_warnings(site: Site) -> None:
        nonlocal warned
        warned = format_problems(site.warnings, "text") if site.warnings else ""
        if warned and not quiet:
            click.echo(warned, err=True)
        if fingerprint is not None:
            # The records' digests, as the loader read them, complete the fingerprint now:
            # neither they nor the records' metadata it kept are held while the build runs.
            fingerprint.loaded(site.record_keys)
            site.record_keys.clear()

    site, artifacts = compile_into(
        events_dir,
        out_dir,
        clock,
        strict=strict,
        as_of=day_given,
        writing=not check_only,
        loaded=show_warnings,
        listed=fingerprint.listed() if fingerprint is not None else None,
    )
    if check_only:
        stale = _differences(out_dir, artifacts)
        if stale:
            click.echo(
                f"{display_path(out_dir)} is stale; these files differ from a fresh build:",
                err=True,
            )
            for line in stale[:50]:
                click.echo(f"  {line}", err=True)
            if len(stale) > 50:
                click.echo(f"  ... and {len(stale) - 50} more", err=True)
            click.echo("fix: run 'eventfeed build' and commit out/", err=True)
            sys.exit(1)
        if not quiet:
            click.echo(f"{display_path(out_dir)} is up to date ({len(artifacts)} files)", err=True)
        return
    # The loaded site is not needed to write: its memory serves the writer and the fingerprint
    # (with 100,000 records, the build's peak was theirs, on top of it). A rebuild's artifacts
    # still hold it, to make again a file that changed in the previous out/ (:class:`_Known`
    # in eventfeed.build): there it goes with them, at exit.
    count = len(site.events)
    del site
    seen = fingerprint.seen(out_dir) if fingerprint is not None else None
    stayed = write_tree(
        out_dir, artifacts, events_dir=events_dir, files=artifacts.manifest_files, seen=seen
    )
    if fingerprint is not None:
        fingerprint.save(out_dir, warned, artifacts, stayed)
    if not quiet:
        _built(count, out_dir, len(artifacts))


def _built(count: int, out_dir: Path, files: int) -> None:
    from .load import display_path

    click.echo(f"built {count} event(s) into {display_path(out_dir)} ({files} files)", err=True)


def _differences(out_dir: Path, artifacts: Artifacts) -> list[str]:
    """What ``build --check`` reports: the files of ``out_dir`` that a fresh build would not
    write as they are (changed, missing or not built any more), sorted by path.

    Each file in ``out_dir`` is compared by its size, then read once and compared by its
    digest, with what the build made (which knows both without reading its own files
    again); half of them are read in a forked process (:func:`~eventfeed.write.
    read_digests`)."""
    from .write import read_digests

    on_disk = _files_below(out_dir)
    paths = sorted(artifacts.keys() | on_disk.keys())
    sized = [p for p in paths if p in artifacts and on_disk.get(p) == artifacts.size(p)]
    read = dict(zip(sized, read_digests([os.path.join(out_dir, p) for p in sized]), strict=True))
    result = []
    for path in paths:
        if path not in artifacts:
            result.append(f"{path} (not built any more)")
        elif path not in on_disk:
            result.append(f"{path} (missing)")
        elif on_disk[path] != artifacts.size(path):
            result.append(f"{path} (changed)")
        elif read[path] != artifacts.digest(path):
            result.append(f"{path} (changed)")  # (or unreadable)
    return result


def _files_below(folder: Path) -> dict[str, int]:
    """Every file below ``folder`` (following links to files, not to folders) by its path
    relative to it, ``/`` between names, with its size."""
    found: dict[str, int] = {}
    for top, _, names in os.walk(folder):
        below = os.path.relpath(top, folder).replace(os.sep, "/")
        prefix = "" if below == "." else below + "/"
        for name in names:
            try:
                info = os.stat(os.path.join(top, name))
            except OSError:
                continue  # a link to nothing: no file
            if stat.S_ISREG(info.st_mode):
                found[prefix + name] = info.st_size
    return found


@main.command()
def schema() -> None:
    """Print the JSON Schema of an event record's front matter.

    Point your editor's YAML support at it for completion and checking while you type.

    \b
    Example:
      eventfeed schema > event.schema.json
    """
    from .model import record_schema

    click.echo(json.dumps(record_schema(), indent=2, ensure_ascii=False, sort_keys=True))


# Editors' tools: each defined in its own module, registered here and imported when used
# (main.add_command would import every one of them at start-up).
assert isinstance(main, LazyGroup)
main.add_lazy_command("new", ".new", "new_command")
main.add_lazy_command("import", ".importer", "import_command")
main.add_lazy_command("list", ".listing", "list_command")
main.add_lazy_command("diff", ".diff", "diff_command")
main.add_lazy_command("serve", ".serve", "serve_command")
