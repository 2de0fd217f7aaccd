"""Files never seen half-written: the pack's file writing, kept apart from the maths.

No paper: the safetensors files the pack saves (identity embeddings, MCDM models, Delta Mappers, action classifiers)
and the MCDM pairs folder's images are written to a temporary file in their folder and then renamed, so a reader
finds either the old file or the complete new one.

Index (what → function):
- write any file atomically (temporary file, then rename; mode 0644) → atomic_file.write_atomically
- safetensors.torch.save_file through that rename                  → atomic_file.save_safetensors_atomically

Modules:
- atomic_file.py — atomic writes of a file and of a safetensors file.
"""
