#!/usr/bin/env python3
"""Size of a llama.cpp GGUF of a checkpoint's weights at Q8_0 and Q4_0, from the formats'
block layouts, to compare `diffulex-export --quantize int8 / 8da4w` files against (issue 16).

    .venv/bin/python tools/gguf_size.py CKPT_DIR [CKPT_DIR ...]

Every 2-D weight is counted in the type (Q8_0: blocks of 32 weights in 34 bytes, a float16
scale and 32 int8; Q4_0: 18 bytes, a float16 scale and 32 nibbles), as `llama-quantize --pure`
writes it; 1-D tensors (norms, biases) as float32. Without `--pure`, llama-quantize keeps the
output layer at a higher type (Q6_K for Q4_0), so a real Q4_0 file is a little larger than
this. Metadata and the tokenizer (a few MB for a 150k vocabulary) are not counted.
"""

import json
import struct
import sys
from pathlib import Path

BLOCK = 32
BYTES_PER_BLOCK = {"Q8_0": 34, "Q4_0": 18}


def shapes(ckpt: Path):
    """(name, shape) of every tensor in the checkpoint's safetensors files (headers only)."""
    for path in sorted(ckpt.glob("*.safetensors")):
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        for name, info in header.items():
            if name != "__metadata__":
                yield name, info["shape"]


def gguf_bytes(ckpt: Path, kind: str) -> int:
    total = 0
    for _name, shape in shapes(ckpt):
        count = 1
        for d in shape:
            count *= d
        if len(shape) == 2 and shape[-1] % BLOCK == 0:
            total += count // BLOCK * BYTES_PER_BLOCK[kind]
        else:
            total += count * 4
    return total


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    for arg in sys.argv[1:]:
        ckpt = Path(arg)
        sizes = {kind: gguf_bytes(ckpt, kind) for kind in BYTES_PER_BLOCK}
        print(json.dumps({"checkpoint": str(ckpt), **{k: v for k, v in sizes.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
