"""The text the panel shows about results: the status line, error lines, recent-run labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from page4d_viewer.viewer import plots

if TYPE_CHECKING:
    from page4d_viewer.viewer.controller import Shown
    from page4d_viewer.viewer.runs import RunRecord


def status_markdown(shown: Shown | None) -> str:
    """The status line for a shown result: frames, resolution, timings, checkpoint, variant."""
    if shown is None:
        return "No result yet: pick a clip and press **Run**, or open a saved result."
    recon = shown.recon
    metadata = recon.metadata
    parts = [f"**{shown.title}**"]  # the title names the frames and their size
    if metadata.checkpoint_name:
        variant = f" ({metadata.model_variant})" if metadata.model_variant else ""
        parts.append(f"checkpoint `{metadata.checkpoint_name}`{variant}")
    if recon.has_mask:
        parts.append(f"mask strength {metadata.mask_strength:g}")
    else:
        parts.append("no dynamic mask")
    if metadata.device:
        parts.append(f"{metadata.device} {metadata.precision}".strip())
    # Sub-stages ("model.heads") are kept in the file; the status line shows the main ones.
    stages = {stage: seconds for stage, seconds in metadata.timings.items() if "." not in stage}
    if stages:
        parts.append(", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in stages.items()))
    parts.append(f"cameras: {' / '.join(plots.VARIANT_LABELS[v] for v in recon.variants)}")
    return " · ".join(parts)


def error_markdown(message: str, shown: Shown | None, label: str = "Error") -> str:
    """The status line after a failure: the one-line reason, and what is still on screen."""
    reason = " ".join(message.split()).rstrip(".")
    kept = " The previous result is still shown." if shown is not None else ""
    return f"**{label}:** {reason}.{kept}"


def run_choices(records: Sequence[RunRecord]) -> list[tuple[str, str]]:
    """(label, run id) pairs for the recent-runs drop-down."""
    return [(record.label(), record.run_id) for record in records]
