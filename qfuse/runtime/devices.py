"""The device a call runs on, as the runtime names it: its target string and its name.

A leaf of the runtime (torch only), so the pipeline, the autotuner and bundles share it
without importing each other.
"""
from __future__ import annotations

from typing import Optional

import torch

__all__ = ["device_target", "device_name"]


def device_name(device: Optional[torch.device] = None) -> str:
    """``torch.cuda.get_device_name`` of a GPU device (default: the current one, if there
    is a GPU), else ``"cpu"``: the device part of an autotuning bucket."""
    if device is not None and device.type == "cuda" or device is None and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    return "cpu"


def device_target(device: torch.device) -> str:
    """``cuda:sm_90`` / ``hip:gfx942`` for a GPU device, ``cpu:interp`` on the CPU."""
    if device.type == "cuda":
        if getattr(torch.version, "hip", None):
            arch = torch.cuda.get_device_properties(device).gcnArchName.split(":")[0]
            return f"hip:{arch}"
        major, minor = torch.cuda.get_device_capability(device)
        return f"cuda:sm_{major}{minor}"
    return "cpu:interp"
