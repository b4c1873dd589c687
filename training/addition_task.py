"""The synthetic task and the character-level tokenizer of the bundled default model.

Task: addition of two non-negative integers of 1-3 digits. Prompt ``"123+45="``, answer ``"168"``
followed by ``<|endoftext|>``. The operand length is uniform over {1, 2, 3} digits, the value uniform
within that length, so short and long operands are both common.

Example:
    >>> tok = Vocab()
    >>> tok.encode("12+5=")
    [5, 6, 14, 9, 15]
    >>> problem_text(12, 5)
    ('12+5=', '17')
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

PAD, EOS, MASK, UNK = "<|pad|>", "<|endoftext|>", "<|MASK|>", "<|unk|>"
SPECIALS = [PAD, EOS, MASK, UNK]  # ids 0..3
CHARS = list("0123456789+=")  # ids 4..15
CHAT_TEMPLATE = "{% for message in messages %}{{ message['content'] }}{% endfor %}"

MAX_DIGITS = 3
BLOCK_SIZE = 4
# Longest example: "999+999=" (8) + "1998" (4) + EOS (1) = 13 tokens -> 4 blocks of 4.
SEQ_LEN = 16


class Vocab:
    """Token ids of the default model (also written as tokenizer.json by build_tokenizer)."""

    def __init__(self) -> None:
        self.tokens = SPECIALS + CHARS
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        self.pad_id, self.eos_id, self.mask_id, self.unk_id = (self.ids[t] for t in SPECIALS)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        """Plain character mapping; equals tokenizer.json's encoding for task strings (checked in
        build_tokenizer)."""
        return [self.ids.get(ch, self.unk_id) for ch in text]

    def decode(self, ids) -> str:
        return "".join(self.tokens[i] for i in ids)


def build_tokenizer(out_dir: str | Path, vocab: Vocab, model_max_length: int) -> None:
    """Write tokenizer.json (WordLevel, one token per character) and tokenizer_config.json."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from tokenizers import AddedToken

    out_dir = Path(out_dir)
    tk = Tokenizer(models.WordLevel(vocab=dict(vocab.ids), unk_token=UNK))
    # Every character is its own word; special tokens are matched before this split.
    tk.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    # Concatenate tokens without the WordLevel default space separator.
    tk.decoder = decoders.Fuse()
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS])
    tk.save(str(out_dir / "tokenizer.json"))

    for text in ["123+45=168", "0+0=0", "7+999="]:
        got = tk.encode(text).ids
        assert got == vocab.encode(text), (text, got)
        assert tk.decode(got) == text, (text, tk.decode(got))
    assert tk.encode("1+2=" + EOS).ids == vocab.encode("1+2=") + [vocab.eos_id]

    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": EOS,
        "pad_token": PAD,
        "mask_token": MASK,
        "unk_token": UNK,
        "model_max_length": model_max_length,
        "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
        "added_tokens_decoder": {
            str(vocab.ids[t]): {
                "content": t,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": True,
            }
            for t in SPECIALS
        },
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def problem_text(a: int, b: int) -> tuple[str, str]:
    return f"{a}+{b}=", str(a + b)


def sample_operands(rng: np.random.Generator, n: int) -> np.ndarray:
    """n operands: digit count uniform in 1..MAX_DIGITS, value uniform within that digit count."""
    digits = rng.integers(1, MAX_DIGITS + 1, size=n)
    lo = np.where(digits == 1, 0, 10 ** (digits - 1))
    hi = 10**digits
    return lo + (rng.random(n) * (hi - lo)).astype(np.int64)


def sample_pairs(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.stack([sample_operands(rng, n), sample_operands(rng, n)], axis=1)


def make_eval_set(seed: int, n: int) -> list[tuple[int, int]]:
    """n distinct held-out (a, b) pairs."""
    rng = np.random.default_rng(seed)
    seen: dict[tuple[int, int], None] = {}
    while len(seen) < n:
        for a, b in sample_pairs(rng, n):
            seen.setdefault((int(a), int(b)), None)
            if len(seen) == n:
                break
    return list(seen)


def encode_example(vocab: Vocab, a: int, b: int, seq_len: int = SEQ_LEN) -> tuple[list[int], int]:
    """Token ids of prompt + answer + EOS, padded with EOS to seq_len, and the prompt length.

    Padding with EOS teaches the model to fill the rest of the final block with EOS, so greedy
    decoding stops at the first block that contains EOS."""
    prompt, answer = problem_text(a, b)
    ids = vocab.encode(prompt) + vocab.encode(answer) + [vocab.eos_id]
    assert len(ids) <= seq_len
    return ids + [vocab.eos_id] * (seq_len - len(ids)), len(prompt)
