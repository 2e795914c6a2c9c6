"""Timing harness: warm up, synchronise, repeat, report medians with the first call apart."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Timing:
    """Seconds per call: the first call (trace/compile/warm-up) apart from the timed repeats."""

    first_call_s: float
    times_s: tuple = field(repr=False)

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    @property
    def min_s(self) -> float:
        return min(self.times_s)

    @property
    def max_s(self) -> float:
        return max(self.times_s)

    def __str__(self) -> str:
        return (f"median {self.median_s * 1e3:.1f} ms (min {self.min_s * 1e3:.1f}, max {self.max_s * 1e3:.1f}, "
                f"{len(self.times_s)} repeats); first call {self.first_call_s * 1e3:.1f} ms")


def sync(result):
    """Block until a result exists: .numpy() on tensors (and on every tensor in a tuple/list/dict)."""
    if isinstance(result, (tuple, list)):
        for r in result:
            sync(r)
    elif isinstance(result, dict):
        for r in result.values():
            sync(r)
    elif hasattr(result, "numpy"):
        result.numpy()
    elif hasattr(result, "block_until_ready"):
        result.block_until_ready()
    return result


def measure(fn, *args, repeats: int = 5, warmup: int = 1, **kwargs) -> Timing:
    """Time fn(*args, **kwargs): the first call apart, then `warmup - 1` untimed calls, then `repeats`."""
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"measure: repeats={repeats!r} must be a positive int")
    if not isinstance(warmup, int) or warmup < 1:
        raise ValueError(f"measure: warmup={warmup!r} must be a positive int (the first call is never timed "
                         "with the rest)")
    t0 = time.perf_counter()
    sync(fn(*args, **kwargs))
    first = time.perf_counter() - t0
    for _ in range(warmup - 1):
        sync(fn(*args, **kwargs))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sync(fn(*args, **kwargs))
        times.append(time.perf_counter() - t0)
    return Timing(first, tuple(times))


def epoch_timer():
    """A Keras callback that records each epoch's wall time in `.times_s` (the first includes tracing)."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times_s = []

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times_s.append(time.perf_counter() - self._t0)

        @property
        def median_s(self):
            later = self.times_s[1:] or self.times_s   # the first epoch pays for tracing
            return statistics.median(later)

    return EpochTimer()
