#include "dns/dns_forward.h"

#include <arpa/inet.h>
#include <ares.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/ares_glue.h"
#include "core/log.h"
#include "core/loop.h"

#define ID_WORDS (65536 / 64)
#define ID_TRIES 64

struct fwd_query {
	struct dns_forward *f;
	uint16_t id;
	uint16_t qtype, qclass;
	uint8_t qname[DNS_NAME_MAX]; /* as sent upstream, 0x20 case applied */
	size_t qname_len;
	uint64_t sent_ms;
	dns_forward_cb cb;
	void *ctx;
};

struct dns_forward {
	struct loop *loop;
	struct ares_glue *glue;
	unsigned max_outstanding;
	bool closing;
	uint64_t ids[ID_WORDS]; /* IDs of outstanding queries: never two alike (c-ares matches by ID) */
	struct dns_forward_stats stats;
};

static bool id_used(const struct dns_forward *f, uint16_t id)
{
	return f->ids[id / 64] & (1ull << (id % 64));
}

static void id_set(struct dns_forward *f, uint16_t id, bool on)
{
	if (on)
		f->ids[id / 64] |= 1ull << (id % 64);
	else
		f->ids[id / 64] &= ~(1ull << (id % 64));
}

/* A random ID not outstanding in this forwarder; -EBUSY if none found quickly. */
static int pick_id(struct dns_forward *f, uint16_t *id)
{
	for (int i = 0; i < ID_TRIES; i++) {
		uint16_t v = (uint16_t)arc4random_uniform(65536);
		if (!id_used(f, v)) {
			*id = v;
			return 0;
		}
	}
	return -EBUSY;
}

int dns_forward_new(struct loop *l, const struct dns_forward_conf *conf,
		    struct dns_forward **out)
{
	struct ares_addr_port_node nodes[16];
	struct ares_options opts;
	struct dns_forward *f;
	unsigned n = conf->n_upstreams;
	int r;

	if (n == 0 || n > sizeof(nodes) / sizeof(nodes[0]))
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->loop = l;
	f->max_outstanding = conf->max_outstanding ? conf->max_outstanding : 4096;

	memset(&opts, 0, sizeof(opts));
	/*
	 * EDNS: c-ares reads answers up to ednspsz over UDP (else anything
	 * over 512 goes to TCP). TC answers are retried over TCP by c-ares
	 * itself (no IGNTC). NOROTATE: the first healthy upstream first.
	 */
	opts.flags = ARES_FLAG_EDNS | ARES_FLAG_NOSEARCH;
	opts.ednspsz = DNS_EDNS_UDP_SIZE;
	opts.timeout = (int)(conf->timeout_ms ? conf->timeout_ms : 500);
	opts.tries = (int)(conf->tries ? conf->tries : 2);
	/* Large socket buffers: an EAGAIN on c-ares's send counts as a server failure. */
	opts.socket_send_buffer_size = 1 << 20;
	opts.socket_receive_buffer_size = 1 << 20;
	r = ares_glue_new(l, &opts,
			  ARES_OPT_FLAGS | ARES_OPT_EDNSPSZ | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
				  ARES_OPT_SOCK_SNDBUF | ARES_OPT_SOCK_RCVBUF | ARES_OPT_NOROTATE,
			  &f->glue);
	if (r) {
		free(f);
		return r;
	}
	memset(nodes, 0, sizeof(nodes));
	for (unsigned i = 0; i < n; i++) {
		const struct netaddr *a = &conf->upstreams[i];
		nodes[i].next = i + 1 < n ? &nodes[i + 1] : NULL;
		nodes[i].family = a->family;
		if (a->family == AF_INET)
			memcpy(&nodes[i].addr.addr4, a->addr, 4);
		else
			memcpy(&nodes[i].addr.addr6, a->addr, 16);
		nodes[i].udp_port = a->port;
		nodes[i].tcp_port = a->port;
	}
	if (ares_set_servers_ports(ares_glue_channel(f->glue), nodes) != ARES_SUCCESS) {
		ares_glue_free(f->glue);
		free(f);
		return -EINVAL;
	}
	*out = f;
	return 0;
}

void dns_forward_free(struct dns_forward *f)
{
	if (!f)
		return;
	f->closing = true;
	ares_glue_free(f->glue); /* outstanding queries: ARES_EDESTRUCTION callbacks */
	free(f);
}

static int status_to_errno(int status)
{
	switch (status) {
	case ARES_ETIMEOUT:
		return -ETIMEDOUT;
	case ARES_EDESTRUCTION:
	case ARES_ECANCELLED:
		return -ECANCELED;
	case ARES_ENOMEM:
		return -ENOMEM;
	case ARES_EBADRESP:
	case ARES_EFORMERR:
		return -EPROTO;
	default:
		return -ECONNREFUSED;
	}
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct fwd_query *q = arg;
	struct dns_forward *f = q->f;
	struct dns_scan scan;
	int r;

	(void)timeouts;
	id_set(f, q->id, false);
	f->stats.outstanding--;
	if (status == ARES_EDESTRUCTION || f->closing) {
		q->cb(q->ctx, -ECANCELED, NULL, 0, NULL);
		free(q);
		return;
	}
	if (status != ARES_SUCCESS) {
		r = status_to_errno(status);
		if (r == -ETIMEDOUT)
			f->stats.timeouts++;
		else
			f->stats.failures++;
		q->cb(q->ctx, r, NULL, 0, NULL);
		free(q);
		return;
	}
	r = dns_scan(abuf, (size_t)alen, &scan);
	if ((r < 0 && r != -E2BIG) || !scan.qr || scan.id != q->id ||
	    dns_scan_match_question(abuf, &scan, q->qname, q->qname_len, q->qtype, q->qclass) !=
		    DNS_QMATCH_EXACT) {
		/* Letter case or name differs: not the answer to what we asked. */
		f->stats.mismatches++;
		q->cb(q->ctx, -EPROTO, NULL, 0, NULL);
		free(q);
		return;
	}
	f->stats.answers++;
	f->stats.rtt_ms_sum += loop_now(f->loop) - q->sent_ms;
	q->cb(q->ctx, 0, abuf, (size_t)alen, &scan);
	free(q);
}

int dns_forward_query(struct dns_forward *f, const uint8_t *qname, size_t qname_len,
		      uint16_t qtype, uint16_t qclass, bool cd, bool do_bit, dns_forward_cb cb,
		      void *ctx)
{
	uint8_t rnd[DNS_0X20_RANDOM_BYTES];
	uint8_t buf[DNS_HDR_LEN + DNS_NAME_MAX + 4 + 11];
	struct wbuf b = wbuf_init(buf, sizeof(buf));
	struct fwd_query *q;
	int len;

	if (f->closing)
		return -ECANCELED;
	if (qname_len == 0 || qname_len > DNS_NAME_MAX)
		return -EINVAL;
	if (f->stats.outstanding >= f->max_outstanding) {
		f->stats.busy++;
		return -EBUSY;
	}
	q = malloc(sizeof(*q));
	if (!q)
		return -ENOMEM;
	if (pick_id(f, &q->id)) {
		free(q);
		f->stats.busy++;
		return -EBUSY;
	}
	q->f = f;
	q->qtype = qtype;
	q->qclass = qclass;
	q->qname_len = qname_len;
	memcpy(q->qname, qname, qname_len);
	arc4random_buf(rnd, sizeof(rnd));
	dns_name_randomize_case(q->qname, qname_len, rnd, sizeof(rnd));
	q->cb = cb;
	q->ctx = ctx;
	q->sent_ms = loop_now(f->loop);
	len = dns_build_query(&b, q->id, q->qname, qname_len, qtype, qclass, cd, do_bit);
	if (len < 0) {
		free(q);
		return len;
	}
	id_set(f, q->id, true);
	f->stats.outstanding++;
	f->stats.sent++;
	ares_send(ares_glue_channel(f->glue), buf, len, on_answer, q);
	ares_glue_kick(f->glue);
	return 0;
}

const struct dns_forward_stats *dns_forward_stats(const struct dns_forward *f)
{
	return &f->stats;
}
