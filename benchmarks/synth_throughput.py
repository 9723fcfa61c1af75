"""Render throughput of the synthetic-identity renderer on ONE CPU core.

    python benchmarks/synth_throughput.py --size 128 --images 500 --repeats 5

Pins the process to one core and OpenCV to one thread, renders ``--images`` photos (cycling
over 50 identities) ``--repeats`` times and prints images/s per repeat, the median and the best.
``--items`` also times full training items (target + references rendered, target degraded).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import cv2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--images", type=int, default=500, help="renders per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats")
    parser.add_argument("--seed", type=int, default=0, help="world seed")
    parser.add_argument("--items", action="store_true", help="also time SyntheticIdentityDataset items (preset sr8)")
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    cv2.setNumThreads(1)
    from instantrestore.data.synthetic import render, sample_identity

    people = [sample_identity(args.seed, i) for i in range(50)]
    render(people[0], 0, args.size)  # warm-up
    rates = []
    for r in range(args.repeats):
        start = time.perf_counter()
        for k in range(args.images):
            render(people[k % 50], r * args.images + k, args.size)
        rates.append(args.images / (time.perf_counter() - start))
    print(f"render {args.size}px on 1 core: " + ", ".join(f"{x:.0f}" for x in rates)
          + f" images/s; median {statistics.median(rates):.0f}, best {max(rates):.0f}")

    if args.items:
        import torch

        torch.set_num_threads(1)
        from instantrestore.data.datasets import SyntheticIdentityDataset

        ds = SyntheticIdentityDataset(args.seed, 50, 10, size=args.size, refs_max=4, preset="sr8")
        n = min(200, len(ds))
        start = time.perf_counter()
        for i in range(n):
            ds[i]
        print(f"training items {args.size}px (target + 1-4 refs, sr8) on 1 core: {n / (time.perf_counter() - start):.0f} items/s")


if __name__ == "__main__":
    main()
