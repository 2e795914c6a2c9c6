"""Keras's backends: what helpers.env says about them, and a model saved under one backend loaded under another.

The cross-backend test runs each side in its own Python process with KERAS_BACKEND set (a process cannot change
backend once Keras is imported), so it does not depend on the backend this pytest runs under. It needs JAX
(pip install -r requirements-jax.txt) and is skipped, with that reason, without it; the PyTorch case needs torch.
A model saved under PyTorch names its optimizer by PyTorch's class (keras.src.backend.torch.optimizers.torch_adam),
so a machine without torch loads it only with compile=False: the course's contract (04 section 6, 05).
"""
import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from helpers import env

HAS_JAX = importlib.util.find_spec("jax") is not None
HAS_TORCH = importlib.util.find_spec("torch") is not None

# Train 04's improved CNN briefly (two epochs on 1,000 offline images) under one backend and save it; or load a
# saved one under another backend. Both print nothing but write .npy files of the predicted probabilities.
SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from helpers import env
    info = env.setup(seed=0, report=False)
    import keras
    from helpers import data, models
    mode, path, out, absent = sys.argv[1:5]
    for name in absent.split(",") if absent else ():
        sys.modules[name] = None          # as on a machine without it: `import torch` raises ImportError
    mnist = data.load_mnist(source="offline")
    x_test = mnist.x_test[..., None].astype("float32") / 255.0
    if mode == "save":
        model = models.improved_cnn(filters=(16, 32))
        model.fit(data.make_dataset(mnist.x_train[:1000], mnist.y_train[:1000], 64, seed=0), epochs=2, verbose=0)
        model.save(path)
    else:
        model = keras.models.load_model(path, compile=False)        # the contract: predict, or compile your own
    np.save(out, model.predict(x_test, verbose=0))
    print(info["backend"])
""")


def _run(backend, mode, path, out, absent=""):
    environ = {**os.environ, "KERAS_BACKEND": backend, **env.testing_environment()}
    result = subprocess.run([sys.executable, "-c", SCRIPT, mode, str(path), str(out), absent], env=environ,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == backend        # it ran where it says
    return np.load(out)


NEEDS_JAX = pytest.mark.skipif(not HAS_JAX, reason="needs JAX: pip install -r requirements-jax.txt")
NEEDS_TORCH = pytest.mark.skipif(not HAS_TORCH, reason="needs PyTorch: pip install -r requirements-torch.txt")


@pytest.mark.parametrize("saver,loader,absent", [
    pytest.param("tensorflow", "jax", "", marks=NEEDS_JAX),
    pytest.param("jax", "tensorflow", "jax,jaxlib", marks=NEEDS_JAX),
    pytest.param("torch", "tensorflow", "torch", marks=NEEDS_TORCH),
])
def test_a_model_saved_under_one_backend_predicts_the_same_digits_under_another(tmp_path, saver, loader, absent):
    path = tmp_path / "cnn.keras"
    saved = _run(saver, "save", path, tmp_path / "saved.npy")
    loaded = _run(loader, "load", path, tmp_path / "loaded.npy", absent)
    assert saved.shape == loaded.shape == (1000, 10)
    np.testing.assert_allclose(loaded, saved, atol=1e-4)            # float32 convolutions, two numeric paths
    top2 = np.sort(saved, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-3                          # not a near-tie
    assert (saved.argmax(1) == loaded.argmax(1))[clear].all()
    assert clear.mean() > 0.95


def test_keras_backend_names_the_backend_and_the_fix(monkeypatch):
    assert env.keras_backend({}) == "tensorflow"
    assert env.keras_backend({"KERAS_BACKEND": "TensorFlow "}) == "tensorflow"
    with pytest.raises(ValueError, match="KERAS_BACKEND='mxnet'.*tensorflow, jax, torch"):
        env.keras_backend({"KERAS_BACKEND": "mxnet"})
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="KERAS_BACKEND=torch, but torch is not installed.*requirements-torch.txt"):
        env.keras_backend({"KERAS_BACKEND": "torch"})
    with pytest.raises(ModuleNotFoundError, match="requirements-jax.txt"):
        env.keras_backend({"KERAS_BACKEND": "jax"})


def test_setup_reports_the_backend():
    info = env.setup(seed=0, report=False)
    import keras

    assert info["backend"] == keras.backend.backend() and info["device"]["kind"] in ("CPU", "GPU")
    if info["backend"] != "tensorflow":
        assert info[info["backend"]]                                 # the backend's version, for the set-up line


JIT_SCRIPT = textwrap.dedent("""
    import sys, warnings
    import numpy as np
    from helpers import env
    env.setup(seed=0, report=False)
    import keras
    from helpers import data, models
    model = models.improved_cnn(filters=(8, 16))
    states = [layer.generator.state for layer in model.get_layer("augmentation").layers]
    before = [np.asarray(s.value).copy() for s in states]
    mnist = data.load_mnist(source="offline")
    model.fit(data.make_dataset(mnist.x_train[:256], mnist.y_train[:256], 64, seed=0), epochs=1, verbose=0)
    moved = all(not np.array_equal(np.asarray(s.value), b) for s, b in zip(states, before))
    model.save(sys.argv[1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = keras.models.load_model(sys.argv[1])              # compiled, as 04's checkpoint exercise loads
    said = [str(w.message) for w in caught if "jit_compile" in str(w.message)]
    print(model.jit_compile, moved, loaded.jit_compile, said)
""")


@pytest.mark.parametrize("backend", ["tensorflow", pytest.param("jax", marks=NEEDS_JAX)])
def test_the_augmented_cnn_compiles_with_xla_on_jax_only_and_its_file_loads_quietly(tmp_path, backend):
    # helpers.models.allow_jit: on JAX the random augmentation layers compile (their random state advancing with
    # each compiled step); TensorFlow keeps Keras's choice (no XLA for them); the saved file loads without
    # Keras's "Model doesn't support jit_compile=True" warning on either
    environ = {**os.environ, "KERAS_BACKEND": backend, **env.testing_environment()}
    result = subprocess.run([sys.executable, "-c", JIT_SCRIPT, str(tmp_path / "cnn.keras")], env=environ,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == f"{backend == 'jax'} True False []"
