"""NeMo Tied-LoRA .nemo fixtures (weight_tying: true), checked against a small torch forward of NeMo's definition.

NeMo's Tied-LoRA (LoraPEFTConfig with weight_tying; NLPAdapterModelMixin.tie_weights and
ParallelLinearAdapterWeightTying in nemo/collections/nlp/modules/common/megatron/adapters/parallel_adapters.py):
every adapted layer's linear_in / linear_out is tied to layer 0's, so each layer adds scale · B · (A · x) with the
same A and B. NeMo's adapter keys are collected before tying, so get_peft_state_dict saves every layer's name:
the archive holds one (equal) copy per layer. position_embedding_strategy is null here: its other values add a
per-layer position embedding, which loraplex refuses.

The archives are written like oracle/nemo_fixtures.py's (same tar, YAML and names; only weight_tying differs). Expected outputs come from the base model in transformers with forward hooks that
add the tied delta to every adapted projection (the reference), cross-checked against transformers + PEFT on
a PEFT twin that repeats the factors in every layer (also saved, for the loader's weight comparison).
Writes OUT/<set>/{nemo/<adapter>/<adapter>.nemo, peft/<adapter>/, expected.json, logits.safetensors}
(default OUT: test/fixtures/tied-lora).

    python oracle/tied_lora_fixtures.py [OUT_DIR]
"""

import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

import torch
import yaml
from peft import PeftModel
from transformers.utils import logging as transformers_logging

import nemo_fixtures as nemo
from expected_io import ExpectedWriter
from model_runs import greedy, prompt_logits
from torch_setup import deterministic_torch, seeded_generator

ROOT = Path(__file__).resolve().parent.parent
SETS = ["llama-tied", "phi3"]
SEED = 20261205
REFERENCE_VS_PEFT = 1e-4  # the hooks and PEFT's twin compute the same sums in another order

ADAPTERS = {
    "tied-qkv": dict(variant="nemo", targets=None, dim=8, alpha=16, dtype=torch.float32, layers=None),
    "tied-all-canonical": dict(variant="canonical", targets=["all"], dim=4, alpha=8, dtype=torch.float32, layers=None),
    "tied-bf16-selected": dict(
        variant="nemo",
        targets=["attention", "mlp"],
        dim=4,
        alpha="${peft.lora_tuning.adapter_dim}",
        dtype=torch.bfloat16,
        layers=[1, 2],
    ),
}


def main(out_root: Path) -> None:
    transformers_logging.disable_progress_bar()
    for index, name in enumerate(SETS):
        deterministic_torch(SEED)
        build_set(name, out_root / name, SEED + 1000 * index)
        print(f"tied_lora_fixtures: {name} done", flush=True)


def build_set(name: str, out_dir: Path, seed: int) -> None:
    set_dir = nemo.TINY / name
    fixture = json.loads((set_dir / "expected.json").read_text())
    config = json.loads((set_dir / "model" / "config.json").read_text())
    fused = fixture["family"] == "phi3"
    sizes = nemo.model_sizes(config)
    prompts = {}
    for case in fixture["cases"]:
        prompts.setdefault(case["id"].split("-")[0], case["prompt_ids"])
    shutil.rmtree(out_dir, ignore_errors=True)
    writer = ExpectedWriter(
        fixture["family"],
        {
            "source_set": f"tiny/{name}",
            "greedy": {"max_new_tokens": nemo.MAX_NEW_TOKENS, "ignore_eos": True, "min_margin": nemo.MIN_MARGIN},
            "reference": "base model + forward hooks adding scale·B·(A·x) (the tied factors) to every adapted projection",
            "generator": "oracle/tied_lora_fixtures.py",
            "seed": seed,
        },
    )
    for offset, (adapter, spec) in enumerate(ADAPTERS.items()):
        generator = seeded_generator(seed + offset)
        targets = nemo.expand_targets(spec["targets"])
        alpha = spec["dim"] if isinstance(spec["alpha"], str) else spec["alpha"]
        scale = alpha / spec["dim"]
        layers = [l - 1 for l in spec["layers"]] if spec["layers"] else list(range(sizes["layers"]))
        owner = layers[0]
        shared = nemo.draw_pieces(nemo.load_base(set_dir), sizes, targets, spec, scale, [owner], generator)
        # The tied definition: every adapted layer uses the owner's factors.
        every = {(layer, t, p): ab for layer in layers for (_, t, p), ab in shared.items()}
        nemo.save_peft(nemo.load_base(set_dir), sizes, every, spec, alpha, layers, fused, out_dir / "peft" / adapter)
        save_tied_nemo(every, spec, targets, sizes, config, out_dir / "nemo" / adapter / f"{adapter}.nemo")

        reference = with_tied_hooks(nemo.load_base(set_dir), shared, layers, targets, sizes, fused, spec, scale)
        twin = PeftModel.from_pretrained(nemo.load_base(set_dir), out_dir / "peft" / adapter).eval()
        ids = prompts[nemo.LOGIT_PROMPT]
        logits = plain_logits(reference, ids)
        gap = float((logits - prompt_logits(twin, "default", ids)).abs().max())
        if gap > REFERENCE_VS_PEFT:
            raise RuntimeError(f"{name}/{adapter}: the tied reference and PEFT's twin differ by {gap}")
        case = {
            "id": f"{nemo.LOGIT_PROMPT}-{adapter}",
            "adapter": adapter,
            "prompt_ids": ids,
            "logits_key": writer.add_tensor(f"{nemo.LOGIT_PROMPT}-{adapter}", logits),
            "reference_vs_peft_twin": gap,
            "greedy": [],
        }
        for prompt in nemo.GREEDY_PROMPTS:
            result = greedy(reference, None, prompts[prompt], nemo.MAX_NEW_TOKENS)
            if result.min_margin < nemo.MIN_MARGIN:
                raise RuntimeError(f"{name}/{adapter}/{prompt}: greedy margin {result.min_margin} < {nemo.MIN_MARGIN}")
            case["greedy"].append({"prompt_ids": prompts[prompt], "tokens": result.tokens, "min_margin": result.min_margin})
        writer.add_case(case)
    del writer.document["mixed_batches"]
    writer.write(out_dir)


class HookedModel(torch.nn.Module):
    """The base model with hooks; `disable_adapter` and `generate` as model_runs.greedy expects of a PeftModel."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, **kwargs):
        return self.model(**kwargs)

    def generate(self, **kwargs):
        return self.model.generate(**kwargs)

    def disable_adapter(self):
        import contextlib

        return contextlib.nullcontext()  # the hooks are the adapter: "no adapter" here means this model as is


def with_tied_hooks(base, shared, layers, targets, sizes, fused, spec, scale) -> HookedModel:
    """Adds scale · (x·Aᵀ)·Bᵀ to each adapted Hugging Face projection of each adapted layer, A and B the tied ones.

    The NeMo factors map onto Hugging Face modules as NeMo's LoRA exporter maps them (nemo_fixtures.peft_factors):
    the fused qkv's rows split into q, k, v (each with the shared linear_in), fc1 into gate and up.
    """
    owner = layers[0]
    for layer in layers:
        for target in targets:
            for module_name, (a, b) in nemo.peft_factors(shared, owner, target, sizes, fused, spec["variant"]).items():
                parent = "self_attn" if module_name in ("q_proj", "k_proj", "v_proj", "qkv_proj", "o_proj") else "mlp"
                module = getattr(getattr(base.model.layers[layer], parent), module_name)

                def hook(_module, inputs, output, a=a, b=b):
                    return output + scale * ((inputs[0] @ a.t()) @ b.t())

                module.register_forward_hook(hook)
    return HookedModel(base).eval()


@torch.no_grad()
def plain_logits(model: HookedModel, ids: list[int]) -> torch.Tensor:
    return model(input_ids=torch.tensor([ids])).logits[0].float()


def save_tied_nemo(pieces, spec, targets, sizes, config: dict, path: Path) -> None:
    """nemo_fixtures.save_nemo's archive of every layer's (tied, equal) factors, with weight_tying: true in its YAML."""
    nemo.save_nemo(pieces, spec, targets, sizes, config, path)
    with tarfile.open(path) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    model_config = yaml.safe_load(members["./model_config.yaml"])
    model_config["peft"]["lora_tuning"]["weight_tying"] = True
    text = yaml.safe_dump(model_config, sort_keys=False, default_flow_style=False).encode()
    with tarfile.open(path, "w:", format=tarfile.PAX_FORMAT) as tar:
        nemo.add_member(tar, "./", None)
        nemo.add_member(tar, "./model_config.yaml", text)
        nemo.add_member(tar, "./model_weights.ckpt", members["./model_weights.ckpt"])


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "test" / "fixtures" / "tied-lora")
