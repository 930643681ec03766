"""Ragged batches of geometry and the input checks shared by every op."""
from .checks import check_faces, check_finite, check_lengths, check_tensor, check_tensor_list
from .meshes import Meshes
from .pointclouds import Pointclouds
from .utils import (
    lengths_to_batch_idx,
    lengths_to_first_idx,
    lengths_to_mask,
    list_to_packed,
    list_to_padded,
    packed_to_list,
    packed_to_padded,
    padded_to_list,
    padded_to_packed,
)

__all__ = [
    "Meshes",
    "Pointclouds",
    "check_faces",
    "check_finite",
    "check_lengths",
    "check_tensor",
    "check_tensor_list",
    "lengths_to_batch_idx",
    "lengths_to_first_idx",
    "lengths_to_mask",
    "list_to_packed",
    "list_to_padded",
    "packed_to_list",
    "packed_to_padded",
    "padded_to_list",
    "padded_to_packed",
]
