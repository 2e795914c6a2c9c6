"""tools/cnn_recipes.py: the guard on its scoring images and its schedule (the training itself needs full MNIST)."""
import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest

from helpers import data

ROOT = Path(__file__).resolve().parent.parent


def _recipes():
    spec = importlib.util.spec_from_file_location("cnn_recipes", ROOT / "tools" / "cnn_recipes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path, x_train):
    y = np.zeros(len(x_train), np.uint8)
    np.savez(path, x_train=x_train, y_train=y, x_test=x_train[:10], y_test=y[:10])
    return path


def test_scoring_images_refuses_a_short_file_and_one_that_overlaps_the_offline_subset(tmp_path):
    recipes = _recipes()
    offline = data.load_mnist(source="offline")
    seen = np.concatenate([offline.x_train, offline.x_test])
    rng = np.random.default_rng(0)
    full = rng.integers(0, 256, (60_000, 28, 28), dtype=np.uint8)          # noise: shares no image with MNIST
    x, y = recipes.scoring_images(_write(tmp_path / "full.npz", full), seen)
    assert x.shape == (10_000, 28, 28, 1) and x.dtype == np.float32 and x.max() <= 1.0 and len(y) == 10_000

    with pytest.raises(SystemExit, match="short.npz.*60,000"):
        recipes.scoring_images(_write(tmp_path / "short.npz", full[:50_500]), seen)
    full[55_000] = offline.x_test[3]
    with pytest.raises(SystemExit, match="1 of the scoring images are in the offline subset"):
        recipes.scoring_images(_write(tmp_path / "overlap.npz", full), seen)


def test_cosine_schedule_peaks_first_then_falls_to_a_small_positive_rate():
    rate = _recipes().cosine(0.005, 28)
    rates = [rate(e) for e in range(28)]
    assert rates[0] == 0.005 > rates[1]
    assert all(a > b for a, b in itertools.pairwise(rates[1:]))
    assert 0 < rates[-1] < 0.01 * 0.005


def test_scoring_images_names_a_missing_file_and_the_fix(tmp_path):
    with pytest.raises(data.MnistFileError, match="missing.npz.*--mnist"):
        _recipes().scoring_images(tmp_path / "missing.npz", np.zeros((0, 28, 28), np.uint8))


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent.parent / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_storing_moves_nbval_markers_into_tags_and_keeps_the_lesson():
    import nbformat
    run_notebooks = _tool("run_notebooks")
    cell = nbformat.v4.new_code_cell("# NBVAL_IGNORE_OUTPUT\n# (trained numbers; the assert checks it)\nacc = 0.9\n"
                                     "# (a comment that teaches stays)\nassert acc > 0.5")
    solution = nbformat.v4.new_code_cell("# NBVAL_SKIP\n# Solution to exercise 1\nx = 1", metadata={"tags": ["solution"]})
    plain = nbformat.v4.new_code_cell("x = 2  # NBVAL_IGNORE_OUTPUT is not a marker here")
    for c in (cell, solution, plain):
        run_notebooks.markers_to_tags(c)
    assert cell.source == "acc = 0.9\n# (a comment that teaches stays)\nassert acc > 0.5"
    assert cell.metadata["tags"] == ["nbval-ignore-output"]
    assert solution.source == "# Solution to exercise 1\nx = 1" and solution.metadata["tags"] == ["solution", "nbval-skip"]
    assert plain.source == "x = 2  # NBVAL_IGNORE_OUTPUT is not a marker here" and "tags" not in plain.metadata


def test_a_cell_that_writes_to_stderr_is_named_and_quoted():
    """A torch run of 06 failed with only "cell 4 wrote to stderr"; the tool now says what it wrote."""
    import nbformat
    run_notebooks = _tool("run_notebooks")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# title"),
        nbformat.v4.new_code_cell("print(1)", outputs=[nbformat.v4.new_output("stream", name="stdout", text="1\n")]),
        nbformat.v4.new_code_cell("x", outputs=[nbformat.v4.new_output("stream", name="stderr", text="W No CUDA\n")]),
        nbformat.v4.new_code_cell("1/0", outputs=[nbformat.v4.new_output("error", ename="ZeroDivisionError",
                                                                          evalue="division by zero", traceback=[])]),
    ])
    bad = run_notebooks.stderr_cells(nb)
    assert bad == [1, 2]
    text = run_notebooks.stderr_text(nb, bad)
    assert text == "[cell 1, stderr] W No CUDA\n\n[cell 2, ZeroDivisionError] division by zero"
