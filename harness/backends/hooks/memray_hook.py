# Runs in the target's main interpreter (see hooks/__init__.py).  Settings:
# warmup, memray_path (the directory memray is imported from), capture
# (file), out (file), marker_bytes, host_source.
#
# memray.Tracker is entered after the warm-up and spans every measured
# cycle; after each cycle the hook allocates one marker buffer of a size
# nothing else uses, so the capture's ordered allocation stream can be cut
# into cycles.  At the end the tracker stops and the hook walks the stream
# itself (this process's memray wrote it: the reader matches the format):
# which allocations of which cycle are still alive, with their stacks.
import json as _json
import sys as _sys

_settings = _json.loads(LH_SETTINGS)  # noqa: F821 (prepended by hook_source)
# memray's own modules import lazily while it runs: its directory stays on
# the main interpreter's path (appended, so it shadows nothing).  The
# subinterpreters build their sys.path from the configuration, not from it.
if _settings["memray_path"] not in _sys.path:
    _sys.path.append(_settings["memray_path"])
import memray as _memray  # noqa: E402

_AT = _memray.AllocatorType
_FREES = {_AT.FREE, _AT.PYMALLOC_FREE}
_MAPS = {_AT.MMAP}
_UNMAPS = {_AT.MUNMAP}
_PYMEM = {_AT.PYMALLOC_MALLOC, _AT.PYMALLOC_CALLOC, _AT.PYMALLOC_REALLOC}
#: pymalloc's arenas (and their bookkeeping), should one be recorded: the
#: blocks carved out of them are recorded one by one (trace_python_allocators;
#: memray's recursion guard already hides what an allocator call does beneath)
_ARENA_FUNCTIONS = {"new_arena", "_PyObject_ArenaMmap", "_PyMem_ArenaAlloc"}
_MARKER_FUNCTION = "_lh_cycle_marker"
_state = {}


def _lh_cycle_marker():
    buffer = bytearray(_settings["marker_bytes"])
    del buffer


def lh_event(event, cycle):
    warmup = _settings["warmup"]
    if event == "start" and warmup == 0 or event == "after" and cycle == warmup:
        tracker = _memray.Tracker(_settings["capture"], native_traces=True,
                                  trace_python_allocators=True)
        tracker.__enter__()
        _state["tracker"] = tracker
        _state["first"] = cycle
    elif event == "after" and "tracker" in _state:
        _lh_cycle_marker()
    elif event == "end" and "tracker" in _state:
        _state.pop("tracker").__exit__(None, None, None)
        with open(_settings["out"], "w") as out:
            _json.dump(_analyse(_state["first"], cycle), out)


def _frames(trace):
    return [[str(f[0]), str(f[1]), int(f[2])] for f in trace]


def _analyse(first, last):
    reader = _memray.FileReader(_settings["capture"])
    marker_size = _settings["marker_bytes"] + 1   # bytearray(n) asks for n + 1
    host_source = _settings["host_source"]
    skip_by_stack = {}

    def skipped(record):
        """An arena (its blocks count) or the harness's own (the host's side table)."""
        key = (record.native_stack_id, record.native_segment_generation)
        if key not in skip_by_stack:
            native = record.native_stack_trace()
            skip_by_stack[key] = (
                any(f[0] in _ARENA_FUNCTIONS for f in native)
                or bool(native) and str(native[0][1]).endswith(host_source))
        return skip_by_stack[key]

    cycle = first + 1
    live = {}      # address -> [size, cycle, record] of blocks
    mapped = {}    # start address -> [size, cycle, record] of mmap'd ranges
    for record in reader.get_allocation_records():
        kind = record.allocator
        if kind in _FREES:
            live.pop(record.address, None)
        elif kind in _UNMAPS:
            _unmap(mapped, record.address, record.size)
        elif (record.size == marker_size
              and any(f[0] == _MARKER_FUNCTION for f in record.stack_trace())):
            # one record per marker: memray records the outermost call only
            # (its recursion guard hides the allocations made beneath it)
            cycle += 1
        elif kind in _MAPS:
            mapped[record.address] = [record.size, cycle, record]
        else:
            live[record.address] = [record.size, cycle, record]

    per_cycle = {c: [0, 0] for c in range(first + 1, last + 1)}
    stacks = {}
    resolved = {}
    for size, made_in, record in list(live.values()) + list(mapped.values()):
        if skipped(record) or made_in not in per_cycle:
            continue
        per_cycle[made_in][0] += size
        per_cycle[made_in][1] += 1
        ids = (record.native_stack_id, record.native_segment_generation, record.stack_id)
        if ids not in resolved:
            native, python = _frames(record.native_stack_trace()), _frames(record.stack_trace())
            # different return addresses on one source line resolve alike
            resolved[ids] = _json.dumps([native, python])
        key = (resolved[ids], record.allocator in _PYMEM)
        if key not in stacks:
            native, python = _json.loads(key[0])
            stacks[key] = {"bytes": 0, "blocks": 0, "python_allocator": key[1],
                           "native": native, "python": python}
        stacks[key]["bytes"] += size
        stacks[key]["blocks"] += 1
    memray_leaked_bytes = sum(r.size for r in reader.get_leaked_allocation_records(merge_threads=True))
    reader.close()
    return {
        "first_cycle": first,
        "cycles_seen": cycle - 1,
        "per_cycle": [[c, b, n] for c, (b, n) in sorted(per_cycle.items())],
        "stacks": list(stacks.values()),
        "objects": _mapped_objects(),
        "sys_path": list(_sys.path),
        "memray_leaked_bytes": memray_leaked_bytes,
    }


def _unmap(mapped, start, size):
    """munmap may cover several ranges or part of one: keep what is left mapped."""
    end = start + size
    for base in [b for b, (s, _, _) in mapped.items() if b < end and b + s > start]:
        range_size, made_in, record = mapped.pop(base)
        if base < start:
            mapped[base] = [start - base, made_in, record]
        if base + range_size > end:
            mapped[end] = [base + range_size - end, made_in, record]


def _mapped_objects():
    """Every shared object mapped into the process now, the subinterpreters'
    extension modules included (sys.modules of this interpreter sees none)."""
    objects = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split(None, 5)
            if len(parts) == 6 and ".so" in parts[5]:
                objects.add(parts[5].strip())
    return sorted(objects)
