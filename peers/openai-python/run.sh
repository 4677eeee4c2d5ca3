#!/usr/bin/env bash
# The official openai Python client against `loraplex serve` (issue 12's compatibility suite): starts the
# built-in demo on a free port with an API key, waits until it is ready, runs compat.py (one line per check and
# a summary), stops the server and exits non-zero if any check failed.
#
#   bash peers/openai-python/run.sh
#
# Offline after the first run: the client comes from PyPI into a venv under $LORAPLEX_CACHE, reused after.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${LORAPLEX_CACHE:-$HOME/.cache/loraplex}
VENV=$CACHE/openai-python-venv
REQS=$ROOT/peers/openai-python/requirements.txt
OUT=${OUT:-$ROOT/artifacts/openai-python}
KEY=sk-loraplex-compat

# Reinstall when requirements.txt changes (a new pin), not only when the venv is missing.
if ! cmp -s "$REQS" "$VENV/requirements.txt"; then
  echo "== installing the openai client into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQS"
  cp "$REQS" "$VENV/requirements.txt"
fi

PORT=${PORT:-$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
URL=http://127.0.0.1:$PORT
mkdir -p "$OUT"
echo "== loraplex serve (built-in demo) on $URL, log $OUT/server.log"
node "$ROOT/bin/loraplex.js" serve --port "$PORT" --api-key "$KEY" >"$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/health/ready" || true)" = 200 ] && break
  kill -0 "$SERVER" 2>/dev/null || { tail -40 "$OUT/server.log"; exit 1; }
  sleep 0.5
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/health/ready" || true)" = 200 ] || {
  echo "server not ready after 120 s"
  tail -40 "$OUT/server.log"
  exit 1
}

LORAPLEX_URL=$URL LORAPLEX_API_KEY=$KEY "$VENV/bin/python" "$ROOT/peers/openai-python/compat.py"
