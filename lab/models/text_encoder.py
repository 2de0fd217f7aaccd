"""The lab's text encoder: ComfyUI's own SD1 CLIP text model (a causal transformer) at a tiny width, random weights.

It is a contextual encoder: every token's output row mixes in the rows before it (causal self-attention), so
swapping one word changes the rows of all the words after it, as in SD's CLIP-L, which is why prompt-to-prompt's
attention injection matters. Because it is ComfyUI's SD1ClipModel with ComfyUI's CLIP tokenizer (key ``clip_l``),
CLIPTextEncode, embeddings (``embedding:name``) and the pack's nodes take it as any SD1 CLIP. The weights stay the
seeded random ones; the UNet learns to read them.
"""

from __future__ import annotations

from typing import Any

import torch

from lab.models.comfy_setup import import_comfy

WIDTH = 64
CONFIG: dict[str, Any] = {
    "architectures": ["CLIPTextModel"],
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "dropout": 0.0,
    "eos_token_id": 49407,
    "hidden_act": "quick_gelu",
    "hidden_size": WIDTH,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 4 * WIDTH,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77,
    "model_type": "clip_text_model",
    "num_attention_heads": 4,
    "num_hidden_layers": 3,
    "pad_token_id": 1,
    "projection_dim": WIDTH,
    "torch_dtype": "float32",
    "vocab_size": 49408,
}


def clip_target() -> Any:
    """ComfyUI's ClipTarget for the lab encoder: SD1 tokenizer (embedding width ``WIDTH``) and SD1ClipModel."""
    import_comfy()
    import comfy.sd1_clip
    import comfy.supported_models_base

    class LabTokenizer(comfy.sd1_clip.SDTokenizer):
        def __init__(self, embedding_directory: str | None = None, tokenizer_data: dict | None = None) -> None:
            super().__init__(
                embedding_directory=embedding_directory,
                embedding_size=WIDTH,
                embedding_key="clip_l",
                tokenizer_data=tokenizer_data or {},
            )

    class LabSD1Tokenizer(comfy.sd1_clip.SD1Tokenizer):
        def __init__(self, embedding_directory: str | None = None, tokenizer_data: dict | None = None) -> None:
            super().__init__(
                embedding_directory=embedding_directory, tokenizer_data=tokenizer_data or {}, tokenizer=LabTokenizer
            )

    class LabClipModel(comfy.sd1_clip.SD1ClipModel):
        def __init__(self, device: str = "cpu", dtype: torch.dtype | None = None, model_options: dict | None = None):
            super().__init__(
                device=device,
                dtype=dtype,
                model_options=model_options or {},
                clip_model=comfy.sd1_clip.SDClipModel,
                textmodel_json_config=CONFIG,
            )

    return comfy.supported_models_base.ClipTarget(LabSD1Tokenizer, LabClipModel)


def random_state_dict(seed: int) -> dict[str, torch.Tensor]:
    """CLIP's initialisation from a seeded generator: embeddings N(0, 0.02) (positions 0.01), linear weights
    N(0, 0.02), zero biases, unit layer norms. ComfyUI's layers leave weights uninitialised, so every tensor is set."""
    import_comfy()
    model = clip_target().clip(device="cpu", dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in model.state_dict().items():
        if name.endswith("position_ids"):
            state[name] = tensor.clone()
        elif name.endswith("logit_scale"):
            state[name] = torch.tensor(4.6052)
        elif "norm" in name:
            state[name] = torch.ones_like(tensor) if name.endswith("weight") else torch.zeros_like(tensor)
        elif name.endswith("bias"):
            state[name] = torch.zeros_like(tensor)
        else:
            std = 0.01 if "position_embedding" in name else 0.02
            state[name] = torch.randn(tensor.shape, generator=generator, dtype=torch.float32) * std
    return state


def build_clip(state_dict: dict[str, torch.Tensor], embedding_directory: str | None = None) -> Any:
    """A ComfyUI CLIP holding the lab encoder with ``state_dict``."""
    import_comfy()
    import comfy.sd

    clip = comfy.sd.CLIP(target=clip_target(), embedding_directory=embedding_directory)
    missing, unexpected = clip.load_sd(state_dict, full_model=True)
    if missing or unexpected:
        raise RuntimeError(f"lab text encoder state dict does not fit: missing {missing}, unexpected {unexpected}")
    return clip
