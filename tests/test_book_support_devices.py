"""The CPU and GPU chapter's companion: placement, failures, memory, GEMM
arithmetic, and reading the performance suite's result files."""

from __future__ import annotations

import copy
import json

import matplotlib
import numpy as np
import pytest
from cnnbook_book import devices as D

from cnnbook import backend as B
from cnnbook import functional as F
from cnnbook import models

matplotlib.use("Agg")


def test_where_names_namespace_device_dtype_shape(backend):
    a = backend.asarray(np.zeros((2, 3)), dtype=np.float32)
    text = D.where(a)
    assert text.endswith("float32, (2, 3)")
    assert backend.xp.__name__ in text
    assert str(backend.device if backend.device is not None else "") in text


def test_failure_returns_message_and_insists_on_failing(backend):
    x = backend.asarray(np.ones((1, 1, 4, 4)), dtype=np.float32)
    w = np.ones((1, 1, 3, 3), dtype=np.float32)
    if backend.name == "numpy":
        with pytest.raises(AssertionError, match="did not fail"):
            D.failure(F.conv2d_forward, x, w)
        return
    msg = D.failure(F.conv2d_forward, x, w)
    assert msg.startswith("TypeError: conv2d_forward: x is a")
    assert "w is a NumPy array" in msg


def test_timed_synchronizes_and_counts(backend):
    calls = []
    x = backend.asarray(np.ones(3))
    times = D.timed(lambda: calls.append(x * 2), like=x, repeat=3, warmup=2)
    assert len(times) == 3 and all(t >= 0 for t in times)
    assert len(calls) == 5
    D.synchronize(x)  # a no-op on CPU devices, a wait on CUDA


def test_synchronize_calls_the_device_method(monkeypatch):
    seen = []

    class Device:
        def synchronize(self):
            seen.append(True)

    monkeypatch.setattr(D.B, "device_of", lambda a: Device())
    D.synchronize(np.zeros(1))
    assert seen == [True]


def test_memory_budget_lenet(backend):
    model = models.lenet5(seed=0).to(backend.name)
    x = backend.asarray(np.zeros((8, 1, 28, 28)), dtype=np.float32)
    got = D.memory_budget(model, x, optimizer_slots=2)
    assert got["parameters"] == 4 * model.num_parameters() == got["gradients"]
    assert got["optimizer"] == 2 * got["parameters"]
    # leaf outputs: conv 6·28², relu, pool 6·14², conv 16·10², relu, pool 16·5²,
    # flatten 400, 120, 120, 84, 84, 10 floats per image
    per_image = 2 * 6 * 28 * 28 + 6 * 14 * 14 + 2 * 16 * 10 * 10 + 16 * 25
    per_image += 400 + 2 * 120 + 2 * 84 + 10
    assert got["activations"] == 4 * 8 * per_image
    assert not any(m._forward_hooks for _, m in model.named_modules())


@pytest.mark.parametrize(
    "xs, ws, s, p",
    [((2, 3, 9, 9), (4, 3, 3, 3), 1, 1), ((2, 2, 8, 8), (5, 2, 3, 3), 2, 1)],
)
def test_conv_gemm_matches_im2col(backend, rng, xs, ws, s, p):
    x = backend.asarray(rng.normal(size=xs), dtype=np.float32)
    w = backend.asarray(rng.normal(size=ws), dtype=np.float32)
    _, cache = F.conv2d_forward(x, w, None, s, p)
    g = D.conv_gemm(xs, ws, s, p)
    assert (g.K, g.P) == tuple(cache.cols.shape) and g.M == ws[0]
    G = cache.geometry
    assert g.flops == 2 * G.N * G.F * G.OH * G.OW * G.C * G.KH * G.KW
    assert g.bytes(4) == 4 * (g.M * g.K + g.K * g.P + g.M * g.P)
    assert g.intensity(8) == pytest.approx(g.intensity(4) / 2)


def test_conv_gemm_rejects_channel_mismatch():
    with pytest.raises(ValueError, match="3 channels but w expects 2"):
        D.conv_gemm((1, 3, 5, 5), (1, 2, 3, 3))


def test_attainable_is_the_roofline():
    assert D.attainable(1.0, 100.0, 10.0) == 10.0
    assert D.attainable(10.0, 100.0, 10.0) == 100.0
    assert D.attainable(1000.0, 100.0, 10.0) == 100.0


def _result():
    conv = {"cnnbook": {"median_ms": 3.0}, "torch": {"median_ms": 2.0}}
    return {
        "schema": 1,
        "created": "2026-01-02T03:04:05",
        "settings": {"threads": 1, "clock": "cpu"},
        "machine": {
            "cpu": "Test CPU",
            "logical_cpus": 2,
            "numpy": "2.0",
            "torch": "2.1",
            "blas": [
                {"internal_api": "openblas", "version": "0.3", "architecture": "X"}
            ],
        },
        "cases": [
            dict(conv, name="conv_a", label="conv A", threads=1, dtype="float32",
                 status="ok", ratio_median=1.5, target=2.0, met=True,
                 shapes="x(2, 3, 8, 8) w(4, 3, 3, 3) s1 p1"),
            {"name": "pool", "label": "pool", "threads": 1, "dtype": "float32",
             "status": "ok", "ratio_median": 0.5, "target": None,
             "cnnbook": {"median_ms": 1.0}, "torch": {"median_ms": 2.0},
             "shapes": "x(2, 3, 8, 8) k2 s2"},
            {"name": "resnet_step", "label": "skipped", "status": "skipped"},
        ],
        "memory": {"peak_mib": 100.0, "target_mib": 200.0, "met": True},
    }  # fmt: skip


def test_benchmark_rows_and_gflops():
    rows = D.benchmark_rows(_result())
    assert [r["name"] for r in rows] == ["conv_a", "pool"]
    flops = 3 * D.conv_gemm((2, 3, 8, 8), (4, 3, 3, 3), 1, 1).flops
    assert rows[0]["gflops_cnnbook"] == pytest.approx(flops / 3e6)
    assert "gflops_cnnbook" not in rows[1]


def test_benchmark_rows_of_grouped_convolutions():
    """benchmarks/run.py writes grouped cases as "... g<groups>" with w (F,
    C/groups, KH, KW): each of the 3 products is 2·F·(C/groups)·KH·KW·P."""
    r = _result()
    dw = dict(
        r["cases"][0], name="conv_dw", shapes="x(2, 4, 8, 8) w(4, 1, 3, 3) s1 p1 g4"
    )
    grouped = dict(dw, name="conv_g", shapes="x(2, 4, 8, 8) w(6, 2, 3, 3) s1 p1 g2")
    r["cases"] = [dw, grouped]
    rows = D.benchmark_rows(r)
    P = 2 * 8 * 8
    assert rows[0]["gflops_cnnbook"] == pytest.approx(3 * 2 * 4 * 1 * 9 * P / 3e6)
    assert rows[1]["gflops_cnnbook"] == pytest.approx(3 * 2 * 6 * 2 * 9 * P / 3e6)
    assert D.check_benchmarks(r) > 0


def test_check_benchmarks_passes_and_catches_each_inconsistency():
    assert D.check_benchmarks(_result()) == 8
    bad = copy.deepcopy(_result())
    bad["cases"][0]["ratio_median"] = 1.4
    with pytest.raises(ValueError, match="conv_a: ratio"):
        D.check_benchmarks(bad)
    bad = copy.deepcopy(_result())
    bad["cases"][0]["met"] = False
    with pytest.raises(ValueError, match="conv_a: met"):
        D.check_benchmarks(bad)
    bad = copy.deepcopy(_result())
    bad["memory"]["met"] = False
    with pytest.raises(ValueError, match="memory met"):
        D.check_benchmarks(bad)
    bad = copy.deepcopy(_result())
    bad["machine"]["blas"] = []
    with pytest.raises(ValueError, match="BLAS"):
        D.check_benchmarks(bad)


def test_find_and_load(tmp_path):
    assert D.find_benchmarks(tmp_path / "missing") == []
    (tmp_path / "b.json").write_text(json.dumps(_result()))
    (tmp_path / "latest.json").write_text(json.dumps(_result()))
    (tmp_path / "a.json").write_text("{}")
    found = D.find_benchmarks(tmp_path)
    assert [p.name for p in found] == ["latest.json", "a.json", "b.json"]
    assert D.load_benchmarks(found[0])["machine"]["cpu"] == "Test CPU"
    with pytest.raises(ValueError, match=r"not a benchmarks/run\.py result"):
        D.load_benchmarks(found[1])


def test_summary_table_and_plot():
    r = _result()
    line = D.machine_summary(r)
    assert "Test CPU" in line and "openblas 0.3 (X)" in line and "2026-01-02" in line
    table = D.benchmark_html(r)
    assert table.startswith("<table>") and table.count("<tr>") == 3
    row = '<td style="text-align:left">conv A</td><td style="text-align:right">1</td>'
    assert row in table and ">1.50</td>" in table and ">yes</td>" in table
    assert "100 MiB" in table
    assert "cnnbook ms CPU time" in table and "wall ms" not in table
    ax = D.plot_benchmarks(r)
    assert len(ax.patches) == 2 and ax.get_xscale() == "log"
    matplotlib.pyplot.close("all")


def test_table_shows_wall_time_for_multi_thread_rows():
    r = _result()
    two = copy.deepcopy(r["cases"][1])
    two.update(name="pool_2t", label="pool 2t", threads=2, ratio_median=0.5)
    two["by_clock"] = {
        "cpu": {"cnnbook": {"median_ms": 1.0}, "torch": {"median_ms": 2.0}},
        "wall": {"cnnbook": {"median_ms": 0.6}, "torch": {"median_ms": 1.1}},
    }
    r["cases"].append(two)
    rows = {row["name"]: row for row in D.benchmark_rows(r)}
    assert rows["pool_2t"]["cnnbook_wall_ms"] == 0.6
    assert rows["pool_2t"]["clock"] == "cpu"
    table = D.benchmark_html(r)
    assert "wall ms (cnnbook / PyTorch)" in table and ">0.60 / 1.10</td>" in table
    assert "adds up the time of all threads" in table


def test_committed_results_are_consistent():
    paths = D.find_benchmarks()
    if not paths:
        pytest.skip("no benchmarks/results/*.json yet")
    for path in paths:
        assert D.check_benchmarks(D.load_benchmarks(path)) > 0


def test_branching_sites(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("import numpy as np\nif isinstance(x, np.ndarray):\n")
    (pkg / "b.py").write_text("xp = namespace(x=x)\n")
    (pkg / "c.py").write_text("\n\nimport cupy\n")
    assert D.branching_sites(pkg) == {"pkg/a.py": [2], "pkg/c.py": [3]}
    # the package itself: only the backend module asks which library an
    # array belongs to (the CPU/GPU chapter asserts the same)
    assert list(D.branching_sites()) == ["cnnbook/backend.py"]


def test_html_table_escapes_and_aligns():
    got = D.html_table(["a", "b"], [["x<y", "1"]], align="lr")
    assert '<th style="text-align:left">a</th>' in got
    assert '<td style="text-align:left">x&lt;y</td>' in got
    assert '<td style="text-align:right">1</td>' in got


def test_count_host_traffic_counts_by_site_and_restores():
    from array_api_strict._array_object import Array

    xp = B.default_namespace("strict")
    a = B.asarray(np.ones(3), xp, B.default_device("strict"))
    before = Array.__float__

    def step():
        return float(xp.sum(a)), bool(xp.any(a > 0)), xp.asarray(a, copy=True)

    with D.count_host_traffic() as seen:
        step()
        step()
        xp.asarray(a)  # no copy asked for: not counted
    assert seen.to_host == {"test_book_support_devices.py, in step": 4}
    assert seen.device_copies == {"test_book_support_devices.py, in step": 2}
    assert Array.__float__ is before and xp.asarray.__name__ == "asarray"


# ----------------------------------------------------------------------------
# the GPU record (benchmarks/gpu.py)
# ----------------------------------------------------------------------------
def _gpu_record():
    return {
        "machine": {"gpu": "Test GPU"},
        "tests": {"tests": 3, "failures": 0, "errors": 0, "skipped": 0, "failed": []},
        "launch_us": 9.0,
        "steps": [
            {"model": "lenet5", "batch": 64, "ours_loss": 2.3, "ours_ms": 7.0,
             "torch_loss": 2.3, "torch_ms": 2.0},
            {"model": "lenet5", "batch": 256, "ours_loss": 2.2, "ours_ms": 9.0},
        ],
        "transfer": [{"what": "MNIST, 64 digits", "bytes": 200704,
                      "pageable_ms": 0.03, "pinned_ms": 0.02}],
    }  # fmt: skip


def test_gpu_record_checks_and_table(tmp_path):
    r = _gpu_record()
    assert D.check_gpu(r) == 10  # 1 GPU + 2 tests + 4 steps + 2 transfer + 1 launch
    assert D.gpu_steps(r) == {"lenet5": {64: {"cnnbook": 7.0, "torch": 2.0},
                                         256: {"cnnbook": 9.0}}}  # fmt: skip
    assert D.load_gpu("latest", tmp_path) is None
    (tmp_path / "latest.json").write_text(json.dumps(r))
    assert D.load_gpu("latest", tmp_path) == r
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ValueError, match=r"not a benchmarks/gpu\.py result"):
        D.load_gpu("other", tmp_path)


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda r: r["tests"].update(failures=1, failed=["t::x"]), "tests failed"),
        (lambda r: r["steps"][0].update(torch_loss=2.5), "first losses differ"),
        (lambda r: r["transfer"][0].update(bytes=1), "bytes"),
        (lambda r: r["machine"].pop("gpu"), "no GPU named"),
    ],
)
def test_gpu_record_check_fails(spoil, message):
    r = _gpu_record()
    spoil(r)
    with pytest.raises(ValueError, match=message):
        D.check_gpu(r)


def test_committed_gpu_records():
    """The stored records are consistent, and the one the chapter compares
    against (the first run, CPU-sized blocks) holds the same cases."""
    latest, first = D.load_gpu(), D.load_gpu("cpu-blocks")
    if latest is None:
        pytest.skip("no benchmarks/results/gpu/latest.json yet")
    assert D.check_gpu(latest) > 0 and D.check_gpu(first) > 0
    assert D.gpu_steps(first).keys() == D.gpu_steps(latest).keys()
    ax = D.plot_gpu_steps({"now": latest, "first": first})
    assert len(ax.get_lines()) == 3 * len(D.gpu_steps(latest))
    matplotlib.pyplot.close("all")
