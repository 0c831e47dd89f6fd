"""Turning how a host ended into a verdict and a message.

A host that did not complete its cycles gets `timeout`, `crash`, `error` or
`unsupported` from its ending alone; a completed one is judged on growth
(verdict.py) and summarised here in one line.
"""

from __future__ import annotations

import re

from ..result import Result
from ..host.runner import HostRun
from ..settings import RunSettings

# CPython's refusals: 3.12+ "module X does not support loading in
# subinterpreters", and the older single-phase wording.
_UNSUPPORTED = re.compile(
    r"does not support loading in subinterpreters"
    r"|not supported in (?:isolated )?subinterpreters"
    r"|cannot be (?:loaded|imported) in (?:an? )?(?:isolated )?subinterpreters?",
    re.IGNORECASE,
)


def ending_verdict(run: HostRun, settings: RunSettings) -> tuple[str, str] | None:
    """(verdict, message) when the host did not complete its cycles, else None."""
    total = settings.warmup + settings.cycles
    reached = (f"cycle {run.last_cycle + 1} of {total}" if run.last_cycle < total
               else f"the final shutdown after all {total} cycles")
    if settings.thread_count is not None:  # parallel: where each thread got to
        reached += f" ({run.threads_note(settings.thread_count)})"
    tail = run.output_tail.strip()
    tail_note = f"\n--- host output (tail) ---\n{tail}" if tail else ""
    if run.timed_out:
        return "timeout", f"no end after {settings.timeout:g} s, in {reached}{tail_note}"
    if run.signal_name:
        return "crash", f"host killed by {run.signal_name} in {reached}{tail_note}"
    if run.hook_error:
        # the backend's code in the main interpreter failed, not the case
        hook = run.hook_error
        return "error", (f"the {settings.backend} backend's main-interpreter hook raised "
                         f"{hook.get('type')} at cycle {hook.get('cycle')}:\n{hook.get('message') or ''}")
    if run.error:
        text = run.error.get("message") or ""
        if _UNSUPPORTED.search(text):
            last = [ln for ln in text.strip().splitlines() if ln.strip()]
            return "unsupported", last[-1] if last else text
        return "error", f"the case raised {run.error.get('type')} in cycle {run.error.get('cycle')}:\n{text}"
    if run.returncode != 0 or not run.completed:
        return "error", f"host exited with status {run.returncode} in {reached}{tail_note}"
    return None


def summary_line(result: Result, triggered: list[str]) -> str:
    excess = result.excess or {}
    blocks, size = excess.get("blocks"), excess.get("bytes")
    if blocks is None:
        numbers = "no usable counters"
    elif size is None:
        numbers = f"{blocks:+g} blocks/cycle over the control"
    else:
        numbers = f"{blocks:+g} blocks/cycle, {size:+g} bytes/cycle over the control"
    native_blocks, native_size = excess.get("native_blocks"), excess.get("native_bytes")
    if blocks is not None and native_blocks is not None and native_size is not None:
        numbers += f"; native {native_blocks:+g} blocks/cycle, {native_size:+g} bytes/cycle"
    interned = result.evidence.get("interned_strings_per_cycle") or 0
    discount = (f"; {interned:g} interned strings/cycle kept by CPython itself are discounted"
                if interned else "")
    threads = result.evidence.get("threads")
    if threads:  # parallel mode
        rate = result.evidence.get("cycles_per_s")
        discount += (f"; per interpreter cycle, {threads} threads"
                     + (f", {rate:g} interpreter cycles/s" if rate else ""))
    if result.verdict == "leak":
        return f"leaks {numbers} (judged on {', '.join(triggered)}{discount})"
    return f"clean: {numbers}{discount}"
