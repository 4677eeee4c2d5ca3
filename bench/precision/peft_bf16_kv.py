"""PEFT with a bf16 KV cache emulated: keys (after RoPE) and values rounded to bf16 before attention, as the
engine's --kv-cache-dtype bf16 stores them. Writes each oracle case's max |Δ| of the last-position logits
against plain PEFT (the oracle's logits), so docs/precision.md can show the error is the format's, not the
engine's.

usage: ~/.cache/loraplex/oracle-venv/bin/python bench/precision/peft_bf16_kv.py [SMOLLM2_DIR] [OUT_JSON]
       (defaults: ~/.cache/loraplex/smollm2, docs/figures/precision/peft-bf16-kv.json; then npm run bench:precision)
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "oracle"))

import torch  # noqa: E402
from adapter_files import load_all  # noqa: E402
from model_runs import prompt_logits  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from torch_setup import deterministic_torch  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402
from transformers.models.llama import modeling_llama  # noqa: E402

EAGER = modeling_llama.eager_attention_forward


def bf16_kv_attention(module, query, key, value, *args, **kwargs):
    """Eager attention on keys and values rounded to nearest-even bf16 and widened back (exactly)."""
    return EAGER(module, query, key.to(torch.bfloat16).float(), value.to(torch.bfloat16).float(), *args, **kwargs)


def main(data: Path, out: Path) -> None:
    deterministic_torch(0)
    expected = json.loads((data / "expected.json").read_text())
    oracle = load_file(str(data / "logits.safetensors"))
    # GGUF / .nemo copies (copy_of) hold their PEFT original's factors: PEFT measures the original.
    names = sorted({c.get("copy_of") or c["adapter"] for c in expected["cases"] if c["adapter"]})
    base = AutoModelForCausalLM.from_pretrained(data / "model", dtype=torch.float32, attn_implementation="eager")
    model = load_all(base, data / "adapters", names)
    modeling_llama.eager_attention_forward = bf16_kv_attention
    cases = {}
    for case in expected["cases"]:
        logits = prompt_logits(model, case.get("copy_of") or case["adapter"], case["prompt_ids"])[-1]
        cases[case["id"]] = float((logits - oracle[case["logits_key"]][0]).abs().max())
        print(f"{case['id']:28s} {cases[case['id']]:.3f}")
    out.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out.write_text(json.dumps({"generated": stamp, "script": "bench/precision/peft_bf16_kv.py", "cases": cases}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[2]
    main(
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path.home() / ".cache" / "loraplex" / "smollm2",
        Path(sys.argv[2]) if len(sys.argv) > 2 else root / "docs" / "figures" / "precision" / "peft-bf16-kv.json",
    )
