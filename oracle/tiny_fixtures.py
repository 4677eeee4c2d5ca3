"""Tiny random models + PEFT adapters + what transformers/PEFT compute for them: the committed fixtures.

usage: python tiny_fixtures.py OUT_DIR        (format: test/fixtures/README.md; takes seconds)

Every number comes from seeded generators, so reruns rewrite the same files (on the same library versions).
Each case is measured on the model and adapters as re-loaded from the files written, so the fixtures pin
what an engine reading those files must compute. The sets and their model configs: families.py.
"""

import json
import shutil
import sys
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from adapter_files import adapter_summary, create_random_adapters, directory_bytes, load_all, save_adapters
from adapter_rounding import DTYPE_NAMES, load_rounded_copies
from expected_io import ExpectedWriter
from families import SETS, adapter_specs, forward_summary
from model_runs import Greedy, greedy, mixed_batch_logits, prompt_logits, softcap_effect
from random_weights import randomize_base_model
from tiny_adapters import VERA_SETS, vera_specs
from torch_setup import deterministic_torch, seeded_generator
from vera_adapters import load_vera_models, save_vera_adapters

SEED = 20261129
GREEDY_TOKENS = 32
PROMPT_LENGTHS = (1, 5, 13, 20)
MIXED_TOLERANCE = 1e-4
MIN_GREEDY_MARGIN = 1e-3  # every recorded greedy step beats the runner-up logit by at least this much
MIN_SOFTCAP_EFFECT = 0.05  # a softcap must move some logit by at least this much, or it pins nothing
MAX_PROMPT_DRAWS = 50


def main(out_root: Path) -> None:
    out_root.mkdir(parents=True, exist_ok=True)
    for index, fixture in enumerate(SETS):
        deterministic_torch(SEED + index)
        set_dir = out_root / fixture["name"]
        if set_dir.exists():
            shutil.rmtree(set_dir)
        write_model_and_adapters(fixture, set_dir, seed=SEED + 1000 * index)
        measure(fixture, set_dir, seed=SEED + 1000 * index)
    print(f"wrote {out_root} ({directory_bytes(out_root) / 1e6:.2f} MB)")


def write_model_and_adapters(fixture: dict, set_dir: Path, seed: int) -> None:
    model = fixture["build"]().eval()
    # Qwen2's q/k/v biases get drawn too (bias_std), so the bias path is exercised.
    randomize_base_model(model, seed, weight_std=0.3, bias_std=0.3, norm_center=fixture.get("norm_center", 1.0))
    stored_dtype = fixture.get("stored_dtype")
    if stored_dtype is not None:
        # Saved rounded; the adapters are drawn against (and the outputs computed from) the rounded weights.
        model.to(stored_dtype).save_pretrained(set_dir / "model")
        model = AutoModelForCausalLM.from_pretrained(set_dir / "model", dtype=torch.float32).eval()
    else:
        model.save_pretrained(set_dir / "model")
    if fixture.get("legacy_config"):
        rewrite_as_legacy_config(set_dir / "model" / "config.json")

    all_specs = adapter_specs(fixture["family"])
    specs = {name: all_specs[name] for name in fixture["adapters"]}
    peft_model = create_random_adapters(model, specs, seed=seed + 1, relative_delta=0.5)
    save_adapters(peft_model, list(specs), set_dir / "adapters")
    if fixture["name"] in VERA_SETS:
        # From the base as saved: the LoRA adapters above wrapped `model` in place.
        specs = vera_specs(fixture["family"])
        save_vera_adapters(load_base(set_dir / "model"), specs, seed + 500, 0.5, set_dir / "adapters")


def load_base(model_dir: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()


def vera_names(fixture: dict) -> list[str]:
    return list(vera_specs(fixture["family"])) if fixture["name"] in VERA_SETS else []


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


def measure(fixture: dict, set_dir: Path, seed: int) -> None:
    base = load_base(set_dir / "model")
    lora_names = fixture["adapters"]
    names = lora_names + vera_names(fixture)
    model = load_all(base, set_dir / "adapters", lora_names)
    # The PeftModel that computes each adapter: VeRA adapters each have their own (see vera_adapters.py).
    runs_on: dict[str | None, PeftModel] = {name: model for name in [None, *lora_names]}
    runs_on |= load_vera_models(set_dir / "model", set_dir / "adapters", vera_names(fixture), load_base)
    # (adapter as the case names it, PEFT adapter that computes it, rounding label or None); None = the base.
    variants: list[tuple[str | None, str | None, str | None]] = [(None, None, None)]
    variants += [(name, name, None) for name in names]
    rounding = fixture.get("adapter_rounding")
    if rounding is not None:
        copies = load_rounded_copies(model, set_dir / "adapters", lora_names, rounding)
        variants += [(name, copies[name], DTYPE_NAMES[rounding]) for name in lora_names]

    generator = seeded_generator(seed + 999)
    vocab = base.config.vocab_size
    checkpoint_dtype = json.loads((set_dir / "model" / "config.json").read_text())
    writer = ExpectedWriter(
        fixture["family"],
        {
            "architecture": base.config.architectures[0],
            "checkpoint_dtype": checkpoint_dtype.get("dtype", checkpoint_dtype.get("torch_dtype")),
            "forward": forward_summary(fixture["family"], base.config),
            "logits_positions": "all",
            "greedy": {"max_new_tokens": GREEDY_TOKENS, "ignore_eos": True, "min_margin": MIN_GREEDY_MARGIN},
            "adapters": {name: adapter_summary(set_dir / "adapters" / name) for name in names},
            "generator": "oracle/tiny_fixtures.py",
            "seed": seed,
        },
    )
    single: dict[str, torch.Tensor] = {}
    rows: dict[str, tuple[str | None, list[int]]] = {}
    prompt_names = [f"p{length}" for length in PROMPT_LENGTHS]
    for prompt_name, length in zip(prompt_names, PROMPT_LENGTHS, strict=True):
        on = [(runs_on[adapter], peft_name) for adapter, peft_name, _ in variants]
        ids, runs = draw_prompt(on, length, vocab, generator)
        for (adapter, peft_name, rounded), run in zip(variants, runs, strict=True):
            case_id = f"{prompt_name}-{adapter or 'base'}" + (f"-lora{rounded}" if rounded else "")
            logits = prompt_logits(runs_on[adapter], peft_name, ids)
            entry = {"id": case_id, "adapter": adapter}
            if rounded:
                entry["adapter_rounding"] = rounded
            entry |= {
                "prompt_ids": ids,
                "greedy_tokens": run.tokens,
                "greedy_min_margin": round(run.min_margin, 6),
                "logits_key": writer.add_tensor(case_id, logits),
                "step_logits_key": writer.add_tensor(f"{case_id}.steps", run.step_logits),
            }
            writer.add_case(entry)
            if not rounded:
                single[case_id] = logits
                rows[case_id] = (adapter, ids)
        if prompt_name == prompt_names[-1]:
            check_softcaps(fixture, writer, model, ids)

    worst = 0.0
    # PEFT refuses DoRA in a mixed batch ("Cannot pass `adapter_names` when DoRA is enabled"), and VeRA adapters
    # live on PeftModels of their own: the batches that hold them are recorded (each row must give its single
    # run's results) but not run here.
    specs = adapter_specs(fixture["family"])
    mixable = [name for name in lora_names if not specs[name].get("use_dora")]
    for batch in mixed_batches(prompt_names, mixable):
        mixed = mixed_batch_logits(model, [rows[case_id] for case_id in batch])
        for case_id, logits in zip(batch, mixed, strict=True):
            worst = max(worst, float((logits - single[case_id]).abs().max()))
        writer.add_mixed_batch(batch)
    if len(mixable) < len(names):
        everyone, ragged, _ = mixed_batches(prompt_names, names)
        writer.add_mixed_batch(everyone)
        writer.add_mixed_batch(ragged)
    if worst > MIXED_TOLERANCE:
        raise RuntimeError(f"{fixture['name']}: PEFT mixed-adapter batch differs from single runs by {worst}")
    writer.set("mixed_batch_max_abs_diff", worst)
    writer.write(set_dir)
    print(f"{fixture['name']}: {len(writer.document['cases'])} cases, mixed batches agree to {worst:.2e}")


def check_softcaps(fixture: dict, writer: ExpectedWriter, model: PeftModel, ids: list[int]) -> None:
    effect = softcap_effect(model, ids)
    if not effect:
        return
    for cap, change in effect.items():
        if change < MIN_SOFTCAP_EFFECT:
            raise RuntimeError(f"{fixture['name']}: {cap} moves the logits by only {change}: make it smaller")
    writer.set("softcap_effect", {cap: round(change, 4) for cap, change in effect.items()})


def draw_prompt(
    runs: list[tuple[PeftModel, str | None]], length: int, vocab: int, generator: torch.Generator
) -> tuple[list[int], list[Greedy]]:
    """Random prompt ids whose greedy runs (base and every adapter) never hinge on a near-tie.

    A top-1/top-2 gap below MIN_GREEDY_MARGIN could flip under float32 rounding differences between
    implementations, which would make an exact token comparison flaky; such prompts are redrawn.
    """
    for _ in range(MAX_PROMPT_DRAWS):
        ids = torch.randint(0, vocab, (length,), generator=generator).tolist()
        results = [greedy(model, adapter, ids, GREEDY_TOKENS) for model, adapter in runs]
        if min(result.min_margin for result in results) >= MIN_GREEDY_MARGIN:
            return ids, results
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
