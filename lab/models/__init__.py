"""The lab's models: a tiny contextual CLIP text encoder, the cell VAE and a small UNet, trained and cached here."""
