"""kbert's pre-training step (MLM + NSP, AdamW) on the Keras JAX backend: the GPU benchmark.

    python bench/gpu_bench.py VARIANT SEQ BATCH [STEPS]

prints one JSON line per run in the format of the GPU anchor script gpu_anchor.py (not in this
repository: the project's reference material, see bench/README.md)
(system, seq, batch, step_ms, tokens_per_s, model_tflops) plus the attention path and the
final loss, so the two scripts' lines go in one table. Run both in ONE call on the lent GPU
(bench/README.md shows the command).

VARIANT:
    kbert        BERT defaults (attention dropout 0.1), which needs the explicit softmax path
                 in training (keras.ops.dot_product_attention has no dropout).
    kbert_fused  attention_dropout=0: keras.ops.dot_product_attention in training too
                 (cuDNN flash attention on an Ampere+ GPU in bf16).

Mixed bfloat16, the whole train step XLA-compiled (Keras' default on JAX), random weights
and data (ceil(0.15 * SEQ) masked positions per row, no padding), the reference optimizer
(`kbert.training.optimizer.create_optimizer`: AdamW, clipping at 1.0).

Environment:
    BENCH_CFG=L,H,A,I,V     model size (default BERT-base 12,768,12,3072,30522)
    BENCH_DEV=cpu           run on the CPU (JAX_PLATFORMS=cpu), for a smoke test
    BENCH_PRECISION=float32 instead of mixed_bfloat16
    BENCH_BLOCK_TF=1        make every `import tensorflow...` fail (the GPU machine has none)

The model path (kbert.config, kbert.layers, kbert.models, kbert.training.optimizer) must
import no TensorFlow; the run fails if it does, and the JSON line lists `tf_loaded`.
"""

from __future__ import annotations

import importlib.abc
import json
import math
import os
import sys
import time

import numpy as np

MASK_FRACTION = 0.15
VARIANTS = ("kbert", "kbert_fused")


class _BlockTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith(("tensorflow.", "tensorflow_")):
            raise ImportError(f"tensorflow is blocked in this process (import {name!r})")
        return None


def flops_per_token(sizes, seq, head_fraction):
    """Model matmul FLOPs per token, forward + backward = 3x forward (the anchor's count):
    per layer the weights (4H^2 + 2HI multiply-adds) and QK^T, AV; the MLM transform and
    decoder on `head_fraction` of the positions."""
    layers, hidden, _, inter, vocab = sizes
    encoder = layers * (2 * (4 * hidden * hidden + 2 * hidden * inter) + 4 * seq * hidden)
    head = head_fraction * (2 * hidden * hidden + 2 * hidden * vocab)
    return 3 * (encoder + head)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (3, 4) or argv[0] not in VARIANTS:
        print(__doc__, file=sys.stderr)
        return 2
    variant, seq, batch = argv[0], int(argv[1]), int(argv[2])
    steps = int(argv[3]) if len(argv) > 3 else 20
    sizes = tuple(int(x) for x in os.environ.get("BENCH_CFG", "12,768,12,3072,30522").split(","))
    if len(sizes) != 5:
        raise SystemExit("BENCH_CFG must be L,H,A,I,V")
    if os.environ.get("BENCH_BLOCK_TF") == "1":
        sys.meta_path.insert(0, _BlockTensorFlow())
    if os.environ.get("BENCH_DEV") == "cpu":
        os.environ["JAX_PLATFORMS"] = "cpu"
    os.environ.setdefault("KERAS_BACKEND", "jax")
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    import keras

    from kbert.config import BertConfig
    from kbert.models.pretrainer import BertPretrainer
    from kbert.training.optimizer import create_optimizer

    precision = os.environ.get("BENCH_PRECISION", "mixed_bfloat16")
    keras.config.set_dtype_policy(precision)
    keras.utils.set_random_seed(0)
    layers, hidden, heads, inter, vocab = sizes
    config = BertConfig(vocab_size=vocab, hidden_size=hidden, num_layers=layers,
                        num_heads=heads, intermediate_size=inter,
                        max_position_embeddings=max(512, seq),
                        attention_dropout=0.0 if variant == "kbert_fused" else 0.1)
    model = BertPretrainer.from_bert_config(config)
    model.compile(optimizer=create_optimizer(1e-4, total_steps=10_000, warmup=100),
                  jit_compile=True)

    rng = np.random.default_rng(0)
    preds = max(1, math.ceil(MASK_FRACTION * seq))
    positions = np.sort(np.argsort(rng.random((batch, seq - 1)), axis=1)[:, :preds] + 1, axis=1)
    data = {
        "token_ids": rng.integers(5, vocab, (batch, seq)).astype("int32"),
        "segment_ids": (np.arange(seq)[None] >= seq // 2).repeat(batch, 0).astype("int32"),
        "padding_mask": np.ones((batch, seq), "int32"),
        "masked_positions": positions.astype("int32"),
    }
    labels = {
        "masked_ids": rng.integers(5, vocab, (batch, preds)).astype("int32"),
        "masked_weights": np.ones((batch, preds), "float32"),
        "next_sentence_labels": rng.integers(0, 2, (batch,)).astype("int32"),
    }
    x = {k: keras.ops.convert_to_tensor(v) for k, v in data.items()}
    y = {k: keras.ops.convert_to_tensor(v) for k, v in labels.items()}

    compile_start = time.perf_counter()
    for _ in range(3):
        loss = model.train_on_batch(x, y)
    warm_s = time.perf_counter() - compile_start
    start = time.perf_counter()
    for _ in range(steps):
        loss = model.train_on_batch(x, y)
    loss = float(np.asarray(loss if np.ndim(loss) == 0 else np.ravel(loss)[0]))
    step_s = (time.perf_counter() - start) / steps

    attention = model.encoder.transformer_layers[0].self_attention
    fused = getattr(attention, "_fused", True) and config.attention_dropout == 0
    tokens = batch * seq / step_s
    tflops = tokens * flops_per_token(sizes, seq, preds / seq) / 1e12
    tf_loaded = sorted({m.split(".")[0] for m in sys.modules if m.startswith("tensorflow")})
    import jax

    print(json.dumps(dict(
        system=f"{variant}_jax_{'bf16' if precision == 'mixed_bfloat16' else precision}",
        seq=seq, batch=batch, step_ms=round(step_s * 1e3, 2), tokens_per_s=round(tokens),
        model_tflops=round(tflops, 1), attention="fused" if fused else "explicit",
        loss=round(loss, 4), warmup_s=round(warm_s, 1), device=str(jax.devices()[0]),
        tf_loaded=tf_loaded)), flush=True)
    if not math.isfinite(loss):
        print(f"loss is {loss}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
