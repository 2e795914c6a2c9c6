"""data/geforce_specs.csv, helpers.cards (table, detection, peaks, the mixed-policy rule) and helpers.gpu's
recommend and command line (notebook 07)."""
import json
import subprocess
import sys

import pytest

from helpers import env, gpu

SPECS = gpu.load_specs()
BY_NAME = {c["name"]: c for c in SPECS}
GEFORCE = [c for c in SPECS if c["segment"] == "geforce"]
CC = {"Pascal": "6.1", "Turing": "7.5", "Ampere": "8.6", "Ada Lovelace": "8.9", "Blackwell": "12.0"}
# NVIDIA's published "AI TOPS" of the RTX 50 cards (product pages; FP4 with sparsity, 32 x the FP32 rate):
# an independent check of the FP32 column derived from cores and boost clock
AI_TOPS = {"RTX 5050": 421, "RTX 5060": 614, "RTX 5060 Ti 8GB": 759, "RTX 5060 Ti 16GB": 759, "RTX 5070": 988,
           "RTX 5070 Ti": 1406, "RTX 5080": 1801, "RTX 5090": 3352}


def test_table_covers_every_series_with_a_source_on_every_row():
    assert len(GEFORCE) >= 30 and len(BY_NAME) == len(SPECS)
    assert {c["series"] for c in GEFORCE} == {"GTX 10", "GTX 16", "RTX 20", "RTX 30", "RTX 40", "RTX 50"}
    assert all(c["source"] and c["checked"] in ("primary", "secondary", "unchecked") for c in SPECS)
    assert all(c["vram_gb"] and c["bandwidth_gbs"] and c["fp32_tflops"] and c["tdp_w"] for c in SPECS)
    assert gpu.load_specs(segment="geforce") == GEFORCE


def test_the_cards_learners_get_on_colab_kaggle_and_here_are_rows():
    dc = {c["name"]: c for c in SPECS if c["segment"] == "data centre"}
    assert {"T4", "P100 PCIe 16GB", "P100 SXM2 16GB", "L4", "A100 SXM4 40GB", "A100 SXM4 80GB", "A100 PCIe 80GB",
            "H100 SXM 80GB", "H100 PCIe 80GB", "H200 SXM 141GB", "RTX PRO 6000 Blackwell"} <= set(dc)
    assert all(c["launch_price_usd"] is None for c in dc.values())      # not sold to learners: never recommended
    assert dc["T4"]["fp16_tc_fp32acc_tflops"] == 65 and dc["T4"]["fp32_tflops"] == 8.1     # T4 datasheet
    assert dc["P100 PCIe 16GB"]["fp16_tc_fp32acc_tflops"] is None                          # no Tensor Cores
    assert dc["A100 SXM4 40GB"]["tf32_tensor_tflops"] == 8 * dc["A100 SXM4 40GB"]["fp32_tflops"]


@pytest.mark.parametrize("card", GEFORCE, ids=lambda c: c["name"])
def test_row_is_internally_consistent(card):
    arch = card["architecture"]
    assert card["compute_capability"] == CC[arch]
    assert gpu.architecture(card["compute_capability"], card["name"])["architecture"] == arch
    # bandwidth = bus width x data rate / 8; FP32 = 2 FLOPs (one FMA) x cores x boost clock
    assert card["bandwidth_gbs"] == pytest.approx(card["memory_bus_bits"] * card["memory_gbps"] / 8, rel=0.005)
    assert card["fp32_tflops"] == pytest.approx(2 * card["cuda_cores"] * card["boost_clock_mhz"] / 1e6, abs=0.06)
    tensor = card["fp16_tc_fp32acc_tflops"]
    if card["series"] in ("GTX 10", "GTX 16"):
        assert tensor is None and card["fp16_tc_fp16acc_tflops"] is None     # no Tensor Cores
    else:
        per_clock = 8 if card["series"] == "RTX 20" else 4   # RTX 30 on doubled FP32, not the Tensor Cores
        unrounded = per_clock * card["cuda_cores"] * card["boost_clock_mhz"] / 1e6
        assert tensor == round(unrounded, 1)
        # GeForce runs FP16 with FP32 accumulate at half the FP16-accumulate rate NVIDIA advertises; both columns
        # come from the unrounded product (12 rows were 0.1 off when the second doubled the rounded first)
        assert card["fp16_tc_fp16acc_tflops"] == round(2 * unrounded, 1)
    native = arch in ("Ampere", "Ada Lovelace", "Blackwell")
    assert card["bf16_native"] is native and card["tf32_native"] is native                   # from Ampere on
    assert (card["bf16_tensor_tflops"] is not None) == native
    if native:   # dense TF32 on GeForce runs at the FP32 rate (GA102, Ada whitepapers)
        assert card["tf32_tensor_tflops"] == pytest.approx(card["fp32_tflops"], rel=0.01)
    assert (card["fp8_tensor_tflops"] is not None) == (arch in ("Ada Lovelace", "Blackwell"))    # FP8 from Ada on
    if card["fp8_tensor_tflops"]:     # FP8 with FP32 accumulate on GeForce runs at the FP16-accumulate rate
        assert card["fp8_tensor_tflops"] == card["fp16_tc_fp16acc_tflops"]
    if arch == "Blackwell":
        fp32 = 2 * card["cuda_cores"] * card["boost_clock_mhz"] / 1e6            # unrounded
        assert card["compute_capability"] == "12.0" and 32 * fp32 == pytest.approx(AI_TOPS[card["name"]], rel=0.002)
    assert 2016 <= int(card["launch_date"][:4]) <= 2025


@pytest.mark.parametrize("card", [c for c in SPECS if c["segment"] == "data centre"], ids=lambda c: c["name"])
def test_data_centre_row_is_internally_consistent(card):
    assert card["bandwidth_gbs"] == pytest.approx(card["memory_bus_bits"] * card["memory_gbps"] / 8, rel=0.005)
    assert card["fp32_tflops"] == pytest.approx(2 * card["cuda_cores"] * card["boost_clock_mhz"] / 1e6, abs=0.06)
    assert gpu.architecture(card["compute_capability"])["architecture"] == card["architecture"]
    assert card["match"] and gpu.match_card(f"NVIDIA {card['match']}", card["vram_gb"])["name"] == card["name"]


def test_figures_checked_against_whitepapers():
    # Turing whitepaper: 2080 Ti 13.4 FP32, 53.8 FP16 Tensor (FP32 acc.), 616 GB/s; GA102: 3090 35.6 / 71 / 936;
    # Ada: 4090 82.6 / 165.2 / 1008
    for name, fp32, tensor, bw in (("RTX 2080 Ti", 13.4, 53.8, 616), ("RTX 3090", 35.6, 71.2, 936),
                                   ("RTX 4090", 82.6, 165.2, 1008)):
        c = BY_NAME[name]
        assert (c["fp32_tflops"], c["fp16_tc_fp32acc_tflops"], c["bandwidth_gbs"]) == (fp32, tensor, bw)
        assert c["checked"] == "primary"


@pytest.mark.parametrize("name, vram, expected", [
    ("NVIDIA GeForce RTX 3060", None, "RTX 3060 12GB"),
    ("NVIDIA GeForce RTX 4090", None, "RTX 4090"),
    ("NVIDIA GeForce RTX 3080", 10.0, "RTX 3080 10GB"),
    ("NVIDIA GeForce RTX 4060 Ti", 16.0, "RTX 4060 Ti 16GB"),
    ("NVIDIA GeForce RTX 4060 Ti", None, None),                 # 8 or 16 GB: cannot tell
    ("NVIDIA GeForce GTX 1660 SUPER", None, "GTX 1660 SUPER"),
    ("NVIDIA H100 80GB HBM3", None, "H100 SXM 80GB"),
    ("Tesla T4", None, "T4"),
    ("NVIDIA L4", None, "L4"),
    ("Tesla P100-PCIE-16GB", None, "P100 PCIe 16GB"),
    ("NVIDIA A100-SXM4-40GB", None, "A100 SXM4 40GB"),
    ("NVIDIA Quadro RTX 8000", None, None),
    ("", None, None),
    ("NVIDIA GeForce RTX 5090", 31.4, "RTX 5090"),
    ("NVIDIA GeForce RTX 5060 Ti", 15.9, "RTX 5060 Ti 16GB"),
    ("NVIDIA GeForce RTX 5060 Ti", 7.96, "RTX 5060 Ti 8GB"),
    ("NVIDIA RTX PRO 6000 Blackwell Server Edition", 95.0, "RTX PRO 6000 Blackwell"),   # Colab's G4
    ("NVIDIA A100-SXM4-80GB", 79.2, "A100 SXM4 80GB"),
    ("NVIDIA A100 80GB PCIe", 79.2, "A100 PCIe 80GB"),
    ("NVIDIA H100 PCIe", 79.6, "H100 PCIe 80GB"),
    ("NVIDIA H200", 140.4, "H200 SXM 141GB"),
    ("Tesla P100-SXM2-16GB", 15.9, "P100 SXM2 16GB"),
    ("NVIDIA H100 NVL", 93.1, None),                      # 94 GB: not the SXM row, and not in the table
    ("NVIDIA A100-PCIE-40GB", 39.4, None),                # the 80 GB PCIe row is another card
    ("NVIDIA GeForce RTX 3060", 7.9, None),               # the 8 GB RTX 3060 is not the 12 GB row
])
def test_match_card(name, vram, expected):
    row = gpu.match_card(name, vram)
    assert (row["name"] if row else None) == expected


def test_a_row_whose_memory_differs_by_more_than_ten_percent_is_refused_and_said():
    row, how = gpu.match_card("NVIDIA H100 NVL", 93.1, explain=True)
    assert row is None and "93.1 GiB" in how and "H100 SXM 80GB" in how and "no row used" in how
    assert gpu.match_card("Tesla T4", 15.0)["name"] == "T4"         # 15 GiB of a 16 GB card: within 10 %


def test_a_shared_name_falls_back_on_memory_and_says_so():
    row, how = gpu.match_card("NVIDIA GeForce RTX 3080", 11.8, explain=True)
    assert row["name"] == "RTX 3080 12GB" and "11.8 GiB" in how and "RTX 3080 12GB" in how
    row, how = gpu.match_card("NVIDIA GeForce RTX 4060 Ti", None, explain=True)
    assert row is None and "give the memory size" in how


@pytest.mark.parametrize("smi, card", [
    ("Tesla T4, 7.5, 15360, 535.104.05", "T4"),            # Colab and Kaggle's T4 reports 15 GiB
    ("NVIDIA L4, 8.9, 23034, 550.54.15", "L4"),
    ("NVIDIA H100 80GB HBM3, 9.0, 81559, 550.54.15", "H100 SXM 80GB"),
    ("NVIDIA GeForce RTX 5090, 12.0, 32607, 575.51.02", "RTX 5090"),
    ("NVIDIA GeForce RTX 5060 Ti, 12.0, 16311, 575.51.02", "RTX 5060 Ti 16GB"),
    ("NVIDIA H200, 9.0, 143771, 570.124.06", "H200 SXM 141GB"),
])
def test_detect_data_centre_cards_by_name_and_memory(monkeypatch, smi, card):
    monkeypatch.setattr("shutil.which", lambda cmd: "/usr/bin/nvidia-smi")

    class Done:
        returncode, stdout = 0, smi + "\n"

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: Done())
    found = gpu.detect()
    assert found["card"] == card and found["via"] == "nvidia-smi"
    row = gpu.match_card(found["name"], found["vram_gb"] * gpu.GB / gpu.GIB)
    assert row["vram_gb"] == pytest.approx(found["vram_gb"] * gpu.GB / gpu.GIB, rel=0.1)   # the memory agrees


@pytest.mark.parametrize("name, cc, policy, why", [
    ("NVIDIA GeForce GTX 1080 Ti", "6.1", None, "1/64"),           # FP16 at 1/64 of FP32: no fast 16-bit unit
    ("NVIDIA GeForce GTX 1660 SUPER", "7.5", None, "--force-mixed"),  # fast FP16 (2x) but no Tensor Cores
    ("Tesla P100-PCIE-16GB", "6.0", None, "--force-mixed"),        # the same on the P100
    ("NVIDIA GeForce RTX 2080 Ti", "7.5", "mixed_float16", "FP16 Tensor Cores"),
    ("Tesla T4", "7.5", "mixed_float16", "FP16 Tensor Cores"),
    ("NVIDIA GeForce RTX 3090", "8.6", "mixed_bfloat16", "bfloat16"),
    ("NVIDIA GeForce RTX 4090", "8.9", "mixed_bfloat16", "bfloat16"),
    ("NVIDIA GeForce RTX 5090", "12.0", "mixed_bfloat16", "bfloat16"),
])
def test_mixed_policy_rule(name, cc, policy, why):
    got, reason = gpu.mixed_policy(cc, name)
    assert got == policy and why in reason
    assert ("float32" in reason) == (policy is None)
    if cc in ("7.5", "6.0") and policy is None:
        assert "2x FP32" in reason and "no fast 16-bit" not in reason


def test_mixed_policy_on_a_cpu_follows_its_instructions():
    assert gpu.mixed_policy(None, cpu_bf16=True)[0] == "mixed_bfloat16"
    assert gpu.mixed_policy(None, cpu_bf16=False) == (None, "CPU without AVX512-BF16/AMX: no fast 16-bit units: "
                                                            "stay in float32")


def test_detect_reads_nvidia_smi(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda cmd: "/usr/bin/nvidia-smi")

    class Done:
        returncode, stdout = 0, "NVIDIA GeForce RTX 3080, 8.6, 12288, 550.54.15\n"

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: Done())
    found = gpu.detect()
    assert found == {"name": "NVIDIA GeForce RTX 3080", "compute_capability": "8.6", "vram_gb": 12.9,
                     "driver": "550.54.15", "via": "nvidia-smi", "card": "RTX 3080 12GB",
                     "matched_by": "name shared by 2 rows; 12.0 GiB of memory picked RTX 3080 12GB"}


def test_detect_on_this_cpu_machine_is_none(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda cmd: None)
    assert gpu.detect() is None        # conftest hides any GPU from the tests


def test_7b_qlora_fits_a_12gb_card_and_full_training_fits_none():
    rec = gpu.recommend(7e9, "qlora", "int4", "adam", prices="launch")
    assert "RTX 3060 12GB" in rec.fits and rec.estimate.total_gb < 12 * gpu.GIB / gpu.GB * 0.9
    assert not set(rec.fits) & {"T4", "L4", "H100 SXM 80GB"}          # data-centre rows are not for sale
    per_dollar = [c["per_dollar"] for c in rec.cards if c["per_dollar"] is not None]
    assert per_dollar == sorted(per_dollar, reverse=True)
    full = gpu.recommend(7e9, "train", "mixed", "adam")
    assert full.fits == [] and any("qlora" in n for n in full.notes) and any("lora" in n for n in full.notes)


def test_recommend_respects_budget_and_headroom():
    rec = gpu.recommend(1e9, "inference", "fp16", "none", budget_usd=400, prices="launch")
    assert rec.fits and all(BY_NAME[n]["launch_price_usd"] <= 400 for n in rec.fits)
    assert rec.rank_by == "bandwidth_gbs"
    tight = gpu.recommend(1e9, "inference", "fp16", "none", headroom=0.0, prices="launch")
    assert set(rec.fits) <= set(tight.fits)
    with pytest.raises(ValueError, match="headroom"):
        gpu.recommend(1e9, headroom=1.5)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "helpers.gpu", *args], capture_output=True, text=True,
                          cwd=env.repo_root(), timeout=120)


def test_cli_estimate_json():
    done = _cli("estimate", "--params", "7e9", "--mode", "qlora", "--precision", "int4", "--optimizer", "adam",
                "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == {"weights_gb", "gradients_gb", "optimizer_gb", "activations_gb", "kv_cache_gb",
                           "logits_gb", "overhead_gb", "total_gb", "rule", "fits", "choice", "reason", "notes",
                           "price_basis"}
    assert result["total_gb"] == pytest.approx(sum(result[k] for k in gpu.Estimate.PARTS), abs=1e-3)
    assert "RTX 3060 12GB" in result["fits"] and result["choice"] in result["fits"]
    assert result["choice"] == "RTX 5050" and "sold new" in result["price_basis"]          # list prices today


def test_cli_takes_the_learners_prices_and_running_cost(tmp_path):
    prices = tmp_path / "prices.csv"
    prices.write_text("name,price_usd\nRTX 3060 12GB,180\nRTX 5060 Ti 16GB,429\n")
    done = _cli("estimate", "--params", "1e8", "--precision", "fp32", "--prices", str(prices), "--hours", "1000",
                "--kwh-price", "0.30", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["choice"] == "RTX 3060 12GB" and result["price_basis"] == "your prices"
    assert "electricity $51 for 1,000 h" in result["reason"]            # 170 W x 1,000 h x $0.30/kWh = $51
    prices.write_text("name,price_usd\nRTX 9999,100\n")
    bad = _cli("estimate", "--params", "1e8", "--prices", str(prices))
    assert bad.returncode == 2 and "'RTX 9999' is not a card of the table" in bad.stderr and "Traceback" not in bad.stderr


def test_cli_table_and_detect():
    table = _cli("table")
    assert table.returncode == 0 and "RTX 4090" in table.stdout and "GTX 1050" in table.stdout
    detect = _cli("detect")
    assert detect.returncode == 0 and detect.stdout.strip()


@pytest.mark.parametrize("args, message", [
    (["estimate", "--params", "-5"], "params=-5.0: give the number of parameters as a positive number"),
    (["estimate", "--params", "7e9", "--mode", "foo"], "invalid choice: 'foo'"),
    (["estimate", "--params", "7e9", "--mode", "train", "--precision", "int4"], "integer weights cannot be trained"),
    (["estimate", "--params", "7e9", "--headroom", "2"], "headroom=2.0"),
])
def test_cli_bad_arguments(args, message):
    done = _cli(*args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


# --- what runs on each card, and the sentence setup() prints first ---------------------------------------------
@pytest.mark.parametrize("cc, tensorflow, cuda_ended", [
    ("6.1", True, True), ("6.0", True, True), ("7.0", True, True),      # CUDA 13 dropped Pascal and Volta
    ("7.5", True, False), ("8.6", True, False), ("9.0", True, False),
    ("12.0", False, False),                                              # pip TensorFlow fails on Blackwell RTX
])
def test_software_support_by_architecture(cc, tensorflow, cuda_ended):
    got = gpu.software_support(cc)
    assert got["tensorflow_runs"] is tensorflow and got["cuda_ended"] is cuda_ended
    assert all(got[k] for k in ("tensorflow", "pytorch", "jax", "cuda"))


def test_a_cc_12_gpu_under_tensorflow_gets_the_sentence_first(monkeypatch):
    rtx5090 = {"kind": "GPU", "name": "NVIDIA GeForce RTX 5090", "compute_capability": "12.0", "count": 1}
    said = env.gpu_setup_warning(rtx5090, "tensorflow")
    assert "compute capability 12.0" in said and "CUDA_ERROR_INVALID_PTX" in said
    assert "KERAS_BACKEND=jax or torch" in said and "NGC" in said and "jax[cuda13]" in said and "requirements-jax.txt" in said
    assert env.gpu_setup_warning(rtx5090, "jax") is None                 # JAX runs there: nothing to say
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert env.gpu_setup_warning(rtx5090) is None
    monkeypatch.delenv("KERAS_BACKEND")
    assert env.gpu_setup_warning(rtx5090) == said                        # the default backend is TensorFlow
    t4 = {"kind": "GPU", "name": "Tesla T4", "compute_capability": "7.5", "count": 1}
    assert env.gpu_setup_warning(t4) is None and env.gpu_setup_warning({"kind": "CPU"}) is None
    p100 = {"kind": "GPU", "name": "Tesla P100-PCIE-16GB", "compute_capability": "6.0", "count": 1}
    assert "CUDA 13 dropped it" in env.gpu_setup_warning(p100)


def test_setup_prints_the_sentence_before_its_report(monkeypatch, capsys):
    rtx5090 = {"kind": "GPU", "name": "NVIDIA GeForce RTX 5090", "compute_capability": "12.0", "count": 1}
    monkeypatch.setattr(env, "device_report", lambda tf=None: rtx5090)
    info = env.setup(seed=1)
    out = capsys.readouterr().out
    assert info["gpu_warning"] and out.index("CUDA_ERROR_INVALID_PTX") < out.index("TensorFlow " + info["tensorflow"])
