"""Area-weighted sampling of points on mesh surfaces."""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple, Union

import torch

from geo4g.structures import Meshes, lengths_to_mask, packed_to_padded
from geo4g.structures.checks import check_faces, check_finite, check_tensor, describe

__all__ = ["sample_points_from_meshes", "sample_meshes", "MeshSamples", "sample_surface", "SurfaceSamples"]


class MeshSamples(NamedTuple):
    """Points drawn on a batch of ``B`` meshes, ``S`` per mesh.

    ``points (B, S, 3)``; ``normals (B, S, 3)`` unit face normals; ``textures (B, S, C)`` or
    ``None``; ``face_index (B, S)`` long, the sampled face as an index into
    ``meshes.faces_packed()`` (``-1`` for a mesh without faces); ``barycentric (B, S, 3)`` the
    weights of the face's three vertices (zeros for a mesh without faces)."""

    points: torch.Tensor
    normals: torch.Tensor
    textures: Optional[torch.Tensor]
    face_index: torch.Tensor
    barycentric: torch.Tensor


def sample_meshes(meshes: Meshes, num_samples: int = 10000,
                  generator: Optional[torch.Generator] = None) -> MeshSamples:
    """Sample points uniformly by area on each mesh's surface, with their faces and barycentrics.

    A face is drawn with probability proportional to its area, then a point inside it by uniform
    barycentric coordinates ``(1 - sqrt(u), sqrt(u) (1 - v), sqrt(u) v)``, so the samples are
    uniform over the surface. Points, normals and textures are differentiable with respect to
    the vertices (and textures); ``face_index`` and ``barycentric`` let any per-face or
    per-vertex attribute follow the samples.

    Args:
        meshes: a ``Meshes`` batch of ``B`` meshes.
        num_samples: points per mesh, ``S >= 0``.
        generator: a ``torch.Generator`` on the meshes' device for reproducible samples.

    Returns:
        ``MeshSamples``. A mesh without faces gives zero points and normals and ``face_index``
        ``-1``; a mesh whose faces all have zero area is sampled uniformly over its faces (with
        zero normals).

    Raises:
        TypeError: ``meshes`` is not a ``Meshes``.
        ValueError: negative ``num_samples``.
    """
    if not isinstance(meshes, Meshes):
        raise TypeError(f"meshes must be a geo4g.structures.Meshes, got {describe(meshes)}")
    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 0:
        raise ValueError(f"num_samples must be a non-negative int, got {num_samples!r}")
    B, S = len(meshes), num_samples
    verts = meshes.verts_packed()
    dtype, device = verts.dtype, meshes.device
    num_faces = meshes.num_faces_per_mesh()
    has_faces = num_faces > 0
    textures = meshes.textures_packed()
    out_points = verts.new_zeros(B, S, 3)
    out_normals = verts.new_zeros(B, S, 3)
    out_textures = None if textures is None else textures.new_zeros(B, S, textures.shape[-1])
    out_faces = torch.full((B, S), -1, dtype=torch.long, device=device)
    out_bary = verts.new_zeros(B, S, 3)
    if S == 0 or not bool(has_faces.any()):
        return MeshSamples(out_points, out_normals, out_textures, out_faces, out_bary)

    areas = packed_to_padded(meshes.faces_areas_packed().detach(), num_faces)
    valid = lengths_to_mask(num_faces, areas.shape[1])
    flat = areas.sum(1) == 0
    weights = torch.where(flat[:, None], valid.to(dtype), areas)[has_faces]
    face_in_mesh = torch.multinomial(weights, S, replacement=True, generator=generator)  # (B', S)
    face_packed = face_in_mesh + meshes.mesh_to_faces_packed_first_idx()[has_faces, None]
    faces = meshes.faces_packed()[face_packed]

    u, v = torch.rand(2, *face_in_mesh.shape, 1, dtype=dtype, device=device, generator=generator)
    su = u.sqrt()
    bary = torch.cat([1 - su, su * (1 - v), su * v], -1)  # (B', S, 3)
    rows = (has_faces.nonzero().flatten(),)
    out_points = out_points.index_put(rows, (bary[..., None] * verts[faces]).sum(-2))
    out_normals = out_normals.index_put(rows, meshes.faces_normals_packed()[face_packed])
    if textures is not None:
        out_textures = out_textures.index_put(rows, (bary[..., None] * textures[faces]).sum(-2))
    out_faces = out_faces.index_put(rows, face_packed)
    out_bary = out_bary.index_put(rows, bary.detach())
    return MeshSamples(out_points, out_normals, out_textures, out_faces, out_bary)


def sample_points_from_meshes(
    meshes: Meshes,
    num_samples: int = 10000,
    return_normals: bool = False,
    return_textures: bool = False,
    generator: Optional[torch.Generator] = None,
) -> Union[torch.Tensor, Tuple[torch.Tensor, ...]]:
    """Sample points uniformly by area on each mesh's surface (PyTorch3D's signature).

    See :func:`sample_meshes` (which also returns each sample's face and barycentric
    coordinates) for the sampling; point positions (and interpolated textures) are
    differentiable with respect to the vertices.

    Args:
        meshes: a ``Meshes`` batch of ``B`` meshes.
        num_samples: points per mesh, ``S >= 0``.
        return_normals: also return each sample's face normal.
        return_textures: also return per-vertex ``textures`` interpolated at each sample.
        generator: a ``torch.Generator`` on the meshes' device for reproducible samples.

    Returns:
        ``samples: (B, S, 3)``, then ``normals: (B, S, 3)`` and ``textures: (B, S, C)``
        when asked for. A mesh without faces gives zeros; a mesh whose faces
        all have zero area is sampled uniformly over its faces.

    Raises:
        TypeError: ``meshes`` is not a ``Meshes``.
        ValueError: negative ``num_samples``, or textures asked of meshes without them.
    """
    if isinstance(meshes, Meshes) and return_textures and meshes.textures_packed() is None:
        raise ValueError("return_textures=True needs meshes built with per-vertex textures, got textures=None")
    samples = sample_meshes(meshes, num_samples, generator)
    out = [samples.points]
    if return_normals:
        out.append(samples.normals)
    if return_textures:
        out.append(samples.textures)
    return out[0] if len(out) == 1 else tuple(out)


class SurfaceSamples(NamedTuple):
    """Points drawn on one mesh: ``points (S, 3)``, ``normals (S, 3)`` (unit face normals) and
    ``face_index (S,)`` (the face each point lies on, e.g. to carry per-face labels to points)."""

    points: torch.Tensor
    normals: torch.Tensor
    face_index: torch.Tensor


def sample_surface(verts: torch.Tensor, faces: torch.Tensor, num_samples: int,
                   generator: Optional[torch.Generator] = None) -> SurfaceSamples:
    """Area-weighted uniform samples on a single mesh, with the face of each sample.

    The per-mesh twin of ``sample_points_from_meshes`` for data pipelines: no batch
    structure to build, and ``face_index`` lets per-face attributes (part labels)
    follow the points.

    Args:
        verts: ``(V, 3)`` float vertices.
        faces: ``(F, 3)`` long indices into ``verts``, ``F >= 1``.
        num_samples: ``S >= 0``.
        generator: a ``torch.Generator`` on ``verts``' device for reproducible samples.

    Returns:
        ``SurfaceSamples``. When every face has zero area, faces are drawn uniformly and
        the normals are zero.

    Raises:
        TypeError: ``verts`` not a float tensor or ``faces`` not an integer tensor.
        ValueError: bad shapes, NaN/inf in ``verts``, no faces, out-of-range indices, negative ``num_samples``.
    """
    check_tensor(verts, "verts", ndim=2, last_dim=3, kind="float", shape_hint="(V, 3)")
    check_faces(faces, "faces", num_verts=verts.shape[0])
    if faces.shape[0] == 0:
        raise ValueError("faces is empty: a mesh without faces has no surface to sample")
    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 0:
        raise ValueError(f"num_samples must be a non-negative int, got {num_samples!r}")
    check_finite(verts, "verts")
    a, b, c = verts[faces].unbind(1)
    cross = torch.linalg.cross(b - a, c - a)
    areas = cross.detach().norm(dim=1)
    total = float(areas.sum())
    cdf = torch.cumsum(areas if total > 0 else torch.ones_like(areas), 0)
    draws = torch.rand(3, num_samples, dtype=verts.dtype, device=verts.device, generator=generator)
    face_index = torch.searchsorted(cdf, draws[0] * cdf[-1], right=True).clamp_max(faces.shape[0] - 1)
    su, v = draws[1].sqrt()[:, None], draws[2][:, None]
    points = (1 - su) * a[face_index] + su * (1 - v) * b[face_index] + su * v * c[face_index]
    # Unit normals differentiable through their normalisation (a detached norm would give wrong
    # gradients); zero-area faces get a zero normal with zero gradient instead of 0 / 0.
    cross = cross[face_index]
    norm = cross.norm(dim=1, keepdim=True)
    positive = norm > 0
    normals = torch.where(positive, cross / torch.where(positive, norm, torch.ones_like(norm)), cross.new_zeros(()))
    return SurfaceSamples(points, normals, face_index)
