"""The panel's split view: two scenes side by side, masked | unmasked, each with its label.

The session holds the two scenes and keeps them locked together (`server/split_view.py`);
this module writes what the page shows of them: the two iframes (the right one is the
session's scene address plus `right/`, served by the proxy with the same checks), and one
label above each, with the ATE of that side's cameras against the ground truth when the
result has it (the camera head's, and the geometric poses' when the result has them), scored
as the Pose comparison tab scores them (`evaluation.trajectory.trajectory_errors`).
"""

from __future__ import annotations

import html

from page4d_viewer.evaluation.errors import MetricsError
from page4d_viewer.evaluation.trajectory import trajectory_errors
from page4d_viewer.result.cameras import (
    GEOMETRY_MASKED,
    GEOMETRY_UNMASKED,
    GROUND_TRUTH,
    MASKED,
    UNMASKED,
)
from page4d_viewer.result.reconstruction import Reconstruction

RIGHT_PATH = "right/"
"""The right scene's address, relative to the session's scene address (the proxy's route)."""

SPLIT_SIDES: tuple[tuple[str, str, str], tuple[str, str, str]] = (
    ("masked", MASKED, GEOMETRY_MASKED),
    ("unmasked", UNMASKED, GEOMETRY_UNMASKED),
)
"""(label, camera head variant, geometric variant) of the left and the right side."""

SPLIT_CSS = """
#scene-frame.split { display: flex; flex-wrap: wrap; gap: 8px; }
#scene-frame.split iframe { width: calc(50% - 4px); }
#scene-frame.split .scene-links { width: 100%; display: flex; gap: 16px; }
#split-labels { display: flex; gap: 8px; }
#split-labels .split-label { flex: 1; font-weight: 600; }
"""
"""The split view's layout, added to the panel's CSS."""


def ate_text(recon: Reconstruction, variant: str) -> str | None:
    """The ATE of a variant's cameras against the ground truth, as the Pose comparison tab
    prints it (4 decimals, after the metric's Sim(3) alignment); None when the result lacks
    either, or the metric cannot score them (e.g. a camera that never moves)."""
    if variant not in recon.cameras or GROUND_TRUTH not in recon.cameras:
        return None
    try:
        errors = trajectory_errors(
            recon.cameras[variant].extrinsics, recon.cameras[GROUND_TRUTH].extrinsics
        )
    except MetricsError:
        return None
    return f"{errors.ate:.4f}"


def side_labels(recon: Reconstruction | None) -> tuple[str, str]:
    """The left and right labels, e.g. "masked · ATE 0.0123 · geometric ATE 0.0456"."""
    labels = []
    for name, head, geometric in SPLIT_SIDES:
        parts = [name]
        if recon is not None:
            for variant, what in ((head, "ATE"), (geometric, "geometric ATE")):
                ate = ate_text(recon, variant)
                if ate is not None:
                    parts.append(f"{what} {ate}")
        labels.append(" · ".join(parts))
    return labels[0], labels[1]


def split_labels_html(recon: Reconstruction | None) -> str:
    """The two labels above the split view's scenes (#split-label-left, #split-label-right)."""
    left, right = side_labels(recon)
    return (
        '<div id="split-labels">'
        f'<div id="split-label-left" class="split-label">{html.escape(left)}</div>'
        f'<div id="split-label-right" class="split-label">{html.escape(right)}</div>'
        "</div>"
    )


def split_scene_html(url: str) -> str:
    """The session's two scenes side by side (#scene-left, #scene-right), given the address
    of its own scene (relative to the page, so both go through the panel's port)."""
    right = f"{url}{RIGHT_PATH}"
    return (
        f'<div id="scene-frame" class="split" data-src="{url}">'
        f'<iframe id="scene-left" src="{url}" title="3-D scene, masked (Viser)" '
        'allow="fullscreen"></iframe>'
        f'<iframe id="scene-right" src="{right}" title="3-D scene, unmasked (Viser)" '
        'allow="fullscreen"></iframe>'
        '<div class="scene-links">'
        f'<a href="{url}" target="_blank" rel="noopener">Open the masked scene in its own tab</a>'
        f'<a href="{right}" target="_blank" rel="noopener">Open the unmasked scene in its own '
        "tab</a></div></div>"
    )
