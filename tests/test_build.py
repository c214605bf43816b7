"""`eventfeed build`: the pipeline, the manifest, and an out/ that is never half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eventfeed import write

from .conftest import MINIMAL, Run, SiteDir


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_build_writes_manifest_and_is_reproducible(site: SiteDir, run: Run) -> None:
    site.record("one.md", MINIMAL)
    result = run("build", "--now", "2023-01-01")
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((site.out / "manifest.json").read_text())
    assert manifest["events"]["one"]["sequence"] == 0
    assert manifest["events"]["one"]["last_modified"] == "2022-11-30T23:00:00Z"  # updated, Zurich
    first = snapshot(site.out)
    assert run("build", "--now", "2030-06-01", "--as-of", "2023-01-01").exit_code == 0
    assert snapshot(site.out) == first
    assert run("build", "--check").exit_code == 0


def test_failed_build_leaves_out_untouched(site: SiteDir, run: Run) -> None:
    site.record("one.md", MINIMAL)
    assert run("build").exit_code == 0
    before = snapshot(site.out)
    site.record("two.md", MINIMAL.replace("end: 2022-12-07T17:00", "end: 2022-12-07T10:00"))
    result = run("build")
    assert result.exit_code == 1
    assert "events/two.md:5: end: must be after start" in result.stderr
    assert snapshot(site.out) == before
    assert sorted(p.name for p in site.root.iterdir()) == ["events", "out"]


def test_check_names_stale_files(site: SiteDir, run: Run) -> None:
    site.record("one.md", MINIMAL)
    assert run("build").exit_code == 0
    site.record("one.md", MINIMAL.replace("Body.", "Body, edited."))
    result = run("build", "--check")
    assert result.exit_code == 1
    assert "  manifest.json (changed)" in result.stderr.splitlines()


@pytest.mark.parametrize("aside", [False, True])
def test_check_reads_every_file_and_names_each_difference(
    site: SiteDir, run: Run, monkeypatch: pytest.MonkeyPatch, aside: bool
) -> None:
    """A file edited by hand to the same size, one removed, one added, and one behind a link
    to nothing: each is named, in path order, and nothing else; a link to a file with the
    right bytes is as good as the file. With ``aside``, half of the files are read back in a
    forked process (:func:`eventfeed.write.read_digests`), as with many files."""
    if aside:
        monkeypatch.setattr(write, "DIGEST_ASIDE_FILES", 2)
    site.record("one.md", MINIMAL)
    site.record("two.md", MINIMAL.replace("A meeting", "Another meeting"))
    assert run("build").exit_code == 0
    page = site.out / "events" / "one.html"
    text = page.read_bytes()
    page.write_bytes(text.replace(b"A meeting", b"A Meeting", 1))  # the same size
    assert len(page.read_bytes()) == len(text)
    (site.out / "events" / "two.ics").unlink()
    (site.out / "notes.txt").write_text("added by hand\n")
    (site.out / "gone.html").symlink_to(site.out / "nowhere.html")
    style = site.out / "style.css"
    kept = site.root / "style.css"
    style.rename(kept)
    style.symlink_to(kept)
    result = run("build", "--check")
    assert result.exit_code == 1
    listed = [line for line in result.stderr.splitlines() if line.startswith("  ")]
    assert listed == [
        "  events/one.html (changed)",
        "  events/two.ics (missing)",
        "  notes.txt (not built any more)",
    ]


def test_schedule_change_raises_sequence_and_wording_does_not(site: SiteDir, run: Run) -> None:
    site.record("one.md", MINIMAL)
    assert run("build", "--now", "2023-01-01").exit_code == 0
    site.record("one.md", MINIMAL.replace("Body.", "Body, typo fixed."))
    assert run("build", "--now", "2023-01-02").exit_code == 0
    state = json.loads((site.out / "manifest.json").read_text())["events"]["one"]
    assert (state["sequence"], state["last_modified"], state["dtstamp"]) == (
        0,
        "2023-01-02T00:00:00Z",
        "2022-11-30T23:00:00Z",
    )
    site.record("one.md", MINIMAL.replace("T17:00", "T18:00"))
    assert run("build", "--now", "2023-01-03").exit_code == 0
    state = json.loads((site.out / "manifest.json").read_text())["events"]["one"]
    assert (state["sequence"], state["last_modified"], state["dtstamp"]) == (
        1,
        "2023-01-03T00:00:00Z",
        "2023-01-03T00:00:00Z",
    )


@pytest.mark.parametrize("target", ["events", ".", "occupied"])
def test_refuses_output_folders_it_does_not_own(site: SiteDir, run: Run, target: str) -> None:
    site.record("one.md", MINIMAL)
    (site.root / ".git").mkdir()
    occupied = site.root / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    before = snapshot(site.root)
    result = run("build", "--out", target)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"error: refusing to use {target} as the output folder"
    ) or result.stderr.startswith(f"error: refusing to replace {target}")
    assert snapshot(site.root) == before


COLLECTED = MINIMAL.replace(
    "updated: 2022-12-01\n",
    "updated: 2022-12-01\norganizers: [{name: A network of its own}]\npartners: [ilo]\n"
    "tags: [decent-work, finance]\nlanguage: fr\n",
)


@pytest.mark.parametrize(
    ("spec", "member"),
    [
        ({}, True),
        ({"kinds": ["meeting", "webinar"]}, True),
        ({"kinds": ["webinar"]}, False),
        ({"regions": ["global"]}, False),  # the record names no region
        ({"tags": ["finance", "trade"]}, True),
        ({"tags": ["trade"]}, False),
        ({"organizers": ["ilo"]}, True),  # a partner counts
        ({"organizers": ["undp"]}, False),  # an organisation given whole has no key
        ({"languages": ["fr"]}, True),
        ({"languages": ["en"]}, False),
        ({"kinds": ["meeting"], "tags": ["finance"], "languages": ["en"]}, False),  # all must
    ],
)
def test_an_event_is_in_a_collection_when_it_matches_every_filter(
    site: SiteDir, spec: dict[str, list[str]], member: bool
) -> None:
    from eventfeed.build import in_collection
    from eventfeed.load import load_site
    from eventfeed.model import Collection

    site.record("a.md", COLLECTED)
    loaded = load_site(site.events)
    (event,) = loaded.events
    collection = Collection(title="Some", **spec)  # type: ignore[arg-type]
    settings = loaded.settings.model_copy(update={"collections": {"some": collection}})
    assert in_collection(event, settings, "some") is member
