"""Choosing the training device: CUDA when present, else CPU; a clear error for one that is missing."""

from __future__ import annotations

import torch
import torch.distributed as dist


def pick_device(device: str | None, distributed: bool) -> torch.device:
    """The training device; ``ValueError`` (with what to do) for one this machine does not have."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}: use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {device!r}: use cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but torch {torch.__version__} sees no CUDA GPU "
                             "here; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} asked for, but this machine has "
                             f"{torch.cuda.device_count()} CUDA GPU(s)")
        if distributed:
            dev = torch.device("cuda", dist.get_rank() % torch.cuda.device_count())
        elif dev.index is None:  # torch.cuda.set_device needs an index
            dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def check_device(device: str | None) -> torch.device:
    """The device ``train(device=...)`` would use; ``ValueError`` saying what to do if there is none.

    >>> check_device("cpu")
    device(type='cpu')
    >>> check_device("tpu")
    Traceback (most recent call last):
    ...
    ValueError: unknown device 'tpu': use cpu, cuda or cuda:N
    """
    return pick_device(device, distributed=False)
