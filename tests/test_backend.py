"""The backend module: choosing the default, moving data at the edges, and the
errors that keep arrays of two libraries or two devices apart."""

from __future__ import annotations

import os
import subprocess
import sys
import types

import array_api_compat
import numpy as np
import pytest

import cnnbook
import cnnbook.backend as B
import cnnbook.functional as Fn


def strict(a, device="device1"):
    """Host data -> an array_api_strict array on ``device``."""
    import array_api_strict as xps

    return B.asarray(np.asarray(a), xps, xps.Device(device))


# ----------------------------------------------------------------------------
# choosing the default: use() and CNNBOOK_BACKEND
# ----------------------------------------------------------------------------
def test_use_sets_the_default(backend):
    assert cnnbook.use is B.use and cnnbook.to_numpy is B.to_numpy
    assert B.current() == backend.name
    a = B.asarray([1.0, 2.0])  # created where the default says
    assert array_api_compat.array_namespace(a).__name__ == backend.xp.__name__
    if backend.device is not None:
        assert B.device_of(a) == backend.device
    np.testing.assert_array_equal(B.to_numpy(a), [1.0, 2.0])


def test_use_unknown_backend():
    before = B.current()
    with pytest.raises(ValueError, match=r"^cnnbook\.use") as err:
        cnnbook.use("torch")
    msg = str(err.value)
    assert "'torch'" in msg and all(name in msg for name in B.BACKENDS)
    assert B.current() == before


def run_python(code: str, env_value: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("CNNBOOK_BACKEND", None)
    if env_value is not None:
        env["CNNBOOK_BACKEND"] = env_value
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


REPORT = """
import numpy as np
import cnnbook
from cnnbook import backend as B
a = B.asarray(np.ones(2))
print(B.current(), type(a).__module__.split(".")[0], B.device_of(a))
"""


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, "numpy numpy cpu"),
        ("numpy", "numpy numpy cpu"),
        ("strict", "strict array_api_strict array_api_strict.Device('device1')"),
    ],
    ids=["unset", "numpy", "strict"],
)
def test_environment_variable_at_import(value, expected):
    result = run_python(REPORT, value)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_environment_variable_unknown():
    """Importing works (so the CLI can report it); the first use raises."""
    assert run_python("import cnnbook", "bogus").returncode == 0
    result = run_python("import cnnbook, numpy; cnnbook.nn.Linear(2, 2)", "bogus")
    assert result.returncode != 0
    assert "CNNBOOK_BACKEND" in result.stderr and "bogus" in result.stderr


def test_environment_variable_cupy_without_cupy():
    """Importing cnnbook never needs a GPU; creating an array on a missing
    backend explains how to install it."""
    if _cupy_usable():
        pytest.skip("CuPy and a CUDA device are present")
    code = "import cnnbook, cnnbook.backend as B; print(B.current()); B.asarray([1.0])"
    result = run_python(code, "cupy")
    assert result.stdout.strip() == "cupy"
    assert result.returncode != 0
    # CuPy missing: how to install it; CuPy without a device: how to check the driver
    assert "cupy" in result.stderr.lower()
    assert "pip install" in result.stderr or "nvidia-smi" in result.stderr


def _cupy_usable() -> bool:
    try:
        B.default_namespace("cupy")
    except RuntimeError:
        return False
    return True


# ----------------------------------------------------------------------------
# use("cupy") where CuPy or a CUDA device is missing
# ----------------------------------------------------------------------------
def test_use_cupy_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError
    before = B.current()
    with pytest.raises(RuntimeError) as err:
        cnnbook.use("cupy")
    msg = str(err.value)
    assert "not installed" in msg and "pip install" in msg and "cupy" in msg
    assert B.current() == before


def fake_cupy(get_device_count):
    runtime = types.SimpleNamespace(getDeviceCount=get_device_count)
    return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime))


def test_use_cupy_without_cuda_device(monkeypatch):
    def broken():
        raise OSError("libcuda.so.1: cannot open shared object file")

    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(broken))
    with pytest.raises(RuntimeError) as err:
        cnnbook.use("cupy")
    msg = str(err.value)
    assert "CUDA" in msg and "libcuda" in msg and "nvidia-smi" in msg

    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(lambda: 0))
    with pytest.raises(RuntimeError, match="no CUDA device"):
        cnnbook.use("cupy")


# ----------------------------------------------------------------------------
# moving data at the edges
# ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "host",
    [
        np.arange(6.0).reshape(2, 3),
        np.arange(4, dtype=np.float32),
        np.array([1, -2], dtype=np.int64),
        np.array([True, False]),
        np.array(2.5),
    ],
    ids=["float64", "float32", "int64", "bool", "0d"],
)
def test_to_numpy_round_trip(backend, host):
    a = backend.asarray(host)
    if backend.name != "numpy":
        assert not isinstance(a, np.ndarray)
    back = cnnbook.to_numpy(a)
    assert isinstance(back, np.ndarray)
    assert back.dtype == host.dtype and back.shape == host.shape
    np.testing.assert_array_equal(back, host)


def test_to_numpy_of_numpy_is_free():
    a = np.ones(3)
    assert cnnbook.to_numpy(a) is a


def test_asarray_dtype_and_copy(backend):
    a = B.asarray([[1, 2], [3, 4]], backend.xp, backend.device, dtype=np.float32)
    assert B.numpy_dtype(a.dtype) == np.float32
    b = B.asarray(np.ones(2), backend.xp, backend.device, dtype=backend.xp.float64)
    assert B.numpy_dtype(b.dtype) == np.float64
    host = np.zeros(3)
    c = B.asarray(host, backend.xp, backend.device, copy=True)
    host[0] = 7.0
    assert B.to_numpy(c)[0] == 0.0


def test_asarray_moves_between_backends(backend):
    a = backend.asarray(np.arange(3.0))
    import array_api_strict as xps

    on_numpy = B.asarray(a, np)
    assert isinstance(on_numpy, np.ndarray)
    on_strict = B.asarray(a, xps, xps.Device("device1"))
    assert B.device_of(on_strict) == xps.Device("device1")
    np.testing.assert_array_equal(B.to_numpy(on_strict), [0.0, 1.0, 2.0])


def test_uniform_same_numbers_on_every_backend(backend):
    like = backend.asarray(np.zeros(1, dtype=np.float32))
    u = B.uniform(np.random.default_rng(5), (3, 4), like)
    ref = B.uniform(np.random.default_rng(5), (3, 4), np.zeros(1, np.float32))
    assert array_api_compat.array_namespace(u).__name__ == backend.xp.__name__
    assert B.device_of(u) == B.device_of(like)
    host = B.to_numpy(u)
    assert host.dtype == np.float32 and host.shape == (3, 4)
    assert ((host >= 0) & (host < 1)).all()
    np.testing.assert_array_equal(host, ref)


def test_is_numpy(backend):
    assert B.is_numpy(backend.asarray([1.0])) == (backend.name == "numpy")


# ----------------------------------------------------------------------------
# two libraries or two devices in one operation
# ----------------------------------------------------------------------------
def test_namespace_skips_none_and_rejects_non_arrays(backend):
    xp = B.namespace("demo", x=backend.asarray([1.0]), b=None)
    assert xp.__name__ == backend.xp.__name__
    with pytest.raises(TypeError, match=r"^demo: w must be an array.*list"):
        B.namespace("demo", x=backend.asarray([1.0]), w=[1.0])


def test_mixing_libraries_names_both(backend):
    if backend.name == "numpy":
        pytest.skip("needs a second array library")
    library = {"strict": "array_api_strict", "cupy": "CuPy"}[backend.name]
    x = backend.asarray(np.ones((1, 2, 5, 5)))
    w = np.ones((3, 2, 3, 3))
    with pytest.raises(TypeError) as err:
        Fn.conv2d_forward(x, w)
    msg = str(err.value)
    assert msg.startswith("conv2d_forward:")
    assert "NumPy" in msg and library in msg
    assert " x " in msg and " w " in msg

    with pytest.raises(TypeError) as err:
        Fn.linear_forward(np.ones((2, 3)), backend.asarray(np.ones((4, 3))))
    msg = str(err.value)
    assert msg.startswith("linear_forward:") and "NumPy" in msg and library in msg


def test_mixing_libraries_in_backward():
    """A NumPy dy for a cache made on the strict device is caught too."""
    _, cache = Fn.relu_forward(strict(np.ones((2, 3))))
    with pytest.raises(TypeError) as err:
        Fn.relu_backward(np.ones((2, 3)), cache)
    msg = str(err.value)
    assert msg.startswith("relu_backward:") and "NumPy" in msg
    assert "array_api_strict" in msg and "dy" in msg


def test_mixing_devices_names_both():
    x = strict(np.ones((1, 2, 5, 5)), "device1")
    w = strict(np.ones((3, 2, 3, 3)), "CPU_DEVICE")
    with pytest.raises(ValueError) as err:
        Fn.conv2d_forward(x, w)
    msg = str(err.value)
    assert msg.startswith("conv2d_forward:")
    assert "device1" in msg and "CPU_DEVICE" in msg
    assert " x " in msg and " w " in msg

    gamma_cpu = strict(np.ones(2), "CPU_DEVICE")
    ones = strict(np.ones(2))
    with pytest.raises(ValueError) as err:
        Fn.batch_norm_forward(
            strict(np.ones((4, 2))), gamma_cpu, ones, strict(np.zeros(2)), ones
        )
    msg = str(err.value)
    assert msg.startswith("batch_norm_forward:") and "gamma" in msg
    assert "device1" in msg and "CPU_DEVICE" in msg


def test_multiply_into(backend):
    """out = a·b or out += a·b, in place, with or without a scratch array."""
    rng = np.random.default_rng(2)
    a, b, start = (rng.standard_normal(s) for s in ((3, 5), (3, 1), (3, 5)))
    for add, scratch in ((False, None), (True, None), (True, np.empty((3, 5)))):
        out = backend.asarray(start.copy())
        spare = None if scratch is None else backend.asarray(scratch)
        B.multiply_into(backend.asarray(a), backend.asarray(b), out, add, spare)
        want = start + a * b if add else a * b
        np.testing.assert_allclose(B.to_numpy(out), want, rtol=1e-15)
