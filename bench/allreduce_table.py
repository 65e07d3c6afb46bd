"""The all-reduce scaling table of docs/distributed.md, on paper: per preset, parameters,
gradient bytes, and the time one ring all-reduce of the gradients takes on common interconnects.

    python bench/allreduce_table.py [vocab_size] [workers]     # defaults: 30522, 8

A measurement aid, not training code (the training side is kbert/training/distribute.py);
tests/test_distribute.py checks that docs/distributed.md shows the table this computes.
"""

from __future__ import annotations

import sys

# Nominal one-direction bandwidths, bytes/s (docs/distributed.md discusses them).
INTERCONNECTS = {
    "10 GbE": 1.25e9,
    "25 GbE": 3.125e9,
    "100 Gb/s (100 GbE / EDR InfiniBand)": 12.5e9,
    "PCIe 4.0 x16": 32e9,
    "NVLink 3 (A100)": 300e9,
}


def allreduce_bytes_per_step(parameters: int, workers: int, bytes_per_value: int = 4) -> float:
    """Bytes each worker sends (and receives) per step in a ring all-reduce of the gradients:
    2 (N - 1) / N x the gradient size (float32 gradients: Keras keeps variables, hence
    gradients, in float32 under mixed precision too)."""
    if workers <= 1:
        return 0.0
    return 2.0 * (workers - 1) / workers * parameters * bytes_per_value


def scaling_table(vocab_size: int = 30522, max_positions: int = 512, workers: int = 8) -> str:
    """The docs/distributed.md table: per preset, parameters, gradient bytes, and the time one
    ring all-reduce over `workers` takes on each interconnect (bandwidth-bound, no overlap)."""
    from kbert.config import PRESETS, BertConfig

    head = ["preset", "params", "gradient MB", f"ring MB/worker (N={workers})"]
    head += [f"{name} ms" for name in INTERCONNECTS]
    rows = []
    for name in PRESETS:
        cfg = BertConfig.preset(name, vocab_size=vocab_size,
                                max_position_embeddings=max_positions)
        params = cfg.num_parameters(pretraining_heads=True)
        moved = allreduce_bytes_per_step(params, workers)
        rows.append([name, f"{params / 1e6:.1f}M", f"{params * 4 / 1e6:.0f}",
                     f"{moved / 1e6:.0f}"]
                    + [f"{1e3 * moved / bw:.1f}" for bw in INTERCONNECTS.values()])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


if __name__ == "__main__":  # python bench/allreduce_table.py [vocab_size] [workers]
    print(scaling_table(int(sys.argv[1]) if len(sys.argv) > 1 else 30522,
                        workers=int(sys.argv[2]) if len(sys.argv) > 2 else 8))
