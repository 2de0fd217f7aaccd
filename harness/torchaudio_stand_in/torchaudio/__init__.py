"""Import-only torchaudio for the ComfyUI 0.33.0 test environment (see ../README.md): importing works, using fails."""


def __getattr__(name: str) -> object:
    raise ImportError(f"torchaudio.{name}: this environment has only an import-only torchaudio stand-in (no audio)")
