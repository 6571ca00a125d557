/*
 * ares_glue.c: c-ares socket state -> loop polls, ares timeouts -> a loop timer.
 *
 * A watch is the glue's record of one polled socket. It is malloc'd per poll
 * op and freed by that op's final callback, never earlier: when c-ares stops
 * watching an fd (and closes it right after), the watch is unlinked and
 * marked dead (g == NULL), its poll is cancelled, and completions that still
 * arrive for it are ignored, so a reused fd number cannot be confused with
 * the old socket.
 */
#include "core/ares_glue.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/timer.h"

struct watch {
	struct ares_glue *g; /* NULL once c-ares no longer wants this fd */
	int fd;
	unsigned events;
	uint64_t id;
	struct watch *next;
};

struct ares_glue {
	struct loop *l;
	ares_channel ch;
	struct timer t;
	struct watch *watches;
};

static void poll_cb(struct loop *l, void *ctx, int res, unsigned flags);

static void watch_kill(struct ares_glue *g, struct watch *w)
{
	for (struct watch **pw = &g->watches; *pw; pw = &(*pw)->next) {
		if (*pw == w) {
			*pw = w->next;
			break;
		}
	}
	w->g = NULL;
	w->next = NULL;
	/* -ENOENT when its final callback is running right now: that one frees it. */
	(void)loop_cancel(g->l, w->id);
}

/*
 * One-shot polls, re-armed after each event: io_uring's arm-time readiness
 * check makes that level-triggered, which c-ares needs. Its TCP reader takes
 * the 2-byte length in one ares_process_fd() call and the message in the
 * next, so after an answer that arrived in one segment no new wake-up comes
 * and a multishot poll would leave the message unread until the query timed
 * out.
 */
static int watch_arm(struct ares_glue *g, struct watch *w)
{
	return loop_poll(g->l, w->fd, w->events, 0, poll_cb, w, &w->id);
}

static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct ares_glue *g = data;
	unsigned ev = (readable ? POLLIN : 0u) | (writable ? POLLOUT : 0u);
	struct watch *w = g->watches;
	while (w && w->fd != fd)
		w = w->next;
	if (w && w->events == ev)
		return;
	if (w)
		watch_kill(g, w);
	if (!ev)
		return;
	w = calloc(1, sizeof(*w));
	if (!w) {
		log_err("ares", "no memory to watch fd %d: its queries will time out", fd);
		return;
	}
	w->g = g;
	w->fd = fd;
	w->events = ev;
	int r = watch_arm(g, w);
	if (r < 0) {
		log_err("ares", "cannot poll fd %d (%s): its queries will time out", fd,
		        strerror(-r));
		free(w);
		return;
	}
	w->next = g->watches;
	g->watches = w;
}

/* The timeout timer: recomputed from ares_timeout() (one walk of the
 * outstanding queries) per firing. Deadline rounded up so we never wake
 * before c-ares considers the query expired. */
static void rearm_timer(struct ares_glue *g)
{
	struct timeval tv, *tvp = ares_timeout(g->ch, NULL, &tv);
	if (!tvp) {
		loop_timer_cancel(g->l, &g->t);
		return;
	}
	uint64_t ms = (uint64_t)tvp->tv_sec * 1000u + ((uint64_t)tvp->tv_usec + 999u) / 1000u;
	loop_timer_arm(g->l, &g->t, clock_now_ms() + ms);
}

static void on_timer(struct timer *t, uint64_t now, void *arg)
{
	struct ares_glue *g = arg;
	ares_process_fd(g->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	rearm_timer(g);
}

void ares_glue_kick(struct ares_glue *g)
{
	/* Fires at the start of the next turn: many sends or socket events in
	 * one turn cost one ares_timeout() walk. */
	uint64_t now = loop_now(g->l);
	if (!timer_armed(&g->t) || g->t.deadline > now)
		loop_timer_arm(g->l, &g->t, now);
}

static void poll_cb(struct loop *l, void *ctx, int res, unsigned flags)
{
	struct watch *w = ctx;
	struct ares_glue *g = w->g;
	if (g && res > 0) {
		unsigned rev = (unsigned)res;
		ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;
		/* Errors and hangups are read by c-ares to learn what happened. */
		if ((w->events & POLLIN) && (rev & (POLLIN | POLLERR | POLLHUP)))
			rfd = w->fd;
		if ((w->events & POLLOUT) && (rev & (POLLOUT | POLLERR | POLLHUP)))
			wfd = w->fd;
		ares_process_fd(g->ch, rfd, wfd);
		ares_glue_kick(g);
	}
	if (flags & LOOP_F_MORE)
		return;
	/* Final completion (every one, for a one-shot poll): free a dead
	 * watch; re-arm a live one. */
	if (w->g && res != -ECANCELED) {
		int r = watch_arm(w->g, w);
		if (r == 0)
			return;
		log_err("ares", "cannot re-arm poll on fd %d (%s)", w->fd, strerror(-r));
	}
	if (w->g) {
		struct ares_glue *gg = w->g;
		for (struct watch **pw = &gg->watches; *pw; pw = &(*pw)->next) {
			if (*pw == w) {
				*pw = w->next;
				break;
			}
		}
	}
	free(w);
}

int ares_glue_new(struct loop *l, const struct ares_options *opts, int optmask,
                  struct ares_glue **out)
{
	struct ares_options o;
	if (optmask & ARES_OPT_SOCK_STATE_CB)
		return -EINVAL;
	struct ares_glue *g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	if (opts)
		o = *opts;
	else
		memset(&o, 0, sizeof(o));
	g->l = l;
	timer_init(&g->t, on_timer, g);
	o.sock_state_cb = sock_state_cb;
	o.sock_state_cb_data = g;
	int r = ares_init_options(&g->ch, &o, optmask | ARES_OPT_SOCK_STATE_CB);
	if (r != ARES_SUCCESS) {
		log_err("ares", "ares_init_options: %s", ares_strerror(r));
		free(g);
		return r == ARES_ENOMEM ? -ENOMEM : -EIO;
	}
	*out = g;
	return 0;
}

ares_channel ares_glue_channel(struct ares_glue *g)
{
	return g->ch;
}

void ares_glue_free(struct ares_glue *g)
{
	if (!g)
		return;
	/* Pending queries get ARES_EDESTRUCTION; sockets are reported as
	 * unwatched (killing their watches) and closed. */
	ares_destroy(g->ch);
	while (g->watches)
		watch_kill(g, g->watches);
	loop_timer_cancel(g->l, &g->t);
	free(g);
}
