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


# ---------------------------------------------------------------------------------------------
# The course's stages under four modes: python -m helpers.bench (notebook 06)
# ---------------------------------------------------------------------------------------------
STAGES = ("preprocess", "linear", "softmax", "cnn_train", "finetune", "cnn_infer")
MODES = ("float32", "mixed", "xla", "mixed_xla")
BACKENDS = ("tensorflow", "jax", "torch")
TF_ONLY = {"preprocess": "tf.data", "linear": "tf.GradientTape", "softmax": "tf.GradientTape"}
COLUMNS = ("stage", "mode", "backend", "device", "device_name", "compute_capability", "policy", "jit_compile",
           "batch_size", "steps", "repeats", "first_call_s", "median_s", "min_s", "max_s", "samples_per_s",
           "tflops", "pct_peak", "status", "note", "tensorflow", "keras", "backend_version", "python")
FLOPS_NOTE = "training FLOPs = 3 x forward (backward costs about twice the forward pass)"


class BenchArgumentError(ValueError):
    """A stage, mode, backend or number that the benchmark does not know; the message lists the valid ones."""


def _choose(kind, given, valid):
    if given is None:
        return list(valid)
    given = list(given)
    unknown = [g for g in given if g not in valid]
    if unknown:
        raise BenchArgumentError(f"unknown {kind} {', '.join(map(repr, unknown))}; valid {kind}s: {', '.join(valid)}")
    if not given:
        raise BenchArgumentError(f"no {kind} chosen; valid {kind}s: {', '.join(valid)}")
    return given


def device_info(backend: str) -> dict:
    """kind (GPU/CPU), name, compute capability and backend version, asked of the backend itself."""
    import platform

    info = {"device": "CPU", "device_name": platform.processor() or platform.machine(), "compute_capability": ""}
    if backend == "tensorflow":
        from .env import device_report, import_tensorflow

        tf = import_tensorflow()
        d = device_report(tf)
        info.update(device=d["kind"], device_name=d["name"], compute_capability=d["compute_capability"] or "",
                    backend_version=tf.__version__)
    elif backend == "jax":
        import jax

        dev = jax.devices()[0]
        info["backend_version"] = jax.__version__
        if dev.platform == "gpu":
            info.update(device="GPU", device_name=dev.device_kind,
                        compute_capability=str(getattr(dev, "compute_capability", "") or ""))
    else:
        import torch

        info["backend_version"] = torch.__version__
        if torch.cuda.is_available():
            cc = torch.cuda.get_device_capability(0)
            info.update(device="GPU", device_name=torch.cuda.get_device_name(0), compute_capability=f"{cc[0]}.{cc[1]}")
    return info


def mixed_policy(info: dict) -> str:
    """mixed_float16 where float16 has Tensor Cores (compute capability >= 7.0, not a GTX 16), else mixed_bfloat16."""
    from .gpu import architecture

    if info.get("device") != "GPU":
        return "mixed_bfloat16"
    return architecture(info.get("compute_capability") or None, info.get("device_name", ""))["mixed_policy"]


def forward_flops(model) -> int:
    """Multiply-adds x 2 of every Dense and Conv2D layer for one sample (other layers are cheap and not counted)."""
    import keras

    total = 0
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.Dense):
            total += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
        elif isinstance(layer, keras.layers.Conv2D):
            h, w = layer.output.shape[1:3]
            kh, kw, cin, cout = layer.kernel.shape
            total += 2 * h * w * kh * kw * cin * cout
    return int(total)


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def _peak_tflops(info: dict, policy: str):
    """The card's peak from the GeForce table of notebook 07 for this policy, or None off that table."""
    if info.get("device") != "GPU":
        return None
    from .gpu import match_card, task_tflops

    card = match_card(info.get("device_name", ""))
    precision = {"mixed_float16": "fp16", "mixed_bfloat16": "bf16"}.get(policy, "fp32")
    return task_tflops(card, precision, "train") if card else None


class _Stage:
    """What one cell of the benchmark runs: `call()` does `steps` steps and returns something to synchronise."""

    def __init__(self, call, samples, flops=None, note="", *models):
        self.call, self.samples, self.flops, self.note, self.models = call, samples, flops, note, models


def _images(n_train: int = 4000):
    """Training images for the benchmark: MNIST from helpers.data, or random pixels, said on every row."""
    import numpy as np

    from .data import MnistSourceError, load_mnist

    try:
        m = load_mnist(verbose=False)
        return m.x_train, m.y_train, "data: MNIST"
    except MnistSourceError as err:
        rng = np.random.default_rng(0)
        return (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_train),
                f"data: random pixels (no MNIST source here: {str(err).splitlines()[0]})")


def _build_stage(stage, policy, jit, batch, steps, data):
    """Set the precision policy and build the stage; model code comes from helpers.models and helpers.steps."""
    import keras
    import numpy as np

    from . import models

    x_img, y_img, data_note = data
    keras.mixed_precision.set_global_policy(policy)
    compute = keras.mixed_precision.global_policy().compute_dtype
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(y_img), batch)
    xb = (x_img[idx, :, :, None] / 255.0).astype("float32")
    yb = y_img[idx].astype("int64")

    if stage == "preprocess":
        from .data import make_dataset
        from .env import import_tensorflow

        tf = import_tensorflow()
        ds = make_dataset(x_img, y_img, batch, seed=0, cache=False)
        if compute != "float32":
            ds = ds.map(lambda x, y: (tf.cast(x, compute), y))
        note = "tf.data on the CPU; the mode only changes the output dtype"

        def call():
            last = None
            for last in ds:
                pass
            return last
        return _Stage(call, len(y_img), note=f"{note}; one call = one pass over {len(y_img):,} images; {data_note}")

    if stage in ("linear", "softmax"):
        from .data import linear_data
        from .env import import_tensorflow
        from .steps import make_sgd_step

        tf = import_tensorflow()
        scale = 1024.0 if compute == "float16" else None
        if stage == "linear":
            x_np, y_np = linear_data(batch, seed=0)
            x, y = tf.constant(x_np, tf.float32), tf.constant(y_np, tf.float32)
            theta0, theta1 = tf.Variable(0.0), tf.Variable(0.0)

            def loss_fn(x, y):            # J = 1/(2m) Σ (θ0 + θ1 x − y)², computed in the policy's dtype
                h = tf.cast(theta0, compute) + tf.cast(theta1, compute) * tf.cast(x, compute)
                return tf.reduce_mean(tf.square(tf.cast(h, tf.float32) - y)) / 2
            variables, flops = [theta0, theta1], None
        else:
            x = tf.constant(xb.reshape(batch, 784))
            y = tf.constant(yb)
            W, b = tf.Variable(tf.zeros((784, 10))), tf.Variable(tf.zeros(10))

            def loss_fn(x, y):            # softmax regression: z = xW + b, mean cross-entropy in float32
                z = tf.cast(x, compute) @ tf.cast(W, compute) + tf.cast(b, compute)
                return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, tf.cast(z, tf.float32)))
            variables, flops = [W, b], 3 * 2 * 784 * 10 * batch
        step = tf.function(make_sgd_step(variables, 0.1, loss_fn, loss_scale=scale), jit_compile=jit)

        def call():
            for _ in range(steps):
                loss = step(x, y)
            return loss
        note = "the SGD step of helpers.steps (notebooks 02/03)" + (f"; static loss scale {scale:g}" if scale else "")
        return _Stage(call, steps * batch, flops and flops * steps, note)

    xt, yt = keras.ops.convert_to_tensor(xb), keras.ops.convert_to_tensor(yb)
    if stage == "cnn_infer":
        model = models.improved_cnn(compile=False, augment=False)
        model.compile(jit_compile=jit)
        flops = forward_flops(model) * batch

        def call():
            for _ in range(steps):
                out = model.predict_on_batch(xt)
            return out
        return _Stage(call, steps * batch, flops * steps, f"predict_on_batch, improved CNN of 04; {data_note}",
                      model)

    if stage == "cnn_train":
        model = models.improved_cnn(jit_compile=jit, augment=False)
        flops = 3 * forward_flops(model) * batch

        def call():
            for _ in range(steps):
                out = model.train_on_batch(xt, yt)
            return out
        return _Stage(call, steps * batch, flops * steps, f"train_on_batch, improved CNN of 04 without its "
                      f"augmentation layers (XLA cannot compile them); {FLOPS_NOTE}; {data_note}", model)

    # finetune: 05's two stages, each compiled once: a new head on a frozen base, then the top convolution too
    def transfer(unfreeze_top: bool):
        pretrained = models.improved_cnn(compile=False, augment=False)
        flat = next(layer for layer in pretrained.layers if isinstance(layer, keras.layers.Flatten))
        base = keras.Model(pretrained.input, flat.output)
        convs = [layer for layer in base.layers if isinstance(layer, keras.layers.Conv2D)]
        for layer in base.layers:
            layer.trainable = unfreeze_top and layer is convs[-1]
        inputs = keras.Input(models.INPUT_SHAPE)
        outputs = keras.layers.Dense(5, activation="softmax", dtype="float32")(base(inputs, training=False))
        model = keras.Model(inputs, outputs)
        model.compile(keras.optimizers.Adam(1e-4 if unfreeze_top else 1e-3), "sparse_categorical_crossentropy",
                      jit_compile=jit)
        return model, convs[-1]

    head, _ = transfer(False)
    tuned, top = transfer(True)
    y5 = keras.ops.convert_to_tensor(yb % 5)
    # a step = forward + backward of what trains: the head (Dense, 2x its forward) and, in stage 2, the top
    # convolution's weight gradient (1x its forward; no gradient is needed below it)
    fwd, dense = forward_flops(head), 2 * 2 * int(np.prod(head.layers[-1].kernel.shape))
    top_conv = 2 * top.output.shape[1] * top.output.shape[2] * int(np.prod(top.kernel.shape))
    flops = batch * ((steps // 2) * (fwd + dense) + (steps - steps // 2) * (fwd + dense + top_conv))

    def call():
        for i in range(steps):
            out = (head if i < steps // 2 else tuned).train_on_batch(xt, y5)
        return out
    return _Stage(call, steps * batch, flops,
                  f"half the steps train a new head on a frozen base, half also the top convolution (05); {data_note}",
                  head, tuned)


def run(stages=None, modes=None, *, repeats: int = 5, batch_size: int = 256, steps: int = 10, quick: bool = False,
        backend: str | None = None, verbose: bool = True) -> list[dict]:
    """Time every stage under every mode; one dict per cell with the COLUMNS as keys.

    quick: 3 repeats and 2 steps per call (about a minute on 2 CPU cores) unless given otherwise.
    A cell that fails (out of memory, an op the device lacks) becomes a row with status "skipped"
    and the reason in `note`; the run goes on.
    """
    import os
    import platform

    from .env import import_tensorflow

    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        import_tensorflow()  # quietly, before Keras imports it with its start-up chatter

    stages = _choose("stage", stages, STAGES)
    modes = _choose("mode", modes, MODES)
    for name, value in (("repeats", repeats), ("batch_size", batch_size), ("steps", steps)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise BenchArgumentError(f"{name}={value!r} must be a positive integer")
    if quick:
        repeats, steps = min(repeats, 3), min(steps, 2)
    import keras

    active = keras.backend.backend()
    backend = backend or active
    if backend not in BACKENDS:
        raise BenchArgumentError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if backend != active:
        raise BenchArgumentError(f"Keras is already running on {active!r}; set KERAS_BACKEND={backend} before "
                                 f"Keras is imported (or use python -m helpers.bench --backend {backend})")
    info = device_info(backend)
    policy_mixed = mixed_policy(info)
    common = {"backend": backend, **info, "batch_size": batch_size, "repeats": repeats,
              "keras": keras.__version__, "python": platform.python_version(),
              "tensorflow": info.get("backend_version", "") if backend == "tensorflow" else _tf_version()}
    data = _images()
    rows = []
    saved_policy = keras.mixed_precision.global_policy().name
    determinism = _pause_determinism(backend)
    try:
        for stage in stages:
            for mode in modes:
                policy = policy_mixed if mode.startswith("mixed") else "float32"
                jit = mode.endswith("xla") and stage != "preprocess"   # tf.data never uses XLA
                row = {**common, "stage": stage, "mode": mode, "policy": policy, "jit_compile": jit,
                       "steps": steps if stage != "preprocess" else 1}
                row.update(_run_cell(stage, policy, jit, batch_size, steps, repeats, data, backend, info))
                if stage == "preprocess" and mode.endswith("xla") and row["status"] == "ok":
                    row["note"] += "; tf.data does not use XLA, so this row is a control: the same work again"
                rows.append({c: row.get(c, "") for c in COLUMNS})
                if verbose:
                    print(_row_line(rows[-1]), flush=True)
    finally:
        keras.mixed_precision.set_global_policy(saved_policy)
        determinism()
    return rows


def _pause_determinism(backend):
    """Turn TensorFlow's op determinism off for the run and return a function that restores it.

    Keras refuses jit_compile=True while op determinism is on (keras/src/trainers/trainer.py,
    model_supports_jit), and helpers.env.setup turns it on for reproducible notebooks.
    """
    if backend != "tensorflow":
        return lambda: None
    try:
        from tensorflow.python.framework import config as tf_config
    except ImportError:  # a TensorFlow without these (private) functions: XLA rows say if Keras fell back
        return lambda: None
    was = tf_config.is_op_determinism_enabled()
    tf_config.disable_op_determinism()
    return (lambda: tf_config.enable_op_determinism()) if was else (lambda: None)


def _tf_version():
    import importlib.metadata as md

    try:
        return md.version("tensorflow")
    except md.PackageNotFoundError:
        return ""


def _run_cell(stage, policy, jit, batch, steps, repeats, data, backend, info):
    import keras

    if stage in TF_ONLY and backend != "tensorflow":
        return {"status": "skipped", "note": f"TensorFlow-only stage ({TF_ONLY[stage]}); run with --backend tensorflow"}
    try:
        keras.utils.set_random_seed(0)
        built = _build_stage(stage, policy, jit, batch, steps, data)
        t = measure(built.call, repeats=repeats, warmup=2)
    except Exception as err:  # noqa: BLE001 - the row records why, and the run goes on
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        kind = "out of memory" if "memory" in str(err).lower() or "OOM" in str(err) else type(err).__name__
        return {"status": "skipped", "note": f"{kind}: {reason}"}
    finally:
        keras.backend.clear_session()
    row = {"status": "ok", "first_call_s": round(t.first_call_s, 6), "median_s": round(t.median_s, 6),
           "min_s": round(t.min_s, 6), "max_s": round(t.max_s, 6),
           "samples_per_s": round(built.samples / t.median_s, 1), "note": built.note}
    if jit and any(m.jit_compile is not True for m in built.models):
        # Keras falls back to jit_compile=False (with a warning) for models XLA cannot compile: say so
        row["jit_compile"] = False
        row["note"] += "; Keras fell back to jit_compile=False"
    if built.flops:
        row["tflops"] = round(built.flops / t.median_s / 1e12, 6)
        peak = _peak_tflops(info, policy)
        if peak:
            row["pct_peak"] = round(100 * row["tflops"] / peak, 3)
    if backend == "jax" and not jit:
        row["note"] += "; JAX without jit runs op by op (eager), so its float32/mixed rows are slow by design"
    return row


def _row_line(r: dict) -> str:
    if r["status"] != "ok":
        return f"{r['stage']:<10} {r['mode']:<9} {'skipped':>10}  {r['note']}"
    return (f"{r['stage']:<10} {r['mode']:<9} {r['median_s'] * 1e3:>8.1f} ms  first {r['first_call_s']:>7.2f} s  "
            f"{r['samples_per_s']:>11,.0f} samples/s")


def write_csv(rows, path) -> None:
    import csv
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path):
    """Read a benchmark CSV (ours or one kept in data/) into a pandas DataFrame, checking its columns."""
    import pandas as pd

    df = pd.read_csv(path)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: not a benchmark table, columns {missing} are missing; "
                         "write one with python -m helpers.bench --out FILE")
    return df


def main(argv=None) -> int:
    """python -m helpers.bench: print a table and write the CSV; exit 2 on an unknown stage, mode or backend."""
    import argparse
    import os
    import sys
    import time

    parser = argparse.ArgumentParser(prog="python -m helpers.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--stages", nargs="+", metavar="STAGE", help=f"default: all of {' '.join(STAGES)}")
    parser.add_argument("--modes", nargs="+", metavar="MODE", help=f"default: all of {' '.join(MODES)}")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per cell after warm-up (default 5)")
    parser.add_argument("--batch-size", type=int, default=256, help="samples per step (default 256)")
    parser.add_argument("--steps", type=int, default=10, help="steps per timed call (default 10)")
    parser.add_argument("--quick", action="store_true", help="3 repeats of 2 steps: about a minute on 2 CPU cores")
    parser.add_argument("--backend", default="tensorflow", help=f"Keras backend: {', '.join(BACKENDS)}")
    parser.add_argument("--out", default=None, help="CSV to write (default: artifacts/benchmark.csv)")
    args = parser.parse_args(argv)
    if args.backend not in BACKENDS:
        parser.exit(2, f"python -m helpers.bench: unknown backend {args.backend!r}; valid backends: "
                       f"{', '.join(BACKENDS)}\n")
    if "keras" in sys.modules and sys.modules["keras"].backend.backend() != args.backend:
        parser.exit(2, f"python -m helpers.bench: Keras is already loaded with another backend\n")
    os.environ["KERAS_BACKEND"] = args.backend
    try:
        _choose("stage", args.stages, STAGES)
        _choose("mode", args.modes, MODES)
        t0 = time.perf_counter()
        rows = run(args.stages, args.modes, repeats=args.repeats, batch_size=args.batch_size, steps=args.steps,
                   quick=args.quick, backend=args.backend)
    except BenchArgumentError as err:
        parser.exit(2, f"python -m helpers.bench: {err}\n")
    from .env import artifacts_dir

    out = args.out or artifacts_dir() / "benchmark.csv"
    write_csv(rows, out)
    r = rows[0]
    print(f"{len(rows)} cells in {time.perf_counter() - t0:.0f} s on {r['device']} {r['device_name']} "
          f"({r['backend']} {r['backend_version']}, Keras {r['keras']}, batch {r['batch_size']}); wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
