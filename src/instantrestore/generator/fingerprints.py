"""Fingerprints: short digests that tell weights, references and files apart.

One module for every digest the package records (reference caches, album caches, provenance of
restored files), so that two places never disagree about what "the same model" means.

A tensor's digest is sha256 over its name, dtype, shape and raw bytes: exact, and the same on
every machine, thread count and device. Hashing SD-Turbo's base weights (3.8 GB in float32) takes
about 2 s on one core, so a model keeps its digests while its tensors are unmodified (checked by
their version counters, storage and dtype), and checkpoints carry the digests of
what they hold: ``save_pretrained`` records them, loading reads them back instead of hashing.
Collecting the named tensors to check takes ~20 ms on SD-Turbo, too much for every forward with
a reference cache; so a kept digest also watches the slots its tensors sit in (see :class:`_Watch`)
and is trusted without collecting them while no slot, tensor or module registration changed.

The reference key (:func:`reference_key`) is the one definition of "a reference cache fits this
model": the reference branch's weights and every setting that changes its keys/values.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping

import torch

from ..utils.files import file_digest  # noqa: F401 (re-exported: every digest from one module)
from .state import adapter_state_dict, base_weights

if TYPE_CHECKING:
    from .one_step import OneStepGenerator

ALGORITHM = "sha256-tensors/1"  # stored beside recorded digests: another algorithm's are ignored
KEY_CHARS = 16
PARTS: dict[str, Callable[[Any], dict[str, torch.Tensor]]] = {
    "base": lambda model: base_weights(model, keep_vars=True),  # the reference branch's weights
    "adapters": adapter_state_dict,  # the trained tensors (and the prompt embedding)
}
_RECORDS = "_digest_records"  # attribute of the model holding its digests


def tensor_digest(tensor: torch.Tensor, name: str = "") -> bytes:
    """sha256 (32 bytes) of a tensor's name, dtype, shape and raw bytes in row-major order."""
    t = tensor.detach()
    header = f"{name}|{str(t.dtype).removeprefix('torch.')}|{list(t.shape)}".encode()
    flat = t.cpu().contiguous().reshape(-1).view(torch.uint8)
    digest = hashlib.sha256(header)
    digest.update(memoryview(flat.numpy()))
    return digest.digest()


def state_digest(state: Mapping[str, torch.Tensor],
                 convert: Callable[[torch.Tensor], torch.Tensor] | None = None) -> str:
    """Digest (hex) of named tensors, in name order; ``convert`` is applied to each tensor first.

    Tensors are hashed on ``torch.get_num_threads()`` threads (hashlib releases the GIL); each
    tensor's digest is its own, so the result does not depend on the thread count.
    """
    names = sorted(state)
    one = (lambda n: tensor_digest(state[n], n)) if convert is None else (lambda n: tensor_digest(convert(state[n]), n))
    workers = max(1, min(torch.get_num_threads(), len(names)))
    if workers == 1:
        parts = [one(n) for n in names]
    else:
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(one, names))
    digest = hashlib.sha256(ALGORITHM.encode())
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


def tensors_digest(tensors: Iterable[torch.Tensor]) -> str:
    """A short exact fingerprint of some tensors, in the order given (dtype, shape and bytes)."""
    digest = hashlib.sha256(ALGORITHM.encode())
    for t in tensors:
        digest.update(tensor_digest(t))
    return digest.hexdigest()[:KEY_CHARS]


# ------------------------------------------------------------------ digests a model keeps
@dataclass
class _Record:
    """The digest of one part of a model while its tensors are as ``key`` saw them. ``casts``:
    digests of the same tensors with every floating one cast to another dtype, recorded where
    that cast is exact (the precision a checkpoint was stored in)."""

    key: tuple
    digest: str
    casts: dict[str, str] = field(default_factory=dict)
    watch: "_Watch | None" = None


# bumped by torch's global hooks whenever any module anywhere registers a parameter, buffer or
# submodule (setattr, register_*, add_module): the structure a watch was built on may have changed
_registrations = [0]


def _registered(*args: Any) -> None:
    _registrations[0] += 1


for _hook in ("register_module_parameter_registration_hook", "register_module_buffer_registration_hook",
              "register_module_module_registration_hook"):
    getattr(torch.nn.modules.module, _hook)(_registered)


class _Watch:
    """Where the tensors of a kept digest sit (each module's ``_parameters``/``_buffers`` table and
    key) and what they were: a cheap check that none was replaced (even by writing the table
    directly), modified in place, moved or cast, and that no module registered anything since."""

    def __init__(self, model: Any, state: Mapping[str, torch.Tensor]) -> None:
        wanted = {id(t) for t in state.values()}
        slots, seen = [], set()
        for module in model.modules():
            for table in (module._parameters, module._buffers):
                for name, t in table.items():
                    if t is not None and id(t) in wanted:
                        slots.append((table, name, weakref.ref(t), t._version, t.data_ptr(), t.dtype))
                        seen.add(id(t))
        self.slots = tuple(slots) if seen == wanted else None  # a tensor outside any module: never trusted
        self.registrations = _registrations[0]

    def unchanged(self) -> bool:
        """True while every watched tensor is where and as it was, and nothing was registered."""
        if self.slots is None or self.registrations != _registrations[0]:
            return False
        for table, name, ref, version, ptr, dtype in self.slots:
            t = table.get(name)
            if t is None or t is not ref() or t._version != version or t.data_ptr() != ptr or t.dtype != dtype:
                return False
        return True


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _validity_key(state: Mapping[str, torch.Tensor]) -> tuple | None:
    """What changes when a tensor is modified in place, replaced, moved or cast; None when a tensor
    keeps no version counter (made under ``torch.inference_mode``), so nothing can be trusted."""
    if any(t.is_inference() for t in state.values()):
        return None
    return tuple((name, t._version, t.data_ptr(), t.dtype) for name, t in state.items())


def _records(model: Any) -> dict[str, _Record]:
    records = model.__dict__.get(_RECORDS)
    if records is None:
        records = model.__dict__[_RECORDS] = {}
    return records


def part_digest(model: OneStepGenerator, part: str) -> str:
    """Digest (hex) of one part of the model (``"base"`` or ``"adapters"``): the kept or recorded
    one while its tensors are unmodified, else hashed now (and kept)."""
    records = _records(model)
    held = records.get(part)
    if held is not None and held.watch is not None and held.watch.unchanged():
        return held.digest  # the hot path: no tensors collected
    state = PARTS[part](model)
    key = _validity_key(state)
    if key is not None and held is not None and held.key == key:
        held.watch = _Watch(model, state)
        return held.digest
    digest = state_digest(state)
    if key is None:
        records.pop(part, None)
    else:
        records[part] = _Record(key, digest, watch=_Watch(model, state))
    return digest


def weights_fingerprint(model: OneStepGenerator) -> str:
    """Fingerprint of the weights the reference branch runs: the base UNet and VAE (adapters off)
    and the prompt embedding. Adapters never run in the reference branch, so a reference cache
    stays valid across LoRA checkpoints that share base weights."""
    digest = hashlib.sha256(part_digest(model, "base").encode())
    digest.update(tensor_digest(model.prompt_embeds, "prompt_embeds"))  # small: hashed every time
    return digest.hexdigest()[:KEY_CHARS]


def model_fingerprint(model: OneStepGenerator) -> str:
    """A short fingerprint of everything in ``model`` that changes its output: the reference
    branch's weights and the trained adapters."""
    return f"{weights_fingerprint(model)}-{part_digest(model, 'adapters')[:KEY_CHARS]}"


def digests_to_record(model: OneStepGenerator, part: str, stored: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """What a checkpoint file records about the tensors ``stored`` (part ``part`` of ``model``, maybe
    cast to a storage precision): the digest of the float32 tensors a load builds from them, and of
    those cast to the storage precision (what ``from_pretrained(dtype=...)`` then holds)."""
    current = PARTS[part](model)
    names = [n for n in stored if n in current]
    same = all(stored[n].dtype == current[n].dtype == torch.float32 or not current[n].is_floating_point()
               for n in names)
    subset = {n: stored[n] for n in names}
    to_float = (lambda t: t.float() if t.is_floating_point() else t)  # noqa: E731
    record = {"algorithm": ALGORITHM, "float32": part_digest(model, part) if same else state_digest(subset, to_float)}
    precisions = {stored[n].dtype for n in names if stored[n].is_floating_point()} - {torch.float32}
    for dtype in precisions:
        cast = (lambda t, d=dtype: t.float().to(d) if t.is_floating_point() else t)  # noqa: E731
        record[_dtype_name(dtype)] = state_digest(subset, cast)
    return record


def remember(model: OneStepGenerator, part: str, recorded: Mapping[str, str] | str | None) -> None:
    """Take a checkpoint's recorded digests for ``part`` (as :func:`digests_to_record` wrote them,
    or its JSON), right after its tensors were copied into ``model``. Records of another algorithm,
    or for another precision than the model's tensors have, are ignored."""
    if isinstance(recorded, str):
        recorded = json.loads(recorded)
    if not recorded or recorded.get("algorithm") != ALGORITHM:
        return
    state = PARTS[part](model)
    key = _validity_key(state)
    dtypes = {t.dtype for t in state.values() if t.is_floating_point()}
    if key is None or len(dtypes) != 1 or _dtype_name(next(iter(dtypes))) not in recorded:
        return
    casts = {k: v for k, v in recorded.items() if k not in ("algorithm", "float32")}
    _records(model)[part] = _Record(key, recorded[_dtype_name(next(iter(dtypes)))],
                                    casts if _dtype_name(next(iter(dtypes))) == "float32" else {})


@contextlib.contextmanager
def kept_across_move(model: OneStepGenerator) -> Iterator[None]:
    """Around ``model.to(...)``: keep the digests of parts whose values the move cannot change
    (same dtypes on another device), or whose new precision has a recorded digest."""
    records = _records(model)
    valid = {}
    for part, held in records.items():
        state = PARTS[part](model)
        if _validity_key(state) == held.key:
            valid[part] = (held, [t.dtype for t in state.values()])
    yield
    for part, (held, dtypes) in valid.items():
        state = PARTS[part](model)
        key = _validity_key(state)
        if key is None:
            continue
        now = [t.dtype for t in state.values()]
        floating = {t.dtype for t in state.values() if t.is_floating_point()}
        if now == dtypes:
            records[part] = _Record(key, held.digest, held.casts)
        elif len(floating) == 1 and _dtype_name(next(iter(floating))) in held.casts:
            records[part] = _Record(key, held.casts[_dtype_name(next(iter(floating)))])


# ------------------------------------------------------------------ reference caches
def reference_settings(model: OneStepGenerator) -> dict[str, Any]:
    """Everything a reference cache's keys/values depend on: the reference branch's weights and
    the settings that change what it computes from the same images."""
    cfg = model.config
    return {"weights": weights_fingerprint(model), "backbone": cfg.backbone, "profile": cfg.profile,
            "timestep": cfg.branch_timestep, "image_size": cfg.image_size, "latent_sampling": cfg.latent_sampling,
            "reference_noise": cfg.reference_noise, "freeu": cfg.freeu,
            "scaling_factor": cfg.vae.get("scaling_factor"), "dtype": str(model.dtype)}


def settings_key(settings: Mapping[str, Any]) -> str:
    """The short key of some settings (sorted JSON, sha256)."""
    text = json.dumps(dict(settings), sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:KEY_CHARS]


def reference_key(model: OneStepGenerator) -> str:
    """The key of the reference caches ``model`` makes and accepts (:func:`reference_settings`):
    two models with equal keys encode the same references to the same keys/values."""
    return settings_key(reference_settings(model))


@contextlib.contextmanager
def kept_through(model: OneStepGenerator, part: str = "base") -> Iterator[None]:
    """Around an in-place change that leaves what ``part`` computes unchanged — the LoRA updates
    merged into the base weights (the reference branch still runs the base weights, see
    ``adapters.adapters_disabled``), or a new memory layout: keep its digest, re-keyed to the
    tensors as they are afterwards, instead of hashing them again."""
    digest = part_digest(model, part)
    yield
    key = _validity_key(PARTS[part](model))
    if key is not None:
        _records(model)[part] = _Record(key, digest)
