"""What a person means by a model's name: a plan file on disk or a zoo model, never a guess.

``fedgrid host digits_mpl`` and ``host_training("runs/digits.fgplan")`` with a typo used to reach
the zoo's lookup and end in a ``KeyError`` traceback. Here a name that is neither an existing file
nor a zoo model is refused with one line that lists the zoo and suggests the closest spelling.
"""

from __future__ import annotations

import difflib
from pathlib import Path


class UnknownModel(ValueError):
    """Neither a file nor a zoo model goes by this name."""


def zoo_names() -> tuple[str, ...] | None:
    """The zoo's model names, or None when torch (which the zoo needs) is not installed."""
    try:
        from fedgrid_plans.zoo import ZOO_NAMES
    except ImportError:
        return None
    return ZOO_NAMES


def looks_like_path(text: str) -> bool:
    """A plan file's name rather than a zoo name: a .fgplan suffix or a directory in it."""
    return text.endswith(".fgplan") or "/" in text or "\\" in text


def resolve_model(text: str) -> Path | str:
    """``Path`` when ``text`` names an existing file, else ``text`` itself when it is a zoo name.

    Without torch the zoo cannot be listed: a name that does not look like a path is returned as
    is, and compiling it says that torch is needed.
    """
    path = Path(text)
    if path.is_file():
        return path
    if path.exists():
        raise UnknownModel(f"{text} is a directory, not a plan file")
    names = zoo_names()
    if names is None:
        if looks_like_path(text):
            raise UnknownModel(f"no file {text}{_suggestion(text, _sibling_plans(path))}")
        return text
    if text in names:
        return text
    if looks_like_path(text):
        raise UnknownModel(f"no file {text}{_suggestion(text, _sibling_plans(path))} (nor a zoo "
                           f"model: {', '.join(names)})")
    candidates = list(names) + _sibling_plans(path)
    raise UnknownModel(f"no zoo model {text!r} (known: {', '.join(names)}) and no file "
                       f"{text}{_suggestion(text, candidates)}")


def _sibling_plans(path: Path) -> list[str]:
    """The plan files beside where ``path`` points, spelt the way the person spelt the folder."""
    folder = path.parent
    try:
        return [str(folder / p.name) if str(folder) != "." else p.name
                for p in folder.glob("*.fgplan") if p.is_file()]
    except OSError:
        return []


def _suggestion(text: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(text, candidates, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""
