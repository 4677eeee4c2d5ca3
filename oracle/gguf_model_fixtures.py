"""GGUF model files made from the tiny llama-tied and qwen2 models, the logits transformers gives on their dequantized
weights, and dequantizer block fixtures: the committed gguf-model fixtures.

usage: python gguf_model_fixtures.py [TINY_DIR] [OUT_DIR]
       (defaults test/fixtures/tiny and test/fixtures/gguf-model; run after the tiny fixtures; a few seconds)
       python gguf_model_fixtures.py --smollm2 [SMOLLM2_BF16_DIR] [OUT_FILE]
       (SmolLM2-135M-Instruct's bf16 safetensors as a BF16 GGUF, for the live test; defaults under
       ~/.cache/loraplex: smollm2/model-bf16 -> smollm2-gguf-bf16/SmolLM2-135M-Instruct.BF16.gguf)

Each model file is laid out as llama.cpp's convert_hf_to_gguf.py writes a LlamaForCausalLM or a
Qwen2ForCausalLM (read from its source): general.architecture "llama" / "qwen2", general.type "model", the
{arch}.* hyper-parameters, tensors under llama.cpp's names (gguf.get_tensor_name_map), q/k rows permuted for
"llama" (LlamaModel.permute, for llama.cpp's interleaved RoPE), no output.weight when the embeddings are tied, norms in F32, and matrices in the file's
type; a matrix whose rows are not whole blocks of that type falls back to F16, as the converter does.
The tokenizer metadata is a small byte-level BPE ("gpt2") vocabulary with merges and a chat template.

expected.json: per file and prompt, the prompt's ids, the greedy tokens, and the key of its prompt logits in
logits.safetensors, from the transformers model loaded with gguf.quants.dequantize of exactly the
stored blocks (so only the engine's arithmetic is under test, not the quantization error). Also the ids the
tokenizer gives on sample texts, from transformers' own GGUF tokenizer conversion.

random-kquants.gguf: a random Llama (hidden 256, so rows are whole 256-value super-blocks) whose matrices are
random Q4_K / Q5_K / Q6_K blocks (gguf-py cannot quantize K-quants; the blocks are the weights), with the
logits transformers gives on gguf.quants.dequantize of those blocks.

tokenizer-{default,llama-bpe,qwen2}.gguf: tokenizer-only files over one small trained byte-level BPE, one per
pre-tokenizer split, with the ids transformers' GGUF tokenizer (which knows llama.cpp's splits) gives.

tokenizer-llama-spm.gguf: a SentencePiece ("llama") vocabulary with scores and byte tokens, no merges, with
transformers' ids (it rebuilds the merges from the scores, as the loader does).

blocks/: for every dequantized type (K-quants included, which gguf-py cannot quantize), random blocks with
finite scales and gguf.quants.dequantize's f32 values, for bit-for-bit dequantizer tests.
"""

import hashlib
import importlib.metadata
import json
import shutil
import sys
from pathlib import Path

import gguf
import numpy as np
import torch
from gguf import GGMLQuantizationType as Q
from safetensors.numpy import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

FILE_TYPES = {
    "f32": (gguf.LlamaFileType.ALL_F32, Q.F32),
    "f16": (gguf.LlamaFileType.MOSTLY_F16, Q.F16),
    "bf16": (gguf.LlamaFileType.MOSTLY_BF16, Q.BF16),
    "q8_0": (gguf.LlamaFileType.MOSTLY_Q8_0, Q.Q8_0),
    "q4_0": (gguf.LlamaFileType.MOSTLY_Q4_0, Q.Q4_0),
    "q4_1": (gguf.LlamaFileType.MOSTLY_Q4_1, Q.Q4_1),
}
# (tiny set, file type): every type on llama-tied (tied, GQA, q/k permuted); qwen2 (biases, untied, not permuted);
# llama3-rope (Llama 3.1 RoPE scaling, which the converter writes as the rope_freqs tensor).
CONVERSIONS = [("llama-tied", kind) for kind in FILE_TYPES] + [("qwen2", "f16"), ("qwen2", "q4_0"), ("llama3-rope", "q4_0")]
# Hugging Face architecture -> (llama.cpp arch, q/k rows permuted), as convert_hf_to_gguf.py registers them.
ARCHS = {"LlamaForCausalLM": (gguf.MODEL_ARCH.LLAMA, True), "Qwen2ForCausalLM": (gguf.MODEL_ARCH.QWEN2, False)}
BLOCK_TYPES = [Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q4_K, Q.Q5_K, Q.Q6_K]
PROMPTS = [[1, 17, 42, 5, 88, 23, 61], [1, 3], [1, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81]]
GREEDY_STEPS = 6
SAMPLE_TEXTS = ["hello world", "the cat sat on the mat.", "Hi, the THE 2024!", "  two  spaces", "a"]

# A byte-level vocabulary of 96 tokens (the tiny model's): specials, "Ġ" (space), letters, digits,
# punctuation, then merged tokens, each merge of two tokens listed before it.
SPECIALS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
SINGLES = ["Ġ", *"abcdefghijklmnopqrstuvwxyz", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ", *"0123456789", *".,!?:"]
MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "a"), ("a", "t"), ("Ġ", "c"), ("Ġc", "at"), ("Ġ", "s"),
          ("Ġs", "at"), ("Ġ", "m"), ("Ġm", "at"), ("Ġ", "o"), ("Ġo", "n"), ("e", "l"), ("el", "l"), ("l", "o"),
          ("ell", "o"), ("h", "ello"), ("o", "r"), ("w", "or"), ("l", "d"), ("wor", "ld"), ("Ġ", "w"),
          ("Ġw", "orld")]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def vocabulary(size: int) -> tuple[list[str], list[int], list[str]]:
    tokens = SPECIALS + SINGLES
    merges = []
    for a, b in MERGES:
        if len(tokens) == size:
            break
        tokens.append(a + b)
        merges.append(f"{a} {b}")
    while len(tokens) < size:
        tokens.append(f"<unused{len(tokens)}>")
    types = [gguf.TokenType.CONTROL if t in SPECIALS or t.startswith("<unused") else gguf.TokenType.NORMAL
             for t in tokens]
    return tokens, [int(t) for t in types], merges


def llama3_rope_factors(rope: dict, dim: int) -> np.ndarray:
    """LlamaModel.generate_extra_tensors: one factor per frequency, llama.cpp divides each frequency by it."""
    import math

    base, factor = rope["rope_theta"], rope["factor"]
    low, high, old_context = rope["low_freq_factor"], rope["high_freq_factor"], rope["original_max_position_embeddings"]
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    factors = []
    for freq in freqs.tolist():
        wavelen = 2 * math.pi / freq
        if wavelen < old_context / high:
            factors.append(1.0)
        elif wavelen > old_context / low:
            factors.append(factor)
        else:
            smooth = (old_context / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)


def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """LlamaModel.permute: each head's rows (2, half) -> (half, 2)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def encode(w: np.ndarray, qtype: Q) -> tuple[np.ndarray, Q]:
    """The stored blocks, falling back to F16 for rows that are not whole blocks (as prepare_tensors does)."""
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    if w.ndim == 1:
        return w.astype(np.float32), Q.F32
    if w.shape[-1] % block != 0:
        qtype = Q.F16
    return (w.astype(np.float32) if qtype == Q.F32 else gguf.quants.quantize(w, qtype)), qtype


def write_model(model_dir: Path, state: dict[str, np.ndarray], kind: str, out_file: Path) -> dict[str, np.ndarray]:
    """Writes the GGUF file; returns the dequantized weights under Hugging Face names (Hugging Face row order)."""
    cfg = json.loads((model_dir / "config.json").read_text())
    n_blocks, n_head, n_kv = cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    arch, permuted = ARCHS[cfg["architectures"][0]]
    file_type, qtype = FILE_TYPES[kind]
    w = gguf.GGUFWriter(str(out_file), gguf.MODEL_ARCH_NAMES[arch])
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(out_file.stem)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(n_blocks)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_key_length(cfg["head_dim"])
    w.add_value_length(cfg["head_dim"])
    w.add_rope_dimension_count(cfg["head_dim"])
    rope = cfg.get("rope_parameters") or {**(cfg.get("rope_scaling") or {}), "rope_theta": cfg.get("rope_theta")}
    w.add_rope_freq_base(rope["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type(file_type)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    tokens, types, merges = vocabulary(cfg["vocab_size"])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    if cfg["bos_token_id"] is not None:
        w.add_bos_token_id(cfg["bos_token_id"])
        w.add_add_bos_token(True)
    if cfg["eos_token_id"] is not None:
        w.add_eos_token_id(cfg["eos_token_id"])
    w.add_chat_template(CHAT_TEMPLATE)

    names = gguf.get_tensor_name_map(arch, n_blocks)
    if rope.get("rope_type") == "llama3":
        w.add_tensor("rope_freqs.weight", llama3_rope_factors(rope, cfg["head_dim"]), raw_dtype=Q.F32)
    dequantized = {}
    for hf_name in sorted(state):
        data = state[hf_name].astype(np.float32)
        stored = data
        if permuted and hf_name.endswith("q_proj.weight"):
            stored = permute(data, n_head)
        elif permuted and hf_name.endswith("k_proj.weight"):
            stored = permute(data, n_kv)
        encoded, tensor_type = encode(stored, qtype)
        # Row-wise blocks commute with the row permutation: dequantizing the unpermuted weight gives the same values.
        _, own_type = encode(data, qtype)
        assert own_type == tensor_type
        dequantized[hf_name] = gguf.quants.dequantize(encode(data, qtype)[0], tensor_type).astype(np.float32)
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ValueError(f"no llama.cpp name for {hf_name}")
        w.add_tensor(gguf_name, encoded, raw_dtype=tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dequantized


@torch.no_grad()
def run_cases(model_dir: Path | None, weights: dict[str, np.ndarray], kind: str, logits: dict[str, np.ndarray]) -> list:
    if model_dir is None:
        from transformers import LlamaConfig, LlamaForCausalLM

        model = LlamaForCausalLM(LlamaConfig(**KQUANT_CONFIG)).float()
    else:
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    missing, _ = model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
    assert all(k == "lm_head.weight" for k in missing), missing
    model.eval()
    cases = []
    for i, prompt in enumerate(PROMPTS):
        ids = torch.tensor([prompt])
        key = f"{kind}-p{i}"
        logits[key] = model(ids).logits[0].float().numpy()
        out = []
        seq = list(prompt)
        for _ in range(GREEDY_STEPS):
            row = model(torch.tensor([seq])).logits[0, -1]
            top2 = torch.topk(row, 2).values
            assert float(top2[0] - top2[1]) > 1e-4, f"{key}: greedy tie"
            nxt = int(row.argmax())
            out.append(nxt)
            seq.append(nxt)
        cases.append({"id": key, "file": kind, "prompt_ids": prompt, "greedy_tokens": out, "logits_key": key})
    return cases


def block_fixtures(out_dir: Path) -> list:
    """Random bytes per type, with every f16/bf16 scale field made finite, and gguf-py's dequantized values."""
    rng = np.random.default_rng(11)
    out_dir.mkdir(parents=True)
    entries = []
    for qtype in BLOCK_TYPES:
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        n_blocks = 64 if block == 1 else 8
        raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
        # Scales are halves at fixed byte offsets of each block; give them ordinary values (|x| in [2^-8, 2)).
        halves = {Q.F16: None, Q.BF16: None, Q.Q8_0: [0], Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q4_K: [0, 2],
                  Q.Q5_K: [0, 2], Q.Q6_K: [type_size - 2]}[qtype]
        if qtype in (Q.F16, Q.BF16):
            values = (rng.standard_normal(n_blocks * block) * 3).astype(np.float32)
            raw = gguf.quants.quantize(values.reshape(n_blocks, block), qtype).view(np.uint8).reshape(n_blocks, -1)
        else:
            for off in halves:
                scale = (rng.uniform(2 ** -8, 2, n_blocks) * rng.choice([-1, 1], n_blocks)).astype(np.float16)
                raw[:, off:off + 2] = scale.view(np.uint8).reshape(n_blocks, 2)
        values = gguf.quants.dequantize(raw, qtype).astype(np.float32).reshape(-1)
        name = qtype.name.lower()
        (out_dir / f"{name}.bin").write_bytes(raw.tobytes())
        (out_dir / f"{name}.f32").write_bytes(values.tobytes())
        entries.append({"type": qtype.name, "ggml_type": int(qtype), "blocks": n_blocks, "block_size": block,
                        "type_size": type_size, "bytes": f"blocks/{name}.bin", "values": f"blocks/{name}.f32"})
    return entries


# The K-quant model: each matrix's type, and the scale ranges that keep its weights near 0.05.
KQUANT_CONFIG = dict(hidden_size=256, intermediate_size=256, num_hidden_layers=1, num_attention_heads=4,
                     num_key_value_heads=2, head_dim=64, vocab_size=96, max_position_embeddings=128,
                     rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=1,
                     eos_token_id=2)
KQUANT_TYPES = {"embed_tokens": Q.Q6_K, "q_proj": Q.Q4_K, "k_proj": Q.Q5_K, "v_proj": Q.Q6_K, "o_proj": Q.Q4_K,
                "gate_proj": Q.Q5_K, "up_proj": Q.Q6_K, "down_proj": Q.Q4_K, "lm_head": Q.Q6_K}


def random_blocks(rng: np.random.Generator, qtype: Q, rows: int, cols: int) -> np.ndarray:
    """Random K-quant blocks for a [rows, cols] matrix, with small positive f16 scales."""
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    n = rows * cols // block
    raw = rng.integers(0, 256, size=(n, type_size), dtype=np.uint8)
    if qtype == Q.Q6_K:
        raw[:, type_size - 2:] = rng.uniform(2e-5, 6e-5, n).astype(np.float16).view(np.uint8).reshape(n, 2)
    else:
        raw[:, 0:4] = rng.uniform(1e-4, 3e-4, (n, 2)).astype(np.float16).view(np.uint8).reshape(n, 4)
    return raw.reshape(rows, cols // block * type_size)


def write_kquant_model(out_file: Path) -> dict[str, np.ndarray]:
    """The random K-quant Llama: writes the file, returns its weights dequantized under Hugging Face names."""
    from transformers import LlamaConfig, LlamaForCausalLM

    rng = np.random.default_rng(256)
    c = KQUANT_CONFIG
    model = LlamaForCausalLM(LlamaConfig(**c))
    w = gguf.GGUFWriter(str(out_file), "llama")
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name("tiny-llama-kquants")
    w.add_context_length(c["max_position_embeddings"])
    w.add_embedding_length(c["hidden_size"])
    w.add_block_count(c["num_hidden_layers"])
    w.add_feed_forward_length(c["intermediate_size"])
    w.add_head_count(c["num_attention_heads"])
    w.add_head_count_kv(c["num_key_value_heads"])
    w.add_rope_freq_base(c["rope_theta"])
    w.add_layer_norm_rms_eps(c["rms_norm_eps"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    tokens, types, merges = vocabulary(c["vocab_size"])
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(c["bos_token_id"])
    w.add_eos_token_id(c["eos_token_id"])
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, c["num_hidden_layers"])
    weights = {}
    for hf_name, param in sorted(model.state_dict().items()):
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight",))
        if param.ndim == 1:
            weights[hf_name] = (1 + 0.1 * rng.standard_normal(param.shape[0])).astype(np.float32)
            w.add_tensor(gguf_name, weights[hf_name], raw_dtype=Q.F32)
            continue
        qtype = KQUANT_TYPES[hf_name.split(".")[-2]]
        raw = random_blocks(rng, qtype, *param.shape)
        weights[hf_name] = gguf.quants.dequantize(raw, qtype).astype(np.float32)
        # One super-block per row (256 columns): permuting q/k rows permutes whole rows of blocks.
        if hf_name.endswith("q_proj.weight"):
            raw = permute(raw, c["num_attention_heads"])
        elif hf_name.endswith("k_proj.weight"):
            raw = permute(raw, c["num_key_value_heads"])
        w.add_tensor(gguf_name, raw, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return weights


# Pre-tokenizer splits a byte-level GGUF may name (tokenizer.ggml.pre), tested on one trained vocabulary.
PRE_TOKENIZERS = ["default", "llama-bpe", "qwen2"]
SPLIT_TEXTS = [
    "I'M here, they'll say it's 1234567 o'clock!",
    "Numbers: 3.14159 and 2024-12-04; 99 bottles.",
    "line one\n\n  indented   line\r\nend",
    "tabs\tand   spaces    \n",
    "naïve café: 日本語 🤖",
]
CORPUS = [
    "The year 2024 had 366 days, and 1999 had 365.", "I'm sure they'll say it's fine; we've done it.",
    "  Indented code:\n    return x ** 2  # squared\n", "HELLO World, hello world! Hello, WORLD?",
    "Call 555-1234 or 555-9876 before 10:30 p.m.", "Don't, won't, can't, shouldn't, I'd, you'd.",
    "Spaces    between    words\tand\ttabs.\n\nNew paragraph.", "café naïve résumé über straße",
] * 4


def train_tokenizer_vocab() -> tuple[list[str], list[str]]:
    """A small byte-level BPE learned over whole lines (no split), so its merges cross every split point."""
    from tokenizers import Tokenizer as HfTokenizer
    from tokenizers import models, pre_tokenizers, trainers

    tok = HfTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>"], show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    state = json.loads(tok.to_str())["model"]
    tokens = [t for t, _ in sorted(state["vocab"].items(), key=lambda kv: kv[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in state["merges"]]
    return tokens, merges


def sentencepiece_fixture(out_dir: Path) -> dict:
    """A tokenizer.ggml.model "llama" file (SentencePiece BPE: pieces with scores, byte tokens, no merges), as
    llama.cpp's converter writes one from a tokenizer.model, and transformers' ids on the sample texts."""
    from tokenizers import Tokenizer as HfTokenizer
    from tokenizers import models, pre_tokenizers, trainers

    tok = HfTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    trainer = trainers.BpeTrainer(vocab_size=500, show_progress=False)
    tok.train_from_iterator([line for line in CORPUS if not any(ord(c) > 127 for c in line)], trainer)
    learned = [t for t, _ in sorted(json.loads(tok.to_str())["model"]["vocab"].items(), key=lambda kv: kv[1])]
    T = gguf.TokenType
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + learned
    types = [T.UNKNOWN, T.CONTROL, T.CONTROL] + [T.BYTE] * 256 + [T.NORMAL] * len(learned)
    # SentencePiece scores pieces by merge order (a later merge scores lower); specials and bytes score 0.
    scores = [0.0] * 259 + [-float(i) for i in range(len(learned))]
    path = out_dir / "tokenizer-llama-spm.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_type(gguf.GGUFType.MODEL)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types([int(t) for t in types])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return {"file": path.name, "cases": tokenizer_cases(path, SPLIT_TEXTS + SAMPLE_TEXTS)}


def split_fixtures(out_dir: Path) -> list:
    """Tokenizer-only GGUF files, one per pre-tokenizer, and the ids transformers' GGUF tokenizer gives."""
    tokens, merges = train_tokenizer_vocab()
    entries = []
    for pre in PRE_TOKENIZERS:
        path = out_dir / f"tokenizer-{pre}.gguf"
        w = gguf.GGUFWriter(str(path), "llama")
        w.add_type(gguf.GGUFType.MODEL)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(tokens)
        w.add_token_types([int(gguf.TokenType.CONTROL)] + [int(gguf.TokenType.NORMAL)] * (len(tokens) - 1))
        w.add_token_merges(merges)
        w.add_eos_token_id(0)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        entries.append({"file": path.name, "pre": pre, "cases": tokenizer_cases(path, SPLIT_TEXTS)})
    return entries


def tokenizer_cases(gguf_file: Path, texts: list[str] = SAMPLE_TEXTS) -> list:
    tok = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
    return [{"text": t, "ids": tok(t, add_special_tokens=False)["input_ids"]} for t in texts]


def main(tiny_root: Path, out_root: Path) -> None:
    from safetensors.numpy import load_file

    if out_root.exists():
        shutil.rmtree(out_root)
    out_root.mkdir(parents=True)
    logits: dict[str, np.ndarray] = {}
    files, cases, sources = [], [], {}
    for set_name, kind in CONVERSIONS:
        model_dir = tiny_root / set_name / "model"
        state = load_file(str(model_dir / "model.safetensors"))
        sources[set_name] = hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()
        out_file = out_root / f"{set_name}-{kind}.gguf"
        weights = write_model(model_dir, state, kind, out_file)
        cases += run_cases(model_dir, weights, out_file.stem, logits)
        files.append({"file": out_file.name, "type": kind, "source": set_name})
        print(f"{out_file.name}: {out_file.stat().st_size} bytes", flush=True)
    out_file = out_root / "random-kquants.gguf"
    cases += run_cases(None, write_kquant_model(out_file), out_file.stem, logits)
    files.append({"file": out_file.name, "type": "kquants", "source": None})
    print(f"{out_file.name}: {out_file.stat().st_size} bytes", flush=True)
    save_file(logits, str(out_root / "logits.safetensors"))
    expected = {
        "versions": {p: importlib.metadata.version(p) for p in ("gguf", "transformers", "torch")},
        "sources_sha256": sources,
        "files": files,
        "cases": cases,
        "tokenizer": tokenizer_cases(out_root / "llama-tied-f32.gguf"),
        "splits": split_fixtures(out_root),
        "sentencepiece": sentencepiece_fixture(out_root),
        "blocks": block_fixtures(out_root / "blocks"),
    }
    (out_root / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


def smollm2_bf16(model_dir: Path, out_file: Path) -> None:
    """SmolLM2-135M-Instruct's bf16 safetensors as a BF16 GGUF, bits unchanged (q/k rows permuted as the
    converter does), with its byte-level tokenizer: the engine must serve it exactly as the safetensors."""
    from safetensors.torch import load_file as load_torch

    cfg = json.loads((model_dir / "config.json").read_text())
    hf_tok = json.loads((model_dir / "tokenizer.json").read_text())
    out_file.parent.mkdir(parents=True, exist_ok=True)
    n_blocks, n_head, n_kv = cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    w = gguf.GGUFWriter(str(out_file), "llama")
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name("SmolLM2-135M-Instruct")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(n_blocks)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    rope = cfg.get("rope_parameters") or {"rope_theta": cfg.get("rope_theta", 10000.0)}
    w.add_rope_freq_base(rope["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)
    vocab = hf_tok["model"]["vocab"]
    for added in hf_tok["added_tokens"]:
        vocab[added["content"]] = added["id"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    special = {a["content"] for a in hf_tok["added_tokens"] if a["special"]}
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([int(gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL) for t in tokens])
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in hf_tok["model"]["merges"]])
    tok_cfg = json.loads((model_dir / "tokenizer_config.json").read_text())
    for key, add in (("bos_token", w.add_bos_token_id), ("eos_token", w.add_eos_token_id)):
        if isinstance(tok_cfg.get(key), str):
            add(vocab[tok_cfg[key]])
    if tok_cfg.get("chat_template"):
        w.add_chat_template(tok_cfg["chat_template"])
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_blocks)
    for hf_name, t in sorted(load_torch(str(model_dir / "model.safetensors")).items()):
        bits = t.contiguous().view(torch.int16).numpy()
        if hf_name.endswith("q_proj.weight"):
            bits = permute(bits, n_head)
        elif hf_name.endswith("k_proj.weight"):
            bits = permute(bits, n_kv)
        raw = np.ascontiguousarray(bits).view(np.uint8)
        w.add_tensor(names.get_name(hf_name, try_suffixes=(".weight",)), raw, raw_shape=raw.shape,
                     raw_dtype=Q.BF16)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{out_file}: {out_file.stat().st_size} bytes", flush=True)


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    if len(sys.argv) > 1 and sys.argv[1] == "--smollm2":
        cache = Path.home() / ".cache" / "loraplex"
        smollm2_bf16(Path(sys.argv[2]) if len(sys.argv) > 2 else cache / "smollm2" / "model-bf16",
                     Path(sys.argv[3]) if len(sys.argv) > 3 else cache / "smollm2-gguf-bf16" / "SmolLM2-135M-Instruct.BF16.gguf")
        sys.exit(0)
    tiny = Path(sys.argv[1]) if len(sys.argv) > 1 else root / "test" / "fixtures" / "tiny"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else root / "test" / "fixtures" / "gguf-model"
    main(tiny, out)
