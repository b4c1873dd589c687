"""Shared decoding state, mirroring src/runtime/diffusion.rs and block.rs."""

from .rng import Rng


class Forward:
    """Wraps `f(tokens[1,T] LongTensor, input_pos LongTensor[1] | None) -> logits[1,T,V]`.

    A cached llada/dream forward (contract v3) also takes `kv_end=LongTensor[1]` by keyword:
    `f(tokens, input_pos, kv_end=...)`; without it the callable uses pos + T (a full pass).
    """

    def __init__(self, f):
        self.f = f
        self.calls = 0

    def __call__(self, tokens, pos):
        import torch

        t = torch.tensor([list(tokens)], dtype=torch.long)
        p = None if pos is None else torch.tensor([pos], dtype=torch.long)
        out = self.f(t, p)
        self.calls += 1
        return Rows(out)

    def span(self, tokens, pos, kv_end):
        """A contract-v3 call over `tokens` at absolute `pos` that attends to cache slots
        [0, kv_end); `row(p)` of the result takes absolute positions."""
        import torch

        t = torch.tensor([list(tokens)], dtype=torch.long)
        out = self.f(t, torch.tensor([pos], dtype=torch.long), kv_end=torch.tensor([kv_end], dtype=torch.long))
        self.calls += 1
        return Rows(out, offset=pos)


class Rows:
    """Logits of one call; `row(i)` is input row `i - offset` (offset: the call's first position
    for `Forward.span`, 0 otherwise)."""

    def __init__(self, out, offset=0):
        import torch

        if not isinstance(out, torch.Tensor):
            out = torch.as_tensor(out)
        out = out.detach().to(torch.float32)
        self.out = out[0]
        self.offset = offset

    def row(self, i):
        from .dist import F32Row

        # A shifted family's first position of a span has no row before it in the call: it
        # reads the call's own row 0 (Fast-dLLM's `cat([l[:, :1], l[:, :-1]])` on the span).
        return F32Row(self.out[max(i - self.offset, 0)].numpy())


class Decoder:
    """Canvas + stop logic + RNG for one generation."""

    def __init__(self, f, meta, prompt, max_new, seed, stop_ids=None, use_kv_cache=None):
        self.fwd = Forward(f)
        self.meta = meta
        self.mask = int(meta["mask_token_id"])
        self.lp = len(prompt)
        self.canvas = list(prompt)
        self.max_new = max_new
        self.rng = Rng(seed)
        self.stop_ids = list(meta["eos_ids"]) if stop_ids is None else list(stop_ids)
        model_cached = bool(meta["use_kv_cache"])
        want = model_cached if use_kv_cache is None else use_kv_cache
        family = meta["family"]
        self.cached = want and family in ("sdar", "fast_dllm_v2")
        self.full_pos = 0 if model_cached else None
        self.steps = []  # committed (offset, token) lists per step, for debugging/goldens

    def grow_to(self, n):
        while len(self.canvas) < n:
            self.canvas.append(self.mask)

    def masked_in(self, a, b):
        return [p for p in range(a, b) if self.canvas[p] == self.mask]

    def commit(self, picks):
        done = []
        for pos, tok in picks:
            if pos >= self.lp and self.canvas[pos] == self.mask:
                self.canvas[pos] = tok
                done.append((pos - self.lp, tok))
        self.steps.append(done)

    def gen_end(self):
        return self.lp + self.max_new

    def stop_reached(self):
        end = min(self.gen_end(), len(self.canvas))
        for p in range(self.lp, end):
            t = self.canvas[p]
            if t == self.mask:
                return False
            if t in self.stop_ids:
                return True
        return False

    def output(self):
        end = min(self.gen_end(), len(self.canvas))
        out = []
        for t in self.canvas[self.lp:end]:
            if t == self.mask:
                break
            out.append(t)
            if t in self.stop_ids:
                return {"tokens": out, "stop_reason": "eos", "stop_token": t, "forwards": self.fwd.calls}
        return {"tokens": out, "stop_reason": "max_new_tokens", "stop_token": None, "forwards": self.fwd.calls}
