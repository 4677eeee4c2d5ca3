#!/usr/bin/env bash
# Runs on the GPU machine, from the repo root, with .gpu/ (scripts/gpu/pack.sh) carried; writes under $OUT:
#   run.log          everything below, with the seconds each step started at
#   env.txt          nvidia-smi, driver, python packages
#   cuda-check.json  loraplex-cuda-check: every CUDA kernel against the CPU kernels
#   node-tests.log   the backend conformance suite and the oracle fixtures on the CUDA backend
#   cuda-bench.json  loraplex-cuda-bench: kernel roofline against the measured HBM and tensor peaks
#   engine.json      bench/gpu-engine.ts: engine throughput, Llama-3.1-8B shape, base / 1 / 32 / 100 adapters
#   peft.json        peers/peft-gpu/bench_peft.py: PyTorch + PEFT mixed-adapter batch, same workload
# Each step has its own time limit inside one overall budget (BUDGET_S), so a slow step costs only itself.
#
#   OUT=/tmp/out BUDGET_S=540 STEPS="check tests bench engine peft" bash scripts/gpu/run-h200.sh
set -uo pipefail
OUT=${OUT:-/tmp/loraplex-gpu-out}
BUDGET_S=${BUDGET_S:-540}
STEPS=${STEPS:-check tests bench engine peft}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
START=$(date +%s)
elapsed() { echo $(($(date +%s) - START)); }
log() { echo "── [$(elapsed)s] $*"; }
wants() { [[ " $STEPS " == *" $1 "* ]]; }
# run LIMIT_S command...: at most LIMIT_S seconds, and never past the overall budget.
run() {
  local limit=$1
  shift
  local left=$((BUDGET_S - $(elapsed)))
  ((left < limit)) && limit=$left
  if ((limit < 10)); then
    log "skipped (budget spent): $*"
    return 124
  fi
  timeout --kill-after=5 "$limit" "$@"
  local rc=$?
  log "exit $rc: $1"
  return $rc
}

log "environment"
{
  nvidia-smi
  ldd --version | head -1
  python3 -c 'import torch, transformers, peft; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__, "peft", peft.__version__)'
  git log -1 --format='commit %H %cI' 2>/dev/null || true
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

log "unpacking .gpu/"
mkdir -p /tmp/node/bin node_modules
xz -dc .gpu/node.xz >/tmp/node/bin/node && chmod +x /tmp/node/bin/node
export PATH=/tmp/node/bin:$PATH
tar -C node_modules -xJf .gpu/node_modules.tar.xz
tar -xJf .gpu/build.tar.xz
node --version

# cuBLAS comes with PyTorch's pip packages; the GEMM loads it at run time.
CUBLAS_DIR=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(list(nvidia.cublas.__path__)[0], "lib"))' 2>/dev/null)
if [ -n "$CUBLAS_DIR" ] && [ -d "$CUBLAS_DIR" ]; then
  export LD_LIBRARY_PATH=$CUBLAS_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  CUBLAS_LIB=$(ls "$CUBLAS_DIR"/libcublas.so.* 2>/dev/null | head -1)
  [ -n "$CUBLAS_LIB" ] && export LORAPLEX_CUBLAS=$CUBLAS_LIB
fi
log "cuBLAS: ${LORAPLEX_CUBLAS:-not found}"

if wants check; then
  log "loraplex-cuda-check"
  run 90 build/cuda/loraplex-cuda-check --json "$OUT/cuda-check.json"
fi
if wants tests; then
  log "node tests: backend conformance (cuda joins) + oracle fixtures on cuda"
  run 200 env LORAPLEX_TEST_BACKENDS=cuda node scripts/run-tests.mjs test/backends/ tiny-oracle >"$OUT/node-tests.log" 2>&1
  grep -E '^(not ok|# (pass|fail))|✖|passed, ' "$OUT/node-tests.log" | head -60
fi
if wants bench; then
  log "loraplex-cuda-bench"
  run 90 build/cuda/loraplex-cuda-bench --json "$OUT/cuda-bench.json"
fi
if wants engine; then
  log "engine throughput (Llama-3.1-8B shape, bf16)"
  run 170 node --import tsx bench/gpu-engine.ts --backend cuda --shape llama-3.1-8b --out "$OUT/engine.json" --time-budget-s 150
fi
if wants peft; then
  log "PyTorch + PEFT mixed-adapter baseline"
  run 170 env PYTHONUNBUFFERED=1 python3 peers/peft-gpu/bench_peft.py --out "$OUT/peft.json" --time-budget-s 140
fi
log "done"
