"""Segment Anything (Kirillov et al. 2023) rebuilt from nothing but its state dict.

The official checkpoints (``sam_vit_b_01ec64.pth``, ``sam_vit_l_0b3195.pth``, ``sam_vit_h_4b8939.pth``) are plain
state dicts of ``segment_anything.modeling.Sam``. Every size that matters is readable from the tensors:

- image encoder: width ``E`` and patch ``p`` from ``patch_embed.proj.weight`` [E, 3, p, p], depth from the number of
  ``blocks.*``, the token grid ``g`` from ``pos_embed`` [1, g, g, E] (input size = g·p), the head width from the
  relative position tables ``rel_pos_h`` [2s − 1, E / heads] (so heads = E / that width), the global-attention blocks
  as those whose table spans the whole grid (s = g) and the window size from the others (s = window), the MLP ratio
  from ``mlp.lin1`` and the neck (= prompt) width from ``neck.0``;
- prompt encoder: the mask-downscaling width from ``mask_downscaling.3``;
- mask decoder: transformer depth, MLP width and attention down-sampling from ``transformer.layers.*``, the number of
  mask outputs from ``mask_tokens``, the IoU head's depth and width from ``iou_prediction_head.layers.*``.

Two numbers are not stored in any tensor: the mask decoder's head count (8 in every released SAM) and the pixel
normalisation (ImageNet mean/std, non-persistent buffers); both take the released values. ViT-B/L/H are recognised
by width and depth; any other consistent SAM (e.g. a tiny test model) is built as ``custom``.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

import torch
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

DECODER_HEADS = 8
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
RELEASED_VARIANTS = {(768, 12): "vit_b", (1024, 24): "vit_l", (1280, 32): "vit_h"}
REQUIRED_KEYS = (
    "image_encoder.patch_embed.proj.weight",
    "image_encoder.pos_embed",
    "image_encoder.neck.0.weight",
    "prompt_encoder.mask_downscaling.3.weight",
    "mask_decoder.mask_tokens.weight",
    "mask_decoder.transformer.layers.0.mlp.lin1.weight",
)


@dataclass(frozen=True)
class SamArchitecture:
    """The constructor arguments of a ``Sam``; ``variant`` is vit_b / vit_l / vit_h or custom."""

    variant: str
    image_size: int
    patch_size: int
    encoder_width: int
    encoder_depth: int
    encoder_heads: int
    mlp_ratio: float
    qkv_bias: bool
    window_size: int
    global_attn_indexes: tuple[int, ...]
    prompt_width: int
    mask_in_chans: int
    decoder_depth: int
    decoder_mlp_width: int
    attention_downsample_rate: int
    multimask_outputs: int
    iou_head_depth: int
    iou_head_width: int


def _count(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    indices = {key[len(prefix) :].split(".", 1)[0] for key in state if key.startswith(prefix)}
    return len({int(index) for index in indices if index.isdigit()})


def infer_architecture(state: Mapping[str, torch.Tensor]) -> SamArchitecture:
    """The architecture of the SAM whose state dict is ``state``; ValueError if it is not a segment-anything SAM."""
    try:
        return _read_architecture(state)
    except KeyError as error:
        raise ValueError(f"incomplete Segment Anything checkpoint: no tensor {error.args[0]!r}") from error


def _read_architecture(state: Mapping[str, torch.Tensor]) -> SamArchitecture:
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise ValueError(
            "not a Segment Anything checkpoint (segment-anything's Sam state dict, e.g. sam_vit_h_4b8939.pth): "
            f"missing {', '.join(missing)}"
        )
    if "image_encoder.blocks.0.attn.rel_pos_h" not in state:
        raise ValueError("this SAM's image encoder has no relative position tables; only the released layout is read")
    patch = state["image_encoder.patch_embed.proj.weight"]
    width, patch_size = patch.shape[0], patch.shape[-1]
    grid = state["image_encoder.pos_embed"].shape[1]
    depth = _count(state, "image_encoder.blocks.")
    spans = [(state[f"image_encoder.blocks.{i}.attn.rel_pos_h"].shape[0] + 1) // 2 for i in range(depth)]
    windows = {span for span in spans if span != grid}
    if len(windows) > 1:
        raise ValueError(f"the SAM image encoder blocks use several window sizes {sorted(windows)}")
    head_width = state["image_encoder.blocks.0.attn.rel_pos_h"].shape[1]
    prompt_width = state["image_encoder.neck.0.weight"].shape[0]
    decoder_width = state["mask_decoder.mask_tokens.weight"].shape[1]
    if decoder_width != prompt_width:
        raise ValueError(
            f"SAM mask decoder width {decoder_width} differs from the image embedding width {prompt_width}"
        )
    cross_width = state["mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight"].shape[0]
    return SamArchitecture(
        variant=RELEASED_VARIANTS.get((width, depth), "custom"),
        image_size=grid * patch_size,
        patch_size=patch_size,
        encoder_width=width,
        encoder_depth=depth,
        encoder_heads=width // head_width,
        mlp_ratio=state["image_encoder.blocks.0.mlp.lin1.weight"].shape[0] / width,
        qkv_bias="image_encoder.blocks.0.attn.qkv.bias" in state,
        window_size=windows.pop() if windows else 0,
        global_attn_indexes=tuple(i for i, span in enumerate(spans) if span == grid),
        prompt_width=prompt_width,
        mask_in_chans=state["prompt_encoder.mask_downscaling.3.weight"].shape[0],
        decoder_depth=_count(state, "mask_decoder.transformer.layers."),
        decoder_mlp_width=state["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0],
        attention_downsample_rate=decoder_width // cross_width,
        multimask_outputs=state["mask_decoder.mask_tokens.weight"].shape[0] - 1,
        iou_head_depth=_count(state, "mask_decoder.iou_prediction_head.layers."),
        iou_head_width=state["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0],
    )


def build_sam(arch: SamArchitecture) -> Sam:
    """A ``Sam`` with ``arch``'s sizes (parameters as the constructors initialise them), in eval mode."""
    grid = arch.image_size // arch.patch_size
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=arch.encoder_depth,
            embed_dim=arch.encoder_width,
            img_size=arch.image_size,
            mlp_ratio=arch.mlp_ratio,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=arch.encoder_heads,
            patch_size=arch.patch_size,
            qkv_bias=arch.qkv_bias,
            use_rel_pos=True,
            global_attn_indexes=arch.global_attn_indexes,
            window_size=arch.window_size,
            out_chans=arch.prompt_width,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=arch.prompt_width,
            image_embedding_size=(grid, grid),
            input_image_size=(arch.image_size, arch.image_size),
            mask_in_chans=arch.mask_in_chans,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=arch.multimask_outputs,
            transformer=TwoWayTransformer(
                depth=arch.decoder_depth,
                embedding_dim=arch.prompt_width,
                mlp_dim=arch.decoder_mlp_width,
                num_heads=DECODER_HEADS,
                attention_downsample_rate=arch.attention_downsample_rate,
            ),
            transformer_dim=arch.prompt_width,
            iou_head_depth=arch.iou_head_depth,
            iou_head_hidden_dim=arch.iou_head_width,
        ),
        pixel_mean=list(PIXEL_MEAN),
        pixel_std=list(PIXEL_STD),
    )
    return sam.eval()


def sam_from_state_dict(state: Mapping[str, torch.Tensor]) -> tuple[Sam, SamArchitecture]:
    """The fp32 ``Sam`` holding ``state`` exactly (strict load) and its architecture."""
    arch = infer_architecture(state)
    sam = build_sam(arch)
    floats = {key: value.float() if value.is_floating_point() else value for key, value in state.items()}
    result = sam.load_state_dict(floats, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"the checkpoint does not fit a {arch.variant} SAM: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]} (SAM-HQ, MobileSAM and SAM 2 use other layouts)"
        )
    return sam, arch
