/*
 * Issue 11, "the cache survives restarts": anycached with knotd, a warmed
 * cache, SIGTERM (saved on stop) or SIGKILL after a periodic save, then a
 * restart while knotd is DOWN: the warmed names are answered from the loaded
 * cache with their TTLs lowered by the time elapsed (not the serve-stale 30),
 * a name never asked gets SERVFAIL (nothing upstream answers, so a hit can
 * only come from the file). A damaged file is ignored: the daemon starts
 * cold. Addresses 127.53.88.x.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

#include "dns_itest.h"

#define NET 88

TestSuite(cache_persist, .fini = down, .timeout = 120);

static struct tmpdir keep; /* outlives each daemon's own directory */
static char file[300], extra[600];

static void persist_conf(const char *interval)
{
	cr_assert_eq(tmpdir_make(&keep, "persist"), 0);
	snprintf(file, sizeof(file), "%s/cache.bin", keep.path);
	snprintf(extra, sizeof(extra), "  cache: {serve-stale: 1h, persist: \"%s\"%s%s}\n", file,
	         interval ? ", persist-interval: " : "", interval ? interval : "");
}

/* Warms the cache: www (300 s), mail (300 s), gone (NXDOMAIN, 60 s). */
static uint32_t warm(void)
{
	uint8_t a[4096];
	int n = ask_name(false, "www.example.test", 1, false, a, sizeof(a));
	cr_assert_eq(RCODE(a), 0);
	uint32_t ttl = rr_ttl(a, (size_t)n, 0);
	ask_name(false, "mail.example.test", 1, false, a, sizeof(a));
	ask_name(false, "gone.example.test", 1, false, a, sizeof(a));
	cr_assert_eq(RCODE(a), 3);
	return ttl;
}

static void restart_without_upstream(int net_n)
{
	char conf[2048];

	knotd_pause(&knot);
	snprintf(conf, sizeof(conf),
	         "dns:\n"
	         "  listen: [\"%s:5300\"]\n"
	         "  allow: [127.0.0.1/32, 127.53.%d.0/25]\n"
	         "  upstreams: [\"%s:5300\"]\n"
	         "  threads: %d\n"
	         "  identity: itest-node-%d\n"
	         "%s",
	         node, NET, upstream, itest_threads, net_n, extra);
	cr_assert_eq(anycached_start(&daemon_, conf, node, PORT), 0, "anycached did not restart");
}

/* After the restart: hits for the warmed names, aged by `gone_ms` at least. */
static void check_hits(uint32_t ttl0, uint64_t gone_ms)
{
	uint8_t a[4096];
	int n = ask_name(false, "www.example.test", 1, false, a, sizeof(a));
	cr_assert_eq(RCODE(a), 0, "www from the loaded cache");
	uint32_t ttl = rr_ttl(a, (size_t)n, 0);
	cr_assert_neq(ttl, 30, "a fresh answer, not serve-stale's");
	cr_assert_leq(ttl, ttl0 - gone_ms / 1000, "TTL %u after %u and %llu ms", ttl, ttl0,
	              (unsigned long long)gone_ms);
	cr_assert_geq(ttl + 10, ttl0 - gone_ms / 1000, "TTL %u after %u", ttl, ttl0);
	n = ask_name(true, "mail.example.test", 1, false, a, sizeof(a));
	cr_assert_eq(RCODE(a), 0);
	cr_assert_eq(ANCOUNT(a), 1);
	n = ask_name(false, "gone.example.test", 1, false, a, sizeof(a));
	cr_assert_eq(RCODE(a), 3, "NXDOMAIN from the loaded cache");
	cr_assert_leq(rr_ttl(a, (size_t)n, 0), 60);
	/* Never asked before: only the (stopped) upstream could answer it. */
	ask_name(false, "ns.example.test", 1, false, a, sizeof(a));
	cr_assert_eq(RCODE(a), 2, "upstream down: SERVFAIL for a name not in the file");
}

Test(cache_persist, saved_on_stop_and_loaded_aged)
{
	struct stat sb;

	persist_conf(NULL);
	up_with(NET, 1, extra);
	uint32_t ttl0 = warm();
	uint64_t t0 = now_ms();
	char why[256];
	cr_assert_eq(anycached_stop_clean(&daemon_, 10000, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(stat(file, &sb), 0, "no cache file after SIGTERM");
	cr_assert_gt(sb.st_size, 24);
	sleep_ms(2200);
	restart_without_upstream(1);
	check_hits(ttl0, now_ms() - t0);
	knotd_resume(&knot);
	tmpdir_remove(&keep);
}

Test(cache_persist, periodic_save_survives_a_kill)
{
	struct stat sb;

	persist_conf("1s");
	up_with(NET, 2, extra);
	uint32_t ttl0 = warm();
	uint64_t t0 = now_ms();
	/* Bounded wait for a periodic save that holds the three entries. */
	for (int i = 0; i < 40 && !(stat(file, &sb) == 0 && sb.st_size > 200); i++)
		sleep_ms(100);
	cr_assert_gt(sb.st_size, 200, "no periodic save");
	sleep_ms(1200); /* one more round: the warm queries surely inside */
	proc_stop(&daemon_.proc, SIGKILL, 2000);
	anycached_stop(&daemon_);
	restart_without_upstream(2);
	/* The save carried each entry's age then; the wall time since adds the rest. */
	check_hits(ttl0, now_ms() - t0);
	knotd_resume(&knot);
	tmpdir_remove(&keep);
}

Test(cache_persist, damaged_file_is_ignored)
{
	uint8_t a[4096];
	struct stat sb;

	persist_conf(NULL);
	up_with(NET, 3, extra);
	warm();
	cr_assert_eq(anycached_stop(&daemon_), 0);
	cr_assert_eq(stat(file, &sb), 0);
	/* One flipped byte in the middle of the first answer. */
	int fd = open(file, O_RDWR);
	cr_assert_geq(fd, 0);
	uint8_t b;
	cr_assert_eq(pread(fd, &b, 1, 60), 1);
	b ^= 0x5a;
	cr_assert_eq(pwrite(fd, &b, 1, 60), 1);
	close(fd);
	restart_without_upstream(3);
	ask_name(false, "www.example.test", 1, false, a, sizeof(a));
	cr_assert_eq(RCODE(a), 2, "a damaged file must not fill the cache");
	knotd_resume(&knot);
	tmpdir_remove(&keep);
}
