/* log.c: log.h's records, its rate limit and its queue. */
#include "core/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log_limit.h"

#define DRAIN_BATCH     16 /* lines copied out per lock */
#define LOG_STOP_WAIT_S 2  /* log_stop's wait for the queue to be written */

static const char *const level_names[] = {"error", "warning", "info", "debug"};
static const int level_prio[] = {3, 4, 6, 7}; /* syslog(3) LOG_ERR .. LOG_DEBUG */

static enum log_level log_level = LOG_LVL_INFO;

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_cond_t done_cv; /* the log thread has written everything and ends */
	bool exited;
	bool init;    /* lim and prio set (first record) */
	bool prio;    /* "<N>" prefixes for the journal */
	bool running; /* the log thread owns the writes */
	bool stop;
	pthread_t thread;
	struct log_limit lim;
	char line[LOG_QUEUE_LINES][LOG_LINE_MAX];
	unsigned len[LOG_QUEUE_LINES];
	unsigned head, count;
	uint64_t dropped, dropped_reported;
} lg = {.mu = PTHREAD_MUTEX_INITIALIZER,
        .cv = PTHREAD_COND_INITIALIZER,
        .done_cv = PTHREAD_COND_INITIALIZER};

void log_set_level(enum log_level lvl)
{
	log_level = lvl;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* JOURNAL_STREAM="DEV:INO" of the journal's stream: our stderr is that socket
 * (systemd.exec(5)); then the journal reads "<N>" as the priority. */
static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

static void lazy_init(void)
{
	if (lg.init)
		return;
	log_limit_init(&lg.lim, LOG_LIMIT_BURST, LOG_LIMIT_WINDOW_MS);
	lg.prio = stderr_is_journal();
	lg.init = true;
}

/* One whole line: write(2) until done, EINTR retried, bounded. */
static void write_line(const char *p, size_t len)
{
	for (int tries = 0; len > 0 && tries < 64; tries++) {
		ssize_t n = write(STDERR_FILENO, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

/* "[<N>]anycached[pid]: level: module: text\n" into out; returns its length. */
static size_t format_line(char *out, int level, const char *module, const char *text)
{
	char prio[8] = "";
	int n;

	if (lg.prio)
		snprintf(prio, sizeof(prio), "<%d>", level_prio[level]);
	n = snprintf(out, LOG_LINE_MAX, "%sanycached[%d]: %s: %s: %s", prio, (int)getpid(),
	             level_names[level], module, text);
	size_t len = n < 0 ? 0 : (size_t)n < LOG_LINE_MAX - 1 ? (size_t)n : LOG_LINE_MAX - 2;

	out[len++] = '\n';
	out[len] = '\0';
	return len;
}

/* The summary of one event ("log" module: the event's own is in its text). */
static void format_summary(char *out, size_t *len, const struct log_limit_summary *s)
{
	char text[LOG_LINE_MAX];

	snprintf(text, sizeof(text), "suppressed %llu similar messages in %llu.%llu s; last: %s",
	         (unsigned long long)s->suppressed, (unsigned long long)(s->window_ms / 1000),
	         (unsigned long long)(s->window_ms % 1000 / 100), s->text);
	*len = format_line(out, s->level, "log", text);
}

/* Under lg.mu: into the queue, or counted as dropped. */
static void enqueue(const char *line, size_t len)
{
	if (lg.count == LOG_QUEUE_LINES) {
		lg.dropped++;
		return;
	}
	unsigned slot = (lg.head + lg.count) % LOG_QUEUE_LINES;
	memcpy(lg.line[slot], line, len);
	lg.len[slot] = (unsigned)len;
	lg.count++;
	pthread_cond_signal(&lg.cv);
}

void log_msg(enum log_level lvl, const char *module, const char *fmt, ...)
{
	char text[LOG_LINE_MAX], line[LOG_LINE_MAX], sline[LOG_LINE_MAX];
	struct log_limit_summary sum;
	size_t len = 0, slen = 0;
	va_list ap;

	if (lvl > log_level || (unsigned)lvl > LOG_LVL_DEBUG)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* The event is its call site: string literals have stable addresses. */
	uint64_t key = ((uint64_t)(uintptr_t)fmt * 0x9e3779b97f4a7c15ull) ^ (uintptr_t)module;
	uint64_t now = mono_ms();
	char ltext[LOG_LIMIT_TEXT];
	/* Cut: the limiter keeps the text of a held-back record for its summary. */
	if (snprintf(ltext, sizeof(ltext), "%s: %.*s", module, (int)sizeof(ltext), text) < 0)
		ltext[0] = '\0';

	pthread_mutex_lock(&lg.mu);
	lazy_init();
	bool admit = log_limit_admit(&lg.lim, key, (int)lvl, ltext, now, &sum);
	if (sum.suppressed)
		format_summary(sline, &slen, &sum);
	if (admit)
		len = format_line(line, (int)lvl, module, text);
	if (lg.running) {
		if (slen)
			enqueue(sline, slen);
		if (len)
			enqueue(line, len);
		len = slen = 0;
	}
	pthread_mutex_unlock(&lg.mu);
	/* Not started (or stopped): written now, one write per line so lines
	 * from several threads do not interleave. */
	if (slen)
		write_line(sline, slen);
	if (len)
		write_line(line, len);
}

/* Under lg.mu: summaries of quiet events whose window ended. */
static void queue_expired(uint64_t now)
{
	struct log_limit_summary s[8];
	char line[LOG_LINE_MAX];
	size_t len;
	unsigned n;

	do {
		n = log_limit_expire(&lg.lim, now, s, 8);
		for (unsigned i = 0; i < n; i++) {
			format_summary(line, &len, &s[i]);
			enqueue(line, len);
		}
	} while (n == 8);
}

static void *log_main(void *arg)
{
	static char out[DRAIN_BATCH][LOG_LINE_MAX];
	unsigned outlen[DRAIN_BATCH];

	(void)arg;
	pthread_setname_np(pthread_self(), "log");
	pthread_mutex_lock(&lg.mu);
	for (;;) {
		if (lg.count == 0 && !lg.stop) {
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += 1;
			pthread_cond_timedwait(&lg.cv, &lg.mu, &until);
		}
		queue_expired(mono_ms());
		if (lg.dropped != lg.dropped_reported && lg.count < LOG_QUEUE_LINES) {
			char line[LOG_LINE_MAX], text[128];
			snprintf(text, sizeof(text), "%llu records dropped: the log queue was full",
			         (unsigned long long)(lg.dropped - lg.dropped_reported));
			lg.dropped_reported = lg.dropped;
			enqueue(line, format_line(line, LOG_LVL_WARN, "log", text));
		}
		if (lg.count == 0 && lg.stop) {
			lg.exited = true;
			pthread_cond_signal(&lg.done_cv);
			break;
		}
		unsigned n = 0;
		while (lg.count && n < DRAIN_BATCH) {
			memcpy(out[n], lg.line[lg.head], lg.len[lg.head]);
			outlen[n++] = lg.len[lg.head];
			lg.head = (lg.head + 1) % LOG_QUEUE_LINES;
			lg.count--;
		}
		pthread_mutex_unlock(&lg.mu);
		for (unsigned i = 0; i < n; i++)
			write_line(out[i], outlen[i]);
		pthread_mutex_lock(&lg.mu);
	}
	pthread_mutex_unlock(&lg.mu);
	return NULL;
}

int log_start(void)
{
	int r = 0;

	pthread_mutex_lock(&lg.mu);
	lazy_init();
	if (!lg.running) {
		lg.stop = false;
		lg.exited = false;
		r = -pthread_create(&lg.thread, NULL, log_main, NULL);
		lg.running = r == 0;
	}
	pthread_mutex_unlock(&lg.mu);
	return r;
}

void log_stop(void)
{
	struct log_limit_summary s[8];
	char line[LOG_LINE_MAX];
	size_t len;
	unsigned n;

	pthread_mutex_lock(&lg.mu);
	if (!lg.running) {
		pthread_mutex_unlock(&lg.mu);
		return;
	}
	lg.stop = true;
	pthread_cond_signal(&lg.cv);
	pthread_mutex_unlock(&lg.mu);
	/* Bounded: a stderr stuck for good must not keep the process from
	 * exiting. The thread is then left blocked in write(2); exit ends it.
	 * (A condition wait, not pthread_timedjoin_np: ASan's interceptor of
	 * the latter in GCC 12 waits without the time limit.) */
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += LOG_STOP_WAIT_S;
	pthread_mutex_lock(&lg.mu);
	while (!lg.exited)
		if (pthread_cond_timedwait(&lg.done_cv, &lg.mu, &until) == ETIMEDOUT)
			break;
	if (!lg.exited) {
		pthread_mutex_unlock(&lg.mu);
		pthread_detach(lg.thread);
		return;
	}
	pthread_mutex_unlock(&lg.mu);
	pthread_join(lg.thread, NULL);
	pthread_mutex_lock(&lg.mu);
	lg.running = false;
	/* Whatever is still held back: said now, the window cut short. */
	uint64_t end = mono_ms() + lg.lim.window_ms;
	do {
		n = log_limit_expire(&lg.lim, end, s, 8);
		for (unsigned i = 0; i < n; i++) {
			format_summary(line, &len, &s[i]);
			write_line(line, len);
		}
	} while (n == 8);
	pthread_mutex_unlock(&lg.mu);
}

uint64_t log_dropped(void)
{
	pthread_mutex_lock(&lg.mu);
	uint64_t d = lg.dropped;
	pthread_mutex_unlock(&lg.mu);
	return d;
}
