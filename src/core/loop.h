/*
 * loop.h: one io_uring event loop per worker thread.
 *
 * THREADS. A loop is created (loop_new) and may be set up (listeners, ops,
 * timers) on any single thread; from the first loop_run() on, every function
 * here except loop_stop() must be called only from the thread running
 * loop_run(), i.e. from inside callbacks. The ring is created with
 * IORING_SETUP_R_DISABLED + SINGLE_ISSUER + DEFER_TASKRUN when the kernel
 * allows it and enabled by loop_run(), so the running thread becomes the
 * single issuer. loop_stop() is async-signal-safe and may be called from any
 * thread or a signal handler.
 *
 * TURNS. Each turn: read the clock once (loop_now), run expired timers first
 * (BGP/BFD keepalives never wait behind DNS load, STYLE.md §8), then handle
 * at most `budget` completions, then submit and wait. One kernel timeout is
 * armed for the earliest timer deadline.
 *
 * OPERATIONS. Every loop_* operation returns 0 or -errno and may hand back an
 * id (for loop_cancel). Its callback `fn(loop, ctx, res, flags)` gets the
 * kernel result (>= 0 or -errno). LOOP_F_MORE in flags means a multishot
 * operation continues; without it the operation is finished, its id is dead
 * and the loop will not touch ctx again. Every operation gets exactly one
 * final callback, also after loop_cancel()/loop_close_fd() (then res is
 * usually -ECANCELED) and at loop_free() (res -ECANCELED; such callbacks may
 * only release their own state, not call loop functions).
 *
 * BUFFERS. loop_recv/loop_send use the caller's buffer: it must stay valid
 * and untouched until the final callback. UDP datagrams arrive in loop-owned
 * provided buffers: the `struct loop_dgram` view (payload, peer) is valid
 * only during the callback; copy what you keep. loop_udp_send copies the
 * payload into a preallocated send slot, so the caller's buffer is free on
 * return; with all slots busy it returns -ENOBUFS (counted), never mallocs.
 *
 * CLOSING. close() does not cancel io_uring requests: use loop_close_fd(),
 * which cancels everything on the fd, waits for the final completions (whose
 * callbacks run as usual), closes the fd and then calls `done`.
 */
#ifndef ANYCACHE_CORE_LOOP_H
#define ANYCACHE_CORE_LOOP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/timer.h"

struct loop;

#define LOOP_F_MORE    1u /* multishot operation stays armed */
#define LOOP_F_DRAINED 2u /* loop_recv: the socket held nothing more after this read */

/* Tunables; zero fields take the default shown. */
struct loop_config {
	unsigned sq_entries;   /* 1024 */
	unsigned cq_entries;   /* 8 * sq_entries */
	unsigned rx_bufs;      /* 1024 provided UDP receive buffers, rounded to 2^n */
	unsigned rx_buf_size;  /* 2048 bytes: DNS over UDP, RFC 1035 §4.2.1 + EDNS */
	unsigned tx_slots;     /* 1024 UDP send slots */
	unsigned tx_slot_size; /* 4096 bytes: largest datagram loop_udp_send takes */
	unsigned max_ops;      /* 4096 concurrent generic ops (incl. UDP listeners) */
	unsigned budget;       /* 256 completions per turn */
	unsigned timer_budget; /* 1024 timers per turn */
};

struct loop_stats {
	uint64_t turns, completions, stale; /* stale: CQE for a reused slot */
	uint64_t timers_run;
	uint64_t udp_rx, udp_rx_trunc, udp_rx_nobufs, udp_rearms;
	uint64_t udp_tx, udp_tx_err, udp_tx_noslot;
	uint64_t wait_us; /* time asleep in io_uring_enter: 1 - wait/wall = busy ratio */
};

/* A received datagram; every pointer dies when the callback returns. */
struct loop_dgram {
	const uint8_t *payload;
	size_t len;
	const struct sockaddr *peer;
	socklen_t peerlen;
	int fd;
	int ttl; /* IPv4 TTL / IPv6 hop limit as received (loop_udp_listen_cmsg); else -1 */
};

typedef void (*loop_op_fn)(struct loop *l, void *ctx, int res, unsigned flags);
typedef void (*loop_dgram_fn)(struct loop *l, void *ctx, const struct loop_dgram *d);
typedef void (*loop_done_fn)(struct loop *l, void *ctx);
typedef void (*loop_post_fn)(struct loop *l, void *arg);

#define LOOP_POST_MAX 1024 /* posts queued per loop before loop_post says -EAGAIN */

/* Process-wide, once, before any loop: ignore SIGPIPE (c-ares writes to TCP
 * with plain writev) and ares_library_init. 0 or -errno. */
int loop_global_init(void);

/* Probe kernel support for everything the loop uses. 0, or -errno with a
 * sentence for the operator in `why`. */
int loop_probe(char *why, size_t whylen);

int loop_new(const struct loop_config *cfg, struct loop **out); /* cfg may be NULL */
/* Only when loop_run is not running. Outstanding ops get final callbacks. */
void loop_free(struct loop *l);

/* Runs turns until loop_stop(); returns 0, or -errno on a ring failure. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l); /* any thread, async-signal-safe */

/*
 * After loop_run returned, on the same thread: cancels every request still in
 * flight and handles completions (final callbacks with -ECANCELED, as at
 * loop_free, but with the loop still usable by them) until the kernel holds
 * nothing, or timeout_ms. Without it the kernel drops its references to our
 * sockets only in a worker after io_uring_queue_exit(), so a daemon restarted
 * at once may find its own port still bound. 0, or -ETIMEDOUT. New
 * operations started by those callbacks fail with -ESHUTDOWN. The loop
 * cannot run again afterwards.
 */
int loop_drain(struct loop *l, unsigned timeout_ms);

/*
 * The one cross-thread entry besides loop_stop: from any thread, queue
 * fn(l, arg) to run on l's thread in a later turn, in the order posted (a
 * mutex-guarded FIFO plus the loop's wake eventfd; nothing on the loop's hot
 * path). 0, -EAGAIN when LOOP_POST_MAX posts are already waiting (the loop
 * is not keeping up: a caller that posts periodically should wait for its
 * previous post to run rather than retry), -ESHUTDOWN once loop_drain or
 * loop_free started. Every accepted post runs exactly once: in a turn, or
 * during loop_drain/loop_free (then loop operations it starts fail with
 * -ESHUTDOWN, and at loop_free it may only release its own state).
 */
int loop_post(struct loop *l, loop_post_fn fn, void *arg);

/* ms: inside loop_run, cached at the start of the turn; outside it, the clock. */
uint64_t loop_now(const struct loop *l);
/* The same instant in us (latency histograms: from the turn that received a
 * query to the turn that answered it, with no clock read per query). */
uint64_t loop_now_us(const struct loop *l);
void loop_get_stats(const struct loop *l, struct loop_stats *out);
/* Whether the ring got SINGLE_ISSUER|DEFER_TASKRUN (else a fallback). */
int loop_setup_flags(const struct loop *l);

/* Timers on this loop's table (see timer.h); deadlines in clock_now_ms()
 * milliseconds. */
int loop_timer_arm(struct loop *l, struct timer *t, uint64_t deadline);
int loop_timer_arm_in(struct loop *l, struct timer *t, uint64_t delay_ms);
void loop_timer_cancel(struct loop *l, struct timer *t);

/* UDP: multishot recvmsg on the loop's provided-buffer ring; fn runs per
 * datagram. Re-armed automatically when the kernel ends it (-ENOBUFS, CQ
 * overflow); ended by loop_close_fd(). */
int loop_udp_listen(struct loop *l, int fd, loop_dgram_fn fn, void *ctx);
/*
 * As loop_udp_listen, for a connected socket, whose owner must hear of the
 * errors ICMP brings (RFC 1122 §4.1.3.3): -ECONNREFUSED for a port
 * unreachable, -EHOSTUNREACH, ... go to efn(l, ctx, -errno, LOOP_F_MORE) and
 * the receive stays armed. efn (may be NULL) also gets the op's final
 * callback (flags 0): -ECANCELED after loop_close_fd/loop_drain/loop_free,
 * or the hard error that stopped the receive.
 */
int loop_udp_listen_ex(struct loop *l, int fd, loop_dgram_fn fn, loop_op_fn efn, void *ctx);
/* The same, with the received TTL (IPv4) or hop limit (IPv6) in d->ttl: it
 * sets IP_RECVTTL or IPV6_RECVHOPLIMIT on fd and gives the receive a control
 * area (LOOP_CMSG_SPACE octets taken from each provided buffer, so the
 * largest datagram shrinks by as much). For protocols that check it (GTSM,
 * RFC 5082; BFD, RFC 5881 §5); the DNS listeners use loop_udp_listen. */
int loop_udp_listen_cmsg(struct loop *l, int fd, loop_dgram_fn fn, void *ctx);
/* Room for one int-sized control message of each kind it asks for. */
#define LOOP_CMSG_SPACE (2 * CMSG_SPACE(sizeof(int)))
/* Copies data into a send slot and submits sendmsg(MSG_NOSIGNAL).
 * -ENOBUFS when all slots are busy, -EMSGSIZE when len > tx_slot_size. */
int loop_udp_send(struct loop *l, int fd, const struct sockaddr *peer, socklen_t plen,
                  const void *data, size_t len);

/* Stream/generic ops. `id` may be NULL. */
/* res 0 or -errno; -ETIMEDOUT after timeout_ms (0 = no timeout). `sa` is copied. */
int loop_connect(struct loop *l, int fd, const struct sockaddr *sa, socklen_t salen,
                 unsigned timeout_ms, loop_op_fn fn, void *ctx, uint64_t *id);
/* Multishot accept: res is a new fd or -errno. The final callback (no
 * LOOP_F_MORE) may still carry an fd (the kernel ends multishot on CQ
 * overflow); the loop does not re-arm: the owner does (later, on -EMFILE). */
int loop_accept(struct loop *l, int fd, loop_op_fn fn, void *ctx, uint64_t *id);
/* One recv(2) into buf: res bytes, 0 at EOF, or -errno. A final callback with
 * res > 0 carries LOOP_F_DRAINED when the kernel saw the socket empty after
 * the read (IORING_CQE_F_SOCK_NONEMPTY clear). */
int loop_recv(struct loop *l, int fd, void *buf, size_t len, loop_op_fn fn, void *ctx,
              uint64_t *id);
/* loop_recv with LOOP_RECV_WAIT: wait for readiness before the first attempt
 * (IORING_RECVSEND_POLL_FIRST). For a socket the last read drained: the
 * attempt that would find it empty, and the socket lock it takes, are saved.
 * Where data is already queued the poll fires at once, so it is never wrong,
 * only a little slower. */
#define LOOP_RECV_WAIT 1u
int loop_recv_opt(struct loop *l, int fd, void *buf, size_t len, unsigned opts, loop_op_fn fn,
                  void *ctx, uint64_t *id);
/* Sends all of buf (re-submitting after short sends), MSG_NOSIGNAL: res = len or -errno. */
int loop_send(struct loop *l, int fd, const void *buf, size_t len, loop_op_fn fn, void *ctx,
              uint64_t *id);
/* poll(2)-style readiness: res is the revents mask or -errno. multishot keeps it armed. */
int loop_poll(struct loop *l, int fd, unsigned events, int multishot, loop_op_fn fn, void *ctx,
              uint64_t *id);
/* Ask the kernel to cancel op `id`; its final callback still comes. -ENOENT if dead. */
int loop_cancel(struct loop *l, uint64_t id);
/* Cancel all ops on fd, wait for their final callbacks, close(fd), then call
 * done (possibly before this returns, when nothing was in flight). */
int loop_close_fd(struct loop *l, int fd, loop_done_fn done, void *ctx);

#endif
