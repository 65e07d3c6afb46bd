"""What every task head shares: the wrapped encoder, freezing, the fine-tuning `compile`
defaults, the tokenizer for raw-text methods, and saving to / loading from a directory.

A saved task directory holds:
    model.keras   the head with its encoder (no optimizer state)
    vocab.txt     the tokenizer's vocabulary
    task.json     {"task": class name, "max_length": ..., "lower_case": ..., "kbert_version"}
    labels.json   the label map (classification heads)
"""

from __future__ import annotations

import json
import os

import keras
from keras import ops

from kbert.tasks.loading import ENCODER_NAME, check_tokenizer, detect_source, load_encoder
from kbert.tasks.tuning import bert_finetuning_optimizer, freeze_encoder_layers

TASK_FILE = "task.json"
MODEL_FILE = "model.keras"


class TaskModel(keras.Model):
    """Base of the heads: a Keras model composed around a `BertEncoder` named "encoder".

    Args:
        encoder: a `BertEncoder`. One with another name is copied under the name "encoder"
            (same weights), so that `get_layer("encoder")` and the saved weight paths are stable.
        freeze_layers: None (train everything), or N: freeze the embeddings and blocks 0..N-1.
    """

    def __init__(self, encoder, freeze_layers: int | None = None, **kwargs):
        super().__init__(**kwargs)
        from kbert.tasks.loading import rebuild_encoder

        self.encoder = rebuild_encoder(encoder, ENCODER_NAME)
        self.freeze_layers = freeze_layers
        freeze_encoder_layers(self.encoder, freeze_layers)
        # Not Keras state: kept out of attribute tracking so `.keras` files stay pure models.
        self.__dict__["_text_tokenizer"] = None
        self.__dict__["_max_length"] = 128

    # ------------------------------------------------------------------ forward
    def encode_cls(self, inputs, training=False):
        """(pooled_output, [CLS] output), both [batch, H], for heads that read [CLS] only.

        The last block computes the [CLS] row alone (`BertEncoder.call(output_positions=)`):
        the same numbers as the full encoder, without the other S - 1 rows of the last block's
        attention output, feed-forward and LayerNorms.
        """
        token_ids = inputs["token_ids"] if isinstance(inputs, dict) else inputs
        outputs = self.encoder(inputs, training=training,
                               output_positions=ops.zeros_like(token_ids[:, :1]))
        return outputs["pooled_output"], outputs["sequence_output"][:, 0, :]

    # ------------------------------------------------------------------ text side
    @property
    def tokenizer(self):
        return self.__dict__.get("_text_tokenizer")

    @property
    def max_length(self) -> int:
        return self.__dict__.get("_max_length", 128)

    def set_tokenizer(self, tokenizer, max_length: int | None = None) -> None:
        """Attach the tokenizer the raw-text methods use (checked against the vocab size)."""
        check_tokenizer(self.encoder, tokenizer)
        self.__dict__["_text_tokenizer"] = tokenizer
        if max_length is not None:
            limit = self.encoder.bert_config.max_position_embeddings
            if not 2 <= int(max_length) <= limit:
                raise ValueError(f"max_length must be in [2, {limit}] (the encoder's positions), "
                                 f"got {max_length}")
            self.__dict__["_max_length"] = int(max_length)

    def _require_tokenizer(self):
        if self.tokenizer is None:
            raise ValueError(
                f"{type(self).__name__} has no tokenizer: load it with from_pretrained(...) or "
                f"call set_tokenizer(tokenizer) before using text methods")
        return self.tokenizer

    # ------------------------------------------------------------------ training
    def default_loss(self):
        raise NotImplementedError

    def default_metrics(self):
        return None

    def compile(self, optimizer="auto", loss="auto", metrics="auto", *,
                learning_rate: float = 3e-5, total_steps: int | None = None,
                warmup: float | int = 0.1, weight_decay: float = 0.01,
                layerwise_lr_decay: float = 1.0, **kwargs):
        """Keras `compile` with the BERT fine-tuning defaults.

        `optimizer="auto"`: `bert_finetuning_optimizer` (AdamW, peak `learning_rate` 3e-5,
        `warmup` 10% of `total_steps`, linear decay to 0, weight decay 0.01 except LayerNorm and
        biases, layer-wise lr decay `layerwise_lr_decay`). Without `total_steps` the rate is
        constant. `loss` / `metrics` "auto" pick the head's own.
        """
        if optimizer == "auto":
            optimizer = bert_finetuning_optimizer(
                learning_rate, total_steps, warmup=warmup, weight_decay=weight_decay,
                num_layers=self.encoder.bert_config.num_layers,
                layerwise_lr_decay=layerwise_lr_decay)
        if loss == "auto":
            loss = self.default_loss()
        if metrics == "auto":
            metrics = self.default_metrics()
        if keras.backend.backend() == "tensorflow":
            # Text batches come in several widths and a short last batch: XLA would compile
            # each shape anew (tens of seconds on CPU) for no faster steps measured here.
            kwargs.setdefault("jit_compile", False)
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)
        if (keras.backend.backend() == "tensorflow"
                and self.distribute_strategy.num_replicas_in_sync > 1):
            # clip the all-reduced gradient, not each replica's (kbert/training/distribute.py)
            from kbert.training.distribute import sum_gradients_before_clipping

            sum_gradients_before_clipping(self.optimizer)

    # ------------------------------------------------------------------ config
    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "freeze_layers": self.freeze_layers}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)

    # ------------------------------------------------------------------ directories
    def _save_extra(self, directory: str) -> dict:
        """Head-specific files; returns extra task.json entries."""
        return {}

    def _load_extra(self, directory: str, task: dict) -> None:
        pass

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write model.keras (weights, no optimizer state), vocab.txt, task.json (+ labels.json)."""
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        tokenizer = self._require_tokenizer()
        clone = type(self).from_config(self.get_config())  # an uncompiled twin: no optimizer
        clone.set_weights(self.get_weights())
        clone.save(os.path.join(directory, MODEL_FILE))
        tokenizer.vocab.save(directory)
        task = {"task": type(self).__name__, "max_length": self.max_length,
                "lower_case": bool(tokenizer.lower_case)}
        task.update(self._save_extra(directory))
        from kbert import __version__

        task["kbert_version"] = __version__
        with open(os.path.join(directory, TASK_FILE), "w", encoding="utf-8") as f:
            json.dump(task, f, indent=2, ensure_ascii=False)
            f.write("\n")

    @classmethod
    def load_task_dir(cls, directory: str | os.PathLike):
        """Load a directory written by `save_pretrained` (any head; checked against `cls`)."""
        from kbert.config import read_json_file
        from kbert.convert.keras_files import load_keras_file
        from kbert.tokenization.tokenizer import BertTokenizer

        directory = os.fspath(directory)
        task_path = os.path.join(directory, TASK_FILE)
        task = read_json_file(task_path, ValueError)  # size-limited, a JSON object
        max_length, lower_case = task.get("max_length"), task.get("lower_case")
        if max_length is not None and (isinstance(max_length, bool)
                                       or not isinstance(max_length, int) or max_length < 2):
            raise ValueError(f"{task_path}: max_length must be an integer >= 2, got "
                             f"{max_length!r}")
        if lower_case is not None and not isinstance(lower_case, bool):
            raise ValueError(f"{task_path}: lower_case must be true or false, got "
                             f"{lower_case!r}")
        import kbert.tasks  # noqa: F401  (registers every head class)

        model = load_keras_file(os.path.join(directory, MODEL_FILE))  # safe mode
        if not isinstance(model, cls):
            raise ValueError(f"{directory} holds a {type(model).__name__}, not a {cls.__name__}")
        tokenizer = BertTokenizer(os.path.join(directory, "vocab.txt"),
                                  lower_case=task.get("lower_case"))
        model.set_tokenizer(tokenizer, task.get("max_length"))
        model._load_extra(directory, task)
        return model

    @classmethod
    def from_pretrained(cls, source, *, tokenizer=None, max_length: int = 128,
                        hidden_dropout: float | None = None,
                        attention_dropout: float | None = None, **head_kwargs):
        """A new head on a pre-trained encoder, or a fine-tuned head saved by `save_pretrained`.

        Args:
            source: a kbert pre-training run dir, a `.keras` file, a transformers or Google BERT
                checkpoint dir (see `kbert.tasks.loading`), a BertEncoder, or a fine-tuned task
                directory (then `head_kwargs` must be empty).
            tokenizer: overrides the tokenizer found with the weights (sizes are checked).
            max_length: sequence length of the raw-text methods.
            hidden_dropout, attention_dropout: encoder dropout rates for fine-tuning.
            **head_kwargs: the head's constructor arguments (num_classes, freeze_layers, ...).
        """
        if isinstance(source, (str, os.PathLike)) and detect_source(source) == "task_dir":
            if head_kwargs or hidden_dropout is not None or attention_dropout is not None:
                raise ValueError(f"{source} is a fine-tuned model: it takes no head arguments "
                                 f"(got {sorted(head_kwargs)})")
            return cls.load_task_dir(source)
        encoder, found = load_encoder(source, hidden_dropout=hidden_dropout,
                                      attention_dropout=attention_dropout)
        model = cls(encoder, **head_kwargs)
        tokenizer = tokenizer or found
        if tokenizer is not None:
            model.set_tokenizer(tokenizer, max_length)
        return model


def head_dropout_rate(encoder, dropout: float | None) -> float:
    """The head's dropout: as given, else the encoder's hidden dropout (BERT uses the same)."""
    rate = encoder.bert_config.hidden_dropout if dropout is None else float(dropout)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    return rate
