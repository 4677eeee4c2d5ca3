"""The tiny fixture sets: one transformers model config per set, and what each family's forward pass does.

Every set shares the tiny shape below (vocab 96, hidden 64); a family changes only what it must.
"""

import math

import torch
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Phi3Config,
    Phi3ForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from tiny_adapters import ADAPTERS, FUSED_ADAPTERS

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
# Qwen3 and Gemma3 allow head_dim ≠ hidden/heads: 24 (q_proj [96, 64], k/v_proj [48, 64], o_proj [64, 96]).
WIDE_HEADS = {**SHAPE, "head_dim": 24}
# Phi-3 has no head_dim field (hidden/heads = 16) and its default pad id 32000 is outside the tiny vocab.
PHI3_SHAPE = {key: value for key, value in SHAPE.items() if key != "head_dim"}

LLAMA3_ROPE = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    # With head_dim 16 and θ=5e5 the wavelengths are 6.3, 32.5, 167, …: one pair below 64/4 (kept), one
    # between 64/4 and 64 (smoothed), the rest above 64 (divided by factor): all three llama3 bands occur.
    "original_max_position_embeddings": 64,
}

# Gemma's sliding layers see the query and the 7 tokens before it (q − k < 8); prompts p13 and p20 and every
# decode step run past the window. The softcaps bite without saturating: raw logits reach about ±18 (top-1
# around 15), raw attention scores a similar few units to ±15; cap·tanh(x/cap) then bends the large values.
GEMMA_WINDOW = 8
GEMMA_ATTN_SOFTCAP = 8.0
GEMMA_FINAL_SOFTCAP = 10.0

SPLIT = list(ADAPTERS)
FUSED = list(FUSED_ADAPTERS)

# Each set: name, family, build (→ model in float32), adapters (names in `adapter_specs`), and options:
#   legacy_config   rewrite config.json in the pre-transformers-5 spelling
#   norm_center     norm weights are drawn as norm_center ± 0.2 (Gemma's RMSNorm multiplies by 1 + w)
#   stored_dtype    save the checkpoint in this dtype; expectations are computed in float32 from it
#   adapter_rounding  also record every adapter with A and B rounded to this dtype (extra "-lora<dtype>" cases)
# Sets are seeded by their index here: append new sets at the end so the others keep their bytes.
SETS = [
    dict(
        name="llama-tied",
        family="llama",
        build=lambda: LlamaForCausalLM(LlamaConfig(**SHAPE, num_hidden_layers=2, tie_word_embeddings=True)),
        adapters=SPLIT,
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
        adapters=SPLIT,
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
        adapters=SPLIT,
    ),
    dict(
        name="qwen3",
        family="qwen3",
        build=lambda: Qwen3ForCausalLM(Qwen3Config(**WIDE_HEADS, num_hidden_layers=2, attention_bias=False)),
        adapters=SPLIT,
    ),
    dict(
        name="gemma2",
        family="gemma2",
        build=lambda: Gemma2ForCausalLM(
            Gemma2Config(
                **SHAPE,
                num_hidden_layers=2,  # layer_types default: sliding, full (alternating)
                query_pre_attn_scalar=24,  # scores scale 1/√24, not 1/√head_dim
                sliding_window=GEMMA_WINDOW,
                attn_logit_softcapping=GEMMA_ATTN_SOFTCAP,
                final_logit_softcapping=GEMMA_FINAL_SOFTCAP,
                tie_word_embeddings=True,
            )
        ),
        adapters=SPLIT,
        norm_center=0.0,
    ),
    dict(
        name="gemma3",
        family="gemma3",
        build=lambda: Gemma3ForCausalLM(
            Gemma3TextConfig(
                **WIDE_HEADS,
                num_hidden_layers=3,
                # Both spellings, consistent: transformers 5 saves layer_types, and also writes the private
                # `_sliding_window_pattern` (6 unless given, even when layer_types says otherwise).
                layer_types=["sliding_attention", "sliding_attention", "full_attention"],
                sliding_window_pattern=3,
                rope_parameters={
                    "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                    "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                },
                query_pre_attn_scalar=20,
                sliding_window=GEMMA_WINDOW,
                # Gemma3Attention never passes attn_logit_softcapping to its attention function: left off.
                attn_logit_softcapping=None,
                final_logit_softcapping=GEMMA_FINAL_SOFTCAP,
                tie_word_embeddings=True,
            )
        ),
        adapters=SPLIT,
        norm_center=0.0,
    ),
    dict(
        name="phi3",
        family="phi3",
        build=lambda: Phi3ForCausalLM(
            Phi3Config(
                **PHI3_SHAPE,
                num_hidden_layers=2,
                original_max_position_embeddings=128,
                sliding_window=None,
                pad_token_id=None,
                bos_token_id=1,
                eos_token_id=2,
            )
        ),
        adapters=FUSED,
    ),
    dict(
        name="llama-bf16",
        family="llama",
        build=lambda: LlamaForCausalLM(LlamaConfig(**SHAPE, num_hidden_layers=2)),
        adapters=["qv-r8", "mlp-r1", "all-r8-rslora"],
        stored_dtype=torch.bfloat16,
        adapter_rounding=torch.bfloat16,
    ),
    dict(
        name="llama-f16",
        family="llama",
        build=lambda: LlamaForCausalLM(LlamaConfig(**SHAPE, num_hidden_layers=2)),
        adapters=["qv-r8", "mlp-r1", "all-r8-rslora"],
        stored_dtype=torch.float16,
        adapter_rounding=torch.bfloat16,
    ),
]


def adapter_specs(family: str) -> dict[str, dict]:
    return FUSED_ADAPTERS if family == "phi3" else ADAPTERS


def forward_summary(family: str, config) -> dict:
    """What the forward pass does, at a glance (config.json stays the source of truth)."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    gemma = family in ("gemma2", "gemma3")
    scalar = getattr(config, "query_pre_attn_scalar", None)
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None) or [
        "sliding_attention" if window else "full_attention"
    ] * config.num_hidden_layers
    sliding = "sliding_attention" in layer_types
    rope = config.rope_parameters
    # Gemma3 has one RoPE per layer type (θ 1e6 global, 1e4 local); the others one for all layers.
    per_layer = [rope[kind] if kind in rope else rope for kind in layer_types]
    return {
        "layers": config.num_hidden_layers,
        "head_dim": head_dim,
        "norm": "rmsnorm(1+w)" if gemma else "rmsnorm(w)",
        "norms_per_layer": 4 if gemma else 2,
        "qk_norm": family in ("qwen3", "gemma3"),
        "activation": getattr(config, "hidden_activation", None) or config.hidden_act,
        "embedding_scale": math.sqrt(config.hidden_size) if gemma else None,
        "attention_scale": (scalar if scalar is not None else head_dim) ** -0.5,
        "attn_logit_softcapping": config.attn_logit_softcapping if family == "gemma2" else None,
        "final_logit_softcapping": getattr(config, "final_logit_softcapping", None),
        "sliding_window": window if sliding else None,
        "layer_types": layer_types,
        "rope_per_layer": [
            {"rope_type": r["rope_type"], "rope_theta": r["rope_theta"]}
            | ({"partial_rotary_factor": r["partial_rotary_factor"]} if "partial_rotary_factor" in r else {})
            for r in per_layer
        ],
        "fused_projections": family == "phi3",
        "tie_word_embeddings": config.tie_word_embeddings,
    }
