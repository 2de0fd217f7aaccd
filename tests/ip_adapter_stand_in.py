"""A stand-in for ComfyUI_IPAdapter_plus's attention patching, for interop tests: a fake third-party pack.

Written from what cubiq/ComfyUI_IPAdapter_plus (9d076a3) does, not copied from it. What it mirrors:

- The node works on ``model.clone()`` and installs one ``attn2`` replace per key from a hard-coded list:
  SD1.x 2-tuple block keys ``("input", 1|2|4|5|7|8)``, ``("output", 3..11)``, ``("middle", 1)``; SDXL 3-tuple layer
  keys ``("input", 4|5, 0..1)``, ``("input", 7|8, 0..9)``, ``("output", 0..2, 0..9)``, ``("output", 3..5, 0..1)``,
  ``("middle", 1, 0..9)``. Each key gets its own ``module_key`` (1, 3, 5, …), i.e. its own K/V projections.
  (ComfyUI names the middle block ``("middle", 0)``, so the middle keys never match, as in the real pack.)
- ``set_model_patch_replace``: shallow-copies ``transformer_options``, its ``patches_replace`` and their ``attn2``
  dicts; when the key is free it puts a new ``Attn2Replace`` there and writes the copied options back; when the key
  holds any object it calls ``.add(callback, **kwargs)`` on it, in place, and writes nothing back.
- ``Attn2Replace.__call__``: ``optimized_attention(q, k, v, n_heads)``, then for each callback whose
  ``sigma_end ≤ σ ≤ sigma_start`` (σ = ``extra_options["sigmas"][0]``) adds ``callback(out, q, k, v, extra_options,
  **kwargs)``; casts to q's dtype. ``add`` appends the callback and sets each kwarg as an attribute.
- The callback: attention of q over the reference image's tokens, keys and values projected from the cond image
  embedding for cond chunks and the uncond one for uncond chunks (chosen by ``cond_or_uncond``), times ``weight``.

The image projections are seeded random matrices, and they record which layers the callback ran on. ComfyUI is
imported on first use, as by the pack, so collecting the tests does not need it.
"""

import torch

IMAGE_TOKENS = 4
EMBED_DIM = 64


def optimized_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """ComfyUI's selected attention backend, as the pack calls it (no precision, no transformer options)."""
    from comfy.ldm.modules.attention import optimized_attention as comfy_attention

    return comfy_attention(q, k, v, heads)


class ImageProjections:
    """The stand-in's "IP-Adapter model": per module key, K and V projections of the image embedding.

    Records the ``(block, id, index)`` of every layer the callback runs on. A model clone shares it.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []
        self._weights: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def key_value(self, module_key: str, embeds: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        if (module_key, dim) not in self._weights:
            g = torch.Generator().manual_seed(int(module_key))
            self._weights[(module_key, dim)] = tuple(torch.randn(EMBED_DIM, dim, generator=g) for _ in range(2))
        to_k, to_v = self._weights[(module_key, dim)]
        return embeds @ to_k.to(embeds), embeds @ to_v.to(embeds)

    def __deepcopy__(self, memo: dict) -> "ImageProjections":
        return self


def image_attention(out, q, k, v, extra_options, module_key, ipadapter, weight, cond, uncond, **kwargs):
    """The IP-Adapter term: q attends to the image tokens (cond or uncond embedding per chunk), times weight."""
    ipadapter.calls.append((*extra_options["block"], extra_options["block_index"]))
    chunks = extra_options["cond_or_uncond"]
    images = q.shape[0] // len(chunks)
    k_cond, v_cond = ipadapter.key_value(module_key, cond.to(q), q.shape[-1])
    k_uncond, v_uncond = ipadapter.key_value(module_key, uncond.to(q), q.shape[-1])
    ip_k = torch.cat([(k_cond, k_uncond)[c].repeat(images, 1, 1) for c in chunks])
    ip_v = torch.cat([(v_cond, v_uncond)[c].repeat(images, 1, 1) for c in chunks])
    return (optimized_attention(q, ip_k, ip_v, extra_options["n_heads"]) * weight).to(q.dtype)


class Attn2Replace:
    """IP-Adapter's attn2 replace: ComfyUI's attention plus each chained callback active at the current sigma."""

    def __init__(self, callback, **kwargs) -> None:
        self.callback = [callback]
        self.kwargs = [kwargs]

    def add(self, callback, **kwargs) -> None:
        self.callback.append(callback)
        self.kwargs.append(kwargs)
        for name, value in kwargs.items():
            setattr(self, name, value)

    def __call__(self, q, k, v, extra_options):
        out = optimized_attention(q, k, v, extra_options["n_heads"])
        sigma = extra_options["sigmas"].detach().cpu()[0].item() if "sigmas" in extra_options else 999999999.9
        for callback, kwargs in zip(self.callback, self.kwargs, strict=True):
            if kwargs["sigma_end"] <= sigma <= kwargs["sigma_start"]:
                out = out + callback(out, q, k, v, extra_options, **kwargs)
        return out.to(dtype=q.dtype)


def set_model_patch_replace(model, patch_kwargs: dict, key: tuple) -> None:
    options = model.model_options["transformer_options"].copy()
    options["patches_replace"] = options.get("patches_replace", {}).copy()
    options["patches_replace"]["attn2"] = options["patches_replace"].get("attn2", {}).copy()
    replaces = options["patches_replace"]["attn2"]
    if key not in replaces:
        replaces[key] = Attn2Replace(image_attention, **patch_kwargs)
        model.model_options["transformer_options"] = options
    else:
        replaces[key].add(image_attention, **patch_kwargs)


def ip_adapter_keys(sdxl: bool) -> list[tuple]:
    """The keys the pack patches, in its order (hard-coded, not read from the model)."""
    if not sdxl:
        return [("input", i) for i in (1, 2, 4, 5, 7, 8)] + [("output", i) for i in range(3, 12)] + [("middle", 1)]
    inputs = [("input", i, j) for i in (4, 5, 7, 8) for j in range(2 if i in (4, 5) else 10)]
    outputs = [("output", i, j) for i in range(6) for j in range(2 if i in (3, 4, 5) else 10)]
    return inputs + outputs + [("middle", 1, j) for j in range(10)]


def apply_ip_adapter(model, sdxl: bool, weight: float = 1.0, start_at: float = 0.0, end_at: float = 1.0, seed=0):
    """What an IP-Adapter node returns for ``model``: a clone with the image prompt's attention on every key.

    Returns the patched model and the projections (their ``calls`` list shows where the callback ran).
    """
    model = model.clone()
    ipadapter = ImageProjections()
    g = torch.Generator().manual_seed(seed)
    sampling = model.get_model_object("model_sampling")
    patch_kwargs = {
        "ipadapter": ipadapter,
        "weight": weight,
        "cond": torch.randn(1, IMAGE_TOKENS, EMBED_DIM, generator=g),
        "uncond": torch.zeros(1, IMAGE_TOKENS, EMBED_DIM),
        "sigma_start": sampling.percent_to_sigma(start_at),
        "sigma_end": sampling.percent_to_sigma(end_at),
    }
    for number, key in enumerate(ip_adapter_keys(sdxl)):
        patch_kwargs["module_key"] = str(number * 2 + 1)
        set_model_patch_replace(model, patch_kwargs, key)
    return model, ipadapter
