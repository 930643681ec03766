"""Collate dataset items of ragged sizes into a batch (a ``collate_fn`` for ``DataLoader``).

``torch.utils.data.default_collate`` stacks tensors and so fails on point clouds or
meshes of different sizes. ``collate_geometry`` pads them, builds geo4g structures, or
builds a PyTorch Geometric ``Batch``; ``GeometryCollate(output)`` is the same as a
picklable callable to pass as ``DataLoader(collate_fn=...)`` (also with workers).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Dict, List, Sequence

import torch

from geo4g.io.interop import _require
from geo4g.structures import Meshes, Pointclouds, check_tensor_list, list_to_padded
from geo4g.structures.checks import describe

from .transforms import check_item

__all__ = ["GeometryCollate", "collate_geometry", "OUTPUTS"]

#: the batch formats ``collate_geometry`` makes
OUTPUTS = ("structures", "padded", "pyg")

_GEOMETRY_KEYS = ("points", "normals", "part_labels", "verts", "faces", "face_labels")
# names the pyg output gives to the item keys; other item keys keep their name
_PYG_NAMES = {"points": "pos", "normals": "normal", "part_labels": "y", "verts": "pos", "faces": "face",
              "face_labels": "face_y", "label": "category", "category": "category_name"}
_PYG_RESERVED = set(_PYG_NAMES.values()) | {"batch", "ptr"}


def collate_geometry(batch: Sequence[Dict[str, object]], output: str = "structures"):
    """Collate a list of item dicts (``geo4g.data`` item format) of ragged sizes.

    Every item must hold the same keys. Geometry keys are batched by ``output``:

    - ``"padded"``: ``points (B, N, 3)`` and ``normals (B, N, 3)`` padded with 0, with
      ``lengths (B,)`` long; ``verts (B, V, 3)`` padded with 0 and ``verts_lengths (B,)``;
      ``faces (B, F, 3)`` padded with -1 rows (the padded layout ``Meshes`` reads) and
      ``faces_lengths (B,)``.
    - ``"structures"``: ``pointclouds``, a ``Pointclouds(points, normals=...)``, and
      ``meshes``, a ``Meshes(verts, faces)``, in place of those keys.

    In both, ``part_labels (B, N)`` and ``face_labels (B, F)`` are padded with -1, so
    ``cross_entropy(..., ignore_index=-1)`` skips the padding (unsigned integer labels and
    faces, which cannot hold -1, are widened to long first). Other keys: tensors of
    one shape are stacked (the scalar ``label`` becomes ``(B,)``, equal-length
    ``params (P,)`` become ``(B, P)``); tensors of different shapes (``params`` of
    different categories) stay a list of ``B`` tensors; Python numbers become a tensor;
    strings and anything else become a list.

    - ``"pyg"``: a ``torch_geometric.data.Batch`` following PyG's ``ShapeNet`` dataset:
      ``pos`` (the points, or the vertices of a mesh item), ``normal`` (as PyG's
      ``SamplePoints`` names them; PyG's ``ShapeNet`` puts normals in ``x``),
      ``y`` the per-point ``part_labels (sum N,)`` when items have them, else the class
      ``label (B,)`` as in PyG's ``ModelNet``; ``category (B,)`` the class ``label``;
      ``face (3, sum F)`` and ``face_y (sum F,)`` (``face_labels``) for mesh items;
      ``category_name`` (the ``category`` strings) and ``name`` as lists; ``batch`` and
      ``ptr`` as PyG makes them. Other tensors are graph-level: one shape gives
      ``(B, ...)``, different shapes are concatenated along dim 0 as PyG does
      (``Batch.get_example(i)`` splits them). Needs ``torch_geometric`` (the ``pyg`` extra).

    Args:
        batch: a non-empty list of item dicts.
        output: ``"structures"``, ``"padded"`` or ``"pyg"``.

    Returns:
        a dict (``"structures"``, ``"padded"``) or a ``torch_geometric.data.Batch``.

    Raises:
        ValueError: an empty batch, an unknown ``output``, items with different keys (the
            message names the key and the item index), bad geometry (naming
            ``batch[i]['key']``), a metadata key that clashes with a key the output makes
            (``lengths``, ``pointclouds``, ...; for ``"pyg"`` the PyG names), or for
            ``"pyg"`` items holding both points and a mesh.
        TypeError: ``batch`` is not a list of dicts, geometry of mixed dtypes, or one key
            holding values of different types.
        ImportError: ``output="pyg"`` without ``torch_geometric`` installed.
    """
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {list(OUTPUTS)}, got {output!r}")
    if not isinstance(batch, (list, tuple)):
        raise TypeError(f"batch must be a list of item dicts, got {describe(batch)}")
    if len(batch) == 0:
        raise ValueError("batch is empty: collate_geometry needs at least one item")
    for i, item in enumerate(batch):
        if not isinstance(item, Mapping):
            raise TypeError(f"batch[{i}] must be an item dict, got {describe(item)}")
    keys = list(batch[0])
    for i, item in enumerate(batch[1:], 1):
        for key in keys:
            if key not in item:
                raise ValueError(f"batch[{i}] lacks key {key!r} that batch[0] has: every item needs the same keys")
        for key in item:
            if key not in batch[0]:
                raise ValueError(f"batch[{i}] has key {key!r} that batch[0] lacks: every item needs the same keys")
    for i, item in enumerate(batch):
        check_item(item, f"batch[{i}]")
        for key in keys:
            if type(item[key]) is not type(batch[0][key]):
                raise TypeError(f"batch[{i}][{key!r}] is of type {type(item[key]).__name__} but batch[0][{key!r}] "
                                f"is of type {type(batch[0][key]).__name__}: one key must hold one type")
    for key in keys:
        if key in _GEOMETRY_KEYS:
            check_tensor_list([item[key] for item in batch], f"the items' {key!r}", ndim=None)
    if output == "pyg":
        return _to_pyg(batch, keys)
    return _to_dict(batch, keys, output == "structures")


def _lengths(values: List[torch.Tensor]) -> torch.Tensor:
    return torch.tensor([v.shape[0] for v in values], dtype=torch.long, device=values[0].device)


def _signed(values: List[torch.Tensor]) -> List[torch.Tensor]:
    """Unsigned integer tensors widened to long, so that -1 padding stays -1 (uint8 would wrap it to 255)."""
    if not values[0].dtype.is_signed:  # integer kinds only reach here (check_item)
        return [v.long() for v in values]
    return values


def _to_dict(batch: Sequence[Mapping], keys: List[str], structures: bool) -> Dict[str, object]:
    column = {key: [item[key] for item in batch] for key in keys}
    for key in ("faces", "part_labels", "face_labels"):
        if key in column:
            column[key] = _signed(column[key])
    out: Dict[str, object] = {}
    if "points" in column:
        if structures:
            out["pointclouds"] = Pointclouds(column["points"], normals=column.get("normals"))
        else:
            out["points"], out["lengths"] = list_to_padded(column["points"]), _lengths(column["points"])
            if "normals" in column:
                out["normals"] = list_to_padded(column["normals"])
    if "verts" in column:
        if structures:
            out["meshes"] = Meshes(column["verts"], column["faces"])
        else:
            out["verts"], out["verts_lengths"] = list_to_padded(column["verts"]), _lengths(column["verts"])
            out["faces"] = list_to_padded(column["faces"], pad_value=-1)
            out["faces_lengths"] = _lengths(column["faces"])
    for key in ("part_labels", "face_labels"):
        if key in column:
            out[key] = list_to_padded(column[key], pad_value=-1)
    for key in keys:
        if key not in _GEOMETRY_KEYS:
            if key in out:
                raise ValueError(f"batch[0] key {key!r} clashes with the {key!r} that output="
                                 f"{'structures' if structures else 'padded'!r} makes from the geometry; rename it")
            out[key] = _collate_other(column[key])
    return out


def _collate_other(values: list):
    """Stack same-shape tensors, tensor-ify numbers, list the rest."""
    first = values[0]
    if isinstance(first, torch.Tensor):
        if all(v.shape == first.shape for v in values):
            return torch.stack(values)
        return values
    if isinstance(first, (int, float)):  # bool is an int: a bool tensor
        return torch.tensor(values)
    return values


def _to_pyg(batch: Sequence[Mapping], keys: List[str]):
    pyg = _require("torch_geometric.data", "collate_geometry(output='pyg')", "pyg")
    if "points" in keys and "verts" in keys:
        raise ValueError("output='pyg' gives each item one geometry in pos: batch[0] holds both 'points' and "
                         "'verts'; drop one (SamplePoints turns a mesh into points)")
    for key in keys:
        if key not in _PYG_NAMES and key in _PYG_RESERVED:
            raise ValueError(f"batch[0] key {key!r} clashes with a name the pyg output uses "
                             f"({sorted(_PYG_RESERVED)}); rename it")
    stacked = {key for key in keys if key not in _GEOMETRY_KEYS and key != "label"
               and isinstance(batch[0][key], torch.Tensor) and batch[0][key].dim() > 0
               and all(item[key].shape == batch[0][key].shape for item in batch)}
    data_list = []
    for item in batch:
        attrs = {_PYG_NAMES.get(key, key): (value[None] if key in stacked else value) for key, value in item.items()}
        if "faces" in item:
            attrs["face"] = item["faces"].t().contiguous()
        if "label" in item and "part_labels" not in item:
            attrs["y"] = item["label"]
        data_list.append(pyg.Data(**attrs))
    return pyg.Batch.from_data_list(data_list)


class GeometryCollate:
    """``collate_geometry`` with a fixed ``output``, to pass as ``DataLoader(collate_fn=...)``.

    Args:
        output: ``"structures"``, ``"padded"`` or ``"pyg"`` (see ``collate_geometry``).
    """

    def __init__(self, output: str = "structures"):
        if output not in OUTPUTS:
            raise ValueError(f"GeometryCollate: output must be one of {list(OUTPUTS)}, got {output!r}")
        self.output = output

    def __call__(self, batch: Sequence[Dict[str, object]]):
        return collate_geometry(batch, self.output)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(output={self.output!r})"
