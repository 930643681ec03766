"""Compiled (numba) auction for the CPU ``"approx"`` earth mover's distance; no public names.

Imported lazily by :mod:`geo4g.losses.emd` (``numba`` is optional: ``pip install geo4g[numba]``).

Algorithm: Bertsekas' forward auction with epsilon scaling, Gauss-Seidel style (one bidder at a
time), minimising ``sum_i C[i, pi(i)]`` over permutations. Rows ("persons") bid for columns
("objects"): an unassigned row ``i`` finds its best column ``j1`` by ``C[i, j] + p[j]`` and the
second-best value ``w2``, raises ``p[j1]`` by ``w2 - w1 + eps`` and takes ``j1`` (the previous
owner becomes unassigned). A phase ends when every row is assigned; ``eps`` is then divided by
``factor`` and only the rows that violate ``eps``-complementary slackness bid again.

Each row keeps a list of its ``K + 1`` best columns (by ``C + p`` at the time of the last full
scan) and the ``K+1``-th value ``thr[i]``. Prices only rise, so a column off the list is still
``>= thr[i]``: when the two best listed values are below ``thr[i]`` they are provably the row's
best two and no full scan of the ``n`` columns is needed.

Certificate: after each phase, ``primal = sum_i C[i, assign[i]]`` and the dual value
``dual = sum_i min_j (C[i, j] + p[j]) - sum_j p[j]``, a lower bound on the optimum for any
prices (weak duality). The solver stops at the first phase with ``primal - dual <= tol * dual``,
so the returned matching costs at most ``(1 + tol)`` times the optimum; it also stops when
``eps`` reaches ``eps_floor`` or after ``max_phases`` phases (safety caps, reported through the
returned ``primal``/``dual``).
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _scan(C, price, i, cand, candc, thr, K, ws, wi):
    """Full scan of row ``i``: store its ``K + 1`` best columns (sorted by ``C[i, j] + price[j]``)
    in ``cand[i]``, their costs in ``candc[i]`` and the ``K+1``-th best value in ``thr[i]``; return
    ``(w1, w2, j1)``. Only columns at or below a cut that provably keeps at least ``K + 1`` of
    them are sorted in: the largest current value over the row's previous list, or, for a first
    scan, the ``K+1``-th best over a strided sample of columns. ``ws``/``wi``: workspaces of length n.
    ``candc`` holds raw costs ``C[i, j]``, so ``candc + price`` rounds exactly like a scan."""
    n = C.shape[1]
    top = K + 1
    for k in range(n):
        ws[k] = C[i, k] + price[k]
    cut = np.inf
    if thr[i] > -np.inf:
        cut = -np.inf
        for q in range(top):
            v = ws[cand[i, q]]  # the very values compared below, so >= K + 1 columns pass the cut
            if v > cut:
                cut = v
    if cut == np.inf:
        stride = max(1, n // (8 * top))
        last = np.inf
        filled = 0
        for k in range(0, n, stride):
            v = ws[k]
            if filled < top or v < last:
                p = filled if filled < top else K
                while p > 0 and candc[i, p - 1] > v:
                    candc[i, p] = candc[i, p - 1]
                    p -= 1
                candc[i, p] = v
                if filled < top:
                    filled += 1
                if filled == top:
                    last = candc[i, K]
        cut = candc[i, K]
    cnt = 0
    for k in range(n):
        wi[cnt] = k
        cnt += ws[k] <= cut
    last = np.inf
    filled = 0
    for q in range(cnt):
        k = wi[q]
        v = ws[k]
        if filled < top or v < last:
            p = filled if filled < top else K
            while p > 0 and candc[i, p - 1] > v:
                candc[i, p] = candc[i, p - 1]
                cand[i, p] = cand[i, p - 1]
                p -= 1
            candc[i, p] = v
            cand[i, p] = k
            if filled < top:
                filled += 1
            if filled == top:
                last = candc[i, K]
    w1 = candc[i, 0]
    w2 = candc[i, 1]
    thr[i] = candc[i, K]
    for q in range(top):
        candc[i, q] = C[i, cand[i, q]]  # so candc + price repeats the arithmetic of ws exactly
    return w1, w2, cand[i, 0]


@njit(cache=True, nogil=True)
def _best2(C, price, i, cand, candc, thr, K, ws, wi):
    """Best and second-best ``C[i, j] + price[j]`` of row ``i`` and its best column: from the
    candidate list when that is provably exact, else by a full scan."""
    w1 = np.inf
    w2 = np.inf
    j1 = -1
    for q in range(K):
        v = candc[i, q] + price[cand[i, q]]
        if v < w2:
            if v < w1:
                w2 = w1
                w1 = v
                j1 = cand[i, q]
            else:
                w2 = v
    if j1 >= 0 and w2 <= thr[i]:
        return w1, w2, j1
    return _scan(C, price, i, cand, candc, thr, K, ws, wi)


@njit(cache=True, nogil=True)
def _auction(C, eps0, eps_floor, tol, max_phases, factor, K):
    """Epsilon-scaling forward auction on the dense ``(n, n)`` cost ``C`` (``n >= K + 1 >= 2``).

    Returns ``(assign, primal, dual)``: ``assign[i]`` is the column of row ``i``, ``primal`` its
    total cost and ``dual`` a lower bound on the optimal total (see the module docstring)."""
    n = C.shape[0]
    price = np.zeros(n, dtype=C.dtype)
    assign = np.full(n, -1, dtype=np.int64)
    owner = np.full(n, -1, dtype=np.int64)
    stack = np.empty(n, dtype=np.int64)
    rowmin = np.empty(n, dtype=C.dtype)
    ws = np.empty(n, dtype=C.dtype)
    wi = np.empty(n, dtype=np.int64)
    cand = np.zeros((n, K + 1), dtype=np.int64)
    candc = np.zeros((n, K + 1), dtype=C.dtype)
    thr = np.full(n, -np.inf, dtype=C.dtype)
    eps = eps0
    primal = 0.0
    dual = 0.0
    for phase in range(max_phases):
        top = 0
        for i in range(n):
            j = assign[i]
            if j >= 0 and C[i, j] + price[j] > rowmin[i] + eps:  # violates eps-CS: bid again
                owner[j] = -1
                assign[i] = -1
            if assign[i] < 0:
                stack[top] = i
                top += 1
        while top > 0:
            top -= 1
            i = stack[top]
            w1, w2, j1 = _best2(C, price, i, cand, candc, thr, K, ws, wi)
            price[j1] += (w2 - w1) + eps
            old = owner[j1]
            owner[j1] = i
            assign[i] = j1
            if old >= 0:
                assign[old] = -1
                stack[top] = old
                top += 1
        primal = 0.0
        dual = 0.0
        for i in range(n):
            primal += np.float64(C[i, assign[i]])
            w1, w2, j1 = _best2(C, price, i, cand, candc, thr, K, ws, wi)
            rowmin[i] = w1
            dual += np.float64(w1) - np.float64(price[i])  # sum_i min_j (C + p) - sum_j p
        if primal - dual <= tol * dual or eps <= eps_floor:
            break
        eps = eps / factor
    return assign, primal, dual


@njit(cache=True, nogil=True)
def _euclidean_cost(x, y, out):
    """``out[i, j] = ||x[i] - y[j]||`` for ``(n, D)`` points, accumulated directly (no
    ``|x|^2 + |y|^2 - 2 x.y`` cancellation)."""
    n = x.shape[0]
    m = y.shape[0]
    d = x.shape[1]
    yt = np.ascontiguousarray(y.T)
    for i in range(n):
        row = out[i]
        for j in range(m):
            row[j] = 0
        for a in range(d):
            xa = x[i, a]
            ya = yt[a]
            for j in range(m):
                t = xa - ya[j]
                row[j] += t * t
        for j in range(m):
            row[j] = np.sqrt(row[j])


_FACTOR = 6.0  # eps divided by this per phase
_K = 16  # candidate-list length
_EPS0 = 1.5  # first eps, in units of the mean nearest-neighbour distance


def _match(x: np.ndarray, y: np.ndarray, tol: float, max_phases: int) -> np.ndarray:
    """Matching ``(n,)`` int64 (``y`` index for each ``x`` point) of two ``(n, D)`` float32 clouds,
    certified ``cost <= (1 + tol) * optimum`` unless a safety cap stopped it first."""
    n = x.shape[0]
    if n <= 1:
        return np.zeros(n, dtype=np.int64)
    C = np.empty((n, n), dtype=np.float32)
    _euclidean_cost(np.ascontiguousarray(x), np.ascontiguousarray(y), C)
    cmax = float(C.max())
    if cmax == 0:  # all points coincide: every matching is optimal
        return np.arange(n, dtype=np.int64)
    eps0 = max(_EPS0 * float(C.min(1).mean()), 1e-3 * cmax)
    assign, _, _ = _auction(C, eps0, 1e-6 * cmax, float(tol), int(max_phases), _FACTOR, min(_K, n - 1))
    return assign
