"""SDAR block-diffusion decoding with a KV cache (greedy), for validating the default model.

Follows ``generate.py::block_diffusion_generate`` of SDAR (see docs in
algorithms.md section 4, the decoding reference the project was built from) with temperature 0:
- only WHOLE prompt blocks are prefilled; the first decode block holds the prompt tail + MASKs;
- each denoising forward attends to the cache + the current block and writes nothing;
- a block is done when no MASK remains; one extra forward then appends its clean K/V to the cache;
- stop after the first block that contains EOS.
Greedy: x0 = argmax (ties -> lowest token id), conf = softmax prob of x0. Strategies:
``low_confidence_static`` (topk(conf, quota), ties -> lowest position) and
``low_confidence_dynamic`` (all positions with conf > threshold if that is at least the quota, else
the static choice). Only still-MASK positions are ever written (the guard SDAR lacks).

Example:
    >>> from sdar_tiny import load_checkpoint
    >>> model = load_checkpoint("models/default/ckpt")                          # doctest: +SKIP
    >>> decode(model, [5, 6, 14, 9, 15], mask_id=2, eos_ids={1}).tokens         # doctest: +SKIP
    [5, 11, 1]
"""

from __future__ import annotations

import dataclasses

import torch

from sdar_tiny import SdarTiny, block_causal_mask


@dataclasses.dataclass
class DecodeResult:
    tokens: list[int]  # everything decoded after the prompt (whole blocks, EOS and after included)
    denoise_forwards: int  # forwards whose logits choose tokens
    cache_forwards: int  # prefill + per-block K/V append forwards
    decoded: int  # positions turned from MASK into tokens


def step_quotas(block_size: int, steps: int) -> list[int]:
    """SDAR's static schedule: base = BS // steps, the first BS % steps steps get one more."""
    base, extra = divmod(block_size, steps)
    return [base + (1 if i < extra else 0) for i in range(steps)]


def select(conf: torch.Tensor, masked: torch.Tensor, quota: int, strategy: str, threshold: float) -> torch.Tensor:
    """Boolean selection over the block's positions. conf is -inf at non-masked positions."""
    order = torch.sort(-conf, stable=True).indices  # highest confidence first, ties -> lowest index
    top = torch.zeros_like(masked)
    top[order[:quota]] = True
    if strategy == "low_confidence_dynamic":
        high = conf > threshold
        if int(high.sum()) >= quota:
            top = high
    elif strategy != "low_confidence_static":
        raise ValueError(f"unknown strategy {strategy!r}")
    return top & masked


class TorchRunner:
    """Runs SdarTiny with an explicit per-layer K/V cache of whole clean blocks."""

    def __init__(self, model: SdarTiny):
        self.model = model
        self.block_size = model.cfg.block_size
        self.caches = None

    def reset(self) -> None:
        self.caches = None

    def __call__(self, tokens: torch.Tensor, start: int, commit: bool) -> torch.Tensor:
        """Logits [T, V] for tokens at absolute positions [start, start+T); the cache must hold
        exactly positions [0, start). commit=True appends this call's K/V to the cache."""
        mask = block_causal_mask(len(tokens), self.block_size, offset=start)
        pos = torch.arange(start, start + len(tokens))
        logits, kv = self.model(tokens[None], mask, pos, self.caches, return_kv=True)
        if commit:
            self.caches = kv if self.caches is None else [
                (torch.cat((ck, k), 2), torch.cat((cv, v), 2)) for (ck, cv), (k, v) in zip(self.caches, kv)
            ]
        return logits[0]


class PteRunner:
    """Runs an exported .pte (docs/pte-contract.md: forward(tokens [1,T], input_pos [1]), KV cache in
    mutable buffers, block-causal by absolute position) through ExecuTorch's Python runtime.
    Every call writes K/V at [start, start+T); a denoising call's K/V are stale but are rewritten
    by the block's next call and never read before that, so commit needs no special handling."""

    def __init__(self, pte_path: str):
        from executorch.runtime import Runtime

        program = Runtime.get().load_program(pte_path)
        self.method = program.load_method("forward")
        self.block_size = int(program.load_method("get_block_size").execute([])[0])
        # Contract v2 ("logits rows") programs take a last input `rows`; asking for every row
        # keeps the [T, V] logits this decoder indexes (a commit forward's logits are unused).
        self.contract_version = int(program.load_method("get_contract_version").execute([])[0])

    def reset(self) -> None:
        pass

    def __call__(self, tokens: torch.Tensor, start: int, commit: bool) -> torch.Tensor:
        args = [tokens[None].contiguous(), torch.tensor([start], dtype=torch.long)]
        if self.contract_version >= 2:
            args.append(torch.arange(tokens.shape[0], dtype=torch.long))
        out = self.method.execute(args)
        return out[0][0]


@torch.no_grad()
def decode(
    model,
    prompt: list[int],
    *,
    mask_id: int,
    eos_ids: set[int],
    gen_length: int = 8,
    steps: int | None = None,
    strategy: str = "low_confidence_static",
    threshold: float = 0.9,
) -> DecodeResult:
    """model: SdarTiny, or a runner (TorchRunner / PteRunner)."""
    run = TorchRunner(model) if isinstance(model, SdarTiny) else model
    run.reset()
    bs = run.block_size
    steps = bs if steps is None else steps
    quotas = step_quotas(bs, steps)
    lp = len(prompt)
    nb = -(-(lp + gen_length) // bs)
    x = torch.full((nb * bs,), mask_id, dtype=torch.long)
    x[:lp] = torch.tensor(prompt, dtype=torch.long)
    pf = (lp // bs) * bs
    denoise = cache_fw = decoded = 0

    if pf > 0:
        run(x[:pf], 0, commit=True)
        cache_fw += 1
    for b in range(pf // bs, nb):
        start = b * bs
        cur = x[start : start + bs].clone()
        for step in range(steps + 1):
            masked = cur == mask_id
            if not bool(masked.any()):
                run(cur, start, commit=True)  # append the finished block's clean K/V
                cache_fw += 1
                break
            logits = run(cur, start, commit=False)
            denoise += 1
            probs = torch.softmax(logits.float(), dim=-1)
            conf, x0 = probs.max(dim=-1)  # max returns the first (lowest) index among ties
            conf = torch.where(masked, conf, torch.full_like(conf, -torch.inf))
            quota = quotas[step] if step < steps else int(masked.sum())
            sel = select(conf, masked, quota, strategy, threshold)
            cur[sel] = x0[sel]
            decoded += int(sel.sum())
        x[start : start + bs] = cur
        if any(int(t) in eos_ids for t in x[lp : start + bs]):
            break
    end = start + bs
    return DecodeResult(x[lp:end].tolist(), denoise, cache_fw, decoded)


def answer_text(tokens: list[int], eos_ids: set[int], detok) -> str | None:
    """The text before the first EOS, or None if no EOS was produced."""
    for i, t in enumerate(tokens):
        if t in eos_ids:
            return detok(tokens[:i])
    return None
