"""Random weights for oracle models and adapters.

PEFT initialises lora_B to zero (an adapter starts as a no-op), which would make every adapter fixture equal
the base model. Here both A and B are drawn from a seeded generator, with B scaled so that the low-rank
delta `scale · B·A` has a standard deviation of `relative_delta` times the base weight's: large enough to
move logits and greedy tokens, small enough that the base model still matters. Because the draw divides by
the adapter's true scale (alpha/r, or alpha/√r for rsLoRA), an engine that applies the wrong scale is off by
that ratio and the fixtures catch it.
"""

import math

import torch
from peft.tuners.lora import LoraLayer

from torch_setup import seeded_generator


def randomize_base_model(
    model: torch.nn.Module, seed: int, weight_std: float, bias_std: float, norm_center: float = 1.0
) -> None:
    """Overwrites every parameter: matrices ~ N(0, weight_std²), biases ~ N(0, bias_std²), norms ~ norm_center ± 0.2.

    Gemma's RMSNorm multiplies by (1 + w): norm_center 0 gives it the same effective scale 1 ± 0.2.
    """
    generator = seeded_generator(seed)
    with torch.no_grad():
        for name, parameter in sorted(model.named_parameters()):
            noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float32)
            if "norm" in name:
                value = norm_center + 0.2 * noise
            elif name.endswith(".bias"):
                value = bias_std * noise
            else:
                value = weight_std * noise
            parameter.copy_(value.to(parameter.dtype))


def randomize_lora_adapter(
    model: torch.nn.Module, adapter: str, seed: int, relative_delta: float, magnitude_jitter: float = 0.2
) -> int:
    """Draws A and B (and DoRA magnitudes) for every layer of `adapter`; returns how many layers it touched."""
    generator = seeded_generator(seed)
    touched = 0
    with torch.no_grad():
        for name, module in sorted(model.named_modules(), key=lambda item: item[0]):
            if not isinstance(module, LoraLayer) or adapter not in module.lora_A:
                continue
            lora_a = module.lora_A[adapter].weight  # [r, in]
            lora_b = module.lora_B[adapter].weight  # [out, r]
            base_weight = module.get_base_layer().weight.float()  # [out, in]
            rank, fan_in = lora_a.shape
            scale = float(module.scaling[adapter])
            a_std = 1.0 / math.sqrt(fan_in)
            b_std = relative_delta * float(base_weight.std()) / (scale * math.sqrt(rank) * a_std)
            lora_a.copy_(a_std * torch.randn(lora_a.shape, generator=generator))
            lora_b.copy_(b_std * torch.randn(lora_b.shape, generator=generator))
            if adapter in module.lora_magnitude_vector:
                magnitude = module.lora_magnitude_vector[adapter].weight  # [out]
                jitter = 1.0 + magnitude_jitter * torch.randn(magnitude.shape, generator=generator)
                magnitude.copy_(magnitude * jitter)
            touched += 1
    if touched == 0:
        raise ValueError(f"adapter '{adapter}' matched no module: check its target_modules / layers_to_transform")
    return touched
