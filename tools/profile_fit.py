"""Where one `fit` epoch of 04's improved CNN spends its time, on the Keras backend this process runs.

    KERAS_BACKEND=jax python tools/profile_fit.py
    KERAS_BACKEND=torch python tools/profile_fit.py --epochs 3
    python tools/profile_fit.py                       # TensorFlow, for comparison

It trains 04's model (32/64 filters, augmentation, dropout) on 04's 3,600 training images with 04's
validation split and prints, each as the median over the epochs after the first:
- `fit` as 04 calls it: the first epoch (tracing and compiling) apart from the later ones;
- the same without validation, and with `drop_remainder` (no ragged last batch: one compiled shape, not two);
- `steps_per_execution=8` (fewer returns to Python between compiled steps);
- the same with the augmentation layers marked as Keras marks them: Keras compiles a model with XLA only if
  every layer allows it, and its random augmentation layers say they do not (`supports_jit = False`, for
  TensorFlow's sake), so on JAX 04's CNN would run op by op; `helpers.models.allow_jit` lifts the mark on JAX,
  where the layers compile (TensorFlow: XLA off under op determinism; PyTorch: eager); each line says which
  it got;
- the model without augmentation, with `jit_compile=False` and with Keras's `"auto"`;
- the data alone: one pass over the tf.data pipeline converted to NumPy, as Keras feeds JAX and PyTorch;
- the train step alone (compiled or not, as the first line says) on one batch already in memory
  (`train_on_batch`), times the epoch's steps.
The differences between the lines say what costs what. Device and versions are printed beside them.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from helpers import env


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs per variant (the first is timed apart)")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch compiles and is reported apart")
    info = env.setup(seed=0)
    import keras

    from helpers import bench, data, models, timing

    mnist = data.load_mnist(source="offline")
    keep, held = data.stratified_split(mnist.y_train, fraction=0.1, seed=0)
    x_tr, y_tr = mnist.x_train[keep], mnist.y_train[keep]
    val_ds = data.make_dataset(mnist.x_train[held], mnist.y_train[held], 256, shuffle=False)

    def fit(label, validation=True, drop_remainder=False, steps_per_execution=1, augment=True, jit_compile="auto",
            keras_flags=False):
        keras.utils.set_random_seed(0)
        model = models.improved_cnn(learning_rate=0.005, filters=(32, 64), augment=augment, compile=False)
        model.compile(keras.optimizers.Adam(0.005), "sparse_categorical_crossentropy", metrics=["accuracy"],
                      steps_per_execution=steps_per_execution, jit_compile=jit_compile)
        if jit_compile and not keras_flags:
            models.allow_jit(model)    # as models.improved_cnn compiles (keras_flags: as Keras alone would)
        timer = bench.epoch_timer()
        model.fit(data.make_dataset(x_tr, y_tr, 64, seed=0, drop_remainder=drop_remainder),
                  validation_data=val_ds if validation else None, epochs=args.epochs, verbose=0, callbacks=[timer])
        first, later = timer.times_s[0], timer.median_s
        print(f"{label:56s} first epoch {first:6.2f} s, later epochs {later:6.2f} s (median); "
              f"compiled with XLA: {model.jit_compile}", flush=True)
        return model

    print(f"backend {info['backend']}, device {info['device']['kind']} ({info['device']['count']}), "
          f"Keras {info['keras']}, {info['backend']} {info.get(info['backend'], info['tensorflow'])}")
    model = fit("fit as in 04 (validation each epoch)")
    fit("as in 04, augmentation marked as Keras marks it", keras_flags=True)
    fit("without validation", validation=False)
    fit("without validation, drop_remainder=True", validation=False, drop_remainder=True)
    fit("without validation, steps_per_execution=8", validation=False, steps_per_execution=8)
    fit("without augmentation or validation, jit_compile=False", validation=False, augment=False, jit_compile=False)
    fit("without augmentation or validation, jit_compile=\"auto\"", validation=False, augment=False)

    ds = data.make_dataset(x_tr, y_tr, 64, seed=0)
    epoch = timing.measure(lambda: sum(1 for _ in ds.as_numpy_iterator()), repeats=3)
    print(f"{'the data alone (tf.data to NumPy, one epoch)':56s} {epoch.median_s:6.2f} s (median of 3)")

    xb, yb = next(iter(ds.as_numpy_iterator()))
    step = timing.measure(model.train_on_batch, xb, yb, repeats=20, warmup=2).median_s
    steps = math.ceil(len(y_tr) / 64)
    print(f"{'train step alone (train_on_batch, batch 64)':56s} {step * 1e3:6.1f} ms; "
          f"x {steps} steps = {step * steps:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
