/* leak-harness host: counting the C allocator (native_alloc.c).
 *
 * Built only into the counting host (-DLH_NATIVE_COUNTING=1, the counters
 * backend).  The host for valgrind and memray is built without it: both
 * replace malloc themselves, and a second definition in the executable
 * would come between them and the program (see native_alloc.c).
 */
#ifndef LH_NATIVE_ALLOC_H
#define LH_NATIVE_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifndef LH_NATIVE_COUNTING
#define LH_NATIVE_COUNTING 0
#endif

/* Slots of the per-caller table (an upper bound for native_sites). */
#define LH_NATIVE_SITE_CAPACITY 8192

/* One caller of malloc & co: its return address (0: not known) and the
   blocks/bytes it allocated that are still live. */
typedef struct {
    uintptr_t pc;
    long long blocks;
    long long bytes;
} native_site_t;

#if LH_NATIVE_COUNTING
/* Depth of PyMem hook calls on this thread: what the hooked PyMem domains
   hand to malloc is counted there, so the interposer records nothing while
   it is above 0 (frees still untrack blocks recorded as native). */
extern _Thread_local int lh_in_pymem_hook;
#define NATIVE_ENTER_PYMEM() (lh_in_pymem_hook++)
#define NATIVE_LEAVE_PYMEM() (lh_in_pymem_hook--)

/* Live native blocks and bytes of the whole process, recorded so far. */
void native_totals(long long *blocks, long long *bytes);
/* Copies up to `max` sites with live blocks into `out`; returns how many. */
size_t native_sites(native_site_t *out, size_t max);

/* PyMem sites (--pymem-sites, explaining runs only): the caller of a PyMem
   allocation is the first return address outside CPython, libc, the loader
   and the host, within LH_PYMEM_SITE_DEPTH frames; LH_PYMEM_IN_CPYTHON
   (one site for them all) when there is none: CPython's own work, on its
   own behalf, on an extension's (the import of a single-phase module keeps
   a copy of its dict), or for code run from Python.  The table is apart
   from the native one and has its capacity. */
#define LH_PYMEM_SITE_DEPTH 32
#define LH_PYMEM_IN_CPYTHON ((uintptr_t)1)
unsigned native_pymem_site_here(void);
void native_pymem_count(unsigned site, long long blocks, long long bytes);
size_t native_pymem_sites(native_site_t *out, size_t max);
#else
#define NATIVE_ENTER_PYMEM() ((void)0)
#define NATIVE_LEAVE_PYMEM() ((void)0)
#endif

#endif /* LH_NATIVE_ALLOC_H */
