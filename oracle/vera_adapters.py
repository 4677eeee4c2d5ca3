"""VeRA adapters for the tiny fixtures: made with PEFT's VeraConfig, their trained vectors drawn at random.

PEFT keeps one pair of shared matrices per model (vera_A, vera_B), and a second VeRA adapter added to the same
model reuses the first one's pair; so each VeRA adapter here lives on its own copy of the base model, and is
measured on its own PeftModel (LoRA and VeRA adapters cannot share one PeftModel either).
"""

import copy
import math
from pathlib import Path

import torch
from peft import PeftModel, VeraConfig, get_peft_model
from peft.tuners.vera import VeraLayer

from adapter_files import normalize_adapter_config
from torch_setup import seeded_generator


def save_vera_adapters(model: torch.nn.Module, specs: dict[str, dict], seed: int, relative_delta: float, out: Path):
    """Writes out/<name>/{adapter_config.json, adapter_model.safetensors} for each VeRA spec (VeraConfig args)."""
    for offset, (name, spec) in enumerate(specs.items()):
        peft_model = get_peft_model(copy.deepcopy(model), VeraConfig(task_type="CAUSAL_LM", **spec), adapter_name=name)
        randomize_vera_adapter(peft_model, name, seed + offset, relative_delta)
        peft_model.save_pretrained(out, selected_adapters=[name])
        normalize_adapter_config(out / name / "adapter_config.json")
    (out / "README.md").unlink(missing_ok=True)


def randomize_vera_adapter(model: torch.nn.Module, adapter: str, seed: int, relative_delta: float) -> None:
    """Draws lambda_d ~ N(0, 1) and lambda_b so that the delta's entries are about relative_delta × the base's.

    PEFT starts lambda_b at zero (a no-op adapter). The delta diag(λb)·B·diag(λd)·A has entries of standard
    deviation about |λb|·|λd|·2/√in for Kaiming-uniform A [r, in] and B [out, r].
    """
    generator = seeded_generator(seed)
    touched = 0
    with torch.no_grad():
        for _, module in sorted(model.named_modules(), key=lambda item: item[0]):
            if not isinstance(module, VeraLayer) or adapter not in module.vera_lambda_d:
                continue
            lambda_d = module.vera_lambda_d[adapter]
            lambda_b = module.vera_lambda_b[adapter]
            base_std = float(module.get_base_layer().weight.float().std())
            b_std = relative_delta * base_std / (2.0 / math.sqrt(module.in_features))
            lambda_d.copy_(torch.randn(lambda_d.shape, generator=generator))
            lambda_b.copy_(b_std * torch.randn(lambda_b.shape, generator=generator))
            touched += 1
    if touched == 0:
        raise ValueError(f"VeRA adapter '{adapter}' matched no module")


def load_vera_models(model_dir: Path, adapters_dir: Path, names: list[str], load_base) -> dict[str, PeftModel]:
    """One PeftModel per VeRA adapter, each on its own base model read from model_dir (as an engine would)."""
    return {
        name: PeftModel.from_pretrained(load_base(model_dir), adapters_dir / name, adapter_name=name).eval()
        for name in names
    }
