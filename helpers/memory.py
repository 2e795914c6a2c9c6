"""GPU memory needed to train, fine-tune or run a model: a breakdown in GB (1 GB = 1e9 bytes).

Each rule cites its source (see ../shared/REFERENCE.md of the project); `Estimate.rule` names the one used.

- Model states per parameter, by precision:
  - "mixed" follows Megatron/ZeRO (Rajbhandari et al., arXiv 1910.02054, section 3.1): 2 bytes of 16-bit
    weights, 2 of 16-bit gradients, 12 of optimizer states (fp32 master weights, first and second
    moments) = 16 bytes with Adam.
  - "keras_mixed" is what Keras mixed precision does: variables stay float32 and each layer casts its
    kernel to 16 bits in the call and keeps that copy for the backward pass, so weights 4 + 2 + gradients
    4 + Adam moments 8 = 18 bytes, Hugging Face's "model memory anatomy" figure for mixed-precision AdamW.
  - "fp32": 4 + 4 + 8 with Adam. Mixed precision saves activations, not model states.
  - "bf16"/"fp16" (pure 16-bit training): everything in 2 bytes (Adam: 2 + 2 + 4 = 8).
  - SGD with momentum keeps one state, plain SGD none (plus the fp32 master copy under "mixed").
- LoRA (Hu et al., arXiv 2106.09685) freezes the base and trains adapters, `trainable_fraction` of the
  parameters (default 0.5 %), with mixed-precision Adam. QLoRA (Dettmers et al., arXiv 2305.14314)
  stores the frozen base in 4-bit NormalFloat with double quantisation (4.127 bits per parameter);
  PEFT's `prepare_model_for_kbit_training` casts every parameter it does not quantise, the embeddings,
  the LM head (2 x vocabulary x hidden) and the norms ((2L + 1) x hidden), to fp32: 4 bytes each, when the
  transformer's shape is given.
- Activations of a transformer in training (Korthikanti et al., arXiv 2205.05198, as quoted by
  EleutherAI's "Transformer Math 101"): s*b*h*L*(34 + 5*a*s/h) bytes with 16-bit activations;
  FlashAttention never stores the a*s*s attention scores, which removes the 5*a*s/h term; full
  recomputation (gradient checkpointing) keeps s*b*h*L*2 bytes of layer inputs and, at the peak, one
  layer's whole working set again (the layer being recomputed for its backward pass).
- Inference keeps no activations: its transient is one layer's buffers, s*b*(2h + 2*ffn) 16-bit values
  (the attention output and the MLP's gate and up projections), plus the a*s*s scores unless FlashAttention
  or SDPA's fused kernel is used, which is the default for inference (`flash_attention` unset).
- Logits: in training b*s*V values held as the head's 16-bit output (2 bytes), its fp32 copy for the loss
  (4: transformers' causal-LM heads call `logits.float()`), the log-softmax that cross-entropy saves (4) and
  the fp32 gradient (4): 14 bytes in 16-bit training, 12 in fp32. In inference only the last position's
  logits are computed (transformers' `logits_to_keep`, vLLM): b*V*4 bytes.
- KV cache (inference): 2 (keys and values) x layers x sequence x batch x hidden x kv_heads/heads x bytes
  per value: the weights' dtype (fp32: 4, 16-bit: 2; int8 and int4 weights keep a 16-bit cache).
  Grouped-query attention (Llama 3, Mistral: 8 KV heads for 32 query heads) stores kv_heads/heads of it.
- Framework overhead, `overhead_gb` = 0.5: the CUDA context with lazy module loading (default since CUDA
  11.7/PyTorch 1.13) measured 0.29 GB (pytorch#86509), about 0.3-0.4 GB (pytorch#107667, #109888) and
  426 MiB (unsloth-zoo#1053, PyTorch 2.10 with CUDA 13), plus cuBLAS/cuDNN workspaces. Hugging Face's
  1.3 GB (V100) predates lazy loading.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

MODES = ("train", "finetune", "lora", "qlora", "inference")
PRECISIONS = ("fp32", "mixed", "keras_mixed", "bf16", "fp16", "int8", "int4")
OPTIMIZERS = ("adam", "sgd", "sgdm", "none")
GB = 1e9
QLORA_BITS = 4.127          # NF4 + double-quantised constants, QLoRA section 3
DEFAULT_OVERHEAD_GB = 0.5   # CUDA context with lazy loading and library workspaces (module docstring)
TRAIN_LOGIT_BYTES = {True: 14.0, False: 12.0}   # 16-bit training: 2 + 4 + 4 + 4; fp32: 4 + 4 + 4
SHAPE_KEYS = ("layers", "hidden", "seq_len", "heads")
SHAPE_OPTIONAL = ("ffn", "kv_heads")
SHAPE_FLAGS = ("recompute", "flash_attention")
DEFAULT_VOCAB = 32_000      # Llama 1/2, Mistral 7B

_WEIGHT_BYTES = {"fp32": 4.0, "mixed": 2.0, "keras_mixed": 6.0, "bf16": 2.0, "fp16": 2.0, "int8": 1.0,
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
         "keras_mixed": "Keras mixed: float32 variables and their 16-bit copies, 4 + 2 + 4 + 8 = 18 bytes per "
                        "parameter with Adam",
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
    full recomputation keeps 2*s*b*h*L bytes of layer inputs plus one layer's working set,
    s*b*h*(34 + 5*a*s/h), rebuilt for that layer's backward pass.
    """
    _positive_ints("transformer_activations_gb", layers=layers, hidden=hidden, seq_len=seq_len, heads=heads,
                   batch_size=batch_size)
    s, b, h, L, a = seq_len, batch_size, hidden, layers, heads
    one_layer = 34.0 + (0.0 if flash_attention else 5.0 * a * s / h)
    if recompute:
        return s * b * h * (2.0 * L + one_layer) / GB
    return s * b * h * L * one_layer / GB


def inference_transient_gb(hidden: int, seq_len: int, heads: int, batch_size: int = 1, ffn: int | None = None,
                           flash_attention: bool = True) -> float:
    """One layer's buffers in a 16-bit forward pass: s*b*(2h + 2*ffn) values, plus a*s*s scores without Flash."""
    ffn = 4 * hidden if ffn is None else ffn
    _positive_ints("inference_transient_gb", hidden=hidden, seq_len=seq_len, heads=heads, batch_size=batch_size,
                   ffn=ffn)
    values = seq_len * batch_size * (2 * hidden + 2 * ffn)
    if not flash_attention:
        values += batch_size * heads * seq_len * seq_len
    return values * 2 / GB


def kv_cache_gb(layers: int, hidden: int, seq_len: int, batch_size: int = 1, bytes_per_value: float = 2.0,
                heads: int | None = None, kv_heads: int | None = None) -> float:
    """Keys and values of every layer for every token: 2 * L * s * b * h * (kv_heads / heads) * bytes.

    Grouped-query attention stores kv_heads of the heads' keys and values (Mistral 7B, Llama 3 8B: 8 of 32).
    """
    _positive_ints("kv_cache_gb", layers=layers, hidden=hidden, seq_len=seq_len, batch_size=batch_size)
    share = 1.0
    if kv_heads is not None:
        _positive_ints("kv_cache_gb", heads=heads, kv_heads=kv_heads)
        if kv_heads > heads or heads % kv_heads:
            raise ValueError(f"kv_heads={kv_heads} must divide heads={heads} (grouped-query attention)")
        share = kv_heads / heads
    return 2 * layers * seq_len * batch_size * hidden * share * bytes_per_value / GB


def logits_gb(seq_len: int, batch_size: int = 1, vocab: int = DEFAULT_VOCAB, bytes_per_value: float = 4.0) -> float:
    """The logits' buffers: b * s * vocabulary * bytes per value (4: the float32 logits alone)."""
    _positive_ints("logits_gb", seq_len=seq_len, batch_size=batch_size, vocab=vocab)
    return batch_size * seq_len * vocab * bytes_per_value / GB


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

    transformer: {"layers", "hidden", "seq_len", "heads"[, "ffn", "kv_heads", "recompute",
    "flash_attention"]} for the activation, logits and KV-cache terms at `batch_size` (the logits use
    `vocab`; ffn defaults to 4 x hidden, kv_heads to heads; flash_attention defaults to True in inference,
    False in training); or pass `activations_gb` yourself. Without either, activations count as 0 and a
    note says so.
    """
    lora_like = mode in ("lora", "qlora")
    fraction = trainable_fraction if trainable_fraction is not None else (0.005 if lora_like else 1.0)
    _check(params, mode, precision, optimizer, fraction, overhead_gb, activations_gb)
    _positive_ints("estimate", batch_size=batch_size, vocab=vocab)
    notes, rule = [], ""
    shape = None
    if transformer is not None:
        shape = dict(transformer)
        flash = shape.pop("flash_attention", None)
        flags = {"recompute": bool(shape.pop("recompute", False)),
                 "flash_attention": (mode == "inference") if flash is None else bool(flash)}
        missing = set(SHAPE_KEYS) - set(shape)
        if missing:
            raise ValueError(f"transformer= needs {', '.join(sorted(missing))}")
        unknown = set(shape) - set(SHAPE_KEYS) - set(SHAPE_OPTIONAL)
        if unknown:
            raise ValueError(f"transformer= does not know {', '.join(sorted(unknown))}; it takes "
                             f"{', '.join(SHAPE_KEYS + SHAPE_OPTIONAL + SHAPE_FLAGS)}")
        _positive_ints("transformer=", **{k: shape[k] for k in SHAPE_KEYS + SHAPE_OPTIONAL if k in shape})
        shape.setdefault("ffn", 4 * shape["hidden"])
        shape.setdefault("kv_heads", shape["heads"])
        if shape["kv_heads"] > shape["heads"] or shape["heads"] % shape["kv_heads"]:
            raise ValueError(f"transformer=: kv_heads={shape['kv_heads']} must divide heads={shape['heads']}")
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
                io = 2 * vocab * shape["hidden"] + (2 * shape["layers"] + 1) * shape["hidden"]
                base = (params - io) * QLORA_BITS / 8 + io * 4.0
                notes.append(f"QLoRA: embeddings, LM head and norms ({io:,.0f} parameters) cast to fp32 by "
                             "prepare_model_for_kbit_training")
            else:
                base = params * QLORA_BITS / 8
                notes.append("QLoRA: every base weight counted at 4.127 bits; give transformer= to count the "
                             "embeddings, LM head and norms in fp32")
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
        dims = {k: shape[k] for k in SHAPE_KEYS}
        attention = "FlashAttention (no attention scores)" if shape["flash_attention"] else "attention scores stored"
        if mode == "inference":
            activations_gb = inference_transient_gb(shape["hidden"], shape["seq_len"], shape["heads"], batch_size,
                                                    shape["ffn"], shape["flash_attention"])
            logit = logits_gb(1, batch_size, vocab)          # the last position's logits only
            kv_bytes = 4.0 if precision == "fp32" else 2.0
            kv = kv_cache_gb(shape["layers"], shape["hidden"], shape["seq_len"], batch_size, kv_bytes,
                             heads=shape["heads"], kv_heads=shape["kv_heads"])
            notes.append(f"KV cache for {batch_size} x {shape['seq_len']:,} tokens, {shape['kv_heads']} of "
                         f"{shape['heads']} heads, {kv_bytes:g} bytes a value")
            notes.append(f"activations: one layer's transient, {attention}; logits of the last position "
                         f"(vocabulary {vocab:,})")
        else:
            activations_gb = transformer_activations_gb(batch_size=batch_size, recompute=shape["recompute"],
                                                        flash_attention=shape["flash_attention"], **dims)
            sixteen = precision != "fp32" or mode in ("lora", "qlora")
            logit = logits_gb(shape["seq_len"], batch_size, vocab, TRAIN_LOGIT_BYTES[sixteen])
            how = f"full recomputation plus one layer's working set, {attention}" if shape["recompute"] else attention
            notes.append(f"activations: Korthikanti et al. 2022, {how}; logits, their fp32 copy, log-softmax and "
                         f"gradient for a vocabulary of {vocab:,} ({TRAIN_LOGIT_BYTES[sixteen]:g} bytes a value)")
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
