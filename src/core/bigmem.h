/*
 * bigmem.h: large zeroed tables (hash bucket arrays) on mappings the kernel
 * may back with transparent huge pages.
 *
 * Why: a hash table's buckets are read at random. A 256 MiB cache has a
 * 16 MiB bucket array; on 4 KiB pages every lookup of a small, hot name set
 * lands on its own page, so each one costs a TLB miss, and in a virtual
 * machine a miss walks two page tables (guest and host). `perf` put 0.8 us
 * of a 10 us UDP cache hit in the bucket load alone (bench/README.md, "The
 * hit path"). One 2 MiB page covers 512 times as much.
 *
 * bigmem_alloc maps len bytes (rounded up to whole 2 MiB pages when len is
 * at least one huge page), aligned to 2 MiB, and asks for huge pages with
 * madvise(MADV_HUGEPAGE): honoured when THP is "always" or "madvise"
 * (Debian's default), ignored otherwise, never an error. Smaller tables come
 * from calloc. The memory is zeroed either way.
 *
 * THREADS: none of its own; OWNERSHIP: the caller frees with bigmem_free and
 * the same length.
 */
#ifndef ANYCACHE_CORE_BIGMEM_H
#define ANYCACHE_CORE_BIGMEM_H

#include <stddef.h>

#define BIGMEM_HUGE ((size_t)2 << 20) /* x86-64 and arm64 (4K granule) PMD size */

/* NULL with errno ENOMEM (or EINVAL for len 0). */
void *bigmem_alloc(size_t len);
void bigmem_free(void *p, size_t len);

#endif
