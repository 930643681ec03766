"""Small test meshes shared by the mesh operator tests: a jittered flat grid and an icosphere."""
import torch

from geo4g.parametric import icosphere


def grid_mesh(n=6, size=1.0, jitter=0.0, seed=0, dtype=torch.float64):
    """A flat ``n x n`` vertex grid in the z=0 plane over ``[0, size]^2``, two triangles per cell
    (alternating diagonals), optionally with interior vertices jittered in the plane."""
    xs = torch.linspace(0, size, n, dtype=dtype)
    yy, xx = torch.meshgrid(xs, xs, indexing="ij")
    verts = torch.stack([xx.reshape(-1), yy.reshape(-1), torch.zeros(n * n, dtype=dtype)], 1)
    if jitter:
        g = torch.Generator().manual_seed(seed)
        interior = (xx > 0) & (xx < size) & (yy > 0) & (yy < size)
        step = size / (n - 1)
        verts[interior.reshape(-1), :2] += jitter * step * (torch.rand(int(interior.sum()), 2, generator=g,
                                                                       dtype=dtype) - 0.5)
    faces = []
    for r in range(n - 1):
        for c in range(n - 1):
            a, b, d, e = r * n + c, r * n + c + 1, (r + 1) * n + c, (r + 1) * n + c + 1
            faces += [[a, b, e], [a, e, d]] if (r + c) % 2 == 0 else [[a, b, d], [b, e, d]]
    return verts, torch.tensor(faces)


def sphere_mesh(subdivisions=3, dtype=torch.float64):
    return icosphere(subdivisions, dtype=dtype)
