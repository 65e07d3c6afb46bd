"""kbert.tasks.recipe: fine-tuning defaults that follow the set's size and the encoder's width."""

from __future__ import annotations

import pytest
from test_tasks_support import encoder, with_tokenizer

from kbert.tasks import BertClassifier, LabelledData
from kbert.tasks.recipe import (
    MAX_EPOCHS,
    MIN_STEPS,
    MIN_VALIDATION,
    epochs_for,
    finetuning_recipe,
    learning_rate_for,
)


@pytest.mark.parametrize("examples, batch, epochs", [
    (100_000, 32, 3),     # large sets: the 3-epoch floor
    (4_000, 32, 4),       # 125 steps an epoch -> 4 epochs for 450 steps
    (1_640, 32, 9),       # 52 steps an epoch
    (148, 32, MAX_EPOCHS),  # tiny sets: capped
])
def test_epochs_give_at_least_min_steps_within_bounds(examples, batch, epochs):
    assert epochs_for(examples, batch) == epochs
    steps = epochs * -(-examples // batch)
    assert steps >= MIN_STEPS or epochs == MAX_EPOCHS


@pytest.mark.parametrize("hidden, rate", [(128, 2e-4), (256, 2e-4), (384, 1e-4), (512, 5e-5),
                                          (768, 3e-5), (1024, 2e-5)])
def test_learning_rate_follows_width(hidden, rate):
    assert learning_rate_for(hidden) == rate


def test_given_values_win_and_are_not_explained():
    r = finetuning_recipe(1_640, 384, epochs=2, learning_rate=5e-5, early_stopping=4)
    assert (r.epochs, r.learning_rate, r.early_stopping) == (2, 5e-5, 4)
    assert r.reasons == {}
    assert r.describe().startswith("epochs 2 (given); lr 5e-05 (given); early stopping after 4")


def test_defaults_are_explained_in_one_line():
    r = finetuning_recipe(1_640, 384)
    assert r.describe() == ("epochs 9 (1,640 examples, at least 450 steps); lr 0.0001 "
                            "(hidden 384); early stopping after 2 epochs without a better "
                            "val_accuracy, best epoch restored")
    assert "at most 30 epochs" in finetuning_recipe(50, 768).describe()


def test_early_stopping_off_without_validation_or_when_zero_and_patience_grows():
    assert finetuning_recipe(1_000, 384, early_stopping=0).early_stopping is None
    assert finetuning_recipe(1_000, 384, validation_examples=0).early_stopping is None
    assert "no early stopping" in finetuning_recipe(1_000, 384, early_stopping=0).describe()
    assert finetuning_recipe(100, 384).early_stopping == 3  # 30 epochs: more patience


def test_too_small_a_validation_split_keeps_the_last_epoch_unless_patience_is_given():
    small = finetuning_recipe(44, 384, validation_examples=5)
    assert small.early_stopping is None and not small.restore_best
    assert small.describe().endswith("no early stopping (5 validation examples, too few to "
                                     "choose an epoch by); the last epoch is kept")
    enough = finetuning_recipe(44, 384, validation_examples=MIN_VALIDATION)
    assert enough.early_stopping == 3 and enough.restore_best
    given = finetuning_recipe(44, 384, early_stopping=2, validation_examples=5)
    assert given.early_stopping == 2 and given.restore_best
    assert finetuning_recipe(44, 384).restore_best  # size not known: taken as enough


def test_regression_monitors_loss():
    assert finetuning_recipe(500, 384, problem_type="regression").monitor == "val_loss"
    assert finetuning_recipe(500, 384).monitor == "val_accuracy"


def test_no_examples_is_an_error():
    with pytest.raises(ValueError, match="at least one training example"):
        finetuning_recipe(0, 384)


def test_fit_texts_uses_the_recipe(capsys):
    """A tiny classifier fitted with no epochs / learning rate given follows the recipe, says so
    once, and compiles with the recipe's learning rate."""
    model = with_tokenizer(BertClassifier(encoder(), num_classes=2), max_length=16)
    texts = ["good film", "bad film", "great story", "awful plot"] * 4
    labels = ["pos", "neg", "pos", "neg"] * 4
    history = model.fit_texts(LabelledData(texts, labels), LabelledData(texts[:4], labels[:4]),
                              batch_size=8, verbose=2)
    printed = capsys.readouterr().out
    recipe = model.finetuning_recipe(16, 8, validation_examples=4)
    assert printed.count(recipe.describe()) == 1
    assert recipe.epochs == MAX_EPOCHS  # 2 steps an epoch
    # 4 validation examples cannot choose an epoch: every epoch runs, the last is kept
    assert recipe.early_stopping is None and not recipe.restore_best
    assert "4 validation examples, too few to choose an epoch by); the last epoch" in printed
    epochs_run = len(history.history["loss"])
    assert epochs_run == recipe.epochs
    assert model.optimizer.learning_rate.numpy() < recipe.learning_rate  # decayed from the peak
    assert model.optimizer.iterations.numpy() == 2 * epochs_run


def test_given_values_are_not_printed(capsys):
    model = with_tokenizer(BertClassifier(encoder(), num_classes=2), max_length=16)
    data = LabelledData(["good film", "bad film"] * 2, ["pos", "neg"] * 2)
    history = model.fit_texts(data, data, epochs=2, learning_rate=1e-3, batch_size=4, verbose=2,
                              early_stopping_patience=0)
    assert "(given)" not in capsys.readouterr().out
    assert len(history.history["loss"]) == 2
