"""Errors caused by the user's input: shown as one line, never as a traceback."""


class Page4DError(ValueError):
    """Bad input from the user (a file, a checkpoint, an option); the message is one line."""


class ClipError(Page4DError):
    """A source could not be turned into frames."""


class CheckpointError(Page4DError):
    """A checkpoint could not be read into a model."""


class ResultFileError(Page4DError):
    """A saved Reconstruction could not be read."""
