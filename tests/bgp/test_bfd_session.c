/*
 * test_bfd_session.c: the BFD glue on a real loop, loopback only.
 *
 *  - a scripted peer (a plain UDP socket in the test thread, packets made
 *    with bfd_build) drives one session through the handshake, checks what
 *    the session sends (TTL 255, source port 49152-65535, discriminators),
 *    sends a packet with TTL 254 that must be ignored (RFC 5881 §5), then
 *    falls silent: the session must go Down with diagnostic 1 after the
 *    Detection Time;
 *  - two of our own sessions bring each other Up, and a shutdown of one side
 *    is seen by the other as the peer's AdminDown (RFC 5882 §3.2).
 *
 * The loop runs in its own thread; the test thread talks to it through a
 * command word polled by a loop timer, and reads state changes from a log
 * the session callback fills under a mutex. Every wait is bounded.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bgp/bfd_session.h"
#include "core/clock.h"
#include "core/loop.h"
#include "core/timer.h"

struct change {
	int who;
	struct bfd_session_change c;
	uint64_t at;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct change changes[64];
static unsigned n_changes;

static struct loop *L;
static struct bfd_mux *MA, *MB;
static struct bfd_session *SA, *SB;
static atomic_int cmd;             /* 1 = shut mux B down, 2 = stop the loop, 3-5: see on_cmd */
static struct bfd_session_conf CB; /* B's session, for case 5 */
static struct timer cmd_timer, watchdog_timer;

static void on_change(void *arg, struct bfd_session *s, const struct bfd_session_change *c)
{
	(void)s;
	pthread_mutex_lock(&mu);
	if (n_changes < 64)
		changes[n_changes++] = (struct change){(int)(intptr_t)arg, *c, clock_now_ms()};
	pthread_mutex_unlock(&mu);
}

/* Waits for a change of `who` to state `to` (from index *from on); returns it. */
static bool wait_change(int who, enum bfd_state to, int timeout_ms, struct change *out)
{
	uint64_t end = clock_now_ms() + (uint64_t)timeout_ms;
	do {
		pthread_mutex_lock(&mu);
		for (unsigned i = 0; i < n_changes; i++)
			if (changes[i].who == who && changes[i].c.to == to) {
				*out = changes[i];
				pthread_mutex_unlock(&mu);
				return true;
			}
		pthread_mutex_unlock(&mu);
		usleep(2000);
	} while (clock_now_ms() < end);
	return false;
}

static unsigned count_changes(int who)
{
	unsigned n = 0;
	pthread_mutex_lock(&mu);
	for (unsigned i = 0; i < n_changes; i++)
		n += changes[i].who == who;
	pthread_mutex_unlock(&mu);
	return n;
}

static void on_cmd(struct timer *t, uint64_t now, void *arg)
{
	(void)arg;
	switch (atomic_exchange(&cmd, 0)) {
	case 1:
		bfd_mux_shutdown(MB);
		break;
	case 2:
		loop_stop(L);
		return;
	case 3: /* a reload's new timers on A (bfd_session_set_timers) */
		cr_assert_eq(bfd_session_set_timers(SA, 80, 4), 0);
		break;
	case 4: /* a reload removed B's neighbor: B's session freed while the loop runs */
		bfd_session_free(SB);
		SB = NULL;
		break;
	case 5: /* ... and added it again: the peer is free for a new session */
		if (bfd_session_new(MB, &CB, on_change, (void *)2, &SB) == 0)
			bfd_session_start(SB);
		break;
	default:
		break;
	}
	loop_timer_arm(L, t, now + 5);
}

static void on_watchdog(struct timer *t, uint64_t now, void *arg)
{
	loop_stop(L);
}

static void *run_loop(void *arg)
{
	return (void *)(intptr_t)loop_run(arg);
}

/* A port nothing listens on right now (wildcard UDP). */
static uint16_t free_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

static struct bfd_session_conf sconf(const char *peer, uint16_t port, const char *local,
                                     uint32_t iv)
{
	struct bfd_session_conf c = {.interval_ms = iv, .multiplier = 3};
	cr_assert_eq(netaddr_parse_ip(peer, &c.peer), 0);
	cr_assert_eq(netaddr_parse_ip(local, &c.local), 0);
	c.peer.port = port;
	return c;
}

static void loop_up(pthread_t *th)
{
	n_changes = 0;
	atomic_store(&cmd, 0);
	timer_init(&cmd_timer, on_cmd, NULL);
	loop_timer_arm(L, &cmd_timer, clock_now_ms() + 5);
	timer_init(&watchdog_timer, on_watchdog, NULL);
	loop_timer_arm(L, &watchdog_timer, clock_now_ms() + 20000);
	cr_assert_eq(pthread_create(th, NULL, run_loop, L), 0);
}

static void loop_down(pthread_t th)
{
	void *ret;
	atomic_store(&cmd, 2);
	pthread_join(th, &ret);
	cr_assert_eq((intptr_t)ret, 0);
}

/* ---- the scripted peer ---- */

struct peer {
	int fd;
	struct sockaddr_in to; /* the session's mux */
};

static void peer_open(struct peer *p, const char *addr, uint16_t port, uint16_t mux_port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	int one = 1, ttl = 255;
	struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
	inet_pton(AF_INET, addr, &sin.sin_addr);
	p->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(p->fd, 0);
	cr_assert_eq(bind(p->fd, (struct sockaddr *)&sin, sizeof(sin)), 0, "%s", strerror(errno));
	setsockopt(p->fd, IPPROTO_IP, IP_RECVTTL, &one, sizeof(one));
	setsockopt(p->fd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl));
	setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	p->to = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(mux_port)};
	inet_pton(AF_INET, "127.0.0.1", &p->to.sin_addr);
}

static void peer_send(struct peer *p, enum bfd_state st, uint32_t your, bool final, int ttl)
{
	struct bfd_pkt k = {.state = st,
	                    .detect_mult = 3,
	                    .my_disc = 0xabcd0001,
	                    .your_disc = your,
	                    .final = final,
	                    .desired_min_tx_us = 300000,
	                    .required_min_rx_us = 100000};
	uint8_t b[24];
	cr_assert_eq(bfd_build(&k, b, sizeof(b)), 24);
	setsockopt(p->fd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl));
	cr_assert_eq(sendto(p->fd, b, 24, 0, (struct sockaddr *)&p->to, sizeof(p->to)), 24);
}

/* Receives the session's next packet within timeout_ms (the first with state `st` when st >= 0). */
static bool peer_recv(struct peer *p, int st, int timeout_ms, struct bfd_pkt *k, int *ttl,
                      struct sockaddr_in *from)
{
	uint64_t end = clock_now_ms() + (uint64_t)timeout_ms;
	do {
		uint8_t b[64];
		char cbuf[64];
		struct iovec iov = {b, sizeof(b)};
		struct msghdr mh = {.msg_name = from,
		                    .msg_namelen = sizeof(*from),
		                    .msg_iov = &iov,
		                    .msg_iovlen = 1,
		                    .msg_control = cbuf,
		                    .msg_controllen = sizeof(cbuf)};
		ssize_t n = recvmsg(p->fd, &mh, 0);
		if (n < 0)
			continue;
		*ttl = -1;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL)
				memcpy(ttl, CMSG_DATA(c), sizeof(int));
		cr_assert_eq(bfd_parse(b, (size_t)n, k, NULL), 0, "the session sent a bad packet");
		if (st < 0 || k->state == st)
			return true;
	} while (clock_now_ms() < end);
	return false;
}

Test(bfd_session, scripted_peer_handshake_gtsm_and_detection, .timeout = 30)
{
	pthread_t th;
	struct peer p;
	struct bfd_pkt k;
	struct sockaddr_in from;
	struct change ch;
	int ttl;
	uint16_t pa = free_port(), pb = free_port();

	cr_assert_eq(loop_new(NULL, &L), 0);
	cr_assert_eq(bfd_mux_new(L, pa, 42, &MA), 0);
	struct bfd_session_conf c = sconf("127.0.0.2", pb, "127.0.0.1", 100);
	cr_assert_eq(bfd_session_new(MA, &c, on_change, (void *)1, &SA), 0);
	cr_expect_eq(bfd_session_new(MA, &c, on_change, (void *)1, &SB), -EEXIST);
	peer_open(&p, "127.0.0.2", pb, pa);
	bfd_session_start(SA);
	loop_up(&th);

	/* What the session sends: Down, TTL 255, from 49152-65535 (RFC 5881 §4, §5). */
	cr_assert(peer_recv(&p, BFD_STATE_DOWN, 3000, &k, &ttl, &from), "no Down from the session");
	cr_expect_eq(ttl, 255);
	cr_expect_geq(ntohs(from.sin_port), 49152);
	cr_expect_eq(from.sin_addr.s_addr, htonl(0x7f000001));
	cr_expect_eq(k.your_disc, 0);
	cr_expect_eq(k.desired_min_tx_us, 1000000);
	cr_expect_eq(k.required_min_rx_us, 100000);
	uint32_t local = k.my_disc;
	uint16_t sport = ntohs(from.sin_port);

	/* The handshake. */
	peer_send(&p, BFD_STATE_DOWN, 0, false, 255);
	cr_assert(peer_recv(&p, BFD_STATE_INIT, 2000, &k, &ttl, &from), "no Init");
	cr_expect_eq(k.your_disc, 0xabcd0001u);
	peer_send(&p, BFD_STATE_UP, local, false, 255);
	cr_assert(peer_recv(&p, BFD_STATE_UP, 2000, &k, &ttl, &from), "no Up");
	cr_expect(k.poll, "Up starts a Poll Sequence for the faster rate");
	cr_expect_eq(ntohs(from.sin_port), sport, "one source port per session");
	peer_send(&p, BFD_STATE_UP, local, true, 255);
	cr_assert(wait_change(1, BFD_STATE_UP, 2000, &ch));
	cr_expect_eq(ch.c.from, BFD_STATE_INIT);

	/* RFC 5881 §5: an AdminDown with TTL 254 is not from the link: ignored. */
	peer_send(&p, BFD_STATE_ADMIN_DOWN, local, false, 254);
	/* Garbage and a stranger's discriminator are counted and dropped too. */
	uint8_t junk[5] = {1, 2, 3, 4, 5};
	int t255 = 255;
	setsockopt(p.fd, IPPROTO_IP, IP_TTL, &t255, sizeof(t255));
	sendto(p.fd, junk, sizeof(junk), 0, (struct sockaddr *)&p.to, sizeof(p.to));
	peer_send(&p, BFD_STATE_UP, local ^ 0x5555, false, 255);
	usleep(150 * 1000);
	cr_expect_eq(count_changes(1), 2, "Down->Init->Up only: the bad packets changed nothing");

	/* Fall silent: Down, diag 1, after 3 x max(100 ms, our 300 ms) = 900 ms. */
	peer_send(&p, BFD_STATE_UP, local, false, 255);
	uint64_t last = clock_now_ms();
	cr_assert(wait_change(1, BFD_STATE_DOWN, 3000, &ch), "no detection");
	uint64_t took = ch.at - last;
	cr_expect_eq(ch.c.from, BFD_STATE_UP);
	cr_expect_eq(ch.c.diag, BFD_DIAG_TIME_EXPIRED);
	cr_expect_geq(took, 890, "detected after %llu ms", (unsigned long long)took);
	cr_expect_leq(took, 1000, "detected after %llu ms", (unsigned long long)took);
	cr_assert(peer_recv(&p, BFD_STATE_DOWN, 2000, &k, &ttl, &from));
	cr_expect_eq(k.diag, BFD_DIAG_TIME_EXPIRED);
	cr_expect_eq(k.your_disc, 0);

	loop_down(th);
	struct bfd_mux_stats st;
	bfd_mux_get_stats(MA, &st);
	cr_expect_eq(st.rx_ttl, 1);
	cr_expect_eq(st.rx_bad, 1);
	cr_expect_eq(st.rx_no_session, 1);
	cr_expect_geq(st.tx, 5);
	cr_expect_eq(st.tx_err, 0);
	loop_free(L);
	bfd_mux_free(MA);
	close(p.fd);
}

Test(bfd_session, two_sessions_come_up_and_admin_down_is_not_a_failure, .timeout = 30)
{
	pthread_t th;
	struct change ch;
	uint16_t pa = free_port(), pb = free_port();

	cr_assert_eq(loop_new(NULL, &L), 0);
	cr_assert_eq(bfd_mux_new(L, pa, 1, &MA), 0);
	cr_assert_eq(bfd_mux_new(L, pb, 2, &MB), 0);
	struct bfd_session_conf ca = sconf("127.0.0.2", pb, "127.0.0.1", 50);
	struct bfd_session_conf cb = sconf("127.0.0.1", pa, "127.0.0.2", 50);
	cr_assert_eq(bfd_session_new(MA, &ca, on_change, (void *)1, &SA), 0);
	cr_assert_eq(bfd_session_new(MB, &cb, on_change, (void *)2, &SB), 0);
	bfd_session_start(SA);
	bfd_session_start(SB);
	loop_up(&th);
	cr_assert(wait_change(1, BFD_STATE_UP, 3000, &ch), "A not Up");
	cr_assert(wait_change(2, BFD_STATE_UP, 3000, &ch), "B not Up");
	/* Both stay Up at the fast rate (50 ms x 3) for a while. */
	usleep(500 * 1000);
	cr_expect_eq(count_changes(1), 2);
	cr_expect_eq(count_changes(2), 2);

	/* New timers while Up: a Poll Sequence (RFC 5880 §6.8.3), no state change. */
	atomic_store(&cmd, 3);
	usleep(600 * 1000);
	cr_expect_eq(count_changes(1), 2, "new timers must not take the session down");
	cr_expect_eq(count_changes(2), 2);
	cr_expect_eq(bfd_session_state(SA), BFD_STATE_UP);
	cr_expect_eq(bfd_session_fsm(SA)->conf.desired_min_tx_us, 80000);
	cr_expect_eq(bfd_session_fsm(SA)->conf.detect_mult, 4);
	cr_expect_not(bfd_session_fsm(SA)->poll_active, "the Poll got its Final");
	cr_expect_eq(bfd_session_set_timers(SA, 0, 3), -EINVAL);

	atomic_store(&cmd, 1); /* B shuts down: AdminDown, then silence */
	cr_assert(wait_change(1, BFD_STATE_DOWN, 2000, &ch), "A did not go Down");
	cr_expect_eq(ch.c.from, BFD_STATE_UP);
	cr_expect_eq(ch.c.diag, BFD_DIAG_NEIGHBOR_DOWN);
	cr_expect_eq(ch.c.remote_state, BFD_STATE_ADMIN_DOWN);
	loop_down(th);
	struct bfd_mux_stats st;
	bfd_mux_get_stats(MA, &st);
	cr_expect_eq(st.rx_ttl, 0);
	cr_expect_eq(st.rx_bad + st.rx_no_session, 0);
	loop_free(L);
	bfd_mux_free(MA);
	bfd_mux_free(MB);
}

Test(bfd_session, freed_session_says_admin_down_and_its_peer_is_free_again, .timeout = 30)
{
	pthread_t th;
	struct change ch;
	uint16_t pa = free_port(), pb = free_port();

	cr_assert_eq(loop_new(NULL, &L), 0);
	cr_assert_eq(bfd_mux_new(L, pa, 3, &MA), 0);
	cr_assert_eq(bfd_mux_new(L, pb, 4, &MB), 0);
	struct bfd_session_conf ca = sconf("127.0.0.2", pb, "127.0.0.1", 50);
	CB = sconf("127.0.0.1", pa, "127.0.0.2", 50);
	cr_assert_eq(bfd_session_new(MA, &ca, on_change, (void *)1, &SA), 0);
	cr_assert_eq(bfd_session_new(MB, &CB, on_change, (void *)2, &SB), 0);
	cr_assert_eq(bfd_session_new(MB, &CB, on_change, (void *)2, &(struct bfd_session *){0}),
	             -EEXIST);
	bfd_session_start(SA);
	bfd_session_start(SB);
	loop_up(&th);
	cr_assert(wait_change(1, BFD_STATE_UP, 3000, &ch), "A not Up");

	/* B freed: A hears AdminDown (RFC 5882 §3.2), not a silent path failure. */
	atomic_store(&cmd, 4);
	cr_assert(wait_change(1, BFD_STATE_DOWN, 2000, &ch), "A did not go Down");
	cr_expect_eq(ch.c.remote_state, BFD_STATE_ADMIN_DOWN, "B did not say AdminDown");
	cr_expect_eq(ch.c.diag, BFD_DIAG_NEIGHBOR_DOWN);
	unsigned before = count_changes(1);

	/* A new session toward the same peer in the same mux: A comes Up again. */
	atomic_store(&cmd, 5);
	uint64_t end = clock_now_ms() + 3000;
	while (count_changes(1) < before + 2 && clock_now_ms() < end)
		usleep(20 * 1000);
	cr_expect_not_null(SB, "a new session toward the freed one's peer was refused");
	cr_expect_eq(bfd_session_state(SA), BFD_STATE_UP, "A did not come Up with the new B");
	loop_down(th);
	loop_free(L);
	bfd_mux_free(MA);
	bfd_mux_free(MB);
}
