"""Test harness for Precise Edit: an in-process and a server ComfyUI, tiny random-weight models, workflow tools."""
