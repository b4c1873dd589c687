#!/usr/bin/env python3
"""llama.cpp as the peer on the same random weights (issue 16, "Peers on the same weights").

    python3 tools/llamacpp_peer.py --work DIR --ckpt-root DIR [--models NAME ...] [--no-pure]
        [--quants Q8_0 Q4_0 Q4_0-pure] [--q4-from bf16|q8_0]
    python3 tools/llamacpp_peer.py --work DIR --ckpt-root DIR --bench [-t 2] [-p 256] [-n 64] [-r 3]
    python3 tools/llamacpp_peer.py --work DIR --ckpt-root DIR --models llada-8b-instruct --quants Q8_0 \
        --diffusion [-t 2] [--diffusion-prompt-tokens 32] [--diffusion-gen-tokens 32] [--diffusion-steps 32]

The random-weight checkpoints of tools/make_real_shape_ckpt.py are plain Qwen networks: SDAR is
Qwen3, Fast-dLLM v2 is Qwen2.5 (Qwen2 architecture). Only their diffusion decoding differs, so
llama.cpp can run the same weights as the autoregressive model they were trained from. LLaDA
(`llada-8b-instruct`) is the other case: llama.cpp has it as a diffusion model of its own
(`LLaDAModelLM`, decoded by `llama-diffusion-cli`), the direct peer of our decoder. Every step
is idempotent (what exists in DIR is reused):

1. Source: `pip download --no-binary :all: --no-deps llama-cpp-python==LLAMA_CPP_PYTHON_VERSION`
   into DIR; its sdist vendors llama.cpp (with a shallow git checkout) in `vendor/llama.cpp`.
2. Build (CMake, Release, CPU only, `-DGGML_NATIVE=ON` minus AMX, no CURL or OpenSSL, static) of
   llama-bench, llama-quantize, llama-simple and, when the tree has `examples/diffusion`,
   llama-diffusion-cli, in DIR/build.
3. Per model: a view directory DIR/views/NAME (symlinks to the shards and index, a config.json
   relabelled Qwen3ForCausalLM / Qwen2ForCausalLM (LLaDA's is kept: the converter has its class),
   and a synthetic byte-level BPE tokenizer, since the checkpoints have none and the converter
   needs one), then, for each of `--quants` (default all three):
   - NAME-Q8_0.gguf: `convert_hf_to_gguf.py --outtype q8_0`;
   - NAME-Q4_0.gguf and NAME-Q4_0-pure.gguf: `--outtype bf16`, then `llama-quantize [--pure] Q4_0`
     (the bf16 file is deleted afterwards). Without `--pure`, llama-quantize keeps the tied
     token-embedding/output matrix at Q6_K; `--pure` makes every 2-D weight Q4_0. With
     `--q4-from q8_0` they are `llama-quantize --allow-requantize` of NAME-Q8_0.gguf instead: no
     bf16 intermediate (as large as the checkpoint), so it fits a fuller disk; the weights are
     then rounded twice (8 then 4 bits), which changes no timing.
   Each file is checked by generating a few tokens (llama-simple; llama-diffusion-cli for LLaDA).
   DIR/llamacpp_files.json records each file's size, tensor types, commands and seconds.
4. `--bench`: `llama-bench -m FILE -t T -p P -n N -r R -o json` for every GGUF of an
   autoregressive twin (not LLaDA's); writes DIR/llamacpp_bench.json (prefill pp tokens/s and
   decode tg tokens/s, mean and stddev, with the llama.cpp commit and the exact commands) and
   prints a markdown table. Time it on a quiet machine: the load average at the start is
   recorded beside the numbers.
5. `--diffusion`: `llama-diffusion-cli` on every GGUF of a LLaDA model, `--diffusion-runs` times
   each, after reading the file once so that it is in the page cache. The canvas (`-c`, `-b` and
   `-ub`, which is llama.cpp's generation length *with* the prompt) is prompt + gen tokens. The
   prompt is `--diffusion-prompt-tokens` minus one single letters ("a b c ..."): the view's chat
   template passes a message through unchanged and the converter makes LLaDA add BOS, so it is
   exactly that many tokens (checked with the view's tokenizer). Greedy (`--temp 0 --top-k 1`:
   with top-k 40, the default, `--temp 0` still samples), the default confidence-based
   remasking, `--diffusion-steps` steps. Its block schedule counts the prompt as blocks (it
   asserts canvas % block length == 0 and gives every block steps / blocks steps, empty ones
   included), so the default block length is the canvas: one block of the gen tokens with every
   step, what ours does with `--block-size GEN --steps STEPS`. Every step is one forward over the
   whole canvas with logits for every position (it has no cache); ours with `--cache none` also
   recomputes the whole canvas every step, but its output layer only for the masked rows.
   Writes DIR/llamacpp_diffusion.json (wall time, peak RSS, its own `total time` / `time per
   step` / `sampling time per step`, tokens generated and tokens/s, the exact command and the
   llama.cpp commit) and prints a markdown table.

The script's own logic is stdlib; the conversion runs under the repo's venv (`--venv-python`,
default .venv/bin/python: torch, numpy, safetensors, transformers), with the `gguf-py` package
vendored in llama.cpp on PYTHONPATH, so nothing is pip-installed. Commands and their output go to
DIR/logs/. DIR holds gigabytes: keep it outside the repo.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The newest 0.3.x sdist when this was written; its CHANGELOG names the vendored commit.
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
# llama.cpp's build number is its commit count, which the sdist's shallow (depth 1) checkout
# cannot give; upstream tags the vendored commit 0c1e57098 as release b11312. Passed to CMake so
# `llama-bench` reports it instead of 1.
LLAMA_CPP_BUILD_NUMBER = {"0.3.36": 11312}

DEFAULT_MODELS = ["sdar-1.7b-chat", "fast-dllm-v2-1.5b"]

# model_type of the diffusion checkpoint -> the Hugging Face architecture of the same network.
AR_ARCHITECTURE = {
    "sdar": ("Qwen3ForCausalLM", "qwen3"),
    "qwen3": ("Qwen3ForCausalLM", "qwen3"),
    "Fast_dLLM_Qwen": ("Qwen2ForCausalLM", "qwen2"),
    "qwen2": ("Qwen2ForCausalLM", "qwen2"),
}

# model_type of a checkpoint llama.cpp decodes as a diffusion model -> its architecture there
# (the checkpoint's own; its converter class and llama-diffusion-cli handle it).
DIFFUSION_ARCHITECTURE = {"llada": "LLaDAModelLM"}

# LLaDA's control tokens at their ids in GSAI-ML/LLaDA-8B-Instruct's tokenizer.
LLADA_SPECIALS = {126080: "<|startoftext|>", 126081: "<|endoftext|>", 126336: "<|mdm_mask|>",
                  126346: "<|start_header_id|>", 126347: "<|end_header_id|>", 126348: "<|eot_id|>"}
# The LLaDA view's chat template: a message's text unchanged. llama-diffusion-cli always applies
# a chat template (ChatML when the file has none), so this is what keeps the prompt's length known.
PASS_THROUGH_TEMPLATE = "{% for message in messages %}{{ message['content'] }}{% endfor %}"

BASE_TARGETS = ["llama-bench", "llama-quantize", "llama-simple"]
DIFFUSION_TARGET = "llama-diffusion-cli"

CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=ON",          # -march=native: the peer gets the same ISA the runtime uses
    "-DLLAMA_CURL=OFF",          # no model downloads (deprecated flag in this tree; harmless)
    "-DLLAMA_OPENSSL=OFF",       # likewise no HTTPS
    "-DBUILD_SHARED_LIBS=OFF",   # self-contained binaries, no rpath to the build tree
    "-DLLAMA_BUILD_TESTS=OFF",
    # llama-cli is now a client of the server code (and its web UI); llama-simple is enough to
    # check a converted file generates, so neither is configured.
    "-DLLAMA_BUILD_SERVER=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
]
# x86 only: -march=native turns on AMX where the CPU has it (Sapphire Rapids and later), and
# ggml's AMX matmul segfaults on the first forward here (a Sapphire Rapids VM; llama.cpp issue
# 20824, closed unfixed). Explicit -mno-* flags win over -march=native in either order, so the
# build keeps every other native ISA extension (AVX-512, VNNI, BF16) and the repacked Q4_0/Q8_0
# kernels, and only the AMX buffer type is left out.
NO_AMX_FLAGS = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"

# The files made per model (NAME-LABEL.gguf). Q8_0 comes straight from the converter; the Q4_0s
# from llama-quantize on a bf16 conversion, since the converter has no 4-bit type.
QUANTS = ["Q8_0", "Q4_0", "Q4_0-pure"]

# ggml_type ids (ggml/include/ggml.h) of the types a file here can hold.
GGML_TYPE_NAMES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0",
                   10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 30: "BF16"}

# Qwen2's pre-tokenizer split (the same for Qwen2.5 and Qwen3), from their tokenizer.json.
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# Run inside the venv in place of `convert_hf_to_gguf.py`. The converter recognises a BPE
# tokenizer by hashing how it splits a test string, and refuses hashes it does not know; a
# synthetic vocabulary has none of the known hashes. This runner labels it "qwen2" (the
# pre-tokenizer llama.cpp uses for Qwen2.5 and Qwen3 alike), then runs the converter unchanged.
CONVERT_RUNNER = """
import runpy, sys
from conversion.base import TextModel
TextModel.get_vocab_base_pre = lambda self, tokenizer: "qwen2"
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


class Failure(Exception):
    """A one-line reason to stop."""


# --------------------------------------------------------------------------------------------
# Running commands


def shell_line(cmd: list) -> str:
    return " ".join(shlex.quote(str(c)) for c in cmd)


def run(cmd: list, log: Path, env: dict | None = None, capture: bool = False) -> str:
    """Run `cmd`, its output appended to `log` (or returned when `capture`); fail on non-zero exit."""
    log.parent.mkdir(parents=True, exist_ok=True)
    line = shell_line(cmd)
    print(f"$ {line}", flush=True)
    with open(log, "a") as fh:
        fh.write(f"\n$ {line}\n")
        fh.flush()
        proc = subprocess.run([str(c) for c in cmd], env=env, text=True,
                              stdout=subprocess.PIPE if capture else fh, stderr=fh)
    if proc.returncode != 0:
        raise Failure(f"`{Path(str(cmd[0])).name}` exited with {proc.returncode}; see {log}")
    return proc.stdout if capture else ""


def timed(fn, *args, **kwargs):
    """(fn(*args), seconds)."""
    start = time.monotonic()
    result = fn(*args, **kwargs)
    return result, round(time.monotonic() - start, 1)


# --------------------------------------------------------------------------------------------
# Inputs


def check_inputs(args) -> list[Path]:
    """Checkpoint directories of `args.models`, after checking every tool the run needs."""
    for tool in ("cmake", "c++", "make"):
        if shutil.which(tool) is None:
            raise Failure(f"`{tool}` not found on PATH (apt-get install cmake build-essential)")
    if not os.access(args.venv_python, os.X_OK):
        raise Failure(f"venv python {args.venv_python} missing: create the repo venv "
                      "(tools/python_env.sh) or pass --venv-python")
    ckpts = []
    for name in args.models:
        ckpt = args.ckpt_root / name
        for needed in ("config.json", "model.safetensors.index.json"):
            if not (ckpt / needed).is_file():
                raise Failure(f"checkpoint {ckpt} has no {needed} "
                              f"(write it with tools/make_real_shape_ckpt.py {name} {ckpt})")
        index = json.loads((ckpt / "model.safetensors.index.json").read_text())
        missing = sorted({f for f in index["weight_map"].values() if not (ckpt / f).is_file()})
        if missing:
            raise Failure(f"checkpoint {ckpt} lacks shard(s) {', '.join(missing)}")
        model_type = json.loads((ckpt / "config.json").read_text()).get("model_type")
        if model_type not in AR_ARCHITECTURE and model_type not in DIFFUSION_ARCHITECTURE:
            known = ", ".join([*AR_ARCHITECTURE, *DIFFUSION_ARCHITECTURE])
            raise Failure(f"{ckpt}: model_type {model_type!r} has no autoregressive twin or llama.cpp "
                          f"diffusion architecture here (known: {known})")
        ckpts.append(ckpt)
    return ckpts


def is_diffusion(ckpt: Path) -> bool:
    """Whether llama.cpp runs this checkpoint as a diffusion model (LLaDA), not as an AR twin."""
    return json.loads((ckpt / "config.json").read_text()).get("model_type") in DIFFUSION_ARCHITECTURE


def check_disk(work: Path, ckpts: list[Path], gguf_dir: Path, args) -> None:
    """Refuse up front when the files still to be written cannot fit.

    Per model, bf16 is the checkpoint's size (transient, not with --q4-from q8_0), Q8_0 ~0.53 of
    it and Q4_0 ~0.3 each.
    """
    need = 0
    for ckpt in ckpts:
        size = sum(p.stat().st_size for p in ckpt.glob("*.safetensors"))
        todo = [q for q in quant_labels(args) if not gguf_path(gguf_dir, ckpt.name, q).exists()]
        q4 = [q for q in todo if q.startswith("Q4_0")]
        need += int(size * (0.53 * ("Q8_0" in todo) + 0.3 * len(q4)
                            + (1.0 if q4 and args.q4_from == "bf16" else 0.0)))
    free = shutil.disk_usage(work).free
    if need > free:
        raise Failure(f"{work}: {free / 1e9:.1f} GB free, the GGUFs still to write need ~{need / 1e9:.1f} GB")


# --------------------------------------------------------------------------------------------
# 1. Source


def fetch_source(work: Path, logs: Path) -> Path:
    """The llama.cpp tree vendored in the pinned llama-cpp-python sdist (downloaded, extracted)."""
    name = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}"
    vendor = work / "src" / name / "vendor" / "llama.cpp"
    if (vendor / "CMakeLists.txt").is_file():
        return vendor
    sdist = work / f"{name}.tar.gz"
    if not sdist.is_file():
        # pip prepares the sdist's metadata, which fetches its build backend (scikit-build-core)
        # into a throwaway isolated environment; nothing is installed.
        run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
             f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}", "-d", work], logs / "source.log")
    with tarfile.open(sdist) as tar:
        tar.extractall(work / "src", filter="data")
    if not (vendor / "CMakeLists.txt").is_file():
        raise Failure(f"{sdist} has no vendor/llama.cpp")
    return vendor


def source_info(vendor: Path) -> dict:
    """The vendored llama.cpp's commit and build number, and whether it has the diffusion CLI."""
    # The sdist keeps the submodule's (shallow) git directory, so the commit is read from git;
    # the CHANGELOG line "update llama.cpp to ggml-org/llama.cpp@<hash>" is the fallback.
    proc = subprocess.run(["git", "-C", str(vendor), "rev-parse", "HEAD"], capture_output=True, text=True) \
        if shutil.which("git") else None
    if proc is not None and proc.returncode == 0:
        commit = proc.stdout.strip()
    else:
        changelog = (vendor.parents[1] / "CHANGELOG.md").read_text()
        match = re.search(r"llama\.cpp@([0-9a-f]{7,40})", changelog)
        commit = match.group(1) if match else "unknown"
    return {
        "llama_cpp_python": LLAMA_CPP_PYTHON_VERSION,
        "llama_cpp_commit": commit,
        "llama_cpp_build_number": LLAMA_CPP_BUILD_NUMBER.get(LLAMA_CPP_PYTHON_VERSION),
        "has_diffusion_example": (vendor / "examples" / "diffusion").is_dir(),
    }


# --------------------------------------------------------------------------------------------
# 2. Build


def build(vendor: Path, work: Path, info: dict, logs: Path) -> tuple[Path, dict]:
    """Configure and build the needed targets in DIR/build; (bin dir, record)."""
    build_dir = work / "build"
    bin_dir = build_dir / "bin"
    targets = BASE_TARGETS + ([DIFFUSION_TARGET] if info["has_diffusion_example"] else [])
    flags = list(CMAKE_FLAGS)
    if platform.machine().lower() in ("x86_64", "amd64"):
        flags += [f"-DCMAKE_C_FLAGS={NO_AMX_FLAGS}", f"-DCMAKE_CXX_FLAGS={NO_AMX_FLAGS}"]
    if info["llama_cpp_build_number"]:
        flags += [f"-DLLAMA_BUILD_NUMBER={info['llama_cpp_build_number']}",
                  f"-DLLAMA_BUILD_COMMIT={info['llama_cpp_commit'][:7]}"]
    record = {"targets": targets, "cmake_flags": flags, "reused": False}
    # The flags the binaries were built with: a build with other flags is rebuilt, not reused.
    stamp = build_dir / "llamacpp_peer_flags.json"
    if all((bin_dir / t).is_file() for t in targets) and stamp.is_file() \
            and json.loads(stamp.read_text()) == flags:
        print(f"build: reusing {bin_dir}", flush=True)
        return bin_dir, {**record, "reused": True}
    configure = ["cmake", "-S", vendor, "-B", build_dir, *flags]
    # -j2 at most: the machine is shared.
    compile_ = ["cmake", "--build", build_dir, "-j", "2", "--target", *targets]
    _, record["configure_seconds"] = timed(run, configure, logs / "build.log")
    _, record["build_seconds"] = timed(run, compile_, logs / "build.log")
    record["commands"] = [shell_line(configure), shell_line(compile_)]
    stamp.write_text(json.dumps(flags) + "\n")
    return bin_dir, record


def check_diffusion_cli(bin_dir: Path, logs: Path) -> str | None:
    """`llama-diffusion-cli --help` works (its first line), or None when it was not built."""
    cli = bin_dir / DIFFUSION_TARGET
    if not cli.is_file():
        return None
    out = run([cli, "--help"], logs / "diffusion_cli.log", capture=True)
    return out.strip().splitlines()[0] if out.strip() else "(--help printed nothing)"


# --------------------------------------------------------------------------------------------
# 3. Views and conversion


def byte_level_alphabet() -> list[str]:
    """GPT-2's byte -> printable character map, in byte order (what byte-level BPE vocabularies use)."""
    printable = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)}
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def synthetic_tokenizer(config: dict) -> tuple[dict, dict]:
    """(tokenizer.json, tokenizer_config.json) of a small Qwen2-style byte-level BPE.

    256 byte tokens and a few hundred merges (letter pairs and space-letter), plus the family's
    control tokens and mask token at their real ids (Qwen's, or LLaDA's). The converter pads the
    ids between to the embedding's rows (151936 for Qwen, 126464 for LLaDA) with [PAD{i}] tokens,
    so llama.cpp sees the real vocabulary size (the output layer's cost) though the token texts
    mean nothing, as the weights mean nothing. A single letter and a space-letter pair are one
    token each, so "a b c" is three.
    """
    alphabet = byte_level_alphabet()
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    merges = []
    space = alphabet[ord(" ")]
    letters = "abcdefghijklmnopqrstuvwxyz"
    for left in [space, *letters]:
        for right in letters:
            merges.append(f"{left} {right}")
            vocab.setdefault(left + right, len(vocab))
    llada = config.get("model_type") in DIFFUSION_ARCHITECTURE
    if llada:
        specials = dict(LLADA_SPECIALS)
        specials[config["mask_token_id"]] = "<|mdm_mask|>"
    else:
        specials = {config["bos_token_id"]: "<|endoftext|>", 151644: "<|im_start|>", 151645: "<|im_end|>"}
        if "mask_token_id" in config:
            specials[config["mask_token_id"]] = "<|MASK|>"
    if max(specials) >= config["vocab_size"]:
        raise Failure(f"special token id {max(specials)} >= vocab_size {config['vocab_size']}")
    # Also in the model's vocabulary: tokenizers renumbers added tokens that are not, packing them
    # after the last model id, which would move eos away from config.json's id.
    vocab.update({text: i for i, text in specials.items()})
    added = [{"id": i, "content": text, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, text in sorted(specials.items())]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT}, "behavior": "Isolated", "invert": False},
            byte_level]},
        "post_processor": byte_level, "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab, "merges": merges},
    }
    if llada:
        # As LLaDA's own (bos <|startoftext|>; the converter makes llama.cpp add it), with the
        # pass-through chat template; its mask id comes from config.json's mask_token_id.
        tokenizer_config = {
            "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": config["max_sequence_length"],
            "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
            "unk_token": None, "add_bos_token": False, "add_eos_token": False,
            "clean_up_tokenization_spaces": False, "chat_template": PASS_THROUGH_TEMPLATE,
        }
        return tokenizer, tokenizer_config
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": config["max_position_embeddings"],
        "bos_token": None, "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
        "unk_token": None, "add_bos_token": False, "clean_up_tokenization_spaces": False,
    }
    return tokenizer, tokenizer_config


def make_view(ckpt: Path, view: Path) -> Path:
    """DIR/views/NAME: the checkpoint's files by symlink, its config relabelled as the AR model
    (a diffusion model's, LLaDA's, is kept as it is)."""
    view.mkdir(parents=True, exist_ok=True)
    for src in ckpt.iterdir():
        if src.name == "config.json" or src.name.startswith("tokenizer"):
            continue
        link = view / src.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(src.resolve())
    config = json.loads((ckpt / "config.json").read_text())
    if config["model_type"] in DIFFUSION_ARCHITECTURE:
        # The converter's own class for it, which reads the OLMo-style keys (d_model, n_heads,
        # n_layers, mlp_hidden_size, max_sequence_length) and mask_token_id.
        config.update(architectures=[DIFFUSION_ARCHITECTURE[config["model_type"]]])
    else:
        architecture, model_type = AR_ARCHITECTURE[config["model_type"]]
        # Only the label changes: the family's own fields (block_size, bd_size, mask_token_id)
        # stay, the converter ignores them.
        config.update(architectures=[architecture], model_type=model_type)
    (view / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    tokenizer, tokenizer_config = synthetic_tokenizer(config)
    (view / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False) + "\n")
    (view / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n")
    return view


def quant_labels(args) -> list[str]:
    """The files to make and run: `--quants`, less Q4_0-pure with `--no-pure`."""
    return [q for q in QUANTS if q in args.quants and (args.pure or q != "Q4_0-pure")]


def gguf_path(gguf_dir: Path, name: str, label: str) -> Path:
    return gguf_dir / f"{name}-{label}.gguf"


def convert(vendor: Path, venv_python: Path, view: Path, outtype: str, out: Path, log: Path) -> str:
    """convert_hf_to_gguf.py on the view (through CONVERT_RUNNER) into `out`; the command line."""
    env = dict(os.environ)
    # The vendored gguf-py, not a pip-installed gguf, matches the converter's own version.
    env["PYTHONPATH"] = os.pathsep.join([str(vendor / "gguf-py"), str(vendor)])
    env["NO_LOCAL_GGUF"] = "1"   # already on PYTHONPATH; the converter need not add it again
    cmd = [venv_python, "-c", CONVERT_RUNNER, vendor / "convert_hf_to_gguf.py", view,
           "--outtype", outtype, "--outfile", out]
    run(cmd, log, env=env)
    return "PYTHONPATH=gguf-py:. NO_LOCAL_GGUF=1 " + shell_line(cmd)


def quantize(bin_dir: Path, src: Path, out: Path, pure: bool, log: Path, requantize: bool = False) -> str:
    """llama-quantize [--allow-requantize] [--pure] SRC OUT Q4_0 (2 threads); the command line."""
    cmd = [bin_dir / "llama-quantize", *(["--allow-requantize"] if requantize else []),
           *(["--pure"] if pure else []), src, out, "Q4_0", "2"]
    run(cmd, log)
    return shell_line(cmd)


def smoke_generate(bin_dir: Path, gguf: Path, log: Path, diffusion: bool = False) -> None:
    """llama-simple (llama-diffusion-cli for a diffusion model: 2 steps on a 16-token canvas)
    writes a few tokens: the file loads, the synthetic tokenizer works, the mask token is set."""
    if diffusion:
        run([bin_dir / DIFFUSION_TARGET, "-m", gguf, "-t", "2", "-p", "a b c", "-c", "16", "-b", "16",
             "-ub", "16", "--diffusion-steps", "2", "--diffusion-block-length", "16", "--temp", "0",
             "--top-k", "1"], log)
        return
    run([bin_dir / "llama-simple", "-m", gguf, "-n", "4", "Hello world"], log)


def partial(path: Path) -> Path:
    """Where `path` is written: renamed to `path` only once complete and checked, so an
    interrupted run never leaves a file that a rerun would take as done."""
    return path.with_name(path.name + ".partial")


def gguf_tensor_types(path: Path) -> dict:
    """{ggml type name: tensor count} from a GGUF file's header (format v2/v3)."""
    with open(path, "rb") as fh:
        def read(fmt):
            return struct.unpack("<" + fmt, fh.read(struct.calcsize("<" + fmt)))[0]

        def read_str():
            return fh.read(read("Q"))

        scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

        def skip_value(kind):
            if kind == 8:
                read_str()
            elif kind == 9:
                elem, count = read("I"), read("Q")
                if elem in scalar:
                    fh.seek(count * struct.calcsize(scalar[elem]), 1)
                else:
                    for _ in range(count):
                        skip_value(elem)
            else:
                read(scalar[kind])

        if fh.read(4) != b"GGUF":
            raise Failure(f"{path} is not a GGUF file")
        read("I")  # version
        n_tensors, n_kv = read("Q"), read("Q")
        for _ in range(n_kv):
            read_str()
            skip_value(read("I"))
        counts = collections.Counter()
        for _ in range(n_tensors):
            read_str()
            fh.seek(8 * read("I"), 1)  # dims
            counts[GGML_TYPE_NAMES.get(read("I"), "other")] += 1
            read("Q")  # offset
    return dict(sorted(counts.items()))


def make_ggufs(name: str, ckpt: Path, work: Path, vendor: Path, bin_dir: Path, args, logs: Path) -> dict:
    """Writes the model's missing GGUFs; its entry of DIR/llamacpp_files.json.

    Each new file is checked with llama-simple and recorded as soon as it exists, so a later
    failure keeps what was done.
    """
    gguf_dir = work / "gguf"
    gguf_dir.mkdir(exist_ok=True)
    view = make_view(ckpt, work / "views" / name)
    log = logs / f"convert-{name}.log"
    diffusion = is_diffusion(ckpt)

    def finish(label: str, **record) -> None:
        path = gguf_path(gguf_dir, name, label)
        smoke_generate(bin_dir, partial(path), log, diffusion)
        partial(path).replace(path)
        update_manifest(work, name, {label: record})

    labels = quant_labels(args)
    q8 = gguf_path(gguf_dir, name, "Q8_0")
    if not q8.exists() and ("Q8_0" in labels or args.q4_from == "q8_0"):
        cmd, seconds = timed(convert, vendor, args.venv_python, view, "q8_0", partial(q8), log)
        finish("Q8_0", commands=[cmd], seconds=seconds)
    q4s = [q for q in labels if q.startswith("Q4_0") and not gguf_path(gguf_dir, name, q).exists()]
    if q4s and args.q4_from == "q8_0":
        for label in q4s:
            out = gguf_path(gguf_dir, name, label)
            cmd, seconds = timed(quantize, bin_dir, q8, partial(out), label.endswith("-pure"), log, True)
            finish(label, commands=[cmd], seconds=seconds, source="Q8_0 (requantized)")
    elif q4s:
        # bf16 holds the checkpoint's bf16 weights exactly; f16 would round them.
        bf16 = gguf_path(gguf_dir, name, "bf16")
        convert_cmd, convert_seconds = "(bf16 from an earlier run)", None
        if not bf16.exists():
            convert_cmd, convert_seconds = timed(convert, vendor, args.venv_python, view, "bf16",
                                                 partial(bf16), log)
            partial(bf16).replace(bf16)
        for label in q4s:
            out = gguf_path(gguf_dir, name, label)
            cmd, seconds = timed(quantize, bin_dir, bf16, partial(out), label.endswith("-pure"), log)
            finish(label, commands=[convert_cmd, cmd], seconds=seconds, bf16_convert_seconds=convert_seconds)
        bf16.unlink()  # only an intermediate, and as large as the checkpoint
    # Size and tensor types of every file, those of earlier runs included (header reads: cheap).
    manifest = {name: {}}
    for label in labels:
        path = gguf_path(gguf_dir, name, label)
        manifest = update_manifest(work, name, {label: {
            "file": str(path), "bytes": path.stat().st_size, "tensor_types": gguf_tensor_types(path)}})
    return manifest[name]


def update_manifest(work: Path, key: str, value) -> dict:
    """Merge `value` under `key` into DIR/llamacpp_files.json (earlier runs' records are kept)."""
    path = work / "llamacpp_files.json"
    manifest = json.loads(path.read_text()) if path.exists() else {}
    if isinstance(value, dict) and isinstance(manifest.get(key), dict):
        for sub, rec in value.items():
            if isinstance(rec, dict) and isinstance(manifest[key].get(sub), dict):
                manifest[key][sub].update(rec)
            else:
                manifest[key][sub] = rec
    else:
        manifest[key] = value
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


# --------------------------------------------------------------------------------------------
# 4. Bench


def bench_one(bin_dir: Path, gguf: Path, args, logs: Path) -> tuple[str, list]:
    """llama-bench on one file: (command line, its JSON tests: one pp and one tg)."""
    cmd = [bin_dir / "llama-bench", "-m", gguf, "-t", args.threads, "-p", args.prompt_tokens,
           "-n", args.gen_tokens, "-r", args.repetitions, "-o", "json"]
    out = run(cmd, logs / "bench.log", capture=True)
    return shell_line(cmd), json.loads(out)


def rate(results: list, prompt: bool) -> dict:
    """The pp (prompt) or tg (generation) test of one llama-bench run: tokens/s mean and stddev."""
    for test in results:
        tokens, other = (test["n_prompt"], test["n_gen"]) if prompt else (test["n_gen"], test["n_prompt"])
        if tokens > 0 and other == 0:
            return {"tokens": tokens, "tokens_per_s": round(test["avg_ts"], 3),
                    "stddev": round(test["stddev_ts"], 3)}
    raise Failure("llama-bench printed no " + ("pp" if prompt else "tg") + " test")


def bench(work: Path, bin_dir: Path, models: list[str], info: dict, args, logs: Path) -> dict:
    """The llamacpp_bench.json report: one row per model and file."""
    rows, build = [], {}
    # How quiet the machine was: the timings mean little beside a load average above 0.5.
    load = [round(x, 2) for x in os.getloadavg()]
    date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for name in models:
        for label in quant_labels(args):
            gguf = gguf_path(work / "gguf", name, label)
            if not gguf.exists():
                raise Failure(f"{gguf} missing: run without --bench first")
            cmd, results = bench_one(bin_dir, gguf, args, logs)
            first = results[0]
            build = {k: first.get(k) for k in ("build_commit", "build_number", "cpu_info", "backends")}
            rows.append({"model": name, "quant": label, "file": str(gguf), "bytes": gguf.stat().st_size,
                         "n_params": first.get("model_n_params"),
                         "pp": rate(results, prompt=True), "tg": rate(results, prompt=False),
                         "command": cmd})
    # Settings other than the (pp256, tg64, 3 repetitions) check that the bench runs;
    # they are not results to quote.
    smoke = (args.prompt_tokens, args.gen_tokens, args.repetitions) != (256, 64, 3)
    return {**info, "llama_bench_build": build, "threads": args.threads, "started": date,
            "loadavg_at_start": load, "smoke_run": smoke, "rows": rows}


def markdown(report: dict) -> str:
    """The report's rows as a markdown table (tokens/s, mean ± stddev over the repetitions)."""
    lines = ["| model | quant | file (MB) | pp{p} tok/s | tg{n} tok/s |".format(
                 p=report["rows"][0]["pp"]["tokens"], n=report["rows"][0]["tg"]["tokens"]),
             "|---|---|---:|---:|---:|"]
    for row in report["rows"]:
        lines.append(f"| {row['model']} | {row['quant']} | {row['bytes'] / 1e6:.0f} "
                     f"| {row['pp']['tokens_per_s']:.2f} ± {row['pp']['stddev']:.2f} "
                     f"| {row['tg']['tokens_per_s']:.2f} ± {row['tg']['stddev']:.2f} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# 5. Diffusion


def diffusion_prompt(tokens: int) -> str:
    """A prompt of `tokens` tokens with BOS: `tokens` - 1 single letters, "a b c ..." (one token
    each in the synthetic tokenizer)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    return " ".join(letters[i % 26] for i in range(tokens - 1))


def count_prompt_tokens(venv_python: Path, view: Path, prompt: str) -> int:
    """The prompt's tokens as llama-diffusion-cli feeds them: the view's tokenizer (the same BPE
    llama.cpp's converter wrote), after the pass-through chat template, plus the BOS it adds."""
    code = ("import sys; from tokenizers import Tokenizer; "
            "t = Tokenizer.from_file(sys.argv[1]); "
            "print(len(t.encode(sys.argv[2], add_special_tokens=False).ids))")
    out = subprocess.run([str(venv_python), "-c", code, str(view / "tokenizer.json"), prompt],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise Failure(f"counting the prompt's tokens failed: {out.stderr.strip().splitlines()[-1:]}")
    return int(out.stdout.strip()) + 1


def warm_page_cache(path: Path) -> float:
    """Reads `path` once so that a timed run does not read it from disk; the seconds it took."""
    start = time.monotonic()
    with open(path, "rb") as fh:
        while fh.read(1 << 24):
            pass
    return round(time.monotonic() - start, 1)


def parse_diffusion_log(text: str) -> dict:
    """What llama-diffusion-cli printed about a run: its parameters, its own timings, the output."""
    params = dict(re.findall(r"diffusion_params: - (\w+)\s+\S+\s+= (-?[\w.]+)", text))
    timing = re.search(r"total time: ([\d.]+)ms, time per step: ([\d.]+)ms, "
                       r"sampling time per step: ([\d.]+)ms", text)
    if timing is None:
        raise Failure("llama-diffusion-cli printed no `total time` line")
    if "diffusion generation failed" in text:
        raise Failure("llama-diffusion-cli: diffusion generation failed")
    resources = re.findall(r"^([\d.]+) s (\d+) KB$", text, re.M)
    # What follows the timings is the generated text, its lines behind llama.cpp's log prefix
    # ("0.03.886.295 I "), then /usr/bin/time's line.
    after = re.sub(r"^[\d.]+ s \d+ KB$", "", text[timing.end():], flags=re.M)
    output = [x for x in (re.sub(r"^\d+\.\d+\.\d+\.\d+ [IWED] ?", "", line).strip()
                          for line in after.splitlines()) if x]
    return {
        "params": {k: (int(v) if re.fullmatch(r"-?\d+", v) else v) for k, v in params.items()},
        "total_ms": float(timing.group(1)),
        "per_step_ms": float(timing.group(2)),
        "sampling_per_step_ms": float(timing.group(3)),
        "time_wall_s": float(resources[-1][0]) if resources else None,
        "peak_rss_kb": int(resources[-1][1]) if resources else None,
        "output_head": (output[0] if output else "")[:200],
    }


def diffusion_one(bin_dir: Path, gguf: Path, prompt: str, args, log: Path) -> tuple[str, dict, float]:
    """One llama-diffusion-cli run: (command line, parsed log, wall seconds)."""
    canvas = args.diffusion_prompt_tokens + args.diffusion_gen_tokens
    block = args.diffusion_block_length or canvas
    cmd = [bin_dir / DIFFUSION_TARGET, "-m", gguf, "-t", args.threads, "-tb", args.threads,
           "-p", prompt, "-c", canvas, "-b", canvas, "-ub", canvas,
           "--diffusion-steps", args.diffusion_steps, "--diffusion-block-length", block,
           "--temp", "0", "--top-k", "1", "--seed", "0"]
    timer = ["/usr/bin/time", "-f", "%e s %M KB"] if os.access("/usr/bin/time", os.X_OK) else []
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")  # this run's output only: it is parsed
    _, wall = timed(run, [*timer, *cmd], log)
    # The generated text is random tokens' bytes, not always valid UTF-8.
    return shell_line(cmd), parse_diffusion_log(log.read_text(errors="replace")), wall


def diffusion(work: Path, bin_dir: Path, ckpts: list[Path], info: dict, args, logs: Path) -> dict:
    """The llamacpp_diffusion.json report: one row per LLaDA model, file and run."""
    canvas = args.diffusion_prompt_tokens + args.diffusion_gen_tokens
    block = args.diffusion_block_length or canvas
    if canvas % block or args.diffusion_steps % (canvas // block):
        raise Failure(f"llama-diffusion-cli asserts canvas % block length == 0 and steps % (canvas / block) "
                      f"== 0: canvas {canvas}, block length {block}, steps {args.diffusion_steps}")
    prompt = diffusion_prompt(args.diffusion_prompt_tokens)
    load = [round(x, 2) for x in os.getloadavg()]
    date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rows = []
    for ckpt in ckpts:
        view = work / "views" / ckpt.name
        n_prompt = count_prompt_tokens(args.venv_python, view, prompt)
        if n_prompt != args.diffusion_prompt_tokens:
            raise Failure(f"the prompt is {n_prompt} tokens with BOS, not {args.diffusion_prompt_tokens}")
        for label in quant_labels(args):
            gguf = gguf_path(work / "gguf", ckpt.name, label)
            if not gguf.exists():
                raise Failure(f"{gguf} missing: run without --diffusion first")
            warm_s = warm_page_cache(gguf)
            for rep in range(args.diffusion_runs):
                log = logs / f"diffusion-{ckpt.name}-{label}-run{rep + 1}.log"
                cmd, parsed, wall = diffusion_one(bin_dir, gguf, prompt, args, log)
                max_length = parsed["params"].get("max_length")
                if max_length != canvas:
                    raise Failure(f"llama-diffusion-cli ran a canvas of {max_length}, not {canvas}; "
                                  f"see {log}")
                generated = max_length - n_prompt
                total_s = parsed["total_ms"] / 1000
                params = parsed["params"]
                rows.append({
                    "model": ckpt.name, "quant": label, "file": str(gguf), "bytes": gguf.stat().st_size,
                    "run": rep + 1, "page_cache_warm_read_s": warm_s, "command": cmd, "log": str(log),
                    "prompt_tokens": n_prompt, "tokens_generated": generated, "canvas": max_length,
                    "steps": params.get("steps"), "block_length": params.get("block_length"),
                    "forwards": params.get("steps"),
                    "total_ms": parsed["total_ms"], "per_step_ms": parsed["per_step_ms"],
                    "sampling_per_step_ms": parsed["sampling_per_step_ms"],
                    "tokens_per_s": round(generated / total_s, 3) if total_s else None,
                    "wall_s": wall, "time_wall_s": parsed["time_wall_s"],
                    "peak_rss_kb": parsed["peak_rss_kb"], "mask_token_id": params.get("mask_token_id"),
                    "algorithm": params.get("algorithm"), "schedule": params.get("schedule"),
                    "output_head": parsed["output_head"],
                })
    # The comparison is prompt 32, gen 32, 32 steps; anything else checks that it runs.
    smoke = (args.diffusion_prompt_tokens, args.diffusion_gen_tokens, args.diffusion_steps) != (32, 32, 32)
    return {**info, "threads": args.threads, "started": date, "loadavg_at_start": load, "smoke_run": smoke,
            "prompt": prompt, "prompt_tokens": args.diffusion_prompt_tokens,
            "gen_tokens": args.diffusion_gen_tokens, "canvas": canvas, "steps": args.diffusion_steps,
            "block_length": block, "rows": rows}


def diffusion_markdown(report: dict) -> str:
    """The report's rows as a markdown table."""
    lines = ["| model | quant | file (MB) | prompt + gen | steps (forwards of the canvas) | decode total (s) "
             "| ms per step | sampling ms per step | gen tok/s | wall (s) | peak RSS (MiB) |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in report["rows"]:
        rss = f"{row['peak_rss_kb'] / 1024:.0f}" if row["peak_rss_kb"] else "–"
        lines.append(f"| {row['model']} | {row['quant']} | {row['bytes'] / 1e6:.0f} "
                     f"| {row['prompt_tokens']} + {row['tokens_generated']} | {row['steps']} "
                     f"| {row['total_ms'] / 1000:.2f} | {row['per_step_ms']:.1f} "
                     f"| {row['sampling_per_step_ms']:.2f} "
                     f"| {row['tokens_per_s']:.3f} | {row['wall_s']:.1f} | {rss} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--work", type=Path, required=True, help="directory for the source, build and GGUFs")
    p.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    p.add_argument("--ckpt-root", type=Path, required=True,
                   help="directory of the checkpoints, one per model name (tools/real_size.py: WORK/ckpt)")
    p.add_argument("--venv-python", type=Path, default=ROOT / ".venv" / "bin" / "python")
    p.add_argument("--no-pure", dest="pure", action="store_false", help="skip the --pure Q4_0 files")
    p.add_argument("--quants", nargs="+", choices=QUANTS, default=QUANTS,
                   help="the GGUFs to make and run (default all)")
    p.add_argument("--q4-from", choices=["bf16", "q8_0"], default="bf16",
                   help="quantize the Q4_0 files from a bf16 conversion (default) or requantize the "
                        "Q8_0 file")
    p.add_argument("--bench", action="store_true", help="run llama-bench on every GGUF of an AR twin")
    p.add_argument("--diffusion", action="store_true",
                   help="time llama-diffusion-cli on every GGUF of a LLaDA model")
    p.add_argument("--diffusion-prompt-tokens", type=int, default=32, help="prompt tokens, BOS included")
    p.add_argument("--diffusion-gen-tokens", type=int, default=32)
    p.add_argument("--diffusion-steps", type=int, default=32)
    p.add_argument("--diffusion-block-length", type=int, default=0,
                   help="llama.cpp's block length (default 0: the canvas, one block of the gen tokens)")
    p.add_argument("--diffusion-runs", type=int, default=1)
    p.add_argument("-t", "--threads", type=int, default=2)
    p.add_argument("-p", "--prompt-tokens", type=int, default=256)
    p.add_argument("-n", "--gen-tokens", type=int, default=64)
    p.add_argument("-r", "--repetitions", type=int, default=3)
    args = p.parse_args()
    work = args.work.resolve()
    logs = work / "logs"
    try:
        if args.diffusion_prompt_tokens < 2 or args.diffusion_gen_tokens < 1 or args.diffusion_steps < 1:
            raise Failure("--diffusion-prompt-tokens must be >= 2 (BOS and a letter), "
                          "--diffusion-gen-tokens and --diffusion-steps >= 1")
        ckpts = check_inputs(args)
        work.mkdir(parents=True, exist_ok=True)
        check_disk(work, ckpts, work / "gguf", args)
        vendor = fetch_source(work, logs)
        info = source_info(vendor)
        if not info["has_diffusion_example"]:
            print(f"note: {vendor} has no examples/diffusion: llama-diffusion-cli is not built", flush=True)
        bin_dir, build_record = build(vendor, work, info, logs)
        build_record["diffusion_cli_help"] = check_diffusion_cli(bin_dir, logs)
        update_manifest(work, "source", info)
        update_manifest(work, "build", build_record)
        for ckpt in ckpts:
            for label, rec in make_ggufs(ckpt.name, ckpt, work, vendor, bin_dir, args, logs).items():
                print(f"{ckpt.name} {label}: {rec['bytes'] / 1e6:.1f} MB {rec['tensor_types']}", flush=True)
        if args.bench:
            twins = [c.name for c in ckpts if not is_diffusion(c)]
            if not twins:
                raise Failure("--bench runs llama-bench on autoregressive twins; these models are diffusion "
                              "models (use --diffusion)")
            report = bench(work, bin_dir, twins, info, args, logs)
            (work / "llamacpp_bench.json").write_text(json.dumps(report, indent=2) + "\n")
            print(markdown(report))
            print(f"wrote {work / 'llamacpp_bench.json'}")
        if args.diffusion:
            dlms = [c for c in ckpts if is_diffusion(c)]
            if not dlms:
                raise Failure("--diffusion needs a LLaDA checkpoint (model_type "
                              f"{', '.join(DIFFUSION_ARCHITECTURE)})")
            if not (bin_dir / DIFFUSION_TARGET).is_file():
                raise Failure(f"{bin_dir / DIFFUSION_TARGET} was not built "
                              "(the tree has no examples/diffusion)")
            report = diffusion(work, bin_dir, dlms, info, args, logs)
            (work / "llamacpp_diffusion.json").write_text(json.dumps(report, indent=2) + "\n")
            print(diffusion_markdown(report))
            print(f"wrote {work / 'llamacpp_diffusion.json'}")
    except Failure as err:
        print(f"llamacpp_peer: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
