"""Custom socket types that carry Precise Edit objects between nodes."""

from comfy_api.latest import io

AttentionMaps = io.Custom("PE_ATTENTION")
