"""Laplacian eigenbases and what is built on them: heat and wave kernel signatures, spectral filters,
heat diffusion.

:func:`laplacian_eigenpairs` solves the generalised problem ``L phi = lambda M phi`` for the ``k``
smallest eigenvalues, with ``L`` and ``M`` from :mod:`geo4g.meshes.laplacian_matrices`. Two paths:

- ``"eigsh"``: SciPy's shift-invert Lanczos (ARPACK) around ``sigma`` slightly below 0, on the CPU in
  float64, with ``L - sigma M`` factorised by SuperLU in the :func:`nested_dissection_order` of the
  vertices, refined by a Rayleigh-Ritz step in the found subspace (exactly ``M``-orthonormal vectors).
  ARPACK's vector operations go through OpenBLAS threads: on a machine whose cores are busy with
  other work, ``OPENBLAS_NUM_THREADS=1`` made it 13x faster (10k vertices, k = 50, 2 loaded cores);
- ``"dense"``: ``torch.linalg.eigh`` of ``C^{-1} L C^{-T}`` with ``M = C C^T`` (``C = M^{1/2}`` for a
  diagonal ``M``) on the vertices' device: the GPU path, and the CPU path for small meshes.

``"auto"`` picks dense up to :data:`DENSE_MAX_VERTS_CPU` vertices on the CPU (or
:data:`DENSE_MAX_VERTS_CUDA` on CUDA) and whenever ``k >= V - 1`` (ARPACK needs ``k < V - 1``),
Lanczos otherwise. Results are cached (see :func:`laplacian_eigenpairs`).

Eigenvectors are ``M``-orthonormal (``Phi^T M Phi = I``) and carry a deterministic sign: the entry of
largest magnitude of each is positive (the first such entry on ties). Within a repeated eigenvalue
(a sphere's ``2l + 1`` harmonics, a symmetric shape) the basis of the eigenspace is whatever the
solver returns; signatures such as HKS and WKS do not depend on that choice.

The sparse solves of :func:`heat_diffusion` (and of :mod:`geo4g.meshes.geodesic`) use
:class:`SPDSolver`: a sparse factorisation on the CPU (SciPy), Jacobi-preconditioned conjugate
gradients in torch on other devices.
"""
from __future__ import annotations

import math
import os
from typing import Callable, List, NamedTuple, Optional, Union

import torch

from geo4g.structures import Meshes, Pointclouds
from geo4g.structures.checks import check_finite, check_tensor, describe

from ._cache import ResultCache, cache_key
from .laplacian_matrices import _mesh_input, mass_matrix, robust_laplacian, sparse_to_scipy, stiffness_matrix, to_csr

__all__ = [
    "Eigenpairs",
    "laplacian_eigenpairs",
    "clear_eigenpairs_cache",
    "heat_kernel_signature",
    "wave_kernel_signature",
    "spectral_filter",
    "heat_diffusion",
    "SPDSolver",
    "nested_dissection_order",
]

LAPLACIANS = ("cot", "uniform", "robust")
METHODS = ("auto", "eigsh", "dense")
#: ``"auto"`` solves densely up to this many vertices on the CPU (measured on one thread, k = 50:
#: Lanczos 0.06 s against dense 0.08 s at 600 vertices, 0.11 s against 1.2 s at 1500).
DENSE_MAX_VERTS_CPU = 400
#: ... and up to this many on CUDA (an ``8192^2`` float64 matrix is 0.5 GB).
DENSE_MAX_VERTS_CUDA = 8192
#: Entries kept by the in-memory cache of :func:`laplacian_eigenpairs` (least recently used first out).
CACHE_SIZE = 32
#: Relative residual at which the conjugate-gradient path of :class:`SPDSolver` stops.
CG_TOLERANCE = 1e-10
#: Subsets of at most this many vertices end the nested dissection (and smaller systems use
#: SciPy's default ordering).
ND_LEAF_SIZE = 64

_CACHE = ResultCache("eigenpairs", ("evals", "evecs"), size=lambda: CACHE_SIZE)


class Eigenpairs(NamedTuple):
    """``evals (k,)`` ascending and ``evecs (V, k)`` ``M``-orthonormal columns."""

    evals: torch.Tensor
    evecs: torch.Tensor


# --------------------------------------------------------------------------- sparse factorisation
def nested_dissection_order(points, graph, leaf_size: int = ND_LEAF_SIZE):
    """A fill-reducing elimination order from vertex positions (geometric nested dissection).

    The vertices are split at the median of their widest coordinate; the vertices of the lower
    half with a neighbour in the upper half form the separator, ordered after both halves, which
    are ordered the same way recursively down to ``leaf_size`` vertices. On meshes this factors
    the Laplacian with ~40% less fill, ~3x faster, than SuperLU's default column ordering (COLAMD).

    Args:
        points: ``(V, D)`` NumPy array of positions.
        graph: SciPy sparse ``(V, V)`` matrix whose pattern is the vertex adjacency.
        leaf_size: subsets of at most this many vertices are kept in their order.

    Returns:
        ``(V,)`` int64 NumPy permutation.
    """
    import numpy as np

    graph = graph.tocsr()
    n = points.shape[0]
    side = np.zeros(n, dtype=np.int8)
    order = []
    # Depth-first over (subset, emitted) frames; a separator is emitted after both of its halves.
    stack = [("split", np.arange(n))]
    while stack:
        kind, idx = stack.pop()
        if kind == "emit" or idx.shape[0] <= leaf_size:
            order.append(idx)
            continue
        p = points[idx]
        axis = int(np.argmax(p.max(0) - p.min(0)))
        lower = p[:, axis] < np.median(p[:, axis])
        if lower.all() or not lower.any():
            order.append(idx)
            continue
        left, right = idx[lower], idx[~lower]
        side[right] = 1
        rows = graph[left]
        crossing = np.zeros(left.shape[0], dtype=bool)
        hits = side[rows.indices] == 1
        crossing[np.repeat(np.arange(left.shape[0]), np.diff(rows.indptr))[hits]] = True
        side[right] = 0
        stack += [("emit", left[crossing]), ("split", right), ("split", left[~crossing])]
    return np.concatenate(order) if order else np.zeros(0, dtype=np.int64)


def _factorize(A, points=None):
    """``solve(b)``, ``b`` of shape ``(V,)`` or ``(V, C)``, for a sparse SciPy SPD matrix: SuperLU on
    the nested-dissection order of ``points`` (symmetric mode, diagonal pivots), or with SuperLU's
    default ordering (COLAMD) without points."""
    import numpy as np
    import scipy.sparse.linalg as sla

    if points is None or A.shape[0] <= ND_LEAF_SIZE:
        return sla.splu(A.tocsc()).solve
    perm = nested_dissection_order(points, A)
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(perm.shape[0])
    lu = sla.splu(A.tocsr()[perm][:, perm].tocsc(), permc_spec="NATURAL", options=dict(SymmetricMode=True))
    return lambda b: lu.solve(np.ascontiguousarray(b)[perm])[inverse]


# --------------------------------------------------------------------------- eigenpairs
def _operators(verts, faces, laplacian: str, mass: str):
    if laplacian == "robust":
        if mass != "lumped":
            raise ValueError(f"laplacian='robust' comes with its own lumped mass; mass must be 'lumped', got {mass!r}")
        return robust_laplacian(verts, faces)
    return stiffness_matrix(verts, faces, kind=laplacian), mass_matrix(verts, faces, kind=mass)


def clear_eigenpairs_cache() -> None:
    """Empty the in-memory cache of :func:`laplacian_eigenpairs` (files in a ``cache_dir`` are kept)."""
    _CACHE.clear()


def _sign_fix(evecs: torch.Tensor) -> torch.Tensor:
    """Flip each column so that its entry of largest magnitude (the first on ties) is positive."""
    if evecs.numel() == 0:
        return evecs
    idx = evecs.abs().argmax(dim=0)
    signs = torch.sign(evecs.gather(0, idx[None]))[0]
    return evecs * torch.where(signs == 0, torch.ones_like(signs), signs)


def _dense_eigenpairs(L: torch.Tensor, M: torch.Tensor, k: int):
    Ld, Md = L.to_dense().double(), M.to_dense().double()
    idx = M.coalesce().indices()
    if bool((idx[0] == idx[1]).all()):
        s = Md.diagonal().rsqrt()
        A = s[:, None] * Ld * s[None, :]
        evals, psi = torch.linalg.eigh(0.5 * (A + A.T))
        evecs = s[:, None] * psi
    else:
        C = torch.linalg.cholesky(Md)
        A = torch.linalg.solve_triangular(C, torch.linalg.solve_triangular(C, Ld, upper=False).T, upper=False)
        evals, psi = torch.linalg.eigh(0.5 * (A + A.T))
        evecs = torch.linalg.solve_triangular(C.T, psi, upper=True)
    return evals[:k], evecs[:, :k]


def _eigsh_eigenpairs(L: torch.Tensor, M: torch.Tensor, k: int, sigma: float, points=None):
    import numpy as np
    import scipy.sparse.linalg as sla

    Ls, Ms = sparse_to_scipy(L.double()), sparse_to_scipy(M.double())
    n = Ls.shape[0]
    v0 = np.ones(n) / math.sqrt(n)  # a fixed start vector: the same mesh gives the same vectors
    solve = _factorize((Ls - sigma * Ms).tocsr(), points)
    shift_invert = sla.LinearOperator((n, n), matvec=lambda x: solve(np.asarray(x).reshape(-1)), dtype=np.float64)
    _, vecs = sla.eigsh(Ls.tocsc(), k=k, M=Ms.tocsc(), sigma=sigma, which="LM", v0=v0, OPinv=shift_invert)
    # Rayleigh-Ritz in the found subspace: exact M-orthonormality and refined eigenvalues.
    Q = torch.from_numpy(vecs)
    G = torch.from_numpy(vecs.T @ (Ms @ vecs))
    H = torch.from_numpy(vecs.T @ (Ls @ vecs))
    C = torch.linalg.cholesky(0.5 * (G + G.T))
    Hs = torch.linalg.solve_triangular(C, torch.linalg.solve_triangular(C, H, upper=False).T, upper=False)
    evals, Y = torch.linalg.eigh(0.5 * (Hs + Hs.T))
    return evals, Q @ torch.linalg.solve_triangular(C.T, Y, upper=True)


def _choose_method(n: int, k: int, device: torch.device) -> str:
    limit = DENSE_MAX_VERTS_CUDA if device.type == "cuda" else DENSE_MAX_VERTS_CPU
    return "dense" if n <= limit or k >= n - 1 else "eigsh"


def laplacian_eigenpairs(verts, faces=None, k: int = 64, laplacian: str = "cot", mass: str = "lumped",
                         sigma: float = -1e-8, method: str = "auto", cache: bool = True,
                         cache_dir: Optional[Union[str, os.PathLike]] = None
                         ) -> Union[Eigenpairs, List[Eigenpairs]]:
    """The ``k`` smallest eigenpairs of ``L phi = lambda M phi`` (the Laplace-Beltrami spectrum).

    Args:
        verts: ``(V, 3)`` float; or a ``Meshes`` / ``Pointclouds`` batch (one result per item).
        faces: ``(F, 3)`` integer; ``None`` for a point cloud (``laplacian="robust"`` only).
        k: number of eigenpairs, ``1 <= k <= V``.
        laplacian: ``"cot"``, ``"uniform"`` (graph Laplacian with the chosen mass) or ``"robust"``
            (:func:`~geo4g.meshes.laplacian_matrices.robust_laplacian`, meshes and point clouds).
        mass: ``"lumped"``, ``"voronoi"`` or ``"full"`` (see :func:`~geo4g.meshes.laplacian_matrices.mass_matrix`).
        sigma: the shift of shift-invert Lanczos; slightly negative so that ``L - sigma M`` is
            positive definite although ``L`` is singular.
        method: ``"auto"``, ``"eigsh"`` (CPU, float64) or ``"dense"`` (any device).
        cache: reuse results for identical input (a SHA-256 of the vertex and face bytes and the
            options) from an in-memory LRU cache of :data:`CACHE_SIZE` entries.
        cache_dir: also store results as ``<key>.pt`` files in this folder (written atomically)
            and read them back in later processes.

    Returns:
        ``Eigenpairs(evals (k,), evecs (V, k))`` on the vertices' device and dtype, eigenvalues
        ascending (the first is ~0 per connected component), eigenvectors ``M``-orthonormal with
        the sign convention of the module docstring. Not differentiable (computed detached).
        For a batch, a list with one ``Eigenpairs`` per item.

    Raises:
        ValueError: ``k`` outside ``[1, V]``, unknown option names, non-finite vertices.
    """
    if laplacian not in LAPLACIANS:
        raise ValueError(f"laplacian must be one of {LAPLACIANS}, got {laplacian!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not isinstance(k, int) or isinstance(k, bool):
        raise TypeError(f"k must be an int, got {describe(k)}")
    if isinstance(verts, (Meshes, Pointclouds)):
        if faces is not None:
            raise ValueError(f"faces must be None for a {type(verts).__name__} batch, got {describe(faces)}")
        items = (zip(verts.verts_list(), verts.faces_list()) if isinstance(verts, Meshes)
                 else ((p, None) for p in verts.points_list()))
        return [laplacian_eigenpairs(v, f, k, laplacian, mass, sigma, method, cache, cache_dir) for v, f in items]
    if faces is None:
        if laplacian != "robust":
            raise ValueError(f"faces=None (a point cloud) needs laplacian='robust', got laplacian={laplacian!r}")
        check_tensor(verts, "verts", ndim=2, last_dim=3, kind="float", shape_hint="(V, 3)")
        check_finite(verts, "verts")
    else:
        verts, faces = _mesh_input(verts, faces, "laplacian_eigenpairs")
    n = verts.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must lie in [1, V] = [1, {n}] for a mesh of {n} vertices, got k={k}")
    chosen = _choose_method(n, k, verts.device) if method == "auto" else method
    if chosen == "eigsh" and k >= n - 1:
        raise ValueError(f"method='eigsh' needs k < V - 1 = {n - 1} (ARPACK), got k={k}; use method='dense'")
    key = cache_key(verts, faces, (k, laplacian, mass, float(sigma), chosen)) if cache else None
    found = _CACHE.get(key, cache_dir) if key is not None else None
    if found is None:
        L, M = _operators(verts.detach().double(), faces, laplacian, mass)
        if chosen == "dense":
            evals, evecs = _dense_eigenpairs(L, M, k)
        else:
            evals, evecs = _eigsh_eigenpairs(L, M, k, sigma, verts.detach().cpu().double().numpy())
        found = {"evals": evals.cpu(), "evecs": _sign_fix(evecs).cpu()}
        if key is not None:
            _CACHE.put(key, found, cache_dir)
    return Eigenpairs(found["evals"].to(verts.device, verts.dtype), found["evecs"].to(verts.device, verts.dtype))


# --------------------------------------------------------------------------- descriptors
def _check_basis(evals, evecs):
    check_tensor(evals, "evals", ndim=(1, 2), kind="float", shape_hint="(K,) or (B, K)")
    check_tensor(evecs, "evecs", ndim=(2, 3), kind="float", shape_hint="(V, K) or (B, V, K)")
    if evecs.dim() != evals.dim() + 1 or evecs.shape[-1] != evals.shape[-1] or evecs.shape[:-2] != evals.shape[:-1]:
        raise ValueError(f"evecs (V, K) / (B, V, K) must match evals (K,) / (B, K), got evecs "
                         f"{tuple(evecs.shape)} and evals {tuple(evals.shape)}")


def _as_times(values, name: str, like: torch.Tensor) -> Optional[torch.Tensor]:
    if isinstance(values, int) and not isinstance(values, bool):
        if values < 1:
            raise ValueError(f"{name} must be a positive count or a (T,) tensor, got {values}")
        return None
    check_tensor(values, name, ndim=1, kind="float", shape_hint="(T,)")
    return values.to(like.device, like.dtype)


def heat_kernel_signature(evals: torch.Tensor, evecs: torch.Tensor, times: Union[int, torch.Tensor] = 16
                          ) -> torch.Tensor:
    """Heat kernel signature (Sun, Ovsjanikov & Guibas 2009): ``HKS(x, t) = sum_i exp(-lambda_i t) phi_i(x)^2``.

    ``HKS(x, t)`` is the heat left at ``x`` after time ``t`` from a unit heat source at ``x``:
    positive, decreasing in ``t``, invariant to isometries; scaling a shape by ``s`` gives
    ``HKS_s(x, s^2 t) = HKS(x, t) / s^2``.

    Args:
        evals: ``(K,)`` or ``(B, K)`` eigenvalues (from :func:`laplacian_eigenpairs`).
        evecs: ``(V, K)`` or ``(B, V, K)`` ``M``-orthonormal eigenvectors.
        times: ``(T,)`` times, or a count ``T``: then ``T`` times log-spaced between
            ``4 ln 10 / lambda_max`` and ``4 ln 10 / lambda_1`` (the first nonzero eigenvalue), per
            batch item, as in Sun et al.

    Returns:
        ``(V, T)`` or ``(B, V, T)``, differentiable in ``evals``, ``evecs`` and ``times``.
    """
    _check_basis(evals, evecs)
    t = _as_times(times, "times", evals)
    if t is None:
        t = _default_times(evals, times)
    else:
        t = t.expand(*evals.shape[:-1], t.shape[0])
    decay = torch.exp(-evals[..., :, None] * t[..., None, :])  # (..., K, T)
    return (evecs * evecs) @ decay


def _default_times(evals: torch.Tensor, count: int) -> torch.Tensor:
    lam = evals.detach()
    positive = torch.where(lam > 1e-8 * lam.abs().amax(-1, keepdim=True).clamp(min=1e-300), lam,
                           torch.full_like(lam, float("inf")))
    lo, hi = positive.amin(-1), lam.amax(-1)
    if not bool(torch.isfinite(lo).all()):
        raise ValueError("default heat kernel times need a nonzero eigenvalue; pass times as a (T,) tensor")
    steps = torch.linspace(0, 1, count, dtype=lam.dtype, device=lam.device)
    log_min, log_max = torch.log(4 * math.log(10) / hi), torch.log(4 * math.log(10) / lo)
    return torch.exp(log_min[..., None] + (log_max - log_min)[..., None] * steps)


def wave_kernel_signature(evals: torch.Tensor, evecs: torch.Tensor, energies: Union[int, torch.Tensor] = 16,
                          sigma: Optional[float] = None, variance: float = 7.0) -> torch.Tensor:
    """Wave kernel signature (Aubry, Schlickewei & Cremers 2011).

    ``WKS(x, e) = sum_i phi_i(x)^2 f_e(lambda_i)^2 / sum_i f_e(lambda_i)^2`` with log-normal band-pass
    filters ``f_e(lambda)^2 = exp(-(e - log lambda)^2 / (2 sigma^2))`` over log-energies ``e``. Zero
    eigenvalues (the constant modes, ``lambda <= 1e-8 lambda_max``) are left out. With
    ``M``-orthonormal eigenvectors each energy integrates to one: ``sum_x M_xx WKS(x, e) = 1``.

    Args:
        evals: ``(K,)`` or ``(B, K)``.
        evecs: ``(V, K)`` or ``(B, V, K)``.
        energies: ``(E,)`` log-energies, or a count ``E``: then ``E`` values evenly spaced over
            ``[log lambda_1, log lambda_max]`` (first nonzero and largest eigenvalue), per item.
        sigma: the filters' width in log-energy; default
            ``variance * (log lambda_max - log lambda_1) / (E - 1)``, ``variance`` times the spacing
            of the default energies.
        variance: see ``sigma`` (Aubry et al. use 6-7).

    Returns:
        ``(V, E)`` or ``(B, V, E)``, differentiable in ``evecs``.
    """
    _check_basis(evals, evecs)
    e = _as_times(energies, "energies", evals)
    lam = evals.detach()
    nonzero = lam > 1e-8 * lam.abs().amax(-1, keepdim=True).clamp(min=1e-300)
    if not bool(nonzero.any(-1).all()):
        raise ValueError("the wave kernel signature needs at least one nonzero eigenvalue per item")
    log_lam = torch.log(torch.where(nonzero, lam, torch.ones_like(lam)))
    lo = torch.where(nonzero, log_lam, torch.full_like(lam, float("inf"))).amin(-1)
    hi = log_lam.amax(-1)
    count = energies if e is None else e.shape[0]
    if e is None:
        steps = torch.linspace(0, 1, count, dtype=lam.dtype, device=lam.device)
        e = lo[..., None] + (hi - lo)[..., None] * steps
    else:
        e = e.expand(*lam.shape[:-1], count)
    if sigma is None:
        width = variance * (hi - lo) / max(count - 1, 1)
        width = torch.where(width > 0, width, torch.ones_like(width))[..., None, None]
    else:
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma!r}")
        width = torch.tensor(float(sigma), dtype=lam.dtype, device=lam.device)
    weights = torch.exp(-(e[..., None, :] - log_lam[..., :, None]) ** 2 / (2 * width ** 2))  # (..., K, E)
    weights = weights * nonzero[..., :, None]
    weights = weights / weights.sum(-2, keepdim=True).clamp(min=torch.finfo(lam.dtype).tiny)
    return (evecs * evecs) @ weights


# --------------------------------------------------------------------------- filtering and diffusion
def _mass_vector(mass, n: int, like: torch.Tensor) -> Optional[torch.Tensor]:
    if mass is None:
        return None
    if isinstance(mass, torch.Tensor) and mass.is_sparse:
        if mass.shape != (n, n):
            raise ValueError(f"mass must be a sparse ({n}, {n}) diagonal matrix, got shape {tuple(mass.shape)}")
        m = mass.coalesce()
        i = m.indices()
        if bool((i[0] != i[1]).any()):
            raise ValueError("spectral operations need a diagonal (lumped or Voronoi) mass matrix, "
                             "got one with off-diagonal entries")
        return torch.zeros(n, dtype=like.dtype, device=like.device).index_add(
            0, i[0].to(like.device), m.values().to(like.device, like.dtype))
    check_tensor(mass, "mass", ndim=(1, 2), kind="float", shape_hint="(V,) or (B, V)")
    if mass.shape[-1] != n:
        raise ValueError(f"mass must have last dimension V={n}, got shape {tuple(mass.shape)}")
    return mass


def _project(signal, evecs, mass_vec):
    """Spectral coefficients ``Phi^T M f``: ``(..., K, C)``."""
    weighted = signal if mass_vec is None else signal * mass_vec[..., :, None]
    return evecs.transpose(-1, -2) @ weighted


def spectral_filter(signal: torch.Tensor, evals: torch.Tensor, evecs: torch.Tensor, mass,
                    response: Union[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Apply a function of the Laplacian to a signal in the truncated eigenbasis.

    ``out = Phi diag(h(lambda)) Phi^T M f``: the projection on the ``K`` eigenvectors, scaled per
    eigenvalue by the response ``h``. Components outside the basis are dropped (a low-pass
    truncation); with the full basis ``out = h(-Delta) f`` exactly.

    Args:
        signal: ``(V, C)`` or ``(B, V, C)`` (a batch of signals on one mesh, or on ``B`` meshes of
            ``V`` vertices when the basis is batched too).
        evals: ``(K,)`` or ``(B, K)``.
        evecs: ``(V, K)`` or ``(B, V, K)``, ``M``-orthonormal.
        mass: a sparse diagonal ``(V, V)`` mass matrix, its diagonal ``(V,)`` / ``(B, V)``, or
            ``None`` for Euclidean-orthonormal eigenvectors.
        response: a callable ``evals -> (..., K)`` or ``(..., K, C)``, or such a tensor; a ``(K, C)``
            response filters each channel differently.

    Returns:
        ``(V, C)`` or ``(B, V, C)``, differentiable in ``signal``, ``response`` and the basis.
    """
    _check_basis(evals, evecs)
    check_tensor(signal, "signal", ndim=(2, 3), kind="float", shape_hint="(V, C) or (B, V, C)")
    if signal.shape[-2] != evecs.shape[-2]:
        raise ValueError(f"signal must have V={evecs.shape[-2]} rows like evecs, got shape {tuple(signal.shape)}")
    h = response(evals) if callable(response) else response
    check_tensor(h, "response", kind="float", shape_hint="(K,) or (K, C)")
    if h.shape[-1] == evals.shape[-1] and h.dim() == evals.dim():
        h = h[..., None]
    elif h.shape[-2:-1] != evals.shape[-1:]:
        raise ValueError(f"response must have shape (..., K) or (..., K, C) with K={evals.shape[-1]}, "
                         f"got {tuple(h.shape)}")
    coeffs = _project(signal, evecs, _mass_vector(mass, evecs.shape[-2], signal))
    return evecs @ (h * coeffs)


class SPDSolver:
    """Repeated solves ``A x = b`` with one sparse symmetric positive definite ``A``.

    On the CPU (``method="direct"``) ``A`` is factorised once by SciPy's SuperLU, in the
    :func:`nested_dissection_order` of ``points`` when given (else in SuperLU's default order); elsewhere
    (``method="cg"``) each solve runs Jacobi-preconditioned conjugate gradients in torch to a
    relative residual of :data:`CG_TOLERANCE`, on ``A``'s device.

    Args:
        A: sparse ``(V, V)`` torch tensor (COO or CSR), symmetric positive definite.
        method: ``"auto"`` (direct on the CPU, CG otherwise), ``"direct"`` or ``"cg"``.
        max_iter: conjugate-gradient iteration limit (default ``10 V``).
        points: ``(V, D)`` vertex positions (tensor) for the fill-reducing order of the direct path.

    Call with ``b: (V,)`` or ``(V, C)``; returns ``x`` of the same shape, dtype and device as ``b``.
    """

    def __init__(self, A: torch.Tensor, method: str = "auto", max_iter: Optional[int] = None,
                 points: Optional[torch.Tensor] = None):
        if method not in ("auto", "direct", "cg"):
            raise ValueError(f"method must be 'auto', 'direct' or 'cg', got {method!r}")
        if not isinstance(A, torch.Tensor) or A.dim() != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(f"A must be a square sparse (V, V) tensor, got {describe(A)}")
        self.method = ("direct" if A.device.type == "cpu" else "cg") if method == "auto" else method
        self.shape = tuple(A.shape)
        self.max_iter = max_iter
        if self.method == "direct":
            coords = None if points is None else points.detach().cpu().double().numpy()
            self._solve = _factorize(sparse_to_scipy(A.double()), coords) if A.shape[0] else None
        else:
            coo = A.detach().to_sparse_coo().coalesce() if A.layout == torch.sparse_csr else A.detach().coalesce()
            self._A = to_csr(coo)
            i = coo.indices()
            diag = torch.zeros(A.shape[0], dtype=coo.dtype, device=coo.device).index_add(
                0, i[0][i[0] == i[1]], coo.values()[i[0] == i[1]])
            self._inv_diag = torch.where(diag > 0, 1.0 / diag, torch.ones_like(diag))

    def __repr__(self) -> str:
        return f"SPDSolver(shape={self.shape}, method={self.method!r})"

    def __call__(self, b: torch.Tensor) -> torch.Tensor:
        check_tensor(b, "b", ndim=(1, 2), kind="float", shape_hint="(V,) or (V, C)")
        if b.shape[0] != self.shape[0]:
            raise ValueError(f"b must have V={self.shape[0]} rows, got shape {tuple(b.shape)}")
        if b.numel() == 0:
            return b.clone()
        if self.method == "direct":
            import numpy as np

            x = self._solve(np.ascontiguousarray(b.detach().cpu().double().numpy()))
            return torch.from_numpy(np.ascontiguousarray(x)).to(b.device, b.dtype)
        return self._cg(b.detach())

    def _cg(self, b: torch.Tensor) -> torch.Tensor:
        A = self._A
        B = b.to(A.dtype).reshape(b.shape[0], -1)
        inv_d = self._inv_diag[:, None]
        x = torch.zeros_like(B)
        r = B.clone()
        z = inv_d * r
        p = z.clone()
        rz = (r * z).sum(0)
        target = CG_TOLERANCE * B.norm(dim=0)
        for _ in range(self.max_iter or 10 * max(B.shape[0], 1)):
            if bool((r.norm(dim=0) <= target).all()):
                break
            Ap = A @ p
            alpha = rz / (p * Ap).sum(0).clamp(min=torch.finfo(B.dtype).tiny)
            x = x + alpha * p
            r = r - alpha * Ap
            z = inv_d * r
            rz_new = (r * z).sum(0)
            p = z + (rz_new / rz.clamp(min=torch.finfo(B.dtype).tiny)) * p
            rz = rz_new
        return x.reshape(b.shape).to(b.dtype)


def heat_diffusion(signal: torch.Tensor, t: Union[float, torch.Tensor], *, evals: Optional[torch.Tensor] = None,
                   evecs: Optional[torch.Tensor] = None, mass=None, stiffness: Optional[torch.Tensor] = None,
                   method: str = "spectral", steps: int = 1, solver: str = "auto") -> torch.Tensor:
    """Diffuse a vertex signal by the heat equation ``M du/dt = -L u`` for time ``t``.

    - ``method="spectral"``: ``u = Phi diag(exp(-lambda t)) Phi^T M u0`` in the (truncated) eigenbasis;
      ``t`` may be a float, a ``(C,)`` tensor of one time per channel (as learned in DiffusionNet)
      or ``(B, C)``; differentiable in ``signal``, ``t`` and the basis. Needs ``evals``, ``evecs``
      and ``mass``.
    - ``method="implicit"``: ``steps`` backward Euler steps ``(M + (t / steps) L) u_{n+1} = M u_n``,
      solved by :class:`SPDSolver` (one factorisation for all steps and channels). Needs ``mass``
      and ``stiffness`` (sparse). One step equals the spectral filter ``1 / (1 + t lambda)``; many
      steps tend to ``exp(-t lambda)``. Not differentiable (the solve is detached).

    Both conserve the total heat ``1^T M u`` (with the constant eigenvector in the basis) and tend
    to its mean ``1^T M u0 / 1^T M 1`` on each connected component as ``t`` grows.

    Args:
        signal: ``(V, C)`` (both methods) or ``(B, V, C)`` (spectral).
        t: diffusion time ``>= 0``.
        evals, evecs: the basis for ``"spectral"`` (``(K,)``, ``(V, K)`` or batched).
        mass: ``"spectral"``: sparse diagonal ``(V, V)`` or its diagonal ``(V,)`` / ``(B, V)``;
            ``"implicit"``: a sparse ``(V, V)`` mass matrix (diagonal or full).
        stiffness: sparse ``(V, V)`` ``L`` for ``"implicit"``.
        method: ``"spectral"`` or ``"implicit"``.
        steps: backward Euler steps for ``"implicit"``, ``>= 1``.
        solver: :class:`SPDSolver` method for ``"implicit"``.

    Returns:
        ``u`` with the shape of ``signal``.
    """
    if method == "spectral":
        if evals is None or evecs is None:
            raise ValueError("method='spectral' needs evals and evecs (from laplacian_eigenpairs)")
        _check_basis(evals, evecs)
        if isinstance(t, torch.Tensor):
            check_tensor(t, "t", ndim=(0, 1, 2), kind="float", shape_hint="(), (C,) or (B, C)")
            if bool((t.detach() < 0).any()):
                raise ValueError("t must be non-negative")
            tt = t.to(evals.dtype)[..., None, :] if t.dim() else t.to(evals.dtype)
        else:
            if not isinstance(t, (int, float)) or t < 0:
                raise ValueError(f"t must be a non-negative float or tensor, got {t!r}")
            tt = torch.tensor(float(t), dtype=evals.dtype, device=evals.device)
        return spectral_filter(signal, evals, evecs, mass, lambda lam: torch.exp(-lam[..., :, None] * tt))
    if method != "implicit":
        raise ValueError(f"method must be 'spectral' or 'implicit', got {method!r}")
    if not isinstance(t, (int, float)) or isinstance(t, bool) or t < 0:
        raise ValueError(f"method='implicit' needs t as a non-negative float, got {t!r}")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    for name, m in (("mass", mass), ("stiffness", stiffness)):
        if not (isinstance(m, torch.Tensor) and m.layout in (torch.sparse_coo, torch.sparse_csr)):
            raise ValueError(f"method='implicit' needs {name} as a sparse (V, V) tensor, got {describe(m)}")
    check_tensor(signal, "signal", ndim=2, kind="float", shape_hint="(V, C)")
    if signal.shape[0] != mass.shape[0] or mass.shape != stiffness.shape:
        raise ValueError(f"signal (V, C), mass (V, V) and stiffness (V, V) must agree on V, got "
                         f"{tuple(signal.shape)}, {tuple(mass.shape)}, {tuple(stiffness.shape)}")
    M = mass.to_sparse_coo() if mass.layout == torch.sparse_csr else mass
    S = stiffness.to_sparse_coo() if stiffness.layout == torch.sparse_csr else stiffness
    M, S = M.detach().to(signal.device, torch.float64), S.detach().to(signal.device, torch.float64)
    solve = SPDSolver((M + (t / steps) * S).coalesce(), method=solver)
    M = to_csr(M.coalesce())
    u = signal.detach().double()
    for _ in range(steps):
        u = solve(M @ u)
    return u.to(signal.dtype)
