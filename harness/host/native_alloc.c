/* leak-harness host: the C allocator, counted for the whole process.
 *
 * The host executable defines malloc, calloc, realloc, reallocarray, free,
 * posix_memalign, aligned_alloc, memalign, valloc and pvalloc.  A symbol of
 * the executable comes first in the global lookup scope, so every shared
 * object (libpython, extension modules, libc itself: glibc calls malloc &
 * co. through interposable references, so its strdup, fopen, ... land here
 * too) calls these.  They forward to glibc's own entry points (__libc_malloc
 * & co., exported for this purpose), which need no dlsym and so no
 * bootstrap allocator; the pointers handed out are glibc's own, so
 * malloc_usable_size, mallinfo2 and malloc_trim keep working unchanged.
 *
 * What is recorded: each block's exact requested size and its caller, in a
 * shadow map keyed by address (like host.c's map for PyMem blocks), and per
 * caller the live blocks and bytes.  Not recorded: what the hooked PyMem
 * domains hand to malloc (host.c counts those; lh_in_pymem_hook is raised
 * around every call into the wrapped PyMem allocator), so pymalloc's large
 * blocks and PyMem_RawMalloc are not counted twice.  free always untracks
 * a block recorded here, whichever path frees it: CPython swaps in the
 * default raw allocator for short stretches (some raw frees bypass the PyMem
 * hook), and those frees still reach this free.
 *
 * Not built into the host the valgrind and memray backends run: memcheck
 * replaces malloc in libc.so by its preload, so a malloc of the executable
 * would win the lookup and memcheck would see only the __libc_* calls under
 * it (or nothing, depending on which names it redirects); memray patches the
 * GOT entries of malloc in every object and would record our forwarding
 * calls as well as, or instead of, the program's.  A separate binary
 * without this file keeps both tools exactly as they were.
 *
 * Threads: lock free but for blocks of 256 KiB and up.  A block's shadow
 * entry is written by the thread that owns the address (after glibc
 * returned it, before it goes back), sites are claimed by compare-and-swap,
 * counts are atomic adds; the exact sizes of the big blocks sit in a table
 * under a spin lock, which fork hands to the child free.
 */
#define _GNU_SOURCE
#include "native_alloc.h"
#include "size_table.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>
#include <unwind.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t nmemb, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void __libc_free(void *ptr);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void *__libc_valloc(size_t size);
extern void *__libc_pvalloc(size_t size);

_Thread_local int lh_in_pymem_hook;
static _Thread_local int in_unwind;

/* ---- sites: caller -> live blocks/bytes -------------------------------- */
/* Open addressing on the return address; slot 0 is "caller not known /
   table full".  8192 slots: a run of CPython with a few extensions has a
   few hundred distinct callers of malloc. */
#define SITE_BITS 13
#define SITE_COUNT ((size_t)1 << SITE_BITS)
_Static_assert(SITE_COUNT == LH_NATIVE_SITE_CAPACITY, "native_alloc.h states the table size");
#define SITE_PROBES 64

typedef struct {
    _Atomic uintptr_t pc;
    atomic_llong blocks;
    atomic_llong bytes;
} site_slot_t;

static site_slot_t sites[SITE_COUNT];
/* the callers of PyMem blocks (--pymem-sites): the same layout, apart */
static site_slot_t pymem_sites[SITE_COUNT];

static unsigned slot_in(site_slot_t *table, uintptr_t pc) {
    if (!pc) return 0;
    size_t hash = (size_t)((pc * 0x9E3779B97F4A7C15ull) >> (64 - SITE_BITS));
    for (size_t probe = 0; probe < SITE_PROBES; probe++) {
        size_t i = (hash + probe) & (SITE_COUNT - 1);
        if (i == 0) continue;
        uintptr_t seen = atomic_load_explicit(&table[i].pc, memory_order_relaxed);
        if (seen == pc) return (unsigned)i;
        if (seen == 0) {
            if (atomic_compare_exchange_strong(&table[i].pc, &seen, pc)) return (unsigned)i;
            if (seen == pc) return (unsigned)i; /* another thread claimed it for pc */
        }
    }
    return 0;
}

static unsigned site_of(uintptr_t pc) { return slot_in(sites, pc); }

/* ---- shadow map: address -> (size, site) ------------------------------- */
/* glibc's blocks are 16-byte aligned (x86-64, arm64), so one 32-bit entry
   per 16-byte granule below 2^47: (size << 14) | (site << 1) | 1, 0 when no
   recorded block starts there; a block of BIG_SIZE bytes or more has
   BIG_SIZE in its size field and its exact size in the side table below.
   32 bits, not 64: the interposed free's load of the entry is a cache miss
   more often than not, and a line of entries now covers 256 bytes of heap.
   Leaves of 2^20 entries (4 MiB reserved, MAP_NORESERVE: resident only
   where blocks are) are made on first use. */
#define ADDRESS_BITS 47
#define GRANULE_BITS 4
#define LEAF_BITS 20
#define LEAF_ENTRIES ((size_t)1 << LEAF_BITS)
#define TOP_ENTRIES ((size_t)1 << (ADDRESS_BITS - GRANULE_BITS - LEAF_BITS))
#define SIZE_SHIFT (SITE_BITS + 1)
#define BIG_SIZE ((1u << (32 - SIZE_SHIFT)) - 1) /* 262143 */

typedef _Atomic uint32_t entry_t;
static _Atomic(_Atomic(entry_t *) *) top;

static void *reserve(size_t bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Exact sizes of the live recorded blocks of 256 KiB or more: see
   size_table.h (rare: the table starts at 256 slots).  A block the table
   has no room for goes unrecorded, like one without a leaf. */
static size_table_t big_sizes = SIZE_TABLE_INIT(256);

static void big_before_fork(void) { size_table_lock(&big_sizes); }
static void big_after_fork(void) { size_table_unlock(&big_sizes); }

/* The entry of p; NULL when p is not a granule address below 2^47, or when
   `create` is 0 and no leaf holds it yet (then nothing is recorded there). */
static entry_t *entry_of(const void *ptr, int create) {
    uintptr_t p = (uintptr_t)ptr;
    if (__builtin_expect((p & ((1u << GRANULE_BITS) - 1)) || (p >> ADDRESS_BITS), 0)) return NULL;
    _Atomic(entry_t *) *table = atomic_load_explicit(&top, memory_order_acquire);
    if (__builtin_expect(!table, 0)) {
        if (!create) return NULL;
        _Atomic(entry_t *) *fresh = reserve(TOP_ENTRIES * sizeof(*fresh));
        if (!fresh) return NULL; /* out of address space: the block goes unrecorded */
        if (atomic_compare_exchange_strong(&top, &table, fresh)) table = fresh;
        else munmap(fresh, TOP_ENTRIES * sizeof(*fresh));
    }
    size_t granule = p >> GRANULE_BITS;
    _Atomic(entry_t *) *slot = &table[granule >> LEAF_BITS];
    entry_t *leaf = atomic_load_explicit(slot, memory_order_acquire);
    if (__builtin_expect(!leaf, 0)) {
        if (!create) return NULL;
        entry_t *fresh = reserve(LEAF_ENTRIES * sizeof(entry_t));
        if (!fresh) return NULL;
        if (atomic_compare_exchange_strong(slot, &leaf, fresh)) leaf = fresh;
        else munmap(fresh, LEAF_ENTRIES * sizeof(entry_t));
    }
    return &leaf[granule & (LEAF_ENTRIES - 1)];
}

static void count_block(uint32_t entry, size_t size, long long sign) {
    site_slot_t *site = &sites[(entry >> 1) & (SITE_COUNT - 1)];
    atomic_fetch_add_explicit(&site->blocks, sign, memory_order_relaxed);
    atomic_fetch_add_explicit(&site->bytes, sign * (long long)size, memory_order_relaxed);
}

/* The size of the block of `entry` at p; a big one leaves the side table. */
static size_t size_taken(void *p, uint32_t entry) {
    size_t size = entry >> SIZE_SHIFT;
    return __builtin_expect(size == BIG_SIZE, 0) ? size_table_find(&big_sizes, (uintptr_t)p, 1) : size;
}

/* Writes p's entry (the slot holds nothing live) and counts the block. */
static void store(entry_t *slot, void *p, size_t size, unsigned site) {
    if (__builtin_expect(size >= BIG_SIZE, 0) && !size_table_store(&big_sizes, (uintptr_t)p, size)) return;
    uint32_t size_field = size < BIG_SIZE ? (uint32_t)size : BIG_SIZE;
    uint32_t entry = (size_field << SIZE_SHIFT) | ((uint32_t)site << 1) | 1u;
    atomic_store_explicit(slot, entry, memory_order_relaxed);
    count_block(entry, size, +1);
}

static void record(void *p, size_t size, uintptr_t caller) {
    entry_t *slot = entry_of(p, 1);
    if (!slot) return;
    /* a stale entry: its block went back to glibc by a path that is not
       ours (none is known; kept exact should one exist) */
    uint32_t old = atomic_load_explicit(slot, memory_order_relaxed);
    if (__builtin_expect(old != 0, 0)) {
        atomic_store_explicit(slot, 0, memory_order_relaxed);
        count_block(old, size_taken(p, old), -1);
    }
    store(slot, p, size, site_of(caller));
}

/* Forgets p's block before it goes back to glibc (after that another
   thread may own the address); returns its entry (0 when unrecorded) and
   its size through *size. */
static uint32_t untrack(void *p, size_t *size) {
    entry_t *slot = entry_of(p, 0);
    if (!slot) return 0;
    uint32_t old = atomic_load_explicit(slot, memory_order_relaxed);
    if (!old) return 0;
    atomic_store_explicit(slot, 0, memory_order_relaxed);
    *size = size_taken(p, old);
    count_block(old, *size, -1);
    return old;
}

/* Records again a block untrack() forgot (its realloc failed). */
static void restore(void *p, uint32_t entry, size_t size) {
    entry_t *slot = entry_of(p, 1);
    if (slot) store(slot, p, size, (entry >> 1) & (SITE_COUNT - 1));
}

/* ---- who called: the first return address outside libc, ld.so, host --- */
typedef struct {
    uintptr_t start, end;
} range_t;

/* the host's text, libc's, the dynamic loader's; then libpython's, which
   only the PyMem walk skips (a malloc made by CPython is CPython's) */
static range_t skipped[4];
#define NATIVE_SKIPPED 3
#define PYMEM_SKIPPED 4
static atomic_int ranges_ready;
extern char __executable_start[], etext[];

static int in_ranges(uintptr_t pc, int count) {
    for (int i = 0; i < count; i++) {
        if (pc >= skipped[i].start && pc < skipped[i].end) return 1;
    }
    return 0;
}

static int in_skipped(uintptr_t pc) { return in_ranges(pc, NATIVE_SKIPPED); }

typedef struct {
    uintptr_t found;
    int frames_left;
    int skip; /* ranges skipped: NATIVE_SKIPPED or PYMEM_SKIPPED */
} walk_t;

/* stops the walk at the first frame outside the skipped objects */
static _Unwind_Reason_Code visit_frame(struct _Unwind_Context *context, void *arg) {
    walk_t *walk = arg;
    uintptr_t pc = (uintptr_t)_Unwind_GetIP(context);
    if (pc && !in_ranges(pc, walk->skip)) {
        walk->found = pc;
        return _URC_NORMAL_STOP;
    }
    return --walk->frames_left > 0 ? _URC_NO_REASON : _URC_NORMAL_STOP;
}

/* Calls from libc (strdup, fopen, ...) and the host are made on someone
   else's behalf: unwind to the first frame outside them, stopping there
   (perf: a full 16-frame backtrace() was ~1% of a `pass` cycle, from the
   libc calls CPython makes at each initialization).  The unwinder is
   warmed at start-up and not re-entered (it may allocate). */
static uintptr_t caller_of(uintptr_t ret) {
    if (!atomic_load_explicit(&ranges_ready, memory_order_acquire) || !in_skipped(ret)) return ret;
    if (in_unwind) return ret;
    in_unwind = 1;
    walk_t walk = {0, 16, NATIVE_SKIPPED};
    _Unwind_Backtrace(visit_frame, &walk);
    in_unwind = 0;
    return walk.found ? walk.found : ret;
}

static int find_ranges(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    uintptr_t loader_base = *(uintptr_t *)data;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    int which;
    if (!strncmp(base, "libc.so", 7)) which = 1;
    else if (loader_base && info->dlpi_addr == loader_base) which = 2;
    else if (!strncmp(base, "libpython", 9)) which = 3;
    else return 0;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (start < lo) lo = start;
        if (start + ph->p_memsz > hi) hi = start + ph->p_memsz;
    }
    if (hi) skipped[which] = (range_t){lo, hi};
    return 0;
}

#if defined(__x86_64__) && defined(__GLIBC__)
void lh_dlsym_bind(void);
extern void *lh_glibc_dlsym;
#endif

__attribute__((constructor)) static void native_alloc_start(void) {
#if defined(__x86_64__) && defined(__GLIBC__)
    /* bound here, before main and its threads; a library's constructor that
       calls dlsym earlier binds it on the way (still one thread) */
    if (!__atomic_load_n(&lh_glibc_dlsym, __ATOMIC_ACQUIRE)) lh_dlsym_bind();
#endif
    skipped[0] = (range_t){(uintptr_t)__executable_start, (uintptr_t)etext};
    uintptr_t loader_base = (uintptr_t)getauxval(AT_BASE);
    dl_iterate_phdr(find_ranges, &loader_base);
    /* the unwinder's first walk sets up its object lookup: now, not inside
       an allocation */
    walk_t walk = {0, 4, NATIVE_SKIPPED};
    in_unwind = 1;
    _Unwind_Backtrace(visit_frame, &walk);
    in_unwind = 0;
    atomic_store_explicit(&ranges_ready, 1, memory_order_release);
    int failed = pthread_atfork(big_before_fork, big_after_fork, big_after_fork);
    if (failed) {
        fprintf(stderr, "leak-harness host: pthread_atfork: %s\n", strerror(failed));
        abort();
    }
}

/* ---- the interposed functions ------------------------------------------ */
#define RETURN_ADDRESS() ((uintptr_t)__builtin_return_address(0))

static inline void *took(void *p, size_t size, uintptr_t ret) {
    if (p && !lh_in_pymem_hook) record(p, size, caller_of(ret));
    return p;
}

void *malloc(size_t size) {
    return took(__libc_malloc(size), size, RETURN_ADDRESS());
}

void *calloc(size_t nmemb, size_t size) {
    /* glibc checks nmemb * size for overflow; on success it fits */
    return took(__libc_calloc(nmemb, size), nmemb * size, RETURN_ADDRESS());
}

static void *realloc_from(void *ptr, size_t size, uintptr_t ret) {
    if (!ptr) return took(__libc_realloc(NULL, size), size, ret);
    size_t old_size = 0;
    uint32_t old = untrack(ptr, &old_size);
    void *p = __libc_realloc(ptr, size);
    if (!p) {
        /* size 0: glibc freed ptr; otherwise ptr is still there */
        if (old && size != 0) restore(ptr, old, old_size);
        return p;
    }
    /* a block recorded here stays recorded (unless it now belongs to a
       PyMem domain); a block never recorded stays unseen */
    if (old) return took(p, size, ret);
    if (p != ptr) untrack(p, &old_size); /* drop any stale entry at the new address */
    return p;
}

void *realloc(void *ptr, size_t size) {
    return realloc_from(ptr, size, RETURN_ADDRESS());
}

void *reallocarray(void *ptr, size_t nmemb, size_t size) {
    size_t bytes;
    if (__builtin_mul_overflow(nmemb, size, &bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc_from(ptr, bytes, RETURN_ADDRESS());
}

void free(void *ptr) {
    size_t size;
    if (ptr) untrack(ptr, &size);
    __libc_free(ptr);
}

void *memalign(size_t alignment, size_t size) {
    return took(__libc_memalign(alignment, size), size, RETURN_ADDRESS());
}

/* glibc 2.36's aligned_alloc is memalign itself (same address); forwarding
   there keeps its behaviour for any alignment. */
void *aligned_alloc(size_t alignment, size_t size) {
    return took(__libc_memalign(alignment, size), size, RETURN_ADDRESS());
}

int posix_memalign(void **out, size_t alignment, size_t size) {
    if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0 || !alignment)
        return EINVAL;
    void *p = __libc_memalign(alignment, size);
    if (!p) return ENOMEM;
    *out = took(p, size, RETURN_ADDRESS());
    return 0;
}

void *valloc(size_t size) {
    return took(__libc_valloc(size), size, RETURN_ADDRESS());
}

void *pvalloc(size_t size) {
    return took(__libc_pvalloc(size), size, RETURN_ADDRESS());
}

/* ---- dlsym: the allocator looked up by handle -------------------------- */
/* dlsym(handle, "malloc") on an explicit handle (ctypes.CDLL("libc.so.6"),
 * ctypes.util.find_library("c")) searches that object and its dependencies,
 * never the executable, and so returns glibc's own malloc: every block a
 * case took that way was unseen (a +100 kB a cycle leak read `clean`).  The
 * executable therefore defines dlsym too.  For RTLD_DEFAULT and RTLD_NEXT,
 * glibc's answer depends on the caller (its return address): those calls
 * jump on to glibc's dlsym untouched, with the caller's return address in
 * place, which only a jump keeps, hence the assembly.  For an explicit
 * handle the caller plays no part; glibc's answer is taken, and where it is
 * one of glibc's allocator entry points the matching function above is
 * returned instead.  x86-64 only (the jump is written for it); elsewhere
 * dlsym is not defined here and the gap stays (README).  dlvsym is left to
 * glibc: no loader of Python code looks the allocator up by version. */
#if defined(__x86_64__) && defined(__GLIBC__)
typedef void *(*dlsym_fn)(void *, const char *);
/* glibc's dlsym, set once (lh_dlsym_bind); read by the jump below */
void *lh_glibc_dlsym;

static struct {
    const char *name;
    void *ours;
    void *glibc;
} own_allocators[] = {
    {"malloc", (void *)malloc, NULL},         {"calloc", (void *)calloc, NULL},
    {"realloc", (void *)realloc, NULL},       {"reallocarray", (void *)reallocarray, NULL},
    {"free", (void *)free, NULL},             {"posix_memalign", (void *)posix_memalign, NULL},
    {"aligned_alloc", (void *)aligned_alloc, NULL}, {"memalign", (void *)memalign, NULL},
    {"valloc", (void *)valloc, NULL},         {"pvalloc", (void *)pvalloc, NULL},
};
#define N_OWN_ALLOCATORS (sizeof own_allocators / sizeof own_allocators[0])

/* glibc's dlsym (by version: the name alone would find this one), then
 * glibc's address of each allocator name, asked with RTLD_NEXT from here
 * (the executable), so libc's.  Called by native_alloc_start, before main
 * and its threads, or by the jump where a library's constructor calls
 * dlsym before that (one thread then too). */
__attribute__((used)) void lh_dlsym_bind(void) {
    void *found = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
    if (!found) found = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5");
    if (!found) {
        static const char message[] = "leak-harness host: glibc's dlsym not found\n";
        ssize_t ignored = write(2, message, sizeof message - 1);
        (void)ignored;
        abort();
    }
    for (size_t i = 0; i < N_OWN_ALLOCATORS; i++)
        own_allocators[i].glibc = ((dlsym_fn)found)(RTLD_NEXT, own_allocators[i].name);
    __atomic_store_n(&lh_glibc_dlsym, found, __ATOMIC_RELEASE);
}

/* An explicit handle: glibc's answer, with its allocator swapped for ours. */
__attribute__((used)) void *lh_dlsym_explicit(void *handle, const char *name) {
    void *found = ((dlsym_fn)__atomic_load_n(&lh_glibc_dlsym, __ATOMIC_ACQUIRE))(handle, name);
    if (found) {
        for (size_t i = 0; i < N_OWN_ALLOCATORS; i++)
            if (found == own_allocators[i].glibc) return own_allocators[i].ours;
    }
    return found;
}

/* dlsym(handle, name): RTLD_DEFAULT (0) and RTLD_NEXT (-1) jump to glibc's
 * dlsym with the caller's frame as it was; an explicit handle jumps to
 * lh_dlsym_explicit.  Before the first binding, lh_dlsym_bind runs with
 * the arguments saved (the stack re-aligned to 16 for the call). */
__asm__(
    "    .text\n"
    "    .globl dlsym\n"
    "    .type dlsym, @function\n"
    "dlsym:\n"
    "    .cfi_startproc\n"
    "    movq lh_glibc_dlsym(%rip), %rax\n"
    "    testq %rax, %rax\n"
    "    jz 2f\n"
    "    cmpq $-1, %rdi\n"
    "    je 1f\n"
    "    testq %rdi, %rdi\n"
    "    je 1f\n"
    "    jmp lh_dlsym_explicit\n"
    "1:  jmp *%rax\n"
    "2:  pushq %rdi\n"
    "    .cfi_adjust_cfa_offset 8\n"
    "    pushq %rsi\n"
    "    .cfi_adjust_cfa_offset 8\n"
    "    subq $8, %rsp\n"
    "    .cfi_adjust_cfa_offset 8\n"
    "    call lh_dlsym_bind\n"
    "    addq $8, %rsp\n"
    "    .cfi_adjust_cfa_offset -8\n"
    "    popq %rsi\n"
    "    .cfi_adjust_cfa_offset -8\n"
    "    popq %rdi\n"
    "    .cfi_adjust_cfa_offset -8\n"
    "    jmp dlsym\n"
    "    .cfi_endproc\n"
    "    .size dlsym, .-dlsym\n");
#endif

/* ---- PyMem sites (--pymem-sites) ---------------------------------------- */
/* Called by the host's PyMem hook for each block (explaining runs only):
   the walk passes the hook, CPython's allocator and whatever of CPython
   called it, and stops at the first frame of anything else: an extension's
   call of PyMem_Malloc, PyType_FromSpec, PyDict_SetItemString, ...  A
   block made with no such frame within LH_PYMEM_SITE_DEPTH frames is
   CPython's (LH_PYMEM_IN_CPYTHON).  0 (no site) only when the unwinder is
   busy: it may allocate, and is not re-entered. */
unsigned native_pymem_site_here(void) {
    if (!atomic_load_explicit(&ranges_ready, memory_order_acquire) || in_unwind) return 0;
    in_unwind = 1;
    walk_t walk = {0, LH_PYMEM_SITE_DEPTH, PYMEM_SKIPPED};
    _Unwind_Backtrace(visit_frame, &walk);
    in_unwind = 0;
    return slot_in(pymem_sites, walk.found ? walk.found : LH_PYMEM_IN_CPYTHON);
}

void native_pymem_count(unsigned site, long long blocks, long long bytes) {
    site_slot_t *slot = &pymem_sites[site & (SITE_COUNT - 1)];
    atomic_fetch_add_explicit(&slot->blocks, blocks, memory_order_relaxed);
    atomic_fetch_add_explicit(&slot->bytes, bytes, memory_order_relaxed);
}

/* ---- what the host reads ------------------------------------------------- */
void native_totals(long long *blocks, long long *bytes) {
    long long b = 0, n = 0;
    for (size_t i = 0; i < SITE_COUNT; i++) {
        b += atomic_load_explicit(&sites[i].blocks, memory_order_relaxed);
        n += atomic_load_explicit(&sites[i].bytes, memory_order_relaxed);
    }
    *blocks = b;
    *bytes = n;
}

static size_t live_sites(site_slot_t *table, native_site_t *out, size_t max) {
    size_t n = 0;
    for (size_t i = 0; i < SITE_COUNT && n < max; i++) {
        long long blocks = atomic_load_explicit(&table[i].blocks, memory_order_relaxed);
        long long bytes = atomic_load_explicit(&table[i].bytes, memory_order_relaxed);
        if (!blocks && !bytes) continue;
        out[n++] = (native_site_t){atomic_load_explicit(&table[i].pc, memory_order_relaxed),
                                   blocks, bytes};
    }
    return n;
}

size_t native_sites(native_site_t *out, size_t max) { return live_sites(sites, out, max); }

size_t native_pymem_sites(native_site_t *out, size_t max) { return live_sites(pymem_sites, out, max); }
