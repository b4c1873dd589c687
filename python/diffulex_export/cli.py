"""`diffulex-export` command line: export a checkpoint to .pte, or print a .pte's metadata.

Example:
    diffulex-export export --checkpoint ckpt/ --max-seq-len 1024 -o out/model.pte
    diffulex-export export --checkpoint ckpt/ --max-seq-len 1024 --logits all -o out/v1.pte
    diffulex-export info out/model.pte
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

from .checkpoint import FAMILIES
from .errors import ExportError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="diffulex-export", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("export", help="export a Hugging Face-layout checkpoint to an ExecuTorch .pte")
    e.add_argument("--checkpoint", required=True, type=Path, help="directory with config.json and *.safetensors")
    e.add_argument("--family", choices=FAMILIES, help="model family (default: detected from config.json)")
    e.add_argument("--max-seq-len", required=True, type=int, help="longest sequence (and KV cache) the .pte supports")
    cache = e.add_mutually_exclusive_group()
    cache.add_argument("--kv-cache", dest="kv_cache", action="store_true", default=None,
                       help="KV cache inside the program (default for sdar, fast_dllm_v2); for llada and dream "
                            "it is the cache of Fast-dLLM's prefix and dual modes (contract v3, with "
                            "--logits rows)")
    cache.add_argument("--no-kv-cache", dest="kv_cache", action="store_false",
                       help="whole sequence every call (default for llada, dream)")
    e.add_argument("--backend", choices=("xnnpack", "vulkan", "portable"), default="xnnpack",
                   help="xnnpack (default): CPU; vulkan: ExecuTorch's Vulkan delegate (GPU), which needs a "
                        "runtime built from source with feature `vulkan`; portable: no delegate")
    e.add_argument("--dtype", choices=("fp32", "fp16"), default="fp32",
                   help="weights/activations dtype; logits are float32 either way")
    e.add_argument("--quantize", choices=("none", "int8", "8da4w"), default="none",
                   help="int8: 8-bit dynamic activations + 8-bit per-channel weights; "
                        "8da4w: 8-bit dynamic activations + 4-bit weights, groups of 32 (xnnpack only)")
    e.add_argument("--group-size", type=int, default=None, metavar="N",
                   help="8da4w: input features per 4-bit scale, a multiple of 32 dividing every layer's "
                        "input size, or 0 for one scale per output channel (default: 32). "
                        "Larger groups decode faster on XNNPACK and quantize coarser (BENCHMARKS.md)")
    e.add_argument("--logits", choices=("rows", "all"), default="rows",
                   help="rows (default): contract v2, forward takes a last input `rows` (int64 [R]) and "
                        "returns logits [1, R, V] for those positions only, so the lm_head runs on R rows "
                        "instead of T (most of a forward's cost at a large vocabulary); "
                        "all: contract v1, forward returns logits [1, T, V] for every position")
    e.add_argument("--max-logits-rows", type=int, default=None, metavar="N",
                   help="with --logits rows: the most rows of logits one forward returns, in [2, max-seq-len] "
                        "(default: min(max-seq-len, 256)). The runtime keeps N x vocab floats for them "
                        "(155 MB at 256 rows and a 152k vocabulary; 4x that at 1024). A step reads one "
                        "block's rows: SDAR's block size, 32 for Fast-dLLM v2 and for LLaDA/Dream in "
                        "blocks; Dream without blocks reads every new token. The engine refuses a "
                        "generation that needs more, before it runs")
    e.add_argument("--shared-embedding", action=argparse.BooleanOptionalAction, default=None,
                   help="tied checkpoints: store the embedding table once, as the lm_head's quantized weights, "
                        "and let the engine gather the rows (contract 4; engines before it refuse the file). "
                        "Default: on for a tied checkpoint with --quantize int8/8da4w and --logits rows; "
                        "--no-shared-embedding keeps the table in the program (contract 2/3). "
                        "Float32 exports share it only when asked (--shared-embedding)")
    e.add_argument("--llm-ops", action="store_true",
                   help="attention and the KV-cache write through ExecuTorch's LLM custom operators "
                        "(llama::custom_sdpa, llama::update_cache): faster attention, but the .pte then "
                        "runs only on a runtime built from source with feature `llm-ops` "
                        "(docs/source-build.md); not with --backend vulkan")
    e.add_argument("--skip-tokenizer", action="store_true",
                   help="do not require or copy tokenizer.json / tokenizer_config.json")
    e.add_argument("--embed-tokenizer", action="store_true",
                   help="store tokenizer.json, tokenizer_config.json and chat_template.jinja in the .pte "
                        "(named data), so the one file is the whole model; they are still copied beside it "
                        "unless --skip-tokenizer")
    e.add_argument("-o", "--output", required=True, type=Path, help="the .pte file to write")

    i = sub.add_parser("info", help="print the metadata methods of a .pte as JSON")
    i.add_argument("pte", type=Path)
    return p


def _check_output(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ExportError(f"output directory {parent} does not exist")
    if path.is_dir():
        raise ExportError(f"output {path} is a directory; give a file name such as {path / 'model.pte'}")


def _stage_tokenizer(ckpt: Path, out_dir: Path) -> List[tuple]:
    """Copy the tokenizer files to temporary names in out_dir; returns (temp, final) pairs."""
    from .export import give_plain_mode

    staged = []
    try:
        for name in TOKENIZER_FILES:
            src = ckpt / name
            if not src.is_file():
                continue
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=str(out_dir))
            os.close(fd)
            staged.append((tmp, out_dir / name))
            shutil.copyfile(src, tmp)
            give_plain_mode(tmp)  # mkstemp creates 0600
    except BaseException:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise
    return staged


class _Terminated(SystemExit):
    """Raised in place of SIGTERM/SIGHUP's default (immediate death) during an export, so the
    cleanup that removes the temporary files runs; the exit code is 128 + the signal."""


def _exit_on_signals():
    """Turn SIGTERM and SIGHUP into `_Terminated` (SIGINT is already KeyboardInterrupt); returns
    the previous handlers for `_restore_signals`."""
    import signal

    def handler(signum, _frame):
        raise _Terminated(128 + signum)

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous[sig] = signal.signal(sig, handler)
    return previous


def _restore_signals(previous) -> None:
    import signal

    for sig, old in previous.items():
        signal.signal(sig, old)


def _memory_gib() -> Optional[tuple]:
    """(resident now, peak so far) of this process in GiB, from /proc/self/status; None where
    that is not there (Linux only)."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
        return tuple(int(fields[k].split()[0]) / 2**20 for k in ("VmRSS", "VmHWM"))
    except (OSError, KeyError, ValueError):
        return None


def cmd_export(args: argparse.Namespace) -> int:
    import torch

    from .export import DEFAULT_GROUP_SIZE, DTYPES, check_group_size, export_model
    from .models import load_model, model_shape
    from .preflight import check_resources

    _check_output(args.output)
    if not args.checkpoint.is_dir():
        raise ExportError(f"checkpoint directory {args.checkpoint} does not exist")
    if not args.skip_tokenizer and not (args.checkpoint / "tokenizer.json").is_file():
        raise ExportError(
            f"{args.checkpoint} has no tokenizer.json (the engine needs it beside the .pte); "
            f"add it, or pass --skip-tokenizer"
        )
    if args.embed_tokenizer and not (args.checkpoint / "tokenizer.json").is_file():
        raise ExportError(f"--embed-tokenizer: {args.checkpoint} has no tokenizer.json to embed")
    if args.quantize != "none" and args.backend != "xnnpack":
        raise ExportError(f"--quantize {args.quantize} needs --backend xnnpack (the portable kernels run float only)")
    if args.quantize != "none" and args.dtype != "fp32":
        raise ExportError("--quantize works on fp32 models; drop --dtype fp16")
    if args.group_size is not None and args.quantize != "8da4w":
        raise ExportError(f"--group-size applies to --quantize 8da4w only (got --quantize {args.quantize})")
    if args.group_size is not None:
        check_group_size(args.group_size)
    started = time.monotonic()

    def memory_note() -> str:
        memory = _memory_gib()
        return f", rss {memory[0]:5.2f} GiB, peak {memory[1]:5.2f} GiB" if memory else ""

    def progress(stage: str) -> None:
        # Stages on stderr with the time since the start and the memory now and at its peak so
        # far: an export of a real checkpoint runs for minutes and needs GBs (python/README.md,
        # "Real-size checkpoints").
        print(f"[{time.monotonic() - started:7.1f} s{memory_note()}] {stage}", file=sys.stderr, flush=True)

    group_size = DEFAULT_GROUP_SIZE if args.group_size is None else args.group_size
    out_dir = args.output.parent if str(args.output.parent) else Path(".")
    if not out_dir.is_dir():
        raise ExportError(f"output directory {out_dir} does not exist")
    progress(check_resources(model_shape(args.checkpoint, args.family), args.quantize, out_dir))
    progress(f"loading {args.checkpoint}" + (f" and quantizing it layer by layer ({args.quantize})"
                                             if args.quantize != "none" else ""))
    model = load_model(
        args.checkpoint,
        family=args.family,
        max_seq_len=args.max_seq_len,
        kv_cache=args.kv_cache,
        dtype=DTYPES[args.dtype],
        logits_rows=args.logits == "rows",
        quantize=args.quantize,
        group_size=group_size,
        max_logits_rows=args.max_logits_rows,
    )
    with torch.no_grad():
        # Tokenizer copies go to temporary names first so that a failed export
        # leaves neither a .pte nor stray tokenizer files behind.
        staged = [] if args.skip_tokenizer else _stage_tokenizer(args.checkpoint, out_dir)
        try:
            has_tokenizer = args.embed_tokenizer or not args.skip_tokenizer
            tokenizer = args.checkpoint / "tokenizer.json" if has_tokenizer else None
            export_model(model, args.output, backend=args.backend, quantize=args.quantize, tokenizer=tokenizer,
                         embed_tokenizer=args.embed_tokenizer, progress=progress,
                         group_size=group_size, llm_ops=args.llm_ops, free_model_weights=True,
                         shared_embedding=args.shared_embedding)
        except BaseException:
            for tmp, _ in staged:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            raise
    for tmp, final in staged:
        os.replace(tmp, final)
    meta = model.meta
    memory = _memory_gib()
    print(
        f"wrote {args.output} ({args.output.stat().st_size} bytes): {model.spec.family}, "
        f"max_seq_len {meta['max_seq_len']}, kv_cache {meta['use_kv_cache']}, backend {args.backend}, "
        f"dtype {args.dtype}, quantize {args.quantize}, logits {args.logits} "
        f"(contract v{meta['contract_version']})"
        + (", LLM custom operators" if args.llm_ops else "")
        + (", embedding table shared with the lm_head" if model.shared_embedding is not None else "")
        + (", tokenizer embedded" if args.embed_tokenizer else "")
        + f", in {time.monotonic() - started:.1f} s"
        + (f", peak memory {memory[1]:.2f} GiB" if memory else "")
    )
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .export import read_metadata

    if not args.pte.is_file():
        raise ExportError(f"{args.pte} does not exist")
    print(json.dumps(read_metadata(args.pte), indent=2, sort_keys=True))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of `diffulex-export` and `python -m diffulex_export`; returns the exit code."""
    args = _parser().parse_args(argv)
    previous = _exit_on_signals() if args.command == "export" else {}
    try:
        if args.command == "export":
            return cmd_export(args)
        return cmd_info(args)
    except _Terminated as e:
        print(f"diffulex-export: stopped by signal {e.code - 128}; nothing was written", file=sys.stderr)
        return e.code
    except ExportError as e:
        print(f"diffulex-export: error: {e}", file=sys.stderr)
        return 1
    finally:
        _restore_signals(previous)


if __name__ == "__main__":
    sys.exit(main())
