"""Memory planning that keeps views of an in-place result on the mutated buffer.

With `run_reinplace_pass`, ExecuTorch rewrites the KV cache's `index_put` into `index_put_`,
which writes the new K/V rows straight into the cache buffer instead of copying the whole
buffer twice per layer and forward (an out-of-place `index_put`, then the `copy_` back into
the buffer). That copy is about a third of a real-size decode forward (BENCHMARKS.md).

ExecuTorch 1.x plans that program wrongly when a *view* of the in-place result runs outside a
delegate, which is what the attention's `matmul` decomposes into (a `view` to 3-D, then
`bmm`):

- `ReplaceViewCopyWithViewPass` gives each view a `_ViewSpec` whose storage fields come from
  its base: at that point the base is the `index_put_` node's own, fresh TensorSpec.
- The memory planner later aliases the in-place node's spec onto the buffer's
  (`_alias_inplace_result_specs`), but it swaps the node's spec object, not the one the views
  hold. The views keep the orphaned spec, which is planned as a short-lived tensor of its own:
  a slot the kernel never writes and other tensors reuse.

So the view reads garbage. In a program without delegates (`--backend portable`) the
attention then computes NaN from the first call. In XNNPACK programs the views are inside
the delegate, which is handed the buffer itself, so they happen to be right; a partition
change that left one view outside would not be.

`InplaceViewPlanning` rebases those views onto the buffer's spec before planning, which is
what the aliasing intends; the orphaned slot then disappears from the plan, too.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import torch
from executorch.exir.memory_planning import _is_inplace_node
from executorch.exir.operator.convert import output_to_aliased_input_map, unwrap_op_overload
from executorch.exir.passes import MemoryPlanningPass
from executorch.exir.passes.replace_view_copy_with_view_pass import _ViewSpec
from executorch.exir.tensor import TensorSpec


def _inplace_aliases(graph: torch.fx.Graph) -> Dict[int, TensorSpec]:
    """Map id(spec of an in-place node's result) -> spec of the input it mutates."""
    aliases: Dict[int, TensorSpec] = {}
    for node in graph.nodes:
        if not _is_inplace_node(node):
            continue
        result = node.meta.get("spec")
        if not isinstance(result, TensorSpec):
            continue  # multi-result in-place ops: none in these programs
        schema = unwrap_op_overload(node.target)._schema
        for out_index, in_index in output_to_aliased_input_map(schema).items():
            if out_index != 0 or in_index >= len(node.args):
                continue
            mutated = node.args[in_index]
            target = mutated.meta.get("spec") if isinstance(mutated, torch.fx.Node) else None
            if isinstance(target, TensorSpec) and target is not result:
                aliases[id(result)] = target
    return aliases


def rebase_inplace_views(graph_module: torch.fx.GraphModule) -> int:
    """Point every view of an in-place result at the mutated input's storage.

    Returns how many views were rebased (the tests use it to see the pass act).
    """
    rebased = 0
    for module in graph_module.modules():
        if not isinstance(module, torch.fx.GraphModule):
            continue
        aliases = _inplace_aliases(module.graph)
        if not aliases:
            continue
        for node in module.graph.nodes:
            spec = node.meta.get("spec")
            if not isinstance(spec, _ViewSpec):
                continue
            # `_base` is read around _ViewSpec's attribute forwarding on purpose: through it,
            # `spec._base` would resolve on the base.
            base = object.__getattribute__(spec, "_base")
            target = aliases.get(id(base))
            if target is not None:
                object.__setattr__(spec, "_base", target)
                rebased += 1
    return rebased


class InplaceViewPlanning(MemoryPlanningPass):
    """ExecuTorch's memory planning, after `rebase_inplace_views`.

    Takes `MemoryPlanningPass`'s arguments. `rebased_views` counts the views rebased over
    every method planned so far.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rebased_views = 0

    def run(self, graph_module: torch.fx.GraphModule, graph_signature: Optional[object] = None):
        """Rebase the views, then plan as `MemoryPlanningPass.run` does."""
        self.rebased_views += rebase_inplace_views(graph_module)
        return super().run(graph_module, graph_signature)
