"""Compiled (numba) Gauss-Seidel auction with epsilon scaling for the CPU ``"approx"`` EMD.

Imported lazily by :mod:`geo4g.losses.emd`; needs the optional ``numba`` package.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def auction_assign(C, eps0, eps_floor, tol, max_phases, factor):
    """Forward auction (minimisation) on the dense ``(n, n)`` cost ``C``, one bidder at a time.

    Returns ``(assign, primal, dual, phases)``: ``assign[i]`` is the column of row ``i``;
    ``primal`` its cost, ``dual = sum_i min_j (C[i, j] + p[j]) - sum_j p[j]`` a lower bound on the
    optimum. Stops after the first phase with ``primal - dual <= tol * dual`` (so
    ``primal <= (1 + tol) * optimum``), or when ``eps`` reaches ``eps_floor``, or after
    ``max_phases`` phases. Between phases (``eps /= factor``) rows that still satisfy
    ``eps``-complementary slackness keep their column; only the others bid again.
    """
    n = C.shape[0]
    price = np.zeros(n, dtype=np.float64)
    assign = np.full(n, -1, dtype=np.int64)
    owner = np.full(n, -1, dtype=np.int64)
    stack = np.empty(n, dtype=np.int64)
    rowmin = np.empty(n, dtype=np.float64)
    eps = eps0
    primal = 0.0
    dual = 0.0
    phases = 0
    inf = np.inf
    for phase in range(max_phases):
        phases = phase + 1
        top = 0
        for i in range(n):
            j = assign[i]
            if j >= 0 and C[i, j] + price[j] > rowmin[i] + eps:
                owner[j] = -1
                assign[i] = -1
            if assign[i] < 0:
                stack[top] = i
                top += 1
        while top > 0:
            top -= 1
            i = stack[top]
            w1 = inf
            w2 = inf
            j1 = 0
            for k in range(n):
                v = C[i, k] + price[k]
                if v < w2:
                    if v < w1:
                        w2 = w1
                        w1 = v
                        j1 = k
                    else:
                        w2 = v
            if w2 < inf:
                price[j1] += (w2 - w1) + eps
            else:
                price[j1] += eps
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
            primal += C[i, assign[i]]
            m = inf
            for k in range(n):
                v = C[i, k] + price[k]
                if v < m:
                    m = v
            rowmin[i] = m
            dual += m - price[i]
        if primal - dual <= tol * dual or eps <= eps_floor:
            break
        eps = eps / factor
    return assign, primal, dual, phases
