"""geo4g: deep learning on 3D geometry with PyTorch, organised by representation."""
import re
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
version = re.search(r'__version__ = "([^"]+)"', (here / "geo4g" / "__init__.py").read_text()).group(1)

extras = {
    "open3d": ["open3d-cpu>=0.18"],
    "pyg": ["torch-geometric>=2.5"],
    "triton": ["triton>=3.0"],
    # compiled CPU auction behind earth_movers_distance(method="approx"/"auto")
    "numba": ["numba>=0.60"],
    "dev": ["pytest>=8", "pytest-xdist>=3.5", "hypothesis>=6.100",
            # references the voxel and mesh tests compare against (marching cubes, Laplacians)
            "scikit-image>=0.22", "libigl>=2.5", "robust-laplacian>=0.2"],
    # peers the benchmarks compare against (PyTorch3D has no PyPI wheel for most platforms)
    "bench": ["POT>=0.9", "geomloss>=0.3", "rtree>=1.0"],
}
extras["all"] = sorted({req for name in ("open3d", "pyg", "triton", "numba") for req in extras[name]})

setup(
    name="geo4g",
    version=version,
    description="Deep learning on 3D geometry: point clouds, meshes, voxels, multiview, parametric shapes",
    long_description=(here / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["geo4g", "geo4g.*"]),
    # torch is left unpinned here: `make` installs torch==2.13.0 first, so pip
    # keeps that build instead of resolving a multi-GB CUDA wheel on its own.
    install_requires=["torch>=2.2", "numpy>=1.24", "scipy>=1.10", "trimesh>=4.0", "tqdm>=4.60", "matplotlib>=3.7"],
    extras_require=extras,
    entry_points={"console_scripts": ["geo4g=geo4g.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
