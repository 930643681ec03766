"""Cross-representation losses and metrics: Chamfer, EMD, F-score, Hausdorff, normal consistency, IoU.

``chamfer_distance`` keeps PyTorch3D's signature and semantics; every op here is
batched, accepts ragged lengths (or ``Pointclouds``), and runs on CPU and GPU.
"""
from .chamfer import chamfer_distance
from .emd import EMDResult, earth_movers_distance
from .metrics import FScore, f_score, hausdorff_distance, mesh_to_mesh_chamfer, normal_consistency, voxel_iou

__all__ = [
    "EMDResult",
    "FScore",
    "chamfer_distance",
    "earth_movers_distance",
    "f_score",
    "hausdorff_distance",
    "mesh_to_mesh_chamfer",
    "normal_consistency",
    "voxel_iou",
]
