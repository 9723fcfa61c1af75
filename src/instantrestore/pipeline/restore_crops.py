"""A folder of aligned face crops restored with one set of references (or blind).

For each crop ``NAME.ext`` the job writes ``NAME.png`` (``PARENT_NAME.png`` where two inputs share
a name, ``PARENT_NAME_EXT.png`` where they also share the folder; one input may go to a file),
recording what made it (``provenance``): the model, the encoded references and the input, by name
and content (and the strength, when not the default). A resumed run skips
outputs made alike and keeps, with a warning, those made otherwise or not by this job
(``folder_jobs``). The references come as image files (encoded once, optionally saved as a
reference cache for later runs) or as such a cache; before any model is loaded the crops can be
checked to show a face, and the references one person matching them (``verify``).
"""
from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
from PIL import Image

from ..generator.fingerprints import file_digest, model_fingerprint, tensors_digest
from ..utils.files import clean_stale_temporaries, ensure_not_input, ensure_outside_inputs
from ..utils.images import load_image
from ..utils.outputs import claim_outputs
from . import folder_jobs
from .folder_jobs import (JobPlan, Log, Progress, expand_inputs, no_log, no_progress, output_stems, plan_outputs,
                          skipped_line)
from .strength import face_strength, parse_strength

if TYPE_CHECKING:
    from ..generator.reference_cache import ReferenceCache

MAX_VERIFIED_INPUTS = 32  # the identity check embeds each input once; beyond this a big folder job would wait on it


def crop_outputs(inputs: list[Path], out: Path) -> list[Path]:
    """Output images for ``inputs`` in the folder ``out``: ``NAME.png``, or ``PARENT_NAME.png`` for
    every input when two share a name; one input and an ``out`` with a suffix: ``out`` itself."""
    if len(inputs) == 1 and out.suffix:
        return [out]
    if out.suffix and not out.is_dir():
        raise ValueError(f"--out {out} looks like a file, but there are {len(inputs)} inputs; give a folder")
    folders = Counter((p.parent.name, p.stem) for p in inputs)  # x.png and x.jpg of one folder stay apart
    stems = output_stems(inputs, lambda p: f"{p.parent.name}_{p.stem}" + (
        f"_{p.suffix.lstrip('.').lower()}" if folders[p.parent.name, p.stem] > 1 else ""), rename_all=True)
    return [out / f"{stem}.png" for stem in stems]


def provenance(model: Any, cache: ReferenceCache | None, path: Path, strength: float | str = 1.0) -> dict:
    """What makes an output: the model (base and trained weights), the encoded references, the input
    (and the strength, when not the default, so outputs made before strength existed still match)."""
    refs = "none" if cache is None else tensors_digest(cache.keys[n] for n in sorted(cache.keys))
    made = {"model": model_fingerprint(model), "references": refs, "input": path.name,
            "input_sha256": file_digest(path)[:16]}
    if strength != 1.0:
        made["strength"] = strength
    return made


def faceless_problem(inputs: list[Path]) -> str | None:
    """What is wrong when some ``inputs`` show no face (restore expects aligned crops), or None."""
    from ..faces.verify import has_face

    faceless = [p for p in inputs if not has_face(np.asarray(load_image(p)))]
    if not faceless:
        return None
    names = ", ".join(p.name for p in faceless[:5]) + (" ..." if len(faceless) > 5 else "")
    return (f"no face found in {len(faceless)} input(s): {names}; restore expects aligned face crops "
            "(run `instantrestore align` on full photos first)")


def _verification_crop(path: Path, what: str, side: int | None = None) -> np.ndarray:
    """An aligned crop for the identity check: refused, as the model would refuse it, when it is not
    square (a whole photo); resized to ``side`` when given (the model accepts any size)."""
    image = load_image(path)
    if image.width != image.height:
        raise ValueError(f"{what} {path}: expected an aligned square face crop, got {image.width}x{image.height}; "
                         "run `instantrestore align` on full photos first")
    return np.asarray(image if side in (None, image.width) else image.resize((side, side), Image.LANCZOS))


def reference_problems(references: list[Path], inputs: list[Path], embedder: str = "dlib"
                       ) -> tuple[list[str], set[str]]:
    """What is wrong with ``references`` for ``inputs`` (the first ``MAX_VERIFIED_INPUTS``): a
    reference with no face, references of several people, or not of the person of an input; and
    the names of the references to leave out (no face, or another person than the rest)."""
    from ..faces.identity import load_embedder
    from ..faces.verify import verify_references

    try:
        model = load_embedder(embedder)
    except ImportError as exc:  # an optional extra is missing: say which
        raise ValueError(str(exc)) from exc
    names = [p.name for p in references]
    problems: list[str] = []
    left_out: set[str] = set()
    for path in inputs[:MAX_VERIFIED_INPUTS]:
        lq = _verification_crop(path, "input")
        refs = [_verification_crop(p, "reference", lq.shape[0]) for p in references]
        report = verify_references(refs, names, lq=lq, embedder=model, mode="off", lq_name=path.name)
        problems += [line for line in report.problems() if line not in problems]
        left_out |= {c.name for c in report.outliers} | (set(report.faceless) & set(names))
    return problems, left_out


def is_reference_cache(path: Path) -> bool:
    """A file ``--save-cache`` wrote (a reference cache; anything else is the user's)."""
    from safetensors import safe_open

    from ..generator.reference_cache import CACHE_FORMAT

    try:  # any suffix: --save-cache person.refs is as good a name as person.safetensors
        with safe_open(str(path), framework="pt") as handle:
            return (handle.metadata() or {}).get("format") == CACHE_FORMAT
    except Exception:  # noqa: BLE001 - not a safetensors file: the user's
        return False


@dataclass(frozen=True)
class CropJob:
    """A restore run over aligned face crops: ``inputs`` (crops or folders of crops) into ``out``
    (a folder, or a file for one crop), with the references ``refs`` (images or folders) or the
    saved ``refs_cache`` (neither: blind), at ``strength``; ``save_cache`` writes the encoded
    references for later runs. verify: 'off' | 'warn' | 'strict' (refuse faceless inputs or
    references that do not match them); embedder: the identity model that check uses."""

    inputs: Sequence[str | os.PathLike]
    out: Path
    refs: Sequence[str | os.PathLike] = ()
    refs_cache: Path | None = None
    save_cache: Path | None = None
    strength: float | str = 1.0
    verify: str = "warn"
    embedder: str = "dlib"
    overwrite: bool = False


@dataclass
class CropJobResult:
    """What ``restore_crops`` did: the ``plan`` (outputs done before, kept, restored now), the
    number of references used, and the ``seconds`` the restorations took."""

    plan: JobPlan
    references: int = 0
    seconds: float = 0.0


def restore_crops(job: CropJob, load_model: Callable[[str | None], Any], log: Log = no_log,
                  progress: Progress = no_progress) -> CropJobResult:
    """Restore the aligned crops of ``job``: check the outputs and (unless ``verify`` is 'off')
    the inputs and references, load the model with ``load_model(None)``, encode or load the
    references, and restore every crop not done yet. ``log`` gets the lines worth telling."""
    strength = parse_strength(job.strength)
    inputs = expand_inputs(job.inputs)
    references = expand_inputs(job.refs) if job.refs else []
    if job.refs_cache and references:
        raise ValueError("give either --refs or --refs-cache, not both")
    if job.save_cache and not (references or job.refs_cache):
        raise ValueError("--save-cache needs --refs")
    out = Path(job.out)
    outputs = crop_outputs(inputs, out)
    if len(outputs) > 1 or out.is_dir() or not out.suffix:
        ensure_outside_inputs(out, [Path(p) for p in (*job.inputs, *job.refs) if Path(p).is_dir()])
    else:
        folder_jobs.check_recordable(out)
    for o in outputs:
        ensure_not_input(o, inputs + references + ([Path(job.refs_cache)] if job.refs_cache else []))
    if job.save_cache:  # a reference cache written before may be replaced; any other file is the user's
        claim_outputs([Path(job.save_cache)], is_reference_cache, "restore --save-cache", job.overwrite,
                      inputs=[*inputs, *references, *outputs, *([Path(job.refs_cache)] if job.refs_cache else [])])
    clean_stale_temporaries(outputs[0].parent, recursive=False)
    if job.verify != "off":
        faceless = faceless_problem(inputs)
        if faceless and job.verify == "strict":
            raise ValueError(faceless + " (refused: --verify-refs strict)")
        if faceless:
            log(f"warning: {faceless}")
        problems, left_out = reference_problems(references, inputs, job.embedder) if references else ([], set())
        if problems and job.verify == "strict":
            raise ValueError("references refused (--verify-refs strict): " + "; ".join(problems))
        for line in problems:
            log(f"warning: {line}")
        kept = [p for p in references if p.name not in left_out]
        if left_out and kept:
            references = kept
            log(f"warning: left out {len(left_out)} reference(s) with no face or of another person: "
                f"{', '.join(sorted(left_out))}; restoring with {len(kept)} (--verify-refs off uses them all)")
        elif left_out:
            log("warning: every reference has no face or looks like another person; all are used as given")

    model = load_model(None)
    cache = None
    if job.refs_cache:
        from ..generator.reference_cache import ReferenceCache

        cache = ReferenceCache.load(job.refs_cache, device=model.device)
    elif references:
        cache = model.encode_references(references)
    if job.save_cache:
        cache.save(job.save_cache)
        log(f"saved {len(cache)} encoded references to {job.save_cache}")
    if cache is None:
        log("no references given: blind restoration")

    pairs = list(zip(inputs, outputs))
    result = CropJobResult(plan_outputs(pairs, [provenance(model, cache, path, strength) for path, _ in pairs],
                                        path=lambda pair: pair[1], overwrite=job.overwrite),
                           references=len(cache) if cache else 0)
    if result.plan.done:
        log(skipped_line(len(result.plan.done)))
    for line in result.plan.kept_lines("restore", "made with another model, references or input",
                                       "redo them with this one"):
        log(line)
    start = time.perf_counter()
    for (path, o), made in progress(result.plan.todo, "restoring", "face"):
        # the crop is read for its strength only when 'auto' needs it
        value = face_strength(strength, path, has_references=cache is not None)
        if value is None:  # blind
            restored = model.restore(path, references=None)
        else:
            restored = model.restore(path, references=cache, strength=value)
        folder_jobs.write_image(restored, o, made)
    result.seconds = time.perf_counter() - start
    if result.plan.todo:
        log(f"restored {len(result.plan.todo)} face(s) with {result.references} reference(s), "
            f"{result.seconds / len(result.plan.todo):.3f} s per face on {model.device}")
    return result
