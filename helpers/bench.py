"""The course's stages timed under float32, mixed precision and XLA: `python -m helpers.bench` (notebook 06).

The stage catalogue and its command line. The timing harness it uses (measure, interleave, Timing, sync,
the epoch timer) is `helpers.timing`; the card table it reads peaks from is `helpers.cards`.

Stages: the input pipeline of 01 (`preprocess`), the hand-written SGD steps of 02/03 (`linear`, `softmax`),
the CNN of 04 trained with `fit` and run with `predict` (`cnn_train`, `cnn_infer`), 05's fine-tuning
(`finetune`), and three where the hardware decides: `dense_big` (two Dense(4096) at batch 8192, the
TensorFlow mixed-precision guide's example), `matmul` (a square GEMM) and `bandwidth` (a large copy).
Training and inference are timed the way people run them: `fit`/`predict` over data already in tensors,
with `steps_per_execution`, per-step latency in `us_per_step`. Modes are interleaved round by round, each
repeat runs for a minimum time, and a `control` row (matmul in float32, built and timed twice under two
labels) measures the noise floor that a speed-up must clear.
"""
from __future__ import annotations

import os
import platform
import time

from .timing import Timing, epoch_timer, first_call, interleave, measure, sync  # noqa: F401  (the harness)

STAGES = ("preprocess", "linear", "softmax", "cnn_train", "finetune", "cnn_infer", "dense_big", "matmul", "bandwidth")
MODES = ("float32", "mixed", "xla", "mixed_xla")
CONTROL_STAGE = "matmul"
BACKENDS = ("tensorflow", "jax", "torch")
TF_ONLY = {"preprocess": "tf.data", "linear": "tf.GradientTape", "softmax": "tf.GradientTape"}
COLUMNS = ("stage", "mode", "backend", "device", "device_name", "compute_capability", "policy", "jit_compile",
           "batch_size", "steps", "steps_per_execution", "repeats", "first_call_s", "median_s", "iqr_s", "min_s",
           "max_s", "us_per_step", "samples_per_s", "tflops", "gbps", "pct_peak", "peak_row", "peak_precision",
           "status", "note",
           "tensorflow", "keras", "backend_version", "python")
FLOPS_NOTE = "training FLOPs = 3 x forward (backward costs about twice the forward pass)"
QUICK = {"repeats": 3, "steps": 2, "min_time_s": 0.05}
FULL = {"repeats": 5, "steps": 20, "min_time_s": 0.2}


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
    """kind (GPU/CPU), name, compute capability, memory (GiB) and backend version, asked of the backend."""
    info = {"device": "CPU", "device_name": platform.processor() or platform.machine(), "compute_capability": "",
            "vram_gib": None}
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
            stats = dev.memory_stats() or {}
            info.update(device="GPU", device_name=dev.device_kind,
                        compute_capability=str(getattr(dev, "compute_capability", "") or ""),
                        vram_gib=stats.get("bytes_limit", 0) / 2 ** 30 or None)
    else:
        import torch

        info["backend_version"] = torch.__version__
        if torch.cuda.is_available():
            cc = torch.cuda.get_device_capability(0)
            info.update(device="GPU", device_name=torch.cuda.get_device_name(0), compute_capability=f"{cc[0]}.{cc[1]}",
                        vram_gib=torch.cuda.get_device_properties(0).total_memory / 2 ** 30)
    if info["device"] == "GPU" and not info["vram_gib"]:
        from .cards import detect

        found = detect()
        if found and found.get("vram_gb"):
            info["vram_gib"] = found["vram_gb"] * 1e9 / 2 ** 30
    return info


def mixed_policy(info: dict, force: bool = False) -> tuple:
    """(policy or None, reason) for the mixed rows on this device: the rule of helpers.cards.mixed_policy.

    force=True returns a policy even where 16-bit units are slow or missing, to show the loss on purpose.
    """
    from .cards import mixed_policy as rule

    gpu = info.get("device") == "GPU"
    policy, reason = rule(info.get("compute_capability") or None if gpu else None, info.get("device_name", ""),
                          cpu_bf16=info.get("cpu_bf16"))
    if policy is None and force:
        cc = info.get("compute_capability") or "0"
        policy = "mixed_float16" if gpu and float(cc) >= 6.0 else "mixed_bfloat16"
        reason = f"forced (--force-mixed): {reason}"
    return policy, reason


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


def _card(info):
    if info.get("device") != "GPU":
        return None, ""
    from .cards import match_card

    row, how = match_card(info.get("device_name", ""), info.get("vram_gib"), explain=True)
    return row, (f"{row['name']} ({how})" if row else how)


def tf32_enabled(backend: str) -> bool:
    """Whether float32 matrix products may run as TF32 on Tensor Cores (compute capability 8.0 and later).

    TensorFlow: on by default (tf.config.experimental.tensor_float_32_execution_enabled; NVIDIA_TF32_OVERRIDE=0
    turns it off). JAX: its default matmul precision allows TF32 unless jax_default_matmul_precision is
    "highest"/"float32". PyTorch: torch.backends.cuda.matmul.allow_tf32 (off by default since 1.12).
    """
    if os.environ.get("NVIDIA_TF32_OVERRIDE") == "0":
        return False
    if backend == "tensorflow":
        from .env import import_tensorflow

        return bool(import_tensorflow().config.experimental.tensor_float_32_execution_enabled())
    if backend == "jax":
        import jax

        precision = str(jax.config.jax_default_matmul_precision or "default").lower()
        return precision not in ("highest", "float32", "precision.highest")
    import torch

    return bool(torch.backends.cuda.matmul.allow_tf32)


def _peak_tflops(info: dict, policy: str):
    """(peak TFLOPS, precision read against) for this policy from the table of notebook 07; (None, "") off the
    table or on a CPU.

    float32 rows are read against the TF32 peak where the card has TF32 and `info["tf32"]` says it is on
    (TensorFlow's default from compute capability 8.0): an A100 runs float32 GEMMs at up to 156 TFLOPS there,
    not 19.5. A name shared by several rows (RTX 3080 10/12 GB) is resolved by `info["vram_gib"]`.
    """
    from .cards import peak_tflops

    card, _ = _card(info)
    if not card:
        return None, ""
    precision = {"mixed_float16": "fp16", "mixed_bfloat16": "bf16"}.get(policy, "fp32")
    if precision == "fp32" and info.get("tf32") and card["tf32_native"] and card["tf32_tensor_tflops"]:
        precision = "tf32"
    return peak_tflops(card, precision), precision


PEAK_HEADROOM = 0.15    # GeForce cards boost past their rated clock: 4090 FP16 measured 165.6 against 165.2 rated


def peak_check(table, headroom: float = PEAK_HEADROOM) -> list:
    """Sentences for the rows whose percent of peak passes 100 % by more than `headroom` (empty when all is well).

    On a real card such a row means the peak it was read against is wrong (another variant, TF32 on but read
    as FP32) or the timing is (work skipped, not synchronised): worth a sentence, not a stopped notebook.
    """
    import pandas as pd

    pct = pd.to_numeric(table["pct_peak"], errors="coerce")
    over = table[pct > 100 * (1 + headroom)]
    return [f"{r['stage']} {r['mode']}: {float(r['pct_peak']):.0f} % of the {r.get('peak_precision') or ''} peak of "
            f"{r['peak_row']}: check that this is the right row and that TF32 is read as such"
            for _, r in over.iterrows()]


class _Stage:
    """What one cell runs: `call()` does `steps` steps and returns something small to synchronise."""

    def __init__(self, call, samples, flops=None, note="", models=(), bytes_moved=None, spe=""):
        self.call, self.samples, self.flops, self.note = call, samples, flops, note
        self.models, self.bytes_moved, self.spe = models, bytes_moved, spe


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


def sizes(quick: bool, gpu: bool) -> dict:
    """Problem sizes of the stages where the hardware decides, by --quick and device."""
    if gpu:
        return {"matmul_n": 2048 if quick else 8192, "dense_width": 4096, "dense_batch": 2048 if quick else 8192,
                "copy_floats": 2 ** 26}
    return {"matmul_n": 1024 if quick else 2048, "dense_width": 1024, "dense_batch": 1024 if quick else 4096,
            "copy_floats": 2 ** 24}


def stage_flops(stage: str, batch: int, steps: int, *, model=None, n: int = 0, width: int = 0) -> int | None:
    """FLOPs of one call (`steps` steps) of a stage; None where they are not counted (preprocess, linear, copy).

    softmax: forward 2*784*10 per sample and the weight gradient as much again; x needs no gradient (2x).
    cnn_train, dense_big: 3x forward. cnn_infer: forward. matmul: 2n^3 per product.
    """
    if stage == "softmax":
        return 2 * 2 * 784 * 10 * batch * steps
    if stage == "cnn_train":
        return 3 * forward_flops(model) * batch * steps
    if stage == "cnn_infer":
        return forward_flops(model) * batch * steps
    if stage == "dense_big":
        return 3 * 2 * (784 * width + width * width + width * 10) * batch * steps
    if stage == "matmul":
        return 2 * n ** 3 * steps
    return None


def _compiled(fn, jit, backend):
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=jit)
    if backend == "jax":
        import jax

        return jax.jit(fn)
    return fn


def _build_stage(stage, policy, jit, batch, steps, data, backend="tensorflow", quick=False, gpu=False):
    """Set the precision policy and build the stage; model code comes from helpers.models and helpers.steps."""
    import keras
    import numpy as np

    from . import models

    x_img, y_img, data_note = data
    keras.mixed_precision.set_global_policy(policy)
    compute = keras.mixed_precision.global_policy().compute_dtype
    size = sizes(quick, gpu)
    rng = np.random.default_rng(0)
    spe = min(steps, 10)

    if stage == "preprocess":
        from .data import make_dataset
        from .env import import_tensorflow

        tf = import_tensorflow()
        ds = make_dataset(x_img, y_img, batch, seed=0, cache=False)
        if compute != "float32":
            ds = ds.map(lambda x, y: (tf.cast(x, compute), y))

        def call():
            last = None
            for last in ds:
                pass
            return last
        return _Stage(call, len(y_img), note=f"tf.data on the CPU, the mode only changes the output dtype; "
                      f"one call = one pass over {len(y_img):,} images; {data_note}")

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
            variables = [theta0, theta1]
        else:
            idx = rng.integers(0, len(y_img), batch)
            x = tf.constant((x_img[idx].reshape(batch, 784) / 255.0).astype("float32"))
            y = tf.constant(y_img[idx].astype("int64"))
            W, b = tf.Variable(tf.zeros((784, 10))), tf.Variable(tf.zeros(10))

            def loss_fn(x, y):            # softmax regression: z = xW + b, mean cross-entropy in float32
                z = tf.cast(x, compute) @ tf.cast(W, compute) + tf.cast(b, compute)
                return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, tf.cast(z, tf.float32)))
            variables = [W, b]
        step = tf.function(make_sgd_step(variables, 0.1, loss_fn, loss_scale=scale), jit_compile=jit)

        def call():
            for _ in range(steps):
                loss = step(x, y)
            return loss
        note = "the SGD step of helpers.steps (notebooks 02/03), one Python call per step" + (
            f"; static loss scale {scale:g}" if scale else "")
        if stage == "linear":
            note += "; two scalars: the time per step is overhead, not arithmetic"
        return _Stage(call, steps * batch, stage_flops(stage, batch, steps), note)

    if stage in ("matmul", "bandwidth"):
        if stage == "bandwidth" and policy != "float32":
            raise _Skip("the copy moves float32 bytes: see the float32 row")
        if stage == "matmul":
            n = size["matmul_n"]
            a = keras.random.normal((n, n), dtype=compute, seed=0)
            b = keras.random.normal((n, n), dtype=compute, seed=1)
            f = _compiled(keras.ops.matmul, jit, backend)

            def call():
                for _ in range(steps):
                    c = f(a, b)
                return c[:1, :1]              # a slice depends on the product: syncing it waits for it
            return _Stage(call, None, stage_flops("matmul", batch, steps, n=n), f"square GEMM, n = {n}, {compute}")
        count = size["copy_floats"]
        x = keras.ops.ones((count,), dtype="float32")
        f = _compiled(lambda v: v + 1.0, jit, backend)

        def call():
            for _ in range(steps):
                out = f(x)
            return out[:1]
        return _Stage(call, None, None, f"y = x + 1 over {count * 4 / 2**20:.0f} MiB: reads and writes every byte",
                      bytes_moved=2 * count * 4 * steps)

    # Keras stages: fit / predict over data already in tensors, several steps per execution
    idx = rng.integers(0, len(y_img), steps * batch)
    xt = keras.ops.convert_to_tensor((x_img[idx, :, :, None] / 255.0).astype("float32"))
    yt = keras.ops.convert_to_tensor(y_img[idx].astype("int64"))

    if stage == "dense_big":
        width, big = size["dense_width"], size["dense_batch"]
        inputs = keras.Input((784,))
        h = keras.layers.Dense(width, activation="relu")(inputs)
        h = keras.layers.Dense(width, activation="relu")(h)
        outputs = keras.layers.Activation("softmax", dtype="float32")(keras.layers.Dense(10)(h))
        model = keras.Model(inputs, outputs)
        model.compile(keras.optimizers.RMSprop(), "sparse_categorical_crossentropy", jit_compile=jit,
                      steps_per_execution=spe)
        xd = keras.random.normal((steps * big, 784), seed=0)
        yd = keras.ops.convert_to_tensor(rng.integers(0, 10, steps * big))

        def call():
            return model.fit(xd, yd, batch_size=big, epochs=1, shuffle=False, verbose=0).history["loss"][-1]
        return _Stage(call, steps * big, stage_flops("dense_big", big, steps, width=width),
                      f"fit, Dense({width}) x 2 at batch {big} (the mixed-precision guide's model); {FLOPS_NOTE}",
                      (model,), spe=spe)

    if stage == "cnn_infer":
        model = models.improved_cnn(compile=False, augment=False)
        model.compile(jit_compile=jit, steps_per_execution=spe)

        def call():
            return model.predict(xt, batch_size=batch, verbose=0)[:1]
        return _Stage(call, steps * batch, stage_flops("cnn_infer", batch, steps, model=model),
                      f"predict, improved CNN of 04; {data_note}", (model,), spe=spe)

    if stage == "cnn_train":
        model = models.improved_cnn(compile=False, augment=False)
        model.compile(keras.optimizers.Adam(0.005), "sparse_categorical_crossentropy", jit_compile=jit,
                      steps_per_execution=spe)

        def call():
            return model.fit(xt, yt, batch_size=batch, epochs=1, shuffle=False, verbose=0).history["loss"][-1]
        return _Stage(call, steps * batch, stage_flops("cnn_train", batch, steps, model=model),
                      f"fit, improved CNN of 04 without its augmentation layers (XLA cannot compile them); "
                      f"{FLOPS_NOTE}; {data_note}", (model,), spe=spe)

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
                      jit_compile=jit, steps_per_execution=max(1, spe // 2))
        return model, convs[-1]

    head, _ = transfer(False)
    tuned, top = transfer(True)
    y5 = keras.ops.convert_to_tensor(y_img[idx].astype("int64") % 5)
    half = max(1, steps // 2) * batch
    # a step = forward + backward of what trains: the head (Dense, 2x its forward) and, in stage 2, the top
    # convolution's weight gradient (1x its forward; no gradient is needed below it)
    fwd, dense = forward_flops(head), 2 * 2 * int(np.prod(head.layers[-1].kernel.shape))
    top_conv = 2 * top.output.shape[1] * top.output.shape[2] * int(np.prod(top.kernel.shape))
    flops = batch * ((steps // 2) * (fwd + dense) + (steps - steps // 2) * (fwd + dense + top_conv))

    def call():
        head.fit(xt[:half], y5[:half], batch_size=batch, epochs=1, shuffle=False, verbose=0)
        return tuned.fit(xt[half:], y5[half:], batch_size=batch, epochs=1, shuffle=False, verbose=0).history["loss"][-1]
    return _Stage(call, steps * batch, flops,
                  f"fit: half the steps train a new head on a frozen base, half also the top convolution (05); "
                  f"{data_note}", (head, tuned), spe=max(1, spe // 2))


class _Skip(Exception):
    """A cell that does not apply to this stage and mode; the message says why."""


def run(stages=None, modes=None, *, repeats: int | None = None, batch_size: int = 256, steps: int | None = None,
        quick: bool = False, backend: str | None = None, verbose: bool = True, force_mixed: bool = False,
        min_time_s: float | None = None, control: bool = True) -> list[dict]:
    """Time every stage under every mode, modes interleaved; one dict per cell with the COLUMNS as keys.

    quick: 3 repeats of 2 steps, each repeat at least 0.05 s (about a minute on 2 CPU cores); otherwise
    5 repeats of 20 steps, at least 0.2 s each. Mixed rows follow helpers.cards.mixed_policy: where no
    16-bit unit is fast they are `skipped` with the reason, unless force_mixed. A cell that fails (out of
    memory, an op the device lacks) becomes a `skipped` row with the reason in `note`; the run goes on.
    control: add the control row (CONTROL_STAGE in float32 again, under the mode label "control").
    """
    from .env import import_tensorflow

    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        import_tensorflow()  # quietly, before Keras imports it with its start-up chatter

    stages = _choose("stage", stages, STAGES)
    modes = _choose("mode", modes, MODES)
    preset = QUICK if quick else FULL
    repeats = preset["repeats"] if repeats is None else repeats
    steps = preset["steps"] if steps is None else steps
    min_time_s = preset["min_time_s"] if min_time_s is None else min_time_s
    for name, value in (("repeats", repeats), ("batch_size", batch_size), ("steps", steps)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise BenchArgumentError(f"{name}={value!r} must be a positive integer")
    import keras

    active = keras.backend.backend()
    backend = backend or active
    if backend not in BACKENDS:
        raise BenchArgumentError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if backend != active:
        raise BenchArgumentError(f"Keras is already running on {active!r}; set KERAS_BACKEND={backend} before "
                                 f"Keras is imported (or use python -m helpers.bench --backend {backend})")
    info = device_info(backend)
    info["tf32"] = info["device"] == "GPU" and tf32_enabled(backend)
    policy_mixed, mixed_reason = mixed_policy(info, force_mixed)
    card, peak_row = _card(info)
    common = {"backend": backend, **{k: v for k, v in info.items() if k in COLUMNS}, "batch_size": batch_size,
              "repeats": repeats, "keras": keras.__version__, "python": platform.python_version(),
              "tensorflow": info.get("backend_version", "") if backend == "tensorflow" else _tf_version(),
              "peak_row": peak_row}
    data = _images()
    rows = []
    saved_policy = keras.mixed_precision.global_policy().name
    determinism = _pause_determinism(backend)
    try:
        for stage in stages:
            labels = list(modes) + (["control"] if control and stage == CONTROL_STAGE and "float32" in modes else [])
            built, firsts, cells = {}, {}, {}
            for mode in labels:
                policy = (policy_mixed or "float32") if mode.startswith("mixed") else "float32"
                jit = mode.endswith("xla")
                row = {**common, "stage": stage, "mode": mode, "policy": policy, "jit_compile": jit,
                       "steps": steps if stage != "preprocess" else 1}
                cells[mode] = row
                reason = _why_skip(stage, mode, backend, policy_mixed, mixed_reason)
                if reason:
                    row.update(status="skipped", note=reason)
                    continue
                try:
                    keras.utils.set_random_seed(0)
                    built[mode] = _build_stage(stage, policy, jit, batch_size, steps, data, backend, quick,
                                               info["device"] == "GPU")
                    firsts[mode] = first_call(built[mode].call)
                except _Skip as why:
                    row.update(status="skipped", note=str(why))
                    built.pop(mode, None)
                except Exception as err:  # noqa: BLE001 - the row records why, and the run goes on
                    row.update(status="skipped", note=_reason(err))
                    built.pop(mode, None)
            timings = {}
            if built:
                try:
                    timings = interleave({m: b.call for m, b in built.items()}, repeats=repeats, warmup=2,
                                         min_time_s=min_time_s, first_calls=firsts)
                except Exception as err:  # noqa: BLE001
                    for m in built:
                        cells[m].update(status="skipped", note=_reason(err))
            for mode in labels:
                row = cells[mode]
                if mode in timings:
                    row.update(_result(built[mode], timings[mode], row, info, card))
                    if mode == "control":
                        row["note"] = "control: the float32 cell built and timed again, interleaved: the noise floor"
                rows.append({c: row.get(c, "") for c in COLUMNS})
                if verbose:
                    print(_row_line(rows[-1]), flush=True)
            keras.backend.clear_session()
    finally:
        keras.mixed_precision.set_global_policy(saved_policy)
        determinism()
    return rows


def _why_skip(stage, mode, backend, policy_mixed, mixed_reason):
    if stage in TF_ONLY and backend != "tensorflow":
        return f"TensorFlow-only stage ({TF_ONLY[stage]}); run with --backend tensorflow"
    if mode.startswith("mixed") and policy_mixed is None:
        return f"{mixed_reason} (--force-mixed times it anyway)"
    if stage == "preprocess" and mode.endswith("xla"):
        return "tf.data does not use XLA: see the float32 and mixed rows"
    return ""


def _reason(err):
    text = str(err).strip()
    reason = text.splitlines()[0][:200] if text else ""
    kind = "out of memory" if "memory" in text.lower() or "OOM" in text else type(err).__name__
    return f"{kind}: {reason}"


def _result(built, t: Timing, row, info, card) -> dict:
    out = {"status": "ok", "first_call_s": round(t.first_call_s, 6), "median_s": round(t.median_s, 6),
           "iqr_s": round(t.iqr_s, 6), "min_s": round(t.min_s, 6), "max_s": round(t.max_s, 6),
           "us_per_step": round(t.median_s / row["steps"] * 1e6, 2), "note": built.note,
           "steps_per_execution": built.spe}
    if built.samples and row["stage"] != "linear":
        out["samples_per_s"] = round(built.samples / t.median_s, 1)
    if row["jit_compile"] and any(m.jit_compile is not True for m in built.models):
        # Keras falls back to jit_compile=False (with a warning) for models XLA cannot compile: say so
        out["jit_compile"] = False
        out["note"] += "; Keras fell back to jit_compile=False"
    if built.flops:
        out["tflops"] = round(built.flops / t.median_s / 1e12, 6)
        peak, precision = _peak_tflops(info, row["policy"])
        if peak:
            out["pct_peak"] = round(100 * out["tflops"] / peak, 3)
            out["peak_precision"] = precision
    if row["stage"] == "bandwidth" and built.bytes_moved:
        out["gbps"] = round(built.bytes_moved / t.median_s / 1e9, 3)
        if card:
            out["pct_peak"] = round(100 * out["gbps"] / card["bandwidth_gbs"], 3)
            out["peak_precision"] = "bandwidth"
    if row["backend"] == "jax" and not row["jit_compile"] and row["stage"] not in ("matmul", "bandwidth"):
        out["note"] += "; JAX without jit runs op by op (eager), so its float32/mixed rows are slow by design"
    return out


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


def _row_line(r: dict) -> str:
    if r["status"] != "ok":
        return f"{r['stage']:<10} {r['mode']:<9} {'skipped':>10}  {r['note']}"
    rate = (f"{r['samples_per_s']:>11,.0f} samples/s" if r["samples_per_s"] != "" else
            f"{r['tflops']:>11.3f} TFLOP/s" if r["tflops"] != "" else
            f"{r['gbps']:>11.1f} GB/s" if r["gbps"] != "" else f"{r['us_per_step']:>11,.0f} µs/step")
    return (f"{r['stage']:<10} {r['mode']:<9} {r['median_s'] * 1e3:>8.1f} ms ± {r['iqr_s'] * 1e3:<6.1f} "
            f"first {r['first_call_s']:>6.2f} s  {rate}")


def noise_floor(table) -> float:
    """How far apart two timings of the same work land here: the control row against its float32 twin."""
    ok = table[table["status"] == "ok"]
    twin = ok[(ok["stage"] == CONTROL_STAGE) & ok["mode"].isin(["float32", "control"])].set_index("mode")["median_s"]
    return abs(twin["control"] / twin["float32"] - 1) if {"float32", "control"} <= set(twin.index) else 0.0


def speedups(table, floor: float | None = None):
    """Speed-up over float32 per stage and mode as text: 'n.nnx', or 'no measurable difference' when the
    ratio lies inside the noise: the control row's floor or, if larger, the two rows' relative IQRs added.
    Returns (DataFrame of strings, the control floor)."""
    import pandas as pd

    floor = noise_floor(table) if floor is None else floor
    ok = table[table["status"] == "ok"].set_index(["stage", "mode"])
    out = {}
    for stage in dict.fromkeys(table["stage"]):
        out[stage] = {}
        for mode in [m for m in MODES if m in set(table["mode"])]:
            if (stage, mode) not in ok.index or (stage, "float32") not in ok.index:
                out[stage][mode] = "skipped"
                continue
            base, row = ok.loc[(stage, "float32")], ok.loc[(stage, mode)]
            ratio = base["median_s"] / row["median_s"]
            noise = max(floor, base["iqr_s"] / base["median_s"] + row["iqr_s"] / row["median_s"])
            out[stage][mode] = "1 (baseline)" if mode == "float32" else (
                "no measurable difference" if abs(ratio - 1) <= noise else f"{ratio:.2f}x")
    return pd.DataFrame(out).T, floor


def time_to_accuracy(modes=None, *, target: float | None = None, max_epochs: int = 20, budget_s: float = 600.0,
                     batch_size: int = 128, quick: bool = False, verbose: bool = True, force_mixed: bool = False) -> list:
    """Train the course's CNN until its test accuracy reaches `target`; wall seconds from model creation.

    target: 0.98 on the offline subset, 0.99 on full MNIST. The clock runs from building the model
    (compile included) to the epoch that reaches the target, evaluations included (their share is
    `eval_s`). quick: float32 only, at most 15 epochs or 90 s. One row per mode: reached, accuracy, epochs.
    """
    from .env import import_tensorflow

    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        import_tensorflow()  # quietly, before Keras imports it
    import keras

    from . import models
    from .data import load_mnist
    modes = _choose("mode", modes or (["float32"] if quick else ["float32", "mixed", "xla", "mixed_xla"]), MODES)
    if quick:
        max_epochs, budget_s = min(max_epochs, 15), min(budget_s, 90.0)
    m = load_mnist(verbose=False)
    full = len(m.y_train) >= 60_000
    target = target if target is not None else (0.99 if full else 0.98)
    x = (m.x_train[..., None] / 255.0).astype("float32")
    xt = (m.x_test[..., None] / 255.0).astype("float32")
    backend = keras.backend.backend()
    info = device_info(backend)
    policy_mixed, reason = mixed_policy(info, force_mixed)
    rows, saved = [], keras.mixed_precision.global_policy().name
    determinism = _pause_determinism(backend)
    try:
        for mode in modes:
            row = {"mode": mode, "target": target, "data": f"{'full MNIST' if full else 'offline subset'}, "
                   f"{len(m.y_train):,} training / {len(m.y_test):,} test images", "device": info["device"],
                   "device_name": info["device_name"], "backend": backend, "keras": keras.__version__}
            if mode.startswith("mixed") and policy_mixed is None:
                rows.append({**row, "status": "skipped", "note": reason})
                continue
            keras.mixed_precision.set_global_policy(policy_mixed if mode.startswith("mixed") else "float32")
            keras.utils.set_random_seed(0)
            t0 = time.perf_counter()
            model = models.improved_cnn(augment=False, jit_compile=mode.endswith("xla"))
            eval_s, acc, epochs = 0.0, 0.0, 0
            while epochs < max_epochs and time.perf_counter() - t0 < budget_s:
                model.fit(x, m.y_train, batch_size=batch_size, epochs=1, shuffle=True, verbose=0)
                epochs += 1
                t1 = time.perf_counter()
                acc = float(model.evaluate(xt, m.y_test, batch_size=1000, verbose=0)[1])
                eval_s += time.perf_counter() - t1
                if acc >= target:
                    break
            row.update(status="ok", reached=acc >= target, accuracy=round(acc, 4), epochs=epochs,
                       wall_s=round(time.perf_counter() - t0, 2), eval_s=round(eval_s, 2))
            rows.append(row)
            if verbose:
                print(f"{mode:<9} {'reached' if row['reached'] else 'did not reach'} {target:.2f}: test accuracy "
                      f"{acc:.4f} after {epochs} epochs, {row['wall_s']:.1f} s from model creation "
                      f"(evaluations {eval_s:.1f} s)", flush=True)
            keras.backend.clear_session()
    finally:
        keras.mixed_precision.set_global_policy(saved)
        determinism()
    return rows


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
    import sys

    parser = argparse.ArgumentParser(prog="python -m helpers.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--stages", nargs="+", metavar="STAGE", help=f"default: all of {' '.join(STAGES)}")
    parser.add_argument("--modes", nargs="+", metavar="MODE", help=f"default: all of {' '.join(MODES)}")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per cell (default 5; --quick 3)")
    parser.add_argument("--batch-size", type=int, default=256, help="samples per step (default 256)")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed call (default 20; --quick 2)")
    parser.add_argument("--quick", action="store_true", help="3 repeats of 2 steps, smaller GEMMs: about a minute "
                        "on 2 CPU cores")
    parser.add_argument("--force-mixed", action="store_true",
                        help="time the mixed rows even where 16-bit units are slow or missing (to see the loss)")
    parser.add_argument("--time-to-accuracy", action="store_true",
                        help="train the CNN until it reaches the target test accuracy, per mode")
    parser.add_argument("--backend", default="tensorflow", help=f"Keras backend: {', '.join(BACKENDS)}")
    parser.add_argument("--out", default=None, help="CSV to write (default: artifacts/benchmark.csv)")
    args = parser.parse_args(argv)
    if args.backend not in BACKENDS:
        parser.exit(2, f"python -m helpers.bench: unknown backend {args.backend!r}; valid backends: "
                       f"{', '.join(BACKENDS)}\n")
    if "keras" in sys.modules and sys.modules["keras"].backend.backend() != args.backend:
        parser.exit(2, "python -m helpers.bench: Keras is already loaded with another backend\n")
    os.environ["KERAS_BACKEND"] = args.backend
    t0 = time.perf_counter()
    try:
        _choose("stage", args.stages, STAGES)
        _choose("mode", args.modes, MODES)
        if args.time_to_accuracy:
            rows = time_to_accuracy(args.modes, quick=args.quick, force_mixed=args.force_mixed)
            done = [r for r in rows if r["status"] == "ok"]
            print(f"{len(rows)} modes in {time.perf_counter() - t0:.0f} s on {rows[0]['device']} "
                  f"{rows[0]['device_name']} ({rows[0]['backend']}, Keras {rows[0]['keras']}; {rows[0]['data']}); "
                  f"best: " + (min((r for r in done if r["reached"]), key=lambda r: r["wall_s"], default={}).get(
                      "mode", "none reached the target")))
            return 0
        rows = run(args.stages, args.modes, repeats=args.repeats, batch_size=args.batch_size, steps=args.steps,
                   quick=args.quick, backend=args.backend, force_mixed=args.force_mixed)
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
