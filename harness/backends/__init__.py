"""Backends by name. Each lives in its own module; this only maps names to them."""

from __future__ import annotations

from importlib import import_module

from typing import TYPE_CHECKING

from ..errors import HarnessError

if TYPE_CHECKING:  # importing base here would close the cycle settings -> backends -> base -> settings
    from .base import Backend

#: name -> "module:Class" (imported on first use: optional dependencies stay optional)
REGISTRY: dict[str, str] = {
    "counters": "harness.backends.base:Backend",
    "valgrind": "harness.backends.valgrind.backend:ValgrindBackend",
    "memray": "harness.backends.memray_:MemrayBackend",
    "tracemalloc": "harness.backends.tracemalloc_:TracemallocBackend",
}


def backend_names() -> list[str]:
    return list(REGISTRY)


def get_backend(name: str) -> "Backend":
    if name not in REGISTRY:
        raise HarnessError(f"backend {name!r} is not available; choose from {', '.join(REGISTRY)}")
    module, _, cls = REGISTRY[name].partition(":")
    return getattr(import_module(module), cls)()
