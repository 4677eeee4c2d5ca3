"""SmolLM2 adapters of the other kinds loraplex serves: VeRA and Tied-LoRA.

  vera-r16      PEFT VeRA, r 16 on all seven projections with save_projection: the shared A [16, 1536] and
                B [1536, 16] are in the file; λd and λb drawn by vera_adapters.randomize_vera_adapter. PEFT keeps
                one pair of shared matrices per model and mixes no VeRA with LoRA in a batch, so it lives on its own
                PeftModel (as the edge adapters do) and the engine's mixed batches are checked against its single runs
  tied-r8       a PEFT LoRA adapter (r 8, all seven projections) whose every layer holds layer 0's A and B: NeMo's
                Tied-LoRA as PEFT can run it. It sits on the shared PeftModel with the other LoRA adapters, so it
                joins PEFT's mixed batch too
  tied-r8-nemo  tied-r8 as NeMo saves a Tied-LoRA adapter (weight_tying: true, each layer's equal copy in the
                archive): a copy, whose cases carry tied-r8's results
"""

import json
import re
from pathlib import Path

import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer

from smollm2_copies import write_nemo_copy
from vera_adapters import load_vera_models, save_vera_adapters

VERA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# PEFT's kaiming draw spreads A over the largest in_features (1536), so the delta's std comes out at this ×
# √(in / 1536) × the base weight's (0.07 to 0.12): about the LoRA adapters' 0.1. At 0.6 the text is gibberish.
VERA_RELATIVE_DELTA = 0.12
VERA_ADAPTERS = {"vera-r16": dict(r=16, target_modules=VERA_TARGETS, save_projection=True)}
VERA_SUMMARY_KEYS = ["peft_type", "r", "target_modules", "save_projection", "projection_prng_key", "d_initial"]
TIED_ADAPTERS = ["tied-r8"]
_LAYER = re.compile(r"\.layers\.\d+\.")


def draw_vera_adapters(load_base, seed: int, out: Path) -> list[str]:
    """Writes out/<name>/ for each VeRA adapter, each drawn on a fresh base; returns their names."""
    save_vera_adapters(load_base(), VERA_ADAPTERS, seed, VERA_RELATIVE_DELTA, out)
    return list(VERA_ADAPTERS)


def load_vera_adapter_models(load_base, adapters_dir: Path) -> dict[str, PeftModel]:
    return load_vera_models(None, adapters_dir, list(VERA_ADAPTERS), lambda _: load_base())


def vera_summary(adapter_dir: Path) -> dict:
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    return {key: config.get(key) for key in VERA_SUMMARY_KEYS}


@torch.no_grad()
def tie_to_first_layer(model: torch.nn.Module, adapter: str) -> int:
    """Copies the first adapted layer's lora_A / lora_B into every layer's module of the same name; returns how many."""
    modules = {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, LoraLayer) and adapter in module.lora_A
    }
    first: dict[str, LoraLayer] = {}
    for name in sorted(modules, key=layer_index):
        first.setdefault(_LAYER.sub(".layers.*.", name), modules[name])
    tied = 0
    for name, module in modules.items():
        owner = first[_LAYER.sub(".layers.*.", name)]
        if owner is not module:
            module.lora_A[adapter].weight.copy_(owner.lora_A[adapter].weight)
            module.lora_B[adapter].weight.copy_(owner.lora_B[adapter].weight)
            tied += 1
    if tied == 0:
        raise ValueError(f"adapter '{adapter}' has no layer to tie to its first one")
    return tied


def layer_index(module_name: str) -> int:
    match = _LAYER.search(module_name)
    return int(match.group(0).strip(".").split(".")[1]) if match else -1


def write_tied_nemo_copy(model_dir: Path, adapter_dir: Path, out_dir: Path) -> Path:
    return write_nemo_copy(model_dir, adapter_dir, out_dir, tied=True)
