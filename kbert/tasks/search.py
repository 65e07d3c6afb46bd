"""A small hyper-parameter search and seed repeats for fine-tuning (`kbert finetune --search`,
`--seeds N`).

A plain loop rather than KerasTuner: each trial is a whole `fit_texts` run on a freshly loaded
encoder, scored by its best epoch on the validation split (the epoch `fit_texts` restores), and
only the best model is kept in memory. KerasTuner's `Tuner.run_trial` would fit that too, but it
adds a dependency, an on-disk trial store and its own reporting for a grid of six points.

The grid is centred on the recipe (`kbert.tasks.recipe`): the chosen learning rate halved, as is,
doubled; the chosen epoch budget and twice it (capped at the recipe's maximum).

    >>> grid = search_grid(learning_rate=1e-4, epochs=9)
    >>> [(f"{lr:g}", e) for lr, e in grid]
    [('5e-05', 9), ('5e-05', 18), ('0.0001', 9), ('0.0001', 18), ('0.0002', 9), ('0.0002', 18)]
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable

from kbert.tasks.recipe import MAX_EPOCHS

RATE_FACTORS = (0.5, 1.0, 2.0)
EPOCH_FACTORS = (1, 2)


@dataclasses.dataclass
class Trial:
    """One fine-tuning run: its settings and its best validation score."""

    learning_rate: float
    epochs: int
    seed: int
    score: float
    best_epoch: int  # 1-based
    test_score: float | None = None
    history: dict = dataclasses.field(default_factory=dict, repr=False)  # per epoch, as Keras'

    def row(self) -> dict:
        """The trial for metrics.json (without the per-epoch history)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "history"}


def search_grid(learning_rate: float, epochs: int) -> list[tuple[float, int]]:
    """(learning rate, epoch budget) pairs around the recipe's choice."""
    budgets = sorted({min(MAX_EPOCHS, max(1, round(epochs * f))) for f in EPOCH_FACTORS})
    return [(learning_rate * f, e) for f in RATE_FACTORS for e in budgets]


def best_of(history: dict, monitor: str) -> tuple[float, int]:
    """The best value of `monitor` in a Keras history and its (1-based) epoch."""
    values = history.get(monitor)
    if not values:
        raise ValueError(f"the training history has no {monitor!r} (was there validation data?)")
    pick = min if lower_is_better(monitor) else max
    value = pick(values)
    return float(value), values.index(value) + 1


def last_of(history: dict, monitor: str) -> tuple[float, int]:
    """The last epoch's value of `monitor` and that epoch (what a run that keeps its last epoch
    is worth)."""
    values = history.get(monitor)
    if not values:
        raise ValueError(f"the training history has no {monitor!r} (was there validation data?)")
    return float(values[-1]), len(values)


def lower_is_better(monitor: str) -> bool:
    return monitor.endswith(("loss", "mae"))


def run_trials(fit: Callable, settings: list[tuple[float, int, int]], monitor: str,
               score_test: Callable | None = None, log=print, keep_last: bool = False):
    """Fit each (learning rate, epochs, seed); keep the model with the best validation score.

    `fit(learning_rate, epochs, seed)` returns (model, keras History). `score_test(model)`, if
    given, scores each trial's model on the test set (reported, never used to choose).
    `keep_last`: the runs keep their last epoch (a validation split too small to choose an
    epoch by, `Recipe.restore_best` False), so each is scored by that epoch.
    Returns (best model, its Trial, every Trial).
    """
    best_model, best, trials = None, None, []
    for number, (learning_rate, epochs, seed) in enumerate(settings, 1):
        log(f"-- trial {number}/{len(settings)}: lr {learning_rate:g}, epochs {epochs}, "
            f"seed {seed}")
        model, history = fit(learning_rate, epochs, seed)
        score, epoch = (last_of if keep_last else best_of)(history.history, monitor)
        trial = Trial(learning_rate, epochs, seed, score, epoch,
                      score_test(model) if score_test else None,
                      {k: [float(v) for v in values] for k, values in history.history.items()})
        trials.append(trial)
        if best is None or is_better(trial, best, monitor):
            best_model, best = model, trial
        del model
    return best_model, best, trials


def is_better(trial: Trial, other: Trial, monitor: str) -> bool:
    """Whether `trial` scored strictly better than `other` on `monitor` (ties keep the first)."""
    if lower_is_better(monitor):
        return trial.score < other.score
    return trial.score > other.score


def format_trials(trials: list[Trial], monitor: str, chosen: Trial | None = None) -> str:
    """The trials as an aligned text table, the chosen one marked."""
    has_test = any(t.test_score is not None for t in trials)
    header = ["lr", "epochs", "seed", f"best {monitor}", "at epoch"] + (["test"] if has_test
                                                                        else [])
    rows = [[f"{t.learning_rate:g}", str(t.epochs), str(t.seed), f"{t.score:.4f}",
             str(t.best_epoch)] + ([f"{t.test_score:.4f}" if t.test_score is not None else "-"]
                                   if has_test else []) for t in trials]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    out = [line(header)]
    for trial, row in zip(trials, rows, strict=True):
        out.append(line(row) + ("  <- kept" if trial is chosen else ""))
    return "\n".join(out)


def spread(values: list[float]) -> str:
    """'mean +- standard deviation (n)' of a list of scores."""
    if len(values) == 1:
        return f"{values[0]:.4f} (1 run)"
    return (f"{statistics.fmean(values):.4f} +- {statistics.stdev(values):.4f} "
            f"({len(values)} seeds, min {min(values):.4f}, max {max(values):.4f})")
