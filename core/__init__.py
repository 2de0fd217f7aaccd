"""Pure-torch maths of the Precise Edit methods. Nothing here imports ComfyUI."""
