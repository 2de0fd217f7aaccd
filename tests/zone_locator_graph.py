"""The ZONE locator graph the tests share: IP2P → Instruction Locator → Fused Instruct Guider →
SamplerCustomAdvanced → Edit Region From Attention, on the tiny InstructPix2Pix checkpoint."""

from __future__ import annotations

IP2P = "instruct-pix2pix-00-22000.safetensors"
INSTRUCTION = "make the hat blue"


def locator_graph(
    *,
    size: int = 32,
    steps: int = 2,
    sampler: str = "dpmpp_2m",
    scheduler: str = "karras",
    branches: str = "null_instruction",
    layers: str = "zone",
    rule: str = "custom",
    threshold: int = 256,
) -> dict:
    """The API prompt; node ``"6"`` is the locator, ``"11"`` the sampler and ``"12"`` the edit region."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": IP2P}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": INSTRUCTION}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "4": {"class_type": "EmptyImage", "inputs": {"width": size, "height": size, "batch_size": 1, "color": 3825548}},
        "5": {"class_type": "VAEEncode", "inputs": {"pixels": ["4", 0], "vae": ["1", 2]}},
        "6": {
            "class_type": "PreciseEdit_InstructionLocator",
            "inputs": {
                "model": ["1", 0],
                "clip": ["1", 1],
                "instruction": INSTRUCTION,
                "branches": branches,
                "layers": layers,
            },
        },
        "7": {
            "class_type": "PreciseEdit_FusedInstructGuider",
            "inputs": {
                "model": ["6", 0],
                "positive": ["2", 0],
                "negative": ["3", 0],
                "image": ["5", 0],
                "text_guidance": 7.5,
                "image_guidance": 1.5,
                "beta": 0.01,
            },
        },
        "8": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": sampler}},
        "9": {
            "class_type": "BasicScheduler",
            "inputs": {"model": ["1", 0], "scheduler": scheduler, "steps": steps, "denoise": 1.0},
        },
        "10": {"class_type": "RandomNoise", "inputs": {"noise_seed": 42}},
        "11": {
            "class_type": "SamplerCustomAdvanced",
            "inputs": {
                "noise": ["10", 0],
                "guider": ["7", 0],
                "sampler": ["8", 0],
                "sigmas": ["9", 0],
                "latent_image": ["7", 1],
            },
        },
        "12": {
            "class_type": "PreciseEdit_EditRegionFromAttention",
            "inputs": {"attention": ["6", 1], "latent": ["11", 0], "rule": rule, "threshold": threshold},
        },
    }
