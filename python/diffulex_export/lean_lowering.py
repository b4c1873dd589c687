"""Keep an export's memory near one copy of the model (python/README.md, "Real-size checkpoints").

ExecuTorch 1.5.1's stock lowering holds, at its peak, the model's weights three to four times:
the module's own tensors, a `copy.deepcopy` of every partition taken before any is processed
(`BackendDetails.copy_exported_program_for_preprocess`), the XNNPACK payloads built from them, and
then the serialized program joined into one `bytes`. For SDAR-1.7B in fp32 that passed 20 GiB.

`lean_xnnpack_lowering` changes two things for the time of one lowering, and nothing about the
bytes that come out (tests/test_lean_lowering.py checks the program is byte for byte the same):
- the per-partition copy shares the weight tensors instead of copying them (XNNPACK's
  preprocess reads them and writes converted copies; it never changes them in place);
- each partition's weight payloads are written to files in a spill directory as soon as the
  partition is processed, and the program refers to them as ExecuTorch's own `FileBackedData`,
  which its serializer streams into the `.pte`.

`release_weights` then frees the module's tensors once the program is emitted, and
`segments_digest` hashes a serialized program without joining it into one buffer.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import itertools
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import torch

# Payloads smaller than this stay in memory: norms and biases, thousands of tiny files otherwise.
SPILL_MIN_BYTES = 1 << 20
_CHUNK = 8 << 20


@dataclasses.dataclass
class Spilled:
    """What `lean_xnnpack_lowering` processed and wrote to its spill directory."""

    #: Partitions XNNPACK processed.
    partitions: int = 0
    #: Weight payloads written to files.
    payloads: int = 0
    #: Their total size in bytes.
    bytes: int = 0


@contextlib.contextmanager
def lean_xnnpack_lowering(
    spill_dir: Optional[Path] = None, lowered: Optional[Callable[[int], None]] = None
) -> Iterator[Spilled]:
    """For the duration of the `with` block, XNNPACK lowering shares weights with the model
    instead of deep-copying them and, given a `spill_dir` (which the caller creates, and removes
    after the program is written), writes each partition's weight payloads (≥ 1 MiB) there.
    `lowered(n)` is called after the n-th partition is processed (progress of a lowering that
    takes minutes at real size).

    Example:
        >>> with tempfile.TemporaryDirectory() as d, lean_xnnpack_lowering(Path(d)):  # doctest: +SKIP
        ...     program = to_program(model)
        ...     write_atomic(serialize_with_digest(program), "model.pte")
    """
    from executorch.backends.xnnpack.xnnpack_preprocess import XnnpackBackend
    from executorch.exir._serialize._cord import FileBackedData

    stock_copy = XnnpackBackend.__dict__.get("copy_exported_program_for_preprocess")
    stock_preprocess = XnnpackBackend.__dict__["preprocess"]
    spilled = Spilled()

    def copy_sharing_weights(cls, edge_program, compile_specs):
        # Seeding deepcopy's memo with the tensors makes every copy refer to the originals:
        # the graph and its metadata are copied, the weight data is not.
        memo = {}
        for tensor in itertools.chain(edge_program.state_dict.values(), edge_program.constants.values()):
            if isinstance(tensor, torch.Tensor):
                memo[id(tensor)] = tensor
        return copy.deepcopy(edge_program, memo)

    def preprocess_and_spill(edge_program, compile_specs):
        result = stock_preprocess.__func__(edge_program, compile_specs)
        spilled.partitions += 1
        if lowered is not None:
            lowered(spilled.partitions)
        store = result.data_store_output
        if store is not None and spill_dir is not None:
            for index, data in enumerate(store.buffers):
                if isinstance(data, bytes) and len(data) >= SPILL_MIN_BYTES:
                    path = spill_dir / f"payload-{spilled.payloads}.bin"
                    path.write_bytes(data)
                    spilled.payloads += 1
                    spilled.bytes += len(data)
                    store.buffers[index] = FileBackedData(str(path), sha256=hashlib.sha256(data).digest())
        return result

    XnnpackBackend.copy_exported_program_for_preprocess = classmethod(copy_sharing_weights)
    XnnpackBackend.preprocess = staticmethod(preprocess_and_spill)
    try:
        yield spilled
    finally:
        XnnpackBackend.preprocess = stock_preprocess
        if stock_copy is None:
            del XnnpackBackend.copy_exported_program_for_preprocess
        else:
            XnnpackBackend.copy_exported_program_for_preprocess = stock_copy


def release_weights(model: torch.nn.Module) -> int:
    """Free the storage of the module's plain parameters and buffers; returns the bytes freed.

    Only for after the program is emitted (the emitter copies the constants it keeps, and the
    delegates' payloads are their own bytes): the module's tensors are empty afterwards, and the
    model must not be run or exported again. Tensor subclasses (torchao's quantized weights) are
    left alone; they are a fraction of the fp32 data.
    """
    freed = 0
    seen = set()
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if type(tensor) not in (torch.Tensor, torch.nn.Parameter):
            continue
        storage = tensor.untyped_storage()
        if storage.data_ptr() in seen or storage.nbytes() == 0:
            continue
        seen.add(storage.data_ptr())
        freed += storage.nbytes()
        storage.resize_(0)
    return freed


def cord_chunks(cord) -> Iterator[memoryview]:
    """The bytes of an ExecuTorch `Cord` in order, as views of at most 8 MiB, reading
    file-backed parts from their files."""
    from executorch.exir._serialize._cord import FileBackedData

    for item in cord._buffers:
        if isinstance(item, FileBackedData):
            with open(item._path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    yield memoryview(chunk)
        else:
            view = memoryview(item)
            for start in range(0, len(view), _CHUNK):
                yield view[start:start + _CHUNK]


def segments_digest(cord) -> bytes:
    """`export.weights_digest` of a serialized program held as a `Cord`, without joining it."""
    return digest_segments(cord_chunks(cord))


def digest_segments(chunks: Iterable) -> bytes:
    """SHA-256 of a program's segment data, given its bytes as consecutive chunks: the extended
    header (bytes 8..32) gives the segment base offset, everything from there to the end is
    hashed. Chunks before the header is complete are held until it is."""
    from .errors import ExportError

    digest = hashlib.sha256()
    held, head, base, position = [], b"", None, 0
    for chunk in chunks:
        if base is None:
            held.append(chunk)
            head += bytes(chunk[: 32 - len(head)])
            if len(head) < 32:
                continue
            if head[8:12] != b"eh00":
                raise ExportError("the program has no extended header, so no segments to digest")
            base = int.from_bytes(head[24:32], "little")
            pending, held = held, []
        else:
            pending = [chunk]
        for part in pending:
            if position + len(part) > base:
                digest.update(part[max(0, base - position):])
            position += len(part)
    if base is None:
        raise ExportError("the program has no extended header, so no segments to digest")
    if base > position:
        raise ExportError(f"segment base offset {base} is past the end of the {position}-byte program")
    return digest.digest()
