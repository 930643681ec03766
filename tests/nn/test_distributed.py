import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, SequentialSampler, TensorDataset

from geo4g.nn import (
    MLP,
    all_gather_object,
    all_reduce_mean,
    all_reduce_sum,
    distributed_sampler,
    get_rank,
    get_world_size,
    init_from_env,
    is_distributed,
    shard_loader,
    wrap_ddp,
)

SCRIPT = Path(__file__).with_name("_ddp_regression.py")
REPO = Path(__file__).resolve().parents[2]


def _load_script():
    spec = importlib.util.spec_from_file_location("_ddp_regression", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _torchrun(tmp_path, nproc: int, cuda: bool) -> dict:
    """Run the training script under torchrun and return what rank 0 saved."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    if not cuda:
        env["CUDA_VISIBLE_DEVICES"] = ""  # gloo on the CPU even on a GPU machine
    out = tmp_path / "ddp.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    proc = subprocess.run([*cmd, str(SCRIPT), str(out), str(tmp_path / "ckpt")], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return torch.load(out, map_location="cpu", weights_only=True)


def _single(device: str):
    script = _load_script()
    ds = script.dataset()
    loader = DataLoader(ds, batch_size=8, sampler=distributed_sampler(ds, shuffle=True, seed=script.SEED))
    return script.train(loader, device=device)


def test_two_process_gloo_ddp_matches_single_process(tmp_path):
    ddp = _torchrun(tmp_path, nproc=2, cuda=False)
    single, seen = _single("cpu")

    assert ddp["world_size"] == 2 and ddp["ddp"] == "DistributedDataParallel"
    assert ddp["seen"] == [seen // 2, seen // 2] == [4 * 24, 4 * 24]
    assert ddp["history"][-1]["train_loss"] < 0.7 * ddp["history"][0]["train_loss"]
    for key in ("train_loss", "val_loss", "lr"):
        assert [h[key] for h in ddp["history"]] == pytest.approx([h[key] for h in single.history], rel=1e-5)
    torch.manual_seed(0)
    initial = MLP([3, 16, 16, 1], activation="tanh").state_dict()
    for key, value in single.model.state_dict().items():
        assert not torch.allclose(value, initial[key]), key
        torch.testing.assert_close(ddp["state"][key], value, rtol=1e-5, atol=1e-6)
    ckpt = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 4 and len(ckpt["rng"]) == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (nccl)")
def test_one_process_nccl_ddp_matches_single_process(tmp_path):
    ddp = _torchrun(tmp_path, nproc=1, cuda=True)
    single, _ = _single("cuda")
    assert ddp["world_size"] == 1 and ddp["ddp"] == "DistributedDataParallel"
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp["state"][key], value.cpu(), rtol=1e-4, atol=1e-5)


def test_helpers_are_single_process_noops_without_a_group():
    assert not is_distributed() and get_rank() == 0 and get_world_size() == 1
    assert not init_from_env()
    x = torch.arange(3.0)
    assert torch.equal(all_reduce_sum(x), x) and torch.equal(all_reduce_mean(x), x)
    assert all_gather_object({"a": 1}) == [{"a": 1}]
    model = torch.nn.Linear(2, 2)
    assert wrap_ddp(model, torch.device("cpu")) is model


def test_distributed_sampler_without_group_covers_dataset_once():
    ds = TensorDataset(torch.arange(10))
    sampler = distributed_sampler(ds, shuffle=True, seed=3)
    sampler.set_epoch(0)
    first = list(sampler)
    sampler.set_epoch(1)
    assert sorted(first) == list(range(10)) and list(sampler) != first


def test_shard_loader_keeps_settings_and_rejects_custom_samplers():
    ds = TensorDataset(torch.arange(10.0))
    collate = lambda b: torch.stack([x[0] for x in b])  # noqa: E731
    sharded = shard_loader(DataLoader(ds, batch_size=3, shuffle=True, drop_last=True, collate_fn=collate))
    assert isinstance(sharded.sampler, DistributedSampler) and sharded.sampler.shuffle
    assert sharded.batch_size == 3 and sharded.drop_last and sharded.collate_fn is collate
    assert not shard_loader(DataLoader(ds, batch_size=3)).sampler.shuffle
    batches = [[0, 1], [2, 3]]
    assert shard_loader(batches) is batches
    for custom in (
        DataLoader(ds, batch_sampler=BatchSampler(SequentialSampler(ds), 2, False)),
        DataLoader(ds, batch_size=2, sampler=[0, 1, 2]),
        DataLoader(ds, batch_size=2, sampler=torch.utils.data.RandomSampler(ds, replacement=True)),
    ):
        with pytest.raises(ValueError, match="Build it with sampler=geo4g.nn.distributed_sampler"):
            shard_loader(custom)


def test_nccl_with_more_local_ranks_than_gpus_raises_a_clear_error(monkeypatch):
    from geo4g.nn import init_from_env

    visible = torch.cuda.device_count()
    monkeypatch.setenv("RANK", str(visible))
    monkeypatch.setenv("WORLD_SIZE", str(visible + 1))
    monkeypatch.setenv("LOCAL_RANK", str(visible))
    with pytest.raises(ValueError, match=rf"LOCAL_RANK {visible} has no CUDA device of its own \({visible} visible\)"):
        init_from_env(backend="nccl")
