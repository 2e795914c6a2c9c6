"""Set-up shared by every notebook: quiet TensorFlow start-up, seeds, device and version report.

TensorFlow's C++ runtime writes start-up lines ("oneDNN custom operations are on",
"Could not find cuda drivers", ...) straight to file descriptor 2 before its log-level
setting is read, so ``TF_CPP_MIN_LOG_LEVEL`` alone does not silence them. Jupyter forwards
file descriptor 2 into the cell's output as stderr. ``setup()`` therefore imports TensorFlow
and initialises its devices with descriptor 2 pointed at ``/dev/null`` for that moment only;
errors raised as Python exceptions still surface as usual, and later warnings are not hidden.
"""
from __future__ import annotations

import contextlib
import os
import platform
import sys
import warnings

# Must be set before TensorFlow is imported anywhere in the process.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # hide C++ log lines (Python exceptions still surface)

IN_COLAB = "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ
IN_KAGGLE = "KAGGLE_KERNEL_RUN_TYPE" in os.environ


@contextlib.contextmanager
def quiet_stderr_fd():
    """Point file descriptor 2 at /dev/null inside the block (C/C++ log lines), then restore it."""
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError):
        pass
    try:
        saved = os.dup(2)
    except OSError:  # no real descriptor 2 (some embedded interpreters): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow():
    """Import TensorFlow and initialise its devices without the C++ start-up chatter."""
    with quiet_stderr_fd(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
        tf.config.list_physical_devices()  # device initialisation also logs on fd 2
    return tf


def device_report(tf=None) -> dict:
    """What TensorFlow will compute on: the first GPU's name and compute capability, or the CPU."""
    tf = tf or import_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        cc = details.get("compute_capability")
        return {
            "kind": "GPU",
            "name": details.get("device_name", gpus[0].name),
            "compute_capability": f"{cc[0]}.{cc[1]}" if cc else None,
            "count": len(gpus),
        }
    return {
        "kind": "CPU",
        "name": platform.processor() or platform.machine(),
        "compute_capability": None,
        "count": os.cpu_count(),
    }


def versions() -> dict:
    tf = import_tensorflow()
    import keras
    import numpy as np

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
    }


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow; optionally make TensorFlow's ops deterministic."""
    tf = import_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def setup(seed: int = 42, *, deterministic: bool = True, report: bool = True) -> dict:
    """One call at the top of every notebook.

    Quietly imports TensorFlow, seeds every generator, sets compact figure defaults and
    prints one line with the versions and the device. Returns the same facts as a dict.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"setup(seed={seed!r}): the seed must be a non-negative int, e.g. setup(seed=42)")
    tf = import_tensorflow()
    seed_everything(seed, deterministic)
    # Keras 3.15 warns that fit(shuffle=True) is ignored for a tf.data.Dataset even when nobody
    # passed shuffle; our pipelines shuffle themselves (helpers.data.make_dataset), so hide that one.
    warnings.filterwarnings("ignore", message=r"`shuffle=True` was passed")
    try:
        import matplotlib as mpl

        mpl.rcParams.update({"figure.dpi": 72, "savefig.dpi": 72, "figure.figsize": (6.4, 3.6)})
    except ImportError:  # plotting is optional for scripts
        pass
    info = {**versions(), "device": device_report(tf), "seed": seed,
            "platform": "Colab" if IN_COLAB else "Kaggle" if IN_KAGGLE else "local"}
    if report:
        d = info["device"]
        where = f"GPU {d['name']} (compute capability {d['compute_capability']})" if d["kind"] == "GPU" \
            else f"CPU ({d['count']} cores)"
        print(f"TensorFlow {info['tensorflow']}, Keras {info['keras']}, NumPy {info['numpy']}, "
              f"Python {info['python']} on {where}, {info['platform']}; seed {seed}")
    return info


def artifacts_dir():
    """Where notebooks write models and tables: <repo>/artifacts (or $COURSE_ARTIFACTS), created if needed."""
    from pathlib import Path

    default = Path(__file__).resolve().parent.parent / "artifacts"
    path = Path(os.environ.get("COURSE_ARTIFACTS", default))
    path.mkdir(parents=True, exist_ok=True)
    return path
