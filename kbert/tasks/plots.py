"""Plots of a fine-tuning run with matplotlib, the optional `kbert[plots]` extra.

`kbert finetune` saves beside metrics.json, for each evaluated set, the confusion matrix
(`confusion_<set>.png`: rows true, columns predicted, a cell's blue its share of its row, its
count written in it) and the training curves (`training_curves.png`: loss and validation loss,
validation accuracy, per epoch, from the fit history). Without matplotlib `save_plots` writes
the same information as text (`confusion_<set>.txt`, `training_curves.txt`) and returns a
one-line note saying how to get the PNGs. matplotlib is used through its object API
(`matplotlib.figure.Figure`, no pyplot): no global state, no display needed.

Example:
    >>> report = classification_report([0, 1, 1], [0, 1, 0], ["neg", "pos"])   # doctest: +SKIP
    >>> save_plots("runs/clf", {"validation": report}, history.history)       # doctest: +SKIP
    ['runs/clf/confusion_validation.png', 'runs/clf/training_curves.png']
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

NO_MATPLOTLIB = ("matplotlib is not installed: the confusion matrices and training curves are "
                 "saved as text; pip install 'kbert[plots]' for PNGs")


def have_matplotlib() -> bool:
    try:
        # deferred: matplotlib is optional (kbert[plots])
        import matplotlib  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def _figure(width: float, height: float):
    try:
        # deferred: matplotlib is optional (kbert[plots])
        from matplotlib.figure import Figure  # noqa: PLC0415
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'kbert[plots]'") from None
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def confusion_figure(matrix, labels: Sequence):
    """A matplotlib Figure of the confusion matrix: blue = the cell's share of its row."""
    matrix = np.asarray(matrix)
    names = [str(label) for label in labels]
    size = 2.0 + 0.6 * len(names)
    figure = _figure(size + 1.0, size)
    ax = figure.subplots()
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape, float), where=rows > 0)
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for t in range(matrix.shape[0]):
        for p in range(matrix.shape[1]):
            ax.text(p, t, str(int(matrix[t, p])), ha="center", va="center",
                    color="white" if share[t, p] > 0.5 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45 if len(names) > 4 else 0, ha="right"
                  if len(names) > 4 else "center")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix")
    figure.colorbar(image, ax=ax, label="share of the true class")
    return figure


def _curves(history: dict) -> list[tuple[str, str, list[float]]]:
    """(panel, name, values per epoch) of the history's loss and accuracy curves."""
    out = []
    for name in ("loss", "val_loss", "accuracy", "val_accuracy"):
        if history.get(name):
            out.append(("loss" if name.endswith("loss") else "accuracy", name,
                        [float(v) for v in history[name]]))
    return out


def training_figure(history: dict):
    """A matplotlib Figure: loss (training, validation) and validation accuracy per epoch."""
    # deferred: matplotlib is optional (kbert[plots])
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415

    curves = _curves(history)
    panels = sorted({panel for panel, _, _ in curves}, key=["loss", "accuracy"].index)
    figure = _figure(4.5 * max(1, len(panels)), 3.5)
    axes = np.atleast_1d(figure.subplots(1, max(1, len(panels))))
    for ax, panel in zip(axes, panels, strict=False):
        for _, name, values in (c for c in curves if c[0] == panel):
            ax.plot(range(1, len(values) + 1), values, marker="o", label=name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(panel)
        ax.legend()
        ax.grid(alpha=0.3)
    return figure


def training_text(history: dict) -> str:
    """The training curves as an aligned table: one row per epoch."""
    curves = _curves(history)
    if not curves:
        return "no training history"
    names = [name for _, name, _ in curves]
    epochs = max(len(values) for _, _, values in curves)
    width = max(12, *(len(n) for n in names))
    lines = ["epoch" + "".join(f"  {n:>{width}}" for n in names)]
    for e in range(epochs):
        cells = [f"{values[e]:>{width}.4f}" if e < len(values) else " " * width
                 for _, _, values in curves]
        lines.append(f"{e + 1:>5}" + "".join(f"  {c}" for c in cells))
    return "\n".join(lines)


def save_plots(directory: str | os.PathLike, reports: dict, history: dict) -> tuple[list, str]:
    """Save the confusion matrix of each report ({set name: ClassificationReport}) and the
    training curves of `history` (Keras' History.history) in `directory`.

    Returns (the paths written, a one-line note: empty with matplotlib, else NO_MATPLOTLIB).
    """
    directory = os.fspath(directory)
    written = []
    png = have_matplotlib()
    for name, report in reports.items():
        path = os.path.join(directory, f"confusion_{name}.{'png' if png else 'txt'}")
        if png:
            report.save_confusion_png(path)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write("confusion matrix (rows: true, columns: predicted)\n"
                        + report.confusion_text() + "\n")
        written.append(path)
    if history:
        path = os.path.join(directory, f"training_curves.{'png' if png else 'txt'}")
        if png:
            training_figure(history).savefig(path)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(training_text(history) + "\n")
        written.append(path)
    return written, "" if png else NO_MATPLOTLIB
