"""The live cycle line of `leak-harness run`, regrtest style: one character per cycle.

    cycles (2 warm-up + 20, blocks over the control's median cycle):
    --XXXXXXXXXXXXXXXXXXXX

Fed by Engine.run(on_sample=...) from the host's sample pipe, from two
threads (the case, and the control measured beside it).  A case cycle is
printed once the control has measured cycles to compare it with; the rest
at `finish()`.  The characters are verdict/deltas.cycle_char's; the verdict
itself is the slope rule's, printed after.
"""

from __future__ import annotations

import threading
from typing import TextIO

from ..verdict.deltas import cycle_char, live_excess


def _blocks(sample: dict) -> float | None:
    mem, obj = sample.get("mem_blocks"), sample.get("obj_blocks")
    return None if mem is None or obj is None else float(mem + obj)


class CycleLine:
    """Prints to `stream` as samples arrive; `against` is the role judged against."""

    def __init__(self, stream: TextIO, warmup: int, cycles: int, against: str = "pass") -> None:
        self._stream = stream
        self._warmup = warmup
        self._against = against
        self._lock = threading.Lock()
        self._case: list[dict] = []
        self._control: list[dict] = []
        self._printed = 0
        # written with the first sample, not now: a run that fails before
        # its first cycle (a bad --python, a host that does not build)
        # prints its one error line and nothing that announces cycles
        self._legend: str | None = (f"cycles ({warmup} warm-up + {cycles} at most; `.` nothing over the "
                                    f"control's median cycle, 1-9 blocks more, X ten or more):\n")

    def __call__(self, role: str, sample: dict) -> None:
        with self._lock:
            if self._legend is not None:
                self._stream.write(self._legend)
                self._stream.flush()
                self._legend = None
            if role == "case":
                self._case.append(sample)
            elif role == self._against:
                self._control.append(sample)
            self._emit(final=False)

    def finish(self) -> None:
        with self._lock:
            self._emit(final=True)
            if self._printed:
                self._stream.write("\n")
                self._stream.flush()

    def _control_cycles(self) -> tuple[list[float], list[float]]:
        values = [_blocks(s) for s in self._control]
        grown, kept = [], []
        for i in range(self._warmup + 1, len(values)):
            if values[i] is not None and values[i - 1] is not None:
                grown.append(values[i] - values[i - 1])
                kept.append(float(self._control[i].get("interned_blocks") or 0))
        return grown, kept

    def _emit(self, final: bool) -> None:
        control, kept = self._control_cycles()
        out = []
        # sample 0 is the baseline before cycle 1; sample i ends cycle i
        while self._printed + 1 < len(self._case):
            i = self._printed + 1
            if i <= self._warmup:
                out.append(cycle_char(None, warmup=True))
            else:
                if not control and not final:
                    break   # wait for the control's cycles
                now, before = _blocks(self._case[i]), _blocks(self._case[i - 1])
                excess = None if now is None or before is None else live_excess(
                    now - before, self._case[i].get("interned_blocks"), control, kept)
                out.append(cycle_char(excess))
            self._printed += 1
        if out:
            self._stream.write("".join(out))
            self._stream.flush()
