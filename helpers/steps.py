"""The gradient-descent update of notebooks 02 and 03, importable so that notebook 06 and
``python -m helpers.bench`` time the very code the course teaches.

The notebooks write the model and the loss themselves and print this function with
``inspect.getsource``; only the update rule, identical in both, lives here.
"""
from __future__ import annotations

from .env import import_tensorflow


def make_sgd_step(variables, alpha, loss_fn, *, loss_scale=None):
    """One step of gradient descent on `variables`: for every θ, θ := θ − α ∂J/∂θ.

    loss_fn(*batch) returns the loss J, or a tuple (J, *extras); the step returns the same.
    loss_scale: for float16 compute (notebook 06), differentiate J·s and divide the gradients
    by s, so that small gradients do not underflow to zero in float16 (static loss scaling).
    """
    if not variables:
        raise ValueError("make_sgd_step: `variables` is empty; pass the tf.Variable objects the loss depends on")
    if loss_scale is not None and not loss_scale > 0:
        raise ValueError(f"make_sgd_step: loss_scale={loss_scale!r} must be a positive number or None")
    tf = import_tensorflow()

    def sgd_step(*batch):
        with tf.GradientTape() as tape:
            out = loss_fn(*batch)
            loss = out[0] if isinstance(out, tuple) else out
            scaled = loss * loss_scale if loss_scale else loss
        grads = tape.gradient(scaled, variables)                # ∂J/∂θ for every θ (times s if scaled)
        for theta, grad in zip(variables, grads):
            if loss_scale:
                grad = grad / loss_scale
            theta.assign_sub(alpha * tf.cast(grad, theta.dtype))  # θ := θ − α ∂J/∂θ
        return out

    return sgd_step
