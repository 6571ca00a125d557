/*
 * loop.c: the io_uring event loop (see loop.h for the contract).
 *
 * Every SQE carries user_data = {kind:8, generation:24, slot:32}. One
 * dispatcher switches on kind; K_OP and K_TX completions whose generation
 * does not match the slot's current one belong to a slot that was freed and
 * reused, and are dropped (counted as stale). Kernel-facing state that must
 * outlive io_uring_get_sqe() until io_uring_submit() (msghdr, sockaddr,
 * timespec) lives in the op slot, never on the stack.
 */
#include "core/loop.h"

#include <ares.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"

enum kind { K_IGNORE = 0, K_WAKE, K_TIMEOUT, K_OP, K_TX };
enum op_type { OP_FREE = 0, OP_UDP_RECV, OP_CONNECT, OP_ACCEPT, OP_RECV, OP_SEND, OP_POLL };

#define GEN_MASK  0xffffffu
#define NO_IDX    UINT32_MAX
#define BGID      0 /* one provided-buffer group per ring */
#define CQE_BATCH 64u

struct op {
	uint8_t type;
	bool cancelled; /* loop_cancel: do not re-arm (loop_close_fd: see fd_closing) */
	bool multishot;
	bool rearm;      /* on the re-arm list (nothing in flight) */
	bool poll_first; /* OP_RECV: LOOP_RECV_WAIT */
	uint32_t gen;
	uint32_t next; /* free list */
	int fd;
	unsigned events;
	loop_op_fn fn;
	loop_dgram_fn dfn;
	void *ctx;
	uint8_t *buf;
	size_t len, done;
	struct sockaddr_storage addr;
	socklen_t alen;
	struct __kernel_timespec ts;
	struct msghdr msg;
};

struct tx_slot {
	struct msghdr msg;
	struct iovec iov;
	struct sockaddr_storage peer;
	uint32_t gen, next;
	int fd;
	bool busy;
};

/*
 * Per descriptor, indexed by fd: how many requests (ops and send slots) the
 * kernel may still hold on it, and a pending loop_close_fd. Closing is O(1)
 * in the number of ops and slots (issue 10, fault 8: a linear scan per close
 * made connect/close churn cost max_ops + tx_slots steps each): the ops on a
 * closing fd read `closing` instead of being marked one by one, and the
 * close completes when the count reaches zero.
 */
struct fdent {
	uint32_t n;
	bool closing;
	loop_done_fn done;
	void *ctx;
};

struct loop {
	struct io_uring ring;
	struct loop_config cfg;
	unsigned setup_flags;
	bool enabled, running;
	uint64_t now_us; /* the turn's one clock read (loop_now: in ms) */
	struct timer_table *timers;

	/* The one kernel timeout for the earliest timer deadline. */
	bool to_armed;
	uint64_t to_deadline;
	uint32_t to_gen;
	struct __kernel_timespec to_ts;

	/* Cross-thread stop: flag + eventfd the loop always has a read on. */
	int efd;
	uint64_t efd_val;
	atomic_int stop;
	bool draining; /* loop_drain: no wake read re-armed */

	/* loop_post: a bounded FIFO filled by any thread, run by ours after a
	 * wake read completes (the writer bumps the same eventfd). */
	pthread_mutex_t post_mu;
	struct post {
		loop_post_fn fn;
		void *arg;
	} * posts;
	unsigned post_head, post_n;
	bool post_closed;

	/* Provided-buffer ring for UDP receive (liburing 2.3 has no
	 * io_uring_setup_buf_ring: mmap and register it ourselves). */
	struct io_uring_buf_ring *br;
	size_t br_len;
	uint8_t *rxmem;
	unsigned nbufs;

	struct op *ops;
	uint32_t op_free;
	uint32_t *rearm;
	unsigned nrearm;

	struct tx_slot *tx;
	uint8_t *txmem;
	uint32_t tx_free;

	struct fdent *fds; /* grown on demand to the highest fd used + 1 */
	unsigned nfds;
	struct loop_stats st;
};

static inline uint64_t ud_make(enum kind k, uint32_t gen, uint32_t slot)
{
	return ((uint64_t)k << 56) | ((uint64_t)(gen & GEN_MASK) << 32) | slot;
}

/* ---------------------------------------------------------------- globals */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_rc;

static void global_init_once(void)
{
	/* MSG_NOSIGNAL covers our sends; c-ares writes TCP with plain writev. */
	signal(SIGPIPE, SIG_IGN);
	int r = ares_library_init(ARES_LIB_INIT_ALL);
	global_rc = r == ARES_SUCCESS ? 0 : -ENOMEM;
}

int loop_global_init(void)
{
	pthread_once(&global_once, global_init_once);
	return global_rc;
}

/* ---------------------------------------------------------------- probe */

static int read_sysctl_int(const char *path, int *val)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	int ok = fscanf(f, "%d", val) == 1;
	fclose(f);
	return ok ? 0 : -EINVAL;
}

static int probe_multishot_recvmsg(struct io_uring *ring, char *why, size_t whylen)
{
	enum { NB = 4, BSZ = 256 };
	static uint8_t mem[NB][BSZ];
	size_t brlen = NB * sizeof(struct io_uring_buf);
	struct io_uring_buf_ring *br =
	    mmap(NULL, brlen, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (br == MAP_FAILED)
		return -errno;
	struct io_uring_buf_reg reg = {.ring_addr = (uintptr_t)br, .ring_entries = NB, .bgid = 7};
	int r = io_uring_register_buf_ring(ring, &reg, 0);
	if (r < 0) {
		snprintf(why, whylen,
		         "kernel cannot register a provided-buffer ring (%s; needs Linux >= 5.19)",
		         strerror(-r));
		munmap(br, brlen);
		return r;
	}
	io_uring_buf_ring_init(br);
	for (int i = 0; i < NB; i++)
		io_uring_buf_ring_add(br, mem[i], BSZ, (unsigned short)i,
		                      io_uring_buf_ring_mask(NB), i);
	io_uring_buf_ring_advance(br, NB);

	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sin);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) < 0) {
		r = -errno;
		snprintf(why, whylen, "cannot open a UDP socket on 127.0.0.1 to probe io_uring: %s",
		         strerror(-r));
		goto out;
	}
	struct msghdr msg = {.msg_namelen = sizeof(struct sockaddr_in6)};
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	io_uring_prep_recvmsg_multishot(sqe, fd, &msg, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = 7;
	io_uring_sqe_set_data64(sqe, 1);
	io_uring_submit(ring);
	(void)sendto(fd, "x", 1, 0, (struct sockaddr *)&sin, sl);
	struct __kernel_timespec ts = {.tv_sec = 1};
	struct io_uring_cqe *cqe;
	r = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
	if (r < 0) {
		snprintf(why, whylen,
		         "io_uring multishot recvmsg did not complete on loopback (%s)",
		         strerror(-r));
		goto out;
	}
	if (cqe->res < 0 || !(cqe->flags & IORING_CQE_F_MORE)) {
		r = cqe->res < 0 ? cqe->res : -EOPNOTSUPP;
		snprintf(why, whylen, "kernel lacks multishot recvmsg (needs Linux >= 6.0): %s",
		         strerror(-r));
		io_uring_cqe_seen(ring, cqe);
		goto out;
	}
	io_uring_cqe_seen(ring, cqe);
	r = 0;
out:
	if (fd >= 0)
		close(fd); /* the ring is torn down right after: that cancels the recv */
	io_uring_unregister_buf_ring(ring, 7);
	munmap(br, brlen);
	return r;
}

int loop_probe(char *why, size_t whylen)
{
	static const struct {
		int op;
		const char *name;
	} need[] = {
	    {IORING_OP_RECVMSG, "RECVMSG"},
	    {IORING_OP_SENDMSG, "SENDMSG"},
	    {IORING_OP_ACCEPT, "ACCEPT"},
	    {IORING_OP_RECV, "RECV"},
	    {IORING_OP_SEND, "SEND"},
	    {IORING_OP_POLL_ADD, "POLL_ADD"},
	    {IORING_OP_POLL_REMOVE, "POLL_REMOVE"},
	    {IORING_OP_TIMEOUT, "TIMEOUT"},
	    {IORING_OP_TIMEOUT_REMOVE, "TIMEOUT_REMOVE"},
	    {IORING_OP_LINK_TIMEOUT, "LINK_TIMEOUT"},
	    {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"},
	    {IORING_OP_CONNECT, "CONNECT"},
	    {IORING_OP_READ, "READ"},
	};
	struct io_uring ring;
	int dis = 0;
	if (whylen)
		why[0] = 0;
	(void)read_sysctl_int("/proc/sys/kernel/io_uring_disabled", &dis);
	int r = io_uring_queue_init(8, &ring, 0);
	if (r < 0) {
		if (dis == 2)
			snprintf(why, whylen,
			         "io_uring is disabled by sysctl kernel.io_uring_disabled=2");
		else if (dis == 1 && r == -EPERM)
			snprintf(why, whylen,
			         "io_uring is restricted by sysctl kernel.io_uring_disabled=1 "
			         "(run as root or in group kernel.io_uring_group)");
		else if (r == -ENOSYS)
			snprintf(why, whylen, "kernel has no io_uring (needs Linux >= 6.0)");
		else if (r == -EPERM)
			snprintf(why, whylen,
			         "io_uring_setup is not permitted (seccomp or container policy?)");
		else
			snprintf(why, whylen, "io_uring_setup failed: %s", strerror(-r));
		return r;
	}
	struct io_uring_probe *p = io_uring_get_probe_ring(&ring);
	if (!p) {
		snprintf(why, whylen, "kernel cannot report io_uring opcodes (needs Linux >= 5.6)");
		io_uring_queue_exit(&ring);
		return -EOPNOTSUPP;
	}
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (!io_uring_opcode_supported(p, need[i].op)) {
			snprintf(why, whylen, "kernel io_uring lacks opcode %s", need[i].name);
			io_uring_free_probe(p);
			io_uring_queue_exit(&ring);
			return -EOPNOTSUPP;
		}
	}
	io_uring_free_probe(p);
	if (!(ring.features & IORING_FEAT_NODROP)) {
		snprintf(why, whylen,
		         "kernel io_uring may drop completions (no IORING_FEAT_NODROP, needs Linux "
		         ">= 5.5)");
		io_uring_queue_exit(&ring);
		return -EOPNOTSUPP;
	}
	r = probe_multishot_recvmsg(&ring, why, whylen);
	io_uring_queue_exit(&ring);
	return r;
}

/* ---------------------------------------------------------------- helpers */

static struct io_uring_sqe *get_sqe(struct loop *l)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
	if (!sqe && l->enabled) {
		/* SQ full: push what we have; the kernel copies SQEs on submit. */
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
	}
	return sqe;
}

/* fd's entry, the table grown to hold it; NULL for fd < 0 or out of memory. */
static struct fdent *fd_ent(struct loop *l, int fd)
{
	if (fd < 0)
		return NULL;
	if ((unsigned)fd >= l->nfds) {
		unsigned n = l->nfds ? l->nfds : 64;
		while (n <= (unsigned)fd)
			n *= 2;
		struct fdent *f = realloc(l->fds, n * sizeof(*f));
		if (!f)
			return NULL;
		memset(f + l->nfds, 0, (n - l->nfds) * sizeof(*f));
		l->fds = f;
		l->nfds = n;
	}
	return &l->fds[fd];
}

static bool fd_closing(const struct loop *l, int fd)
{
	return fd >= 0 && (unsigned)fd < l->nfds && l->fds[fd].closing;
}

/* Cancelled by loop_cancel, or its fd is being closed: no re-arm, no resubmit. */
static bool op_cancelled(const struct loop *l, const struct op *o)
{
	return o->cancelled || fd_closing(l, o->fd);
}

static int op_alloc(struct loop *l, enum op_type type, int fd, uint32_t *idx)
{
	if (l->draining)
		return -ESHUTDOWN; /* a final callback re-arming itself must not outlive loop_drain
		                    */
	if (l->op_free == NO_IDX)
		return -ENOBUFS;
	struct fdent *fe = fd_ent(l, fd);
	if (fd >= 0 && !fe)
		return -ENOMEM;
	if (fe && fe->closing)
		return -EBADF; /* loop_close_fd is waiting for this fd's last op */
	uint32_t i = l->op_free;
	struct op *o = &l->ops[i];
	l->op_free = o->next;
	uint32_t gen = (o->gen + 1) & GEN_MASK;
	memset(o, 0, sizeof(*o));
	o->gen = gen;
	o->type = (uint8_t)type;
	o->fd = fd;
	o->next = NO_IDX;
	if (fe)
		fe->n++;
	*idx = i;
	return 0;
}

static void op_release(struct loop *l, uint32_t idx)
{
	struct op *o = &l->ops[idx];
	if (o->fd >= 0 && (unsigned)o->fd < l->nfds)
		l->fds[o->fd].n--;
	o->type = OP_FREE;
	o->next = l->op_free;
	l->op_free = idx;
}

/* A pending loop_close_fd whose last request on fd just ended: close, tell. */
static void close_if_idle(struct loop *l, int fd)
{
	if (fd < 0 || (unsigned)fd >= l->nfds)
		return;
	struct fdent *fe = &l->fds[fd];
	if (!fe->closing || fe->n)
		return;
	loop_done_fn done = fe->done;
	void *ctx = fe->ctx;
	*fe = (struct fdent){0};
	close(fd);
	if (done)
		done(l, ctx);
}

/* The op's last completion: free the slot first (the callback may start new
 * ops, even on the same fd), then tell the owner, then a pending close. */
static void op_final_flags(struct loop *l, uint32_t idx, int res, unsigned flags)
{
	struct op *o = &l->ops[idx];
	loop_op_fn fn = o->fn;
	void *ctx = o->ctx;
	int fd = o->fd;
	op_release(l, idx);
	if (fn)
		fn(l, ctx, res, flags);
	close_if_idle(l, fd);
}

static void op_final(struct loop *l, uint32_t idx, int res)
{
	op_final_flags(l, idx, res, 0);
}

static int op_submit(struct loop *l, uint32_t idx)
{
	struct op *o = &l->ops[idx];
	struct io_uring_sqe *sqe;
	if (o->type == OP_CONNECT && (o->ts.tv_sec || o->ts.tv_nsec) &&
	    io_uring_sq_space_left(&l->ring) < 2 && l->enabled)
		io_uring_submit(&l->ring);
	sqe = get_sqe(l);
	if (!sqe)
		return -EBUSY;
	switch (o->type) {
	case OP_UDP_RECV:
		io_uring_prep_recvmsg_multishot(sqe, o->fd, &o->msg, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = BGID;
		break;
	case OP_CONNECT:
		io_uring_prep_connect(sqe, o->fd, (struct sockaddr *)&o->addr, o->alen);
		if (o->ts.tv_sec || o->ts.tv_nsec) {
			struct io_uring_sqe *lt;
			if (io_uring_sq_space_left(&l->ring) < 1) {
				/* Cannot link: undo by turning the SQE into a no-op. */
				io_uring_prep_nop(sqe);
				io_uring_sqe_set_data64(sqe, ud_make(K_IGNORE, 0, 0));
				return -EBUSY;
			}
			sqe->flags |= IOSQE_IO_LINK;
			io_uring_sqe_set_data64(sqe, ud_make(K_OP, o->gen, idx));
			lt = io_uring_get_sqe(&l->ring);
			io_uring_prep_link_timeout(lt, &o->ts, 0);
			io_uring_sqe_set_data64(lt, ud_make(K_IGNORE, 0, 0));
			return 0;
		}
		break;
	case OP_ACCEPT:
		io_uring_prep_multishot_accept(sqe, o->fd, NULL, NULL, SOCK_CLOEXEC);
		break;
	case OP_RECV:
		io_uring_prep_recv(sqe, o->fd, o->buf, o->len, 0);
		if (o->poll_first)
			sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
		break;
	case OP_SEND:
		io_uring_prep_send(sqe, o->fd, o->buf + o->done, o->len - o->done, MSG_NOSIGNAL);
		break;
	case OP_POLL:
		if (o->multishot)
			io_uring_prep_poll_multishot(sqe, o->fd, o->events);
		else
			io_uring_prep_poll_add(sqe, o->fd, o->events);
		break;
	default:
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, ud_make(K_IGNORE, 0, 0));
		return -EINVAL;
	}
	io_uring_sqe_set_data64(sqe, ud_make(K_OP, o->gen, idx));
	return 0;
}

static int op_start(struct loop *l, uint32_t idx, uint64_t *id)
{
	int r = op_submit(l, idx);
	if (r < 0) {
		op_release(l, idx);
		return r;
	}
	if (id)
		*id = ud_make(K_OP, l->ops[idx].gen, idx);
	return 0;
}

static void rx_recycle(struct loop *l, unsigned bid)
{
	if (bid >= l->nbufs)
		return;
	io_uring_buf_ring_add(l->br, l->rxmem + (size_t)bid * l->cfg.rx_buf_size,
	                      l->cfg.rx_buf_size, (unsigned short)bid,
	                      io_uring_buf_ring_mask(l->nbufs), 0);
	/* Not io_uring_buf_ring_cq_advance: sends, timers and streams share
	 * this CQ, so CQEs and buffers do not pair up one to one. */
	io_uring_buf_ring_advance(l->br, 1);
}

static void arm_wake(struct loop *l)
{
	struct io_uring_sqe *sqe = get_sqe(l);
	if (!sqe) {
		log_err("loop", "no SQE for the wake eventfd read");
		return;
	}
	io_uring_prep_read(sqe, l->efd, &l->efd_val, sizeof(l->efd_val), 0);
	io_uring_sqe_set_data64(sqe, ud_make(K_WAKE, 0, 0));
}

/*
 * Runs what other threads posted, in order. Taken in batches so fn may post
 * again (to this or another loop) without deadlocking on post_mu; only the
 * posts present on entry run (bounded work per wake). close: loop_drain or
 * loop_free, refuse new posts from now on.
 */
static void run_posts(struct loop *l, bool close)
{
	struct post batch[64];
	unsigned left;

	pthread_mutex_lock(&l->post_mu);
	if (close)
		l->post_closed = true;
	left = l->post_n;
	pthread_mutex_unlock(&l->post_mu);
	while (left) {
		unsigned n = 0;
		pthread_mutex_lock(&l->post_mu);
		while (n < left && n < 64 && l->post_n) {
			batch[n++] = l->posts[l->post_head];
			l->post_head = (l->post_head + 1) % LOOP_POST_MAX;
			l->post_n--;
		}
		pthread_mutex_unlock(&l->post_mu);
		if (n == 0)
			break;
		for (unsigned i = 0; i < n; i++)
			batch[i].fn(l, batch[i].arg);
		left -= n;
	}
}

int loop_post(struct loop *l, loop_post_fn fn, void *arg)
{
	uint64_t one = 1;
	int r = 0;

	pthread_mutex_lock(&l->post_mu);
	if (l->post_closed)
		r = -ESHUTDOWN;
	else if (l->post_n == LOOP_POST_MAX)
		r = -EAGAIN;
	else {
		l->posts[(l->post_head + l->post_n) % LOOP_POST_MAX] = (struct post){fn, arg};
		l->post_n++;
	}
	pthread_mutex_unlock(&l->post_mu);
	if (r == 0 && write(l->efd, &one, sizeof(one)) < 0)
		r = 0; /* the counter saturates only at 2^64-2: a wake is pending anyway */
	return r;
}

/* ---------------------------------------------------------------- new/free */

static unsigned pow2_at_least(unsigned v)
{
	unsigned p = 1;
	while (p < v && p < (1u << 15))
		p <<= 1;
	return p;
}

static int ring_init(struct loop *l)
{
	/* Preferred: one issuer, task work deferred to our own io_uring_enter
	 * (no IPIs); the ring starts disabled so the thread that calls
	 * loop_run becomes the issuer. Older kernels refuse with -EINVAL. */
	static const unsigned tries[] = {
	    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED,
	    IORING_SETUP_COOP_TASKRUN,
	    0,
	};
	int r = -EINVAL;
	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		struct io_uring_params p = {0};
		p.flags = tries[i] | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
		p.cq_entries = l->cfg.cq_entries;
		r = io_uring_queue_init_params(l->cfg.sq_entries, &l->ring, &p);
		if (r == 0) {
			l->setup_flags = p.flags;
			l->enabled = !(p.flags & IORING_SETUP_R_DISABLED);
			return 0;
		}
		if (r != -EINVAL)
			return r;
	}
	return r;
}

int loop_new(const struct loop_config *cfg, struct loop **out)
{
	struct loop *l = calloc(1, sizeof(*l));
	int r = -ENOMEM;
	if (!l)
		return -ENOMEM;
	if (cfg)
		l->cfg = *cfg;
	struct loop_config *c = &l->cfg;
	if (!c->sq_entries)
		c->sq_entries = 1024;
	if (!c->cq_entries)
		c->cq_entries = 8 * c->sq_entries;
	if (!c->rx_bufs)
		c->rx_bufs = 1024;
	if (!c->rx_buf_size)
		c->rx_buf_size = 2048;
	if (!c->tx_slots)
		c->tx_slots = 1024;
	if (!c->tx_slot_size)
		c->tx_slot_size = 4096;
	if (!c->max_ops)
		c->max_ops = 4096;
	if (!c->budget)
		c->budget = 256;
	if (!c->timer_budget)
		c->timer_budget = 1024;
	if (c->rx_buf_size < 512 || c->max_ops > (1u << 30) || c->tx_slots > (1u << 30)) {
		free(l);
		return -EINVAL;
	}
	l->nbufs = pow2_at_least(c->rx_bufs);
	l->efd = -1;
	pthread_mutex_init(&l->post_mu, NULL);
	l->br = MAP_FAILED;
	l->ring.ring_fd = -1;

	if ((r = timer_table_new(&l->timers)) < 0)
		goto fail;
	r = -ENOMEM;
	l->ops = calloc(c->max_ops, sizeof(*l->ops));
	l->rearm = calloc(c->max_ops, sizeof(*l->rearm));
	l->tx = calloc(c->tx_slots, sizeof(*l->tx));
	l->posts = calloc(LOOP_POST_MAX, sizeof(*l->posts));
	l->txmem = malloc((size_t)c->tx_slots * c->tx_slot_size);
	l->rxmem = malloc((size_t)l->nbufs * c->rx_buf_size);
	if (!l->ops || !l->rearm || !l->tx || !l->posts || !l->txmem || !l->rxmem)
		goto fail;
	for (uint32_t i = 0; i < c->max_ops; i++)
		l->ops[i].next = i + 1 < c->max_ops ? i + 1 : NO_IDX;
	l->op_free = 0;
	for (uint32_t i = 0; i < c->tx_slots; i++)
		l->tx[i].next = i + 1 < c->tx_slots ? i + 1 : NO_IDX;
	l->tx_free = 0;

	l->efd = eventfd(0, EFD_CLOEXEC);
	if (l->efd < 0) {
		r = -errno;
		goto fail;
	}
	if ((r = ring_init(l)) < 0) {
		l->ring.ring_fd = -1;
		goto fail;
	}

	l->br_len = (size_t)l->nbufs * sizeof(struct io_uring_buf);
	l->br = mmap(NULL, l->br_len, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (l->br == MAP_FAILED) {
		r = -errno;
		goto fail;
	}
	struct io_uring_buf_reg reg = {
	    .ring_addr = (uintptr_t)l->br, .ring_entries = l->nbufs, .bgid = BGID};
	if ((r = io_uring_register_buf_ring(&l->ring, &reg, 0)) < 0)
		goto fail;
	io_uring_buf_ring_init(l->br);
	for (unsigned i = 0; i < l->nbufs; i++)
		io_uring_buf_ring_add(l->br, l->rxmem + (size_t)i * c->rx_buf_size, c->rx_buf_size,
		                      (unsigned short)i, io_uring_buf_ring_mask(l->nbufs), (int)i);
	io_uring_buf_ring_advance(l->br, (int)l->nbufs);

	l->now_us = clock_now_us();
	arm_wake(l);
	*out = l;
	return 0;
fail:
	loop_free(l);
	return r;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	if (l->ring.ring_fd >= 0)
		io_uring_queue_exit(&l->ring); /* cancels everything in flight */
	l->ring.ring_fd = -1;
	if (l->ops) {
		for (uint32_t i = 0; i < l->cfg.max_ops; i++) {
			struct op *o = &l->ops[i];
			if (o->type == OP_FREE)
				continue;
			loop_op_fn fn = o->fn;
			void *ctx = o->ctx;
			o->type = OP_FREE;
			if (fn)
				fn(l, ctx, -ECANCELED, 0);
		}
	}
	if (l->posts)
		run_posts(l, true);
	for (unsigned fd = 0; fd < l->nfds; fd++) {
		struct fdent *fe = &l->fds[fd];
		if (!fe->closing)
			continue;
		loop_done_fn done = fe->done;
		void *ctx = fe->ctx;
		*fe = (struct fdent){0};
		close((int)fd);
		if (done)
			done(l, ctx);
	}
	if (l->br != MAP_FAILED && l->br)
		munmap(l->br, l->br_len);
	if (l->efd >= 0)
		close(l->efd);
	timer_table_free(l->timers);
	free(l->fds);
	free(l->ops);
	free(l->rearm);
	free(l->tx);
	free(l->posts);
	pthread_mutex_destroy(&l->post_mu);
	free(l->txmem);
	free(l->rxmem);
	free(l);
}

/* ---------------------------------------------------------------- accessors */

uint64_t loop_now(const struct loop *l)
{
	/* Between runs (set-up, tests driving the loop in steps) the cached turn time
	 * may be long gone: deadlines computed from it would fire early. */
	return l->running ? l->now_us / 1000u : clock_now_ms();
}

uint64_t loop_now_us(const struct loop *l)
{
	return l->running ? l->now_us : clock_now_us();
}

void loop_get_stats(const struct loop *l, struct loop_stats *out)
{
	*out = l->st;
}
int loop_setup_flags(const struct loop *l)
{
	return (int)l->setup_flags;
}

int loop_timer_arm(struct loop *l, struct timer *t, uint64_t deadline)
{
	return timer_arm(l->timers, t, deadline);
}

int loop_timer_arm_in(struct loop *l, struct timer *t, uint64_t delay_ms)
{
	return timer_arm(l->timers, t, l->now_us / 1000u + delay_ms);
}

void loop_timer_cancel(struct loop *l, struct timer *t)
{
	timer_cancel(l->timers, t);
}

/* ---------------------------------------------------------------- UDP */

int loop_udp_listen(struct loop *l, int fd, loop_dgram_fn fn, void *ctx)
{
	return loop_udp_listen_ex(l, fd, fn, NULL, ctx);
}

int loop_udp_listen_ex(struct loop *l, int fd, loop_dgram_fn fn, loop_op_fn efn, void *ctx)
{
	uint32_t idx;
	if (fd < 0 || !fn)
		return -EINVAL;
	int r = op_alloc(l, OP_UDP_RECV, fd, &idx);
	if (r < 0)
		return r;
	struct op *o = &l->ops[idx];
	o->dfn = fn;
	o->fn = efn; /* errors and the final callback; NULL for loop_udp_listen */
	o->ctx = ctx;
	o->multishot = true;
	/* Name area sized for IPv6; no control data: what the kernel reserves
	 * per buffer comes off the payload. */
	o->msg.msg_namelen = sizeof(struct sockaddr_in6);
	o->msg.msg_controllen = 0;
	return op_start(l, idx, NULL);
}

int loop_udp_listen_cmsg(struct loop *l, int fd, loop_dgram_fn fn, void *ctx)
{
	int dom = 0, one = 1, r;
	socklen_t dl = sizeof(dom);
	uint32_t idx;

	if (fd < 0 || !fn)
		return -EINVAL;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &dl) < 0)
		return -errno;
	if (dom == AF_INET6)
		r = setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof(one));
	else
		r = setsockopt(fd, IPPROTO_IP, IP_RECVTTL, &one, sizeof(one));
	if (r < 0)
		return -errno;
	r = op_alloc(l, OP_UDP_RECV, fd, &idx);
	if (r < 0)
		return r;
	struct op *o = &l->ops[idx];
	o->dfn = fn;
	o->ctx = ctx;
	o->multishot = true;
	/* Only msg_namelen/msg_controllen matter for a multishot recvmsg: the
	 * kernel lays name and control data out inside each buffer, the control
	 * area right after the name area. Rounded up so that area, and the
	 * struct cmsghdr read from it, are aligned (16 + 28 is not: UBSan). */
	o->msg.msg_namelen = CMSG_ALIGN(sizeof(struct sockaddr_in6));
	o->msg.msg_controllen = LOOP_CMSG_SPACE;
	return op_start(l, idx, NULL);
}

/* The TTL or hop limit among the datagram's control messages, or -1. */
static int dgram_ttl(struct io_uring_recvmsg_out *out, struct msghdr *msg)
{
	for (struct cmsghdr *c = io_uring_recvmsg_cmsg_firsthdr(out, msg); c;
	     c = io_uring_recvmsg_cmsg_nexthdr(out, msg, c)) {
		int v;
		if (c->cmsg_len < CMSG_LEN(sizeof(v)))
			continue;
		if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) ||
		    (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT)) {
			memcpy(&v, CMSG_DATA(c), sizeof(v));
			return v;
		}
	}
	return -1;
}

int loop_udp_send(struct loop *l, int fd, const struct sockaddr *peer, socklen_t plen,
                  const void *data, size_t len)
{
	if (len > l->cfg.tx_slot_size)
		return -EMSGSIZE;
	if (plen > sizeof(struct sockaddr_storage) || (!peer && plen))
		return -EINVAL;
	if (l->tx_free == NO_IDX) {
		l->st.udp_tx_noslot++;
		return -ENOBUFS;
	}
	struct fdent *fe = fd_ent(l, fd);
	if (!fe)
		return fd < 0 ? -EBADF : -ENOMEM;
	if (fe->closing)
		return -EBADF;
	struct io_uring_sqe *sqe = get_sqe(l);
	if (!sqe)
		return -EBUSY;
	uint32_t i = l->tx_free;
	struct tx_slot *s = &l->tx[i];
	l->tx_free = s->next;
	s->gen = (s->gen + 1) & GEN_MASK;
	s->busy = true;
	s->fd = fd;
	fe->n++;
	uint8_t *buf = l->txmem + (size_t)i * l->cfg.tx_slot_size;
	memcpy(buf, data, len);
	if (plen)
		memcpy(&s->peer, peer, plen);
	s->iov.iov_base = buf;
	s->iov.iov_len = len;
	memset(&s->msg, 0, sizeof(s->msg));
	s->msg.msg_name = plen ? &s->peer : NULL;
	s->msg.msg_namelen = plen;
	s->msg.msg_iov = &s->iov;
	s->msg.msg_iovlen = 1;
	io_uring_prep_sendmsg(sqe, fd, &s->msg, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud_make(K_TX, s->gen, i));
	return 0;
}

static void on_tx(struct loop *l, uint32_t gen, uint32_t idx, const struct io_uring_cqe *cqe)
{
	if (idx >= l->cfg.tx_slots || !l->tx[idx].busy || l->tx[idx].gen != gen) {
		l->st.stale++;
		return;
	}
	struct tx_slot *s = &l->tx[idx];
	if (cqe->res < 0)
		l->st.udp_tx_err++;
	else
		l->st.udp_tx++;
	s->busy = false;
	s->next = l->tx_free;
	l->tx_free = idx;
	l->fds[s->fd].n--; /* the table never shrinks: the entry is there */
	close_if_idle(l, s->fd);
}

/*
 * Errors the kernel queues on a UDP socket from ICMP (RFC 1122 §4.1.3.3;
 * Linux icmp_err_convert and icmpv6_err_convert): they end one receive, not
 * the socket.
 */
static bool udp_soft_error(int res)
{
	switch (-res) {
	case ECONNREFUSED:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case EHOSTDOWN:
	case ENONET:
	case ENOPROTOOPT:
	case EPROTO:
	case EMSGSIZE:
	case EOPNOTSUPP:
	case EACCES:
		return true;
	default:
		return false;
	}
}

static void on_udp_recv(struct loop *l, uint32_t idx, const struct io_uring_cqe *cqe)
{
	struct op *o = &l->ops[idx];
	int res = cqe->res;
	if (cqe->flags & IORING_CQE_F_BUFFER) {
		unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		if (res > 0 && bid < l->nbufs) {
			uint8_t *b = l->rxmem + (size_t)bid * l->cfg.rx_buf_size;
			struct io_uring_recvmsg_out *out =
			    io_uring_recvmsg_validate(b, res, &o->msg);
			if (!out || (out->flags & MSG_TRUNC)) {
				l->st.udp_rx_trunc++; /* larger than a buffer: drop */
			} else {
				struct loop_dgram d = {
				    .payload = io_uring_recvmsg_payload(out, &o->msg),
				    .len = io_uring_recvmsg_payload_length(out, res, &o->msg),
				    .peer = io_uring_recvmsg_name(out),
				    .peerlen = out->namelen < o->msg.msg_namelen
				                   ? out->namelen
				                   : o->msg.msg_namelen,
				    .fd = o->fd,
				    .ttl = o->msg.msg_controllen ? dgram_ttl(out, &o->msg) : -1,
				};
				l->st.udp_rx++;
				o->dfn(l, o->ctx, &d);
			}
		}
		rx_recycle(l, bid);
	}
	if (cqe->flags & IORING_CQE_F_MORE)
		return;
	/* The multishot request ended: out of buffers (-ENOBUFS), CQ overflow
	 * (res >= 0) or an error. Re-arm at the end of the turn, after this
	 * batch has handed its buffers back. */
	if (op_cancelled(l, o)) {
		op_final(l, idx, res < 0 ? res : -ECANCELED);
		return;
	}
	if (res == -ENOBUFS)
		l->st.udp_rx_nobufs++;
	if (res >= 0 || res == -ENOBUFS || res == -EINTR || res == -ENOMEM || res == -EAGAIN) {
		o->rearm = true;
		l->rearm[l->nrearm++] = idx;
		return;
	}
	if (o->fn && udp_soft_error(res)) {
		/* A connected socket's owner hears of it; the socket stays usable. */
		o->rearm = true;
		l->rearm[l->nrearm++] = idx;
		o->fn(l, o->ctx, res, LOOP_F_MORE);
		return;
	}
	log_err("loop", "UDP receive on fd %d stopped: %s", o->fd, strerror(-res));
	op_final(l, idx, res);
}

static void flush_rearms(struct loop *l)
{
	unsigned n = l->nrearm;
	l->nrearm = 0;
	for (unsigned i = 0; i < n; i++) {
		uint32_t idx = l->rearm[i];
		struct op *o = &l->ops[idx];
		o->rearm = false;
		if (op_cancelled(l, o)) {
			op_final(l, idx, -ECANCELED);
			continue;
		}
		if (op_submit(l, idx) < 0) {
			o->rearm = true; /* SQ full: try again next turn */
			l->rearm[l->nrearm++] = idx;
			continue;
		}
		l->st.udp_rearms++;
	}
}

/* ---------------------------------------------------------------- stream ops */

int loop_connect(struct loop *l, int fd, const struct sockaddr *sa, socklen_t salen,
                 unsigned timeout_ms, loop_op_fn fn, void *ctx, uint64_t *id)
{
	uint32_t idx;
	if (!sa || salen > sizeof(struct sockaddr_storage) || !fn)
		return -EINVAL;
	int r = op_alloc(l, OP_CONNECT, fd, &idx);
	if (r < 0)
		return r;
	struct op *o = &l->ops[idx];
	o->fn = fn;
	o->ctx = ctx;
	memcpy(&o->addr, sa, salen);
	o->alen = salen;
	o->ts.tv_sec = timeout_ms / 1000;
	o->ts.tv_nsec = (long long)(timeout_ms % 1000) * 1000000;
	return op_start(l, idx, id);
}

int loop_accept(struct loop *l, int fd, loop_op_fn fn, void *ctx, uint64_t *id)
{
	uint32_t idx;
	if (!fn)
		return -EINVAL;
	int r = op_alloc(l, OP_ACCEPT, fd, &idx);
	if (r < 0)
		return r;
	l->ops[idx].fn = fn;
	l->ops[idx].ctx = ctx;
	l->ops[idx].multishot = true;
	return op_start(l, idx, id);
}

int loop_recv_opt(struct loop *l, int fd, void *buf, size_t len, unsigned opts, loop_op_fn fn,
                  void *ctx, uint64_t *id)
{
	uint32_t idx;
	if (!fn || (!buf && len) || len > INT32_MAX || (opts & ~LOOP_RECV_WAIT))
		return -EINVAL;
	int r = op_alloc(l, OP_RECV, fd, &idx);
	if (r < 0)
		return r;
	l->ops[idx].fn = fn;
	l->ops[idx].ctx = ctx;
	l->ops[idx].buf = buf;
	l->ops[idx].len = len;
	l->ops[idx].poll_first = opts & LOOP_RECV_WAIT;
	return op_start(l, idx, id);
}

int loop_recv(struct loop *l, int fd, void *buf, size_t len, loop_op_fn fn, void *ctx, uint64_t *id)
{
	return loop_recv_opt(l, fd, buf, len, 0, fn, ctx, id);
}

int loop_send(struct loop *l, int fd, const void *buf, size_t len, loop_op_fn fn, void *ctx,
              uint64_t *id)
{
	uint32_t idx;
	if (!fn || !buf || len == 0 || len > INT32_MAX)
		return -EINVAL;
	int r = op_alloc(l, OP_SEND, fd, &idx);
	if (r < 0)
		return r;
	l->ops[idx].fn = fn;
	l->ops[idx].ctx = ctx;
	l->ops[idx].buf = (uint8_t *)buf; /* only read by the kernel */
	l->ops[idx].len = len;
	return op_start(l, idx, id);
}

int loop_poll(struct loop *l, int fd, unsigned events, int multishot, loop_op_fn fn, void *ctx,
              uint64_t *id)
{
	uint32_t idx;
	if (!fn)
		return -EINVAL;
	int r = op_alloc(l, OP_POLL, fd, &idx);
	if (r < 0)
		return r;
	l->ops[idx].fn = fn;
	l->ops[idx].ctx = ctx;
	l->ops[idx].events = events;
	l->ops[idx].multishot = multishot != 0;
	return op_start(l, idx, id);
}

static struct op *op_lookup(struct loop *l, uint64_t id, uint32_t *idx)
{
	uint32_t slot = (uint32_t)id, gen = (uint32_t)(id >> 32) & GEN_MASK;
	if ((id >> 56) != K_OP || slot >= l->cfg.max_ops)
		return NULL;
	struct op *o = &l->ops[slot];
	if (o->type == OP_FREE || o->gen != gen)
		return NULL;
	*idx = slot;
	return o;
}

int loop_cancel(struct loop *l, uint64_t id)
{
	uint32_t idx;
	struct op *o = op_lookup(l, id, &idx);
	if (!o)
		return -ENOENT;
	o->cancelled = true;
	if (o->rearm)
		return 0; /* nothing in flight; flush_rearms finishes it */
	struct io_uring_sqe *sqe = get_sqe(l);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_cancel64(sqe, id, 0);
	io_uring_sqe_set_data64(sqe, ud_make(K_IGNORE, 0, 0));
	return 0;
}

int loop_close_fd(struct loop *l, int fd, loop_done_fn done, void *ctx)
{
	if (fd < 0)
		return -EBADF;
	struct fdent *fe = fd_ent(l, fd);
	if (!fe)
		return -ENOMEM;
	if (fe->closing)
		return -EALREADY;
	if (fe->n == 0) {
		close(fd);
		if (done)
			done(l, ctx);
		return 0;
	}
	/* Every op on fd now reads as cancelled (op_cancelled): no re-arm. */
	fe->closing = true;
	fe->done = done;
	fe->ctx = ctx;
	struct io_uring_sqe *sqe = get_sqe(l);
	if (sqe) {
		io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
		io_uring_sqe_set_data64(sqe, ud_make(K_IGNORE, 0, 0));
	}
	return 0;
}

static void on_op(struct loop *l, uint32_t gen, uint32_t idx, const struct io_uring_cqe *cqe)
{
	struct op *o = idx < l->cfg.max_ops ? &l->ops[idx] : NULL;
	if (!o || o->type == OP_FREE || o->gen != gen) {
		l->st.stale++;
		if (cqe->flags & IORING_CQE_F_BUFFER)
			rx_recycle(l, cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		return;
	}
	int res = cqe->res;
	bool more = cqe->flags & IORING_CQE_F_MORE;
	switch (o->type) {
	case OP_UDP_RECV:
		on_udp_recv(l, idx, cqe);
		return;
	case OP_CONNECT:
		/* The linked timeout cancels the connect: report that as a timeout
		 * unless the owner cancelled it. */
		if (res == -ECANCELED && !op_cancelled(l, o))
			res = -ETIMEDOUT;
		op_final(l, idx, res);
		return;
	case OP_SEND:
		if (res > 0 && o->done + (size_t)res < o->len && !op_cancelled(l, o)) {
			o->done += (size_t)res; /* short send: push the rest */
			int r = op_submit(l, idx);
			if (r < 0)
				op_final(l, idx, r);
			return;
		}
		if (res == 0)
			res = -EPIPE;
		op_final(l, idx, res < 0 ? res : (int)o->len);
		return;
	case OP_RECV:
		/* Kernel >= 5.19 reports what is left after the read; on older ones the
		 * flag is never set, so every read looks draining: LOOP_RECV_WAIT then
		 * only costs a poll that fires at once. */
		op_final_flags(
		    l, idx, res,
		    res > 0 && !(cqe->flags & IORING_CQE_F_SOCK_NONEMPTY) ? LOOP_F_DRAINED : 0);
		return;
	case OP_ACCEPT:
	case OP_POLL:
		if (more) {
			o->fn(l, o->ctx, res, LOOP_F_MORE);
			return;
		}
		op_final(l, idx, res);
		return;
	default:
		l->st.stale++;
		return;
	}
}

/* ---------------------------------------------------------------- the turn */

static void dispatch(struct loop *l, const struct io_uring_cqe *cqe)
{
	uint64_t ud = cqe->user_data;
	uint32_t slot = (uint32_t)ud, gen = (uint32_t)(ud >> 32) & GEN_MASK;
	l->st.completions++;
	switch ((enum kind)(ud >> 56)) {
	case K_OP:
		on_op(l, gen, slot, cqe);
		break;
	case K_TX:
		on_tx(l, gen, slot, cqe);
		break;
	case K_TIMEOUT:
		if (gen == l->to_gen)
			l->to_armed = false;
		break;
	case K_WAKE:
		if (!l->draining)
			arm_wake(l);
		run_posts(l, false);
		break;
	case K_IGNORE:
	default:
		if (cqe->flags & IORING_CQE_F_BUFFER)
			rx_recycle(l, cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		break;
	}
}

static unsigned process_cqes(struct loop *l, unsigned budget)
{
	struct io_uring_cqe *cqes[CQE_BATCH];
	unsigned total = 0;
	while (total < budget && !atomic_load_explicit(&l->stop, memory_order_relaxed)) {
		unsigned want = budget - total < CQE_BATCH ? budget - total : CQE_BATCH;
		unsigned n = io_uring_peek_batch_cqe(&l->ring, cqes, want);
		if (n == 0)
			break;
		for (unsigned i = 0; i < n; i++)
			dispatch(l, cqes[i]);
		io_uring_cq_advance(&l->ring, n);
		total += n;
	}
	return total;
}

/* One kernel timeout for the earliest deadline. Moved only when a timer
 * earlier than the armed one appears; a later earliest (after a cancel)
 * just costs one spurious wake-up. */
static void arm_timeout(struct loop *l)
{
	uint64_t next = timer_next_deadline(l->timers);
	if (next == TIMER_NONE || (l->to_armed && l->to_deadline <= next))
		return;
	struct io_uring_sqe *sqe = get_sqe(l);
	if (!sqe)
		return;
	l->to_ts.tv_sec = (long long)(next / 1000);
	l->to_ts.tv_nsec = (long long)(next % 1000) * 1000000;
	if (l->to_armed) {
		io_uring_prep_timeout_update(sqe, &l->to_ts, ud_make(K_TIMEOUT, l->to_gen, 0),
		                             IORING_TIMEOUT_ABS);
		io_uring_sqe_set_data64(sqe, ud_make(K_IGNORE, 0, 0));
	} else {
		l->to_gen = (l->to_gen + 1) & GEN_MASK;
		/* Absolute CLOCK_MONOTONIC: the clock.h time base. */
		io_uring_prep_timeout(sqe, &l->to_ts, 0, IORING_TIMEOUT_ABS);
		io_uring_sqe_set_data64(sqe, ud_make(K_TIMEOUT, l->to_gen, 0));
	}
	l->to_armed = true;
	l->to_deadline = next;
}

int loop_run(struct loop *l)
{
	if (!l->enabled) {
		/* liburing 2.3 declares io_uring_enable_rings() but its .so does
		 * not export it: issue the register call ourselves. This makes
		 * the calling thread the ring's single issuer. */
		long r = syscall(__NR_io_uring_register, l->ring.ring_fd,
		                 IORING_REGISTER_ENABLE_RINGS, NULL, 0);
		if (r < 0)
			return -errno;
		l->enabled = true;
	}
	l->running = true;
	int ret = 0;
	uint64_t slept_at = 0; /* the clock before the last wait; 0: the last turn did not wait */
	while (!atomic_load(&l->stop)) {
		l->st.turns++;
		/* One clock read per turn: it also ends the wait before it (a
		 * vDSO clock read is ~30 ns warm and several times that cold,
		 * which is what it is after a sleep). */
		l->now_us = clock_now_us();
		uint64_t now = l->now_us / 1000u;
		if (slept_at) {
			/* Time asleep, for the busy ratio that health reads. */
			l->st.wait_us += l->now_us > slept_at ? l->now_us - slept_at : 0;
			slept_at = 0;
		}
		/* Timers first, every turn (STYLE.md §8). */
		unsigned tr = timer_run_expired(l->timers, now, l->cfg.timer_budget);
		l->st.timers_run += tr;
		unsigned n = process_cqes(l, l->cfg.budget);
		flush_rearms(l);
		arm_timeout(l);
		bool busy = tr == l->cfg.timer_budget || n == l->cfg.budget || l->nrearm ||
		            io_uring_cq_ready(&l->ring) || timer_next_deadline(l->timers) <= now;
		int r;
		if (busy) {
			r = io_uring_submit_and_get_events(&l->ring);
		} else {
			slept_at = clock_now_us();
			r = io_uring_submit_and_wait(&l->ring, 1);
		}
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY && r != -ETIME) {
			log_err("loop", "io_uring_enter: %s", strerror(-r));
			ret = r;
			break;
		}
	}
	/* Hand the SQEs queued by the last callbacks to the kernel. */
	io_uring_submit(&l->ring);
	atomic_store(&l->stop, 0);
	l->running = false;
	return ret;
}

/* Requests the kernel still holds: live ops, busy send slots, the wake read. */
static unsigned in_flight(const struct loop *l)
{
	unsigned n = 0;
	for (uint32_t i = 0; i < l->cfg.max_ops; i++)
		n += l->ops[i].type != OP_FREE;
	for (uint32_t i = 0; i < l->cfg.tx_slots; i++)
		n += l->tx[i].busy;
	return n + (l->to_armed ? 1u : 0u);
}

int loop_drain(struct loop *l, unsigned timeout_ms)
{
	uint64_t end = clock_now_ms() + timeout_ms;
	struct io_uring_cqe *cqe;

	l->draining = l->enabled;
	run_posts(l, true); /* operations they start fail with -ESHUTDOWN */
	if (!l->enabled)
		return 0; /* never ran: nothing was submitted to the kernel */
	for (uint32_t i = 0; i < l->cfg.max_ops; i++)
		if (l->ops[i].type != OP_FREE)
			l->ops[i].cancelled = true; /* final callbacks, no re-arm */
	l->nrearm = 0;
	for (;;) {
		/* Again each round: callbacks may have started cancels or closes. */
		struct io_uring_sqe *sqe = get_sqe(l);
		if (sqe) {
			io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
			io_uring_sqe_set_data64(sqe, ud_make(K_IGNORE, 0, 0));
		}
		struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000000};
		io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, &ts, NULL);
		l->now_us = clock_now_us();
		process_cqes(l, UINT_MAX);
		/* The cancel's own CQE (and the wake read's) are K_IGNORE/K_WAKE. */
		if (in_flight(l) == 0)
			return 0;
		if (l->now_us / 1000u >= end) {
			for (uint32_t i = 0; i < l->cfg.max_ops; i++)
				if (l->ops[i].type != OP_FREE)
					log_debug("loop", "drain: op %u type %u fd %d still held",
					          i, l->ops[i].type, l->ops[i].fd);
			return -ETIMEDOUT;
		}
	}
}

void loop_stop(struct loop *l)
{
	uint64_t one = 1;
	atomic_store(&l->stop, 1);
	/* write(2) is async-signal-safe; the loop always has a read pending. */
	ssize_t w = write(l->efd, &one, sizeof(one));
	(void)w;
}
