"""Training recipes behind ``geo4g train`` / ``geo4g eval``: point-cloud and voxel classification and
point-cloud part segmentation on the procedural dataset or ModelNet, with checkpoints, resume and reports.

A run folder holds ``config.json`` (everything needed to rebuild the model and the data),
``last.pt`` / ``best.pt`` (Trainer checkpoints), ``metrics.json`` (test figures) and
``confusion.png`` (classification) after the run.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn
from torch.utils.data import DataLoader

from geo4g._atomic import atomic_write
from geo4g.data import (Compose, GeometryCollate, Jitter, ModelNet, NormalizeUnitSphere, ProceduralShapes,
                        RandomRotation, RandomScale, Voxelize)
from geo4g.nn import Trainer
from geo4g.points import (DGCNNClassifier, MCConvClassifier, PointNet2Classifier, PointNet2Segmenter,
                          PointNetClassifier, PointNetSegmenter, feature_transform_regularizer)
from geo4g.voxels import ShapeNets3D, VoxNet

__all__ = ["CLASSIFIERS", "SEGMENTERS", "VOXEL_MODELS", "MODELS", "FEATURE_TRANSFORM_WEIGHT", "build_model", "train", "evaluate", "confusion_matrix",
           "save_confusion_png", "part_miou"]

PathLike = Union[str, os.PathLike]


def _tuples(options: Dict[str, object]) -> Dict[str, object]:
    # Options come back from config.json with lists where the constructors take tuples.
    return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}


def _pointnet(num_classes: int, num_parts: int, width: float, **options) -> nn.Module:
    return PointNetClassifier(num_classes, width=width, **options)


def _pointnet2(num_classes: int, num_parts: int, width: float, **options) -> nn.Module:
    return PointNet2Classifier(num_classes, width=width, **_tuples(options))


def _dgcnn(num_classes: int, num_parts: int, width: float, **options) -> nn.Module:
    return DGCNNClassifier(num_classes, width=width, **options)


def _mcconv(num_classes: int, num_parts: int, width: float, **options) -> nn.Module:
    return MCConvClassifier(num_classes, width=width, **_tuples(options))


def _voxnet(num_classes: int, num_parts: int, width: float, **options) -> nn.Module:
    return VoxNet(num_classes, width=width, **_tuples(options))


def _shapenets3d(num_classes: int, num_parts: int, width: float, **options) -> nn.Module:
    return ShapeNets3D(num_classes, width=width, **_tuples(options))


def _pointnet_seg(num_classes: int, num_parts: int, width: float, **options) -> nn.Module:
    return PointNetSegmenter(num_parts, num_classes, width=width, **options)


def _pointnet2_seg(num_classes: int, num_parts: int, width: float, **options) -> nn.Module:
    return PointNet2Segmenter(num_parts, num_classes, width=width, **_tuples(options))


#: classification models by CLI name: ``builder(num_classes, num_parts, width, **model_options)``
CLASSIFIERS: Dict[str, Callable[[int, int, float], nn.Module]] = {
    "pointnet": _pointnet, "pointnet2": _pointnet2, "dgcnn": _dgcnn, "mcconv": _mcconv,
    "voxnet": _voxnet, "shapenets3d": _shapenets3d}
#: the classifiers that take occupancy grids (``voxel_resolution``^3, solid, over each shape's bounding cube)
VOXEL_MODELS = ("voxnet", "shapenets3d")
#: part-segmentation models by CLI name
SEGMENTERS: Dict[str, Callable[[int, int, float], nn.Module]] = {"pointnet-seg": _pointnet_seg,
                                                                  "pointnet2-seg": _pointnet2_seg}
MODELS = (*CLASSIFIERS, *SEGMENTERS)


def build_model(name: str, num_classes: int, num_parts: int = 0, width: float = 1.0, **options) -> nn.Module:
    """The model ``name`` (one of ``MODELS``) for ``num_classes`` categories (and ``num_parts`` parts);
    ``options`` go to the model's constructor (e.g. ``npoints=(128, 32)`` for PointNet++)."""
    if name in CLASSIFIERS:
        return CLASSIFIERS[name](num_classes, num_parts, width, **options)
    if name in SEGMENTERS:
        return SEGMENTERS[name](num_classes, num_parts, width, **options)
    raise ValueError(f"unknown model {name!r}; known models: {list(MODELS)}")


#: the weight of PointNet's feature-transform regulariser in the loss (Qi et al. 2017)
FEATURE_TRANSFORM_WEIGHT = 1e-3


def _logits_and_penalty(output) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Models return logits, or (PointNet) ``PointNetOutput(logits, feature_transform)`` whose
    transform adds the orthogonality regulariser to the loss."""
    if isinstance(output, torch.Tensor):
        return output, None
    transform = output.feature_transform
    penalty = None if transform is None else FEATURE_TRANSFORM_WEIGHT * feature_transform_regularizer(transform)
    return output.logits, penalty


def _classification_loss(output, target):
    logits, penalty = _logits_and_penalty(output)
    loss = nn.functional.cross_entropy(logits, target)
    return loss if penalty is None else loss + penalty


def _accuracy(output, target):
    return (_logits_and_penalty(output)[0].argmax(-1) == target).float().mean()


def _segmentation_targets(batch) -> torch.Tensor:
    """``(B, 1 + N)``: each shape's category, then its part labels (-1 padding): one tensor, so the
    Trainer moves it and counts the batch like any target."""
    return torch.cat([batch["label"][:, None], batch["part_labels"]], 1)


def _segmentation_loss(output, targets):
    logits, penalty = _logits_and_penalty(output)
    parts = targets[:, 1:]
    loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), parts.reshape(-1), ignore_index=-1)
    return loss if penalty is None else loss + penalty


def part_miou(logits: torch.Tensor, parts: torch.Tensor, category: torch.Tensor,
              part_ranges: Sequence[Tuple[int, int]]) -> torch.Tensor:
    """Mean over shapes of the mean part IoU of each shape (ShapeNetPart's instance mIoU).

    Args:
        logits: ``(B, N, P)`` part scores; only the parts of each shape's category compete.
        parts: ``(B, N)`` global part labels, ``-1`` for padding.
        category: ``(B,)`` category index of each shape.
        part_ranges: ``[(first, stop), ...]`` the global part labels of each category.

    A part absent from both prediction and truth counts as IoU 1 (the benchmark's convention).
    """
    ious = []
    for b in range(logits.shape[0]):
        first, stop = part_ranges[int(category[b])]
        valid = parts[b] >= 0
        pred = logits[b, valid, first:stop].argmax(-1) + first
        truth = parts[b, valid]
        shape_ious = []
        for p in range(first, stop):
            union = ((pred == p) | (truth == p)).sum()
            inter = ((pred == p) & (truth == p)).sum()
            shape_ious.append(1.0 if int(union) == 0 else float(inter) / float(union))
        ious.append(sum(shape_ious) / len(shape_ious))
    return torch.tensor(sum(ious) / max(len(ious), 1))


def confusion_matrix(predicted: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(C, C)`` counts: row = true class, column = predicted class."""
    index = target.long() * num_classes + predicted.long()
    return torch.bincount(index, minlength=num_classes * num_classes).view(num_classes, num_classes)


def save_confusion_png(matrix: torch.Tensor, names: Sequence[str], path: PathLike, title: str = "") -> None:
    """Write the confusion matrix (row-normalised colours, counts printed) as a PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = matrix.cpu().numpy()
    rates = counts / counts.sum(1, keepdims=True).clip(min=1)
    n = len(names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), names, rotation=60, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            if counts[i, j]:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if rates[i, j] > 0.5 else "black")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def _datasets(config: Dict[str, object]):
    """``(train, val, test, category names, part ranges)`` for a run config."""
    points, seed = config["num_points"], config["seed"]
    augment = Compose([RandomRotation(axis="y"), RandomScale(0.8, 1.25, anisotropic=True), Jitter(0.01, 0.05)])
    representation, finish = "points", None
    if config["model"] in VOXEL_MODELS:
        # Augment the geometry, then voxelise: a rotated grid would blur, a rotated mesh does not.
        finish = Voxelize(config.get("voxel_resolution", 32))
        augment = Compose([RandomRotation(axis="y"), RandomScale(0.8, 1.25, anisotropic=True), finish])
        representation = "mesh"
    if config["data"] == "procedural":
        common = dict(root=config["root"], shapes_per_category=config["shapes_per_category"], seed=seed,
                      categories=config.get("categories"), representation=representation, num_points=points,
                      progress=config.get("progress", True))
        train_set = ProceduralShapes(split="train", transform=augment, **common)
        val_set = ProceduralShapes(split="val", transform=finish, **common)
        test_set = ProceduralShapes(split="test", transform=finish, **common)
        ranges = [(o, o + n) for o, n in zip(train_set.part_offsets, _part_counts(train_set))]
        return train_set, val_set, test_set, list(train_set.categories), ranges
    if config["data"] == "modelnet":
        normalise = NormalizeUnitSphere() if finish is None else Compose([NormalizeUnitSphere(), finish])
        common = dict(root=config["root"], name=config["modelnet"], representation="points", num_points=points,
                      seed=seed, categories=config.get("categories"))
        train_set = ModelNet(split="train", transform=Compose([NormalizeUnitSphere(), augment]), **common)
        test_set = ModelNet(split="test", transform=normalise, **common)
        return train_set, None, test_set, list(train_set.classes), []
    raise ValueError(f"data must be 'procedural' or 'modelnet', got {config['data']!r}")


def _build_from_config(config: Dict[str, object], names, ranges) -> nn.Module:
    options = dict(config.get("model_options", {}))
    if config["model"] in VOXEL_MODELS:
        options.setdefault("resolution", config.get("voxel_resolution", 32))
    return build_model(config["model"], len(names), sum(b - a for a, b in ranges), config["width"], **options)


def _part_counts(dataset: ProceduralShapes) -> List[int]:
    offsets = list(dataset.part_offsets) + [dataset.num_parts]
    return [b - a for a, b in zip(offsets[:-1], offsets[1:])]


def _classifier_input(net, batch, device=None):
    """Run a classifier on a padded batch: occupancy grids, or points with their lengths."""
    if "voxels" in batch:
        return net(batch["voxels"] if device is None else batch["voxels"].to(device))
    if device is None:
        return net(batch["points"], batch["lengths"])
    return net(batch["points"].to(device), batch["lengths"].to(device))


def _forward_classify(net, batch):
    return _classifier_input(net, batch), batch["label"]


def _forward_segment(net, batch):
    return net(batch["points"], batch["label"], batch["lengths"]), _segmentation_targets(batch)


def _trainer(model: nn.Module, config: Dict[str, object], out: Path, part_ranges, progress: bool) -> Trainer:
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"], weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config["epochs"])
    if config["model"] in SEGMENTERS:
        metrics = {"miou": lambda output, t: part_miou(_logits_and_penalty(output)[0], t[:, 1:], t[:, 0], part_ranges)}
        return Trainer(model, optimizer, _segmentation_loss, scheduler=scheduler, metrics=metrics,
                       forward_fn=_forward_segment, max_epochs=config["epochs"], checkpoint_dir=out,
                       device=config["device"], seed=config["seed"], progress=progress, monitor="val_miou"
                       if config["data"] == "procedural" else None, mode="max")
    return Trainer(model, optimizer, _classification_loss, scheduler=scheduler, metrics={"accuracy": _accuracy},
                   forward_fn=_forward_classify, max_epochs=config["epochs"], checkpoint_dir=out,
                   device=config["device"], seed=config["seed"], progress=progress)


def train(model: str, data: str = "procedural", root: Optional[PathLike] = None, out: Optional[PathLike] = None,
          epochs: int = 20, batch_size: int = 32, lr: float = 1e-3, num_points: int = 1024,
          shapes_per_category: int = 200, seed: int = 0, width: float = 1.0, workers: int = 0,
          modelnet: str = "10", categories: Optional[Sequence[str]] = None, device: Optional[str] = None,
          resume: bool = False, progress: bool = True, threads: Optional[int] = None,
          model_options: Optional[Dict[str, object]] = None, voxel_resolution: int = 32) -> Dict[str, object]:
    """Train ``model`` and write the run folder ``out`` (default ``runs/<model>``); return the test metrics.

    Point models see ``num_points`` surface samples; the voxel models (``VOXEL_MODELS``) see solid
    occupancy grids of ``voxel_resolution``^3 over each shape's bounding cube (ModelNet's point
    files give the grids of their points), voxelised after the augmentation.

    ``model_options`` go to the model's constructor (e.g. ``{"npoints": [128, 32]}`` for PointNet++)
    and are saved with the run. ``threads`` sets torch's CPU threads for the run (default: leave torch's setting). On small
    machines one thread is often fastest: the models' per-point layers are many small ops.

    ``resume=True`` continues from ``out/last.pt`` with the run's saved config (the
    arguments given must match it, except ``epochs``, which may grow).
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; known models: {list(MODELS)}")
    if model in SEGMENTERS and data != "procedural":
        raise ValueError(f"{model} trains on the procedural part labels: data must be 'procedural', got {data!r}")
    for value, name in ((epochs, "epochs"), (batch_size, "batch_size"), (num_points, "num_points"),
                        (shapes_per_category, "shapes_per_category"), (voxel_resolution, "voxel_resolution")):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if threads is not None:
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ValueError(f"threads must be a positive int or None, got {threads!r}")
        torch.set_num_threads(threads)
    if not lr > 0 or not width > 0:
        raise ValueError(f"lr and width must be positive, got lr={lr!r}, width={width!r}")
    out = Path(out) if out is not None else Path("runs") / model
    config = {"model": model, "data": data, "root": None if root is None else str(Path(root).resolve()),
              "epochs": epochs, "batch_size": batch_size, "lr": lr, "num_points": num_points,
              "shapes_per_category": shapes_per_category, "seed": seed, "width": width, "modelnet": modelnet,
              "categories": None if categories is None else list(categories),
              "model_options": dict(model_options or {}),
              **({"voxel_resolution": voxel_resolution} if model in VOXEL_MODELS else {}),
              "device": device or ("cuda" if torch.cuda.is_available() else "cpu")}
    config_path = out / "config.json"
    if resume:
        if not config_path.is_file():
            raise FileNotFoundError(f"cannot resume: {config_path} not found (train without --resume first)")
        saved = json.loads(config_path.read_text())
        different = {k: (saved.get(k), v) for k, v in config.items() if k != "epochs" and saved.get(k) != v}
        if different:
            raise ValueError(f"cannot resume {out}: settings differ from the saved run (saved, given): {different}")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(config_path, "w") as f:
        json.dump(config, f, indent=1)
    train_set, val_set, test_set, names, ranges = _datasets({**config, "progress": progress})
    net = _build_from_config(config, names, ranges)
    trainer = _trainer(net, config, out, ranges, progress)
    collate = GeometryCollate("padded")
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, collate_fn=collate, num_workers=workers,
                        drop_last=len(train_set) > batch_size, generator=torch.Generator().manual_seed(seed))
    val_loader = None if val_set is None else DataLoader(val_set, batch_size=batch_size, collate_fn=collate,
                                                         num_workers=workers)
    start = time.perf_counter()
    trainer.fit(loader, val_loader, resume=out / "last.pt" if resume else False)
    seconds = time.perf_counter() - start
    metrics = _test(trainer, test_set, names, ranges, config, out, batch_size, workers)
    metrics.update({"train_seconds": round(seconds, 1), "epochs": trainer.epoch,
                    "train_samples_per_second": round(len(train_set) * max(trainer.epoch, 1) / max(seconds, 1e-9), 1)
                    if not resume else None})
    with atomic_write(out / "metrics.json", "w") as f:
        json.dump(metrics, f, indent=1)
    return metrics


def _test(trainer: Trainer, test_set, names, ranges, config, out: Path, batch_size: int, workers: int):
    loader = DataLoader(test_set, batch_size=batch_size, collate_fn=GeometryCollate("padded"), num_workers=workers)
    result = trainer.evaluate(loader)
    metrics: Dict[str, object] = {"model": config["model"], "data": config["data"], "test_items": len(test_set)}
    if config["model"] in SEGMENTERS:
        metrics["test_miou"] = round(float(result["miou"]), 4)
        return metrics
    predicted, truth = [], []
    model = trainer.model.eval()
    with torch.no_grad():
        for batch in loader:
            logits = _logits_and_penalty(_classifier_input(model, batch, trainer.device))[0]
            predicted.append(logits.argmax(-1).cpu())
            truth.append(batch["label"])
    predicted, truth = torch.cat(predicted), torch.cat(truth)
    matrix = confusion_matrix(predicted, truth, len(names))
    present = [i for i in range(len(names)) if int(matrix[i].sum()) or int(matrix[:, i].sum())]
    sub = matrix[present][:, present]
    save_confusion_png(sub, [names[i] for i in present], out / "confusion.png",
                       title=f"{config['model']} on {config['data']}: accuracy {float((predicted == truth).float().mean()):.3f}")
    per_class = sub.diag().float() / sub.sum(1).clamp_min(1).float()
    metrics.update({"test_accuracy": round(float((predicted == truth).float().mean()), 4),
                    "test_class_accuracy": round(float(per_class.mean()), 4),
                    "confusion_png": str(out / "confusion.png")})
    return metrics


def evaluate(checkpoint: PathLike, progress: bool = True) -> Dict[str, object]:
    """Rebuild a run from ``checkpoint`` (``last.pt`` / ``best.pt`` in a run folder) and report test metrics."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint} not found")
    config_path = checkpoint.parent / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: {checkpoint} is not in a `geo4g train` run folder")
    config = json.loads(config_path.read_text())
    _, _, test_set, names, ranges = _datasets({**config, "progress": progress})
    net = _build_from_config(config, names, ranges)
    trainer = _trainer(net, config, checkpoint.parent, ranges, progress)
    state = torch.load(checkpoint, map_location=trainer.device, weights_only=False)
    trainer.model.load_state_dict(state["model"])
    metrics = _test(trainer, test_set, names, ranges, config, checkpoint.parent, config["batch_size"], 0)
    metrics["checkpoint"] = str(checkpoint)
    return metrics
