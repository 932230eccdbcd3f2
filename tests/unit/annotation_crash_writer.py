"""Helper process for the crash test in ``test_annotation_storage.py`` (not a test module).

Usage: ``python annotation_crash_writer.py FOLDER`` with the repository on ``PYTHONPATH``.
For every line ``round`` on stdin it forks a writer child and prints ``child <pid>``.
The child opens the slide's annotations from ``FOLDER`` (as the app does after a
crash), prints ``start <version>``, then saves a new version in an endless loop,
printing ``saved <version>`` after each save returns, until the test kills it with
SIGKILL.  The helper reaps the child and prints ``reaped``, so every line the child
wrote comes before it.  Any other line ends the helper.

The version is the note of the annotation named ``version``.  Forking from one warm
process keeps twenty kills within a second or two.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from viewer.annotations import AnnotationStore

SOURCE_ID = "crash-test-slide"
MARKER = "version"


def write_forever(folder: Path) -> None:
    store = AnnotationStore(folder)
    annotations = store.open(SOURCE_ID).annotations
    marker = next(a for a in annotations if a.name == MARKER)
    version = int(marker.note)
    report(f"start {version}")
    while True:
        version += 1
        annotations.set_note(marker.id, str(version))
        store.save(annotations)
        report(f"saved {version}")


def report(line: str) -> None:
    # One write(2) of a short line to a pipe is atomic, so a kill cannot tear it
    # (print() may issue the text and the newline as two writes).
    os.write(1, (line + "\n").encode())


def main() -> None:
    folder = Path(sys.argv[1])
    for line in sys.stdin:
        if line.strip() != "round":
            break
        # the child waits for "child <pid>" to be written first: under load it may
        # otherwise run before the parent and say "start" ahead of it
        go_read, go_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(go_write)
                if os.read(go_read, 1) == b"g":  # else the parent is gone: stop
                    write_forever(folder)
            finally:
                os._exit(1)
        os.close(go_read)
        print(f"child {pid}", flush=True)
        os.write(go_write, b"g")
        os.close(go_write)
        os.waitpid(pid, 0)
        print("reaped", flush=True)


if __name__ == "__main__":
    main()
