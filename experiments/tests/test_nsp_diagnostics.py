"""experiments/nsp_novel_bound.py: the novel-cue bound and the per-kind NSP breakdown of a run.

The breakdown is checked with NSP heads whose answer is known: one that always says IsNext must
score 1 on IsNext pairs and 0 on both NotNext kinds, and the reverse.
"""

import pathlib
import string

import keras
import numpy as np
import pytest
from experiment_loader import load_experiment

from kbert.config import BertConfig
from kbert.models.pretrainer import BertPretrainer
from kbert.tokenization.vocab import Vocabulary


@pytest.fixture(scope="module")
def script():
    return load_experiment("nsp_novel_bound")


def _run_dir(path: pathlib.Path, always: int) -> str:
    """A run directory (vocab.txt + pretrainer.keras) whose NSP head always answers `always`."""
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = Vocabulary(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars,
                        *[f"##{c}" for c in chars], "the", "and", "she", "he", "mr", "mrs"])
    vocab.save(str(path))
    config = BertConfig.preset("tiny", vocab_size=vocab.size, num_layers=1, hidden_size=16,
                               num_heads=2, intermediate_size=32)
    model = BertPretrainer.from_bert_config(config)
    ids = np.ones((1, 8), "int32")
    model({"token_ids": ids, "segment_ids": ids * 0, "padding_mask": ids,
           "masked_positions": np.zeros((1, 1), "int32")})
    head = model.nsp_head
    head.kernel.assign(np.zeros(head.kernel.shape, "float32"))
    head.bias.assign(np.array([5.0, 0.0] if always == 0 else [0.0, 5.0], "float32"))
    keras.saving.save_model(model, str(path / "pretrainer.keras"))
    return str(path)


@pytest.mark.parametrize("always", [0, 1])
def test_breakdown_sorts_pairs_by_kind(script, tmp_path, always):
    kinds = script.run_breakdown(_run_dir(tmp_path, always), seq_length=32, repeats=1)
    assert set(kinds) == {"IsNext", "NotNext, same novel", "NotNext, other novel"}
    sizes = {k: len(v) for k, v in kinds.items()}
    total = sum(sizes.values())
    assert total > 500
    assert abs(sizes["IsNext"] / total - 0.5) < 0.06  # the pipeline's 50/50 labels
    assert sizes["NotNext, other novel"] > sizes["NotNext, same novel"] > 0
    for kind, hits in kinds.items():
        assert np.mean(hits) == (1.0 if (kind == "IsNext") == (always == 0) else 0.0)


def test_command_line_prints_the_breakdown(script, tmp_path, capsys):
    assert script.main(["--run", _run_dir(tmp_path, 0), "--seq-length", "32",
                        "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "IsNext                 1.000" in out and "NotNext, other novel   0.000" in out


def test_novel_bound_on_short_segments(script, capsys):
    assert script.main(["--pairs", "200", "--lengths", "25"]) == 0
    row = capsys.readouterr().out.splitlines()[-1].split()
    length, cross, novel_id, argmax_rule, best = row
    assert int(length) == 25
    assert 0.7 < float(cross) <= 1.0  # most NotNext partners come from another novel
    assert 0.45 < float(novel_id) < 0.9 and 0.55 < float(argmax_rule) < float(best) + 1e-9


def test_trial_loss_weights_scale_each_term(tmp_path):
    """experiments/nsp_trials.py: weights (1, 1) give BertPretrainer's own loss; (a, b) give
    a * MLM + b * NSP, so --mlm-weight 0 trains NSP alone."""
    trials = load_experiment("nsp_trials")
    config = BertConfig.preset("tiny", vocab_size=40, num_layers=1, hidden_size=16, num_heads=2,
                               intermediate_size=32)
    rng = np.random.default_rng(0)
    x = {"token_ids": rng.integers(5, 40, (4, 12)).astype("int32"),
         "segment_ids": np.repeat([[0] * 6 + [1] * 6], 4, 0).astype("int32"),
         "padding_mask": np.ones((4, 12), "int32"),
         "masked_positions": np.array([[1, 3, 0]] * 4, "int32")}
    y = {"masked_ids": rng.integers(5, 40, (4, 3)).astype("int32"),
         "masked_weights": np.array([[1.0, 1.0, 0.0]] * 4, "float32"),
         "next_sentence_labels": np.array([0, 1, 1, 0], "int32")}

    def losses(mlm_weight, nsp_weight):
        keras.utils.set_random_seed(3)
        model = trials.weighted_pretrainer(mlm_weight, nsp_weight).from_bert_config(config)
        out = model(x)
        total = float(model.compute_loss(x, y, out))
        mlm = float(model.mlm_loss_metric.result())
        nsp = float(model.nsp_loss_metric.result())
        return total, mlm, nsp

    total, mlm, nsp = losses(1.0, 1.0)
    assert total == pytest.approx(mlm + nsp, rel=1e-5)
    assert losses(0.0, 1.0)[0] == pytest.approx(nsp, rel=1e-5)
    assert losses(0.5, 4.0)[0] == pytest.approx(0.5 * mlm + 4.0 * nsp, rel=1e-5)


def test_gpu_trial_numpy_masking_follows_kbert_rule():
    """experiments/nsp_gpu_trial.py masks on a machine without tf.data: 15% of the non-special
    tokens (at most max_predictions), 80/10/10, replacements drawn from the distribution given,
    never a special token selected."""
    trial = load_experiment("nsp_gpu_trial")
    rng = np.random.default_rng(0)
    pad, cls, sep, mask = 0, 2, 3, 4
    batch, seq = 4000, 40
    ids = rng.integers(10, 60, (batch, seq))
    ids[:, 0], ids[:, 20], ids[:, 35], ids[:, 36:] = cls, sep, sep, pad  # 33 real tokens
    replacement = np.zeros(60)
    replacement[10:20] = 1 / 10  # replacements only from ids 10..19
    masked, positions, targets, weights = trial.mask_batch(ids, rng, replacement,
                                                           (pad, cls, sep, mask), 8)
    assert np.all(weights.sum(1) == 5)  # round(33 * 0.15) = 5 <= 8
    rows = np.arange(batch)[:, None]
    chosen = weights > 0
    picked = positions[chosen]
    assert not np.isin(picked, [0, 20, 35, 36, 37, 38, 39]).any()
    np.testing.assert_array_equal(targets[chosen], ids[np.broadcast_to(rows, positions.shape)
                                                      [chosen], picked])
    new = masked[np.broadcast_to(rows, positions.shape)[chosen], picked]
    old = targets[chosen]
    as_mask = np.mean(new == mask)
    kept = np.mean(new == old)
    assert abs(as_mask - 0.8) < 0.01 and 0.095 < kept < 0.125  # 10% + random hits of itself
    randoms = new[(new != mask) & (new != old)]
    assert np.all((randoms >= 10) & (randoms < 20))
    unmasked = np.ones_like(ids, bool)
    unmasked[np.broadcast_to(rows, positions.shape)[chosen], picked] = False
    np.testing.assert_array_equal(masked[unmasked], ids[unmasked])
