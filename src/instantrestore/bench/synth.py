"""The synthetic benchmark: restore held-out synthetic people under each setting and measure.

Rows are settings (blind, 1-4 references, AdaIN off, concat attention, the model trained
without the landmark attention loss, another person's references); columns are PSNR, SSIM,
identity similarity by the *evaluation* network, mark recovery, eye-colour error,
correct-region attention mass and time per image. Sanity rows measure the degraded input,
a clean reference photo and the ground truth the same way. docs/benchmark.md defines every
column; the rows and results are in ``rows``, the pass/fail targets in ``targets``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..faces.identity import TorchEmbedder, cosine_similarity
from ..generator.model import InstantRestore
from ..metrics.image import psnr, ssim
from ..utils.images import uint8_to_tensor
from .cases import (MARK_THRESHOLD, SynthCase, attention_mass, eye_color_error, make_cases, marks_present,
                    to_uint8)
from .rows import DEFAULT_ROWS, SANITY_ROWS, RowResult, RowSpec, SynthResults
from .targets import check_targets

DEFAULT_WORLD_SEED = 1000  # never a training world (training and identity networks use small seeds)
DEFAULT_IDENTITIES = 48
ATTENTION_RADIUS = 1.5  # tokens of each layer's grid
GRID_ROWS = ("blind", "1 ref", "4 refs", "4 wrong refs")


@dataclass
class _Accumulator:
    """One row's per-identity measurements as they come in; ``result`` turns them into a ``RowResult``."""

    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    id_sim: list[float] = field(default_factory=list)
    id_sim_other: list[float] = field(default_factory=list)
    eye: list[float] = field(default_factory=list)
    mass: list[float] = field(default_factory=list)
    chance: list[float] = field(default_factory=list)
    marks_found: int = 0
    marks_total: int = 0

    def add_image(self, image: np.ndarray, case: SynthCase, emb: torch.Tensor, gt_emb: torch.Tensor,
                  other_emb: torch.Tensor, full_reference: bool = True) -> None:
        """Measure one output against its case; ``full_reference`` False: identity columns only."""
        if full_reference:
            self.psnr.append(float(psnr(image, case.hq)[0]))
            self.ssim.append(float(ssim(image, case.hq)[0]))
            self.eye.append(eye_color_error(image, case))
        self.id_sim.append(float(cosine_similarity(emb, gt_emb)[0]))
        self.id_sim_other.append(float(cosine_similarity(emb, other_emb)[0]))
        if full_reference:  # marks are probed at the target's positions: meaningless in another photo
            found, total = marks_present(image, case)
            self.marks_found += found
            self.marks_total += total

    def result(self, name: str, kind: str, ms: float | None = None) -> RowResult:
        """Means over identities (non-finite values left out); ``ms``: the row's timing."""
        def mean(values: list[float]) -> float | None:
            finite = [v for v in values if math.isfinite(v)]
            return float(np.mean(finite)) if finite else None

        return RowResult(
            name=name, kind=kind, psnr=mean(self.psnr), ssim=mean(self.ssim), id_sim=mean(self.id_sim),
            id_sim_std=float(np.std(self.id_sim)) if self.id_sim else None, id_sim_other=mean(self.id_sim_other),
            mark_recovery=self.marks_found / self.marks_total if self.marks_total else None,
            eye_color_error=mean(self.eye), attention_mass=mean(self.mass), attention_chance=mean(self.chance),
            ms_per_image=ms, n=len(self.id_sim), per_identity_id_sim=[round(v, 4) for v in self.id_sim])


def eval_embedder(network: nn.Module) -> TorchEmbedder:
    """Wrap an identity network (``input_size``, optional ``crop`` attributes) as an embedder."""
    size = getattr(network, "input_size", None)
    if not isinstance(size, int):
        raise ValueError("the evaluation identity network needs an int attribute `input_size`")
    return TorchEmbedder(network, input_size=size, crop=getattr(network, "crop", None), name="eval",
                         device=next(network.parameters()).device)


def _row_inputs(case: SynthCase, spec: RowSpec) -> torch.Tensor | None:
    if spec.refs == 0:
        return None
    if spec.oracle:
        return uint8_to_tensor(case.oracle_ref)
    return uint8_to_tensor((case.wrong_refs if spec.wrong else case.refs)[:spec.refs])


@torch.inference_mode()
def _time_row(model: InstantRestore, cases: list[SynthCase], spec: RowSpec, images: int, warmup: int) -> float | None:
    """Milliseconds per image, batch 1, reference encoding included, after ``warmup`` untimed runs."""
    if images <= 0:
        return None
    kwargs = dict(adain=spec.adain, attention_mode=spec.attention_mode)
    device = model.device
    inputs = [(uint8_to_tensor(c.lq).to(device), None if (r := _row_inputs(c, spec)) is None else r.to(device))
              for c in cases[:images]]
    for _ in range(warmup):
        model(inputs[0][0], references=inputs[0][1], **kwargs)
    times = []
    for lq, refs in inputs:
        start = time.perf_counter()
        model(lq, references=refs, **kwargs)
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.mean(times))


def evaluate_synth(model: InstantRestore, eval_network: nn.Module, model_no_las: InstantRestore | None = None,
                   world_seed: int = DEFAULT_WORLD_SEED, identities: int = DEFAULT_IDENTITIES, preset: str = "sr8",
                   degrade_seed: int = 0, rows: tuple[RowSpec, ...] = DEFAULT_ROWS, timing_images: int = 8,
                   warmup: int = 2, grid_identities: int = 4, attention_radius: float = ATTENTION_RADIUS,
                   progress: bool = True, style: str = "classic") -> SynthResults:
    """Run every row on ``identities`` held-out people of ``world_seed`` and measure (see module docs).
    ``style``: the world style (``data.synthetic.WORLD_STYLES``) the model was trained on.

    model / model_no_las: trained generators (the LAS-off row is skipped without the second);
    eval_network: identity network never used in training, [B, 3, S, S] in [-1, 1] -> [B, D].
    """
    model.eval()
    size = model.config.image_size
    cases = make_cases(world_seed, identities, size, preset, degrade_seed, style)
    embed = eval_embedder(eval_network.eval()).embed
    gt_emb = embed(uint8_to_tensor(tuple(c.hq for c in cases)))
    other_emb = embed(uint8_to_tensor(tuple(c.wrong_hq for c in cases)))
    models = {"main": model, "no_las": model_no_las}
    grid: list[dict] = [{"degraded": c.lq, "ground truth": c.hq, "refs": c.refs, "wrong person's refs": c.wrong_refs}
                        for c in cases[:grid_identities]]
    results: list[RowResult] = []

    sanity = {name: _Accumulator() for name in SANITY_ROWS}
    for name, pick in zip(SANITY_ROWS, (lambda c: c.lq, lambda c: c.refs[0], lambda c: c.hq)):
        images = [pick(c) for c in cases]
        embs = embed(uint8_to_tensor(tuple(images)))
        for i, (case, image) in enumerate(zip(cases, images)):
            # A reference is another photo (pose, light): pixel metrics against the target would mislead.
            sanity[name].add_image(image, case, embs[i:i + 1], gt_emb[i:i + 1], other_emb[i:i + 1],
                                   full_reference=name != "clean reference photo")
    results.append(sanity["degraded input"].result("degraded input", "sanity"))

    active = []
    for spec in rows:
        if models.get(spec.model) is None:
            if progress:
                print(f"bench: skipping row '{spec.name}' (no {spec.model} model given)")
        else:
            active.append(spec)
            models[spec.model].eval()
    accs = {spec.name: _Accumulator() for spec in active}
    with torch.inference_mode():
        for i, case in enumerate(tqdm(cases, desc="bench synth", unit="identity", disable=not progress)):
            lq = uint8_to_tensor(case.lq)
            encoded = {}  # (model, refs, wrong) -> ReferenceCache: rows that differ only in toggles share it
            for spec in active:
                runner = models[spec.model]
                refs = None
                if spec.refs:
                    key = (spec.model, spec.refs, spec.wrong, spec.oracle)
                    if key not in encoded:
                        encoded[key] = runner.encode_references(_row_inputs(case, spec).to(runner.device))
                    refs = encoded[key]
                out = runner(lq.to(runner.device), references=refs, capture=runner.injected_layers if spec.refs else [],
                             adain=spec.adain, attention_mode=spec.attention_mode)
                image = to_uint8(out.image)
                acc = accs[spec.name]
                acc.add_image(image, case, embed(out.image.float().cpu()), gt_emb[i:i + 1], other_emb[i:i + 1])
                mass, chance = attention_mass(out.attention, case, spec.refs, spec.wrong, attention_radius,
                                              oracle=spec.oracle)
                acc.mass.append(mass)
                acc.chance.append(chance)
                if i < grid_identities and spec.name in GRID_ROWS:
                    grid[i][spec.name] = image
                del out
    for spec in active:
        if progress and timing_images > 0:
            print(f"bench: timing '{spec.name}' on {min(timing_images, len(cases))} image(s)", flush=True)
        ms = _time_row(models[spec.model], cases, spec, timing_images, warmup)
        results.append(accs[spec.name].result(spec.name, "setting", ms))
    results.append(sanity["clean reference photo"].result("clean reference photo", "sanity"))
    results.append(sanity["ground truth"].result("ground truth", "sanity"))

    settings = dict(world_seed=world_seed, world_style=style, identities=identities, preset=preset, degrade_seed=degrade_seed,
                    image_size=size, mark_threshold=MARK_THRESHOLD, attention_radius_tokens=attention_radius,
                    attention_layers=list(model.injected_layers), timing_images=timing_images, warmup=warmup,
                    torch_threads=torch.get_num_threads(), device=str(model.device),
                    wrong_identity_rule="person i gets the references of held-out person identities + i",
                    has_no_las_model=model_no_las is not None)
    out = SynthResults(rows=results, targets=[], settings=settings, grid=grid)
    out.targets = check_targets(out)
    return out
