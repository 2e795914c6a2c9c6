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
    return bench.run(["linear", "softmax", "matmul"], ["float32", "xla"], repeats=2, steps=2, batch_size=32,
                     verbose=False, min_time_s=0, quick=True)


def test_rows_have_every_column_and_sane_times(small_run):
    assert [(r["stage"], r["mode"]) for r in small_run] == [
        (s, m) for s in ("linear", "softmax", "matmul") for m in ("float32", "xla")] + [("matmul", "control")]
    for r in small_run:
        assert tuple(r) == bench.COLUMNS
        assert r["status"] == "ok", r["note"]
        assert 0 < r["min_s"] <= r["median_s"] <= r["max_s"] and r["first_call_s"] > 0 and r["iqr_s"] >= 0
        assert r["us_per_step"] == pytest.approx(r["median_s"] / 2 * 1e6, rel=1e-3)
        assert r["backend"] == "tensorflow" and r["keras"] and r["tensorflow"] and r["batch_size"] == 32
        assert r["jit_compile"] is r["mode"].endswith("xla")  # XLA really used, not a silent fallback
        if r["stage"] == "softmax":
            assert r["samples_per_s"] == pytest.approx(2 * 32 / r["median_s"], rel=1e-3)
    assert small_run[0]["tflops"] == "" and small_run[0]["samples_per_s"] == ""   # linear: overhead per step only
    assert small_run[2]["tflops"] > 0
    control = small_run[-1]
    assert control["note"].startswith("control") and control["policy"] == "float32" and not control["jit_compile"]


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
    rows = bench.run(["linear", "softmax"], ["float32"], repeats=1, steps=1, batch_size=8, verbose=False,
                     min_time_s=0)
    assert rows[0]["status"] == "skipped" and rows[0]["note"].startswith("out of memory")
    assert rows[1]["status"] == "ok"


def test_tensorflow_only_stages_are_skipped_on_other_backends():
    reason = bench._why_skip("softmax", "float32", "jax", "mixed_bfloat16", "")
    assert "--backend tensorflow" in reason and bench._why_skip("cnn_train", "float32", "jax", None, "") == ""


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


def test_stage_flops_against_hand_counts():
    from helpers import models

    cnn = models.improved_cnn(compile=False, augment=False)
    assert bench.stage_flops("softmax", 256, 2) == 2 * (2 * 784 * 10) * 256 * 2     # forward + weight gradient
    assert bench.stage_flops("cnn_train", 256, 2, model=cnn) == 3 * bench.forward_flops(cnn) * 512
    assert bench.stage_flops("cnn_infer", 256, 2, model=cnn) == bench.forward_flops(cnn) * 512
    assert bench.stage_flops("matmul", 0, 3, n=1024) == 3 * 2 * 1024 ** 3
    assert bench.stage_flops("dense_big", 8192, 1, width=4096) == 3 * 2 * 8192 * (784 * 4096 + 4096 ** 2 + 40960)
    assert bench.stage_flops("linear", 256, 2) is None and bench.stage_flops("bandwidth", 256, 2) is None


def test_forward_flops_of_the_seed_cnn():
    from helpers import models

    # conv 2*26*26*32*9 + dense 2*5408*128 + dense 2*128*10 (exercise 1 of notebook 06)
    assert bench.forward_flops(models.seed_cnn(compile=False)) == 389_376 + 1_384_448 + 2_560


@pytest.mark.parametrize("info, policy", [
    ({"device": "CPU", "cpu_bf16": True}, "mixed_bfloat16"),
    ({"device": "CPU", "cpu_bf16": False}, None),
    ({"device": "GPU", "compute_capability": "6.1", "device_name": "NVIDIA GeForce GTX 1080 Ti"}, None),
    ({"device": "GPU", "compute_capability": "7.5", "device_name": "NVIDIA GeForce GTX 1660 SUPER"}, None),
    ({"device": "GPU", "compute_capability": "7.5", "device_name": "NVIDIA GeForce RTX 2080 Ti"}, "mixed_float16"),
    ({"device": "GPU", "compute_capability": "7.5", "device_name": "Tesla T4"}, "mixed_float16"),
    ({"device": "GPU", "compute_capability": "8.6", "device_name": "NVIDIA GeForce RTX 3090"}, "mixed_bfloat16"),
    ({"device": "GPU", "compute_capability": "8.9", "device_name": "NVIDIA GeForce RTX 4090"}, "mixed_bfloat16"),
])
def test_mixed_policy_follows_the_hardware(info, policy):
    got, reason = bench.mixed_policy(info)
    assert got == policy and (("float32" in reason) == (policy is None))
    forced, why = bench.mixed_policy(info, force=True)
    assert forced in ("mixed_float16", "mixed_bfloat16") and (policy is not None or why.startswith("forced"))


def test_mixed_rows_are_skipped_with_the_reason_where_16_bit_units_are_slow(monkeypatch):
    monkeypatch.setattr("helpers.cards.cpu_has_bf16", lambda: False)
    rows = bench.run(["softmax"], ["float32", "mixed"], repeats=1, steps=1, batch_size=8, verbose=False,
                     min_time_s=0)
    assert rows[0]["status"] == "ok" and rows[1]["status"] == "skipped"
    assert "stay in float32" in rows[1]["note"] and "--force-mixed" in rows[1]["note"]
    forced = bench.run(["softmax"], ["mixed"], repeats=1, steps=1, batch_size=8, verbose=False, force_mixed=True,
                       min_time_s=0)
    assert forced[0]["status"] == "ok" and forced[0]["policy"] == "mixed_bfloat16"


def test_noise_floor_and_speedups_read_the_control_row():
    import pandas as pd

    rows = [{"stage": "matmul", "mode": m, "status": "ok", "median_s": t, "iqr_s": 0.001}
            for m, t in (("float32", 1.00), ("control", 1.05), ("xla", 0.98), ("mixed", 0.5))]
    rows += [{"stage": "cnn_train", "mode": m, "status": "ok", "median_s": t, "iqr_s": q}
             for m, t, q in (("float32", 1.0, 0.2), ("xla", 0.7, 0.2), ("mixed", 0.4, 0.01))]
    table = pd.DataFrame(rows)
    assert bench.noise_floor(table) == pytest.approx(0.05)
    text, floor = bench.speedups(table)
    assert text.loc["matmul", "xla"] == "no measurable difference" and text.loc["matmul", "mixed"] == "2.00x"
    # 1/0.7 = 1.43 lies inside the two rows' spread (0.2 + 0.29): not measurable; 2.5x is
    assert text.loc["cnn_train", "xla"] == "no measurable difference" and text.loc["cnn_train", "mixed"] == "2.50x"


def _cli(*args):
    run_env = {**os.environ, "MNIST_SOURCE": "offline", "CUDA_VISIBLE_DEVICES": "-1"}
    return subprocess.run([sys.executable, "-m", "helpers.bench", *args], capture_output=True, text=True,
                          env=run_env, cwd=env.repo_root(), timeout=300)


def test_cli_writes_the_csv_quietly(tmp_path):
    out = tmp_path / "bench.csv"
    done = _cli("--stages", "softmax", "matmul", "bandwidth", "--modes", "float32", "mixed", "--quick",
                "--force-mixed", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "softmax" in done.stdout and f"wrote {out}" in done.stdout
    assert done.stderr == ""                       # no TensorFlow start-up chatter, no warnings
    table = bench.read_csv(out)
    assert list(table["mode"]) == ["float32", "mixed", "float32", "mixed", "control", "float32", "mixed"]
    assert list(table["policy"])[:2] == ["float32", "mixed_bfloat16"]
    assert (table["repeats"] == 3).all() and (table["steps"] == 2).all() and "iqr_s" in table
    mm = table[table["stage"] == "matmul"]
    assert (mm["status"] == "ok").all() and (mm["tflops"] > 0).all()
    bw = table[table["stage"] == "bandwidth"].set_index("mode")
    assert bw.loc["float32", "gbps"] > 0 and bw.loc["mixed", "status"] == "skipped"


@pytest.mark.parametrize("args, message", [
    (["--stages", "cnn_train", "bogus"], "unknown stage 'bogus'; valid stages: preprocess"),
    (["--modes", "fp16"], "unknown mode 'fp16'; valid modes: float32"),
    (["--backend", "mxnet"], "unknown backend 'mxnet'; valid backends: tensorflow, jax, torch"),
])
def test_cli_exits_2_on_unknown_names(args, message):
    done = _cli(*args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("name, gib, cc, policy, tf32, peak, precision", [
    # float32 reads against TF32 where the card has it and it is on (TensorFlow's default from CC 8.0)
    ("Tesla T4", 15.0, "7.5", "float32", True, 8.1, "fp32"),                 # Turing: no TF32
    ("Tesla T4", 15.0, "7.5", "mixed_float16", True, 65.0, "fp16"),
    ("NVIDIA L4", 22.5, "8.9", "float32", True, 60.0, "tf32"),
    ("NVIDIA A100-SXM4-40GB", 39.4, "8.0", "float32", True, 156.0, "tf32"),
    ("NVIDIA A100-SXM4-40GB", 39.4, "8.0", "float32", False, 19.5, "fp32"),   # TF32 switched off
    ("NVIDIA A100-SXM4-80GB", 79.2, "8.0", "float32", True, 156.0, "tf32"),
    ("NVIDIA A100-SXM4-80GB", 79.2, "8.0", "mixed_bfloat16", True, 312.0, "bf16"),
    ("NVIDIA H100 80GB HBM3", 79.6, "9.0", "float32", True, 494.7, "tf32"),
    ("NVIDIA H100 PCIe", 79.6, "9.0", "float32", True, 378.0, "tf32"),
    ("NVIDIA H100 PCIe", 79.6, "9.0", "float32", False, 51.2, "fp32"),
    ("NVIDIA H200", 140.4, "9.0", "float32", True, 494.7, "tf32"),
    ("NVIDIA GeForce RTX 3090", 24.0, "8.6", "float32", True, 35.6, "tf32"),  # GeForce: TF32 at the FP32 rate
    ("NVIDIA GeForce RTX 4090", 24.0, "8.9", "mixed_float16", True, 165.2, "fp16"),
    ("NVIDIA GeForce RTX 5090", 31.4, "12.0", "mixed_bfloat16", True, 209.5, "bf16"),
    ("NVIDIA H100 NVL", 93.1, "9.0", "float32", True, None, ""),             # not the SXM row: no peak
])
def test_percent_of_peak_reads_what_actually_runs(name, gib, cc, policy, tf32, peak, precision):
    info = {"device": "GPU", "device_name": name, "vram_gib": gib, "compute_capability": cc, "tf32": tf32}
    assert bench._peak_tflops(info, policy) == (peak, precision)


def test_percent_of_peak_off_the_table_and_on_a_cpu():
    assert bench._peak_tflops({"device": "GPU", "device_name": "NVIDIA Quadro RTX 8000"}, "float32") == (None, "")
    assert bench._peak_tflops({"device": "CPU"}, "float32") == (None, "")


def test_peak_check_says_a_sentence_instead_of_stopping():
    import pandas as pd

    table = pd.DataFrame([
        {"stage": "matmul", "mode": "float32", "pct_peak": 108.0, "peak_row": "RTX 4090 (name)", "peak_precision": "fp32"},
        {"stage": "dense_big", "mode": "float32", "pct_peak": 700.0, "peak_row": "A100 (name)", "peak_precision": "fp32"},
        {"stage": "cnn_train", "mode": "float32", "pct_peak": "", "peak_row": "", "peak_precision": ""}])
    said = bench.peak_check(table)       # 108 % is clock headroom (GeForce boosts past its rating); 700 % is not
    assert len(said) == 1 and said[0].startswith("dense_big float32: 700 %") and "TF32" in said[0]


def test_peak_of_a_name_shared_by_two_rows_falls_back_on_memory():
    for name, gib, fp32, row in (("NVIDIA GeForce RTX 3080", 11.8, 30.6, "RTX 3080 12GB"),
                                 ("NVIDIA GeForce RTX 3080", 10.0, 29.8, "RTX 3080 10GB"),
                                 ("NVIDIA GeForce RTX 4060 Ti", 16.0, 22.1, "RTX 4060 Ti 16GB")):
        info = {"device": "GPU", "device_name": name, "vram_gib": gib}
        assert bench._peak_tflops(info, "float32") == (fp32, "fp32")
        card, how = bench._card(info)
        assert card["name"] == row and row in how and "GiB" in how
    assert bench._peak_tflops({"device": "GPU", "device_name": "NVIDIA GeForce RTX 3080"}, "float32") == (None, "")
