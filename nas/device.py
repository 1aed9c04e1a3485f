"""One parser for --device: cpu, cuda or cuda:N, checked against what torch sees on this machine."""

from __future__ import annotations

import re

from nas.errors import NasError
from nas.lazy import lazy

torch = lazy("torch")  # imported for a CUDA device only


def parse_device(device: str) -> str:
    """The device string when it is cpu, cuda or cuda:N and available here; NasError naming the fix otherwise."""
    text = str(device).strip().lower()
    match = re.fullmatch(r"cpu|cuda(?::(\d+))?", text)
    if match is None:
        raise NasError(f"--device {device!r} is unknown; use cpu, cuda or cuda:N")
    if text == "cpu":
        return text
    if not torch.cuda.is_available():
        raise NasError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    if match.group(1) is not None and int(match.group(1)) >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise NasError(f"--device {device}: this machine has {n} CUDA device(s), cuda:0..cuda:{n - 1}; "
                       f"choose one of them")
    return text


__all__ = ["parse_device"]
