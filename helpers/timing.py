"""The timing harness every notebook uses: warm up, synchronise, repeat, report medians with the first call apart.

- `sync(result)` blocks until a result exists (`.numpy()` on TensorFlow tensors, `block_until_ready()` on
  JAX arrays): GPU work is queued asynchronously, and without it we would time the queueing.
- `measure(fn)` times one function: its first call (trace, compile) apart, warm-up calls, then `repeats`
  timed repeats; each repeat calls `fn` until `min_time_s` has passed (autorange) and records the mean call.
- `interleave({label: fn})` times several variants side by side, one repeat of each per round, so that a
  slow spell of the machine (another process, a frequency change) hits every variant, not one.
- `Timing` holds the times: median, min, max and the interquartile range `iqr_s`, the spread to read
  differences against.
- `epoch_timer()` is a Keras callback recording each epoch's wall time.

The stages of the course that these time live in `helpers.bench`.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Timing:
    """Seconds per call: the first call (trace/compile/warm-up) apart from the timed repeats."""

    first_call_s: float
    times_s: tuple = field(repr=False)
    calls_per_repeat: int = 1

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    @property
    def min_s(self) -> float:
        return min(self.times_s)

    @property
    def max_s(self) -> float:
        return max(self.times_s)

    @property
    def iqr_s(self) -> float:
        """Interquartile range of the repeats (0 with fewer than 2)."""
        if len(self.times_s) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.times_s, n=4, method="inclusive")
        return q3 - q1

    def __str__(self) -> str:
        return (f"median {self.median_s * 1e3:.1f} ms (IQR {self.iqr_s * 1e3:.1f}, min {self.min_s * 1e3:.1f}, "
                f"max {self.max_s * 1e3:.1f}, {len(self.times_s)} repeats); first call {self.first_call_s * 1e3:.1f} ms")


def sync(result):
    """Block until a result exists: .numpy() on tensors (and on every tensor in a tuple/list/dict)."""
    if isinstance(result, (tuple, list)):
        for r in result:
            sync(r)
    elif isinstance(result, dict):
        for r in result.values():
            sync(r)
    elif type(result).__module__ == "torch":     # a torch.Tensor: its .numpy() refuses bfloat16 and GPU tensors
        result.detach().float().cpu()            # the copy to the host waits for the result
    elif hasattr(result, "numpy"):
        result.numpy()
    elif hasattr(result, "block_until_ready"):
        result.block_until_ready()
    return result


def _check(repeats, warmup, min_time_s):
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ValueError(f"measure: repeats={repeats!r} must be a positive int")
    if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 1:
        raise ValueError(f"measure: warmup={warmup!r} must be a positive int (the first call is never timed "
                         "with the rest)")
    if not min_time_s >= 0:
        raise ValueError(f"measure: min_time_s={min_time_s!r} must be >= 0 seconds")


def _one_repeat(fn, args, kwargs, min_time_s):
    """Mean seconds per call over as many calls as fill `min_time_s` (at least one), and the call count."""
    calls, t0 = 0, time.perf_counter()
    while True:
        sync(fn(*args, **kwargs))
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time_s:
            return elapsed / calls, calls


def first_call(fn, *args, **kwargs) -> float:
    """Seconds of the first call (trace, compile, warm-up) of fn, synchronised."""
    t0 = time.perf_counter()
    sync(fn(*args, **kwargs))
    return time.perf_counter() - t0


def measure(fn, *args, repeats: int = 5, warmup: int = 1, min_time_s: float = 0.0, **kwargs) -> Timing:
    """Time fn(*args, **kwargs): the first call apart, then `warmup - 1` untimed calls, then `repeats`.

    Each repeat calls fn until `min_time_s` seconds have passed (autorange) and records the mean call,
    so that a call shorter than the clock's resolution or the OS's jitter is still timed fairly.
    """
    _check(repeats, warmup, min_time_s)
    first = first_call(fn, *args, **kwargs)
    for _ in range(warmup - 1):
        sync(fn(*args, **kwargs))
    times, calls = [], 1
    for _ in range(repeats):
        t, calls = _one_repeat(fn, args, kwargs, min_time_s)
        times.append(t)
    return Timing(first, tuple(times), calls)


def interleave(calls: dict, *, repeats: int = 5, warmup: int = 1, min_time_s: float = 0.0,
               first_calls: dict | None = None, warmup_s: float = 0.0) -> dict:
    """Time several variants side by side: {label: fn} -> {label: Timing}.

    Every variant gets its first call and warm-up (`warmup - 1` more calls, and more until `warmup_s` seconds
    have passed: a GPU needs about a second to reach its boost clock), then `repeats` rounds in which each
    variant runs one autoranged repeat; the order rotates from round to round. `first_calls` passes
    first-call times already taken (when building a variant included its first call).
    """
    _check(repeats, warmup, min_time_s)
    labels = list(calls)
    first = dict(first_calls or {})
    for label in labels:
        if label not in first:
            first[label] = first_call(calls[label])
        t0, done = time.perf_counter(), 0
        while done < warmup - 1 or time.perf_counter() - t0 < warmup_s:
            sync(calls[label]())
            done += 1
    times = {label: [] for label in labels}
    counts = {label: 1 for label in labels}
    for r in range(repeats):
        order = labels[r % len(labels):] + labels[:r % len(labels)] if labels else []
        for label in order:
            t, counts[label] = _one_repeat(calls[label], (), {}, min_time_s)
            times[label].append(t)
    return {label: Timing(first[label], tuple(times[label]), counts[label]) for label in labels}


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
