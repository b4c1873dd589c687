"""The one decoder that all four families instantiate, plus its shape/metadata spec.

The families differ only in config keys, weight names, biases, q/k norms, the
attention mask (block-causal or bidirectional) and whether logits are shifted;
those differences live in the family modules as a `ModelSpec` and a name map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
from torch import nn

from .layers import Attention, DecoderLayer, KVCache, RMSNorm, SwiGLU, family_mask, rope_tables

# v1: forward(tokens[, input_pos]) -> logits [1, T, V] for every position.
CONTRACT_VERSION = 1
# v2 ("logits rows"): forward(tokens[, input_pos], rows) -> logits [1, R, V] for the rows asked for.
CONTRACT_VERSION_ROWS = 2
# v3 (cached llada/dream and fast_dllm_v2 with logits rows): v2 cached, plus a last input kv_end:
# queries read the cache slots [0, kv_end) (within their family's mask), which Fast-dLLM's
# prefix and dual caches (llada/dream) and Fast-dLLM v2's sub-block cache need.
CONTRACT_VERSION_KV_END = 3
# Contract 4: version 3's inputs, but `forward` takes embeddings [1, T, D] instead of token ids;
# the engine reads the table from the lm_head's weights (shared_embedding.py).
CONTRACT_VERSION_SHARED_EMBEDDING = 4
# get_cache_modes of a v3 program: bit 0 = prefix cache, bit 1 = dual cache (llada/dream, both
# always), bit 2 = Fast-dLLM v2's sub-block cache.
# Rows of logits one forward may return when the export does not say (`--max-logits-rows`),
# capped at max_seq_len. ExecuTorch plans every tensor at its upper bound, so the logits
# output alone is rows x vocab floats of working memory for the program's lifetime: 622 MB at
# 1024 rows and a 152k vocabulary, 155 MB at 256. A step reads one block's rows (SDAR 4,
# Fast-dLLM v2 32, LLaDA and Dream 32 in Fast-dLLM's loop), or every new token in Dream's
# block-free loop (128 by default).
DEFAULT_MAX_LOGITS_ROWS = 256
CACHE_MODE_PREFIX = 1
CACHE_MODE_DUAL = 2
CACHE_MODE_SUB_BLOCK = 4
FAMILY_IDS = {"sdar": 0, "fast_dllm_v2": 1, "llada": 2, "dream": 3}
BIDIRECTIONAL = ("llada", "dream")


@dataclass
class ModelSpec:
    """Everything needed to build the module and its .pte metadata.

    Example:
        >>> s = ModelSpec("sdar", vocab_size=512, hidden=64, n_layers=2, n_heads=4, n_kv_heads=2,
        ...               head_dim=16, intermediate=128, rms_eps=1e-6, rope_theta=1e6,
        ...               max_position_embeddings=1024, mask_token_id=3, eos_ids=[1],
        ...               pad_id=1, block_size=4)
        >>> s.family_id
        0
    """

    family: str
    vocab_size: int  # width of the logits (the embedding rows)
    hidden: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate: int
    rms_eps: float
    rope_theta: float
    max_position_embeddings: int
    mask_token_id: int
    eos_ids: List[int]
    pad_id: int
    block_size: int = 0
    sub_block_size: int = 0
    shift_logits: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    norm_bias: bool = False
    qk_norm: bool = False
    tie_embeddings: bool = False
    logit_scale: float = 1.0
    embed_scale: float = 1.0

    @property
    def family_id(self) -> int:
        return FAMILY_IDS[self.family]


def resolve_max_logits_rows(requested: Optional[int], max_seq_len: int, logits_rows: bool) -> int:
    """The bound on `rows` a model is built with: `requested`, checked, or the default.

    At least 2 (torch.export would specialise a bound of 1 to a constant) and at most
    max_seq_len (a forward has no more rows than tokens). A model without logits rows
    (contract v1) returns every row and takes no bound.

    Example:
        >>> resolve_max_logits_rows(None, 1024, True)
        256
        >>> resolve_max_logits_rows(None, 64, True)
        64
        >>> resolve_max_logits_rows(4, 1024, True)
        4
    """
    if not logits_rows:
        if requested is not None:
            raise ValueError("max_logits_rows bounds the rows of a logits_rows (contract v2) model; drop it with --logits all")
        return max_seq_len
    if requested is None:
        return min(max_seq_len, DEFAULT_MAX_LOGITS_ROWS)
    if not 2 <= requested <= max_seq_len:
        raise ValueError(
            f"max_logits_rows must be in [2, max_seq_len {max_seq_len}], got {requested}: it is "
            f"the most rows of logits one forward returns (a block's worth is enough)"
        )
    return requested


class DiffusionLM(nn.Module):
    """Token ids -> raw (unshifted) float32 logits, with the family's mask by absolute position.

    Uncached: `m(tokens)` with tokens [1, T] being the whole sequence from position 0.
    Cached: `m(tokens, input_pos)` writes K/V of positions [pos, pos+T) into the
    module's buffers and lets its queries see only keys at positions < pos+T.
    Cached llada/dream (contract v3, needs logits_rows): `m(tokens, input_pos, rows, kv_end)`
    writes K/V of [pos, pos+T) and lets every query see every cache slot < kv_end
    (kv_end >= pos+T; slots in [pos+T, kv_end) hold what earlier calls wrote there).
    Cached fast_dllm_v2 with logits_rows is contract v3 too: the same call, under its
    block-causal mask (Fast-dLLM v2's sub-block cache: a sub-block's rows against the whole
    block's cached K/V).
    With `logits_rows=True` (contract v2) a last argument `rows` (int64 [R], values in
    [0, T)) is required and only those rows of the logits are computed: [1, R, V], with
    R at most `max_logits_rows` (default min(max_seq_len, DEFAULT_MAX_LOGITS_ROWS)).

    Example:
        >>> from diffulex_export.models import load_model
        >>> m = load_model("tests/fixtures/ckpt/sdar", max_seq_len=256, kv_cache=True)  # doctest: +SKIP
        >>> m(torch.tensor([[1, 2, 3]]), torch.tensor([0])).shape  # doctest: +SKIP
        torch.Size([1, 3, 512])
        >>> r = load_model("tests/fixtures/ckpt/sdar", max_seq_len=256, logits_rows=True)  # doctest: +SKIP
        >>> r(torch.tensor([[1, 2, 3]]), torch.tensor([0]), torch.tensor([2])).shape  # doctest: +SKIP
        torch.Size([1, 1, 512])
    """

    def __init__(
        self,
        spec: ModelSpec,
        max_seq_len: int,
        kv_cache: bool,
        dtype: torch.dtype = torch.float32,
        logits_rows: bool = False,
        max_logits_rows: Optional[int] = None,
    ):
        super().__init__()
        self.spec = spec
        # The weight quantization applied ("none", "int8", "8da4w"; see quantize.py).
        self.quantization = "none"
        self.max_seq_len = max_seq_len
        self.kv_cache = kv_cache
        self.logits_rows = logits_rows
        self.max_logits_rows = resolve_max_logits_rows(max_logits_rows, max_seq_len, logits_rows)
        # Attention through ExecuTorch's LLM custom operators (models/llm_ops.py, `--llm-ops`).
        self.llm_ops = False
        # Fast-dLLM's prefix/dual caches: a bidirectional model whose queries read cache slots
        # written by earlier calls (contract v3).
        self.bidirectional_cache = kv_cache and spec.block_size == 0
        if self.bidirectional_cache and not logits_rows:
            raise ValueError("a cached bidirectional model (contract v3) also selects logits rows (logits_rows=True)")
        # Fast-dLLM v2's sub-block cache (its official `use_block_cache`): a forward of one
        # sub-block reads the K/V its block's last full forward left in the slots after it.
        # Every cached contract-2 Fast-dLLM v2 program gets it (contract v3).
        self.sub_block_cache = kv_cache and logits_rows and spec.family == "fast_dllm_v2"
        # forward takes kv_end last (contract v3).
        self.takes_kv_end = self.bidirectional_cache or self.sub_block_cache
        self.embed = nn.Embedding(spec.vocab_size, spec.hidden)
        # The lm_head's weights read as the embedding table (`shared_embedding.share_embedding`,
        # contract 4): `embed` is then None and forward takes embeddings.
        self.shared_embedding = None
        layers = []
        for _ in range(spec.n_layers):
            attn = Attention(
                spec.hidden,
                spec.n_heads,
                spec.n_kv_heads,
                spec.head_dim,
                qkv_bias=spec.qkv_bias,
                o_bias=spec.o_bias,
                qk_norm=spec.qk_norm,
                eps=spec.rms_eps,
            )
            mlp = SwiGLU(spec.hidden, spec.intermediate, bias=spec.mlp_bias)
            layers.append(
                DecoderLayer(
                    attn,
                    mlp,
                    RMSNorm(spec.hidden, spec.rms_eps, bias=spec.norm_bias),
                    RMSNorm(spec.hidden, spec.rms_eps, bias=spec.norm_bias),
                )
            )
        self.layers = nn.ModuleList(layers)
        self.norm = RMSNorm(spec.hidden, spec.rms_eps, bias=spec.norm_bias)
        self.lm_head = nn.Linear(spec.hidden, spec.vocab_size, bias=False)
        # Non-persistent: derived from the config, never read from or saved to a checkpoint.
        self.register_buffer("rope_cos", torch.empty(max_seq_len, spec.head_dim), persistent=False)
        self.register_buffer("rope_sin", torch.empty(max_seq_len, spec.head_dim), persistent=False)
        self.to(dtype)
        if kv_cache:
            for layer in self.layers:
                layer.attn.cache = KVCache(spec.n_kv_heads, max_seq_len, spec.head_dim, dtype)
        if self.rope_cos.device.type != "meta":
            self.init_buffers()

    def init_buffers(self) -> None:
        """Fill the RoPE tables and zero the caches (needed again after `to_empty`)."""
        cos, sin = rope_tables(self.spec.head_dim, self.spec.rope_theta, self.max_seq_len)
        with torch.no_grad():
            self.rope_cos.copy_(cos.to(self.rope_cos.dtype))
            self.rope_sin.copy_(sin.to(self.rope_sin.dtype))
        self.reset_cache()

    @property
    def meta(self) -> Dict[str, object]:
        """The .pte constant-method values, keyed without the `get_` prefix."""
        s = self.spec
        return {
            "max_seq_len": int(self.max_seq_len),
            "vocab_size": int(s.vocab_size),
            "mask_token_id": int(s.mask_token_id),
            "eos_ids": [int(i) for i in s.eos_ids],
            "block_size": int(s.block_size),
            "sub_block_size": int(s.sub_block_size),
            "use_kv_cache": bool(self.kv_cache),
            "shift_logits": bool(s.shift_logits),
            "family_id": int(s.family_id),
            "pad_id": int(s.pad_id),
            "contract_version": self.contract_version,
        } | ({"cache_modes": self.cache_modes} if self.takes_kv_end else {}) | (
            # Only when set, so that programs without the custom operators keep their bytes.
            {"uses_llm_ops": True} if self.llm_ops else {}
        ) | (self._shared_embedding_meta() if self.shared_embedding is not None else {})

    def _shared_embedding_meta(self) -> Dict[str, object]:
        """The contract-4 methods: the table's layout and the named-data keys of its bytes."""
        from ..export import digest_words

        table = self.shared_embedding
        out = {
            "embedding_layout": table.layout.as_ints(),
            "embedding_weight_key": digest_words(bytes.fromhex(table.weight_key)),
        }
        if table.scale_key is not None:
            out["embedding_scale_key"] = digest_words(bytes.fromhex(table.scale_key[len("scale_"):]))
        return out

    def input_for(self, tokens: torch.Tensor) -> torch.Tensor:
        """What `forward` takes for `tokens`: the ids, or with a shared table (contract 4) their
        embeddings, gathered as the engine gathers them.

        Example:
            >>> m(m.input_for(torch.tensor([[5, 6]])), torch.tensor([0]), torch.tensor([1]))  # doctest: +SKIP
        """
        if self.shared_embedding is None:
            return tokens
        return self.shared_embedding.embed(tokens)

    @property
    def cache_modes(self) -> int:
        """get_cache_modes of a v3 program: prefix and dual (llada/dream) or sub-block
        (fast_dllm_v2); 0 for the others.

        Example:
            >>> load_model("tests/fixtures/ckpt/fast_dllm_v2", logits_rows=True).cache_modes  # doctest: +SKIP
            4
        """
        if self.bidirectional_cache:
            return CACHE_MODE_PREFIX | CACHE_MODE_DUAL
        return CACHE_MODE_SUB_BLOCK if self.sub_block_cache else 0

    @property
    def contract_version(self) -> int:
        """1 (every row), 2 (logits rows), 3 (logits rows + kv_end: the caches above) or 4 (the
        inputs of 2 or 3, with embeddings for token ids: a shared table)."""
        if self.shared_embedding is not None:
            return CONTRACT_VERSION_SHARED_EMBEDDING
        if self.takes_kv_end:
            return CONTRACT_VERSION_KV_END
        return CONTRACT_VERSION_ROWS if self.logits_rows else CONTRACT_VERSION

    def reset_cache(self) -> None:
        """Zero every layer's K/V buffers (a no-op for uncached models)."""
        for layer in self.layers:
            if layer.attn.cache is not None:
                layer.attn.cache.reset()

    def _check_rows(self, rows: Optional[torch.Tensor], t: int) -> None:
        """Eager-mode validation of the v2 `rows` argument (the exported graph just gathers).

        Example:
            >>> m._check_rows(torch.tensor([0, 2]), 3)  # doctest: +SKIP
        """
        if not self.logits_rows:
            if rows is not None:
                raise ValueError("rows is only accepted by a logits_rows (contract v2) model")
            return
        if rows is None:
            raise ValueError("a logits_rows model needs rows (int64 [R], ascending, in [0, T))")
        if torch.compiler.is_compiling():
            return
        if rows.dim() != 1 or rows.dtype != torch.int64 or rows.numel() == 0:
            raise ValueError(f"rows must be a non-empty int64 vector, got {rows.dtype} {tuple(rows.shape)}")
        if rows.numel() > self.max_logits_rows:
            raise ValueError(
                f"{rows.numel()} rows of logits asked for; this model returns at most "
                f"{self.max_logits_rows} per forward (max_logits_rows)"
            )
        if int(rows.min()) < 0 or int(rows.max()) >= t:
            raise ValueError(f"rows must lie in [0, {t}), got {rows.tolist()}")

    def forward(
        self,
        tokens: torch.Tensor,
        input_pos: Optional[torch.Tensor] = None,
        rows: Optional[torch.Tensor] = None,
        kv_end: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        t = tokens.shape[1]
        if self.takes_kv_end != (kv_end is not None):
            raise ValueError(
                "kv_end (int64 [1]) is the last input of a cached contract-v3 model (llada, dream, "
                "fast_dllm_v2 with logits rows) and of no other"
            )
        if self.kv_cache:
            if input_pos is None:
                raise ValueError("a cached model needs input_pos (int64 [1])")
            if not torch.compiler.is_compiling():
                start = int(input_pos[0])
                if start < 0 or start + t > self.max_seq_len:
                    raise ValueError(
                        f"positions [{start}, {start + t}) are outside the cache [0, {self.max_seq_len})"
                    )
            q_pos = torch.arange(t, dtype=torch.int64) + input_pos
            k_pos = torch.arange(self.max_seq_len, dtype=torch.int64)
            mask = family_mask(q_pos, k_pos, self.spec.block_size)
            if kv_end is not None:
                if not torch.compiler.is_compiling():
                    end = int(kv_end[0])
                    if end < start + t or end > self.max_seq_len:
                        raise ValueError(f"kv_end {end} must lie in [{start + t}, {self.max_seq_len}]")
                if self.bidirectional_cache:
                    # Bidirectional: every slot before the canvas end, including those after
                    # this call's tokens that an earlier call wrote (the dual cache's suffix).
                    # The same for every query, so a key-only [S] mask.
                    mask = k_pos < kv_end
                else:
                    # Block-causal up to kv_end: a sub-block's rows also read the slots of
                    # the rest of their block, as its last full forward wrote them.
                    mask = mask & (k_pos < kv_end).unsqueeze(0)
            else:
                # Keys at or beyond pos+T are stale (or never written): never visible.
                mask = mask & (k_pos < input_pos + t).unsqueeze(0)
            cos = torch.index_select(self.rope_cos, 0, q_pos)
            sin = torch.index_select(self.rope_sin, 0, q_pos)
            positions: Optional[torch.Tensor] = q_pos
        else:
            if input_pos is not None:
                hint = "; pass rows by keyword: m(tokens, rows=rows)" if self.logits_rows else ""
                raise ValueError(f"an uncached model takes no input_pos (tokens are the whole sequence from 0){hint}")
            if not torch.compiler.is_compiling() and t > self.max_seq_len:
                raise ValueError(f"{t} tokens exceed max_seq_len {self.max_seq_len}")
            positions = None
            q_pos = torch.arange(t, dtype=torch.int64)
            mask = family_mask(q_pos, q_pos, self.spec.block_size)
            cos = self.rope_cos[:t]
            sin = self.rope_sin[:t]
        self._check_rows(rows, t)
        if self.shared_embedding is not None:
            # Contract 4: `tokens` holds the embeddings (float32 [1, T, D]).
            x = tokens.to(self.rope_cos.dtype)
        else:
            x = self.embed(tokens)
        if self.spec.embed_scale != 1.0:
            x = x * self.spec.embed_scale
        cos = cos.to(x.dtype)
        sin = sin.to(x.dtype)
        for layer in self.layers:
            x = layer(x, cos, sin, mask, positions)
        if rows is not None:
            # Gather before the final norm and lm_head: both are per-row, so this gives
            # exactly the full logits' rows while the lm_head (most of a forward's cost at
            # a 150k vocabulary) runs on R rows instead of T. The K/V of all T positions
            # were already written by the layers above.
            x = torch.index_select(x, 1, rows)
        logits = self.lm_head(self.norm(x))
        if self.spec.logit_scale != 1.0:
            logits = logits * self.spec.logit_scale
        return logits.float()
