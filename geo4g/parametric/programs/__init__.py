"""Procedural shape programs: a ShapeNet-like family of categories with part labels.

``get_program("chair").sample(generator)`` returns a ``ShapeSample`` (mesh, per-face
part labels, parameter vector). ``CATEGORIES`` lists the categories in a fixed order,
which is the order of class labels in ``geo4g.data.ProceduralShapes``.
"""
from __future__ import annotations

from typing import Dict, Tuple

from .base import Draw, PartAssembler, ShapeProgram, ShapeSample, rotation_matrix
from .furniture import PROGRAMS as _FURNITURE
from .objects import PROGRAMS as _OBJECTS

__all__ = ["SHAPE_PROGRAMS", "CATEGORIES", "get_program", "ShapeProgram", "ShapeSample", "PartAssembler",
           "Draw", "rotation_matrix"]

SHAPE_PROGRAMS: Dict[str, ShapeProgram] = {p.name: p for p in (*_FURNITURE, *_OBJECTS)}
CATEGORIES: Tuple[str, ...] = tuple(SHAPE_PROGRAMS)


def get_program(name: str) -> ShapeProgram:
    """The program of category ``name`` (one of ``CATEGORIES``)."""
    if name not in SHAPE_PROGRAMS:
        raise ValueError(f"unknown shape category {name!r}; known categories: {list(CATEGORIES)}")
    return SHAPE_PROGRAMS[name]
