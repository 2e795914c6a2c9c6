"""Test-wide settings, applied before any notebook kernel starts (kernels inherit the environment).

`helpers.env.testing_environment` says what they are and why: the offline MNIST source everywhere, and the
GPU hidden unless COURSE_TEST_GPU=1 (then TF32 is turned off, so float32 stays float32).
`tools/run_notebooks.py`, which stores the notebooks' outputs, applies the same settings.
"""
import os

from helpers.env import testing_environment

os.environ.update(testing_environment())
