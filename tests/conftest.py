"""Shared pytest set-up: quiet TensorFlow logs, offline Hugging Face Hub, a deterministic Keras
seed per test."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Tests never use the network: a model name (kbert/hub.py) is read from the Hugging Face cache only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import keras
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_keras():
    keras.utils.set_random_seed(1234)
    yield
