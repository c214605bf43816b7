"""The quick rebuild (:mod:`eventfeed.quick`) writes the bytes the full rebuild writes, or
leaves the build to it.

One site is built into two folders from the same start: ``out/`` by the build as it is
(quick where it can be), ``full/`` by the build with the quick path turned off, each with
its own cache. After every round of edits both are built, and their files compared whole.
The edits are drawn with a fixed seed from those a secretariat makes (a line added to a
report, a sentence cut, a new first paragraph, a title, a date, a tag, a region), to one
record or a few, past or coming, so that some rounds take the quick path and others not;
the tests check that both kinds happen. A second site has calendars small enough that each
month of the archive is split in parts, whose ends an edit may move.
"""

from __future__ import annotations

import functools
import os
import random
import re
import shutil
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from eventfeed import cache, quick
from eventfeed.build import BuildContext
from eventfeed.cli import main
from eventfeed.errors import Problem
from eventfeed.eventcache import EventCache
from eventfeed.load import Site, _load_settings
from eventfeed.state import read_manifest

from .bench_records import generate

RECORDS = 160
AS_OF = "2023-11-14"
#: rounds of random edits per site (each builds both folders), and the seed they start from:
#: more, and other seeds, by choice (``EVENTFEED_QUICK_ROUNDS=200 EVENTFEED_QUICK_SEED=5``)
ROUNDS = int(os.environ.get("EVENTFEED_QUICK_ROUNDS", "10"))
SEED = int(os.environ.get("EVENTFEED_QUICK_SEED", "0"))


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("records"), RECORDS)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


class Pair:
    """One events folder built into ``out/`` (quick where it can be) and ``full/`` (never
    quick), with a cache folder each."""

    def __init__(self, root: Path, records: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.events = root / "events"
        shutil.copytree(records, self.events)
        # (feeds as short as a large site's are for its number of events: a quick build
        # leaves an event a feed shows to the full one)
        with (self.events / "site.yaml").open("a") as settings:
            settings.write("feeds: {max_entries: 8}\n")
        self.monkeypatch = monkeypatch
        #: what each quick build returned (None: it left the build to the full one)
        self.quick: list[object] = []
        #: what the last build into ``out/`` printed
        self.output = ""
        real = quick.quick_build

        def spy(*args: Any, **kwargs: Any) -> Any:
            made = real(*args, **kwargs)
            self.quick.append(made)
            return made

        monkeypatch.setattr(quick, "quick_build", spy)
        monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")

    def invoke(self, out: str, *extra: str) -> str:
        folder = self.root / out
        self.monkeypatch.setenv("EVENTFEED_CACHE_DIR", str(self.root / f"cache-{out}"))
        args = ["build", "--events", str(self.events), "--out", str(folder), "--as-of", AS_OF]
        result = CliRunner().invoke(main, [*args, *extra])
        assert result.exit_code == 0, result.output
        return result.output

    def start(self) -> None:
        """The first build, into both folders (the second a copy: the same history)."""
        self.invoke("out")
        shutil.copytree(self.root / "out", self.root / "full")
        self.monkeypatch.setattr(quick, "MAX_EDITED", 0)
        self.invoke("full")  # its cache made: nothing to change
        self.monkeypatch.setattr(quick, "MAX_EDITED", 8)
        assert snapshot(self.root / "out") == snapshot(self.root / "full")

    def build(self) -> bool:
        """Both folders built; whether ``out/`` took the quick path. Their files must be
        the same."""
        before = len(self.quick)
        output = self.output = self.invoke("out")
        calls = self.quick[before:]
        taken = bool(calls) and calls[0] is not None
        self.monkeypatch.setattr(quick, "MAX_EDITED", 0)
        try:
            assert self.invoke("full") == output.replace(
                str(self.root / "out"), str(self.root / "full")
            )
        finally:
            self.monkeypatch.setattr(quick, "MAX_EDITED", 8)
        assert snapshot(self.root / "out") == snapshot(self.root / "full")
        return taken

    def record(self, rng: random.Random, *, past: bool | None = None, coming: bool = False) -> Path:
        """A record drawn with ``rng``: of a past event (ended before the look-back window)
        or not, or of a coming one (starting after the day of the builds)."""
        files = sorted(self.events.rglob("event-*.md"))
        while True:
            path = rng.choice(files)
            year = int(re.search(r"^start: (\d{4})", path.read_text(), re.M).group(1))  # type: ignore[union-attr]
            if coming:
                if year >= 2024:
                    return path
            elif past is None or past == (year < 2022):
                return path


def _body_appended(text: str, rng: random.Random) -> str:
    return text + f"\nAdded after the meeting, note {rng.randrange(10**6)}.\n"


def _body_cut(text: str, rng: random.Random) -> str:
    head, sep, body = text.partition("\n---\n")
    cut = rng.randrange(10, 60)
    return head + sep + (body[:-cut] if len(body) > cut + 20 else body) + "\n"


def _first_paragraph(text: str, rng: random.Random) -> str:
    head, sep, body = text.partition("\n---\n")
    return head + sep + f"Summary {rng.randrange(1000)} of the session.\n\n" + body


def _retitled(text: str, rng: random.Random) -> str:
    return re.sub(
        r"^title: .*$", f'title: "Session {rng.randrange(1000)}"', text, count=1, flags=re.M
    )


def _moved(text: str, rng: random.Random) -> str:
    def later(found: re.Match[str]) -> str:
        day = int(found.group(2))
        return f"{found.group(1)}{min(day + 1, 28):02d}"

    return re.sub(r"^((?:start|end): \d{4}-\d{2}-)(\d{2})", later, text, flags=re.M)


def _tagged(text: str, rng: random.Random) -> str:
    return re.sub(r"^tags: \[", f"tags: [extra-{rng.randrange(5)}, ", text, count=1, flags=re.M)


def _regioned(text: str, rng: random.Random) -> str:
    region = rng.choice(["global", "africa", "europe", "asia-pacific"])
    return re.sub(r"^region: .*$", f"region: {region}", text, count=1, flags=re.M)


EDITS = [_body_appended, _body_cut, _first_paragraph, _retitled, _moved, _tagged, _regioned]
#: the edits a quick build may take (the others change how the event is listed or placed)
BODY = [_body_appended, _body_cut, _first_paragraph]


def _rounds(pair: Pair, seed: int) -> list[bool]:
    rng = random.Random(seed)
    taken = []
    for number in range(ROUNDS):
        # most rounds: body edits of past events (which the quick path is for); the others
        # anything, anywhere, to one record or a few
        few = number % 3 == 2
        for _ in range(rng.randint(2, 3) if few else 1):
            path = pair.record(rng, past=None if few or number % 4 == 3 else True)
            edit = rng.choice(EDITS if few or number % 4 == 3 else BODY)
            path.write_text(edit(path.read_text(), rng))
        taken.append(pair.build())
    return taken


def test_random_edits_give_the_full_builds_bytes(
    records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = Pair(tmp_path, records, monkeypatch)
    pair.start()
    taken = _rounds(pair, 7 + SEED)
    assert taken.count(True) >= 4, taken  # the path under test ran
    assert taken.count(False) >= 2, taken  # and so did the full build, when it had to


def test_archive_parts_keep_their_ends(
    records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calendars small enough that every month of the archive is in parts: a grown or
    shrunk event may move where a part ends, which the quick build must then leave to the
    full one."""
    pair = _parts_pair(records, tmp_path, monkeypatch)
    parts = list((tmp_path / "out/calendars/archive").glob("*-part2.ics"))
    assert parts, "no month of the archive is in parts"
    taken = _rounds(pair, 11 + SEED)
    assert taken.count(True) >= 3, taken


def _members(part: Path) -> list[str]:
    """The ids of the events of an archive calendar, in order (one UID per event but for
    the overrides of a series, which follow it)."""
    found: list[str] = []
    for uid in re.findall(rb"^UID:([^@\r]+)@", part.read_bytes(), flags=re.M):
        if not found or found[-1] != uid.decode():
            found.append(uid.decode())
    return found


def _parts_pair(
    records: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    limit: int = 30000,
    prepare: Callable[[Pair], object] = lambda pair: None,
    lookback: int = 365,
) -> Pair:
    """A pair whose calendars hold at most ``limit`` bytes, with a look-back window of
    ``lookback`` days, started after ``prepare``."""
    pair = Pair(tmp_path, records, monkeypatch)
    settings = pair.events / "site.yaml"
    settings.write_text(
        settings.read_text().replace(
            "calendars: {lookback_days: 365}",
            f"calendars: {{lookback_days: {lookback}, max_bytes: {limit}}}",
        )
    )
    prepare(pair)
    pair.start()
    return pair


def _record_of(pair: Pair, event_id: str) -> Path:
    return next(pair.events.rglob(f"{event_id}.md"))


def test_an_event_grown_past_its_part(
    records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last event of a part grows: a little, and it stays (quick); past the limit, and
    it moves to the next part (the full build)."""
    pair = _parts_pair(records, tmp_path, monkeypatch)
    archive = tmp_path / "out/calendars/archive"
    first = sorted(archive.glob("*-part1.ics"))[0]
    last = _members(first)[-1]
    path = _record_of(pair, last)
    path.write_text(path.read_text() + "\nA short note.\n")
    assert pair.build()
    room = 30000 - first.stat().st_size
    path.write_text(path.read_text() + "\n" + "A longer note. " * (room // 10) + "\n")
    assert not pair.build()
    assert last not in _members(first)  # (the bytes compared: moved as the full build moves it)


def test_an_event_shrunk_into_the_part_before(
    records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first event of a part shrinks until it fits after the part before: it moves
    there (the full build)."""
    pair = _parts_pair(records, tmp_path, monkeypatch)
    archive = tmp_path / "out/calendars/archive"
    # the part with the most room left, before a part whose first event is not a series
    roomy = sorted(
        (p for p in archive.glob("*-part1.ics") if p.with_name(p.name[:-5] + "2.ics").exists()),
        key=lambda p: p.stat().st_size,
    )[0]
    second = roomy.with_name(roomy.name[:-5] + "2.ics")
    moving = _members(second)[0]
    path = _record_of(pair, moving)
    head, sep, body = path.read_text().partition("\n---\n")
    # (its first paragraph kept, which the listings show)
    path.write_text(head + sep + body.strip().split("\n\n")[0] + "\n")
    assert not pair.build()
    # (moved, as the full build moves it: after the part before, or the month whole)
    assert not second.exists() or moving not in _members(second)


def test_several_events_of_one_month(
    records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events of one month of the archive edited at once, in one part and the next: each
    part keeps its events while the sizes allow it (quick); when the first event of the
    next part shrinks so that it fits after a part that shrank too, it moves (the full
    build)."""
    pair = _parts_pair(records, tmp_path, monkeypatch)
    archive = tmp_path / "out/calendars/archive"
    first = sorted(archive.glob("*-part1.ics"))[0]
    second = first.with_name(first.name[:-5] + "2.ics")
    ids = [*_members(first), *_members(second)]
    boundary = len(_members(first))
    edited = [_record_of(pair, ids[boundary - 1]), _record_of(pair, ids[boundary])]
    if boundary > 1:
        edited.append(_record_of(pair, ids[0]))
    for path in edited:
        path.write_text(path.read_text() + "\nNoted after the meeting.\n")
    assert pair.build()
    for path in edited:  # (their first paragraphs kept, which the listings show)
        head, sep, body = path.read_text().partition("\n---\n")
        path.write_text(head + sep + body.strip().split("\n\n")[0] + "\n")
    assert not pair.build()
    # (moved, as the full build moves them: after the part before, or the month whole)
    assert not first.exists() or _members(first) != ids[:boundary]


def test_an_event_shrunk_into_the_part_before_in_a_long_month(
    records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As above, in a month of three parts or more, which still does not fit whole: the
    part boundary itself must be checked."""
    pair = _parts_pair(records, tmp_path, monkeypatch, limit=12000)
    archive = tmp_path / "out/calendars/archive"
    candidates = []
    for third in archive.glob("*-part3.ics"):
        if int(third.name[:4]) >= 2022:
            continue  # (an event of the look-back window: in the subscription calendars)
        for number in (2, 3):
            part = third.with_name(third.name[:-5] + f"{number}.ics")
            before = part.with_name(part.name[:-5] + f"{number - 1}.ics")
            path = _record_of(pair, _members(part)[0])
            if re.search(r"^(online|location):", path.read_text(), flags=re.M):  # no warning
                candidates.append((before.stat().st_size, before, part))
    assert candidates, "no month of the archive in three parts"
    _, before, part = min(candidates)  # the part before with the most room
    moving = _members(part)[0]
    path = _record_of(pair, moving)
    head, sep, body = path.read_text().partition("\n---\n")
    path.write_text(head + sep + body.strip().split("\n\n")[0] + "\n")
    assert not pair.build()
    assert moving in _members(before)  # (moved, as the full build moves it)


#: zones with daylight saving time, each a VTIMEZONE of a few hundred bytes
ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "America/Santiago",
    "Europe/London",
    "America/Chicago",
    "Pacific/Auckland",
    "Europe/Helsinki",
    "America/Havana",
    "Asia/Jerusalem",
    "Europe/Chisinau",
    "America/Halifax",
]


def _zoned(pair: Pair, lead: int = 200) -> None:
    """Records of short events (their first paragraph cut to ``lead`` characters) in many
    zones, those of 2019 but series all in October: its parts of 10 kB hold about ten,
    whose VTIMEZONEs are more than an event."""
    for number, path in enumerate(sorted(pair.events.rglob("event-*.md"))):
        head, sep, body = path.read_text().partition("\n---\n")
        zone = ZONES[number % len(ZONES)]
        head = re.sub(r"^timezone: .*$", f"timezone: {zone}", head, flags=re.M)
        if "rrule:" not in head:
            head = re.sub(r"^((?:start|end): 2019-)\d\d", r"\g<1>10", head, flags=re.M)
        first = body.strip().split("\n\n")[0][:lead]
        path.write_text(head + sep + first + "\n\nNotes of the session, kept for the record.\n")


def test_an_event_shrunk_in_a_full_part(
    records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event of a part shrinks a little, and the first event of the next part still does
    not fit after it: the parts stay (quick). Where the sizes without the VTIMEZONEs do not
    show it, the VTIMEZONEs the two would have together are counted (from the per-event
    store): at 100,000 records, where every month of the archive is in two parts, they are
    40 kB of about 4 MB, more than an event."""
    pair = _parts_pair(records, tmp_path, monkeypatch, limit=10000, prepare=_zoned)
    asked: list[int] = []
    real = quick._Zones.first

    def first(self: quick._Zones, data: bytes, start: int) -> Any:
        asked.append(start)
        return real(self, data, start)

    monkeypatch.setattr(quick._Zones, "first", first)
    archive = tmp_path / "out/calendars/archive"
    counted = []  # (quick, whether the zones were asked for), for each part tried
    for part in sorted(archive.glob("*-part*.ics")):
        number = int(re.search(r"part(\d+)", part.name).group(1))  # type: ignore[union-attr]
        following = part.with_name(part.name.replace(f"part{number}", f"part{number + 1}"))
        if int(part.name[:4]) >= 2022 or not following.exists():
            continue  # (an event of the look-back window: in the subscription calendars)
        members = _members(part)
        path = _record_of(pair, members[0])
        head, sep, body = path.read_text().partition("\n---\n")
        if len(body.strip().split("\n\n")) < 2:
            continue  # (the listings show the first paragraph)
        path.write_text(head + sep + body.rstrip()[:-12] + "\n")
        before = len(asked)
        taken = pair.build()
        counted.append((taken, len(asked) > before))
        if taken:
            assert _members(part) == members, part.name
    assert counted.count((True, True)) >= 2, counted


def _past(pair: Pair) -> Path:
    return pair.record(random.Random(3), past=True)


def test_a_quick_build_leaves_what_a_full_one_does(
    records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a quick build, its stores and fingerprint are as a full build leaves them:
    nothing is left to do, ``--check`` agrees, and the next edit is quick again."""
    pair = Pair(tmp_path, records, monkeypatch)
    pair.start()
    path = _past(pair)
    path.write_text(path.read_text() + "\nOne more line.\n")
    assert pair.build()
    assert "up to date (nothing changed)" in pair.invoke("out")
    assert "is up to date" in pair.invoke("out", "--check")
    path.write_text(path.read_text() + "\nAnd another.\n")
    assert pair.build()
    monkeypatch.setattr(quick, "MAX_EDITED", 0)
    shutil.rmtree(tmp_path / "cache-out")  # no store, no fingerprint: everything compiled
    before = snapshot(tmp_path / "out")
    pair.invoke("out")
    assert snapshot(tmp_path / "out") == before


@pytest.mark.parametrize("change", ["added", "settings", "hand-edited out/", "warning", "feed"])
def test_what_the_quick_build_leaves_to_the_full_one(
    change: str, records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = Pair(tmp_path, records, monkeypatch)
    path = _past(pair)
    if change == "feed":  # a past event published late, newest in the feeds
        # (published after every other record, and updated after that)
        text = re.sub(r"^published: .*$", "published: 2031-01-01", path.read_text(), flags=re.M)
        path.write_text(re.sub(r"^updated: .*$", "updated: 2031-01-02", text, flags=re.M))
    pair.start()
    if change == "feed":
        assert f"events/{path.stem}.html" in (tmp_path / "out/feeds/atom.xml").read_text()
    path.write_text(path.read_text() + "\nOne more line.\n")  # quick, on its own
    if change == "added":
        (path.parent / "event-new-one.md").write_text(path.read_text())
    elif change == "settings":
        settings = pair.events / "site.yaml"
        settings.write_text(settings.read_text().replace("Benchmark events", "Bench events"))
    elif change == "hand-edited out/":
        page = tmp_path / "out/index.html"
        page.write_bytes(page.read_bytes() + b"<!-- by hand -->")
    elif change == "warning":  # the edit itself brings a warning
        text = re.sub(r"^(online|location):.*\n(  .*\n)*", "", path.read_text(), flags=re.M)
        path.write_text(text)
    assert not pair.build()


def _placeless(path: Path) -> None:
    """The record without its place or link (a warning while the event is to come)."""
    path.write_text(re.sub(r"^(online|location):.*\n(  .*\n)*", "", path.read_text(), flags=re.M))


def test_an_edit_that_keeps_the_records_warning(
    records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A coming event of the later calendars with a warning (no place given) is edited in
    its body: the same warning, so the quick build prints the last build's warnings, as the
    full build does. Given a place, it has none: the full build."""
    name = _soonest_coming(records, 60).relative_to(records)
    pair = _parts_pair(
        records, tmp_path, monkeypatch, prepare=lambda pair: _placeless(pair.events / name)
    )
    path = pair.events / name
    assert f"UID:{path.stem}@" not in (tmp_path / "out/calendar.ics").read_text()
    path.write_text(path.read_text() + "\nOne more line.\n")
    assert pair.build()  # (the printed text compared with the full build's)
    assert f"{path.name}:" in pair.output
    assert "warning: start: event has neither a location nor an online link" in pair.output
    path.write_text(
        path.read_text().replace("\nstart:", "\nonline:\n  url: https://meet.example.org/x\nstart:")
    )
    assert not pair.build()
    assert f"{path.name}:" not in pair.output


def test_out_changed_while_the_quick_build_runs(
    records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file the quick build takes from out/ is gone when the writer wants it: the full
    build runs, and makes it again."""
    pair = Pair(tmp_path, records, monkeypatch)
    pair.start()
    path = _past(pair)
    path.write_text(path.read_text() + "\nOne more line.\n")
    real = cache.Fingerprint.left
    gone = tmp_path / "out/404.html"

    def left(self: cache.Fingerprint, *args: Any) -> Any:
        found = real(self, *args)  # out/ as the last build left it
        gone.unlink()  # and then not
        return found

    monkeypatch.setattr(cache.Fingerprint, "left", left)
    assert not pair.build()  # (the files compared: 404.html made again)
    assert not gone.exists() or gone.read_bytes() == (tmp_path / "full/404.html").read_bytes()


def test_the_first_edit_after_an_upgrade_is_quick(
    records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After eventfeed changed (every record digested anew), the build that follows is a
    full one, and the edit after it is quick: the fingerprint it saved was made of this
    eventfeed's digests of the records, which the quick build makes again."""
    # (records trusted by their metadata at once: each chunk is then remembered by the
    # build that digested it, as with records older than the racy margin)
    monkeypatch.setattr(cache, "RACY_NS", 0)
    pair = Pair(tmp_path, records, monkeypatch)
    pair.start()
    real = cache._code_digest
    monkeypatch.setattr(cache, "_code_digest", lambda: "another " + real())
    assert not pair.build()  # nothing edited: the upgrade's full builds
    path = _past(pair)
    path.write_text(path.read_text() + "\nOne more line.\n")
    assert pair.build()


# --- coming events in the later calendars ---------------------------------------------------


def _coming_rounds(pair: Pair, seed: int) -> list[bool]:
    """Rounds of edits of coming events: mostly to their bodies, one record or a few; every
    fourth anything."""
    rng = random.Random(seed)
    taken = []
    for number in range(ROUNDS):
        few = number % 3 == 2
        for _ in range(rng.randint(2, 3) if few else 1):
            path = pair.record(rng, coming=True)
            edit = rng.choice(EDITS if number % 4 == 3 else BODY)
            path.write_text(edit(path.read_text(), rng))
        taken.append(pair.build())
    return taken


@pytest.mark.parametrize("limit", [30000, 12000])
def test_coming_edits_in_the_later_calendars(
    limit: int, records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calendars small enough that calendar.ics has no room for most coming events: the
    later calendars hold them, whole months (30 kB) or in parts (12 kB). An edit of one of
    them is quick when it leaves every calendar's members where they were."""
    pair = _parts_pair(records, tmp_path, monkeypatch, limit)
    assert list((tmp_path / "out/calendars/later").glob("2025-*.ics"))
    taken = _coming_rounds(pair, 13 + SEED + limit)
    assert taken.count(True) >= 3, taken


def _first_later(pair: Pair) -> tuple[Path, Path]:
    """The first later calendar, and the record of its first event: the first of the coming
    events that calendar.ics has no room for."""
    later = pair.root / "out/calendars/later"
    first = min(later.glob("*.ics"))
    return first, _record_of(pair, _members(first)[0])


def _first_paragraph_only(path: Path) -> None:
    head, sep, body = path.read_text().partition("\n---\n")
    path.write_text(head + sep + body.strip().split("\n\n")[0] + "\n")


def _start(path: Path) -> str:
    """The start of a record's event, as written."""
    start = re.search(r"^start: (\S+)", path.read_text(), flags=re.M)
    assert start is not None
    return start.group(1)


def _soonest_coming(events: Path, nth: int) -> Path:
    """The record of the ``nth`` coming event by its start as written (0: the soonest)."""
    coming = [p for p in events.rglob("event-*.md") if _start(p) >= AS_OF]
    return sorted(coming, key=lambda p: (_start(p), p.name))[nth]


def test_the_first_later_event_grown_and_shrunk(
    records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first coming event calendar.ics has no room for grows: it stays where it is
    (quick). It shrinks back: calendar.ics with it after its events would still be too
    large, its VTIMEZONEs counted (quick)."""
    pair = _parts_pair(records, tmp_path, monkeypatch)
    first, path = _first_later(pair)
    text = path.read_text()
    path.write_text(text + "\nNoted after the meeting.\n")
    assert pair.build()
    path.write_text(text)
    assert pair.build()
    assert _members(first)[0] == path.stem


@pytest.mark.parametrize("zoned", [False, True])
def test_an_event_of_calendar_ics_shrunk_a_little_when_others_were_left_out(
    zoned: bool, records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events calendar.ics holds grow a little and shrink back, and the first coming event
    it left out still does not fit after its events (quick; where the shrink lets it fit,
    the full build: :func:`test_an_event_of_calendar_ics_shrunk_when_others_were_left_out`).
    With very short events in many zones (``zoned``), that turns on their VTIMEZONEs."""
    if zoned:
        prepare = functools.partial(_zoned, lead=40)
        pair = _parts_pair(records, tmp_path, monkeypatch, limit=10000, prepare=prepare)
    else:
        pair = _parts_pair(records, tmp_path, monkeypatch)
    held = _held(pair)
    assert _grown_and_put_back(pair, held[:3]) == [True] * 3
    assert _held(pair) == held


def _grown_and_put_back(pair: Pair, records: list[Path]) -> list[bool]:
    """Each record in turn has a line added (built: quick, calendar.ics still fitting) and
    taken away again (built): whether each rebuild that took it away was quick."""
    taken = []
    for path in records:
        text = path.read_text()
        path.write_text(text + "\nNoted after the meeting.\n")
        assert pair.build()
        path.write_text(text)
        taken.append(pair.build())
    return taken


def test_the_first_later_event_shrunk_into_calendar_ics(
    records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first coming event calendar.ics has no room for, larger than a calendar may be,
    shrinks: the full build moves it into calendar.ics, where there is room for it now."""
    pair = Pair(tmp_path, records, monkeypatch)
    settings = pair.events / "site.yaml"
    settings.write_text(
        settings.read_text().replace(
            "calendars: {lookback_days: 365}", "calendars: {lookback_days: 365, max_bytes: 30000}"
        )
    )
    path = _soonest_coming(pair.events, 1)
    path.write_text(path.read_text() + "\n" + "A long report of the session. " * 1200 + "\n")
    pair.start()
    assert _first_later(pair)[1] == path
    _first_paragraph_only(path)
    assert not pair.build()
    main = (tmp_path / "out/calendar.ics").read_text()
    assert f"UID:{path.stem}@" in main  # (moved, as the full build moves it)


def test_a_later_event_shrunk(
    records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A coming event of a later calendar months after the first shrinks: calendar.ics
    still ends where it did (quick)."""
    pair = _parts_pair(records, tmp_path, monkeypatch)
    first, _ = _first_later(pair)
    later = sorted((tmp_path / "out/calendars/later").glob("*.ics"))
    # (a year after the first later calendar)
    chosen = next(p for p in later if p.name[:4] > first.name[:4] and len(_members(p)) > 1)
    path = _record_of(pair, _members(chosen)[-1])
    _first_paragraph_only(path)
    assert pair.build()


# --- events calendar.ics holds ---------------------------------------------------------------


def _held(pair: Pair, calendar: str = "calendar.ics") -> list[Path]:
    """The records of the events a calendar of out/ holds, in its order."""
    return [_record_of(pair, event_id) for event_id in _members(pair.root / "out" / calendar)]


def _dated_none(records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pair:
    """A pair whose look-back window takes in every event: calendar.ics holds them all, and
    there is neither archive nor later calendar."""
    pair = Pair(tmp_path, records, monkeypatch)
    settings = pair.events / "site.yaml"
    settings.write_text(
        settings.read_text().replace(
            "calendars: {lookback_days: 365}", "calendars: {lookback_days: 3650}"
        )
    )
    pair.start()
    assert not (tmp_path / "out/calendars/archive").exists()
    assert not (tmp_path / "out/calendars/later").exists()
    return pair


def test_events_of_calendar_ics_grown_and_shrunk_when_it_holds_all(
    records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """calendar.ics holds every event: one grows, or shrinks, and every calendar that holds
    it (calendar.ics, its kind's, region's and language's, calendar.json) has its
    components replaced (quick, the files compared with the full build's); one event or
    a few at once."""
    pair = _dated_none(records, tmp_path, monkeypatch)
    held = _held(pair)
    past, coming = held[10], held[-10]  # (one that ended, one to come)
    for path in (past, coming):
        path.write_text(path.read_text() + "\nNoted after the meeting.\n")
        assert pair.build()
        _first_paragraph_only(path)
        assert pair.build()
    for path in held[20:23]:
        path.write_text(path.read_text() + "\nNoted after the meeting.\n")
    assert pair.build()
    assert "Noted after the meeting." in (tmp_path / "out/calendar.json").read_text()


def test_an_event_of_calendar_ics_grown_past_the_limit(
    records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """calendar.ics holds as many of the coming events as fit: one of them grows a little
    (quick), then past the limit: the full build, which leaves the last one out."""
    pair = _parts_pair(records, tmp_path, monkeypatch)
    main = tmp_path / "out/calendar.ics"
    held = _held(pair)
    last = held[-1].stem
    held[0].write_text(held[0].read_text() + "\nNoted after the meeting.\n")
    assert pair.build()
    room = 30000 - main.stat().st_size
    held[0].write_text(held[0].read_text() + "\n" + "A longer note. " * (room // 10) + "\n")
    assert not pair.build()
    assert f"UID:{last}@" not in main.read_text()  # (moved out, as the full build moves it)


def test_an_event_of_calendar_ics_shrunk_when_others_were_left_out(
    records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The soonest coming event, large, leaves calendar.ics room for few others; shrunk, it
    leaves room for more: the full build, which moves them in."""

    def large(pair: Pair) -> None:
        path = _soonest_coming(pair.events, 0)
        path.write_text(path.read_text() + "\n" + "A long report of the session. " * 300 + "\n")

    pair = _parts_pair(records, tmp_path, monkeypatch, prepare=large)
    path = _soonest_coming(pair.events, 0)
    held = _held(pair)
    assert held[0] == path
    path.write_text(path.read_text() + "\nNoted after the meeting.\n")
    assert pair.build()  # (grown: quick)
    _first_paragraph_only(path)
    assert not pair.build()
    assert len(_held(pair)) > len(held)  # (moved in, as the full build moves them)


#: the window of :func:`_window_pair`, in days
WINDOW = 3650


def _window_pair(records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pair:
    """A pair with a look-back window of ten years and three events to come: calendar.ics
    holds those and as many of the window's events as fit, those that ended last; the
    archive holds the rest."""

    def three_to_come(pair: Pair) -> None:
        coming = [p for p in pair.events.rglob("event-*.md") if _start(p) >= AS_OF]
        for path in sorted(coming, key=lambda p: (_start(p), p.name))[3:]:
            path.unlink()

    pair = _parts_pair(records, tmp_path, monkeypatch, 150000, three_to_come, WINDOW)
    assert not (tmp_path / "out/calendars/later").exists()
    assert (tmp_path / "out/calendars/archive").exists()
    return pair


def test_events_of_calendar_ics_shrunk_when_the_archive_holds_events_of_the_window(
    records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events of calendar.ics grow a little and shrink back (quick: the event of the
    archive that ended last still does not fit after them). The last of them grows by 30
    kB (the full build, which moves some out) and shrinks back (the full build, which moves
    them in)."""
    pair = _window_pair(records, tmp_path, monkeypatch)
    held = _held(pair)
    feeds = "".join(p.read_text() for p in (tmp_path / "out/feeds").rglob("*.*"))
    unfed = [p for p in held if p.stem not in feeds]  # (no feed names them)
    assert _grown_and_put_back(pair, unfed[:3]) == [True] * 3, unfed
    assert _held(pair) == held
    # (the last: those that ended first move out)
    text = unfed[-1].read_text()
    unfed[-1].write_text(text + "\n" + "A long report of the session. " * 1000 + "\n")
    assert not pair.build()
    assert unfed[-1] in _held(pair)
    assert len(_held(pair)) < len(held)
    unfed[-1].write_text(text)
    assert not pair.build()
    assert _held(pair) == held  # (moved back in)


def test_the_first_event_calendar_ics_left_out_of_the_window(
    records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event the quick build takes as the first one calendar.ics left out, of those
    the archive holds: of the events the per-event store knows, not in calendar.ics, that
    ended within the window and before the day of the build, the one that ended last (then
    by id)."""
    pair = _window_pair(records, tmp_path, monkeypatch)
    out = tmp_path / "out"
    monkeypatch.setenv("EVENTFEED_CACHE_DIR", str(tmp_path / "cache-out"))
    day = date.fromisoformat(AS_OF)
    cutoff = day - timedelta(days=WINDOW)
    held = set(_members(out / "calendar.ics"))
    ended = []
    for event_id, entry in EventCache.for_out(out).entries.items():
        last_day = entry.notes["ical"][3]  # type: ignore[index]
        if event_id not in held and last_day is not None and cutoff <= last_day < day:
            ended.append((last_day, event_id))
    assert len(ended) > 10
    problems: list[Problem] = []
    settings = _load_settings(pair.events / "site.yaml", problems)
    assert settings is not None
    assert not problems
    previous = read_manifest(out)
    assert previous is not None
    site = Site(settings=settings, events=(), root=str(pair.events))
    context = BuildContext(site=site, history={}, as_of=day)
    main = (out / "calendar.ics").read_bytes()
    zones = quick._Zones(out, previous, settings)
    first = quick._Room(out, previous, settings, context, main, zones, cutoff).first()
    assert first is not None
    assert first.id == max(ended)[1]


def test_an_event_of_calendar_ics_and_of_a_collection(
    records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event that a collection's calendar holds as well as calendar.ics (and its
    region's, its kind's, its language's): each has its components replaced."""
    pair = Pair(tmp_path, records, monkeypatch)
    pair.start()
    held = _held(pair, "calendars/africa.ics")
    feed = (tmp_path / "out/feeds/atom.xml").read_text()
    path = next(p for p in held if f"/{p.stem}.html" not in feed)  # (no feed names it)
    path.write_text(path.read_text() + "\nNoted after the meeting.\n")
    assert pair.build()
    for calendar in ("calendar.ics", "calendars/africa.ics", "calendars/region/africa.ics"):
        unfolded = (tmp_path / "out" / calendar).read_text().replace("\n ", "")
        assert "Noted after the meeting." in unfolded


@pytest.mark.parametrize("limit", [None, 30000, 12000])
def test_random_edits_of_events_in_calendar_ics(
    limit: int | None, records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rounds of edits of events that calendar.ics holds (it holds all: None; or as many of
    the coming ones as fit), one record or a few, mostly to their bodies, each round's
    files compared with the full build's."""
    if limit is None:
        pair = _dated_none(records, tmp_path, monkeypatch)
    else:
        pair = _parts_pair(records, tmp_path, monkeypatch, limit)
    rng = random.Random(17 + SEED + (limit or 0))
    taken = []
    for number in range(ROUNDS):
        held = _held(pair)
        for path in rng.sample(held, min(len(held), rng.randint(2, 3) if number % 3 == 2 else 1)):
            edit = rng.choice(EDITS if number % 4 == 3 else BODY)
            path.write_text(edit(path.read_text(), rng))
        taken.append(pair.build())
    assert taken.count(True) >= 2, taken


@pytest.mark.parametrize("edit", [_retitled, _moved, _regioned])
def test_an_edit_that_places_the_event_otherwise_is_left_before_the_manifest_is_read(
    edit: Any, records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new title, date or region: the full build, found from the records alone (at
    100,000 records, the manifest's read costs a second)."""
    pair = Pair(tmp_path, records, monkeypatch)
    pair.start()
    path = _past(pair)
    read: list[object] = []
    real = quick._read_manifest
    monkeypatch.setattr(quick, "_read_manifest", lambda *a: read.append(a) or real(*a))
    path.write_text(edit(path.read_text(), random.Random(5)))
    assert not pair.build()
    assert not read
