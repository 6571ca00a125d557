/*
 * bgp_speaker.c: the neighbors, their listeners and the health → routes
 * mapping. See bgp_speaker.h.
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
#include "bgp/bgp_session.h"
#include "bgp/bgp_wire.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/timer.h"

#define SHUTDOWN_POLL_MS 10u

struct listener {
	struct bgp_speaker *sp;
	struct netaddr addr;
	int fd;
	bool armed;
};

/* One neighbor's BFD session and the way back to its BGP session. */
struct bfd_link {
	struct bgp_speaker *sp;
	unsigned i;
	struct bfd_session *s; /* NULL: no BFD for this neighbor */
};

struct bgp_speaker {
	struct loop *l;
	struct conf_bgp conf;
	unsigned n;
	struct bgp_session *sess[CONF_MAX_NEIGHBORS];
	uint64_t warned[CONF_MAX_NEIGHBORS]; /* routes already logged as unannounceable */
	struct listener lis[CONF_MAX_NEIGHBORS];
	unsigned n_lis;
	bool stopping, started, have_health;
	struct health_snapshot health;
	bgp_speaker_health_fn health_fn;
	void *health_arg;
	struct timer start_timer, health_timer, stop_timer;
	uint64_t stop_deadline;
	bgp_speaker_done_fn done;
	void *done_arg;
	struct bfd_mux *bfd;
	struct bfd_link bfd_link[CONF_MAX_NEIGHBORS];
};

/* ---------------------------------------------------------------- routes */

static void attrs_of_route(const struct conf_route *r, struct bgp_adjout_attrs *a)
{
	memset(a, 0, sizeof(*a));
	a->local_pref = r->local_pref;
	a->med = r->med;
	a->has_med = r->has_med;
	a->n_communities = (uint8_t)r->n_communities;
	memcpy(a->communities, r->communities, r->n_communities * sizeof(uint32_t));
	a->n_large_communities = (uint8_t)(r->n_large_communities > BGP_ADJOUT_MAX_LARGE_COMMUNITIES
	                                       ? BGP_ADJOUT_MAX_LARGE_COMMUNITIES
	                                       : r->n_large_communities);
	for (unsigned i = 0; i < a->n_large_communities; i++) {
		a->large_communities[i].global = r->large_communities[i][0];
		a->large_communities[i].local1 = r->large_communities[i][1];
		a->large_communities[i].local2 = r->large_communities[i][2];
	}
}

static void attrs_degraded(const struct conf_degraded *dg, struct bgp_adjout_attrs *a)
{
	a->local_pref = dg->local_pref;
	if (dg->has_med) {
		a->med = dg->med;
		a->has_med = true;
	}
	a->prepend = (uint8_t)dg->prepend;
	for (unsigned i = 0; i < dg->n_communities && a->n_communities < BGP_ADJOUT_MAX_COMMUNITIES;
	     i++)
		a->communities[a->n_communities++] = dg->communities[i];
}

/* The best state of any VIP the route covers: UP beats DEGRADED. */
static enum health_state route_state(const struct conf_route *r, const struct health_snapshot *h)
{
	enum health_state best = HEALTH_DOWN;

	for (unsigned i = 0; i < h->n && i < HEALTH_MAX_VIPS; i++) {
		if (!netprefix_contains(&r->prefix, &h->vip[i].addr))
			continue;
		if (h->vip[i].state == HEALTH_UP)
			return HEALTH_UP;
		if (h->vip[i].state == HEALTH_DEGRADED || h->vip[i].state == HEALTH_DRAINING)
			best = HEALTH_DEGRADED;
	}
	return best;
}

static int attrset_index(struct bgp_adjout_attrs *sets, size_t *n, const struct bgp_adjout_attrs *a)
{
	for (size_t i = 0; i < *n; i++)
		if (bgp_adjout_attrs_equal(&sets[i], a))
			return (int)i;
	if (*n >= BGP_ADJOUT_MAX_ATTRSETS)
		return -ENOSPC;
	sets[*n] = *a;
	return (int)(*n)++;
}

/* Whether neighbor i can carry a route of this family (a next hop exists). */
static bool nexthop_ok(struct bgp_speaker *sp, unsigned i, unsigned ri)
{
	const struct conf_neighbor *nb = &sp->conf.neighbors[i];
	const struct conf_route *r = &sp->conf.routes[ri];
	char pb[NETADDR_STRLEN + 4], ab[NETADDR_STRLEN];
	bool ok;

	if (r->prefix.family == AF_INET6)
		ok = nb->has_next_hop6 || nb->address.family == AF_INET6;
	else
		ok = nb->address.family == AF_INET || nb->local_address.family == AF_INET;
	if (!ok && ri < 64 && !(sp->warned[i] & (1ull << ri))) {
		sp->warned[i] |= 1ull << ri;
		log_warn("bgp",
		         "%s: %s is not announced: no %s next hop for this session "
		         "(set next-hop6)",
		         netaddr_format(&nb->address, false, ab, sizeof(ab)),
		         netprefix_format(&r->prefix, pb, sizeof(pb)),
		         r->prefix.family == AF_INET6 ? "IPv6" : "IPv4");
	}
	return ok;
}

static void apply(struct bgp_speaker *sp)
{
	static struct bgp_adjout_attrs sets[BGP_ADJOUT_MAX_ATTRSETS];
	struct bgp_adjout_route routes[CONF_MAX_ROUTES];
	enum health_state st[CONF_MAX_ROUTES];
	int idx[CONF_MAX_ROUTES];
	size_t n_sets = 0;

	for (unsigned r = 0; r < sp->conf.n_routes; r++) {
		struct bgp_adjout_attrs a;
		st[r] = route_state(&sp->conf.routes[r], &sp->health);
		idx[r] = -1;
		if (st[r] == HEALTH_DEGRADED && !sp->conf.degraded.enabled)
			st[r] = HEALTH_DOWN; /* conf.h: no degraded section = withdraw */
		if (st[r] == HEALTH_DOWN)
			continue;
		attrs_of_route(&sp->conf.routes[r], &a);
		if (st[r] == HEALTH_DEGRADED)
			attrs_degraded(&sp->conf.degraded, &a);
		idx[r] = attrset_index(sets, &n_sets, &a);
		if (idx[r] < 0)
			log_err("bgp", "more than %d distinct attribute sets: route %u withdrawn",
			        BGP_ADJOUT_MAX_ATTRSETS, r);
	}
	for (unsigned i = 0; i < sp->n; i++) {
		size_t n = 0;
		for (unsigned r = 0; r < sp->conf.n_routes; r++) {
			routes[n].prefix = sp->conf.routes[r].prefix;
			routes[n].attrset = idx[r] >= 0 && nexthop_ok(sp, i, r)
			                        ? (uint16_t)idx[r]
			                        : BGP_ADJOUT_WITHDRAWN;
			n++;
		}
		int e = bgp_session_set_routes(sp->sess[i], sets, n_sets, routes, n);
		if (e < 0)
			log_err("bgp", "neighbor %u: routes rejected: %s", i, strerror(-e));
	}
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

static void health_poll(struct timer *t, uint64_t now, void *arg)
{
	struct bgp_speaker *sp = arg;
	static struct health_snapshot h;

	(void)now;
	if (sp->stopping || !sp->health_fn)
		return;
	memset(&h, 0, sizeof(h));
	sp->health_fn(sp->health_arg, &h);
	bgp_speaker_set_health(sp, &h);
	loop_timer_arm_in(sp->l, t, BGP_SPEAKER_HEALTH_POLL_MS);
}

void bgp_speaker_watch_health(struct bgp_speaker *sp, bgp_speaker_health_fn fn, void *arg)
{
	sp->health_fn = fn;
	sp->health_arg = arg;
	timer_init(&sp->health_timer, health_poll, sp);
	loop_timer_arm_in(sp->l, &sp->health_timer, BGP_SPEAKER_HEALTH_POLL_MS);
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

static void accept_done(struct loop *l, void *ctx, int res, unsigned flags)
{
	struct listener *li = ctx;
	struct bgp_speaker *sp = li->sp;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct netaddr peer;

	(void)l;
	if (!(flags & LOOP_F_MORE))
		li->armed = false;
	if (res == -ECANCELED)
		return;
	if (res >= 0) {
		memset(&peer, 0, sizeof(peer));
		if (getpeername(res, (struct sockaddr *)&ss, &sl) == 0) {
			if (ss.ss_family == AF_INET) {
				peer.family = AF_INET;
				memcpy(peer.addr, &((struct sockaddr_in *)&ss)->sin_addr, 4);
			} else if (ss.ss_family == AF_INET6) {
				peer.family = AF_INET6;
				memcpy(peer.addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
			}
		}
		unsigned i;
		for (i = 0; i < sp->n; i++)
			if (netaddr_equal_ip(&sp->conf.neighbors[i].address, &peer))
				break;
		if (i < sp->n && !sp->stopping) {
			bgp_session_accept(sp->sess[i], res);
		} else {
			char b[NETADDR_STRLEN];
			log_info("bgp", "connection from %s refused: not a neighbor",
			         netaddr_format(&peer, false, b, sizeof(b)));
			close(res);
		}
	}
	if (!li->armed && !sp->stopping)
		listener_arm(li);
}

static int listener_open(struct bgp_speaker *sp, const struct netaddr *addr, char *why,
                         size_t whylen)
{
	struct listener *li = &sp->lis[sp->n_lis];
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
	sp->n_lis++;
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
	bgp_session_bfd_down(sp->sess[bl->i]);
}

/* A BFD session per neighbor with bfd: true; failures leave that neighbor without BFD. */
static int bfd_setup(struct bgp_speaker *sp, const struct conf_bfd *bfd)
{
	char b[NETADDR_STRLEN];
	int r;

	for (unsigned i = 0; i < sp->n; i++) {
		const struct conf_neighbor *nb = &sp->conf.neighbors[i];
		struct bfd_link *bl = &sp->bfd_link[i];
		struct bfd_session_conf bc = {.peer = nb->address,
		                              .local = nb->local_address,
		                              .interval_ms = (uint32_t)bfd->interval_ms,
		                              .multiplier = bfd->multiplier};

		bl->sp = sp;
		bl->i = i;
		if (!nb->bfd)
			continue;
		if (!sp->bfd) {
			r = bfd_mux_new(sp->l, 0, (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL),
			                &sp->bfd);
			if (r < 0)
				return r;
		}
		bc.peer.port = 0; /* the BGP port: BFD goes to 3784 */
		if (bfd->interval_ms > UINT32_MAX / 1000)
			bc.interval_ms = UINT32_MAX / 1000;
		r = bfd_session_new(sp->bfd, &bc, bfd_changed, bl, &bl->s);
		if (r < 0)
			log_err("bgp", "%s: no BFD session, the neighbor runs without BFD: %s",
			        netaddr_format(&nb->address, false, b, sizeof(b)), strerror(-r));
	}
	return 0;
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
		if (sp->bfd_link[i].s)
			bfd_session_start(sp->bfd_link[i].s);
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
	for (unsigned i = 0; i < conf->n_neighbors; i++) {
		struct bgp_session_conf sc = {
		    .nb = conf->neighbors[i],
		    .local_as = conf->asn,
		    .seed = ((uint64_t)conf->neighbors[i].address.addr[3] << 32) ^
		            (uint64_t)getpid() ^ (uint64_t)i,
		};
		memcpy(&sc.bgp_id, conf->router_id.addr, 4);
		sc.bgp_id = ntohl(sc.bgp_id);
		r = bgp_session_new(l, &sc, &sp->sess[i]);
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
		struct netaddr a = conf->neighbors[i].local_address;
		if (!a.family) {
			memset(&a, 0, sizeof(a));
			a.family = conf->neighbors[i].address.family;
		}
		bool dup = false;
		for (unsigned j = 0; j < sp->n_lis; j++)
			if (netaddr_equal_ip(&sp->lis[j].addr, &a))
				dup = true;
		if (!dup) {
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
	timer_init(&sp->start_timer, start_now, sp);
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
	loop_timer_cancel(sp->l, &sp->health_timer);
	for (unsigned i = 0; i < sp->n_lis; i++)
		if (sp->lis[i].fd >= 0) {
			loop_close_fd(sp->l, sp->lis[i].fd, NULL, NULL);
			sp->lis[i].fd = -1;
		}
	for (unsigned i = 0; i < sp->n; i++)
		bgp_session_shutdown(sp->sess[i], text);
	sp->stop_deadline = loop_now(sp->l) + BGP_SPEAKER_SHUTDOWN_MS;
	timer_init(&sp->stop_timer, stop_poll, sp);
	loop_timer_arm_in(sp->l, &sp->stop_timer, 0);
}

void bgp_speaker_free(struct bgp_speaker *sp)
{
	if (!sp)
		return;
	for (unsigned i = 0; i < sp->n_lis; i++)
		if (sp->lis[i].fd >= 0)
			close(sp->lis[i].fd);
	for (unsigned i = 0; i < sp->n; i++)
		bgp_session_free(sp->sess[i]);
	bfd_mux_free(sp->bfd);
	free(sp);
}
