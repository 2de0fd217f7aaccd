"""ComfyUI node classes of Precise Edit: they adapt ComfyUI types and call ``core``."""
