"""``instantrestore train``: run a training recipe (a YAML config) with flag overrides."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..generator.backbones import backbone_names
from ..train.config import STAGES

EPILOG = """examples:
  # tiny recipe on the synthetic world (2-core CPU): stage 0 autoencoder, stage 1 prior, stage 2 InstantRestore
  instantrestore train --config configs/tiny-autoencoder.yaml --out runs/autoencoder
  instantrestore train --config configs/tiny-prior.yaml --out runs/prior --init-from runs/autoencoder/final \\
      --identity-network runs/idnet-a
  instantrestore train --config configs/tiny.yaml --out runs/tiny --init-from runs/prior/final \\
      --identity-network runs/idnet-a
  # continue a killed run exactly where its newest checkpoint left it (reads runs/tiny/config.yaml)
  instantrestore train --out runs/tiny --resume
  # the paper's recipe on 8 GPUs (batch 2 per GPU = effective 16)
  accelerate launch --num_processes 8 -m instantrestore train --config configs/sd-turbo.yaml \\
      --data /data/celebref --batch-size 2 --identity-network /weights/arcface_r100.safetensors \\
      --set identity_arch=r100
  # two CPU processes in a gloo group (plain --cpu starts one process unless MPI is set up)
  accelerate launch --multi_gpu --num_processes 2 -m instantrestore train --config configs/tiny.yaml --steps 3
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train InstantRestore (tiny stages 0-1 or the paper's stage) from a YAML recipe",
        description="Train from a YAML recipe (configs/*.yaml); flags override its keys. Writes OUT/config.yaml, "
                    "OUT/metrics.jsonl, OUT/tb/, OUT/samples/, OUT/checkpoints/step_XXXXXXX/ and OUT/final/. "
                    "Run under `accelerate launch` for several processes/GPUs. See docs/training.md.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE", help="YAML recipe (e.g. configs/tiny.yaml); when omitted: OUT/config.yaml "
                                                    "with --resume, else the built-in defaults")
    p.add_argument("--stage", choices=list(STAGES), help="override the recipe's stage")
    p.add_argument("--backbone", choices=backbone_names(), help="architecture when starting from random weights")
    p.add_argument("--init-from", metavar="DIR", help="model dir whose base weights to start from (e.g. a stage-1 final/)")
    p.add_argument("--base-model", metavar="DIR_OR_HUB_ID", help="diffusers base model, e.g. stabilityai/sd-turbo")
    p.add_argument("--data", metavar="DIR|synthetic", help="identity-folder root, or 'synthetic'")
    p.add_argument("--identity-network", metavar="PATH", help="identity-loss network: train-id dir or ArcFace weights")
    p.add_argument("--steps", type=int, help="optimiser steps")
    p.add_argument("--out", metavar="DIR", help="run folder")
    p.add_argument("--refs-max", type=int, help="most references per sample")
    p.add_argument("--batch-size", type=int, help="batch size per process")
    p.add_argument("--grad-accum", type=int, help="gradient accumulation steps")
    p.add_argument("--lr", type=float, help="learning rate (constant)")
    p.add_argument("--image-size", type=int, help="training resolution (pixels)")
    p.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], help="autocast precision (GPU)")
    p.add_argument("--seed", type=int, help="seed of the data order, timesteps and noise")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in OUT/checkpoints")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="any config key, dotted for nested ones (repeatable): --set loss.lpips=0 "
                        "--set landmark_attention.sigma=1.5 --set save_every=50")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.set_defaults(func=run)


FLAG_KEYS = ("stage", "backbone", "init_from", "base_model", "data", "identity_network", "steps", "out", "refs_max",
             "batch_size", "grad_accum", "lr", "image_size", "mixed_precision", "seed")


# what a run folder holds (train/: config, metrics, TensorBoard, samples, checkpoints, the final model)
RUN_FILES = ("config.yaml", "final", "checkpoints", "metrics.jsonl", "held_out.txt", "samples", "tb", ".tmp-final")


def refuse_existing_run(out: Path) -> None:
    """Refuse, before anything is built or written, an OUT that already holds (part of) a training
    run: a fresh start there would replace its config, metrics, checkpoints and final model."""
    found = [name for name in RUN_FILES if (out / name).exists()]
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file; give a folder for the run")
    if found:
        raise FileExistsError(f"--out {out} already holds a training run ({', '.join(found)}); nothing was changed. "
                              "Pass --resume to continue it from its newest checkpoint, or choose another --out "
                              "for a new run")


def run(args: argparse.Namespace) -> int:
    from ..train import TrainConfig, train
    from ..train.config import parse_set

    overrides = {k: getattr(args, k) for k in FLAG_KEYS if getattr(args, k) is not None}
    overrides.update(parse_set(args.sets))
    source = args.config
    if source is None and args.resume and args.out and (Path(args.out) / "config.yaml").is_file():
        source = Path(args.out) / "config.yaml"  # --resume --out DIR alone continues that run as configured
    config = TrainConfig.from_yaml(source, **overrides)
    if args.print_config:
        print(config.to_yaml(), end="")
        return 0
    if not args.resume:
        refuse_existing_run(config.out_dir)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    final = train(config, progress=not args.no_progress, resume=args.resume)
    print(final)
    return 0
