"""Test ids of the plugin's items: which Python a parametrized item runs on."""

from __future__ import annotations

from ..host.target import target_python


def python_prefix(pythons: list[str | None], python: str | None) -> str:
    """'3.12.1-' when several --leak-python targets make items of one test
    apart, '' for one; a target that cannot be probed raises HarnessError."""
    return target_python(python).label + "-" if len(pythons) > 1 else ""
