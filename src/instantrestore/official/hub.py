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
    except Exception as exc:  # network, missing file, auth: say what to do instead
        raise RuntimeError(f"{spec}: download failed ({exc.__class__.__name__}: {exc}); check the address and your "
                           "connection, or download the file yourself and pass its local path") from exc
