"""The Keras models of notebooks 04-06: an MLP baseline, the seed CNN and an improved CNN.

Every builder ends in a float32 softmax (``dtype="float32"`` on the last layer), so the model
stays numerically safe under a ``mixed_float16`` or ``mixed_bfloat16`` policy (notebook 06):
the layers before it compute in low precision, the probabilities do not.
Inputs are float32 images ``[N, 28, 28, 1]`` with pixels/255 (``[N, 784]`` also works for the MLP,
which flattens). Outputs are softmax probabilities over the 10 digits.
"""
from __future__ import annotations

import keras
from keras import layers

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10


def _output(x, regularizer=None):
    return layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32", name="probabilities",
                        kernel_regularizer=regularizer)(x)


def _compile(model, optimizer, jit_compile):
    # jit_compile="auto" (Keras's default): XLA on JAX where every layer allows it; off on TensorFlow while
    # op determinism is on (helpers.env.setup turns it on) and on a CPU; PyTorch runs eagerly. allow_jit: below.
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=jit_compile)
    return allow_jit(model) if jit_compile else model


def mlp(learning_rate: float = 0.001, momentum: float = 0.9, *, jit_compile="auto", compile: bool = True):
    """784-128-64-10 with ReLU, trained by SGD with momentum (the PyTorch example's recipe by default)."""
    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = layers.Flatten()(inputs)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dense(64, activation="relu")(x)
    model = keras.Model(inputs, _output(x), name="mlp")
    if compile:
        _compile(model, keras.optimizers.SGD(learning_rate, momentum=momentum), jit_compile)
    return model


def seed_cnn(learning_rate: float = 0.001, *, jit_compile="auto", compile: bool = True):
    """Conv2D 32 3x3 ReLU -> MaxPool 2x2 -> Flatten -> Dense 128 ReLU -> Dense 10 softmax; Adam."""
    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = layers.Conv2D(32, 3, activation="relu")(inputs)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    model = keras.Model(inputs, _output(x), name="seed_cnn")
    if compile:
        _compile(model, keras.optimizers.Adam(learning_rate), jit_compile)
    return model


def augmentation(seed: int = 0):
    """Small random shifts, rotations and zooms: digits stay readable, the model sees new images."""
    return keras.Sequential([
        layers.RandomRotation(0.05, fill_mode="constant", seed=seed),      # ±18 degrees
        layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=seed + 1),
        layers.RandomZoom(0.1, fill_mode="constant", seed=seed + 2),
    ], name="augmentation")


AUGMENTATION = (layers.RandomRotation, layers.RandomTranslation, layers.RandomZoom)


def allow_jit(model):
    """On JAX, let XLA compile the training step of a compiled model holding augmentation layers; else nothing.

    Keras marks its random image layers `supports_jit = False` for TensorFlow's sake (TensorFlow's image
    transform op has no XLA kernel, tensorflow/tensorflow#100865), so `jit_compile="auto"` leaves such a model
    uncompiled, and on JAX uncompiled means op by op. On JAX these layers are jax.numpy operations that XLA
    compiles, their random state threaded through the compiled step as Dropout's is. Call it after
    `model.compile`: the file `model.save` writes keeps what compile chose (no XLA), which loads on every
    backend without a warning. Returns the model.
    """
    if keras.backend.backend() == "jax" and model.compiled:
        flagged = [layer for layer in model._flatten_layers() if isinstance(layer, AUGMENTATION)]
        for layer in flagged:
            layer.supports_jit = True
        if flagged:
            model.jit_compile = True
    return model


def improved_cnn(learning_rate=0.005, *, augment: bool = True, dropout: float = 0.5, l2: float = 0.0,
                 filters=(48, 96), seed: int = 0, jit_compile="auto", compile: bool = True):
    """Two conv blocks (Conv-BN-ReLU-MaxPool, 48 then 96 filters), dropout, softmax; Adam.

    augment: random shifts/rotations/zooms during training only (inactive at inference).
    l2: weight of an L2 penalty on every kernel (0 for none).
    learning_rate: a float or a keras.optimizers.schedules.LearningRateSchedule.
    """
    reg = keras.regularizers.L2(l2) if l2 else None
    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = augmentation(seed)(inputs) if augment else inputs
    for width in filters:
        x = layers.Conv2D(width, 3, use_bias=False, kernel_regularizer=reg)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    if dropout:
        x = layers.Dropout(dropout, seed=seed)(x)
    model = keras.Model(inputs, _output(x, reg), name="improved_cnn")
    if compile:
        _compile(model, keras.optimizers.Adam(learning_rate), jit_compile)
    return model
