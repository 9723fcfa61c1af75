"""`instantrestore bench synth`: train the tiny recipe (or load weights) and run the synthetic benchmark."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from .common import resolve_device


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the help and the examples epilog kept as written."""


BENCH_EPILOG = """examples:
  instantrestore bench synth --out runs/synth                      # evaluate the shipped tiny model
  instantrestore bench synth --train --out runs/synth              # train every part first (~1 h, 2 CPU cores)
  instantrestore bench synth --out runs/synth --checkpoint runs/synth/instantrestore/final --identities 8
The models here are trained on synthetic people only; they do not restore real photos."""


def register(subparsers) -> None:
    bench = subparsers.add_parser("bench", help="benchmarks (synthetic identities)",
                                  description="Benchmarks. `bench synth` is the synthetic-identities benchmark.",
                                  epilog=BENCH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    inner = bench.add_subparsers(dest="bench_command", metavar="BENCHMARK")
    p = inner.add_parser(
        "synth", formatter_class=_Formatter, epilog=BENCH_EPILOG,
        help="held-out synthetic identities: blind vs 1-4 references, AdaIN/concat/LAS ablations, wrong references",
        description="Evaluate on synthetic people of a world seed never used in training: PSNR, SSIM, identity "
                    "similarity by the evaluation network, mark recovery, eye-colour error, correct-region attention "
                    "mass and time per image, for each setting. Writes OUT/results.md, OUT/results.json, OUT/grid.png. "
                    "--train first trains the two identity networks and the tiny model (autoencoder, prior, stage 2; plus the model "
                    "without the landmark attention loss) into OUT/<part>/, resuming finished parts. Without --train "
                    "or --checkpoint the shipped model is evaluated. See docs/benchmark.md.")
    p.add_argument("--out", type=Path, required=True, help="output folder (runs and results)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--train", action="store_true", help="train every part first (about an hour on 2 CPU cores)")
    mode.add_argument("--eval-only", action="store_true", help="only evaluate (the default without --train)")
    p.add_argument("--checkpoint", type=Path, help="model dir to evaluate (default: the shipped model)")
    p.add_argument("--checkpoint-no-las", type=Path, help="model trained without the landmark attention loss "
                                                          "(adds the 'LAS off' row)")
    p.add_argument("--eval-network", type=Path, help="evaluation identity network dir (default: the shipped one)")
    p.add_argument("--seed", type=int, default=0, help="training seed S (identity networks S and S+1)")
    p.add_argument("--heldout-seed", type=int, default=1000, help="world seed of the evaluated people")
    p.add_argument("--identities", type=int, default=48, help="held-out people evaluated")
    p.add_argument("--preset", default="sr8", help="degradation preset of the targets")
    p.add_argument("--world-style", choices=("classic", "detail"), default=None,
                   help="how the evaluated people's marks look (docs/data.md); default: what the model's "
                        "training config records (classic for older models)")
    p.add_argument("--timing-images", type=int, default=8, help="images timed per row (0: no timing)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls before timing each row")
    p.add_argument("--grid", type=int, default=4, help="identities shown in grid.png")
    p.add_argument("--no-ablation", action="store_true", help="with --train: skip the model without the LAS loss")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PART.KEY=VALUE",
                   help="with --train: override a recipe value of part idnet, autoencoder, prior or "
                        "instantrestore (e.g. prior.steps=20, idnet.epochs=1); repeatable")
    p.add_argument("--ship-to", type=Path, help="after --train and evaluation: copy the model and evaluation "
                                                "network there (e.g. src/instantrestore/assets)")
    p.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', ... (evaluation)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="fp32",
                   help="the evaluated models' inference path (fp32: exact, the default so that result "
                        "tables compare across machines; auto: the fast path every restore command uses)")
    p.add_argument("--overwrite", action="store_true", help="replace results.md/json, grid.png not written by bench")
    p.set_defaults(func=run_bench_synth)
    bench.set_defaults(func=lambda args: (bench.print_help(), 2)[1])


def parse_part_overrides(items: list[str]) -> dict[str, dict]:
    """``["prior.steps=20"]`` -> ``{"prior": {"steps": 20}}`` (values parsed as YAML)."""
    import yaml

    from ..bench.recipe import OVERRIDE_PARTS

    out: dict[str, dict] = {}
    for item in items:
        key, eq, value = item.partition("=")
        part, dot, name = key.strip().partition(".")
        if not eq or not dot or part not in OVERRIDE_PARTS:
            raise ValueError(f"--set {item!r}: expected PART.KEY=VALUE with PART one of {', '.join(OVERRIDE_PARTS)}")
        out.setdefault(part, {})[name] = yaml.safe_load(value)
    return out


def _refuse_inputs(out: Path, inputs: list[Path | None]) -> None:
    target = out.resolve()
    for item in inputs:
        if item is None:
            continue
        source = item.resolve()
        if target == source or source in target.parents:
            raise ValueError(f"--out {out} is (inside) the input {item}; choose another folder")


def run_bench_synth(args: argparse.Namespace) -> int:
    from ..assets import load_shipped_eval_network, load_shipped_model
    from ..bench.recipe import read_timings, recorded_world_style, ship, train_all
    from ..bench.report import results_markdown, write_results
    from ..bench.synth import evaluate_synth
    from ..generator.model import InstantRestore

    if args.train and (args.checkpoint or args.checkpoint_no_las or args.eval_network):
        raise ValueError("--train makes its own weights; drop --checkpoint/--checkpoint-no-las/--eval-network")
    if args.ship_to and not args.train:
        raise ValueError("--ship-to needs --train")
    if args.checkpoint_no_las and not args.checkpoint:
        raise ValueError("--checkpoint-no-las needs --checkpoint (the model it is compared with)")
    from ..bench.report import RESULT_FILES
    from ..utils.outputs import claim_outputs

    device = resolve_device(args.device)
    _refuse_inputs(args.out, [args.checkpoint, args.checkpoint_no_las, args.eval_network])
    # results an earlier benchmark wrote are replaced; other files of those names are the user's
    claim_outputs([args.out / name for name in RESULT_FILES], list(RESULT_FILES.values()), "bench synth",
                  args.overwrite)
    extra: dict = {}
    if args.train:
        run = train_all(args.out, seed=args.seed, ablation=not args.no_ablation, heldout_seed=args.heldout_seed,
                        overrides=parse_part_overrides(args.overrides))
        model_dir, no_las_dir, eval_dir = run.model, run.model_no_las, run.eval_network
        extra["timings_s"] = read_timings(args.out)
        print("bench: training wall time (s): " + ", ".join(f"{k} {v}" for k, v in extra["timings_s"].items()))
        for part in ("idnet-train", "idnet-eval"):  # the identity networks' held-out verification numbers
            metrics = args.out / part / "metrics.json"
            if metrics.is_file():
                extra.setdefault("identity_networks", {})[part] = json.loads(metrics.read_text())
    else:
        model_dir, no_las_dir, eval_dir = args.checkpoint, args.checkpoint_no_las, args.eval_network
    model = (InstantRestore.from_pretrained(model_dir, device=device) if model_dir
             else load_shipped_model(device=device))
    no_las = InstantRestore.from_pretrained(no_las_dir, device=device) if no_las_dir else None
    for evaluated in (model, no_las):
        if evaluated is not None:
            evaluated.optimize_for_inference(args.precision)
    if eval_dir:
        from ..idnet import load_identity_network
        eval_network = load_identity_network(eval_dir).to(device)
    else:
        eval_network = load_shipped_eval_network(device=device)
    extra["weights"] = {"model": str(model_dir or "shipped"), "model_no_las": str(no_las_dir) if no_las_dir else None,
                        "eval_network": str(eval_dir or "shipped")}
    print(f"bench: evaluating on {args.identities} held-out identities of world {args.heldout_seed}", flush=True)
    style = args.world_style or recorded_world_style(model_dir)
    print(f"bench: world style {style}", flush=True)
    results = evaluate_synth(model, eval_network, model_no_las=no_las, world_seed=args.heldout_seed,
                             identities=args.identities, preset=args.preset, timing_images=args.timing_images,
                             warmup=args.warmup, grid_identities=args.grid, style=style)
    command = "instantrestore " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["bench"] else None
    paths = write_results(results, args.out, command=command, extra=extra)
    print(results_markdown(results, command), end="")
    if args.ship_to:
        ship(run, args.out, args.ship_to)
        print(f"bench: shipped the model and evaluation network to {args.ship_to}")
    print(f"bench: wrote {paths['md']}, {paths['json']}, {paths['grid']}")
    return 0
