/*
 * handover.h: passing open sockets (and opaque state) from a running
 * anycached to its successor, for an in-place restart or binary upgrade.
 *
 * Why sockets and not a fresh bind: a datagram that reaches a port nobody
 * has bound is dropped, and a SYN to a closed listener is refused. When the
 * successor holds the very same sockets (SCM_RIGHTS duplicates the open
 * file, not the port), the kernel queues keep every datagram and every
 * pending connection between the two processes: whichever of them reads
 * first answers. SO_REUSEPORT groups stay intact because the sockets in them
 * are the same ones.
 *
 * The channel is an AF_UNIX SOCK_SEQPACKET socketpair: the old process keeps
 * one end and the successor inherits the other (its number in the
 * environment variable HANDOVER_ENV). SEQPACKET keeps message boundaries,
 * so one recvmsg is one message with its file descriptors attached. The
 * conversation, each step one or more messages (the last one flagged):
 *
 *   old -> new  HANDOVER_MSG_OFFER    listeners: every DNS UDP/TCP socket of
 *                                     every worker, BGP and metrics listeners
 *   new -> old  HANDOVER_MSG_READY    built and ready to start: send the state
 *   old -> new  HANDOVER_MSG_STATE    state that needs the old one quiet first
 *                                     (established BGP sessions: fd + data)
 *   new -> old  HANDOVER_MSG_SERVING  serving: stop reading and finish
 *   either      HANDOVER_MSG_ABORT    give up (the old one resumes)
 *
 * Message format (version HANDOVER_VERSION; a successor refuses any other,
 * so an upgrade across an incompatible format fails cleanly and the old
 * process keeps serving):
 *   "AHO" u8 version, u8 type, u8 flags (bit 0: last), u16 count,
 *   count x { u8 taglen, tag, u32 index, u8 family (0/4/6), 16 address,
 *             u16 port, u8 has_fd, u32 datalen, data }
 * The file descriptors travel in one SCM_RIGHTS control message, in the
 * order of the entries that have has_fd set; their number must match.
 *
 * Each entry names what its fd is: a tag ("dns-udp", "dns-tcp",
 * "bgp-listen", "http", "bgp-session"), an index (worker or neighbor) and an
 * address. The successor matches entries against its own configuration
 * (handover_take): a match is adopted, anything else is opened afresh, and
 * what nobody took is closed (handover_release_unused). So a new
 * configuration with more or fewer workers or addresses still works.
 *
 * The process-wide registry: the components that open listeners (dns_server,
 * bgp_speaker, http_server) register them with handover_offer() as they
 * open them, and ask handover_take() first when the process is a successor.
 * It is global on purpose, like systemd's sd_listen_fds(): inherited fds are
 * a property of the process, and threading them through every constructor
 * would touch every caller for what is a lookup by name. Filled on the main
 * thread before the threads start; read by the control thread afterwards.
 *
 * Ownership: decoded entries point into the caller's receive buffer; the
 * registry owns copies of data and the fds it holds until taken.
 */
#ifndef ANYCACHE_CORE_HANDOVER_H
#define ANYCACHE_CORE_HANDOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/netaddr.h"

#define HANDOVER_ENV         "ANYCACHE_HANDOVER_FD"
#define HANDOVER_VERSION     1
#define HANDOVER_TAG_MAX     15
#define HANDOVER_MAX_ENTRIES 4200   /* 64 workers x 32 listeners x 2 + the rest */
#define HANDOVER_FDS_PER_MSG 200    /* below the kernel's SCM_MAX_FD (253) */
#define HANDOVER_MSG_MAX     262144 /* one message; state is split over several */
#define HANDOVER_DATA_MAX    65536  /* one entry's opaque data */

enum handover_msg_type {
	HANDOVER_MSG_OFFER = 1,
	HANDOVER_MSG_READY,
	HANDOVER_MSG_STATE,
	HANDOVER_MSG_SERVING,
	HANDOVER_MSG_ABORT,
};

struct handover_entry {
	char tag[HANDOVER_TAG_MAX + 1];
	uint32_t index;
	struct netaddr addr;
	int fd; /* -1: none */
	const uint8_t *data;
	size_t data_len;
};

/* ---- the codec (pure) ---- */

/*
 * Encodes one message of n entries into buf. Returns its length, or
 * -EMSGSIZE (buf too small), -EINVAL (a tag longer than HANDOVER_TAG_MAX, data
 * over HANDOVER_DATA_MAX, an address family other than 0/AF_INET/AF_INET6).
 */
int handover_msg_encode(enum handover_msg_type type, bool last, const struct handover_entry *e,
                        size_t n, uint8_t *buf, size_t cap);

/*
 * Decodes a message received with nfds file descriptors, fds[i] assigned to
 * the entries with has_fd in order. Entries' data point into buf. Returns 0,
 * -EBADMSG (malformed, trailing bytes, fd count not matching), -EPROTO (a
 * version other than ours), -ENOSPC (more than max entries).
 */
int handover_msg_decode(const uint8_t *buf, size_t len, const int *fds, size_t nfds,
                        enum handover_msg_type *type, bool *last, struct handover_entry *e,
                        size_t max, size_t *n);

/* ---- the channel (blocking I/O on the socketpair) ---- */

/*
 * A socketpair for a successor: *keep is ours (close-on-exec), *give is the
 * one the successor inherits (close-on-exec too: posix_spawn's dup2 onto
 * itself clears the flag in the child only).
 */
int handover_channel(int *keep, int *give);

/*
 * Sends entries as one or more messages of `type`, splitting by fd count
 * and size; only the final one is flagged last. n may be 0 (one empty
 * message). 0 or -errno (-EAGAIN: the peer did not read for 2 s).
 */
int handover_send(int sock, enum handover_msg_type type, const struct handover_entry *e, size_t n);

/*
 * Receives messages until one flagged last, waiting at most timeout_ms in
 * all; every entry (with its fd and a copy of its data) goes into the
 * registry (below). *type gets the messages' type (all must agree). 0,
 * -ETIMEDOUT, -ECONNRESET (the peer closed), or a decode error.
 */
int handover_recv(int sock, unsigned timeout_ms, enum handover_msg_type *type);

/* ---- the registry ---- */

/*
 * A listener this process opened, offered to a successor. fd stays ours (a
 * successor gets a duplicate). Returns 0 or -ENOSPC.
 */
int handover_offer(const char *tag, uint32_t index, const struct netaddr *addr, int fd);
/* The listener fd is closing: never offer it again. */
void handover_forget(int fd);
/* Every offered listener, for handover_send; *n set. A view into the registry. */
const struct handover_entry *handover_offered(size_t *n);

/* Whether this process was started as a successor (inherited entries present). */
bool handover_active(void);
void handover_set_active(bool on);

/*
 * An inherited fd for (tag, index, addr): the address is compared with its
 * port (family 0 matches family 0). Returns the fd (now the caller's) or
 * -ENOENT. With data/len non-NULL they get the entry's data, which stays
 * valid until handover_release_unused.
 */
int handover_take(const char *tag, uint32_t index, const struct netaddr *addr, const uint8_t **data,
                  size_t *len);
/* The same for an entry that carries data and no fd: 0 or -ENOENT. */
int handover_take_data(const char *tag, uint32_t index, const struct netaddr *addr,
                       const uint8_t **data, size_t *len);
/* Closes every inherited fd nobody took (logged) and frees the data. */
void handover_release_unused(void);

#endif
