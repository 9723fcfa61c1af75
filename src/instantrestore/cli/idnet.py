"""``train-id``: train a synthetic-world face-recognition network (ArcFace margin loss) and report
its held-out verification figures. Thin layer over ``instantrestore.idnet``."""
from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

from ..idnet import ARCHITECTURES, IdentityTrainConfig, train_identity_network

_EPILOG = """examples:
  # the identity-loss network R of the synthetic recipe (arch A, seed 0)
  instantrestore train-id --out runs/idnet-a --arch cnn-a --seed 0
  # the evaluation-only network (other architecture and seed)
  instantrestore train-id --out runs/idnet-b --arch resnet-b --seed 1
  # a quick smoke run
  instantrestore train-id --out /tmp/idnet --identities 20 --images-per-identity 4 --steps 20

Outputs: DIR/config.json + DIR/model.safetensors (load with instantrestore.idnet.load_identity_network)
and DIR/metrics.json (held-out verification figures on people of another world seed)."""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the help, and the examples epilog kept as written."""


def register(subparsers) -> None:
    d = IdentityTrainConfig()
    p = subparsers.add_parser(
        "train-id", formatter_class=_Formatter,
        help="train a synthetic-world face-recognition network (for the identity loss / evaluation)",
        description="Train a small face-recognition network on clean synthetic identities with the ArcFace\n"
                    "additive angular margin loss, then measure verification on held-out people (another world\n"
                    "seed): mean cosine of same- vs different-identity pairs and nearest-gallery top-1.",
        epilog=_EPILOG)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--arch", default=d.arch, choices=sorted(ARCHITECTURES), help="network architecture")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of weights, batch order and augmentation")
    p.add_argument("--world-seed", type=int, default=d.world_seed, help="synthetic world of the training identities")
    p.add_argument("--heldout-world-seed", type=int, default=None,
                   help="world of the held-out identities (None: world seed + 1; default: %(default)s)")
    p.add_argument("--identities", type=int, default=d.identities, help="training identities")
    p.add_argument("--images-per-identity", type=int, default=d.images_per_identity, help="photos per identity")
    p.add_argument("--heldout-identities", type=int, default=d.heldout_identities, help="held-out identities")
    p.add_argument("--steps", type=int, default=d.steps, help="optimizer steps")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="photos per step")
    p.add_argument("--lr", type=float, default=d.lr, help="peak AdamW learning rate (warm-up, cosine decay)")
    p.add_argument("--input-size", type=int, default=d.input_size, help="network input side (multiple of 16)")
    p.add_argument("--embedding-dim", type=int, default=d.embedding_dim, help="embedding size D")
    p.add_argument("--margin", type=float, default=d.margin, help="ArcFace angular margin m (radians)")
    p.add_argument("--scale", type=float, default=d.scale, help="ArcFace logit scale s")
    p.add_argument("--shift-px", type=int, default=d.shift_px, help="augmentation: max translation in pixels")
    p.add_argument("--color-gain", type=float, default=d.color_gain, help="augmentation: per-channel gain range +-")
    p.add_argument("--detail-twins", type=float, default=d.detail_twins,
                   help="fraction of identities given a twin class (same face, marks mirrored, irises recoloured) "
                        "so the network must use those fine details")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.add_argument("--overwrite", action="store_true", help="replace a network already in --out")
    p.set_defaults(func=cmd_train_id)


NETWORK_FILES = ("config.json", "model.safetensors", "metrics.json")  # what train-id writes in --out


def cmd_train_id(args: argparse.Namespace) -> int:
    names = {f.name for f in fields(IdentityTrainConfig)}
    config = IdentityTrainConfig(**{k: v for k, v in vars(args).items() if k in names})
    found = [name for name in NETWORK_FILES if (Path(args.out) / name).exists()]
    if found and not args.overwrite:  # a trained network is work: never replaced without being asked
        raise FileExistsError(f"--out {args.out} already holds {', '.join(found)}; nothing was changed. Pass "
                              "--overwrite to train a new network in its place, or choose another --out")
    metrics = train_identity_network(config, Path(args.out), progress=not args.no_progress)
    print(f"held-out verification ({metrics['heldout_identities']} people of world {metrics['heldout_world_seed']}, "
          f"{metrics['heldout_images_per_identity']} photos each):")
    print(f"  mean cos same identity {metrics['mean_cos_same']:.3f}   different {metrics['mean_cos_diff']:.3f}   "
          f"separation {metrics['separation']:.3f}")
    print(f"  top-1 (1 gallery photo) {metrics['top1']:.3f}   pair accuracy {metrics['pair_accuracy']:.3f} "
          f"at cos >= {metrics['threshold']:.3f}")
    print(f"  fine details: cos to the same photo with marks removed {metrics['cos_marks_removed']:.3f}, "
          f"irises recoloured {metrics['cos_iris_changed']:.3f}")
    print(f"  {metrics['seconds']:.0f} s; wrote {args.out}/config.json, model.safetensors, metrics.json")
    print(json.dumps(metrics))
    return 0
