"""Temporal consistency of the shipped tiny model on synthetic clips: blind against 4 references.

    python benchmarks/video_consistency.py --identities 8 --frames 16 --json runs/video_consistency.json \
        --strip docs/images/video_strip.png

Held-out people of world 1000 move over ``--frames`` frames, each frame degraded independently
(sr8); every frame is restored one at a time with a fixed seed, blind and with the person's 4
references. Prints identity similarity (evaluation network) mean and std over frames, marks
present, flicker (frame-to-frame change inside the face after motion compensation, minus the
ground truth's own) and the issue's targets met or missed (``bench.video``, docs/video.md).
``--remedy NAME:W`` (repeatable) also runs a temporal remedy at weight W (``bench.video_remedies``:
output ema, latent ema, attention ema, attention+latent ema, previous frame ref, input
window), blind and 4 refs alike;
``--ema W`` is ``--remedy "output ema:W"``. Ratios are given against blind with the same remedy
(like for like) and against plain per-frame blind. ``--strip`` writes a before/after strip of one
clip (degraded / blind / 4 refs / ground truth over frames).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def _strip(per_clip: list[dict], model, eval_network, path: Path, frames: int) -> None:
    """Rows degraded / blind / 4 refs / ground truth of clip 0, every other frame, labelled."""
    import cv2
    import torch

    from instantrestore.bench.cases import to_uint8
    from instantrestore.bench.report import write_png
    from instantrestore.data import synthetic
    from instantrestore.utils.images import uint8_to_tensor

    shown = per_clip[0]["_frames"]
    size = shown["truth"][0].shape[0]
    person = synthetic.sample_identity(1000, 0)
    refs = uint8_to_tensor(tuple(synthetic.render(person, j, size).image for j in range(1, 5)))
    picks = list(range(0, frames, max(1, frames // 6)))[:6]
    rows = {"degraded": [shown["degraded"][t] for t in picks], "truth": [shown["truth"][t] for t in picks]}
    with torch.inference_mode():
        lq = uint8_to_tensor(tuple(rows["degraded"]))
        rows["blind"] = [to_uint8(model(lq[k:k + 1]).image) for k in range(len(picks))]
        rows["4 refs"] = [to_uint8(model(lq[k:k + 1], references=refs).image) for k in range(len(picks))]
    lines = []
    for name in ("degraded", "blind", "4 refs", "truth"):
        label = np.full((size, 64, 3), 255, np.uint8)
        cv2.putText(label, name, (2, size // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
        lines.append(np.concatenate([label] + rows[name], axis=1))
    write_png(path, np.concatenate(lines, axis=0),
              provenance=json.dumps({"command": "benchmarks/video_consistency.py", "frames": picks}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=8, help="held-out people (one clip each)")
    parser.add_argument("--frames", type=int, default=16, help="frames per clip")
    parser.add_argument("--ema", type=float, default=0.0, help="also measure the output blend with this weight")
    parser.add_argument("--remedy", action="append", default=[], metavar="NAME:W",
                        help="also measure this temporal remedy at weight W (repeatable)")
    parser.add_argument("--draws", choices=("fresh", "fixed", "none"), default="fresh",
                        help="each frame's degradation: its own draw (a camera's), one draw for all, or none "
                             "(the clean frames): a diagnostic of what varies the identity")
    parser.add_argument("--json", type=Path, help="write the tables here")
    parser.add_argument("--strip", type=Path, help="write a before/after strip PNG of clip 0")
    args = parser.parse_args()

    import torch

    from instantrestore.assets import load_shipped_eval_network, load_shipped_model
    from instantrestore.bench.video import check_targets, run_video_bench

    torch.manual_seed(0)
    model, eval_network = load_shipped_model(), load_shipped_eval_network()
    start = time.perf_counter()
    out = {"command": "python benchmarks/video_consistency.py " + " ".join(
        f"--{k.replace('_', '-')} {v!r}" if k == "remedy" else f"--{k.replace('_', '-')} {v}"
        for k, vs in vars(args).items() if vs not in (None, 0.0, [], "fresh") and k not in ("json", "strip")
        for v in (vs if isinstance(vs, list) else [vs])),
        "identities": args.identities, "frames": args.frames, "draws": args.draws, "runs": {}}
    runs = [("per-frame", 0.0)] + ([("output ema", args.ema)] if args.ema > 0 else [])
    for spec in args.remedy:
        name, _, weight = spec.rpartition(":")
        runs.append((name, float(weight)))
    plain_blind = None
    for remedy, weight in runs:
        table, per_clip = run_video_bench(model, eval_network, args.identities, args.frames, remedy=remedy,
                                          weight=weight, draws=args.draws)
        name = remedy if remedy in ("per-frame", "previous frame ref") else f"{remedy} {weight}"
        plain_blind = plain_blind or table["blind"]
        ratios = {"id_std_vs_blind": table["4 refs"]["id_std"] / table["blind"]["id_std"],
                  "flicker_vs_blind": table["4 refs"]["flicker"] / table["blind"]["flicker"],
                  "id_std_vs_plain_blind": table["4 refs"]["id_std"] / plain_blind["id_std"],
                  "flicker_vs_plain_blind": table["4 refs"]["flicker"] / plain_blind["flicker"]}
        out["runs"][name] = {"remedy": remedy, "weight": weight, "table": table, "targets": check_targets(table),
                             "ratios": ratios}
        print(f"== {name} ({args.identities} clips x {args.frames} frames, sr8, {args.draws} draws)")
        print(f"{'setting':10s} {'ID mean':>8s} {'ID std':>8s} {'marks':>7s} {'flicker':>8s} {'change':>7s} {'gt chg':>7s}")
        for setting, row in table.items():
            print(f"{setting:10s} {row['id_mean']:8.3f} {row['id_std']:8.4f} {row['marks_present']:7.1%} "
                  f"{row['flicker']:8.2f} {row['change']:7.2f} {row['truth_change']:7.2f}")
        for target, met in check_targets(table).items():
            print(f"  target {target}: {'met' if met else 'MISSED'}")
        print("  4 refs / blind: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
        if args.strip is not None and remedy == "per-frame":
            _strip(per_clip, model, eval_network, args.strip, args.frames)
    out["seconds"] = round(time.perf_counter() - start, 1)
    print(f"done in {out['seconds']} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
