#!/usr/bin/env bash
# Prepares .gpu/ (ignored) for a run on a GPU machine that has CUDA but no Node.js and no network (the H200
# lent through the device tool): a compressed Node binary, the runtime node_modules the engine, the tests and
# the benches import, and the native builds (the CPU addon, the CUDA addon, the CUDA check and bench programs).
# Then scripts/gpu/run-h200.sh, run there from the repo root with `.gpu` carried, unpacks and runs everything.
#
#   bash scripts/gpu/pack.sh        # builds first (npm run build:native, with CUDA since nvcc is found)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

npm run --silent build:native >/tmp/loraplex-gpu-pack-build.log 2>&1 || { tail -30 /tmp/loraplex-gpu-pack-build.log; exit 1; }
BUILT=(build/Release/loraplex_native.node build/cuda/loraplex_cuda.node build/cuda/loraplex-cuda-check
  build/cuda/loraplex-cuda-bench)
for f in "${BUILT[@]}"; do
  [ -f "$f" ] || { echo "pack: $f was not built (is nvcc on PATH?)" >&2; exit 1; }
done

rm -rf .gpu
mkdir -p .gpu
xz -T0 -6 -c "$(command -v node)" >.gpu/node.xz

# The runtime packages: the closure of package.json's dependencies (tsx runs the TypeScript; cmake-js only
# builds), read from each package.json (optional and peer dependencies included when installed).
mapfile -t PACKAGES < <(node -e '
  const fs = require("fs"), path = require("path");
  const deps = Object.keys(JSON.parse(fs.readFileSync("package.json", "utf8")).dependencies);
  const seen = new Set(), todo = [...deps.filter((d) => d !== "cmake-js"), "@esbuild/linux-x64"];
  while (todo.length) {
    const name = todo.pop();
    if (seen.has(name)) continue;
    const file = path.join("node_modules", name, "package.json");
    if (!fs.existsSync(file)) continue;
    seen.add(name);
    const pkg = JSON.parse(fs.readFileSync(file, "utf8"));
    for (const field of ["dependencies", "optionalDependencies", "peerDependencies"])
      for (const dep of Object.keys(pkg[field] ?? {})) todo.push(dep);
  }
  console.log([...seen].sort().join("\n"));
')
tar -C node_modules -cJf .gpu/node_modules.tar.xz "${PACKAGES[@]}"
tar -cJf .gpu/build.tar.xz "${BUILT[@]}"
echo "pack: .gpu/ holds $(du -sh .gpu | cut -f1) (node, ${#PACKAGES[@]} packages, ${#BUILT[@]} native builds)"
ls -la .gpu
