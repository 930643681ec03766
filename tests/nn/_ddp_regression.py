"""Train a small MLP with geo4g's Trainer, in one process or under torchrun (used by test_distributed.py).

    python _ddp_regression.py OUT [CKPT_DIR]                                   # one process, batch 8
    python -m torch.distributed.run --nproc_per_node 2 _ddp_regression.py OUT  # DDP, batch 4 per rank

Under torchrun the Trainer shards the batch-4 loader with a DistributedSampler;
one process uses a one-replica DistributedSampler and batch 8. Both then see the
same permutation each epoch, rank r taking positions r, r+2, ... of it, so every
DDP step averages the gradients of exactly the samples of one single-process step.
"""
import sys

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from geo4g.nn import MLP, Trainer, all_gather_object, cleanup, distributed_sampler, get_world_size, init_from_env

SEED = 5


def dataset() -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 3, generator=g)
    y = torch.sin(x @ torch.tensor([[1.0], [-2.0], [0.5]])) + 0.05 * torch.randn(48, 1, generator=g)
    return TensorDataset(x, y)


def train(loader: DataLoader, checkpoint_dir=None, device=None):
    """Returns the trained Trainer and how many training samples this process saw."""
    torch.manual_seed(0)
    model = MLP([3, 16, 16, 1], activation="tanh")
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    seen = []

    def forward(net, batch):
        if net.training:
            seen.append(len(batch[0]))
        return net(batch[0]), batch[1]

    trainer = Trainer(
        model, opt, F.mse_loss, scheduler=sched, forward_fn=forward, max_epochs=4,
        checkpoint_dir=checkpoint_dir, device=device, progress=False, seed=SEED,
    )
    trainer.fit(loader, DataLoader(loader.dataset, batch_size=10))
    return trainer, sum(seen)


if __name__ == "__main__":
    ds = dataset()
    init_from_env()
    if get_world_size() > 1:
        loader = DataLoader(ds, batch_size=8 // get_world_size(), shuffle=True)
    else:
        loader = DataLoader(ds, batch_size=8, sampler=distributed_sampler(ds, shuffle=True, seed=SEED))
    trainer, seen = train(loader, sys.argv[2] if len(sys.argv) > 2 else None)
    seen_per_rank = all_gather_object(seen)
    if trainer.rank == 0:
        torch.save(
            {
                "state": trainer.model.state_dict(),
                "history": trainer.history,
                "world_size": get_world_size(),
                "ddp": type(trainer.net).__name__,
                "seen": seen_per_rank,
            },
            sys.argv[1],
        )
    cleanup()
