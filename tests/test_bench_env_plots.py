"""The timing harness, the quiet TensorFlow import and the plot helpers' argument checks."""
import os
import time

import numpy as np
import pytest

from helpers import bench, env, plots


def test_measure_keeps_first_call_apart():
    calls = []

    def fn():
        calls.append(1)
        time.sleep(0.2 if len(calls) == 1 else 0.02)   # the first call pays a "compile"

    t = bench.measure(fn, repeats=5, warmup=2)
    assert len(calls) == 7 and len(t.times_s) == 5
    assert t.first_call_s >= 0.2
    assert 0.015 <= t.median_s < 0.1 and t.min_s <= t.median_s <= t.max_s
    assert "median" in str(t)


def test_measure_synchronises_results():
    class Lazy:
        synced = 0

        def numpy(self):
            Lazy.synced += 1

    bench.measure(lambda: (Lazy(), [Lazy()]), repeats=3)
    assert Lazy.synced == 8


def test_autorange_and_interleave():
    from helpers import timing

    t = timing.measure(lambda: time.sleep(0.002), repeats=3, min_time_s=0.02)
    assert t.calls_per_repeat >= 5 and 0.0015 <= t.median_s < 0.02 and t.iqr_s >= 0
    order = []
    out = timing.interleave({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, repeats=3, warmup=1)
    assert order == ["a", "b", "a", "b", "b", "a", "a", "b"]        # first calls, then rotating rounds
    assert set(out) == {"a", "b"} and all(len(v.times_s) == 3 for v in out.values())
    assert timing.Timing(0.0, (1.0, 2.0, 3.0, 4.0, 5.0)).iqr_s == 2.0


def test_sync_waits_for_torch_tensors_of_any_dtype():
    """06's torch run skipped the bfloat16 GEMM with "Got unsupported ScalarType BFloat16": sync called .numpy()."""
    torch = pytest.importorskip("torch")
    from helpers.timing import sync

    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        x = torch.ones(4, 4, dtype=dtype)
        assert sync(x @ x) is not None and sync([x, {"y": x}])[0] is x


@pytest.mark.parametrize("kwargs", [{"repeats": 0}, {"warmup": 0}, {"repeats": 2.5}, {"min_time_s": -1}])
def test_measure_bad_arguments(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        bench.measure(lambda: None, **kwargs)


def test_quiet_stderr_fd_hides_c_level_writes_only_inside(capfd):
    with env.quiet_stderr_fd():
        os.write(2, b"C++ chatter\n")
    os.write(2, b"after\n")
    err = capfd.readouterr().err
    assert "C++ chatter" not in err and "after" in err


def test_setup_reports_versions_and_device(capsys):
    info = env.setup(seed=3)
    out = capsys.readouterr().out
    assert info["tensorflow"] in out and info["device"]["kind"] in ("CPU", "GPU") and "seed 3" in out
    with pytest.raises(ValueError, match="seed"):
        env.setup(seed=-1)


def test_digit_grid_shapes_and_errors():
    fig = plots.digit_grid(np.zeros((12, 784)), labels=list(range(12)), predicted=[0] * 12, ncols=5)
    assert len(fig.axes) == 15                      # 3 rows of 5
    with pytest.raises(ValueError, match="expected"):
        plots.digit_grid(np.zeros((3, 10)))
    with pytest.raises(ValueError, match="class_balance"):
        plots.class_balance()


def test_version_checks_say_what_to_do():
    import re
    import sys
    from pathlib import Path

    from helpers import env

    assert env.check_versions({"python": "3.11.7", "tensorflow": "2.21.0", "keras": "3.15.1"}) == []
    assert env.check_versions({"python": "3.13.0", "tensorflow": "2.20.0", "keras": "3.13.2"}) == []   # Colab's set
    notes = env.check_versions({"python": "3.14.1", "tensorflow": "2.21.0", "keras": "3.16.0"})
    assert len(notes) == 2 and "Python 3.14.1 is newer" in notes[0] and "Keras 3.16.0 is newer" in notes[1]
    with pytest.raises(RuntimeError, match=re.escape(sys.executable)) as err:
        env.check_versions({"python": "3.11.0", "tensorflow": "2.15.1", "keras": "2.15.0"})
    assert "TensorFlow 2.15.1 is older than the 2.16" in str(err.value) and "Keras 2.15.0 is older" in str(err.value)
    assert "pip install -r requirements.txt" in str(err.value)
    # the minimums are requirements.txt's lower bounds
    text = (Path(env.repo_root()) / "requirements.txt").read_text()
    for name in ("tensorflow", "keras"):
        low = re.search(rf"^{name}>=([\d.]+)", text, re.M).group(1)
        assert env.MINIMUM[name] == tuple(int(n) for n in low.split("."))
    assert re.search(r'requires-python = ">=3\.10"', (Path(env.repo_root()) / "pyproject.toml").read_text())


def test_interleave_warms_up_for_warmup_s():
    from helpers import timing

    calls = []

    def fn():
        calls.append(1)
        return 0

    timing.interleave({"a": fn}, repeats=1, warmup=1, warmup_s=0.05)
    assert len(calls) > 3          # first call, warm-up calls filling 0.05 s, one timed repeat
