/*
 * test_handover.c: the handover codec (round trip, every truncation, bad
 * versions and fd counts) and the channel with real file descriptors.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/handover.h"

static struct handover_entry entry(const char *tag, uint32_t index, const char *addr, int fd,
                                   const char *data)
{
	struct handover_entry e = {.index = index, .fd = fd};

	snprintf(e.tag, sizeof(e.tag), "%s", tag);
	if (addr)
		cr_assert_eq(netaddr_parse(addr, 53, &e.addr), 0);
	if (data) {
		e.data = (const uint8_t *)data;
		e.data_len = strlen(data);
	}
	return e;
}

Test(handover, round_trip)
{
	struct handover_entry in[3] = {entry("dns-udp", 0, "127.0.0.1:5300", 7, NULL),
	                               entry("dns-tcp", 1, "[::1]:5300", -1, "xyz"),
	                               entry("bgp-listen", 0, NULL, 9, NULL)};
	struct handover_entry out[4];
	uint8_t buf[512];
	int fds[2] = {70, 90};
	enum handover_msg_type t;
	bool last;
	size_t n;
	int len = handover_msg_encode(HANDOVER_MSG_OFFER, true, in, 3, buf, sizeof(buf));

	cr_assert_gt(len, 0);
	cr_assert_eq(handover_msg_decode(buf, (size_t)len, fds, 2, &t, &last, out, 4, &n), 0);
	cr_assert_eq(t, HANDOVER_MSG_OFFER);
	cr_assert(last);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(out[0].tag, "dns-udp");
	cr_assert(netaddr_equal(&out[0].addr, &in[0].addr));
	cr_assert_eq(out[0].fd, 70);
	cr_assert_eq(out[1].fd, -1);
	cr_assert_eq(out[1].index, 1);
	cr_assert(netaddr_equal(&out[1].addr, &in[1].addr));
	cr_assert_eq(out[1].data_len, 3);
	cr_assert_eq(memcmp(out[1].data, "xyz", 3), 0);
	cr_assert_eq(out[2].addr.family, 0);
	cr_assert_eq(out[2].fd, 90);

	/* Every truncation fails cleanly; so does a trailing byte. */
	for (int cut = 0; cut < len; cut++)
		cr_assert_lt(handover_msg_decode(buf, (size_t)cut, fds, 2, &t, &last, out, 4, &n),
		             0, "cut at %d", cut);
	buf[len] = 0;
	cr_assert_eq(handover_msg_decode(buf, (size_t)len + 1, fds, 2, &t, &last, out, 4, &n),
	             -EBADMSG);
	/* fd count must match the entries that say they carry one. */
	cr_assert_eq(handover_msg_decode(buf, (size_t)len, fds, 1, &t, &last, out, 4, &n),
	             -EBADMSG);
	cr_assert_eq(handover_msg_decode(buf, (size_t)len, fds, 0, &t, &last, out, 4, &n),
	             -EBADMSG);
	/* Too many entries for the caller. */
	cr_assert_eq(handover_msg_decode(buf, (size_t)len, fds, 2, &t, &last, out, 2, &n), -ENOSPC);
	/* Another version is refused as such. */
	buf[3] = HANDOVER_VERSION + 1;
	cr_assert_eq(handover_msg_decode(buf, (size_t)len, fds, 2, &t, &last, out, 4, &n), -EPROTO);
}

Test(handover, encode_refuses_bad_input)
{
	struct handover_entry e = entry("dns-udp", 0, NULL, -1, NULL);
	uint8_t buf[64];

	e.tag[0] = '\0';
	cr_assert_eq(handover_msg_encode(HANDOVER_MSG_READY, true, &e, 1, buf, sizeof(buf)),
	             -EINVAL);
	e = entry("dns-udp", 0, NULL, -1, NULL);
	e.addr.family = AF_UNIX;
	cr_assert_eq(handover_msg_encode(HANDOVER_MSG_READY, true, &e, 1, buf, sizeof(buf)),
	             -EINVAL);
	e = entry("dns-udp", 0, NULL, -1, NULL);
	cr_assert_eq(handover_msg_encode(HANDOVER_MSG_READY, true, &e, 1, buf, 10), -EMSGSIZE);
}

Test(handover, garbage_never_crashes)
{
	uint8_t buf[256];
	struct handover_entry out[8];
	enum handover_msg_type t;
	bool last;
	size_t n;
	uint32_t x = 12345;

	for (int round = 0; round < 20000; round++) {
		size_t len = (size_t)(x % sizeof(buf));
		for (size_t i = 0; i < len; i++) {
			x = x * 1103515245u + 12345u;
			buf[i] = (uint8_t)(x >> 16);
		}
		if (len > 4) {
			memcpy(buf, "AHO", 3);
			buf[3] = HANDOVER_VERSION;
		}
		handover_msg_decode(buf, len, NULL, 0, &t, &last, out, 8, &n);
	}
}

/* Real fds over the socketpair: a pipe's write end arrives and works. */
Test(handover, channel_passes_fds)
{
	int keep, give, p[2];
	enum handover_msg_type t;
	const uint8_t *data;
	size_t len;
	char c = 0;

	cr_assert_eq(handover_channel(&keep, &give), 0);
	cr_assert_eq(pipe(p), 0);
	/* More than one message's worth of fds: the split must keep them all. */
	static struct handover_entry e[HANDOVER_FDS_PER_MSG + 5];
	for (size_t i = 0; i < HANDOVER_FDS_PER_MSG + 5; i++)
		e[i] =
		    entry("dns-udp", (uint32_t)i, "127.0.0.1:5300", p[1], i == 3 ? "state" : NULL);
	cr_assert_eq(handover_send(keep, HANDOVER_MSG_OFFER, e, HANDOVER_FDS_PER_MSG + 5), 0);
	cr_assert_eq(handover_recv(give, 1000, &t), 0);
	cr_assert_eq(t, HANDOVER_MSG_OFFER);

	struct netaddr a;
	cr_assert_eq(netaddr_parse("127.0.0.1:5300", 53, &a), 0);
	int fd = handover_take("dns-udp", 3, &a, &data, &len);
	cr_assert_geq(fd, 0);
	cr_assert_neq(fd, p[1]);
	cr_assert_eq(len, 5);
	cr_assert_eq(memcmp(data, "state", 5), 0);
	cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	cr_assert_eq(write(fd, "x", 1), 1);
	cr_assert_eq(read(p[0], &c, 1), 1);
	cr_assert_eq(c, 'x');
	/* Taken once; a different address or index finds nothing. */
	cr_assert_eq(handover_take("dns-udp", 3, &a, NULL, NULL), -ENOENT);
	a.port = 5301;
	cr_assert_eq(handover_take("dns-udp", 4, &a, NULL, NULL), -ENOENT);
	a.port = 5300;
	cr_assert_geq(handover_take("dns-udp", HANDOVER_FDS_PER_MSG + 4, &a, NULL, NULL), 0);
	handover_release_unused();
	cr_assert_eq(handover_take("dns-udp", 5, &a, NULL, NULL), -ENOENT);
	close(keep);
	/* The peer is gone: an error, not a hang. */
	cr_assert_eq(handover_recv(give, 1000, &t), -ECONNRESET);
	close(give);
}

Test(handover, recv_times_out)
{
	int keep, give;
	enum handover_msg_type t;

	cr_assert_eq(handover_channel(&keep, &give), 0);
	cr_assert_eq(handover_recv(give, 50, &t), -ETIMEDOUT);
	close(keep);
	close(give);
}

Test(handover, registry_offers_and_forgets)
{
	struct netaddr a;
	size_t n;

	cr_assert_eq(netaddr_parse("127.0.0.1:53", 53, &a), 0);
	cr_assert_eq(handover_offer("dns-udp", 0, &a, 40), 0);
	cr_assert_eq(handover_offer("dns-tcp", 0, &a, 41), 0);
	const struct handover_entry *e = handover_offered(&n);
	cr_assert_eq(n, 2);
	handover_forget(40);
	e = handover_offered(&n);
	cr_assert_eq(n, 1);
	cr_assert_eq(e[0].fd, 41);
}
