#!/usr/bin/env bash
# Runs one oracle job inside the oracle's virtual environment.
#   run.sh fixtures [OUT_DIR]   tiny random models + adapters + expected outputs (default test/fixtures/tiny)
#   run.sh smollm2  [OUT_DIR]   SmolLM2-135M-Instruct + adapters + expected outputs
#                               (default ${LORAPLEX_CACHE:-~/.cache/loraplex}/smollm2); `live` is an alias
#   run.sh bench-models [ARGS]  Llama-3.2-1B- and Llama-3.1-8B-shaped random models, bf16 + GGUF (bench_models.py)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cache="${LORAPLEX_CACHE:-$HOME/.cache/loraplex}"
job="${1:-}"

python="$("$here/setup.sh" | tail -n 1)"
export PYTHONUNBUFFERED=1  # progress lines appear as they happen, also in CI logs
case "$job" in
  fixtures)
    exec "$python" "$here/tiny_fixtures.py" "${2:-$root/test/fixtures/tiny}"
    ;;
  smollm2 | live)
    exec "$python" "$here/smollm2.py" "${2:-$cache/smollm2}"
    ;;
  bench-models)
    exec "$python" "$here/bench_models.py" "${@:2}"
    ;;
  *)
    echo "usage: $0 fixtures [OUT_DIR] | smollm2 [OUT_DIR] | bench-models [ARGS]" >&2
    exit 2
    ;;
esac
