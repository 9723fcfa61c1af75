"""``hf://owner/repo/path/in/repo`` checkpoint addresses, fetched into Hugging Face's cache."""
from __future__ import annotations

from pathlib import Path

HF_PREFIX = "hf://"


def _download(repo_id: str, filename: str) -> str:
    from huggingface_hub import hf_hub_download

    return hf_hub_download(repo_id=repo_id, filename=filename)


def resolve_checkpoint(spec: str) -> Path:
    """A local path for ``spec``: ``hf://owner/repo/file`` is downloaded (once; the hub cache keeps
    it), anything else is taken as a local path."""
    if not spec.startswith(HF_PREFIX):
        return Path(spec)
    parts = spec[len(HF_PREFIX):].split("/")
    if len(parts) < 3 or not all(parts):
        raise ValueError(f"{spec}: expected hf://OWNER/REPO/FILE, e.g. hf://hwdz15508/InstantRestore/final_model_ckpt.pt")
    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
    try:
        return Path(_download(repo_id, filename))
    except Exception as exc:  # network, missing file, auth: a missing resource, said with what to do
        raise download_error(spec, exc) from exc


def download_error(spec: str, exc: Exception) -> OSError:
    """Why ``spec`` could not be fetched, as an OSError naming the address and the fix: no network
    (or offline mode), no such repository or file, or another hub failure."""
    from huggingface_hub import errors

    yourself = "or download the file where there is network and pass its local path"
    if isinstance(exc, (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled, ConnectionError, TimeoutError)):
        return ConnectionError(f"{spec}: cannot download it: the Hugging Face hub cannot be reached (no network, "
                               f"or HF_HUB_OFFLINE is set) and it is not in the local hub cache; connect and run "
                               f"again, {yourself}")
    if isinstance(exc, (errors.RepositoryNotFoundError, errors.EntryNotFoundError, errors.RevisionNotFoundError)):
        return FileNotFoundError(f"{spec}: no such repository or file on the Hugging Face hub (or it is private); "
                                 "check the address, e.g. hf://hwdz15508/InstantRestore/final_model_ckpt.pt")
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return OSError(f"{spec}: download failed ({type(exc).__name__}: {first}); check the address and your "
                   f"connection, {yourself}")
