"""``geo4g demo``: a short tour of what the library holds today.

It builds a batch of primitive meshes, samples their surfaces, writes and
reads the results back through ``geo4g.io``, and trains a small point-cloud
classifier (a shared MLP with max pooling) to tell the primitives apart under
random rotations and stretches, with the ``Trainer`` and its checkpoints.
"""
from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from geo4g.io import load_mesh, load_pointcloud, save_mesh, save_pointcloud
from geo4g.meshes import sample_points_from_meshes
from geo4g.nn import MLP, SharedMLP, Trainer
from geo4g.parametric import box_mesh, cylinder_mesh, icosphere, torus_mesh
from geo4g.structures import Meshes, Pointclouds

CLASSES = ("box", "sphere", "cylinder", "torus")


def random_primitive(label: int, g: torch.Generator):
    """One primitive of class ``label`` with random proportions: ``(verts (V, 3), faces (F, 3))``."""
    u = lambda lo, hi: float(lo + (hi - lo) * torch.rand((), generator=g))  # noqa: E731
    if label == 0:
        verts, faces = box_mesh((u(0.5, 1.5), u(0.5, 1.5), u(0.5, 1.5)))
    elif label == 1:
        verts, faces = icosphere(3)
        verts = verts * torch.tensor([u(0.8, 1.2), u(0.8, 1.2), u(0.8, 1.2)])
    elif label == 2:
        verts, faces = cylinder_mesh(u(0.3, 0.6), u(0.6, 2.0))
    else:
        verts, faces = torus_mesh(1.0, u(0.2, 0.5))
    return verts, faces


def random_rotations(n: int, g: torch.Generator) -> torch.Tensor:
    """``(n, 3, 3)`` rotation matrices drawn uniformly from SO(3) (QR of a Gaussian matrix)."""
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, generator=g))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]
    return q * torch.sign(torch.linalg.det(q))[:, None, None]


def make_dataset(per_class: int, num_points: int, g: torch.Generator):
    """Rotated, normalised surface samples of random primitives: ``points (M, N, 3)``, ``labels (M,)``."""
    labels = torch.arange(len(CLASSES)).repeat_interleave(per_class)
    meshes = Meshes(*map(list, zip(*(random_primitive(int(c), g) for c in labels))))
    points = sample_points_from_meshes(meshes, num_points, generator=g)
    points = points @ random_rotations(len(labels), g)
    return Pointclouds(points).normalize("sphere").points_padded(), labels


class PointMaxClassifier(nn.Module):
    """Point-wise shared MLP, max pooling over points, then an MLP head.

    Shapes:
        - input: ``(B, N, 3)``
        - output: ``(B, num_classes)`` logits
    """

    def __init__(self, num_classes: int, width: int = 128):
        super().__init__()
        self.features = SharedMLP([3, 64, 64, width])
        self.head = MLP([width, 64, num_classes], norm="batch", dropout=0.3)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(points.transpose(1, 2)).amax(dim=2))


def run_demo(epochs: int = 20, seed: int = 0, per_class: int = 64, num_points: int = 256) -> int:
    """Run the tour and print what each step produced. Returns an exit code (0)."""
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()

    print("1. meshes: a ragged batch of primitives")
    meshes = Meshes(*map(list, zip(box_mesh(), icosphere(2), cylinder_mesh(), torus_mesh())))
    print(f"   {meshes}")
    areas = torch.stack([a.sum() for a in meshes.faces_areas_packed().split(meshes.num_faces_per_mesh().tolist())])
    print(f"   surface areas {[round(a, 3) for a in areas.tolist()]} "
          f"(sphere: {4 * math.pi * 0.5 ** 2 * 4:.3f} for radius 1), edges {meshes.num_edges_per_mesh().tolist()}")

    print("2. sampling: 2048 area-weighted surface points with normals per mesh")
    points, normals = sample_points_from_meshes(meshes, 2048, return_normals=True, generator=g)
    clouds = Pointclouds(points, normals=normals).normalize("sphere")
    print(f"   {clouds}; padded {tuple(clouds.points_padded().shape)}, packed {tuple(clouds.points_packed().shape)}")

    with tempfile.TemporaryDirectory() as tmp:
        print("3. io: save and reload as OBJ, binary PLY and XYZ")
        verts, faces = meshes.get_mesh_verts_faces(3)
        for ext in ("obj", "ply"):
            save_mesh(Path(tmp) / f"torus.{ext}", verts, faces)
            back = load_mesh(Path(tmp) / f"torus.{ext}")
            print(f"   torus.{ext}: {back.verts.shape[0]} verts, {back.faces.shape[0]} faces, "
                  f"max error {float((back.verts - verts).abs().max()):.1e}")
        save_pointcloud(Path(tmp) / "torus.xyz", clouds.points_list()[3], normals=clouds.normals_list()[3])
        cloud = load_pointcloud(Path(tmp) / "torus.xyz")
        print(f"   torus.xyz: {cloud.points.shape[0]} points with normals: {cloud.normals is not None}")

        print(f"4. training: classify {', '.join(CLASSES)} from {num_points} rotated points")
        train_x, train_y = make_dataset(per_class, num_points, g)
        test_x, test_y = make_dataset(per_class // 4, num_points, g)
        model = PointMaxClassifier(len(CLASSES))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        trainer = Trainer(
            model,
            optimizer,
            nn.functional.cross_entropy,
            scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs),
            metrics={"accuracy": lambda logits, y: (logits.argmax(-1) == y).float().mean()},
            max_epochs=epochs,
            checkpoint_dir=Path(tmp) / "checkpoints",
            device="cpu",
            seed=seed,
        )
        loader = DataLoader(TensorDataset(train_x, train_y), batch_size=16, shuffle=True,
                            generator=torch.Generator().manual_seed(seed))
        trainer.fit(loader, DataLoader(TensorDataset(test_x, test_y), batch_size=64))
        result = trainer.evaluate(DataLoader(TensorDataset(test_x, test_y), batch_size=64))
        saved = sorted(p.name for p in (Path(tmp) / "checkpoints").iterdir())
    print(f"   test accuracy {result['accuracy']:.3f} on {len(test_y)} shapes "
          f"(chance {1 / len(CLASSES):.2f}); checkpoints written: {saved}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0
