"""experiments/finetune_step_profile.py: the argument checks (the profiles need all-MiniLM-L6-v2
and, for `trainer`, torch)."""

import pytest
from experiment_loader import load_experiment

profile = load_experiment("finetune_step_profile")


def test_without_a_known_mode_it_prints_its_usage():
    with pytest.raises(SystemExit) as raised:
        profile.main([])
    assert "python experiments/finetune_step_profile.py step" in str(raised.value)
    with pytest.raises(SystemExit):
        profile.main(["steps"])


def test_an_unknown_variant_is_named_before_any_model_is_loaded():
    with pytest.raises(SystemExit, match=r"unknown variant\(s\) \['fp16'\]"):
        profile.step({"bf16", "fp16"})
