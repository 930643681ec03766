"""Item transforms: small callables that take a dataset item dict and return a new one.

Each transform validates its arguments when built and the item it gets when called,
never changes the input dict or its tensors in place, and has a readable ``repr``. The
geometric ones act on whichever of ``points`` and ``verts`` the item holds (both, with
the same draw, when it holds both) and keep ``normals`` consistent with the points.

Random transforms take ``generator``. With ``generator=None`` they draw from torch's
global RNG, which ``torch.utils.data.DataLoader`` seeds differently in every worker:
that is what training wants. A fixed ``generator`` gives a reproducible stream, but it
is copied into every worker process, so each worker then replays the same stream.
Random numbers are drawn in float64 on the generator's device (the CPU without one) and
then moved to the item's device and dtype; ``SamplePoints`` draws as ``sample_surface``
does, in the vertices' dtype on their device.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch

from geo4g.structures import check_faces, check_tensor
from geo4g.structures.checks import describe

from .base import mesh_item_to_points, voxelize_item

__all__ = [
    "Compose",
    "Jitter",
    "NormalizeUnitCube",
    "NormalizeUnitSphere",
    "RandomPointDropout",
    "RandomRotation",
    "RandomScale",
    "RandomTranslate",
    "SamplePoints",
    "Voxelize",
    "check_item",
    "random_rotations",
]

Item = Dict[str, object]

# key -> (rank, last dimension, dtype kind, shape in messages)
_GEOMETRY = {
    "points": (2, 3, "float", "(N, 3)"),
    "normals": (2, 3, "float", "(N, 3)"),
    "part_labels": (1, None, "int", "(N,)"),
    "verts": (2, 3, "float", "(V, 3)"),
    "faces": (2, 3, "int", "(F, 3)"),
    "face_labels": (1, None, "int", "(F,)"),
}
# key -> the key whose rows it must match
_ALIGNED = {"normals": "points", "part_labels": "points", "face_labels": "faces"}


def check_item(item, name: str = "item") -> Mapping:
    """Check the geometry keys of a dataset item; return ``item`` unchanged.

    Present keys must have the shapes of the item format (``points (N, 3)`` float,
    ``normals (N, 3)`` float, ``part_labels (N,)`` integer, ``verts (V, 3)`` float,
    ``faces (F, 3)`` integer indices into ``verts``, ``face_labels (F,)`` integer);
    ``normals``/``part_labels`` need ``points`` with as many rows, ``face_labels`` needs
    ``faces``, and ``verts`` and ``faces`` come together. Other keys are not checked.

    Args:
        item: the dict to check.
        name: how messages refer to it, e.g. ``"batch[3]"``.

    Raises:
        TypeError: ``item`` is not a mapping, or a geometry value is not a tensor of the
            expected dtype kind.
        ValueError: a wrong shape, a missing partner key, rows that do not line up,
            face indices out of range; the message names the key.
    """
    if not isinstance(item, Mapping):
        raise TypeError(f"{name} must be a dict of tensors and metadata, got {describe(item)}")
    for key, (ndim, last_dim, kind, hint) in _GEOMETRY.items():
        if key in item:
            check_tensor(item[key], f"{name}[{key!r}]", ndim=ndim, last_dim=last_dim, kind=kind, shape_hint=hint)
    if ("verts" in item) != ("faces" in item):
        have, lack = ("verts", "faces") if "verts" in item else ("faces", "verts")
        raise ValueError(f"{name} has {have!r} but no {lack!r}: a mesh item needs both verts (V, 3) and faces (F, 3)")
    for key, ref in _ALIGNED.items():
        if key in item:
            if ref not in item:
                raise ValueError(f"{name} has {key!r} but no {ref!r} for them to describe")
            if item[key].shape[0] != item[ref].shape[0]:
                raise ValueError(f"{name}[{key!r}] must have one row per row of {name}[{ref!r}] "
                                 f"({item[ref].shape[0]}), got shape {tuple(item[key].shape)}")
    if "faces" in item:
        check_faces(item["faces"], f"{name}['faces']", item["verts"].shape[0])
    return item


def _positions(item: Mapping, owner: str) -> List[str]:
    """The position keys present (``points``, ``verts``); raise naming ``owner`` if none."""
    keys = [k for k in ("points", "verts") if k in item]
    if not keys:
        raise ValueError(f"{owner} needs an item with 'points' (N, 3) or 'verts' (V, 3), got keys {sorted(item)}")
    return keys


def _real(value, name: str, owner: str, low: float, high: Optional[float] = None, low_open: bool = False) -> float:
    """``value`` as a finite float in ``[low, high]``; ``low`` excluded when ``low_open``, no upper bound
    without ``high``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy scalars too
        raise TypeError(f"{owner}: {name} must be a real number, got {describe(value)}")
    value = float(value)
    if not math.isfinite(value) or (value <= low if low_open else value < low) or (high is not None and value > high):
        interval = f"{'(' if low_open else '['}{low}, {'inf)' if high is None else f'{high}]'}"
        raise ValueError(f"{owner}: {name} must lie in {interval}, got {value!r}")
    return value


def _check_finite(item: Mapping, keys: Sequence[str], owner: str) -> None:
    """Raise naming the first of ``keys`` that holds a NaN or an infinity (one would spread to every position)."""
    for k in keys:
        if not bool(torch.isfinite(item[k]).all()):
            row = int((~torch.isfinite(item[k])).any(-1).nonzero()[0, 0])
            raise ValueError(f"{owner}: item[{k!r}] must be finite, got {item[k][row].tolist()} in row {row}")


def _check_generator(generator, owner: str) -> Optional[torch.Generator]:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{owner}: generator must be a torch.Generator or None, got {describe(generator)}")
    return generator


def _rand(shape, generator: Optional[torch.Generator]) -> torch.Tensor:
    """Uniform ``[0, 1)`` float64 draws on the generator's device (CPU without one)."""
    device = generator.device if generator is not None else "cpu"
    return torch.rand(shape, generator=generator, dtype=torch.float64, device=device)


def _randn(shape, generator: Optional[torch.Generator]) -> torch.Tensor:
    """Standard normal float64 draws on the generator's device (CPU without one)."""
    device = generator.device if generator is not None else "cpu"
    return torch.randn(shape, generator=generator, dtype=torch.float64, device=device)


class _Transform:
    """Shared ``repr``: the class name and the attributes listed in ``_shown``."""

    _shown: Sequence[str] = ()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._shown)
        return f"{type(self).__name__}({args})"


def _affine(item: Mapping, keys: Sequence[str], scale: torch.Tensor, shift: torch.Tensor) -> Item:
    """A copy of ``item`` whose ``keys`` positions become ``p * scale + shift`` (float64 math)."""
    out = dict(item)
    for k in keys:
        p = item[k]
        out[k] = (p.double() * scale.to(p.device) + shift.to(p.device)).to(p.dtype)
    return out


class NormalizeUnitSphere(_Transform):
    """Centre the shape and scale it so that its farthest position lies at distance 1.

    The centre is the centroid of the surface: the mean of ``points`` for a point item,
    the area-weighted mean of the face centroids for a mesh item (the mean of its
    vertices when every face has zero area). The surface centroid does not depend on
    the tessellation, and the centroid of area-uniform samples estimates it, so a mesh
    normalised before or after ``SamplePoints`` ends up centred alike (unlike
    ``Meshes.normalize("sphere")``, which uses the vertex mean). The radius is the
    largest distance from the centre over all positions (``points`` and ``verts``), so
    every position fits in the unit ball; for a mesh the farthest surface point is a
    vertex, so the whole surface fits. An item holding both a mesh and points is
    centred on its points. Normals are unchanged (a similarity keeps them).

    Edges: an item with no positions is returned as a copy; a single position (zero
    radius) is only centred. A NaN or infinite position raises ``ValueError`` (it would
    turn every position into NaN).
    """

    def __call__(self, item: Item) -> Item:
        check_item(item)
        keys = _positions(item, type(self).__name__)
        _check_finite(item, keys, type(self).__name__)
        if "points" in item:
            ref = item["points"].double()
            center = ref.mean(0) if ref.shape[0] else None
        else:
            verts = item["verts"].double()
            center = None
            if verts.shape[0]:
                a, b, c = verts[item["faces"]].unbind(1)
                areas = torch.linalg.cross(b - a, c - a).norm(dim=-1)
                total = areas.sum()
                center = verts.mean(0) if total == 0 else ((a + b + c) / 3 * areas[:, None]).sum(0) / total
        if center is None:
            return dict(item)
        radius = max(float((item[k].double() - center.to(item[k].device)).norm(dim=-1).max())
                     for k in keys if item[k].shape[0])
        scale = 1.0 / radius if radius > 0 else 1.0
        return _affine(item, keys, torch.tensor(scale, dtype=torch.float64), -center * scale)


class NormalizeUnitCube(_Transform):
    """Centre the bounding box at the origin and scale its longest side to 1.

    The box spans all positions (``points`` and ``verts``), so afterwards every
    position lies in ``[-0.5, 0.5]^3`` with the longest side touching both faces. The
    bounding-box centre does not depend on the tessellation. Normals are unchanged.

    Edges: an item with no positions is returned as a copy; a flat or single-point box
    (zero longest side) is only centred. A NaN or infinite position raises ``ValueError``
    (it would turn every position into NaN).
    """

    def __call__(self, item: Item) -> Item:
        check_item(item)
        keys = _positions(item, type(self).__name__)
        _check_finite(item, keys, type(self).__name__)
        positions = torch.cat([item[k].double().to(item[keys[0]].device) for k in keys])
        if positions.shape[0] == 0:
            return dict(item)
        low, high = positions.min(0).values, positions.max(0).values
        side = float((high - low).max())
        scale = 1.0 / side if side > 0 else 1.0
        return _affine(item, keys, torch.tensor(scale, dtype=torch.float64), -(low + high) / 2 * scale)


class SamplePoints(_Transform):
    """Turn a mesh item into a point item by area-weighted surface sampling.

    ``verts``/``faces`` are replaced by ``points (num_points, 3)`` uniform over the
    surface and, with ``include_normals``, their unit face ``normals (num_points, 3)``;
    ``face_labels (F,)`` become per-point ``part_labels (num_points,)``. Points, normals
    or part labels the item already had are replaced; metadata is kept. This wraps
    ``geo4g.data.mesh_item_to_points``.

    Args:
        num_points: samples per item, a positive int.
        include_normals: keep the face normal of each sample.
        generator: a ``torch.Generator`` on the vertices' device, or ``None`` (global RNG).

    Edges: faces of zero area are never drawn unless all are, then faces are drawn
    uniformly and the normals are zero. A mesh without faces raises ``ValueError``.
    """

    _shown = ("num_points", "include_normals")

    def __init__(self, num_points: int, include_normals: bool = True, generator: Optional[torch.Generator] = None):
        if isinstance(num_points, bool) or not isinstance(num_points, int) or num_points <= 0:
            raise ValueError(f"SamplePoints: num_points must be a positive int, got {num_points!r}")
        if not isinstance(include_normals, bool):
            raise TypeError(f"SamplePoints: include_normals must be a bool, got {describe(include_normals)}")
        self.num_points = num_points
        self.include_normals = include_normals
        self.generator = _check_generator(generator, "SamplePoints")

    def __call__(self, item: Item) -> Item:
        check_item(item)
        if "verts" not in item:
            raise ValueError(f"SamplePoints needs a mesh item with 'verts' (V, 3) and 'faces' (F, 3), "
                             f"got keys {sorted(item)}")
        mesh = {k: v for k, v in item.items() if k not in ("points", "normals", "part_labels")}
        out = mesh_item_to_points(mesh, self.num_points, self.generator)
        if not self.include_normals:
            del out["normals"]
        return out


def random_rotations(n: int, generator: Optional[torch.Generator] = None, dtype: torch.dtype = torch.float32,
                     device: Optional[Union[str, torch.device]] = None) -> torch.Tensor:
    """``(n, 3, 3)`` rotation matrices drawn uniformly (Haar measure) from SO(3).

    The first two columns are the Q factor (R with a positive diagonal) of a Gaussian
    ``(3, 2)`` matrix, uniform over orthonormal pairs; the third is their cross product,
    so the determinant is +1. The QR is Gram-Schmidt in elementwise ops, vectorised
    over ``n``: ``torch.linalg.qr`` costs far more per 3x3 call and stalls under
    thread contention.

    Args:
        n: number of rotations, ``n >= 0``.
        generator: a ``torch.Generator`` for reproducible draws, or ``None`` (global RNG).
        dtype: floating dtype of the result (the draw itself is float64).
        device: device of the result; default the generator's device (the CPU without one).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    a = _randn((n, 3, 2), _check_generator(generator, "random_rotations"))
    q1 = a[..., 0] / a[..., 0].norm(dim=-1, keepdim=True)
    q2 = a[..., 1] - (q1 * a[..., 1]).sum(-1, keepdim=True) * q1
    q2 = q2 / q2.norm(dim=-1, keepdim=True)
    q = torch.stack([q1, q2, torch.linalg.cross(q1, q2)], dim=-1)
    return q.to(dtype=dtype, device=device if device is not None else q.device)


def _axis_angle_matrix(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues: the ``(3, 3)`` rotation by ``angle`` about the unit ``axis (3,)``."""
    x, y, z = axis
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero]).view(3, 3)
    return torch.eye(3, dtype=axis.dtype, device=axis.device) + torch.sin(angle) * k + (1 - torch.cos(angle)) * k @ k


def _haar_angle(u: float, max_angle: float) -> float:
    """Invert the CDF ``(t - sin t) / (a - sin a)`` of a Haar rotation's angle on ``[0, a]`` at ``u``."""
    target = u * (max_angle - math.sin(max_angle))
    low, high = 0.0, max_angle
    for _ in range(60):  # bisection: t - sin t increases on [0, pi]; 60 halvings reach float64 precision
        mid = (low + high) / 2
        low, high = (mid, high) if mid - math.sin(mid) < target else (low, mid)
    return (low + high) / 2


class RandomRotation(_Transform):
    """Rotate the positions and normals by a random rotation ``R``: ``p -> R p``.

    With ``axis=None`` the rotation is uniform (Haar) over all rotations whose angle is
    at most ``max_angle``: over all of SO(3) for ``max_angle=pi`` (drawn by
    ``random_rotations``), otherwise a uniform axis and an angle of density
    proportional to ``1 - cos(t)`` on ``[0, max_angle]``. With ``axis="x"``, ``"y"`` or
    ``"z"`` it is a rotation about that coordinate axis by an angle uniform in
    ``[-max_angle, max_angle]``; that coordinate is left unchanged.

    Args:
        axis: ``None``, ``"x"``, ``"y"`` or ``"z"``.
        max_angle: the largest angle in radians, in ``[0, pi]``.
        generator: a ``torch.Generator`` or ``None`` (global RNG).
    """

    _shown = ("axis", "max_angle")

    def __init__(self, axis: Optional[str] = None, max_angle: float = math.pi,
                 generator: Optional[torch.Generator] = None):
        if axis not in (None, "x", "y", "z"):
            raise ValueError(f"RandomRotation: axis must be None, 'x', 'y' or 'z', got {axis!r}")
        self.axis = axis
        self.max_angle = _real(max_angle, "max_angle", "RandomRotation", 0.0, math.pi)
        self.generator = _check_generator(generator, "RandomRotation")

    def _draw(self) -> torch.Tensor:
        """Draw one rotation: ``(3, 3)`` float64 on the generator's device."""
        if self.axis is None:
            if self.max_angle == math.pi:
                return random_rotations(1, self.generator, dtype=torch.float64)[0]
            axis = _randn(3, self.generator)
            axis = axis / axis.norm()
            angle = _haar_angle(float(_rand((), self.generator)), self.max_angle)
            return _axis_angle_matrix(axis, torch.tensor(angle, dtype=torch.float64, device=axis.device))
        angle = (2 * _rand((), self.generator) - 1) * self.max_angle
        axis = torch.zeros(3, dtype=torch.float64, device=angle.device)
        axis["xyz".index(self.axis)] = 1.0
        return _axis_angle_matrix(axis, angle)

    def __call__(self, item: Item) -> Item:
        check_item(item)
        keys = _positions(item, type(self).__name__)
        rotation = self._draw()
        out = dict(item)
        for k in keys + (["normals"] if "normals" in item else []):
            x = item[k]
            out[k] = x @ rotation.t().to(device=x.device, dtype=x.dtype)
        return out


class RandomScale(_Transform):
    """Scale the positions about the origin by factors uniform in ``[low, high]``.

    One factor for all axes, or with ``anisotropic`` one per axis (``S = diag(s)``). A
    surface normal transforms as ``S^-1 n`` renormalised, so normals stay perpendicular
    to the scaled surface; a uniform scale leaves them unchanged and zero normals stay
    zero. The default range is PointNet++'s.

    Args:
        low, high: the factor range, ``0 < low <= high``.
        anisotropic: draw an independent factor per axis.
        generator: a ``torch.Generator`` or ``None`` (global RNG).
    """

    _shown = ("low", "high", "anisotropic")

    def __init__(self, low: float = 0.8, high: float = 1.25, anisotropic: bool = False,
                 generator: Optional[torch.Generator] = None):
        self.low = _real(low, "low", "RandomScale", 0.0, low_open=True)
        self.high = _real(high, "high", "RandomScale", self.low)
        if not isinstance(anisotropic, bool):
            raise TypeError(f"RandomScale: anisotropic must be a bool, got {describe(anisotropic)}")
        self.anisotropic = anisotropic
        self.generator = _check_generator(generator, "RandomScale")

    def __call__(self, item: Item) -> Item:
        check_item(item)
        keys = _positions(item, type(self).__name__)
        factors = self.low + (self.high - self.low) * _rand(3 if self.anisotropic else 1, self.generator)
        out = _affine(item, keys, factors, torch.zeros(3, dtype=torch.float64))
        if self.anisotropic and "normals" in item:
            n = item["normals"]
            scaled = n.double() / factors.to(n.device)
            length = scaled.norm(dim=-1, keepdim=True)
            out["normals"] = (scaled / torch.where(length > 0, length, torch.ones_like(length))).to(n.dtype)
        return out


class Jitter(_Transform):
    """Add clipped Gaussian noise to every point: ``p + clip(sigma * N(0, I), -clip, clip)``.

    Acts on ``points`` only (moving mesh vertices would change the surface; sample it
    first with ``SamplePoints``); normals are unchanged. The defaults are PointNet's.

    Args:
        sigma: noise standard deviation, ``>= 0``.
        clip: bound on each coordinate's offset, ``> 0``, or ``None`` for no clipping.
        generator: a ``torch.Generator`` or ``None`` (global RNG).
    """

    _shown = ("sigma", "clip")

    def __init__(self, sigma: float = 0.01, clip: Optional[float] = 0.05, generator: Optional[torch.Generator] = None):
        self.sigma = _real(sigma, "sigma", "Jitter", 0.0)
        self.clip = None if clip is None else _real(clip, "clip", "Jitter", 0.0, low_open=True)
        self.generator = _check_generator(generator, "Jitter")

    def __call__(self, item: Item) -> Item:
        check_item(item)
        if "points" not in item:
            raise ValueError(f"Jitter needs an item with 'points' (N, 3), got keys {sorted(item)}; "
                             "sample a mesh item with SamplePoints first")
        p = item["points"]
        noise = self.sigma * _randn(p.shape, self.generator)
        if self.clip is not None:
            noise = noise.clamp(-self.clip, self.clip)
        return {**item, "points": p + noise.to(device=p.device, dtype=p.dtype)}


class RandomPointDropout(_Transform):
    """PointNet++'s point dropout: drop a random fraction of points, keeping ``N``.

    A ratio ``r`` is drawn uniform in ``[0, max_ratio]``, each point is dropped with
    probability ``r``, and every dropped row of ``points``, ``normals`` and
    ``part_labels`` is replaced by row 0, so the shape and the alignment of the three
    are kept (a max-pooling network then sees fewer distinct points).

    Args:
        max_ratio: the largest dropout ratio, in ``[0, 1]``.
        generator: a ``torch.Generator`` or ``None`` (global RNG).

    Edges: an item with no points is returned as a copy. Acts on point items only.
    """

    _shown = ("max_ratio",)

    def __init__(self, max_ratio: float = 0.875, generator: Optional[torch.Generator] = None):
        self.max_ratio = _real(max_ratio, "max_ratio", "RandomPointDropout", 0.0, 1.0)
        self.generator = _check_generator(generator, "RandomPointDropout")

    def __call__(self, item: Item) -> Item:
        check_item(item)
        if "points" not in item:
            raise ValueError(f"RandomPointDropout needs an item with 'points' (N, 3), got keys {sorted(item)}; "
                             "sample a mesh item with SamplePoints first")
        n = item["points"].shape[0]
        ratio = _rand((), self.generator) * self.max_ratio
        dropped = _rand(n, self.generator) < ratio
        index = torch.where(dropped, 0, torch.arange(n, device=dropped.device)).to(item["points"].device)
        return {**item, **{k: item[k][index] for k in ("points", "normals", "part_labels") if k in item}}


class RandomTranslate(_Transform):
    """Shift the whole shape by one offset drawn uniform in ``[-max_shift, max_shift]`` per axis.

    Args:
        max_shift: the largest shift, ``>= 0``: one number for all axes or three, one per axis.
        generator: a ``torch.Generator`` or ``None`` (global RNG).
    """

    _shown = ("max_shift",)

    def __init__(self, max_shift: Union[float, Sequence[float]], generator: Optional[torch.Generator] = None):
        if isinstance(max_shift, (list, tuple)):
            if len(max_shift) != 3:
                raise ValueError(f"RandomTranslate: max_shift must be a number or 3 numbers (x, y, z), "
                                 f"got {len(max_shift)} numbers")
            max_shift = tuple(_real(s, f"max_shift[{i}]", "RandomTranslate", 0.0) for i, s in enumerate(max_shift))
        else:
            max_shift = _real(max_shift, "max_shift", "RandomTranslate", 0.0)
        self.max_shift = max_shift
        self.generator = _check_generator(generator, "RandomTranslate")

    def __call__(self, item: Item) -> Item:
        check_item(item)
        keys = _positions(item, type(self).__name__)
        u = _rand(3, self.generator)
        shift = (2 * u - 1) * torch.tensor(self.max_shift, dtype=torch.float64, device=u.device)
        return _affine(item, keys, torch.tensor(1.0, dtype=torch.float64), shift)


class Voxelize(_Transform):
    """Replace an item's geometry by an occupancy grid ``"voxels" (R, R, R)`` bool, indexed
    ``[x, y, z]``, over the item's bounding cube (so every shape fills the grid along its
    largest extent, as VoxNet and 3D ShapeNets normalise).

    A mesh item (``verts``/``faces``) is voxelised with :func:`geo4g.voxels.voxelize_mesh`
    (``mode``, ``fill_rule``); a point item marks the voxels holding a point (``mode`` does
    not apply: a point cloud has no inside). ``verts``, ``faces``, ``face_labels``, ``points``,
    ``normals`` and ``part_labels`` are dropped; metadata is kept.

    Args:
        resolution: voxels per axis, ``>= 1``.
        mode: ``"solid"`` (surface and inside, default), ``"surface"`` or ``"inside"``.
        fill_rule: ``"winding"`` (default: fills unions of overlapping closed parts, as the
            procedural shapes are) or ``"parity"``.
    """

    _shown = ("resolution", "mode", "fill_rule")

    def __init__(self, resolution: int = 32, mode: str = "solid", fill_rule: str = "winding"):
        if not isinstance(resolution, int) or isinstance(resolution, bool) or resolution < 1:
            raise ValueError(f"resolution must be a positive int, got {resolution!r}")
        if mode not in ("solid", "surface", "inside"):
            raise ValueError(f"mode must be 'solid', 'surface' or 'inside', got {mode!r}")
        if fill_rule not in ("winding", "parity"):
            raise ValueError(f"fill_rule must be 'winding' or 'parity', got {fill_rule!r}")
        self.resolution, self.mode, self.fill_rule = resolution, mode, fill_rule

    def __call__(self, item: Item) -> Item:
        check_item(item, type(self).__name__)
        return voxelize_item(item, self.resolution, self.mode, self.fill_rule)


class Compose(_Transform):
    """Apply ``transforms`` one after the other.

    Args:
        transforms: a list of callables ``item -> item``.
    """

    def __init__(self, transforms: Sequence[Callable[[Item], Item]]):
        if not isinstance(transforms, (list, tuple)):
            raise TypeError(f"Compose: transforms must be a list of callables, got {describe(transforms)}")
        for i, t in enumerate(transforms):
            if not callable(t):
                raise TypeError(f"Compose: transforms[{i}] must be callable, got {describe(t)}")
        self.transforms = list(transforms)

    def __call__(self, item: Item) -> Item:
        for t in self.transforms:
            item = t(item)
        return item

    def __repr__(self) -> str:
        inner = "".join(f"  {t!r},\n" for t in self.transforms)
        return f"Compose([\n{inner}])" if inner else "Compose([])"
