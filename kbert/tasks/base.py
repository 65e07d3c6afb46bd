"""What every task head shares: the wrapped encoder, freezing, the fine-tuning `compile`
defaults, the preprocessor (tokenizer + packing) that lets Keras' own `fit` / `evaluate` /
`predict` take raw text, and saving to / loading from a directory.

A saved task directory holds:
    model.keras   the head with its encoder and its vocabulary (assets/), no optimizer state:
                  `keras.saving.load_model` alone gives a model that takes raw text
    vocab.txt     the tokenizer's vocabulary (also inside model.keras)
    task.json     {"task": class name, "max_length", "lower_case", "trained", "kbert_version"}
    labels.json   the label map (classification heads)
`kbert.load(directory)` (kbert/loading.py) reads it back.

Raw text in Keras' API (like keras-hub's tasks): `model.fit(texts, labels)`,
`model.fit((texts, text_pairs), labels)`, `model.fit(tf_dataset_of_strings)`,
`model.evaluate(texts, labels)`, `model.predict(["..."])` (the head's raw outputs, e.g. logits).
The text is tokenized and packed in `tf.data` (`text_to_dataset`), so the model itself stays
`keras.ops` only; token ids / dict inputs keep working unchanged.
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np
from keras import ops

from kbert import __version__
from kbert.config import check_max_length
from kbert.errors import KbertError
from kbert.loading import Loaded, load
from kbert.tasks.loading import ENCODER_NAME, check_tokenizer, load_encoder, rebuild_encoder
from kbert.tasks.tuning import bert_finetuning_optimizer, freeze_encoder_layers
from kbert.tokenization.vocab import Vocabulary
from kbert.training.distribute import sum_gradients_before_clipping

TASK_FILE = "task.json"
MODEL_FILE = "model.keras"
ASSET_VOCAB = "vocab.txt"


class UntrainedHeadError(KbertError, ValueError):
    """A task head that was never fitted was asked for predictions."""


def is_text_list(x) -> bool:
    """A str, or a list / tuple / numpy array of str."""
    if isinstance(x, str):
        return True
    if isinstance(x, np.ndarray):
        return x.dtype.kind in "US" or (x.dtype.kind == "O" and x.size > 0
                                        and isinstance(x.flat[0], str))
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(t, str) for t in x)


def as_text_list(x) -> list[str]:
    if isinstance(x, str):
        return [x]
    return [str(t) for t in (x.tolist() if isinstance(x, np.ndarray) else x)]


def is_string_dataset(x) -> bool:
    """A tf.data.Dataset whose inputs (first element of a tuple) are strings."""
    spec = getattr(x, "element_spec", None)
    if spec is None or not type(x).__module__.startswith("tensorflow"):
        return False
    first = spec[0] if isinstance(spec, tuple) else spec
    if isinstance(first, tuple):
        first = first[0]
    return getattr(getattr(first, "dtype", None), "name", None) == "string"


class TaskModel(keras.Model):
    """Base of the heads: a Keras model composed around a `BertEncoder` named "encoder".

    Args:
        encoder: a `BertEncoder`. One with another name is copied under the name "encoder"
            (same weights), so that `get_layer("encoder")` and the saved weight paths are stable.
        freeze_layers: None (train everything), or N: freeze the embeddings and blocks 0..N-1.
    """

    def __init__(self, encoder, freeze_layers: int | None = None, **kwargs):
        preprocessor = kwargs.pop("preprocessor", None) or {}
        super().__init__(**kwargs)
        self.encoder = rebuild_encoder(encoder, ENCODER_NAME)
        self.freeze_layers = freeze_layers
        freeze_encoder_layers(self.encoder, freeze_layers)
        # Not Keras state: kept out of attribute tracking so `.keras` files stay pure models.
        # The vocabulary travels as an asset of the archive (save_assets / load_assets).
        self.__dict__["_text_tokenizer"] = None
        self.__dict__["_max_length"] = int(preprocessor.get("max_length", 128))
        self.__dict__["_lower_case"] = preprocessor.get("lower_case")
        self.__dict__["_head_trained"] = bool(preprocessor.get("trained", False))
        self.__dict__["_window_stride"] = preprocessor.get("window_stride")

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
        tokenizer = self.__dict__.get("_text_tokenizer")
        vocab = self.__dict__.get("_archived_vocab")
        if tokenizer is None and vocab is not None:  # built on first use: TensorFlow code
            # deferred: the tokenizer is TensorFlow code, not needed on JAX
            from kbert.tokenization.tokenizer import BertTokenizer  # noqa: PLC0415

            tokenizer = BertTokenizer(vocab, lower_case=self.__dict__.get("_lower_case"))
            self.__dict__["_archived_vocab"] = None
            self.set_tokenizer(tokenizer)
        return tokenizer

    @property
    def max_length(self) -> int:
        return self.__dict__.get("_max_length", 128)

    @property
    def window_stride(self) -> int | None:
        """None: texts longer than max_length are truncated; else they are read as overlapping
        windows this many pieces apart (kbert.tasks.windows; the classifier's single texts)."""
        return self.__dict__.get("_window_stride")

    @property
    def trained(self) -> bool:
        """True once `fit` has run on this head (saved with it): an untrained head's answers
        are noise, and `kbert classify` refuses them."""
        return self.__dict__.get("_head_trained", False)

    def set_tokenizer(self, tokenizer, max_length: int | None = None) -> None:
        """Attach the tokenizer the raw-text methods use (checked against the vocab size)."""
        check_tokenizer(self.encoder, tokenizer)
        self.__dict__["_text_tokenizer"] = tokenizer
        self.__dict__["_archived_vocab"] = None
        self.__dict__["_lower_case"] = None if tokenizer is None else bool(tokenizer.lower_case)
        if max_length is not None:
            limit = self.encoder.bert_config.max_position_embeddings
            self.__dict__["_max_length"] = check_max_length(max_length, limit, "max_length")

    def _require_tokenizer(self):
        if self.tokenizer is None:
            raise ValueError(
                f"{type(self).__name__} has no tokenizer: load it with from_pretrained(...) or "
                f"call set_tokenizer(tokenizer) before using text methods")
        return self.tokenizer

    def save_assets(self, dir_path):
        """Keras hook: the vocabulary goes into the `.keras` archive."""
        tokenizer = self.__dict__.get("_text_tokenizer")
        vocab = tokenizer.vocab if tokenizer is not None else self.__dict__.get("_archived_vocab")
        if vocab is not None:
            vocab.save(dir_path)

    def load_assets(self, dir_path):
        """Keras hook: keep the archived vocabulary; the tokenizer (TensorFlow code) is built
        when text is first used, so the model also loads where only JAX is installed."""
        path = os.path.join(dir_path, ASSET_VOCAB)
        if os.path.isfile(path):
            self.__dict__["_archived_vocab"] = Vocabulary.load(path)

    # ------------------------------------------------------------------ raw text in Keras' API
    def encode_text_inputs(self, x, y=None):
        """Head hook: raw-text `x` (and labels `y`) -> (features, targets or None, sample
        weights or None) as numpy, or None when `x` is not raw text for this head."""
        return None

    def text_to_dataset(self, x, y=None, batch_size: int | None = None, shuffle: bool = False,
                        seed: int = 0):
        """A batched tf.data.Dataset of (features[, targets[, weights]]) for raw-text `x`, or
        None when `x` is not raw text (ids, dicts and tensors pass through `fit` untouched)."""
        encoded = self.encode_text_inputs(x, y)
        if encoded is None:
            return None
        # deferred: TensorFlow, not needed on JAX
        import tensorflow as tf  # noqa: PLC0415

        features, targets, weights = encoded
        parts = [features] + [a for a in (targets, weights) if a is not None]
        if weights is not None and targets is None:
            raise ValueError("sample weights without targets")
        ds = tf.data.Dataset.from_tensor_slices(parts[0] if len(parts) == 1 else tuple(parts))
        if shuffle:
            count = len(next(iter(features.values())))
            ds = ds.shuffle(count, seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size or 32).prefetch(tf.data.AUTOTUNE)

    def _text_or_none(self, x, y, batch_size, shuffle=False, seed=0):
        if y is not None and is_string_dataset(x):
            raise ValueError("y must be None when x is a tf.data.Dataset (put the labels in it)")
        return self.text_to_dataset(x, y, batch_size, shuffle=shuffle, seed=seed)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, **kwargs):
        """Keras `fit`, also on raw text: `fit(texts, labels)`, `fit((texts, pairs), labels)`,
        `fit(tf.data of (string, label))`, with `validation_data=(texts, labels)`.

        Text is tokenized, packed and length-bucketed in tf.data, batches of `batch_size`
        (default 32) reshuffled each epoch. An uncompiled model is compiled with the BERT
        fine-tuning recipe (`compile()`) sized to the run's steps.
        """
        data = self._text_or_none(x, y, batch_size, shuffle=kwargs.get("shuffle", True),
                                  seed=kwargs.pop("seed", 0))
        if data is not None:
            if kwargs.get("validation_split"):
                raise ValueError("validation_split does not apply to raw text; pass "
                                 "validation_data=(texts, labels)")
            validation = kwargs.get("validation_data")
            if isinstance(validation, (tuple, list)) and len(validation) in (2, 3):
                val = self._text_or_none(validation[0], validation[1], batch_size)
                if val is not None:
                    kwargs["validation_data"] = val
            elif validation is not None and is_string_dataset(validation):
                kwargs["validation_data"] = self._text_or_none(validation, None, batch_size)
            kwargs["shuffle"] = False  # the pipeline reshuffles every epoch
            x, y, batch_size = data, None, None
        if not self.compiled:
            steps = None
            cardinality = getattr(x, "cardinality", None)
            if cardinality is not None and int(cardinality()) > 0:
                steps = int(cardinality()) * epochs
            self.compile(total_steps=steps)
        history = super().fit(x, y, batch_size=batch_size, epochs=epochs, **kwargs)
        self.__dict__["_head_trained"] = True
        return history

    def evaluate(self, x=None, y=None, batch_size=None, **kwargs):
        """Keras `evaluate`, also on raw text (as `fit`)."""
        data = self._text_or_none(x, y, batch_size)
        if data is not None:
            x, y, batch_size = data, None, None
        return super().evaluate(x, y, batch_size=batch_size, **kwargs)

    def predict(self, x, batch_size=None, **kwargs):
        """Keras `predict` (the head's raw outputs, e.g. logits), also on raw text:
        `predict(["a text"])`, `predict((texts, pairs))`, a tf.data of strings."""
        data = self._text_or_none(x, None, batch_size)
        if data is not None:
            x, batch_size = data, None
        return super().predict(x, batch_size=batch_size, **kwargs)

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
            sum_gradients_before_clipping(self.optimizer)

    # ------------------------------------------------------------------ config
    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "freeze_layers": self.freeze_layers,
                "preprocessor": {"max_length": self.max_length,
                                 "lower_case": self.__dict__.get("_lower_case"),
                                 "trained": self.trained,
                                 "window_stride": self.window_stride}}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)

    # ------------------------------------------------------------------ directories
    def _save_extra(self, directory: str) -> dict:
        """Head-specific files; returns extra task.json entries."""
        return {}

    def load_task_extras(self, directory: str, task: dict) -> None:
        """Head-specific files of a task directory (called by `kbert.load`)."""

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write model.keras (weights + vocabulary, no optimizer state), vocab.txt, task.json
        (+ labels.json)."""
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        tokenizer = self._require_tokenizer()
        clone = type(self).from_config(self.get_config())  # an uncompiled twin: no optimizer
        clone.set_weights(self.get_weights())
        clone.set_tokenizer(tokenizer)
        clone.save(os.path.join(directory, MODEL_FILE))
        tokenizer.vocab.save(directory)
        task = {"task": type(self).__name__, "max_length": self.max_length,
                "lower_case": bool(tokenizer.lower_case), "trained": self.trained}
        task.update(self._save_extra(directory))

        task["kbert_version"] = __version__
        with open(os.path.join(directory, TASK_FILE), "w", encoding="utf-8") as f:
            json.dump(task, f, indent=2, ensure_ascii=False)
            f.write("\n")

    @classmethod
    def from_pretrained(cls, source, *, tokenizer=None, max_length: int | None = None,
                        hidden_dropout: float | None = None,
                        attention_dropout: float | None = None, **head_kwargs):
        """A new head on a pre-trained encoder, or a fine-tuned head saved by `save_pretrained`.

        Args:
            source: anything `kbert.load` reads (a fine-tuned task directory, a pre-training
                run, a kbert / transformers / Google BERT checkpoint, a `.keras` file), a
                BertEncoder, or (encoder, tokenizer). A fine-tuned head takes no head_kwargs.
            tokenizer: overrides the tokenizer found with the weights (sizes are checked).
            max_length: sequence length of the raw-text methods (default: the saved model's,
                else 128).
            hidden_dropout, attention_dropout: encoder dropout rates for fine-tuning.
            **head_kwargs: the head's constructor arguments (num_classes, freeze_layers, ...);
                the ones left out may take the source's own settings (`head_defaults`).
        """
        if isinstance(source, (str, os.PathLike)):
            source = load(source)
        if isinstance(source, Loaded):
            if source.is_task:
                model = source.model
                if head_kwargs or hidden_dropout is not None or attention_dropout is not None:
                    raise ValueError(f"{source.path} is a fine-tuned model: it takes no head "
                                     f"arguments (got {sorted(head_kwargs)})")
                if not isinstance(model, cls):
                    raise ValueError(f"{source.path} holds a fine-tuned "
                                     f"{type(model).__name__}, not a {cls.__name__}")
                if tokenizer is not None or max_length is not None:
                    model.set_tokenizer(tokenizer or model.tokenizer, max_length)
                return model
        head_kwargs, origin = cls.head_defaults(source, head_kwargs)
        encoder, found = load_encoder(source, hidden_dropout=hidden_dropout,
                                      attention_dropout=attention_dropout)
        model = cls(encoder, **head_kwargs)
        model.__dict__["_defaults_origin"] = origin
        tokenizer = tokenizer or found
        if tokenizer is not None:
            if max_length is None:  # 128, or fewer when the model has fewer positions
                max_length = min(128, model.encoder.bert_config.max_position_embeddings)
            model.set_tokenizer(tokenizer, max_length)
        return model


    @classmethod
    def head_defaults(cls, source, head_kwargs: dict) -> tuple[dict, str | None]:
        """-> (head_kwargs with defaults the source sets, a line saying where they came from or
        None). `source` is what `from_pretrained` got (a `Loaded` for a path). The base sets
        nothing; BertClassifier takes a sentence-transformers folder's pooling."""
        return head_kwargs, None

    @property
    def defaults_origin(self) -> str | None:
        """What `head_defaults` said when `from_pretrained` built this head (None otherwise)."""
        return self.__dict__.get("_defaults_origin")


def head_dropout_rate(encoder, dropout: float | None) -> float:
    """The head's dropout: as given, else the encoder's hidden dropout (BERT uses the same)."""
    rate = encoder.bert_config.hidden_dropout if dropout is None else float(dropout)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    return rate


def head_layers(encoder, dropout: float | None, units: int, dropout_name: str, dense_name: str,
                sequence: bool = False, width: int | None = None) -> tuple:
    """The block every task head ends with: (Dropout, built float32 Dense of `units` outputs,
    TruncatedNormal(initializer_range) kernel) on the encoder's [CLS] / pooled vector, or on
    every token vector when `sequence`; `width`: the input width when it is not the hidden size
    (concatenated poolings). The layer names are the heads' weight names: saved
    models load by them (classifier_dropout / logits, span_dropout / span_logits, ...)."""
    config = encoder.bert_config
    drop = keras.layers.Dropout(head_dropout_rate(encoder, dropout), name=dropout_name)
    dense = keras.layers.Dense(
        units, dtype="float32", name=dense_name,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=config.initializer_range))
    width = config.hidden_size if width is None else width
    dense.build((None, None, width) if sequence else (None, width))
    return drop, dense

