/* The harness's own known-clean extension: multi-phase init, no state,
 * declared safe for per-interpreter GIL.  Importing it measures what the
 * import machinery alone leaves behind per cycle. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyModuleDef_Slot probe_slots[] = {
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef probe_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_leak_harness_probe",
    .m_doc = "leak-harness import-machinery probe (clean by construction)",
    .m_size = 0,
    .m_slots = probe_slots,
};

PyMODINIT_FUNC PyInit__leak_harness_probe(void) { return PyModuleDef_Init(&probe_def); }
