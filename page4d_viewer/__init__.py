"""page4d_viewer: run PAGE-4D on a clip and inspect its 4D reconstruction interactively."""

__version__ = "0.1.0"
