"""Adapters that change more than the decoder layers' projections, and what PEFT serves with them.

On tiny fixture bases (float32), three kinds made with PEFT 0.21's own LoraConfig and save_pretrained:
  edge-lora        LoRA on embed_tokens (lora_embedding_A [r, vocab], lora_embedding_B [hidden, r]) and lm_head,
                   plus q/v; PEFT also saves the base's embed_tokens / lm_head copies (save_embedding_layers)
  saved-modules    modules_to_save ["embed_tokens", "lm_head", "norm"]: whole per-adapter copies ("norm" matches
                   every module name ending in "norm", so each layer's norms are saved too), plus LoRA on q/v
  trainable-tokens trainable_token_indices: rows of the embedding replaced (on a tied base, the head's too)
  vera-saved       VeRA (VeraConfig) on q/v with modules_to_save ["embed_tokens", "lm_head", "norm"]
PEFT starts these as no-ops; the trained values are drawn at random here (seeded). Each adapter is read back
from its files onto its own base and measured: logits at every position of one prompt and greedy tokens for two
prompts (the trainable tokens are drawn from those prompts). The set's plain LoRA `qv-r8` and the base are
measured too, for mixed batches. Writes OUT/<set>/{adapters/, expected.json, logits.safetensors}.

    python oracle/embedding_adapters.py [OUT_DIR]     (default test/fixtures/embedding-adapters)
"""

import json
import math
import shutil
import sys
from pathlib import Path

import torch
from peft import LoraConfig, PeftConfig, PeftModel, VeraConfig, get_peft_model
from peft.tuners.lora import LoraLayer
from transformers import AutoModelForCausalLM
from transformers.utils import logging as transformers_logging

from adapter_files import save_adapters
from expected_io import ExpectedWriter
from merge_check import GREEDY_PROMPTS, LOGIT_PROMPT, MIN_MARGIN, greedy, prompt_ids_by_name, prompt_logits
from random_weights import randomize_lora_adapter
from torch_setup import deterministic_torch, seeded_generator
from vera_adapters import randomize_vera_adapter

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "test" / "fixtures" / "tiny"
SEED = 20261204
RELATIVE_DELTA = 0.5
# set → the kinds made on it; llama-tied ties lm_head to embed_tokens (trainable tokens then change both)
SETS = {
    "llama3-rope": ["edge-lora", "saved-modules", "trainable-tokens", "vera-saved"],
    "llama-tied": ["trainable-tokens", "edge-lora", "saved-modules"],
}
PLAIN = "qv-r8"


def lora_config(kind: str, token_ids: list[int]) -> PeftConfig:
    if kind == "vera-saved":
        return VeraConfig(
            task_type="CAUSAL_LM", r=8, target_modules=["q_proj", "v_proj"], modules_to_save=["embed_tokens", "lm_head", "norm"]
        )
    common = {"task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 8, "lora_dropout": 0.0}
    if kind == "edge-lora":
        return LoraConfig(**common, target_modules=["q_proj", "v_proj", "embed_tokens", "lm_head"])
    if kind == "saved-modules":
        return LoraConfig(**common, target_modules=["q_proj", "v_proj"], modules_to_save=["embed_tokens", "lm_head", "norm"])
    return LoraConfig(**common, target_modules=["q_proj", "v_proj"], trainable_token_indices=token_ids)


def randomize(model: torch.nn.Module, adapter: str, seed: int) -> None:
    """LoRA factors (projections and lm_head) or VeRA vectors, embedding LoRA, saved copies and token rows, seeded."""
    if adapter.startswith("vera"):
        randomize_vera_adapter(model, adapter, seed, RELATIVE_DELTA)
    else:
        randomize_lora_adapter(model, adapter, seed, RELATIVE_DELTA)
    generator = seeded_generator(seed + 1000)
    noise = lambda t: torch.randn(t.shape, generator=generator)  # noqa: E731
    with torch.no_grad():
        for name, module in sorted(model.named_modules(), key=lambda item: item[0]):
            if isinstance(module, LoraLayer) and adapter in module.lora_embedding_A:
                a = module.lora_embedding_A[adapter]  # [r, vocab]
                b = module.lora_embedding_B[adapter]  # [hidden, r]
                scale = float(module.scaling[adapter])
                base_std = float(module.get_base_layer().weight.std())
                a.copy_(noise(a))
                b.copy_(noise(b) * RELATIVE_DELTA * base_std / (scale * math.sqrt(a.shape[0])))
        for name, parameter in sorted(model.named_parameters()):
            if f"modules_to_save.{adapter}." in name:
                if "norm" in name:
                    parameter.copy_(1.0 + 0.2 * noise(parameter))
                else:
                    parameter.add_(noise(parameter) * RELATIVE_DELTA * float(parameter.std()))
            elif name.endswith(f"trainable_tokens_delta.{adapter}"):
                parameter.copy_(noise(parameter) * 2.0 * float(parameter.std()))


def token_ids_from(prompts: dict[str, list[int]]) -> list[int]:
    """Three distinct tokens the measured prompts hold, so the replaced rows are read."""
    seen: list[int] = []
    for token in prompts[GREEDY_PROMPTS[0]] + prompts[GREEDY_PROMPTS[1]]:
        if token not in seen:
            seen.append(token)
    return sorted(seen[1:4])


def load_base(set_dir: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(set_dir / "model", dtype=torch.float32, attn_implementation="eager")


def measure_set(name: str, kinds: list[str], out_dir: Path) -> None:
    set_dir = TINY / name
    fixture = json.loads((set_dir / "expected.json").read_text())
    prompts = prompt_ids_by_name(fixture)
    token_ids = token_ids_from(prompts)
    adapters_dir = out_dir / "adapters"
    shutil.rmtree(adapters_dir, ignore_errors=True)
    for offset, kind in enumerate(kinds):
        model = get_peft_model(load_base(set_dir), lora_config(kind, token_ids), adapter_name=kind)
        randomize(model, kind, SEED + offset)
        save_adapters(model, [kind], adapters_dir)
    shutil.copytree(set_dir / "adapters" / PLAIN, adapters_dir / PLAIN)

    writer = ExpectedWriter(
        fixture["family"],
        {
            "source_set": f"tiny/{name}",
            "model": f"test/fixtures/tiny/{name}/model",
            "trainable_token_ids": token_ids,
            "forward": "transformers + PEFT in float32, each adapter read back onto its own base",
            "greedy": {"ignore_eos": True, "min_margin": MIN_MARGIN},
            "generator": "oracle/embedding_adapters.py",
        },
    )
    for adapter in [None, PLAIN, *kinds]:
        model = load_base(set_dir).eval()
        if adapter is not None:
            model = PeftModel.from_pretrained(model, adapters_dir / adapter, adapter_name=adapter).eval()
        label = adapter or "base"
        case = {
            "id": f"{LOGIT_PROMPT}-{label}",
            "adapter": adapter,
            "prompt_ids": prompts[LOGIT_PROMPT],
            "logits_key": writer.add_tensor(f"{LOGIT_PROMPT}-{label}", prompt_logits(model, prompts[LOGIT_PROMPT])),
            "greedy": [],
        }
        for prompt in GREEDY_PROMPTS:
            tokens, margin = greedy(model, prompts[prompt])
            if margin < MIN_MARGIN:
                raise RuntimeError(f"{name}/{label}/{prompt}: greedy margin {margin} < {MIN_MARGIN}")
            case["greedy"].append({"prompt_ids": prompts[prompt], "tokens": tokens, "min_margin": margin})
        writer.add_case(case)
    del writer.document["mixed_batches"]
    writer.write(out_dir)


def main(out_root: Path) -> None:
    transformers_logging.disable_progress_bar()
    for name, kinds in SETS.items():
        deterministic_torch(SEED)
        measure_set(name, kinds, out_root / name)
        print(f"embedding_adapters: {name} done", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "test" / "fixtures" / "embedding-adapters")
