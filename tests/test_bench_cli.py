"""helpers.bench's stages, table and command line (notebook 06), on small settings."""
import csv
import os
import subprocess
import sys

import pytest

from helpers import bench, env


@pytest.fixture(scope="module")
def small_run():
    env.setup(seed=0, report=False)
    return bench.run(["linear", "softmax", "cnn_infer"], ["float32", "xla"], repeats=2, steps=2, batch_size=32,
                     verbose=False)


def test_rows_have_every_column_and_sane_times(small_run):
    assert [(r["stage"], r["mode"]) for r in small_run] == [
        (s, m) for s in ("linear", "softmax", "cnn_infer") for m in ("float32", "xla")]
    for r in small_run:
        assert tuple(r) == bench.COLUMNS
        assert r["status"] == "ok", r["note"]
        assert 0 < r["min_s"] <= r["median_s"] <= r["max_s"] and r["first_call_s"] > 0
        assert r["samples_per_s"] == pytest.approx(2 * 32 / r["median_s"], rel=1e-3)
        assert r["backend"] == "tensorflow" and r["keras"] and r["tensorflow"] and r["batch_size"] == 32
        assert r["jit_compile"] is (r["mode"] == "xla")  # XLA really used, not a silent fallback
    assert small_run[0]["tflops"] == ""      # the linear step's FLOPs are not counted
    assert small_run[2]["tflops"] > 0


def test_determinism_is_restored_after_the_run(small_run):
    from tensorflow.python.framework import config as tf_config

    assert tf_config.is_op_determinism_enabled()


def test_csv_round_trip(small_run, tmp_path):
    path = tmp_path / "b.csv"
    bench.write_csv(small_run, path)
    with open(path) as f:
        header = next(csv.reader(f))
    assert tuple(header) == bench.COLUMNS
    table = bench.read_csv(path)
    assert len(table) == len(small_run) and (table["median_s"] > 0).all()


def test_read_csv_rejects_other_tables(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a benchmark table"):
        bench.read_csv(path)


def test_failing_cell_is_a_skipped_row_and_the_run_goes_on(monkeypatch):
    real = bench._build_stage

    def fake(stage, *args):
        if stage == "linear":
            raise MemoryError("OOM when allocating tensor")
        return real(stage, *args)

    monkeypatch.setattr(bench, "_build_stage", fake)
    rows = bench.run(["linear", "softmax"], ["float32"], repeats=1, steps=1, batch_size=8, verbose=False)
    assert rows[0]["status"] == "skipped" and rows[0]["note"].startswith("out of memory")
    assert rows[1]["status"] == "ok"


def test_tensorflow_only_stages_are_skipped_on_other_backends():
    row = bench._run_cell("softmax", "float32", False, 8, 1, 1, None, "jax", {})
    assert row["status"] == "skipped" and "--backend tensorflow" in row["note"]


@pytest.mark.parametrize("kwargs, match", [
    ({"stages": ["cnn"]}, "unknown stage 'cnn'; valid stages: preprocess, linear"),
    ({"modes": ["fp8"]}, "unknown mode 'fp8'; valid modes: float32, mixed, xla, mixed_xla"),
    ({"repeats": 0}, "repeats=0"),
    ({"batch_size": -1}, "batch_size=-1"),
    ({"backend": "mxnet"}, "unknown backend 'mxnet'"),
    ({"backend": "jax"}, "KERAS_BACKEND=jax"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(bench.BenchArgumentError, match=match):
        bench.run(**{"stages": ["linear"], "modes": ["float32"], **kwargs}, verbose=False)


def test_forward_flops_of_the_seed_cnn():
    from helpers import models

    # conv 2*26*26*32*9 + dense 2*5408*128 + dense 2*128*10 (exercise 1 of notebook 06)
    assert bench.forward_flops(models.seed_cnn(compile=False)) == 389_376 + 1_384_448 + 2_560


@pytest.mark.parametrize("info, policy", [
    ({"device": "CPU"}, "mixed_bfloat16"),
    ({"device": "GPU", "compute_capability": "6.1", "device_name": "NVIDIA GeForce GTX 1080 Ti"}, "mixed_bfloat16"),
    ({"device": "GPU", "compute_capability": "7.5", "device_name": "NVIDIA GeForce GTX 1660 SUPER"}, "mixed_bfloat16"),
    ({"device": "GPU", "compute_capability": "7.5", "device_name": "NVIDIA GeForce RTX 2080"}, "mixed_float16"),
    ({"device": "GPU", "compute_capability": "8.9", "device_name": "NVIDIA GeForce RTX 4090"}, "mixed_float16"),
])
def test_mixed_policy_follows_the_hardware(info, policy):
    assert bench.mixed_policy(info) == policy


def _cli(*args):
    run_env = {**os.environ, "MNIST_SOURCE": "offline", "CUDA_VISIBLE_DEVICES": "-1"}
    return subprocess.run([sys.executable, "-m", "helpers.bench", *args], capture_output=True, text=True,
                          env=run_env, cwd=env.repo_root(), timeout=300)


def test_cli_writes_the_csv_quietly(tmp_path):
    out = tmp_path / "bench.csv"
    done = _cli("--stages", "softmax", "--modes", "float32", "mixed", "--quick", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "softmax" in done.stdout and f"wrote {out}" in done.stdout
    assert done.stderr == ""                       # no TensorFlow start-up chatter, no warnings
    table = bench.read_csv(out)
    assert list(table["mode"]) == ["float32", "mixed"] and list(table["policy"]) == ["float32", "mixed_bfloat16"]
    assert (table["repeats"] == 3).all() and (table["steps"] == 2).all()


@pytest.mark.parametrize("args, message", [
    (["--stages", "cnn_train", "bogus"], "unknown stage 'bogus'; valid stages: preprocess"),
    (["--modes", "fp16"], "unknown mode 'fp16'; valid modes: float32"),
    (["--backend", "mxnet"], "unknown backend 'mxnet'; valid backends: tensorflow, jax, torch"),
])
def test_cli_exits_2_on_unknown_names(args, message):
    done = _cli(*args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_percent_of_peak_uses_the_07_table():
    rtx4090 = {"device": "GPU", "device_name": "NVIDIA GeForce RTX 4090"}
    assert bench._peak_tflops(rtx4090, "mixed_float16") == 165.2      # FP16 Tensor Cores, FP32 accumulate
    assert bench._peak_tflops(rtx4090, "float32") == 82.6
    assert bench._peak_tflops({"device": "GPU", "device_name": "NVIDIA H100 80GB HBM3"}, "float32") is None
    assert bench._peak_tflops({"device": "CPU"}, "float32") is None
