"""Datasets, transforms, ragged collate and the on-disk cache.

- ``ProceduralShapes``: the embedded ShapeNet-like dataset (no download).
- ``ModelNet``, ``ShapeNetCore``, ``ShapeNetPart``: real datasets read from a local folder.
- transforms on item dicts (``Compose``, ``SamplePoints``, ``RandomRotation``, ...).
- ``collate_geometry`` / ``GeometryCollate``: ragged batches as structures, padded tensors or PyG.
- ``shards``: the memory-mapped shard format used by the caches.
"""
from .base import REPRESENTATIONS, GeometryDataset, item_generator, mesh_item_to_points, resample_points
from .collate import OUTPUTS, GeometryCollate, collate_geometry
from .modelnet import MODELNET10_CLASSES, MODELNET40_CLASSES, ModelNet
from .procedural import SPLITS, ProceduralShapes, default_cache_root, generate_shape, program_fingerprint, split_of
from .shapenet import (SHAPENETCORE_SYNSETS, SHAPENETPART_NUM_PARTS, SHAPENETPART_PART_LABELS,
                       SHAPENETPART_SYNSETS, ShapeNetCore, ShapeNetPart, hash_split)
from .shards import ShardReader, shard_complete, write_shard
from .transforms import (Compose, Jitter, NormalizeUnitCube, NormalizeUnitSphere, RandomPointDropout, RandomRotation,
                         RandomScale, RandomTranslate, SamplePoints, Voxelize, check_item, random_rotations)

__all__ = [
    "GeometryDataset", "REPRESENTATIONS", "item_generator", "mesh_item_to_points", "resample_points",
    "ProceduralShapes", "SPLITS", "default_cache_root", "generate_shape", "program_fingerprint", "split_of",
    "ModelNet", "MODELNET10_CLASSES", "MODELNET40_CLASSES",
    "ShapeNetCore", "ShapeNetPart", "SHAPENETCORE_SYNSETS", "SHAPENETPART_SYNSETS", "SHAPENETPART_PART_LABELS",
    "SHAPENETPART_NUM_PARTS", "hash_split",
    "collate_geometry", "GeometryCollate", "OUTPUTS",
    "Compose", "Jitter", "NormalizeUnitCube", "NormalizeUnitSphere", "RandomPointDropout", "RandomRotation",
    "RandomScale", "RandomTranslate", "SamplePoints", "Voxelize", "check_item", "random_rotations",
    "ShardReader", "shard_complete", "write_shard",
]
