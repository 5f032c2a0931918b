"""Array backends: the one module that knows which array libraries exist.

Every operation in cnnbook takes its array namespace ``xp`` from its inputs
(:func:`namespace`), so the same code runs on NumPy (CPU), CuPy (GPU) and the
strict stand-in device used by the tests. Code that *creates* arrays
(parameters, data batches) asks this module for the configured default
(:func:`default_namespace`, :func:`default_device`), set by :func:`use` or the
environment variable ``CNNBOOK_BACKEND``.

Backends:

``"numpy"``
    NumPy on the CPU (the default).
``"cupy"``
    CuPy on the current CUDA device.
``"strict"``
    ``array_api_strict`` on its non-default device ``"device1"``: it refuses
    silent conversion to NumPy and mixing devices, the mistakes that break
    CuPy code, so a CPU-only machine can prove the GPU path's discipline.

>>> import numpy as np
>>> xp = namespace("demo", x=np.zeros(3))
>>> xp.__name__
'array_api_compat.numpy'
"""

from __future__ import annotations

import os
import threading
from typing import Any

import array_api_compat
import numpy as np

__all__ = [
    "BACKENDS",
    "asarray",
    "backend_of",
    "current",
    "default_device",
    "default_namespace",
    "device_of",
    "is_numpy",
    "mask_multiply",
    "multiply_into",
    "namespace",
    "numpy_dtype",
    "split_by_mask",
    "to_numpy",
    "uniform",
    "use",
    "workspace",
]

BACKENDS = ("numpy", "cupy", "strict")
_STRICT_DEVICE_NAME = "device1"


def _from_environment() -> str:
    name = os.environ.get("CNNBOOK_BACKEND", "numpy").strip().lower() or "numpy"
    if name not in BACKENDS:
        raise ValueError(
            f"CNNBOOK_BACKEND={name!r} is not a backend; choose one of {BACKENDS}"
        )
    return name  # loaded lazily: importing cnnbook never needs a GPU


try:
    _current = _from_environment()
    _ENV_ERROR: str | None = None
except ValueError as _err:  # reported when a default is first needed, so a
    _current, _ENV_ERROR = "numpy", str(_err)  # CLI can say it without a traceback


def _checked_current() -> str:
    if _ENV_ERROR is not None:
        raise ValueError(_ENV_ERROR)
    return _current


_NUMPY_NAMESPACE = array_api_compat.array_namespace(np.empty(0))


# ----------------------------------------------------------------------------
# choosing the default
# ----------------------------------------------------------------------------
def use(backend: str) -> None:
    """Make ``backend`` ("numpy", "cupy" or "strict") the default for new arrays.

    Existing arrays stay where they are; move a model with ``model.to(backend)``.
    """
    global _current, _ENV_ERROR
    if backend not in BACKENDS:
        raise ValueError(
            f"cnnbook.use: unknown backend {backend!r}; choose one of {BACKENDS}"
        )
    _load(backend)  # fail now, with a helpful message, not at first use
    _current, _ENV_ERROR = backend, None


def current() -> str:
    """The name of the default backend."""
    return _checked_current()


def _load(backend: str) -> Any:
    """Import a backend's library; explain what is missing if that fails."""
    if backend == "numpy":
        return np
    if backend == "strict":
        try:
            import array_api_strict
        except ImportError as err:
            raise RuntimeError(
                "cnnbook.use('strict') needs array_api_strict: "
                "pip install 'cnnbook[strict]'"
            ) from err
        return array_api_strict
    try:
        import cupy
    except ImportError as err:
        raise RuntimeError(
            "cnnbook.use('cupy'): CuPy is not installed. Install the wheel that "
            "matches your CUDA toolkit, e.g. pip install 'cnnbook[gpu]' "
            "(cupy-cuda12x) or pip install cupy-cuda13x"
        ) from err
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDA driver missing or broken
        raise RuntimeError(
            f"cnnbook.use('cupy'): CuPy is installed but no CUDA device is usable "
            f"({err}). Check the NVIDIA driver with nvidia-smi."
        ) from err
    if count == 0:
        raise RuntimeError("cnnbook.use('cupy'): CuPy found no CUDA device")
    return cupy


def default_namespace(backend: str | None = None) -> Any:
    """The array-API namespace new arrays are created in."""
    lib = _load(backend or _checked_current())
    return array_api_compat.array_namespace(lib.asarray(0.0))


def default_device(backend: str | None = None) -> Any:
    """The device new arrays are created on (``None`` means the library's own)."""
    backend = backend or _checked_current()
    if backend == "strict":
        return _load("strict").Device(_STRICT_DEVICE_NAME)
    return None


# ----------------------------------------------------------------------------
# taking the namespace from the inputs
# ----------------------------------------------------------------------------
def _article(word: str) -> str:
    """ "an" before a vowel, else "a" (``an array_api_strict array``)."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def namespace(op: str, **arrays: Any) -> Any:
    """Return the array namespace shared by ``arrays`` (``None`` values skipped).

    ``op`` names the calling operation for error messages. Arrays from two
    libraries, or on two devices, raise a ``TypeError``/``ValueError`` that
    names both arguments.
    """
    given = {name: a for name, a in arrays.items() if a is not None}
    if all(type(a) is np.ndarray for a in given.values()):
        return _NUMPY_NAMESPACE  # the common case, without the generic lookup
    for name, a in given.items():
        if not array_api_compat.is_array_api_obj(a):
            raise TypeError(
                f"{op}: {name} must be an array (NumPy, CuPy or array-API), "
                f"got {type(a).__name__}"
            )
    names = list(given)
    first = names[0]
    lib0 = _library_name(given[first])
    for name in names[1:]:
        lib = _library_name(given[name])
        if lib != lib0:
            raise TypeError(
                f"{op}: {first} is {_article(lib0)} {lib0} array but {name} is "
                f"{_article(lib)} {lib} array; "
                f"move both to one backend (cnnbook.to_numpy, model.to(...))"
            )
    dev0 = array_api_compat.device(given[first])
    for name in names[1:]:
        dev = array_api_compat.device(given[name])
        if dev != dev0:
            raise ValueError(
                f"{op}: {first} is on device {dev0} but {name} is on device {dev}; "
                f"move both to one device"
            )
    return array_api_compat.array_namespace(*given.values())


def backend_of(a: Any) -> str:
    """The name of the backend ("numpy", "cupy" or "strict") array ``a`` is on.

    >>> backend_of(np.zeros(2))
    'numpy'
    """
    lib = _library_name(a)
    names = {"NumPy": "numpy", "CuPy": "cupy", "array_api_strict": "strict"}
    if lib not in names:
        raise TypeError(f"backend_of: {type(a).__name__} is not a cnnbook array")
    return names[lib]


def device_of(a: Any) -> Any:
    """The device array ``a`` lives on."""
    return array_api_compat.device(a)


def is_numpy(a: Any) -> bool:
    """True for NumPy arrays: the gate for NumPy-only fast paths."""
    return isinstance(a, np.ndarray)


def _library_name(a: Any) -> str:
    if isinstance(a, np.ndarray):
        return "NumPy"
    if array_api_compat.is_cupy_array(a):
        return "CuPy"
    if type(a).__module__.startswith("array_api_strict"):
        return "array_api_strict"
    return type(a).__module__.split(".")[0]


# ----------------------------------------------------------------------------
# moving data at the edges
# ----------------------------------------------------------------------------
def to_numpy(a: Any) -> np.ndarray:
    """Copy an array from any backend to a NumPy array (for plots, saving, printing).

    >>> to_numpy(np.arange(3)).tolist()
    [0, 1, 2]
    """
    if isinstance(a, np.ndarray):
        return a
    if array_api_compat.is_cupy_array(a):
        return a.get()
    if type(a).__module__.startswith("array_api_strict"):
        import array_api_strict

        return np.asarray(a.to_device(array_api_strict.Device("CPU_DEVICE")))
    return np.asarray(a)


def asarray(
    a: Any, xp: Any = None, device: Any = None, dtype: Any = None, copy: bool = False
) -> Any:
    """Place host data (NumPy or anything array-like) in namespace ``xp`` on ``device``.

    With ``xp`` None the default backend is used. ``dtype`` is a NumPy dtype
    or a dtype of ``xp``.
    """
    if xp is None:
        xp, device = default_namespace(), default_device()
    if array_api_compat.is_array_api_obj(a) and not isinstance(a, np.ndarray):
        a = to_numpy(a)
    host = np.array(a, copy=True) if copy else np.asarray(a)
    if dtype is not None:
        target = numpy_dtype(dtype)
        if host.dtype.kind == "c" and target.kind != "c":
            raise TypeError(
                f"asarray: complex data ({host.dtype}) cannot become {target}: the "
                "imaginary part would be lost; pass real data"
            )
        host = host.astype(target, copy=False)
    if _is_namespace_of(xp, "numpy"):
        return host
    if _is_namespace_of(xp, "cupy"):
        return xp.asarray(host)
    if device is None:
        return xp.asarray(host)
    if _is_namespace_of(xp, "array_api_strict"):
        # strict refuses to mix devices: create on the CPU, then move.
        return xp.asarray(host).to_device(device)
    return xp.asarray(host, device=device)


def _is_namespace_of(xp: Any, lib: str) -> bool:
    return lib in getattr(xp, "__name__", "")


def numpy_dtype(dtype: Any) -> np.dtype:
    """Map any backend's dtype (float32 of numpy, cupy, strict) to NumPy's."""
    try:
        return np.dtype(dtype)
    except TypeError:
        return np.dtype(str(dtype).split(".")[-1].strip("'>"))


def uniform(rng: np.random.Generator, shape: tuple[int, ...], like: Any) -> Any:
    """Uniform [0, 1) samples of ``like``'s dtype, namespace and device.

    Drawn on the host from a seeded NumPy generator, so every backend sees the
    same numbers for the same seed (dropout masks, augmentation).
    """
    dtype = numpy_dtype(like.dtype)
    host = rng.random(shape, dtype=np.float64).astype(dtype)
    if isinstance(like, np.ndarray):
        return host
    xp = array_api_compat.array_namespace(like)
    return asarray(host, xp, device_of(like))


# ----------------------------------------------------------------------------
# NumPy-only fast paths (owner: performance). Each has its portable twin right
# beside it; tests/test_fast_paths.py checks both on every backend.
# ----------------------------------------------------------------------------
def mask_multiply(d: Any, mask: Any) -> Any:
    """``d · mask`` for a boolean ``mask``: ``d`` where True, 0 where False
    (for finite ``d``; an infinite or NaN ``d`` gives NaN where False).

    NumPy multiplies by a boolean array directly, converting on the fly, which
    is ~10× faster than ``where(mask, d, 0.0)``; the array API needs the mask
    cast to ``d``'s dtype first.
    """
    if isinstance(d, np.ndarray) and isinstance(mask, np.ndarray):
        return np.multiply(d, mask)
    xp = array_api_compat.array_namespace(d, mask)
    return d * xp.astype(mask, d.dtype)


def multiply_into(a: Any, b: Any, out: Any, add: bool = False, scratch: Any = None):
    """out = a · b, or with ``add`` out += a · b (broadcasting), in place.

    NumPy writes the product straight into ``out`` (to add: into ``scratch``,
    an array of ``out``'s shape, then adds it), so a kernel's inner loop
    makes no temporaries; the array API has no ``out=``, so other libraries
    compute ``a * b`` and assign or add it.
    """
    if isinstance(out, np.ndarray):
        if not add:
            np.multiply(a, b, out=out)
        elif scratch is None:
            out += a * b
        else:
            np.multiply(a, b, out=scratch)
            np.add(out, scratch, out=out)
    elif add:
        out += a * b
    else:
        out[...] = a * b


def split_by_mask(d: Any, mask: Any, out: Any, hit: Any, miss: Any) -> None:
    """Route ``d`` by a boolean ``mask`` into two parts of ``out``:
    ``out[hit] = d`` where ``mask`` (0 elsewhere) and ``out[miss] = d`` where
    not ``mask`` (0 elsewhere). ``hit`` and ``miss`` are indices (tuples of
    slices) selecting regions of ``d``'s shape. For finite ``d``.

    NumPy writes both products straight into those regions (``out=``), with
    no temporaries; the array API has no ``out=``, so the portable twin
    computes them and assigns with ``out[index] = ...``.
    """
    if isinstance(d, np.ndarray) and isinstance(out, np.ndarray):
        np.multiply(d, mask, out=out[hit])
        np.subtract(d, out[hit], out=out[miss])
        return
    routed = mask_multiply(d, mask)
    out[hit] = routed
    out[miss] = d - routed


# The fast kernels work a block of images at a time. On a CPU a block that
# fits in cache pays (the caller's budget: its columns are read back from
# cache). On a GPU every array operation is a kernel launch (9 to 13 µs each
# from Python, measured on an H200: benchmarks/results/gpu/), and a batch cut into
# cache-sized blocks multiplies the launches by the number of blocks: there
# the blocks are as large as memory comfortably allows.
DEVICE_BLOCK = 1 << 27  # elements: 512 MiB of float32


def block_elements(like: Any, cache_budget: int) -> int:
    """Elements of one block of a fast kernel's work on ``like``'s backend:
    ``cache_budget`` for NumPy, at least :data:`DEVICE_BLOCK` elsewhere."""
    if isinstance(like, np.ndarray):
        return cache_budget
    return max(cache_budget, DEVICE_BLOCK)


# A fast kernel's working arrays (a block of im2col columns, ~2 MB) cost
# more to page in fresh, as NumPy allocates them, than to fill: a 2 MB
# array is mapped anew on each call and the kernel zeroes its 512 pages
# (~1 ms here, as long as the product that reads them). So each thread keeps
# one buffer per purpose and dtype, and hands out views of it.
_WORKSPACE = threading.local()
_WORKSPACE_MAX_BYTES = 16 << 20  # larger requests are allocated each time


def workspace(name: str, shape: tuple[int, ...], like: Any) -> Any:
    """An uninitialised array of ``shape`` with ``like``'s dtype, namespace
    and device, for use within one call only: it must not outlive the call,
    and a second request for the same ``name`` (in this thread) returns the
    same memory.

    NumPy: a view of a buffer kept per thread, ``name`` and dtype (grown as
    needed, up to 16 MiB), saving the page faults of a fresh allocation.
    Other libraries allocate (CuPy has its own memory pool).
    """
    shape = tuple(int(n) for n in shape)
    if not isinstance(like, np.ndarray):
        xp = array_api_compat.array_namespace(like)
        return xp.empty(shape, dtype=like.dtype, device=device_of(like))
    size, dtype = int(np.prod(shape)), like.dtype
    if size * dtype.itemsize > _WORKSPACE_MAX_BYTES:
        return np.empty(shape, dtype)
    buffers = _WORKSPACE.__dict__.setdefault("buffers", {})
    buf = buffers.get((name, dtype))
    if buf is None or buf.size < size:
        buf = buffers[(name, dtype)] = np.empty(size, dtype)
    return buf[:size].reshape(shape)
