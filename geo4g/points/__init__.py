"""Point clouds: neighbour ops (kNN, ball query, farthest point sampling, graphs, interpolation)
and the point networks built on them (PointNet, PointNet++, DGCNN, Monte Carlo convolution,
point-set decoders and auto-encoders)."""
from .ball_query import ball_query
from .decoders import PointAutoEncoder, PointSetDecoder, PointSetEncoder
from .dgcnn import DGCNNClassifier, DynamicEdgeConv, EdgeConv
from .graph import knn_graph, radius_graph
from .interpolate import three_nn_interpolate
from .knn import KNN, knn_gather, knn_points
from .mcconv import MCConvClassifier, MonteCarloConv
from .pointnet import (PointNetClassifier, PointNetEncoder, PointNetEncoding, PointNetOutput, PointNetSegmenter, TNet,
                       feature_transform_regularizer)
from .pointnet2 import (FeaturePropagation, PointNet2Classifier, PointNet2Segmenter, SetAbstraction,
                        SetAbstractionMSG, SetAbstractionOutput)
from .sample_farthest_points import sample_farthest_points

__all__ = [
    "KNN", "knn_points", "knn_gather", "ball_query", "sample_farthest_points", "knn_graph", "radius_graph",
    "three_nn_interpolate",
    "TNet", "PointNetEncoder", "PointNetEncoding", "PointNetOutput", "PointNetClassifier", "PointNetSegmenter",
    "feature_transform_regularizer",
    "SetAbstraction", "SetAbstractionMSG", "SetAbstractionOutput", "FeaturePropagation", "PointNet2Classifier",
    "PointNet2Segmenter",
    "EdgeConv", "DynamicEdgeConv", "DGCNNClassifier",
    "MonteCarloConv", "MCConvClassifier",
    "PointSetDecoder", "PointSetEncoder", "PointAutoEncoder",
]
