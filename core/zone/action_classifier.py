"""ZONE's action classifier A_I: an MLP on the instruction's CLIP text embedding that picks change / add / remove.

    logits_t = W2 · ReLU(W1 · h_t + b1) + b2        h_t ∈ R^768: token t of the IP2P text encoder's last_hidden_state

(``fc1`` 768→128, ``fc2`` 128→3, labels 0 = change, 1 = add, 2 = remove, as in ``msk_from_attn.py:MLPClassifier``).
The class steers the fused IP2P/MagicBrush guidance (ZONE Eq. 5): z = (z_ip2p + β z_mb)/(1 + β) with β = 0.2 for
remove and 0.01 otherwise, and decides which image SAM segments (the original for remove, the edited one otherwise).

Two decision rules turn the per-token logits [T, 3] into a class:

- ``released``: the released code's ``torch.max(outputs, 1)`` takes, for each class, the index of the token where
  that class's logit peaks (over all 77 positions, padding included), and ``tensor2label`` then takes the argmax of
  those three *indices*: the class whose peak token comes latest wins (ties: the lower class). This is not what the
  paper describes, but it is what the released checkpoint was used with.
- ``mean``: the argmax of the logits averaged over the instruction's own tokens (BOS … EOS, no padding), which is
  what this pack's trainer optimises.
"""

from collections.abc import Callable, Mapping
from typing import Literal

import torch

ACTIONS = ("change", "add", "remove")
BETA = {"change": 0.01, "add": 0.01, "remove": 0.2}
SAM_IMAGE = {"change": "edited", "add": "edited", "remove": "original"}
DecisionRule = Literal["released", "mean"]
DECISION_RULES: tuple[DecisionRule, ...] = ("released", "mean")
KEYS = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")


class ActionMLP(torch.nn.Module):
    """``Linear(width, hidden) → ReLU → Linear(hidden, 3)`` with the released parameter names."""

    def __init__(self, width: int = 768, hidden: int = 128) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(width, hidden)
        self.fc2 = torch.nn.Linear(hidden, len(ACTIONS))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Per-token logits [..., T, 3] of hidden states [..., T, width]."""
        return self.fc2(torch.relu(self.fc1(hidden_states)))


def mlp_from_state_dict(state: Mapping[str, torch.Tensor]) -> ActionMLP:
    """The MLP holding ``state`` (the released ``action_classifier.pth`` keys); ValueError if it is not one."""
    missing = [key for key in KEYS if key not in state]
    extra = sorted(set(state) - set(KEYS))
    if missing or extra:
        raise ValueError(
            f"not an action classifier (expected exactly {', '.join(KEYS)}): missing {missing}, unexpected {extra[:5]}"
        )
    hidden, width = state["fc1.weight"].shape
    if state["fc2.weight"].shape != (len(ACTIONS), hidden) or state["fc1.bias"].shape != (hidden,):
        raise ValueError(
            f"action classifier shapes do not fit: fc1.weight {tuple(state['fc1.weight'].shape)}, fc1.bias "
            f"{tuple(state['fc1.bias'].shape)}, fc2.weight {tuple(state['fc2.weight'].shape)} (expected [3, {hidden}])"
        )
    mlp = ActionMLP(width, hidden)
    mlp.load_state_dict({key: state[key].float() for key in KEYS})
    return mlp.eval()


def released_decision(logits: torch.Tensor) -> torch.Tensor:
    """Class indices [B] from per-token logits [B, T, 3] by the released rule (latest per-class peak token)."""
    _, peak_tokens = torch.max(logits, 1)
    return peak_tokens.argmax(-1)


def mean_decision(logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Class indices [B] from per-token logits [B, T, 3]: argmax of the mean over each row's first ``lengths``."""
    return pooled_logits(logits, lengths).argmax(-1)


def pooled_logits(logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """[B, 3]: the per-token logits [B, T, 3] averaged over positions < ``lengths`` [B] (BOS … EOS)."""
    positions = torch.arange(logits.shape[1], device=logits.device)
    keep = (positions[None] < lengths.to(logits.device)[:, None]).to(logits.dtype)
    return (logits * keep[..., None]).sum(1) / keep.sum(1, keepdim=True).clamp(min=1)


def held_out_split(labels: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Stratified (train, held-out) index lists: ``round(fraction · n_c)`` of each class c held out, seeded."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"held_out_fraction must be between 0 and 1 (exclusive), got {fraction}")
    generator = torch.Generator().manual_seed(seed)
    train, held_out = [], []
    for label in sorted(set(labels)):
        members = [index for index, value in enumerate(labels) if value == label]
        shuffled = [members[i] for i in torch.randperm(len(members), generator=generator).tolist()]
        cut = round(fraction * len(members))
        held_out += shuffled[:cut]
        train += shuffled[cut:]
    return sorted(train), sorted(held_out)


def padded(states: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, L_max, D] zero-padded stack of per-instruction states [L_i, D] and the lengths [N]."""
    lengths = torch.tensor([state.shape[0] for state in states])
    stack = torch.zeros(len(states), int(lengths.max()), states[0].shape[1])
    for index, state in enumerate(states):
        stack[index, : state.shape[0]] = state
    return stack, lengths


def train_action_mlp(
    states: torch.Tensor,
    lengths: torch.Tensor,
    labels: torch.Tensor,
    *,
    steps: int,
    learning_rate: float,
    batch_size: int,
    seed: int,
    hidden: int = 128,
    on_step: Callable[[int, float], None] = lambda step, loss: None,
) -> ActionMLP:
    """An ``ActionMLP`` trained with Adam on cross-entropy of the mean-pooled logits (the ``mean`` rule).

    ``states`` [N, L, D] (positions ≥ ``lengths`` are ignored), ``labels`` [N] in 0..2; mini-batches drawn without
    replacement from a seeded generator, reshuffled each epoch. Call under ``torch.enable_grad()``.
    """
    generator = torch.Generator().manual_seed(seed)
    mlp = ActionMLP(states.shape[-1], hidden)
    with torch.no_grad():
        for layer in (mlp.fc1, mlp.fc2):
            bound = layer.in_features**-0.5
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.uniform_(-bound, bound, generator=generator)
    mlp = mlp.to(states.device)
    optimizer = torch.optim.Adam(mlp.parameters(), lr=learning_rate)
    order = torch.empty(0, dtype=torch.long)
    for step in range(1, steps + 1):
        if order.numel() < batch_size:
            order = torch.cat([order, torch.randperm(states.shape[0], generator=generator)])
        batch, order = order[:batch_size], order[batch_size:]
        logits = pooled_logits(mlp(states[batch]), lengths[batch])
        loss = torch.nn.functional.cross_entropy(logits, labels[batch].to(states.device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        on_step(step, float(loss.detach()))
    return mlp.eval()
