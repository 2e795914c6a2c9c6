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


# ---------------------------------------------------------------------------------------------
# Architectures: what each compute capability offers deep learning (notebooks 06 and 07)
# ---------------------------------------------------------------------------------------------
# Sources: NVIDIA Pascal (GP104), Turing, Ampere GA102 and Ada whitepapers; CUDA C Programming Guide,
# "Compute Capabilities" (arithmetic throughput table: FP16 at 1/64 of FP32 on compute capability 6.1).
ARCHITECTURES = {
    "6.0": ("Pascal", "Tesla P100; fast FP16 (2x FP32), no Tensor Cores"),
    "6.1": ("Pascal", "GeForce 10: no Tensor Cores, FP16 at 1/64 of the FP32 rate; mixed precision cannot help"),
    "7.0": ("Volta", "V100: 1st-generation Tensor Cores (FP16)"),
    "7.5": ("Turing", "RTX 20: 2nd-generation Tensor Cores for FP16 (INT8/INT4); no TF32 or bf16. "
                      "GTX 16 has Turing shaders but no Tensor Cores"),
    "8.0": ("Ampere", "A100: 3rd-generation Tensor Cores with TF32 and bf16"),
    "8.6": ("Ampere", "RTX 30: 3rd-generation Tensor Cores with TF32 and bf16 besides FP16"),
    "8.9": ("Ada Lovelace", "RTX 40: 4th-generation Tensor Cores, adds FP8"),
    "9.0": ("Hopper", "H100: 4th-generation Tensor Cores with FP8 and the Transformer Engine"),
}


def architecture(compute_capability, name: str = "") -> dict:
    """What a GPU of this compute capability offers: architecture, Tensor Cores, TF32, bf16, FP8, best policy.

    `name` tells a GTX 16 (Turing without Tensor Cores) from an RTX 20. None or "" means the CPU.
    """
    if not compute_capability:
        return {"architecture": "CPU", "tensor_cores": False, "tf32": False, "bf16": False, "fp8": False,
                "mixed_policy": "mixed_bfloat16",
                "summary": "CPU: bfloat16 helps only where the CPU has AVX512-BF16 or AMX instructions"}
    cc = str(compute_capability)
    try:
        value = float(cc)
    except ValueError:
        raise ValueError(f"architecture({compute_capability!r}): a compute capability looks like '8.6'") from None
    arch, summary = ARCHITECTURES.get(cc, ("newer than Hopper" if value > 9.0 else "older than Pascal",
                                           "not covered by this course's table"))
    gtx16 = "GTX 16" in name.upper().replace("GEFORCE ", "")
    tensor = value >= 7.0 and not gtx16
    return {"architecture": arch, "tensor_cores": tensor, "tf32": value >= 8.0, "bf16": value >= 8.0,
            "fp8": value >= 8.9, "mixed_policy": "mixed_float16" if tensor else "mixed_bfloat16",
            "summary": "GTX 16: Turing without Tensor Cores; mixed precision will not speed it up" if gtx16
            else summary}


# ---------------------------------------------------------------------------------------------
# The GeForce table (data/geforce_specs.csv), detection and recommendation (notebook 07)
# ---------------------------------------------------------------------------------------------
SPECS_FILE = "geforce_specs.csv"
NUMERIC = ("cuda_cores", "boost_clock_mhz", "vram_gb", "memory_bus_bits", "memory_gbps", "bandwidth_gbs",
           "fp32_tflops", "fp16_tensor_tflops", "bf16_tensor_tflops", "tf32_tensor_tflops", "fp8_tensor_tflops",
           "tdp_w", "launch_price_usd")
GIB = 2 ** 30               # cards are sold in GiB: "24 GB" holds 24 x 2^30 bytes = 25.8 GB of 1e9 bytes
DEFAULT_HEADROOM = 0.10     # keep 10 % of the card free (fragmentation, the display, other processes)


def specs_path():
    from .env import repo_root

    return repo_root() / "data" / SPECS_FILE


def load_specs(path=None) -> list:
    """The GeForce table as a list of dicts (numbers as float, empty cells as None), checked on the way in."""
    import csv
    from pathlib import Path

    path = Path(path) if path is not None else specs_path()
    if not path.exists():
        raise FileNotFoundError(f"GPU spec table {path} is missing: restore data/{SPECS_FILE} from the course "
                                "repository (git checkout -- data)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or rows[0].get("name") is None or "source" not in rows[0]:
        raise ValueError(f"{path}: not the GeForce table (needs a header with name, ..., source)")
    for i, row in enumerate(rows, start=2):
        for col in NUMERIC:
            text = (row.get(col) or "").strip()
            try:
                row[col] = float(text) if text else None
            except ValueError:
                raise ValueError(f"{path}, line {i} ({row['name']}): {col}={text!r} is not a number") from None
        if not row.get("source"):
            raise ValueError(f"{path}, line {i} ({row['name']}): every row needs a source")
    return rows


def _norm(name: str) -> str:
    return " ".join(name.upper().replace("NVIDIA", " ").replace("GEFORCE", " ").split())


def match_card(name: str, vram_gb: float | None = None, specs=None):
    """The table row for a device name such as 'NVIDIA GeForce RTX 3060' (None if it is not a desktop GeForce).

    Names shared by several memory sizes ('RTX 3080': 10 or 12 GB) are told apart by `vram_gb`.
    """
    import re

    if not name:
        return None
    specs = specs if specs is not None else load_specs()
    wanted = _norm(name)
    for row in specs:
        if _norm(row["name"]) == wanted:
            return row
    family = [row for row in specs if re.sub(r" \d+GB$", "", _norm(row["name"])) == wanted]
    if len(family) == 1:
        return family[0]
    if family and vram_gb:
        return min(family, key=lambda row: abs(row["vram_gb"] - vram_gb))
    return None


def detect() -> dict | None:
    """The first NVIDIA GPU: name, compute capability, VRAM (GB of 1e9 bytes), driver and its table row.

    Asks nvidia-smi first (it knows the driver and memory), then TensorFlow if it is installed.
    Returns None where neither finds a GPU (a CPU-only machine).
    """
    import shutil
    import subprocess

    found = None
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap,memory.total,driver_version",
                                  "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=20)
            if out.returncode == 0 and out.stdout.strip():
                name, cc, mib, driver = [p.strip() for p in out.stdout.splitlines()[0].split(",")][:4]
                found = {"name": name, "compute_capability": cc, "vram_gb": round(float(mib) * 2**20 / GB, 1),
                         "driver": driver, "via": "nvidia-smi"}
        except (OSError, ValueError, subprocess.SubprocessError):
            found = None
    if found is None:
        try:
            from .env import device_report, import_tensorflow

            d = device_report(import_tensorflow())
        except ImportError:
            d = {"kind": "CPU"}
        if d["kind"] != "GPU":
            return None
        found = {"name": d["name"], "compute_capability": d["compute_capability"], "vram_gb": None,
                 "driver": None, "via": "tensorflow"}
    card = match_card(found["name"], (found["vram_gb"] or 0) * GB / GIB or None)
    found["card"] = card["name"] if card else None
    return found


def usable_gb(card: dict, headroom: float = DEFAULT_HEADROOM) -> float:
    """GB (1e9 bytes) a job may use on a card: its GiB in bytes, less the headroom."""
    return card["vram_gb"] * GIB / GB * (1 - headroom)


def task_tflops(card: dict, precision: str, mode: str):
    """The peak that bounds the task: Tensor Cores for 16-bit work where the card has them, else FP32.

    For inference of large models (memory-bound) rank by bandwidth instead: see `recommend`.
    """
    if precision == "bf16":
        return card["bf16_tensor_tflops"] or card["fp32_tflops"]
    if precision in ("mixed", "fp16", "int8", "int4") or mode in ("lora", "qlora"):
        return card["fp16_tensor_tflops"] or card["fp32_tflops"]
    return card["fp32_tflops"]


@dataclass
class Recommendation:
    estimate: Estimate
    cards: list                 # dicts: name, vram_gb, free_gb, tflops or bandwidth, per_dollar, price
    rank_by: str
    notes: list = field(default_factory=list)

    @property
    def fits(self) -> list:
        return [c["name"] for c in self.cards]


def recommend(params: float, mode: str = "train", precision: str = "mixed", optimizer: str = "adam", *,
              headroom: float = DEFAULT_HEADROOM, budget_usd: float | None = None, specs=None,
              **estimate_kwargs) -> Recommendation:
    """Cards with room for the job (after `headroom`), best price-performance first; if none, what would help.

    Training and fine-tuning rank by the task's peak TFLOPS per launch dollar; inference ranks by
    memory bandwidth per dollar (generating tokens reads every weight once per step: bandwidth-bound).
    """
    if not 0 <= headroom < 1:
        raise ValueError(f"headroom={headroom!r} must lie in [0, 1), e.g. 0.1 for 10 %")
    if budget_usd is not None and not budget_usd > 0:
        raise ValueError(f"budget_usd={budget_usd!r} must be a positive number of dollars")
    specs = specs if specs is not None else load_specs()
    est = estimate(params, mode, precision, optimizer, **estimate_kwargs)
    need = est.total_gb
    rank_by = "bandwidth_gbs" if mode == "inference" else "tflops"
    cards, notes = [], []
    for card in specs:
        free = usable_gb(card, headroom) - need
        if free < 0:
            continue
        price = card["launch_price_usd"]
        if budget_usd is not None and (price is None or price > budget_usd):
            continue
        perf = card["bandwidth_gbs"] if rank_by == "bandwidth_gbs" else task_tflops(card, precision, mode)
        cards.append({"name": card["name"], "vram_gb": card["vram_gb"], "free_gb": round(free, 2),
                      rank_by: perf, "per_dollar": round(perf / price, 4) if price else None,
                      "launch_price_usd": price})
    cards.sort(key=lambda c: (c["per_dollar"] is None, -(c["per_dollar"] or 0)))
    if not cards:
        biggest = max(usable_gb(c, headroom) for c in specs)
        notes.append(f"needs {need:.1f} GB; the largest GeForce card here offers {biggest:.1f} GB after "
                     f"{headroom:.0%} headroom" + (f" within ${budget_usd:,.0f}" if budget_usd else ""))
        notes.extend(_what_would_fit(params, mode, precision, optimizer, need, biggest, estimate_kwargs))
    return Recommendation(est, cards, rank_by, notes)


def _what_would_fit(params, mode, precision, optimizer, need, biggest, kwargs) -> list:
    ideas = []
    if mode in ("train", "finetune"):
        for alt, alt_prec in (("lora", "mixed" if precision not in ("bf16", "fp16") else precision), ("qlora", "int4")):
            e = estimate(params, alt, alt_prec, optimizer if optimizer != "none" else "adam", **kwargs)
            ideas.append(f"{alt} ({alt_prec}) would need {e.total_gb:.1f} GB")
    elif mode == "lora":
        e = estimate(params, "qlora", "int4", optimizer, **kwargs)
        ideas.append(f"qlora (int4 base) would need {e.total_gb:.1f} GB")
    elif mode == "inference" and precision not in ("int4",):
        e = estimate(params, "inference", "int4", "none", **kwargs)
        ideas.append(f"int4 weights would need {e.total_gb:.1f} GB")
    if kwargs.get("transformer") and not kwargs["transformer"].get("recompute"):
        e = estimate(params, mode, precision, optimizer, **{**kwargs, "transformer": {**kwargs["transformer"],
                                                                                      "recompute": True}})
        ideas.append(f"gradient checkpointing (recompute activations) would need {e.total_gb:.1f} GB")
    if kwargs.get("batch_size", 1) > 1 and (kwargs.get("transformer") or kwargs.get("activations_gb")):
        ideas.append("a smaller batch with gradient accumulation shrinks the activations in proportion")
    ideas.append(f"or more memory: {need:.0f} GB usable means a workstation or data-centre GPU, or several "
                 "GPUs with the states sharded between them (ZeRO, FSDP)")
    return ideas


def table_text(specs=None) -> str:
    """The spec table as aligned text (python -m helpers.gpu table)."""
    specs = specs if specs is not None else load_specs()
    head = f"{'card':<18} {'arch':<12} {'CC':>3} {'GB':>3} {'GB/s':>6} {'FP32':>6} {'FP16TC':>7} {'bf16':>6} " \
           f"{'FP8':>6} {'W':>4} {'$':>5}  checked"
    lines = [head, "-" * len(head)]

    def f(v, spec="{:.1f}"):
        return "" if v is None else spec.format(v)
    for c in specs:
        lines.append(f"{c['name']:<18} {c['architecture']:<12} {c['compute_capability']:>3} {f(c['vram_gb'], '{:.0f}'):>3} "
                     f"{f(c['bandwidth_gbs'], '{:.0f}'):>6} {f(c['fp32_tflops']):>6} {f(c['fp16_tensor_tflops']):>7} "
                     f"{f(c['bf16_tensor_tflops']):>6} {f(c['fp8_tensor_tflops']):>6} {f(c['tdp_w'], '{:.0f}'):>4} "
                     f"{f(c['launch_price_usd'], '{:.0f}'):>5}  {c['checked']}")
    lines.append("TFLOPS are dense peaks; FP16TC with FP32 accumulate. Sources: data/README.md and the source column.")
    return "\n".join(lines)


def main(argv=None) -> int:
    """python -m helpers.gpu detect | table | estimate --params N --mode M --precision P --optimizer O [--json]"""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m helpers.gpu",
                                     description="Choose a GeForce card: detect yours, list the table, estimate memory.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("detect", help="the GPU of this machine and its table row")
    sub.add_parser("table", help="the GeForce 10/16/20/30/40 spec table")
    est = sub.add_parser("estimate", help="memory needed, and the cards it fits")
    est.add_argument("--params", type=float, required=True, help="number of parameters, e.g. 7e9")
    est.add_argument("--mode", default="train", choices=MODES)
    est.add_argument("--precision", default="mixed", choices=PRECISIONS)
    est.add_argument("--optimizer", default="adam", choices=OPTIMIZERS)
    est.add_argument("--batch-size", type=int, default=1)
    est.add_argument("--activations-gb", type=float, default=None, help="activation memory, if you know it")
    est.add_argument("--transformer", nargs=4, type=int, metavar=("LAYERS", "HIDDEN", "SEQ_LEN", "HEADS"),
                     help="estimate activations for a transformer of this shape")
    est.add_argument("--checkpointing", action="store_true", help="with --transformer: recompute activations")
    est.add_argument("--trainable-fraction", type=float, default=None)
    est.add_argument("--headroom", type=float, default=DEFAULT_HEADROOM)
    est.add_argument("--budget", type=float, default=None, help="launch price limit in USD")
    est.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    try:
        if args.command == "table":
            print(table_text())
        elif args.command == "detect":
            found = detect()
            if found is None:
                print("no NVIDIA GPU found (nvidia-smi and TensorFlow see none): this machine computes on the CPU")
            else:
                print(f"{found['name']} (compute capability {found['compute_capability']}, "
                      f"{found['vram_gb'] or '?'} GB, driver {found['driver'] or '?'}; via {found['via']}); "
                      f"table row: {found['card'] or 'none (not a desktop GeForce 10-40)'}")
        else:
            transformer = None
            if args.transformer:
                layers, hidden, seq_len, heads = args.transformer
                transformer = {"layers": layers, "hidden": hidden, "seq_len": seq_len, "heads": heads,
                               "recompute": args.checkpointing}
            rec = recommend(args.params, args.mode, args.precision, args.optimizer, headroom=args.headroom,
                            budget_usd=args.budget, batch_size=args.batch_size, activations_gb=args.activations_gb,
                            transformer=transformer, trainable_fraction=args.trainable_fraction)
            e = rec.estimate.as_dict()
            result = {k: e[k] for k in ("weights_gb", "gradients_gb", "optimizer_gb", "activations_gb",
                                        "overhead_gb", "total_gb")}
            result.update(fits=rec.fits, notes=e["notes"] + rec.notes)
            if args.json:
                print(json.dumps(result))
            else:
                for k in ("weights_gb", "gradients_gb", "optimizer_gb", "activations_gb", "overhead_gb", "total_gb"):
                    print(f"{k[:-3]:>12}: {result[k]:9.2f} GB")
                print(f"fits ({len(rec.fits)} cards, best {rec.rank_by} per dollar first): "
                      f"{', '.join(rec.fits) or 'none'}")
                for note in result["notes"]:
                    print(f"- {note}")
    except (ValueError, FileNotFoundError) as err:
        parser.exit(2, f"python -m helpers.gpu: {err}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def keras_activations_gb(model, batch_size: int, bytes_per_value: float = 4.0) -> float:
    """Activation memory of a Keras model in training: every layer's output kept for the backward pass.

    An honest first approximation for the course's CNNs (sum of output sizes x batch x bytes); real
    frameworks keep some extra buffers (e.g. ReLU masks, cuDNN workspaces) and free some early.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a positive int")
    import math as _math

    values = 0
    for layer in model.layers:
        if isinstance(layer.output, (list, tuple)) or not hasattr(layer.output, "shape"):
            raise ValueError(f"keras_activations_gb: layer {layer.name!r} has several outputs; "
                             "pass activations_gb yourself for such models")
        values += _math.prod(d for d in layer.output.shape[1:] if d is not None)
    return values * batch_size * bytes_per_value / GB


def roofline_seconds(flops: float, bytes_moved: float, card: dict, precision: str = "fp32",
                     efficiency: float = 0.35) -> dict:
    """Time for a step on `card` by a roofline model: the slower of compute and memory traffic.

    efficiency: the fraction of peak that real kernels reach (calibrate it on a measured device).
    Returns compute_s, memory_s, seconds and which bound.
    """
    if not 0 < efficiency <= 1:
        raise ValueError(f"efficiency={efficiency!r} must lie in (0, 1]")
    peak = task_tflops(card, precision, "train") * 1e12
    compute = flops / (peak * efficiency)
    memory = bytes_moved / (card["bandwidth_gbs"] * 1e9 * efficiency)
    return {"compute_s": compute, "memory_s": memory, "seconds": max(compute, memory),
            "bound": "compute" if compute >= memory else "memory"}
