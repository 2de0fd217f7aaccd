"""ZONE (Li et al.): instruction edits localised by InstructPix2Pix's attention, Region-IoU over SAM segments and the
FFT edge smoother."""

from .nodes_composite import NODES as NODES_COMPOSITE
from .nodes_instruct import NODES as NODES_INSTRUCT
from .nodes_locate import NODES as NODES_LOCATE
from .nodes_segment import NODES as NODES_SEGMENT

NODES = [*NODES_INSTRUCT, *NODES_LOCATE, *NODES_SEGMENT, *NODES_COMPOSITE]
