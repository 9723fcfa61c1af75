"""The multi-process path: `accelerate launch` with 2 CPU processes (gloo) trains, checkpoints,
and matches one process with the same global batch."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from instantrestore.utils.tensor_io import load_tensors
from instantrestore.train import read_metrics, train

from test_train import tiny_config

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("accelerate") is None, reason="accelerate is not installed")
def test_two_cpu_processes_train_like_one(tmp_path):
    # LAS off here: it averages over the supervised queries of the whole (per-process) batch, so it
    # alone depends on how a batch is split; every other term is a per-sample mean
    two = tiny_config(tmp_path, steps=2, save_every=2, batch_size=1, out=str(tmp_path / "two"),
                      **{"loss.landmark_attention": 0.0})
    path = tmp_path / "two.yaml"
    two.to_yaml(path)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    # --multi_gpu starts torchrun-style workers; on a machine without GPUs the trainer forms a
    # gloo group (plain `--cpu` runs a single process unless MPI is set up).
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "instantrestore", "train", "--config", str(path), "--no-progress"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "x2" in done.stderr  # the log line names the process count
    state = tmp_path / "two" / "checkpoints" / "step_0000002" / "training_state"
    assert {p.name for p in state.glob("rng_rank*")} == {"rng_rank0.safetensors", "rng_rank1.safetensors"}
    assert [r["samples"] for r in read_metrics(tmp_path / "two")] == [2, 4]

    # one process, batch 2: the same items, timesteps and noise (data and draws depend on the
    # global position only), gradients averaged the same way -> the same weights up to float order
    one = train(two.replace(batch_size=2, out=str(tmp_path / "one")), progress=False)
    a = load_tensors(one / "adapters.safetensors")
    b = load_tensors(tmp_path / "two" / "final" / "adapters.safetensors")
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    # two AdamW steps at lr 5e-4 move weights by up to ~1e-3; different data or draws would differ
    # by that much, reduction order alone by ~1e-5
    assert diff < 1e-4, diff
    for row_one, row_two in zip(read_metrics(tmp_path / "one"), read_metrics(tmp_path / "two")):
        for key in ("loss", "l1", "ms_ssim", "identity", "adversarial", "d_loss"):
            assert row_one[key] == pytest.approx(row_two[key], rel=1e-4, abs=1e-6), key
