"""A roofline with a fixed cost per step: how long a step takes on a card, and what bounds it (notebook 07).

    t = t_overhead + max(F / (eta_c * P), B / (eta_m * W))

F floating-point operations and B bytes of memory traffic per step; P the card's peak FLOP/s for the
precision and W its bandwidth (helpers.cards); eta_c and eta_m the fractions of peak that real kernels
reach; t_overhead the time a step costs whatever its size (Python, the framework, kernel launches).

Defaults, used until `helpers.bench` has measured the card (see `calibrate`):
- ETA_COMPUTE = 0.5: cuDNN convolutions and mid-sized GEMMs; large square GEMMs reach 0.7-0.9 of peak.
- ETA_MEMORY = 0.8: a large device-to-device copy reaches 80-90 % of the rated bandwidth.
- OVERHEAD_S = 0.5 ms per step: an assumption for a Keras `fit` step compiled by tf.function. `calibrate`
  replaces it with the intercept of a measured batch sweep (`helpers.bench.sweep_fit`: time per step against
  batch size, the part no batch size removes), where one is stored.

An assumption is not a figure: `projection_range` returns the fastest and slowest step over OVERHEAD_RANGE_S,
ETA_COMPUTE_RANGE and ETA_MEMORY_RANGE (or a calibration), and notebook 07 prints that range.
"""
from __future__ import annotations

ETA_COMPUTE = 0.5
ETA_MEMORY = 0.8
OVERHEAD_S = 0.5e-3
ETA_COMPUTE_RANGE = (0.35, 0.7)
ETA_MEMORY_RANGE = (0.6, 0.9)
OVERHEAD_RANGE_S = (0.25e-3, 1.0e-3)


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


def projection_range(flops: float, bytes_moved: float, card: dict, precision: str = "fp32",
                     calibration: dict | None = None) -> tuple:
    """(fastest, slowest) seconds per step: the roofline at the optimistic and pessimistic ends of the ranges,
    or at a calibration's measured figures (then the range is the measurement's, ±25 %)."""
    if calibration and calibration.get("measured"):
        mid = roofline_seconds(flops, bytes_moved, card, precision, eta_compute=calibration["eta_compute"],
                               eta_memory=calibration["eta_memory"], overhead_s=calibration["overhead_s"])["seconds"]
        return 0.75 * mid, 1.25 * mid
    fast = roofline_seconds(flops, bytes_moved, card, precision, eta_compute=ETA_COMPUTE_RANGE[1],
                            eta_memory=ETA_MEMORY_RANGE[1], overhead_s=OVERHEAD_RANGE_S[0])["seconds"]
    slow = roofline_seconds(flops, bytes_moved, card, precision, eta_compute=ETA_COMPUTE_RANGE[0],
                            eta_memory=ETA_MEMORY_RANGE[0], overhead_s=OVERHEAD_RANGE_S[1])["seconds"]
    return fast, slow


def calibrate(table, card: dict, sweep=None) -> dict:
    """eta_compute, eta_memory and overhead_s for `card` from a benchmark table of helpers.bench.

    Reads the float32 `matmul` row (achieved / peak TFLOPS), the `bandwidth` row (achieved / rated GB/s) and,
    from a batch sweep of cnn_train where one is given, the float32 intercept (helpers.bench.sweep_fit): the
    time a step costs whatever its batch. Each figure falls back on the module default when it is missing;
    `source` says which were measured, `measured` lists them.
    """
    import pandas as pd

    out = {"eta_compute": ETA_COMPUTE, "eta_memory": ETA_MEMORY, "overhead_s": OVERHEAD_S, "measured": []}
    rows = table[(table["status"] == "ok") & (table["mode"] == "float32")]

    def measured(stage, column):
        hit = pd.to_numeric(rows.loc[rows["stage"] == stage, column], errors="coerce").dropna()
        return float(hit.iloc[0]) if len(hit) else None

    for key, stage in (("eta_compute", "matmul"), ("eta_memory", "bandwidth")):
        value = measured(stage, "pct_peak")
        if value:
            out[key] = min(1.0, value * 0.01)
            out["measured"].append(f"{key} from {stage}")
    if sweep is not None:
        from .bench import sweep_fit

        fit = sweep_fit(sweep).get("float32")
        if fit and fit["overhead_us"] > 0:
            out["overhead_s"] = fit["overhead_us"] * 1e-6
            out["measured"].append("overhead_s from the cnn_train sweep's intercept")
    out["source"] = ", ".join(out["measured"]) or f"defaults (no measured row for {card['name']})"
    return out
