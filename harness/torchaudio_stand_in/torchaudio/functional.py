"""``torchaudio.functional`` of the import-only stand-in: importing works, any attribute raises ImportError."""


def __getattr__(name: str) -> object:
    raise ImportError(f"torchaudio.functional.{name}: this environment has only an import-only torchaudio stand-in")
