# Runs in the target's main interpreter (see hooks/__init__.py).  Settings:
# warmup, depth, series (file), diffs (file).
#
# Tracing starts after the warm-up (or before cycle 1 without one): what the
# warm-up allocated and freed is of no interest, and tracing costs.  After
# each cycle one line "cycle traced_blocks traced_bytes" goes to the series
# file, straight out, so the hook keeps no growing Python state of its own
# (what it kept would be traced).  At the end the two snapshots are
# compared per traceback and every non-zero difference is written out.
import json as _json
import sys as _sys
import tracemalloc as _tracemalloc

_settings = _json.loads(LH_SETTINGS)  # noqa: F821 (prepended by hook_source)
_state = {}


def _start():
    _tracemalloc.start(_settings["depth"])
    _state["series"] = open(_settings["series"], "w")


def _sample(cycle):
    # _get_traces() is what take_snapshot() wraps; its length is the number
    # of traced blocks, a few ms for tens of thousands of traces
    blocks = len(_tracemalloc._get_traces())
    traced_bytes = _tracemalloc.get_traced_memory()[0]
    _state["series"].write("%d %d %d\n" % (cycle, blocks, traced_bytes))
    _state["series"].flush()


def lh_event(event, cycle):
    warmup = _settings["warmup"]
    if event == "start" and warmup == 0:
        _start()
        _sample(0)
        _state["first"] = _tracemalloc.take_snapshot()
    elif event == "after" and cycle == warmup:
        _start()
        _sample(cycle)
        _state["first"] = _tracemalloc.take_snapshot()
    elif event == "after" and cycle > warmup:
        _sample(cycle)
    elif event == "end":
        last = _tracemalloc.take_snapshot()
        _tracemalloc.stop()
        _state["series"].close()
        diffs = [
            {"bytes": d.size_diff, "blocks": d.count_diff,
             "frames": [[f.filename, f.lineno] for f in d.traceback]}
            for d in last.compare_to(_state.pop("first"), "traceback")
            if d.size_diff or d.count_diff
        ]
        with open(_settings["diffs"], "w") as out:
            _json.dump({"diffs": diffs, "sys_path": list(_sys.path)}, out)
