"""`instantrestore demo`: restore a held-out synthetic person blind and with references (what `make demo` runs)."""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import quiet_synthetic_warning, resolve_device, warn_model


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the help and the examples epilog kept as written."""


DEMO_EPILOG = """examples:
  instantrestore demo --out demo_out
  instantrestore demo --out demo_out --identity 3 --refs 2 --checkpoint runs/synth/instantrestore/final"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", formatter_class=_Formatter, epilog=DEMO_EPILOG,
        help="restore a held-out synthetic person blind and with references; grid.png + metrics.json",
        description="Render a synthetic person the shipped tiny model never saw (references + an sr8-degraded photo), "
                    "restore it blind and with references, write OUT/grid.png (degraded / blind / with references / "
                    "ground truth / references) and OUT/metrics.json (id_sim_blind, id_sim_refs, PSNR, marks present, "
                    "...). No download. This shows the reference mechanism on synthetic faces; restoring real photos "
                    "needs SD-Turbo weights trained on real faces (see README).")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--identity", type=int, default=0, help="held-out person index")
    p.add_argument("--refs", type=int, default=4, help="references used (1-4)")
    p.add_argument("--seed", type=int, default=1000, help="world seed of the held-out people (never a training world)")
    p.add_argument("--preset", default="sr8", help="degradation preset")
    p.add_argument("--checkpoint", type=Path, help="model dir instead of the shipped model")
    p.add_argument("--eval-network", type=Path, help="evaluation identity network dir instead of the shipped one")
    p.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', ...")
    p.add_argument("--overwrite", action="store_true", help="replace grid.png / metrics.json the demo did not write")
    p.set_defaults(func=run_demo_command)


def run_demo_command(args: argparse.Namespace) -> int:
    from ..assets import load_shipped_eval_network, load_shipped_model
    from ..bench.demo import run_demo, summary
    from ..bench.recipe import recorded_world_style
    from ..generator.model import InstantRestore

    from ..bench.demo import DEMO_OUTPUTS
    from ..utils.outputs import claim_outputs

    device = resolve_device(args.device)
    target = args.out.resolve()
    for item in (args.checkpoint, args.eval_network):
        if item is not None and (target == item.resolve() or item.resolve() in target.parents):
            raise ValueError(f"--out {args.out} is (inside) the input {item}; choose another folder")
    if args.out.is_file():
        raise NotADirectoryError(f"--out {args.out} is a file; the demo writes a folder (grid.png, metrics.json)")
    # files an earlier demo wrote may be replaced; any other file of those names is the user's
    claim_outputs([args.out / name for name in DEMO_OUTPUTS], list(DEMO_OUTPUTS.values()), "demo", args.overwrite)
    with quiet_synthetic_warning():  # warn_model below says it once
        model = InstantRestore.from_pretrained(args.checkpoint, device=device) if args.checkpoint \
            else load_shipped_model(device=device)
    warn_model(model, what="the demo model")
    if args.eval_network:
        from ..idnet import load_identity_network
        network = load_identity_network(args.eval_network).to(device)
    else:
        network = load_shipped_eval_network(device=device)
    metrics = run_demo(args.out, model, network, identity=args.identity, refs=args.refs, world_seed=args.seed,
                       preset=args.preset, style=recorded_world_style(args.checkpoint))
    print(summary(metrics))
    print(f"demo: wrote {args.out / 'grid.png'} and {args.out / 'metrics.json'}")
    return 0
