"""``bench synth --train``: the whole tiny recipe, part by part, then the benchmark.

Parts, each in ``OUT/<part>/`` and skipped when already finished (its ``final/`` folder exists),
so a killed run resumes where it stopped:

1. ``idnet-train``: identity network R for the identity loss (architecture ``cnn-a``, seed S);
2. ``idnet-eval``: the evaluation network (architecture ``resnet-b``, seed S + 1), never seen by
   the generator's training;
3. ``autoencoder``: stage 0, the tiny VAE learns to reconstruct clean photos (SD's VAE's stand-in);
4. ``prior``: stage 1, the tiny UNet trained on that frozen VAE as a blind one-step restorer
   (SD-Turbo's stand-in);
5. ``instantrestore``: stage 2 on the frozen prior, LoRA + shared attention, landmark attention loss on;
6. ``instantrestore-no-las``: the same without the landmark attention loss (the ablation row).

Wall time per part goes to ``OUT/timings.json``; the benchmark writes ``OUT/results.{md,json}``
and ``OUT/grid.png``. ``ship`` copies the trained model and evaluation network into the
package's assets folder.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from ..utils.files import atomic_write_text

PARTS = ("idnet-train", "idnet-eval", "autoencoder", "prior", "instantrestore", "instantrestore-no-las")
ID_TRAIN_ARCH, ID_EVAL_ARCH = "cnn-a", "resnet-b"
AUTOENCODER_CONFIG, PRIOR_CONFIG, STAGE2_CONFIG = "tiny-autoencoder.yaml", "tiny-prior.yaml", "tiny.yaml"
FINAL = "final"
# The pipeline's identity networks train for fewer steps than `train-id`'s default, to keep the
# whole --train run within an hour on a 2-core CPU (the shipped model was made with these).
PIPELINE_IDNET: dict[str, Any] = {"steps": 300, "world_style": "detail", "detail_twins": 0.5}
# The keys of train_all's ``overrides`` (`bench synth --set PART.KEY=VALUE`); both stage-2 runs share the last.
OVERRIDE_PARTS = ("idnet", "autoencoder", "prior", "instantrestore")


def find_config(name: str) -> Path:
    """A recipe YAML shipped as package data in ``instantrestore/configs/`` (the repository's top-level
    ``configs/`` links there), so an installed package finds it too."""
    path = Path(__file__).resolve().parents[1] / "configs" / name
    if not path.is_file():
        raise FileNotFoundError(f"recipe {name} not found in {path.parent}")
    return path


def part_finished(out: Path, part: str) -> bool:
    """Whether recipe part ``part`` under ``out`` saved its final weights (then a rerun skips it)."""
    return (out / part / FINAL).is_dir()


def read_timings(out: Path) -> dict[str, float]:
    """Wall seconds per recipe part from ``out/timings.json`` ({} before the first part finishes)."""
    path = out / "timings.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _record_time(out: Path, part: str, seconds: float, resumed: bool) -> None:
    timings = read_timings(out)
    timings[part] = round(seconds, 1)
    if resumed:  # the seconds cover only the session that finished the part
        timings[f"{part} (resumed)"] = True
    timings["total_training"] = round(sum(v for k, v in timings.items() if k in PARTS), 1)
    atomic_write_text(out / "timings.json", json.dumps(timings, indent=2) + "\n")


def _run_part(out: Path, part: str, work: Callable[[Path], None], progress: bool) -> Path:
    """Run ``work(part_dir)`` unless the part is finished; time it; return ``OUT/part/final``."""
    folder = out / part
    if part_finished(out, part):
        if progress:
            print(f"bench: {part}: already finished ({folder / FINAL}), skipping")
        return folder / FINAL
    if progress:
        print(f"bench: {part}: training into {folder}", flush=True)
    resumed = (folder / "checkpoints").is_dir() and any((folder / "checkpoints").iterdir())
    start = time.perf_counter()
    work(folder)
    if not (folder / FINAL).is_dir():
        raise RuntimeError(f"{part}: training ended without {folder / FINAL}")
    _record_time(out, part, time.perf_counter() - start, resumed)
    if progress:
        print(f"bench: {part}: done in {read_timings(out)[part]:.0f} s", flush=True)
    return folder / FINAL


def _check_heldout(heldout_seed: int, world_seed: int, what: str) -> None:
    if world_seed == heldout_seed:
        raise ValueError(f"{what} trains on world seed {world_seed}, the benchmark's held-out world; "
                         "choose another --heldout-seed")


def _train_idnet(arch: str, seed: int, overrides: dict[str, Any], heldout_seed: int,
                 progress: bool) -> Callable[[Path], None]:
    def work(folder: Path) -> None:
        from ..idnet import IdentityTrainConfig, train_identity_network

        config = dataclasses.replace(IdentityTrainConfig(arch=arch, seed=seed), **{**PIPELINE_IDNET, **overrides})
        _check_heldout(heldout_seed, config.world_seed, f"identity network {arch}")
        train_identity_network(config, folder, progress=progress)
        # The idnet trainer writes the network into `folder`; `final/` marks the part finished.
        final = folder / FINAL
        if not final.is_dir():
            tmp = folder / (FINAL + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            for name in ("config.json", "model.safetensors"):
                shutil.copy2(folder / name, tmp / name)
            tmp.rename(final)
    return work


def _train_generator(config_name: str, overrides: dict[str, Any], heldout_seed: int,
                     progress: bool) -> Callable[[Path], None]:
    def work(folder: Path) -> None:
        from ..train import TrainConfig, train

        config = TrainConfig.from_yaml(find_config(config_name), **{**overrides, "out": str(folder)})
        if config.is_synthetic:
            _check_heldout(heldout_seed, config.world_seed, f"{config_name}")
        train(config, progress=progress, resume=True)  # continues from OUT/part/checkpoints after a kill
    return work


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    """Where a pipeline run's weights are (model dirs loadable by ``InstantRestore.from_pretrained``)."""

    model: Path
    model_no_las: Path | None
    eval_network: Path
    train_network: Path


def train_all(out: str | Path, seed: int = 0, ablation: bool = True, heldout_seed: int = 1000,
              overrides: dict[str, dict[str, Any]] | None = None, progress: bool = True) -> TrainedRun:
    """Train (or resume) every part of the tiny recipe into ``out`` (see module docs).

    seed: S (identity networks S and S + 1; generator stages seeded S, world seed from the recipe);
    overrides: per part (``idnet``, ``autoencoder``, ``prior``, ``instantrestore``), e.g. fewer steps
        for a smoke run.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    overrides = overrides or {}
    idnet = overrides.get("idnet", {})
    h = heldout_seed
    train_net = _run_part(out, "idnet-train", _train_idnet(ID_TRAIN_ARCH, seed, idnet, h, progress), progress)
    eval_net = _run_part(out, "idnet-eval", _train_idnet(ID_EVAL_ARCH, seed + 1, idnet, h, progress), progress)
    ae_over = {"seed": seed, **overrides.get("autoencoder", {})}
    autoencoder = _run_part(out, "autoencoder", _train_generator(AUTOENCODER_CONFIG, ae_over, h, progress), progress)
    prior_over = {"seed": seed, "init_from": str(autoencoder), "identity_network": str(train_net),
                  **overrides.get("prior", {})}
    prior = _run_part(out, "prior", _train_generator(PRIOR_CONFIG, prior_over, h, progress), progress)
    stage2 = {"seed": seed, "init_from": str(prior), "identity_network": str(train_net),
              **overrides.get("instantrestore", {})}
    model = _run_part(out, "instantrestore", _train_generator(STAGE2_CONFIG, stage2, h, progress), progress)
    no_las = None
    if ablation:
        no_las_over = {**stage2, "loss.landmark_attention": 0.0}
        no_las = _run_part(out, "instantrestore-no-las", _train_generator(STAGE2_CONFIG, no_las_over, h, progress),
                           progress)
    return TrainedRun(model=model, model_no_las=no_las, eval_network=eval_net, train_network=train_net)


def recorded_world_style(model_dir: str | Path | None) -> str:
    """The world style a model was trained on, as its training config recorded it: the shipped
    model's ``train_instantrestore.json``, or a run part's ``config.yaml`` beside ``final/``;
    ``classic`` when neither says (models made before world styles existed)."""
    import yaml

    if model_dir is None:
        from ..assets import MODEL_NAME

        model_dir = Path(__file__).resolve().parents[1] / "assets" / MODEL_NAME
    model_dir = Path(model_dir)
    for path in (model_dir / "train_instantrestore.json", model_dir.parent / "config.yaml"):
        if path.is_file():
            return str((yaml.safe_load(path.read_text()) or {}).get("world_style", "classic"))
    return "classic"


def ship(run: TrainedRun, out: Path, assets_dir: str | Path) -> Path:
    """Copy the trained model (+ its training configs, timings, benchmark results) and the evaluation
    network into ``assets_dir/tiny-synth`` and ``assets_dir/idnet-eval`` (replacing what is there)."""
    from ..assets import EVAL_NETWORK_NAME, MODEL_NAME

    assets_dir = Path(assets_dir)
    targets = {MODEL_NAME: run.model, EVAL_NETWORK_NAME: run.eval_network}
    for name, source in targets.items():
        tmp = assets_dir / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source, tmp, ignore=shutil.ignore_patterns("training_state", "*.tmp"))
        if name == MODEL_NAME:
            for part in ("autoencoder", "prior", "instantrestore"):
                config = out / part / "config.yaml"
                if config.is_file():
                    import yaml

                    atomic_write_text(tmp / f"train_{part}.json",
                                      json.dumps(yaml.safe_load(config.read_text()), indent=2) + "\n")
            for extra in ("timings.json", "results.md", "results.json"):
                if (out / extra).is_file():
                    shutil.copy2(out / extra, tmp / extra)
        final = assets_dir / name
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    return assets_dir
