"""The fixed prompt's embedding, computed as the authors' code does: once, by SD-Turbo's CLIP
text encoder, in fp32 (their generator and reference UNets are conditioned on nothing else)."""
from __future__ import annotations

import torch

from ..generator import model_io
from ..generator.config import DEFAULT_PROMPT

# SD-Turbo's tokenizer (OpenCLIP's BPE; padded with "!" = 0 to 77) on DEFAULT_PROMPT, computed
# once with open_clip's SimpleTokenizer, so a checkpoint's own text encoder can embed it offline.
PROMPT_TOKEN_IDS = ([49406, 320, 1400, 268, 3027, 1125, 539, 320, 2533, 282, 4774, 267, 279, 330, 49407]
                    + [0] * 62)


def _text_encoder_from_state(state: dict[str, torch.Tensor]):
    """A CLIPTextModel shaped by its own tensors (SD-Turbo's: 1024 wide, 23 layers, 16 heads)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    # transformers < 5 names the tensors "text_model.*" (the authors' checkpoints); newer ones do not.
    state = {k.removeprefix("text_model."): v for k, v in state.items()}
    layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layers."))
    hidden = state["embeddings.token_embedding.weight"].shape[1]
    config = CLIPTextConfig(
        vocab_size=state["embeddings.token_embedding.weight"].shape[0], hidden_size=hidden,
        intermediate_size=state["encoder.layers.0.mlp.fc1.weight"].shape[0], num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64), max_position_embeddings=state["embeddings.position_embedding.weight"].shape[0],
        hidden_act="gelu", projection_dim=hidden)
    model = CLIPTextModel(config)
    prefix = "text_model." if next(iter(model.state_dict())).startswith("text_model.") else ""
    missing, unexpected = model.load_state_dict({prefix + k: v.float() for k, v in state.items()}, strict=False)
    if [k for k in missing if "position_ids" not in k] or unexpected:
        raise ValueError(f"the checkpoint's text encoder does not fit CLIPTextModel: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}")
    return model.eval()


def prompt_embedding(source: str | None, prompt: str = DEFAULT_PROMPT,
                     checkpoint_text_encoder: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """[1, 77, D]: from ``source`` (a diffusers base, hub id or directory, with tokenizer/ and
    text_encoder/), else from a checkpoint's own text-encoder tensors with the stored token ids."""
    if source is not None:
        return model_io.encode_prompt(source, prompt)
    if not checkpoint_text_encoder:
        raise ValueError("no text encoder to embed the prompt: pass text_encoder= (e.g. stabilityai/sd-turbo) "
                         "or prompt_embeds=")
    if prompt != DEFAULT_PROMPT:
        raise ValueError(f"token ids are stored for the default prompt only; embed {prompt!r} with text_encoder=")
    encoder = _text_encoder_from_state(checkpoint_text_encoder)
    with torch.no_grad():
        return encoder(torch.tensor([PROMPT_TOKEN_IDS]))[0].float()
