"""pytest set-up for the experiments' tests (run apart from the product's suite:
`python -m pytest experiments/tests`): quiet TensorFlow logs, a deterministic Keras seed per
test."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_keras():
    import keras

    keras.utils.set_random_seed(1234)
    yield
