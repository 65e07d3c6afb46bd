"""Shared pytest set-up: quiet TensorFlow logs, a deterministic Keras seed per test."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_keras():
    keras.utils.set_random_seed(1234)
    yield
