"""Figures the notebooks share: digit grids, class balance, learning curves, confusion matrices.

`use_course_style()` (called by `helpers.env.setup`) gives every notebook the same figure style: readable
fonts at the size the notebooks are stored with, and images that stay small.
"""
from __future__ import annotations

import numpy as np

COURSE_STYLE = {"figure.dpi": 96, "savefig.dpi": 96, "figure.figsize": (6.4, 3.6), "font.size": 10,
                "legend.fontsize": 9, "axes.titlesize": 11}


def use_course_style() -> None:
    import matplotlib as mpl

    mpl.rcParams.update(COURSE_STYLE)


def _plt():
    import matplotlib.pyplot as plt

    return plt


def digit_grid(images, labels=None, predicted=None, ncols: int = 10, nrows: int | None = None,
               title: str | None = None, size: float = 0.75):
    """Show images [N, 28, 28] (or [N, 784]) in a grid; label each with its class (and prediction).

    A wrong prediction is written in red as "true→predicted".
    """
    plt = _plt()
    images = np.asarray(images)
    if images.ndim == 2 and images.shape[1] == 784:
        images = images.reshape(-1, 28, 28)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3:
        raise ValueError(f"digit_grid: images have shape {images.shape}; expected [N, 28, 28] or [N, 784]")
    n = len(images) if nrows is None else min(len(images), nrows * ncols)
    if n == 0:
        raise ValueError("digit_grid: no images to show")
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * (size + 0.2)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=images.max() or 1)
        if labels is not None:
            text, color = f"{labels[i]}", "black"
            if predicted is not None:
                text = f"{labels[i]}→{predicted[i]}"
                color = "black" if labels[i] == predicted[i] else "red"
            ax.set_title(text, fontsize=8, color=color, pad=2)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def class_balance(**label_sets):
    """Bar chart of how many images each digit has, one group of bars per named label set."""
    plt = _plt()
    if not label_sets:
        raise ValueError("class_balance: pass label arrays by name, e.g. class_balance(train=y_train)")
    fig, ax = plt.subplots(figsize=(6.4, 2.8))
    width = 0.8 / len(label_sets)
    for k, (name, y) in enumerate(label_sets.items()):
        counts = np.bincount(np.asarray(y), minlength=10)
        ax.bar(np.arange(10) + (k - (len(label_sets) - 1) / 2) * width, counts, width, label=name)
    ax.set(xticks=range(10), xlabel="digit", ylabel="images", title="Images per class")
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))     # beside the bars, covering none
    fig.tight_layout()
    return fig


def histograms(named_arrays: dict, bins: int = 50, xlabel: str = "value", title: str | None = None):
    """Overlaid histograms of several arrays (e.g. pixel values before and after scaling)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(named_arrays), figsize=(3.2 * len(named_arrays), 2.6), squeeze=False)
    for ax, (name, values) in zip(axes.flat, named_arrays.items()):
        ax.hist(np.ravel(values), bins=bins, color="tab:blue")
        ax.set(title=name, xlabel=xlabel, yscale="log")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def bars(values: dict, ylabel: str, title: str | None = None, fmt: str = "{:.3g}"):
    """A labelled bar chart of a few named numbers (e.g. timings side by side)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.3 * len(values) + 2, 2.8))
    names, heights = list(values), [float(v) for v in values.values()]
    rects = ax.bar(names, heights, color="tab:blue")
    ax.bar_label(rects, labels=[fmt.format(h) for h in heights], fontsize=8)
    ax.set(ylabel=ylabel, title=title)
    ax.margins(y=0.15)
    fig.tight_layout()
    return fig


def curves(series: dict, xlabel: str = "step", ylabel: str = "loss", title: str | None = None,
           logy: bool = False, hlines: dict | None = None, ax=None, start: int = 0):
    """Line plot of named sequences (loss or accuracy per step/epoch); optional dashed reference lines.

    start: the x value of each sequence's first element (1 to count epochs as the prose does)."""
    plt = _plt()
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.2, 3.0))
    for name, values in series.items():
        ax.plot(np.arange(start, start + len(values)), np.asarray(values, dtype=float), label=name)
    for name, y in (hlines or {}).items():
        ax.axhline(y, ls="--", lw=1, color="gray")
        ax.annotate(name, (0, y), fontsize=8, color="gray", va="bottom")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if logy:
        ax.set_yscale("log")
    if len(series) > 1:
        ax.legend(frameon=False, fontsize=8)
    ax.figure.tight_layout()
    return ax.figure


def confusion_matrix(y_true, y_pred, n_classes: int = 10, title: str = "Confusion matrix"):
    """Counts of (true, predicted) pairs as a heat map with the numbers written in; returns (fig, matrix)."""
    plt = _plt()
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"confusion_matrix: y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    cm = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(cm, (y_true, y_pred), 1)
    fig, ax = plt.subplots(figsize=(4.4, 4.0))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        if v:
            ax.text(j, i, v, ha="center", va="center", fontsize=7,
                    color="white" if v > cm.max() / 2 else "black")
    ax.set(xticks=range(n_classes), yticks=range(n_classes), xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    return fig, cm


def weight_images(W, title: str = "Weights per class (red +, blue −)"):
    """Show the columns of a [784, 10] weight matrix as ten 28x28 images on a shared ± scale."""
    plt = _plt()
    W = np.asarray(W)
    if W.ndim != 2 or W.shape[0] != 784:
        raise ValueError(f"weight_images: W has shape {W.shape}; expected [784, classes]")
    lim = np.abs(W).max() or 1.0
    fig, axes = plt.subplots(1, W.shape[1], figsize=(0.75 * W.shape[1], 1.1))
    for c, ax in enumerate(np.atleast_1d(axes)):
        ax.imshow(W[:, c].reshape(28, 28), cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(str(c), fontsize=8, pad=2)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def contour_paths(theta0_grid, theta1_grid, J, paths: dict, optimum=None,
                  title: str = "Loss surface and descent paths"):
    """Contours of a loss J over a (θ0, θ1) grid, with parameter paths drawn on top."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    levels = np.quantile(J, np.linspace(0.005, 0.9, 14))
    ax.contour(theta0_grid, theta1_grid, J, levels=np.unique(levels), cmap="viridis", linewidths=0.8)
    for name, path in paths.items():
        path = np.asarray(path)
        ax.plot(path[:, 0], path[:, 1], ".-", ms=2, lw=1, label=name)
    if optimum is not None:
        ax.plot(*optimum, "k*", ms=10, label="least squares")
    ax.set(xlabel=r"$\theta_0$", ylabel=r"$\theta_1$", title=title)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def speedups(table, baseline: str = "float32", title: str = "Speed-up over float32 (higher is faster)",
             floor: float | None = None):
    """Grouped bars: for each stage, baseline time per step / mode time per step (helpers.bench's table).

    floor: the noise floor (a fraction); a grey band 1 ± floor marks differences that are not measurable."""
    import numpy as np

    plt = _plt()
    ok = table[table["status"] == "ok"]
    med = ok.pivot_table(index="stage", columns="mode", values="us_per_step", sort=False)
    if baseline not in med:
        raise ValueError(f"speedups: no {baseline!r} rows to compare with; run the benchmark with that mode")
    ratio = med.rdiv(med[baseline], axis=0)
    fig, ax = plt.subplots(figsize=(8, 3.2))
    width = 0.8 / len(ratio.columns)
    for i, mode in enumerate(ratio.columns):
        ax.bar(np.arange(len(ratio)) + i * width, ratio[mode], width, label=mode)
    ax.axhline(1.0, color="black", lw=0.8)
    if floor:
        ax.axhspan(1 - floor, 1 + floor, color="0.85", zorder=0, label=f"noise floor ±{floor:.0%}")
    ax.set_xticks(np.arange(len(ratio)) + width * (len(ratio.columns) - 1) / 2, ratio.index, fontsize=8)
    ax.set(ylabel="× float32 speed", title=title)
    ax.legend(fontsize=8, ncol=len(ratio.columns))
    fig.tight_layout()
    return fig


def sweep(table, fits: dict | None = None, title: str = "cnn_train: samples/s against batch size"):
    """Samples per second against batch size (log 2), one line per mode, from helpers.bench.sweep's rows;
    `fits` (helpers.bench.sweep_fit) adds each mode's overhead-only ceiling, batch / intercept, dashed."""
    import numpy as np

    plt = _plt()
    ok = table[table["status"] == "ok"]
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for mode, part in ok.groupby("mode", sort=False):
        part = part.sort_values("batch_size")
        line, = ax.plot(part["batch_size"], part["samples_per_s"], "o-", label=mode)
        fit = (fits or {}).get(mode)
        if fit and fit["overhead_us"] > 0:
            b = np.array(fit["batches"], dtype=float)
            ax.plot(b, b / (fit["overhead_us"] * 1e-6 + b * fit["us_per_sample"] * 1e-6), ":", color=line.get_color(),
                    label=f"{mode}: {fit['overhead_us']:,.0f} µs/step + {fit['us_per_sample']:.1f} µs/sample")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="batch size", ylabel="samples per second", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def compile_vs_steady(table, title: str = "First call (trace + compile) vs one steady call"):
    """Log-scale bars of first_call_s and steady_s (a timed call of the same length) per stage and mode."""
    import numpy as np

    plt = _plt()
    ok = table[table["status"] == "ok"]
    labels = [f"{s}\n{m}" for s, m in zip(ok["stage"], ok["mode"])]
    x = np.arange(len(ok))
    fig, ax = plt.subplots(figsize=(max(8, 0.42 * len(ok)), 3.4))
    ax.bar(x - 0.2, ok["first_call_s"], 0.4, label="first call")
    ax.bar(x + 0.2, ok["steady_s"], 0.4, label="the same call, steady (median)")
    ax.set_yscale("log")
    ax.set_xticks(x, labels, fontsize=8, rotation=90)
    ax.set(ylabel="seconds", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def card_bars(table, column: str, title: str, xlabel: str, top: int | None = None):
    """Horizontal bars of one column of the GeForce table, best first, coloured by series."""
    plt = _plt()
    rows = table.dropna(subset=[column]).sort_values(column, ascending=True)
    if top:
        rows = rows.tail(top)
    colours = {"GTX 10": "tab:gray", "GTX 16": "tab:brown", "RTX 20": "tab:orange", "RTX 30": "tab:green",
               "RTX 40": "tab:blue"}
    fig, ax = plt.subplots(figsize=(6.4, 0.19 * len(rows) + 1.0))
    ax.barh(rows["name"], rows[column], color=[colours.get(s, "tab:purple") for s in rows["series"]])
    ax.tick_params(axis="y", labelsize=7)
    ax.set(xlabel=xlabel, title=title)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for s, c in colours.items() if s in set(rows["series"])]
    ax.legend(handles, [s for s in colours if s in set(rows["series"])], fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def vram_vs_price(table, title: str = "Memory against launch price (the cheapest card of each size named)"):
    """Scatter of VRAM (GB) against launch price, one colour per series; only the cheapest card of each
    memory size is labelled, so that the labels do not pile up where many cards cost $200-800."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    rows = table.dropna(subset=["launch_price_usd"])
    for series, group in rows.groupby("series", sort=True):
        ax.scatter(group["launch_price_usd"], group["vram_gb"], label=series, s=18)
    cheapest = rows.sort_values("launch_price_usd").groupby("vram_gb", sort=True).head(1)
    for _, r in cheapest.iterrows():          # to the left of the cheapest card: the dearer ones lie to the right
        ax.annotate(r["name"], (r["launch_price_usd"], r["vram_gb"]), fontsize=8, xytext=(-6, -3),
                    textcoords="offset points", ha="right")
    top = rows["launch_price_usd"].max()
    ax.set_xlim(-450, top + 100)
    ax.set_xticks(range(0, int(top) + 1, 250))
    ax.set(xlabel="launch price (USD)", ylabel="VRAM (GB)", title=title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def roofline_grid(table, title: str = "Projected time per step, and what bounds it"):
    """A stage x card grid of a roofline projection (helpers.roofline): each cell shows the projected
    milliseconds per step and its bound (O overhead, C compute, M memory), coloured by the share of the
    step that is fixed overhead. `table` has columns stage, card, seconds, overhead_s, bound."""
    plt = _plt()
    stages = list(dict.fromkeys(table["stage"]))
    cards = list(dict.fromkeys(table["card"]))
    share = np.zeros((len(stages), len(cards)))
    fig, ax = plt.subplots(figsize=(1.0 * len(cards) + 2.2, 0.42 * len(stages) + 1.4))
    for _, r in table.iterrows():
        i, j = stages.index(r["stage"]), cards.index(r["card"])
        share[i, j] = r["overhead_s"] / r["seconds"]
        ms = r["seconds"] * 1e3
        label = f"{ms:.2g}" if ms < 100 else f"{ms:.0f}"          # 0.51, 4.2, 63, 450: no e-notation
        ax.text(j, i, f"{label} ms\n{r['bound'][0].upper()}", ha="center", va="center", fontsize=7,
                color="white" if share[i, j] > 0.6 else "black")
    ax.imshow(share, cmap="Oranges", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(cards)), cards, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(stages)), stages, fontsize=8)
    ax.set_title(title + "\n(colour: share of the step that is overhead; O overhead, C compute, M memory)",
                 fontsize=9)
    fig.tight_layout()
    return fig


def seed_spread(table, group: str, value: str, title: str = "", ylabel: str | None = None):
    """One dot per run (a row of `table`) for each `group`, with the group's mean as a bar: how far the
    seeds scatter against how far the groups differ."""
    plt = _plt()
    groups = list(dict.fromkeys(table[group]))
    fig, ax = plt.subplots(figsize=(1.2 * len(groups) + 2.0, 3.0))
    for i, name in enumerate(groups):
        values = table.loc[table[group] == name, value].to_numpy()
        ax.scatter(np.full(len(values), i) + np.linspace(-0.08, 0.08, len(values)), values, s=22, zorder=3)
        ax.hlines(values.mean(), i - 0.25, i + 0.25, color="black", lw=1.5, zorder=4)
    ax.set_xticks(range(len(groups)), groups)
    ax.set(ylabel=ylabel or value, title=title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
