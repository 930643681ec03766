"""The machinery shared by procedural shape programs: random draws, part assembly, sampling.

A program is a recipe over primitives with named parameters. ``sample(generator)``
draws a parameter vector, builds the parts in a z-up working frame (front
towards ``-y``), then returns the mesh in the ShapeNetCore v2 convention:
``y`` up, front towards ``+z``, centred on its bounding box whose diagonal is 1.
"""
from __future__ import annotations

import abc
import math
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import torch

from geo4g.structures.checks import describe

__all__ = ["ShapeSample", "ShapeProgram", "PartAssembler", "Draw", "rotation_matrix"]

Mesh = Tuple[torch.Tensor, torch.Tensor]

# z-up working frame (front -y) to y-up output frame (front +z): (x, y, z) -> (x, z, -y).
_Z_UP_TO_Y_UP = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]], dtype=torch.float64)


class ShapeSample(NamedTuple):
    """One generated shape.

    Attributes:
        verts: ``(V, 3)`` float32, y up, front ``+z``, bounding box centred with diagonal 1.
        faces: ``(F, 3)`` long, outward (counter-clockwise) triangles.
        face_labels: ``(F,)`` long, the part of each face as an index into ``program.parts``.
        params: ``(P,)`` float32, the parameters in ``program.param_names`` order
            (discrete ones such as counts and presence flags are stored as floats).
        category: the program's category name.
    """

    verts: torch.Tensor
    faces: torch.Tensor
    face_labels: torch.Tensor
    params: torch.Tensor
    category: str


class Draw:
    """Reproducible scalar draws from a ``torch.Generator`` (CPU), batched for speed."""

    _BLOCK = 64

    def __init__(self, generator: Optional[torch.Generator] = None):
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {describe(generator)}")
        self.generator = generator
        self._pool: List[float] = []

    def _next(self) -> float:
        if not self._pool:
            self._pool = torch.rand(self._BLOCK, dtype=torch.float64, generator=self.generator).tolist()
            self._pool.reverse()
        return self._pool.pop()

    def uniform(self, low: float, high: float) -> float:
        """A float uniform in ``[low, high)``."""
        return low + (high - low) * self._next()

    def integer(self, low: int, high: int) -> int:
        """An int uniform in ``[low, high]`` (both ends included)."""
        if high < low:
            raise ValueError(f"integer needs low <= high, got low={low!r}, high={high!r}")
        return low + min(int(self._next() * (high - low + 1)), high - low)

    def coin(self, p: float = 0.5) -> bool:
        """True with probability ``p``."""
        return self._next() < p

    def choice(self, options: Sequence):
        """One element of ``options``, uniformly."""
        if len(options) == 0:
            raise ValueError("choice needs at least one option, got an empty sequence")
        return options[self.integer(0, len(options) - 1)]


def rotation_matrix(axis: Union[str, Sequence[float]], angle: float) -> torch.Tensor:
    """``(3, 3)`` float64 rotation by ``angle`` radians (right-handed) about ``"x"``, ``"y"``, ``"z"``
    or a 3-vector."""
    if isinstance(axis, str):
        if axis not in ("x", "y", "z"):
            raise ValueError(f"axis must be 'x', 'y', 'z' or a 3-vector, got {axis!r}")
        axis = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}[axis]
    try:
        angle = float(angle)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"angle must be a finite number of radians, got {angle!r}") from None
    if not math.isfinite(angle):
        raise ValueError(f"angle must be a finite number of radians, got {angle!r}")
    u = torch.as_tensor(axis, dtype=torch.float64)
    if u.shape != (3,) or not bool(torch.isfinite(u).all()) or float(u.norm()) == 0:
        raise ValueError(f"axis must be a finite non-zero 3-vector, got {axis!r}")
    u = u / u.norm()
    c, s = math.cos(angle), math.sin(angle)
    cross = torch.tensor([[0.0, -u[2], u[1]], [u[2], 0.0, -u[0]], [-u[1], u[0], 0.0]], dtype=torch.float64)
    return c * torch.eye(3, dtype=torch.float64) + s * cross + (1 - c) * torch.outer(u, u)


class PartAssembler:
    """Collects primitive meshes placed in the working frame, each tagged with a part name."""

    def __init__(self, parts: Sequence[str]):
        self.parts = tuple(parts)
        self._index = {name: i for i, name in enumerate(self.parts)}
        self._verts: List[torch.Tensor] = []
        self._faces: List[torch.Tensor] = []
        self._labels: List[int] = []
        self._offset = 0

    def add(self, part: str, mesh: Mesh, *, scale: Union[float, Sequence[float], None] = None,
            rotate: Optional[torch.Tensor] = None, translate: Optional[Sequence[float]] = None) -> None:
        """Place ``mesh = (verts, faces)``: scale (per axis), then rotate ``(3, 3)``, then translate."""
        if part not in self._index:
            raise ValueError(f"unknown part {part!r}; this program's parts are {list(self.parts)}")
        verts, faces = mesh
        verts = verts.to(torch.float64)
        if scale is not None:
            verts = verts * torch.as_tensor(scale, dtype=torch.float64)
        if rotate is not None:
            verts = verts @ rotate.to(torch.float64).T
        if translate is not None:
            verts = verts + torch.as_tensor(translate, dtype=torch.float64)
        self._verts.append(verts)
        self._faces.append(faces + self._offset)
        self._labels.append(self._index[part])
        self._offset += verts.shape[0]

    def mesh(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``verts (V, 3)`` float64, ``faces (F, 3)`` long, ``face_labels (F,)`` long."""
        if not self._faces:
            raise ValueError("the program placed no parts")
        counts = torch.tensor([f.shape[0] for f in self._faces])
        labels = torch.tensor(self._labels).repeat_interleave(counts, output_size=int(counts.sum()))
        return torch.cat(self._verts), torch.cat(self._faces), labels


class ShapeProgram(abc.ABC):
    """A category of procedural shapes.

    Subclasses set ``name``, ``parts`` (2 to 6 part names, ShapeNetPart style) and
    ``param_names``, and implement ``draw_params`` (random parameters) and
    ``build`` (parts from parameters, deterministic). ``sample`` ties them together.
    """

    name: str = ""
    parts: Tuple[str, ...] = ()
    param_names: Tuple[str, ...] = ()

    @abc.abstractmethod
    def draw_params(self, draw: Draw) -> Dict[str, float]:
        """Random parameters: a dict with exactly the keys ``param_names``."""

    @abc.abstractmethod
    def build(self, params: Mapping[str, float], parts: PartAssembler) -> None:
        """Add this shape's parts (z-up working frame, front towards ``-y``) to ``parts``."""

    def sample(self, generator: Optional[torch.Generator] = None) -> ShapeSample:
        """Draw parameters with ``generator`` and build the shape; the same generator state
        gives the same shape."""
        # Checked like user parameters, so a program whose draw_params misses a key fails clearly.
        params = self._params_dict(self.draw_params(Draw(generator)))
        # Round to float32 first, so that from_params(sample.params) rebuilds exactly this shape.
        rounded = torch.tensor([params[k] for k in self.param_names], dtype=torch.float32).tolist()
        return self.from_params(dict(zip(self.param_names, rounded)))

    def from_params(self, params: Union[Mapping[str, float], torch.Tensor, Sequence[float]]) -> ShapeSample:
        """Build the shape for given parameters: a dict keyed by ``param_names`` or a ``(P,)`` vector."""
        params = self._params_dict(params)
        assembler = PartAssembler(self.parts)
        self.build(params, assembler)
        verts, faces, labels = assembler.mesh()
        verts = verts @ _Z_UP_TO_Y_UP.T
        low, high = verts.amin(0), verts.amax(0)
        diagonal = float((high - low).norm())
        if not math.isfinite(diagonal) or diagonal == 0:
            raise ValueError(f"{self.name}: parameters {params} give a degenerate shape")
        verts = (verts - (low + high) / 2) / diagonal
        vector = torch.tensor([float(params[k]) for k in self.param_names], dtype=torch.float32)
        return ShapeSample(verts.to(torch.float32), faces, labels, vector, self.name)

    def _params_dict(self, params) -> Dict[str, float]:
        if isinstance(params, Mapping):
            missing = [k for k in self.param_names if k not in params]
            extra = [k for k in params if k not in self.param_names]
            if missing or extra:
                raise ValueError(f"{self.name}: params must have keys {list(self.param_names)}; "
                                 f"missing {missing}, unexpected {extra}")
            values = {k: float(params[k]) for k in self.param_names}
        else:
            vector = torch.as_tensor(params, dtype=torch.float64).flatten()
            if vector.numel() != len(self.param_names):
                raise ValueError(f"{self.name}: a parameter vector needs {len(self.param_names)} values "
                                 f"({list(self.param_names)}), got {vector.numel()}")
            values = dict(zip(self.param_names, vector.tolist()))
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            raise ValueError(f"{self.name}: parameters {bad} are NaN or infinite")
        return values

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, parts={list(self.parts)}, num_params={len(self.param_names)})"
