"""``geo4g demo``: a short tour of what the library holds today.

It builds a batch of primitive meshes, samples their surfaces, writes and
reads the results back through ``geo4g.io``, generates the embedded procedural
dataset (12 ShapeNet-like categories, cached after the first run) and trains
PointNet on it (``geo4g.training``: checkpoints, test accuracy, confusion matrix).
"""
from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Optional

import torch

from geo4g.data import ProceduralShapes
from geo4g.io import load_mesh, load_pointcloud, save_mesh, save_pointcloud
from geo4g.meshes import sample_points_from_meshes
from geo4g.parametric import box_mesh, cylinder_mesh, icosphere, torus_mesh
from geo4g.structures import Meshes, Pointclouds
from geo4g.training import train


def run_demo(epochs: int = 12, seed: int = 0, per_class: int = 100, num_points: int = 256, width: float = 0.5,
             root: Optional[Path] = None, out: Path = Path("runs/demo")) -> int:
    """Run the tour and print what each step produced. Returns an exit code (0).

    ``root`` is the procedural dataset's cache folder (default: the user cache); ``out`` the
    PointNet run folder (checkpoints, metrics, confusion matrix).
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
    test_set = ProceduralShapes(root, split="test", shapes_per_category=per_class, seed=seed,
                                representation="points", num_points=num_points)
    item = test_set[0]
    print(f"   {test_set}\n   categories: {', '.join(test_set.categories)}")
    print(f"   an item: {item['name']}, points {tuple(item['points'].shape)}, "
          f"{int(item['part_labels'].unique().numel())} parts of {test_set.part_names[:4]}..., "
          f"{item['params'].numel()} generating parameters")

    print(f"5. training: PointNet (width {width}) on the {test_set.num_classes} categories, {epochs} epochs")
    metrics = train("pointnet", data="procedural", root=root, out=out, epochs=epochs, num_points=num_points,
                    shapes_per_category=per_class, seed=seed, width=width, batch_size=32, device="cpu",
                    threads=1)
    print(f"   test accuracy {metrics['test_accuracy']:.3f} on {metrics['test_items']} shapes "
          f"(chance {1 / test_set.num_classes:.2f}), {metrics['train_seconds']} s of training")
    print(f"   run folder {out}: config.json, last.pt, best.pt, metrics.json, confusion.png "
          f"(`geo4g eval {Path(out) / 'best.pt'}` re-evaluates it)")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0
