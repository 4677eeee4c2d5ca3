"""A bench model's GGUF files, made as llama.cpp users make theirs: convert_hf_to_gguf.py to BF16, llama-quantize.

    make_gguf(cache, model_dir, out_dir, "llama3-1b", ["Q4_K", "Q8_0", "Q4_K_M"], keep_bf16=True, log=print)

Q4_K here is every matrix in Q4_K (llama-quantize --pure), the format the native quantized GEMM serves whole;
Q4_K_M is llama.cpp's usual mix (Q6_K for the output head and half of attn_v / ffn_down), what users download.

llama.cpp comes from ~/.cache/loraplex/llamacpp (src/ the source tree, build/bin/ the binaries, READY once built);
this module never builds it. The BF16 conversion needs only the source tree, the quantized files the READY build.
Each output is skipped when its stamp names the same model (the safetensors' sha256s) and the same converter and
llama-quantize (their sha256s); every file is written under a temporary name first.
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


def converter_present(cache: Path) -> bool:
    return (cache / "llamacpp" / "src" / "convert_hf_to_gguf.py").exists()


def llamacpp_ready(cache: Path) -> bool:
    return (cache / "llamacpp" / "READY").exists()


def _short_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _stamp(model_dir: Path, root: Path, gguf_type: str) -> dict:
    """The model's sha256s and the tools' (the converter; llama-quantize too for a quantized type)."""
    model_stamp = json.loads((model_dir / ".bench-model.json").read_text())
    tools = {"convert": _short_hash(root / "src" / "convert_hf_to_gguf.py")}
    if gguf_type != "BF16":
        tools["quantize"] = _short_hash(root / "build" / "bin" / "llama-quantize")
    return {"version": GGUF_RECIPE_VERSION, "model": model_stamp["sha256"], "tools": tools, "type": gguf_type}


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
    """BF16 always (the converter); `types` only when llama.cpp's build is READY (llama-quantize)."""
    root = cache / "llamacpp"
    out_dir.mkdir(parents=True, exist_ok=True)
    bf16 = out_dir / f"{name}-BF16.gguf"
    if not llamacpp_ready(cache):
        types = []
        log(f"{name}: {root / 'READY'} not there yet: BF16 GGUF only, quantized files on a later run")
    wanted = [(t, out_dir / f"{name}-{t}.gguf") for t in types]
    missing = [(t, p) for t, p in wanted if not _fresh(p, _stamp(model_dir, root, t))]
    bf16_fresh = _fresh(bf16, _stamp(model_dir, root, "BF16"))
    if not missing and (bf16_fresh or (not keep_bf16 and wanted)):
        log(f"{name}: GGUF up to date ({', '.join(p.name for _, p in wanted) or bf16.name})")
        return
    if not bf16_fresh:
        log(f"{name}: convert_hf_to_gguf.py → {bf16.name}")
        tmp = bf16.with_name(bf16.name + ".tmp")
        _run([sys.executable, str(root / "src" / "convert_hf_to_gguf.py"), str(model_dir),
              "--outtype", "bf16", "--outfile", str(tmp)], log)  # fmt: skip
        os.replace(tmp, bf16)
        _write_stamp(bf16, _stamp(model_dir, root, "BF16"))
    threads = str(os.cpu_count() or 1)
    for gguf_type, path in missing:
        log(f"{name}: llama-quantize {gguf_type} → {path.name}")
        tmp = path.with_name(path.name + ".tmp")
        _run([str(root / "build" / "bin" / "llama-quantize"), *quantize_args(gguf_type), str(bf16), str(tmp),
              llama_type(gguf_type), threads], log)  # fmt: skip
        os.replace(tmp, path)
        _write_stamp(path, _stamp(model_dir, root, gguf_type))
    if not keep_bf16 and wanted:
        bf16.unlink()
        bf16.with_name(bf16.name + ".stamp.json").unlink(missing_ok=True)


def llama_type(gguf_type: str) -> str:
    """Our names → llama-quantize's: Q4_K is every matrix Q4_K (Q4_K_M with --pure), as the native kernels take."""
    return "Q4_K_M" if gguf_type == "Q4_K" else gguf_type


def quantize_args(gguf_type: str) -> list[str]:
    return ["--pure"] if gguf_type == "Q4_K" else []


def _write_stamp(path: Path, stamp: dict) -> None:
    path.with_name(path.name + ".stamp.json").write_text(json.dumps(stamp, indent=2) + "\n")
