"""Train a point-cloud classifier with the Trainer, on one process or many under torchrun.

    python examples/nn/train_ddp.py --epochs 10
    torchrun --standalone --nproc_per_node 2 examples/nn/train_ddp.py --epochs 10

Under torchrun the Trainer joins the process group (gloo on CPU, nccl on GPU),
wraps the model in DistributedDataParallel and shards the training loader;
each process generates the same data from the seed. Checkpoints go to
--checkpoints (rank 0 writes them); run the same command again with --resume
to continue an interrupted run exactly.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from geo4g.demo import CLASSES, PointMaxClassifier, make_dataset
from geo4g.nn import Trainer, cleanup, get_rank, init_from_env


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=64)
    parser.add_argument("--points", type=int, default=256)
    parser.add_argument("--checkpoints", type=Path, default=Path("checkpoints/train_ddp"))
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    init_from_env()
    g = torch.Generator().manual_seed(args.seed)
    train_x, train_y = make_dataset(args.per_class, args.points, g)
    test_x, test_y = make_dataset(max(1, args.per_class // 4), args.points, g)

    torch.manual_seed(args.seed)
    model = PointMaxClassifier(len(CLASSES))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    trainer = Trainer(
        model, optimizer, nn.functional.cross_entropy,
        scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.epochs),
        metrics={"accuracy": lambda logits, y: (logits.argmax(-1) == y).float().mean()},
        max_epochs=args.epochs, checkpoint_dir=args.checkpoints, seed=args.seed,
        progress=get_rank() == 0,
    )
    loader = DataLoader(TensorDataset(train_x, train_y), batch_size=16, shuffle=True,
                        generator=torch.Generator().manual_seed(args.seed))
    trainer.fit(loader, resume=args.resume)
    result = trainer.evaluate(DataLoader(TensorDataset(test_x, test_y), batch_size=64))
    if get_rank() == 0:
        print(f"test loss {result['loss']:.4f} accuracy {result['accuracy']:.3f} after {trainer.epoch} epochs")
    cleanup()
    return result


if __name__ == "__main__":
    main()
