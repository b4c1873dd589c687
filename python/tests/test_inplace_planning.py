"""The in-place KV cache write (reinplace pass + inplace_planning.py) against eager PyTorch.

The cache is a mutable buffer written at a position tensor and read back through a view,
the shape of the exporter's attention (models/layers.py). Without delegates every view runs
on the portable kernels, which is where ExecuTorch's planner put views of the in-place
result in a slot of their own.
"""

from __future__ import annotations

import torch
from torch import nn

from diffulex_export.export import backend_config


class CachedReader(nn.Module):
    """Write `x` into a [1, 2, S, 4] buffer at `pos + arange(T)`, then read the buffer via bmm."""

    def __init__(self, slots: int = 16) -> None:
        super().__init__()
        self.register_buffer("cache", torch.zeros(1, 2, slots, 4))

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        positions = pos + torch.arange(x.shape[2])
        self.cache.index_copy_(2, positions, x)
        flat = self.cache.view(2, -1, 4)  # a view of the in-place result, outside any delegate
        return torch.bmm(flat, flat.transpose(1, 2)).sum(-1) + 1.0


def _program(config=None):
    """CachedReader exported as the exporter exports (its backend config), no delegate."""
    from executorch.exir import to_edge

    example = (torch.ones(1, 2, 3, 4), torch.tensor([0]))
    exported = torch.export.export(CachedReader(), example, strict=False)
    return to_edge(exported).to_executorch(config or backend_config())


def test_views_of_the_in_place_cache_write_read_the_buffer(tmp_path):
    from executorch.runtime import Runtime

    manager = _program()
    path = tmp_path / "cache.pte"
    path.write_bytes(manager.buffer)
    # The write is in place: `index_put_`, and no `copy_` of the whole buffer back.
    names = {op.name for plan in manager.executorch_program.execution_plan for op in plan.operators}
    assert "aten::index_put_" in names, names
    assert "aten::copy_" not in names, names

    method = Runtime.get().load_program(path).load_method("forward")
    eager = CachedReader()
    generator = torch.Generator().manual_seed(0)
    # Three calls: the later ones must see the rows the earlier ones wrote.
    for pos in (0, 3, 6):
        x = torch.randn(1, 2, 3, 4, generator=generator)
        expected = eager(x, torch.tensor([pos]))
        got = method.execute([x, torch.tensor([pos])])[0]
        assert torch.isfinite(got).all(), got
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_the_planner_rebases_the_views_it_is_given():
    """The fix acted: the program above has views of the in-place result, and each was rebased."""
    config = backend_config()
    _program(config)
    assert config.memory_planning_pass.rebased_views > 0

