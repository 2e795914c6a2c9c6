"""Choosing a GPU: which cards fit a job, the cheapest with headroom and why, and `python -m helpers.gpu`.

The parts live by name: `helpers.cards` (the spec table, architectures, detection, peaks),
`helpers.memory` (the memory estimator and its cited rules), `helpers.roofline` (time per step with an
overhead term). This module combines them into recommendations and the command line, and re-exports
their names so that notebooks can write `gpu.estimate(...)`, `gpu.load_specs()`, `gpu.roofline_seconds(...)`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .cards import (ARCHITECTURES, GB, GIB, SPECS_FILE, WAY_OUT, architecture, cpu_has_bf16, detect,  # noqa: F401
                    load_specs, match_card, mixed_policy, peak_tflops, software_support, specs_path, table_text)
from .memory import (DEFAULT_OVERHEAD_GB, DEFAULT_VOCAB, MODES, OPTIMIZERS, PRECISIONS, QLORA_BITS,  # noqa: F401
                     Estimate, estimate, keras_activations_gb, kv_cache_gb, logits_gb, transformer_activations_gb)
from .roofline import calibrate, roofline_seconds  # noqa: F401

DEFAULT_HEADROOM = 0.10     # keep 10 % of the card free (fragmentation, the display, other processes)
SOLD_NEW = ("RTX 50",)      # the GeForce series sold new in late 2026: their launch prices are today's list prices
FRAMEWORKS = ("tensorflow", "jax", "torch")


def current_prices(specs=None) -> dict:
    """name -> USD for the cards sold new today (NVIDIA's launch prices of the RTX 50 series, MSRP).

    Older cards are sold used, at prices this course cannot know: give yours to `recommend(prices=...)`.
    """
    specs = specs if specs is not None else load_specs(segment="geforce")
    return {c["name"]: c["launch_price_usd"] for c in specs if c["series"] in SOLD_NEW and c["launch_price_usd"]}


def read_prices(path, specs=None) -> dict:
    """A learner's price list: a CSV with the columns name and price_usd, one card a row, names as in the table."""
    import csv
    from pathlib import Path

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"price list {path} does not exist: write a CSV with the header 'name,price_usd' "
                                "and one card a row (names as in python -m helpers.gpu table)")
    names = {c["name"] for c in (specs if specs is not None else load_specs())}
    prices = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"name", "price_usd"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: needs the header 'name,price_usd' (found {reader.fieldnames})")
        for i, row in enumerate(reader, start=2):
            if row["name"] not in names:
                raise ValueError(f"{path}, line {i}: {row['name']!r} is not a card of the table; "
                                 "use a name from python -m helpers.gpu table")
            try:
                price = float(row["price_usd"])
            except ValueError:
                raise ValueError(f"{path}, line {i}: price_usd={row['price_usd']!r} is not a number") from None
            if not price > 0:
                raise ValueError(f"{path}, line {i}: price_usd must be positive")
            prices[row["name"]] = price
    return prices


def running_cost_usd(card: dict, hours: float, usd_per_kwh: float) -> float:
    """Electricity for `hours` at the card's board power (tdp_w, an upper bound under full load): W x h x $/kWh."""
    if not hours >= 0 or not usd_per_kwh >= 0:
        raise ValueError(f"hours={hours!r} and usd_per_kwh={usd_per_kwh!r} must be numbers >= 0")
    return card["tdp_w"] / 1000 * hours * usd_per_kwh


def usable_gb(card: dict, headroom: float = DEFAULT_HEADROOM) -> float:
    """GB (1e9 bytes) a job may use on a card: its GiB in bytes, less the headroom."""
    return card["vram_gb"] * GIB / GB * (1 - headroom)


def task_tflops(card: dict, precision: str, mode: str):
    """The peak that bounds the task: Tensor Cores for 16-bit work where the card has them, else FP32.

    For inference of large models (memory-bound) rank by bandwidth instead: see `recommend`.
    """
    if precision == "bf16":
        return peak_tflops(card, "bf16")
    if precision in ("mixed", "keras_mixed", "fp16", "int8", "int4") or mode in ("lora", "qlora"):
        return peak_tflops(card, "fp16")
    return peak_tflops(card, "fp32")


@dataclass
class Recommendation:
    estimate: Estimate
    cards: list                 # dicts: name, vram_gb, free_gb, tflops or bandwidth, price_usd, per_dollar, support
    rank_by: str
    notes: list = field(default_factory=list)
    choice: str | None = None   # the cheapest priced card that fits with headroom
    reason: str = ""            # one line: why that card, and what to know about its software
    price_basis: str = ""       # where the prices came from

    @property
    def fits(self) -> list:
        return [c["name"] for c in self.cards]


def recommend(params: float, mode: str = "train", precision: str = "mixed", optimizer: str = "adam", *,
              headroom: float = DEFAULT_HEADROOM, budget_usd: float | None = None, specs=None,
              prices=None, framework: str = "tensorflow", include_unsupported: bool = False,
              hours: float | None = None, usd_per_kwh: float | None = None, **estimate_kwargs) -> Recommendation:
    """GeForce cards with room for the job (after `headroom`), best price-performance first, and a choice.

    prices: the learner's {name: USD} (current or used prices); None: NVIDIA's launch prices of the cards
    sold new today (`current_prices`, the RTX 50 series); "launch": every card's launch price, which is
    history, not a price anyone pays now. Cards without a price are listed when they fit but never chosen.
    framework: the one the learner will use ("tensorflow", the course's default, "jax" or "torch"). A card
    on which it fails (pip TensorFlow on RTX 50) stays in, and the reason says so and names the way out;
    cards whose CUDA support has ended (Pascal, Volta) are left out unless include_unsupported=True.
    hours, usd_per_kwh: add each card's running cost at its board power beside its price.
    `choice` is the cheapest priced card that fits (ties: the faster); `reason` says why in one line.
    Training ranks by the task's peak TFLOPS per dollar, inference by memory bandwidth per dollar
    (generating tokens reads every weight once per step). If nothing fits, `notes` say what would.
    """
    if not 0 <= headroom < 1:
        raise ValueError(f"headroom={headroom!r} must lie in [0, 1), e.g. 0.1 for 10 %")
    if budget_usd is not None and not budget_usd > 0:
        raise ValueError(f"budget_usd={budget_usd!r} must be a positive number of dollars")
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework={framework!r}: choose one of {', '.join(FRAMEWORKS)}")
    if (hours is None) != (usd_per_kwh is None):
        raise ValueError("give hours and usd_per_kwh together (running cost = W x hours x $/kWh)")
    specs = specs if specs is not None else load_specs(segment="geforce")
    if prices is None:
        price_of, basis = current_prices(specs), "NVIDIA's launch prices of the cards sold new today (RTX 50)"
    elif isinstance(prices, str) and prices == "launch":
        price_of = {c["name"]: c["launch_price_usd"] for c in specs if c["launch_price_usd"]}
        basis = "launch prices (history: nobody pays them for an old card today)"
    elif isinstance(prices, dict):
        unknown = sorted(set(prices) - {c["name"] for c in specs})
        if unknown:
            raise ValueError(f"prices name cards the table does not have: {', '.join(unknown)}; use names from "
                             "python -m helpers.gpu table")
        price_of, basis = dict(prices), "your prices"
    else:
        raise ValueError(f"prices={prices!r}: give a dict name -> USD, None (cards sold new) or 'launch'")
    est = estimate(params, mode, precision, optimizer, **estimate_kwargs)
    need = est.total_gb
    rank_by = "bandwidth_gbs" if mode == "inference" else "tflops"
    cards, notes, left_out = [], [], []
    for card in specs:
        free = usable_gb(card, headroom) - need
        if free < 0:
            continue
        support = software_support(card["compute_capability"])
        if support["cuda_ended"] and not include_unsupported:
            left_out.append(card["name"])
            continue
        price = price_of.get(card["name"])
        if budget_usd is not None and (price is None or price > budget_usd):
            continue
        perf = card["bandwidth_gbs"] if rank_by == "bandwidth_gbs" else task_tflops(card, precision, mode)
        row = {"name": card["name"], "vram_gb": card["vram_gb"], "free_gb": round(free, 2), rank_by: perf,
               "price_usd": price, "per_dollar": round(perf / price, 4) if price else None,
               "framework_runs": support["tensorflow_runs"] if framework == "tensorflow" else True,
               "cuda": support["cuda"]}
        if hours is not None:
            row["running_usd"] = round(running_cost_usd(card, hours, usd_per_kwh), 2)
        cards.append(row)
    cards.sort(key=lambda c: (c["per_dollar"] is None, -(c["per_dollar"] or 0)))
    if left_out:
        notes.append(f"left out, CUDA support ended (CUDA 13 dropped Pascal and Volta): {', '.join(left_out)}; "
                     "include_unsupported=True lists them")
    choice, reason = None, ""
    priced = [c for c in cards if c["price_usd"]]
    if priced:
        best = min(priced, key=lambda c: (c["price_usd"], -c[rank_by]))
        unit = "GB/s" if rank_by == "bandwidth_gbs" else "TFLOPS"
        choice = best["name"]
        reason = (f"{best['name']}: the cheapest card that fits (${best['price_usd']:,.0f}, {basis}); "
                  f"needs {need:.1f} of {usable_gb({'vram_gb': best['vram_gb']}, headroom):.1f} GB usable, "
                  f"{best[rank_by]:.0f} {unit}")
        if "running_usd" in best:
            reason += f"; electricity ${best['running_usd']:,.0f} for {hours:,.0f} h at ${usd_per_kwh}/kWh"
        if not best["framework_runs"]:
            reason += f". pip TensorFlow does not run on it (Blackwell): {WAY_OUT}"
        if best["cuda"].startswith("ended"):
            reason += f". CUDA support has ended for it: {best['cuda'].removeprefix('ended: ')}"
    elif cards:
        reason = f"{len(cards)} cards fit, but none has a price here ({basis}): pass prices={{name: USD}}"
    if not cards:
        biggest = max(usable_gb(c, headroom) for c in specs)
        needs = (f"needs {need:.1f} GB; the largest card here offers {biggest:.1f} GB after {headroom:.0%} headroom"
                 + (f" within ${budget_usd:,.0f}" if budget_usd else ""))
        notes.append(needs)
        notes.extend(_what_would_fit(params, mode, precision, optimizer, need, biggest, estimate_kwargs))
        reason = f"no card fits: {needs}"
    return Recommendation(est, cards, rank_by, notes, choice, reason, basis)


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


def main(argv=None) -> int:
    """python -m helpers.gpu detect | table | estimate --params N --mode M --precision P --optimizer O [--json]"""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m helpers.gpu",
                                     description="Choose a GPU: detect yours, list the table, estimate memory.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("detect", help="the GPU of this machine and its table row")
    sub.add_parser("table", help="the GeForce 10/16/20/30/40/50 and data-centre spec table")
    est = sub.add_parser("estimate", help="memory needed, and the cards it fits")
    est.add_argument("--params", type=float, required=True, help="number of parameters, e.g. 7e9")
    est.add_argument("--mode", default="train", choices=MODES)
    est.add_argument("--precision", default="mixed", choices=PRECISIONS)
    est.add_argument("--optimizer", default="adam", choices=OPTIMIZERS)
    est.add_argument("--batch-size", type=int, default=1)
    est.add_argument("--activations-gb", type=float, default=None, help="activation memory, if you know it")
    est.add_argument("--transformer", nargs=4, type=int, metavar=("LAYERS", "HIDDEN", "SEQ_LEN", "HEADS"),
                     help="estimate activations for a transformer of this shape")
    est.add_argument("--ffn", type=int, default=None, help="with --transformer: MLP width (default 4 x hidden)")
    est.add_argument("--kv-heads", type=int, default=None,
                     help="with --transformer: key/value heads of grouped-query attention (default: all heads)")
    est.add_argument("--checkpointing", action="store_true", help="with --transformer: recompute activations")
    est.add_argument("--flash-attention", action="store_true",
                     help="with --transformer: no stored attention scores (drops the 5as/h term)")
    est.add_argument("--vocab", type=int, default=DEFAULT_VOCAB,
                     help=f"with --transformer: vocabulary size for the logits (default {DEFAULT_VOCAB:,})")
    est.add_argument("--trainable-fraction", type=float, default=None)
    est.add_argument("--headroom", type=float, default=DEFAULT_HEADROOM)
    est.add_argument("--budget", type=float, default=None, help="price limit in USD")
    est.add_argument("--prices", default=None, metavar="CSV",
                     help="your prices: a CSV with the header name,price_usd (default: NVIDIA's launch prices of "
                          "the cards sold new today, the RTX 50 series); 'launch' uses every card's launch price")
    est.add_argument("--framework", default="tensorflow", choices=FRAMEWORKS,
                     help="the framework you will use (pip TensorFlow does not run on RTX 50 cards)")
    est.add_argument("--include-unsupported", action="store_true",
                     help="also list cards whose CUDA support has ended (Pascal, Volta)")
    est.add_argument("--hours", type=float, default=None, help="hours of use, for the running cost (with --kwh-price)")
    est.add_argument("--kwh-price", type=float, default=None, help="your electricity price in USD per kWh")
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
                      f"table row: {found['card'] or 'none'} ({found['matched_by']})")
        else:
            transformer = None
            if args.transformer:
                layers, hidden, seq_len, heads = args.transformer
                transformer = {"layers": layers, "hidden": hidden, "seq_len": seq_len, "heads": heads,
                               "recompute": args.checkpointing}
                if args.flash_attention:
                    transformer["flash_attention"] = True
                transformer.update({k: v for k, v in (("ffn", args.ffn), ("kv_heads", args.kv_heads)) if v})
            prices = args.prices if args.prices in (None, "launch") else read_prices(args.prices)
            rec = recommend(args.params, args.mode, args.precision, args.optimizer, headroom=args.headroom,
                            budget_usd=args.budget, prices=prices, framework=args.framework,
                            include_unsupported=args.include_unsupported, hours=args.hours,
                            usd_per_kwh=args.kwh_price, batch_size=args.batch_size,
                            activations_gb=args.activations_gb, transformer=transformer, vocab=args.vocab,
                            trainable_fraction=args.trainable_fraction)
            e = rec.estimate.as_dict()
            result = {k: e[k] for k in (*Estimate.PARTS, "total_gb", "rule")}
            result.update(fits=rec.fits, choice=rec.choice, reason=rec.reason, price_basis=rec.price_basis,
                          notes=e["notes"] + rec.notes)
            if args.json:
                print(json.dumps(result))
            else:
                for k in (*Estimate.PARTS, "total_gb"):
                    print(f"{k[:-3]:>14}: {result[k]:9.2f} GB")
                print(f"rule: {result['rule']}")
                print(f"fits ({len(rec.fits)} cards, best {rec.rank_by} per dollar first): "
                      f"{', '.join(rec.fits) or 'none'}")
                print(f"choice: {rec.reason}")
                for note in result["notes"]:
                    print(f"- {note}")
    except (ValueError, FileNotFoundError) as err:
        parser.exit(2, f"python -m helpers.gpu: {err}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
