"""Figures the notebooks share: digit grids, class balance, learning curves, confusion matrices."""
from __future__ import annotations

import numpy as np


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
    ax.legend(frameon=False)
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
