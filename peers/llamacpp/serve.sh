#!/usr/bin/env bash
# llama.cpp's server on SmolLM2 in one weight format, with every GGUF LoRA of an adapter folder loaded
# (--lora-init-without-apply: not applied at start), so a request picks its adapter with the `lora` field,
# [{"id": i, "scale": 1}], ids in GET /lora-adapters order. Careful: a request with no lora list, or an empty
# one, runs with EVERY loaded adapter at its global scale (1, as GET /lora-adapters shows); a non-empty list
# sets the adapters it leaves out to 0. Ask for the base as [{"id": 0, "scale": 0}] (zero-scale adapters are
# skipped, so it costs nothing).
#
#   PORT=18800 FORMAT=BF16 ADAPTERS=~/.cache/loraplex/llamacpp/adapters/32x-r16 bash peers/llamacpp/serve.sh
#   MODEL_FILE=…/llama3-1b-BF16.gguf ALIAS=llama3-1b …   another model file (bench:peers --size 1b)
#
# PARALLEL slots (default 32) share a context of PARALLEL × SLOT_CTX tokens; continuous batching is on by default.
# llama.cpp batches requests that use different adapters in different batches (one adapter set per batch).
set -euo pipefail

CACHE=${LORAPLEX_CACHE:-$HOME/.cache/loraplex}
DIR=$CACHE/llamacpp
FORMAT=${FORMAT:-BF16}
PARALLEL=${PARALLEL:-32}
SLOT_CTX=${SLOT_CTX:-512}
THREADS=${THREADS:-$(nproc)}
MODEL=${MODEL_FILE:-$DIR/models/SmolLM2-135M-Instruct.$FORMAT.gguf}
[ -f "$MODEL" ] || { echo "missing $MODEL: run bash peers/llamacpp/setup.sh (or npm run bench:models)"; exit 1; }

LORA=()
if [ -n "${ADAPTERS:-}" ]; then
  for f in "$ADAPTERS"/*.gguf; do LORA+=(--lora "$f"); done
  LORA+=(--lora-init-without-apply)
fi
exec "$DIR/build/bin/llama-server" --host 127.0.0.1 --port "${PORT:-18800}" -m "$MODEL" --alias "${ALIAS:-SmolLM2}" \
  -t "$THREADS" -tb "$THREADS" -np "$PARALLEL" -c $((PARALLEL * SLOT_CTX)) --no-webui "${LORA[@]}"
