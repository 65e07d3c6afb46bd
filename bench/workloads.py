"""One benchmark measurement per process: `python bench/workloads.py '<json spec>'`.

bench/run.py starts one fresh process per (system, workload, repetition) so that no system
inherits another's thread pools, caches or allocator state, and reads the child's last line,
`RESULT {json}`. The spec is a JSON object:

    kind       "train" | "infer" | "peak" | "precision"
    system     train: kbert, kbert_xla, keras_hub, keras_hub_xla, hf, hf_gathered
               infer: kbert, kbert_xla, kbert_savedmodel, keras_hub, keras_hub_xla, hf,
                      kbert_tflite, kbert_tflite_int8 (LiteRT float32 / dynamic-range int8)
               a Keras system + "_bf16" (e.g. kbert_bf16) runs under mixed_bfloat16
               peak:  tf, torch (fp32 and bf16 matmul GFLOP/s)
               precision: kbert (mixed_bfloat16 against float32: outputs and loss curve)
    kind "floor" (system tf): only the matmuls of a train/infer step (`of`), with their
               real shapes: the time no implementation on this framework can beat
    model      "small" (L4 H256 A4 I1024) | "base" (L12 H768 A12 I3072) | "tiny" | "L,H,A,I[,V]"
    seq, batch sequence length and batch size
    steps      timed steps (after `warmup` untimed ones)
    precision  "float32" (default) or "mixed_bfloat16" (Keras systems only)

Every system gets the same random data: full-length rows (no padding), ceil(0.15 * seq)
masked positions per row, random NSP labels. Weights are random, fp32. The optimizer is the
reference BERT one everywhere: AdamW (decay 0.01, not on LayerNorm/bias), epsilon 1e-6,
gradient clipping at global norm 1.0.

Example (a few seconds):
    python bench/workloads.py '{"kind": "train", "system": "kbert", "model": "tiny",
                                "seq": 32, "batch": 4, "steps": 2}'
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
import time

MODELS = {  # name -> (layers, hidden, heads, intermediate)
    "tiny": (2, 128, 2, 512),
    "small": (4, 256, 4, 1024),
    "base": (12, 768, 12, 3072),
}
VOCAB = 30522
MASK_FRACTION = 0.15
TRAIN_SYSTEMS = ("kbert", "kbert_xla", "keras_hub", "keras_hub_xla", "hf", "hf_gathered")
INFER_SYSTEMS = ("kbert", "kbert_xla", "kbert_savedmodel", "keras_hub", "keras_hub_xla", "hf")
# kbert's encoder converted with kbert.export.export_tflite (ids form) and run by LiteRT:
# float32 and dynamic-range int8 (int8 weights, int8 GEMMs with activations quantized per
# batch; this CPU has AVX512_VNNI). Not in the main tables: conversion takes a minute.
TFLITE_SYSTEMS = {"kbert_tflite": "float32", "kbert_tflite_int8": "dynamic_int8"}
PEAK_SYSTEMS = ("tf", "torch")
BF16 = "_bf16"


def model_sizes(model: str) -> tuple[int, int, int, int, int]:
    """-> (L, H, A, I, V) for a model name or an "L,H,A,I[,V]" string."""
    if model in MODELS:
        return (*MODELS[model], VOCAB)
    try:
        parts = [int(p) for p in model.split(",")]
    except ValueError:
        parts = []
    if len(parts) not in (4, 5):
        raise ValueError(f"model must be one of {sorted(MODELS)} or 'L,H,A,I[,V]', got {model!r}")
    return (*parts, VOCAB) if len(parts) == 4 else tuple(parts)


def num_predictions(seq: int) -> int:
    return max(1, math.ceil(MASK_FRACTION * seq))


def flops_per_step(spec: dict) -> float:
    """Model matmul FLOPs of one step (the work any implementation must do).

    train: forward + backward = 3x forward, the MLM head on the masked positions only (what a
    gathered head does; an all-position head does S/P times more head work, not counted as
    useful), and the last block at every position: kbert computes that block at the masked rows
    and [CLS] only, but the count stays the conventional one, so that model GFLOP/s compare as
    throughput across systems. infer: forward of the encoder and pooler.
    """
    layers, hidden, _, inter, vocab = model_sizes(spec["model"])
    seq, batch = spec["seq"], spec["batch"]
    per_token = layers * (2 * (4 * hidden * hidden + 2 * hidden * inter) + 4 * seq * hidden)
    encoder = batch * seq * per_token
    if spec["kind"] == "infer":
        return encoder + batch * 2 * hidden * hidden
    head = batch * num_predictions(seq) * (2 * hidden * hidden + 2 * hidden * vocab)
    return 3 * (encoder + head + batch * 2 * hidden * hidden)


def random_batch(spec: dict, seed: int = 0) -> dict:
    import numpy as np

    rng = np.random.default_rng(seed)
    *_, vocab = model_sizes(spec["model"])
    seq, batch = spec["seq"], spec["batch"]
    preds = num_predictions(seq)
    positions = np.sort(np.stack([rng.choice(np.arange(1, seq), preds, replace=False)
                                  for _ in range(batch)]), axis=1).astype("int32")
    return {
        "token_ids": rng.integers(5, vocab, (batch, seq)).astype("int32"),
        "segment_ids": (np.arange(seq)[None, :] >= seq // 2).repeat(batch, 0).astype("int32"),
        "padding_mask": np.ones((batch, seq), "int32"),
        "masked_positions": positions,
        "masked_ids": rng.integers(5, vocab, (batch, preds)).astype("int32"),
        "masked_weights": np.ones((batch, preds), "float32"),
        "next_sentence_labels": rng.integers(0, 2, (batch,)).astype("int32"),
    }


def _timed(step, steps: int, warmup: int, sync=lambda out: out) -> dict:
    """Run `step` warmup + steps times; per-step wall and CPU seconds of the timed ones."""
    started = time.perf_counter()
    for _ in range(warmup):
        sync(step())
    first = time.perf_counter() - started
    wall, cpu = [], []
    for _ in range(steps):
        t, c = time.perf_counter(), time.process_time()
        sync(step())
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {"wall_s": wall, "cpu_s": cpu, "warmup_s": first}


# ------------------------------------------------------------------------------ Keras (TF)
def _keras_setup(spec):
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf

    threads = int(os.environ.get("BENCH_THREADS", "0"))
    if threads:  # a fixed thread count (1: CPU time ~ work, for A/B studies on a busy machine)
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)

    precision = spec.get("precision", "float32")
    keras.config.set_dtype_policy(precision)
    keras.utils.set_random_seed(0)
    return keras


def _optimizer(keras):
    optimizer = keras.optimizers.AdamW(1e-4, weight_decay=0.01, epsilon=1e-6,
                                       global_clipnorm=1.0)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def _kbert_pretrainer(spec, keras):
    from kbert.config import BertConfig
    from kbert.models.pretrainer import BertPretrainer
    from kbert.training.optimizer import create_optimizer

    layers, hidden, heads, inter, vocab = model_sizes(spec["model"])
    config = BertConfig(vocab_size=vocab, hidden_size=hidden, num_layers=layers,
                        num_heads=heads, intermediate_size=inter,
                        max_position_embeddings=max(512, spec["seq"]),
                        **spec.get("config", {}))
    model = BertPretrainer.from_bert_config(config)
    model.compile(optimizer=create_optimizer(1e-4, total_steps=10_000, warmup=10),
                  jit_compile=spec["system"].endswith("_xla"))
    return model


def _keras_hub_pretrainer(spec, keras):
    """keras-hub's BertMaskedLM plus an NSP Dense on the pooled output, as one Keras model."""
    import keras_hub

    layers, hidden, heads, inter, vocab = model_sizes(spec["model"])
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=vocab, num_layers=layers, num_heads=heads, hidden_dim=hidden,
        intermediate_dim=inter, max_sequence_length=max(512, spec["seq"]))
    masked_lm = keras_hub.models.BertMaskedLM(backbone=backbone, preprocessor=None)
    inputs = dict(masked_lm.input)
    outputs = backbone({k: inputs[k] for k in ("token_ids", "segment_ids", "padding_mask")})
    mlm = masked_lm.masked_lm_head(outputs["sequence_output"], inputs["mask_positions"])
    nsp = keras.layers.Dense(2, name="nsp")(outputs["pooled_output"])
    model = keras.Model(inputs, {"mlm": mlm, "nsp": nsp})
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=_optimizer(keras), loss={"mlm": loss, "nsp": loss},
                  weighted_metrics={"mlm": [keras.metrics.SparseCategoricalAccuracy()],
                                    "nsp": [keras.metrics.SparseCategoricalAccuracy()]},
                  jit_compile=spec["system"].endswith("_xla"))
    return model


def keras_train(spec):
    keras = _keras_setup(spec)
    import tensorflow as tf

    batch = {k: tf.constant(v) for k, v in random_batch(spec).items()}
    if spec["system"].startswith("kbert"):
        model = _kbert_pretrainer(spec, keras)
        x = {k: batch[k] for k in ("token_ids", "segment_ids", "padding_mask",
                                   "masked_positions")}
        y = {k: batch[k] for k in ("masked_ids", "masked_weights", "next_sentence_labels")}
        step = lambda: model.train_on_batch(x, y)  # noqa: E731
    else:
        model = _keras_hub_pretrainer(spec, keras)
        x = {"token_ids": batch["token_ids"], "segment_ids": batch["segment_ids"],
             "padding_mask": tf.cast(batch["padding_mask"], tf.bool),
             "mask_positions": batch["masked_positions"]}
        y = {"mlm": batch["masked_ids"], "nsp": batch["next_sentence_labels"]}
        weights = {"mlm": batch["masked_weights"],
                   "nsp": tf.ones_like(batch["next_sentence_labels"], tf.float32)}
        step = lambda: model.train_on_batch(x, y, sample_weight=weights)  # noqa: E731
    result = _timed(step, spec["steps"], spec["warmup"])
    result["loss"] = float(json.loads(json.dumps(_first_loss(step()))))
    result["params"] = int(model.count_params())
    return result


def _first_loss(out):
    import numpy as np

    if isinstance(out, (list, tuple)):
        out = out[0]
    if isinstance(out, dict):
        out = out.get("loss", next(iter(out.values())))
    return float(np.asarray(out))


def _kbert_encoder(spec, keras):
    from kbert.models.encoder import BertEncoder

    layers, hidden, heads, inter, vocab = model_sizes(spec["model"])
    return BertEncoder(vocab_size=vocab, hidden_size=hidden, num_layers=layers, num_heads=heads,
                       intermediate_size=inter, max_position_embeddings=max(512, spec["seq"]),
                       **spec.get("config", {}))


def _placeholder_vocab(encoder, directory) -> str:
    """A vocab.txt of the encoder's size (special tokens + w0, w1, ...): exports need one."""
    vocab_file = os.path.join(directory, "vocab.txt")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    with open(vocab_file, "w", encoding="utf-8") as f:
        f.write("\n".join(specials + [f"w{i}" for i in range(
            encoder.bert_config.vocab_size - len(specials))]) + "\n")
    return vocab_file


def _export_kbert(encoder, directory):
    """A SavedModel of the encoder; its ids-in signature (callable with the 3 id tensors)."""
    import tensorflow as tf

    try:
        from kbert.export import export_saved_model
        from kbert.tokenization.tokenizer import BertTokenizer
        from kbert.tokenization.vocab import Vocabulary
    except ImportError:
        export_saved_model = None
    if export_saved_model is not None:
        vocab_file = _placeholder_vocab(encoder, directory)
        tokenizer = BertTokenizer(Vocabulary.load(vocab_file), max_length=128)
        path = export_saved_model(encoder, tokenizer, directory, name="bench", warmup=False,
                                  check_ops=False)
        return tf.saved_model.load(path).signatures["embed_ids"], "export_saved_model/embed_ids"
    ids = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[ids, ids, ids])
    def serve(token_ids, segment_ids, padding_mask):
        return encoder({"token_ids": token_ids, "segment_ids": segment_ids,
                        "padding_mask": padding_mask}, training=False)

    module = tf.Module()
    module.variables_ = list(encoder.variables)
    module.serve = serve
    tf.saved_model.save(module, directory, signatures={"serving_default": serve})
    return tf.saved_model.load(directory).signatures["serving_default"], "tf.saved_model"


def keras_infer(spec):
    keras = _keras_setup(spec)
    import tempfile

    import tensorflow as tf

    data = random_batch(spec)
    x = {k: tf.constant(data[k]) for k in ("token_ids", "segment_ids", "padding_mask")}
    system = spec["system"]
    note = ""
    if system in TFLITE_SYSTEMS:
        return _tflite_infer(spec, keras, data, TFLITE_SYSTEMS[system])
    if system == "kbert_savedmodel":
        encoder = _kbert_encoder(spec, keras)
        tmp = tempfile.TemporaryDirectory()
        serve, note = _export_kbert(encoder, tmp.name)
        step = lambda: serve(**x)["sequence_output"]  # noqa: E731
    else:
        if system.startswith("kbert"):
            model = _kbert_encoder(spec, keras)
        else:
            import keras_hub

            layers, hidden, heads, inter, vocab = model_sizes(spec["model"])
            model = keras_hub.models.BertBackbone(
                vocabulary_size=vocab, num_layers=layers, num_heads=heads, hidden_dim=hidden,
                intermediate_dim=inter, max_sequence_length=max(512, spec["seq"]))
            x["padding_mask"] = tf.cast(x["padding_mask"], tf.bool)

        @tf.function(jit_compile=system.endswith("_xla"))
        def forward(inputs):
            return model(inputs, training=False)["sequence_output"]

        step = lambda: forward(x)  # noqa: E731
    return _timed(step, spec["steps"], spec["warmup"], sync=lambda out: out.numpy()) | {
        "note": note}


def _tflite_infer(spec, keras, data, quantization: str) -> dict:
    """LiteRT on an ids-form `.tflite` of the encoder; the note gives its token cosine against
    the Keras encoder on the timed batch (the effect of the precision on the outputs)."""
    import tempfile

    import numpy as np
    from bench_export import _cosines  # bench/: the token cosine of bench_export's table

    from kbert.export.litert import TFLiteEncoder
    from kbert.export.tflite import export_tflite
    from kbert.tokenization.tokenizer import BertTokenizer
    from kbert.tokenization.vocab import Vocabulary

    encoder = _kbert_encoder(spec, keras)
    names = ("token_ids", "segment_ids", "padding_mask")
    x = {k: np.asarray(data[k], "int32") for k in names}
    reference = np.asarray(encoder(x, training=False)["sequence_output"])
    tmp = tempfile.TemporaryDirectory()
    tokenizer = BertTokenizer(Vocabulary.load(_placeholder_vocab(encoder, tmp.name)))
    path = export_tflite(encoder, os.path.join(tmp.name, "bench.tflite"), tokenizer=tokenizer,
                         quantization=quantization, validate=False)
    threads = int(os.environ.get("BENCH_THREADS", "0")) or os.cpu_count() or 1
    runner = TFLiteEncoder(path, num_threads=threads)
    step = lambda: runner.run(**x)["sequence_output"]  # noqa: E731
    cosine = _cosines(step(), reference, x["padding_mask"])
    note = (f"LiteRT {quantization}, {os.path.getsize(path) / 2**20:.0f} MB, token cosine vs "
            f"Keras min {cosine.min():.4f}")
    return _timed(step, spec["steps"], spec["warmup"]) | {"note": note,
                                                         "token_cosine_min": float(cosine.min())}


# ------------------------------------------------------------------------------ transformers
def _hf_setup(spec):
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "0")) or os.cpu_count() or 1)
    from transformers import BertConfig

    layers, hidden, heads, inter, vocab = model_sizes(spec["model"])
    config = BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=inter,
                        max_position_embeddings=max(512, spec["seq"]))
    batch = {k: torch.from_numpy(v) for k, v in random_batch(spec).items()}
    return torch, config, batch


def hf_train(spec):
    torch, config, b = _hf_setup(spec)
    from transformers import BertForPreTraining

    model = BertForPreTraining(config)
    model.train()
    decay = [p for n, p in model.named_parameters() if not any(
        k in n for k in ("bias", "LayerNorm"))]
    no_decay = [p for n, p in model.named_parameters() if any(
        k in n for k in ("bias", "LayerNorm"))]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=1e-4, eps=1e-6)
    ids = b["token_ids"].long()
    inputs = dict(input_ids=ids, token_type_ids=b["segment_ids"].long(),
                  attention_mask=b["padding_mask"].long())
    positions = b["masked_positions"].long()
    rows = torch.arange(ids.shape[0])[:, None]
    nsp = b["next_sentence_labels"].long()

    if spec["system"] == "hf":
        labels = torch.full_like(ids, -100)
        labels[rows, positions] = b["masked_ids"].long()

        def loss_fn():
            return model(**inputs, labels=labels, next_sentence_label=nsp).loss
    else:
        # The MLM head on the masked positions only (FACTS: transformers evaluates every one).
        masked_ids = b["masked_ids"].long().reshape(-1)
        weights = b["masked_weights"].reshape(-1)
        ce = torch.nn.functional.cross_entropy

        def loss_fn():
            sequence, pooled = model.bert(**inputs)[:2]
            logits = model.cls.predictions(sequence[rows, positions])
            mlm = (ce(logits.reshape(-1, config.vocab_size), masked_ids, reduction="none")
                   * weights).sum() / weights.sum()
            return mlm + ce(model.cls.seq_relationship(pooled), nsp)

    def step():
        loss = loss_fn()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    result = _timed(step, spec["steps"], spec["warmup"], sync=lambda out: out.item())
    result["loss"] = float(step().item())
    result["params"] = sum(p.numel() for p in model.parameters())
    return result


def hf_infer(spec):
    torch, config, b = _hf_setup(spec)
    from transformers import BertModel

    model = BertModel(config).eval()
    inputs = dict(input_ids=b["token_ids"].long(), token_type_ids=b["segment_ids"].long(),
                  attention_mask=b["padding_mask"].long())

    def step():
        with torch.inference_mode():
            return model(**inputs).last_hidden_state

    return _timed(step, spec["steps"], spec["warmup"], sync=lambda out: out.numpy())


# ------------------------------------------------------------------------------ matmul peak
def matmul_shapes(spec: dict) -> list[tuple[int, int, int, int]]:
    """(batch, m, k, n) of every matmul of one forward pass: `batch` independent [m, k] x [k, n]
    products. Their FLOPs sum to `flops_per_step` of an inference step."""
    layers, hidden, heads, inter, vocab = model_sizes(spec["model"])
    seq, batch = spec["seq"], spec["batch"]
    tokens, size = batch * seq, hidden // heads
    layer = [(1, tokens, hidden, 3 * hidden), (batch * heads, seq, size, seq),
             (batch * heads, seq, seq, size), (1, tokens, hidden, hidden),
             (1, tokens, hidden, inter), (1, tokens, inter, hidden)]
    shapes = layer * layers + [(1, batch, hidden, hidden)]
    if spec.get("of", spec["kind"]) == "train":
        rows = batch * num_predictions(seq)
        shapes += [(1, rows, hidden, hidden), (1, rows, hidden, vocab)]
    return shapes


def matmul_floor(spec):
    """The matmuls of a step alone (train: each forward X.W plus dY.W^T and X^T.dY), in one
    tf.function: how fast the step could be if everything else were free."""
    keras = _keras_setup(spec)  # noqa: F841 (threads, precision)
    import tensorflow as tf

    dtype = tf.bfloat16 if spec.get("precision") == "mixed_bfloat16" else tf.float32
    train = spec.get("of", "train") == "train"
    products = []
    for b, m, k, n in matmul_shapes(dict(spec, kind=spec.get("of", "train"))):
        shape = (lambda *d: d) if b == 1 else (lambda *d, b=b: (b, *d))
        x = tf.cast(tf.random.normal(shape(m, k)), dtype)
        w = tf.cast(tf.random.normal(shape(k, n)), dtype)
        dy = tf.cast(tf.random.normal(shape(m, n)), dtype)
        products.append((x, w, False, False))
        if train:
            products += [(dy, w, False, True), (x, dy, True, False)]

    @tf.function
    def step():
        # one element of each product keeps it alive without adding real work
        return tf.add_n([tf.cast(tf.matmul(a, b, transpose_a=ta, transpose_b=tb)[..., 0, 0],
                                 tf.float32) if len(a.shape) == 2 else tf.cast(
                                     tf.matmul(a, b, transpose_a=ta, transpose_b=tb)[0, 0, 0],
                                     tf.float32) for a, b, ta, tb in products])

    return _timed(step, spec["steps"], spec["warmup"], sync=lambda t: t.numpy())


def peak(spec):
    """fp32 and bf16 [n, n] x [n, n] matmul GFLOP/s of the framework (the machine's ceiling)."""
    n = spec.get("n", 2048)
    reps = spec.get("steps", 10)
    flops = 2 * n ** 3
    out = {}
    if spec["system"] == "tf":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        for dtype in ("float32", "bfloat16"):
            a = tf.random.normal((n, n), dtype=tf.float32)
            a = tf.cast(a, dtype)
            f = tf.function(lambda a=a: tf.matmul(a, a))
            times = _timed(f, reps, 2, sync=lambda t: t.numpy())["wall_s"]
            out[dtype] = flops / sorted(times)[len(times) // 2] / 1e9
    else:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        for dtype in (torch.float32, torch.bfloat16):
            a = torch.randn(n, n).to(dtype)
            times = _timed(lambda a=a: a @ a, reps, 2)["wall_s"]
            out[str(dtype).split(".")[-1]] = flops / sorted(times)[len(times) // 2] / 1e9
    return {"gflops": out}


def precision_effect(spec):
    """mixed_bfloat16 against float32 from the same weights: encoder outputs, then the loss of
    `steps` pre-training steps on the same random batches (one batch per step)."""
    import numpy as np

    keras = _keras_setup(dict(spec, precision="float32"))
    import tensorflow as tf

    def batches():
        return [{k: tf.constant(v) for k, v in random_batch(spec, seed=i).items()}
                for i in range(spec["steps"])]

    def split(batch):
        x = {k: batch[k] for k in ("token_ids", "segment_ids", "padding_mask",
                                   "masked_positions")}
        return x, {k: batch[k] for k in ("masked_ids", "masked_weights",
                                         "next_sentence_labels")}

    models, outputs, losses = {}, {}, {}
    for policy in ("float32", "mixed_bfloat16"):
        keras.config.set_dtype_policy(policy)
        keras.utils.set_random_seed(0)  # the same dropout masks in both runs
        model = _kbert_pretrainer(dict(spec, system="kbert"), keras)
        if policy != "float32":
            model.set_weights(models["float32"])
        else:
            models["float32"] = model.get_weights()
        x, _ = split(batches()[0])
        encoded = model.encoder({k: x[k] for k in ("token_ids", "segment_ids",
                                                   "padding_mask")}, training=False)
        outputs[policy] = np.asarray(tf.cast(encoded["sequence_output"], tf.float32))
        losses[policy] = [_first_loss(model.train_on_batch(*split(b))) for b in batches()]
    a, b = outputs["float32"], outputs["mixed_bfloat16"]
    cosine = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    return {"max_abs_diff": float(np.abs(a - b).max()), "mean_abs": float(np.abs(a).mean()),
            "min_token_cosine": float(cosine.min()), "loss_float32": losses["float32"],
            "loss_bf16": losses["mixed_bfloat16"]}


RUNNERS = {
    ("train", "keras"): keras_train, ("infer", "keras"): keras_infer,
    ("train", "hf"): hf_train, ("infer", "hf"): hf_infer,
}


def run(spec: dict) -> dict:
    spec = {"warmup": 2, "steps": 5, **spec}
    kind, system = spec["kind"], spec["system"]
    if system.endswith(BF16) and not system.startswith("hf"):
        system = spec["system"] = system[:-len(BF16)]
        spec["precision"] = "mixed_bfloat16"
    systems = {"train": TRAIN_SYSTEMS, "infer": INFER_SYSTEMS + tuple(TFLITE_SYSTEMS),
               "peak": PEAK_SYSTEMS,
               "precision": ("kbert",), "floor": ("tf",)}
    if kind not in systems or system not in systems[kind]:
        raise ValueError(f"unknown workload {kind!r}/{system!r}; known: {systems}")
    if kind == "peak":
        result = peak(spec)
    elif kind == "precision":
        result = precision_effect(spec)
    elif kind == "floor":
        result = matmul_floor(spec)
        result["flops_per_step"] = flops_per_step(dict(spec, kind=spec.get("of", "train")))
    else:
        family = "hf" if system.startswith("hf") else "keras"
        result = RUNNERS[(kind, family)](spec)
        result["flops_per_step"] = flops_per_step(spec)
    result["self_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    result = run(json.loads(argv[0]))
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
