/*
 * Tests for src/core/log.c, the queue: a writer never waits for stderr once the log
 * thread runs (a pipe nobody reads stands for a stuck journal), dropped
 * records are counted and reported, and a repeated event is cut to its burst
 * plus one "suppressed N" summary. Each test is its own process (Criterion),
 * so stderr can be replaced.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/log_limit.h"

#define EVENTS 3000

static int pipe_r = -1;

/* stderr becomes the write end of a small pipe; returns the read end. */
static void stderr_to_pipe(void)
{
	int p[2];

	cr_assert_eq(pipe(p), 0);
	fcntl(p[1], F_SETPIPE_SZ, 4096);
	cr_assert_geq(dup2(p[1], STDERR_FILENO), 0);
	close(p[1]);
	pipe_r = p[0];
}

static uint64_t ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Reads the pipe until EOF into a malloc'd string (bounded by cap). */
static char *read_all(size_t cap)
{
	char *buf = calloc(1, cap + 1);
	size_t off = 0;
	ssize_t n;

	cr_assert_not_null(buf);
	while (off < cap && (n = read(pipe_r, buf + off, cap - off)) > 0)
		off += (size_t)n;
	return buf;
}

static void *reader(void *arg)
{
	return read_all((size_t)arg);
}

static unsigned count(const char *hay, const char *needle)
{
	unsigned n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#pragma GCC diagnostic ignored "-Wformat-security"

Test(log, writers_never_wait_for_a_stuck_stderr)
{
	/* Distinct format strings: EVENTS distinct events, so the rate limit
	 * lets each one out and only the queue stands between us and the pipe. */
	static char fmts[EVENTS][24];
	uint64_t worst = 0;

	stderr_to_pipe();
	cr_assert_eq(log_start(), 0);
	for (unsigned i = 0; i < EVENTS; i++) {
		snprintf(fmts[i], sizeof(fmts[i]), "event %u %%s", i);
		uint64_t t0 = ms_now();
		log_msg(LOG_LVL_WARN, "test", fmts[i], "padding padding padding padding");
		uint64_t dt = ms_now() - t0;
		if (dt > worst)
			worst = dt;
	}
	/* The pipe holds a few dozen lines and nobody reads it: without the
	 * queue the first write past its 4 KiB would block for ever. */
	cr_expect_lt(worst, 200, "a log_msg call took %llu ms", (unsigned long long)worst);
	cr_expect_geq(log_dropped(), EVENTS - LOG_QUEUE_LINES - 200, "dropped %llu of %u",
	              (unsigned long long)log_dropped(), EVENTS);
	/* Unstick stderr: the log thread writes what it holds and reports the drops. */
	pthread_t rd;
	char *out = NULL;
	cr_assert_eq(pthread_create(&rd, NULL, reader, (void *)(size_t)(4 << 20)), 0);
	log_stop();
	dup2(open("/dev/null", O_WRONLY), STDERR_FILENO); /* EOF for the reader */
	pthread_join(rd, (void **)&out);
	cr_assert_not_null(out);
	cr_expect_geq(count(out, "records dropped: the log queue was full"), 1, "%.400s", out);
	cr_expect_geq(count(out, "warning: test: event "), LOG_QUEUE_LINES,
	              "the queued records were written");
	free(out);
}

Test(log, repeated_event_is_cut_to_burst_and_summarized)
{
	stderr_to_pipe();
	fcntl(STDERR_FILENO, F_SETPIPE_SZ, 1 << 20);
	cr_assert_eq(log_start(), 0);
	for (unsigned i = 0; i < 500; i++)
		log_msg(LOG_LVL_ERR, "dns", "upstream %u timed out", i);
	log_stop(); /* the held-back count is said at stop */
	dup2(open("/dev/null", O_WRONLY), STDERR_FILENO);
	char *out = read_all(1 << 20);
	cr_expect_eq(count(out, "error: dns: upstream "), LOG_LIMIT_BURST, "%s", out);
	cr_expect_eq(count(out, "suppressed 490 similar messages"), 1, "%s", out);
	cr_expect_eq(count(out, "last: dns: upstream 499 timed out"), 1, "%s", out);
	free(out);
}

Test(log, synchronous_before_start)
{
	stderr_to_pipe();
	log_msg(LOG_LVL_INFO, "main", "hello %d", 42);
	log_set_level(LOG_LVL_WARN);
	log_msg(LOG_LVL_INFO, "main", "not shown");
	dup2(open("/dev/null", O_WRONLY), STDERR_FILENO);
	char *out = read_all(4096);
	cr_expect(strstr(out, "]: info: main: hello 42\n") != NULL, "%s", out);
	cr_expect(strstr(out, "not shown") == NULL);
	free(out);
}

Test(log, stop_is_bounded_when_stderr_is_stuck)
{
	static char fmts[400][24];

	stderr_to_pipe();
	cr_assert_eq(log_start(), 0);
	for (unsigned i = 0; i < 400; i++) {
		snprintf(fmts[i], sizeof(fmts[i]), "stuck %u %%s", i);
		log_msg(LOG_LVL_INFO, "test", fmts[i], "padding padding padding padding padding");
	}
	uint64_t t0 = ms_now();
	log_stop(); /* the log thread is blocked in write(2) on the full pipe */
	uint64_t waited = ms_now() - t0;
	cr_expect_geq(waited, 1900, "log_stop gave up after %llu ms", (unsigned long long)waited);
	cr_expect_lt(waited, 3000, "log_stop waited %llu ms", (unsigned long long)waited);
	t0 = ms_now();
	log_msg(LOG_LVL_ERR, "test", "after stop %d", 1);
	cr_expect_lt(ms_now() - t0, 100, "a record after a timed-out stop must not block");
	/* Whatever writes to stderr at exit (a sanitizer report) must not block on
	 * the full pipe; the log thread stays blocked on it and dies with us. */
	dup2(open("/dev/null", O_WRONLY), STDERR_FILENO);
}

Test(log, journal_gets_the_priority_prefix)
{
	struct stat st;
	char js[64];

	stderr_to_pipe();
	cr_assert_eq(fstat(STDERR_FILENO, &st), 0);
	/* systemd.exec(5): JOURNAL_STREAM names the stream stderr is connected to. */
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", js, 1);
	log_msg(LOG_LVL_WARN, "bgp", "neighbor %s down", "192.0.2.1");
	log_msg(LOG_LVL_ERR, "main", "fatal");
	dup2(open("/dev/null", O_WRONLY), STDERR_FILENO);
	char *out = read_all(4096);
	cr_expect(strncmp(out, "<4>anycached[", 13) == 0, "%s", out);
	cr_expect(strstr(out, "\n<3>anycached[") != NULL, "%s", out);
	free(out);
}

