"""Small labelled point clouds of easily told primitives, for the models' overfit and invariance tests."""
import math

import torch


def four_primitives(per_class: int = 2, n: int = 128, seed: int = 0):
    """``(points (4 per_class, n, 3), labels)``: spheres, cube surfaces, cylinders and flat squares."""
    g = torch.Generator().manual_seed(seed)
    clouds, labels = [], []
    for label in range(4):
        for _ in range(per_class):
            u = torch.rand(n, 3, generator=g)
            if label == 0:
                p = torch.randn(n, 3, generator=g)
                p = 0.8 * p / p.norm(dim=1, keepdim=True)
            elif label == 1:
                p = (2 * u - 1) * 0.6
                face = torch.randint(0, 3, (n,), generator=g)
                p[torch.arange(n), face] = torch.where(torch.rand(n, generator=g) < 0.5, -0.6, 0.6)
            elif label == 2:
                t = 2 * math.pi * u[:, 0]
                p = torch.stack([0.5 * t.cos(), 0.5 * t.sin(), 1.6 * u[:, 1] - 0.8], 1)
            else:
                p = torch.stack([1.6 * u[:, 0] - 0.8, 1.6 * u[:, 1] - 0.8, torch.zeros(n)], 1)
            clouds.append(p)
            labels.append(label)
    return torch.stack(clouds), torch.tensor(labels)


def primitive_surfaces(n: int, copies: int, seed: int = 0):
    """``(points (4 * copies, n, 3), labels)``: surface samples of a sphere, cube, cylinder and torus."""
    g = torch.Generator().manual_seed(seed)
    clouds, labels = [], []
    for _ in range(copies):
        sphere = torch.randn(n, 3, generator=g)
        cube = torch.rand(n, 3, generator=g) * 2 - 1
        axis = torch.randint(0, 3, (n,), generator=g)
        cube[torch.arange(n), axis] = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
        t, z = torch.rand(n, generator=g) * 2 * math.pi, torch.rand(n, generator=g) * 2 - 1
        u, v = torch.rand(n, generator=g) * 2 * math.pi, torch.rand(n, generator=g) * 2 * math.pi
        ring = 0.7 + 0.3 * v.cos()
        clouds += [sphere / sphere.norm(dim=1, keepdim=True), cube * 0.7,
                   torch.stack([0.5 * t.cos(), 0.5 * t.sin(), z], 1),
                   torch.stack([ring * u.cos(), ring * u.sin(), 0.3 * v.sin()], 1)]
        labels += [0, 1, 2, 3]
    return torch.stack(clouds), torch.tensor(labels)
