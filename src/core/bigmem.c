/* bigmem.c: see bigmem.h. */
#include "core/bigmem.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

static size_t round_huge(size_t len)
{
	return (len + BIGMEM_HUGE - 1) & ~(BIGMEM_HUGE - 1);
}

void *bigmem_alloc(size_t len)
{
	if (len == 0) {
		errno = EINVAL;
		return NULL;
	}
	if (len < BIGMEM_HUGE)
		return calloc(1, len);
	size_t want = round_huge(len);
	if (want < len || want + BIGMEM_HUGE < want) {
		errno = ENOMEM;
		return NULL;
	}
	/* Over-map by one huge page and trim both ends, so the range starts on a
	 * 2 MiB boundary: THP backs only aligned 2 MiB extents of a mapping. */
	size_t span = want + BIGMEM_HUGE;
	uint8_t *raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		return NULL;
	uintptr_t a = ((uintptr_t)raw + BIGMEM_HUGE - 1) & ~(uintptr_t)(BIGMEM_HUGE - 1);
	uint8_t *p = (uint8_t *)a;
	size_t head = (size_t)(p - raw), tail = span - head - want;
	if (head)
		munmap(raw, head);
	if (tail)
		munmap(p + want, tail);
	(void)madvise(p, want, MADV_HUGEPAGE); /* advice: EINVAL without THP is fine */
	return p;
}

void bigmem_free(void *p, size_t len)
{
	if (!p)
		return;
	if (len < BIGMEM_HUGE)
		free(p);
	else
		munmap(p, round_huge(len));
}
