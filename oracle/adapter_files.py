"""Saving PEFT adapters as engine-facing fixture files, and summarising their configs."""

import json
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model

from random_weights import randomize_lora_adapter

SUMMARY_KEYS = [
    "r",
    "lora_alpha",
    "use_rslora",
    "use_dora",
    "target_modules",
    "rank_pattern",
    "alpha_pattern",
    "layers_to_transform",
    "layers_pattern",
    "lora_dropout",
]


def create_random_adapters(
    model: torch.nn.Module, specs: dict[str, dict], seed: int, relative_delta: float
) -> PeftModel:
    """Wraps `model` (in place) with one LoRA adapter per spec (LoraConfig arguments), all weights random."""
    peft_model = None
    for offset, (name, spec) in enumerate(specs.items()):
        config = LoraConfig(task_type="CAUSAL_LM", **spec)
        if peft_model is None:
            peft_model = get_peft_model(model, config, adapter_name=name)
        else:
            peft_model.add_adapter(name, config)
        randomize_lora_adapter(peft_model, name, seed=seed + offset, relative_delta=relative_delta)
    return peft_model.eval()


def save_adapters(model: PeftModel, names: list[str], adapters_dir: Path) -> None:
    """Writes adapters_dir/<name>/{adapter_config.json, adapter_model.safetensors} for each adapter."""
    for name in names:
        if name == "default":
            raise ValueError("PEFT saves an adapter named 'default' at the top level; pick another name")
        # PEFT saves every non-default adapter into a sub-folder named after it.
        model.save_pretrained(adapters_dir, selected_adapters=[name])
        normalize_adapter_config(adapters_dir / name / "adapter_config.json")
    # PEFT also drops a generated model card beside the adapters; the store should see adapters only.
    (adapters_dir / "README.md").unlink(missing_ok=True)


def normalize_adapter_config(path: Path) -> None:
    """Makes adapter_config.json byte-stable across runs.

    PEFT keeps target_modules as a set (saved in hash order) and records the base model's local path;
    the engine takes its base model from its own flags, so that path is dropped.
    """
    config = json.loads(path.read_text())
    config["base_model_name_or_path"] = None
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    path.write_text(json.dumps(config, indent=2) + "\n")


def adapter_summary(adapter_dir: Path) -> dict:
    """What an engine needs to know at a glance; adapter_config.json stays the source of truth."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    return {key: config.get(key) for key in SUMMARY_KEYS}


def load_all(base, adapters_dir: Path, names: list[str]) -> PeftModel:
    """One PeftModel holding every adapter, read back from the files written (what an engine will read)."""
    model = PeftModel.from_pretrained(base, adapters_dir / names[0], adapter_name=names[0])
    for name in names[1:]:
        model.load_adapter(adapters_dir / name, adapter_name=name)
    return model.eval()


def directory_bytes(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())
