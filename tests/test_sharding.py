"""sharding.py: a folder job shared between `accelerate launch` processes gives what one process gives."""
from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from instantrestore.pipeline.sharding import Shard, current_shard, launched


def test_shards_interleave_and_cover_every_item_once():
    items = [f"p{i}" for i in range(7)]
    shards = [Shard(i, 3).take(items) for i in range(3)]
    assert shards == [["p0", "p3", "p6"], ["p1", "p4"], ["p2", "p5"]]
    assert sorted(sum(shards, [])) == sorted(items)
    assert Shard().take(items) == items and Shard().is_main and Shard().label() == ""
    assert Shard(1, 2).label() == " [process 2/2]" and not Shard(1, 2).is_main


def test_a_plain_run_is_one_shard(monkeypatch):
    for name in ("WORLD_SIZE", "LOCAL_RANK", "ACCELERATE_DYNAMO_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    assert not launched() and current_shard() == Shard()
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert not launched()  # a launch of one process is a plain run
    Shard().wait()  # nothing to wait for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _digests(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.slow
def test_two_cpu_processes_write_what_one_process_writes(realfaces_dir, tmp_path):
    """accelerate launch --multi_gpu --num_processes 2 -m instantrestore restore ... on CPUs: every output file
    (photos, reports, before/after) byte-identical to a one-process run; both processes share the
    album's caches."""
    album, photos = tmp_path / "album", tmp_path / "photos"
    (album / "obama").mkdir(parents=True)
    for name in ("o1.png", "o2.png", "o3.png"):
        (album / "obama" / name).symlink_to(realfaces_dir / "obama" / "aligned_references" / name)
    photos.mkdir()
    for name in ("o6.jpg", "o8.png"):
        (photos / name).symlink_to(realfaces_dir / "obama" / "raw_photos" / name)
    (photos / "stranger.png").symlink_to(realfaces_dir / "celebref" / "00075" / "references" / "0.png")
    Image.fromarray(np.full((90, 120, 3), 60, np.uint8)).save(photos / "wall.png")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "INSTANTRESTORE_DEBUG": "1"}
    job = ["restore", str(photos), "--album", str(album), "--backbone", "tiny", "-k", "2", "--before-after",
           "--allow-small"]  # the 128 px tiny model: real faces are larger than it restores

    one = subprocess.run([sys.executable, "-m", "instantrestore", *job, "--out", str(tmp_path / "one")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr
    # --multi_gpu starts torchrun-style workers, which form a gloo group where there is no GPU
    # (plain --cpu runs a single process unless MPI is set up)
    two = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                          "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                          "--main_process_port", str(_free_port()), "-m", "instantrestore", *job,
                          "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr
    assert "[process 1/2]" in two.stderr and "[process 2/2]" in two.stderr
    assert two.stderr.count("all references from the cache") == 2  # the first run warmed the album
    assert two.stdout.count("4 photo(s): 3 with faces restored, 1 with none; 3 face(s) found") == 1  # one summary, by the main process
    made = _digests(tmp_path / "one")
    assert len(made) == 12 and _digests(tmp_path / "two") == made
