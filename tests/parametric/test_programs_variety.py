"""The procedural categories must not be separable by bounding-box proportions alone
(benchmarks/bench_data.py reports the full baseline: 200 shapes per category)."""
import torch

from geo4g.parametric.programs import CATEGORIES, get_program


def _extents(per_category):
    feats, labels = [], []
    with torch.random.fork_rng():
        for c, name in enumerate(CATEGORIES):
            g = torch.Generator().manual_seed(500 + c)
            for _ in range(per_category):
                verts = get_program(name).sample(g).verts
                feats.append(verts.amax(0) - verts.amin(0))
                labels.append(c)
    return torch.stack(feats), torch.tensor(labels)


def test_a_bounding_box_knn_classifier_stays_far_from_perfect():
    x, y = _extents(40)
    x = (x - x.mean(0)) / x.std(0)
    train = torch.arange(len(y)) % 2 == 0
    nearest = torch.cdist(x[~train], x[train]).topk(9, largest=False).indices
    predicted = torch.mode(y[train][nearest], 1).values
    accuracy = float((predicted == y[~train]).float().mean())
    assert 1 / len(CATEGORIES) < accuracy < 0.75


def test_shapes_vary_strongly_within_each_category():
    x, y = _extents(20)
    for c, name in enumerate(CATEGORIES):
        ratios = x[y == c] / x[y == c].norm(dim=1, keepdim=True)
        assert float(ratios.std(0).max()) > 0.03, f"{name} shapes barely vary in proportion"
