"""Before Qt aborts on a machine without its X libraries, SlideLens says what to install."""

from __future__ import annotations

from pathlib import Path

import pytest

from viewer.platform_check import missing_libraries, packages_for, platform_problem

LDD_MISSING = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f1)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb-xinput.so.0 => not found
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f3)
"""
LDD_ALL_THERE = "\tlibxcb-cursor.so.0 => /lib/x86_64-linux-gnu/libxcb-cursor.so.0 (0x1)\n"
PLUGIN = Path("/venv/PySide6/Qt/plugins/platforms/libqxcb.so")
X11 = {"DISPLAY": ":0"}


def test_missing_libraries_are_read_from_ldd_once_each() -> None:
    found = missing_libraries(PLUGIN, lambda _p: LDD_MISSING)
    assert found == [
        "libxcb-cursor.so.0",
        "libxcb-icccm.so.4",
        "libxcb-keysyms.so.1",
        "libxcb-xinput.so.0",
    ]


def test_packages_for_apt_and_dnf() -> None:
    apt, dnf = packages_for(missing_libraries(PLUGIN, lambda _p: LDD_MISSING))
    assert apt == ["libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxcb-xinput0"]
    assert dnf == ["xcb-util-cursor", "xcb-util-wm", "xcb-util-keysyms", "libxcb"]


def test_the_message_names_the_libraries_and_the_install_commands() -> None:
    message = platform_problem(X11, plugin=PLUGIN, ldd=lambda _p: LDD_MISSING, system="linux")
    assert message is not None
    assert "libxcb-cursor.so.0" in message
    assert "sudo apt-get install -y libxcb-cursor0 libxcb-icccm4" in message
    assert "sudo dnf install -y xcb-util-cursor" in message


def test_no_display_is_a_problem_too() -> None:
    message = platform_problem({}, plugin=PLUGIN, ldd=lambda _p: LDD_ALL_THERE, system="linux")
    assert message is not None and "DISPLAY" in message


@pytest.mark.parametrize(
    ("environ", "system"),
    [
        (X11, "linux"),  # everything is installed
        ({"QT_QPA_PLATFORM": "offscreen"}, "linux"),  # not the X11 plugin
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux"),  # Qt takes Wayland there
        ({}, "darwin"),  # Qt brings its own on macOS and Windows
    ],
)
def test_no_problem(environ: dict[str, str], system: str) -> None:
    ldd = (lambda _p: LDD_ALL_THERE) if environ == X11 else (lambda _p: LDD_MISSING)
    assert platform_problem(environ, plugin=PLUGIN, ldd=ldd, system=system) is None


def test_run_gui_exits_non_zero_without_starting_qt(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The check runs before any QApplication exists (Qt would abort the process)."""
    import subprocess
    import sys

    code = (
        "import sys, viewer.app as app\n"
        "app.platform_problem = lambda: 'missing: libxcb-cursor.so.0'\n"
        "rc = app.run_gui(None)\n"
        "from PySide6.QtWidgets import QApplication\n"
        "print(rc, QApplication.instance() is None)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["3", "True"]
    assert "libxcb-cursor.so.0" in done.stderr
