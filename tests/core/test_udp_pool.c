/* Tests of core/udp_pool.c on a real loop: rotation after N sends and after T ms
 * (time stepped through `now`), sockets held past retirement, source ports that
 * differ, random picks, and ICMP errors. The peer is an echo socket on 127.0.0.1
 * served by the same loop; every run is bounded by a watchdog timer. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/loop.h"
#include "core/rand.h"
#include "core/udp_pool.h"

static struct loop *L;
static struct rand R;
static struct timer wd;
static bool watchdog_fired;
static int echo_fd = -1;
static struct sockaddr_in peer;

static struct udp_sock *got_sock[64];
static int n_got, n_err, last_err, want;
static struct udp_sock *err_sock;

static void watchdog(struct timer *t, uint64_t now, void *arg)
{
	watchdog_fired = true;
	loop_stop(L);
}

static void on_echo(struct loop *l, void *ctx, const struct loop_dgram *d)
{
	(void)loop_udp_send(l, d->fd, d->peer, d->peerlen, d->payload, d->len);
}

static void on_dgram(void *ctx, struct udp_sock *s, const uint8_t *p, size_t len)
{
	if (n_got < 64)
		got_sock[n_got] = s;
	n_got++;
	if (n_got + n_err >= want)
		loop_stop(L);
}

static void on_error(void *ctx, struct udp_sock *s, int err)
{
	n_err++;
	last_err = err;
	err_sock = s;
	if (n_got + n_err >= want)
		loop_stop(L);
}

static void setup(void)
{
	static const uint8_t key[32] = {42};
	socklen_t pl = sizeof(peer);

	cr_assert_eq(loop_global_init(), 0);
	cr_assert_eq(loop_new(NULL, &L), 0);
	rand_init_key(&R, key);
	timer_init(&wd, watchdog, NULL);
	watchdog_fired = false;
	n_got = n_err = last_err = want = 0;
	err_sock = NULL;
	memset(&peer, 0, sizeof(peer));
	peer.sin_family = AF_INET;
	peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	echo_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(echo_fd, 0);
	cr_assert_eq(bind(echo_fd, (struct sockaddr *)&peer, sizeof(peer)), 0);
	cr_assert_eq(getsockname(echo_fd, (struct sockaddr *)&peer, &pl), 0);
	cr_assert_eq(loop_udp_listen(L, echo_fd, on_echo, NULL), 0);
}

static void teardown(void)
{
	loop_free(L);
	close(echo_fd);
}

TestSuite(udp_pool, .init = setup, .fini = teardown, .timeout = 30);

/* Runs the loop until `n` more callbacks (datagrams + errors) came, or 3 s. */
static void run_for(int n)
{
	want = n_got + n_err + n;
	loop_timer_arm(L, &wd, clock_now_ms() + 3000);
	cr_assert_eq(loop_run(L), 0);
	loop_timer_cancel(L, &wd);
	cr_assert_not(watchdog_fired, "watchdog: %d of %d callbacks", n_got + n_err, want);
}

/* Lets a few turns pass so closes complete. */
static void settle(void)
{
	want = 1 << 30;
	loop_timer_arm(L, &wd, clock_now_ms() + 50);
	cr_assert_eq(loop_run(L), 0);
	watchdog_fired = false;
}

static struct udp_pool *pool(unsigned size, unsigned max_sends, unsigned max_age_ms)
{
	struct udp_pool_conf c = {.size = size, .max_sends = max_sends, .max_age_ms = max_age_ms};
	struct udp_pool *p;
	cr_assert_eq(udp_pool_new(L, &R, (struct sockaddr *)&peer, sizeof(peer), &c, on_dgram,
	                          on_error, NULL, &p),
	             0);
	return p;
}

static struct udp_sock *pick(struct udp_pool *p, const struct udp_sock *avoid, uint64_t now)
{
	int err = 0;
	struct udp_sock *s = udp_pool_pick(p, avoid, now, &err);
	cr_assert_not_null(s, "pick failed: %s", strerror(-err));
	return s;
}

Test(udp_pool, rejects_bad_arguments)
{
	struct udp_pool_conf c = {.size = UDP_POOL_MAX + 1};
	struct sockaddr_un_like {
		sa_family_t f;
	} bad = {AF_UNIX};
	struct udp_pool *p;

	cr_assert_eq(udp_pool_new(L, &R, (struct sockaddr *)&peer, sizeof(peer), &c, on_dgram,
	                          on_error, NULL, &p),
	             -EINVAL);
	cr_assert_eq(udp_pool_new(L, &R, (struct sockaddr *)&bad, sizeof(bad), NULL, on_dgram,
	                          on_error, NULL, &p),
	             -EINVAL);
	cr_assert_eq(udp_pool_new(L, &R, (struct sockaddr *)&peer, sizeof(peer), NULL, NULL,
	                          on_error, NULL, &p),
	             -EINVAL);
}

Test(udp_pool, retires_a_socket_after_max_sends)
{
	struct udp_pool *p = pool(1, 3, 60000);
	struct udp_pool_stats st;

	struct udp_sock *s1 = pick(p, NULL, 0);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(pick(p, NULL, 0), s1, "send %d still on the first socket", i);
		cr_assert_eq(udp_pool_send(p, s1, "x", 1), 0);
	}
	uint16_t port1 = udp_sock_port(s1);
	struct udp_sock *s2 = pick(p, NULL, 0);
	cr_assert_neq(s2, s1);
	cr_assert_neq(udp_sock_port(s2), port1, "a new socket, a new source port");
	udp_pool_get_stats(p, &st);
	cr_assert_eq(st.opened, 2);
	cr_assert_eq(st.retired, 1);
	cr_assert_eq(st.closed, 1, "nobody held it: closed at once");
	cr_assert_eq(st.in_service, 1);
	cr_assert_eq(st.sends, 3);
	settle();
	udp_pool_free(p);
}

Test(udp_pool, retires_a_socket_after_max_age)
{
	struct udp_pool *p = pool(1, 2000, 1000);
	struct udp_pool_stats st;

	struct udp_sock *s1 = pick(p, NULL, 5000);
	cr_assert_eq(pick(p, NULL, 5999), s1);
	struct udp_sock *s2 = pick(p, NULL, 6000);
	cr_assert_neq(s2, s1, "1000 ms old: replaced");
	cr_assert_eq(pick(p, NULL, 6999), s2);
	cr_assert_neq(pick(p, NULL, 7000), s2);
	udp_pool_get_stats(p, &st);
	cr_assert_eq(st.retired, 2);
	udp_pool_free(p);
}

Test(udp_pool, a_held_socket_keeps_receiving_after_retirement_and_closes_on_put)
{
	struct udp_pool *p = pool(1, 1, 60000);
	struct udp_pool_stats st;

	struct udp_sock *s1 = pick(p, NULL, 0);
	cr_assert_eq(udp_pool_send(p, s1, "ping", 4), 0);
	udp_sock_hold(s1);
	struct udp_sock *s2 = pick(p, NULL, 0);
	cr_assert_neq(s2, s1);
	udp_pool_get_stats(p, &st);
	cr_assert_eq(st.retiring, 1, "held: not closed");
	cr_assert_eq(st.closed, 0);
	run_for(1);
	cr_assert_eq(n_got, 1);
	cr_assert_eq(got_sock[0], s1, "the echo came back to the socket that sent it");
	udp_pool_put(p, s1);
	udp_pool_get_stats(p, &st);
	cr_assert_eq(st.retiring, 0);
	cr_assert_eq(st.closed, 1);
	settle();
	udp_pool_free(p);
}

Test(udp_pool, sockets_in_service_have_distinct_ports)
{
	struct udp_pool *p = pool(UDP_POOL_MAX, 2000, 60000);
	struct udp_pool_stats st;
	uint16_t ports[UDP_POOL_MAX];
	struct udp_sock *seen[UDP_POOL_MAX];
	unsigned n = 0;

	for (int i = 0; i < 4000 && n < UDP_POOL_MAX; i++) {
		struct udp_sock *s = pick(p, NULL, 0);
		bool dup = false;
		for (unsigned j = 0; j < n; j++)
			dup |= seen[j] == s;
		if (!dup) {
			seen[n] = s;
			ports[n++] = udp_sock_port(s);
		}
	}
	cr_assert_eq(n, UDP_POOL_MAX, "every slot filled");
	for (unsigned i = 0; i < n; i++)
		for (unsigned j = 0; j < i; j++)
			cr_assert_neq(ports[i], ports[j]);
	udp_pool_get_stats(p, &st);
	cr_assert_eq(st.in_service, UDP_POOL_MAX);
	udp_pool_free(p);
}

Test(udp_pool, rotation_draws_new_random_ports)
{
	struct udp_pool *p = pool(1, 1, 60000);
	uint16_t ports[40];
	unsigned distinct = 0, spread_lo = 65535, spread_hi = 0;

	for (int i = 0; i < 40; i++) {
		struct udp_sock *s = pick(p, NULL, 0);
		cr_assert_eq(udp_pool_send(p, s, "x", 1), 0);
		ports[i] = udp_sock_port(s);
		bool dup = false;
		for (int j = 0; j < i; j++)
			dup |= ports[j] == ports[i];
		distinct += !dup;
		spread_lo = ports[i] < spread_lo ? ports[i] : spread_lo;
		spread_hi = ports[i] > spread_hi ? ports[i] : spread_hi;
	}
	/* 40 draws from Linux's ~28000 ephemeral ports: a repeat is rare, a run is not random. */
	cr_assert_geq(distinct, 38, "distinct ports: %u", distinct);
	cr_assert_gt(spread_hi - spread_lo, 1000, "ports %u..%u: not spread out", spread_lo,
	             spread_hi);
	settle();
	udp_pool_free(p);
}

Test(udp_pool, picks_are_random_and_avoid_the_socket_asked)
{
	struct udp_pool *p = pool(4, 100000, 60000);
	struct udp_sock *seen[4] = {0};
	unsigned count[4] = {0};

	for (int i = 0; i < 800; i++) {
		struct udp_sock *s = pick(p, NULL, 0);
		int k = 0;
		while (k < 4 && seen[k] && seen[k] != s)
			k++;
		cr_assert_lt(k, 4, "more than 4 sockets");
		seen[k] = s;
		count[k]++;
	}
	for (int k = 0; k < 4; k++)
		cr_assert_gt(count[k], 120, "socket %d picked %u times of 800", k, count[k]);
	for (int i = 0; i < 200; i++)
		cr_assert_neq(pick(p, seen[0], 0), seen[0]);
	udp_pool_free(p);
}

Test(udp_pool, port_unreachable_reaches_the_owner_and_the_socket_lives_on)
{
	struct udp_pool_stats st;
	struct udp_pool *p;

	/* A port nobody listens on: the kernel answers with ICMP port unreachable. */
	struct sockaddr_in dead = peer;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	socklen_t dl = sizeof(dead);
	dead.sin_port = 0;
	cr_assert_eq(bind(fd, (struct sockaddr *)&dead, sizeof(dead)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&dead, &dl), 0);
	close(fd);
	struct udp_pool_conf one = {.size = 1};
	cr_assert_eq(udp_pool_new(L, &R, (struct sockaddr *)&dead, sizeof(dead), &one, on_dgram,
	                          on_error, NULL, &p),
	             0);

	struct udp_sock *s = pick(p, NULL, 0);
	cr_assert_eq(udp_pool_send(p, s, "x", 1), 0);
	run_for(1);
	cr_assert_eq(n_err, 1);
	cr_assert_eq(last_err, -ECONNREFUSED);
	cr_assert_eq(err_sock, s);
	/* Still receiving: a second send brings a second error, on the same socket. */
	cr_assert_eq(pick(p, NULL, 0), s);
	cr_assert_eq(udp_pool_send(p, s, "y", 1), 0);
	run_for(1);
	cr_assert_eq(n_err, 2);
	udp_pool_get_stats(p, &st);
	cr_assert_eq(st.errors, 2);
	cr_assert_eq(st.in_service, 1);
	udp_pool_free(p);
}

Test(udp_pool, free_with_sockets_held_and_retiring)
{
	struct udp_pool *p = pool(2, 1, 60000);

	struct udp_sock *s = pick(p, NULL, 0);
	cr_assert_eq(udp_pool_send(p, s, "x", 1), 0);
	udp_sock_hold(s);
	(void)pick(p, NULL, 0);
	(void)pick(p, NULL, 0);
	/* Closes everything; the loop finishes the closes later or at loop_free. */
	udp_pool_free(p);
	settle();
}
