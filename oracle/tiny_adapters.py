"""The tiny fixtures' adapters: LoraConfig arguments by name, for split and for fused (Phi-3) projections.

Together they cover every option an engine must honour; a family gets the same names where they make sense.
"""

ALL_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# Llama, Mistral, Qwen2/3, Gemma2/3: separate q/k/v and gate/up projections.
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
    # DoRA on part of each fused group (q and v, not k; down only), then on every projection with rsLoRA.
    "dora": dict(r=4, lora_alpha=8, use_dora=True, target_modules=["q_proj", "v_proj", "down_proj"]),
    "dora-all-rslora": dict(r=8, lora_alpha=16, use_dora=True, use_rslora=True, target_modules=ALL_TARGETS),
}

FUSED_TARGETS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]

# Phi-3: the checkpoint has fused qkv_proj ([q+k+v, hidden]) and gate_up_proj ([2·intermediate, hidden]);
# PEFT targets the fused modules, so lora_B of qkv_proj has q+k+v rows.
FUSED_ADAPTERS: dict[str, dict] = {
    "qkv-r8": dict(r=8, lora_alpha=16, target_modules=["qkv_proj"], lora_dropout=0.1),
    "mlp-r1": dict(r=1, lora_alpha=4, target_modules=["gate_up_proj", "down_proj"]),
    "all-r8-rslora": dict(r=8, lora_alpha=16, use_rslora=True, target_modules=FUSED_TARGETS, lora_dropout=0.05),
    "patterns": dict(
        r=4,
        lora_alpha=8,
        target_modules=FUSED_TARGETS,
        rank_pattern={"qkv_proj": 2, "mlp.down_proj": 12, "model.layers.1.mlp.gate_up_proj": 6},
        alpha_pattern={"o_proj": 3, "layers.0.self_attn.qkv_proj": 20},
    ),
    "regex": dict(
        r=8,
        lora_alpha=8,
        target_modules=r".*\.layers\.0\.self_attn\.(qkv_proj|o_proj)|.*\.layers\.1\.mlp\.down_proj",
    ),
    "qkv-r64-layer1": dict(
        r=64, lora_alpha=32, target_modules=["qkv_proj"], layers_to_transform=[1], layers_pattern="layers"
    ),
    "dora": dict(r=4, lora_alpha=8, use_dora=True, target_modules=["qkv_proj", "down_proj"]),
    "dora-all-rslora": dict(r=8, lora_alpha=16, use_dora=True, use_rslora=True, target_modules=FUSED_TARGETS),
}

# VeRA (PEFT's VeraConfig): one pair of frozen random matrices vera_A [r, max in], vera_B [max out, r] per
# adapter, sliced to each targeted module's shape, and trained vectors lambda_d [r], lambda_b [out] per module.
# Each adapter gets its own PRNG key; "vera-mlp-prng" does not save its matrices (PEFT regenerates them from
# projection_prng_key at load, and so must an engine).
VERA_ADAPTERS: dict[str, dict] = {
    "vera-qv": dict(r=16, target_modules=["q_proj", "v_proj"], projection_prng_key=11),
    "vera-all": dict(r=8, target_modules=ALL_TARGETS, projection_prng_key=0),
    "vera-mlp-prng": dict(
        r=12, target_modules=["gate_proj", "up_proj", "down_proj"], projection_prng_key=20261204, save_projection=False
    ),
}

# Phi-3: the same adapters on the fused modules (qkv_proj [128, 64], gate_up_proj [224, 64]: other slices of A, B).
FUSED_VERA_ADAPTERS: dict[str, dict] = {
    "vera-qkv": dict(r=16, target_modules=["qkv_proj"], projection_prng_key=11),
    "vera-all": dict(r=8, target_modules=FUSED_TARGETS, projection_prng_key=0),
    "vera-mlp-prng": dict(
        r=12, target_modules=["gate_up_proj", "down_proj"], projection_prng_key=20261204, save_projection=False
    ),
}

# The sets that also carry the VeRA adapters.
VERA_SETS = {"llama-tied", "qwen2", "phi3"}


def vera_specs(family: str) -> dict[str, dict]:
    return FUSED_VERA_ADAPTERS if family == "phi3" else VERA_ADAPTERS
