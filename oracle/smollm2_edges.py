"""SmolLM2 adapters that change more than the layers' projections, drawn and measured each on its own PeftModel.

  edge-r8     LoRA on q, v, embed_tokens (lora_embedding_A/B) and lm_head, with modules_to_save ["norm"] (PEFT
              matches by suffix: the final norm and every layer's input / post-attention norm are saved copies)
  tokens-r8   LoRA on q, v with trainable_token_indices: three prompt tokens get rows of their own; SmolLM2 ties
              lm_head to embed_tokens, so those tokens' logits come from the new rows too

SmolLM2 is tied: LoRA on lm_head gives the adapter a head of its own while its embedding stays the base's (PEFT warns
that the tied layer is adapted without ensure_weight_tying; its unmerged outputs are what the oracle records). The
adapters are saved without save_embedding_layers' copies of the base's embed_tokens / lm_head (2 × 113 MB of the
base's own values). Each adapter lives on its own PeftModel: LoRA on embed_tokens and trainable tokens wrap the
same module, and PEFT's mixed batches take neither, so the engine's mixed batches are checked against these
single runs.
"""

import math
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer

from adapter_files import normalize_adapter_config
from random_weights import randomize_lora_adapter
from torch_setup import seeded_generator

NORM_JITTER = 0.05  # saved norms: each weight times 1 ± 5 %, on every one of SmolLM2's 61 norms
TOKEN_DELTA = 0.5  # a trainable token's row moves by half the embedding's spread per entry


def edge_specs(token_ids: list[int]) -> dict[str, dict]:
    common = dict(r=8, lora_alpha=16)
    return {
        "edge-r8": dict(
            **common, target_modules=["q_proj", "v_proj", "embed_tokens", "lm_head"], modules_to_save=["norm"]
        ),
        "tokens-r8": dict(**common, target_modules=["q_proj", "v_proj"], trainable_token_indices=token_ids),
    }


def prompt_token_ids(prompt_ids: list[list[int]], special: set[int], count: int = 3) -> list[int]:
    """`count` distinct ordinary tokens the prompts hold (in order of first use), so the replaced rows are read."""
    seen: list[int] = []
    for ids in prompt_ids:
        for token in ids:
            if token not in seen and token not in special:
                seen.append(token)
    return sorted(seen[1 : count + 1])


def draw_edge_adapters(load_base, specs: dict[str, dict], seed: int, relative_delta: float, out: Path) -> None:
    """Writes out/<name>/{adapter_config.json, adapter_model.safetensors}, each adapter on a fresh base."""
    for offset, (name, spec) in enumerate(specs.items()):
        model = get_peft_model(load_base(), LoraConfig(task_type="CAUSAL_LM", **spec), adapter_name=name)
        randomize_lora_adapter(model, name, seed=seed + offset, relative_delta=relative_delta)
        randomize_edges(model, name, seed + offset + 1000, relative_delta)
        model.save_pretrained(out, selected_adapters=[name], save_embedding_layers=False)
        normalize_adapter_config(out / name / "adapter_config.json")
    (out / "README.md").unlink(missing_ok=True)


@torch.no_grad()
def randomize_edges(model: torch.nn.Module, adapter: str, seed: int, relative_delta: float) -> None:
    """Embedding LoRA (delta ≈ relative_delta × the embedding's spread), saved norms, trainable token rows."""
    generator = seeded_generator(seed)
    noise = lambda t: torch.randn(t.shape, generator=generator)  # noqa: E731
    for _, module in sorted(model.named_modules(), key=lambda item: item[0]):
        if isinstance(module, LoraLayer) and adapter in module.lora_embedding_A:
            a = module.lora_embedding_A[adapter]  # [r, vocab]
            b = module.lora_embedding_B[adapter]  # [hidden, r]
            scale = float(module.scaling[adapter])
            base_std = float(module.get_base_layer().weight.std())
            a.copy_(noise(a))
            b.copy_(noise(b) * relative_delta * base_std / (scale * math.sqrt(a.shape[0])))
    for name, parameter in sorted(model.named_parameters()):
        if f"modules_to_save.{adapter}." in name:
            parameter.mul_(1.0 + NORM_JITTER * noise(parameter))
        elif name.endswith(f"trainable_tokens_delta.{adapter}"):
            parameter.add_(noise(parameter) * TOKEN_DELTA * float(parameter.std()))


def load_edge_models(load_base, adapters_dir: Path, names: list[str]) -> dict[str, PeftModel]:
    """One PeftModel per adapter, each on its own base read from disk (as an engine would)."""
    return {
        name: PeftModel.from_pretrained(load_base(), adapters_dir / name, adapter_name=name).eval() for name in names
    }
