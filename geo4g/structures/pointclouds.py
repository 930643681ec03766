"""``Pointclouds``: a ragged batch of point clouds with optional normals and features."""
from __future__ import annotations

from typing import List, Optional, Tuple, Union

import torch

from .checks import check_tensor
from .ragged import RaggedBatch, RaggedField, normalize_index

__all__ = ["Pointclouds"]

TensorOrList = Union[torch.Tensor, List[torch.Tensor]]


def check_same_layout(field: RaggedField, reference: RaggedField, name: str, ref_name: str) -> None:
    """Raise if ``field`` does not have ``reference``'s batch size, lengths, device and dtype."""
    if len(field) != len(reference):
        raise ValueError(f"{name} must hold {len(reference)} items like {ref_name}, got {len(field)}")
    got = [t.shape[0] for t in field.list()]
    want = [t.shape[0] for t in reference.list()]
    if got != want:
        raise ValueError(f"{name} must have the lengths of {ref_name} {want}, got {got}")
    if field.list() and field.device != reference.device:
        raise ValueError(f"{name} must be on the device of {ref_name} ({reference.device}), got {field.device}")
    if field.list() and field.list()[0].dtype != reference.list()[0].dtype:
        raise TypeError(
            f"{name} must have the dtype of {ref_name} ({reference.list()[0].dtype}), got {field.list()[0].dtype}"
        )


def aux_field(data, name: str, last_dim: Optional[int], reference: RaggedField, ref_name: str) -> RaggedField:
    """A per-row field (normals, features, textures) with the layout of ``reference``.

    ``data`` is a list of ``(N_i, D)`` tensors or a padded ``(B, N, D)`` tensor
    read with ``reference``'s lengths; a layout that does not fit raises an
    error naming ``name``.
    """
    lengths = None
    if isinstance(data, torch.Tensor):
        dim = last_dim or "D"
        check_tensor(data, name, ndim=3, last_dim=last_dim, kind="float", shape_hint=f"(B, N, {dim})")
        lengths = reference.lengths()
        longest = int(lengths.max()) if lengths.numel() else 0
        if data.shape[0] != len(reference) or data.shape[1] < longest:
            raise ValueError(
                f"padded {name} must have shape ({len(reference)}, N >= {longest}, {dim}) to hold the "
                f"lengths of {ref_name} {lengths.tolist()}, got shape {tuple(data.shape)}"
            )
    field = RaggedField.from_input(data, name, last_dim, "float", lengths=lengths)
    check_same_layout(field, reference, name, ref_name)
    return field


class Pointclouds(RaggedBatch):
    """A batch of ``B`` point clouds of ``N_i`` points each, with list, padded and packed views.

    The names and meanings follow PyTorch3D's ``Pointclouds`` so code can move
    between the two by changing an import.

    Args:
        points: list of ``B`` tensors ``(N_i, 3)``, or a padded ``(B, N, 3)`` tensor.
        normals: same layout as ``points`` with last dimension 3, or ``None``.
        features: same layout with last dimension ``C``, or ``None``.
        lengths: ``(B,)`` long, the valid rows of padded inputs (default: all
            ``N``). Must be ``None`` for list input.

    Views (computed on first use and cached; autograd flows through them):
        ``points_list()`` -> ``B`` tensors ``(N_i, 3)``;
        ``points_padded()`` -> ``(B, N_max, 3)``, padding rows hold 0;
        ``points_packed()`` -> ``(sum N_i, 3)``; the same for normals and features.

    Raises:
        TypeError: a non-float tensor, a non-tensor, or mixed dtypes.
        ValueError: a wrong last dimension, mixed devices, NaN/inf values,
            normals/features whose lengths differ from the points', or
            ``lengths`` that do not fit the padded size.
    """

    _field_names = ("_points", "_normals", "_features")

    def __init__(
        self,
        points: TensorOrList,
        normals: Optional[TensorOrList] = None,
        features: Optional[TensorOrList] = None,
        lengths: Optional[torch.Tensor] = None,
    ):
        self._cache = {}
        self._points = RaggedField.from_input(points, "points", 3, "float", lengths=lengths)
        self._normals = self._aux(normals, "normals", 3)
        self._features = self._aux(features, "features", None)

    def _aux(self, data, name: str, last_dim: Optional[int]) -> Optional[RaggedField]:
        if data is None:
            return None
        return aux_field(data, name, last_dim, self._points, "points")

    def __repr__(self) -> str:
        extra = "".join(f", {n}" for n, f in (("normals", self._normals), ("features", self._features)) if f)
        return f"Pointclouds(batch={len(self)}, points={self.num_points_per_cloud().tolist()}{extra})"

    # sizes and indices -----------------------------------------------------
    def isempty(self) -> bool:
        """True when the batch holds no cloud or only empty clouds."""
        return len(self) == 0 or int(self.num_points_per_cloud().sum()) == 0

    def num_points_per_cloud(self) -> torch.Tensor:
        """``(B,)`` long: ``N_i`` for each cloud."""
        return self._points.lengths()

    def cloud_to_packed_first_idx(self) -> torch.Tensor:
        """``(B,)`` long: the packed index of each cloud's first point."""
        return self._points.first_idx()

    def packed_to_cloud_idx(self) -> torch.Tensor:
        """``(sum N_i,)`` long: the cloud each packed point belongs to."""
        return self._points.batch_idx()

    def padded_to_packed_idx(self) -> torch.Tensor:
        """``(sum N_i,)`` long: ``points_padded().view(-1, 3)[idx] == points_packed()``."""
        return self._points.padded_to_packed_idx()

    # views -----------------------------------------------------------------
    def points_list(self) -> List[torch.Tensor]:
        return self._points.list()

    def points_padded(self) -> torch.Tensor:
        return self._points.padded()

    def points_packed(self) -> torch.Tensor:
        return self._packed_positions()

    def normals_list(self) -> Optional[List[torch.Tensor]]:
        return None if self._normals is None else self._normals.list()

    def normals_padded(self) -> Optional[torch.Tensor]:
        return None if self._normals is None else self._normals.padded()

    def normals_packed(self) -> Optional[torch.Tensor]:
        return None if self._normals is None else self._normals.packed()

    def features_list(self) -> Optional[List[torch.Tensor]]:
        return None if self._features is None else self._features.list()

    def features_padded(self) -> Optional[torch.Tensor]:
        return None if self._features is None else self._features.padded()

    def features_packed(self) -> Optional[torch.Tensor]:
        return None if self._features is None else self._features.packed()

    def get_cloud(self, index: int) -> Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        """``(points (N_i, 3), normals (N_i, 3) or None, features (N_i, C) or None)`` of one cloud."""
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        i = normalize_index(index, len(self), "index")[0]
        return tuple(None if f is None else f.list()[i] for f in self._fields())

    # new batches -----------------------------------------------------------
    def update_padded(
        self,
        new_points_padded: torch.Tensor,
        new_normals_padded: Optional[torch.Tensor] = None,
        new_features_padded: Optional[torch.Tensor] = None,
    ) -> "Pointclouds":
        """A new batch with the same lengths and new padded values.

        Args:
            new_points_padded: ``(B, N, 3)``, the shape of ``points_padded()``.
            new_normals_padded, new_features_padded: ``(B, N, 3)`` / ``(B, N, C)``,
                or ``None`` to keep this batch's normals / features.
        """
        want = tuple(self.points_padded().shape[:2])
        lengths = self.num_points_per_cloud()

        def rebuild(new, old: Optional[RaggedField], name: str, last_dim):
            if new is None:
                return old
            check_tensor(new, name, ndim=3, last_dim=last_dim, kind="float", shape_hint="(B, N, D)")
            if tuple(new.shape[:2]) != want:
                raise ValueError(f"{name} must have shape {want} + (D,) like points_padded(), got {tuple(new.shape)}")
            return RaggedField.from_input(new, name, last_dim, "float", lengths=lengths)

        return self._from_fields(
            rebuild(new_points_padded, self._points, "new_points_padded", 3),
            rebuild(new_normals_padded, self._normals, "new_normals_padded", 3),
            rebuild(new_features_padded, self._features, "new_features_padded", None),
        )

    def offset(self, offsets) -> "Pointclouds":
        """A new batch with points moved by ``offsets``: ``(sum N_i, 3)`` packed or ``(3,)`` for all."""
        return self._moved(torch.ones(()), self._broadcast(offsets, "offsets", allow_packed=True))

    def scale(self, scale) -> "Pointclouds":
        """A new batch with points multiplied by ``scale``: a scalar or ``(B,)`` per cloud.

        Normals are kept as they are (as in PyTorch3D), also for a negative scale.
        """
        return self._moved(self._broadcast(scale, "scale", allow_packed=False), torch.zeros(()))
