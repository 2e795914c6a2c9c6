"""A roofline with a fixed cost per step: how long a step takes on a card, and what bounds it (notebook 07).

    t = t_overhead + max(F / (eta_c * P), B / (eta_m * W))

F floating-point operations and B bytes of memory traffic per step; P the card's peak FLOP/s for the
precision and W its bandwidth (helpers.cards); eta_c and eta_m the fractions of peak that real kernels
reach; t_overhead the time a step costs whatever its size (Python, the framework, kernel launches).

Defaults, used until `helpers.bench` has measured the card (see `calibrate`):
- ETA_COMPUTE = 0.5: cuDNN convolutions and mid-sized GEMMs; large square GEMMs reach 0.7-0.9 of peak.
- ETA_MEMORY = 0.8: a large device-to-device copy reaches 80-90 % of the rated bandwidth.
- OVERHEAD_S = 0.5 ms per step: an assumption for a Keras `fit` step compiled by tf.function with one
  step per execution. `calibrate` replaces it with the `linear` stage's measured time per step (a step
  of two scalars, nothing but overhead).
"""
from __future__ import annotations

ETA_COMPUTE = 0.5
ETA_MEMORY = 0.8
OVERHEAD_S = 0.5e-3


def roofline_seconds(flops: float, bytes_moved: float, card: dict, precision: str = "fp32", *,
                     eta_compute: float = ETA_COMPUTE, eta_memory: float = ETA_MEMORY,
                     overhead_s: float = OVERHEAD_S) -> dict:
    """Seconds for one step on `card`: overhead + the slower of compute and memory traffic.

    Returns compute_s, memory_s, overhead_s, seconds and `bound`: "overhead" when the fixed cost is at
    least the compute and memory time together would take, else "compute" or "memory".
    """
    from .cards import peak_tflops

    for name, eta in (("eta_compute", eta_compute), ("eta_memory", eta_memory)):
        if not 0 < eta <= 1:
            raise ValueError(f"{name}={eta!r} must lie in (0, 1]: the fraction of peak that kernels reach")
    if overhead_s < 0 or flops < 0 or bytes_moved < 0:
        raise ValueError(f"flops={flops!r}, bytes_moved={bytes_moved!r} and overhead_s={overhead_s!r} must be >= 0")
    compute = flops / (peak_tflops(card, precision) * 1e12 * eta_compute)
    memory = bytes_moved / (card["bandwidth_gbs"] * 1e9 * eta_memory)
    work = max(compute, memory)
    bound = "overhead" if overhead_s >= work else ("compute" if compute >= memory else "memory")
    return {"compute_s": compute, "memory_s": memory, "overhead_s": overhead_s, "seconds": overhead_s + work,
            "bound": bound}


def calibrate(table, card: dict) -> dict:
    """eta_compute, eta_memory and overhead_s for `card` from a benchmark table of helpers.bench.

    Reads the float32 `matmul` row (achieved / peak TFLOPS), the `bandwidth` row (achieved / rated GB/s)
    and the float32 `linear` row (seconds per step); each figure falls back on the module default when
    its row is missing, and `source` says which figures were measured.
    """
    import pandas as pd

    out = {"eta_compute": ETA_COMPUTE, "eta_memory": ETA_MEMORY, "overhead_s": OVERHEAD_S, "source": []}
    rows = table[(table["status"] == "ok") & (table["mode"] == "float32")]

    def measured(stage, column):
        hit = rows.loc[rows["stage"] == stage, column]
        value = hit.iloc[0] if len(hit) else None
        return float(value) if pd.notna(value) and value != "" else None

    for key, stage, column, scale in (("eta_compute", "matmul", "pct_peak", 0.01),
                                      ("eta_memory", "bandwidth", "pct_peak", 0.01),
                                      ("overhead_s", "linear", "us_per_step", 1e-6)):
        value = measured(stage, column)
        if value:
            out[key] = min(1.0, value * scale) if key.startswith("eta") else value * scale
            out["source"].append(f"{key} from {stage}")
    out["source"] = ", ".join(out["source"]) or f"defaults (no measured row for {card['name']})"
    return out
