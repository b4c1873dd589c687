"""The compact family models against transformers' own Qwen3 / Qwen2 / Llama implementations.

Same weights (LLaDA's renamed to Llama's names), the family's mask handed to
transformers as a 4D additive mask. Cached models are checked call by call: the
logits of a call at (pos, T) must equal transformers' logits at rows [pos, pos+T)
of the whole current sequence [0, pos+T).
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from diffulex_export.errors import ExportError
from diffulex_export.models import load_model
from diffulex_export.models.layers import family_mask

TOL = 1e-5


def _hf_model(family: str, ckpt):
    """transformers model of the same architecture, holding the checkpoint's weights."""
    import transformers as tf

    cfg = json.loads((ckpt / "config.json").read_text())
    sd = load_file(str(ckpt / "model.safetensors"))
    if family == "llada":
        hc = tf.LlamaConfig(
            vocab_size=cfg["embedding_size"],
            hidden_size=cfg["d_model"],
            intermediate_size=cfg["mlp_hidden_size"],
            num_hidden_layers=cfg["n_layers"],
            num_attention_heads=cfg["n_heads"],
            num_key_value_heads=cfg["n_kv_heads"],
            max_position_embeddings=cfg["max_sequence_length"],
            rms_norm_eps=cfg["rms_norm_eps"],
            rope_theta=cfg["rope_theta"],
            tie_word_embeddings=cfg["weight_tying"],
            attention_bias=False,
            mlp_bias=False,
        )
        cls = tf.LlamaForCausalLM
        ren = {
            "q_proj": "self_attn.q_proj",
            "k_proj": "self_attn.k_proj",
            "v_proj": "self_attn.v_proj",
            "attn_out": "self_attn.o_proj",
            "ff_proj": "mlp.gate_proj",
            "up_proj": "mlp.up_proj",
            "ff_out": "mlp.down_proj",
            "attn_norm": "input_layernorm",
            "ff_norm": "post_attention_layernorm",
        }
        out = {}
        for name, t in sd.items():
            parts = name.split(".")
            if parts[2] == "blocks":
                out[f"model.layers.{parts[3]}.{ren[parts[4]]}.{parts[5]}"] = t
            else:
                out[{"wte": "model.embed_tokens.weight", "ln_f": "model.norm.weight", "ff_out": "lm_head.weight"}[
                    parts[2]
                ]] = t
        sd = out
    else:
        common = dict(
            vocab_size=cfg["vocab_size"],
            hidden_size=cfg["hidden_size"],
            intermediate_size=cfg["intermediate_size"],
            num_hidden_layers=cfg["num_hidden_layers"],
            num_attention_heads=cfg["num_attention_heads"],
            num_key_value_heads=cfg["num_key_value_heads"],
            max_position_embeddings=cfg["max_position_embeddings"],
            rms_norm_eps=cfg["rms_norm_eps"],
            rope_theta=cfg["rope_theta"],
            tie_word_embeddings=cfg["tie_word_embeddings"],
        )
        if family == "sdar":
            hc = tf.Qwen3Config(head_dim=cfg["head_dim"], attention_bias=cfg["attention_bias"], **common)
            cls = tf.Qwen3ForCausalLM
        else:
            hc = tf.Qwen2Config(**common)
            cls = tf.Qwen2ForCausalLM
    hc._attn_implementation = "eager"
    model = cls(hc).eval()
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected, unexpected
    # A tied checkpoint has no lm_head.weight; transformers shares it with the embedding.
    assert set(missing) <= {"lm_head.weight"}, missing
    if missing:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    return model


def _hf_logits(hf, tokens, block_size):
    t = tokens.shape[1]
    visible = family_mask(torch.arange(t), torch.arange(t), block_size)
    additive = torch.zeros(1, 1, t, t).masked_fill(~visible, torch.finfo(torch.float32).min)
    with torch.no_grad():
        return hf(input_ids=tokens, attention_mask=additive).logits


def _tokens(n, seed):
    return torch.randint(0, 512, (1, n), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", ["sdar", "fast_dllm_v2", "llada", "dream"])
def test_uncached_matches_transformers(family, tiny_ckpts):
    ckpt = tiny_ckpts[family]
    ours = load_model(ckpt, max_seq_len=256, kv_cache=False)
    hf = _hf_model(family, ckpt)
    tokens = _tokens(70, seed=3)
    with torch.no_grad():
        got = ours(tokens)
    want = _hf_logits(hf, tokens, ours.spec.block_size)
    assert got.shape == (1, 70, 512) and got.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=TOL, rtol=0)
    # The family mask must matter: plain causal attention gives other logits.
    with torch.no_grad():
        causal = hf(input_ids=tokens).logits
    assert (causal - got).abs().max() > 1e-2


def _calls(block):
    """Prefill with a partial last block, rewrite it, write blocks, rewrite one, a 1-token call."""
    b = block
    return [(0, 2 * b + 2), (2 * b, b), (3 * b, b), (3 * b, b), (4 * b, 1), (4 * b, b), (5 * b, 2 * b)]


@pytest.mark.parametrize("family", ["sdar", "fast_dllm_v2"])
def test_cached_calls_match_transformers(family, tiny_ckpts):
    ckpt = tiny_ckpts[family]
    ours = load_model(ckpt, max_seq_len=256, kv_cache=True)
    hf = _hf_model(family, ckpt)
    bs = ours.spec.block_size
    seq = torch.zeros(1, 256, dtype=torch.int64)
    for i, (pos, t) in enumerate(_calls(bs)):
        tokens = _tokens(t, seed=10 + i)
        seq[:, pos : pos + t] = tokens
        with torch.no_grad():
            got = ours(tokens, torch.tensor([pos]))
        want = _hf_logits(hf, seq[:, : pos + t], bs)[:, pos:]
        torch.testing.assert_close(got, want, atol=TOL, rtol=0, msg=lambda m: f"call {i} (pos {pos}, T {t}): {m}")


def test_stale_cache_entries_are_never_read(tiny_ckpts):
    ours = load_model(tiny_ckpts["sdar"], max_seq_len=256, kv_cache=True)
    tokens = _tokens(6, seed=5)
    with torch.no_grad():
        fresh = ours(tokens, torch.tensor([0]))
        ours(_tokens(40, seed=6), torch.tensor([0]))  # fills positions 0..39
        again = ours(tokens, torch.tensor([0]))  # 6..39 now stale
    torch.testing.assert_close(again, fresh, atol=0, rtol=0)


def test_reset_cache_zeroes_buffers(tiny_ckpts):
    ours = load_model(tiny_ckpts["fast_dllm_v2"], max_seq_len=64, kv_cache=True)
    with torch.no_grad():
        ours(_tokens(8, seed=1), torch.tensor([0]))
    assert any(l.attn.cache.k.abs().sum() > 0 for l in ours.layers)
    ours.reset_cache()
    assert all(l.attn.cache.k.abs().sum() == 0 and l.attn.cache.v.abs().sum() == 0 for l in ours.layers)


def test_cached_single_call_equals_uncached(tiny_ckpts):
    cached = load_model(tiny_ckpts["sdar"], max_seq_len=64, kv_cache=True)
    plain = load_model(tiny_ckpts["sdar"], max_seq_len=64, kv_cache=False)
    tokens = _tokens(13, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(cached(tokens, torch.tensor([0])), plain(tokens), atol=TOL, rtol=0)


EXPECTED_META = {
    # family: (mask id, eos ids, block, sub-block, shift, family id, pad, cache by default)
    "sdar": (3, [2, 0], 4, 0, False, 0, 2, True),
    "fast_dllm_v2": (3, [2, 0], 32, 8, True, 1, 2, True),
    "llada": (5, [0], 0, 0, False, 2, 0, False),
    "dream": (3, [0], 0, 0, True, 3, 0, False),
}


@pytest.mark.parametrize("family", sorted(EXPECTED_META))
def test_meta(family, tiny_ckpts):
    m = load_model(tiny_ckpts[family], max_seq_len=128)
    mask, eos, block, sub, shift, fid, pad, cached = EXPECTED_META[family]
    assert m.meta == {
        "max_seq_len": 128,
        "vocab_size": 512,
        "mask_token_id": mask,
        "eos_ids": eos,
        "block_size": block,
        "sub_block_size": sub,
        "use_kv_cache": cached,
        "shift_logits": shift,
        "family_id": fid,
        "pad_id": pad,
        "contract_version": 1,
    }


def test_sharded_checkpoint_loads(tiny_ckpts, tmp_path):
    src = tiny_ckpts["dream"]
    sd = load_file(str(src / "model.safetensors"))
    names = sorted(sd)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    weight_map = {}
    for fname, part in shards.items():
        save_file({n: sd[n] for n in part}, str(tmp_path / fname))
        weight_map.update({n: fname for n in part})
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (tmp_path / "config.json").write_text((src / "config.json").read_text())
    tokens = _tokens(9, seed=4)
    with torch.no_grad():
        a = load_model(tmp_path, max_seq_len=64)(tokens)
        b = load_model(src, max_seq_len=64)(tokens)
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_missing_weight_is_named(tiny_ckpts, tmp_path):
    src = tiny_ckpts["sdar"]
    sd = load_file(str(src / "model.safetensors"))
    del sd["model.layers.1.self_attn.k_norm.weight"]
    save_file(sd, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text((src / "config.json").read_text())
    with pytest.raises(ExportError, match=r"missing weights \(1\): model\.layers\.1\.self_attn\.k_norm\.weight"):
        load_model(tmp_path, max_seq_len=64)


def test_bidirectional_cache_needs_logits_rows(tiny_ckpts):
    # Contract 3 (Fast-dLLM's caches) is a row-selecting program; a v1 cached llada is refused.
    with pytest.raises(ExportError, match="selects its logits rows"):
        load_model(tiny_ckpts["llada"], max_seq_len=64, kv_cache=True)
    m = load_model(tiny_ckpts["llada"], max_seq_len=64, kv_cache=True, logits_rows=True)
    assert m.meta["contract_version"] == 3 and m.meta["use_kv_cache"]


def test_max_seq_len_beyond_positions_refused(tiny_ckpts):
    with pytest.raises(ExportError, match="exceeds the checkpoint's max_position_embeddings 1024"):
        load_model(tiny_ckpts["dream"], max_seq_len=2048)


def test_wrong_family_refused(tiny_ckpts):
    with pytest.raises(ExportError, match="--family dream does not match"):
        load_model(tiny_ckpts["sdar"], family="dream", max_seq_len=64)


def test_out_of_range_position_refused(tiny_ckpts):
    m = load_model(tiny_ckpts["sdar"], max_seq_len=16, kv_cache=True)
    with pytest.raises(ValueError, match="outside the cache"):
        m(_tokens(4, seed=0), torch.tensor([14]))


def test_stale_cache_slots_do_not_reach_the_output(tiny_ckpts):
    """Slots at or past pos + T hold what earlier, longer calls wrote (finite, possibly large)
    or, never written, the zeros of the runtime's planned memory (docs/pte-contract.md, "Cached
    programs"): neither may change the output."""
    ours = load_model(tiny_ckpts["sdar"], max_seq_len=64, kv_cache=True)
    plain = load_model(tiny_ckpts["sdar"], max_seq_len=64, kv_cache=False)
    g = torch.Generator().manual_seed(3)
    for layer in ours.layers:
        layer.attn.cache.k.copy_(torch.randn(layer.attn.cache.k.shape, generator=g) * 1e3)
        layer.attn.cache.v.copy_(torch.randn(layer.attn.cache.v.shape, generator=g) * 1e3)
    tokens = _tokens(12, seed=8)
    with torch.no_grad():
        got = ours(tokens, torch.tensor([0]))
        want = plain(tokens)
    torch.testing.assert_close(got, want, atol=TOL, rtol=0)


@pytest.mark.parametrize("key,file,what", [("eos_token_id", "generation_config.json", "eos id"),
                                           ("pad_token_id", "config.json", "pad id")])
def test_special_id_equal_to_the_mask_refused(tiny_ckpts, tmp_path, key, file, what):
    """Issue 13, item 12: an eos or pad id equal to the mask id is refused at export (the engine
    refuses such a .pte at load too: tests/pte_meta.rs::contradictory_constants_are_rejected_naming_both)."""
    import shutil

    src = tiny_ckpts["dream"]
    for f in src.iterdir():
        shutil.copy(f, tmp_path / f.name)
    mask = load_model(src, max_seq_len=64).meta["mask_token_id"]
    path = tmp_path / file
    cfg = json.loads(path.read_text()) if path.exists() else {}
    cfg[key] = mask
    path.write_text(json.dumps(cfg))
    with pytest.raises(ExportError, match=f"{what} {mask} is the mask token id {mask}"):
        load_model(tmp_path, max_seq_len=64)


def test_fast_dllm_v2_sub_block_span_reads_the_rest_of_its_block(tiny_ckpts):
    """Contract 3 for Fast-dLLM v2 (the sub-block cache): a call over one sub-block with kv_end
    at its block's end sees the block's other slots as the block's full forward wrote them. With
    the same tokens its rows are the full forward's; with kv_end at its own end (the later
    sub-blocks hidden) they are not."""
    m = load_model(tiny_ckpts["fast_dllm_v2"], max_seq_len=128, kv_cache=True, logits_rows=True)
    assert m.meta["contract_version"] == 3 and m.meta["cache_modes"] == 4
    bs, sbs = m.spec.block_size, m.spec.sub_block_size
    canvas = _tokens(2 * bs, seed=3)
    with torch.no_grad():
        m(canvas[:, :bs], torch.tensor([0]), torch.arange(bs), torch.tensor([bs]))
        full = m(canvas[:, bs:], torch.tensor([bs]), torch.arange(bs), torch.tensor([2 * bs]))
        a, b = bs + sbs, bs + 2 * sbs
        span = m(canvas[:, a:b], torch.tensor([a]), torch.arange(sbs), torch.tensor([2 * bs]))
        torch.testing.assert_close(span, full[:, sbs : 2 * sbs], atol=TOL, rtol=0)
        short = m(canvas[:, a:b], torch.tensor([a]), torch.arange(sbs), torch.tensor([b]))
    assert (short - span).abs().max() > 1e-3
    with pytest.raises(ValueError, match="kv_end"):
        m(canvas[:, a:b], torch.tensor([a]), torch.arange(sbs))
