"""geo4g: deep learning on 3D geometry, organised by representation."""
__version__ = "0.1.0"
