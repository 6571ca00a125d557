/* tests/core/test_bigmem.c: large zeroed tables on 2 MiB-aligned, THP-advised mappings. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/bigmem.h"

/* The VmFlags line of the mapping that holds p, from /proc/self/smaps. */
static int vmflags_of(const void *p, char *out, size_t outlen)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f)
		return -1;
	char line[512];
	int in = 0, rc = -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
			continue;
		}
		if (in && strncmp(line, "VmFlags:", 8) == 0) {
			snprintf(out, outlen, "%s", line + 8);
			rc = 0;
			break;
		}
	}
	fclose(f);
	return rc;
}

Test(bigmem, small_tables_come_zeroed_from_the_heap)
{
	size_t len = 4096;
	uint8_t *p = bigmem_alloc(len);
	cr_assert_not_null(p);
	for (size_t i = 0; i < len; i++)
		cr_assert_eq(p[i], 0);
	memset(p, 0xab, len);
	bigmem_free(p, len);
	cr_assert_null(bigmem_alloc(0));
}

Test(bigmem, large_tables_are_aligned_zeroed_and_whole)
{
	/* Not a multiple of the huge page: the tail page must be mapped too. */
	size_t len = 3 * BIGMEM_HUGE + 12345;
	uint8_t *p = bigmem_alloc(len);
	cr_assert_not_null(p);
	cr_assert_eq((uintptr_t)p % BIGMEM_HUGE, 0, "not 2 MiB aligned: %p", (void *)p);
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	for (size_t i = 0; i < len; i += page)
		cr_assert_eq(p[i], 0);
	cr_assert_eq(p[len - 1], 0);
	memset(p, 0x5a, len);
	cr_assert_eq(p[len - 1], 0x5a);
	bigmem_free(p, len);
}

Test(bigmem, large_tables_ask_for_huge_pages)
{
	if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) != 0)
		cr_skip_test("kernel without transparent huge pages");
	size_t len = 4 * BIGMEM_HUGE;
	uint8_t *p = bigmem_alloc(len);
	cr_assert_not_null(p);
	char flags[512];
	cr_assert_eq(vmflags_of(p, flags, sizeof(flags)), 0);
	/* "hg": MADV_HUGEPAGE is set on the mapping (fs/proc/task_mmu.c). */
	cr_assert_not_null(strstr(flags, " hg"), "VmFlags:%s", flags);
	bigmem_free(p, len);
}
