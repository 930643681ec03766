"""Train a point-cloud classifier with the Trainer, on one process or many under torchrun.

    python examples/nn/train_ddp.py --epochs 10
    torchrun --standalone --nproc_per_node 2 examples/nn/train_ddp.py --epochs 10

It trains on the embedded procedural dataset (12 categories, --per-class shapes
each, cached under --data). Under torchrun the Trainer joins the process group
(gloo on CPU, nccl on GPU), wraps the model in DistributedDataParallel and
shards the training loader; every process reads the same seeded dataset. Checkpoints go to
--checkpoints (rank 0 writes them); run the same command again with --resume
to continue an interrupted run exactly.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from geo4g.data import GeometryCollate, ProceduralShapes, RandomRotation
from geo4g.nn import MLP, SharedMLP, Trainer, cleanup, get_rank, init_from_env


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


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=64)
    parser.add_argument("--points", type=int, default=256)
    parser.add_argument("--checkpoints", type=Path, default=Path("checkpoints/train_ddp"))
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=None, help="procedural dataset cache (default: the user cache)")
    args = parser.parse_args(argv)

    init_from_env()
    common = dict(root=args.data, shapes_per_category=args.per_class, seed=args.seed, representation="points",
                  num_points=args.points, progress=get_rank() == 0)
    train_set = ProceduralShapes(split="train", transform=RandomRotation(axis="y"), **common)
    test_set = ProceduralShapes(split="test", **common)

    torch.manual_seed(args.seed)
    model = PointMaxClassifier(train_set.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    trainer = Trainer(
        model, optimizer, nn.functional.cross_entropy,
        forward_fn=lambda net, batch: (net(batch["points"]), batch["label"]),
        scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.epochs),
        metrics={"accuracy": lambda logits, y: (logits.argmax(-1) == y).float().mean()},
        max_epochs=args.epochs, checkpoint_dir=args.checkpoints, seed=args.seed,
        progress=get_rank() == 0,
    )
    collate = GeometryCollate("padded")
    loader = DataLoader(train_set, batch_size=16, shuffle=True, collate_fn=collate,
                        generator=torch.Generator().manual_seed(args.seed))
    trainer.fit(loader, resume=args.resume)
    result = trainer.evaluate(DataLoader(test_set, batch_size=64, collate_fn=collate))
    if get_rank() == 0:
        print(f"test loss {result['loss']:.4f} accuracy {result['accuracy']:.3f} after {trainer.epoch} epochs")
    cleanup()
    return result


if __name__ == "__main__":
    main()
