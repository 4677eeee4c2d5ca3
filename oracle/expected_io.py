"""Writes a fixture case directory's expected.json and logits.safetensors (format: test/fixtures/README.md)."""

import json
import re
from pathlib import Path

import torch
from safetensors.torch import save_file

from torch_setup import library_versions


class ExpectedWriter:
    def __init__(self, family: str, meta: dict):
        self.document = {"family": family, **meta, "versions": library_versions(), "cases": [], "mixed_batches": []}
        self.tensors: dict[str, torch.Tensor] = {}

    def add_tensor(self, key: str, tensor: torch.Tensor) -> str:
        if key in self.tensors:
            raise ValueError(f"duplicate logits key '{key}'")
        self.tensors[key] = tensor.detach().to(torch.float32).contiguous()
        return key

    def add_case(self, case: dict) -> None:
        self.document["cases"].append(case)

    def add_mixed_batch(self, case_ids: list[str]) -> None:
        self.document["mixed_batches"].append(case_ids)

    def set(self, key: str, value) -> None:
        self.document[key] = value

    def write(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_file(dict(sorted(self.tensors.items())), str(out_dir / "logits.safetensors"))
        text = json.dumps(self.document, indent=1)
        (out_dir / "expected.json").write_text(compact_number_lists(text) + "\n")


def compact_number_lists(text: str) -> str:
    """json.dumps(indent=…) puts each list element on its own line; token-id lists read better on one."""
    return re.sub(r"\[\s*(-?\d+(?:\s*,\s*-?\d+)*)\s*\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text)
