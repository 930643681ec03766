"""Shared basic neural-network pieces: MLPs, conv and residual blocks, weight init, and a Trainer."""
from .distributed import (
    all_gather_object,
    all_reduce_mean,
    all_reduce_sum,
    cleanup,
    default_device,
    distributed_sampler,
    get_rank,
    get_world_size,
    init_from_env,
    is_distributed,
    shard_loader,
    wrap_ddp,
)
from .init import INIT_SCHEMES, init_weights
from .layers import ACTIVATIONS, MLP, NORMS, ConvBlock, ResidualBlock, SharedMLP, activation_layer, norm_layer
from .trainer import Trainer, default_forward, seed_everything

__all__ = [
    "ACTIVATIONS",
    "INIT_SCHEMES",
    "MLP",
    "NORMS",
    "ConvBlock",
    "ResidualBlock",
    "SharedMLP",
    "Trainer",
    "activation_layer",
    "all_gather_object",
    "all_reduce_mean",
    "all_reduce_sum",
    "cleanup",
    "default_device",
    "default_forward",
    "distributed_sampler",
    "get_rank",
    "get_world_size",
    "init_from_env",
    "init_weights",
    "is_distributed",
    "norm_layer",
    "seed_everything",
    "shard_loader",
    "wrap_ddp",
]
