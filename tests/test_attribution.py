"""Frames -> module names (harness.attribution): pure functions on synthetic stacks."""

from __future__ import annotations

import pytest

from harness.backends.attribution import (
    CPYTHON, NativeFrame, attribute, module_from_function, module_from_object, short_stack,
)

LIBPYTHON = "/root/.pyenv/versions/3.12.1/lib/libpython3.12.so.1.0"
VGPRELOAD = "/usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so"
HOST = "/root/.cache/leak-harness/hosts/host-3.12.1-abc"


@pytest.mark.parametrize("path, module", [
    ("/x/lib/python3.12/lib-dynload/_json.cpython-312-x86_64-linux-gnu.so", "_json"),
    ("/x/lib/python3.12/site-packages/foo/_bar.so", "foo._bar"),
    ("/x/lib/python3.12/site-packages/foo/sub/_baz.cpython-312-x86_64-linux-gnu.so", "foo.sub._baz"),
    ("/x/lib/python3.12/site-packages/numpy/core/_multiarray_umath.abi3.so", "numpy.core._multiarray_umath"),
    ("/tmp/build/lh_mallocleak.cpython-312-x86_64-linux-gnu.so", "lh_mallocleak"),
    ("/x/lib/python3.11/lib-dynload/_ssl.cpython-311d-x86_64-linux-gnu.so", "_ssl"),
    ("/usr/lib/x86_64-linux-gnu/libffi.so.8", None),
    ("/usr/lib/x86_64-linux-gnu/libssl.so", None),
    (LIBPYTHON, None),
    (None, None),
])
def test_module_from_shared_object_path(path, module):
    assert module_from_object(path) == module


def test_module_path_under_a_given_root():
    assert module_from_object("/work/pkgs/foo/_bar.so", roots=["/work/pkgs"]) == "foo._bar"
    assert module_from_object("/work/pkgs/foo/_bar.so") == "_bar"   # the path alone does not tell


def test_pyinit_names_the_module():
    assert module_from_function("PyInit__json") == "_json"
    assert module_from_function("PyInit_lh_callleak") == "lh_callleak"
    assert module_from_function("PyInit") is None
    assert module_from_function(None) is None


def test_walk_skips_allocator_host_and_libpython():
    frames = [
        NativeFrame("malloc", VGPRELOAD),
        NativeFrame("hook_malloc", HOST, "host.c", 213),
        NativeFrame("PyTuple_New", LIBPYTHON, "tupleobject.c", 80),
        NativeFrame("f", "/tmp/lh_callleak.cpython-312-x86_64-linux-gnu.so", "callleak.c", 10),
        NativeFrame("cfunction_vectorcall_NOARGS", LIBPYTHON),
    ]
    who = attribute(frames, "something_else", host_objects=[HOST])
    assert (who.module, who.frame_index, who.reason) == ("lh_callleak", 3, "extension")
    stack = short_stack(frames, who.frame_index, skip_objects=[HOST])
    assert stack[0] == {"function": "PyTuple_New", "where": "tupleobject.c:80"}
    assert stack[1] == {"function": "f", "where": "callleak.c:10"}


def test_library_frames_give_way_to_the_extension_that_called_them():
    frames = [
        NativeFrame("malloc", VGPRELOAD),
        NativeFrame("CRYPTO_malloc", "/usr/lib/x86_64-linux-gnu/libcrypto.so.3"),
        NativeFrame("_ssl__SSLContext_impl", "/x/lib-dynload/_ssl.cpython-312-x86_64-linux-gnu.so"),
    ]
    assert attribute(frames).module == "_ssl"
    only_library = frames[:2]
    who = attribute(only_library)
    assert (who.module, who.reason) == ("libcrypto", "library")


def test_pyinit_frame_without_extension_file_name():
    frames = [NativeFrame("malloc", VGPRELOAD), NativeFrame("PyInit_spam", "/opt/weird/spammodule")]
    assert attribute(frames).module == "spam"


def test_interpreter_only_stacks_go_to_the_case_module_else_cpython():
    frames = [NativeFrame("malloc", VGPRELOAD), NativeFrame("PyUnicode_New", LIBPYTHON),
              NativeFrame("main", HOST)]
    assert attribute(frames, "json", host_objects=[HOST]).module == "json"
    who = attribute(frames, None, host_objects=[HOST])
    assert (who.module, who.frame_index) == (CPYTHON, None)
    assert short_stack(frames, None, skip_objects=[HOST])[0]["function"] == "PyUnicode_New"


def test_libc_and_loader_are_never_blamed():
    frames = [NativeFrame("malloc", VGPRELOAD), NativeFrame("strdup", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
              NativeFrame("_dl_open", "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")]
    assert attribute(frames).module == CPYTHON
