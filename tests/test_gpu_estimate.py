"""helpers.gpu.estimate against hand-computed cases (1 GB = 1e9 bytes)."""
import pytest

from helpers import gpu


def states(e):
    return e.weights_gb + e.gradients_gb + e.optimizer_gb


def test_one_billion_fp32_adam_is_16_gb_of_model_states():
    e = gpu.estimate(1e9, "train", "fp32", "adam", overhead_gb=0)
    assert (e.weights_gb, e.gradients_gb, e.optimizer_gb) == pytest.approx((4, 4, 8))
    assert states(e) == pytest.approx(16) and e.total_gb == pytest.approx(16)


def test_mixed_precision_adam_is_also_16_bytes_per_parameter_zero():
    e = gpu.estimate(1.5e9, "train", "mixed", "adam", overhead_gb=0)      # ZeRO's GPT-2 1.5B example
    assert (e.weights_gb, e.gradients_gb, e.optimizer_gb) == pytest.approx((3, 3, 18))
    assert states(e) == pytest.approx(24)


@pytest.mark.parametrize("optimizer, expected", [("sgdm", 4 + 4 + 4), ("sgd", 4 + 4)])
def test_sgd_variants_fp32(optimizer, expected):
    assert states(gpu.estimate(1e9, "train", "fp32", optimizer)) == pytest.approx(expected)


def test_seven_billion_full_training_needs_over_100_gb():
    e = gpu.estimate(7e9, "train", "mixed", "adam")
    assert states(e) == pytest.approx(112) and e.total_gb > 100     # more than any GeForce card has


def test_seven_billion_qlora_fits_in_12_gb():
    e = gpu.estimate(7e9, "qlora", "int4", "adam", activations_gb=2.0)
    base = 7e9 * 4.127 / 8 / 1e9
    adapters = 7e9 * 0.005
    assert e.weights_gb == pytest.approx(base + adapters * 2 / 1e9)
    assert e.optimizer_gb == pytest.approx(adapters * 12 / 1e9)
    assert e.total_gb < 12 * 0.9                                    # with 10 % headroom


def test_lora_freezes_the_base():
    e = gpu.estimate(1e9, "lora", "bf16", "adam", trainable_fraction=0.01, overhead_gb=0)
    assert e.weights_gb == pytest.approx(2 + 0.02) and e.gradients_gb == pytest.approx(0.02)
    assert e.optimizer_gb == pytest.approx(0.12)


def test_inference_is_weights_plus_overhead():
    e = gpu.estimate(7e9, "inference", "int8", "none")
    assert e.weights_gb == pytest.approx(7) and e.gradients_gb == e.optimizer_gb == 0
    assert e.total_gb == pytest.approx(7 + gpu.DEFAULT_OVERHEAD_GB)


def test_transformer_activations_formula():
    # s*b*h*L*(34 + 5*a*s/h) bytes: s=512, b=4, h=1024, L=24, a=16
    expected = 512 * 4 * 1024 * 24 * (34 + 5 * 16 * 512 / 1024) / 1e9
    assert gpu.transformer_activations_gb(24, 1024, 512, 16, 4) == pytest.approx(expected)
    assert gpu.transformer_activations_gb(24, 1024, 512, 16, 4, recompute=True) == pytest.approx(
        512 * 4 * 1024 * 24 * 2 / 1e9)
    e = gpu.estimate(3.4e8, "train", "mixed", "adam", batch_size=4,
                     transformer={"layers": 24, "hidden": 1024, "seq_len": 512, "heads": 16})
    assert e.activations_gb == pytest.approx(expected)


def test_missing_activations_are_said_not_hidden():
    e = gpu.estimate(1e6, "train", "fp32", "adam")
    assert e.activations_gb == 0 and any("activations not estimated" in n for n in e.notes)
    assert set(e.as_dict()) >= {"weights_gb", "gradients_gb", "optimizer_gb", "activations_gb",
                                "overhead_gb", "total_gb", "notes"}


@pytest.mark.parametrize("kwargs, match", [
    ({"params": -1}, "positive"),
    ({"params": float("nan")}, "positive"),
    ({"mode": "pretrain"}, "unknown mode 'pretrain'.*train, finetune"),
    ({"precision": "fp8"}, "unknown precision"),
    ({"optimizer": "lion"}, "unknown optimizer"),
    ({"precision": "int4"}, "qlora"),
    ({"optimizer": "none"}, "choose an optimizer"),
    ({"mode": "lora", "precision": "int8"}, "qlora"),
    ({"trainable_fraction": 0}, "trainable_fraction"),
    ({"activations_gb": -1.0}, "activations_gb"),
    ({"transformer": {"layers": 2}}, "needs heads, hidden, seq_len"),
])
def test_bad_arguments_say_what_to_do(kwargs, match):
    args = {"params": 1e9, "mode": "train", "precision": "mixed", "optimizer": "adam"}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        gpu.estimate(args.pop("params"), args.pop("mode"), args.pop("precision"), args.pop("optimizer"), **args)
