"""The ``geo4g`` command: ``info``, ``convert``, ``cache build``, ``data export``, ``train``, ``eval``, ``demo``."""
from __future__ import annotations

import argparse
import importlib
import platform
import sys
from pathlib import Path
from typing import List, Optional

OPTIONAL_EXTRAS = {
    "open3d": "pip install 'geo4g[open3d]'",
    "torch_geometric": "pip install 'geo4g[pyg]'",
    "triton": "pip install 'geo4g[triton]'",
    "pytorch3d": "install by PyTorch3D's own instructions",
}


def _version(module: str) -> Optional[str]:
    try:
        return getattr(importlib.import_module(module), "__version__", "installed")
    except Exception:  # an optional package may fail to import for many reasons (missing .so, ABI)
        return None


def cmd_info(args: argparse.Namespace) -> int:
    """Print versions, optional extras and devices."""
    import torch

    import geo4g

    print(f"geo4g {geo4g.__version__}  python {platform.python_version()}  {platform.platform()}")
    for module in ("torch", "numpy", "scipy", "trimesh", "tqdm"):
        print(f"  {module:<16} {_version(module)}")
    print("optional extras:")
    for module, how in OPTIONAL_EXTRAS.items():
        print(f"  {module:<16} {_version(module) or f'not importable ({how})'}")
    print("devices:")
    print(f"  cpu              {torch.get_num_threads()} threads")
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            print(f"  cuda:{i}           {torch.cuda.get_device_name(i)}")
    else:
        print("  cuda             not available")
    return 0


def convert_file(source: Path, target: Path, num_points: Optional[int] = None, seed: int = 0) -> str:
    """Convert ``source`` to ``target``, the formats taken from the extensions; return a summary line.

    Mesh to mesh keeps vertices and faces; point cloud to point cloud keeps normals
    and features; mesh to point cloud needs ``num_points``: that many points are
    sampled on the surface by area, with face normals. A PLY file is a mesh when
    it has faces, else a point cloud.
    """
    import torch

    from geo4g.io import MESH_FORMATS, POINTCLOUD_FORMATS, load_mesh, load_pointcloud, save_mesh, save_pointcloud
    from geo4g.meshes import sample_points_from_meshes
    from geo4g.structures import Meshes

    src, dst = source.suffix.lstrip(".").lower(), target.suffix.lstrip(".").lower()
    known = sorted(set(MESH_FORMATS) | set(POINTCLOUD_FORMATS))
    for path, ext in ((source, src), (target, dst)):
        if ext not in known:
            raise ValueError(f"unknown format {path.suffix!r} of {path}, supported: {', '.join('.' + k for k in known)}")
    if num_points is not None and num_points < 1:
        raise ValueError(f"--points must be a positive number of points, got {num_points}")

    mesh = None
    if src in MESH_FORMATS:
        loaded = load_mesh(source)
        mesh = loaded if src != "ply" or loaded.faces.shape[0] else None

    if mesh is not None and num_points is not None:
        if dst not in POINTCLOUD_FORMATS:
            raise ValueError(f"--points makes a point cloud, which {target.suffix} cannot hold; "
                             f"use one of {', '.join('.' + k for k in POINTCLOUD_FORMATS)}")
        generator = torch.Generator().manual_seed(seed)
        points, normals = sample_points_from_meshes(Meshes([mesh.verts], [mesh.faces]), num_points,
                                                    return_normals=True, generator=generator)
        save_pointcloud(target, points[0], normals=normals[0])
        return f"{source} -> {target}: sampled {num_points} points with normals from {mesh.faces.shape[0]} faces"
    if mesh is not None:
        if dst not in MESH_FORMATS:
            raise ValueError(f"{source} is a mesh and {target.suffix} holds point clouds: add --points N to sample its surface")
        save_mesh(target, mesh.verts, mesh.faces)
        return f"{source} -> {target}: {mesh.verts.shape[0]} vertices, {mesh.faces.shape[0]} faces"
    if num_points is not None:
        raise ValueError(f"--points samples a mesh surface, but {source} holds a point cloud (no faces)")
    if dst not in POINTCLOUD_FORMATS:
        raise ValueError(f"{source} is a point cloud and {target.suffix} holds meshes only")
    cloud = load_pointcloud(source)
    save_pointcloud(target, cloud.points, normals=cloud.normals, features=cloud.features,
                    feature_names=cloud.feature_names or None)
    extras = [name for name, value in (("normals", cloud.normals), ("features", cloud.features)) if value is not None]
    return f"{source} -> {target}: {cloud.points.shape[0]} points" + (f" with {' and '.join(extras)}" if extras else "")


def cmd_convert(args: argparse.Namespace) -> int:
    """Convert between mesh and point-cloud files; ``--points N`` samples a mesh surface."""
    print(convert_file(args.input, args.output, num_points=args.points, seed=args.seed))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from geo4g.demo import run_demo

    return run_demo(epochs=args.epochs, seed=args.seed, out=args.out)


def _categories(text: Optional[str]) -> Optional[List[str]]:
    return None if text is None else [c.strip() for c in text.split(",") if c.strip()]


def cmd_cache_build(args: argparse.Namespace) -> int:
    """Build the point cache of each asked split under ``OUT/<split>``."""
    from geo4g.data.cache import build_cache
    from geo4g.data.registry import DATASET_SPLITS, open_dataset

    splits = args.split or list(DATASET_SPLITS[args.dataset])
    skipped = 0
    for split in splits:
        dataset = open_dataset(args.dataset, args.root, split, num_points=args.points,
                               categories=_categories(args.categories), seed=args.seed, modelnet=args.modelnet,
                               shapes_per_category=args.shapes_per_category, workers=args.workers,
                               progress=not args.quiet)
        config = {"dataset": args.dataset, "root": None if args.root is None else str(Path(args.root).resolve()),
                  "split": split, "num_points": args.points, "seed": args.seed, "categories": args.categories,
                  "modelnet": args.modelnet if args.dataset == "modelnet" else None,
                  "shapes_per_category": args.shapes_per_category if args.dataset == "procedural" else None}
        summary = build_cache(dataset, Path(args.out) / split, config=config, chunk_size=args.chunk_size,
                              workers=args.workers, shard=args.shard, num_shards=args.num_shards,
                              progress=not args.quiet)
        skipped += len(summary.skipped)
        print(summary)
    print(f"done: {len(splits)} splits, {skipped} unreadable items skipped")
    return 0


def cmd_data_export(args: argparse.Namespace) -> int:
    """Export the procedural dataset in the ShapeNetCore v2 layout."""
    from geo4g.data.export import export_procedural

    count = export_procedural(args.out, categories=_categories(args.categories),
                              shapes_per_category=args.shapes_per_category, seed=args.seed, root=args.root,
                              progress=not args.quiet)
    print(f"exported {count} procedural shapes to {args.out} (ShapeNetCore v2 layout)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train a point or voxel model; print the test metrics and where the run folder is."""
    from geo4g.training import train

    metrics = train(args.model, data=args.data, root=args.root, out=args.out, epochs=args.epochs,
                    batch_size=args.batch_size, lr=args.lr, num_points=args.points,
                    shapes_per_category=args.shapes_per_category, seed=args.seed, width=args.width,
                    workers=args.workers, modelnet=args.modelnet, categories=_categories(args.categories),
                    device=args.device, resume=args.resume, threads=args.threads,
                    progress=not args.quiet, voxel_resolution=args.voxel_resolution)
    _print_metrics(metrics)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint of a ``geo4g train`` run on its test split."""
    from geo4g.training import evaluate

    _print_metrics(evaluate(args.checkpoint, progress=not args.quiet))
    return 0


def _print_metrics(metrics) -> None:
    for key, value in metrics.items():
        if value is not None:
            print(f"{key:28s} {value}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="geo4g", description="Deep learning on 3D geometry.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = sub.add_parser("info", help="versions, optional extras and devices")
    info.set_defaults(func=cmd_info)

    convert = sub.add_parser("convert", help="convert meshes and point clouds between file formats")
    convert.add_argument("input", type=Path, help="mesh (.obj .off .ply .stl) or point cloud (.ply .xyz .pts .npy .npz)")
    convert.add_argument("output", type=Path, help="output file; its extension picks the format")
    convert.add_argument("--points", type=int, default=None, metavar="N",
                         help="sample N points (with normals) on the input mesh's surface")
    convert.add_argument("--seed", type=int, default=0, help="seed of the surface sampling")
    convert.set_defaults(func=cmd_convert)

    cache = sub.add_parser("cache", help="preprocessing caches").add_subparsers(dest="action", required=True,
                                                                               metavar="ACTION")
    build = cache.add_parser("build", help="sample a dataset to points into resumable, sharded, memory-mapped chunks")
    build.add_argument("--dataset", required=True, choices=["procedural", "modelnet", "shapenetcore", "shapenetpart"])
    build.add_argument("--root", default=None,
                       help="the dataset folder (real datasets), or the generation cache (procedural)")
    build.add_argument("--out", required=True, help="cache folder; each split goes to OUT/<split>")
    build.add_argument("--points", type=int, default=2048, metavar="N", help="points per shape")
    build.add_argument("--workers", type=int, default=1, metavar="W", help="parallel worker processes")
    build.add_argument("--split", action="append", default=None,
                       help="a split to build (repeatable); default every split of the dataset")
    build.add_argument("--categories", default=None, help="comma-separated category names (synsets for shapenetcore)")
    build.add_argument("--seed", type=int, default=0, help="seed of the point sampling (and of procedural shapes)")
    build.add_argument("--modelnet", default="10", choices=["10", "40"], help="ModelNet10 or ModelNet40")
    build.add_argument("--shapes-per-category", type=int, default=200, help="procedural: shapes per category")
    build.add_argument("--chunk-size", type=int, default=256, help="items per chunk (the unit of resumption)")
    build.add_argument("--shard", type=int, default=0, metavar="I", help="this worker's shard index")
    build.add_argument("--num-shards", type=int, default=1, metavar="K", help="workers splitting the chunks")
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    build.set_defaults(func=cmd_cache_build)

    data = sub.add_parser("data", help="dataset utilities").add_subparsers(dest="action", required=True,
                                                                          metavar="ACTION")
    export = data.add_parser("export", help="write the procedural dataset in the ShapeNetCore v2 layout")
    export.add_argument("--out", required=True, help="output folder")
    export.add_argument("--categories", default=None, help="comma-separated procedural categories (default all)")
    export.add_argument("--shapes-per-category", type=int, default=100)
    export.add_argument("--seed", type=int, default=0)
    export.add_argument("--root", default=None, help="the procedural generation cache (default: the user cache)")
    export.add_argument("--quiet", action="store_true", help="no progress bars")
    export.set_defaults(func=cmd_data_export)

    from geo4g.training import MODELS

    train = sub.add_parser("train", help="train a point-cloud or voxel model (classification or part segmentation)")
    train.add_argument("model", choices=list(MODELS))
    train.add_argument("--data", default="procedural", choices=["procedural", "modelnet"])
    train.add_argument("--root", default=None, help="ModelNet folder, or the procedural generation cache")
    train.add_argument("--out", default=None, help="run folder (default runs/MODEL): checkpoints, config, reports")
    train.add_argument("--epochs", type=int, default=20)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--points", type=int, default=1024, help="points per shape")
    train.add_argument("--voxel-resolution", type=int, default=32, help="voxel models: grid size per axis")
    train.add_argument("--shapes-per-category", type=int, default=200, help="procedural: shapes per category")
    train.add_argument("--width", type=float, default=1.0, help="channel width multiplier of the model")
    train.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    train.add_argument("--modelnet", default="10", choices=["10", "40"])
    train.add_argument("--categories", default=None, help="comma-separated categories (default: all)")
    train.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("eval", help="evaluate a checkpoint of a `geo4g train` run on its test split")
    evaluate.add_argument("checkpoint", type=Path, help="RUN/best.pt or RUN/last.pt")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bars")
    evaluate.set_defaults(func=cmd_eval)

    demo = sub.add_parser("demo", help="a short tour of the library")
    demo.add_argument("--epochs", type=int, default=12)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="the PointNet run folder")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, ImportError) as error:
        print(f"geo4g {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
