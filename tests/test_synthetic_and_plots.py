"""The synthetic regression data of notebook 02 and the plot helpers of 02/03."""
import numpy as np
import pytest

from helpers import data, env, plots


def test_linear_data_has_the_promised_truth():
    X, y = data.linear_data(m=20_000, theta=(4.0, 3.0), noise=0.5, seed=0)
    assert X.shape == (20_000, 1) and y.shape == (20_000,) and X.dtype == y.dtype == np.float32
    assert 0 <= X.min() and X.max() < 2
    A = np.column_stack([np.ones(len(y)), X])
    theta, *_ = np.linalg.lstsq(A, y, rcond=None)
    np.testing.assert_allclose(theta, [4.0, 3.0], atol=0.03)
    assert abs(np.std(y - A @ [4.0, 3.0]) - 0.5) < 0.02


def test_linear_data_several_features_no_noise_and_seeds():
    X, y = data.linear_data(m=50, theta=(1.0, 2.0, -3.0), noise=0.0, x_low=-1, x_high=1, seed=5)
    assert X.shape == (50, 2)
    np.testing.assert_allclose(y, 1 + 2 * X[:, 0] - 3 * X[:, 1], atol=1e-5)
    X2, y2 = data.linear_data(m=50, theta=(1.0, 2.0, -3.0), noise=0.0, x_low=-1, x_high=1, seed=5)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    assert not np.array_equal(X, data.linear_data(m=50, theta=(1.0, 2.0, -3.0), seed=6)[0])


@pytest.mark.parametrize("kwargs, match", [
    ({"m": 0}, "m=0"),
    ({"m": 2.5}, "positive int"),
    ({"m": True}, "positive int"),
    ({"theta": (1.0,)}, "at least two"),
    ({"theta": (1.0, np.nan)}, "finite"),
    ({"noise": -1.0}, "noise"),
    ({"x_low": 2.0, "x_high": 1.0}, "x_low < x_high"),
])
def test_linear_data_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.linear_data(**kwargs)


def test_confusion_matrix_counts():
    fig, cm = plots.confusion_matrix([0, 1, 1, 2, 2, 2], [0, 1, 2, 2, 2, 0], n_classes=3)
    assert cm.tolist() == [[1, 0, 0], [0, 1, 1], [1, 0, 2]]
    with pytest.raises(ValueError, match="differ in shape"):
        plots.confusion_matrix([0, 1], [0])


def test_weight_images_and_curves():
    assert len(plots.weight_images(np.zeros((784, 10))).axes) == 10
    with pytest.raises(ValueError, match="784"):
        plots.weight_images(np.zeros((10, 784)))
    fig = plots.curves({"a": [3, 2, 1], "b": [1, 1, 1]}, logy=True, hlines={"min": 1})
    assert len(fig.axes[0].lines) == 3
    fig = plots.curves({"a": [3, 2, 1]}, start=1)                      # epochs counted from 1
    assert list(fig.axes[0].lines[0].get_xdata()) == [1, 2, 3]


def test_artifacts_dir_respects_override(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_ARTIFACTS", str(tmp_path / "out"))
    assert env.artifacts_dir() == tmp_path / "out" and (tmp_path / "out").is_dir()
