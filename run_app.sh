#!/usr/bin/env bash
# Run Nostalgia Studio on a fresh machine, set-up included: ./run_app.sh [app.py options, e.g. --port 7860]
#
# 1. creates the virtual environment (NOSTALGIA_VENV, default .venv) when it is missing;
# 2. installs requirements.txt (NOSTALGIA_TORCH=cpu first installs PyTorch's CPU wheels, which
#    saves about 3 GB of CUDA libraries on machines without an NVIDIA GPU);
# 3. downloads the published weights (NOSTALGIA_WEIGHTS, default "all"); any that cannot be reached
#    are replaced by FIXTURE weights, said loudly: the app then runs, but its outputs are not real;
# 4. launches the app (http://127.0.0.1:7860 unless --host/--port or NOSTALGIA_HOST/NOSTALGIA_PORT).
set -euo pipefail
cd "$(dirname "$0")"
export PIP_DISABLE_PIP_VERSION_CHECK=1 GRADIO_ANALYTICS_ENABLED=${GRADIO_ANALYTICS_ENABLED:-False}

VENV="${NOSTALGIA_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating the virtual environment $VENV"
  "${PYTHON:-python3}" -m venv "$VENV"
fi
PY="$VENV/bin/python"

echo "==> installing the requirements (first time: several minutes, about 7 GB with CUDA wheels)"
if [ "${NOSTALGIA_TORCH:-}" = "cpu" ]; then
  "$PY" -m pip install -q "torch>=2.6,<3" "torchvision>=0.21,<1" --index-url https://download.pytorch.org/whl/cpu
fi
"$PY" -m pip install -q -r requirements.txt

read -r -a WEIGHTS <<< "${NOSTALGIA_WEIGHTS:-all}"
echo "==> fetching the published weights: ${WEIGHTS[*]}"
if ! "$PY" -m weights download "${WEIGHTS[@]}"; then
  echo
  echo "!!! Some published weights could not be downloaded (no network, or a source that needs a manual"
  echo "!!! download: see the messages above and README.md). Writing FIXTURE weights in their place:"
  echo "!!! the app runs, but the outputs of those models are NOT real (the page shows a red banner)."
  echo
  "$PY" -m weights fixture --missing "${WEIGHTS[@]}"
fi

echo "==> launching the app"
exec "$PY" app.py "$@"
