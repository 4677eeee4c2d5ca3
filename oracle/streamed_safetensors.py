"""A safetensors writer that never holds the model: the header first, then each tensor made and written in turn.

    specs = [TensorSpec("model.norm.weight", [2048], fill=ones), ...]
    files = write_sharded(out_dir, specs, shard_bytes=5 << 30)   # {file name: sha256}

Each tensor is produced in row chunks by its `fill(rows_start, rows_end) -> bfloat16 tensor`, so peak memory is one
chunk, whatever the model's size. Files are written under a temporary name and renamed when complete.
"""

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

BF16_BYTES = 2
CHUNK_VALUES = 1 << 25  # 32 Mi values a chunk: 128 MB as float32 while drawing


@dataclass
class TensorSpec:
    name: str
    shape: list[int]
    fill: Callable[[int, int], torch.Tensor]  # (row_start, row_end) -> bfloat16 [row_end - row_start, *shape[1:]]

    @property
    def nbytes(self) -> int:
        n = BF16_BYTES
        for d in self.shape:
            n *= d
        return n

    def row_chunks(self) -> list[tuple[int, int]]:
        rows = self.shape[0]
        per_row = max(1, self.nbytes // BF16_BYTES // rows)
        step = max(1, CHUNK_VALUES // per_row)
        return [(r, min(rows, r + step)) for r in range(0, rows, step)]


def _header(specs: list[TensorSpec]) -> bytes:
    entries: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for spec in specs:
        entries[spec.name] = {"dtype": "BF16", "shape": spec.shape, "data_offsets": [offset, offset + spec.nbytes]}
        offset += spec.nbytes
    raw = json.dumps(entries, separators=(",", ":")).encode()
    return raw + b" " * (-len(raw) % 8)  # the data starts 8-byte aligned


def write_file(path: Path, specs: list[TensorSpec], progress: Callable[[str], None] = print) -> str:
    """Writes one safetensors file tensor by tensor; returns its sha256 (hashed while writing)."""
    header = _header(specs)
    digest = hashlib.sha256()
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        for piece in (len(header).to_bytes(8, "little"), header):
            f.write(piece)
            digest.update(piece)
        for spec in specs:
            for start, end in spec.row_chunks():
                chunk = spec.fill(start, end)
                expected = [end - start, *spec.shape[1:]]
                if chunk.dtype != torch.bfloat16 or list(chunk.shape) != expected:
                    raise ValueError(f"{spec.name}: fill gave {chunk.dtype} {list(chunk.shape)}, want bf16 {expected}")
                data = chunk.contiguous().view(torch.int16).numpy().data
                f.write(data)
                digest.update(data)
            progress(f"  {spec.name} {spec.shape}")
    os.replace(tmp, path)
    return digest.hexdigest()


def write_sharded(
    out_dir: Path, specs: list[TensorSpec], shard_bytes: int, progress: Callable[[str], None] = print
) -> dict[str, str]:
    """One model.safetensors, or HF's model-0000i-of-0000n.safetensors + index when the total passes shard_bytes."""
    shards: list[list[TensorSpec]] = [[]]
    size = 0
    for spec in specs:
        if shards[-1] and size + spec.nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(spec)
        size += spec.nbytes
    if len(shards) == 1:
        return {"model.safetensors": write_file(out_dir / "model.safetensors", specs, progress)}
    names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    hashes = {name: write_file(out_dir / name, shard, progress) for name, shard in zip(names, shards, strict=True)}
    index = {
        "metadata": {"total_size": sum(s.nbytes for s in specs)},
        "weight_map": {spec.name: name for name, shard in zip(names, shards, strict=True) for spec in shard},
    }
    (out_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return hashes
