/* The exact sizes of the few live blocks a compact map entry cannot hold.

   Both block maps keep a block's size in a few bits of its entry (host.c's
   PyMem map in 14, native_alloc.c's malloc map in 18); a block too big for
   the field stores the field's top value there and its exact size here.
   Such blocks are rare (a perf probe of nine stdlib imports, 3.12.1
   finalize: ~110 of ~90,000 hooked allocations a cycle, never 2,048 live
   at once), so a table under one spin lock costs nothing measurable.

   Open addressing keyed by address, linear probing, backward-shift
   deletion (no tombstones, so a long run of frees leaves no slow probes);
   the table moves to a mapping twice the size when half full.  Its memory
   comes from mmap, never malloc: the table serves the allocator hooks and
   must not be seen by them.  A fork while another thread holds the lock:
   the owner's atfork handlers call size_table_lock before and
   size_table_unlock after, so the child gets a free lock and a whole table.

   Included by both translation units of the counting host; everything is
   static inline, so each keeps its own table and nothing is exported. */
#ifndef LEAK_HARNESS_SIZE_TABLE_H
#define LEAK_HARNESS_SIZE_TABLE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

typedef struct {
    uintptr_t ptr; /* 0: a free slot */
    size_t size;
} size_slot_t;

typedef struct {
    size_slot_t *slots; /* NULL until the first store */
    size_t capacity;    /* a power of two, or 0 */
    size_t live;
    size_t first_capacity;
    atomic_flag lock;
} size_table_t;

#define SIZE_TABLE_INIT(first) {NULL, 0, 0, (first), ATOMIC_FLAG_INIT}

/* Blocks are at least 16-byte aligned: the low four bits carry nothing. */
static inline size_t size_table_home(uintptr_t p, size_t capacity) {
    return (size_t)(((p >> 4) * 0x9E3779B97F4A7C15ull) >> 32) & (capacity - 1);
}

static inline void size_table_lock(size_table_t *table) {
    while (atomic_flag_test_and_set_explicit(&table->lock, memory_order_acquire)) {
    }
}

static inline void size_table_unlock(size_table_t *table) {
    atomic_flag_clear_explicit(&table->lock, memory_order_release);
}

/* Under the lock: room for one more slot, or 0 when no mapping could be
   had (the caller decides what out of address space means for it). */
static inline int size_table_room(size_table_t *table) {
    if (2 * (table->live + 1) <= table->capacity) return 1;
    size_t capacity = table->capacity ? table->capacity * 2 : table->first_capacity;
    void *mapped = mmap(NULL, capacity * sizeof(size_slot_t), PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mapped == MAP_FAILED) return 0;
    size_slot_t *fresh = mapped;
    for (size_t i = 0; i < table->capacity; i++) {
        if (!table->slots[i].ptr) continue;
        size_t j = size_table_home(table->slots[i].ptr, capacity);
        while (fresh[j].ptr) j = (j + 1) & (capacity - 1);
        fresh[j] = table->slots[i];
    }
    if (table->slots) munmap(table->slots, table->capacity * sizeof(size_slot_t));
    table->slots = fresh;
    table->capacity = capacity;
    return 1;
}

/* Records `size` for the block at p (replacing a stale record of p);
   0 when the table could not grow, and then nothing is recorded. */
static inline int size_table_store(size_table_t *table, uintptr_t p, size_t size) {
    size_table_lock(table);
    int stored = size_table_room(table);
    if (stored) {
        size_t mask = table->capacity - 1, i = size_table_home(p, table->capacity);
        while (table->slots[i].ptr && table->slots[i].ptr != p) i = (i + 1) & mask;
        if (!table->slots[i].ptr) table->live++;
        table->slots[i] = (size_slot_t){p, size};
    }
    size_table_unlock(table);
    return stored;
}

/* The size recorded for p, 0 if none; with `take`, the record is removed. */
static inline size_t size_table_find(size_table_t *table, uintptr_t p, int take) {
    size_t size = 0;
    size_table_lock(table);
    if (table->capacity) {
        size_t mask = table->capacity - 1, i = size_table_home(p, table->capacity);
        while (table->slots[i].ptr && table->slots[i].ptr != p) i = (i + 1) & mask;
        if (table->slots[i].ptr) {
            size = table->slots[i].size;
            if (take) {
                /* backward shift: a later slot of the run moves into the
                   hole unless its home lies cyclically in (hole, j] */
                size_t hole = i;
                for (size_t j = (i + 1) & mask; table->slots[j].ptr; j = (j + 1) & mask) {
                    size_t home = size_table_home(table->slots[j].ptr, table->capacity);
                    if (((j - home) & mask) >= ((j - hole) & mask)) {
                        table->slots[hole] = table->slots[j];
                        hole = j;
                    }
                }
                table->slots[hole] = (size_slot_t){0, 0};
                table->live--;
            }
        }
    }
    size_table_unlock(table);
    return size;
}

#endif
