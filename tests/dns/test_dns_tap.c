/*
 * Unit tests for the dnstap output (src/dns/dns_tap.c): what is written reads
 * back (fstrm reader + the generated protobuf decoder) with the right type,
 * addresses, times and message bytes; a writer that cannot make progress
 * fills the worker's queue and every further message is refused at once
 * (-EAGAIN, counted by the caller), never waited for.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fstrm.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dns/dns_tap.h"
#include "dnstap.pb-c.h"

static char dir[] = "/tmp/anycache-tap-XXXXXX";
static char path[256];

static const uint8_t QUERY[] = {0x12, 0x34, 0x01, 0x00, 0,   1,   0,   0,   0, 0, 0, 0, 3,
                                'w',  'w',  'w',  4,    't', 'e', 's', 't', 0, 0, 1, 0, 1};

Test(dns_tap, file_reads_back)
{
	char why[256] = "";
	struct dns_tap *t;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/out.tap", dir);
	struct dns_tap_conf c = {.path = path,
	                         .messages = DNS_TAP_CLIENT_QUERY | DNS_TAP_FORWARDER_RESPONSE,
	                         .identity = "node-1",
	                         .version = "test",
	                         .queues = 2};
	cr_assert_eq(dns_tap_new(&c, why, sizeof(why), &t), 0, "%s", why);
	cr_assert_eq(dns_tap_messages(t), c.messages);
	cr_assert_null(dns_tap_queue(t, 2));

	struct sockaddr_in cli = {.sin_family = AF_INET, .sin_port = htons(40000)};
	inet_pton(AF_INET, "192.0.2.7", &cli.sin_addr);
	struct sockaddr_in6 up = {.sin6_family = AF_INET6, .sin6_port = htons(53)};
	inet_pton(AF_INET6, "2001:db8::53", &up.sin6_addr);
	struct dns_tap_event q = {.kind = DNS_TAP_CLIENT_QUERY,
	                          .query_addr = (struct sockaddr *)&cli,
	                          .query_time_us = 1764900000123456ull,
	                          .msg = QUERY,
	                          .len = sizeof(QUERY)};
	struct dns_tap_event r = {.kind = DNS_TAP_FORWARDER_RESPONSE,
	                          .tcp = true,
	                          .response_addr = (struct sockaddr *)&up,
	                          .response_time_us = 1764900000999999ull,
	                          .msg = QUERY,
	                          .len = sizeof(QUERY)};
	cr_assert_eq(dns_tap_log(dns_tap_queue(t, 0), &q), 0);
	cr_assert_eq(dns_tap_log(dns_tap_queue(t, 1), &r), 0);
	struct dns_tap_event bad = q;
	bad.kind = 0;
	cr_assert_eq(dns_tap_log(dns_tap_queue(t, 0), &bad), -EINVAL);
	dns_tap_free(t); /* flushes */

	struct fstrm_file_options *fo = fstrm_file_options_init();
	fstrm_file_options_set_file_path(fo, path);
	struct fstrm_reader *rd = fstrm_file_reader_init(fo, NULL);
	fstrm_file_options_destroy(&fo);
	cr_assert_not_null(rd);
	const uint8_t *data;
	size_t len;
	unsigned seen = 0;
	while (fstrm_reader_read(rd, &data, &len) == fstrm_res_success) {
		Dnstap__Dnstap *d = dnstap__dnstap__unpack(NULL, len, data);
		cr_assert_not_null(d);
		cr_assert(d->has_identity && d->identity.len == 6 &&
		          memcmp(d->identity.data, "node-1", 6) == 0);
		Dnstap__Message *m = d->message;
		cr_assert_not_null(m);
		if (m->type == DNSTAP__MESSAGE__TYPE__CLIENT_QUERY) {
			cr_assert_eq(m->socket_family, DNSTAP__SOCKET_FAMILY__INET);
			cr_assert_eq(m->socket_protocol, DNSTAP__SOCKET_PROTOCOL__UDP);
			cr_assert(m->has_query_address && m->query_address.len == 4);
			cr_assert_eq(memcmp(m->query_address.data, &cli.sin_addr, 4), 0);
			cr_assert_eq(m->query_port, 40000);
			cr_assert_eq(m->query_time_sec, 1764900000u);
			cr_assert_eq(m->query_time_nsec, 123456000u);
			cr_assert(m->has_query_message && !m->has_response_message);
			cr_assert_eq(m->query_message.len, sizeof(QUERY));
			cr_assert_eq(memcmp(m->query_message.data, QUERY, sizeof(QUERY)), 0);
		} else {
			cr_assert_eq(m->type, DNSTAP__MESSAGE__TYPE__FORWARDER_RESPONSE);
			cr_assert_eq(m->socket_family, DNSTAP__SOCKET_FAMILY__INET6);
			cr_assert_eq(m->socket_protocol, DNSTAP__SOCKET_PROTOCOL__TCP);
			cr_assert(m->has_response_address && m->response_address.len == 16);
			cr_assert_eq(m->response_port, 53);
			cr_assert(!m->has_query_address);
			cr_assert(m->has_response_message && !m->has_query_message);
			cr_assert_eq(m->response_time_nsec, 999999000u);
		}
		seen++;
		dnstap__dnstap__free_unpacked(d, NULL);
	}
	cr_assert_eq(seen, 2);
	fstrm_reader_destroy(&rd);
	unlink(path);
	rmdir(dir);
}

Test(dns_tap, unwritable_file_is_refused_at_start)
{
	char why[256] = "";
	struct dns_tap *t = NULL;
	struct dns_tap_conf c = {
	    .path = "/nonexistent-dir/x.tap", .messages = DNS_TAP_CLIENT_QUERY, .queues = 1};
	cr_assert_eq(dns_tap_new(&c, why, sizeof(why), &t), -ENOENT);
	cr_assert_null(t);
	cr_assert(strstr(why, "/nonexistent-dir/x.tap"));
}

/*
 * A socket reader that accepts and then never answers fstrm's handshake:
 * the I/O thread waits on it, nothing drains the queue, and the worker must
 * see -EAGAIN at once once its queue is full.
 */
Test(dns_tap, full_queue_drops_without_waiting, .timeout = 30)
{
	char why[256] = "";
	struct dns_tap *t;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	cr_assert_not_null(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/tap.sock", dir);
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(ls, 0);
	cr_assert_eq(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(ls, 4), 0);
	struct dns_tap_conf c = {
	    .path = sa.sun_path, .socket = true, .messages = DNS_TAP_CLIENT_QUERY, .queues = 1};
	cr_assert_eq(dns_tap_new(&c, why, sizeof(why), &t), 0, "%s", why);
	struct pollfd pf = {.fd = ls, .events = POLLIN};
	cr_assert_eq(poll(&pf, 1, 10000), 1, "fstrm did not connect");
	int cs = accept(ls, NULL, NULL);
	cr_assert_geq(cs, 0);

	struct dns_tap_event q = {.kind = DNS_TAP_CLIENT_QUERY, .msg = QUERY, .len = sizeof(QUERY)};
	unsigned ok = 0, dropped = 0, total = DNS_TAP_QUEUE_SIZE + 1000;
	for (unsigned i = 0; i < total; i++) {
		int r = dns_tap_log(dns_tap_queue(t, 0), &q);
		cr_assert(r == 0 || r == -EAGAIN, "r = %d", r);
		if (r == 0)
			ok++;
		else
			dropped++;
	}
	cr_assert_leq(ok, DNS_TAP_QUEUE_SIZE);
	cr_assert_geq(dropped, 1000);
	cr_assert_eq(ok + dropped, total);
	/* The reader goes away: fstrm gives up the handshake and can be stopped. */
	close(cs);
	close(ls);
	dns_tap_free(t);
	unlink(sa.sun_path);
	rmdir(dir);
}
