"""What `loraplex merge` must produce: PEFT's merge_and_unload() of each tiny fixture adapter, measured.

For each set in SETS and each adapter under test/fixtures/tiny/<set>/adapters, the base model is loaded in
float32, the adapter merged with PEFT's merge_and_unload(), every weight rounded to the checkpoint's dtype
(what saving the merged model in that dtype does; a no-op for float32 sets), and then measured in float32:
logits at every position of one prompt and greedy tokens for two prompts. Writes
OUT/<set>/expected.json + logits.safetensors (default OUT: test/fixtures/merge; format in its README).

The adapters with edge modules of test/fixtures/embedding-adapters (LoRA on embed_tokens / lm_head, saved copies,
trainable tokens) go to OUT/edges-<set>. On a tied base, merge_and_unload() merges a LoRA delta of embed_tokens or
lm_head into the one shared matrix (PEFT warns: no tied adapter exists), which changes both and departs from the
adapter's outputs; there the base is untied first, as PEFT's warning advises (tie_word_embeddings=False, lm_head a
clone of the embedding; the case says "untied_first": true). A case whose merged model is no longer tied (untied
first, or merge_and_unload() untied it: a saved copy of either) says "untied": true. Every merged model must give the
unmerged adapter's logits.

    python oracle/merge_check.py [OUT_DIR]
"""

import json
import sys
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM
from transformers.utils import logging as transformers_logging

from expected_io import ExpectedWriter
from torch_setup import deterministic_torch

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "test" / "fixtures" / "tiny"
# Llama (legacy config spelling), Qwen2 (q/k/v biases), tied embeddings, Phi-3 (fused projections), a bf16 checkpoint.
SETS = ["llama3-rope", "qwen2", "llama-tied", "phi3", "llama-bf16"]
EDGE_SETS = ["llama3-rope", "llama-tied"]  # test/fixtures/embedding-adapters/<set>/adapters, but its plain qv-r8
EDGE_ADAPTERS = ROOT / "test" / "fixtures" / "embedding-adapters"
LOGIT_PROMPT = "p13"
GREEDY_PROMPTS = ["p13", "p20"]
MAX_NEW_TOKENS = 16
MIN_MARGIN = 1e-3
SEED = 20261204
TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def main(out_root: Path) -> None:
    transformers_logging.disable_progress_bar()
    for name in SETS:
        deterministic_torch(SEED)
        measure_set(name, out_root / name)
        print(f"merge_check: {name} done", flush=True)
    for name in EDGE_SETS:
        deterministic_torch(SEED)
        adapters = [d for d in sorted((EDGE_ADAPTERS / name / "adapters").iterdir()) if d.name != "qv-r8"]
        measure_set(name, out_root / f"edges-{name}", adapters)
        print(f"merge_check: edges-{name} done", flush=True)


def measure_set(name: str, out_dir: Path, adapter_dirs: list[Path] | None = None) -> None:
    set_dir = TINY / name
    fixture = json.loads((set_dir / "expected.json").read_text())
    config = json.loads((set_dir / "model" / "config.json").read_text())
    checkpoint_dtype = config.get("dtype", config.get("torch_dtype", "float32"))
    prompts = prompt_ids_by_name(fixture)
    writer = ExpectedWriter(
        fixture["family"],
        {
            "source_set": f"tiny/{name}",
            "checkpoint_dtype": checkpoint_dtype,
            "merge": "PEFT merge_and_unload() in float32, weights rounded to checkpoint_dtype, measured in float32",
            "greedy": {"max_new_tokens": MAX_NEW_TOKENS, "ignore_eos": True, "min_margin": MIN_MARGIN},
            "generator": "oracle/merge_check.py",
            **({"adapters": str(adapter_dirs[0].parent.relative_to(ROOT))} if adapter_dirs else {}),
        },
    )
    for adapter_dir in adapter_dirs or sorted((set_dir / "adapters").iterdir()):
        adapter = adapter_dir.name
        merged, served_gap, untied_first = merged_model(set_dir / "model", adapter_dir, TORCH_DTYPES[checkpoint_dtype], prompts)
        logits = prompt_logits(merged, prompts[LOGIT_PROMPT])
        case = {
            "id": f"{LOGIT_PROMPT}-{adapter}",
            "adapter": adapter,
            "prompt_ids": prompts[LOGIT_PROMPT],
            "logits_key": writer.add_tensor(f"{LOGIT_PROMPT}-{adapter}", logits),
            "merged_vs_unmerged_max_abs_diff": served_gap,
            **({"untied": True} if config.get("tie_word_embeddings") and not is_tied(merged) else {}),
            **({"untied_first": True} if untied_first else {}),
            "greedy": [],
        }
        for prompt in GREEDY_PROMPTS:
            tokens, margin = greedy(merged, prompts[prompt])
            if margin < MIN_MARGIN:
                raise RuntimeError(f"{name}/{adapter}/{prompt}: greedy margin {margin} < {MIN_MARGIN}")
            case["greedy"].append({"prompt_ids": prompts[prompt], "tokens": tokens, "min_margin": margin})
        writer.add_case(case)
    del writer.document["mixed_batches"]  # none here: each merged model is its own base
    writer.write(out_dir)


def prompt_ids_by_name(fixture: dict) -> dict[str, list[int]]:
    """The set's prompts (case ids are '<prompt>-<adapter|base>…'), drawn there with robust greedy margins."""
    prompts = {}
    for case in fixture["cases"]:
        prompts.setdefault(case["id"].split("-")[0], case["prompt_ids"])
    return prompts


def merged_model(
    model_dir: Path, adapter_dir: Path, dtype: torch.dtype, prompts: dict
) -> tuple[torch.nn.Module, float, bool]:
    """The base with the adapter merged (float32), its weights rounded through the checkpoint dtype.

    Also returns how far the merged float32 model's logits sit from PEFT serving the unmerged adapter (a
    self-check that merge_and_unload() kept the adapter's function), and whether the base had to be untied.
    """
    load = lambda **kw: AutoModelForCausalLM.from_pretrained(  # noqa: E731
        model_dir, dtype=torch.float32, attn_implementation="eager", **kw
    ).eval()
    peft_model = PeftModel.from_pretrained(load(), adapter_dir).eval()
    served = prompt_logits(peft_model, prompts[LOGIT_PROMPT])
    merged = peft_model.merge_and_unload().eval()
    gap = float((prompt_logits(merged, prompts[LOGIT_PROMPT]) - served).abs().max())
    untied = gap > 1e-4 and merged.config.tie_word_embeddings
    if untied:
        base = load(tie_word_embeddings=False)
        with torch.no_grad():
            base.lm_head.weight.data = base.model.embed_tokens.weight.data.clone()
        merged = PeftModel.from_pretrained(base, adapter_dir).eval().merge_and_unload().eval()
        gap = float((prompt_logits(merged, prompts[LOGIT_PROMPT]) - served).abs().max())
    if gap > 1e-4:
        raise RuntimeError(f"{adapter_dir.name}: merged logits differ from the unmerged adapter's by {gap}")
    with torch.no_grad():
        for parameter in merged.parameters():
            parameter.copy_(parameter.to(dtype).to(torch.float32))
    return merged, gap, untied


def is_tied(model: torch.nn.Module) -> bool:
    return model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


@torch.no_grad()
def prompt_logits(model: torch.nn.Module, prompt_ids: list[int]) -> torch.Tensor:
    return model(input_ids=torch.tensor([prompt_ids])).logits[0].float()


@torch.no_grad()
def greedy(model: torch.nn.Module, prompt_ids: list[int]) -> tuple[list[int], float]:
    """MAX_NEW_TOKENS greedy tokens (EOS ignored) and the smallest top-1 − top-2 logit gap among their steps."""
    prompt = torch.tensor([prompt_ids])
    output = model.generate(
        input_ids=prompt,
        attention_mask=torch.ones_like(prompt),
        do_sample=False,
        max_new_tokens=MAX_NEW_TOKENS,
        min_new_tokens=MAX_NEW_TOKENS,
        eos_token_id=None,
        pad_token_id=0,
        return_dict_in_generate=True,
        output_logits=True,
    )
    tokens = output.sequences[0, len(prompt_ids) :].tolist()
    step_logits = torch.cat(output.logits, dim=0).float()
    if step_logits.argmax(-1).tolist() != tokens:
        raise RuntimeError("generate() tokens are not the argmax of its own logits")
    top2 = step_logits.topk(2, dim=-1).values
    return tokens, float((top2[:, 0] - top2[:, 1]).min())


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "test" / "fixtures" / "merge")
