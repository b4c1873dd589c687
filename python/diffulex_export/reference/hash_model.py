"""Python twin of src/runtime/hash_model.rs: a deterministic synthetic model with the .pte
forward/KV-cache contract, used for cross-language golden tests without weights."""

from .rng import M64, mix64


class HashModel:
    def __init__(self, meta, seed):
        self.meta = dict(meta)
        self.seed = seed
        self.cache = [0] * int(meta["max_seq_len"])

    def _visible(self, k, q):
        if self.meta["family"] not in ("sdar", "fast_dllm_v2"):
            return True
        bs = int(self.meta["block_size"])
        return k // bs <= q // bs

    def logits(self, tokens, pos):
        """tokens: list[int]; pos: int | None -> list of T rows (lists of floats)."""
        t = len(tokens)
        if self.meta["use_kv_cache"]:
            assert pos is not None
            start = pos
        else:
            assert pos is None or pos == 0
            start = 0
        assert 0 < t and start + t <= int(self.meta["max_seq_len"])
        self.cache[start:start + t] = list(tokens)
        vocab = int(self.meta["vocab_size"])
        out = []
        for i in range(t):
            q = start + i
            h = self.seed
            for k in range(start + t):
                if self._visible(k, q):
                    h = mix64(h ^ ((k << 32) & M64) ^ (self.cache[k] & M64))
            h = mix64(h ^ ((q * 0x9E3779B97F4A7C15) & M64))
            row = []
            for v in range(vocab):
                r = mix64(h ^ (((v + 1) * 0xD1B54A32D192ED03) & M64))
                row.append((r >> 56) / 32.0)
            row[(h >> 8) % vocab] += float((h >> 20) % 13)
            out.append(row)
        return out

    def __call__(self, tokens, input_pos=None):
        import torch

        toks = tokens[0].tolist()
        pos = None if input_pos is None else int(input_pos.reshape(-1)[0])
        if not self.meta["use_kv_cache"] and pos == 0:
            pos = None
        return torch.tensor([self.logits(toks, pos)], dtype=torch.float32)
