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


#: metric -> the two sample fields it adds (the PyMem MEM and OBJ domains)
_SUMMED = {"blocks": ("mem_blocks", "obj_blocks"), "bytes": ("mem_bytes", "obj_bytes")}
#: metrics read from one sample field of the same name
_DIRECT = ("refs", "rss", "native_blocks", "native_bytes", "heap_in_use_bytes", "raw_blocks",
           "raw_bytes", "fds", "threads")


def series_from_samples(samples: list[dict]) -> dict[str, list[float] | None]:
    """Metric name -> value after each cycle (None when the host lacks it in
    any sample).  One plain pass per metric: adaptive cycles build the
    series of a case after each of its later cycles, and this was a fifth
    of the harness's own time per case (cProfile, 60 stdlib imports)."""
    series: dict[str, list[float] | None] = {}
    for name, (first, second) in _SUMMED.items():
        column: list[float] | None = []
        for sample in samples:
            a, b = sample.get(first), sample.get(second)
            if a is None or b is None:
                column = None
                break
            column.append(float(a + b))
        series[name] = column or None
    for name in _DIRECT:
        values = [sample.get(name) for sample in samples]
        series[name] = None if not values or any(v is None for v in values) else values
    return series
