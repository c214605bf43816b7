"""``eventfeed new``: write a fresh, valid record file, and the record writer ``import`` shares.

A new event's id is ``<start date>-<title slug>`` (``2022-12-07-task-force-meeting``) and its
file is ``events/<year>/<id>.md``. The date keeps ids unique when a title repeats (a monthly
call), and ids never change once published, so the id is fixed when the file is made; editing the
title or date later does not rename the file.

Records are written through the model: the values are validated first, dumped as YAML with
explicit quoting where the loader would otherwise read text as a number or a boolean, and then
read back with the loader's own parser to prove the file says what was meant.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import yaml
from pydantic import ValidationError

from . import checks
from .errors import Problem, Severity
from .event import Event
from .frontmatter import FrontMatterError, read_document
from .load import SETTINGS_FILE, display_path, load
from .model import MAX_SLUG, Record, Settings, Status, is_slug, parse_duration, parse_when
from .options import events_option

# --- ids and paths -------------------------------------------------------------------------


def slugify(text: str, *, limit: int = MAX_SLUG) -> str:
    """Lowercase ASCII words joined by single hyphens, cut at a word boundary within ``limit``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > limit:
            break
        slug = candidate
    if not slug and words:
        slug = words[0][:limit]
    return slug


def event_id(start: date | datetime, title: str) -> str:
    """``<YYYY-MM-DD>-<title slug>``, at most :data:`MAX_SLUG` characters."""
    day = start.date() if isinstance(start, datetime) else start
    prefix = day.isoformat()
    slug = slugify(title, limit=MAX_SLUG - len(prefix) - 1) or "event"
    result = f"{prefix}-{slug}"
    assert is_slug(result), result
    return result


def record_path(events_dir: Path, start: date | datetime, event_id: str) -> Path:
    return events_dir / f"{start.year:04d}" / f"{event_id}.md"


# --- writing records -----------------------------------------------------------------------


class _Plain(str):
    """Text the loader reads back as the same text when written without quotes (dates)."""


class _Dumper(yaml.SafeDumper):
    pass


#: Plain scalars that the loader (YAML 1.2 core schema) would not read as text.
_TYPED = re.compile(
    r"^(?:~|null|true|false|yes|no|on|off|y|n|[-+]?(?:\.?[0-9]).*|\.inf|\.nan|[-+]?\.inf)$",
    re.IGNORECASE,
)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = None
    if "\n" in value:
        style = "|"
    elif _TYPED.match(value) or value != value.strip():
        style = "'"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _represent_plain(dumper: yaml.SafeDumper, value: _Plain) -> yaml.Node:
    text = str(value)
    tag = dumper.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    return dumper.represent_scalar(tag, text)


def _represent_list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.Node:
    flat = all(not isinstance(v, dict | list | _Plain) for v in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flat)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(_Plain, _represent_plain)
_Dumper.add_representer(list, _represent_list)


def when_text(value: date | datetime) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M" + (":%S" if value.second else ""))
    return value.isoformat()


def duration_text(value: timedelta) -> str:
    days, seconds = value.days, value.seconds
    hours, minutes = seconds // 3600, seconds % 3600 // 60
    text = "P" + (f"{days}D" if days else "")
    if hours or minutes:
        text += "T" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    return text


def _plain_values(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_values(v) for v in value]
    if isinstance(value, datetime | date):
        return _Plain(when_text(value))
    if isinstance(value, timedelta):
        return duration_text(value)
    if isinstance(value, Status):
        return value.value
    return value


class RecordWriteError(Exception):
    """The YAML written would not read back as the record: a bug, never a user error."""


def render_record(record: Record, body: str = "") -> str:
    """The text of a record file: front matter in the model's field order, then the body."""
    data = record.model_dump(mode="python", exclude_defaults=True)
    front = yaml.dump(
        _plain_values(data),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=1_000_000,
    )
    body = body.strip("\n")
    text = f"---\n{front}---\n" + (f"{body}\n" if body.strip() else "")
    try:
        doc = read_document(text.encode())
        again = Record.model_validate(doc.data)
    except (FrontMatterError, ValidationError) as exc:
        raise RecordWriteError(f"record does not read back: {exc}\n{text}") from None
    if again != record or doc.body != (f"{body}\n" if body.strip() else ""):
        raise RecordWriteError(f"record reads back differently:\n{text}")
    return text


def check_record(record: Record, event_id: str, shown: str, settings: Settings) -> list[Problem]:
    """What ``eventfeed check`` would say about one record, without reading or writing a file."""
    event = Event(id=event_id, source=shown, record=record, body="", settings=settings)
    problems: list[Problem] = []

    def report(where: Any, message: str, *, hint: str = "", warning: bool = False) -> None:
        problems.append(
            checks.problem(shown, {}, where, message, hint=hint, warning=warning, default_line=0)
        )

    checks.check_event(event, report)
    checks.check_references(event, settings, report)
    return problems


# --- the command -----------------------------------------------------------------------------


def _when(value: str | None, name: str) -> date | datetime | None:
    if value is None or not value.strip():
        return None
    try:
        parsed: date | datetime = parse_when(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=f"--{name}") from None
    return parsed


def _duration(value: str | None) -> timedelta | None:
    if value is None or not value.strip():
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--duration") from None


def stdin_is_terminal() -> bool:
    """Whether values may be asked for (a function, so tests can pretend)."""
    return sys.stdin.isatty()


def _ask(interactive: bool, value: str | None, prompt: str, **kwargs: Any) -> str | None:
    if value is not None or not interactive:
        return value
    answer: str = click.prompt(prompt, err=True, **kwargs)
    return answer.strip() or None


@click.command("new")
@click.option("--title", help="The event's title.")
@click.option("--start", help="A date (all-day, 2022-12-07) or a local time (2022-12-07T15:00).")
@click.option("--end", help="Inclusive last day, or the local end time.")
@click.option("--duration", help="Instead of --end: an ISO 8601 duration such as PT1H30M.")
@click.option("--timezone", "zone", help="IANA zone of the times. Default: the site's.")
@click.option("--kind", help="One of the kinds in site.yaml.")
@click.option(
    "--status",
    type=click.Choice([s.value for s in Status]),
    default=None,
    help="Default: confirmed.",
)
@click.option("--online", "online_url", help="Join link of an online or hybrid event.")
@click.option("--platform", help="Name of the online platform, e.g. Zoom.")
@click.option("--location", "venue", help="Venue of an in-person or hybrid event.")
@click.option("--city")
@click.option("--country", help="Two-letter ISO 3166 code, e.g. TH.")
@click.option("--region", help="One of the regions in site.yaml.")
@click.option("--tag", "tags", multiple=True, help="A tag (slug); repeat for several.")
@click.option("--updated", "updated", help="Date written as 'updated'. Default: today.")
@events_option()
def new_command(
    title: str | None,
    start: str | None,
    end: str | None,
    duration: str | None,
    zone: str | None,
    kind: str | None,
    status: str | None,
    online_url: str | None,
    platform: str | None,
    venue: str | None,
    city: str | None,
    country: str | None,
    region: str | None,
    tags: tuple[str, ...],
    updated: str | None,
    events_dir: Path,
) -> None:
    """Create a new event record, ready for 'eventfeed check'.

    The file is events/<year>/<date>-<title-slug>.md; an existing file is never overwritten.
    Without --title, --start or --kind, and in a terminal, the missing values are asked for.

    \b
    Examples:
      eventfeed new --title "Task force meeting" --kind meeting \\
          --start 2022-12-07T15:00 --duration PT2H --online https://example.org/join
      eventfeed new --title "SSE forum" --kind conference --start 2023-05-10 \\
          --end 2023-05-12 --location "UNCC" --city Bangkok --country TH
      eventfeed new          # in a terminal: asks for each value
    """
    loaded = load(events_dir)
    settings = loaded.settings
    if settings is None:
        shown = display_path(events_dir / SETTINGS_FILE)
        click.echo(
            f"error: {shown}: the site settings cannot be read; run 'eventfeed check'", err=True
        )
        sys.exit(1)
    interactive = stdin_is_terminal() and (title is None or start is None or kind is None)
    title = _ask(interactive, title, "Title")
    start = _ask(interactive, start, "Start (2022-12-07 or 2022-12-07T15:00)")
    if interactive and end is None and duration is None:
        end = _ask(interactive, end, "End (inclusive day or time; empty for none)", default="")
    kind = _ask(
        interactive,
        kind,
        "Kind",
        type=click.Choice(settings.kinds),
        default=settings.kinds[0],
    )
    if interactive and online_url is None and venue is None:
        online_url = _ask(interactive, online_url, "Online link (empty for none)", default="")
        venue = _ask(interactive, venue, "Venue (empty for none)", default="")
    for name, value in (("title", title), ("start", start), ("kind", kind)):
        if not value:
            raise click.UsageError(f"--{name} is required (in a terminal you are asked for it)")
    assert title is not None
    assert kind is not None
    started = _when(start, "start")
    assert started is not None
    data: dict[str, Any] = {"title": title, "kind": kind, "start": started}
    if status:
        data["status"] = status
    if end and duration:
        raise click.UsageError("give --end or --duration, not both")
    if end:
        data["end"] = _when(end, "end")
    if duration:
        _duration(duration)
        data["duration"] = duration.strip()
    if zone and isinstance(started, datetime):
        data["timezone"] = zone
    if online_url or platform:
        data["online"] = {k: v for k, v in (("url", online_url), ("platform", platform)) if v}
    if venue or city or country:
        data["location"] = {
            k: v for k, v in (("venue", venue), ("city", city), ("country", country)) if v
        }
    if region:
        data["region"] = region
    if tags:
        data["tags"] = list(tags)
    data["updated"] = _when(updated, "updated") or date.today()  # noqa: DTZ011 - the editor's day
    new_id = event_id(started, title)
    path = record_path(events_dir, started, new_id)
    shown = display_path(path)
    try:
        record = Record.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            field = ".".join(str(p) for p in error["loc"])
            msg = str(error["msg"]).removeprefix("Value error, ")
            click.echo(f"error: {field}: {msg}", err=True)
        sys.exit(1)
    problems = [
        p for p in check_record(record, new_id, shown, settings) if p.severity is Severity.ERROR
    ]
    if path.exists():
        click.echo(
            f"error: {shown} already exists; edit it, or choose another title or date", err=True
        )
        sys.exit(1)
    existing = next((e for e in loaded.events if e.id == new_id), None)
    if existing is not None:
        problems.append(
            Problem(shown, 0, "id", f"id '{new_id}' is already used by {existing.source}")
        )
    if problems:
        for problem in problems:
            click.echo(problem.format_text(), err=True)
        sys.exit(1)
    try:
        write_new(path, render_record(record))
    except FileExistsError:
        click.echo(
            f"error: {shown} already exists; edit it, or choose another title or date", err=True
        )
        sys.exit(1)
    except OSError as exc:
        click.echo(f"error: cannot write {shown}: {exc.strerror}", err=True)
        sys.exit(1)
    click.echo(shown)


def write_new(path: Path, text: str) -> None:
    """Create ``path`` with ``text``; raise FileExistsError rather than replace anything."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("x", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
