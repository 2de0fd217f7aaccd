"""Cost of Prompt-to-Prompt Edit against the plain guided replay (Inversion Reconstruct) and stock sampling.

On a random-weight SD1.5 UNet with random text embeddings, from one plain-DDIM inversion of a random latent:
- stock: one KSampler-style pass (euler, normal schedule, the same guidance and number of steps), one image;
- reconstruct: Inversion Reconstruct (guided DDIM replay of the source prompt), one image;
- two prompts: the edit's replay of [source, target] with no attention control (what batching alone costs);
- p2p: replacement of one token in every cross-attention layer (first 80 % of the steps) and self-attention
  replacement (first 50 %), the prompt-to-prompt notebook's settings;
- p2p+blend+weight: the same plus local blending and a re-weighted word;
- p2p+word window: p2p with the swapped token on its own window (0.2-0.6), so the steps fall into three runs
  (all but that token, every token, all but that token) as with a ``word_cross_replace`` input.
The script prints median times and their ratios to stock and to reconstruct. An edit samples two images, so twice
the reconstruct time is the floor that batching sets; the rest is attention control.

    .venv/bin/python bench/s2edit/prompt_to_prompt.py                                    # tiny SD1.5 UNet, CPU
    .venv/bin/python bench/s2edit/prompt_to_prompt.py --preset full --device cuda         # full-size SD1.5 UNet, 512²
"""

import sys
from pathlib import Path

import torch

sys.path.append(str(Path(__file__).resolve().parents[2]))

from bench.common import compare, parser, random_conditioning, sd15_unet, start, unload  # noqa: E402

DDIM_STEPS = {"tiny": 10, "full": 50}
SWAPPED, WEIGHTED, BLENDED = 5, 6, (5,)


def plans(steps: int, source: torch.Tensor, target: torch.Tensor) -> dict:
    """Edit plans on random embeddings: token SWAPPED of the target replaces the source's (no CLIP needed)."""
    from precise_edit.core.s2edit.local_blend import blend_start_step
    from precise_edit.core.s2edit.prompt_to_prompt import CrossAttentionEdit, cross_replace_alpha, equalizer
    from precise_edit.core.s2edit.prompt_to_prompt import self_replace_steps as self_steps
    from precise_edit.nodes.attention.attention_effect import PromptTarget
    from precise_edit.nodes.attention.word_attention_inputs import tag_conditioning
    from precise_edit.nodes.s2edit.prompt_to_prompt_replay import EditPlan, LocalBlendPlan

    conditioning = tag_conditioning([[torch.cat([source, target]), {}]], "bench")
    common = dict(
        conditioning=conditioning,
        target=PromptTarget(tag="bench"),
        controller="replace",
        context_length=77,
        identity_masks=(),
    )
    p2p = dict(common, self_steps=self_steps(steps, 0.5))
    identity = CrossAttentionEdit(torch.eye(77))
    blend = LocalBlendPlan(BLENDED, BLENDED, 0.3, blend_start_step(steps))
    weighted = CrossAttentionEdit(torch.eye(77), weights=equalizer(77, {WEIGHTED: 2.0}))
    default = cross_replace_alpha(steps, 77, 0.8)
    window = cross_replace_alpha(steps, 77, 0.8, [((SWAPPED,), (0.2, 0.6))])
    return {
        "two prompts": EditPlan(
            **common, edit=identity, cross_alpha=cross_replace_alpha(steps, 77, 0.0), self_steps=range(0), blend=None
        ),
        "p2p": EditPlan(**p2p, edit=identity, cross_alpha=default, blend=None),
        "p2p+blend+weight": EditPlan(**p2p, edit=weighted, cross_alpha=default, blend=blend),
        "p2p+word window": EditPlan(**p2p, edit=identity, cross_alpha=window, blend=None),
    }


def main(argv: list[str] | None = None) -> int:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--steps", type=int, default=0, help="DDIM steps (0: 10 tiny, 50 full)")
    bench = start(__file__, arguments.parse_args(argv))
    import comfy.sample

    from precise_edit.nodes.s2edit.inversion import PLAIN_DDIM, invert, reconstruct
    from precise_edit.nodes.s2edit.prompt_to_prompt_replay import patch_model, sample_edit

    preset = bench.preset
    steps = bench.args.steps or DDIM_STEPS[preset.name]
    guidance = 7.5
    model = sd15_unet(preset)
    source_prompt, negative_prompt, swapped = random_conditioning(3)
    target_prompt = source_prompt.clone()
    target_prompt[:, SWAPPED] = swapped[0, 0]
    positive, negative = [[source_prompt, {}]], [[negative_prompt, {}]]
    g = torch.Generator().manual_seed(1)
    latent = torch.randn(1, 4, preset.latent, preset.latent, generator=g) / model.model.latent_format.scale_factor
    noise = comfy.sample.prepare_noise(latent, 0)

    with torch.inference_mode():
        inversion = invert(
            model,
            positive,
            negative,
            latent,
            steps=steps,
            guidance=guidance,
            inner_steps=0,
            epsilon=0.0,
            mode=PLAIN_DDIM,
        )
        patched = {
            name: patch_model(model, plan, inversion) + (plan,)
            for name, plan in plans(steps, source_prompt, target_prompt).items()
        }

        def stock() -> None:
            comfy.sample.sample(
                model, noise, steps, guidance, "euler", "normal", positive, negative, latent * 0, disable_pbar=True
            )

        runs = {"stock": stock, "reconstruct": lambda: reconstruct(model, inversion, positive)}
        for name, (variant, store, plan) in patched.items():
            runs[name] = lambda variant=variant, store=store, plan=plan: sample_edit(variant, store, plan, inversion)
        title = f"{preset.name} SD1.5 UNet, {preset.image}² px, {steps} steps, guidance {guidance}"
        compare(bench, title, runs, {"stock": "stock", "reconstruct": "reconstruct"})
    unload()
    return 0


if __name__ == "__main__":
    sys.exit(main())
