"""The benchmark suite runs end to end on tiny shapes and writes well-formed
results. It checks that the suite works, never how fast anything is."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_suite():
    spec = importlib.util.spec_from_file_location(
        "cnnbook_benchmarks_run", ROOT / "benchmarks" / "run.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory):
    suite = _load_suite()
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    suite.main(["--quick", "--out", str(out), "--no-plot"])
    return suite, json.loads(out.read_text())


def test_every_case_is_reported(quick_result):
    suite, result = quick_result
    names = [row["name"] for row in result["cases"]]
    assert names == [case.name for case in suite.CASES]
    issue_cases = {
        "conv_lenet1", "conv_lenet2", "conv_vgg", "conv_stride2", "conv_vgg_f64",
        "maxpool_lenet", "maxpool_vgg", "lenet5_step", "lenet5_step_2t",
        "resnet_step", "conv_naive",
    }  # fmt: skip
    assert issue_cases <= set(names)


def test_rows_hold_times_and_ratios(quick_result):
    _, result = quick_result
    kernels = [r for r in result["cases"] if r["name"].startswith(("conv", "max"))]
    assert all(r["status"] == "ok" for r in kernels)
    for row in result["cases"]:
        if row["status"] != "ok":
            assert row["status"] == "skipped" and row["reason"]
            continue
        ours = row["cnnbook"]
        assert ours["runs"] >= 2 and 0 < ours["min_ms"] <= ours["median_ms"]
        if row["torch"] is not None:
            assert row["ratio_median"] > 0 and row["ratio_min"] > 0
            if row["target"] is not None:
                assert row["met"] == (row["ratio_median"] <= row["target"])
    by_name = {r["name"]: r for r in result["cases"]}
    assert by_name["conv_vgg_f64"]["dtype"] == "float64"
    assert by_name["lenet5_step_2t"]["threads"] == 2
    assert by_name["conv_vgg"]["threads"] == 1


def test_machine_and_memory_are_described(quick_result):
    _, result = quick_result
    m = result["machine"]
    for key in ("cpu", "numpy", "torch", "threadpool_info", "blas", "python"):
        assert key in m
    assert isinstance(m["threadpool_info"], list)
    mem = result["memory"]
    assert mem["case"] == "conv_vgg" and mem["peak_mib"] > 0
    assert mem["met"] == (mem["peak_mib"] <= mem["target_mib"])
    settings = result["settings"]
    assert (settings["threads"], settings["quick"], settings["clock"]) == (
        1,
        True,
        "wall",
    )
    for row in result["cases"]:
        if row["status"] == "ok":
            assert set(row["by_clock"]) == {"wall", "cpu"}


def test_table_and_figure(quick_result, tmp_path):
    suite, result = quick_result
    text = suite.table(result["cases"], result["memory"])
    assert "conv VGG" in text and "peak memory" in text
    pytest.importorskip("matplotlib")
    path = tmp_path / "fig.png"
    suite.figure(result["cases"], path, "quick")
    assert path.stat().st_size > 0


def _load_gpu_script():
    spec = importlib.util.spec_from_file_location(
        "cnnbook_benchmarks_gpu", ROOT / "benchmarks" / "gpu.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_script_on_the_strict_device(tmp_path):
    """benchmarks/gpu.py needs a GPU to run whole; its measurements run on
    the strict stand-in device here, so the script cannot rot unseen."""
    gpu = _load_gpu_script()
    gpu.GPU = "strict"
    said = gpu.discipline(gpu.gpu_namespace())
    assert (
        "x is a NumPy array but w is an array_api_strict array"
        in said["model on the GPU, batch on the host"]
    )
    assert said["np.asarray(device array)"].startswith("RuntimeError")
    same = gpu.agreement("lenet5")
    assert same["loss_numpy"] == same["loss_gpu"]
    assert same["largest_parameter_difference"] == 0

    class NoGPU:  # steps() asks only for a device to synchronise
        class cuda:
            class Device:
                def synchronize(self):
                    pass

    (row,) = [r for r in gpu.steps(NoGPU, None, (2,)) if r["model"] == "lenet5"]
    assert row["batch"] == 2 and row["ours_ms"] > 0 and "torch_ms" not in row
    report = tmp_path / "report.xml"
    report.write_text(
        '<testsuites><testsuite tests="3" failures="1" errors="0" skipped="1">'
        '<testcase classname="t" name="a"/><testcase classname="t" name="b">'
        '<failure message="x"/></testcase><testcase classname="t" name="c">'
        "<skipped/></testcase></testsuite></testsuites>"
    )
    assert gpu.test_summary(report) == {
        "tests": 3, "failures": 1, "errors": 0, "skipped": 1, "failed": ["t::b"]
    }  # fmt: skip
