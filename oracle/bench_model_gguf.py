"""A bench model's GGUF files, made as llama.cpp users make theirs: convert_hf_to_gguf.py to BF16, llama-quantize.

    make_gguf(cache, model_dir, out_dir, "llama3-1b", ["Q8_0", "Q4_K_M"], keep_bf16=True, log=print)

llama.cpp comes from ~/.cache/loraplex/llamacpp (src/ the source tree, build/bin/ the binaries, READY once built);
this module never builds it. Each output is skipped when its stamp names the same model (the safetensors' sha256s)
and llama.cpp tree; every file is written under a temporary name first.
"""

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

GGUF_RECIPE_VERSION = 1


def llamacpp_ready(cache: Path) -> bool:
    return (cache / "llamacpp" / "READY").exists()


def _llamacpp_id(root: Path) -> str:
    """What identifies the llama.cpp used: READY's content (the builder's note) and the converter's hash."""
    converter = (root / "src" / "convert_hf_to_gguf.py").read_bytes()
    return f"{(root / 'READY').read_text().strip()} convert:{hashlib.sha256(converter).hexdigest()[:16]}"


def _stamp(model_dir: Path, llamacpp_id: str, gguf_type: str) -> dict:
    model_stamp = json.loads((model_dir / ".bench-model.json").read_text())
    return {"version": GGUF_RECIPE_VERSION, "model": model_stamp["sha256"], "llamacpp": llamacpp_id, "type": gguf_type}


def _fresh(path: Path, stamp: dict) -> bool:
    stamp_path = path.with_name(path.name + ".stamp.json")
    try:
        return path.exists() and json.loads(stamp_path.read_text()) == stamp
    except (OSError, ValueError):
        return False


def _run(cmd: list[str], log: Callable[[str], None]) -> None:
    t0 = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}")
    log(f"  {Path(cmd[1] if cmd[0] == sys.executable else cmd[0]).name} done in {time.time() - t0:.0f} s")


def make_gguf(
    cache: Path,
    model_dir: Path,
    out_dir: Path,
    name: str,
    types: list[str],
    keep_bf16: bool,
    log: Callable[[str], None],
) -> None:
    root = cache / "llamacpp"
    llamacpp_id = _llamacpp_id(root)
    out_dir.mkdir(parents=True, exist_ok=True)
    bf16 = out_dir / f"{name}-BF16.gguf"
    wanted = [(t, out_dir / f"{name}-{t}.gguf") for t in types]
    missing = [(t, p) for t, p in wanted if not _fresh(p, _stamp(model_dir, llamacpp_id, t))]
    if not missing and (not keep_bf16 or _fresh(bf16, _stamp(model_dir, llamacpp_id, "BF16"))):
        log(f"{name}: GGUF up to date ({', '.join(p.name for _, p in wanted)})")
        return
    if not _fresh(bf16, _stamp(model_dir, llamacpp_id, "BF16")):
        log(f"{name}: convert_hf_to_gguf.py → {bf16.name}")
        tmp = bf16.with_name(bf16.name + ".tmp")
        _run([sys.executable, str(root / "src" / "convert_hf_to_gguf.py"), str(model_dir),
              "--outtype", "bf16", "--outfile", str(tmp)], log)  # fmt: skip
        os.replace(tmp, bf16)
        _write_stamp(bf16, _stamp(model_dir, llamacpp_id, "BF16"))
    threads = str(os.cpu_count() or 1)
    for gguf_type, path in missing:
        log(f"{name}: llama-quantize {gguf_type} → {path.name}")
        tmp = path.with_name(path.name + ".tmp")
        _run([str(root / "build" / "bin" / "llama-quantize"), str(bf16), str(tmp), gguf_type, threads], log)
        os.replace(tmp, path)
        _write_stamp(path, _stamp(model_dir, llamacpp_id, gguf_type))
    if not keep_bf16:
        bf16.unlink()
        bf16.with_name(bf16.name + ".stamp.json").unlink(missing_ok=True)


def _write_stamp(path: Path, stamp: dict) -> None:
    path.with_name(path.name + ".stamp.json").write_text(json.dumps(stamp, indent=2) + "\n")
