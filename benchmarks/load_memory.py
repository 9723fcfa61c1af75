"""Model load time against the time to read its files, and the peak memory of a restore against
the weights' size, on the SD-Turbo architecture (random weights saved as a checkpoint folder).

Each measurement runs in a fresh process (so one's memory never counts in another's), the
variants interleaved, ``--repeats`` times; the page cache is warm for all of them after the
first read, which is what "the time to read its files" compares against.

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/load_memory.py --folder /tmp/sd-turbo-ckpt
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch


def save_checkpoint(folder: Path, backbone: str) -> None:
    from instantrestore import InstantRestore

    model = InstantRestore.from_config(backbone, seed=0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.02)
    model.save_pretrained(folder, include_base=True)


def child(args: argparse.Namespace) -> dict:
    from instantrestore import InstantRestore
    from instantrestore.generator import model_io

    folder = Path(args.folder)
    start = time.perf_counter()
    if args.child == "read":
        for path in sorted(folder.iterdir()):
            with open(path, "rb") as handle:
                while handle.read(1 << 24):
                    pass
        return {"s": time.perf_counter() - start}
    if args.child == "load":
        model = InstantRestore.from_pretrained(folder)
        seconds = time.perf_counter() - start
        model.weights_fingerprint()  # recorded in the files: no hashing
        with_fingerprint = time.perf_counter() - start
        # the weights are views of the mapped files, read from the page cache on first use: read
        # every one once, as a first restore would, to count what the load itself leaves for later
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point():
                tensor.sum()
        return {"s": seconds, "s_with_fingerprint": with_fingerprint, "s_with_first_read": time.perf_counter() - start}
    if args.child == "slow-load":  # what loading did before: a random build, then copy_
        model = model_io.build_with_base_of(InstantRestore, folder)
        model.load_adapter_state(model_io.load_tensors(folder / "adapters.safetensors"))
        return {"s": time.perf_counter() - start}
    # memory: peak resident memory of a cached 4-reference restore
    sys.path.insert(0, str(Path(__file__).parent))
    from latency import RssSampler

    stages = {"imported": _rss()}
    model = InstantRestore.from_pretrained(folder)
    stages["loaded"] = _rss()
    applied = model.optimize_for_inference(args.precision)
    stages["optimized"] = _rss()
    gen = torch.Generator().manual_seed(0)
    lq = torch.rand(1, 3, args.size, args.size, generator=gen) * 2 - 1
    refs = torch.rand(4, 3, args.size, args.size, generator=gen) * 2 - 1
    cache = model.encode_references(refs)
    stages["references_encoded"] = _rss()
    weights = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    cache_bytes = sum(k.numel() * k.element_size() + v.numel() * v.element_size()
                      for k, v in zip(cache.keys.values(), cache.values.values()))
    import gc

    gc.collect()
    with RssSampler() as sampler:
        before = sampler.now()
        model.restore(lq, references=cache)
    stages["after_restore"] = _rss()
    return {"applied": applied, "weights_bytes": weights, "cache_bytes": cache_bytes, "rss_before": before,
            "rss_peak": sampler.peak, "peak_over_weights": sampler.peak / weights, "stages": stages}


def _rss() -> dict[str, int]:
    """Resident memory now, split as the kernel counts it: anonymous (heap, copies) and file-backed
    (memory-mapped files: libraries, mapped weights) pages, in bytes (Linux /proc/self/status)."""
    fields = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0]) * 1024
    return fields


def run_child(args: argparse.Namespace, mode: str, precision: str = "fp32") -> dict:
    cmd = [sys.executable, __file__, "--folder", args.folder, "--child", mode, "--precision", precision,
           "--size", str(args.size)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", required=True, help="checkpoint folder (written first when absent)")
    parser.add_argument("--backbone", default="sd-turbo")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--precisions", default="fp32,auto", help="restores whose peak memory is measured ('' for none)")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    if args.child:
        print(json.dumps(child(args)))
        return
    folder = Path(args.folder)
    if not (folder / "config.json").is_file():
        save_checkpoint(folder, args.backbone)
    files = sum(p.stat().st_size for p in folder.iterdir())
    result = {"loadavg_start": os.getloadavg(), "files_bytes": files, "threads": torch.get_num_threads()}
    times: dict[str, list[float]] = {"read": [], "load": [], "slow-load": [], "load+first read": []}
    run_child(args, "read")  # warm the page cache
    for _ in range(args.repeats):
        for mode in ("read", "load", "slow-load"):
            row = run_child(args, mode)
            times[mode].append(row["s"])
            if mode == "load":
                times["load+first read"].append(row["s_with_first_read"])
    med = {mode: statistics.median(v) for mode, v in times.items()}
    result["load"] = {mode: round(s, 2) for mode, s in med.items()}
    result["load"]["load_over_read"] = round(med["load"] / med["read"], 2)
    result["load"]["slow_load_over_read"] = round(med["slow-load"] / med["read"], 2)
    result["memory"] = {p: run_child(args, "memory", p) for p in args.precisions.split(",") if p}
    result["loadavg_end"] = os.getloadavg()
    print(f"{folder} ({files / 2**30:.2f} GiB of files, {result['threads']} threads), load "
          f"{result['loadavg_start'][0]:.2f} -> {result['loadavg_end'][0]:.2f}")
    print(f"  read the files {med['read']:.2f} s; load {med['load']:.2f} s ({result['load']['load_over_read']}x); "
          f"random build + copy (before) {med['slow-load']:.2f} s ({result['load']['slow_load_over_read']}x)")
    print(f"  load and a first read of every weight (what the first restore adds: the files are mapped) "
          f"{med['load+first read']:.2f} s ({med['load+first read'] / med['read']:.2f}x)")
    for precision, row in result["memory"].items():
        print(f"  restore at {args.size} px, {precision} ({row['applied']}): peak RSS {row['rss_peak'] / 2**30:.2f} GiB = "
              f"{row['peak_over_weights']:.2f}x the weights ({row['weights_bytes'] / 2**30:.2f} GiB; references "
              f"cache {row['cache_bytes'] / 2**20:.0f} MiB; {(row['rss_peak'] - row['rss_before']) / 2**30:.2f} GiB above the RSS before the call)")
        print("    RSS by stage (GiB, anonymous + file-backed): " + "; ".join(
            f"{stage} {s['VmRSS'] / 2**30:.2f} ({s['RssAnon'] / 2**30:.2f} + {s['RssFile'] / 2**30:.2f})"
            for stage, s in row["stages"].items()))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
