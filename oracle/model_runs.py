"""The three measurements the fixtures record: prompt logits, greedy tokens, and mixed-adapter batches.

All of them run on a PeftModel that holds every adapter of a case; `adapter=None` means the base model.
"""

import contextlib
from dataclasses import dataclass

import torch
from peft import PeftModel

BASE = "__base__"  # PEFT's name for "no adapter" in a mixed batch


@contextlib.contextmanager
def active(model: PeftModel, adapter: str | None):
    if adapter is None:
        with model.disable_adapter():
            yield
    else:
        model.set_adapter(adapter)
        yield


@torch.no_grad()
def prompt_logits(model: PeftModel, adapter: str | None, prompt_ids: list[int]) -> torch.Tensor:
    """Logits at every prompt position: [promptLen, vocab] float32."""
    with active(model, adapter):
        output = model(input_ids=torch.tensor([prompt_ids]))
    return output.logits[0].float()


@dataclass
class Greedy:
    tokens: list[int]  # exactly max_new_tokens ids, EOS ignored
    step_logits: torch.Tensor  # [max_new_tokens, vocab]: logits that chose each token
    margins: list[float]  # top1 − top2 logit gap per step: how robust each argmax is
    cache_vs_full: float  # max |decode-with-KV-cache logits − one full forward's logits|

    @property
    def min_margin(self) -> float:
        return min(self.margins)


@torch.no_grad()
def greedy(
    model: PeftModel, adapter: str | None, prompt_ids: list[int], max_new_tokens: int, cache_tolerance: float = 1e-3
) -> Greedy:
    """Greedy decoding through generate() (KV cache), cross-checked against one full forward pass."""
    prompt = torch.tensor([prompt_ids])
    with active(model, adapter):
        output = model.generate(
            input_ids=prompt,
            attention_mask=torch.ones_like(prompt),
            do_sample=False,
            max_new_tokens=max_new_tokens,
            min_new_tokens=max_new_tokens,
            eos_token_id=None,
            pad_token_id=0,
            return_dict_in_generate=True,
            output_logits=True,
        )
        tokens = output.sequences[0, len(prompt_ids) :].tolist()
        step_logits = torch.cat(output.logits, dim=0).float()
        # Recompute without a KV cache: the decode path must agree with a plain causal forward.
        full = model(input_ids=output.sequences[:, :-1]).logits[0, len(prompt_ids) - 1 :].float()
    if len(tokens) != max_new_tokens:
        raise RuntimeError(f"generate() returned {len(tokens)} tokens, expected {max_new_tokens}")
    if step_logits.argmax(-1).tolist() != tokens:
        raise RuntimeError("generate() tokens are not the argmax of its own logits")
    cache_vs_full = float((step_logits - full).abs().max())
    if cache_vs_full > cache_tolerance:
        raise RuntimeError(f"KV-cache decode logits differ from a full forward by {cache_vs_full}")
    top2 = step_logits.topk(2, dim=-1).values
    return Greedy(tokens, step_logits, (top2[:, 0] - top2[:, 1]).tolist(), cache_vs_full)


@torch.no_grad()
def mixed_batch_logits(model: PeftModel, rows: list[tuple[str | None, list[int]]]) -> list[torch.Tensor]:
    """One forward over rows of different adapters (PEFT's `adapter_names`), right-padded with a mask.

    Right padding keeps every real token at its own position, and the causal mask keeps real tokens from
    seeing the padding after them, so each row's real positions must equal its single-row run.
    Returns each row's logits at its real positions: [promptLen, vocab].
    """
    width = max(len(ids) for _, ids in rows)
    input_ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, (_, ids) in enumerate(rows):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = 1
    names = [BASE if adapter is None else adapter for adapter, _ in rows]
    logits = model(input_ids=input_ids, attention_mask=mask, adapter_names=names).logits.float()
    return [logits[row, : len(ids)] for row, (_, ids) in enumerate(rows)]


@torch.no_grad()
def softcap_effect(model: PeftModel, prompt_ids: list[int]) -> dict[str, float]:
    """How far each of Gemma's tanh softcaps moves the base model's prompt logits (max |Δ|): proof that they bite.

    Each cap is switched off in turn (transformers reads the final cap from the config and the attention cap
    from each attention module at forward time) and restored.
    """
    config = model.get_base_model().config
    capped = prompt_logits(model, None, prompt_ids)
    effect = {}
    if getattr(config, "final_logit_softcapping", None) is not None:
        cap, config.final_logit_softcapping = config.final_logit_softcapping, None
        try:
            effect["final_logit_softcapping"] = float((prompt_logits(model, None, prompt_ids) - capped).abs().max())
        finally:
            config.final_logit_softcapping = cap
    attention = [m for m in model.modules() if getattr(m, "attn_logit_softcapping", None) is not None]
    if attention:
        caps = [m.attn_logit_softcapping for m in attention]
        for module in attention:
            module.attn_logit_softcapping = None
        try:
            effect["attn_logit_softcapping"] = float((prompt_logits(model, None, prompt_ids) - capped).abs().max())
        finally:
            for module, cap in zip(attention, caps, strict=True):
                module.attn_logit_softcapping = cap
    return effect
