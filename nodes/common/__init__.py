"""ComfyUI plumbing every method shares: the V3 API entry, socket types, save names, model folders, MASK inputs, trainer
progress and running a model as for sampling. No node classes."""
