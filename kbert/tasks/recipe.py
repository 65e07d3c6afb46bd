"""The fine-tuning defaults that follow the data and the model: the one place they are chosen.

A fixed "3 epochs at 3e-5" is the BERT-base recipe for sets of tens of thousands of examples. On a
set of 1,600 sentences it is ~150 optimizer steps, and a small encoder such as MiniLM-L6 (hidden
384) barely moves at that rate. `finetuning_recipe` chooses instead:

* **epochs**: enough passes for at least `MIN_STEPS` optimizer steps (never fewer than 3 epochs,
  never more than `MAX_EPOCHS`), so small sets get as many updates as large ones;
* **learning rate** by the encoder's width: small encoders want larger steps (Turc et al. 2019,
  "Well-Read Students Learn Better", tune 1e-4..3e-5 for the compact BERTs; Devlin et al. 2019
  2e-5..5e-5 for BERT-base / large);
* **early stopping** on the validation split with the best epoch restored: patience 2 epochs
  (3 beyond 10 epochs), monitoring validation accuracy for classification (loss for regression;
  the loss of a fine-tuned BERT often rises while its accuracy still improves). With fewer than
  `MIN_VALIDATION` validation examples an epoch cannot be chosen (on 5 examples every epoch
  that gets them right ties, and the first, barely trained one was kept: 0.67 test accuracy on
  reuters-acq-crude against 1.00), so then all the epochs run and the last is kept.

Every value given explicitly wins; `Recipe.describe()` is the one line the command prints, saying
why each value was chosen.

    >>> r = finetuning_recipe(num_examples=1640, hidden_size=384, batch_size=32)
    >>> r.epochs, r.learning_rate, r.early_stopping
    (9, 0.0001, 2)
    >>> print(r.describe())  # doctest: +NORMALIZE_WHITESPACE
    epochs 9 (1,640 examples, at least 450 steps); lr 0.0001 (hidden 384); early stopping after 2
    epochs without a better val_accuracy, best epoch restored
"""

from __future__ import annotations

import dataclasses
import math

MIN_STEPS = 450
MIN_EPOCHS = 3
MAX_EPOCHS = 30
MIN_VALIDATION = 100  # validation examples needed to choose an epoch by

# (widest hidden size, learning rate), the first that fits
LEARNING_RATES = ((256, 2e-4), (511, 1e-4), (767, 5e-5), (1023, 3e-5))
LARGE_MODEL_LR = 2e-5


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Chosen fine-tuning settings, each with the reason it was chosen ("" = given)."""

    epochs: int
    learning_rate: float
    early_stopping: int | None  # patience in epochs; None: no early stop
    monitor: str
    reasons: dict = dataclasses.field(default_factory=dict)
    restore_best: bool = True  # restore the best epoch by `monitor` (else keep the last)

    def describe(self) -> str:
        parts = [f"epochs {self.epochs} ({self.reasons.get('epochs') or 'given'})",
                 f"lr {self.learning_rate:g} ({self.reasons.get('learning_rate') or 'given'})"]
        if self.early_stopping:
            parts.append(f"early stopping after {self.early_stopping} epochs without a better "
                         f"{self.monitor}, best epoch restored")
        elif not self.restore_best:
            parts.append(f"no early stopping ({self.reasons['early_stopping']}); the last epoch "
                         "is kept")
        else:
            parts.append(f"no early stopping; the best epoch by {self.monitor} is restored")
        return "; ".join(parts)


def learning_rate_for(hidden_size: int) -> float:
    """The peak learning rate for an encoder of this width."""
    for widest, rate in LEARNING_RATES:
        if hidden_size <= widest:
            return rate
    return LARGE_MODEL_LR


def epochs_for(num_examples: int, batch_size: int, min_steps: int = MIN_STEPS) -> int:
    """Passes over `num_examples` giving at least `min_steps` steps, within [3, MAX_EPOCHS]."""
    steps_per_epoch = max(1, math.ceil(num_examples / batch_size))
    return max(MIN_EPOCHS, min(MAX_EPOCHS, math.ceil(min_steps / steps_per_epoch)))


def finetuning_recipe(num_examples: int, hidden_size: int, batch_size: int = 32, *,
                      epochs: int | None = None, learning_rate: float | None = None,
                      early_stopping: int | None = None, validation_examples: int | None = None,
                      problem_type: str = "single_label") -> Recipe:
    """Fill in what was not given (None) from the set's size and the encoder's width.

    `validation_examples`: the size of the validation split (0: none; None: not known, taken as
    enough). `early_stopping=0` turns early stopping off (the best epoch is still restored).
    """
    if num_examples < 1:
        raise ValueError("fine-tuning needs at least one training example")
    reasons = {}
    if epochs is None:
        epochs = epochs_for(num_examples, batch_size)
        steps = MIN_STEPS
        reasons["epochs"] = (f"{num_examples:,} examples, at least {steps} steps"
                             if epochs < MAX_EPOCHS else
                             f"{num_examples:,} examples, at most {MAX_EPOCHS} epochs")
    if learning_rate is None:
        learning_rate = learning_rate_for(hidden_size)
        reasons["learning_rate"] = f"hidden {hidden_size}"
    monitor = "val_loss" if problem_type == "regression" else "val_accuracy"
    restore_best = True
    if validation_examples == 0:
        early_stopping = None
    elif early_stopping is None and validation_examples is not None and (
            validation_examples < MIN_VALIDATION):
        restore_best = False
        reasons["early_stopping"] = (f"{validation_examples} validation examples, too few to "
                                     "choose an epoch by")
    elif early_stopping is None:
        early_stopping = 2 if epochs <= 10 else 3
    elif early_stopping == 0:
        early_stopping = None
    return Recipe(int(epochs), float(learning_rate), early_stopping, monitor, reasons,
                  restore_best)
