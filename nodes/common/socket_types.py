"""Custom socket types that carry Precise Edit objects between nodes."""

from .comfy_node_api import io

AttentionMaps = io.Custom("PE_ATTENTION")
InvertedLatent = io.Custom("PE_INVERSION")
JointClip = io.Custom("PE_JOINT_CLIP")
DeltaDirectionType = io.Custom("PE_DELTA")
DeltaMapperType = io.Custom("PE_DELTA_MAPPER")
IdentityType = io.Custom("PE_IDENTITY")
MCDMType = io.Custom("PE_MCDM")
SemanticControlType = io.Custom("PE_SEMANTIC_CONTROL")
SpatialControlType = io.Custom("PE_SPATIAL_CONTROL")
SamModelType = io.Custom("SAM_MODEL")
PaddedLayoutType = io.Custom("PE_PADDING")
