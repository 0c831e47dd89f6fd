/* Crash and hang reports of the leak-harness host (crash_report.c). */
#ifndef LEAK_HARNESS_CRASH_REPORT_H
#define LEAK_HARNESS_CRASH_REPORT_H

/* Where the host is: written by the loops, read by the signal handlers. */
enum crash_phase {
    PHASE_START = 0,        /* before the first interpreter */
    PHASE_INITIALIZE,       /* Py_InitializeFromConfig / Py_NewInterpreter* */
    PHASE_RUN,              /* the case's code */
    PHASE_SAMPLE,           /* counting, between cycles */
    PHASE_FINALIZE,         /* Py_FinalizeEx */
    PHASE_END_INTERPRETER,  /* Py_EndInterpreter */
};

/* Opens PATH (the harness reads it after the host ended) and installs the
   handlers: SIGSEGV/SIGBUS/SIGFPE/SIGILL/SIGABRT write a crash record and
   re-raise; SIGUSR2 (the harness's timeout) writes a hang record and lets
   the host go on until the harness kills it.  dumper_offset: the address of
   CPython's _Py_DumpTracebackThreads relative to libpython's load base (0:
   no Python stacks).  0 on success, -1 after printing why. */
int crash_report_init(const char *path, unsigned long dumper_offset);

/* Cheap stores; no-ops until crash_report_init. */
void crash_report_phase(enum crash_phase phase);
void crash_report_cycle(int cycle);

/* The allocator hook was just installed: the test-only switch
   LEAK_HARNESS_TEST_CRASH_IN_HOOK=1 crashes here, to prove the harness
   blames such a crash on itself (the bare host never gets here). */
void crash_report_hook_installed(void);

#endif
