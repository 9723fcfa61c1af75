"""The authors' released checkpoints (snap-research/InstantRestore) in this package.

``read_official`` opens either file format their code writes, without running code from it;
``load_official`` builds the generator in the ``official`` inference profile from it;
``convert_official`` writes it as an instantrestore checkpoint folder (safetensors only, no hub
access needed to restore); ``resolve_checkpoint`` turns ``hf://owner/repo/file`` into a local file.
"""
from .checkpoint import OfficialCheckpoint, OfficialCheckpointError, read_official
from .convert import convert_official, load_official
from .hub import HF_PREFIX, resolve_checkpoint

__all__ = ["HF_PREFIX", "OfficialCheckpoint", "OfficialCheckpointError", "convert_official", "load_official",
           "read_official", "resolve_checkpoint"]
