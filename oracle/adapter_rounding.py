"""Adapters whose A and B are rounded to a lower precision: what an engine storing LoRA weights in bf16 computes.

The rounded copies live only in the PeftModel (never on disk): the fixture's adapter files stay float32, and the
"-lora<dtype>" cases record what those same files give once an engine rounds A and B (then computes in float32).
"""

from pathlib import Path

import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer

DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "f16"}


def load_rounded_copies(model: PeftModel, adapters_dir: Path, names: list[str], dtype: torch.dtype) -> dict[str, str]:
    """Loads each adapter again as '<name>__lora<dtype>' with A and B rounded to `dtype`; returns name → copy name."""
    copies = {}
    for name in names:
        copy = f"{name}__lora{DTYPE_NAMES[dtype]}"
        model.load_adapter(adapters_dir / name, adapter_name=copy)
        round_adapter(model, copy, dtype)
        copies[name] = copy
    return copies


def round_adapter(model: torch.nn.Module, adapter: str, dtype: torch.dtype) -> None:
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LoraLayer) and adapter in module.lora_A:
                for factor in (module.lora_A[adapter].weight, module.lora_B[adapter].weight):
                    factor.copy_(factor.to(dtype).to(factor.dtype))
