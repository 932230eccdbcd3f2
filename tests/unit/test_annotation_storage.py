"""Atomic writes with a backup, per-slide storage, autosave and recovery, and a SIGKILL test."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from inference.core.atomic_io import (
    atomic_write,
    atomic_write_text,
    backup_path,
    remove_stale_temporaries,
)
from viewer.annotations import (
    DEFAULT_CLASSES,
    Annotation,
    AnnotationClass,
    AnnotationFileError,
    AnnotationSet,
    AnnotationStore,
    import_geojson,
    load_user_palette,
    save_user_palette,
)
from viewer.annotations.storage import slide_key

ROOT = Path(__file__).resolve().parents[2]
HELPER = Path(__file__).with_name("annotation_crash_writer.py")
SLIDE = "0123456789abcdef01234567"  # what content_fingerprint() gives


def temporaries(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp"))


# -- atomic writes --------------------------------------------------------------------------


def test_atomic_write_keeps_the_previous_version_as_bak(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "a.json"
    atomic_write_text(path, "one", backup=True)
    assert path.read_text() == "one" and not backup_path(path).exists()
    atomic_write_text(path, "two", backup=True)
    assert (path.read_text(), backup_path(path).read_text()) == ("two", "one")
    atomic_write_text(path, "three", backup=True)
    assert (path.read_text(), backup_path(path).read_text()) == ("three", "two")
    atomic_write_text(path, "four")  # without backup=True the .bak is left alone
    assert backup_path(path).read_text() == "two"
    assert temporaries(path.parent) == []


def test_a_failed_write_leaves_the_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    atomic_write_text(path, "old")

    def fail_half_way(fh: object) -> None:
        fh.write(b"partial")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(path, fail_half_way, backup=True)
    assert path.read_text() == "old" and backup_path(path).read_text() == "old"
    assert temporaries(tmp_path) == []


def test_backup_is_copied_where_hard_links_are_not_supported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(src: object, dst: object) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / "a.json"
    atomic_write_text(path, "one", backup=True)
    atomic_write_text(path, "two", backup=True)
    assert (path.read_text(), backup_path(path).read_text()) == ("two", "one")
    assert temporaries(tmp_path) == []


def test_stale_temporaries_are_removed_but_fresh_ones_kept(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    old = tmp_path / ".a.json.0123456789ab.tmp"
    old_bak = tmp_path / ".a.json.bak.0123456789ab.tmp"
    fresh = tmp_path / ".a.json.ba9876543210.tmp"
    other = tmp_path / ".b.json.0123456789ab.tmp"
    for p in (old, old_bak, fresh, other):
        p.write_text("x")
    for p in (old, old_bak, other):
        os.utime(p, (time.time() - 7200, time.time() - 7200))
    assert remove_stale_temporaries(path) == 2
    assert temporaries(tmp_path) == [fresh, other]


# -- the store ------------------------------------------------------------------------------


def edited_set(store: AnnotationStore) -> AnnotationSet:
    aset = store.open(SLIDE, 0.5).annotations
    aset.add(Annotation.rectangle(0, 0, 10, 10, classification=DEFAULT_CLASSES[0]))
    aset.add(Annotation.ruler([(0, 0), (5, 5)], note="first"))
    return aset


def test_save_and_open_round_trip_with_bak(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path)
    aset = edited_set(store)
    aset.palette.add(AnnotationClass("Mine", (1, 2, 3)))
    assert store.save(aset) == tmp_path / f"{SLIDE}.geojson"
    assert not aset.dirty
    first = aset.annotations()
    aset.delete([first[0].id])
    store.save(aset)
    opened = AnnotationStore(tmp_path).open(SLIDE, 0.5)
    assert opened.loaded_from == "saved" and opened.messages == () and opened.recovery is None
    assert opened.annotations.annotations() == aset.annotations()
    assert opened.annotations.palette.get("Mine") == AnnotationClass("Mine", (1, 2, 3))
    assert opened.annotations.mpp == 0.5 and not opened.annotations.dirty
    assert list(import_geojson(store.files(SLIDE).backup).annotations) == first


def test_new_slide_opens_empty(tmp_path: Path) -> None:
    opened = AnnotationStore(tmp_path).open(SLIDE)
    assert (opened.loaded_from, len(opened.annotations), opened.recovery) == ("none", 0, None)
    assert opened.annotations.palette.names()[0] == "Tumour"


def test_default_folder_is_in_the_user_data_dir(_isolated_user_data: Path) -> None:
    assert AnnotationStore().folder == _isolated_user_data / "annotations"


def test_autosave_writes_only_new_unsaved_work(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path)
    aset = store.open(SLIDE).annotations
    assert store.autosave(aset) is None  # nothing to save
    aset.add(Annotation.points([(1, 1)]))
    recovery = store.files(SLIDE).recovery
    assert store.autosave(aset) == recovery and recovery.exists()
    stamp = recovery.stat().st_mtime_ns
    assert store.autosave(aset) is None and recovery.stat().st_mtime_ns == stamp
    aset.undo()  # back to the saved (empty) state: the autosave is not needed any more
    assert store.autosave(aset) is None and not recovery.exists()
    aset.redo()
    store.autosave(aset)
    store.save(aset)
    assert not recovery.exists()


def test_newer_autosave_is_offered_and_recovered(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path)
    aset = edited_set(store)
    store.save(aset)
    aset.set_note(aset.ids()[1], "after the save")
    store.autosave(aset)  # ...and then the app crashes

    later = AnnotationStore(tmp_path)
    opened = later.open(SLIDE, 0.5)
    assert opened.recovery is not None
    assert opened.recovery.annotation_count == 2 and opened.recovery.saved_at
    assert opened.annotations.get(aset.ids()[1]).note == "first"  # the saved version
    # the GUI is still asking: a timer autosave of the clean set must not delete it
    assert later.autosave(opened.annotations) is None and opened.recovery.path.exists()
    recovered = later.recover(SLIDE, 0.5)
    assert recovered.annotations() == aset.annotations() and recovered.dirty
    later.save(recovered)
    assert not opened.recovery.path.exists()
    assert AnnotationStore(tmp_path).open(SLIDE).recovery is None


def test_discarded_or_stale_autosaves_are_not_offered(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path)
    aset = edited_set(store)
    store.autosave(aset)
    recovery = store.files(SLIDE).recovery
    stale = recovery.read_bytes()
    store.save(aset)
    # a crash between writing the save and removing the autosave leaves an older one
    recovery.write_bytes(stale)
    assert AnnotationStore(tmp_path).open(SLIDE).recovery is None
    assert not recovery.exists()
    # an autosave with the same content as the save is not worth a question
    aset.set_name(aset.ids()[0], "x")
    store.autosave(aset)
    aset.set_name(aset.ids()[0], "")
    store.autosave(aset)  # dirty (not at the saved position) but same content
    assert store.open(SLIDE).recovery is None
    # declined by the user
    aset.set_name(aset.ids()[0], "y")
    store.autosave(aset)
    fresh = AnnotationStore(tmp_path)
    assert fresh.open(SLIDE).recovery is not None
    fresh.discard_recovery(SLIDE)
    assert AnnotationStore(tmp_path).open(SLIDE).recovery is None


def test_damaged_file_falls_back_to_the_backup_and_is_kept_aside(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path)
    aset = edited_set(store)
    store.save(aset)
    good = aset.annotations()
    aset.add(Annotation.points([(9, 9)]))
    store.save(aset)
    files = store.files(SLIDE)
    files.main.write_text('{"type": "FeatureCollection", "features": [', encoding="utf-8")

    opened = AnnotationStore(tmp_path).open(SLIDE, 0.5)
    assert opened.loaded_from == "backup" and opened.annotations.dirty
    assert opened.annotations.annotations() == good
    assert len(opened.messages) == 2
    assert opened.messages[0].startswith(
        "The saved annotations could not be read (not valid JSON: Expecting value at line 1"
    )
    damaged = sorted(tmp_path.glob(f"{SLIDE}.geojson.damaged-*"))
    assert len(damaged) == 1 and f"kept as {damaged[0].name}" in opened.messages[0]
    assert f"from {SLIDE}.geojson.bak" in opened.messages[1]
    # saving now must not rotate the damaged file (it is gone) over the good backup
    store.save(opened.annotations)
    assert list(import_geojson(files.backup).annotations) == good

    files.main.write_bytes(b"\x00garbage")
    files.backup.write_bytes(b"")
    worst = AnnotationStore(tmp_path).open(SLIDE)
    assert worst.loaded_from == "none" and len(worst.annotations) == 0
    assert "could not be read either" not in worst.messages[1]
    assert worst.messages[1] == f"The backup {SLIDE}.geojson.bak could not be read (file is empty)."


def test_odd_source_ids_stay_inside_the_folder(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path)
    files = store.files("../../etc/passwd")
    assert files.main.parent == tmp_path and files.main.name.startswith("id-")
    assert slide_key(SLIDE) == SLIDE
    with pytest.raises(ValueError, match="source_id"):
        slide_key("")


def test_user_palette_round_trip_and_damage(tmp_path: Path) -> None:
    assert load_user_palette(tmp_path / "none.json") == list(DEFAULT_CLASSES)
    classes = [*DEFAULT_CLASSES, AnnotationClass("Mitosis", (9, 8, 7))]
    save_user_palette(classes)
    assert load_user_palette() == classes
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"classes": [{"name": "x", "color": [1, 2]}]}))
    with pytest.raises(AnnotationFileError, match=r"bad\.json: class 1: a colour is three"):
        load_user_palette(bad)


# -- crash test -----------------------------------------------------------------------------


def marker_version(path: Path) -> int:
    """The version stored in a file; fails the test if the file does not parse."""
    annotations = import_geojson(path).annotations
    return int(next(a for a in annotations if a.name == "version").note)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork and SIGKILL (POSIX)")
def test_sigkill_during_saves_never_leaves_a_torn_or_missing_file(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path)
    aset = store.open("crash-test-slide").annotations
    blob = [(float(k), float(k % 7)) for k in range(250)]
    aset.add_many(Annotation.freehand(blob, note="x" * 200) for _ in range(24))
    marker = aset.add(Annotation.points([(0, 0)], name="version", note="-1"))
    store.save(aset)
    aset.set_note(marker.id, "0")
    store.save(aset)  # now there is a backup (version -1) to check from the first kill on
    main = store.files("crash-test-slide").main

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    helper = subprocess.Popen(
        [sys.executable, str(HELPER), str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    watchdog = threading.Timer(60.0, helper.kill)  # a hung helper fails the test, not CI
    watchdog.start()
    seed = time.time_ns()
    rng = random.Random(seed)
    assert helper.stdin is not None and helper.stdout is not None
    try:
        for kill in range(20):
            helper.stdin.write("round\n")
            helper.stdin.flush()
            child = int(helper.stdout.readline().split()[1])
            start = helper.stdout.readline().split()
            assert start[0] == "start", f"seed {seed}, kill {kill}: {start}"
            first = helper.stdout.readline().split()  # the loop is running: kill it anywhere
            assert first == ["saved", str(int(start[1]) + 1)], f"seed {seed}: {first}"
            last_done = int(first[1])
            time.sleep(rng.uniform(0.0, 0.05))
            os.kill(child, signal.SIGKILL)
            while (line := helper.stdout.readline().strip()) != "reaped":
                assert line.startswith("saved "), f"seed {seed}, kill {kill}: {line!r}"
                last_done = int(line.split()[1])
            where = f"seed {seed}, kill {kill}, last completed save {last_done}"
            assert main.exists(), where
            version = marker_version(main)  # parses: never torn
            assert version in (last_done, last_done + 1), f"{where}: file has {version}"
            backup = marker_version(backup_path(main))
            assert backup in (version - 1, version), f"{where}: backup has {backup}"
        helper.stdin.write("stop\n")
        helper.stdin.flush()
        assert helper.wait(timeout=10) == 0
    finally:
        watchdog.cancel()
        if helper.poll() is None:
            helper.kill()
        helper.stdin.close()
        helper.stdout.close()
