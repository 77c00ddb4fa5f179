"""Quadrature nodes and weights kept on the training device: a step copies nothing from the host.

The objective uses fixed nodes in every evaluation: the base radii of the
radial and speed tables (:func:`~dsphnf.flows.surface._base_nodes`), the
base speeds and their weights (:func:`~dsphnf.flows.separable.speed_nodes`)
and the Gauss-Hermite smearing nodes
(:func:`~dsphnf.flows.objective.smearing_nodes`). They are made on the host
(numpy, or torch on the CPU). Converting them with ``torch.as_tensor(...,
device=...)`` in every evaluation is a host-to-device copy each time, and on
a GPU a blocking copy from pageable memory waits for the device: several
round-trips per training step. :func:`on_device` converts each set once per
(dtype, device) and hands out the same tensors afterwards.

The cached tensors are shared: callers must not modify them in place (none
does; they never require a gradient).
"""
from __future__ import annotations

import threading
from typing import Callable, Hashable, Sequence

import numpy as np
import torch

__all__ = ["on_device", "clear"]

_CACHE: dict[tuple, tuple[torch.Tensor, ...]] = {}
_LOCK = threading.Lock()


def on_device(key: Hashable, make: Callable[[], Sequence[np.ndarray | torch.Tensor]], dtype: torch.dtype,
              device: torch.device | str) -> tuple[torch.Tensor, ...]:
    """The arrays ``make()`` as tensors of ``dtype`` on ``device``, made once per (key, dtype, device).

    ``key`` names the set (e.g. ``("speed_nodes", 24)``); ``make`` is only
    called the first time.

    >>> a = on_device(("demo", 3), lambda: (np.arange(3.0),), torch.float64, "cpu")
    >>> b = on_device(("demo", 3), lambda: (np.zeros(3),), torch.float64, "cpu")
    >>> a[0] is b[0], a[0].tolist()
    (True, [0.0, 1.0, 2.0])
    """
    dev = torch.device(device)
    full = (key, dtype, dev.type, dev.index)
    hit = _CACHE.get(full)
    if hit is None:
        with _LOCK:
            hit = _CACHE.get(full)
            if hit is None:
                hit = tuple(torch.as_tensor(a).to(dtype=dtype, device=dev).detach() for a in make())
                _CACHE[full] = hit
    return hit


def clear() -> None:
    """Forget every cached set (e.g. to free a device's memory)."""
    with _LOCK:
        _CACHE.clear()
