#!/usr/bin/env bash
# Run the test suite on a fresh machine, set-up included: ./run_tests.sh [pytest options, e.g. -x -q]
#
# 1. installs the system packages the tests use when they are missing and apt-get is there
#    (Chromium for the browser tests, espeak-ng for Story's offline narration, DejaVu fonts for
#    captions; with sudo when not root);
# 2. creates the virtual environment (NOSTALGIA_VENV, default .venv) when it is missing and installs
#    requirements.txt, requirements-dev.txt and requirements-scale.txt (Ray) (NOSTALGIA_TORCH=cpu:
#    PyTorch's CPU wheels first);
# 3. with NOSTALGIA_LINT=1, runs `ruff check .` (CI does);
# 4. runs `python -m pytest` with the options given.
set -euo pipefail
cd "$(dirname "$0")"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1

missing=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  if command -v apt-get >/dev/null 2>&1 && { [ -z "$sudo" ] || command -v sudo >/dev/null 2>&1; }; then
    echo "==> installing ${missing[*]} (apt-get)"
    ($sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null) \
      || echo "warning: could not install ${missing[*]}; the tests that need them will say so" >&2
  else
    echo "warning: no apt-get: install ${missing[*]} yourself; the tests that need them will say so" >&2
  fi
fi

VENV="${NOSTALGIA_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating the virtual environment $VENV"
  "${PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
PY="$VENV/bin/python"
echo "==> installing the requirements"
if [ "${NOSTALGIA_TORCH:-}" = "cpu" ]; then
  "$PY" -m pip install -q "torch>=2.6,<3" "torchvision>=0.21,<1" --index-url https://download.pytorch.org/whl/cpu
fi
"$PY" -m pip install -q -r requirements.txt -r requirements-dev.txt -r requirements-scale.txt
"$PY" -m pip check || true

if [ "${NOSTALGIA_LINT:-0}" = "1" ]; then
  echo "==> ruff check ."
  "$VENV/bin/ruff" check .
fi
echo "==> python -m pytest $*"
exec "$PY" -m pytest "$@"
