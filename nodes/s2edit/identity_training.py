"""S2Edit identity fine-tuning (§3.2) on a ComfyUI MODEL and CLIP, under ComfyUI's inference mode.

For each subject (the identity [I] and, for compositional editing, an attribute [A]) with clean latents x₀, an
enhanced prompt P̃ ("a photo of a [I] lady with glasses") and optionally an object mask M_obj, one step minimises

    L = Σ_subjects  ‖ε − ε_θ(x₀ + σ_t ε, t, τ_θ(P̃))‖²  +  λ |cos(e_P, e_[I])|

(``core.s2edit.identity_objective``, which draws each step's x₀, t, ε and sums the terms) over the placeholder's
input embedding, a LoRA of the UNet's attention projections and, optionally, a LoRA of the text encoder's attention
projections. This module supplies its inputs from ComfyUI's MODEL and CLIP: ε_θ, e_P and e_[I]. Spatial control
multiplies the placeholder's cross-attention probabilities by M_obj in every cross-attention layer (``TokenMask``),
A*_[I] = A_[I] ⊙ M_obj, at every training step.

How gradients get through ComfyUI's models without copying them: the UNet runs under ``differentiable_weights``; a
private copy of the text encoder's module tree, sharing its tensors, holds storage aliases of its parameters (the same
trick); the LoRA factors are ComfyUI's own trainable ``LoraDiff`` adapters, installed as weight wrappers on clones of
the MODEL and the CLIP patchers (as the stock Train LoRA node does), so the inputs stay untouched. The placeholder is
tokenized by a private copy of the CLIP tokenizer whose embedding lookup returns the trainable vectors for the
placeholder's embedding name, so the prompt goes through ComfyUI's own tokenization and embedding path.
"""

import copy
import functools
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

import comfy.conds
import comfy.samplers
import torch
from comfy.clip_model import CLIPLayer
from comfy.model_patcher import ModelPatcher
from comfy.sd import CLIP
from comfy.weight_adapter.lora import LoRAAdapter

from ...core.attention.attention_store import AttentionStore
from ...core.s2edit.diffusion_loss import noisy_sample, predicted_noise
from ...core.s2edit.identity_mask import attention_object_mask
from ...core.s2edit.identity_objective import PredictNoise, SubjectTerm, draw_noised_latent, identity_step_loss
from ..attention.attention_capture import AttentionCapture
from ..attention.attention_effect import PromptTarget, StepRange
from ..attention.cross_attention_patch import add_cross_attention_effect, cross_attention_layers
from ..attention.patch_install import COND_TAGS_KEY
from ..attention.prompt_tokens import TOKENIZER_ATTRIBUTES, WordPositions, locate_words
from ..attention.token_mask_effect import TokenMask
from ..common.differentiable_weights import _aliasable, storage_alias, with_differentiable_weights
from ..common.option_keys import Option, OptionKeys
from ..common.prepared_model import require_gradients, run_prepared, with_cross_attention
from .epsilon_model import check_epsilon_model
from .lora_file import lora_tensors, text_encoder_lora_name, unet_lora_name, unet_lora_names

UNET_TARGETS = (".to_q", ".to_k", ".to_v", ".to_out.0")
TEXT_TARGETS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj")
ALL_STEPS = StepRange(math.inf, 0.0)
MASK_PROBE_SIGMAS = 4
MASK_STRIDE = 32

VECTORS_OUTPUT = "eos_output_i_output"
VECTORS_INPUT = "eos_output_i_input_embedding"
VECTOR_OPTIONS = OptionKeys(
    Option(VECTORS_OUTPUT, "e_[I] is the token's row of the enhanced prompt's conditioning", "EOS output · [I] output"),
    Option(VECTORS_INPUT, "e_[I] is the token's learned input embedding", "EOS output · [I] input embedding"),
)
SCHEDULE_CONSTANT = "constant"
SCHEDULE_LINEAR = "linear"
SCHEDULE_OPTIONS = OptionKeys(
    Option(SCHEDULE_CONSTANT, "the same learning rates at every step"),
    Option(SCHEDULE_LINEAR, "linear to 0 over the steps", "linear to 0"),
)


@dataclass(frozen=True)
class SemanticControl:
    """The orthogonality term: weight λ, which vectors (a key of ``VECTOR_OPTIONS``), and the source prompt P
    ("" = each subject's own prompt without its placeholder)."""

    weight: float
    vectors: str
    source_prompt: str = ""


@dataclass(frozen=True)
class SpatialControl:
    """The attention-masking term: an object mask, or (None) the subject noun's thresholded attention."""

    mask: torch.Tensor | None
    threshold: float


@dataclass(frozen=True, kw_only=True)
class Subject:
    """One image set to learn a placeholder from: latents ``[B, C, h, w]`` (ComfyUI convention), the prompt with
    the placeholder, the noun that names the subject, an optional ``[1, H, W]`` mask at image size."""

    placeholder: str
    embedding_name: str
    prompt: str
    noun: str
    latents: torch.Tensor
    image_size: tuple[int, int]
    mask: torch.Tensor | None


@dataclass(frozen=True, kw_only=True)
class TrainingSettings:
    steps: int
    token_lr: float
    unet_lr: float
    text_encoder_lr: float
    rank: int
    train_text_encoder: bool
    seed: int
    schedule: str = SCHEDULE_CONSTANT


@dataclass
class StepReport:
    """What one step measured: the total, the reconstruction terms and each placeholder's |cos(e_P, e_[I])|."""

    step: int
    loss: float
    reconstruction: float
    cosines: dict[str, float]


@dataclass
class TrainingResult:
    """Learned vectors per placeholder ``{encoder key: [1, width]}``, the LoRA in file layout, the masks used,
    the per-step reports, and reference outputs of the trained state (for parity checks): the conditioning and
    pooled output of each enhanced prompt and the noise prediction on the first subject at a fixed σ and noise."""

    vectors: dict[str, dict[str, torch.Tensor]]
    lora: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor | None]
    reports: list[StepReport]
    conditioning: dict[str, torch.Tensor] = field(default_factory=dict)
    pooled: dict[str, torch.Tensor | None] = field(default_factory=dict)
    reference_epsilon: torch.Tensor | None = None


def remove_placeholder(prompt: str, placeholder: str) -> str:
    """The source prompt P from P̃: the placeholder dropped, spaces collapsed."""
    return " ".join(prompt.replace(placeholder, " ").split())


def encoder_keys(clip: CLIP) -> tuple[str, ...]:
    """The embedding keys of the CLIP's text encoders ("clip_l", and "clip_g" on SDXL)."""
    keys = tuple(
        getattr(clip.tokenizer, name).embedding_key
        for name in TOKENIZER_ATTRIBUTES
        if getattr(clip.tokenizer, name, None) is not None
    )
    if not keys:
        raise ValueError(
            f"clip: {type(clip.tokenizer).__name__} has no CLIP-L/H/G tokenizer; identity training needs the text "
            "encoder of an SD1.x, SD2.x or SDXL checkpoint"
        )
    return keys


def check_clip_matches_model(clip: CLIP, model: ModelPatcher, width: int) -> None:
    config = getattr(model.model, "model_config", None)
    context = None if config is None else config.unet_config.get("context_dim")
    if context is not None and context != width:
        raise ValueError(
            f"clip: this text encoder gives {width}-wide embeddings but the model's cross-attention expects "
            f"{context} (an SDXL CLIP with an SD1.x model, or the other way round); connect the CLIP of the "
            "same checkpoint"
        )


class PlaceholderTokenizer:
    """A private copy of the CLIP's tokenizer whose ``embedding:<name>`` lookup returns trainable vectors."""

    def __init__(self, clip: CLIP, vectors: dict[str, dict[str, torch.Tensor]]) -> None:
        self.tokenizer = copy.copy(clip.tokenizer)
        self.vectors = vectors
        for name in TOKENIZER_ATTRIBUTES:
            inner = getattr(self.tokenizer, name, None)
            if inner is not None:
                patched = copy.copy(inner)
                patched._try_get_embedding = self._lookup(inner)
                if patched.embedding_directory is None:
                    patched.embedding_directory = []
                setattr(self.tokenizer, name, patched)

    def _lookup(self, inner) -> Callable[[str], tuple]:
        """The tokenizer's own lookup with the embedding (always the first element) replaced for placeholder
        names, so the tuple keeps whatever else the ComfyUI at hand returns: ``(embed, leftover)`` or
        ``(embed, embedding_name, leftover)``."""

        def lookup(embedding_name: str) -> tuple:
            found = inner._try_get_embedding(embedding_name)
            name = embedding_name.split()[0]
            if name in self.vectors:
                return (self.vectors[name][inner.embedding_key], *found[1:])
            return found

        return lookup

    def tokenize(self, text: str) -> dict:
        return self.tokenizer.tokenize_with_weights(text)

    def locate(self, text: str, words: str) -> WordPositions:
        return locate_words(SimpleNamespace(tokenizer=self.tokenizer), text, words)


def _residual_forward(layer: CLIPLayer, x: torch.Tensor, mask=None, optimized_attention=None) -> torch.Tensor:
    """``CLIPLayer.forward`` without its in-place residual additions, which autograd cannot differentiate."""
    x = x + layer.self_attn(layer.layer_norm1(x), mask, optimized_attention)
    return x + layer.mlp(layer.layer_norm2(x))


def differentiable_text_encoder(module: torch.nn.Module) -> torch.nn.Module:
    """A private copy of the text encoder that can be backpropagated through under ComfyUI's inference mode: the
    module tree is copied (its own module, parameter and buffer tables; the tensors and ComfyUI's weight wrappers
    are shared, so no weight is duplicated), every plain parameter is a no-grad storage alias (see
    differentiable_weights) and every CLIP layer adds its residuals out of place (same values). The user's text
    encoder is never changed."""
    private = copy.copy(module)
    private._modules = {
        name: None if child is None else differentiable_text_encoder(child) for name, child in module._modules.items()
    }
    private._parameters = {
        name: storage_alias(parameter) if _aliasable(parameter) else parameter
        for name, parameter in module._parameters.items()
    }
    private._buffers = dict(module._buffers)
    if isinstance(private, CLIPLayer):
        private.forward = functools.partial(_residual_forward, private)
    return private


def encode_with_grad(clip: CLIP, tokens: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(cond [1, T, width], pooled)`` as CLIP Text Encode computes them, recording gradients."""
    clip.cond_stage_model.reset_clip_options()
    if clip.layer_idx is not None:
        clip.cond_stage_model.set_clip_options({"layer": clip.layer_idx})
    cond, pooled = differentiable_text_encoder(clip.cond_stage_model).encode_token_weights(tokens)[:2]
    return cond, pooled


def with_text_encoding(
    model: torch.nn.Module,
    cond: dict,
    *,
    cross_attention: torch.Tensor,
    pooled: torch.Tensor | None,
    latent: torch.Tensor,
) -> dict:
    """A processed cond carrying a new text encoding, as CLIP Text Encode and sampling would build it: the
    cross-attention context, and on models with an ADM vector ``y`` (SDXL) ``y`` re-encoded from the new pooled
    output at ``latent``'s image size, so the pooled vector follows the learned token (and passes its gradient)."""
    updated = with_cross_attention(cond, cross_attention)
    if pooled is None or "y" not in cond["model_conds"]:
        return updated
    params = {key: value for key, value in cond.items() if key != "model_conds"}
    params.update(pooled_output=pooled, device=latent.device, noise=latent)
    params.setdefault("width", latent.shape[-1] * 8)
    params.setdefault("height", latent.shape[-2] * 8)
    adm = model.encode_adm(**params)
    updated["model_conds"] = {**updated["model_conds"], "y": comfy.conds.CONDRegular(adm)}
    return updated


def add_lora_adapters(
    patcher: ModelPatcher, root: torch.nn.Module, *, targets: tuple[str, ...], rank: int, namer: Callable[[str], str]
) -> dict[str, torch.nn.Module]:
    """Trainable LoRA adapters (ComfyUI's ``LoraDiff``, α = r so the update is up @ down) as weight wrappers on
    every module of ``root`` whose name ends with one of ``targets``; returns ``{file name: adapter}``."""
    adapters = {}
    for name, module in root.named_modules():
        if (
            name.endswith(targets)
            and getattr(module, "weight", None) is not None
            and hasattr(module, "weight_function")
        ):
            adapter = LoRAAdapter.create_train(module.weight, rank=rank, alpha=float(rank))
            patcher.add_weight_wrapper(f"{name}.weight", adapter)
            adapters[namer(name)] = adapter
    if not adapters:
        raise ValueError(f"no attention projections ({', '.join(targets)}) to put a LoRA on in {type(root).__name__}")
    return adapters


def lora_state(adapters: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for name, adapter in adapters.items():
        state.update(lora_tensors(name, adapter.lora_up.weight, adapter.lora_down.weight, float(adapter.alpha)))
    return state


def initial_vectors(clip: CLIP, tokenizer: PlaceholderTokenizer, noun: str, keys: tuple[str, ...]) -> dict:
    """Each encoder's input embedding of the subject noun (the mean over its tokens), Textual-Inversion style."""
    vectors = {}
    for name in TOKENIZER_ATTRIBUTES:
        inner = getattr(tokenizer.tokenizer, name, None)
        if inner is None:
            continue
        ids = [t[0] for t in inner.tokenize_with_weights(noun)[0] if isinstance(t[0], int)]
        ids = [i for i in ids if i not in (inner.start_token, inner.end_token, inner.pad_token)]
        encoder = getattr(clip.cond_stage_model, inner.embedding_key, None)
        table = encoder.transformer.get_input_embeddings().weight
        vectors[inner.embedding_key] = table[ids].float().mean(0, keepdim=True).clone()
    return {key: vectors[key] for key in keys}


def eos_position(tokenizer: PlaceholderTokenizer, tokens: dict) -> int:
    """The first end-of-text token of the first chunk (where CLIP's pooled output is read)."""
    inner = next(getattr(tokenizer.tokenizer, n) for n in TOKENIZER_ATTRIBUTES if hasattr(tokenizer.tokenizer, n))
    chunk = tokens[next(iter(tokens))][0]
    return next(
        i for i, entry in enumerate(chunk) if i > 0 and isinstance(entry[0], int) and entry[0] == inner.end_token
    )


def mask_layers(model: ModelPatcher) -> list:
    """The 16×16-at-512-px layers (token grid 1/32 of the image); the coarsest layers on a UNet without them."""
    layers = cross_attention_layers(model)
    stride = MASK_STRIDE if any(layer.image_stride == MASK_STRIDE for layer in layers) else None
    stride = stride or max(layer.image_stride for layer in layers)
    return [layer for layer in layers if layer.image_stride == stride]


def object_masks(
    model: ModelPatcher,
    clip: CLIP,
    subjects: list[Subject],
    tokenizer: PlaceholderTokenizer,
    *,
    threshold: float,
    seed: int,
) -> dict[str, torch.Tensor]:
    """M_obj of each subject without a mask: its noun's cross-attention on its noised latents (the 16×16-equivalent
    layers, ``MASK_PROBE_SIGMAS`` noise levels), normalised by the maximum and thresholded."""
    layers = mask_layers(model)
    masks = {}
    for subject in subjects:
        if subject.mask is not None:
            continue
        text = subject.prompt.replace(subject.placeholder, f"embedding:{subject.embedding_name}")
        positions = tokenizer.locate(text, subject.noun)
        store = AttentionStore(words=positions.words)
        capture = AttentionCapture(
            store=store,
            context_length=positions.context_length,
            heads=None,
            steps=ALL_STEPS,
            target=PromptTarget(role="all"),
        )
        probe = add_cross_attention_effect(model, capture, layers)
        tokens = tokenizer.tokenize(text)
        with torch.no_grad():
            cond, pooled = encode_with_grad(clip, tokens)
        conditioning = [[cond, {"pooled_output": pooled}]]
        generator = torch.Generator().manual_seed(seed)

        def work(guider, model_options, latent, generator=generator):
            sampling = guider.inner_model.model_sampling
            for level in torch.linspace(0.2, 0.8, MASK_PROBE_SIGMAS).tolist():
                sigma = sampling.percent_to_sigma(level) * torch.ones(latent.shape[0], device=latent.device)
                noise = torch.randn(latent.shape, generator=generator).to(latent)
                with torch.no_grad():
                    comfy.samplers.calc_cond_batch(
                        guider.inner_model,
                        [guider.conds["positive"]],
                        noisy_sample(latent, noise, sigma),
                        sigma,
                        model_options,
                    )
            return latent

        store.reset()
        run_prepared(probe, conditioning, conditioning, subject.latents, sigmas=torch.tensor([1.0, 0.0]), work=work)
        maps = store.word_maps(subject.image_size)[:, 0]
        masks[subject.placeholder] = attention_object_mask(maps, threshold)
    return masks


def train_identity(
    model: ModelPatcher,
    clip: CLIP,
    subjects: list[Subject],
    settings: TrainingSettings,
    *,
    semantic: SemanticControl | None,
    spatial: SpatialControl | None,
    on_step: Callable[[StepReport], None],
    probe: AttentionStore | None = None,
) -> TrainingResult:
    """Run the fine-tuning; must be called under ``torch.inference_mode(False)``. Nothing of the inputs changes.

    ``on_step`` sees each step's report as it ends; Cancel stops the run by raising from it (the node's
    TrainerProgress checks ComfyUI's interrupt flag there).

    ``probe``: an AttentionStore that records, at every step, the first subject's (the identity's) cross-attention
    probabilities after spatial control (all layers), for checking A*_[I] = A_[I] ⊙ M_obj; ``on_step`` sees it
    filled with that step's maps.
    """
    check_epsilon_model(model, "identity training")
    keys = encoder_keys(clip)
    vectors: dict[str, dict[str, torch.Tensor]] = {}
    tokenizer = PlaceholderTokenizer(clip, vectors)
    for subject in subjects:
        vectors[subject.embedding_name] = initial_vectors(clip, tokenizer, subject.noun, keys)
    texts = {s.placeholder: s.prompt.replace(s.placeholder, f"embedding:{s.embedding_name}") for s in subjects}
    placeholder_positions = {
        s.placeholder: tokenizer.locate(texts[s.placeholder], f"embedding:{s.embedding_name}") for s in subjects
    }
    for s in subjects:
        try:
            tokenizer.locate(texts[s.placeholder], s.noun)
        except ValueError as error:
            raise ValueError(f"subject of {s.placeholder} ({s.noun!r}): {error}") from None
    with torch.no_grad():
        static = {p: encode_with_grad(clip, tokenizer.tokenize(texts[p])) for p in texts}
    for cond, _ in static.values():
        check_clip_matches_model(clip, model, cond.shape[-1])

    masks: dict[str, torch.Tensor | None] = {s.placeholder: s.mask for s in subjects}
    if spatial is not None:
        masks.update(object_masks(model, clip, subjects, tokenizer, threshold=spatial.threshold, seed=settings.seed))

    trained_model = with_differentiable_weights(model)
    trained_clip = clip.clone()
    names = unet_lora_names(model.model.model_config.unet_config)
    with torch.random.fork_rng():  # the LoRA initialisation follows the seed, not the global generator
        torch.manual_seed(settings.seed)
        unet_adapters = add_lora_adapters(
            trained_model,
            trained_model.model,
            targets=UNET_TARGETS,
            rank=settings.rank,
            namer=lambda n: unet_lora_name(n, names),
        )
        text_adapters = {}
        if settings.train_text_encoder:
            text_adapters = add_lora_adapters(
                trained_clip.patcher,
                trained_clip.cond_stage_model,
                targets=TEXT_TARGETS,
                rank=settings.rank,
                namer=lambda n: text_encoder_lora_name(n, keys),
            )

    tags = {s.placeholder: uuid.uuid4().hex for s in subjects}
    layers = cross_attention_layers(model)
    for s in subjects:
        positions = placeholder_positions[s.placeholder]
        target = PromptTarget(tag=tags[s.placeholder])
        if spatial is not None:
            mask = TokenMask(
                tokens=tuple(positions.all_positions),
                context_length=positions.context_length,
                mask=masks[s.placeholder],
                strength=1.0,
                renormalize=False,
                steps=ALL_STEPS,
                target=target,
            )
            trained_model = add_cross_attention_effect(trained_model, mask, layers)
        if probe is not None and s is subjects[0]:
            capture = AttentionCapture(
                store=probe, context_length=positions.context_length, heads=None, steps=ALL_STEPS, target=target
            )
            trained_model = add_cross_attention_effect(trained_model, capture, layers)
            probe.words[s.placeholder] = positions.all_positions

    token_parameters = []
    for per_encoder in vectors.values():
        for key, value in per_encoder.items():
            per_encoder[key] = torch.nn.Parameter(value.clone())
            token_parameters.append(per_encoder[key])
    groups = [{"params": token_parameters, "lr": settings.token_lr}]
    groups.append(
        {
            "params": [p for a in unet_adapters.values() for p in a.parameters() if p.requires_grad],
            "lr": settings.unet_lr,
        }
    )
    if text_adapters:
        groups.append(
            {
                "params": [p for a in text_adapters.values() for p in a.parameters() if p.requires_grad],
                "lr": settings.text_encoder_lr,
            }
        )
    optimizer = torch.optim.Adam(groups)
    # "linear to 0": step k (1-based) runs at lr · (1 − (k − 1) / steps), so the last updates are small and the
    # final state does not carry the step-to-step swing of |cos| around its kink at 0.
    decay = (lambda done: 1.0 - done / settings.steps) if settings.schedule == SCHEDULE_LINEAR else (lambda done: 1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, decay)

    conditioning = [
        [static[s.placeholder][0], {"pooled_output": static[s.placeholder][1], COND_TAGS_KEY: (tags[s.placeholder],)}]
        for s in subjects
    ]
    source_texts = {
        s.placeholder: (
            semantic.source_prompt.strip()
            if semantic and semantic.source_prompt.strip()
            else remove_placeholder(s.prompt, s.placeholder)
        )
        for s in subjects
    }
    generator = torch.Generator().manual_seed(settings.seed)
    reports: list[StepReport] = []
    result = TrainingResult({}, {}, masks, reports)

    needs_grad = semantic is not None and semantic.weight > 0 and settings.train_text_encoder

    def prompt_embedding(placeholder: str, fixed: dict) -> torch.Tensor:
        """e_P: the EOS row of the source prompt's conditioning (recomputed while the text encoder learns)."""
        if placeholder not in fixed:
            tokens = tokenizer.tokenize(source_texts[placeholder])
            with torch.set_grad_enabled(needs_grad):
                embedding = encode_with_grad(trained_clip, tokens)[0][0, eos_position(tokenizer, tokens)]
            if not settings.train_text_encoder:
                fixed[placeholder] = embedding
            return embedding
        return fixed[placeholder]

    def work(guider, model_options, latent):
        require_gradients(model_options, "identity training")
        trained_clip.load_model()
        sampling = guider.inner_model.model_sampling
        device = latent.device
        clean = {s.placeholder: guider.inner_model.process_latent_in(s.latents.to(device)) for s in subjects}
        fixed_prompt: dict[str, torch.Tensor] = {}

        def noise_predictor(cond: dict) -> PredictNoise:
            """ε_θ(·, ·, c) through ComfyUI's model call, which returns x̂₀."""

            def predict_noise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
                denoised = comfy.samplers.calc_cond_batch(guider.inner_model, [[cond]], x, sigma, model_options)[0]
                return predicted_noise(x, denoised, sigma)

            return predict_noise

        def subject_term(index: int, s: Subject) -> SubjectTerm:
            """The subject's draw, ε_θ under its enhanced prompt (encoded with gradients), e_P and e_[I]."""
            cond, pooled = encode_with_grad(trained_clip, tokenizer.tokenize(texts[s.placeholder]))
            sample = draw_noised_latent(clean[s.placeholder], sampling.sigmas, generator)
            positive = guider.conds["positive"][index]
            cond_k = with_text_encoding(
                guider.inner_model, positive, cross_attention=cond.to(device), pooled=pooled, latent=sample.clean
            )
            if semantic is not None and semantic.vectors == VECTORS_INPUT:
                token_vector = torch.cat([vectors[s.embedding_name][k][0] for k in keys]).to(cond)
            else:
                token_vector = cond[0, placeholder_positions[s.placeholder].all_positions[0]]
            return SubjectTerm(
                sample=sample,
                predict_noise=noise_predictor(cond_k),
                prompt_embedding=prompt_embedding(s.placeholder, fixed_prompt),
                token_embedding=token_vector,
            )

        weight = semantic.weight if semantic is not None else 0.0
        for step in range(1, settings.steps + 1):
            if probe is not None:
                probe.reset()
            loss = identity_step_loss([subject_term(index, s) for index, s in enumerate(subjects)], weight)
            optimizer.zero_grad(set_to_none=True)
            loss.total.backward()
            optimizer.step()
            scheduler.step()
            cosines = dict(zip((s.placeholder for s in subjects), loss.cosines, strict=True))
            report = StepReport(step, float(loss.total.detach()), loss.reconstruction, cosines)
            reports.append(report)
            on_step(report)
        with torch.no_grad():
            for s in subjects:
                cond, pooled = encode_with_grad(trained_clip, tokenizer.tokenize(texts[s.placeholder]))
                result.conditioning[s.placeholder] = cond.detach().cpu()
                result.pooled[s.placeholder] = None if pooled is None else pooled.detach().cpu()
            first = subjects[0]
            x0 = clean[first.placeholder][:1]
            noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(settings.seed)).to(x0)
            sigma = sampling.percent_to_sigma(0.5) * torch.ones(1, device=device)
            pooled = result.pooled[first.placeholder]
            cond_k = with_text_encoding(
                guider.inner_model,
                guider.conds["positive"][0],
                cross_attention=result.conditioning[first.placeholder].to(device),
                pooled=None if pooled is None else pooled.to(device),
                latent=x0,
            )
            result.reference_epsilon = noise_predictor(cond_k)(noisy_sample(x0, noise, sigma), sigma).cpu()
        return latent

    first_latent = subjects[0].latents
    run_prepared(trained_model, conditioning, conditioning, first_latent, sigmas=torch.tensor([1.0, 0.0]), work=work)
    result.vectors = {name: {k: v.detach().cpu().clone() for k, v in per.items()} for name, per in vectors.items()}
    result.lora = {**lora_state(unet_adapters), **lora_state(text_adapters)}
    return result
