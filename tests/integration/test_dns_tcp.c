/*
 * Issue 3, DNS over TCP (RFC 7766): pipelining with out-of-order answers,
 * framing across writes, half-close, the idle and unfinished-message
 * timeouts, and the per-worker connection cap. anycached on 127.53.4.x.
 */
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include "dns_itest.h"

#define NET 4

TestSuite(dns_tcp, .fini = down, .timeout = 120);

Test(dns_tcp, pipelined_queries_in_one_write_answered_out_of_order)
{
	uint8_t buf[4096], a[4096];
	size_t len = 0;
	uint16_t got[3];

	up_with(NET, 1, NULL);
	/* A miss (goes upstream), then CHAOS identity (answered at once), then another miss. */
	frame(buf, &len, 0x0001, "mail.example.test", 1, 1);
	frame(buf, &len, 0x0002, "id.server", 16, 3);
	frame(buf, &len, 0x0003, "nosuch.example.test", 28, 1);
	int fd = dns_tcp_connect(node, PORT, 3000);
	cr_assert_geq(fd, 0);
	cr_assert_eq(dns_tcp_write(fd, buf, len), 0);
	for (int i = 0; i < 3; i++) {
		int n = dns_tcp_read_msg(fd, a, sizeof(a), 3000);
		cr_assert_geq(n, 12, "answer %d missing (%d)", i, n);
		got[i] = rd16(a);
		cr_assert_eq(RCODE(a), got[i] == 3 ? 3 : 0);
	}
	/* The identity answer did not wait behind the upstream query sent before it. */
	cr_assert_eq(got[0], 0x0002, "first answer id %#x", got[0]);
	cr_assert_eq(got[1] ^ got[2], 0x0001 ^ 0x0003);
	close(fd);
}

Test(dns_tcp, message_split_across_writes_and_several_in_a_row)
{
	uint8_t buf[4096], a[4096];
	size_t len = 0;

	up_with(NET, 2, NULL);
	frame(buf, &len, 0x0101, "www.example.test", 1, 1);
	size_t first = len;
	frame(buf, &len, 0x0102, "www.example.test", 28, 1);
	int fd = dns_tcp_connect(node, PORT, 3000);
	/* Byte 1 of the length prefix alone, then the rest of the first message in pieces. */
	cr_assert_eq(dns_tcp_write(fd, buf, 1), 0);
	usleep(200000);
	cr_assert_eq(dns_tcp_write(fd, buf + 1, 7), 0);
	usleep(200000);
	cr_assert_eq(dns_tcp_write(fd, buf + 8, first - 8), 0);
	int n = dns_tcp_read_msg(fd, a, sizeof(a), 3000);
	cr_assert_geq(n, 12);
	cr_assert_eq(rd16(a), 0x0101);
	cr_assert_eq(ANCOUNT(a), 1);
	/* The second message split in its middle, with a pause. */
	size_t half = first + (len - first) / 2;
	cr_assert_eq(dns_tcp_write(fd, buf + first, half - first), 0);
	usleep(300000);
	cr_assert_eq(dns_tcp_write(fd, buf + half, len - half), 0);
	n = dns_tcp_read_msg(fd, a, sizeof(a), 3000);
	cr_assert_geq(n, 12);
	cr_assert_eq(rd16(a), 0x0102);
	cr_assert_eq(ANCOUNT(a), 1);
	close(fd);
}

Test(dns_tcp, half_close_still_gets_the_answers)
{
	uint8_t buf[4096], a[4096];
	size_t len = 0;

	up_with(NET, 3, NULL);
	frame(buf, &len, 0x0201, "alias.example.test", 1, 1);
	frame(buf, &len, 0x0202, "example.test", 15, 1);
	int fd = dns_tcp_connect(node, PORT, 3000);
	cr_assert_eq(dns_tcp_write(fd, buf, len), 0);
	shutdown(fd, SHUT_WR);
	for (int i = 0; i < 2; i++)
		cr_assert_geq(dns_tcp_read_msg(fd, a, sizeof(a), 3000), 12, "answer %d", i);
	cr_assert_eq(dns_tcp_wait_closed(fd, 3000), 0, "server closes after the last answer");
	close(fd);
}

Test(dns_tcp, idle_and_unfinished_connections_time_out)
{
	uint8_t a[512];
	uint64_t t0;

	up_with(NET, 4, NULL);
	int idle = dns_tcp_connect(node, PORT, 3000);
	int stuck = dns_tcp_connect(node, PORT, 3000);
	int used = dns_tcp_connect(node, PORT, 3000);
	cr_assert(idle >= 0 && stuck >= 0 && used >= 0);
	t0 = now_ms();
	/* A length prefix promising 40 bytes, then 5 of them, then silence. */
	uint8_t part[7] = {0, 40, 0x12, 0x34, 1, 0, 0};
	cr_assert_eq(dns_tcp_write(stuck, part, sizeof(part)), 0);
	cr_assert_eq(dns_tcp_wait_closed(idle, 15000), 0, "idle connection not closed");
	uint64_t idle_ms = now_ms() - t0;
	cr_assert_eq(dns_tcp_wait_closed(stuck, 3000), 0, "unfinished message not closed");
	cr_assert_geq(idle_ms, 9000, "closed too early: %llu ms", (unsigned long long)idle_ms);
	cr_assert_leq(idle_ms, 12500, "closed too late: %llu ms", (unsigned long long)idle_ms);
	/* The server is fine afterwards, on a fresh connection. */
	close(used);
	close(idle);
	close(stuck);
	cr_assert_geq(ask_name(true, "www.example.test", 1, false, a, sizeof(a)), 12);
}

Test(dns_tcp, connection_cap_closes_the_oldest_idle)
{
	enum { N = 400, CAP = 300 };
	static int fds[N];
	uint8_t a[512];
	struct rlimit rl;

	/* The cap is the node's: SO_REUSEPORT spreads the connections over two
	 * workers, and still no more than CAP stay open in all (with a cap per
	 * worker, 2 x CAP, none would be closed). */
	itest_threads = 2;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < N + 100) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < N + 100)
		cr_skip_test("RLIMIT_NOFILE %llu too low", (unsigned long long)rl.rlim_cur);
	/* Every connection comes from 127.0.0.1: lift the per-source cap
	 * (test_dns_stream.c tests that one) so the node's cap is reached. */
	up_with(NET, 5, "  tcp-per-source: 2000\n  tcp-connections: 300\n");
	for (int i = 0; i < N; i++) {
		fds[i] = dns_tcp_connect(node, PORT, 3000);
		cr_assert_geq(fds[i], 0, "connect %d: %d", i, fds[i]);
	}
	/* The newest connection is served. */
	uint8_t q[512 + 2];
	int qlen = dns_make_query(q + 2, 512, 0x4444, "www.example.test", 1, false);
	q[0] = 0;
	q[1] = (uint8_t)qlen;
	cr_assert_eq(dns_tcp_write(fds[N - 1], q, (size_t)qlen + 2), 0);
	cr_assert_geq(dns_tcp_read_msg(fds[N - 1], a, sizeof(a), 3000), 12);
	cr_assert_eq(rd16(a), 0x4444);
	/* At least N - CAP of the oldest were closed to make room. */
	int closed = 0;
	for (uint64_t end = now_ms() + 3000; now_ms() < end; usleep(100000)) {
		/* Closes are asynchronous (cancel, final completion, close). */
		closed = 0;
		for (int i = 0; i < N; i++) {
			struct pollfd pf = {.fd = fds[i], .events = POLLIN};
			if (poll(&pf, 1, 0) == 1 && (pf.revents & (POLLIN | POLLHUP | POLLERR)))
				closed++;
		}
		if (closed >= N - CAP)
			break;
	}
	cr_assert_geq(closed, N - CAP, "only %d connections closed", closed);
	cr_assert_lt(closed, N, "everything closed");
	for (int i = 0; i < N; i++)
		close(fds[i]);
	cr_assert(proc_alive(&daemon_.proc));
	cr_assert_geq(ask_name(false, "www.example.test", 1, false, a, sizeof(a)), 12);
	cr_assert_geq(ask_name(true, "www.example.test", 1, false, a, sizeof(a)), 12);
}
