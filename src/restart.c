/*
 * restart.c: in-place restart and binary upgrade. See restart.h.
 */
#include "restart.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bgp/bfd_fsm.h"
#include "bgp/bgp_handover.h"
#include "bgp/bgp_speaker.h"
#include "core/handover.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/timer.h"
#include "dns/dns_server.h"

extern char **environ;

#define POLL_MS 5u

enum phase {
	PH_IDLE = 0,
	PH_WAIT_READY,
	PH_FREEZE,
	PH_WAIT_SERVING,
	PH_RETIRING,
};

struct restart {
	struct restart_conf c;
	enum phase phase;
	int sock;
	pid_t child;
	uint64_t deadline;
	bool recv_armed;
	struct timer timer;
	restart_done_fn done;
	void *done_arg;
	uint8_t rbuf[256];     /* READY and SERVING carry no entries */
	atomic_uint idle_left; /* workers that have not yet reported idle in this round */
	unsigned idle_rounds;
};

static void fail(struct restart *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void finish(struct restart *r, int err, const char *why)
{
	restart_done_fn done = r->done;

	r->done = NULL;
	if (done)
		done(r->done_arg, err, err ? 0 : r->child, why);
}

/* Back to where we were: kill the successor, thaw BGP, close the channel. */
static void fail(struct restart *r, int err, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_err("restart", "%s; the running process goes on", why);
	loop_timer_cancel(r->c.ctl, &r->timer);
	if (r->child > 0) {
		kill(r->child, SIGKILL);
		waitpid(r->child, NULL, 0);
		r->child = 0;
	}
	if (r->c.bgp && (r->phase == PH_FREEZE || r->phase == PH_WAIT_SERVING))
		bgp_speaker_thaw(r->c.bgp);
	if (r->sock >= 0) {
		/* A recv in flight ends with -ECANCELED; the fd closes after it. */
		if (loop_close_fd(r->c.ctl, r->sock, NULL, NULL) < 0)
			close(r->sock);
		r->sock = -1;
	}
	r->phase = PH_IDLE;
	finish(r, err, why);
}

static int spawn(struct restart *r, int give)
{
	char var[sizeof(HANDOVER_ENV) + 16];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none;
	size_t n = 0;
	char **envp;
	int err;

	while (environ[n])
		n++;
	envp = calloc(n + 2, sizeof(*envp));
	if (!envp)
		return -ENOMEM;
	snprintf(var, sizeof(var), "%s=%d", HANDOVER_ENV, give);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], HANDOVER_ENV "=", sizeof(HANDOVER_ENV)) != 0)
			envp[k++] = environ[i];
	envp[k++] = var;
	envp[k] = NULL;
	posix_spawn_file_actions_init(&fa);
	/* dup2 onto itself clears close-on-exec in the child only (glibc >= 2.29). */
	posix_spawn_file_actions_adddup2(&fa, give, give);
	posix_spawnattr_init(&at);
	/* Our threads run with SIGTERM/SIGINT/SIGHUP blocked: not the successor. */
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
	err = posix_spawn(&r->child, r->c.exe, &fa, &at, r->c.argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	free(envp);
	if (err) {
		r->child = 0;
		return -err;
	}
	return 0;
}

static void on_msg(struct loop *l, void *ctx, int res, unsigned flags);

/*
 * The channel broke: most likely the successor exited. Its end closes as it
 * exits, so the status follows within moments (bounded: 200 ms). Fails the
 * restart with the exit status and returns true, or returns false.
 */
static bool child_exited(struct restart *r)
{
	int status = 0;
	pid_t w = 0;

	for (int i = 0; i < 40 && r->child > 0 && w == 0; i++) {
		w = waitpid(r->child, &status, WNOHANG);
		if (w == 0)
			usleep(5000);
	}
	if (r->child <= 0 || w != r->child)
		return false;
	r->child = 0;
	fail(r, -ECHILD, "the successor exited (%s %d) before it served",
	     WIFEXITED(status) ? "status" : "signal",
	     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	return true;
}

static int arm_recv(struct restart *r)
{
	int e = loop_recv(r->c.ctl, r->sock, r->rbuf, sizeof(r->rbuf), on_msg, r, NULL);
	if (e == 0)
		r->recv_armed = true;
	return e;
}

/* ---- retiring: the successor serves; finish what is in flight, then go ---- */

struct idle_check {
	struct restart *r;
	struct dns_server *dns;
};

static struct idle_check checks[CONF_MAX_THREADS];

static void worker_stop_listening(struct loop *l, void *arg)
{
	(void)l;
	dns_server_stop_listening(arg);
}

static void worker_idle(struct loop *l, void *arg)
{
	struct idle_check *c = arg;

	(void)l;
	if (dns_server_idle(c->dns))
		atomic_fetch_sub(&c->r->idle_left, 1);
}

static void post_idle_round(struct restart *r)
{
	atomic_store(&r->idle_left, r->c.n_workers);
	for (unsigned i = 0; i < r->c.n_workers; i++) {
		checks[i] = (struct idle_check){.r = r, .dns = r->c.worker_dns[i]};
		if (loop_post(r->c.worker_loops[i], worker_idle, &checks[i]) < 0)
			atomic_fetch_sub(&r->idle_left, 1); /* a loop that cannot run has nothing */
	}
}

static void retire_tick(struct restart *r, uint64_t now)
{
	/* A round answered with every worker idle: nothing left in flight. */
	if (r->idle_rounds && atomic_load(&r->idle_left) == 0) {
		log_info("restart", "in-flight queries answered: exiting");
		r->phase = PH_IDLE;
		r->c.retired(r->c.arg, r->child);
		return;
	}
	if (now >= r->deadline) {
		log_warn("restart", "queries still in flight after %u ms: exiting anyway",
		         RESTART_RETIRE_MS);
		r->phase = PH_IDLE;
		r->c.retired(r->c.arg, r->child);
		return;
	}
	/* Posts run in order on each worker: a round posted after stop_listening
	 * sees every query that listener could still have taken. */
	if (!r->idle_rounds || atomic_load(&r->idle_left) == 0 || r->idle_rounds % 10 == 0)
		post_idle_round(r);
	r->idle_rounds++;
	loop_timer_arm_in(r->c.ctl, &r->timer, 20);
}

static void serving(struct restart *r)
{
	log_info("restart", "successor %d serves: handing over BGP, stopping our listeners",
	         (int)r->child);
	if (r->c.bgp)
		bgp_speaker_handed_over(r->c.bgp);
	for (unsigned i = 0; i < r->c.n_workers; i++)
		if (loop_post(r->c.worker_loops[i], worker_stop_listening, r->c.worker_dns[i]) < 0)
			log_warn("restart", "worker %u: cannot stop its listeners", i);
	if (loop_close_fd(r->c.ctl, r->sock, NULL, NULL) < 0)
		close(r->sock);
	r->sock = -1;
	r->phase = PH_RETIRING;
	r->deadline = loop_now(r->c.ctl) + RESTART_RETIRE_MS;
	r->idle_rounds = 0;
	finish(r, 0, NULL);
	loop_timer_arm_in(r->c.ctl, &r->timer, 0);
}

/* ---- the state: every Established session, frozen ---- */

static void send_state(struct restart *r)
{
	static struct handover_entry e[2 * CONF_MAX_NEIGHBORS];
	static struct bgp_handover_session st;
	static uint8_t buf[CONF_MAX_NEIGHBORS][BGP_HANDOVER_MAX_LEN];
	size_t n = 0;
	char b[NETADDR_STRLEN];
	int err;

	for (unsigned i = 0; r->c.bgp && i < r->c.conf->bgp.n_neighbors; i++) {
		int fd = -1, len = 0;
		const struct conf_neighbor *nb = &r->c.conf->bgp.neighbors[i];
		err = bgp_speaker_export(r->c.bgp, i, &st, &fd);
		if (err == -ENOTCONN)
			continue; /* not Established: the successor starts it afresh */
		if (err == 0) {
			len = bgp_handover_encode(&st, buf[n], sizeof(buf[n]));
			err = len < 0 ? len : 0;
		}
		if (err < 0) {
			fail(r, err, "BGP neighbor %s: cannot export the session: %s",
			     netaddr_format(&nb->address, false, b, sizeof(b)), strerror(-err));
			return;
		}
		e[n] = (struct handover_entry){.index = i,
		                               .addr = nb->address,
		                               .fd = fd,
		                               .data = buf[n],
		                               .data_len = (size_t)len};
		snprintf(e[n].tag, sizeof(e[n].tag), "bgp-session");
		n++;
	}
	/* BFD: the sessions go on in the successor with the same discriminators
	 * and state (the sockets went with the OFFER). The old one keeps running
	 * BFD until SERVING: a failed restart never silences it. */
	static uint8_t bfd[CONF_MAX_NEIGHBORS][BFD_FSM_EXPORT_MAX];
	size_t nb = 0;
	for (unsigned i = 0; r->c.bgp && i < r->c.conf->bgp.n_neighbors; i++) {
		int len = bgp_speaker_bfd_export(r->c.bgp, i, bfd[nb], sizeof(bfd[nb]));
		if (len < 0)
			continue;
		e[n + nb] = (struct handover_entry){.index = i,
		                                    .addr = r->c.conf->bgp.neighbors[i].address,
		                                    .fd = -1,
		                                    .data = bfd[nb],
		                                    .data_len = (size_t)len};
		snprintf(e[n + nb].tag, sizeof(e[n + nb].tag), "bfd-session");
		nb++;
	}
	err = handover_send(r->sock, HANDOVER_MSG_STATE, e, n + nb);
	if (err < 0) {
		if (!child_exited(r))
			fail(r, err, "cannot send the state to the successor: %s", strerror(-err));
		return;
	}
	log_info("restart", "%zu BGP session%s handed to the successor", n, n == 1 ? "" : "s");
	r->phase = PH_WAIT_SERVING;
	r->deadline = loop_now(r->c.ctl) + RESTART_STEP_MS;
	loop_timer_arm(r->c.ctl, &r->timer, r->deadline);
	if (!r->recv_armed && arm_recv(r) < 0)
		fail(r, -EIO, "cannot wait for the successor");
}

static void freeze_tick(struct restart *r, uint64_t now)
{
	int waiting = r->c.bgp ? bgp_speaker_freeze(r->c.bgp) : 0;

	if (waiting == 0) {
		send_state(r);
		return;
	}
	if (now >= r->deadline) {
		fail(r, -ETIMEDOUT, "%d BGP session%s did not finish sending within %u ms", waiting,
		     waiting == 1 ? "" : "s", RESTART_FREEZE_MS);
		return;
	}
	loop_timer_arm_in(r->c.ctl, &r->timer, POLL_MS);
}

static void on_timer(struct timer *t, uint64_t now, void *arg)
{
	struct restart *r = arg;

	(void)t;
	switch (r->phase) {
	case PH_FREEZE:
		freeze_tick(r, now);
		break;
	case PH_RETIRING:
		retire_tick(r, now);
		break;
	case PH_WAIT_READY:
	case PH_WAIT_SERVING:
		fail(r, -ETIMEDOUT, "the successor (pid %d) was not %s within %u ms", (int)r->child,
		     r->phase == PH_WAIT_READY ? "ready" : "serving", RESTART_STEP_MS);
		break;
	case PH_IDLE:
		break;
	}
}

static void on_msg(struct loop *l, void *ctx, int res, unsigned flags)
{
	struct restart *r = ctx;
	struct handover_entry e[1];
	enum handover_msg_type type;
	bool last;
	size_t n;
	int err;

	(void)l;
	(void)flags;
	r->recv_armed = false;
	if (res == -ECANCELED || r->sock < 0 ||
	    (r->phase != PH_WAIT_READY && r->phase != PH_WAIT_SERVING))
		return;
	if (res <= 0) {
		if (!child_exited(r))
			fail(r, res ? res : -ECONNRESET,
			     "the successor closed the handover channel");
		return;
	}
	err = handover_msg_decode(r->rbuf, (size_t)res, NULL, 0, &type, &last, e, 1, &n);
	if (err < 0 || type == HANDOVER_MSG_ABORT ||
	    type != (r->phase == PH_WAIT_READY ? HANDOVER_MSG_READY : HANDOVER_MSG_SERVING)) {
		fail(r, err < 0 ? err : -EPROTO, "the successor %s",
		     err == -EPROTO               ? "speaks another handover version"
		     : err < 0                    ? "sent a malformed message"
		     : type == HANDOVER_MSG_ABORT ? "gave up (see its log)"
		                                  : "sent an unexpected message");
		return;
	}
	if (type == HANDOVER_MSG_READY) {
		log_info("restart", "successor %d is ready: freezing BGP", (int)r->child);
		r->phase = PH_FREEZE;
		r->deadline = loop_now(r->c.ctl) + RESTART_FREEZE_MS;
		loop_timer_cancel(r->c.ctl, &r->timer);
		freeze_tick(r, loop_now(r->c.ctl));
		return;
	}
	serving(r);
}

int restart_start(struct restart *r, restart_done_fn done, void *arg)
{
	size_t n;
	int keep, give, err;

	if (r->phase != PH_IDLE)
		return -EBUSY;
	err = handover_channel(&keep, &give);
	if (err < 0)
		return err;
	r->sock = keep;
	r->done = done;
	r->done_arg = arg;
	if (r->c.before_spawn)
		r->c.before_spawn(r->c.arg);
	err = spawn(r, give);
	close(give);
	if (err < 0) {
		close(keep);
		r->sock = -1;
		r->done = NULL;
		return err;
	}
	log_info("restart", "started the successor %s as pid %d", r->c.exe, (int)r->child);
	/* Offer every listener now: sharing them is harmless, both may read. */
	const struct handover_entry *e = handover_offered(&n);
	err = handover_send(keep, HANDOVER_MSG_OFFER, e, n);
	r->phase = PH_WAIT_READY;
	if (err < 0) {
		if (!child_exited(r))
			fail(r, err, "cannot offer the listeners: %s", strerror(-err));
		return 0; /* done was called */
	}
	r->deadline = loop_now(r->c.ctl) + RESTART_STEP_MS;
	loop_timer_arm(r->c.ctl, &r->timer, r->deadline);
	if (arm_recv(r) < 0)
		fail(r, -EIO, "cannot wait for the successor");
	return 0;
}

int restart_new(const struct restart_conf *c, struct restart **out)
{
	struct restart *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	if (c->n_workers > CONF_MAX_THREADS) {
		free(r);
		return -EINVAL;
	}
	r->c = *c;
	r->sock = -1;
	timer_init(&r->timer, on_timer, r);
	*out = r;
	return 0;
}

void restart_free(struct restart *r)
{
	if (!r)
		return;
	if (r->child > 0 && r->phase != PH_IDLE && r->phase != PH_RETIRING) {
		kill(r->child, SIGKILL);
		waitpid(r->child, NULL, 0);
	}
	if (r->sock >= 0)
		close(r->sock);
	free(r);
}

int restart_exe(const char *argv0, char *out, size_t size)
{
	ssize_t n = readlink("/proc/self/exe", out, size - 1);

	if (n > 0) {
		out[n] = '\0';
		/* Replaced while we ran (an upgrade before this start): the path. */
		char *del = strstr(out, " (deleted)");
		if (del && del[10] == '\0')
			*del = '\0';
		return 0;
	}
	if (!argv0 || !realpath(argv0, out))
		return -ENOENT;
	return 0;
}

/* ---------------------------------------------------------------- successor */

int restart_inherit(char *why, size_t whylen)
{
	const char *v = getenv(HANDOVER_ENV);
	enum handover_msg_type type;
	char *end;
	long fd;
	int err;

	if (!v)
		return -ENOENT;
	fd = strtol(v, &end, 10);
	/* Never handed on to our own successor by accident. */
	unsetenv(HANDOVER_ENV);
	if (*end || fd < 3 || fd > INT_MAX) {
		snprintf(why, whylen, "%s: not a file descriptor", HANDOVER_ENV);
		return -EINVAL;
	}
	int fl = fcntl((int)fd, F_GETFD);
	if (fl < 0 || fcntl((int)fd, F_SETFD, fl | FD_CLOEXEC) < 0) {
		snprintf(why, whylen, "%s=%ld: %s", HANDOVER_ENV, fd, strerror(errno));
		return -EBADF;
	}
	err = handover_recv((int)fd, RESTART_STEP_MS, &type);
	if (err == 0 && type != HANDOVER_MSG_OFFER)
		err = -EPROTO;
	if (err < 0) {
		snprintf(why, whylen, "handover: no listeners from the predecessor: %s",
		         strerror(-err));
		close((int)fd);
		return err;
	}
	handover_set_active(true);
	return (int)fd;
}

int restart_adopt(int sock, struct bgp_speaker *sp, const struct conf_bgp *bgp, char *why,
                  size_t whylen)
{
	static struct bgp_handover_session st;
	enum handover_msg_type type;
	char b[NETADDR_STRLEN];
	int err, n = 0;

	err = handover_send(sock, HANDOVER_MSG_READY, NULL, 0);
	if (err == 0)
		err = handover_recv(sock, RESTART_STEP_MS, &type);
	if (err == 0 && type != HANDOVER_MSG_STATE)
		err = -EPROTO;
	if (err < 0) {
		snprintf(why, whylen, "handover: no state from the predecessor: %s",
		         strerror(-err));
		return err;
	}
	for (unsigned i = 0; sp && i < bgp->n_neighbors; i++) {
		const struct conf_neighbor *nb = &bgp->neighbors[i];
		const uint8_t *data;
		size_t len;
		int fd = handover_take("bgp-session", i, &nb->address, &data, &len);
		if (fd < 0)
			continue;
		netaddr_format(&nb->address, false, b, sizeof(b));
		err = bgp_handover_decode(data, len, &st);
		if (err == 0)
			err = bgp_speaker_import(sp, i, &st, fd);
		if (err < 0) {
			/* Not ours to use: the router sees this one session go down. */
			log_err("restart", "BGP neighbor %s: session not taken over: %s", b,
			        err == -ESTALE ? "negotiated for another configuration"
			                       : strerror(-err));
			close(fd);
			continue;
		}
		n++;
	}
	for (unsigned i = 0; sp && i < bgp->n_neighbors; i++) {
		const uint8_t *data;
		size_t len;
		if (handover_take_data("bfd-session", i, &bgp->neighbors[i].address, &data, &len) <
		    0)
			continue;
		err = bgp_speaker_bfd_import(sp, i, data, len);
		if (err < 0 && err != -ENOENT)
			log_err("restart", "BFD neighbor %s: session not taken over: %s",
			        netaddr_format(&bgp->neighbors[i].address, false, b, sizeof(b)),
			        strerror(-err));
	}
	return n;
}

int restart_serving(int sock)
{
	int err = handover_send(sock, HANDOVER_MSG_SERVING, NULL, 0);

	close(sock);
	return err;
}
