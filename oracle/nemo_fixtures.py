"""NeMo LoRA .nemo fixtures, each paired with the PEFT adapter it equals, measured by transformers + PEFT.

nemo_toolkit cannot build these here: its current release (3.0) no longer ships the NLP collection that holds
NeMo's LoRA (nemo/collections/nlp), and the 1.x/2.x releases need megatron-core, Apex and Transformer Engine on a
GPU. So the archives are written to NeMo's documented layout, as the inverse of NeMo's own mappings:

- archive: an uncompressed tar of ./model_config.yaml and ./model_weights.ckpt
  (SaveRestoreConnector._make_nemo_file_from_folder, nemo/core/connectors/save_restore_connector.py);
- model_config.yaml: the base model's sizes and the peft section LoraPEFTConfig reads
  (nemo/collections/nlp/parts/peft_config.py: adapter_dim, alpha, target_modules, variant, layer_selection);
- model_weights.ckpt: torch.save of the adapter state dict, names per AdapterName
  (nemo/collections/nlp/modules/common/megatron/adapters/parallel_adapters.py) under model.decoder.layers.{i}.
  as scripts/nlp_language_modeling/merge_lora_weights/merge.py reads them;
- fused linear_qkv rows interleaved per KV group (q heads of the group, its k head, its v head), the layout
  scripts/checkpoint_converters/convert_llama_hf_to_nemo.py gives the base weight and that
  TransformFns.split_qkv (nemo/lightning/io/state.py) undoes for base weights and LoRA linear_out alike; one
  linear_in shared by q, k, v (TransformFns.duplicate3 in NeMo's LoRA exporter, nemo/collections/llm/gpt/model/
  llama.py); linear_fc1 = gate | up (split_fc1); scale alpha / adapter_dim (ParallelLinearAdapter.forward).

Each adapter is drawn once, as NeMo factors; the same numbers are saved as a PEFT adapter (fused factors split
the way NeMo's exporter splits them; canonical q/k/v factors on Phi-3's fused qkv_proj placed block-diagonally),
and transformers + PEFT measure that PEFT adapter: logits at every position of one prompt, greedy tokens for two.
Writes OUT/<set>/{nemo/<adapter>/<adapter>.nemo, peft/<adapter>/, expected.json, logits.safetensors}
(default OUT: test/fixtures/nemo; format in its README).

    python oracle/nemo_fixtures.py [OUT_DIR]
"""

import collections
import io
import json
import math
import shutil
import sys
import tarfile
from pathlib import Path

import torch
import yaml
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM
from transformers.utils import logging as transformers_logging

from adapter_files import normalize_adapter_config
from expected_io import ExpectedWriter
from model_runs import greedy, prompt_logits
from torch_setup import deterministic_torch, seeded_generator

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "test" / "fixtures" / "tiny"
SETS = ["llama-tied", "phi3"]  # GQA 4 heads / 2 groups; Phi-3's fused qkv_proj and gate_up_proj
LOGIT_PROMPT = "p13"
GREEDY_PROMPTS = ["p13", "p20"]
MAX_NEW_TOKENS = 16
MIN_MARGIN = 1e-3
SEED = 20261204
RELATIVE_DELTA = 0.5  # the low-rank delta's std relative to the base weight's, as tiny_adapters.py draws them

# variant, target_modules as written to the YAML (None: left out, NeMo's default attention_qkv), adapter_dim,
# alpha as written (a number or an OmegaConf interpolation), checkpoint dtype, layer_selection (1-based).
ADAPTERS = {
    "fused-all": dict(variant="nemo", targets=["attention", "mlp"], dim=8, alpha=16, dtype=torch.float32, layers=None),
    "qkv-bf16-layer2": dict(
        variant="nemo", targets=None, dim=4, alpha="${peft.lora_tuning.adapter_dim}", dtype=torch.bfloat16, layers=[2]
    ),
    "canonical-all": dict(variant="canonical", targets=["all"], dim=8, alpha=12, dtype=torch.float32, layers=None),
}
NEMO_TARGETS = {
    "attention_qkv": ["attention_qkv"],
    "attention": ["attention_qkv", "attention_dense"],
    "mlp": ["mlp_fc1", "mlp_fc2"],
    "all": ["attention_qkv", "attention_dense", "mlp_fc1", "mlp_fc2"],
}


def main(out_root: Path) -> None:
    transformers_logging.disable_progress_bar()
    write_pickle_fixtures(out_root / "pickle")
    for index, name in enumerate(SETS):
        deterministic_torch(SEED)
        build_set(name, out_root / name, SEED + 1000 * index)
        print(f"nemo_fixtures: {name} done", flush=True)


def expand_targets(targets: list[str] | None) -> list[str]:
    """target_modules as NeMo's get_target_modules expands them, in model order."""
    wanted = {e for t in (targets or ["attention_qkv"]) for e in NEMO_TARGETS[t]}
    return [t for t in NEMO_TARGETS["all"] if t in wanted]


def build_set(name: str, out_dir: Path, seed: int) -> None:
    set_dir = TINY / name
    fixture = json.loads((set_dir / "expected.json").read_text())
    config = json.loads((set_dir / "model" / "config.json").read_text())
    fused = fixture["family"] == "phi3"
    sizes = model_sizes(config)
    prompts = {}
    for case in fixture["cases"]:
        prompts.setdefault(case["id"].split("-")[0], case["prompt_ids"])
    shutil.rmtree(out_dir, ignore_errors=True)
    writer = ExpectedWriter(
        fixture["family"],
        {
            "source_set": f"tiny/{name}",
            "greedy": {"max_new_tokens": MAX_NEW_TOKENS, "ignore_eos": True, "min_margin": MIN_MARGIN},
            "generator": "oracle/nemo_fixtures.py",
            "seed": seed,
        },
    )
    for offset, (adapter, spec) in enumerate(ADAPTERS.items()):
        generator = seeded_generator(seed + offset)
        base = load_base(set_dir)
        targets = expand_targets(spec["targets"])
        alpha = spec["dim"] if isinstance(spec["alpha"], str) else spec["alpha"]
        layers = [l - 1 for l in spec["layers"]] if spec["layers"] else list(range(sizes["layers"]))
        pieces = draw_pieces(base, sizes, targets, spec, alpha / spec["dim"], layers, generator)
        peft_dir = out_dir / "peft" / adapter
        save_peft(base, sizes, pieces, spec, alpha, layers, fused, peft_dir)
        nemo_dir = out_dir / "nemo" / adapter
        save_nemo(pieces, spec, targets, sizes, config, nemo_dir / f"{adapter}.nemo")

        model = PeftModel.from_pretrained(load_base(set_dir), peft_dir).eval()
        case = {
            "id": f"{LOGIT_PROMPT}-{adapter}",
            "adapter": adapter,
            "prompt_ids": prompts[LOGIT_PROMPT],
            "logits_key": writer.add_tensor(f"{LOGIT_PROMPT}-{adapter}", prompt_logits(model, "default", prompts[LOGIT_PROMPT])),
            "greedy": [],
        }
        for prompt in GREEDY_PROMPTS:
            result = greedy(model, "default", prompts[prompt], MAX_NEW_TOKENS)
            if result.min_margin < MIN_MARGIN:
                raise RuntimeError(f"{name}/{adapter}/{prompt}: greedy margin {result.min_margin} < {MIN_MARGIN}")
            case["greedy"].append({"prompt_ids": prompts[prompt], "tokens": result.tokens, "min_margin": result.min_margin})
        writer.add_case(case)
    del writer.document["mixed_batches"]
    writer.write(out_dir)


def load_base(set_dir: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(set_dir / "model", dtype=torch.float32, attn_implementation="eager").eval()


def model_sizes(config: dict) -> dict:
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    return {
        "hidden": config["hidden_size"],
        "heads": heads,
        "groups": config.get("num_key_value_heads") or heads,
        "head_dim": head_dim,
        "ffn": config["intermediate_size"],
        "layers": config["num_hidden_layers"],
    }


def draw_pieces(base, sizes, targets, spec, scale, layers, generator) -> dict:
    """NeMo's factors per (layer, target, part): A [dim, in], B [out, dim] with out rows in Hugging Face order."""
    dim, h, i = spec["dim"], sizes["hidden"], sizes["ffn"]
    q, kv = sizes["heads"] * sizes["head_dim"], sizes["groups"] * sizes["head_dim"]
    weight_std = float(base.model.layers[0].self_attn.o_proj.weight.detach().std())
    shapes = {
        "attention_qkv": {"all": (h, q + 2 * kv), "q": (h, q), "k": (h, kv), "v": (h, kv)},
        "attention_dense": {"all": (q, h)},
        "mlp_fc1": {"all": (h, 2 * i), "gate": (h, i), "up": (h, i)},
        "mlp_fc2": {"all": (i, h)},
    }
    parts = {"attention_qkv": ["q", "k", "v"], "mlp_fc1": ["gate", "up"]}
    pieces = {}
    for layer in layers:
        for target in targets:
            names = parts.get(target, ["all"]) if spec["variant"] == "canonical" else ["all"]
            for part in names:
                fan_in, fan_out = shapes[target][part]
                a_std = 1.0 / math.sqrt(fan_in)
                b_std = RELATIVE_DELTA * weight_std / (scale * math.sqrt(dim) * a_std)
                a = a_std * torch.randn((dim, fan_in), generator=generator)
                b = b_std * torch.randn((fan_out, dim), generator=generator)
                # What the checkpoint dtype keeps is what both files hold.
                pieces[(layer, target, part)] = (round_to(a, spec["dtype"]), round_to(b, spec["dtype"]))
    return pieces


def round_to(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.to(dtype).to(torch.float32)


def hf_modules(target: str, fused: bool) -> list[str]:
    if fused:
        return {"attention_qkv": ["qkv_proj"], "attention_dense": ["o_proj"], "mlp_fc1": ["gate_up_proj"], "mlp_fc2": ["down_proj"]}[target]
    return {
        "attention_qkv": ["q_proj", "k_proj", "v_proj"],
        "attention_dense": ["o_proj"],
        "mlp_fc1": ["gate_proj", "up_proj"],
        "mlp_fc2": ["down_proj"],
    }[target]


def peft_factors(pieces, layer, target, sizes, fused, variant) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The PEFT (A, B) of each Hugging Face module one NeMo adapter feeds: NeMo's exporter in reverse."""
    q, kv, i = sizes["heads"] * sizes["head_dim"], sizes["groups"] * sizes["head_dim"], sizes["ffn"]
    splits = {"attention_qkv": [q, kv, kv], "mlp_fc1": [i, i]}
    modules = hf_modules(target, fused)
    if variant == "nemo" or target not in splits:
        a, b = pieces[(layer, target, "all")]
        if len(modules) == 1:
            return {modules[0]: (a, b)}
        return {m: (a, rows) for m, rows in zip(modules, torch.split(b, splits[target]))}
    parts = [pieces[(layer, target, p)] for p in (["q", "k", "v"] if target == "attention_qkv" else ["gate", "up"])]
    if not fused:
        return dict(zip(modules, parts))
    # One fused module from separately factored parts: A stacked, B block-diagonal.
    a = torch.cat([p[0] for p in parts])
    b = torch.block_diag(*[p[1] for p in parts])
    return {modules[0]: (a, b)}


def save_peft(base, sizes, pieces, spec, alpha, layers, fused, out_dir: Path) -> None:
    targets = sorted({t for (_, t, _) in pieces})
    factors = {}
    for layer in layers:
        for target in targets:
            for module, ab in peft_factors(pieces, layer, target, sizes, fused, spec["variant"]).items():
                factors[(layer, module)] = ab
    modules = sorted({m for (_, m) in factors})
    ranks = {m: next(ab[0].shape[0] for (l, mm), ab in factors.items() if mm == m) for m in modules}
    dim = spec["dim"]
    scale = alpha / dim
    config = LoraConfig(
        r=dim,
        lora_alpha=alpha,
        target_modules=modules,
        rank_pattern={m: r for m, r in ranks.items() if r != dim},
        alpha_pattern={m: scale * r for m, r in ranks.items() if r != dim},  # the same scale at every rank
        layers_to_transform=layers if len(layers) < sizes["layers"] else None,
        layers_pattern="layers" if len(layers) < sizes["layers"] else None,
        lora_dropout=0.0,
    )
    model = get_peft_model(base, config)
    with torch.no_grad():
        for (layer, module), (a, b) in factors.items():
            parent = "self_attn" if module in ("q_proj", "k_proj", "v_proj", "qkv_proj", "o_proj") else "mlp"
            lora = getattr(getattr(model.base_model.model.model.layers[layer], parent), module)
            if abs(float(lora.scaling["default"]) - scale) > 1e-12:
                raise RuntimeError(f"{module}: PEFT scale {lora.scaling['default']} is not {scale}")
            lora.lora_A["default"].weight.copy_(a)
            lora.lora_B["default"].weight.copy_(b)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    (out_dir / "README.md").unlink()  # PEFT's model card: not part of the adapter
    normalize_adapter_config(out_dir / "adapter_config.json")


def interleave_qkv(b: torch.Tensor, sizes: dict) -> torch.Tensor:
    """q | k | v rows (Hugging Face order) → megatron-core's per-group [q heads of the group, k, v]."""
    heads, groups, d = sizes["heads"], sizes["groups"], sizes["head_dim"]
    per_group = heads // groups
    q, k, v = torch.split(b, [heads * d, groups * d, groups * d])
    q = q.reshape(groups, per_group * d, -1)
    k = k.reshape(groups, d, -1)
    v = v.reshape(groups, d, -1)
    return torch.cat([q, k, v], dim=1).reshape(b.shape)


ADAPTER_NAMES = {
    ("attention_qkv", "nemo"): "self_attention.adapter_layer.lora_kqv_adapter",
    ("attention_qkv", "canonical"): "self_attention.adapter_layer.lora_unfused_kqv_adapter",
    ("attention_dense", "nemo"): "self_attention.adapter_layer.lora_dense_attention_adapter",
    ("attention_dense", "canonical"): "self_attention.adapter_layer.lora_dense_attention_adapter",
    ("mlp_fc1", "nemo"): "mlp.adapter_layer.lora_hto4h_adapter",
    ("mlp_fc1", "canonical"): "mlp.adapter_layer.lora_unfused_hto4h_adapter",
    ("mlp_fc2", "nemo"): "mlp.adapter_layer.lora_4htoh_adapter",
    ("mlp_fc2", "canonical"): "mlp.adapter_layer.lora_4htoh_adapter",
}


def save_nemo(pieces, spec, targets, sizes, config: dict, path: Path) -> None:
    state = collections.OrderedDict()
    for (layer, target, part), (a, b) in sorted(pieces.items(), key=lambda kv: (kv[0][0], targets.index(kv[0][1]), kv[0][2])):
        name = f"model.decoder.layers.{layer}.{ADAPTER_NAMES[(target, spec['variant'])]}"
        if part != "all":
            name += f".{part}_adapter"
        out = interleave_qkv(b, sizes) if (target, part) == ("attention_qkv", "all") else b
        state[f"{name}.linear_in.weight"] = a.to(spec["dtype"]).contiguous()
        state[f"{name}.linear_out.weight"] = out.to(spec["dtype"]).contiguous()
    # nn.Module.state_dict() carries _metadata (pickled through BUILD); the reader must pass over it.
    state._metadata = collections.OrderedDict({"": {"version": 1}})
    weights = io.BytesIO()
    torch.save(state, weights)

    lora_tuning = {
        "adapter_dim": spec["dim"],
        "alpha": spec["alpha"],
        "adapter_dropout": 0.0,
        "column_init_method": "xavier",
        "row_init_method": "zero",
        "layer_selection": spec["layers"],
        "weight_tying": False,
        "position_embedding_strategy": None,
        "variant": spec["variant"],
    }
    if spec["targets"] is not None:
        lora_tuning["target_modules"] = spec["targets"]
    model_config = {
        "mcore_gpt": True,
        "precision": "bf16" if spec["dtype"] == torch.bfloat16 else 32,
        "num_layers": sizes["layers"],
        "hidden_size": sizes["hidden"],
        "ffn_hidden_size": sizes["ffn"],
        "num_attention_heads": sizes["heads"],
        "num_query_groups": sizes["groups"],
        "kv_channels": None if sizes["head_dim"] * sizes["heads"] == sizes["hidden"] else sizes["head_dim"],
        "activation": "fast-swiglu",
        "normalization": "rmsnorm",
        "position_embedding_type": "rope",
        "tensor_model_parallel_size": 1,
        "pipeline_model_parallel_size": 1,
        "restore_from_path": f"tiny-{config['model_type']}.nemo",
        "data": {"train_ds": {"prompt_template": "{input} {output}", "file_names": ["train.jsonl"]}},
        "peft": {"peft_scheme": "lora", "restore_from_path": None, "lora_tuning": lora_tuning},
    }
    config_text = yaml.safe_dump(model_config, sort_keys=False, default_flow_style=False).encode()

    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:", format=tarfile.PAX_FORMAT) as tar:
        add_member(tar, "./", None)
        add_member(tar, "./model_config.yaml", config_text)
        add_member(tar, "./model_weights.ckpt", weights.getvalue())


def add_member(tar: tarfile.TarFile, name: str, data: bytes | None) -> None:
    info = tarfile.TarInfo(name.rstrip("/") or ".")
    info.mtime = 0  # reruns write the same bytes
    if data is None:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(info)
    else:
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))


class RunsCode:
    """Unpickling this runs a shell command: the reader must refuse it by name and run nothing."""

    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/loraplex-pickle-ran",))


def write_pickle_fixtures(out_dir: Path) -> None:
    """torch.save files for the restricted unpickler's round-trip tests, and the values they hold."""
    out_dir.mkdir(parents=True, exist_ok=True)
    generator = seeded_generator(SEED)
    base = torch.randn((4, 6), generator=generator)
    shared = torch.randn(10, generator=generator)
    state = collections.OrderedDict()
    state["f32"] = base.clone()
    state["f16"] = base.to(torch.float16)
    state["bf16"] = base.to(torch.bfloat16)
    state["transposed"] = base.t()  # strides (1, 6): a view, not contiguous
    state["sliced"] = shared[3:7]  # storage offset 3, sharing its storage with "whole"
    state["whole"] = shared
    state["scalar"] = torch.tensor(2.5)
    state["empty"] = torch.zeros((0, 3))
    state["extra_state"] = None
    state._metadata = collections.OrderedDict({"": {"version": 1}})
    expected = {
        k: {"shape": list(v.shape), "values": v.float().flatten().tolist()} for k, v in state.items() if v is not None
    }
    for protocol in (2, 4, 5):
        torch.save(state, out_dir / f"state-dict-protocol{protocol}.pt", pickle_protocol=protocol)
    containers = {
        "list": [1, -2, 300, 70000, -(2**40), 2**70],
        "tuple": (True, False, None),
        "set": {3, 1, 2},
        "float": 1.5,
        "text": "héllo",
        "bytes": b"\x00\x01",
        "nested": {"k": [{"deep": "x"}]},
    }
    torch.save(containers, out_dir / "containers.pt", pickle_protocol=2)
    torch.save(containers, out_dir / "containers-protocol4.pt", pickle_protocol=4)
    torch.save({"w": base, "payload": RunsCode()}, out_dir / "runs-code.pt")
    (out_dir / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "test" / "fixtures" / "nemo")
