/*
 * dns_tap.c: dnstap output through fstrm's I/O thread (see dns_tap.h).
 *
 * fstrm_iothr is built for exactly this: N input queues, each fed by one
 * thread without locks (the SPSC model), drained by one I/O thread that
 * frames the payloads and writes them; fstrm_iothr_submit never blocks and
 * answers fstrm_res_again when the queue is full, leaving the payload with
 * the caller (freed here and counted as dropped by the caller).
 */
#include "dns/dns_tap.h"

#include <errno.h>
#include <fcntl.h>
#include <fstrm.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dnstap.pb-c.h"

/* The Frame Streams content type every dnstap reader expects. */
static const char CONTENT_TYPE[] = "protobuf:dnstap.Dnstap";

struct dns_tap_queue {
	struct dns_tap *tap;
	struct fstrm_iothr_queue *q;
};

struct dns_tap {
	struct fstrm_iothr *iothr;
	unsigned messages;
	unsigned n_queues;
	char *identity, *version;
	struct dns_tap_queue queues[];
};

uint64_t dns_tap_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static struct fstrm_writer *make_writer(const struct dns_tap_conf *c, char *why, size_t whylen)
{
	struct fstrm_writer_options *wopt = fstrm_writer_options_init();
	struct fstrm_writer *w = NULL;

	if (!wopt)
		return NULL;
	fstrm_writer_options_add_content_type(wopt, CONTENT_TYPE, sizeof(CONTENT_TYPE) - 1);
	if (c->socket) {
		struct fstrm_unix_writer_options *u = fstrm_unix_writer_options_init();
		if (u) {
			fstrm_unix_writer_options_set_socket_path(u, c->path);
			w = fstrm_unix_writer_init(u, wopt);
			fstrm_unix_writer_options_destroy(&u);
		}
	} else {
		struct fstrm_file_options *f = fstrm_file_options_init();
		if (f) {
			fstrm_file_options_set_file_path(f, c->path);
			w = fstrm_file_writer_init(f, wopt);
			fstrm_file_options_destroy(&f);
		}
	}
	fstrm_writer_options_destroy(&wopt);
	if (!w)
		snprintf(why, whylen, "dnstap: cannot set up the %s writer for %s",
		         c->socket ? "socket" : "file", c->path);
	return w;
}

int dns_tap_new(const struct dns_tap_conf *c, char *why, size_t whylen, struct dns_tap **out)
{
	*out = NULL;
	if (!c || !c->path || !*c->path || c->queues == 0 || c->queues > DNS_TAP_QUEUES_MAX) {
		snprintf(why, whylen, "dnstap: bad configuration");
		return -EINVAL;
	}
	if (!c->socket) {
		/* fstrm opens the file in its own thread and only retries on failure:
		 * say now that it cannot be written, not never. */
		int fd = open(c->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0) {
			int e = errno;
			snprintf(why, whylen, "dnstap file %s: %s", c->path, strerror(e));
			return -e;
		}
		close(fd);
	}
	struct dns_tap *t = calloc(1, sizeof(*t) + c->queues * sizeof(t->queues[0]));
	if (!t) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	t->messages = c->messages;
	t->n_queues = c->queues;
	t->identity = c->identity ? strdup(c->identity) : NULL;
	t->version = c->version ? strdup(c->version) : NULL;

	struct fstrm_writer *w = make_writer(c, why, whylen);
	struct fstrm_iothr_options *io = fstrm_iothr_options_init();
	if (w && io) {
		fstrm_iothr_options_set_num_input_queues(io, c->queues);
		fstrm_iothr_options_set_input_queue_size(io, DNS_TAP_QUEUE_SIZE);
		fstrm_iothr_options_set_queue_model(io, FSTRM_IOTHR_QUEUE_MODEL_SPSC);
		t->iothr = fstrm_iothr_init(io, &w); /* takes the writer */
	}
	if (io)
		fstrm_iothr_options_destroy(&io);
	if (w)
		fstrm_writer_destroy(&w);
	if (!t->iothr) {
		if (!*why)
			snprintf(why, whylen, "dnstap: cannot start the I/O thread");
		dns_tap_free(t);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < c->queues; i++) {
		t->queues[i].tap = t;
		t->queues[i].q = fstrm_iothr_get_input_queue_idx(t->iothr, i);
	}
	*out = t;
	return 0;
}

void dns_tap_free(struct dns_tap *t)
{
	if (!t)
		return;
	if (t->iothr)
		fstrm_iothr_destroy(&t->iothr); /* writes out what is queued */
	free(t->identity);
	free(t->version);
	free(t);
}

struct dns_tap_queue *dns_tap_queue(struct dns_tap *t, unsigned idx)
{
	return t && idx < t->n_queues ? &t->queues[idx] : NULL;
}

unsigned dns_tap_messages(const struct dns_tap *t)
{
	return t ? t->messages : 0;
}

/* Address and port of sa into the message's fields; the family from the first. */
static void put_addr(const struct sockaddr *sa, ProtobufCBinaryData *addr, protobuf_c_boolean *has,
                     uint32_t *port, protobuf_c_boolean *has_port, Dnstap__Message *m)
{
	if (!sa)
		return;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		addr->data = (uint8_t *)&in->sin_addr;
		addr->len = 4;
		*port = ntohs(in->sin_port);
		m->socket_family = DNSTAP__SOCKET_FAMILY__INET;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		addr->data = (uint8_t *)&in6->sin6_addr;
		addr->len = 16;
		*port = ntohs(in6->sin6_port);
		m->socket_family = DNSTAP__SOCKET_FAMILY__INET6;
	} else {
		return;
	}
	*has = *has_port = m->has_socket_family = 1;
}

static void put_time(uint64_t us, uint64_t *sec, uint32_t *nsec, protobuf_c_boolean *has_s,
                     protobuf_c_boolean *has_ns)
{
	if (!us)
		return;
	*sec = us / 1000000u;
	*nsec = (uint32_t)(us % 1000000u) * 1000u;
	*has_s = *has_ns = 1;
}

int dns_tap_log(struct dns_tap_queue *q, const struct dns_tap_event *ev)
{
	Dnstap__Dnstap d = DNSTAP__DNSTAP__INIT;
	Dnstap__Message m = DNSTAP__MESSAGE__INIT;
	struct dns_tap *t = q ? q->tap : NULL;
	bool response =
	    ev->kind == DNS_TAP_CLIENT_RESPONSE || ev->kind == DNS_TAP_FORWARDER_RESPONSE;

	if (!t || !ev->msg)
		return -EINVAL;
	switch (ev->kind) {
	case DNS_TAP_CLIENT_QUERY:
		m.type = DNSTAP__MESSAGE__TYPE__CLIENT_QUERY;
		break;
	case DNS_TAP_CLIENT_RESPONSE:
		m.type = DNSTAP__MESSAGE__TYPE__CLIENT_RESPONSE;
		break;
	case DNS_TAP_FORWARDER_QUERY:
		m.type = DNSTAP__MESSAGE__TYPE__FORWARDER_QUERY;
		break;
	case DNS_TAP_FORWARDER_RESPONSE:
		m.type = DNSTAP__MESSAGE__TYPE__FORWARDER_RESPONSE;
		break;
	default:
		return -EINVAL;
	}
	m.has_socket_protocol = 1;
	m.socket_protocol = ev->tcp ? DNSTAP__SOCKET_PROTOCOL__TCP : DNSTAP__SOCKET_PROTOCOL__UDP;
	put_addr(ev->query_addr, &m.query_address, &m.has_query_address, &m.query_port,
	         &m.has_query_port, &m);
	put_addr(ev->response_addr, &m.response_address, &m.has_response_address, &m.response_port,
	         &m.has_response_port, &m);
	put_time(ev->query_time_us, &m.query_time_sec, &m.query_time_nsec, &m.has_query_time_sec,
	         &m.has_query_time_nsec);
	put_time(ev->response_time_us, &m.response_time_sec, &m.response_time_nsec,
	         &m.has_response_time_sec, &m.has_response_time_nsec);
	ProtobufCBinaryData body = {.len = ev->len, .data = (uint8_t *)ev->msg};
	if (response) {
		m.response_message = body;
		m.has_response_message = 1;
	} else {
		m.query_message = body;
		m.has_query_message = 1;
	}
	if (t->identity) {
		d.identity = (ProtobufCBinaryData){strlen(t->identity), (uint8_t *)t->identity};
		d.has_identity = 1;
	}
	if (t->version) {
		d.version = (ProtobufCBinaryData){strlen(t->version), (uint8_t *)t->version};
		d.has_version = 1;
	}
	d.type = DNSTAP__DNSTAP__TYPE__MESSAGE;
	d.message = &m;

	size_t len = dnstap__dnstap__get_packed_size(&d);
	uint8_t *buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	dnstap__dnstap__pack(&d, buf);
	if (fstrm_iothr_submit(t->iothr, q->q, buf, len, fstrm_free_wrapper, NULL) !=
	    fstrm_res_success) {
		free(buf); /* not taken: still ours */
		return -EAGAIN;
	}
	return 0;
}
