"""knn_graph / radius_graph over packed points and a batch vector: against a brute-force twin written
here (and against torch_cluster through PyG when it is importable), loop, flow, max_num_neighbors,
ragged and single-point clouds, duplicates, bad input."""
import importlib.util

import pytest
import torch

from geo4g.points import knn_graph, radius_graph

HAS_TORCH_CLUSTER = importlib.util.find_spec("torch_cluster") is not None


def _distance(x, i, j):
    d = torch.zeros((), dtype=x.dtype)
    for k in range(x.shape[1]):
        d = d + (x[i, k] - x[j, k]) * (x[i, k] - x[j, k])
    return d


def _naive_knn_graph(x, k, batch, loop):
    """For each centre in order, its k nearest points of the same cloud by (distance, index)."""
    sources, targets = [], []
    for i in range(x.shape[0]):
        others = [j for j in range(x.shape[0]) if batch[j] == batch[i] and (loop or j != i)]
        for j in sorted(others, key=lambda j: (_distance(x, i, j).item(), j))[:k]:
            sources.append(j)
            targets.append(i)
    return torch.tensor([sources, targets], dtype=torch.long).reshape(2, -1)


def _naive_radius_graph(x, r, batch, loop, max_num_neighbors):
    """For each centre in order, the first max_num_neighbors points of its cloud (index order) within r."""
    r2 = torch.tensor(r * r, dtype=x.dtype)
    sources, targets = [], []
    for i in range(x.shape[0]):
        found = [j for j in range(x.shape[0])
                 if batch[j] == batch[i] and (loop or j != i) and _distance(x, i, j) < r2]
        for j in found[:max_num_neighbors]:
            sources.append(j)
            targets.append(i)
    return torch.tensor([sources, targets], dtype=torch.long).reshape(2, -1)


def _packed(seed, sizes=(9, 1, 14), D=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(sum(sizes), D, generator=g, dtype=torch.float64)
    x[3] = x[0]  # a duplicate inside the first cloud
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return x, batch


@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("k", [1, 3, 20])
def test_knn_graph_matches_naive(loop, k):
    x, batch = _packed(k)
    got = knn_graph(x, k, batch, loop=loop)
    assert torch.equal(got, _naive_knn_graph(x, k, batch, loop))


@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("r, max_num", [(0.3, 32), (0.6, 2), (1e-3, 5)])
def test_radius_graph_matches_naive(loop, r, max_num):
    x, batch = _packed(7)
    got = radius_graph(x, r, batch, loop=loop, max_num_neighbors=max_num)
    assert torch.equal(got, _naive_radius_graph(x, r, batch, loop, max_num))


def test_graphs_flow_and_default_batch():
    x, _ = _packed(3, sizes=(12,))
    a = knn_graph(x, 4)
    b = knn_graph(x, 4, flow="target_to_source")
    assert torch.equal(a, b.flip(0))
    c = radius_graph(x, 0.5)
    d = radius_graph(x, 0.5, flow="target_to_source")
    assert torch.equal(c, d.flip(0))
    assert torch.equal(a, _naive_knn_graph(x, 4, torch.zeros(12, dtype=torch.long), False))


def test_graphs_on_clouds_large_enough_for_the_fast_paths():
    g = torch.Generator().manual_seed(4)
    x = torch.rand(700, 3, generator=g)
    batch = torch.repeat_interleave(torch.arange(2), torch.tensor([400, 300]))
    edges = knn_graph(x, 6, batch)
    assert edges.shape == (2, 700 * 6)
    assert (batch[edges[0]] == batch[edges[1]]).all() and (edges[0] != edges[1]).all()
    radius = radius_graph(x, 0.1, batch, max_num_neighbors=8)
    d = (x[radius[0]] - x[radius[1]]).square().sum(-1)
    assert (d < 0.01).all() and (batch[radius[0]] == batch[radius[1]]).all()
    assert torch.bincount(radius[1], minlength=700).max() <= 8


def test_graphs_empty_input():
    x = torch.zeros(0, 3)
    assert knn_graph(x, 3).shape == (2, 0)
    assert radius_graph(x, 0.5).shape == (2, 0)


def test_graphs_bad_input_names_the_argument():
    x = torch.rand(5, 3)
    with pytest.raises(ValueError, match="^k must"):
        knn_graph(x, 0)
    with pytest.raises(ValueError, match="flow"):
        knn_graph(x, 2, flow="up")
    with pytest.raises(ValueError, match="^r must"):
        radius_graph(x, 0.0)
    with pytest.raises(ValueError, match="max_num_neighbors"):
        radius_graph(x, 0.5, max_num_neighbors=0)
    with pytest.raises(ValueError, match="batch"):
        knn_graph(x, 2, torch.tensor([1, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="batch"):
        knn_graph(x, 2, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="^x must"):
        knn_graph(torch.rand(2, 5, 3), 2)
    bad = x.clone()
    bad[1, 1] = float("nan")
    with pytest.raises(ValueError, match="^x must"):
        radius_graph(bad, 0.5)


@pytest.mark.skipif(not HAS_TORCH_CLUSTER, reason="torch_cluster is not installed")
def test_graphs_match_torch_geometric():
    from torch_geometric.nn import knn_graph as pyg_knn_graph
    from torch_geometric.nn import radius_graph as pyg_radius_graph

    g = torch.Generator().manual_seed(5)
    x = torch.rand(60, 3, generator=g)
    batch = torch.repeat_interleave(torch.arange(3), torch.tensor([20, 25, 15]))
    for loop in (False, True):
        ours = knn_graph(x, 5, batch, loop=loop)
        theirs = pyg_knn_graph(x, 5, batch, loop=loop)
        assert set(map(tuple, ours.t().tolist())) == set(map(tuple, theirs.t().tolist()))
        ours = radius_graph(x, 0.3, batch, loop=loop, max_num_neighbors=100)
        theirs = pyg_radius_graph(x, 0.3, batch, loop=loop, max_num_neighbors=100)
        assert set(map(tuple, ours.t().tolist())) == set(map(tuple, theirs.t().tolist()))
