"""A model too big for memory checked one layer at a time: transformers' own Llama layers, fed from safetensors.

    stats = streamed_logits_check(model_dir, prompt_ids)   # {"logit_std": 0.9, "argmax": 1234, "hidden_rms": [...]}

Each decoder layer is built, loaded from the shards, run over the whole prompt in float32 and dropped, so peak memory
is one layer (≈ 0.9 GB for the 8B) plus the output head. It checks what generation needs: finite hidden states and
logits of a sane scale at the last position (the bench models are random, so there is nothing else to compare).
"""

import json
from pathlib import Path

import torch
from safetensors import safe_open
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaRMSNorm, LlamaRotaryEmbedding


class _Shards:
    def __init__(self, model_dir: Path):
        index = model_dir / "model.safetensors.index.json"
        if index.exists():
            weight_map = json.loads(index.read_text())["weight_map"]
        else:
            with safe_open(model_dir / "model.safetensors", "pt") as f:
                weight_map = {name: "model.safetensors" for name in f.keys()}  # noqa: SIM118 (safe_open has no iter)
        self.dir, self.weight_map = model_dir, weight_map

    def get(self, name: str) -> torch.Tensor:
        with safe_open(self.dir / self.weight_map[name], "pt") as f:
            return f.get_tensor(name).float()

    def prefixed(self, prefix: str) -> dict[str, torch.Tensor]:
        return {n[len(prefix) :]: self.get(n) for n in self.weight_map if n.startswith(prefix)}


def streamed_logits_check(model_dir: Path, prompt_ids: list[int]) -> dict:
    config = LlamaConfig.from_pretrained(model_dir)
    config._attn_implementation = "sdpa"  # causal when no mask is given
    shards = _Shards(model_dir)
    ids = torch.tensor([prompt_ids])
    positions = torch.arange(len(prompt_ids))[None]
    with torch.no_grad():
        hidden = torch.nn.functional.embedding(ids, shards.get("model.embed_tokens.weight"))
        rope = LlamaRotaryEmbedding(config)(hidden, positions)
        rms = []
        for i in range(config.num_hidden_layers):
            layer = LlamaDecoderLayer(config, i).float()
            layer.load_state_dict(shards.prefixed(f"model.layers.{i}."))
            hidden = layer(hidden, position_ids=positions, position_embeddings=rope)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
            rms.append(float(hidden.pow(2).mean().sqrt()))
            if not torch.isfinite(hidden).all():
                raise SystemExit(f"{model_dir}: non-finite hidden state after layer {i}")
        norm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        norm.weight.copy_(shards.get("model.norm.weight"))
        head = "model.embed_tokens.weight" if config.tie_word_embeddings else "lm_head.weight"
        logits = norm(hidden[0, -1]) @ shards.get(head).T
    if not torch.isfinite(logits).all():
        raise SystemExit(f"{model_dir}: non-finite logits")
    return {"logit_std": float(logits.std()), "argmax": int(logits.argmax()), "hidden_rms": rms}
