"""The Identity Token Trainer node as the S2Edit training tests queue it: prompt, subject and tiny settings."""

PROMPT = "a photo of a [I] lady with glasses"
INITIAL_PROMPT = "a photo of a lady lady with glasses"  # [I] starts as the noun's embedding, the LoRA as zero
STEPS = 4


def trainer(**inputs) -> dict:
    settings = dict(
        prompt=PROMPT,
        subject="lady",
        steps=STEPS,
        token_learning_rate=5e-2,
        unet_learning_rate=2e-3,
        text_encoder_learning_rate=1e-3,
        rank=2,
        train_text_encoder=False,
        seed=0,
        name="pe_test",
    )
    links = dict(model=["1", 0], clip=["1", 1], vae=["1", 2], image=["2", 0])
    return {"class_type": "PreciseEdit_IdentityTokenTrainer", "inputs": {**links, **settings, **inputs}}
