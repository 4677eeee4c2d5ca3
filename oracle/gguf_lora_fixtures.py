"""llama.cpp GGUF LoRA adapters converted from the tiny PEFT adapters: the committed gguf-lora fixtures.

usage: python gguf_lora_fixtures.py [TINY_DIR] [OUT_DIR]
       (defaults test/fixtures/tiny and test/fixtures/gguf-lora; run after the tiny fixtures; takes a second)

Each file is what llama.cpp's convert_lora_to_gguf.py writes for that adapter and base model (conventions
read from its source: convert_lora_to_gguf.py, convert_hf_to_gguf.py, src/llama-adapter.cpp):
  - metadata: general.architecture (the base's llama.cpp arch), general.type = "adapter",
    adapter.type = "lora", adapter.lora.alpha (f32) = lora_alpha; llama.cpp scales each pair by alpha / rank,
    rank = lora_b's ne[0];
  - tensors: the base tensor's GGUF name plus ".lora_a" / ".lora_b" ("blk.0.attn_q.weight.lora_a"); gguf-py
    writes numpy shapes reversed as ne, so lora_a is stored as PEFT's lora_A [rank, in] (ne [in, rank]) and
    lora_b as lora_B [out, rank] (ne [rank, out]);
  - q and k of the "llama" arch (LlamaForCausalLM, MistralForCausalLM: LlamaModel.undo_permute) have their
    rows permuted as LlamaModel.permute does to the base weights, which for a LoRA pair moves lora_b's rows;
  - dtypes f32, f16, bf16 or q8_0 (convert_lora_to_gguf --outtype).
One deliberate difference: convert_lora_to_gguf.py ignores use_rslora (its files would scale by alpha / r);
rsLoRA sources here get alpha · √r, so llama.cpp's alpha / r equals PEFT's alpha / √r.

Also writes manifest.json: each file's source adapter and the SHA-256 of its source weights, so a test can
tell a stale conversion (the tiny fixtures regenerated since) from a loader bug.
"""

import hashlib
import importlib.metadata
import json
import math
import shutil
import sys
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file

# (set, adapter, outtype): llama-arch q/k permutation (llama-tied), un-permuted families (qwen2), fused names
# (phi3), every dtype convert_lora_to_gguf writes.
CONVERSIONS = [
    ("llama-tied", "qv-r8", "f32"),
    ("llama-tied", "all-r8-rslora", "f32"),
    ("llama-tied", "mlp-r1", "f16"),
    ("qwen2", "qv-r8", "f32"),
    ("qwen2", "all-r8-rslora", "f32"),
    ("qwen2", "mlp-r1", "bf16"),
    ("qwen2", "qv-r8", "q8_0"),
    ("phi3", "qkv-r8", "f32"),
    ("phi3", "all-r8-rslora", "f32"),
]

# Hugging Face architecture class -> (llama.cpp arch, q/k rows permuted), as convert_hf_to_gguf.py registers them.
ARCHS = {
    "LlamaForCausalLM": (gguf.MODEL_ARCH.LLAMA, True),
    "MistralForCausalLM": (gguf.MODEL_ARCH.LLAMA, True),
    "Qwen2ForCausalLM": (gguf.MODEL_ARCH.QWEN2, False),
    "Qwen3ForCausalLM": (gguf.MODEL_ARCH.QWEN3, False),
    "Gemma2ForCausalLM": (gguf.MODEL_ARCH.GEMMA2, False),
    "Gemma3ForCausalLM": (gguf.MODEL_ARCH.GEMMA3, False),
    "Phi3ForCausalLM": (gguf.MODEL_ARCH.PHI3, False),
}

OUTTYPES = {
    "f32": (gguf.LlamaFileType.ALL_F32, gguf.GGMLQuantizationType.F32),
    "f16": (gguf.LlamaFileType.MOSTLY_F16, gguf.GGMLQuantizationType.F16),
    "bf16": (gguf.LlamaFileType.MOSTLY_BF16, gguf.GGMLQuantizationType.BF16),
    "q8_0": (gguf.LlamaFileType.MOSTLY_Q8_0, gguf.GGMLQuantizationType.Q8_0),
}


def permute_rows(b: np.ndarray, n_head: int) -> np.ndarray:
    """LlamaModel.permute applied to lora_B [out, rank]: each head's rows (2, half) -> (half, 2)."""
    out, rank = b.shape
    return b.reshape(n_head, 2, out // n_head // 2, rank).swapaxes(1, 2).reshape(out, rank)


def base_tensor_name(peft_name: str) -> tuple[str, str]:
    """'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight' -> ('model.layers.0...q_proj.weight', 'a')."""
    name = peft_name.removeprefix("base_model.model.")
    for factor in ("A", "B"):
        suffix = f".lora_{factor}.weight"
        if name.endswith(suffix):
            return name[: -len(suffix)] + ".weight", factor.lower()
    raise ValueError(f"not a LoRA factor: {peft_name}")


def encode(data: np.ndarray, qtype: gguf.GGMLQuantizationType) -> tuple[np.ndarray, gguf.GGMLQuantizationType]:
    """As ModelBase.prepare_tensors: a tensor the type cannot hold (Q8_0 rows not a multiple of 32) falls back to F16."""
    try:
        return gguf.quants.quantize(data, qtype), qtype
    except gguf.QuantError:
        return gguf.quants.quantize(data, gguf.GGMLQuantizationType.F16), gguf.GGMLQuantizationType.F16


def convert(model_dir: Path, adapter_dir: Path, outtype: str, out_file: Path) -> None:
    base = json.loads((model_dir / "config.json").read_text())
    lparams = json.loads((adapter_dir / "adapter_config.json").read_text())
    arch, permuted = ARCHS[base["architectures"][0]]
    n_blocks = base["num_hidden_layers"]
    n_head, n_kv_head = base["num_attention_heads"], base.get("num_key_value_heads", base["num_attention_heads"])
    file_type, qtype = OUTTYPES[outtype]

    alpha = float(lparams["lora_alpha"])
    ranks = {lparams["r"], *lparams.get("rank_pattern", {}).values()}
    if lparams.get("alpha_pattern") or (len(ranks) != 1 and lparams.get("use_rslora")):
        raise ValueError(f"{adapter_dir.name}: one alpha per file cannot express this adapter's scales")
    if lparams.get("use_rslora"):
        alpha *= math.sqrt(lparams["r"])

    names = gguf.get_tensor_name_map(arch, n_blocks)
    writer = gguf.GGUFWriter(str(out_file), gguf.MODEL_ARCH_NAMES[arch])
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_name(adapter_dir.name)
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    for peft_name in sorted(tensors):
        hf_name, factor = base_tensor_name(peft_name)
        data = tensors[peft_name].astype(np.float32)
        if permuted and factor == "b" and hf_name.endswith("q_proj.weight"):
            data = permute_rows(data, n_head)
        if permuted and factor == "b" and hf_name.endswith("k_proj.weight"):
            data = permute_rows(data, n_kv_head)
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight",))
        if gguf_name is None:
            raise ValueError(f"{peft_name}: no llama.cpp name for {hf_name}")
        encoded, tensor_type = encode(data, qtype)
        writer.add_tensor(f"{gguf_name}.lora_{factor}", encoded, raw_dtype=tensor_type)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main(tiny_root: Path, out_root: Path) -> None:
    if out_root.exists():
        shutil.rmtree(out_root)
    out_root.mkdir(parents=True)
    manifest = []
    for set_name, adapter, outtype in CONVERSIONS:
        adapter_dir = tiny_root / set_name / "adapters" / adapter
        name = f"{adapter}-{outtype}"
        out_dir = out_root / set_name / name
        out_dir.mkdir(parents=True)
        out_file = out_dir / f"{name}.gguf"
        convert(tiny_root / set_name / "model", adapter_dir, outtype, out_file)
        source = hashlib.sha256((adapter_dir / "adapter_model.safetensors").read_bytes()).hexdigest()
        manifest.append({"set": set_name, "adapter": adapter, "dtype": outtype, "dir": f"{set_name}/{name}",
                         "file": out_file.name, "source_sha256": source})
        print(f"{set_name}/{name}: {out_file.stat().st_size} bytes", flush=True)
    versions = {"gguf": importlib.metadata.version("gguf")}
    (out_root / "manifest.json").write_text(json.dumps({"versions": versions, "files": manifest}, indent=2) + "\n")


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    tiny = Path(sys.argv[1]) if len(sys.argv) > 1 else root / "test" / "fixtures" / "tiny"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else root / "test" / "fixtures" / "gguf-lora"
    main(tiny, out)
