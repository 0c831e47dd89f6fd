"""The counters backend: the host's allocator hook and process counters.

What the hook sees: every PyMem_RawMalloc / PyMem_Malloc / PyObject_Malloc
call (and realloc/free) by pointer, whatever allocator serves it. With
pymalloc on (the default) a block is a pymalloc block, so counts are exact
while arenas kept by pymalloc are not counted; PYTHONMALLOC=malloc makes every
block a libc block with the same counts. 3.13's mimalloc exists only in
free-threaded builds; on default builds the same holds there. CPython briefly
swaps in the default raw allocator internally, so a few hundred raw frees per
cycle bypass the hook: RAW is approximate and only reported. Verdicts use the
MEM + OBJ domains, which are exact.

Native memory: the counting host (native_alloc.c) interposes malloc & co.
for the whole process and reports the live blocks and bytes taken from the
C allocator outside the hooked PyMem domains (`native_blocks`,
`native_bytes`), exactly; they are judged like blocks/bytes.  glibc's
`mallinfo2()` in-use figure (`heap_in_use_bytes`: everything malloc holds,
PyMem's raw blocks included) is reported only.
"""

from __future__ import annotations

#: Metrics every result reports (the run --json contract), then extras.
CONTRACT_KEYS = ("blocks", "bytes", "refs", "rss")
EXTRA_KEYS = ("native_blocks", "native_bytes", "heap_in_use_bytes", "raw_blocks", "raw_bytes",
              "fds", "threads")


def _sum(sample: dict, *keys: str) -> float | None:
    values = [sample.get(k) for k in keys]
    return None if any(v is None for v in values) else float(sum(values))


def series_from_samples(samples: list[dict]) -> dict[str, list[float] | None]:
    """Metric name -> value after each cycle (None when the host lacks it)."""
    def column(fn) -> list[float] | None:
        values = [fn(s) for s in samples]
        return None if not values or any(v is None for v in values) else values

    return {
        "blocks": column(lambda s: _sum(s, "mem_blocks", "obj_blocks")),
        "bytes": column(lambda s: _sum(s, "mem_bytes", "obj_bytes")),
        "refs": column(lambda s: s.get("refs")),
        "rss": column(lambda s: s.get("rss")),
        "native_blocks": column(lambda s: s.get("native_blocks")),
        "native_bytes": column(lambda s: s.get("native_bytes")),
        "heap_in_use_bytes": column(lambda s: s.get("heap_in_use_bytes")),
        "raw_blocks": column(lambda s: s.get("raw_blocks")),
        "raw_bytes": column(lambda s: s.get("raw_bytes")),
        "fds": column(lambda s: s.get("fds")),
        "threads": column(lambda s: s.get("threads")),
    }
