"""S2Edit (Liu et al.): an identity token learned from one image, then null-text inversion and prompt-to-prompt editing
of the real image with the identity kept."""

from .nodes_edit import NODES as NODES_EDIT
from .nodes_identity import NODES as NODES_IDENTITY

NODES = [*NODES_IDENTITY, *NODES_EDIT]
