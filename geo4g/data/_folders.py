"""Folder helpers of the dataset readers: existence checks that name the expected layout,
sorted listings, listings for error messages, name resolution and choice checks."""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Union

PathLike = Union[str, os.PathLike]


def require_folder(root: PathLike, dataset: str, layout: str, published: str) -> Path:
    """``Path(root)``; ``FileNotFoundError`` naming the expected layout and where the data is published."""
    path = Path(root)
    if not path.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"{dataset} folder not found (geo4g downloads nothing): expected "
                                f"{layout}, as published at {published}", str(path))
    return path


def subfolders(path: Path) -> List[str]:
    """The sorted names of the visible sub-folders of ``path``."""
    with os.scandir(path) as entries:
        return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())


def files_in(path: Path) -> List[str]:
    """The sorted names of the visible files of ``path``."""
    with os.scandir(path) as entries:
        return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_file())


def describe_folder(path: Path, limit: int = 8) -> str:
    """A short listing of ``path`` for error messages: ``['a/', 'b.txt', ... (12 entries)]``."""
    with os.scandir(path) as entries:
        names = sorted(e.name + "/" * e.is_dir() for e in entries if not e.name.startswith("."))
    if not names:
        return "nothing"
    shown = ", ".join(repr(n) for n in names[:limit])
    return f"[{shown}{', ...' if len(names) > limit else ''}] ({len(names)} entries)"


def resolve_names(requested: Union[str, Iterable[str]], aliases: Dict[str, str], what: str, argument: str,
                  valid: str) -> List[str]:
    """Map ``requested`` names (a string or a list; matched case-insensitively against ``aliases``,
    whose keys are lower case) to canonical names, in the order given, without repeats."""
    if isinstance(requested, str):
        requested = [requested]
    try:
        requested = list(requested)
    except TypeError:
        raise TypeError(f"{argument} must be a list of {what} names or None, got {type(requested).__name__}") from None
    if not requested:
        raise ValueError(f"{argument} must name at least one {what}, got an empty list; valid: {valid}")
    chosen: List[str] = []
    for r in requested:
        canonical = aliases.get(r.lower()) if isinstance(r, str) else None
        if canonical is None:
            raise ValueError(f"unknown {what} {r!r} in {argument}; valid: {valid}")
        if canonical not in chosen:
            chosen.append(canonical)
    return chosen


def check_choice(value, choices: Sequence[str], argument: str) -> str:
    """``value`` if it is one of ``choices``, else a ``ValueError`` naming ``argument``."""
    if value not in choices:
        raise ValueError(f"{argument} must be one of {list(choices)}, got {value!r}")
    return value
