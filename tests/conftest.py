"""Shared test setup.

Every test that takes ``device`` runs on the CPU and, where one is present, on CUDA.
Tests run with one torch intra-op thread: pytest-xdist already gives each core a worker,
and the tests' small tensors run many times slower when their ops are split over
threads that compete for those cores.
"""
import pytest
import torch

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

torch.set_num_threads(1)


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)
