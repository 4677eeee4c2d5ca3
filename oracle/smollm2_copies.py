"""One SmolLM2 PEFT adapter written again as a llama.cpp GGUF LoRA and as a NeMo .nemo: the same factors, other files.

The conversions are the fixture scripts' own (gguf_lora_fixtures.convert, nemo_fixtures.save_nemo), so the live
check serves exactly what the tiny-model fixtures do, on a real model's sizes: 30 layers, 9 query heads in 3 KV
groups, llama.cpp's q/k row permutation. Both copies are f32 and hold PEFT's numbers, so the PEFT adapter's oracle
results are theirs too.
"""

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from gguf_lora_fixtures import convert as convert_to_gguf
from nemo_fixtures import expand_targets, model_sizes, save_nemo
from tied_lora_fixtures import save_tied_nemo

# PEFT module -> (NeMo target, part of NeMo's canonical, unfused adapter).
NEMO_PARTS = {
    "q_proj": ("attention_qkv", "q"),
    "k_proj": ("attention_qkv", "k"),
    "v_proj": ("attention_qkv", "v"),
    "o_proj": ("attention_dense", "all"),
    "gate_proj": ("mlp_fc1", "gate"),
    "up_proj": ("mlp_fc1", "up"),
    "down_proj": ("mlp_fc2", "all"),
}


def write_gguf_copy(model_dir: Path, adapter_dir: Path, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{out_dir.name}.gguf"
    convert_to_gguf(model_dir, adapter_dir, "f32", path)
    return path


def write_nemo_copy(model_dir: Path, adapter_dir: Path, out_dir: Path, tied: bool = False) -> Path:
    """NeMo's canonical variant: q, k, v (and gate, up) keep their own linear_in, as PEFT's separate modules do.

    tied: a Tied-LoRA archive (weight_tying: true), for an adapter whose every layer holds layer 0's factors.
    """
    config = json.loads((model_dir / "config.json").read_text())
    lora = json.loads((adapter_dir / "adapter_config.json").read_text())
    if lora.get("use_rslora") or lora.get("rank_pattern") or lora.get("alpha_pattern") or lora.get("use_dora"):
        raise ValueError(f"{adapter_dir.name}: NeMo's one adapter_dim and alpha cannot express this adapter")
    if sorted(lora["target_modules"]) != sorted(NEMO_PARTS) or lora.get("layers_to_transform"):
        raise ValueError(f"{adapter_dir.name}: a canonical .nemo copy needs all seven projections on every layer")
    pieces = {}
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    for name, a in tensors.items():
        if ".lora_A." not in name:
            continue
        parts = name.removeprefix("base_model.model.model.layers.").split(".")
        layer, module = int(parts[0]), parts[2]
        b = tensors[name.replace(".lora_A.", ".lora_B.")]
        pieces[(layer, *NEMO_PARTS[module])] = (a.float(), b.float())
    if tied:
        for (layer, *part), (a, b) in pieces.items():
            a0, b0 = pieces[(0, *part)]
            if not (torch.equal(a, a0) and torch.equal(b, b0)):
                raise ValueError(f"{adapter_dir.name}: layer {layer}'s {part} differs from layer 0's; it is not tied")
    spec = dict(variant="canonical", targets=["all"], dim=lora["r"], alpha=lora["lora_alpha"], dtype=torch.float32)
    spec["layers"] = None  # every layer
    path = out_dir / f"{out_dir.name}.nemo"
    save = save_tied_nemo if tied else save_nemo
    save(pieces, spec, expand_targets(spec["targets"]), model_sizes(config), config, path)
    return path
