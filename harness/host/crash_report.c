/* Crash and hang reports: where the host was when it died or hung.
 *
 * The handlers write plain lines to a file the harness named and reads after
 * the host ended; the harness symbolises (addresses -> object, function,
 * file:line) afterwards, because nothing of that is async-signal-safe.  What
 * runs in the handler: write(2), open/read of /proc/self/maps, glibc's
 * backtrace() (loaded and warmed at start-up: its first call dlopens
 * libgcc_s, which is not safe in a handler) and CPython's
 * _Py_DumpTracebackThreads, the function faulthandler calls from its own
 * handler.  It is not exported on every version (3.10 and 3.13 keep it
 * local), so the harness finds its offset in libpython's .symtab and passes
 * it; the host adds libpython's load base.
 *
 * Record (one per event; a hang may be followed by nothing else):
 *   event crash|hang / signal N NAME / cycle N / phase NAME / pc 0x.. /
 *   fault-address 0x.. / frame 0x.. (innermost first) / maps ... end-maps /
 *   python ... end-python / end
 * The most useful lines come first: if dumping the Python stacks faults in a
 * half-finalized interpreter, what was written stays.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "crash_report.h"

#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#define MAX_FRAMES 128
#define ALT_STACK_BYTES (256 * 1024)

typedef const char *(*dump_threads_fn)(int fd, PyInterpreterState *interp,
                                       PyThreadState *current);

static int report_fd = -1;
static dump_threads_fn dump_threads;
/* Written by every parallel worker, read by the handler: atomics (a
   volatile sig_atomic_t is only safe for one thread and its handler, and
   ThreadSanitizer reports the workers' stores as races), lock free so the
   handler may read them, relaxed as nothing else is ordered by them. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the signal handler reads these");
static atomic_int current_phase = PHASE_START;
static atomic_int current_cycle = 0;
static atomic_flag writing = ATOMIC_FLAG_INIT; /* one crash record at a time */
static int crash_in_hook; /* the test-only switch */

static const int FATAL_SIGNALS[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

static const char *const PHASE_NAMES[] = {
    "start", "initialize", "run", "sample", "finalize", "end-interpreter",
};

void crash_report_phase(enum crash_phase phase) {
    atomic_store_explicit(&current_phase, (int)phase, memory_order_relaxed);
}
void crash_report_cycle(int cycle) { atomic_store_explicit(&current_cycle, cycle, memory_order_relaxed); }

void crash_report_hook_installed(void) {
    if (crash_in_hook) {
        volatile int *nowhere = NULL; /* volatile: the store stays */
        *nowhere = 1;
    }
}

/* ---- async-signal-safe output ---------------------------------------- */

static void put(const char *text, size_t len) {
    while (len > 0) {
        ssize_t n = write(report_fd, text, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        text += n;
        len -= (size_t)n;
    }
}

static void puts_(const char *text) { put(text, strlen(text)); }

static void put_unsigned(unsigned long value, int base) {
    char digits[32];
    int i = sizeof digits;
    do {
        digits[--i] = "0123456789abcdef"[value % (unsigned)base];
        value /= (unsigned)base;
    } while (value && i > 2);
    if (base == 16) digits[--i] = 'x', digits[--i] = '0';
    put(digits + i, sizeof digits - (size_t)i);
}

static void put_line(const char *key, unsigned long value, int base) {
    puts_(key);
    puts_(" ");
    put_unsigned(value, base);
    puts_("\n");
}

static const char *signal_name(int sig) {
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    case SIGUSR2: return "SIGUSR2";
    default: return "?";
    }
}

static uintptr_t interrupted_pc(void *context) {
    const ucontext_t *uc = context;
    if (!uc) return 0;
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.pc;
#else
    return 0;
#endif
}

static void copy_maps(void) {
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) != 0) {
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        put(buf, (size_t)n);
    }
    close(fd);
}

static void write_record(const char *event, int sig, siginfo_t *info, void *context) {
    puts_("event ");
    puts_(event);
    puts_("\nsignal ");
    put_unsigned((unsigned long)sig, 10);
    puts_(" ");
    puts_(signal_name(sig));
    puts_("\n");
    put_line("cycle", (unsigned long)atomic_load_explicit(&current_cycle, memory_order_relaxed), 10);
    int phase = atomic_load_explicit(&current_phase, memory_order_relaxed);
    puts_("phase ");
    puts_(phase >= 0 && phase <= PHASE_END_INTERPRETER ? PHASE_NAMES[phase] : "?");
    puts_("\n");
    uintptr_t pc = interrupted_pc(context);
    if (pc) put_line("pc", pc, 16);
    if (info && (sig == SIGSEGV || sig == SIGBUS))
        put_line("fault-address", (unsigned long)(uintptr_t)info->si_addr, 16);
    void *frames[MAX_FRAMES];
    int n = backtrace(frames, MAX_FRAMES);
    for (int i = 0; i < n; i++) put_line("frame", (unsigned long)(uintptr_t)frames[i], 16);
    puts_("maps\n");
    copy_maps();
    puts_("end-maps\n");
    if (dump_threads) {
        puts_("python\n");
#if PY_VERSION_HEX >= 0x030D0000
        PyThreadState *tstate = PyThreadState_GetUnchecked();
#else
        PyThreadState *tstate = _PyThreadState_UncheckedGet();
#endif
        /* the tstate, not NULL: in a subinterpreter the GIL-state lookup
           NULL leads to finds the main interpreter's thread instead */
        const char *problem = dump_threads(report_fd, NULL, tstate);
        if (problem) {
            puts_("(");
            puts_(problem);
            puts_(")\n");
        }
        puts_("end-python\n");
    }
    puts_("end\n");
}

static void on_fatal_signal(int sig, siginfo_t *info, void *context) {
    int saved_errno = errno;
    /* a second thread crashing meanwhile dies with its signal unreported */
    if (!atomic_flag_test_and_set(&writing)) write_record("crash", sig, info, context);
    /* SA_RESETHAND restored the default action; SA_NODEFER lets it act now,
       so the exit status stays the signal */
    errno = saved_errno;
    raise(sig);
}

/* The harness's timeout: the stacks, then the end it would have dealt
   (SIGKILL), so the harness knows the record is complete when the host is
   gone and need not guess how long to wait. */
static void on_dump_signal(int sig, siginfo_t *info, void *context) {
    if (!atomic_flag_test_and_set(&writing)) write_record("hang", sig, info, context);
    raise(SIGKILL);
}

/* ---- start-up --------------------------------------------------------- */

static int find_libpython(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    if (info->dlpi_name && strstr(info->dlpi_name, "libpython")) {
        *(uintptr_t *)data = (uintptr_t)info->dlpi_addr;
        return 1;
    }
    return 0;
}

static int install(int sig, void (*handler)(int, siginfo_t *, void *), int flags) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = handler;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK | flags;
    if (sigemptyset(&action.sa_mask) != 0 || sigaction(sig, &action, NULL) != 0) {
        perror("leak-harness host: sigaction");
        return -1;
    }
    return 0;
}

int crash_report_init(const char *path, unsigned long dumper_offset) {
    const char *test_switch = getenv("LEAK_HARNESS_TEST_CRASH_IN_HOOK");
    crash_in_hook = test_switch && !strcmp(test_switch, "1");
    report_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (report_fd < 0) {
        perror("leak-harness host: --crash-file");
        return -1;
    }
    if (dumper_offset) {
        uintptr_t base = 0;
        if (dl_iterate_phdr(find_libpython, &base) && base)
            dump_threads = (dump_threads_fn)(base + dumper_offset);
    }
    void *warm[4];
    if (backtrace(warm, 4) <= 0) fprintf(stderr, "leak-harness host: backtrace() unavailable\n");
    /* an alternate stack, so a stack overflow is reported too */
    stack_t alt;
    alt.ss_sp = mmap(NULL, ALT_STACK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    alt.ss_size = ALT_STACK_BYTES;
    alt.ss_flags = 0;
    if (alt.ss_sp == MAP_FAILED || sigaltstack(&alt, NULL) != 0) {
        perror("leak-harness host: sigaltstack");
        return -1;
    }
    for (size_t i = 0; i < sizeof FATAL_SIGNALS / sizeof FATAL_SIGNALS[0]; i++) {
        if (install(FATAL_SIGNALS[i], on_fatal_signal, SA_RESETHAND | SA_NODEFER) < 0) return -1;
    }
    return install(SIGUSR2, on_dump_signal, SA_RESTART);
}
