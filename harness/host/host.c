/* leak-harness embedding host.
 *
 * Runs one case (a file of Python source) for a number of cycles in one
 * lifecycle mode and writes one JSON line of counters per cycle to a file
 * descriptor given by the harness.  Every decision (what leaks, what is
 * unsupported) is taken in Python; this file only sets up, loops and counts.
 *
 * usage: host MODE CYCLES CASE_FILE OUT_FD PROGRAM [--site] [-X OPT]...
 *             [--threads N] [--main-hook FILE] [--path-file FILE] [--token-fd FD]
 *             [--crash-file FILE [--traceback-dumper OFFSET]] [--warmup W] [--pymem-sites]
 *             [--stop-fd FD --ask-from K]
 *   MODE: finalize | subinterpreter | legacy-subinterpreter | parallel |
 *         bare-finalize | bare-subinterpreter | bare-legacy-subinterpreter |
 *         bare-parallel   (the bare-* modes
 *         skip the allocator hook and the counters; bench/overhead.py compares
 *         against them)
 *
 * Where the hook's cost goes (bench/overhead.py, CPU time of a `pass` cycle
 * against the bare-* loop: 1.09-1.16x on 3.10-3.13 in every mode):
 *   - the indirect call through the hook on each of ~40k allocations and
 *     frees a cycle, 1-4% with no counting at all;
 *   - page faults on the shadow map: 3.12 leaks its obmalloc arenas at each
 *     finalization and maps fresh ones, ~155 more faults a cycle, 2-3%;
 *   - a cache miss on the block's entry at each free, 2-3% (perf annotate).
 * Counts are per thread because atomic adds to shared counters cost 1-2%.
 *
 * Native counting (native_alloc.c, the counters' host only) adds about 3% of
 * a `pass` cycle on 3.12 (perf, cpu-clock samples): the shadow-map lookup at
 * each free (~1%), the unwinder for mallocs made inside libc (~0.8%: opendir,
 * fopen, setlocale by CPython at each initialization), the call through.
 *
 * Every CPython call is checked and every owned reference released: a leak
 * of the host's own would be measured as the control's and hide a case's.
 * Deprecated APIs are replaced per version behind PY_VERSION_HEX.
 */
#define PY_SSIZE_T_CLEAN
/* 3.12+ keep interned strings after an interpreter ends; the host reads the
   interpreter's interned dict itself (interp->cached_objects, an internal
   struct), not through sys.getunicodeinternedsize, which a case can
   replace.  The internal headers need Py_BUILD_CORE before Python.h: set
   after it, 3.12.1's pycore_gc.h clashes with the public objimpl.h. */
#include <patchlevel.h>
#if PY_VERSION_HEX >= 0x030C0000
#define Py_BUILD_CORE 1
#endif
#include <Python.h>
#if PY_VERSION_HEX >= 0x030C0000
#include "internal/pycore_interp.h" /* PyInterpreterState.cached_objects */
#endif

#include "crash_report.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "native_alloc.h"
#include "size_table.h"

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define HOST_HAS_MEMCHECK 1
#endif
#endif

/* ------------------------------------------------------------------ */
/* Shadow map of live blocks: pointer -> (size, domain).               */
/* A header in front of each block is not possible: 3.12+ reset the    */
/* allocators at every re-initialization, so blocks cross allocators.  */
/* Frees of pointers we never saw pass straight through.               */
/*
 * Every 8-byte-aligned address below 2^48 owns one 16-bit entry,
 * (size << 2) | (domain + 1), 0 when no tracked block starts there; a
 * block of BIG_SIZE bytes or more has BIG_SIZE in its size field and its
 * exact size in the side table below.
 * Entries sit in leaves of 2^22, one leaf per 64 MiB of address space and
 * per value of address bit 3, so the 16-byte-aligned blocks of pymalloc
 * and glibc have dense entries in the same order as the heap itself and an
 * entry is usually in a cache line the last few allocations touched.
 * 16 bits, not 32: the entry's load is most of what a free costs (perf:
 * ~80% of hook_free's samples sit on it, a cache miss), and a line of 16-bit
 * entries covers 512 bytes of heap instead of 256; the map's resident pages,
 * zeroed by the kernel at first touch, are halved too.
 * Leaves are reserved with MAP_NORESERVE: only the pages touched become
 * resident, an eighth of the heap range in use.  3.12 leaks its arenas at
 * every finalization and maps new ones, so there this grows rss at every
 * cycle and page faults are much of what the hook costs.
 * A direct map rather than a hash table: a hash's random index misses the
 * cache on every lookup, and growing a table while blocks are live must
 * not count them twice.
 * No lock: an address belongs to one thread from the allocator's return
 * to the free, so one thread at a time writes its entry.  But an entry
 * outlives its block when an arena goes back wholesale (an interpreter's
 * end frees its obmalloc arenas without freeing their blocks), and the
 * next owner of the address may be another thread, ordered after the
 * first only by munmap/mmap in the kernel: so entries are atomics,
 * accessed relaxed (a plain mov on x86-64 and arm64; ThreadSanitizer
 * reported these accesses as races while they were plain).
 */
#define MAP_ADDRESS_BITS 48 /* user space of x86-64 and arm64 */
#define LEAF_BITS 22
#define LEAF_ENTRIES ((size_t)1 << LEAF_BITS)
#define TOP_ENTRIES ((size_t)2 << (MAP_ADDRESS_BITS - 4 - LEAF_BITS))
#define BIG_SIZE 0x3FFFu /* size field of blocks of 16383 bytes or more */

typedef _Atomic uint16_t entry_t;
static _Atomic(entry_t *) *leaves; /* TOP_ENTRIES, NULL until first used */

/* Live counts per thread, summed when sampling: two atomic adds per block
   cost about 2% of a cycle.  A thread's record outlives it, so what it
   counted stays in the sums; only its owner writes it. */
typedef struct {
    _Alignas(64) atomic_llong blocks[3]; /* a cache line per thread */
    atomic_llong bytes[3];
} counts_t;
#define MAX_THREADS (1 << 20)
static counts_t *counts_pool; /* MAX_THREADS records, reserved */
static atomic_size_t counts_used;
static _Thread_local counts_t *thread_counts;

/* Exact sizes of the live blocks an entry cannot hold (16 KiB and up):
   see size_table.h.  Starts at 4,096 slots, twice the most seen live. */
static size_table_t big_sizes = SIZE_TABLE_INIT(4096);

/* mmap, not malloc: the map must not be seen by the hook it serves */
static void *reserve(size_t bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "leak-harness host: out of memory for the block map\n");
        abort();
    }
    return p;
}

/* Leaves of the map are in 4 KiB pages (new_leaf), not transparent huge
   pages.  An earlier version asked for them (MADV_HUGEPAGE): fewer page
   faults (`pass`, 3.12.1 finalize: 285 a cycle against 443, the bare loop
   277), but each 2 MiB page is zeroed whole at its first touch, and with
   THP defrag "madvise" (the kernel's default, and this machine's) it may
   be compacted for first.  3.12 maps fresh arenas at each finalization, so
   its map keeps growing, and there the system time of the counting host
   was higher with THP in every paired measurement (medians of 12-15
   rounds): six stdlib imports, 30 cycles, 0.150 s against 0.188 s
   (finalize) and 0.146 s against 0.178 s (subinterpreter), the bare host
   0.148 s and 0.134 s; `pass`, 40 cycles, 0.056 s against 0.064 s.  On
   3.13 the two were equal (0.024 s and 0.024 s, `pass`; 0.078 s and
   0.080 s, the imports), the CPU ratios in either direction within the
   noise (1.18x and 1.11x on `pass`, 1.11x and 1.17x on the imports). */
/* The hook's fast path (trackable .. hook_free) is inlined into the four
   hook functions, every rare case (a new leaf, a stale entry, a block of
   16 KiB or more, a thread's first block) out of line: measured with callgrind on
   `pass` (3.12.1, finalize), the out-of-line version spent ~113
   instructions per hook call, mostly calls, prologues and the sign
   multiply (12% of a cycle); inlined, about half of that. */
#define HOT static inline __attribute__((always_inline))
#define COLD static __attribute__((noinline, cold))

/* The leaf of a map (`leaves`, or --pymem-sites' `site_leaves`) that holds
   address a's entry, and that entry's index in it. */
HOT size_t leaf_index_of(uintptr_t a) { return ((a >> (4 + LEAF_BITS)) << 1) | ((a >> 3) & 1); }
HOT size_t entry_index_of(uintptr_t a) { return (a >> 4) & (LEAF_ENTRIES - 1); }

/* Leaf `leaf_index` of `map`, made now: this thread's, or the one another
   thread stored first. */
__attribute__((returns_nonnull)) COLD entry_t *new_leaf(_Atomic(entry_t *) *map, size_t leaf_index) {
    entry_t *leaf = NULL;
    entry_t *fresh = reserve(LEAF_ENTRIES * sizeof(entry_t));
    if (atomic_compare_exchange_strong(&map[leaf_index], &leaf, fresh)) return fresh;
    munmap(fresh, LEAF_ENTRIES * sizeof(entry_t)); /* another thread's won */
    return leaf;
}

/* Whether p can have an entry: addresses no CPython allocator hands out
   (not 8-aligned, or beyond MAP_ADDRESS_BITS) pass through untracked. */
HOT int trackable(void *ptr) {
    uintptr_t p = (uintptr_t)ptr;
    return __builtin_expect(p && !((p & 7) | (p >> MAP_ADDRESS_BITS)), 1);
}

/* The entry of a trackable p, its leaf made on first use. */
HOT entry_t *entry_at(void *ptr) {
    uintptr_t p = (uintptr_t)ptr;
    size_t leaf_index = leaf_index_of(p);
    entry_t *leaf = atomic_load_explicit(&leaves[leaf_index], memory_order_acquire);
    if (__builtin_expect(!leaf, 0)) leaf = new_leaf(leaves, leaf_index);
    return &leaf[entry_index_of(p)];
}

/* Records the exact size of the big block at p (no live one is there:
   a stale entry's size was taken first). */
COLD void big_store(void *ptr, size_t size) {
    if (!size_table_store(&big_sizes, (uintptr_t)ptr, size)) {
        fprintf(stderr, "leak-harness host: out of memory for the block map\n");
        abort();
    }
}

/* The size of the big block at p, removing it when `take`; 0 if absent. */
COLD size_t big_size(const void *ptr, int take) {
    return size_table_find(&big_sizes, (uintptr_t)ptr, take);
}

static void big_before_fork(void) { size_table_lock(&big_sizes); }
static void big_after_fork(void) { size_table_unlock(&big_sizes); }

COLD counts_t *new_thread_counts(void) {
    size_t i = atomic_fetch_add(&counts_used, 1);
    if (i >= MAX_THREADS) {
        fprintf(stderr, "leak-harness host: more than %d threads allocated\n", MAX_THREADS);
        abort();
    }
    return thread_counts = &counts_pool[i];
}

HOT void add(atomic_llong *counter, long long delta) {
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + delta,
                          memory_order_relaxed);
}

HOT void add_counts(int domain, long long blocks, long long bytes) {
    counts_t *counts = thread_counts;
    if (__builtin_expect(!counts, 0)) counts = new_thread_counts();
    add(&counts->blocks[domain], blocks);
    add(&counts->bytes[domain], bytes);
}

/* Adds (sign +1) or removes (-1) the block of `entry` at p in the counts;
   `sign` is a constant at every call, so no multiply is left. */
HOT void count(void *p, uint32_t entry, long long sign) {
    size_t size = entry >> 2;
    if (__builtin_expect(size == BIG_SIZE, 0)) size = big_size(p, sign < 0);
    add_counts((int)(entry & 3) - 1, sign, sign * (long long)size);
}

/* A stale entry: its memory was released wholesale (an arena freed at
   finalization) and handed out again. */
COLD void drop_stale(void *p, uint32_t stale) { count(p, stale, -1); }

/* Every case of track_alloc: a new leaf, a stale entry, a big block, the
   thread's first block. */
COLD void track_slow(void *p, size_t size, int domain) {
    entry_t *entry = entry_at(p);
    uint32_t stale = atomic_load_explicit(entry, memory_order_relaxed);
    if (stale != 0) drop_stale(p, stale);
    if (size >= BIG_SIZE) big_store(p, size);
    uint16_t fresh = (uint16_t)(((size < BIG_SIZE ? (uint32_t)size : BIG_SIZE) << 2) | (uint32_t)(domain + 1));
    atomic_store_explicit(entry, fresh, memory_order_relaxed);
    add_counts(domain, 1, (long long)size);
}

/* The common case inline, nothing live across a call: the leaf exists,
   the entry is free, the block is small, the thread has counted. */
HOT void track_alloc(void *p, size_t size, int domain) {
    if (!trackable(p)) return;
    uintptr_t a = (uintptr_t)p;
    entry_t *leaf = atomic_load_explicit(&leaves[leaf_index_of(a)],
                                         memory_order_acquire);
    counts_t *counts = thread_counts;
    if (__builtin_expect(!leaf || !counts || size >= BIG_SIZE, 0)) {
        track_slow(p, size, domain);
        return;
    }
    entry_t *entry = &leaf[entry_index_of(a)];
    if (__builtin_expect(atomic_load_explicit(entry, memory_order_relaxed) != 0, 0)) {
        track_slow(p, size, domain);
        return;
    }
    atomic_store_explicit(entry, (uint16_t)(((uint32_t)size << 2) | (uint32_t)(domain + 1)),
                          memory_order_relaxed);
    add(&counts->blocks[domain], 1);
    add(&counts->bytes[domain], (long long)size);
}

/* Forgets p's block, returning its size (through *size) and entry, 0 if
   untracked.  Called before the memory goes back to its allocator: after
   that another thread may already own the address and its entry.  An
   address without a leaf was never recorded: no leaf is made for it. */
HOT uint32_t untrack(void *p, size_t *size) {
    if (!trackable(p)) return 0;
    uintptr_t a = (uintptr_t)p;
    entry_t *leaf = atomic_load_explicit(&leaves[leaf_index_of(a)],
                                         memory_order_acquire);
    if (!leaf) return 0;
    entry_t *entry = &leaf[entry_index_of(a)];
    uint32_t old = atomic_load_explicit(entry, memory_order_relaxed);
    if (!old) return 0;
    atomic_store_explicit(entry, 0, memory_order_relaxed);
    *size = old >> 2;
    counts_t *counts = thread_counts;
    if (__builtin_expect(*size == BIG_SIZE || !counts, 0)) {
        /* after the store: big_size's slot stays until it is taken */
        if (*size == BIG_SIZE) *size = big_size(p, 1);
        add_counts((int)(old & 3) - 1, -1, -(long long)*size);
        return old;
    }
    add(&counts->blocks[(old & 3) - 1], -1);
    add(&counts->bytes[(old & 3) - 1], -(long long)*size);
    return old;
}

/* ------------------------------------------------------------------ */
/* The allocator hook: wraps whatever allocator each domain had.       */

typedef struct {
    PyMemAllocatorEx wrapped;
    int domain;
} hook_ctx_t;

static hook_ctx_t hook_ctx[3];

/* The wrapped allocator's malloc and calloc; what they hand to malloc is
   the hook's to count, not the interposer's. */
HOT void *wrapped_malloc(hook_ctx_t *h, size_t size) {
    NATIVE_ENTER_PYMEM();
    void *p = h->wrapped.malloc(h->wrapped.ctx, size);
    NATIVE_LEAVE_PYMEM();
    return p;
}

HOT void *wrapped_calloc(hook_ctx_t *h, size_t nelem, size_t elsize) {
    NATIVE_ENTER_PYMEM();
    void *p = h->wrapped.calloc(h->wrapped.ctx, nelem, elsize);
    NATIVE_LEAVE_PYMEM();
    return p;
}

static void *hook_malloc(void *ctx, size_t size) {
    hook_ctx_t *h = ctx;
    void *p = wrapped_malloc(h, size);
    track_alloc(p, size, h->domain);
    return p;
}

static void *hook_calloc(void *ctx, size_t nelem, size_t elsize) {
    hook_ctx_t *h = ctx;
    void *p = wrapped_calloc(h, nelem, elsize);
    track_alloc(p, nelem * elsize, h->domain);
    return p;
}

static void *hook_realloc(void *ctx, void *ptr, size_t size) {
    hook_ctx_t *h = ctx;
    size_t old_size = 0;
    uint32_t old = untrack(ptr, &old_size);
    NATIVE_ENTER_PYMEM();
    void *p = h->wrapped.realloc(h->wrapped.ctx, ptr, size);
    NATIVE_LEAVE_PYMEM();
    if (!p) {
        /* the old block is still there */
        if (old) track_alloc(ptr, old_size, (int)(old & 3) - 1);
        return p;
    }
    if (!ptr || old) track_alloc(p, size, h->domain);
    else untrack(p, &old_size); /* a block we never saw stays unseen; drop any stale entry at p */
    return p;
}

/* hook_free's rare cases (a big block, the thread's first count): the
   whole free out of line, so that the common path keeps nothing across a
   call and ends in a tail call. */
COLD void free_slow(hook_ctx_t *h, void *ptr) {
    size_t size;
    untrack(ptr, &size);
    h->wrapped.free(h->wrapped.ctx, ptr);
}

/* No NATIVE_ENTER_PYMEM here: the interposed free untracks whatever it
   recorded whatever the depth, and no free of CPython's allocates, so the
   call is a tail call (callgrind: 14 of the ~60 instructions of a free). */
static void hook_free(void *ctx, void *ptr) {
    hook_ctx_t *h = ctx;
    if (trackable(ptr)) {
        uintptr_t a = (uintptr_t)ptr;
        entry_t *leaf = atomic_load_explicit(
            &leaves[leaf_index_of(a)], memory_order_acquire);
        if (leaf) {
            entry_t *entry = &leaf[entry_index_of(a)];
            uint32_t old = atomic_load_explicit(entry, memory_order_relaxed);
            counts_t *counts = thread_counts;
            if (__builtin_expect((old >> 2) == BIG_SIZE || (old && !counts), 0)) {
                free_slow(h, ptr);
                return;
            }
            if (old) {
                atomic_store_explicit(entry, 0, memory_order_relaxed);
                add(&counts->blocks[(old & 3) - 1], -1);
                add(&counts->bytes[(old & 3) - 1], -(long long)(old >> 2));
            }
        }
    }
    h->wrapped.free(h->wrapped.ctx, ptr);
}

/* --pymem-sites (counting host, explaining runs only): the hook also keeps,
   per caller outside CPython (native_pymem_site_here), the live PyMem blocks
   and bytes, so a finalize leak of PyMem blocks made by an extension is
   named without valgrind.  The MEM and OBJ domains, which the verdict's
   blocks and bytes are (RAW is not sited).  An immortal interned string is
   taken out of its site when measure_interned finds it: the verdict
   discounts those as CPython's, and so must the sites.  Each block's site
   index sits in a second map of the same layout as the first (16-bit
   entries, 0: no site).  Separate hook functions: the counting runs' hook
   is unchanged.  The unwind at each allocation costs (`import _curses`,
   3.12.1 finalize, 2+4 cycles: 0.51 s against 0.07 s): only the harness's
   --explain asks for it. */
static int pymem_sites_on;

/* Where p's shadow-map entry is, without reserving a leaf (NULL when p
   cannot have one); its value (0 when untracked), and the size it says,
   read before either changes. */
static inline entry_t *existing_entry(const void *ptr) {
    uintptr_t p = (uintptr_t)ptr;
    if (!leaves || !trackable((void *)ptr)) return NULL;
    entry_t *leaf = atomic_load_explicit(&leaves[leaf_index_of(p)], memory_order_acquire);
    return leaf ? &leaf[entry_index_of(p)] : NULL;
}

static inline uint32_t peek_entry(const void *ptr) {
    entry_t *entry = existing_entry(ptr);
    return entry ? atomic_load_explicit(entry, memory_order_relaxed) : 0;
}

static inline size_t entry_size(const void *p, uint32_t entry) {
    size_t size = entry >> 2;
    return size == BIG_SIZE ? big_size(p, 0) : size;
}

#if LH_NATIVE_COUNTING
static _Atomic(entry_t *) *site_leaves; /* TOP_ENTRIES, NULL until --pymem-sites */

/* p's site entry; NULL when no leaf holds it and `create` is 0 */
static entry_t *site_entry(void *ptr, int create) {
    uintptr_t a = (uintptr_t)ptr;
    size_t leaf_index = leaf_index_of(a);
    entry_t *leaf = atomic_load_explicit(&site_leaves[leaf_index], memory_order_acquire);
    if (!leaf) {
        if (!create) return NULL;
        leaf = new_leaf(site_leaves, leaf_index);
    }
    return &leaf[entry_index_of(a)];
}

/* Takes p's block out of its site (a free, the old block of a realloc, a
   stale entry: memory released wholesale and handed out again, or an
   immortal interned string); call while the main map still holds p's size. */
static void site_forget(void *p) {
    if (!trackable(p)) return;
    entry_t *entry = site_entry(p, 0);
    uint32_t site = entry ? atomic_load_explicit(entry, memory_order_relaxed) : 0;
    if (!site) return;
    atomic_store_explicit(entry, 0, memory_order_relaxed);
    native_pymem_count(site, -1, -(long long)entry_size(p, peek_entry(p)));
}

/* Puts the block the main map now holds at p in its caller's site. */
static void site_record(void *p) {
    uint32_t entry = peek_entry(p);
    if (!entry) return; /* not counted (untrackable): no site */
    unsigned site = native_pymem_site_here();
    if (!site) return;
    atomic_store_explicit(site_entry(p, 1), (uint16_t)site, memory_order_relaxed);
    native_pymem_count(site, 1, (long long)entry_size(p, entry));
}

/* A new block: counted as the hook counts it, then put under its caller
   (a stale entry at p leaves its site first). */
static void *sited_new(hook_ctx_t *h, void *p, size_t size) {
    if (!p) return p;
    site_forget(p);
    track_alloc(p, size, h->domain);
    if (h->domain != 0) site_record(p);
    return p;
}

static void *sited_malloc(void *ctx, size_t size) {
    hook_ctx_t *h = ctx;
    return sited_new(h, wrapped_malloc(h, size), size);
}

static void *sited_calloc(void *ctx, size_t nelem, size_t elsize) {
    hook_ctx_t *h = ctx;
    return sited_new(h, wrapped_calloc(h, nelem, elsize), nelem * elsize);
}

/* The old block leaves its site and the new one is the caller's: a block
   grown by realloc is the realloc's caller's (as memcheck has it). */
static void *sited_realloc(void *ctx, void *ptr, size_t size) {
    hook_ctx_t *h = ctx;
    if (ptr) site_forget(ptr);
    void *p = hook_realloc(ctx, ptr, size);
    if (h->domain == 0) return p;
    if (p) {
        if (p != ptr) site_forget(p); /* a stale entry at a new address */
        site_record(p);
    } else if (ptr && size) {
        site_record(ptr); /* failed: the old block is still there */
    }
    return p;
}

static void sited_free(void *ctx, void *ptr) {
    site_forget(ptr);
    hook_free(ctx, ptr);
}
#endif

static const PyMemAllocatorDomain DOMAINS[3] = {
    PYMEM_DOMAIN_RAW, PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ};

/* 3.12+ re-initialize _PyRuntime (allocators included) at every
   Py_PreInitialize after a finalization, so the hook is checked and
   re-installed every cycle.  It always wraps the allocator in place now. */
static void install_hook(void) {
    if (!leaves) {
        leaves = reserve(TOP_ENTRIES * sizeof(*leaves));
        counts_pool = reserve(MAX_THREADS * sizeof(counts_t));
        int failed = pthread_atfork(big_before_fork, big_after_fork, big_after_fork);
        if (failed) {
            fprintf(stderr, "leak-harness host: pthread_atfork: %s\n", strerror(failed));
            abort();
        }
    }
    PyMemAllocatorEx hook = {NULL, hook_malloc, hook_calloc, hook_realloc, hook_free};
#if LH_NATIVE_COUNTING
    if (pymem_sites_on) {
        if (!site_leaves) site_leaves = reserve(TOP_ENTRIES * sizeof(*site_leaves));
        hook = (PyMemAllocatorEx){NULL, sited_malloc, sited_calloc, sited_realloc, sited_free};
    }
#endif
    for (int d = 0; d < 3; d++) {
        PyMemAllocatorEx current;
        PyMem_GetAllocator(DOMAINS[d], &current);
        if (current.malloc == hook.malloc) continue;
        hook_ctx[d].wrapped = current;
        hook_ctx[d].domain = d;
        hook.ctx = &hook_ctx[d];
        PyMem_SetAllocator(DOMAINS[d], &hook);
    }
    crash_report_hook_installed();
}

/* ------------------------------------------------------------------ */
/* Process counters                                                    */

static long long read_rss_bytes(void) {
    long long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    if (fscanf(f, "%lld %lld", &size, &resident) != 2) resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

static long count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] != '.') n++;
    }
    closedir(d);
    return n - 1; /* the directory stream itself */
}

static long count_threads(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long n = -1;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "Threads: %ld", &n) == 1) break;
    }
    fclose(f);
    return n;
}

typedef Py_ssize_t (*ssize_fn)(void);
static ssize_fn ref_total_fn;       /* debug builds only */
static ssize_fn alloc_blocks_fn;

static void find_optional_symbols(void) {
    /* Looked up at run time: the names moved between versions and the
       refcount total only exists on Py_DEBUG builds. */
    ref_total_fn = (ssize_fn)dlsym(RTLD_DEFAULT, "_Py_GetGlobalRefTotal");
    if (!ref_total_fn) ref_total_fn = (ssize_fn)dlsym(RTLD_DEFAULT, "_Py_GetRefTotal");
    alloc_blocks_fn = (ssize_fn)dlsym(RTLD_DEFAULT, "_Py_GetGlobalAllocatedBlocks");
    if (!alloc_blocks_fn) alloc_blocks_fn = (ssize_fn)dlsym(RTLD_DEFAULT, "_Py_GetAllocatedBlocks");
}

static FILE *out;
static struct timespec t_start;
/* --warmup W: the native sites are written with the samples of cycle W and
   of the last cycle (total_cycles); -1 when not asked for */
static int warmup_cycles = -1;
static int total_cycles;
static void write_native_sites(int cycle);
/* see measure_interned(): what the case's run added to the interned dict */
static _Atomic long long cycle_interned = -1;
static _Atomic long long cycle_interned_blocks = -1;
static _Atomic long long cycle_interned_bytes = -1;
/* the run's token (--token-fd): in every line, so the harness can drop
   lines the case wrote to the sample fd itself */
static char run_token[65];
static void begin_line(const char *event);
static void say_channel_lost(int error, const char *event, int cycle, const char *type,
                             const char *text);
/* --stop-fd FD --ask-from K (adaptive cycles): after the sample of every
   cycle >= K the host waits for one byte on FD, 'c' (go on) or 's' (stop
   here).  The harness decides; the host only obeys and says where it
   stopped, so a stop the harness did not ask for shows as a mismatch. */
static int stop_fd = -1;
static int ask_from = INT_MAX;

static double ms_since_start(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t_start.tv_sec) * 1e3 + (now.tv_nsec - t_start.tv_nsec) / 1e6;
}

/* A process the case started that is still alive when its cycle ends
   outlived the cycle: it may hold our pipes, keep running after the host,
   or be what makes the case look clean.  The host only reports the pids
   (the harness kills them and fails the case).  waitpid(-1, WNOHANG) is one
   syscall that reaps what ended and says whether anything still runs; only
   then is /proc scanned for our children (as the child subreaper, set in
   main, orphaned grandchildren of a double fork are ours too). */
static void report_children(int cycle) {
    int status;
    pid_t reaped;
    while ((reaped = waitpid(-1, &status, WNOHANG)) > 0) {
    }
    if (reaped < 0) return; /* ECHILD: no children at all */
    DIR *proc = opendir("/proc");
    if (!proc) return;
    char pids[512];
    size_t used = 0;
    int listed = 0;
    pid_t self = getpid();
    struct dirent *entry;
    while ((entry = readdir(proc)) != NULL) {
        if (entry->d_name[0] < '1' || entry->d_name[0] > '9') continue;
        char path[300];
        snprintf(path, sizeof path, "/proc/%s/stat", entry->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        char line[1024];
        size_t n = fread(line, 1, sizeof line - 1, f);
        fclose(f);
        line[n] = 0;
        char *end = strrchr(line, ')'); /* the command name may hold spaces */
        char state;
        long ppid;
        if (!end || sscanf(end + 1, " %c %ld", &state, &ppid) != 2) continue;
        if (ppid != (long)self || state == 'Z') continue;
        int w = snprintf(pids + used, sizeof pids - used, "%s%s", listed ? "," : "", entry->d_name);
        if (w < 0 || (size_t)w >= sizeof pids - used) break;
        used += (size_t)w;
        listed++;
    }
    closedir(proc);
    if (!listed) return;
    flockfile(out);
    begin_line("children");
    fprintf(out, ",\"cycle\":%d,\"pids\":[%s]}\n", cycle, pids);
    fflush(out);
    funlockfile(out);
    /* The harness kills them, and the host, when it reads that line.  Until
       then nothing may run on: the next cycle runs the case again, which may
       start more of them, and a host that ends first hands its children to
       init, out of the harness's reach (a case that double-forks a daemon
       every cycle left one running so, 1 run in 12 on a loaded machine).  So
       a host run by the harness (it has a token) stops here; the harness
       continues it when none of the pids is the host's. */
    if (run_token[0]) raise(SIGSTOP);
}

/* interpreter_alive: the allocated-blocks counter reads interpreter state,
   so it is only asked while one exists (3.12+) or on versions whose counter
   is a plain global (3.10/3.11). */
static void write_sample(int cycle, int interpreter_alive) {
    crash_report_phase(PHASE_SAMPLE);
    if (cycle > 0) report_children(cycle);
    long long snap[3][2] = {{0}};
#if LH_NATIVE_COUNTING
    /* first: what the sample itself allocates (fopen, opendir) is not in it */
    long long native_blocks, native_bytes;
    native_totals(&native_blocks, &native_bytes);
#endif
    size_t n_counts = atomic_load(&counts_used);
    for (size_t i = 0; i < n_counts && i < MAX_THREADS; i++) {
        for (int d = 0; d < 3; d++) {
            snap[d][0] += atomic_load_explicit(&counts_pool[i].blocks[d], memory_order_relaxed);
            snap[d][1] += atomic_load_explicit(&counts_pool[i].bytes[d], memory_order_relaxed);
        }
    }
    struct mallinfo2 mi = mallinfo2();
    flockfile(out);
    begin_line("sample");
    fprintf(out,
            ",\"cycle\":%d,\"t_ms\":%.3f,"
            "\"raw_blocks\":%lld,\"raw_bytes\":%lld,"
            "\"mem_blocks\":%lld,\"mem_bytes\":%lld,"
            "\"obj_blocks\":%lld,\"obj_bytes\":%lld,"
            "\"heap_in_use_bytes\":%zu,\"rss\":%lld,\"fds\":%ld,\"threads\":%ld",
            cycle, ms_since_start(), snap[0][0], snap[0][1], snap[1][0], snap[1][1],
            snap[2][0], snap[2][1], mi.uordblks, read_rss_bytes(), count_fds(),
            count_threads());
    if (ref_total_fn) fprintf(out, ",\"refs\":%zd", ref_total_fn());
#if LH_NATIVE_COUNTING
    fprintf(out, ",\"native_blocks\":%lld,\"native_bytes\":%lld", native_blocks, native_bytes);
#endif
    long long interned = atomic_load(&cycle_interned);
    if (interned >= 0) fprintf(out, ",\"interned\":%lld", interned);
    long long interned_blocks = atomic_load(&cycle_interned_blocks);
    if (interned >= 0 && interned_blocks >= 0)
        /* interned_from_hook: 1 when the sizes are the hook's map, 0 when
           they come from each string's layout (no hook, e.g. under memcheck);
           a number, as every sample field is */
        fprintf(out, ",\"interned_blocks\":%lld,\"interned_bytes\":%lld,\"interned_from_hook\":%d",
                interned_blocks, atomic_load(&cycle_interned_bytes), leaves ? 1 : 0);
    int blocks_ok = interpreter_alive || PY_VERSION_HEX < 0x030C0000;
    if (alloc_blocks_fn && blocks_ok) fprintf(out, ",\"allocated_blocks\":%zd", alloc_blocks_fn());
#ifdef HOST_HAS_MEMCHECK
    if (RUNNING_ON_VALGRIND) {
        unsigned long leaked = 0, dubious = 0, reachable = 0, suppressed = 0;
        unsigned long leaked_b = 0, dubious_b = 0, reachable_b = 0, suppressed_b = 0;
        /* marks which cycle the next leak check in the XML belongs to */
        VALGRIND_PRINTF("leak-harness cycle %d\n", cycle);
        VALGRIND_DO_ADDED_LEAK_CHECK;
        VALGRIND_COUNT_LEAKS(leaked_b, dubious_b, reachable_b, suppressed_b);
        VALGRIND_COUNT_LEAK_BLOCKS(leaked, dubious, reachable, suppressed);
        (void)suppressed;
        /* still reachable too: memory a C static keeps growing is a leak
         * that memcheck never calls lost */
        fprintf(out,
                ",\"vg_lost_bytes\":%lu,\"vg_lost_blocks\":%lu,"
                "\"vg_possibly_bytes\":%lu,\"vg_possibly_blocks\":%lu,"
                "\"vg_reachable_bytes\":%lu,\"vg_reachable_blocks\":%lu,"
                "\"vg_suppressed_bytes\":%lu",
                leaked_b, leaked, dubious_b, dubious, reachable_b, reachable, suppressed_b);
    }
#endif
    fputs("}\n", out);
    int lost = fflush(out) != 0 ? errno : 0;
    funlockfile(out);
    if (lost) say_channel_lost(lost, "sample", cycle, NULL, NULL);
    if (cycle == warmup_cycles || (warmup_cycles >= 0 && cycle == total_cycles))
        write_native_sites(cycle);
}

static void write_json_string(const char *s) {
    fputc('"', out);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        switch (*c) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        default:
            if (*c < 0x20) fprintf(out, "\\u%04x", *c);
            else fputc(*c, out);
        }
    }
    fputc('"', out);
}

/* Starts a host line: {"token":"...","event":"EVENT" (the caller holds
   the stream's lock and writes the rest, then "}\n").  Every line the host
   writes begins here. */
/* A case that closes or replaces descriptors it does not own
   (os.closerange(3, 1000)) takes the sample channel with it, and the host's
   next lines, its error event too, are lost: the harness saw only "exited
   with status 3".  The first such loss is said on stderr, which the
   harness quotes as the host's output; an event's own text goes with it. */
static void say_channel_lost(int error, const char *event, int cycle, const char *type,
                             const char *text) {
    static atomic_int said;
    if (atomic_exchange(&said, 1)) return;
    fprintf(stderr,
            "leak-harness host: the %s line of cycle %d could not be written to the harness's "
            "sample channel (fd %d: %s): the case closed or replaced a file descriptor it does "
            "not own%s%s%s%s\n",
            event, cycle, fileno(out), strerror(error), type ? "; the line said " : "",
            type ? type : "", type ? ": " : "", type ? (text ? text : "") : "");
    fflush(stderr);
}

static void begin_line(const char *event) {
    fputs("{\"token\":", out);
    write_json_string(run_token);
    fputs(",\"event\":", out);
    write_json_string(event);
}

#if LH_NATIVE_COUNTING
/* One sites line (the caller holds the stream's lock). */
static void write_sites_line(const char *event, int cycle, const native_site_t *found, size_t n) {
    begin_line(event);
    fprintf(out, ",\"cycle\":%d,\"sites\":[", cycle);
    for (size_t i = 0; i < n; i++) {
        fprintf(out, "%s[%llu,%lld,%lld]", i ? "," : "", (unsigned long long)found[i].pc,
                found[i].blocks, found[i].bytes);
    }
    fputs("]}\n", out);
}
#endif

/* {"event":"native-sites","cycle":N,"sites":[[pc,blocks,bytes],...]}: the
   live native blocks and bytes per caller (return address) at the end of
   cycle N; the harness maps pc to a shared object with the "objects" line.
   With --pymem-sites, a "pymem-sites" line of the same form follows: the
   live PyMem blocks and bytes per first caller outside CPython. */
static void write_native_sites(int cycle) {
#if LH_NATIVE_COUNTING
    static native_site_t found[LH_NATIVE_SITE_CAPACITY]; /* static: sampling thread only */
    flockfile(out);
    write_sites_line("native-sites", cycle, found, native_sites(found, LH_NATIVE_SITE_CAPACITY));
    if (pymem_sites_on)
        write_sites_line("pymem-sites", cycle, found, native_pymem_sites(found, LH_NATIVE_SITE_CAPACITY));
    fflush(out);
    funlockfile(out);
#else
    (void)cycle;
#endif
}

/* {"event":"objects","objects":[{"path":P,"base":B,"segments":[[start,end],...]}]}:
   every loaded ELF object with its load base and PT_LOAD ranges, so the
   harness maps a native site's address to an object and an offset. */
static int write_object(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    int *count = data;
    char exe[4096];
    const char *path = info->dlpi_name;
    if (!path || !path[0]) {
        ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (len <= 0) return 0;
        exe[len] = 0;
        path = exe;
    }
    fputs((*count)++ ? ",{\"path\":" : "{\"path\":", out);
    write_json_string(path);
    fprintf(out, ",\"base\":%llu,\"segments\":[", (unsigned long long)info->dlpi_addr);
    int first = 1;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) continue;
        unsigned long long start = (unsigned long long)(info->dlpi_addr + ph->p_vaddr);
        fprintf(out, "%s[%llu,%llu]", first ? "" : ",", start, start + ph->p_memsz);
        first = 0;
    }
    fputs("]}", out);
    return 0;
}

static void write_objects(void) {
    int count = 0;
    flockfile(out);
    begin_line("objects");
    fputs(",\"objects\":[", out);
    dl_iterate_phdr(write_object, &count);
    fputs("]}\n", out);
    fflush(out);
    funlockfile(out);
}

static void write_event(const char *event, int cycle, const char *type, const char *text) {
    flockfile(out); /* parallel workers write too; one line at a time */
    begin_line(event);
    fprintf(out, ",\"cycle\":%d,\"type\":", cycle);
    write_json_string(type ? type : "");
    fputs(",\"message\":", out);
    write_json_string(text ? text : "");
    fputs("}\n", out);
    int lost = fflush(out) != 0 ? errno : 0;
    funlockfile(out);
    if (lost) say_channel_lost(lost, event, cycle, type, text);
}

/* ------------------------------------------------------------------ */
/* Running the case                                                    */

static char *case_source;

/* traceback.format_exception(exc) joined: CPython's own traceback text.
   NULL (with an exception set) when formatting failed. */
static PyObject *format_exception(PyObject *exc) {
    PyObject *mod = PyImport_ImportModule("traceback");
    if (!mod) return NULL;
    /* the one-argument form exists since 3.10, the oldest target */
    PyObject *lines = PyObject_CallMethod(mod, "format_exception", "O", exc);
    Py_DECREF(mod);
    if (!lines) return NULL;
    PyObject *sep = PyUnicode_FromString("");
    PyObject *text = sep ? PyUnicode_Join(sep, lines) : NULL;
    Py_XDECREF(sep);
    Py_DECREF(lines);
    return text;
}

/* Reports the pending exception (which it clears) as an `event` line with
   its type name and traceback text; the harness reads both to tell
   `unsupported` from `error`. */
static void report_event_exception(const char *event, int cycle) {
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc = PyErr_GetRaisedException(); /* normalized since 3.12 */
#else
    /* PyErr_Fetch/NormalizeException: deprecated in 3.12, the only way before */
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    /* format_exception(exc) reads exc.__traceback__, which Fetch leaves apart */
    if (exc && tb && PyException_SetTraceback(exc, tb) < 0) PyErr_Clear();
    Py_XDECREF(type);
    Py_XDECREF(tb);
#endif
    const char *type_name = exc ? Py_TYPE(exc)->tp_name : "?";
    PyObject *text = exc ? format_exception(exc) : NULL;
    if (!text && exc) {
        PyErr_Clear();
        text = PyObject_Str(exc);
    }
    const char *utf8 = text ? PyUnicode_AsUTF8(text) : NULL;
    PyErr_Clear();
    write_event(event, cycle, type_name, utf8 ? utf8 : "(exception could not be formatted)");
    Py_XDECREF(text);
    Py_XDECREF(exc);
}

/* What CPython keeps of a cycle by design (3.12+): interned strings that
   are immortal outlive Py_FinalizeEx / Py_EndInterpreter, so every
   identifier a module's code interns stays behind, whatever the module.
   The host reads the interpreter's own interned dict (not
   sys.getunicodeinternedsize, which the case can replace) and takes each
   string's block and size from the shadow map: exactly what the hook
   counted for it.  Statically allocated strings (one-character names,
   _Py_ID) live in the runtime's hashtable, not in the dict, and are no
   blocks.  3.13 also has mortal interned strings, freed like any object:
   only the immortal ones are counted.  Counted before and after the case
   runs and reported as the difference: a legacy subinterpreter on 3.13
   shares the main interpreter's dict, where a string interned in cycle 1
   is found again in cycle 2 (nothing new stays), so only what the case's
   run added is CPython's share of this cycle. */
typedef struct {
    long long count, blocks, bytes;
} interned_t;

#if PY_VERSION_HEX >= 0x030C0000
/* Without the hook (under memcheck) the blocks a string owns are read from
   its layout: what unicode_new asked the allocator for (header, characters,
   the NUL) and, for a non-ASCII string whose UTF-8 form was asked for, that
   buffer.  With PYTHONMALLOC=malloc these are exactly memcheck's blocks. */
static void add_layout(PyObject *s, interned_t *m) {
    if (((PyASCIIObject *)s)->state.statically_allocated) return; /* no block */
    if (!PyUnicode_IS_COMPACT(s)) {
        m->blocks++;
        m->bytes += (long long)sizeof(PyUnicodeObject);
        return;
    }
    int ascii = PyUnicode_IS_ASCII(s);
    size_t header = ascii ? sizeof(PyASCIIObject) : sizeof(PyCompactUnicodeObject);
    m->blocks++;
    m->bytes += (long long)(header + ((size_t)PyUnicode_GET_LENGTH(s) + 1) * PyUnicode_KIND(s));
    PyCompactUnicodeObject *compact = (PyCompactUnicodeObject *)s;
    if (!ascii && compact->utf8) {
        m->blocks++;
        m->bytes += (long long)compact->utf8_length + 1;
    }
}
#endif

#if PY_VERSION_HEX >= 0x030C0000
/* Adds interned string `key` to m when it is immortal. */
static void count_interned(PyObject *key, int hooked, interned_t *m) {
    if (!PyUnicode_Check(key) || PyUnicode_CHECK_INTERNED(key) != SSTATE_INTERNED_IMMORTAL) return;
    m->count++;
    if (!hooked) {
        add_layout(key, m);
        return;
    }
    uint32_t entry = peek_entry(key);
    if (!entry || (int)(entry & 3) - 1 == 0) return; /* untracked, or RAW (not judged) */
#if LH_NATIVE_COUNTING
    if (pymem_sites_on) site_forget(key);
#endif
    m->blocks++;
    m->bytes += (long long)entry_size(key, entry);
}

/* Strings looked at this many entries after their prefetch: the walk reads
   the dict's entries in order, but each string (one or two lines: its type
   and its interned state) and its shadow-map entry are cache misses; fetched
   ahead, they overlap.  perf, 3.13.0, `import json`, finalize, 60 cycles:
   the walk was 1.0% of the counting host's samples, 0.5% now (48 ahead: no
   better; without the state's line: 0.8%). */
#define INTERNED_AHEAD 16
#endif

static interned_t measure_interned(void) {
    interned_t m = {-1, -1, -1};
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *dict = PyInterpreterState_Get()->cached_objects.interned_strings; /* borrowed */
    if (!dict || !PyDict_Check(dict)) return m;
    int hooked = leaves != NULL; /* no hook under memcheck: sizes from the layout */
    m.count = m.blocks = m.bytes = 0;
    Py_ssize_t pos = 0, seen = 0;
    PyObject *key, *value, *ahead[INTERNED_AHEAD];
    /* no Python code runs during the walk: the dict and its keys stay as they are */
    while (PyDict_Next(dict, &pos, &key, &value)) {
        /* its type and its interned state: two cache lines when the string
           starts 48 bytes into one */
        __builtin_prefetch(key);
        __builtin_prefetch(&((PyASCIIObject *)key)->state);
        entry_t *entry = hooked ? existing_entry(key) : NULL;
        if (entry) __builtin_prefetch(entry);
        if (seen >= INTERNED_AHEAD) count_interned(ahead[seen % INTERNED_AHEAD], hooked, &m);
        ahead[seen++ % INTERNED_AHEAD] = key;
    }
    for (Py_ssize_t i = seen > INTERNED_AHEAD ? seen - INTERNED_AHEAD : 0; i < seen; i++)
        count_interned(ahead[i % INTERNED_AHEAD], hooked, &m);
#endif
    return m;
}

/* in parallel mode every worker stores its own interpreter's figures (the
   same case, so the same numbers): atomic, last wins */
static void store_interned(interned_t before, interned_t after) {
    if (after.count < 0 || before.count < 0) return;
    atomic_store(&cycle_interned, after.count - before.count);
    if (after.blocks >= 0 && before.blocks >= 0) {
        atomic_store(&cycle_interned_blocks, after.blocks - before.blocks);
        atomic_store(&cycle_interned_bytes, after.bytes - before.bytes);
    }
}

/* dict[key] as a new reference in *result: 1 found, 0 absent, -1 error
   (set).  PyDict_GetItemString would lend it and swallow the error. */
static int dict_get_ref(PyObject *dict, const char *key, PyObject **result) {
#if PY_VERSION_HEX >= 0x030D0000
    return PyDict_GetItemStringRef(dict, key, result);
#else
    *result = NULL;
    PyObject *name = PyUnicode_FromString(key);
    if (!name) return -1;
    PyObject *item = PyDict_GetItemWithError(dict, name); /* borrowed */
    Py_DECREF(name);
    if (!item) return PyErr_Occurred() ? -1 : 0;
    *result = Py_NewRef(item);
    return 1;
#endif
}

/* One line a cycle naming the extension modules loaded in this
   interpreter, read before it ends: the entries of its module dict
   (PyImport_GetModuleDict, the interpreter's own: rebinding sys.modules
   does not change it) that have a PyModuleDef (so came from C, which
   Python code cannot fake) and a __file__ (so from a shared library, not
   built in).  The harness tells from these whether the case's extensions
   ran in every cycle or fell back to something else after the first. */
static void write_extensions(int cycle) {
    PyObject *modules = PyImport_GetModuleDict(); /* borrowed */
    /* NULL (no memory): the PyModuleDef test alone, never a missing line */
    PyObject *so_suffix = PyUnicode_FromString(".so");
    if (!so_suffix) PyErr_Clear();
    flockfile(out);
    begin_line("extensions");
    fprintf(out, ",\"cycle\":%d,\"modules\":[", cycle);
    int first = 1;
    Py_ssize_t pos = 0;
    PyObject *name, *module;
    while (modules && PyDict_Check(modules) && PyDict_Next(modules, &pos, &name, &module)) {
        if (!PyUnicode_Check(name) || !PyModule_Check(module)) continue;
        PyObject *module_dict = PyModule_GetDict(module); /* borrowed */
        PyObject *file = NULL;
        int has_file = module_dict ? dict_get_ref(module_dict, "__file__", &file) : 0;
        /* An extension has a PyModuleDef, except a single-phase module that
           3.13 hands a legacy subinterpreter as a new module object filled
           from the copy the first interpreter cached: no def, but its
           __file__ is still the shared object's. */
        int is_extension = PyModule_GetDef(module) != NULL;
        if (!is_extension) PyErr_Clear();
        if (!is_extension && so_suffix && has_file > 0 && PyUnicode_Check(file)) {
            is_extension = PyUnicode_Tailmatch(file, so_suffix, 0, PY_SSIZE_T_MAX, 1) == 1;
            if (PyErr_Occurred()) PyErr_Clear();
        }
        Py_XDECREF(file);
        const char *utf8 = has_file > 0 && is_extension ? PyUnicode_AsUTF8(name) : NULL;
        if (!utf8) {
            PyErr_Clear();
            continue;
        }
        if (!first) fputc(',', out);
        write_json_string(utf8);
        first = 0;
    }
    fputs("]}\n", out);
    fflush(out);
    funlockfile(out);
    Py_XDECREF(so_suffix);
}

static void report_exception(int cycle) { report_event_exception("error", cycle); }

/* A hooked mode: its samples report the interned strings.  The bare modes
   write no sample, so they do not walk the interned dict: the bare host is
   the benchmarks' floor and the crash reruns' "without the harness", and
   the walk is counting work (1.1% of a 3.13.0 `import json` cycle, 0.6% on
   3.12.1, perf). */
static int sampled;

/* Runs the case in the current interpreter's __main__; 0 on success. */
static int run_case(int cycle) {
    crash_report_cycle(cycle);
    crash_report_phase(PHASE_RUN);
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *main_mod = PyImport_AddModuleRef("__main__");
#else
    /* borrowed from sys.modules, which a case may clear: held as our own */
    PyObject *main_mod = Py_XNewRef(PyImport_AddModule("__main__"));
#endif
    if (!main_mod) {
        report_exception(cycle);
        return -1;
    }
    PyObject *globals = PyModule_GetDict(main_mod); /* borrowed from main_mod */
    interned_t before = sampled ? measure_interned() : (interned_t){-1, -1, -1};
    PyObject *result = PyRun_String(case_source, Py_file_input, globals, globals);
    int failed = !result;
    if (failed) report_exception(cycle);
    else if (sampled) store_interned(before, measure_interned());
    Py_XDECREF(result);
    Py_DECREF(main_mod);
    write_extensions(cycle);
    return failed ? -1 : 0;
}

static const char *program;
static int use_site;
static int n_xoptions;
static char **xoptions;
/* --path-file: the target's own sys.path, one entry a line, computed once by
   the harness (what `TARGET -c` has, .pth entries included): set as the
   module search path, so no .pth code runs per cycle */
static int has_search_path;
static int n_search_paths;
static char **search_paths;

static int read_path_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror("leak-harness host: path file");
        return -1;
    }
    size_t cap = 16;
    search_paths = calloc(cap, sizeof(char *));
    char line[8192];
    while (search_paths && fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\n");
        if (line[n] != '\n' && !feof(f)) {
            fprintf(stderr, "leak-harness host: path file entry longer than %zu bytes\n", sizeof line);
            fclose(f);
            return -1;
        }
        line[n] = 0;
        if (!n) continue;
        if ((size_t)n_search_paths == cap) {
            char **grown = realloc(search_paths, 2 * cap * sizeof(char *));
            if (!grown) break;
            search_paths = grown;
            cap *= 2;
        }
        if (!(search_paths[n_search_paths] = strdup(line))) break;
        n_search_paths++;
    }
    int failed = ferror(f) || !search_paths || !feof(f);
    fclose(f);
    if (failed) {
        fprintf(stderr, "leak-harness host: cannot read path file %s\n", path);
        return -1;
    }
    has_search_path = 1;
    return 0;
}

static int init_main_interpreter(int hooked) {
    crash_report_phase(PHASE_INITIALIZE);
    PyStatus status;
    PyPreConfig preconfig;
    PyPreConfig_InitPythonConfig(&preconfig);
    /* -X dev and -X utf8 are pre-configuration: they must reach
       Py_PreInitialize, as argv, or PyConfig's copy comes too late */
    char **pre_argv = calloc((size_t)(2 * n_xoptions + 2), sizeof(char *));
    if (!pre_argv) {
        fprintf(stderr, "leak-harness host: out of memory for the pre-configuration\n");
        return -1;
    }
    int pre_argc = 0;
    pre_argv[pre_argc++] = (char *)program;
    for (int i = 0; i < n_xoptions; i++) {
        pre_argv[pre_argc++] = "-X";
        pre_argv[pre_argc++] = xoptions[i];
    }
    preconfig.parse_argv = 1;
    status = Py_PreInitializeFromBytesArgs(&preconfig, pre_argc, pre_argv);
    free(pre_argv);
    if (PyStatus_Exception(status)) goto fail;
    /* after pre-initialization, so PYTHONMALLOC's choice is what we wrap */
    /* Under memcheck the hook doubles the cost (every shadow-map write is
       instrumented) and measures nothing the leak checks do not: skip it. */
#ifdef HOST_HAS_MEMCHECK
    if (hooked && !RUNNING_ON_VALGRIND) install_hook();
#else
    if (hooked) install_hook();
#endif

    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.parse_argv = 0;
    config.site_import = use_site;
    config.user_site_directory = use_site;
    config.install_signal_handlers = 0;
    /* the target's executable as program name: getpath then finds its
       prefix and stdlib as if the target itself had started */
    status = PyConfig_SetBytesString(&config, &config.program_name, program);
    if (PyStatus_Exception(status)) goto fail_config;
    for (int i = 0; i < n_xoptions; i++) {
        wchar_t *w = Py_DecodeLocale(xoptions[i], NULL);
        if (!w) {
            fprintf(stderr, "leak-harness host: cannot decode -X %s\n", xoptions[i]);
            PyConfig_Clear(&config);
            return -1;
        }
        status = PyWideStringList_Append(&config.xoptions, w);
        PyMem_RawFree(w);
        if (PyStatus_Exception(status)) goto fail_config;
    }
    if (has_search_path) {
        config.module_search_paths_set = 1;
        for (int i = 0; i < n_search_paths; i++) {
            wchar_t *w = Py_DecodeLocale(search_paths[i], NULL);
            if (!w) {
                fprintf(stderr, "leak-harness host: cannot decode path %s\n", search_paths[i]);
                PyConfig_Clear(&config);
                return -1;
            }
            status = PyWideStringList_Append(&config.module_search_paths, w);
            PyMem_RawFree(w);
            if (PyStatus_Exception(status)) goto fail_config;
        }
    }
    status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) goto fail;
    return 0;
fail_config:
    PyConfig_Clear(&config);
fail:
    fprintf(stderr, "leak-harness host: initialization failed: %s%s%s\n",
            status.func ? status.func : "", status.func ? ": " : "",
            status.err_msg ? status.err_msg : "(no message)");
    return -1;
}

/* After cycle `cycle`'s sample: 1 when the harness says stop (the
   "stopped" line and, when asked for, the native sites of this last cycle
   are written), 0 to go on, -1 when the stop pipe broke (an error line:
   EOF, a read error or a byte that is neither 'c' nor 's', as when the
   case read from or wrote to the pipe itself). */
static int harness_says_stop(int cycle) {
    if (stop_fd < 0 || cycle < ask_from) return 0;
    unsigned char answer = 0;
    ssize_t n;
    do n = read(stop_fd, &answer, 1);
    while (n < 0 && errno == EINTR);
    if (n == 1 && answer == 'c') return 0;
    if (n == 1 && answer == 's') {
        if (LH_NATIVE_COUNTING && warmup_cycles >= 0 && cycle != total_cycles) {
            total_cycles = cycle;
            write_native_sites(cycle);
        }
        flockfile(out);
        begin_line("stopped");
        fprintf(out, ",\"cycle\":%d}\n", cycle);
        fflush(out);
        funlockfile(out);
        return 1;
    }
    char message[160];
    if (n < 0) snprintf(message, sizeof message, "reading the stop pipe: %s", strerror(errno));
    else if (n == 0) snprintf(message, sizeof message, "the stop pipe closed before the harness answered");
    else snprintf(message, sizeof message, "the stop pipe held byte 0x%02x, not the harness's answer", answer);
    write_event("error", cycle, "HostProtocolError", message);
    return -1;
}

static int loop_finalize(int cycles, int hooked) {
    if (hooked) write_sample(0, 0);
    for (int cycle = 1; cycle <= cycles; cycle++) {
        crash_report_cycle(cycle);
        if (init_main_interpreter(hooked) < 0) return 2;
        int failed = run_case(cycle);
        crash_report_phase(PHASE_FINALIZE);
        if (Py_FinalizeEx() < 0 && !failed) {
            write_event("error", cycle, "FinalizeError", "Py_FinalizeEx() reported an error");
            return 3;
        }
        if (failed) return 3;
        if (hooked) write_sample(cycle, 0);
        int stop = hooked ? harness_says_stop(cycle) : 0;
        if (stop < 0) return 3;
        if (stop) break;
    }
    return 0;
}

/* Creates a subinterpreter and makes it current; NULL after writing an
   error event.  The caller holds the main interpreter's GIL. */
static PyThreadState *new_sub(int cycle, int isolated) {
    crash_report_cycle(cycle);
    crash_report_phase(PHASE_INITIALIZE);
    PyThreadState *sub = NULL;
    if (isolated) {
#if PY_VERSION_HEX >= 0x030C0000
        PyInterpreterConfig config = {
            .use_main_obmalloc = 0,
            .allow_fork = 0,
            .allow_exec = 0,
            .allow_threads = 1,
            .allow_daemon_threads = 0,
            .check_multi_interp_extensions = 1,
            .gil = PyInterpreterConfig_OWN_GIL,
        };
        PyStatus status = Py_NewInterpreterFromConfig(&sub, &config);
        if (PyStatus_Exception(status)) {
            write_event("error", cycle, "InterpreterError",
                        status.err_msg ? status.err_msg : "Py_NewInterpreterFromConfig failed");
            return NULL;
        }
#else
        write_event("error", cycle, "NotSupported",
                    "isolated subinterpreters need Python 3.12 or newer");
        return NULL;
#endif
    } else {
        sub = Py_NewInterpreter();
        if (!sub) write_event("error", cycle, "InterpreterError", "Py_NewInterpreter failed");
    }
    return sub;
}

/* Ends the current subinterpreter and returns to `home` (a thread state of
   the main interpreter).  An own-GIL interpreter's end leaves no current
   thread state and the main GIL released: take it back; a legacy one
   shares the GIL, so only the thread state is swapped. */
static void end_sub(PyThreadState *sub, PyThreadState *home, int isolated) {
    crash_report_phase(PHASE_END_INTERPRETER);
    Py_EndInterpreter(sub);
    if (isolated) PyEval_RestoreThread(home);
    else PyThreadState_Swap(home);
}

/* ---- the main-interpreter hook (--main-hook FILE) -----------------
   Backends that measure from inside the process (tracemalloc, memray) run
   Python in the main interpreter: FILE defines lh_event(event, cycle),
   called with "start" before cycle 1, "after" after each cycle's sample
   and "end" after the last cycle.  What it does is the backend's policy. */
static const char *main_hook_file;
static PyObject *main_hook_fn; /* owned */

/* The whole of `path` in *text, NUL-terminated (malloc'd, the caller frees
   it): 0, or -1 with errno set.  A file shorter than ftell said (it changed
   meanwhile) or unreadable is an error, not a shorter program. */
static int read_whole_file(const char *path, char **text) {
    *text = NULL;
    errno = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0) len = ftell(f);
    char *buf = len >= 0 && fseek(f, 0, SEEK_SET) == 0 ? malloc((size_t)len + 1) : NULL;
    int ok = buf && fread(buf, 1, (size_t)len, f) == (size_t)len && !ferror(f);
    int saved_errno = errno ? errno : EIO; /* a short read sets none */
    if (fclose(f) != 0) ok = 0;
    if (!ok) {
        free(buf);
        errno = saved_errno;
        return -1;
    }
    buf[len] = 0;
    *text = buf;
    return 0;
}

static int load_main_hook(void) {
    if (!main_hook_file) return 0;
    char *text;
    if (read_whole_file(main_hook_file, &text) < 0) {
        char message[512];
        snprintf(message, sizeof message, "cannot read the --main-hook file %s: %s",
                 main_hook_file, strerror(errno));
        write_event("hook-error", 0, "OSError", message);
        return -1;
    }
    /* a namespace of its own, not __main__: the hook's names stay apart
       from whatever the main interpreter's __main__ holds */
    PyObject *globals = PyDict_New();
    PyObject *name = PyUnicode_FromString("__leak_harness_hook__");
    PyObject *result = NULL;
    if (globals && name && PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) == 0
        && PyDict_SetItemString(globals, "__name__", name) == 0)
        result = PyRun_String(text, Py_file_input, globals, globals);
    free(text);
    Py_XDECREF(name);
    int found = result ? dict_get_ref(globals, "lh_event", &main_hook_fn) : -1;
    Py_XDECREF(result);
    /* lh_event keeps its globals alive (its __globals__); ours goes */
    Py_XDECREF(globals);
    if (found <= 0) {
        if (PyErr_Occurred()) report_event_exception("hook-error", 0);
        else write_event("hook-error", 0, "NameError", "the --main-hook file defines no lh_event");
        return -1;
    }
    return 0;
}

/* Ends the main interpreter after the last cycle.  Py_FinalizeEx's -1
   means buffered sys.stdout/stderr data could not be written: reported as
   in the finalize loop. */
static int finalize_main(int cycle) {
    Py_CLEAR(main_hook_fn);
    crash_report_phase(PHASE_FINALIZE);
    if (Py_FinalizeEx() < 0) {
        write_event("error", cycle, "FinalizeError", "Py_FinalizeEx() reported an error");
        return 3;
    }
    return 0;
}

static int call_main_hook(const char *event, int cycle) {
    if (!main_hook_fn) return 0;
    PyObject *r = PyObject_CallFunction(main_hook_fn, "si", event, cycle);
    if (!r) {
        report_event_exception("hook-error", cycle);
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

static int loop_subinterpreters(int cycles, int hooked, int isolated) {
    if (init_main_interpreter(hooked) < 0) return 2;
    PyThreadState *main_tstate = PyThreadState_Get();
    if (hooked) write_sample(0, 1);
    if (load_main_hook() < 0 || call_main_hook("start", 0) < 0) return 2;
    for (int cycle = 1; cycle <= cycles; cycle++) {
        PyThreadState *sub = new_sub(cycle, isolated);
        if (!sub) return 3;
        int failed = run_case(cycle);
        end_sub(sub, main_tstate, isolated);
        if (failed) return 3;
        if (hooked) write_sample(cycle, 1);
        if (call_main_hook("after", cycle) < 0) return 2;
        int stop = hooked ? harness_says_stop(cycle) : 0;
        if (stop < 0) return 3;
        if (stop) {
            cycles = cycle;
            break;
        }
    }
    if (call_main_hook("end", cycles) < 0) return 2;
    return finalize_main(cycles);
}

/* ---- parallel: N threads, each an own-GIL subinterpreter per cycle --
   Rounds are fenced by two barriers so the main thread samples while
   every worker is parked: cycle k's sample is taken after all N threads
   ended their k-th interpreter.  Each worker reports its progress, so a
   hang (killed by the harness's timeout) shows each thread's last cycle.
   Own-GIL interpreters exist from 3.12 on; before, the mode is refused. */
#if PY_VERSION_HEX >= 0x030C0000
static pthread_barrier_t round_done, round_go;
static atomic_int stop_all;
static int parallel_cycles;
static PyInterpreterState *main_interp;

/* Workers wait at this gate until all of them exist: the barriers count
   threads + 1, so one pthread_create failing would leave every started
   worker, and the main thread, at the first barrier for good.  The gate
   opens with 1 (go) or -1 (give up: the workers return at once).
   pthread lock, wait and barrier calls on objects initialized here have
   no error to report (POSIX lists none for them), so are not checked. */
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t start_cond = PTHREAD_COND_INITIALIZER;
static int start_state; /* under start_lock */

static int wait_at_gate(void) {
    pthread_mutex_lock(&start_lock);
    while (start_state == 0) pthread_cond_wait(&start_cond, &start_lock);
    int go = start_state > 0;
    pthread_mutex_unlock(&start_lock);
    return go;
}

static void open_gate(int state) {
    pthread_mutex_lock(&start_lock);
    start_state = state;
    pthread_cond_broadcast(&start_cond);
    pthread_mutex_unlock(&start_lock);
}

static void *parallel_worker(void *arg) {
    int thread_index = (int)(intptr_t)arg;
    if (!wait_at_gate()) return NULL;
    PyThreadState *home = PyThreadState_New(main_interp);
    if (!home) {
        fprintf(stderr, "leak-harness host: no thread state for parallel thread %d\n", thread_index);
        atomic_store(&stop_all, 1);
    }
    /* a worker that cannot run still meets the others at each barrier of
       the round, and all leave together after it */
    for (int cycle = 1; cycle <= parallel_cycles; cycle++) {
        int failed = 1;
        if (home) {
            PyEval_RestoreThread(home);
            PyThreadState *sub = new_sub(cycle, 1);
            if (sub) {
                failed = run_case(cycle);
                end_sub(sub, home, 1);
            }
            PyEval_SaveThread();
        }
        if (failed) atomic_store(&stop_all, 1);
        flockfile(out);
        begin_line("progress");
        fprintf(out, ",\"thread\":%d,\"cycle\":%d,\"t_ms\":%.3f}\n",
                thread_index, cycle, ms_since_start());
        fflush(out);
        funlockfile(out);
        pthread_barrier_wait(&round_done);
        pthread_barrier_wait(&round_go);
        if (atomic_load(&stop_all)) break;
    }
    if (home) {
        PyEval_RestoreThread(home);
        PyThreadState_Clear(home);
        PyThreadState_DeleteCurrent();
    }
    return NULL;
}

static int init_barriers(unsigned parties) {
    int err = pthread_barrier_init(&round_done, NULL, parties);
    if (!err) {
        err = pthread_barrier_init(&round_go, NULL, parties);
        if (err) pthread_barrier_destroy(&round_done);
    }
    if (err) fprintf(stderr, "leak-harness host: pthread_barrier_init: %s\n", strerror(err));
    return err ? -1 : 0;
}

static int loop_parallel(int cycles, int hooked, int threads) {
    if (threads < 1) threads = 1;
    if (init_main_interpreter(hooked) < 0) return 2;
    PyThreadState *main_tstate = PyThreadState_Get();
    main_interp = PyThreadState_GetInterpreter(main_tstate);
    if (hooked) write_sample(0, 1);
    if (load_main_hook() < 0 || call_main_hook("start", 0) < 0) return 2;
    parallel_cycles = cycles;
    if (init_barriers((unsigned)threads + 1) < 0) return 2;
    pthread_t *workers = calloc((size_t)threads, sizeof(pthread_t));
    if (!workers) {
        fprintf(stderr, "leak-harness host: out of memory for %d threads\n", threads);
        return 2;
    }
    PyEval_SaveThread();
    int started = 0, err = 0;
    while (started < threads &&
           !(err = pthread_create(&workers[started], NULL, parallel_worker, (void *)(intptr_t)started)))
        started++;
    open_gate(started == threads ? 1 : -1);
    int rc = 0;
    if (started < threads) {
        fprintf(stderr, "leak-harness host: cannot start parallel thread %d of %d: %s\n",
                started + 1, threads, strerror(err));
        rc = 2;
    }
    for (int cycle = 1; rc == 0 && cycle <= cycles; cycle++) {
        pthread_barrier_wait(&round_done);
        if (!atomic_load(&stop_all)) {
            PyEval_RestoreThread(main_tstate);
            if (hooked) write_sample(cycle, 1);
            if (call_main_hook("after", cycle) < 0) {
                atomic_store(&stop_all, 1);
                rc = 2;
            }
            PyEval_SaveThread();
        } else {
            rc = 3;
        }
        pthread_barrier_wait(&round_go);
        if (atomic_load(&stop_all)) break;
    }
    for (int i = 0; i < started; i++) {
        err = pthread_join(workers[i], NULL);
        if (err) fprintf(stderr, "leak-harness host: pthread_join: %s\n", strerror(err));
    }
    free(workers);
    PyEval_RestoreThread(main_tstate);
    if (rc == 0 && call_main_hook("end", cycles) < 0) rc = 2;
    if (rc != 0) {
        Py_CLEAR(main_hook_fn);
        crash_report_phase(PHASE_FINALIZE);
        Py_FinalizeEx();
        return rc;
    }
    return finalize_main(cycles);
}
#else
static int loop_parallel(int cycles, int hooked, int threads) {
    (void)cycles, (void)hooked, (void)threads;
    write_event("error", 0, "NotSupported", "parallel mode needs Python 3.12 or newer");
    return 2;
}
#endif

/* A whole decimal number in [low, high] from `text`, else a message and
   -1: atoi turned 4294967296 cycles into 0, and a host that ran no cycle
   looked clean. */
static long parse_count(const char *what, const char *text, long low, long high) {
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || end == text || *end || value < low || value > high) {
        fprintf(stderr, "leak-harness host: %s must be a whole number from %ld to %ld (got %s)\n",
                what, low, high, text);
        return -1;
    }
    return value;
}

/* An address offset (decimal, or hex with 0x) from `text` into *value: 0,
   else a message and -1.  strtoul alone read "12junk" as 12 and a
   negative number as a huge one, and the dumper would be called there. */
static int parse_offset(const char *what, const char *text, unsigned long *value) {
    char *end = NULL;
    errno = 0;
    unsigned long parsed = strtoul(text, &end, 0);
    if (errno || end == text || *end || text[0] == '-' || text[0] == '+') {
        fprintf(stderr, "leak-harness host: %s must be an offset, decimal or 0x hex (got %s)\n",
                what, text);
        return -1;
    }
    *value = parsed;
    return 0;
}

/* Reads the run's token from `fd` (a pipe the harness filled and closed)
   and closes it before Python starts, so the case cannot read it: it is in
   neither argv nor the environment, which /proc/self shows the case. */
static int read_token(const char *fd_text) {
    long fd = parse_count("--token-fd", fd_text, 0, INT_MAX);
    if (fd < 0) return -1;
    size_t got = 0;
    while (got < sizeof run_token - 1) {
        ssize_t n = read((int)fd, run_token + got, sizeof run_token - 1 - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close((int)fd);
    while (got && (run_token[got - 1] == '\n')) got--;
    run_token[got] = 0;
    for (size_t i = 0; i < got; i++) {
        char c = run_token[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) got = 0;
    }
    if (!got) {
        fprintf(stderr, "leak-harness host: no token (hex digits) on --token-fd %s\n", fd_text);
        return -1;
    }
    return 0;
}

/* --no-core-dump: the soft RLIMIT_CORE to 0 for the host and all it starts.
   A crash is reported by the crash handler (crash_report.c) and rerun bare;
   with `ulimit -c unlimited` and the kernel's default core_pattern, each
   crashing host (3.12.1 finalize, import decimal) left a 93 MB `core` in
   the harness's directory, two per crash case with the bare rerun. */
static int no_core_dump;

static int drop_core_limit(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_CORE, &limit) != 0) {
        perror("leak-harness host: getrlimit(RLIMIT_CORE)");
        return -1;
    }
    limit.rlim_cur = 0;
    if (setrlimit(RLIMIT_CORE, &limit) != 0) {
        perror("leak-harness host: setrlimit(RLIMIT_CORE)");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr,
                "usage: %s MODE CYCLES CASE_FILE OUT_FD PROGRAM [--site] [-X OPT]... "
                "[--threads N] [--main-hook FILE] [--path-file FILE] [--token-fd FD]\n"
                "       [--crash-file FILE [--traceback-dumper OFFSET]] [--warmup W] [--pymem-sites]\n"
                "       [--stop-fd FD --ask-from K] [--no-core-dump]\n",
                argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    /* cycle numbers are ints throughout: the last one must fit */
    long cycles = parse_count("CYCLES", argv[2], 0, INT_MAX - 1);
    if (cycles < 0) return 2;
    total_cycles = (int)cycles;
    long threads = 1;
    const char *crash_file = NULL;
    unsigned long traceback_dumper = 0;
    program = argv[5];
    xoptions = calloc((size_t)argc, sizeof(char *));
    if (!xoptions) return 2;
    for (int i = 6; i < argc; i++) {
        if (!strcmp(argv[i], "--site")) use_site = 1;
        else if (!strcmp(argv[i], "--pymem-sites")) {
            if (!LH_NATIVE_COUNTING) {
                fprintf(stderr, "leak-harness host: --pymem-sites needs the counting host\n");
                return 2;
            }
            pymem_sites_on = 1;
        }
        else if (!strcmp(argv[i], "--no-core-dump")) no_core_dump = 1;
        else if (!strcmp(argv[i], "-X") && i + 1 < argc) xoptions[n_xoptions++] = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            threads = parse_count("--threads", argv[++i], 1, 4096);
            if (threads < 0) return 2;
        }
        else if (!strcmp(argv[i], "--main-hook") && i + 1 < argc) main_hook_file = argv[++i];
        else if (!strcmp(argv[i], "--path-file") && i + 1 < argc) {
            if (read_path_file(argv[++i]) < 0) return 2;
        }
        else if (!strcmp(argv[i], "--token-fd") && i + 1 < argc) {
            if (read_token(argv[++i]) < 0) return 2;
        }
        else if (!strcmp(argv[i], "--crash-file") && i + 1 < argc) crash_file = argv[++i];
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) {
            warmup_cycles = (int)parse_count("--warmup", argv[++i], 0, INT_MAX - 1);
            if (warmup_cycles < 0) return 2;
        }
        else if (!strcmp(argv[i], "--stop-fd") && i + 1 < argc) {
            long fd = parse_count("--stop-fd", argv[++i], 0, INT_MAX);
            if (fd < 0) return 2;
            stop_fd = (int)fd;
            /* processes the case starts must not hold it (nor read its answers) */
            int flags = fcntl(stop_fd, F_GETFD);
            if (flags < 0 || fcntl(stop_fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
                fprintf(stderr, "leak-harness host: --stop-fd %d: %s\n", stop_fd, strerror(errno));
                return 2;
            }
        }
        else if (!strcmp(argv[i], "--ask-from") && i + 1 < argc) {
            long from = parse_count("--ask-from", argv[++i], 1, INT_MAX - 1);
            if (from < 0) return 2;
            ask_from = (int)from;
        }
        else if (!strcmp(argv[i], "--traceback-dumper") && i + 1 < argc) {
            if (parse_offset("--traceback-dumper", argv[++i], &traceback_dumper) < 0) return 2;
        }
        else {
            fprintf(stderr, "leak-harness host: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (no_core_dump && drop_core_limit() < 0) return 2;
    if (read_whole_file(argv[3], &case_source) < 0) {
        fprintf(stderr, "leak-harness host: cannot read the case file %s: %s\n", argv[3],
                strerror(errno));
        return 2;
    }
    long out_fd = parse_count("OUT_FD", argv[4], 0, INT_MAX);
    if (out_fd < 0) return 2;
    out = fdopen((int)out_fd, "w");
    if (!out) {
        perror("leak-harness host: output fd");
        return 2;
    }
    if (clock_gettime(CLOCK_MONOTONIC, &t_start) != 0) {
        perror("leak-harness host: clock_gettime");
        return 2;
    }
    find_optional_symbols();
    /* memcheck reports a crash itself, with the faulting access */
#ifdef HOST_HAS_MEMCHECK
    if (crash_file && !RUNNING_ON_VALGRIND && crash_report_init(crash_file, traceback_dumper) < 0) return 2;
#else
    if (crash_file && crash_report_init(crash_file, traceback_dumper) < 0) return 2;
#endif
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
        perror("leak-harness host: PR_SET_CHILD_SUBREAPER");
        return 2;
    }

    int rc;
    if (main_hook_file && strstr(mode, "finalize")) {
        fprintf(stderr, "leak-harness host: --main-hook needs a mode with a lasting main interpreter\n");
        return 2;
    }
    sampled = strncmp(mode, "bare-", 5) != 0;
    if (stop_fd >= 0 && (strstr(mode, "parallel") || !sampled)) {
        /* no sample to answer in bare modes; parallel rounds are fenced by barriers */
        fprintf(stderr, "leak-harness host: --stop-fd needs a hooked sequential mode, not %s\n", mode);
        return 2;
    }
    int n = (int)cycles, t = (int)threads;
    if (!strcmp(mode, "parallel")) rc = loop_parallel(n, 1, t);
    else if (!strcmp(mode, "bare-parallel")) rc = loop_parallel(n, 0, t);
    else if (!strcmp(mode, "finalize")) rc = loop_finalize(n, 1);
    else if (!strcmp(mode, "bare-finalize")) rc = loop_finalize(n, 0);
    else if (!strcmp(mode, "subinterpreter")) rc = loop_subinterpreters(n, 1, 1);
    else if (!strcmp(mode, "bare-subinterpreter")) rc = loop_subinterpreters(n, 0, 1);
    else if (!strcmp(mode, "legacy-subinterpreter")) rc = loop_subinterpreters(n, 1, 0);
    else if (!strcmp(mode, "bare-legacy-subinterpreter")) rc = loop_subinterpreters(n, 0, 0);
    else {
        fprintf(stderr, "leak-harness host: unknown mode %s\n", mode);
        rc = 2;
    }
    if (rc == 0) {
        if (LH_NATIVE_COUNTING && warmup_cycles >= 0) write_objects();
        flockfile(out);
        begin_line("done");
        fprintf(out, ",\"t_ms\":%.3f}\n", ms_since_start());
        funlockfile(out);
    }
    /* a write to the sample pipe can fail late (buffered): in the exit status */
    if ((fflush(out) != 0 || ferror(out)) && rc == 0) {
        perror("leak-harness host: writing the samples");
        rc = 2;
    }
    free(case_source);
    return rc;
}
