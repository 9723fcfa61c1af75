"""The boundary with files: image loading and checks, atomic writes, safetensors I/O."""
