"""GPU memory needed to train, fine-tune or run a model: a breakdown in GB (1 GB = 1e9 bytes).

Conventions (each figure cites its source; see ../shared/REFERENCE.md of the project):

- Model states per parameter follow ZeRO (Rajbhandari et al., arXiv 1910.02054, section 3.1):
  mixed-precision Adam keeps 2 bytes of fp16/bf16 weights, 2 of gradients and 12 of optimizer
  states (fp32 master weights, first and second moments) = 16 bytes. Plain fp32 Adam is also
  16 bytes (4 weights + 4 gradients + 8 moments): mixed precision saves activations, not states.
- SGD with momentum keeps one state (4 bytes in fp32); plain SGD none. Under mixed precision
  both still keep the 4-byte fp32 master copy of the weights, counted with the optimizer.
- Pure bf16/fp16 training keeps everything in 2 bytes (Adam: 2 + 2 + 4 = 8 bytes per parameter);
  it saves memory at a cost in accuracy that mixed precision avoids.
- LoRA (Hu et al., arXiv 2106.09685) freezes the base weights (no gradients, no optimizer states)
  and trains small adapters; their count is `trainable_fraction` of the parameters (default 0.5 %,
  rank 8-16 adapters on all projection matrices of a 7B transformer), trained with mixed-precision Adam.
- QLoRA (Dettmers et al., arXiv 2305.14314) stores the frozen base in 4-bit NormalFloat with double
  quantisation: 4 + 0.127 bits per parameter.
- Framework overhead: the CUDA context and kernels took 1.3 GB on a V100 in Hugging Face's
  "model memory anatomy" measurement; used as the default `overhead_gb`.
- Activations are not a per-parameter cost. Give them explicitly (`activations_gb`), or give a
  transformer's shape for the estimate of Korthikanti et al. (arXiv 2205.05198), quoted in
  EleutherAI's "Transformer Math 101": s*b*h*L*(34 + 5*a*s/h) bytes with 16-bit activations and
  no recomputation, s*b*h*L*2 bytes with full recomputation (gradient checkpointing).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

MODES = ("train", "finetune", "lora", "qlora", "inference")
PRECISIONS = ("fp32", "mixed", "bf16", "fp16", "int8", "int4")
OPTIMIZERS = ("adam", "sgd", "sgdm", "none")
GB = 1e9
QLORA_BITS = 4.127          # NF4 + double-quantised constants, QLoRA section 3
DEFAULT_OVERHEAD_GB = 1.3   # CUDA context and kernels, HF "model memory anatomy" (V100)

_WEIGHT_BYTES = {"fp32": 4.0, "mixed": 2.0, "bf16": 2.0, "fp16": 2.0, "int8": 1.0, "int4": 0.5}
# optimizer states per trained parameter, by the precision the states are kept in
_STATE_BYTES = {
    "fp32": {"adam": 8.0, "sgdm": 4.0, "sgd": 0.0, "none": 0.0},
    "mixed": {"adam": 12.0, "sgdm": 8.0, "sgd": 4.0, "none": 0.0},   # includes the fp32 master copy
    "bf16": {"adam": 4.0, "sgdm": 2.0, "sgd": 0.0, "none": 0.0},
    "fp16": {"adam": 4.0, "sgdm": 2.0, "sgd": 0.0, "none": 0.0},
}


@dataclass
class Estimate:
    """Memory in GB (1e9 bytes) by category, with the assumptions that produced it in `notes`."""

    weights_gb: float
    gradients_gb: float
    optimizer_gb: float
    activations_gb: float
    overhead_gb: float
    notes: list = field(default_factory=list)

    @property
    def total_gb(self) -> float:
        return self.weights_gb + self.gradients_gb + self.optimizer_gb + self.activations_gb + self.overhead_gb

    def as_dict(self) -> dict:
        d = asdict(self)
        d["total_gb"] = self.total_gb
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


def transformer_activations_gb(layers: int, hidden: int, seq_len: int, heads: int, batch_size: int,
                               recompute: bool = False) -> float:
    """Activation memory of a transformer, 16-bit activations (Korthikanti et al. 2022)."""
    for name, v in (("layers", layers), ("hidden", hidden), ("seq_len", seq_len), ("heads", heads),
                    ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"transformer_activations_gb: {name}={v!r} must be a positive int")
    s, b, h, L, a = seq_len, batch_size, hidden, layers, heads
    per_layer = 2.0 if recompute else 34.0 + 5.0 * a * s / h
    return s * b * h * L * per_layer / GB


def _check(params, mode, precision, optimizer, trainable_fraction, overhead_gb, activations_gb):
    if isinstance(params, bool) or not isinstance(params, (int, float)) or not math.isfinite(params) or params <= 0:
        raise ValueError(f"params={params!r}: give the number of parameters as a positive number, e.g. 7e9")
    for name, value, valid in (("mode", mode, MODES), ("precision", precision, PRECISIONS),
                               ("optimizer", optimizer, OPTIMIZERS)):
        if value not in valid:
            raise ValueError(f"unknown {name} {value!r}; choose one of: {', '.join(valid)}")
    if not 0 < trainable_fraction <= 1:
        raise ValueError(f"trainable_fraction={trainable_fraction!r} must lie in (0, 1]")
    for name, v in (("overhead_gb", overhead_gb), ("activations_gb", activations_gb)):
        if v is not None and (not math.isfinite(v) or v < 0):
            raise ValueError(f"{name}={v!r} must be a finite number of GB >= 0")


def estimate(params: float, mode: str = "train", precision: str = "mixed", optimizer: str = "adam", *,
             batch_size: int = 1, activations_gb: float | None = None, transformer: dict | None = None,
             trainable_fraction: float | None = None, overhead_gb: float = DEFAULT_OVERHEAD_GB) -> Estimate:
    """Memory to run `params` parameters in a mode, precision and optimizer; see the module docstring.

    transformer: {"layers", "hidden", "seq_len", "heads"[, "recompute"]} for an activation estimate
    at `batch_size`; or pass `activations_gb` yourself. Without either, activations count as 0 and
    a note says so.
    """
    lora_like = mode in ("lora", "qlora")
    fraction = trainable_fraction if trainable_fraction is not None else (0.005 if lora_like else 1.0)
    _check(params, mode, precision, optimizer, fraction, overhead_gb, activations_gb)
    notes = []

    if mode == "inference":
        if optimizer != "none":
            notes.append(f"inference keeps no optimizer state: optimizer {optimizer!r} ignored")
        w = params * _WEIGHT_BYTES[precision]
        weights, grads, states = w, 0.0, 0.0
    elif lora_like:
        if mode == "qlora":
            if precision != "int4":
                notes.append(f"QLoRA stores the frozen base in 4-bit NF4; precision {precision!r} replaced by int4")
            base = params * QLORA_BITS / 8
        else:
            if precision in ("int8", "int4"):
                raise ValueError(f"LoRA keeps the base in 16 or 32 bits; for a {precision} base use mode 'qlora'")
            base = params * (_WEIGHT_BYTES[precision])
        adapters = params * fraction
        opt = "adam" if optimizer == "none" else optimizer
        if optimizer == "none":
            notes.append("adapters need an optimizer: counted with Adam")
        weights = base + adapters * 2.0                                      # adapters in 16 bits
        grads = adapters * 2.0
        states = adapters * _STATE_BYTES["mixed"][opt]
        notes.append(f"{adapters:,.0f} trainable adapter parameters ({fraction:.2%} of {params:,.0f}), "
                     "mixed-precision optimizer states")
    else:  # train, finetune: every parameter (or `fraction` of them) is updated
        if precision in ("int8", "int4"):
            raise ValueError(f"{mode} with {precision} weights is not supported: integer weights cannot be "
                             "trained directly; use mode 'qlora' (int4 base + adapters) or 'inference'")
        if optimizer == "none":
            raise ValueError(f"mode {mode!r} updates weights: choose an optimizer (adam, sgdm or sgd)")
        trained = params * fraction
        weights = params * _WEIGHT_BYTES[precision]
        grads = trained * _WEIGHT_BYTES[precision]
        states = trained * _STATE_BYTES[precision][optimizer]
        if precision in ("bf16", "fp16"):
            notes.append(f"pure {precision}: weights, gradients and optimizer states all in 2 bytes")

    if activations_gb is None and transformer is not None:
        t = dict(transformer)
        recompute = bool(t.pop("recompute", False))
        missing = {"layers", "hidden", "seq_len", "heads"} - set(t)
        if missing:
            raise ValueError(f"transformer= needs {', '.join(sorted(missing))}")
        activations_gb = transformer_activations_gb(batch_size=batch_size, recompute=recompute, **t)
        if mode == "inference":
            activations_gb /= t["layers"]      # no stored activations: one layer's worth at a time
        notes.append("activations: Korthikanti et al. 2022" + (", full recomputation" if recompute else ""))
    elif activations_gb is None:
        activations_gb = 0.0
        notes.append("activations not estimated: pass activations_gb or transformer=")
    return Estimate(weights / GB, grads / GB, states / GB, float(activations_gb), float(overhead_gb), notes)
