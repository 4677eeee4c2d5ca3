"""Tiny random models + PEFT adapters + what transformers/PEFT compute for them: the committed fixtures.

usage: python tiny_fixtures.py OUT_DIR        (format: test/fixtures/README.md; takes seconds)

Every number comes from seeded generators, so reruns rewrite the same files (on the same library versions).
Each case is measured on the model and adapters as re-loaded from the files written, so the fixtures pin
what an engine reading those files must compute.
"""

import json
import shutil
import sys
from pathlib import Path

import torch
from peft import PeftModel
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from adapter_files import adapter_summary, create_random_adapters, directory_bytes, load_all, save_adapters
from expected_io import ExpectedWriter
from model_runs import Greedy, greedy, mixed_batch_logits, prompt_logits
from random_weights import randomize_base_model
from torch_setup import deterministic_torch, seeded_generator

SEED = 20261129
GREEDY_TOKENS = 32
PROMPT_LENGTHS = (1, 5, 13, 20)
STEP_LOGITS_PROMPT = "p5"  # decode-step logits are recorded for this prompt only (keeps the fixtures small)
STEP_LOGITS_ADAPTERS = (None, "all-r8-rslora")
MIXED_TOLERANCE = 1e-4
MIN_GREEDY_MARGIN = 1e-3  # every recorded greedy step beats the runner-up logit by at least this much
MAX_PROMPT_DRAWS = 50

SHAPE = dict(
    vocab_size=96,
    hidden_size=64,
    intermediate_size=112,
    num_attention_heads=4,
    num_key_value_heads=2,  # GQA: two query heads per KV head
    head_dim=16,
    max_position_embeddings=128,
    rms_norm_eps=1e-6,
)
ALL_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# name → LoraConfig arguments. Together they cover every option an engine must honour.
ADAPTERS: dict[str, dict] = {
    "qv-r8": dict(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.1),
    "mlp-r1": dict(r=1, lora_alpha=4, target_modules=["gate_proj", "up_proj", "down_proj"]),
    "all-r8-rslora": dict(r=8, lora_alpha=16, use_rslora=True, target_modules=ALL_TARGETS, lora_dropout=0.05),
    "patterns": dict(
        r=4,
        lora_alpha=8,
        target_modules=ALL_TARGETS,
        rank_pattern={"q_proj": 2, "mlp.down_proj": 12, "model.layers.1.mlp.up_proj": 6},
        alpha_pattern={"o_proj": 3, "layers.0.self_attn.k_proj": 20},
    ),
    "regex": dict(
        r=8,
        lora_alpha=8,
        target_modules=r".*\.layers\.0\.self_attn\.(k_proj|o_proj)|.*\.layers\.1\.mlp\.down_proj",
    ),
    "qv-r64-layer1": dict(
        r=64, lora_alpha=32, target_modules=["q_proj", "v_proj"], layers_to_transform=[1], layers_pattern="layers"
    ),
    "dora": dict(r=4, lora_alpha=8, use_dora=True, target_modules=["q_proj", "v_proj", "down_proj"]),
}

LLAMA3_ROPE = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    # With head_dim 16 and θ=5e5 the wavelengths are 6.3, 32.5, 167, …: one pair below 64/4 (kept), one
    # between 64/4 and 64 (smoothed), the rest above 64 (divided by factor): all three llama3 bands occur.
    "original_max_position_embeddings": 64,
}

CASES = [
    dict(
        name="llama-tied",
        family="llama",
        build=lambda: LlamaForCausalLM(LlamaConfig(**SHAPE, num_hidden_layers=2, tie_word_embeddings=True)),
        adapters=list(ADAPTERS),
    ),
    dict(
        name="llama3-rope",
        family="llama",
        build=lambda: LlamaForCausalLM(
            LlamaConfig(**SHAPE, num_hidden_layers=2, rope_parameters={"rope_theta": 500000.0, **LLAMA3_ROPE})
        ),
        # RoPE is a base-model feature: two adapters (attention-only and all targets) are enough here.
        adapters=["qv-r8", "all-r8-rslora"],
        legacy_config=True,
    ),
    dict(
        name="mistral",
        family="mistral",
        build=lambda: MistralForCausalLM(MistralConfig(**SHAPE, num_hidden_layers=2, sliding_window=None)),
        adapters=list(ADAPTERS),
    ),
    dict(
        name="mistral-sliding",
        family="mistral",
        # A window of 8 tokens (query included): prompts of 13 and 20 and every decode step run past it.
        build=lambda: MistralForCausalLM(MistralConfig(**SHAPE, num_hidden_layers=1, sliding_window=8)),
        adapters=["qv-r8", "all-r8-rslora"],
    ),
    dict(
        name="qwen2",
        family="qwen2",
        build=lambda: Qwen2ForCausalLM(Qwen2Config(**SHAPE, num_hidden_layers=2)),
        adapters=list(ADAPTERS),
    ),
]


def main(out_root: Path) -> None:
    out_root.mkdir(parents=True, exist_ok=True)
    for index, case in enumerate(CASES):
        deterministic_torch(SEED + index)
        case_dir = out_root / case["name"]
        if case_dir.exists():
            shutil.rmtree(case_dir)
        write_model_and_adapters(case, case_dir, seed=SEED + 1000 * index)
        measure(case, case_dir, seed=SEED + 1000 * index)
    print(f"wrote {out_root} ({directory_bytes(out_root) / 1e6:.2f} MB)")


def write_model_and_adapters(case: dict, case_dir: Path, seed: int) -> None:
    model = case["build"]().eval()
    # Qwen2's q/k/v biases get drawn too (bias_std), so the bias path is exercised.
    randomize_base_model(model, seed, weight_std=0.3, bias_std=0.3)
    model.save_pretrained(case_dir / "model")
    if case.get("legacy_config"):
        rewrite_as_legacy_config(case_dir / "model" / "config.json")

    specs = {name: ADAPTERS[name] for name in case["adapters"]}
    peft_model = create_random_adapters(model, specs, seed=seed + 1, relative_delta=0.5)
    save_adapters(peft_model, list(specs), case_dir / "adapters")


def rewrite_as_legacy_config(path: Path) -> None:
    """Most hub checkpoints still spell RoPE as rope_theta + rope_scaling and the dtype as torch_dtype.

    One fixture keeps that spelling (transformers 5 reads both) so config parsers are tested on each.
    """
    config = json.loads(path.read_text())
    rope = dict(config.pop("rope_parameters"))
    config["rope_theta"] = rope.pop("rope_theta")
    config["rope_scaling"] = rope
    config["torch_dtype"] = config.pop("dtype")
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def measure(case: dict, case_dir: Path, seed: int) -> None:
    base = AutoModelForCausalLM.from_pretrained(case_dir / "model", dtype=torch.float32, attn_implementation="eager")
    names = case["adapters"]
    model = load_all(base, case_dir / "adapters", names)

    generator = seeded_generator(seed + 999)
    vocab = base.config.vocab_size
    adapters = [None, *names]
    writer = ExpectedWriter(
        case["family"],
        {
            "architecture": base.config.architectures[0],
            "logits_positions": "all",
            "greedy": {"max_new_tokens": GREEDY_TOKENS, "ignore_eos": True, "min_margin": MIN_GREEDY_MARGIN},
            "adapters": {name: adapter_summary(case_dir / "adapters" / name) for name in names},
            "generator": "oracle/tiny_fixtures.py",
            "seed": seed,
        },
    )
    single: dict[str, torch.Tensor] = {}
    rows: dict[str, tuple[str | None, list[int]]] = {}
    prompt_names = [f"p{length}" for length in PROMPT_LENGTHS]
    for prompt_name, length in zip(prompt_names, PROMPT_LENGTHS, strict=True):
        ids, runs = draw_prompt(model, adapters, length, vocab, generator)
        for adapter, run in zip(adapters, runs, strict=True):
            case_id = f"{prompt_name}-{adapter or 'base'}"
            logits = prompt_logits(model, adapter, ids)
            entry = {
                "id": case_id,
                "adapter": adapter,
                "prompt_ids": ids,
                "greedy_tokens": run.tokens,
                "greedy_min_margin": round(run.min_margin, 6),
                "logits_key": writer.add_tensor(case_id, logits),
            }
            if prompt_name == STEP_LOGITS_PROMPT and adapter in STEP_LOGITS_ADAPTERS:
                entry["step_logits_key"] = writer.add_tensor(f"{case_id}.steps", run.step_logits)
            writer.add_case(entry)
            single[case_id] = logits
            rows[case_id] = (adapter, ids)

    worst = 0.0
    # PEFT refuses DoRA in a mixed batch ("Cannot pass `adapter_names` when DoRA is enabled").
    mixable = [name for name in names if not ADAPTERS[name].get("use_dora")]
    for batch in mixed_batches(prompt_names, mixable):
        mixed = mixed_batch_logits(model, [rows[case_id] for case_id in batch])
        for case_id, logits in zip(batch, mixed, strict=True):
            worst = max(worst, float((logits - single[case_id]).abs().max()))
        writer.add_mixed_batch(batch)
    if worst > MIXED_TOLERANCE:
        raise RuntimeError(f"{case['name']}: PEFT mixed-adapter batch differs from single runs by {worst}")
    writer.set("mixed_batch_max_abs_diff", worst)
    writer.write(case_dir)
    print(f"{case['name']}: {len(writer.document['cases'])} cases, mixed batches agree to {worst:.2e}")


def draw_prompt(
    model: PeftModel, adapters: list[str | None], length: int, vocab: int, generator: torch.Generator
) -> tuple[list[int], list[Greedy]]:
    """Random prompt ids whose greedy runs (base and every adapter) never hinge on a near-tie.

    A top-1/top-2 gap below MIN_GREEDY_MARGIN could flip under float32 rounding differences between
    implementations, which would make an exact token comparison flaky; such prompts are redrawn.
    """
    for _ in range(MAX_PROMPT_DRAWS):
        ids = torch.randint(0, vocab, (length,), generator=generator).tolist()
        runs = [greedy(model, adapter, ids, GREEDY_TOKENS) for adapter in adapters]
        if min(run.min_margin for run in runs) >= MIN_GREEDY_MARGIN:
            return ids, runs
    raise RuntimeError(f"no prompt of length {length} in {MAX_PROMPT_DRAWS} draws keeps greedy margins")


def mixed_batches(prompt_names: list[str], adapters: list[str]) -> list[list[str]]:
    """Batches that mix adapters: same prompt across all adapters; different lengths with a repeated adapter."""
    longest = prompt_names[-1]
    everyone = [f"{longest}-{name}" for name in ["base", *adapters]]
    first = adapters[0]
    ragged = [f"{prompt_names[i % len(prompt_names)]}-{name}" for i, name in enumerate(["base", *adapters, first])]
    same_adapter = [f"{prompt}-{first}" for prompt in prompt_names]
    return [everyone, ragged, same_adapter]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: tiny_fixtures.py OUT_DIR")
    main(Path(sys.argv[1]))
