"""The MCDM training step in pure torch: dropout buckets and reconstruction pairs as the release draws them, the
ε-prediction loss, and a resumed run that continues bit for bit."""

import torch

from precise_edit.core.mcdm.training import (
    Bucket,
    MCDMTraining,
    NullConditions,
    TrainingOptions,
    TrainingSet,
    assemble_batch,
    diffuse,
    dropout_buckets,
    mcdm_loss,
)

N, H, W = 6, 4, 4


def training_set(seed: int = 0) -> tuple[TrainingSet, NullConditions]:
    g = torch.Generator().manual_seed(seed)
    data = TrainingSet(
        source_latents=torch.randn(N, 4, H, W, generator=g),
        target_latents=torch.randn(N, 4, H, W, generator=g),
        source_clip=torch.randn(N, 5, 8, generator=g),
        prompts=torch.randn(N, 3, 8, generator=g),
        source_prompts=torch.randn(N, 3, 8, generator=g),
    )
    nulls = NullConditions(
        torch.full((4, H, W), -7.0), torch.full((4, H, W), -8.0), torch.full((5, 8), -9.0), torch.full((3, 8), -10.0)
    )
    return data, nulls


def test_dropout_buckets_are_the_releases_four_five_percent_slices():
    u = torch.tensor([0.0, 0.05, 0.0500001, 0.1, 0.15, 0.2, 0.2000001, 0.99])
    assert dropout_buckets(u, 0.2).tolist() == [1, 1, 2, 2, 3, 4, 0, 0]
    draws = dropout_buckets(torch.rand(40_000, generator=torch.Generator().manual_seed(1)), 0.2)
    shares = torch.bincount(draws, minlength=5).float() / draws.numel()
    torch.testing.assert_close(shares, torch.tensor([0.8, 0.05, 0.05, 0.05, 0.05]), atol=6e-3, rtol=0)


def test_batch_drops_exactly_the_conditions_of_each_bucket_and_reconstructs():
    data, nulls = training_set()
    indices = torch.tensor([0, 1, 2, 3, 4, 5])
    # samples 0-3: the four buckets; 4: kept; 5: a reconstruction pair
    dropout = torch.tensor([0.01, 0.07, 0.12, 0.18, 0.9, 0.9])
    reconstruction = torch.tensor([0.9, 0.9, 0.9, 0.9, 0.9, 0.01])
    batch = assemble_batch(
        data, nulls, indices, reconstruction_uniform=reconstruction, dropout_uniform=dropout, options=TrainingOptions()
    )
    assert batch.buckets.tolist() == [Bucket.CONCAT, Bucket.EMBEDDING, Bucket.PROMPT, Bucket.ALL, 0, 0]
    assert batch.reconstruction.tolist() == [False] * 5 + [True]
    concat_null = [bool((batch.concat[i] == -7).all()) for i in range(6)]
    adapter_null = [bool((batch.adapter_latent[i] == -8).all()) and bool((batch.clip[i] == -9).all()) for i in range(6)]
    prompt_null = [bool((batch.text[i] == -10).all()) for i in range(6)]
    assert concat_null == [True, False, False, True, False, False]
    assert adapter_null == [False, True, False, True, False, False]
    assert prompt_null == [False, False, True, True, False, False]
    assert torch.equal(batch.concat[4], data.source_latents[4]) and torch.equal(batch.clip[2], data.source_clip[2])
    assert torch.equal(batch.adapter_latent[0], data.source_latents[0])
    assert torch.equal(batch.target[:5], data.target_latents[:5])
    assert torch.equal(batch.target[5], data.source_latents[5]) and torch.equal(batch.text[5], data.source_prompts[5])
    assert torch.equal(batch.text[4], data.prompts[4])


def test_loss_is_epsilon_mse_on_the_ddpm_forward_process():
    data, nulls = training_set()
    batch = assemble_batch(
        data,
        nulls,
        torch.arange(3),
        reconstruction_uniform=torch.ones(3),
        dropout_uniform=torch.ones(3),
        options=TrainingOptions(),
    )
    alphas = torch.linspace(0.99, 0.01, 1000)
    noise, t = torch.randn(3, 4, H, W), torch.tensor([0, 500, 999])
    seen = {}

    def denoiser(x, timesteps, context):
        seen.update(x=x, t=timesteps, context=context)
        return x[:, :4] * 0.5

    loss = mcdm_loss(
        denoiser, lambda clip, latent: clip + latent.mean(), batch, noise=noise, timesteps=t, alphas_cumprod=alphas
    )
    noisy = alphas[t].sqrt().view(-1, 1, 1, 1) * batch.target + (1 - alphas[t]).sqrt().view(-1, 1, 1, 1) * noise
    torch.testing.assert_close(seen["x"], torch.cat([noisy, batch.concat], 1))
    assert torch.equal(seen["t"], t)
    expected_context = torch.cat([batch.text, batch.clip + batch.adapter_latent.mean()], 1)
    torch.testing.assert_close(seen["context"], expected_context)
    torch.testing.assert_close(loss, ((noisy * 0.5 - noise) ** 2).mean())
    torch.testing.assert_close(diffuse(batch.target, noise, t, alphas), noisy)


class TinyDenoiser(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(8, 4, 3, padding=1)
        self.text = torch.nn.Linear(8, 4)

    def forward(self, x, t, context):
        return self.conv(x) * 30 + self.text(context.mean(1))[:, :, None, None] + t.view(-1, 1, 1, 1) * 1e-3


class TinyAdapter(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(8, 8)

    def forward(self, clip, latent):
        return self.linear(clip) + latent.mean()


def training(seed: int = 3) -> MCDMTraining:
    data, nulls = training_set()
    torch.manual_seed(0)
    unet, adapter = TinyDenoiser(), TinyAdapter()
    options = TrainingOptions(batch_size=3, learning_rate=1e-2)
    return MCDMTraining(
        unet,
        adapter,
        data=data,
        nulls=nulls,
        alphas_cumprod=torch.linspace(0.99, 0.01, 1000),
        options=options,
        seed=seed,
    )


def test_a_resumed_run_continues_bit_for_bit():
    first = training()
    losses = [first.step() for _ in range(3)]
    tensors, metadata = first.state()
    unet_weights = {k: v.clone() for k, v in first.unet.state_dict().items()}
    adapter_weights = {k: v.clone() for k, v in first.adapter.state_dict().items()}
    resumed = training(seed=99)  # the seed does not matter: the saved generator state replaces it
    resumed.unet.load_state_dict(unet_weights)
    resumed.adapter.load_state_dict(adapter_weights)
    resumed.load_state(tensors, metadata)
    assert resumed.step_count == 3
    continued = [resumed.step() for _ in range(3)]
    uninterrupted = training()
    assert losses + continued == [uninterrupted.step() for _ in range(6)]
    for a, b in zip(resumed.unet.parameters(), uninterrupted.unet.parameters(), strict=True):
        assert torch.equal(a, b)
    other_seed = training(seed=4)
    assert [other_seed.step() for _ in range(3)] != losses


def test_unet_gradients_are_clipped_to_norm_one():
    run = training()
    run.step()
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in run.unet.parameters()]))
    assert 0.99 < float(norm) <= 1.0 + 1e-5  # this denoiser's raw gradient norm is far above 1
