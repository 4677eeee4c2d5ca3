#!/usr/bin/env bash
# Creates or updates the oracle's virtual environment and prints its python path (last line of stdout).
# Idempotent: pip runs only when requirements.txt changed since the last successful install.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${LORAPLEX_CACHE:-$HOME/.cache/loraplex}"
venv="$cache/oracle-venv"
requirements="$here/requirements.txt"
stamp="$venv/.requirements.sha256"

mkdir -p "$cache"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv" >&2
fi

want="$(sha256sum "$requirements" | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [[ "$want" != "$have" ]]; then
  # torch alone first, pinned, so no other requirement can pull a different (CUDA) build.
  "$venv/bin/pip" install --quiet "$(grep -E '^torch==' "$requirements")" >&2
  "$venv/bin/pip" install --quiet -r "$requirements" >&2
  echo "$want" >"$stamp"
fi

echo "$venv/bin/python"
