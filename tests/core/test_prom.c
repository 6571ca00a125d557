/* Unit tests for the Prometheus text writer (src/core/prom.c). */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/prom.h"

static char *take(struct prom *p)
{
	size_t len = 0;
	char *s = prom_take(p, &len);
	cr_assert_not_null(s);
	cr_assert_eq(strlen(s), len);
	return s;
}

Test(prom, families_samples_and_escaping)
{
	struct prom p;
	struct prom_label l[] = {{"upstream", "a\"b\\c\nd"}, {"state", "up"}};

	prom_init(&p);
	prom_family(&p, "anycache_x_total", "counter", "Things.\nWith \\ a newline");
	prom_sample_u64(&p, "anycache_x_total", l, 2, 18446744073709551615ull);
	prom_family(&p, "anycache_y", "gauge", "A gauge");
	prom_sample(&p, "anycache_y", NULL, 0, 0.25);
	prom_sample(&p, "anycache_y", NULL, 0, 3.0);
	prom_sample(&p, "anycache_y", NULL, 0, 0.1 + 0.2);
	prom_sample(&p, "anycache_y", NULL, 0, INFINITY);
	prom_sample(&p, "anycache_y", NULL, 0, NAN);
	cr_assert_eq(prom_result(&p), 0);
	char *s = take(&p);
	cr_assert_str_eq(s, "# HELP anycache_x_total Things.\\nWith \\\\ a newline\n"
	                    "# TYPE anycache_x_total counter\n"
	                    "anycache_x_total{upstream=\"a\\\"b\\\\c\\nd\",state=\"up\"} "
	                    "18446744073709551615\n"
	                    "# HELP anycache_y A gauge\n"
	                    "# TYPE anycache_y gauge\n"
	                    "anycache_y 0.25\n"
	                    "anycache_y 3\n"
	                    "anycache_y 0.30000000000000004\n"
	                    "anycache_y +Inf\n"
	                    "anycache_y NaN\n");
	free(s);
}

Test(prom, histogram_is_cumulative)
{
	struct prom p;
	const double b[] = {0.0001, 0.001, 0.5};
	const uint64_t c[] = {2, 0, 3, 1};
	struct prom_label l = {"transport", "udp"};

	prom_init(&p);
	prom_histogram(&p, "anycache_lat_seconds", &l, 1, b, c, 3, 1.5);
	char *s = take(&p);
	cr_assert_str_eq(s, "anycache_lat_seconds_bucket{transport=\"udp\",le=\"0.0001\"} 2\n"
	                    "anycache_lat_seconds_bucket{transport=\"udp\",le=\"0.001\"} 2\n"
	                    "anycache_lat_seconds_bucket{transport=\"udp\",le=\"0.5\"} 5\n"
	                    "anycache_lat_seconds_bucket{transport=\"udp\",le=\"+Inf\"} 6\n"
	                    "anycache_lat_seconds_sum{transport=\"udp\"} 1.5\n"
	                    "anycache_lat_seconds_count{transport=\"udp\"} 6\n");
	free(s);
	prom_init(&p);
	prom_histogram(&p, "h", NULL, 0, b, c, 3, 0);
	s = take(&p);
	cr_assert_not_null(strstr(s, "h_bucket{le=\"+Inf\"} 6\n"), "%s", s);
	free(s);
}

Test(prom, bad_names_fail_the_page)
{
	const char *bad[] = {"", "9x", "a-b", "a b", "é", NULL};
	for (unsigned i = 0; bad[i]; i++) {
		struct prom p;
		prom_init(&p);
		prom_sample(&p, bad[i], NULL, 0, 1);
		cr_expect_eq(prom_result(&p), -EINVAL, "'%s'", bad[i]);
		cr_expect_null(prom_take(&p, NULL));
		struct prom_label l = {bad[i], "v"};
		prom_init(&p);
		prom_sample(&p, "ok", &l, 1, 1);
		cr_expect_eq(prom_result(&p), -EINVAL, "label '%s'", bad[i]);
		prom_free(&p);
	}
	struct prom p;
	struct prom_label colon = {"a:b", "v"};
	prom_init(&p);
	prom_sample(&p, "ok:metric", NULL, 0, 1); /* ':' is fine in a metric name */
	cr_assert_eq(prom_result(&p), 0);
	prom_sample(&p, "ok", &colon, 1, 1); /* not in a label name */
	cr_assert_eq(prom_result(&p), -EINVAL);
	prom_free(&p);
	prom_init(&p);
	prom_family(&p, "ok", "summary-ish", "x");
	cr_assert_eq(prom_result(&p), -EINVAL);
	prom_free(&p);
	/* Bounds must ascend. */
	const double b[] = {1, 1};
	const uint64_t c[] = {0, 0, 0};
	prom_init(&p);
	prom_histogram(&p, "h", NULL, 0, b, c, 2, 0);
	cr_assert_eq(prom_result(&p), -EINVAL);
	prom_free(&p);
}

Test(prom, grows_past_its_first_block)
{
	struct prom p;
	prom_init(&p);
	for (unsigned i = 0; i < 2000; i++)
		prom_sample_u64(&p, "anycache_many_total", NULL, 0, i);
	char *s = take(&p);
	cr_assert_gt(strlen(s), 4096 * 4);
	cr_assert_not_null(strstr(s, "anycache_many_total 1999\n"));
	free(s);
}
