"""How frame files are ordered: natural sort, so ``frame2`` comes before ``frame10``."""

from __future__ import annotations

import re


def natural_key(name: str) -> tuple[list[str | int], str]:
    """Sort key that orders 'frame2' before 'frame10' (case-insensitive, digits by value)."""
    parts = re.split(r"([0-9]+)", name)
    key: list[str | int] = [int(part) if part.isdigit() else part.lower() for part in parts]
    # Strings sit at even positions and ints at odd ones, so lists always compare cleanly.
    return key, name
