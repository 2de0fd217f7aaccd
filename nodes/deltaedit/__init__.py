"""DeltaEdit (Lyu et al.): CLIP DeltaSpace directions and a Delta Mapper trained without text."""

from .nodes_direction import NODES as NODES_DIRECTION
from .nodes_mapper import NODES as NODES_MAPPER

NODES = [*NODES_DIRECTION, *NODES_MAPPER]
