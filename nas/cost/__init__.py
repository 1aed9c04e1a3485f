"""Pricing a space: per-slot cost tables, predict_cost and the cost range of a space (nas.cost.table).

Counting one model, module or block is the model's own business (nas.model.count); its names stay importable
from here for the callers that price and count together (the gate, the benches).
"""

from nas.cost.table import SlotCost, SpaceCost, cost_table, predict_cost, slot_costs, space_costs
from nas.model.count import BlockCost, Cost, LayerCost, at_multiples, block_costs, count, module_flops, thop_gflops

__all__ = ["BlockCost", "Cost", "LayerCost", "SlotCost", "SpaceCost", "at_multiples", "block_costs", "cost_table",
           "count", "module_flops", "predict_cost", "slot_costs", "space_costs", "thop_gflops"]
