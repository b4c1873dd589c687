"""Reference decoders for every family and mode the Rust engine offers.

Each `generate(f, meta, prompt, max_new_tokens, sampler=dict, seed=int, stop_ids=None,
use_kv_cache=None)` runs over a forward callable `f(tokens[1,T] LongTensor, input_pos
LongTensor[1] | None) -> logits[1,T,V]` with the .pte semantics, and returns
`{"tokens", "stop_reason", "stop_token", "forwards"}`. The arithmetic is float64 in a fixed
order and the RNG is the portable xoshiro256** of `rng.py`, so the Rust engine reproduces the
tokens exactly from identical float32 logits (docs/decoding.md).
"""

from . import dream, fast_dllm_v2, llada, sdar
from .hash_model import HashModel
from .rng import Rng

FAMILIES = {"sdar": sdar, "fast_dllm_v2": fast_dllm_v2, "llada": llada, "dream": dream}


def generate(f, meta, prompt, max_new_tokens, sampler=None, seed=0, stop_ids=None, use_kv_cache=None):
    """Dispatches on meta["family"]."""
    return FAMILIES[meta["family"]].generate(f, meta, prompt, max_new_tokens, sampler, seed, stop_ids, use_kv_cache)


__all__ = ["generate", "HashModel", "Rng", "FAMILIES"]
