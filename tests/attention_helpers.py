"""Helpers shared by the attention tests: encode, sample, and apply our nodes on the tiny SD1.5 model."""

import torch

SD15 = "v1-5-pruned-emaonly-fp16.safetensors"
PROMPT = "a photo of a cat wearing a red hat"
LATENT_HW = (8, 12)


def encode(clip, text: str) -> list:
    return clip.encode_from_tokens_scheduled(clip.tokenize(text))


def left_half_mask(height: int = 64, width: int = 96) -> torch.Tensor:
    mask = torch.zeros(1, height, width)
    mask[:, :, : width // 2] = 1.0
    return mask


def sample(model, positive, negative, steps: int = 3, seed: int = 7, cfg: float = 5.0) -> torch.Tensor:
    import comfy.sample

    latent = torch.zeros(1, 4, *LATENT_HW)
    noise = comfy.sample.prepare_noise(latent, seed)
    return comfy.sample.sample(
        model, noise, steps, cfg, "euler", "normal", positive, negative, latent, disable_pbar=True, seed=seed
    )


def inject(model, clip, words: str, mask: torch.Tensor, **options):
    from precise_edit.nodes.attention.nodes_attention import AttentionMaskInjector

    settings = dict(strength=1.0, start_percent=0.0, end_percent=1.0, target="positive", renormalize=False)
    settings.update(options)
    return AttentionMaskInjector.execute(model, clip, PROMPT, words, mask, **settings).result


def capture(model, clip, words: str, **options):
    from precise_edit.nodes.attention.nodes_attention import CaptureCrossAttention

    settings = dict(layers="all", heads="all", start_percent=0.0, end_percent=1.0, target="positive")
    settings.update(options)
    return CaptureCrossAttention.execute(model, clip, PROMPT, words, **settings).result


def grid_zero(mask: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    from precise_edit.core.attention.token_grid import mask_to_token_grid

    return mask_to_token_grid(mask, grid)[0] == 0
