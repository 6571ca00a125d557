/*
 * bgp_speaker.c: the neighbors, their listeners, and the announcement
 * policy (bgp_policy.h) applied to them. See bgp_speaker.h.
 */
#include "bgp/bgp_speaker.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bgp/bfd_session.h"
#include "bgp/bgp_adjout.h"
#include "bgp/bgp_nbset.h"
#include "bgp/bgp_policy.h"
#include "bgp/bgp_session.h"
#include "bgp/bgp_wire.h"
#include "core/handover.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/timer.h"

#define SHUTDOWN_POLL_MS 10u
/* A failing accept (EMFILE, ENFILE, ENOBUFS) is retried after 10 ms, doubling to 1 s. */
#define ACCEPT_RETRY_MIN_MS 10u
#define ACCEPT_RETRY_MAX_MS 1000u
/* Sessions a reload removed are freed once their Cease is out (bgp_session.c
 * bounds that to its drain time); polled at this period. */
#define RETIRE_POLL_MS 20u

struct listener {
	struct bgp_speaker *sp;
	struct netaddr addr;
	int fd;
	bool armed;
	struct timer retry; /* a failed accept is re-armed from here, not at once */
	uint32_t retry_ms;  /* 0: the last accept worked */
};

/*
 * One neighbor's BFD session and the way back to its BGP session. Allocated
 * on its own (the BFD callback's argument), so a reload can move the
 * neighbor to another index without the BFD session noticing.
 */
struct bfd_link {
	struct bgp_speaker *sp;
	struct bgp_session *bgp;
	struct bfd_session *s;
};

/* A session a reload removed, sending its Cease until bgp_session_discard. */
struct retired {
	struct retired *next;
	struct bgp_session *s;
};

struct bgp_speaker {
	struct loop *l;
	struct conf_bgp conf;
	unsigned n;
	struct bgp_session *sess[CONF_MAX_NEIGHBORS];
	uint64_t warned[CONF_MAX_NEIGHBORS]; /* routes already logged as unannounceable */
	struct listener lis[CONF_MAX_NEIGHBORS];
	unsigned n_lis;
	bool stopping, started, have_health, frozen;
	struct health_snapshot health;
	struct timer start_timer, stop_timer;
	uint64_t stop_deadline;
	bgp_speaker_done_fn done;
	void *done_arg;
	struct bfd_mux *bfd;
	struct bfd_link *bfd_link[CONF_MAX_NEIGHBORS]; /* NULL: no BFD for this neighbor */
	struct conf_bfd bfd_conf;                      /* timers for BFD sessions to come */
	bool has_bfd_conf;
	struct retired *retired;
	struct timer retire_timer;
};

/* ---------------------------------------------------------------- routes */

/* The policy's routes to the sessions in only (NULL: every session),
 * bgp_policy.h; what it reports, logged. */
static void apply_to(struct bgp_speaker *sp, const bool *only)
{
	struct bgp_policy_out *o = malloc(sizeof(*o)); /* ~50 KB, once per health change */
	char pb[NETADDR_STRLEN + 4], ab[NETADDR_STRLEN];

	if (!o) {
		log_err("bgp", "out of memory: routes not updated for this health change");
		return;
	}
	if (bgp_policy_apply(&sp->conf, &sp->health, o) < 0)
		for (unsigned r = 0; r < o->n_routes; r++)
			if (o->refused & (1ull << r))
				log_err(
				    "bgp", "%s: its attributes do not fit one UPDATE: withdrawn",
				    netprefix_format(&sp->conf.routes[r].prefix, pb, sizeof(pb)));
	for (unsigned i = 0; i < sp->n && i < o->n_neighbors; i++) {
		const struct conf_neighbor *nb = &sp->conf.neighbors[i];
		if (only && !only[i])
			continue;
		uint64_t fresh = o->no_next_hop[i] & ~sp->warned[i];
		sp->warned[i] |= fresh;
		for (unsigned r = 0; r < o->n_routes; r++)
			if (fresh & (1ull << r))
				log_warn(
				    "bgp",
				    "%s: %s is not announced: no %s next hop for this session "
				    "(set next-hop6)",
				    netaddr_format(&nb->address, false, ab, sizeof(ab)),
				    netprefix_format(&sp->conf.routes[r].prefix, pb, sizeof(pb)),
				    sp->conf.routes[r].prefix.family == AF_INET6 ? "IPv6" : "IPv4");
		int e = bgp_session_set_routes(sp->sess[i], o->sets, o->n_sets, o->routes[i],
		                               o->n_routes);
		if (e < 0)
			log_err("bgp", "neighbor %u: routes rejected: %s", i, strerror(-e));
	}
	free(o);
}

static void apply(struct bgp_speaker *sp)
{
	apply_to(sp, NULL);
}

void bgp_speaker_set_health(struct bgp_speaker *sp, const struct health_snapshot *h)
{
	if (sp->have_health && !memcmp(&sp->health, h, sizeof(*h)))
		return;
	sp->health = *h;
	sp->have_health = true;
	if (sp->started && !sp->stopping)
		apply(sp);
}

void bgp_speaker_set_routes(struct bgp_speaker *sp, const struct conf_bgp *conf)
{
	memcpy(sp->conf.routes, conf->routes, sizeof(sp->conf.routes));
	sp->conf.n_routes = conf->n_routes;
	sp->conf.degraded = conf->degraded;
	/* Route indexes changed: what was logged once may need saying again. */
	memset(sp->warned, 0, sizeof(sp->warned));
	if (sp->started && !sp->stopping && sp->have_health)
		apply(sp);
}

void bgp_speaker_set_bfd(struct bgp_speaker *sp, const struct conf_bfd *bfd)
{
	uint64_t ms = bfd->interval_ms > UINT32_MAX / 1000 ? UINT32_MAX / 1000 : bfd->interval_ms;

	sp->bfd_conf = *bfd;
	sp->has_bfd_conf = true;
	for (unsigned i = 0; i < sp->n; i++)
		if (sp->bfd_link[i])
			bfd_session_set_timers(sp->bfd_link[i]->s, (uint32_t)ms, bfd->multiplier);
}

/* ---------------------------------------------------------------- listeners */

static void accept_done(struct loop *l, void *ctx, int res, unsigned flags);

static void listener_arm(struct listener *li)
{
	if (li->armed || li->fd < 0 || li->sp->stopping)
		return;
	if (loop_accept(li->sp->l, li->fd, accept_done, li, NULL) == 0)
		li->armed = true;
}

static void accept_retry(struct timer *t, uint64_t now, void *arg)
{
	(void)t;
	(void)now;
	listener_arm(arg);
}

static void accept_done(struct loop *l, void *ctx, int res, unsigned flags)
{
	struct listener *li = ctx;
	struct bgp_speaker *sp = li->sp;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct netaddr peer;
	char b[NETADDR_STRLEN + 8];

	(void)l;
	if (!(flags & LOOP_F_MORE))
		li->armed = false;
	if (res == -ECANCELED)
		return;
	if (res < 0) {
		/*
		 * The connection stays queued, so an accept re-armed at once fails
		 * again at once (EMFILE: a busy loop on the control thread). Back off;
		 * the queued peer waits (its SYN was answered by the kernel).
		 */
		li->retry_ms = li->retry_ms ? li->retry_ms * 2 : ACCEPT_RETRY_MIN_MS;
		if (li->retry_ms > ACCEPT_RETRY_MAX_MS)
			li->retry_ms = ACCEPT_RETRY_MAX_MS;
		/* A flood of these is summarised by log.c's per-call-site limit. */
		log_warn("bgp", "accept on %s: %s; retrying in %u ms",
		         netaddr_format(&li->addr, true, b, sizeof(b)), strerror(-res), li->retry_ms);
		if (!li->armed && !sp->stopping)
			loop_timer_arm_in(sp->l, &li->retry, li->retry_ms);
		return;
	}
	li->retry_ms = 0;
	/* A v4-mapped source reads as IPv4, as neighbors are configured. */
	memset(&peer, 0, sizeof(peer));
	if (getpeername(res, (struct sockaddr *)&ss, &sl) == 0)
		netaddr_from_sockaddr((struct sockaddr *)&ss, sl, &peer);
	unsigned i;
	for (i = 0; i < sp->n; i++)
		if (netaddr_equal_ip(&sp->conf.neighbors[i].address, &peer))
			break;
	if (i < sp->n && !sp->stopping) {
		bgp_session_accept(sp->sess[i], res);
	} else {
		/* Anyone may connect: log.c's per-call-site limit (log_limit.h)
		 * turns a connect loop into a few lines and a "suppressed N". */
		log_info("bgp", "connection from %s refused: not a neighbor",
		         netaddr_format(&peer, false, b, sizeof(b)));
		close(res);
	}
	if (!li->armed && !sp->stopping)
		listener_arm(li);
}

static int listener_open(struct bgp_speaker *sp, const struct netaddr *addr, char *why,
                         size_t whylen)
{
	/* A slot a reload closed (listeners_prune) and whose accept has ended. */
	unsigned slot = sp->n_lis;
	for (unsigned i = 0; i < sp->n_lis; i++)
		if (sp->lis[i].fd < 0 && !sp->lis[i].armed && !timer_armed(&sp->lis[i].retry)) {
			slot = i;
			break;
		}
	struct listener *li = &sp->lis[slot];
	struct sockaddr_storage ss;
	struct netaddr a = *addr;
	char b[NETADDR_STRLEN + 8];
	int fd, one = 1;
	socklen_t sl;

	(void)why;
	(void)whylen;
	a.port = BGP_PORT;
	li->sp = sp;
	li->addr = a;
	li->fd = -1;
	timer_init(&li->retry, accept_retry, li);
	/* A successor takes its predecessor's listener (core/handover.h): a
	 * fresh bind would fail while the old one still listens. */
	fd = handover_take("bgp-listen", 0, &a, NULL, NULL);
	if (fd >= 0)
		goto have_fd;
	fd = socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (a.family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	sl = netaddr_to_sockaddr(&a, &ss);
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 16) < 0) {
		log_warn("bgp", "cannot listen on %s: %s; neighbors there connect only actively",
		         netaddr_format(&a, true, b, sizeof(b)), strerror(errno));
		close(fd);
		return 0;
	}
have_fd:
	/* RFC 2385: the listener needs every peer's key to answer its SYN. */
	for (unsigned i = 0; i < sp->conf.n_neighbors; i++) {
		const struct conf_neighbor *nb = &sp->conf.neighbors[i];
		if (nb->address.family != a.family || !nb->password[0])
			continue;
		int r = bgp_session_md5_listen(fd, nb);
		if (r < 0)
			log_warn("bgp", "TCP_MD5SIG on the listener: %s", strerror(-r));
	}
	li->fd = fd;
	if (slot == sp->n_lis)
		sp->n_lis++;
	handover_offer("bgp-listen", 0, &a, fd);
	log_debug("bgp", "listening on %s", netaddr_format(&a, true, b, sizeof(b)));
	return 0;
}

/* ---------------------------------------------------------------- BFD */

/*
 * RFC 5882 §4.3, as BIRD does it: a BFD session that was Up and went Down is
 * a path failure and takes BGP down now. Not a failure: the peer's AdminDown
 * (§3.2: it turned BFD off, the path may be fine), a session that never came
 * Up (the peer may not run BFD at all), our own AdminDown at shutdown.
 */
static void bfd_changed(void *arg, struct bfd_session *s, const struct bfd_session_change *c)
{
	struct bfd_link *bl = arg;
	struct bgp_speaker *sp = bl->sp;

	(void)s;
	if (sp->stopping || c->from != BFD_STATE_UP || c->to != BFD_STATE_DOWN ||
	    c->remote_state == BFD_STATE_ADMIN_DOWN)
		return;
	bgp_session_bfd_down(bl->bgp);
}

/*
 * Neighbor i's BFD session when it has bfd: true; a failure leaves it
 * without BFD (logged). -errno only when the mux itself cannot be made.
 */
static int bfd_add(struct bgp_speaker *sp, unsigned i)
{
	const struct conf_neighbor *nb = &sp->conf.neighbors[i];
	const struct conf_bfd *bfd = &sp->bfd_conf;
	struct bfd_session_conf bc = {.peer = nb->address,
	                              .local = nb->local_address,
	                              .interval_ms = (uint32_t)bfd->interval_ms,
	                              .multiplier = bfd->multiplier};
	char b[NETADDR_STRLEN];
	struct bfd_link *bl;
	int r;

	sp->bfd_link[i] = NULL;
	if (!nb->bfd || !sp->has_bfd_conf)
		return 0;
	if (!sp->bfd) {
		r = bfd_mux_new(sp->l, 0, (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL),
		                &sp->bfd);
		if (r < 0)
			return r;
	}
	bl = calloc(1, sizeof(*bl));
	if (!bl) {
		log_err("bgp", "%s: no BFD session, the neighbor runs without BFD: %s",
		        netaddr_format(&nb->address, false, b, sizeof(b)), strerror(ENOMEM));
		return 0;
	}
	bl->sp = sp;
	bl->bgp = sp->sess[i];
	bc.peer.port = 0; /* the BGP port: BFD goes to 3784 */
	if (bfd->interval_ms > UINT32_MAX / 1000)
		bc.interval_ms = UINT32_MAX / 1000;
	r = bfd_session_new(sp->bfd, &bc, bfd_changed, bl, &bl->s);
	if (r < 0) {
		log_err("bgp", "%s: no BFD session, the neighbor runs without BFD: %s",
		        netaddr_format(&nb->address, false, b, sizeof(b)), strerror(-r));
		free(bl);
		return 0;
	}
	sp->bfd_link[i] = bl;
	return 0;
}

/* A BFD session per neighbor with bfd: true. */
static int bfd_setup(struct bgp_speaker *sp, const struct conf_bfd *bfd)
{
	int r;

	sp->bfd_conf = *bfd;
	sp->has_bfd_conf = true;
	for (unsigned i = 0; i < sp->n; i++)
		if ((r = bfd_add(sp, i)) < 0)
			return r;
	return 0;
}

static void bfd_remove(struct bfd_link *bl)
{
	if (!bl)
		return;
	bfd_session_free(bl->s);
	free(bl);
}

/* ---------------------------------------------------------------- lifecycle */

static void start_now(struct timer *t, uint64_t now, void *arg)
{
	struct bgp_speaker *sp = arg;

	(void)t;
	(void)now;
	if (sp->stopping)
		return;
	sp->started = true;
	for (unsigned i = 0; i < sp->n_lis; i++)
		listener_arm(&sp->lis[i]);
	if (sp->have_health)
		apply(sp);
	for (unsigned i = 0; i < sp->n; i++)
		bgp_session_start(sp->sess[i]);
	for (unsigned i = 0; i < sp->n; i++)
		if (sp->bfd_link[i])
			bfd_session_start(sp->bfd_link[i]->s);
}

static void stop_poll(struct timer *t, uint64_t now, void *arg);
static void retire_poll(struct timer *t, uint64_t now, void *arg);

/* A session for neighbor i of sp->conf (not started). */
static int session_make(struct bgp_speaker *sp, unsigned i, struct bgp_session **out)
{
	struct bgp_session_conf sc = {
	    .nb = sp->conf.neighbors[i],
	    .local_as = sp->conf.asn,
	    .seed = ((uint64_t)sp->conf.neighbors[i].address.addr[3] << 32) ^ (uint64_t)getpid() ^
	            (uint64_t)i ^ loop_now(sp->l),
	};

	memcpy(&sc.bgp_id, sp->conf.router_id.addr, 4);
	sc.bgp_id = ntohl(sc.bgp_id);
	return bgp_session_new(sp->l, &sc, out);
}

/* The listener on a (a listener per distinct local-address, or the
 * family's wildcard); -1 when there is none. */
static int listener_find(const struct bgp_speaker *sp, const struct netaddr *a)
{
	for (unsigned j = 0; j < sp->n_lis; j++)
		if (sp->lis[j].fd >= 0 && netaddr_equal_ip(&sp->lis[j].addr, a))
			return (int)j;
	return -1;
}

static struct netaddr listen_addr(const struct conf_neighbor *nb)
{
	struct netaddr a = nb->local_address;

	if (!a.family) {
		memset(&a, 0, sizeof(a));
		a.family = nb->address.family;
	}
	return a;
}

int bgp_speaker_new(struct loop *l, const struct conf_bgp *conf, const struct conf_bfd *bfd,
                    char *why, size_t whylen, struct bgp_speaker **out)
{
	struct bgp_speaker *sp = calloc(1, sizeof(*sp));
	int r;

	if (!sp) {
		snprintf(why, whylen, "BGP: out of memory");
		return -ENOMEM;
	}
	sp->l = l;
	sp->conf = *conf;
	timer_init(&sp->start_timer, start_now, sp);
	timer_init(&sp->stop_timer, stop_poll, sp);
	timer_init(&sp->retire_timer, retire_poll, sp);
	for (unsigned i = 0; i < conf->n_neighbors; i++) {
		r = session_make(sp, i, &sp->sess[i]);
		if (r < 0) {
			snprintf(why, whylen, "BGP neighbor %u: cannot create the session: %s", i,
			         strerror(-r));
			bgp_speaker_free(sp);
			return r;
		}
		sp->n++;
	}
	/* One listener per distinct local-address (or per-family wildcard). */
	for (unsigned i = 0; i < conf->n_neighbors; i++) {
		struct netaddr a = listen_addr(&conf->neighbors[i]);
		if (listener_find(sp, &a) < 0) {
			r = listener_open(sp, &a, why, whylen);
			if (r < 0) {
				snprintf(why, whylen, "BGP listener: %s", strerror(-r));
				bgp_speaker_free(sp);
				return r;
			}
		}
	}
	if (bfd && (r = bfd_setup(sp, bfd)) < 0) {
		snprintf(why, whylen, "BFD: %s", strerror(-r));
		bgp_speaker_free(sp);
		return r;
	}
	loop_timer_arm_in(l, &sp->start_timer, 0);
	*out = sp;
	return 0;
}

static void stop_poll(struct timer *t, uint64_t now, void *arg)
{
	struct bgp_speaker *sp = arg;
	bool quiet = true;

	for (unsigned i = 0; i < sp->n; i++)
		quiet = quiet && bgp_session_quiet(sp->sess[i]);
	for (struct retired *r = sp->retired; r; r = r->next)
		quiet = quiet && bgp_session_quiet(r->s);
	if (!quiet && now < sp->stop_deadline) {
		loop_timer_arm_in(sp->l, t, SHUTDOWN_POLL_MS);
		return;
	}
	log_debug("bgp", "shutdown: %s after %llu ms", quiet ? "every Cease sent" : "timed out",
	          (unsigned long long)(now + BGP_SPEAKER_SHUTDOWN_MS - sp->stop_deadline));
	if (!quiet)
		log_warn("bgp", "shutdown: some peers did not take their Cease within %u ms",
		         BGP_SPEAKER_SHUTDOWN_MS);
	if (sp->done) {
		bgp_speaker_done_fn done = sp->done;
		sp->done = NULL;
		done(sp->done_arg);
	}
}

void bgp_speaker_shutdown(struct bgp_speaker *sp, const char *text, bgp_speaker_done_fn done,
                          void *arg)
{
	if (sp->stopping)
		return;
	if (sp->bfd)
		bfd_mux_shutdown(sp->bfd); /* AdminDown first: see bgp_speaker.h */
	sp->stopping = true;
	sp->done = done;
	sp->done_arg = arg;
	loop_timer_cancel(sp->l, &sp->start_timer);
	for (unsigned i = 0; i < sp->n_lis; i++)
		loop_timer_cancel(sp->l, &sp->lis[i].retry);
	for (unsigned i = 0; i < sp->n_lis; i++)
		if (sp->lis[i].fd >= 0) {
			loop_close_fd(sp->l, sp->lis[i].fd, NULL, NULL);
			sp->lis[i].fd = -1;
		}
	for (unsigned i = 0; i < sp->n; i++)
		bgp_session_shutdown(sp->sess[i], text);
	sp->stop_deadline = loop_now(sp->l) + BGP_SPEAKER_SHUTDOWN_MS;
	loop_timer_arm_in(sp->l, &sp->stop_timer, 0);
}

void bgp_speaker_free(struct bgp_speaker *sp)
{
	if (!sp)
		return;
	for (unsigned i = 0; i < sp->n_lis; i++)
		if (sp->lis[i].fd >= 0)
			close(sp->lis[i].fd);
	for (unsigned i = 0; i < sp->n; i++) {
		bgp_session_free(sp->sess[i]);
		free(sp->bfd_link[i]); /* its BFD session goes with the mux */
	}
	while (sp->retired) {
		struct retired *r = sp->retired;
		sp->retired = r->next;
		bgp_session_free(r->s);
		free(r);
	}
	bfd_mux_free(sp->bfd);
	free(sp);
}

bool bgp_speaker_any_established(const struct bgp_speaker *sp)
{
	for (unsigned i = 0; sp && i < sp->n; i++)
		if (bgp_session_state(sp->sess[i]) == BGP_FSM_ESTABLISHED)
			return true;
	return false;
}

unsigned bgp_speaker_neighbors(const struct bgp_speaker *sp)
{
	return sp ? sp->n : 0;
}

const struct bgp_session *bgp_speaker_session(const struct bgp_speaker *sp, unsigned i)
{
	return sp && i < sp->n ? sp->sess[i] : NULL;
}

const struct bfd_session *bgp_speaker_bfd(const struct bgp_speaker *sp, unsigned i)
{
	return sp && i < sp->n && sp->bfd_link[i] ? sp->bfd_link[i]->s : NULL;
}

/* ---------------------------------------------------------------- reload */

/* Frees the retired sessions whose Cease is out; polls again while some remain. */
static void retire_poll(struct timer *t, uint64_t now, void *arg)
{
	struct bgp_speaker *sp = arg;

	(void)now;
	for (struct retired **pp = &sp->retired; *pp;) {
		struct retired *r = *pp;
		if (bgp_session_discard(r->s) == 0) {
			*pp = r->next;
			free(r);
		} else {
			pp = &r->next;
		}
	}
	if (sp->retired)
		loop_timer_arm_in(sp->l, t, RETIRE_POLL_MS);
}

/*
 * After a reload removed or changed neighbors: their TCP MD5 keys leave the
 * listeners (RFC 2385: a key left behind makes the listener demand MD5 of
 * that address, so a neighbor whose password a reload removed could never
 * connect in; listener_for adds the changed ones' new keys back), and a
 * listener no neighbor uses any more is closed.
 */
static void listeners_prune(struct bgp_speaker *sp, const struct conf_bgp *old,
                            const struct bgp_nbset_plan *plan)
{
	char b[NETADDR_STRLEN + 8];

	for (unsigned i = 0; i < old->n_neighbors; i++) {
		const struct conf_neighbor *nb = &old->neighbors[i];
		if (plan->fate[i] == BGP_NBSET_KEEP || !nb->password[0])
			continue;
		struct netaddr a = listen_addr(nb);
		int j = listener_find(sp, &a);
		int r = j >= 0 ? bgp_session_md5_unlisten(sp->lis[j].fd, &nb->address) : 0;
		if (r < 0)
			log_warn("bgp", "TCP_MD5SIG off the listener: %s", strerror(-r));
	}
	for (unsigned j = 0; j < sp->n_lis; j++) {
		struct listener *li = &sp->lis[j];
		bool used = false;
		if (li->fd < 0)
			continue;
		for (unsigned i = 0; i < sp->conf.n_neighbors && !used; i++) {
			struct netaddr a = listen_addr(&sp->conf.neighbors[i]);
			used = netaddr_equal_ip(&li->addr, &a);
		}
		if (used)
			continue;
		log_info("bgp", "no neighbor on %s any more: its listener is closed",
		         netaddr_format(&li->addr, true, b, sizeof(b)));
		loop_timer_cancel(sp->l, &li->retry);
		handover_forget(li->fd);
		/* Its accept ends with -ECANCELED (accept_done), then the slot is free. */
		loop_close_fd(sp->l, li->fd, NULL, NULL);
		li->fd = -1;
	}
}

/* A new neighbor's way in: its listener (opened when its local-address has
 * none yet) and, with a password, its TCP MD5 key there (RFC 2385). */
static void listener_for(struct bgp_speaker *sp, const struct conf_neighbor *nb)
{
	struct netaddr a = listen_addr(nb);
	char b[NETADDR_STRLEN + 8];
	int j = listener_find(sp, &a);

	if (j >= 0) {
		if (sp->lis[j].fd >= 0 && nb->password[0] &&
		    (j = bgp_session_md5_listen(sp->lis[j].fd, nb)) < 0)
			log_warn("bgp", "TCP_MD5SIG on the listener: %s", strerror(-j));
		return;
	}
	if (sp->n_lis == CONF_MAX_NEIGHBORS) {
		log_warn("bgp",
		         "no listener on %s (too many local addresses over reloads): "
		         "the neighbor connects only actively",
		         netaddr_format(&a, false, b, sizeof(b)));
		return;
	}
	unsigned before = sp->n_lis;
	int r = listener_open(sp, &a, NULL, 0);
	if (r < 0)
		log_warn("bgp", "no listener on %s: %s; the neighbor connects only actively",
		         netaddr_format(&a, false, b, sizeof(b)), strerror(-r));
	else if (sp->n_lis > before && sp->started)
		listener_arm(&sp->lis[before]);
}

int bgp_speaker_set_neighbors(struct bgp_speaker *sp, const struct conf_bgp *conf)
{
	static struct bgp_nbset_plan plan;
	static struct conf_bgp was; /* the set before (static: large; the control thread only) */
	struct bgp_session *sess[CONF_MAX_NEIGHBORS] = {NULL};
	struct bfd_link *links[CONF_MAX_NEIGHBORS] = {NULL};
	uint64_t warned[CONF_MAX_NEIGHBORS] = {0};
	bool fresh[CONF_MAX_NEIGHBORS] = {false};
	struct retired *ret[CONF_MAX_NEIGHBORS] = {NULL};
	struct conf_bgp *next;
	unsigned n_old = sp->n;
	int r;

	if (sp->stopping || sp->frozen)
		return -EBUSY; /* a shutdown or a restart handover is under way */
	r = bgp_nbset_plan(&sp->conf, conf, &plan);
	if (r < 0)
		return r;
	if (!plan.added && !plan.removed && !plan.changed && n_old == conf->n_neighbors) {
		int moved = 0;
		for (unsigned j = 0; j < conf->n_neighbors; j++)
			moved |= plan.from[j] != (int)j;
		if (!moved)
			return 0;
	}
	/* Everything that can fail first, so a failure changes nothing. */
	next = malloc(sizeof(*next));
	if (!next)
		return -ENOMEM;
	*next = sp->conf;
	memcpy(next->neighbors, conf->neighbors, sizeof(next->neighbors));
	next->n_neighbors = conf->n_neighbors;
	for (unsigned i = 0; i < n_old; i++)
		if (plan.fate[i] != BGP_NBSET_KEEP && !(ret[i] = calloc(1, sizeof(*ret[i]))))
			goto nomem;
	{
		struct conf_bgp cur = sp->conf;
		sp->conf = *next; /* session_make reads the neighbor from here */
		for (unsigned j = 0; j < conf->n_neighbors; j++) {
			if (plan.from[j] >= 0)
				continue;
			r = session_make(sp, j, &sess[j]);
			if (r < 0) {
				sp->conf = cur;
				goto fail;
			}
			fresh[j] = true;
		}
		sp->conf = cur;
	}

	/* RFC 4486 §4: Cease 6/3 to the removed, 6/6 to the changed; their BFD
	 * says AdminDown and is freed now, the BGP session once its Cease is out. */
	for (unsigned i = 0; i < n_old; i++) {
		if (plan.fate[i] == BGP_NBSET_KEEP)
			continue;
		bfd_remove(sp->bfd_link[i]);
		sp->bfd_link[i] = NULL;
		bgp_session_retire(sp->sess[i], plan.fate[i]);
		ret[i]->s = sp->sess[i];
		ret[i]->next = sp->retired;
		sp->retired = ret[i];
		ret[i] = NULL;
	}
	for (unsigned j = 0; j < conf->n_neighbors; j++)
		if (plan.from[j] >= 0) {
			sess[j] = sp->sess[plan.from[j]];
			links[j] = sp->bfd_link[plan.from[j]];
			warned[j] = sp->warned[plan.from[j]];
		}
	was = sp->conf;
	sp->conf = *next;
	free(next);
	sp->n = conf->n_neighbors;
	memcpy(sp->sess, sess, sizeof(sp->sess));
	memcpy(sp->bfd_link, links, sizeof(sp->bfd_link));
	memcpy(sp->warned, warned, sizeof(sp->warned));

	listeners_prune(sp, &was, &plan);
	for (unsigned j = 0; j < sp->n; j++) {
		if (!fresh[j])
			continue;
		listener_for(sp, &sp->conf.neighbors[j]);
		if ((r = bfd_add(sp, j)) < 0)
			log_err("bgp", "BFD: %s; the new neighbors run without BFD", strerror(-r));
	}
	/* As at start (start_now): the routes first, then the connections. */
	if (sp->started) {
		if (sp->have_health)
			apply_to(sp, fresh);
		for (unsigned j = 0; j < sp->n; j++)
			if (fresh[j]) {
				bgp_session_start(sp->sess[j]);
				if (sp->bfd_link[j])
					bfd_session_start(sp->bfd_link[j]->s);
			}
	}
	if (sp->retired)
		loop_timer_arm_in(sp->l, &sp->retire_timer, RETIRE_POLL_MS);
	log_info("bgp", "neighbors: %u kept, %u added, %u removed, %u changed", plan.kept,
	         plan.added - plan.changed, plan.removed, plan.changed);
	return 0;
nomem:
	r = -ENOMEM;
fail:
	for (unsigned j = 0; j < conf->n_neighbors; j++)
		if (fresh[j])
			bgp_session_free(sess[j]); /* never started: no loop operation */
	for (unsigned i = 0; i < n_old; i++)
		free(ret[i]);
	free(next);
	return r;
}

/* ---------------------------------------------------------------- restart */

int bgp_speaker_freeze(struct bgp_speaker *sp)
{
	int waiting = 0;

	sp->frozen = true;
	for (unsigned i = 0; i < sp->n; i++)
		waiting += bgp_session_freeze(sp->sess[i]) == 0;
	return waiting;
}

int bgp_speaker_export(const struct bgp_speaker *sp, unsigned i, struct bgp_handover_session *out,
                       int *fd)
{
	if (i >= sp->n)
		return -ENOENT;
	if (bgp_session_state(sp->sess[i]) != BGP_FSM_ESTABLISHED)
		return -ENOTCONN;
	return bgp_session_export(sp->sess[i], out, fd);
}

void bgp_speaker_thaw(struct bgp_speaker *sp)
{
	sp->frozen = false;
	for (unsigned i = 0; i < sp->n; i++)
		bgp_session_thaw(sp->sess[i]);
}

void bgp_speaker_handed_over(struct bgp_speaker *sp)
{
	sp->stopping = true;
	loop_timer_cancel(sp->l, &sp->start_timer);
	for (unsigned i = 0; i < sp->n_lis; i++)
		if (sp->lis[i].fd >= 0) {
			handover_forget(sp->lis[i].fd);
			loop_close_fd(sp->l, sp->lis[i].fd, NULL, NULL);
			sp->lis[i].fd = -1;
		}
	for (unsigned i = 0; i < sp->n; i++)
		bgp_session_handed_over(sp->sess[i]);
	if (sp->bfd)
		bfd_mux_handed_over(sp->bfd);
}

int bgp_speaker_bfd_export(const struct bgp_speaker *sp, unsigned i, uint8_t *buf, size_t cap)
{
	if (i >= sp->n || !sp->bfd_link[i])
		return -ENOENT;
	return bfd_session_export(sp->bfd_link[i]->s, buf, cap);
}

int bgp_speaker_bfd_import(struct bgp_speaker *sp, unsigned i, const uint8_t *buf, size_t len)
{
	if (i >= sp->n || !sp->bfd_link[i])
		return -ENOENT;
	return bfd_session_import(sp->bfd_link[i]->s, buf, len);
}

int bgp_speaker_import(struct bgp_speaker *sp, unsigned i, const struct bgp_handover_session *in,
                       int fd)
{
	if (i >= sp->n)
		return -ENOENT;
	return bgp_session_import(sp->sess[i], in, fd);
}
