"""``Meshes``: a ragged batch of triangle meshes with lazy, cached geometric views."""
from __future__ import annotations

from typing import List, Optional, Tuple, Union

import torch

from .checks import check_faces, check_tensor, describe
from .pointclouds import aux_field
from .ragged import RaggedBatch, RaggedField, normalize_index
from .utils import packed_to_padded

__all__ = ["Meshes"]

TensorOrList = Union[torch.Tensor, List[torch.Tensor]]


def _unit(x: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` scaled to unit length; exactly-zero rows stay zero (with a finite gradient).

    Unlike ``F.normalize(eps=...)`` this has no absolute cut-off, so tiny but valid
    triangles still get unit normals whatever the mesh's scale.
    """
    n = x.norm(dim=-1, keepdim=True)
    return x / torch.where(n > 0, n, torch.ones_like(n))


def _faces_field(faces, num_meshes: int) -> RaggedField:
    """Faces from a list of ``(F_i, 3)`` or a ``(B, F, 3)`` tensor padded with -1 rows at the end."""
    if isinstance(faces, torch.Tensor):
        check_tensor(faces, "faces", ndim=3, last_dim=3, kind="int", shape_hint="(B, F, 3)")
        valid = (faces >= 0).all(-1)
        lengths = valid.sum(1)
        prefix = torch.arange(faces.shape[1], device=faces.device)[None] < lengths[:, None]
        if not bool((valid == prefix).all()):
            raise ValueError("padded faces must hold their -1 padding rows after all valid faces of each mesh")
        field = RaggedField.from_input(faces.long(), "faces", 3, "int", lengths=lengths, pad_value=-1, finite=False)
    else:
        field = RaggedField.from_input(faces, "faces", 3, "int", pad_value=-1, finite=False)
        field = field.map(torch.Tensor.long) if field.list() and field.list()[0].dtype != torch.long else field
    if len(field) != num_meshes:
        raise ValueError(f"faces must hold {num_meshes} meshes like verts, got {len(field)}")
    return field


class Meshes(RaggedBatch):
    """A batch of ``B`` triangle meshes with ``V_i`` vertices and ``F_i`` faces each.

    Names and meanings follow PyTorch3D's ``Meshes``. Faces index the vertices
    of their own mesh (``0 <= faces[i] < V_i``); the packed view offsets them
    into the packed vertices.

    Args:
        verts: list of ``B`` tensors ``(V_i, 3)``, or a padded ``(B, V, 3)`` tensor.
        faces: list of ``B`` integer tensors ``(F_i, 3)``, or a padded
            ``(B, F, 3)`` tensor whose padding rows are ``-1`` and come last.
        textures: per-vertex attributes (colours, features): a list of
            ``(V_i, C)`` tensors or a padded ``(B, V, C)`` tensor, or ``None``.
        verts_lengths: ``(B,)`` long, the valid rows of a padded ``verts``
            (default: all ``V``). Must be ``None`` for list input.

    Views (lazy, cached, differentiable with respect to the vertices):
        ``verts_list() / verts_padded() (0-padded) / verts_packed()``,
        ``faces_list() / faces_padded() (-1-padded) / faces_packed()``,
        ``verts_normals_*``, ``faces_normals_*``, ``faces_areas_packed()``,
        ``edges_packed()``, ``faces_packed_to_edges_packed()`` and the index maps.

    Degenerate faces (zero area) have zero face normals and contribute nothing
    to vertex normals; a vertex touched only by such faces has a zero normal.

    Raises:
        TypeError: non-float vertices, non-integer faces, mixed dtypes.
        ValueError: wrong shapes, NaN/inf vertices, mixed devices, face indices
            outside ``[0, V_i)``, different batch sizes of verts and faces.
    """

    _field_names = ("_verts", "_faces", "_textures")

    def __init__(
        self,
        verts: TensorOrList,
        faces: TensorOrList,
        textures: Optional[TensorOrList] = None,
        verts_lengths: Optional[torch.Tensor] = None,
    ):
        self._cache = {}
        self._verts = RaggedField.from_input(verts, "verts", 3, "float", lengths=verts_lengths,
                                             lengths_name="verts_lengths")
        self._faces = _faces_field(faces, len(self._verts))
        for i, (v, f) in enumerate(zip(self._verts.list(), self._faces.list())):
            if f.device != v.device:
                raise ValueError(f"faces[{i}] must be on the device of verts[{i}] ({v.device}), got {f.device}")
            check_faces(f, f"faces[{i}]", v.shape[0])
        self._textures = None
        if textures is not None:
            self._textures = aux_field(textures, "textures", None, self._verts, "verts")

    def __repr__(self) -> str:
        return (f"Meshes(batch={len(self)}, verts={self.num_verts_per_mesh().tolist()}, "
                f"faces={self.num_faces_per_mesh().tolist()}{', textures' if self._textures else ''})")

    def _cached(self, key: str, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    # sizes and index maps ----------------------------------------------------
    def isempty(self) -> bool:
        """True when the batch holds no mesh or no mesh has a face."""
        return len(self) == 0 or int(self.num_faces_per_mesh().sum()) == 0

    def num_verts_per_mesh(self) -> torch.Tensor:
        """``(B,)`` long."""
        return self._verts.lengths()

    def num_faces_per_mesh(self) -> torch.Tensor:
        """``(B,)`` long."""
        return self._faces.lengths()

    def mesh_to_verts_packed_first_idx(self) -> torch.Tensor:
        """``(B,)`` long: packed index of each mesh's first vertex."""
        return self._verts.first_idx()

    def mesh_to_faces_packed_first_idx(self) -> torch.Tensor:
        """``(B,)`` long: packed index of each mesh's first face."""
        return self._faces.first_idx()

    def verts_packed_to_mesh_idx(self) -> torch.Tensor:
        """``(sum V_i,)`` long: the mesh of each packed vertex."""
        return self._verts.batch_idx()

    def faces_packed_to_mesh_idx(self) -> torch.Tensor:
        """``(sum F_i,)`` long: the mesh of each packed face."""
        return self._faces.batch_idx()

    def verts_padded_to_packed_idx(self) -> torch.Tensor:
        """``(sum V_i,)`` long: ``verts_padded().view(-1, 3)[idx] == verts_packed()``."""
        return self._verts.padded_to_packed_idx()

    # vertex and face views -----------------------------------------------------
    def verts_list(self) -> List[torch.Tensor]:
        return self._verts.list()

    def verts_padded(self) -> torch.Tensor:
        return self._verts.padded()

    def verts_packed(self) -> torch.Tensor:
        return self._packed_positions()

    def faces_list(self) -> List[torch.Tensor]:
        return self._faces.list()

    def faces_padded(self) -> torch.Tensor:
        return self._faces.padded()

    def faces_packed(self) -> torch.Tensor:
        """``(sum F_i, 3)`` long, indices into ``verts_packed()``."""
        def compute():
            if not len(self):
                return torch.zeros((0, 3), dtype=torch.long)
            offsets = self.mesh_to_verts_packed_first_idx()[self.faces_packed_to_mesh_idx()]
            return self._faces.packed() + offsets[:, None]
        return self._cached("faces_packed", compute)

    def textures_list(self) -> Optional[List[torch.Tensor]]:
        return None if self._textures is None else self._textures.list()

    def textures_padded(self) -> Optional[torch.Tensor]:
        return None if self._textures is None else self._textures.padded()

    def textures_packed(self) -> Optional[torch.Tensor]:
        return None if self._textures is None else self._textures.packed()

    def get_mesh_verts_faces(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(verts (V_i, 3), faces (F_i, 3))`` of one mesh."""
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"index must be an int, got {describe(index)}")
        i = normalize_index(index, len(self), "index")[0]
        return self.verts_list()[i], self.faces_list()[i]

    # geometry ------------------------------------------------------------------
    def _faces_cross(self) -> torch.Tensor:
        """``(sum F_i, 3)``: ``(v1 - v0) x (v2 - v0)``, twice the area times the unit normal."""
        def compute():
            v = self.verts_packed()[self.faces_packed()]
            return torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0], dim=-1)
        return self._cached("faces_cross", compute)

    def faces_areas_packed(self) -> torch.Tensor:
        """``(sum F_i,)``: triangle areas."""
        return self._cached("faces_areas", lambda: 0.5 * self._faces_cross().norm(dim=-1))

    def faces_normals_packed(self) -> torch.Tensor:
        """``(sum F_i, 3)``: unit normals by the right-hand rule (zero for degenerate faces)."""
        return self._cached("faces_normals", lambda: _unit(self._faces_cross()))

    def faces_normals_list(self) -> List[torch.Tensor]:
        return list(self.faces_normals_packed().split(self.num_faces_per_mesh().tolist()))

    def faces_normals_padded(self) -> torch.Tensor:
        # Same padded size as faces_padded(), which a padded input may make longer than max F_i.
        return packed_to_padded(self.faces_normals_packed(), self.num_faces_per_mesh(),
                                max_size=self.faces_padded().shape[1])

    def verts_normals_packed(self) -> torch.Tensor:
        """``(sum V_i, 3)``: area-weighted mean of the adjacent face normals, unit length."""
        def compute():
            cross, faces = self._faces_cross(), self.faces_packed()
            normals = self.verts_packed().new_zeros(self.verts_packed().shape)
            normals = normals.index_add(0, faces.reshape(-1), cross.repeat_interleave(3, dim=0))
            return _unit(normals)
        return self._cached("verts_normals", compute)

    def verts_normals_list(self) -> List[torch.Tensor]:
        return list(self.verts_normals_packed().split(self.num_verts_per_mesh().tolist()))

    def verts_normals_padded(self) -> torch.Tensor:
        # Same padded size as verts_padded(), which a padded input may make longer than max V_i.
        return packed_to_padded(self.verts_normals_packed(), self.num_verts_per_mesh(),
                                max_size=self.verts_padded().shape[1])

    def _edges(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        def compute():
            faces = self.faces_packed()
            num_faces, num_verts = faces.shape[0], self.verts_packed().shape[0]
            # Edge k of a face is the one opposite its vertex k (PyTorch3D's order).
            edges = torch.cat([faces[:, [1, 2]], faces[:, [2, 0]], faces[:, [0, 1]]], 0).sort(dim=1).values
            keys = edges[:, 0] * max(num_verts, 1) + edges[:, 1]
            unique_keys, inverse = torch.unique(keys, return_inverse=True)
            edges_packed = torch.stack([unique_keys // max(num_verts, 1), unique_keys % max(num_verts, 1)], 1)
            face_to_mesh = self.faces_packed_to_mesh_idx()
            edge_to_mesh = face_to_mesh.new_zeros(unique_keys.shape[0]).scatter(
                0, inverse, face_to_mesh.repeat(3)) if num_faces else face_to_mesh.new_zeros(0)
            return edges_packed, inverse.reshape(3, num_faces).t(), edge_to_mesh
        return self._cached("edges", compute)

    def edges_packed(self) -> torch.Tensor:
        """``(E, 2)`` long: the unique undirected edges, ``edges[:, 0] < edges[:, 1]``, sorted;
        edges of one mesh are contiguous and meshes come in batch order."""
        return self._edges()[0]

    def faces_packed_to_edges_packed(self) -> torch.Tensor:
        """``(sum F_i, 3)`` long: for each face, the packed index of the edge opposite each vertex."""
        return self._edges()[1]

    def edges_packed_to_mesh_idx(self) -> torch.Tensor:
        """``(E,)`` long: the mesh of each packed edge."""
        return self._edges()[2]

    def num_edges_per_mesh(self) -> torch.Tensor:
        """``(B,)`` long."""
        return torch.bincount(self.edges_packed_to_mesh_idx(), minlength=len(self))

    def mesh_to_edges_packed_first_idx(self) -> torch.Tensor:
        """``(B,)`` long: packed index of each mesh's first edge."""
        counts = self.num_edges_per_mesh()
        return torch.cumsum(counts, 0) - counts

    # new batches -----------------------------------------------------------------
    def offset_verts(self, vert_offsets_packed) -> "Meshes":
        """A new batch with vertices moved: ``(sum V_i, 3)`` packed offsets or ``(3,)`` for all."""
        return self._moved(torch.ones(()), self._broadcast(vert_offsets_packed, "vert_offsets_packed", True))

    def offset_verts_(self, vert_offsets_packed) -> "Meshes":
        """In-place ``offset_verts``; cached views are recomputed on next use."""
        return self._assign(self.offset_verts(vert_offsets_packed))

    def scale_verts(self, scale) -> "Meshes":
        """A new batch with vertices multiplied by ``scale``: a scalar or ``(B,)`` per mesh."""
        return self._moved(self._broadcast(scale, "scale", False), torch.zeros(()))

    def scale_verts_(self, scale) -> "Meshes":
        """In-place ``scale_verts``; cached views are recomputed on next use."""
        return self._assign(self.scale_verts(scale))

    def _assign(self, other: "Meshes") -> "Meshes":
        self._verts, self._cache = other._verts, {}
        return self

    def update_padded(self, new_verts_padded: torch.Tensor) -> "Meshes":
        """A new batch with the same faces and ``new_verts_padded: (B, V, 3)`` (the shape of ``verts_padded()``)."""
        check_tensor(new_verts_padded, "new_verts_padded", ndim=3, last_dim=3, kind="float", shape_hint="(B, V, 3)")
        if new_verts_padded.shape != self.verts_padded().shape:
            raise ValueError(f"new_verts_padded must have shape {tuple(self.verts_padded().shape)} like "
                             f"verts_padded(), got {tuple(new_verts_padded.shape)}")
        verts = RaggedField.from_input(new_verts_padded, "new_verts_padded", 3, "float",
                                       lengths=self.num_verts_per_mesh())
        return self._from_fields(verts, self._faces, self._textures)
