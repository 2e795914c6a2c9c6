"""helpers.models: shapes, parameter counts, and the float32 output under mixed precision."""
import keras
import numpy as np
import pytest

from helpers import models


@pytest.mark.parametrize("build, params", [
    (models.mlp, 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10),                        # 109,386
    (models.seed_cnn, (9 * 32 + 32) + (13 * 13 * 32 * 128 + 128) + (128 * 10 + 10)),      # 693,962
    (models.improved_cnn, 9 * 48 + 4 * 48 + 9 * 48 * 96 + 4 * 96 + 5 * 5 * 96 * 10 + 10),  # 66,490
])
def test_shapes_and_parameter_counts(build, params):
    model = build()
    assert model.count_params() == params
    assert model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 10)
    p = model.predict(np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32), verbose=0)
    assert p.shape == (3, 10) and np.allclose(p.sum(1), 1, atol=1e-5)


def test_recipes_compile_with_the_documented_optimizers():
    mlp = models.mlp()
    assert isinstance(mlp.optimizer, keras.optimizers.SGD)
    lr = float(keras.ops.convert_to_numpy(mlp.optimizer.learning_rate))     # a Variable on Keras 3.3
    assert np.isclose(lr, 0.001) and mlp.optimizer.momentum == 0.9
    assert isinstance(models.seed_cnn().optimizer, keras.optimizers.Adam)
    assert not models.seed_cnn(compile=False).compiled


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("build", [models.mlp, models.seed_cnn, models.improved_cnn])
def test_last_layer_stays_float32_under_mixed_precision(policy, build):
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build()
        hidden = [layer for layer in model.layers if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D))]
        assert hidden[0].compute_dtype == policy.split("_")[1]        # the body computes in 16 bits
        assert model.layers[-1].compute_dtype == "float32"            # the softmax does not
        out = model(np.zeros((2, 28, 28, 1), np.float32))
        assert keras.backend.standardize_dtype(out.dtype) == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_improved_cnn_options():
    plain = models.improved_cnn(augment=False, dropout=0.0)
    names = [layer.name for layer in plain.layers]
    assert "augmentation" not in names and not any("dropout" in n for n in names)
    with_l2 = models.improved_cnn(l2=1e-3, augment=False)
    assert len(with_l2.losses) == 3                                     # two convolutions and the output layer
