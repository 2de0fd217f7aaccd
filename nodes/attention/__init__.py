"""Word-level cross-attention on ComfyUI models: the attention patches and the nodes that mask, capture and turn a
word's attention into masks."""

from .nodes_attention import NODES as NODES_ATTENTION

NODES = [*NODES_ATTENTION]
