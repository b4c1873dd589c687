"""DiffusionLM -> ExecuTorch program (.pte) with the DiffuLex metadata methods.

The pipeline is the stock one: torch.export with a dynamic token dimension,
to_edge_transform_and_lower (XNNPACK partitioner, or none for the portable
kernels), to_executorch. The file is written to a temporary name beside the
destination and renamed at the end, so a failed export leaves nothing at -o.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

import torch

from .errors import ExportError
from .models.base import DiffusionLM
from .quantize import DEFAULT_GROUP_SIZE, QUANTIZE, check_group_size, quantize_model  # noqa: F401 (API)

BACKENDS = ("xnnpack", "vulkan", "portable")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


def tokenizer_digest(tokenizer_json: Union[str, Path]) -> bytes:
    """SHA-256 of a tokenizer's vocabulary (added tokens included), as the engine computes it.

    For every (token, id) pair of `Tokenizer.get_vocab(with_added_tokens=True)`, sorted by id
    then by the token's UTF-8 bytes: the id as 4 little-endian bytes, the token's UTF-8 length
    as 4 little-endian bytes, then the bytes (twin of `TextTokenizer::vocab_digest` in
    src/text/tokenizer.rs). Only the id <-> token mapping counts.

    Example:
        >>> len(tokenizer_digest("models/default/tokenizer.json"))  # doctest: +SKIP
        32
    """
    import hashlib

    from tokenizers import Tokenizer

    vocab = Tokenizer.from_file(str(tokenizer_json)).get_vocab(with_added_tokens=True)
    h = hashlib.sha256()
    for i, tok in sorted((int(i), t.encode("utf-8")) for t, i in vocab.items()):
        h.update(i.to_bytes(4, "little"))
        h.update(len(tok).to_bytes(4, "little"))
        h.update(tok)
    return h.digest()


def digest_words(digest: bytes) -> List[int]:
    """A 32-byte digest as the four signed int64 values a constant method returns (big-endian words).

    Example:
        >>> digest_words(bytes(range(32)))[0] == 0x0001020304050607
        True
    """
    if len(digest) != 32:
        raise ExportError(f"expected a 32-byte digest, got {len(digest)} bytes")
    return [int.from_bytes(digest[k:k + 8], "big", signed=True) for k in range(0, 32, 8)]


def weights_digest(pte: bytes) -> bytes:
    """SHA-256 of a program's segment data: every byte from the extended header's segment base
    offset to the end of the file (delegate payloads with their weights, constant tensors).
    Twin of `pte::weights_digest` in src/pte/digest.rs.

    Example:
        >>> len(weights_digest(open("tests/fixtures/pte/dream.pte", "rb").read()))  # doctest: +SKIP
        32
    """
    from .lean_lowering import digest_segments

    return digest_segments([memoryview(pte)])


#: Named-data keys of the files `--embed-tokenizer` stores in the program (docs/pte-contract.md,
#: "Embedded tokenizer"): the runtime uses them when no tokenizer file is given.
EMBEDDED_FILES = {
    "tokenizer.json": "diffulex/tokenizer.json",
    "tokenizer_config.json": "diffulex/tokenizer_config.json",
    "chat_template.jinja": "diffulex/chat_template.jinja",
}


def embedded_files(checkpoint: Union[str, Path]) -> Dict[str, bytes]:
    """The checkpoint's tokenizer files that exist, keyed by their named-data key.

    Example:
        >>> sorted(embedded_files("tests/fixtures/ckpt/sdar"))  # doctest: +SKIP
        ['diffulex/tokenizer.json', 'diffulex/tokenizer_config.json']
    """
    out = {}
    for name, key in EMBEDDED_FILES.items():
        path = Path(checkpoint) / name
        if path.is_file():
            out[key] = path.read_bytes()
    if "diffulex/tokenizer.json" not in out:
        raise ExportError(f"{checkpoint} has no tokenizer.json to embed")
    return out


def add_weights_digest(program, embedded: Optional[Dict[str, bytes]] = None) -> bytes:
    """The program's bytes with a `get_weights_digest` method: SHA-256 of its segment data as four
    int64 words (see `weights_digest`; docs/pte-contract.md), and with `embedded` (named-data key
    -> bytes, see `embedded_files`) stored as named data in the program's segments.

    `serialize_with_digest` is the same without joining the program into one buffer.
    """
    return bytes(serialize_with_digest(program, embedded))


def serialize_with_digest(program, embedded: Optional[Dict[str, bytes]] = None):
    """`add_weights_digest` as ExecuTorch's `Cord`: the program's parts in order, by reference
    (weight payloads spilled to files stay there); `write_atomic` streams it to disk.

    A constant method lives in the flatbuffer, before the segments, and the segments do not
    depend on it: the program is serialized once to digest its segments, then again with the
    extra method (same segments, a slightly longer flatbuffer). This uses the program manager's
    emitter output and ExecuTorch's serializer (pinned executorch 1.5.1).
    """
    import executorch.extension.pytree as ex_pytree
    from executorch.exir._serialize._named_data_store import NamedDataStore
    from executorch.exir._serialize._serialize import serialize_for_executorch
    from executorch.exir.schema import Chain, ContainerMetadata, EValue, ExecutionPlan, Int

    from .lean_lowering import segments_digest

    emitted = program._emitter_output
    named = program._named_data
    if embedded:
        store = NamedDataStore()
        if named is not None:
            store.merge_named_data_store(named)
        for key, data in embedded.items():
            store.add_named_data(key, data, alignment=16)
        named = store.get_named_data_store_output()

    def serialize():
        pte, _ = serialize_for_executorch(emitted, backend_config(), program._data_serializer, named)
        return pte

    digest = segments_digest(serialize())
    words = digest_words(digest)
    _, spec = ex_pytree.tree_flatten(words)
    plan = ExecutionPlan(
        name="get_weights_digest",
        values=[EValue(Int(w)) for w in words],
        inputs=[],
        outputs=list(range(len(words))),
        chains=[Chain(inputs=[], outputs=[], instructions=[], stacktrace=None)],
        operators=[],
        delegates=[],
        non_const_buffer_sizes=[0],
        container_meta_type=ContainerMetadata("", spec.to_str()),
    )
    emitted.program.execution_plan.append(plan)
    out = serialize()
    if segments_digest(out) != digest:
        raise ExportError("internal error: adding get_weights_digest changed the segments")
    return out


def read_embedded(path: Union[str, Path]) -> Dict[str, bytes]:
    """The named data a .pte stores under `diffulex/` keys (the embedded tokenizer files).

    Example:
        >>> read_embedded("model.pte")["diffulex/tokenizer.json"][:1]  # doctest: +SKIP
        b'{'
    """
    from executorch.exir._serialize._program import deserialize_pte_binary

    data = Path(path).read_bytes()
    pte_file = deserialize_pte_binary(data)
    out = {}
    named = pte_file.named_data
    if named is None:
        return out
    for key, entry in named.pte_data.items():
        if key.startswith("diffulex/"):
            out[key] = bytes(named.buffers[entry.buffer_index])
    return out


def constant_methods(model: DiffusionLM, tokenizer: Optional[Union[str, Path]] = None) -> Dict[str, Any]:
    """The metadata methods stored in the .pte: `get_<key>` for counts/ids, bare names for flags.

    With `tokenizer` (the checkpoint's tokenizer.json) also `get_tokenizer_digest`: the
    vocabulary's SHA-256 as four int64 words, which the engine compares with the tokenizer
    it is given (docs/pte-contract.md).

    Example:
        >>> sorted(constant_methods(m))  # doctest: +SKIP
        ['get_block_size', 'get_contract_version', 'get_eos_ids', ..., 'shift_logits', 'use_kv_cache']
    """
    meta = model.meta
    out: Dict[str, Any] = {}
    for key, value in meta.items():
        name = key if key in ("use_kv_cache", "shift_logits", "uses_llm_ops") else f"get_{key}"
        out[name] = value
    if tokenizer is not None:
        out["get_tokenizer_digest"] = digest_words(tokenizer_digest(tokenizer))
    return out


def example_inputs(model: DiffusionLM) -> tuple:
    """Positional example arguments for torch.export (T=2: a dynamic dim must not be traced at 0 or 1).

    A logits-rows (v2) model uses T=3 so that its rows example (R=2, see
    `example_kwargs`) is neither 0/1 nor equal to T: torch.export would otherwise
    specialize R or unify it with T.

    Example:
        >>> [tuple(a.shape) for a in example_inputs(cached_v1_model)]  # doctest: +SKIP
        [(1, 2), (1,)]
    """
    t = min(3 if model.logits_rows else 2, model.max_seq_len)
    tokens = torch.zeros(1, t, dtype=torch.int64)
    if model.shared_embedding is not None:
        # Contract 4: the embeddings of the tokens (float32 [1, T, D]).
        tokens = torch.zeros(1, t, model.spec.hidden, dtype=torch.float32)
    if model.takes_kv_end:
        # v3: every input positional, in the contract's order (tokens, input_pos, rows, kv_end).
        r = min(max(t - 1, 1), model.max_logits_rows)
        rows = torch.arange(t - r, t, dtype=torch.int64)
        return (tokens, torch.zeros(1, dtype=torch.int64), rows, torch.tensor([t], dtype=torch.int64))
    if model.kv_cache:
        return (tokens, torch.zeros(1, dtype=torch.int64))
    return (tokens,)


def example_kwargs(model: DiffusionLM) -> Optional[Dict[str, torch.Tensor]]:
    """The `rows` example of a v2 model (None for v1): the last T-1 rows, ascending.

    Passed by keyword so that an uncached model's `input_pos` stays None; the exported
    forward's inputs are then (tokens, [input_pos,] rows), in that order.

    Example:
        >>> example_kwargs(uncached_v2_model)  # doctest: +SKIP
        {'rows': tensor([1, 2])}
    """
    if not model.logits_rows or model.takes_kv_end:
        return None
    t = example_inputs(model)[0].shape[1]
    r = min(max(t - 1, 1), model.max_logits_rows)
    return {"rows": torch.arange(t - r, t, dtype=torch.int64)}


def dynamic_shapes(model: DiffusionLM):
    """Token dimension dynamic in [1, max_seq_len]; input_pos static [1]; rows (v2) dynamic in [1, max_logits_rows].

    The bounds are what ExecuTorch plans memory for: the logits output is max_logits_rows x
    vocab floats whatever a call asks for.

    v1 keeps the positional tuple form; v2 names every argument (rows is a keyword).

    Example:
        >>> dynamic_shapes(uncached_v2_model)  # doctest: +SKIP
        {'tokens': {1: Dim('T', ...)}, 'rows': {0: Dim('R', ...)}}
    """
    dim_t = torch.export.Dim("T", min=1, max=model.max_seq_len)
    if model.takes_kv_end:
        return ({1: dim_t}, None, {0: torch.export.Dim("R", min=1, max=model.max_logits_rows)}, None)
    if model.logits_rows:
        # A separate symbol: R is unrelated to T except R <= T, which the graph need not know.
        dim_r = torch.export.Dim("R", min=1, max=model.max_logits_rows)
        shapes: Dict[str, Any] = {"tokens": {1: dim_t}}
        if model.kv_cache:
            shapes["input_pos"] = None
        shapes["rows"] = {0: dim_r}
        return shapes
    if model.kv_cache:
        return ({1: dim_t}, None)
    return ({1: dim_t},)


def backend_config():
    """The ExecuTorch backend config of every export (memory planning, dynamic shapes)."""
    from executorch.exir import ExecutorchBackendConfig
    from executorch.exir.passes.sym_shape_eval_pass import ConstraintBasedSymShapeEvalPass

    from .inplace_planning import InplaceViewPlanning

    return ExecutorchBackendConfig(
        # ExecuTorch's planner with views of an in-place result kept on the mutated buffer:
        # without that, the reinplace pass below breaks programs whose attention runs outside
        # a delegate (inplace_planning.py).
        memory_planning_pass=InplaceViewPlanning(alloc_graph_input=True),
        sym_shape_eval_pass=ConstraintBasedSymShapeEvalPass(),
        # The KV cache's `index_put` becomes `index_put_`: each layer writes its new K/V rows
        # into the buffers instead of copying both whole buffers twice per forward (a third
        # of a real-size decode forward before, BENCHMARKS.md).
        run_reinplace_pass=True,
    )


def check_vulkan_supported(model: DiffusionLM) -> None:
    """Refuse the programs that ExecuTorch's Vulkan delegate exports but does not run right.

    Measured on lavapipe with the runtime built from source (docs/source-build.md, "The Vulkan
    delegate"): LLaDA, Dream and Fast-dLLM v2 without a KV cache give XNNPACK's tokens; every
    program with the in-program KV cache (the index_put into the K/V buffers runs on the CPU,
    the attention that reads them in the delegate) gave other logits and tokens, and SDAR's
    graph stops at its first forward in the delegate ("tensor sizes requires a larger texture
    than the current one"). A file that fails or decodes wrongly on the device is worse than
    none, so these are refused here.
    """
    if model.kv_cache:
        raise ExportError(
            "--backend vulkan with the KV cache: ExecuTorch's Vulkan delegate computes wrong logits for "
            "programs that keep the cache in K/V buffers (measured on lavapipe, docs/source-build.md). "
            "Export with --no-kv-cache for Vulkan (llada, dream, fast_dllm_v2), or use --backend xnnpack"
        )
    if model.spec.family == "sdar":
        raise ExportError(
            "--backend vulkan for sdar: ExecuTorch's Vulkan delegate fails at the first forward of the "
            "SDAR graph (\"tensor sizes requires a larger texture than the current one\", docs/source-build.md); "
            "use --backend xnnpack"
        )


def _quiet(_stage: str) -> None:
    """The default progress callback: says nothing."""


def to_program(
    model: DiffusionLM,
    backend: str = "xnnpack",
    tokenizer: Optional[Union[str, Path]] = None,
    progress: Callable[[str], None] = _quiet,
    spill_dir: Optional[Path] = None,
):
    """Export and lower; returns the ExecuTorch program manager (its `.buffer` is the .pte).

    `tokenizer` (a tokenizer.json) adds `get_tokenizer_digest` (see `constant_methods`).
    `progress` is called with a line at the start of each stage. XNNPACK lowering shares the
    weights with `model` rather than copying them, and with `spill_dir` keeps the delegates'
    weight payloads in files there instead of memory (`lean_lowering.py`); the directory must
    then outlive the program's serialization.
    """
    from .lean_lowering import lean_xnnpack_lowering

    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

    if backend not in BACKENDS:
        raise ExportError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend == "vulkan":
        check_vulkan_supported(model)
        for layer in model.layers:
            layer.attn.full_rank_mask = True
    partitioners = []
    if backend == "xnnpack":
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        partitioners = [XnnpackPartitioner()]
    elif backend == "vulkan":
        # ExecuTorch's Vulkan delegate (GPU; lavapipe on a CPU-only machine). What it cannot run
        # (scalar_tensor) stays on the portable CPU kernels. Such a .pte needs a runtime built
        # from source with the `vulkan` feature (docs/source-build.md, "The Vulkan delegate").
        from executorch.backends.vulkan.partitioner.vulkan_partitioner import VulkanPartitioner

        partitioners = [VulkanPartitioner()]
    prev = torch.is_grad_enabled()
    # Buffer mutation (the KV cache) cannot be exported with autograd on.
    torch.set_grad_enabled(False)
    try:
        progress("tracing forward (torch.export)")
        ep = torch.export.export(
            model,
            example_inputs(model),
            kwargs=example_kwargs(model),
            dynamic_shapes=dynamic_shapes(model),
            strict=False,
        )
        progress(f"lowering to the edge dialect and delegating to {backend}")

        def lowered(n: int) -> None:
            if n % 50 == 0:
                progress(f"{n} partitions lowered to {backend}")

        with lean_xnnpack_lowering(spill_dir, lowered) as spilled:
            edge = to_edge_transform_and_lower(
                ep,
                partitioner=partitioners,
                constant_methods=constant_methods(model, tokenizer),
                compile_config=EdgeCompileConfig(_check_ir_validity=False),
            )
        delegates = sum(
            1 for node in edge.exported_program().graph.nodes if node.op == "get_attr" and "lowered_module" in node.name
        )
        kept = f", {spilled.bytes / 2**20:.0f} MiB of weights kept on disk until written" if spilled.payloads else ""
        progress(f"{delegates} delegate blob(s) lowered{kept}; emitting the ExecuTorch program")
        return edge.to_executorch(backend_config())
    finally:
        torch.set_grad_enabled(prev)


def give_plain_mode(path: Union[str, Path]) -> None:
    """Give a file the mode a plain `open()` would have (0666 less the umask).

    For files created 0600 by `tempfile.mkstemp` or safetensors, which other users and tools
    must be able to read.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def write_atomic(data, out_path: Union[str, Path]) -> Path:
    """Write bytes (or an ExecuTorch `Cord`, streamed) to out_path through a temporary file in
    the same directory + rename.

    Example:
        >>> write_atomic(b"x", "/tmp/diffulex_atomic_example.bin")
        PosixPath('/tmp/diffulex_atomic_example.bin')
    """
    out = Path(out_path)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ExportError(f"output directory {parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=str(parent))
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, (bytes, bytearray, memoryview)):
                f.write(data)
            else:
                data.write_to_file(f)
        give_plain_mode(tmp)  # mkstemp creates 0600
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return out


def export_model(
    model: DiffusionLM,
    out_path: Union[str, Path],
    backend: str = "xnnpack",
    quantize: str = "none",
    tokenizer: Optional[Union[str, Path]] = None,
    embed_tokenizer: bool = False,
    progress: Callable[[str], None] = _quiet,
    group_size: int = DEFAULT_GROUP_SIZE,
    llm_ops: bool = False,
    free_model_weights: bool = False,
    shared_embedding: Optional[bool] = None,
) -> Path:
    """Quantize (optionally), export, lower and write `model` as a .pte at out_path.

    `llm_ops` runs attention and the cache write through ExecuTorch's LLM custom operators
    (models/llm_ops.py); the program then needs a runtime built with them.

    `shared_embedding` drops the program's embedding table of a tied checkpoint: the engine
    reads the rows from the lm_head's quantized weights instead (contract 4,
    shared_embedding.py). None (the default) does so whenever it applies: a tied checkpoint,
    `--quantize int8` or `8da4w`, logits rows. True insists (an error where it cannot apply),
    False keeps the table in the program (contract 2 or 3, which older engines read).

    A model loaded with `load_model(..., quantize=...)` is already quantized: pass the same
    `quantize`. The delegates' weight payloads are kept in a temporary directory beside
    `out_path` until the program is written, and `free_model_weights` frees the model's tensors
    once the program is emitted (the model is unusable afterwards): both keep a real-size
    export near one copy of the weights in memory (lean_lowering.py).

    `tokenizer` (the checkpoint's tokenizer.json) records its vocabulary digest in the program;
    with `embed_tokenizer` the tokenizer files beside it (tokenizer.json, tokenizer_config.json,
    chat_template.jinja) are stored in the program too, so the .pte is the whole model.

    Example:
        >>> export_model(load_model("tests/fixtures/ckpt/dream", max_seq_len=256), "/tmp/d.pte")  # doctest: +SKIP
        PosixPath('/tmp/d.pte')
    """
    if quantize not in QUANTIZE:
        raise ExportError(f"unknown quantization {quantize!r}; expected one of {', '.join(QUANTIZE)}")
    if quantize != "none" and backend != "xnnpack":
        raise ExportError(f"--quantize {quantize} needs --backend xnnpack (the portable kernels run float only)")
    if embed_tokenizer and tokenizer is None:
        raise ExportError("embed_tokenizer needs the tokenizer.json to embed")
    if llm_ops:
        if backend == "vulkan":
            raise ExportError(
                "--llm-ops with --backend vulkan: the LLM custom operators are CPU kernels, and a "
                "Vulkan program would leave every attention on the CPU; use --backend xnnpack"
            )
        from .models.llm_ops import use_llm_ops

        progress("attention through ExecuTorch's LLM custom operators (llama::custom_sdpa, llama::update_cache)")
        use_llm_ops(model)
    done = getattr(model, "quantization", "none")
    if done not in ("none", quantize):
        raise ExportError(f"the model was loaded quantized as {done}, but the export asks for {quantize}")
    if done == "none" and quantize != "none":
        progress(f"quantizing the linear layers ({quantize})")
        quantize_model(model, quantize, group_size)
    table = None
    if shared_embedding is None:
        shared_embedding = (
            model.spec.tie_embeddings and quantize != "none" and model.logits_rows
            and getattr(model, "shared_embedding", None) is None
        )
    if shared_embedding:
        from .shared_embedding import share_embedding

        table = share_embedding(model)
        progress(
            f"embedding table read from the lm_head's {table.layout.bits}-bit weights (contract 4): "
            "stored once, not twice"
        )
    embedded = embedded_files(Path(tokenizer).parent) if embed_tokenizer else None
    out = Path(out_path)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ExportError(f"output directory {parent} does not exist")
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.spill-", dir=str(parent)) as spill:
        program = to_program(model, backend, tokenizer, progress, spill_dir=Path(spill))
        if table is not None:
            from .shared_embedding import check_stored

            named = program._named_data
            check_stored(table, set(named.pte_data) if named is not None else set())
        if free_model_weights:
            from .lean_lowering import release_weights

            release_weights(model)
        progress("hashing the weight segments and serializing")
        data = serialize_with_digest(program, embedded)
        progress(f"writing {len(data)} bytes")
        return write_atomic(data, out)


def runtime():
    """ExecuTorch's Python runtime with the quantized kernels registered (the quantized
    embedding of `--quantize int8`/`8da4w` runs on them; the Rust runtime links them too)."""
    import executorch.kernels.quantized  # noqa: F401  (registers the quantized kernels)
    from executorch.runtime import Runtime

    return Runtime.get()


def load_pte_method(path: Union[str, Path], method: str = "forward"):
    """Load one method of a .pte with ExecuTorch's Python runtime (for tests and checks)."""
    program = runtime().load_program(str(path))
    return program.load_method(method)


#: The metadata methods with several outputs (read as lists).
LIST_METHODS = (
    "get_eos_ids",
    "get_tokenizer_digest",
    "get_weights_digest",
    "get_embedding_layout",
    "get_embedding_weight_key",
    "get_embedding_scale_key",
)


def read_metadata(path: Union[str, Path]) -> Dict[str, Any]:
    """Run every metadata method of a .pte; lists come back as lists, scalars as scalars.

    Example:
        >>> read_metadata("tests/fixtures/pte/sdar_cached.pte")["get_block_size"]  # doctest: +SKIP
        4
    """
    program = runtime().load_program(str(path))
    out: Dict[str, Any] = {}
    for name in sorted(program.method_names):
        if name == "forward":
            continue
        values = list(program.load_method(name).execute([]))
        out[name] = values if name in LIST_METHODS else values[0]
    return out

