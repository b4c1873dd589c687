#!/usr/bin/env python3
"""Export the small `.pte` fixtures used by the Rust tests of `diffulex_edge::pte`.

Run with the project venv (torch 2.14.1, executorch 1.5.1):

    .venv/bin/python tools/make_pte_fixtures.py [--out tests/fixtures/basic] [--check]

`--check` exports into a temporary directory and fails unless every file is byte-identical
to the committed one (the export is deterministic with these pinned versions).

For every fixture `NAME.pte` it writes `NAME.json` next to it: an ordered list of calls
(method, inputs, expected outputs computed by PyTorch eager on the same module) that the
Rust tests replay on ONE loaded module, so stateful programs are checked call by call.
Everything is seeded, so re-running produces the same files.

JSON layout (all tensors flattened row-major):

    {"file": "mlp.pte", "backends": {"forward": []},
     "calls": [{"method": "forward",
                "inputs":  [{"dtype": "f32", "shape": [2, 8], "data": [...]}],
                "outputs": [{"dtype": "f32", "shape": [2, 4], "data": [...]}]}]}

Scalars returned by constant methods appear as outputs with `"shape": []`.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn
from torch.export import Dim, export

from executorch.exir import EdgeCompileConfig, ExecutorchBackendConfig, to_edge, to_edge_transform_and_lower
from executorch.exir.passes.init_mutable_pass import InitializedMutableBufferPass
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

torch.set_grad_enabled(False)

DTYPE_NAMES = {
    torch.float32: "f32",
    torch.float16: "f16",
    torch.bfloat16: "bf16",
    torch.int64: "i64",
    torch.int32: "i32",
    torch.bool: "bool",
    torch.float64: "f64",
}


def tensor_json(t) -> dict:
    """Serialise a tensor (or a Python scalar from a constant method) for the JSON file."""
    if isinstance(t, bool):
        return {"dtype": "bool", "shape": [], "data": [t]}
    if isinstance(t, int):
        return {"dtype": "i64", "shape": [], "data": [t]}
    if isinstance(t, float):
        return {"dtype": "f64", "shape": [], "data": [t]}
    t = t.detach().contiguous()
    dtype = DTYPE_NAMES[t.dtype]
    if t.dtype in (torch.float16, torch.bfloat16):
        # Every half / bfloat16 value is exactly representable as float32, so the
        # JSON keeps full precision.
        data = t.float().reshape(-1).tolist()
    else:
        data = t.reshape(-1).tolist()
    return {"dtype": dtype, "shape": list(t.shape), "data": data}


def outputs_list(out) -> list:
    if isinstance(out, (tuple, list)):
        return [tensor_json(o) for o in out]
    return [tensor_json(out)]


def call(module, method: str, *inputs) -> dict:
    out = getattr(module, method)(*inputs)
    return {
        "method": method,
        "inputs": [tensor_json(i) for i in inputs],
        "outputs": outputs_list(out),
    }


def write(out_dir: Path, name: str, program_buffer: bytes, spec: dict) -> None:
    (out_dir / f"{name}.pte").write_bytes(program_buffer)
    spec = {"file": f"{name}.pte", **spec}
    (out_dir / f"{name}.json").write_text(json.dumps(spec, indent=1, sort_keys=True) + "\n")
    print(f"wrote {name}.pte ({len(program_buffer)} bytes)")


# ---------------------------------------------------------------------------
# Models


class Mlp(nn.Module):
    """A two-layer MLP; used portable (mlp.pte) and XNNPACK-delegated (xnnpack.pte)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class TinyLm(nn.Module):
    """tokens int64 [1, T] -> float32 logits [1, T, 12] with T dynamic in [1, 16]."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(12, 6)
        self.head = nn.Linear(6, 12)

    def forward(self, tokens):
        h = self.emb(tokens)
        # A reduction over the dynamic dimension makes the outputs depend on T.
        h = h + h.mean(dim=1, keepdim=True)
        return self.head(h)


class Accumulator(nn.Module):
    """Mutable buffers: `total` accumulates inputs, `calls` counts calls."""

    def __init__(self) -> None:
        super().__init__()
        # A non-zero start checks that the initial state is serialised and used.
        self.register_buffer("total", torch.arange(4, dtype=torch.float32))
        self.register_buffer("calls", torch.zeros(1, dtype=torch.int64))

    def forward(self, x):
        self.total.add_(x)
        self.calls.add_(1)
        return self.total.clone(), self.calls.clone()


class Half(nn.Module):
    def forward(self, x):
        return x * 2.0 + 1.0


class Int32(nn.Module):
    def forward(self, x):
        return x * 3 + 1


class Boolean(nn.Module):
    def forward(self, a, b):
        return torch.logical_and(a, torch.logical_not(b))


class Mixed(nn.Module):
    """One f32 input, outputs in several dtypes (bool, i32, i64, f16, bf16)."""

    def forward(self, x):
        return x > 0, x.to(torch.int32), x.to(torch.int64), x.to(torch.float16), x.to(torch.bfloat16)


class QuantMlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


# ---------------------------------------------------------------------------
# Fixtures


def mlp(out_dir: Path) -> None:
    torch.manual_seed(1)
    model = Mlp().eval()
    x = torch.randn(2, 8)
    ep = export(model, (x,))
    constants = {
        "get_answer": 42,
        "get_eos_ids": [3, 7],
        "use_kv_cache": False,
        "get_scale": 0.5,
    }
    prog = to_edge(ep, constant_methods=constants).to_executorch()
    calls = [call(model, "forward", x), call(model, "forward", torch.randn(2, 8))]
    for name, value in constants.items():
        outs = value if isinstance(value, list) else [value]
        calls.append({"method": name, "inputs": [], "outputs": [tensor_json(v) for v in outs]})
    write(out_dir, "mlp", prog.buffer, {"backends": {"forward": []}, "calls": calls})


def xnnpack(out_dir: Path) -> None:
    torch.manual_seed(2)
    model = Mlp().eval()
    x = torch.randn(2, 8)
    ep = export(model, (x,))
    prog = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).to_executorch()
    calls = [call(model, "forward", x), call(model, "forward", torch.randn(2, 8))]
    write(out_dir, "xnnpack", prog.buffer, {"backends": {"forward": ["XnnpackBackend"]}, "calls": calls})


def xnnpack_inline(out_dir: Path) -> None:
    """xnnpack.pte's model with the XNNPACK payload stored inline in the program flatbuffer
    (`extract_delegate_segments=False`) instead of in a segment."""
    torch.manual_seed(2)
    model = Mlp().eval()
    x = torch.randn(2, 8)
    ep = export(model, (x,))
    config = ExecutorchBackendConfig(extract_delegate_segments=False)
    prog = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).to_executorch(config)
    calls = [call(model, "forward", x), call(model, "forward", torch.randn(2, 8))]
    write(out_dir, "xnnpack_inline", prog.buffer, {"backends": {"forward": ["XnnpackBackend"]}, "calls": calls})


def dynamic(out_dir: Path) -> None:
    torch.manual_seed(3)
    model = TinyLm().eval()
    tokens = torch.randint(0, 12, (1, 5))
    t = Dim("T", min=1, max=16)
    ep = export(model, (tokens,), dynamic_shapes=({1: t},))
    prog = to_edge_transform_and_lower(ep, constant_methods={"get_max_seq_len": 16}).to_executorch()
    calls = [call(model, "forward", torch.randint(0, 12, (1, n))) for n in (1, 3, 5, 16, 2)]
    write(out_dir, "dynamic", prog.buffer, {"backends": {"forward": []}, "calls": calls})


def stateful(out_dir: Path) -> None:
    torch.manual_seed(4)
    model = Accumulator().eval()
    x = torch.randn(4)
    ep = export(model, (x,))
    # Without this pass ExecuTorch serialises only the shape of a mutated buffer.
    config = ExecutorchBackendConfig(passes=[InitializedMutableBufferPass(["total", "calls"])])
    prog = to_edge(ep).to_executorch(config)
    inputs = [torch.randn(4) for _ in range(3)]
    calls = [call(model, "forward", i) for i in inputs]  # eager model mutates its buffers too
    write(out_dir, "stateful", prog.buffer, {"backends": {"forward": []}, "calls": calls})


def dtypes(out_dir: Path) -> None:
    torch.manual_seed(5)
    models = {"half": Half(), "bfloat16": Half(), "int32": Int32(), "boolean": Boolean(), "mixed": Mixed()}
    examples = {
        "half": (torch.randn(2, 3).to(torch.float16),),
        "bfloat16": (torch.randn(2, 3).to(torch.bfloat16),),
        "int32": (torch.randint(-50, 50, (5,), dtype=torch.int32),),
        "boolean": (torch.rand(6) > 0.5, torch.rand(6) > 0.5),
        "mixed": (torch.randn(4) * 4,),
    }
    eps = {name: export(m, examples[name]) for name, m in models.items()}
    prog = to_edge(eps, compile_config=EdgeCompileConfig(_check_ir_validity=False)).to_executorch()

    class Namespace:
        pass

    eager = Namespace()
    for name, m in models.items():
        setattr(eager, name, m)
    calls = [call(eager, name, *examples[name]) for name in models]
    write(out_dir, "dtypes", prog.buffer, {"backends": {n: [] for n in models}, "calls": calls})


def quantized(out_dir: Path) -> None:
    """int8 PT2E quantization left as `quantized_decomposed` ops for the quantized kernels."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    import executorch.kernels.quantized  # noqa: F401  registers the out variants of the q/dq ops

    torch.manual_seed(6)
    model = QuantMlp().eval()
    x = torch.randn(2, 8)
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config())
    captured = export(model, (x,)).module()
    prepared = prepare_pt2e(captured, quantizer)
    for _ in range(8):
        prepared(torch.randn(2, 8))
    converted = convert_pt2e(prepared)
    ep = export(converted, (x,))
    prog = to_edge(ep).to_executorch()

    class Eager:
        forward = converted

    calls = [call(Eager, "forward", x), call(Eager, "forward", torch.randn(2, 8))]
    write(out_dir, "quantized", prog.buffer, {"backends": {"forward": []}, "calls": calls})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "basic"
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--check", action="store_true", help="verify the committed files are reproduced")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    fixtures = (mlp, xnnpack, xnnpack_inline, dynamic, stateful, dtypes, quantized)
    if not args.check:
        args.out.mkdir(parents=True, exist_ok=True)
        for fixture in fixtures:
            fixture(args.out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for fixture in fixtures:
            fixture(Path(tmp))
        names = sorted(p.name for p in Path(tmp).iterdir())
        _, mismatch, errors = filecmp.cmpfiles(args.out, tmp, names, shallow=False)
        if mismatch or errors:
            print(f"differs from {args.out}: {mismatch + errors}", file=sys.stderr)
            sys.exit(1)
        print(f"all {len(names)} files reproduced byte for byte")


if __name__ == "__main__":
    main()
