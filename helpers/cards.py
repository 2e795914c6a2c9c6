"""The GPU spec table (data/geforce_specs.csv), what each architecture offers, detection and peak look-up.

Used by notebooks 06 and 07, `helpers.bench` (percent of peak, the mixed-precision rule) and
`helpers.gpu` (recommendations). The memory estimator lives in `helpers.memory`, the roofline in
`helpers.roofline`.

The table holds the desktop GeForce 10/16/20/30/40/50 cards (`segment` "geforce") and the data-centre cards
that learners meet on Colab, Kaggle and rented machines (`segment` "data centre": T4, P100, L4, A100,
H100, H200, and the RTX PRO 6000 Blackwell of Colab's G4 runtime), so detection and percent of peak work
there too. Tensor Core columns are dense peaks: `fp16_tc_fp32acc_tflops` is FP16 with FP32 accumulate, the
rate Keras mixed precision uses; `fp16_tc_fp16acc_tflops` is the FP16-accumulate figure NVIDIA advertises
for GeForce cards (twice the former there; the same on data-centre cards, whose Tensor Cores accumulate in
FP32 at full rate); `fp8_tensor_tflops` is FP8 with FP32 accumulate on GeForce (half NVIDIA's FP8 headline
there) and the datasheet's dense FP8 figure on data-centre cards.

`SOFTWARE` says, per architecture, whether today's pip TensorFlow, PyTorch and JAX run on it and until when
CUDA supports it, with sources; `software_support` reads it and `setup_warning` turns it into the sentence
that `helpers.env.setup` prints on a card where the course's default backend fails.
"""
from __future__ import annotations

import re

GB = 1e9
GIB = 2 ** 30               # cards are sold in GiB: "24 GB" holds 24 x 2^30 bytes = 25.8 GB of 1e9 bytes
SPECS_FILE = "geforce_specs.csv"
NUMERIC = ("cuda_cores", "boost_clock_mhz", "vram_gb", "memory_bus_bits", "memory_gbps", "bandwidth_gbs",
           "fp32_tflops", "fp16_tc_fp32acc_tflops", "fp16_tc_fp16acc_tflops", "bf16_tensor_tflops",
           "tf32_tensor_tflops", "fp8_tensor_tflops", "tdp_w", "launch_price_usd")
FLAGS = ("bf16_native", "tf32_native")
SEGMENTS = ("geforce", "data centre")

# Sources: NVIDIA Pascal (GP100, GP104), Volta, Turing, Ampere (GA100, GA102), Ada and Hopper whitepapers;
# CUDA C Programming Guide, "Compute Capabilities" (FP16 at 1/64 of FP32 on compute capability 6.1).
ARCHITECTURES = {
    "6.0": ("Pascal", "P100: no Tensor Cores; FP16 at 2x FP32 on the CUDA cores"),
    "6.1": ("Pascal", "GeForce 10: no Tensor Cores, FP16 at 1/64 of the FP32 rate; mixed precision cannot help"),
    "7.0": ("Volta", "V100: 1st-generation Tensor Cores (FP16)"),
    "7.5": ("Turing", "RTX 20 and T4: 2nd-generation Tensor Cores for FP16 (INT8/INT4); no TF32 or bf16. "
                      "GTX 16 has Turing shaders but no Tensor Cores"),
    "8.0": ("Ampere", "A100: 3rd-generation Tensor Cores with TF32 (8x FP32) and bf16"),
    "8.6": ("Ampere", "RTX 30: 3rd-generation Tensor Cores with bf16 besides FP16; dense TF32 at the FP32 rate"),
    "8.9": ("Ada Lovelace", "RTX 40 and L4: 4th-generation Tensor Cores, adds FP8"),
    "9.0": ("Hopper", "H100, H200: 4th-generation Tensor Cores with FP8 and the Transformer Engine"),
    "10.0": ("Blackwell", "B200 (data centre): 5th-generation Tensor Cores with FP4; not in this table"),
    "12.0": ("Blackwell", "RTX 50 and RTX PRO 6000: 5th-generation Tensor Cores with FP4; dense TF32 at the FP32 "
                          "rate on GeForce"),
}
NO_FAST_16BIT = "no fast 16-bit units: stay in float32"
NO_TENSOR_CORES = "no Tensor Cores; FP16 runs at 2x FP32 on the CUDA cores, so the course stays in float32 (measure " \
                  "with --force-mixed)"

# What runs on each architecture in late 2026 (sources: ../shared/REFERENCE.md section 7 of the project).
# - CUDA: NVIDIA's CUDA 12.8 release notes mark Maxwell, Pascal and Volta feature-complete; CUDA 13.0 (2025-08)
#   removes offline compilation and library support for compute capability < 7.5 (NVIDIA technical blog,
#   "Navigating GPU Architecture Support"); driver branch R580 is the last for them.
# - PyTorch: 2.8 dropped sm_50-sm_61 from its CUDA 12.8 wheels, 2.10/2.11 sm_70 too; only the CUDA 12.6 wheels
#   (pip install torch --index-url https://download.pytorch.org/whl/cu126) still carry them, "to be removed in
#   future releases" (pytorch#157517, pytorch#172352: the support matrix, Blackwell 10.0 and 12.0 in cu128/cu130).
# - TensorFlow: pip wheels are built with CUDA 12 for sm_60 and later; on compute capability 12.0 they fail
#   with CUDA_ERROR_INVALID_PTX / "not built with CUDA kernel binaries compatible with compute capability 12.0"
#   (tensorflow#89272, #97387, #99592, #101746; tf-nightly 2.22.dev still failing in 2026-06). NVIDIA's NGC
#   TensorFlow containers run there.
# - JAX: its install guide's GPU wheel is jax[cuda13] (CUDA 13: compute capability 7.5 and later, Blackwell
#   included); NVIDIA's JAX-Toolbox builds for sm_75 ... compute_120.
SOFTWARE = {
    "pascal_volta": {
        "tensorflow": "yes (pip wheels: CUDA 12, sm_60 and later)", "tensorflow_runs": True,
        "pytorch": "only the CUDA 12.6 wheels (--index-url .../whl/cu126), which PyTorch will drop",
        "jax": "no: jax[cuda13] needs compute capability 7.5",
        "cuda": "ended: CUDA 12.x is the last (CUDA 13 removed compute capability < 7.5)", "cuda_ended": True},
    "current": {
        "tensorflow": "yes", "tensorflow_runs": True, "pytorch": "yes", "jax": "yes (jax[cuda13])",
        "cuda": "supported (CUDA 13)", "cuda_ended": False},
    "blackwell_rtx": {
        "tensorflow": "no: pip TensorFlow fails (CUDA_ERROR_INVALID_PTX); NVIDIA's NGC container runs",
        "tensorflow_runs": False, "pytorch": "yes (CUDA 12.8 and 13 wheels)", "jax": "yes (jax[cuda13])",
        "cuda": "supported (CUDA 12.8 and later)", "cuda_ended": False},
}
WAY_OUT = ("run notebooks 04-06 on Keras's JAX or PyTorch backend (pip install -r requirements-jax.txt, then "
           "pip install -U 'jax[cuda13]'; or pip install -r requirements-torch.txt; then set KERAS_BACKEND=jax or "
           "torch before starting JupyterLab), or TensorFlow in NVIDIA's NGC container (README, GPU set-up)")


def software_support(compute_capability) -> dict:
    """What runs on an architecture: tensorflow, pytorch, jax and cuda as short sentences, with the flags
    `tensorflow_runs` and `cuda_ended` (sources: the comment above SOFTWARE). None or "" means the CPU."""
    if not compute_capability:
        return {"tensorflow": "yes", "tensorflow_runs": True, "pytorch": "yes", "jax": "yes", "cuda": "no GPU",
                "cuda_ended": False}
    value = float(compute_capability)
    key = "pascal_volta" if value < 7.5 else "blackwell_rtx" if value >= 12.0 else "current"
    return dict(SOFTWARE[key])


def setup_warning(device: dict, backend: str = "tensorflow") -> str | None:
    """The sentence to print first on a GPU where the course's backend cannot run, else None.

    device: {"kind": "GPU", "name": ..., "compute_capability": "12.0"} as helpers.env.device_report gives it.
    """
    if device.get("kind") != "GPU" or not device.get("compute_capability"):
        return None
    support = software_support(device["compute_capability"])
    name = device.get("name") or "this GPU"
    if backend == "tensorflow" and not support["tensorflow_runs"]:
        return (f"{name} has compute capability {device['compute_capability']} (Blackwell): pip TensorFlow has no "
                f"kernels for it and fails with CUDA_ERROR_INVALID_PTX on the first GPU operation. Notebooks 02 and "
                f"03 run on the CPU (CUDA_VISIBLE_DEVICES=-1); for 04-06 {WAY_OUT}.")
    if support["cuda_ended"]:
        return (f"{name} has compute capability {device['compute_capability']}: CUDA 13 dropped it. TensorFlow "
                "still runs on it (CUDA 12 wheels); a card from Turing (RTX 20, T4) on has a future.")
    return None


# oneDNN's instruction-set caps (ONEDNN_MAX_CPU_ISA) at which its bfloat16 kernels exist; below them a bf16
# matmul cannot be built and the process aborts ("could not create a primitive descriptor"): oneDNN docs, "CPU
# Dispatcher Control"
ONEDNN_BF16_ISAS = ("AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16", "AVX10_1_512_AMX", "AVX512_CORE_AMX",
                    "AVX10_1_512_AMX_FP16", "AVX512_CORE_AMX_FP16", "ALL", "DEFAULT")


def onednn_isa_cap() -> str | None:
    """The instruction-set cap set for oneDNN (ONEDNN_MAX_CPU_ISA, or its older name DNNL_MAX_CPU_ISA), if any."""
    import os

    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return cap.upper() if cap else None


def cpu_has_bf16() -> bool:
    """True where this CPU has AVX512-BF16 or AMX-BF16 instructions (Linux: /proc/cpuinfo flags) and oneDNN may
    use them (no ONEDNN_MAX_CPU_ISA cap below AVX512_CORE_BF16)."""
    cap = onednn_isa_cap()
    if cap and cap not in ONEDNN_BF16_ISAS:
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def mixed_policy(compute_capability=None, name: str = "", cpu_bf16: bool | None = None) -> tuple:
    """The Keras mixed-precision policy that is fast here, and why: (policy or None, reason).

    mixed_float16 from compute capability 7.0 on cards with Tensor Cores (Volta, Turing RTX, T4);
    mixed_bfloat16 on Ampere and later (Tensor Cores run bf16 at the FP16 rate, and bf16 needs no loss
    scaling), or on a CPU with AVX512-BF16/AMX; None everywhere else: before Ampere TensorFlow casts
    bfloat16 convolutions to float32 (tensorflow/core/kernels/conv_ops_bfloat16.cc), and GeForce 10 runs
    FP16 at 1/64 of FP32, so a mixed row would time emulation.
    """
    if not compute_capability:
        has = cpu_has_bf16() if cpu_bf16 is None else cpu_bf16
        if has:
            return "mixed_bfloat16", "CPU with AVX512-BF16/AMX: bfloat16 matmuls run natively"
        cap = onednn_isa_cap()
        if cpu_bf16 is None and cap and cap not in ONEDNN_BF16_ISAS:
            return None, f"oneDNN capped at {cap} (ONEDNN_MAX_CPU_ISA): no bfloat16 kernels, {NO_FAST_16BIT}"
        return None, f"CPU without AVX512-BF16/AMX: {NO_FAST_16BIT}"
    arch = architecture(compute_capability, name)
    if arch["bf16"]:
        return "mixed_bfloat16", f"{arch['architecture']}: Tensor Cores run bfloat16 at the FP16 rate, no loss scaling"
    if arch["tensor_cores"]:
        return "mixed_float16", f"{arch['architecture']}: FP16 Tensor Cores (bfloat16 would be emulated)"
    if str(compute_capability) == "6.1":
        return None, f"{arch['architecture']} (GeForce 10): no Tensor Cores, FP16 at 1/64 of FP32: {NO_FAST_16BIT}"
    return None, f"{arch['architecture']}: {NO_TENSOR_CORES}"


def architecture(compute_capability, name: str = "") -> dict:
    """What a GPU of this compute capability offers: architecture, Tensor Cores, TF32, bf16, FP8, policy.

    `name` tells a GTX 16 (Turing without Tensor Cores) from an RTX 20. None or "" means the CPU.
    """
    if not compute_capability:
        policy, reason = mixed_policy(None)
        return {"architecture": "CPU", "tensor_cores": False, "tf32": False, "bf16": False, "fp8": False,
                "mixed_policy": policy, "summary": reason}
    cc = str(compute_capability)
    try:
        value = float(cc)
    except ValueError:
        raise ValueError(f"architecture({compute_capability!r}): a compute capability looks like '8.6'") from None
    arch, summary = ARCHITECTURES.get(cc, ("newer than Blackwell" if value > 12.0 else "Blackwell" if value >= 10
                                           else "Jetson or other" if value >= 6.0 else "older than Pascal",
                                           "not covered by this course's table"))
    gtx16 = "GTX 16" in name.upper().replace("GEFORCE ", "")
    tensor = value >= 7.0 and not gtx16
    info = {"architecture": arch, "tensor_cores": tensor, "tf32": value >= 8.0, "bf16": value >= 8.0,
            "fp8": value >= 8.9,
            "summary": "GTX 16: Turing without Tensor Cores; mixed precision will not speed it up" if gtx16
            else summary}
    info["mixed_policy"] = ("mixed_bfloat16" if info["bf16"] else "mixed_float16" if tensor else None)
    return info


def specs_path():
    from .env import repo_root

    return repo_root() / "data" / SPECS_FILE


def load_specs(path=None, segment: str | None = None) -> list:
    """The spec table as a list of dicts (numbers as float, empty cells as None, flags as bool), checked.

    segment: "geforce" or "data centre" keeps those rows only; None keeps all.
    """
    import csv
    from pathlib import Path

    if segment is not None and segment not in SEGMENTS:
        raise ValueError(f"segment={segment!r}: choose one of {', '.join(SEGMENTS)} (or None for all rows)")
    path = Path(path) if path is not None else specs_path()
    if not path.exists():
        raise FileNotFoundError(f"GPU spec table {path} is missing: restore data/{SPECS_FILE} from the course "
                                "repository (git checkout -- data)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or rows[0].get("name") is None or "source" not in rows[0] or "segment" not in rows[0]:
        raise ValueError(f"{path}: not the course's GPU table (needs a header with name, segment, ..., source)")
    for i, row in enumerate(rows, start=2):
        for col in NUMERIC:
            text = (row.get(col) or "").strip()
            try:
                row[col] = float(text) if text else None
            except ValueError:
                raise ValueError(f"{path}, line {i} ({row['name']}): {col}={text!r} is not a number") from None
        for col in FLAGS:
            if row.get(col) not in ("yes", "no"):
                raise ValueError(f"{path}, line {i} ({row['name']}): {col}={row.get(col)!r} must be yes or no")
            row[col] = row[col] == "yes"
        if row["segment"] not in SEGMENTS:
            raise ValueError(f"{path}, line {i} ({row['name']}): segment {row['segment']!r} is not one of "
                             f"{', '.join(SEGMENTS)}")
        if not row.get("source"):
            raise ValueError(f"{path}, line {i} ({row['name']}): every row needs a source")
    return [r for r in rows if segment is None or r["segment"] == segment]


def _norm(name: str) -> str:
    text = name.upper().replace("-", " ")
    for word in ("NVIDIA", "GEFORCE", "TESLA"):
        text = text.replace(word, " ")
    return " ".join(text.split())


MEMORY_TOLERANCE = 0.10     # a device whose memory differs from its row's by more than this is another variant


def match_card(name: str, vram_gib: float | None = None, specs=None, explain: bool = False):
    """The table row for a device name such as 'NVIDIA GeForce RTX 3060' or 'Tesla T4' (None if unknown).

    Names shared by several memory sizes ('RTX 3080': 10 or 12 GB; 'A100-SXM4': 40 or 80 GB) are told apart by
    `vram_gib`, the memory the device reports (GiB); without it such a name matches nothing rather than a
    guess. Data-centre names are matched by their row's `match` words, the most specific row first ("H100
    PCIe" before "H100"). A row whose memory differs from the device's by more than MEMORY_TOLERANCE is
    refused (an A100 40GB PCIe is not the 80 GB row; an H100 NVL is not the SXM row). explain=True returns
    (row, how) where `how` says which rule picked the row, or why none was.
    """
    def result(row, how):
        return (row, how) if explain else row

    if not name:
        return result(None, "no device name")
    specs = specs if specs is not None else load_specs()
    wanted = _norm(name)
    tokens = set(wanted.split())
    exact = [row for row in specs if _norm(row["name"]) == wanted]
    family = exact or [row for row in specs if re.sub(r" \d+GB$", "", _norm(row["name"])) == wanted]
    if not family:   # data-centre names vary ("Tesla T4", "NVIDIA A100-SXM4-40GB"): the row's match words
        hits = [row for row in specs if row["match"] and set(row["match"].upper().split()) <= tokens]
        most = max((len(row["match"].split()) for row in hits), default=0)
        family = [row for row in hits if len(row["match"].split()) == most]
        sized = [row for row in family if f"{row['vram_gb']:.0f}GB" in tokens]
        family = sized or family
    if len(family) > 1 and vram_gib:
        row = min(family, key=lambda r: abs(r["vram_gb"] - vram_gib))
        how = f"name shared by {len(family)} rows; {vram_gib:.1f} GiB of memory picked {row['name']}"
    elif len(family) == 1:
        row, how = family[0], "name"
    elif family:
        return result(None, f"{name!r} matches {', '.join(r['name'] for r in family)}: give the memory size")
    else:
        return result(None, f"{name!r} is not in the table")
    if vram_gib and abs(vram_gib - row["vram_gb"]) > MEMORY_TOLERANCE * row["vram_gb"]:
        return result(None, f"{name!r} reports {vram_gib:.1f} GiB but the closest row, {row['name']}, has "
                            f"{row['vram_gb']:.0f} GB: another variant, not in the table (no row used)")
    return result(row, how)


def peak_tflops(card: dict, precision: str) -> float:
    """The dense peak for a precision: fp32, tf32, fp16 (Tensor Cores, FP32 accumulate), bf16, fp8.

    A card without the units for a precision falls back on its FP32 peak (it computes there in float32
    or emulates), so percent-of-peak figures stay comparable.
    """
    column = {"fp32": "fp32_tflops", "tf32": "tf32_tensor_tflops", "fp16": "fp16_tc_fp32acc_tflops",
              "bf16": "bf16_tensor_tflops", "fp8": "fp8_tensor_tflops"}
    if precision not in column:
        raise ValueError(f"peak_tflops: precision {precision!r}; choose one of {', '.join(column)}")
    return card[column[precision]] or card["fp32_tflops"]


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
    card, how = match_card(found["name"], (found["vram_gb"] or 0) * GB / GIB or None, explain=True)
    found["card"] = card["name"] if card else None
    found["matched_by"] = how
    return found


def table_text(specs=None) -> str:
    """The spec table as aligned text (python -m helpers.gpu table)."""
    specs = specs if specs is not None else load_specs()
    head = (f"{'card':<22} {'arch':<12} {'CC':>4} {'GB':>3} {'GB/s':>6} {'FP32':>6} {'FP16TC':>7} {'(f16acc)':>8} "
            f"{'bf16':>6} {'FP8':>6} {'W':>4} {'$':>5}  checked")
    lines = [head, "-" * len(head)]

    def f(v, spec="{:.1f}"):
        return "" if v is None else spec.format(v)
    segment = None
    for c in specs:
        if c["segment"] != segment:
            segment = c["segment"]
            lines.append(f"[{segment}]")
        lines.append(f"{c['name']:<22} {c['architecture']:<12} {c['compute_capability']:>4} "
                     f"{f(c['vram_gb'], '{:.0f}'):>3} {f(c['bandwidth_gbs'], '{:.0f}'):>6} {f(c['fp32_tflops']):>6} "
                     f"{f(c['fp16_tc_fp32acc_tflops']):>7} "
                     f"{f(c['fp16_tc_fp16acc_tflops']):>8} {f(c['bf16_tensor_tflops']):>6} "
                     f"{f(c['fp8_tensor_tflops']):>6} {f(c['tdp_w'], '{:.0f}'):>4} "
                     f"{f(c['launch_price_usd'], '{:.0f}'):>5}  {c['checked']}")
    lines.append("TFLOPS are dense peaks. FP16TC: Tensor Cores with FP32 accumulate (what Keras mixed precision "
                 "uses); (f16acc): with FP16 accumulate, NVIDIA's GeForce headline; FP8: with FP32 accumulate on "
                 "GeForce (half NVIDIA's FP8 headline), datasheet dense FP8 on data-centre cards. $: launch price, "
                 "history for cards no longer sold new. Sources: data/README.md.")
    return "\n".join(lines)
