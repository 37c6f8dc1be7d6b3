"""Errors of the evaluation: arrays a metric cannot use."""

from __future__ import annotations

from page4d_viewer.errors import Page4DError


class MetricsError(Page4DError):
    """Arrays handed to a metric are unusable (shape, NaN, too few frames)."""


class DegenerateTrajectoryError(MetricsError):
    """The ground-truth camera does not move, so Sim(3) alignment (and ATE/RPE) is undefined."""
