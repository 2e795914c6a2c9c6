"""The course's stages timed under float32, mixed precision and XLA: `python -m helpers.bench` (notebook 06).

The stage catalogue and its command line. The timing harness it uses (measure, interleave, Timing, sync,
the epoch timer) is `helpers.timing`; the card table it reads peaks from is `helpers.cards`.

Stages, one small builder each in `BUILDERS`: the input pipeline of 01 (`preprocess`), the hand-written SGD
steps of 02/03 (`linear`, `softmax`), the CNN of 04 trained with `fit` and run with `predict` (`cnn_train`,
`cnn_infer`), 05's fine-tuning (`finetune`), and three where the hardware decides: `dense_big` (two
Dense(4096) at batch 8192, the TensorFlow mixed-precision guide's example), `matmul` (a square GEMM) and
`bandwidth` (a large copy).

**The step, not the call.** A Keras stage runs `fit`/`predict` on batches that stay where the step runs
(TensorFlow: a cached `tf.data` pipeline, prefetched to the GPU) with `steps_per_execution`, at two step counts;
the time per step is the slope between them (`us_per_step`), and what one call costs whatever its length,
fit()'s set-up, callbacks and iterator, is the intercept (`fixed_s`): the part a learner's short cell feels.
A Keras stage's first call (`first_call_s`: tracing and, under XLA, compiling) is its short call, whose few steps
let the compile stand out; `steady_s` is the median of the timed calls of the same length, its comparison.
Modes are interleaved round by round, each repeat runs for a minimum time, a `control` row (matmul in
float32, built and timed twice under two labels) measures the noise floor that a speed-up must clear, and
on a card with TF32 or bf16 two extra rows say what they buy: `float32` with TF32 off, and `mixed_float16`
beside `mixed_bfloat16` for the GEMM. On a GPU the run warms up for a second before timing, samples the SM
clock, power, temperature and utilisation with nvidia-smi during each stage, and records each Keras stage's
peak memory.
"""
from __future__ import annotations

import contextlib
import logging
import os
import platform
import time
import warnings
from dataclasses import dataclass

from .timing import Timing, epoch_timer, first_call, interleave, measure, sync  # noqa: F401  (the harness)

STAGES = ("preprocess", "linear", "softmax", "cnn_train", "finetune", "cnn_infer", "dense_big", "matmul", "bandwidth")
MODES = ("float32", "mixed", "xla", "mixed_xla")
CONTROL_STAGE = "matmul"
EXTRA = {"tf32_off": ("matmul", "dense_big"), "mixed_float16": ("matmul",)}   # extra rows where the card has them
BACKENDS = ("tensorflow", "jax", "torch")
TF_ONLY = {"preprocess": "tf.data", "linear": "tf.GradientTape", "softmax": "tf.GradientTape"}
FIT_STAGES = ("cnn_train", "finetune", "cnn_infer", "dense_big")
TELEMETRY = ("sm_clock_mhz", "power_w", "temp_c", "util_pct")
COLUMNS = ("stage", "mode", "backend", "device", "device_name", "compute_capability", "policy", "jit_compile",
           "batch_size", "steps", "steps_short", "steps_per_execution", "repeats", "first_call_s", "steady_s",
           "median_s", "iqr_s", "min_s", "max_s", "us_per_step", "step_iqr_us", "fixed_s", "samples_per_s", "tflops",
           "gbps", "pct_peak", "peak_row", "peak_precision", "peak_mem_gb", *TELEMETRY, "status", "note", "tensorflow",
           "keras", "backend_version", "python")
NUMERIC = ("batch_size", "steps", "steps_short", "steps_per_execution", "repeats", "first_call_s", "steady_s",
           "median_s", "iqr_s", "min_s", "max_s", "us_per_step", "step_iqr_us", "fixed_s", "samples_per_s", "tflops",
           "gbps", "pct_peak", "peak_mem_gb", *TELEMETRY)
FLOPS_NOTE = ("training FLOPs = 3 x forward less the first layer's input gradient, which is never computed "
              "(backward costs about twice the forward pass)")
# quick: 3 repeats, plain stages 2 steps a call, Keras stages about 2,048 samples in the long call;
# full: 5 repeats of 20 steps, Keras stages 50 and 250 steps at 50 steps per execution, a second of warm-up
QUICK = {"repeats": 3, "steps": 2, "min_time_s": 0.05, "fit_samples": 2048, "spe": 2, "warmup_s": 0.0}
FULL = {"repeats": 5, "steps": 20, "min_time_s": 0.2, "fit_steps": (50, 250), "spe": 50, "warmup_s": 1.0}


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


def _mixed_to_run(info: dict, force: bool) -> tuple:
    """mixed_policy for rows that run kernels: a forced bfloat16 policy is refused where oneDNN is capped below
    its bfloat16 kernels (TensorFlow on a CPU with ONEDNN_MAX_CPU_ISA set low), since oneDNN would abort the
    process there; the row is then skipped with the reason."""
    from .cards import ONEDNN_BF16_ISAS, onednn_isa_cap

    policy, reason = mixed_policy(info, force)
    cap = onednn_isa_cap()
    if (policy == "mixed_bfloat16" and info.get("device") != "GPU" and info.get("backend", "tensorflow") == "tensorflow"
            and cap and cap not in ONEDNN_BF16_ISAS):
        return None, (f"not even forced: oneDNN is capped at {cap} (ONEDNN_MAX_CPU_ISA), below its bfloat16 "
                      "kernels; unset the cap to run the mixed rows")
    return policy, reason


def forward_flops(model) -> int:
    """Multiply-adds x 2 of every Dense and Conv2D layer for one sample (other layers are cheap and not counted)."""
    return sum(_layer_flops(layer) for layer in _all_layers(model))


def _layer_flops(layer) -> int:
    import keras

    if isinstance(layer, keras.layers.Dense):
        return 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
    if isinstance(layer, keras.layers.Conv2D):
        h, w = layer.output.shape[1:3]
        kh, kw, cin, cout = layer.kernel.shape
        return 2 * h * w * kh * kw * cin * cout
    return 0


def training_flops(model) -> int:
    """FLOPs of one sample's training step: forward, weight gradients (1x) and input gradients (1x) of every
    Dense and Conv2D layer, less the first such layer's input gradient, which nothing needs."""
    counted = [f for f in (_layer_flops(layer) for layer in _all_layers(model)) if f]
    return 3 * sum(counted) - (counted[0] if counted else 0)


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


def _compiled(fn, jit, backend):
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=jit)
    if backend == "jax":
        import jax

        return jax.jit(fn)
    return fn


# --- the stage catalogue: one small builder per stage ----------------------------------------------------------
@dataclass
class _Ctx:
    """What a builder needs: the policy and its compute dtype, XLA, batch, steps, data, backend, sizes, device."""

    policy: str
    compute: str
    jit: bool
    batch: int
    steps: int
    data: tuple
    backend: str
    size: dict
    spe: int
    gpu: bool


@dataclass
class _Stage:
    """A built stage. `call()` runs `steps` steps (plain stages); `fit(n)` returns a call that runs n steps
    (Keras stages, timed at two step counts). Counts are per step."""

    call: object = None
    fit: object = None
    samples_per_step: int | None = None
    flops_per_step: float | None = None
    bytes_per_step: float | None = None
    note: str = ""
    models: tuple = ()
    spe: object = ""


class _Skip(Exception):
    """A cell that does not apply to this stage and mode; the message says why."""


def sizes(quick: bool, gpu: bool) -> dict:
    """Problem sizes of the stages where the hardware decides, by --quick and device."""
    if gpu:
        return {"matmul_n": 2048 if quick else 8192, "dense_width": 4096, "dense_batch": 2048 if quick else 8192,
                "copy_floats": 2 ** 26}
    return {"matmul_n": 1024 if quick else 2048, "dense_width": 1024, "dense_batch": 1024 if quick else 4096,
            "copy_floats": 2 ** 24}


def preset_for(backend: str, preset: dict) -> dict:
    """The preset as `backend` can run it: Keras's PyTorch trainer refuses steps_per_execution > 1
    ("`steps_per_execution` must be 1 with the PyTorch backend"), so its Keras stages run one step per call."""
    return {**preset, "spe": 1} if backend == "torch" else preset


def fit_steps(preset: dict, batch: int) -> tuple:
    """(short, long) step counts of a Keras stage, multiples of the preset's steps_per_execution."""
    spe = preset["spe"]
    if "fit_steps" in preset:
        return preset["fit_steps"]
    long = max(4 * spe, preset["fit_samples"] // batch // spe * spe)
    return max(spe, long // 4 // spe * spe), long


def stage_flops(stage: str, batch: int, steps: int, *, model=None, n: int = 0, width: int = 0) -> int | None:
    """FLOPs of `steps` steps of a stage; None where they are not counted (preprocess, linear, the copy).

    softmax: forward 2*784*10 per sample and the weight gradient as much again; x needs no gradient (2x).
    cnn_train, dense_big: forward, weight and input gradients, less the first layer's input gradient
    (`training_flops`). cnn_infer: forward. matmul: 2n^3 per product.
    """
    if stage == "softmax":
        return 2 * 2 * 784 * 10 * batch * steps
    if stage == "cnn_train":
        return training_flops(model) * batch * steps
    if stage == "cnn_infer":
        return forward_flops(model) * batch * steps
    if stage == "dense_big":
        return (3 * 2 * (784 * width + width * width + width * 10) - 2 * 784 * width) * batch * steps
    if stage == "matmul":
        return 2 * n ** 3 * steps
    return None


def _batches(x, y, batch: int, ctx: _Ctx, pool: int = 8):
    """source(n): `batch`-sized batches for n steps of fit/predict, kept where the step runs.

    TensorFlow: `pool` batches cached by tf.data and repeated, prefetched onto the GPU (the host copies
    overlap the steps); JAX and PyTorch: a PyDataset cycling the pool from host memory.
    """
    import numpy as np

    count = pool * batch
    idx = np.arange(count) % len(x)
    xs, ys = x[idx], (y[idx] if y is not None else None)
    if ctx.backend == "tensorflow":
        from .env import import_tensorflow

        tf = import_tensorflow()
        ds = tf.data.Dataset.from_tensor_slices((xs, ys) if ys is not None else (xs,))
        ds = ds.batch(batch, drop_remainder=True).cache().repeat()
        ds = ds.apply(tf.data.experimental.prefetch_to_device("/GPU:0")) if ctx.gpu else ds.prefetch(2)
        return lambda n: ds
    import keras

    xb = xs.reshape(pool, batch, *xs.shape[1:])
    yb = ys.reshape(pool, batch, *ys.shape[1:]) if ys is not None else None

    class Cycle(keras.utils.PyDataset):
        def __init__(self, n):
            super().__init__()
            self.n = n

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            return (xb[i % pool], yb[i % pool]) if yb is not None else (xb[i % pool],)
    return Cycle


def _fit_call(model, source):
    def fit(n):
        src = source(n)

        def call():
            return model.fit(src, steps_per_epoch=n, epochs=1, shuffle=False, verbose=0).history["loss"][-1]
        return call
    return fit


def _pixels(ctx, count_batches: int = 8):
    import numpy as np

    x_img, y_img, data_note = ctx.data
    idx = np.random.default_rng(0).integers(0, len(y_img), count_batches * ctx.batch)
    return (x_img[idx, :, :, None] / 255.0).astype("float32"), y_img[idx].astype("int64"), data_note


def _build_preprocess(ctx: _Ctx) -> _Stage:
    from .data import make_dataset
    from .env import import_tensorflow

    tf = import_tensorflow()
    x_img, y_img, data_note = ctx.data
    ds = make_dataset(x_img, y_img, ctx.batch, seed=0, cache=False)
    if ctx.compute != "float32":
        ds = ds.map(lambda x, y: (tf.cast(x, ctx.compute), y))

    def call():
        last = None
        for last in ds:
            pass
        return last
    return _Stage(call, samples_per_step=len(y_img), note=f"tf.data on the CPU, the mode only changes the output "
                  f"dtype; one step = one pass over {len(y_img):,} images; {data_note}")


def _build_sgd(ctx: _Ctx, stage: str) -> _Stage:
    """linear and softmax: the hand-written SGD step of helpers.steps (notebooks 02/03), one Python call per step."""
    import numpy as np

    from .data import linear_data
    from .env import import_tensorflow
    from .steps import make_sgd_step

    tf = import_tensorflow()
    compute, batch = ctx.compute, ctx.batch
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
        x_img, y_img, _ = ctx.data
        idx = np.random.default_rng(0).integers(0, len(y_img), batch)
        x = tf.constant((x_img[idx].reshape(batch, 784) / 255.0).astype("float32"))
        y = tf.constant(y_img[idx].astype("int64"))
        W, b = tf.Variable(tf.zeros((784, 10))), tf.Variable(tf.zeros(10))

        def loss_fn(x, y):            # softmax regression: z = xW + b, mean cross-entropy in float32
            z = tf.cast(x, compute) @ tf.cast(W, compute) + tf.cast(b, compute)
            return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, tf.cast(z, tf.float32)))
        variables = [W, b]
    step = tf.function(make_sgd_step(variables, 0.1, loss_fn, loss_scale=scale), jit_compile=ctx.jit)

    def call():
        for _ in range(ctx.steps):
            loss = step(x, y)
        return loss
    note = "the SGD step of helpers.steps (notebooks 02/03), one Python call per step" + (
        f"; static loss scale {scale:g}" if scale else "")
    if stage == "linear":
        note += "; two scalars: the time per step is overhead, not arithmetic"
    return _Stage(call, samples_per_step=batch, flops_per_step=stage_flops(stage, batch, 1), note=note)


def _build_matmul(ctx: _Ctx) -> _Stage:
    import keras

    n = ctx.size["matmul_n"]
    a = keras.random.normal((n, n), dtype=ctx.compute, seed=0)
    b = keras.random.normal((n, n), dtype=ctx.compute, seed=1)
    f = _compiled(keras.ops.matmul, ctx.jit, ctx.backend)

    def call():
        for _ in range(ctx.steps):
            c = f(a, b)
        return c[:1, :1]              # a slice depends on the product: syncing it waits for it
    return _Stage(call, flops_per_step=stage_flops("matmul", 0, 1, n=n), note=f"square GEMM, n = {n}, {ctx.compute}")


def _build_bandwidth(ctx: _Ctx) -> _Stage:
    import keras

    if ctx.policy != "float32":
        raise _Skip("the copy moves float32 bytes: see the float32 row")
    count = ctx.size["copy_floats"]
    x = keras.ops.ones((count,), dtype="float32")
    f = _compiled(lambda v: v + 1.0, ctx.jit, ctx.backend)

    def call():
        for _ in range(ctx.steps):
            out = f(x)
        return out[:1]
    return _Stage(call, bytes_per_step=2 * count * 4,
                  note=f"y = x + 1 over {count * 4 / 2**20:.0f} MiB: reads and writes every byte")


def _build_dense_big(ctx: _Ctx) -> _Stage:
    import keras
    import numpy as np

    width, big = ctx.size["dense_width"], ctx.size["dense_batch"]
    inputs = keras.Input((784,))
    h = keras.layers.Dense(width, activation="relu")(inputs)
    h = keras.layers.Dense(width, activation="relu")(h)
    outputs = keras.layers.Activation("softmax", dtype="float32")(keras.layers.Dense(10)(h))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.RMSprop(), "sparse_categorical_crossentropy", jit_compile=ctx.jit,
                  steps_per_execution=ctx.spe)
    rng = np.random.default_rng(0)
    source = _batches(rng.standard_normal((4 * big, 784), dtype=np.float32), rng.integers(0, 10, 4 * big),
                      big, ctx, pool=4)
    return _Stage(fit=_fit_call(model, source), samples_per_step=big,
                  flops_per_step=stage_flops("dense_big", big, 1, width=width),
                  note=f"fit, Dense({width}) x 2 at batch {big} (the mixed-precision guide's model); {FLOPS_NOTE}",
                  models=(model,), spe=ctx.spe)


def _build_cnn_train(ctx: _Ctx) -> _Stage:
    import keras

    from . import models

    x, y, data_note = _pixels(ctx)
    model = models.improved_cnn(compile=False, augment=False)
    model.compile(keras.optimizers.Adam(0.005), "sparse_categorical_crossentropy", jit_compile=ctx.jit,
                  steps_per_execution=ctx.spe)
    return _Stage(fit=_fit_call(model, _batches(x, y, ctx.batch, ctx)), samples_per_step=ctx.batch,
                  flops_per_step=stage_flops("cnn_train", ctx.batch, 1, model=model),
                  note=f"fit, improved CNN of 04 without its augmentation layers (XLA cannot compile them); "
                       f"{FLOPS_NOTE}; {data_note}", models=(model,), spe=ctx.spe)


def _build_cnn_infer(ctx: _Ctx) -> _Stage:
    from . import models

    x, _, data_note = _pixels(ctx)
    model = models.improved_cnn(compile=False, augment=False)
    model.compile(jit_compile=ctx.jit, steps_per_execution=ctx.spe)
    source = _batches(x, None, ctx.batch, ctx)

    def fit(n):
        src = source(n)
        return lambda: model.predict(src, steps=n, verbose=0)[:1]
    return _Stage(fit=fit, samples_per_step=ctx.batch,
                  flops_per_step=stage_flops("cnn_infer", ctx.batch, 1, model=model),
                  note=f"predict, improved CNN of 04; {data_note}", models=(model,), spe=ctx.spe)


def _build_finetune(ctx: _Ctx) -> _Stage:
    """05's two stages, each compiled once: a new head on a frozen base, then the top convolution too."""
    import keras
    import numpy as np

    from . import models

    spe = max(1, ctx.spe // 2)

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
                      jit_compile=ctx.jit, steps_per_execution=spe)
        return model, convs[-1]

    head, _ = transfer(False)
    tuned, top = transfer(True)
    x, y, data_note = _pixels(ctx)
    source = _batches(x, y % 5, ctx.batch, ctx)
    # a step = forward + backward of what trains: the head (Dense, 2x its forward) and, in stage 2, the top
    # convolution's weight gradient (1x its forward; no gradient is needed below it); half the steps each
    fwd, dense = forward_flops(head), 2 * 2 * int(np.prod(head.layers[-1].kernel.shape))
    top_conv = 2 * top.output.shape[1] * top.output.shape[2] * int(np.prod(top.kernel.shape))

    def fit(n):
        first, second = _fit_call(head, source)(n // 2), _fit_call(tuned, source)(n - n // 2)
        return lambda: (first(), second())[1]
    return _Stage(fit=fit, samples_per_step=ctx.batch, flops_per_step=ctx.batch * (fwd + dense + top_conv / 2),
                  note=f"fit: half the steps train a new head on a frozen base, half also the top convolution (05); "
                       f"{data_note}", models=(head, tuned), spe=spe)


BUILDERS = {"preprocess": _build_preprocess, "linear": lambda ctx: _build_sgd(ctx, "linear"),
            "softmax": lambda ctx: _build_sgd(ctx, "softmax"), "cnn_train": _build_cnn_train,
            "finetune": _build_finetune, "cnn_infer": _build_cnn_infer, "dense_big": _build_dense_big,
            "matmul": _build_matmul, "bandwidth": _build_bandwidth}


# --- telemetry on a GPU ----------------------------------------------------------------------------------------
SMI_QUERY = "clocks.sm,power.draw,temperature.gpu,utilization.gpu"


def parse_smi(lines) -> dict:
    """Medians of nvidia-smi's csv,noheader,nounits lines for SMI_QUERY ("[N/A]" and blank fields skipped)."""
    import statistics

    columns = {k: [] for k in TELEMETRY}
    for line in lines:
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != len(TELEMETRY):
            continue
        for key, text in zip(TELEMETRY, parts):
            try:
                columns[key].append(float(text))
            except ValueError:
                pass
    return {k: round(statistics.median(v), 1) for k, v in columns.items() if v}


class GpuSampler:
    """Samples the first GPU's SM clock, power, temperature and utilisation every `interval_ms` while in the
    block (nvidia-smi -lms); `.medians()` afterwards. Does nothing where nvidia-smi is missing."""

    def __init__(self, interval_ms: int = 200):
        self.interval_ms, self.lines, self._proc, self._thread = interval_ms, [], None, None

    def __enter__(self):
        import shutil
        import subprocess
        import threading

        if shutil.which("nvidia-smi"):
            try:
                self._proc = subprocess.Popen(["nvidia-smi", "-i", "0", f"--query-gpu={SMI_QUERY}",
                                               "--format=csv,noheader,nounits", "-lms", str(self.interval_ms)],
                                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                self._thread = threading.Thread(target=lambda: self.lines.extend(self._proc.stdout), daemon=True)
                self._thread.start()
            except OSError:
                self._proc = None
        return self

    def __exit__(self, *exc):
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._thread.join(timeout=10)
        return False

    def medians(self) -> dict:
        return parse_smi(self.lines)


def _reset_peak_memory(backend):
    try:
        if backend == "tensorflow":
            from .env import import_tensorflow

            import_tensorflow().config.experimental.reset_memory_stats("GPU:0")
        elif backend == "torch":
            import torch

            torch.cuda.reset_peak_memory_stats()
    except (RuntimeError, ValueError, ImportError):
        pass


def _peak_memory_gb(backend):
    """The GPU's peak allocated memory since the last reset, in GB (JAX: the process's peak, it has no reset)."""
    try:
        if backend == "tensorflow":
            from .env import import_tensorflow

            return round(import_tensorflow().config.experimental.get_memory_info("GPU:0")["peak"] / 1e9, 3)
        if backend == "torch":
            import torch

            return round(torch.cuda.max_memory_allocated() / 1e9, 3)
        import jax

        return round((jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use", 0) / 1e9, 3) or None
    except (RuntimeError, ValueError, ImportError, KeyError):
        return None


# --- the run -----------------------------------------------------------------------------------------------------
def _tf32_switch(backend):
    """A function that turns TF32 on or off for float32 matrix products on this backend."""
    if backend == "tensorflow":
        from .env import import_tensorflow

        return import_tensorflow().config.experimental.enable_tensor_float_32_execution
    if backend == "torch":
        import torch

        def switch(on):
            torch.backends.cuda.matmul.allow_tf32 = on
            torch.backends.cudnn.allow_tf32 = on
        return switch
    import jax

    return lambda on: jax.config.update("jax_default_matmul_precision", None if on else "highest")


def _without_tf32(call, backend):
    switch = _tf32_switch(backend)

    def wrapped():
        switch(False)
        try:
            return sync(call())
        finally:
            switch(True)
    return wrapped


def _labels(stage, modes, control, info, policy_mixed):
    """The rows of a stage: the modes, the control row, and the extra rows this card has units for."""
    labels = list(modes) + (["control"] if control and stage == CONTROL_STAGE and "float32" in modes else [])
    if info["device"] == "GPU" and "float32" in modes:
        if info.get("tf32") and stage in EXTRA["tf32_off"]:
            labels.append("tf32_off")
        if policy_mixed == "mixed_bfloat16" and stage in EXTRA["mixed_float16"]:
            labels.append("mixed_float16")
    return labels


def _policy_of(mode, policy_mixed):
    if mode == "mixed_float16":
        return "mixed_float16"
    return (policy_mixed or "float32") if mode.startswith("mixed") else "float32"


def run(stages=None, modes=None, *, repeats: int | None = None, batch_size: int = 256, steps: int | None = None,
        quick: bool = False, backend: str | None = None, verbose: bool = True, force_mixed: bool = False,
        min_time_s: float | None = None, control: bool = True) -> list[dict]:
    """Time every stage under every mode, modes interleaved; one dict per cell with the COLUMNS as keys.

    quick: 3 repeats, plain stages 2 steps a call, Keras stages at two step counts of about 2,048 samples
    in the long call (about two minutes on 2 CPU cores); otherwise 5 repeats of 20 steps, Keras stages at 50
    and 250 steps with 50 per execution, after a second of warm-up. Mixed rows follow
    helpers.cards.mixed_policy: where no 16-bit unit is fast they are `skipped` with the reason, unless
    force_mixed. A cell that fails (out of memory, an op the device lacks) becomes a `skipped` row with the
    reason in `note`; the run goes on. control: add the control row (CONTROL_STAGE in float32 again).
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
    preset = preset_for(backend, preset)
    info = device_info(backend)
    gpu = info["device"] == "GPU"
    info["tf32"] = gpu and tf32_enabled(backend)
    policy_mixed, mixed_reason = _mixed_to_run(info, force_mixed)
    card, peak_row = _card(info)
    n_short, n_long = fit_steps(preset, batch_size)
    common = {"backend": backend, **{k: v for k, v in info.items() if k in COLUMNS}, "batch_size": batch_size,
              "repeats": repeats, "keras": keras.__version__, "python": platform.python_version(),
              "tensorflow": info.get("backend_version", "") if backend == "tensorflow" else _tf_version(),
              "peak_row": peak_row}
    data = _images()
    rows = []
    saved_policy = keras.mixed_precision.global_policy().name
    determinism = _pause_determinism(backend)
    quirks = _torch_compile_settings(gpu) if backend == "torch" else contextlib.nullcontext()
    try:
        with quirks:
            for stage in stages:
                if backend == "torch":      # each stage compiles from a clean slate, whatever the stages before it did
                    import torch._dynamo

                    torch._dynamo.reset()
                labels = _labels(stage, modes, control, info, policy_mixed)
                calls, firsts, cells, built = {}, {}, {}, {}
                for mode in labels:
                    policy = _policy_of(mode, policy_mixed)
                    jit = mode.endswith("xla")
                    fit_stage = stage in FIT_STAGES
                    row = {**common, "stage": stage, "mode": mode, "policy": policy, "jit_compile": jit,
                           "steps": n_long if fit_stage else (steps if stage != "preprocess" else 1),
                           "steps_short": n_short if fit_stage else ""}
                    cells[mode] = row
                    reason = _why_skip(stage, mode, backend, policy_mixed, mixed_reason)
                    if reason:
                        row.update(status="skipped", note=reason)
                        continue
                    try:
                        keras.mixed_precision.set_global_policy(policy)
                        keras.utils.set_random_seed(0)
                        ctx = _Ctx(policy, keras.mixed_precision.global_policy().compute_dtype, jit, batch_size,
                                   row["steps"], data, backend, sizes(quick, gpu), preset["spe"], gpu)
                        st = built[mode] = BUILDERS[stage](ctx)
                        mine = {mode: st.fit(n_long), f"{mode}@short": st.fit(n_short)} if st.fit else {mode: st.call}
                        if mode == "tf32_off":
                            mine = {k: _without_tf32(c, backend) for k, c in mine.items()}
                        if gpu and st.fit:
                            _reset_peak_memory(backend)
                        # the first call: the short one where there are two (its few steps let the compile show)
                        first = f"{mode}@short" if st.fit else mode
                        firsts[first] = first_call(mine[first])
                        if gpu and st.fit:
                            row["peak_mem_gb"] = _peak_memory_gb(backend)
                        calls.update(mine)
                    except _Skip as why:
                        row.update(status="skipped", note=str(why))
                        built.pop(mode, None)
                    except Exception as err:  # noqa: BLE001 - the row records why, and the run goes on
                        row.update(status="skipped", note=_reason(err))
                        built.pop(mode, None)
                timings, telemetry = {}, {}
                if calls:
                    try:
                        with GpuSampler() if gpu else contextlib.nullcontext() as sampler:
                            timings = interleave(calls, repeats=repeats, warmup=1 if quick else 2,
                                                 min_time_s=min_time_s, first_calls=firsts,
                                                 warmup_s=preset["warmup_s"] if gpu else 0.0)
                        telemetry = sampler.medians() if gpu else {}
                    except Exception as err:  # noqa: BLE001
                        for m in built:
                            cells[m].update(status="skipped", note=_reason(err))
                for mode in labels:
                    row = cells[mode]
                    if mode in timings and mode in built:
                        row.update(_result(built[mode], timings[mode], timings.get(f"{mode}@short"), row, info),
                                   **telemetry)
                        if mode == "control":
                            row["note"] = ("control: the float32 cell built and timed again, interleaved: "
                                           "the noise floor")
                        elif mode == "tf32_off":
                            row["note"] = ("float32 with TF32 switched off: what TF32 buys is the float32 row "
                                           "over this one")
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
    if mode in ("mixed", "mixed_xla") and policy_mixed is None:
        return f"{mixed_reason} (--force-mixed times it anyway)"
    if stage == "preprocess" and mode.endswith("xla"):
        return "tf.data does not use XLA: see the float32 and mixed rows"
    return ""


def _reason(err):
    text = str(err).strip()
    reason = text.splitlines()[0][:200] if text else ""
    kind = "out of memory" if "memory" in text.lower() or "OOM" in text else type(err).__name__
    return f"{kind}: {reason}"


def _result(st: _Stage, t: Timing, short: Timing | None, row, info) -> dict:
    """The row's figures from the long call's timing and, for Keras stages, the short call's.

    first_call_s and steady_s: the first call and the median timed call of one length, the short call's for
    Keras stages (their first call is the short one: run() times it so), the only call's otherwise.
    """
    like = short if short is not None else t
    out = {"status": "ok", "first_call_s": round(like.first_call_s, 6), "steady_s": round(like.median_s, 6),
           "median_s": round(t.median_s, 6),
           "iqr_s": round(t.iqr_s, 6), "min_s": round(t.min_s, 6), "max_s": round(t.max_s, 6), "note": st.note,
           "steps_per_execution": st.spe}
    if short is not None:      # the marginal step: the slope between the two step counts; fit()'s fixed cost apart
        import statistics

        extra = row["steps"] - row["steps_short"]
        # the long and short calls of one round run next to each other: pair them, so that a slow spell of the
        # machine (another process, a core taken away) moves both, then take the median over the rounds
        slopes = [(long - brief) / extra for long, brief in zip(t.times_s, short.times_s)]
        per_step = statistics.median(slopes)
        spread = Timing(0.0, tuple(slopes)).iqr_s
        if per_step <= 0:      # the two calls are inside each other's noise: fall back on the long call
            per_step = t.median_s / row["steps"]
            out["note"] += "; the two step counts did not separate, per step = long call / steps"
        out["fixed_s"] = round(max(0.0, statistics.median(
            brief - row["steps_short"] * slope for brief, slope in zip(short.times_s, slopes))), 6)
    else:
        per_step, spread = t.median_s / row["steps"], t.iqr_s / row["steps"]
    out["us_per_step"] = round(per_step * 1e6, 2)
    out["step_iqr_us"] = round(spread * 1e6, 2)
    if st.samples_per_step and row["stage"] != "linear":
        out["samples_per_s"] = round(st.samples_per_step / per_step, 1)
    if row["jit_compile"] and any(m.jit_compile is not True for m in st.models):
        # Keras falls back to jit_compile=False (with a warning) for models XLA cannot compile: say so
        out["jit_compile"] = False
        out["note"] += "; Keras fell back to jit_compile=False"
    if st.flops_per_step:
        out["tflops"] = round(st.flops_per_step / per_step / 1e12, 6)
        peak, precision = _peak_tflops({**info, "tf32": info.get("tf32") and row["mode"] != "tf32_off"},
                                       row["policy"])
        if peak:
            out["pct_peak"] = round(100 * out["tflops"] / peak, 3)
            out["peak_precision"] = precision
    if st.bytes_per_step:
        out["gbps"] = round(st.bytes_per_step / per_step / 1e9, 3)
        card, _ = _card(info)
        if card:
            out["pct_peak"] = round(100 * out["gbps"] / card["bandwidth_gbs"], 3)
            out["peak_precision"] = "bandwidth"
    if row["backend"] == "jax" and not row["jit_compile"] and row["stage"] not in ("matmul", "bandwidth"):
        out["note"] += "; JAX without jit runs op by op (eager), so its float32/mixed rows are slow by design"
    if row["backend"] == "torch" and row["jit_compile"]:
        out["note"] += ("; on PyTorch jit_compile=True is torch.compile (TorchInductor), not XLA, with dynamo's "
                        "recompile_limit raised to 64 so that the whole model compiles" if st.models else
                        "; on PyTorch this stage has nothing to compile: the same call as its float32 row")
    return out


@contextlib.contextmanager
def _torch_compile_settings(gpu: bool, limit: int = 64):
    """What a PyTorch run changes while it times, and restores: torch.compile may compile a whole Keras model, and
    its remarks about Keras's internals and about the machine stay off stderr.

    Keras's layers share one `forward` (keras/src/backend/torch/layer.py), which dynamo compiles once per layer
    type; at its default recompile_limit of 8 it logs "hit config.recompile_limit" and runs the rest eagerly, so
    the `xla` rows would time a model half compiled (torch 2.14, Keras 3.15). PyPI's CUDA build of torch on a
    machine without a GPU logs "No CUDA runtime is found" when torch.compile loads its C++ tools (a GPU machine
    does not)."""
    import torch._dynamo

    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    saved = getattr(config, name)
    cpp_log = logging.getLogger("torch.utils.cpp_extension")
    level = cpp_log.level
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\._dynamo")
        setattr(config, name, max(saved, limit))
        if not gpu:
            cpp_log.setLevel(logging.ERROR)
        try:
            yield
        finally:
            setattr(config, name, saved)
            cpp_log.setLevel(level)


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
    fixed = f"  fit() fixed {r['fixed_s'] * 1e3:,.0f} ms" if r["fixed_s"] != "" else ""
    return (f"{r['stage']:<10} {r['mode']:<9} {r['us_per_step'] / 1e3:>8.2f} ms/step ± {r['step_iqr_us'] / 1e3:<6.2f} "
            f"first call {r['first_call_s']:>6.2f} s  {rate}{fixed}")


def numeric(table):
    """The benchmark table with numeric dtypes in its numeric columns (empty cells as NaN), on every pandas."""
    import pandas as pd

    table = table.copy()
    for column in NUMERIC:
        if column in table:
            table[column] = pd.to_numeric(table[column], errors="coerce")
    return table


def noise_floor(table) -> float:
    """How far apart two timings of the same work land here: the control row against its float32 twin."""
    table = numeric(table)
    ok = table[table["status"] == "ok"]
    twin = ok[(ok["stage"] == CONTROL_STAGE) & ok["mode"].isin(["float32", "control"])].set_index("mode")["us_per_step"]
    return abs(twin["control"] / twin["float32"] - 1) if {"float32", "control"} <= set(twin.index) else 0.0


def speedups(table, floor: float | None = None):
    """Speed-up over float32 per stage and mode, per step, as text: 'n.nnx', or 'no measurable difference' when
    the ratio lies inside the noise: the control row's floor or, if larger, the two rows' relative spreads added.
    Returns (DataFrame of strings, the control floor)."""
    import pandas as pd

    table = numeric(table)
    floor = noise_floor(table) if floor is None else floor
    ok = table[table["status"] == "ok"].set_index(["stage", "mode"])
    out = {}
    shown = [m for m in (*MODES, "tf32_off", "mixed_float16") if m in set(table["mode"])]
    for stage in dict.fromkeys(table["stage"]):
        out[stage] = {}
        for mode in shown:
            if (stage, mode) not in ok.index or (stage, "float32") not in ok.index:
                out[stage][mode] = "skipped" if mode in MODES else ""
                continue
            base, row = ok.loc[(stage, "float32")], ok.loc[(stage, mode)]
            ratio = base["us_per_step"] / row["us_per_step"]
            noise = max(floor, base["step_iqr_us"] / base["us_per_step"] + row["step_iqr_us"] / row["us_per_step"])
            out[stage][mode] = "1 (baseline)" if mode == "float32" else (
                "no measurable difference" if abs(ratio - 1) <= noise else f"{ratio:.2f}x")
    return pd.DataFrame(out).T, floor


# --- the batch-size sweep ----------------------------------------------------------------------------------------
def sweep(stage: str = "cnn_train", batches=None, modes=("float32", "mixed"), *, quick: bool = True,
          verbose: bool = False, **kwargs) -> list[dict]:
    """Time one stage at several batch sizes (rows of `run`, without the control row).

    batches: default 32, 64, 128, 256 in quick mode (a CPU's short range), 32 ... 4,096 otherwise; the sweep
    stops at the first batch size whose rows ran out of memory.
    """
    batches = list(batches or ((32, 64, 128, 256) if quick else (32, 64, 128, 256, 512, 1024, 2048, 4096)))
    rows = []
    for b in batches:
        got = run([stage], list(modes), batch_size=b, quick=quick, control=False, verbose=verbose, **kwargs)
        rows.extend(got)
        if any(r["status"] != "ok" and r["note"].startswith("out of memory") for r in got):
            break
    return rows


def sweep_fit(table) -> dict:
    """Per mode, a line through time per step against batch size: {mode: {"overhead_us", "us_per_sample",
    "batches"}}. The intercept is what a step costs whatever its size (launches, the framework, Python); the
    slope what each sample adds. Where a step's time grows no slower than its batch, the stage is compute-
    or memory-bound; where the intercept dominates, overhead-bound."""
    import numpy as np

    table = numeric(table)
    ok = table[table["status"] == "ok"]
    fits = {}
    for mode, part in ok.groupby("mode", sort=False):
        if part["batch_size"].nunique() < 2:
            continue
        slope, intercept = np.polyfit(part["batch_size"].astype(float), part["us_per_step"].astype(float), 1)
        fits[mode] = {"overhead_us": round(max(0.0, float(intercept)), 1), "us_per_sample": round(float(slope), 3),
                      "batches": sorted(int(b) for b in part["batch_size"])}
    return fits


def _epoch_data(x, y, batch: int, backend: str, gpu: bool) -> tuple:
    """fit/evaluate arguments for whole epochs: TensorFlow, a cached, reshuffled tf.data pipeline prefetched
    to the GPU; other backends, the arrays (Keras batches them from host memory)."""
    if backend != "tensorflow":
        return (x, y), {"batch_size": batch, "shuffle": True}
    from .env import import_tensorflow

    tf = import_tensorflow()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).cache().shuffle(len(y), seed=0).batch(batch)
    ds = ds.apply(tf.data.experimental.prefetch_to_device("/GPU:0")) if gpu else ds.prefetch(2)
    return (ds,), {"shuffle": False}        # tf.data reshuffles each epoch itself


def time_to_accuracy(modes=None, *, target: float | None = None, max_epochs: int = 20, budget_s: float = 600.0,
                     batch_size: int = 128, quick: bool = False, verbose: bool = True, force_mixed: bool = False) -> list:
    """Train the course's CNN until its test accuracy reaches `target`; wall seconds from model creation.

    The images stay where the step runs (TensorFlow: cached by tf.data, reshuffled each epoch, prefetched to
    the GPU): keeping the data on the GPU was the largest single gain of the 0.76 s MNIST record.

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
    gpu = info["device"] == "GPU"
    policy_mixed, reason = _mixed_to_run(info, force_mixed)
    rows, saved = [], keras.mixed_precision.global_policy().name
    determinism = _pause_determinism(backend)
    quirks = _torch_compile_settings(gpu) if backend == "torch" else contextlib.nullcontext()
    try:
        with quirks:
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
                eval_s, acc, epochs = 0.0, 0.0, 0
                try:
                    model = models.improved_cnn(augment=False, jit_compile=mode.endswith("xla"))
                    train = _epoch_data(x, m.y_train, batch_size, backend, gpu)
                    test = _epoch_data(xt, m.y_test, 1000, backend, gpu)
                    while epochs < max_epochs and time.perf_counter() - t0 < budget_s:
                        model.fit(*train[0], **train[1], epochs=1, verbose=0)
                        epochs += 1
                        t1 = time.perf_counter()
                        batching = {k: v for k, v in test[1].items() if k != "shuffle"}
                        acc = float(model.evaluate(*test[0], **batching, verbose=0)[1])
                        eval_s += time.perf_counter() - t1
                        if acc >= target:
                            break
                except Exception as err:  # noqa: BLE001 - as in run(): the row says why, and the other modes go on
                    rows.append({**row, "status": "skipped", "note": _reason(err)})
                    if verbose:
                        print(f"{mode:<9} skipped: {rows[-1]['note']}", flush=True)
                    keras.backend.clear_session()
                    continue
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


def write_csv(rows, path, columns=COLUMNS) -> None:
    """Rows as a CSV with `columns` (the benchmark's); columns=None takes every key a row has (time to accuracy)."""
    import csv
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path):
    """Read a benchmark CSV (ours or one kept in data/) into a pandas DataFrame with numeric columns, checking
    its columns."""
    import pandas as pd

    df = pd.read_csv(path)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: not a benchmark table, columns {missing} are missing; "
                         "write one with python -m helpers.bench --out FILE")
    return numeric(df)


def stored_runs(folder=None) -> list:
    """The GPU runs kept in data/benchmarks: [(name, table, sweep table or None)], one per `--gpu-run`."""
    from .env import repo_root

    folder = folder or repo_root() / "data" / "benchmarks"
    runs = []
    for path in sorted(folder.glob("*.csv")):
        if path.stem.endswith(("-sweep", "-tta")):
            continue
        sweep_path = path.with_name(f"{path.stem}-sweep.csv")
        runs.append((path.stem, read_csv(path), read_csv(sweep_path) if sweep_path.exists() else None))
    return runs


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def gpu_run(folder=None, backend: str | None = None) -> list:
    """The full benchmark for data/benchmarks: every stage (full settings), the cnn_train batch sweep and time to
    accuracy, written as <device>-<backend>.csv, -sweep.csv and -tta.csv; returns the paths."""
    import keras

    from .env import repo_root

    backend = backend or keras.backend.backend()
    folder = folder or repo_root() / "data" / "benchmarks"
    rows = run(backend=backend)
    name = _slug(f"{rows[0]['device_name']}-{backend}")
    paths = [folder / f"{name}.csv", folder / f"{name}-sweep.csv", folder / f"{name}-tta.csv"]
    write_csv(rows, paths[0])
    write_csv(sweep(quick=False), paths[1])
    write_csv(time_to_accuracy(), paths[2], columns=None)
    return paths


def main(argv=None) -> int:
    """python -m helpers.bench: print a table and write the CSV; exit 2 on an unknown stage, mode or backend."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m helpers.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--stages", nargs="+", metavar="STAGE", help=f"default: all of {' '.join(STAGES)}")
    parser.add_argument("--modes", nargs="+", metavar="MODE", help=f"default: all of {' '.join(MODES)}")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per cell (default 5; --quick 3)")
    parser.add_argument("--batch-size", type=int, default=256, help="samples per step (default 256)")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed call of the plain stages "
                        "(default 20; --quick 2); Keras stages run at two step counts of their own")
    parser.add_argument("--quick", action="store_true", help="3 repeats, short calls, smaller GEMMs: about two "
                        "minutes on 2 CPU cores")
    parser.add_argument("--force-mixed", action="store_true",
                        help="time the mixed rows even where 16-bit units are slow or missing (to see the loss)")
    parser.add_argument("--time-to-accuracy", action="store_true",
                        help="train the CNN until it reaches the target test accuracy, per mode")
    parser.add_argument("--sweep", action="store_true",
                        help="time cnn_train in float32 and mixed at several batch sizes")
    parser.add_argument("--gpu-run", action="store_true", help="everything, full settings, into data/benchmarks/"
                        "<device>-<backend>.csv (-sweep, -tta): the run 06 and 07 pick up")
    parser.add_argument("--backend", default="tensorflow", help=f"Keras backend: {', '.join(BACKENDS)}")
    parser.add_argument("--out", default=None, help="CSV to write (default: artifacts/benchmark.csv; with "
                        "--time-to-accuracy or --sweep, only where given)")
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
        if args.gpu_run:
            paths = gpu_run(backend=args.backend)
            print(f"wrote {', '.join(map(str, paths))} in {time.perf_counter() - t0:.0f} s")
            return 0
        if args.time_to_accuracy:
            rows = time_to_accuracy(args.modes, quick=args.quick, force_mixed=args.force_mixed)
            done = [r for r in rows if r["status"] == "ok"]
            if args.out:
                write_csv(rows, args.out, columns=None)
                print(f"wrote {args.out}")
            print(f"{len(rows)} modes in {time.perf_counter() - t0:.0f} s on {rows[0]['device']} "
                  f"{rows[0]['device_name']} ({rows[0]['backend']}, Keras {rows[0]['keras']}; {rows[0]['data']}); "
                  f"best: " + (min((r for r in done if r["reached"]), key=lambda r: r["wall_s"], default={}).get(
                      "mode", "none reached the target")))
            return 0
        if args.sweep:
            rows = sweep(quick=args.quick, verbose=True, force_mixed=args.force_mixed)
            import pandas as pd

            for mode, f in sweep_fit(pd.DataFrame(rows)).items():
                print(f"{mode}: {f['overhead_us']:,.0f} µs a step whatever the batch, {f['us_per_sample']:.2f} µs a "
                      f"sample (batches {f['batches']})")
            if args.out:
                write_csv(rows, args.out)
                print(f"wrote {args.out}")
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
