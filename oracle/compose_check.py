"""What a request's `lora` combination must serve: PEFT's add_weighted_adapter(combination_type="cat").

For each set in SETS, the base model (float32) with several of its tiny fixture adapters loaded, each
combination in COMBINATIONS added with add_weighted_adapter(..., combination_type="cat") and made active:
logits at every position of one prompt and greedy tokens for two prompts. Writes
OUT/<set>/expected.json + logits.safetensors (default OUT: test/fixtures/compose; format as test/fixtures/tiny).

PEFT's cat gives the combination lora_alpha = r = Σ ranks but keeps the FIRST adapter's use_rslora, so its
scaling is 1 (exact) only when the first adapter is not rsLoRA; every combination below starts with a plain one.

    python oracle/compose_check.py [OUT_DIR]
"""

import json
import sys
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM
from transformers.utils import logging as transformers_logging

from expected_io import ExpectedWriter
from merge_check import GREEDY_PROMPTS, LOGIT_PROMPT, MIN_MARGIN, greedy, prompt_ids_by_name, prompt_logits
from torch_setup import deterministic_torch

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "test" / "fixtures" / "tiny"
SETS = ["qwen2"]
SEED = 20261204
# name → [(adapter, weight), …]; a single entry is a per-request scale
COMBINATIONS = {
    "mix3": [("qv-r8", 0.7), ("all-r8-rslora", -1.3), ("mlp-r1", 0.5)],
    "scaled": [("qv-r8", 0.35)],
}


def main(out_root: Path) -> None:
    transformers_logging.disable_progress_bar()
    for name in SETS:
        deterministic_torch(SEED)
        measure_set(name, out_root / name)
        print(f"compose_check: {name} done", flush=True)


def measure_set(name: str, out_dir: Path) -> None:
    set_dir = TINY / name
    fixture = json.loads((set_dir / "expected.json").read_text())
    prompts = prompt_ids_by_name(fixture)
    writer = ExpectedWriter(
        fixture["family"],
        {
            "source_set": f"tiny/{name}",
            "compose": 'PEFT add_weighted_adapter(combination_type="cat") in float32',
            "greedy": {"ignore_eos": True, "min_margin": MIN_MARGIN},
            "generator": "oracle/compose_check.py",
        },
    )
    base = AutoModelForCausalLM.from_pretrained(set_dir / "model", dtype=torch.float32, attn_implementation="eager")
    adapters = sorted({a for parts in COMBINATIONS.values() for a, _ in parts})
    model = PeftModel.from_pretrained(base.eval(), set_dir / "adapters" / adapters[0], adapter_name=adapters[0])
    for adapter in adapters[1:]:
        model.load_adapter(set_dir / "adapters" / adapter, adapter_name=adapter)
    for combo, parts in COMBINATIONS.items():
        model.add_weighted_adapter([a for a, _ in parts], [w for _, w in parts], combo, combination_type="cat")
        model.set_adapter(combo)
        model.eval()  # the combination's new layers start in training mode (dropout on)
        case = {
            "id": f"{LOGIT_PROMPT}-{combo}",
            "lora": [{"name": a, "scale": w} for a, w in parts],
            "prompt_ids": prompts[LOGIT_PROMPT],
            "logits_key": writer.add_tensor(f"{LOGIT_PROMPT}-{combo}", prompt_logits(model, prompts[LOGIT_PROMPT])),
            "greedy": [],
        }
        for prompt in GREEDY_PROMPTS:
            tokens, margin = greedy(model, prompts[prompt])
            if margin < MIN_MARGIN:
                raise RuntimeError(f"{name}/{combo}/{prompt}: greedy margin {margin} < {MIN_MARGIN}")
            case["greedy"].append({"prompt_ids": prompts[prompt], "tokens": tokens, "min_margin": margin})
        writer.add_case(case)
    del writer.document["mixed_batches"]
    writer.write(out_dir)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "test" / "fixtures" / "compose")
