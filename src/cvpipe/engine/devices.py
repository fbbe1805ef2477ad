"""Where a run computes: the device (``auto`` → CUDA when available) and the autocast dtype.

Example:
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_amp("auto", resolve_device("cpu")) is None
    True
"""

from __future__ import annotations

import torch

from cvpipe.errors import ConfigError


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA when available, else CPU.

    Raises:
        ConfigError: CUDA asked for but not available.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                "device: CUDA is not available on this machine; use --device cpu (or auto)"
            )
        if name == "cuda":
            return torch.device("cuda", local_rank)
    return torch.device(name)


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``amp`` on ``device`` (None = full precision).

    Raises:
        ConfigError: fp16 on CPU, or bf16 on a GPU without bf16 support.
    """
    cuda = device.type == "cuda"
    if amp == "off" or (amp == "auto" and not cuda):
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp == "fp16":
        if not cuda:
            raise ConfigError("amp: fp16 needs a CUDA device; on CPU use amp: bf16 or off")
        return torch.float16
    if cuda and not torch.cuda.is_bf16_supported():
        raise ConfigError("amp: this GPU does not support bf16; use amp: fp16 or auto")
    return torch.bfloat16
