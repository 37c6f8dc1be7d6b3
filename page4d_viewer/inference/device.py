"""Where the network runs and in which precision: device choice, dtype choice, autocast."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from page4d_viewer.errors import Page4DError
from page4d_viewer.settings import AUTO, PRECISIONS

# The dtype behind each precision name, in settings.PRECISIONS order (fp32, bf16, fp16).
DTYPES: dict[str, torch.dtype] = dict(
    zip(PRECISIONS, (torch.float32, torch.bfloat16, torch.float16), strict=True)
)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def choose_device(name: str | None = None) -> torch.device:
    """The device to run on.

    Args:
        name: None or "auto" (CUDA, then MPS, then CPU), or a torch device string such as
            "cpu", "cuda", "cuda:1", "mps".

    Raises:
        Page4DError: the named device does not exist or is not available on this machine.
    """
    if name is None or name == AUTO:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise Page4DError(f"unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise Page4DError(f"device {name!r} asked for, but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise Page4DError(
                f"device {name!r} asked for, but only {torch.cuda.device_count()} CUDA "
                "device(s) exist"
            )
    elif device.type == "mps" and not _mps_available():
        raise Page4DError(f"device {name!r} asked for, but MPS is not available here")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise Page4DError(f"unsupported device {name!r} (use auto, cpu, cuda, cuda:N or mps)")
    return device


def choose_precision(device: torch.device, name: str | None = None) -> torch.dtype | None:
    """The autocast dtype for `device`, or None for plain float32.

    Args:
        device: where the model runs.
        name: None or "auto" (bf16 on GPUs that support it, fp16 on other GPUs, fp32 on CPU),
            or one of "fp32", "bf16", "fp16" to force it.

    Returns:
        torch.bfloat16 or torch.float16 for mixed precision, None for float32.

    Raises:
        Page4DError: unknown name, or a half precision the device cannot run.
    """
    if name is None or name == AUTO:
        if device.type == "cuda":
            supported = torch.cuda.is_bf16_supported()
            return torch.bfloat16 if supported else torch.float16
        if device.type == "mps":
            return torch.float16
        return None
    if name not in DTYPES:
        raise Page4DError(f"unknown precision {name!r}; use auto, {', '.join(PRECISIONS)}")
    dtype = DTYPES[name]
    if dtype == torch.float32:
        return None
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise Page4DError("bf16 asked for, but this GPU does not support it (use fp16)")
    return dtype


@contextlib.contextmanager
def autocast_for(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """Mixed-precision context for the model's forward pass; a no-op for dtype None/float32.

    The model's heads turn autocast off themselves and run in their parameters' dtype.
    """
    if dtype is None or dtype == torch.float32:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield
