"""GPU memory needed to train, fine-tune or run a model: a breakdown in GB (1 GB = 1e9 bytes).

Each rule cites its source (see ../shared/REFERENCE.md of the project); `Estimate.rule` names the one used.

- Model states per parameter, by precision:
  - "mixed" follows Megatron/ZeRO (Rajbhandari et al., arXiv 1910.02054, section 3.1): 2 bytes of 16-bit
    weights, 2 of 16-bit gradients, 12 of optimizer states (fp32 master weights, first and second
    moments) = 16 bytes with Adam.
  - "keras_mixed" is what Keras mixed precision does: variables stay float32 and layers cast them to 16
    bits in each call, so weights 4 + gradients 4 + Adam moments 8 = 16 bytes; the 16-bit casts are
    transient (counted with the activations, not here).
  - "fp32": 4 + 4 + 8 with Adam. Mixed precision saves activations, not model states.
  - "bf16"/"fp16" (pure 16-bit training): everything in 2 bytes (Adam: 2 + 2 + 4 = 8).
  - SGD with momentum keeps one state, plain SGD none (plus the fp32 master copy under "mixed").
- LoRA (Hu et al., arXiv 2106.09685) freezes the base and trains adapters, `trainable_fraction` of the
  parameters (default 0.5 %), with mixed-precision Adam. QLoRA (Dettmers et al., arXiv 2305.14314)
  stores the frozen base in 4-bit NormalFloat with double quantisation (4.127 bits per parameter) but
  keeps the embeddings and the LM head in 16 bits (2 x vocabulary x hidden parameters, when the
  transformer's shape is given).
- Activations of a transformer in training (Korthikanti et al., arXiv 2205.05198, as quoted by
  EleutherAI's "Transformer Math 101"): s*b*h*L*(34 + 5*a*s/h) bytes with 16-bit activations;
  FlashAttention never stores the a*s*s attention scores, which removes the 5*a*s/h term; full
  recomputation (gradient checkpointing) keeps s*b*h*L*2 bytes. In inference only one layer's
  activations live at a time.
- Logits: batch x sequence x vocabulary x 4 bytes (float32 logits for the loss, or for sampling after a
  prefill), counted whenever the transformer's shape is given.
- KV cache (inference): 2 (keys and values) x layers x sequence x batch x hidden x bytes per value
  (16-bit: 2; int8 and int4 weights keep a 16-bit cache).
- Framework overhead: the CUDA context and kernels took 1.3 GB on a V100 in Hugging Face's "model memory
  anatomy" measurement; used as the default `overhead_gb`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

MODES = ("train", "finetune", "lora", "qlora", "inference")
PRECISIONS = ("fp32", "mixed", "keras_mixed", "bf16", "fp16", "int8", "int4")
OPTIMIZERS = ("adam", "sgd", "sgdm", "none")
GB = 1e9
QLORA_BITS = 4.127          # NF4 + double-quantised constants, QLoRA section 3
DEFAULT_OVERHEAD_GB = 1.3   # CUDA context and kernels, HF "model memory anatomy" (V100)
DEFAULT_VOCAB = 32_000      # Llama 1/2, Mistral 7B

_WEIGHT_BYTES = {"fp32": 4.0, "mixed": 2.0, "keras_mixed": 4.0, "bf16": 2.0, "fp16": 2.0, "int8": 1.0,
                 "int4": 0.5}
_GRAD_BYTES = {"fp32": 4.0, "mixed": 2.0, "keras_mixed": 4.0, "bf16": 2.0, "fp16": 2.0}
# optimizer states per trained parameter, by the precision the states are kept in
_STATE_BYTES = {
    "fp32": {"adam": 8.0, "sgdm": 4.0, "sgd": 0.0, "none": 0.0},
    "mixed": {"adam": 12.0, "sgdm": 8.0, "sgd": 4.0, "none": 0.0},   # includes the fp32 master copy
    "keras_mixed": {"adam": 8.0, "sgdm": 4.0, "sgd": 0.0, "none": 0.0},
    "bf16": {"adam": 4.0, "sgdm": 2.0, "sgd": 0.0, "none": 0.0},
    "fp16": {"adam": 4.0, "sgdm": 2.0, "sgd": 0.0, "none": 0.0},
}
RULES = {"fp32": "fp32: 4 + 4 + 8 bytes per parameter with Adam",
         "mixed": "Megatron/ZeRO mixed: 2 + 2 + 12 bytes per parameter with Adam",
         "keras_mixed": "Keras mixed: float32 variables, 4 + 4 + 8 bytes per parameter with Adam",
         "bf16": "pure bf16: 2 + 2 + 4 bytes per parameter with Adam",
         "fp16": "pure fp16: 2 + 2 + 4 bytes per parameter with Adam"}


@dataclass
class Estimate:
    """Memory in GB (1e9 bytes) by category, with the rule and assumptions that produced it."""

    weights_gb: float
    gradients_gb: float
    optimizer_gb: float
    activations_gb: float
    overhead_gb: float
    kv_cache_gb: float = 0.0
    logits_gb: float = 0.0
    rule: str = ""
    notes: list = field(default_factory=list)

    PARTS = ("weights_gb", "gradients_gb", "optimizer_gb", "activations_gb", "kv_cache_gb", "logits_gb",
             "overhead_gb")

    @property
    def total_gb(self) -> float:
        return sum(getattr(self, part) for part in self.PARTS)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["total_gb"] = self.total_gb
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


def _positive_ints(where, **values):
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{where}: {name}={v!r} must be a positive int")


def transformer_activations_gb(layers: int, hidden: int, seq_len: int, heads: int, batch_size: int,
                               recompute: bool = False, flash_attention: bool = False) -> float:
    """Activation memory of a transformer in training, 16-bit activations (Korthikanti et al. 2022).

    s*b*h*L*(34 + 5*a*s/h) bytes; FlashAttention drops the 5*a*s/h term (the attention scores);
    full recomputation keeps 2*s*b*h*L bytes.
    """
    _positive_ints("transformer_activations_gb", layers=layers, hidden=hidden, seq_len=seq_len, heads=heads,
                   batch_size=batch_size)
    s, b, h, L, a = seq_len, batch_size, hidden, layers, heads
    if recompute:
        per_layer = 2.0
    else:
        per_layer = 34.0 + (0.0 if flash_attention else 5.0 * a * s / h)
    return s * b * h * L * per_layer / GB


def kv_cache_gb(layers: int, hidden: int, seq_len: int, batch_size: int = 1, bytes_per_value: float = 2.0) -> float:
    """Keys and values of every layer for every token: 2 * L * s * b * h * bytes."""
    _positive_ints("kv_cache_gb", layers=layers, hidden=hidden, seq_len=seq_len, batch_size=batch_size)
    return 2 * layers * seq_len * batch_size * hidden * bytes_per_value / GB


def logits_gb(seq_len: int, batch_size: int = 1, vocab: int = DEFAULT_VOCAB) -> float:
    """The float32 logits buffer: b * s * vocabulary * 4 bytes."""
    _positive_ints("logits_gb", seq_len=seq_len, batch_size=batch_size, vocab=vocab)
    return batch_size * seq_len * vocab * 4 / GB


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
             vocab: int = DEFAULT_VOCAB, trainable_fraction: float | None = None,
             overhead_gb: float = DEFAULT_OVERHEAD_GB) -> Estimate:
    """Memory to run `params` parameters in a mode, precision and optimizer; see the module docstring.

    transformer: {"layers", "hidden", "seq_len", "heads"[, "recompute", "flash_attention"]} for the
    activation, logits and KV-cache terms at `batch_size` (the logits use `vocab`); or pass
    `activations_gb` yourself. Without either, activations count as 0 and a note says so.
    """
    lora_like = mode in ("lora", "qlora")
    fraction = trainable_fraction if trainable_fraction is not None else (0.005 if lora_like else 1.0)
    _check(params, mode, precision, optimizer, fraction, overhead_gb, activations_gb)
    _positive_ints("estimate", batch_size=batch_size, vocab=vocab)
    notes, rule = [], ""
    shape = None
    if transformer is not None:
        shape = dict(transformer)
        flags = {k: bool(shape.pop(k, False)) for k in ("recompute", "flash_attention")}
        missing = {"layers", "hidden", "seq_len", "heads"} - set(shape)
        if missing:
            raise ValueError(f"transformer= needs {', '.join(sorted(missing))}")
        unknown = set(shape) - {"layers", "hidden", "seq_len", "heads"}
        if unknown:
            raise ValueError(f"transformer= does not know {', '.join(sorted(unknown))}; it takes layers, hidden, "
                             "seq_len, heads, recompute, flash_attention")
        shape.update(flags)

    if mode == "inference":
        if optimizer != "none":
            notes.append(f"inference keeps no optimizer state: optimizer {optimizer!r} ignored")
        if precision == "keras_mixed":
            raise ValueError("keras_mixed is a training rule; for inference choose fp32, fp16, bf16, int8 or int4")
        weights, grads, states = params * _WEIGHT_BYTES[precision], 0.0, 0.0
        rule = f"inference: {_WEIGHT_BYTES[precision]:g} bytes per weight"
    elif lora_like:
        if mode == "qlora":
            if precision != "int4":
                notes.append(f"QLoRA stores the frozen base in 4-bit NF4; precision {precision!r} replaced by int4")
            if shape:
                io = 2 * vocab * shape["hidden"]                      # embeddings and LM head, untied
                base = (params - io) * QLORA_BITS / 8 + io * 2.0
                notes.append(f"QLoRA: embeddings and LM head ({io:,.0f} parameters) kept in 16 bits")
            else:
                base = params * QLORA_BITS / 8
                notes.append("QLoRA: every base weight counted at 4.127 bits; give transformer= to keep the "
                             "embeddings and LM head in 16 bits")
            rule = "QLoRA: NF4 base (4.127 bits), 16-bit adapters, mixed Adam on adapters"
        else:
            if precision in ("int8", "int4"):
                raise ValueError(f"LoRA keeps the base in 16 or 32 bits; for a {precision} base use mode 'qlora'")
            base = params * _WEIGHT_BYTES[precision]
            rule = f"LoRA: {_WEIGHT_BYTES[precision]:g}-byte frozen base, 16-bit adapters, mixed Adam on adapters"
        adapters = params * fraction
        opt = "adam" if optimizer == "none" else optimizer
        if optimizer == "none":
            notes.append("adapters need an optimizer: counted with Adam")
        weights = base + adapters * 2.0                                      # adapters in 16 bits
        grads = adapters * 2.0
        states = adapters * _STATE_BYTES["mixed"][opt]
        notes.append(f"{adapters:,.0f} trainable adapter parameters ({fraction:.2%} of {params:,.0f})")
    else:  # train, finetune: every parameter (or `fraction` of them) is updated
        if precision in ("int8", "int4"):
            raise ValueError(f"{mode} with {precision} weights is not supported: integer weights cannot be "
                             "trained directly; use mode 'qlora' (int4 base + adapters) or 'inference'")
        if optimizer == "none":
            raise ValueError(f"mode {mode!r} updates weights: choose an optimizer (adam, sgdm or sgd)")
        trained = params * fraction
        weights = params * _WEIGHT_BYTES[precision]
        grads = trained * _GRAD_BYTES[precision]
        states = trained * _STATE_BYTES[precision][optimizer]
        rule = RULES[precision] if optimizer == "adam" else f"{precision} with {optimizer}"

    kv = logit = 0.0
    if activations_gb is None and shape is not None:
        dims = {k: shape[k] for k in ("layers", "hidden", "seq_len", "heads")}
        activations_gb = transformer_activations_gb(batch_size=batch_size, recompute=shape["recompute"],
                                                    flash_attention=shape["flash_attention"], **dims)
        logit = logits_gb(shape["seq_len"], batch_size, vocab)
        if mode == "inference":
            activations_gb /= shape["layers"]      # no stored activations: one layer's worth at a time
            kv = kv_cache_gb(shape["layers"], shape["hidden"], shape["seq_len"], batch_size)
            notes.append(f"KV cache for {batch_size} x {shape['seq_len']:,} tokens in 16 bits")
        how = ("full recomputation" if shape["recompute"]
               else "FlashAttention (no attention scores)" if shape["flash_attention"] else "attention scores stored")
        notes.append(f"activations: Korthikanti et al. 2022, {how}; logits for a vocabulary of {vocab:,}")
    elif activations_gb is None:
        activations_gb = 0.0
        notes.append("activations not estimated: pass activations_gb or transformer=")
    return Estimate(weights / GB, grads / GB, states / GB, float(activations_gb), float(overhead_gb), kv, logit,
                    rule, notes)


def keras_activations_gb(model, batch_size: int, bytes_per_value: float = 4.0) -> float:
    """Activation memory of a Keras model in training: every layer's output kept for the backward pass.

    An honest first approximation for the course's CNNs (sum of output sizes x batch x bytes); real
    frameworks keep some extra buffers (e.g. ReLU masks, cuDNN workspaces) and free some early.
    """
    _positive_ints("keras_activations_gb", batch_size=batch_size)
    values = 0
    for layer in model.layers:
        if isinstance(layer.output, (list, tuple)) or not hasattr(layer.output, "shape"):
            raise ValueError(f"keras_activations_gb: layer {layer.name!r} has several outputs; "
                             "pass activations_gb yourself for such models")
        values += math.prod(d for d in layer.output.shape[1:] if d is not None)
    return values * batch_size * bytes_per_value / GB
