"""Feature-preserving portrait editing (Chen et al.): the multi-conditioned diffusion model, its paired data, training,
guidance and self-generated edit mask."""

from .nodes_data import NODES as NODES_DATA
from .nodes_edit import NODES as NODES_EDIT
from .nodes_train import NODES as NODES_TRAIN

NODES = [*NODES_DATA, *NODES_TRAIN, *NODES_EDIT]
