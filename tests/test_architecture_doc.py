"""ARCHITECTURE.md names only what exists: every path, dotted module and code name in
backticks is found in the code (the map must not drift from the territory)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "ARCHITECTURE.md"
#: Words in backticks that are not code names (commands, packages' display names).
NOT_CODE = {"slidelens", "TYPE_CHECKING"}


def _backticked() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    return [token.strip() for token in inline]


def _code_text() -> str:
    files = [
        *ROOT.glob("inference/**/*.py"),
        *ROOT.glob("viewer/**/*.py"),
        *ROOT.glob("tests/*.py"),
    ]
    return "\n".join(p.read_text(encoding="utf-8") for p in files)


def _expand(word: str) -> list[str]:
    """``viewer/{tiles,layers}`` -> ``viewer/tiles``, ``viewer/layers``."""
    match = re.fullmatch(r"(.*)\{([^}]*)\}(.*)", word)
    if not match:
        return [word]
    return [f"{match[1]}{part}{match[3]}" for part in match[2].split(",")]


def _defined(word: str, code: str) -> bool:
    """A function, class, constant or attribute defined in the code, or a module."""
    pattern = rf"\b(def|class) {word}\b|^\s*{word}\s*[:=]|^\s*self\.{word}\s*[:=]"
    if re.search(pattern, code, flags=re.M):
        return True
    return any(
        path.stem == word or path.name == word
        for path in [*ROOT.glob("inference/**/*"), *ROOT.glob("viewer/**/*")]
    )


def _dotted_exists(word: str, code: str) -> bool:
    """A dotted module (``inference.engine.device``, or ``engine.device`` inside a package
    the doc is describing) or ``Class.method``."""
    parts = word.split(".")
    for base in (ROOT, ROOT / "inference", ROOT / "viewer"):
        module = base.joinpath(*parts)
        if module.with_suffix(".py").exists() or module.is_dir():
            return True
    return len(parts) == 2 and _defined(parts[0], code) and _defined(parts[1], code)


def _exists_as_path(token: str) -> bool:
    candidates = [token, f"inference/{token}", f"viewer/{token}", f"viewer/qt/{token}"]
    if any((ROOT / c.rstrip("/")).exists() for c in candidates):
        return True
    # a bare file name the doc places under a folder it names nearby (``card.py``)
    return "/" not in token and any(ROOT.glob(f"*/**/{token}"))


def test_every_name_in_the_architecture_doc_exists() -> None:
    code = _code_text()
    missing = []
    for token in _backticked():
        if token in NOT_CODE or token.startswith("slidelens "):
            continue
        words = re.split(r"[\s|]+", token.replace("(", " ").replace(")", " "))
        for word in [w for raw in words for w in _expand(raw.strip(".,"))]:
            word = word.strip(".,")
            if not word or word in NOT_CODE:
                continue
            if "/" in word or word.endswith((".py", ".json", ".md")):
                found = _exists_as_path(word)
            elif "." in word:
                found = _dotted_exists(word, code)
            elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", word):
                found = _defined(word, code)
            else:
                found = True  # not a code name (a number, a symbol)
            if not found:
                missing.append(word)
    assert missing == []


def test_the_doc_check_can_fail() -> None:
    code = _code_text()
    assert not _exists_as_path("inference/no_such_package/")
    assert not _defined("NoSuchClassAnywhere", code)
    assert _defined("SlideCanvas", code) and _defined("run_halving", code)
    assert _dotted_exists("TileScheduler.request", code)
    assert not _dotted_exists("TileScheduler.no_such_method", code)
    assert _expand("viewer/{tiles,layers}") == ["viewer/tiles", "viewer/layers"]
