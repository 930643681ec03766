"""Compiled (numba) auction for the CPU ``"approx"`` earth mover's distance; no public names.

Imported lazily by :mod:`geo4g.losses.emd` (``numba`` is optional: ``pip install geo4g[numba]``).

Algorithm: Bertsekas' forward auction with epsilon scaling, Gauss-Seidel style (one bidder at a
time), minimising ``sum_i C[i, pi(i)]`` over permutations. Rows ("persons") bid for columns
("objects"): an unassigned row ``i`` finds its best column ``j1`` by ``C[i, j] + p[j]`` and the
second-best value ``w2``, raises ``p[j1]`` by ``w2 - w1 + eps`` and takes ``j1`` (the previous
owner becomes unassigned). A phase ends when every row is assigned; only the rows that then
violate ``eps``-complementary slackness for the next, smaller ``eps`` bid again.

Candidate lists: each row keeps the columns whose value ``C[i, j] + p[j]`` was at most a cut
``thr[i]`` at its last full scan, the cut chosen so that ``_K <= count <= _KMAX`` (with ties that
no cut separates, up to ``_KMAX`` of the tied columns). Prices only rise, so a column off the
list is still ``>= thr[i]``: when the two best listed values are at most ``thr[i]`` they are
provably the row's best two and no scan of the ``n`` columns is needed. A scan writes the row's
values once (vectorised), finds its minimum as an integer minimum over the bits of the
non-negative floats (vectorised, unlike a float minimum), places the cut by counting (vectorised,
per chunk of 64 columns) and compacts only the chunks that hold listed columns. Both clouds are
put in Morton (Z-curve) order first, so a row's listed columns are spatially close and fall into
few chunks, and bidders that follow each other touch nearby lists. The hot loops index 2-D
arrays directly and the per-bid list walk is written out in the bidding loop: numba pays for
each call with many array arguments and for each row view it creates (reference counting).

Certificate: after each phase, ``primal = sum_i C[i, assign[i]]`` and the dual value
``dual = sum_i m_i - sum_j p[j]`` with ``m_i <= min_j (C[i, j] + p[j])``, a lower bound on the
optimum for any prices (weak duality). ``m_i`` comes from the list (exact when a listed value is
at most ``thr[i]``, else the row is rescanned). The solver stops at the first phase with
``primal - dual <= tol * dual`` (or ``primal == 0``), so the matching costs at most ``(1 + tol)``
times the optimum; ``eps`` starts near the mean nearest-neighbour distance and shrinks by up to
``_FACTOR`` per phase, less when the last phase's gap shows that a larger ``eps`` already
certifies ``tol``. Reaching ``eps_floor`` or ``max_phases`` first, or a phase that needs more than
``_PHASE_BIDS_PER_ROW * n`` bids, returns ``certified = False``; the caller then solves that
pair exactly.
"""
from __future__ import annotations

import numpy as np
from numba import njit

_CHUNK = 64  # columns per counting chunk; the cost matrix is padded to a multiple of it
_K = 16  # a candidate list holds at least this many columns ...
_KMAX = 32  # ... and at most this many
_FACTOR = 8.0  # eps is divided by at most this per phase
_EPS0 = 1.0  # first eps, in units of the mean nearest-neighbour distance ...
_EPS0_OF_MAX = 1 / 32  # ... and at least this fraction of the largest cost (duplicates make the former 0)
_TARGET = 0.7  # aim each eps at a gap of this fraction of tol * dual
_PHASE_BIDS_PER_ROW = 64  # a phase that needs more bids than this times n is left to the exact solver


@njit(cache=True, nogil=True, inline="always")
def _row_values(C, i, price, wv):
    for k in range(C.shape[1]):
        wv[k] = C[i, k] + price[k]


@njit(cache=True, nogil=True, inline="always")
def _bits_min(bits):
    """Minimum of int32 bit patterns; for non-negative floats it is the bits of their minimum."""
    m = np.int32(2147483647)
    for k in range(bits.shape[0]):
        v = bits[k]
        m = v if v < m else m
    return m


@njit(cache=True, nogil=True, inline="always")
def _count_below(wv, cut, chunk_count):
    """Number of ``wv <= cut``, and per chunk of ``_CHUNK`` entries in ``chunk_count``."""
    total = 0
    for b in range(wv.shape[0] // 64):
        a = 0
        base = b * 64
        for k in range(64):
            a += wv[base + k] <= cut
        chunk_count[b] = a
        total += a
    return total


@njit(cache=True, nogil=True, inline="always")
def _list_best2(C, price, i, cand, candc, count):
    """Fill ``candc`` with the raw costs of row ``i``'s listed columns; return their best two."""
    w1 = np.inf
    w2 = np.inf
    j1 = -1
    for q in range(count):
        j = cand[i, q]
        candc[i, q] = C[i, j]
        v = C[i, j] + price[j]
        better = v < w1
        w2 = min(w2, max(w1, v))
        w1 = min(w1, v)
        j1 = j if better else j1
    return w1, w2, j1


@njit(cache=True, nogil=True)
def _take_ties(C, price, i, cand, candc, clen, thr, KMAX, ws, tie, quota):
    """List every column below ``tie`` and ``quota`` of those equal to it; ``thr[i] = tie``.
    Rows start their pick at different columns, so rows that share a tie share fewer columns."""
    width = ws.shape[0]
    start = (i * KMAX) % width
    c = 0
    for k0 in range(width):
        k = k0 + start
        if k >= width:
            k -= width
        v = ws[k]
        if v < tie or (v == tie and quota > 0):
            quota -= v == tie
            cand[i, c] = k
            c += 1
    clen[i] = c
    thr[i] = tie
    return _list_best2(C, price, i, cand, candc, c)


@njit(cache=True, nogil=True)
def _take_smallest(C, i, cand, candc, clen, thr, KMAX, ws, n):
    """List the ``KMAX`` smallest values by insertion; ``thr[i]`` = the largest of them (a last
    resort when counting finds no cut)."""
    last = np.inf
    filled = 0
    for k in range(n):
        v = ws[k]
        if filled < KMAX or v < last:
            p = filled if filled < KMAX else KMAX - 1
            while p > 0 and candc[i, p - 1] > v:
                candc[i, p] = candc[i, p - 1]
                cand[i, p] = cand[i, p - 1]
                p -= 1
            candc[i, p] = v
            cand[i, p] = k
            if filled < KMAX:
                filled += 1
            if filled == KMAX:
                last = candc[i, KMAX - 1]
    w1 = candc[i, 0]
    w2 = candc[i, 1]
    j1 = cand[i, 0]
    thr[i] = candc[i, KMAX - 1]
    for q in range(KMAX):
        candc[i, q] = C[i, cand[i, q]]
    clen[i] = KMAX
    return w1, w2, j1


@njit(cache=True, nogil=True)
def _scan(C, n, price, i, cand, candc, clen, thr, spread, K, KMAX, spread_floor, ws, wbits, chunk_count,
          last_spread, box_bits, box_value):
    """Rebuild row ``i``'s candidate list from all columns; return its ``(w1, w2, j1)``.

    The list is every column with ``C[i, j] + p[j] <= g`` and ``thr[i] = g``, ``g`` chosen by
    counting so that the list holds ``K .. KMAX`` columns (a guess from the row's last spread
    ``g - min``, refined geometrically, then by bisection). A tie that no cut separates (many
    equal values, as from duplicated points) lists every value below it and fills up with tied
    columns, ``thr[i]`` = the tie, still a valid bound. With ``n <= KMAX`` the list is every
    column and ``thr[i] = inf``. ``candc`` holds raw costs ``C[i, j]``, so ``candc + price``
    rounds exactly like ``ws``."""
    if n <= KMAX:
        for j in range(n):
            cand[i, j] = j
        clen[i] = n
        thr[i] = np.inf
        return _list_best2(C, price, i, cand, candc, n)
    _row_values(C, i, price, ws)
    box_bits[0] = _bits_min(wbits)
    vmin = box_value[0]
    s = max(spread[i] if spread[i] > 0 else last_spread[0], spread_floor)
    lo = vmin
    hi = np.float32(np.inf)
    g = vmin + s
    target = np.float32(0.5) * np.float32(K + KMAX)
    cnt = 0
    for _ in range(64):
        cnt = _count_below(ws, g, chunk_count)
        if cnt < K:
            lo = g
            if hi == np.inf:  # grow the cut: the count rises roughly like a power of the spread
                f = (target / max(cnt, 1)) ** np.float32(0.4)
                nxt = vmin + (g - vmin) * min(max(f, np.float32(1.25)), np.float32(4.0))
            else:
                nxt = lo + (hi - lo) * np.float32(0.5)
        elif cnt > KMAX:
            hi = g
            nxt = vmin + (g - vmin) * (target / cnt) ** np.float32(0.4)
            if not nxt > lo:
                nxt = lo + (hi - lo) * np.float32(0.5)
        else:
            break
        if not (lo < nxt < hi):
            break
        g = nxt
    if not K <= cnt <= KMAX:
        if hi < np.inf:  # a tie at hi that no cut separates: take all below, fill up with ties
            below = _count_below(ws, np.nextafter(hi, np.float32(-np.inf)), chunk_count)
            if below <= KMAX - 2:
                return _take_ties(C, price, i, cand, candc, clen, thr, KMAX, ws, hi, KMAX - below)
        return _take_smallest(C, i, cand, candc, clen, thr, KMAX, ws, n)
    c = 0
    for b in range(C.shape[1] // 64):
        if chunk_count[b] > 0:
            for k in range(b * 64, b * 64 + 64):
                cand[i, c] = k
                c += ws[k] <= g
                if c == cnt:
                    break
            if c == cnt:
                break
    clen[i] = cnt
    thr[i] = g
    w1, w2, j1 = _list_best2(C, price, i, cand, candc, cnt)
    spread[i] = g - w1
    last_spread[0] = g - w1
    return w1, w2, j1


@njit(cache=True, nogil=True)
def _auction(C, n, eps0, eps_floor, spread0, tol, max_phases, factor, K, KMAX, max_bids):
    """Epsilon-scaling forward auction on the cost ``C[:, :n]`` (``n >= 2``; the padding columns
    ``C[:, n:]`` hold ``inf`` and are never listed).

    Returns ``(assign, primal, dual, certified)``: ``assign[i]`` is the column of row ``i``,
    ``primal`` its total cost, ``dual`` a lower bound on the optimal total and ``certified``
    whether ``primal <= (1 + tol) * dual`` (see the module docstring). A phase that takes more
    than ``max_bids`` bids (price wars of near-degenerate inputs, such as points on a line, where
    auctions are slow) stops the auction: ``certified = False`` and ``assign`` incomplete."""
    width = C.shape[1]
    price = np.zeros(width, dtype=C.dtype)
    assign = np.full(n, -1, dtype=np.int32)
    owner = np.full(width, -1, dtype=np.int32)
    stack = np.empty(n, dtype=np.int32)
    rowmin = np.empty(n, dtype=C.dtype)
    ws = np.empty(width, dtype=C.dtype)
    wbits = ws.view(np.int32)
    chunk_count = np.empty(width // 64, dtype=np.int64)
    cand = np.zeros((n, KMAX), dtype=np.int32)
    candc = np.zeros((n, KMAX), dtype=C.dtype)
    clen = np.zeros(n, dtype=np.int32)
    thr = np.full(n, -np.inf, dtype=C.dtype)
    spread = np.zeros(n, dtype=C.dtype)
    last_spread = np.full(1, spread0, dtype=C.dtype)
    box_bits = np.zeros(1, dtype=np.int32)
    box_value = box_bits.view(np.float32)
    spread_floor = np.float32(eps_floor)
    eps = eps0
    primal = 0.0
    dual = 0.0
    certified = False
    for _ in range(max_phases):
        top = 0
        for i in range(n):
            j = assign[i]
            if j >= 0 and C[i, j] + price[j] > rowmin[i] + eps:  # violates eps-CS: bid again
                owner[j] = -1
                assign[i] = -1
            if assign[i] < 0:
                stack[top] = i
                top += 1
        bids = 0
        while top > 0:
            bids += 1
            if bids > max_bids:
                return assign, 0.0, 0.0, False
            top -= 1
            i = stack[top]
            # the list walk is written out here (not a call): it runs for every bid
            w1 = np.float32(np.inf)
            w2 = np.float32(np.inf)
            j1 = -1
            for q in range(clen[i]):
                j = cand[i, q]
                v = candc[i, q] + price[j]
                better = v < w1
                w2 = min(w2, max(w1, v))
                w1 = min(w1, v)
                j1 = j if better else j1
            if not w2 <= thr[i]:
                w1, w2, j1 = _scan(C, n, price, i, cand, candc, clen, thr, spread, K, KMAX, spread_floor, ws,
                                   wbits, chunk_count, last_spread, box_bits, box_value)
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
            w1 = thr[i]
            for q in range(clen[i]):
                w1 = min(w1, candc[i, q] + price[cand[i, q]])
            if not w1 < thr[i]:  # the list may have gone stale: the exact minimum
                w1, w2, j1 = _scan(C, n, price, i, cand, candc, clen, thr, spread, K, KMAX, spread_floor, ws,
                                   wbits, chunk_count, last_spread, box_bits, box_value)
            rowmin[i] = w1
            dual += np.float64(w1) - np.float64(price[i])  # sum_i min_j (C + p) - sum_j p
        certified = primal - dual <= tol * dual or primal <= 0.0
        if certified or eps <= eps_floor:
            break
        # the gap is close to proportional to eps: aim the next eps at a gap below tol * dual
        ratio = max((primal - dual) / (n * eps), 0.05)
        eps = min(max(eps / factor, _TARGET * tol * dual / (ratio * n)), eps / 1.5)
    return assign, primal, dual, certified


@njit(cache=True, nogil=True)
def _euclidean_cost(x, y, out):
    """``out[i, j] = ||x[i] - y[j]||`` for ``j < m`` and ``inf`` beyond (padding), accumulated
    directly (no ``|x|^2 + |y|^2 - 2 x.y`` cancellation). Returns the largest entry and the mean
    over rows of the smallest one (the mean nearest-neighbour distance)."""
    n = x.shape[0]
    m = y.shape[0]
    d = x.shape[1]
    yt = np.ascontiguousarray(y.T)
    bits = out.view(np.int32)
    box_bits = np.zeros(1, dtype=np.int32)
    box_value = box_bits.view(np.float32)
    largest = np.int32(0)
    nn_total = 0.0
    for i in range(n):
        for j in range(m):
            out[i, j] = 0
        for a in range(d):
            xa = x[i, a]
            for j in range(m):
                t = xa - yt[a, j]
                out[i, j] += t * t
        smallest = np.int32(2147483647)
        for j in range(m):
            out[i, j] = np.sqrt(out[i, j])
        for j in range(m):  # non-negative floats order like their bits: integer min/max vectorise
            v = bits[i, j]
            smallest = v if v < smallest else smallest
            largest = v if v > largest else largest
        box_bits[0] = smallest
        nn_total += box_value[0]
        for j in range(m, out.shape[1]):
            out[i, j] = np.inf
    box_bits[0] = largest
    return box_value[0], nn_total / n


@njit(cache=True, nogil=True)
def _morton_order(points):
    """Indices that sort ``(n, D)`` points along a Z-order (Morton) curve over their first three
    coordinates. Only a locality heuristic: any order gives the same optimal matching cost."""
    n = points.shape[0]
    d = min(points.shape[1], 3)
    bits = 30 // max(d, 1)
    codes = np.zeros(n, dtype=np.int64)
    span = 0.0
    lows = np.empty(d)
    for a in range(d):
        lo = np.inf
        hi = -np.inf
        for k in range(n):
            lo = min(lo, points[k, a])
            hi = max(hi, points[k, a])
        lows[a] = lo
        span = max(span, hi - lo)
    scale = ((1 << bits) - 1) / span if span > 0 else 0.0
    for k in range(n):
        code = 0
        for a in range(d):
            q = np.int64((points[k, a] - lows[a]) * scale)
            for b in range(bits):
                code |= ((q >> b) & 1) << (d * b + a)
        codes[k] = code
    return np.argsort(codes, kind="mergesort")


@njit(cache=True, nogil=True)
def _solve(x, y, tol, max_phases, bids_per_row):
    """Matching and certificate of two ``(n, D)`` clouds (any float dtype): centred and scaled in
    float64 (the matching is invariant to both, and huge coordinates then neither lose precision
    nor overflow in float32), put in Morton order, matched on float32 costs, ordered back. A phase
    may take ``bids_per_row * n`` bids before the pair is reported uncertified."""
    n = x.shape[0]
    d = x.shape[1]
    out = np.zeros(n, dtype=np.int64)
    if n <= 1:
        return out, True
    centre = np.zeros(d)
    for k in range(n):
        for a in range(d):
            centre[a] += x[k, a]
    centre /= n
    scale = 0.0
    for k in range(n):
        for a in range(d):
            scale = max(scale, abs(x[k, a] - centre[a]), abs(y[k, a] - centre[a]))
    if scale == 0:  # all points coincide: every matching is optimal
        return np.arange(n), True
    xs = np.empty((n, d), dtype=np.float32)
    ys = np.empty((n, d), dtype=np.float32)
    for k in range(n):
        for a in range(d):
            xs[k, a] = (x[k, a] - centre[a]) / scale
            ys[k, a] = (y[k, a] - centre[a]) / scale
    rows = _morton_order(xs)
    cols = _morton_order(ys)
    width = (n + _CHUNK - 1) // _CHUNK * _CHUNK
    C = np.empty((n, width), dtype=np.float32)
    cmax, nn_mean = _euclidean_cost(xs[rows], ys[cols], C)
    if cmax == 0:  # distinct inputs that round to one float32 point
        return np.arange(n), True
    eps0 = max(_EPS0 * nn_mean, _EPS0_OF_MAX * cmax)
    assign, _, _, certified = _auction(C, n, eps0, 1e-6 * cmax, max(2 * nn_mean, 1e-3 * cmax), tol, max_phases,
                                       _FACTOR, min(_K, n), min(_KMAX, n), bids_per_row * n)
    if not certified:
        return out, False
    for i in range(n):
        out[rows[i]] = cols[assign[i]]
    return out, True


def _match(x: np.ndarray, y: np.ndarray, tol: float, max_phases: int):
    """Matching ``(n,)`` int64 (``y`` index for each ``x`` point) of two ``(n, D)`` float32 or
    float64 clouds, and whether its cost is certified ``<= (1 + tol) * optimum`` (``False`` only
    when a safety cap, ``max_phases``, the float32 resolution of ``eps`` or the bids of one phase,
    stopped it first; the matching is then meaningless)."""
    matching, certified = _solve(np.ascontiguousarray(x), np.ascontiguousarray(y), float(tol), int(max_phases),
                                 int(_PHASE_BIDS_PER_ROW))
    return matching, bool(certified)
