"""``geo4g demo``: a short tour of what the library holds today.

It builds a batch of primitive meshes, samples their surfaces, writes and
reads the results back through ``geo4g.io``, generates the embedded procedural
dataset (12 ShapeNet-like categories, cached after the first run) and trains a
small point-cloud classifier (a shared MLP with max pooling) on it with the
``Trainer`` and its checkpoints.
"""
from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Optional

import torch
from torch import nn
from torch.utils.data import DataLoader

from geo4g.data import Compose, GeometryCollate, ProceduralShapes, RandomRotation, RandomScale
from geo4g.io import load_mesh, load_pointcloud, save_mesh, save_pointcloud
from geo4g.meshes import sample_points_from_meshes
from geo4g.nn import MLP, SharedMLP, Trainer
from geo4g.parametric import box_mesh, cylinder_mesh, icosphere, torus_mesh
from geo4g.structures import Meshes, Pointclouds

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


def run_demo(epochs: int = 20, seed: int = 0, per_class: int = 100, num_points: int = 512,
             root: Optional[Path] = None) -> int:
    """Run the tour and print what each step produced. Returns an exit code (0).

    ``root`` is the procedural dataset's cache folder (default: the user cache).
    """
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

        print(f"4. data: the procedural dataset, {per_class} shapes per category, {num_points} points each")
        train_transform = Compose([RandomRotation(axis="y"), RandomScale(0.85, 1.15, anisotropic=True)])
        common = dict(root=root, shapes_per_category=per_class, seed=seed, representation="points",
                      num_points=num_points, progress=False)
        train_set = ProceduralShapes(split="train", transform=train_transform, **common)
        val_set = ProceduralShapes(split="val", transform=RandomRotation(axis="y", generator=g), **common)
        test_set = ProceduralShapes(split="test", transform=RandomRotation(axis="y", generator=g), **common)
        print(f"   {train_set}\n   categories: {', '.join(train_set.categories)}")

        print(f"5. training: classify the {train_set.num_classes} categories from points rotated about the up axis")
        model = PointMaxClassifier(train_set.num_classes)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        trainer = Trainer(
            model,
            optimizer,
            nn.functional.cross_entropy,
            forward_fn=lambda net, batch: (net(batch["points"]), batch["label"]),
            scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs),
            metrics={"accuracy": lambda logits, y: (logits.argmax(-1) == y).float().mean()},
            max_epochs=epochs,
            checkpoint_dir=Path(tmp) / "checkpoints",
            device="cpu",
            seed=seed,
        )
        collate = GeometryCollate("padded")
        loader = DataLoader(train_set, batch_size=32, shuffle=True, collate_fn=collate,
                            generator=torch.Generator().manual_seed(seed))
        trainer.fit(loader, DataLoader(val_set, batch_size=64, collate_fn=collate))
        result = trainer.evaluate(DataLoader(test_set, batch_size=64, collate_fn=collate))
        saved = sorted(p.name for p in (Path(tmp) / "checkpoints").iterdir())
    print(f"   test accuracy {result['accuracy']:.3f} on {len(test_set)} shapes "
          f"(chance {1 / train_set.num_classes:.2f}); checkpoints written: {saved}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0
