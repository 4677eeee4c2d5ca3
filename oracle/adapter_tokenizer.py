"""An adapter that ships its own tokenizer: what transformers' AutoTokenizer gives for it, and for the base.

Builds a small byte-level BPE tokenizer (trained on CORPUS, so the files stay small) as the base's, saved
with transformers; then the adapter's tokenizer as a fine-tuning script makes it: the base's, loaded with
AutoTokenizer, plus added tokens (normal and special), a new eos token and another chat template, saved
with save_pretrained beside the adapter. Every expectation comes from AutoTokenizer.from_pretrained of the
directory just written (base/ or adapter/): ids of sample texts, the chat template's ids, decodes.

Writes OUT/base/ and OUT/adapter/ (tokenizer files only) and OUT/expected.json
(default OUT: test/fixtures/adapter-tokenizer).

With --real-base MODEL_DIR (SmolLM2-135M-Instruct's, for the live check), the base is that model's own
tokenizer and the adapter's is it with another chat template and one special token renamed in place (same
id, new text: what Llama 3 users do with its reserved tokens, and the only way to add a token to a model with
no spare rows); the same expectations, for a real 49k-token byte-level BPE.

    python oracle/adapter_tokenizer.py [OUT_DIR]
    python oracle/adapter_tokenizer.py --real-base MODEL_DIR OUT_DIR
"""

import json
import re
import shutil
import sys
from pathlib import Path

import tokenizers
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parent.parent
VOCAB = 400  # bytes (256) + merges + the base's specials

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Select the rows where the name starts with a letter, then count them.",
    "SELECT name, count(*) FROM users WHERE age > 30 GROUP BY name ORDER BY name;",
    "A tokenizer turns text into ids; a detokenizer turns ids back into text.",
    "Adapters are small: a low-rank update of the base model's projections.",
    "Hello world! How are you today? I am fine, thank you, and you?",
    "Numbers like 12, 345 and 6789 appear in text as well as words do.",
    "Les accents é è à ç et les caractères 漢字 se codent en plusieurs octets.",
] * 4

BASE_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
BASE_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# The adapter's own markup: role tokens and an end token it added, as a fine-tuning script would.
ADAPTER_SPECIALS = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|tool|>"]
ADAPTER_WORDS = ["<sql>", "</sql>", "loraplex"]
ADAPTER_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

# The real base's rename: a special token the instruct model never emits takes the adapter's new meaning.
RENAMED = ("<gh_stars>", "<|tool|>")
REAL_TEMPLATE = (
    "{% for message in messages %}{{ '### ' + message['role'] + ':\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '### assistant:\n' }}{% endif %}"
)

TEXTS = [
    "Hello world!",
    "<sql>SELECT name FROM users;</sql>",
    "ask <|tool|> then <|end|> and <|im_end|>",
    "loraplex serves loraplex adapters",
    "  two leading spaces, é 漢字 🙂",
    "<sql></sql><sql>",
    "",
]
MESSAGES = [
    {"role": "system", "content": "You write SQL."},
    {"role": "user", "content": "Count the <sql> users </sql> please."},
]


def base_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=BASE_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        unk_token=None,
        pad_token="<|endoftext|>",
        chat_template=BASE_TEMPLATE,
    )


def adapter_tokenizer(base_dir: Path):
    tok = AutoTokenizer.from_pretrained(base_dir)
    tok.add_tokens(ADAPTER_WORDS)
    tok.add_special_tokens({"additional_special_tokens": ADAPTER_SPECIALS})
    tok.eos_token = "<|end|>"
    tok.chat_template = ADAPTER_TEMPLATE
    return tok


def renamed_in_place(adapter_dir: Path) -> None:
    """RENAMED[0] becomes RENAMED[1] at the same id, in tokenizer.json (and the config's decoder, if any)."""
    old, new = RENAMED
    path = adapter_dir / "tokenizer.json"
    data = json.loads(path.read_text())
    for token in data["added_tokens"]:
        if token["content"] == old:
            token["content"] = new
    vocab = data["model"]["vocab"]
    if old in vocab:
        vocab[new] = vocab.pop(old)
    path.write_text(json.dumps(data, ensure_ascii=False))
    config_path = adapter_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    for entry in (config.get("added_tokens_decoder") or {}).values():
        if entry.get("content") == old:
            entry["content"] = new
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False))


def real_base(model_dir: Path, out: Path) -> None:
    (out / "base").mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        if (model_dir / name).exists():
            shutil.copy(model_dir / name, out / "base" / name)
    tok = AutoTokenizer.from_pretrained(out / "base")
    tok.chat_template = REAL_TEMPLATE
    tok.save_pretrained(out / "adapter")
    renamed_in_place(out / "adapter")


def expectations(directory: Path, texts: list[str], added: list[str]) -> dict:
    tok = AutoTokenizer.from_pretrained(directory)
    encoded = [tok.encode(t) for t in texts]
    chat = tok.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=True, return_dict=False)
    if isinstance(chat, dict) or hasattr(chat, "input_ids"):
        chat = chat["input_ids"]
    return {
        "vocab_size": len(tok),
        "eos_token": tok.eos_token,
        "eos_token_id": tok.eos_token_id,
        "encode": encoded,
        "decode": [tok.decode(ids, skip_special_tokens=True) for ids in encoded],
        "chat_text": tok.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False),
        "chat_ids": list(chat),
        "added": {t: tok.convert_tokens_to_ids(t) for t in added if t in tok.get_vocab()},
    }


def main(out: Path, real: Path | None) -> None:
    for sub in ("base", "adapter"):
        shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    if real is None:
        base_tokenizer().save_pretrained(out / "base")
        adapter_tokenizer(out / "base").save_pretrained(out / "adapter")
        texts, added = TEXTS, ADAPTER_WORDS + ADAPTER_SPECIALS
    else:
        real_base(real, out)
        texts, added = TEXTS + [f"{RENAMED[1]} and {RENAMED[0]}"], [RENAMED[1]]
    expected = {
        "texts": texts,
        "messages": MESSAGES,
        "base": expectations(out / "base", texts, added),
        "adapter": expectations(out / "adapter", texts, added),
        "versions": {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__},
    }
    text = json.dumps(expected, indent=1, ensure_ascii=False)
    text = re.sub(r"\[[\d,\s]*\]", lambda m: "[" + ", ".join(m.group(0)[1:-1].split()).replace(",,", ",") + "]", text)
    (out / "expected.json").write_text(text + "\n")
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    print(f"adapter tokenizer fixture: {out} ({', '.join(files)})")


if __name__ == "__main__":
    args = sys.argv[1:]
    real_base_dir = None
    if args[:1] == ["--real-base"]:
        real_base_dir, args = Path(args[1]), args[2:]
    main(Path(args[0]) if args else ROOT / "test" / "fixtures" / "adapter-tokenizer", real_base_dir)
