"""Fill-mask inference: the masked-LM head of a BertPretrainer guesses [MASK]s (a `kbert pretrain`
run, or a whole transformers / Google checkpoint: `kbert.load` imports their heads).

Library code beside `embeddings.py` (the other inference API on a loaded model): `kbert
fill-mask` only parses and prints, and `kbert.training.pretrain` calls it for the example
predictions it saves, so neither the training loop nor anything else imports a command.

Example:
    >>> model, tokenizer = load_pretrainer("runs/pretrain")                    # doctest: +SKIP
    >>> fill_mask(model, tokenizer,  # doctest: +SKIP
    ...           ["It is a truth universally [MASK]."])[0][0][0]
    ('acknowledged', 0.61)
"""

from __future__ import annotations

import numpy as np

from kbert.loading import ModelSourceError, load


def load_pretrainer(source: str):
    """(BertPretrainer, BertTokenizer) from anything `kbert.load` reads that has a masked-LM
    head: a `kbert pretrain` run (or its pretrainer.keras), a transformers BertForPreTraining /
    BertForMaskedLM directory, a Google BERT checkpoint with its `cls/` variables."""
    loaded = load(source)
    if type(loaded.model).__name__ != "BertPretrainer":
        what = {"transformers": f"its weights have no {'cls.predictions.*'} keys",
                "google": "its checkpoint has no cls/predictions/* variables"}.get(
                    loaded.kind, f"it is a {loaded.kind.replace('_', ' ')}")
        raise ModelSourceError(
            f"{source}: the checkpoint has no masked-LM head ({what}); fill-mask needs one: a "
            f"`kbert pretrain` run, a transformers BertForPreTraining / BertForMaskedLM or a "
            f"Google BERT checkpoint")
    if loaded.tokenizer is None:
        raise ModelSourceError(f"no vocab.txt beside {source}")
    return loaded.model, loaded.tokenizer


def fill_mask(model, tokenizer, texts: list[str], top_k: int = 5):
    """For each text, for each [MASK] in it (left to right): the top_k (token, probability).

    Returns list (texts) of list (masks) of list (top_k) of (str, float).
    Raises ValueError for a text without [MASK] or longer than the model's positions.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    ids = tokenizer.encode(list(texts))
    limit = model.bert_config.max_position_embeddings
    longest = max(len(row) for row in ids) + 2
    if longest > limit:
        raise ValueError(f"a text has {longest - 2} pieces; the model takes at most {limit - 2}")
    packed = {k: np.asarray(v) for k, v in tokenizer(list(texts), max_length=longest).items()}
    where = [np.flatnonzero(row == tokenizer.mask_id) for row in packed["token_ids"]]
    for text, positions in zip(texts, where, strict=True):
        if positions.size == 0:
            raise ValueError(f"no [MASK] in {text!r}; write [MASK] where a word should be guessed")
    width = max(p.size for p in where)
    positions = np.zeros((len(texts), width), "int32")
    for i, p in enumerate(where):
        positions[i, :p.size] = p
    logits = model({**packed, "masked_positions": positions}, training=False)["mlm_logits"]
    logits = np.asarray(logits, dtype="float64")
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    k = min(top_k, probs.shape[-1])
    results = []
    for i, p in enumerate(where):
        per_mask = []
        for j in range(p.size):
            best = np.argsort(-probs[i, j])[:k]
            per_mask.append([(tokenizer.vocab.tokens[t], float(probs[i, j, t])) for t in best])
        results.append(per_mask)
    return results
