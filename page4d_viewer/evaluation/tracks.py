"""Point tracks against their ground truth: end-point errors and visibility accuracy.

The ground-truth tracks of a synthetic scene are built where the tracks are made
(``inference/tracking.py``, with ``sources/synthetic/input_tracks.py``).
"""

from __future__ import annotations

import numpy as np

from page4d_viewer.result.reconstruction import Reconstruction
from page4d_viewer.result.tracks import VISIBLE_THRESHOLD

WITHIN_PIXELS = 2.0
"""The "within" share counts end points at most this many model-input pixels off."""


def track_errors(recon: Reconstruction) -> dict[str, float] | None:
    """The predicted tracks against ``gt_tracks``; None without them.

    End-point errors count the points the truth sees in frames other than the track's query
    frame; "no motion" is the error of guessing that every point stays at its query pixel.

    Returns:
        ``median_px``, ``mean_px``, ``within_2px`` (share), the same three for no motion
        (``still_median_px``, ...), ``visibility_accuracy`` (share of all non-query points
        where "visibility >= 0.5" agrees with the truth), ``points`` (how many were scored).
    """
    predicted, truth = recon.tracks, recon.gt_tracks
    if predicted is None or truth is None:
        return None
    frames = np.arange(predicted.num_frames)[:, None]
    scored = frames != predicted.query_frame[None]  # the query frame is given, not predicted
    seen = scored & truth.visible()
    if not seen.any():
        return None
    error = np.linalg.norm(predicted.xy - truth.xy, axis=-1)[seen]
    still = np.linalg.norm(predicted.query_xy[None] - truth.xy, axis=-1)[seen]
    agree = (predicted.visibility >= VISIBLE_THRESHOLD) == truth.visible()
    return {
        "median_px": float(np.median(error)),
        "mean_px": float(error.mean()),
        "within_2px": float((error <= WITHIN_PIXELS).mean()),
        "still_median_px": float(np.median(still)),
        "still_mean_px": float(still.mean()),
        "still_within_2px": float((still <= WITHIN_PIXELS).mean()),
        "visibility_accuracy": float(agree[scored].mean()),
        "points": float(seen.sum()),
    }
