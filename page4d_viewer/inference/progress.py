"""How far the network's forward pass is, as one fraction (the predictor's and tracker's bars)."""

from __future__ import annotations

from collections.abc import Mapping

# Share of the network's time per stage it reports (rough CPU/GPU average; only the bar
# uses it). Stages interleave in forward_pair, so the bar sums them instead of ordering them.
MODEL_STAGE_WEIGHTS = {"encoding": 0.25, "aggregating": 0.6, "heads": 0.15}


def network_fraction(finished: Mapping[str, float]) -> float:
    """The forward pass's done fraction in [0, 1] from each stage's own done fraction."""
    return sum(MODEL_STAGE_WEIGHTS.get(name, 0.0) * part for name, part in finished.items())
