/*
 * dns_tap.h: dnstap logging of DNS messages (https://dnstap.info): client
 * queries and responses, forwarder queries and responses, as protobuf
 * "Dnstap" payloads (src/dns/dnstap.proto) in a Frame Streams file or unix
 * socket, the format unbound, Knot, BIND and dnsdist write and dnstap-read
 * reads.
 *
 * Glue (libfstrm + protobuf-c). Threads: one I/O thread of fstrm's own
 * (fstrm_iothr) writes; each producing thread (a DNS worker) has its own
 * bounded single-producer queue (dns_tap_queue), so logging never takes a
 * lock nor waits: a message that finds its queue full is dropped and
 * dns_tap_log says so, for the caller to count (issue 11: a slow disk or a
 * reader that went away must never slow DNS).
 * Ownership: dns_tap_log copies what it logs (one allocation per message,
 * freed by the I/O thread once written); the views passed in are only read
 * during the call.
 */
#ifndef ANYCACHE_DNS_TAP_H
#define ANYCACHE_DNS_TAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct dns_tap;
struct dns_tap_queue;

/* Message kinds; the same bits as CONF_DNSTAP_* (core/conf.h). */
enum dns_tap_msg {
	DNS_TAP_CLIENT_QUERY = 1u << 0,
	DNS_TAP_CLIENT_RESPONSE = 1u << 1,
	DNS_TAP_FORWARDER_QUERY = 1u << 2,
	DNS_TAP_FORWARDER_RESPONSE = 1u << 3,
};

#define DNS_TAP_QUEUE_SIZE 4096u /* messages per worker queue (a power of two) */
#define DNS_TAP_QUEUES_MAX 128u

struct dns_tap_conf {
	const char *path;     /* a file (truncated at start) or a unix socket */
	bool socket;          /* path is a unix socket: fstrm reconnects when it goes away */
	unsigned messages;    /* enum dns_tap_msg bits to log */
	const char *identity; /* Dnstap.identity (may be NULL) */
	const char *version;  /* Dnstap.version (may be NULL) */
	unsigned queues;      /* producing threads, 1..DNS_TAP_QUEUES_MAX */
};

/*
 * Starts the I/O thread. A file that cannot be created is an error here
 * (-errno, why says which); a socket nobody listens on yet is not: fstrm
 * connects when it can, and messages meanwhile are dropped (counted).
 */
int dns_tap_new(const struct dns_tap_conf *conf, char *why, size_t whylen, struct dns_tap **out);
/* Flushes what is queued and stops the I/O thread; after every producer stopped. */
void dns_tap_free(struct dns_tap *t);

/* The queue of producing thread idx (< conf.queues); one thread per queue. */
struct dns_tap_queue *dns_tap_queue(struct dns_tap *t, unsigned idx);
/* The enum dns_tap_msg bits this tap logs. */
unsigned dns_tap_messages(const struct dns_tap *t);

/*
 * One message. query_addr is the initiator (the client; for forwarder
 * messages, us: may be NULL), response_addr the responder (us: the listen
 * address, may be NULL; for forwarder messages, the upstream). Times are
 * wall-clock microseconds since the epoch, 0 = not given. msg is the DNS
 * message as it went on the wire (query or response after `kind`).
 */
struct dns_tap_event {
	enum dns_tap_msg kind;
	bool tcp;
	const struct sockaddr *query_addr;
	const struct sockaddr *response_addr;
	uint64_t query_time_us;
	uint64_t response_time_us;
	const uint8_t *msg;
	size_t len;
};

/* 0 queued, -EAGAIN dropped (queue full), -ENOMEM, -EINVAL (bad event). */
int dns_tap_log(struct dns_tap_queue *q, const struct dns_tap_event *ev);

/* Wall-clock now in microseconds (the timestamps dnstap carries). */
uint64_t dns_tap_now_us(void);

#endif
