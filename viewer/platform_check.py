"""Can Qt open a window here?  Checked before the application exists, because Qt aborts
the process (a core dump, "could not load the Qt platform plugin") when it cannot.

On Linux the window goes through Qt's ``xcb`` platform plugin, which needs a handful of
X libraries that a fresh Debian, Ubuntu or Fedora machine may lack (``libxcb-cursor0``
most often).  :func:`platform_problem` finds the plugin inside the installed PySide6,
asks the dynamic loader (``ldd``) which of its libraries are missing, and returns a
message naming them with the commands that install them; ``None`` means go ahead.
Qt-free: nothing here imports PySide6.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

#: Shared library -> (Debian/Ubuntu package, Fedora/RHEL package).
PACKAGES: Mapping[str, tuple[str, str]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
}
#: Every other ``libxcb-NAME.so.N`` comes from Debian's ``libxcb-NAME<N>`` and Fedora's libxcb.
_XCB_LIB = re.compile(r"^libxcb-([a-z0-9-]+)\.so\.(\d+)$")
_NOT_FOUND = re.compile(r"^\s*(\S+)\s*=>\s*not found", re.MULTILINE)

Ldd = Callable[[Path], str]


def xcb_plugin(pyside_dir: Path | None = None) -> Path | None:
    """The ``libqxcb.so`` of the installed PySide6, or ``None`` when there is none."""
    if pyside_dir is None:
        spec = importlib.util.find_spec("PySide6")
        if spec is None or spec.origin is None:
            return None
        pyside_dir = Path(spec.origin).parent
    plugin = pyside_dir / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.is_file() else None


def run_ldd(library: Path) -> str:
    """``ldd``'s report on ``library`` (empty when ``ldd`` is absent or fails)."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return ""
    try:
        done = subprocess.run(
            [ldd, str(library)], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout


def missing_libraries(plugin: Path, ldd: Ldd = run_ldd) -> list[str]:
    """The shared libraries the plugin needs that the loader cannot find, in order."""
    found = _NOT_FOUND.findall(ldd(plugin))
    return list(dict.fromkeys(found))


def packages_for(libraries: list[str]) -> tuple[list[str], list[str]]:
    """The Debian/Ubuntu and Fedora/RHEL packages that provide ``libraries``."""
    apt: list[str] = []
    dnf: list[str] = []
    for lib in libraries:
        if lib in PACKAGES:
            deb, rpm = PACKAGES[lib]
        elif match := _XCB_LIB.match(lib):
            deb, rpm = f"libxcb-{match[1]}{match[2]}", "libxcb"
        else:
            continue
        apt += [deb] if deb not in apt else []
        dnf += [rpm] if rpm not in dnf else []
    return apt, dnf


def _uses_xcb(environ: Mapping[str, str]) -> bool:
    platform = environ.get("QT_QPA_PLATFORM", "")
    if platform:
        return platform.split(":")[0].split(";")[0] == "xcb"
    # Qt picks Wayland in a Wayland session (when the plugin loads); X11 otherwise
    return not environ.get("WAYLAND_DISPLAY")


def platform_problem(
    environ: Mapping[str, str] | None = None,
    *,
    plugin: Path | None = None,
    ldd: Ldd = run_ldd,
    system: str = sys.platform,
) -> str | None:
    """Why Qt could not open a window here, with what to do; ``None`` when it can.

    Only the X11 (``xcb``) path on Linux is checked: other platforms and Qt's own
    ``offscreen`` plugin bring what they need.
    """
    env = os.environ if environ is None else environ
    if not system.startswith("linux") or not _uses_xcb(env):
        return None
    plugin = plugin or xcb_plugin()
    if plugin is None:
        return None
    missing = missing_libraries(plugin, ldd)
    if missing:
        apt, dnf = packages_for(missing)
        lines = [
            "SlideLens cannot open its window: Qt's X11 platform plugin needs system "
            f"libraries that are not installed: {', '.join(missing)}.",
        ]
        if apt:
            lines.append(f"  Debian/Ubuntu:  sudo apt-get install -y {' '.join(apt)}")
            lines.append(f"  Fedora/RHEL:    sudo dnf install -y {' '.join(dnf)}")
        lines.append("The headless commands (slidelens infer, explain, export ...) work without.")
        return "\n".join(lines)
    if not env.get("DISPLAY"):
        return (
            "SlideLens cannot open its window: no X display (DISPLAY is not set). Run it "
            "in a desktop session, or under Xvfb (xvfb-run slidelens); the headless "
            "commands (slidelens infer, explain, export ...) need no display."
        )
    return None
