/*
 * reflector.c: the kernel-path floor for bench/run.sh.
 *
 * A minimal UDP DNS responder that does the least work any server must do per
 * query: receive the datagram, turn it into a valid answer, send it back. The
 * project target "cache hit within 1.15x of a bare echo in CPU per query" is
 * measured against this program, so it must stay minimal: no cache, no
 * allocation, no logging on the hot path.
 *
 * Answer: the query with QR (and RA) set and one A record 127.0.0.1 TTL 300
 * appended after the question (RFC 1035 section 4.1), the name given as a
 * compression pointer to offset 12 (section 4.1.4). An EDNS OPT record in the
 * additional section is copied after the answer, so dnsperf's -D/-e queries
 * stay valid. Queries it cannot answer that way (QDCOUNT != 1, answer or
 * authority records present, an unparsable question) come back as FORMERR
 * header-only (RFC 1035 section 4.1.1); with -e every query is only echoed
 * with QR set.
 *
 * Three kernel paths:
 *   default  recvmmsg/sendmmsg in batches of up to BATCH datagrams;
 *   -u       io_uring: one multishot recvmsg on a provided-buffer ring and one
 *            sendmsg per datagram, DEFER_TASKRUN + SINGLE_ISSUER when the
 *            kernel has them: the same shape as anycached's UDP path;
 *   -m       io_uring receive as -u, the answers of one turn sent together
 *            by one sendmmsg (what separates -u from the default: the send
 *            side or the receive side);
 *   -p       io_uring only for readiness (one multishot poll), then
 *            recvmmsg/sendmmsg as the default: whether an io_uring-driven
 *            server could keep the recvmmsg path's cost.
 *
 * SIGTERM/SIGINT stop it; it then prints its counters on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/netaddr.h"
#include "core/wire.h"

#define BATCH         64   /* datagrams per recvmmsg/sendmmsg call */
#define PKT_MAX       2048 /* DNS over UDP: queries larger than this are dropped */
#define RING_BUFS     256  /* provided buffers (power of two) */
#define SEND_SLOTS    256  /* sends in flight on the io_uring path */
#define DNS_HDR       12
#define ANSWER_RR_LEN 16 /* ptr(2) type(2) class(2) ttl(4) rdlen(2) rdata(4) */

enum { UD_RECV = 1ull << 32, UD_SEND = 2ull << 32 };

static volatile sig_atomic_t stopping;
static bool echo_only, send_mmsg, poll_mmsg;
static unsigned long long n_recv, n_sent, n_drop;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

/*
 * Builds the answer to query q (qlen bytes) into out (cap bytes).
 * Returns the answer length, or -EBADMSG when the query is too short to carry
 * a header (no answer is possible: drop it).
 */
static int build_answer(const uint8_t *q, size_t qlen, uint8_t *out, size_t cap)
{
	struct wire w = wire_init(q, qlen);
	struct wbuf b = wbuf_init(out, cap);
	uint16_t id, flags, qd, an, ns, ar;
	size_t qend;

	id = wire_u16(&w);
	flags = wire_u16(&w);
	qd = wire_u16(&w);
	an = wire_u16(&w);
	ns = wire_u16(&w);
	ar = wire_u16(&w);
	if (w.err)
		return -EBADMSG;
	if (echo_only) {
		wbuf_bytes(&b, q, qlen);
		wbuf_put_u8_at(&b, 2, (uint8_t)(q[2] | 0x80));
		return wbuf_result(&b);
	}
	if (qd != 1 || an != 0 || ns != 0 || (flags & 0x7800) != 0)
		goto formerr;
	/* Skip QNAME: uncompressed labels only in a question (a pointer here is refused). */
	for (unsigned labels = 0;; labels++) {
		uint8_t l = wire_u8(&w);
		if (w.err || l > 63 || labels > 127)
			goto formerr;
		if (l == 0)
			break;
		wire_skip(&w, l);
	}
	wire_skip(&w, 4); /* QTYPE, QCLASS */
	if (w.err)
		goto formerr;
	qend = w.off;

	wbuf_bytes(&b, q, qend);
	wbuf_put_u8_at(&b, 2, (uint8_t)((flags >> 8) | 0x80)); /* QR, keep opcode/RD */
	wbuf_put_u8_at(&b, 3, 0x80);                           /* RA, RCODE 0 */
	wbuf_put_u16_at(&b, 6, 1);                             /* ANCOUNT */
	wbuf_u16(&b, 0xc000 | DNS_HDR);
	wbuf_u16(&b, 1); /* A */
	wbuf_u16(&b, 1); /* IN */
	wbuf_u32(&b, 300);
	wbuf_u16(&b, 4);
	wbuf_u32(&b, 0x7f000001);
	/* The additional section (an OPT record) follows unchanged; ARCOUNT stays. */
	wbuf_bytes(&b, q + qend, qlen - qend);
	(void)ar;
	return wbuf_result(&b);

formerr:
	b = wbuf_init(out, cap);
	wbuf_u16(&b, id);
	wbuf_u16(&b, (uint16_t)((flags & 0x7900) | 0x8000 | 1)); /* QR, opcode, RD, FORMERR */
	wbuf_u32(&b, 0);
	wbuf_u32(&b, 0);
	return wbuf_result(&b);
}

/* ---- recvmmsg/sendmmsg ---- */

static uint8_t m_in[BATCH][PKT_MAX], m_out[BATCH][PKT_MAX + ANSWER_RR_LEN];
static struct sockaddr_storage m_peers[BATCH];
static struct mmsghdr m_rmsg[BATCH], m_smsg[BATCH];
static struct iovec m_riov[BATCH], m_siov[BATCH];

static void mmsg_init(void)
{
	for (unsigned i = 0; i < BATCH; i++) {
		m_riov[i] = (struct iovec){.iov_base = m_in[i], .iov_len = PKT_MAX};
		m_siov[i].iov_base = m_out[i];
		m_rmsg[i].msg_hdr.msg_iov = &m_riov[i];
		m_rmsg[i].msg_hdr.msg_iovlen = 1;
		m_smsg[i].msg_hdr.msg_iov = &m_siov[i];
		m_smsg[i].msg_hdr.msg_iovlen = 1;
	}
}

/* One recvmmsg (flags: MSG_WAITFORONE or MSG_DONTWAIT) and the sendmmsg of its
 * answers. Returns the datagrams received, or -errno. */
static int mmsg_batch(int fd, int flags)
{
	for (unsigned i = 0; i < BATCH; i++) {
		m_rmsg[i].msg_hdr.msg_name = &m_peers[i];
		m_rmsg[i].msg_hdr.msg_namelen = sizeof(m_peers[i]);
	}
	int n = recvmmsg(fd, m_rmsg, BATCH, flags, NULL);
	if (n < 0)
		return -errno;
	unsigned k = 0;
	for (int i = 0; i < n; i++) {
		n_recv++;
		if (m_rmsg[i].msg_hdr.msg_flags & MSG_TRUNC) {
			n_drop++;
			continue;
		}
		int len = build_answer(m_in[i], m_rmsg[i].msg_len, m_out[k], sizeof(m_out[k]));
		if (len < 0) {
			n_drop++;
			continue;
		}
		m_siov[k].iov_base = m_out[k];
		m_siov[k].iov_len = (size_t)len;
		m_smsg[k].msg_hdr.msg_name = &m_peers[i];
		m_smsg[k].msg_hdr.msg_namelen = m_rmsg[i].msg_hdr.msg_namelen;
		k++;
	}
	for (unsigned done = 0; done < k;) {
		int s = sendmmsg(fd, m_smsg + done, k - done, 0);
		if (s < 0) {
			if (errno == EINTR)
				continue;
			n_drop += k - done; /* ENOBUFS and the like: count, carry on */
			break;
		}
		done += (unsigned)s;
		n_sent += (unsigned)s;
	}
	return n;
}

static int run_mmsg(int fd)
{
	mmsg_init();
	while (!stopping) {
		int n = mmsg_batch(fd, MSG_WAITFORONE);
		if (n < 0 && n != -EINTR)
			return n;
	}
	return 0;
}

/* ---- -p: io_uring multishot poll for readiness, recvmmsg/sendmmsg to serve ---- */

static int run_poll(int fd)
{
	struct io_uring_params p = {0};
	struct io_uring ring;
	int r;

	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL;
	if ((r = io_uring_queue_init_params(64, &ring, &p)) < 0)
		return r;
	mmsg_init();
	bool armed = false;
	while (!stopping) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;

		if (!armed) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			io_uring_prep_poll_multishot(sqe, fd, POLLIN);
			io_uring_sqe_set_data64(sqe, UD_RECV);
			armed = true;
		}
		r = io_uring_submit_and_wait(&ring, 1);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY)
			return r;
		bool ready = false;
		io_uring_for_each_cqe(&ring, head, cqe)
		{
			seen++;
			ready = true;
			if (!(cqe->flags & IORING_CQE_F_MORE))
				armed = false;
		}
		io_uring_cq_advance(&ring, seen);
		/* Drain: a full batch means more may wait. */
		while (ready && !stopping) {
			int n = mmsg_batch(fd, MSG_DONTWAIT);
			if (n < BATCH)
				break;
		}
	}
	io_uring_queue_exit(&ring);
	return 0;
}

/* ---- io_uring: multishot recvmsg + one sendmsg per datagram ---- */

struct send_slot {
	struct msghdr msg;
	struct iovec iov;
	struct sockaddr_storage peer;
	uint8_t buf[PKT_MAX + ANSWER_RR_LEN];
};

static struct send_slot slots[SEND_SLOTS];
static unsigned free_slots[SEND_SLOTS], n_free;
/* -m: the turn's answers, sent by one sendmmsg at the end of the turn. */
static struct mmsghdr turn_msgs[SEND_SLOTS];
static unsigned turn_slot[SEND_SLOTS], n_turn;

static void flush_turn(int fd)
{
	unsigned done = 0;
	while (done < n_turn) {
		int k = sendmmsg(fd, turn_msgs + done, n_turn - done, 0);
		if (k <= 0) {
			if (k < 0 && errno == EINTR)
				continue;
			n_drop += n_turn - done; /* a full send buffer: lost, as for -u */
			break;
		}
		n_sent += (unsigned)k;
		done += (unsigned)k;
	}
	for (unsigned i = 0; i < n_turn; i++)
		free_slots[n_free++] = turn_slot[i];
	n_turn = 0;
}

static void arm_recv(struct io_uring *ring, int fd, struct msghdr *tmpl)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	if (!sqe) {
		io_uring_submit(ring);
		sqe = io_uring_get_sqe(ring);
	}
	io_uring_prep_recvmsg_multishot(sqe, fd, tmpl, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = 0;
	io_uring_sqe_set_data64(sqe, UD_RECV);
}

static int run_uring(int fd)
{
	struct io_uring_params p = {0};
	struct io_uring ring;
	struct io_uring_buf_ring *br;
	struct io_uring_buf_reg reg = {0};
	struct msghdr tmpl = {0};
	uint8_t *bufs;
	size_t br_size = RING_BUFS * sizeof(struct io_uring_buf);
	int r;

	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
	          IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
	p.cq_entries = 4096;
	r = io_uring_queue_init_params(512, &ring, &p);
	if (r == -EINVAL) {
		/* Older kernels: no DEFER_TASKRUN; COOP_TASKRUN is the next best thing. */
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CQSIZE;
		p.cq_entries = 4096;
		r = io_uring_queue_init_params(512, &ring, &p);
	}
	if (r < 0)
		return r;

	/* liburing 2.3 has no io_uring_setup_buf_ring(): map and register it ourselves. */
	br = mmap(NULL, br_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	bufs = malloc((size_t)RING_BUFS * PKT_MAX);
	if (br == MAP_FAILED || !bufs)
		return -ENOMEM;
	reg.ring_addr = (uintptr_t)br;
	reg.ring_entries = RING_BUFS;
	reg.bgid = 0;
	r = io_uring_register_buf_ring(&ring, &reg, 0);
	if (r < 0)
		return r;
	io_uring_buf_ring_init(br);
	for (unsigned i = 0; i < RING_BUFS; i++)
		io_uring_buf_ring_add(br, bufs + (size_t)i * PKT_MAX, PKT_MAX, (unsigned short)i,
		                      io_uring_buf_ring_mask(RING_BUFS), (int)i);
	io_uring_buf_ring_advance(br, RING_BUFS);

	for (unsigned i = 0; i < SEND_SLOTS; i++) {
		struct send_slot *s = &slots[i];
		s->iov.iov_base = s->buf;
		s->msg.msg_iov = &s->iov;
		s->msg.msg_iovlen = 1;
		s->msg.msg_name = &s->peer;
		free_slots[n_free++] = i;
	}
	tmpl.msg_namelen = sizeof(struct sockaddr_storage);
	arm_recv(&ring, fd, &tmpl);

	while (!stopping) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0, returned = 0;

		r = io_uring_submit_and_wait(&ring, 1);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY)
			return r;
		io_uring_for_each_cqe(&ring, head, cqe)
		{
			seen++;
			uint64_t ud = cqe->user_data;
			if (ud & UD_SEND) {
				free_slots[n_free++] = (unsigned)(ud & 0xffffffffu);
				if (cqe->res >= 0)
					n_sent++;
				else
					n_drop++;
				continue;
			}
			/* Multishot recv: re-arm whenever the kernel stopped it (PLATFORM.md). */
			bool more = cqe->flags & IORING_CQE_F_MORE;
			if (cqe->res >= 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
				unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
				uint8_t *buf = bufs + (size_t)bid * PKT_MAX;
				struct io_uring_recvmsg_out *o =
				    io_uring_recvmsg_validate(buf, cqe->res, &tmpl);
				n_recv++;
				if (o && !(o->flags & MSG_TRUNC) && n_free > 0) {
					unsigned plen =
					    io_uring_recvmsg_payload_length(o, cqe->res, &tmpl);
					const uint8_t *pl = io_uring_recvmsg_payload(o, &tmpl);
					unsigned si = free_slots[n_free - 1];
					struct send_slot *s = &slots[si];
					int len = build_answer(pl, plen, s->buf, sizeof(s->buf));
					socklen_t nl = o->namelen;
					if (len >= 0 && nl <= sizeof(s->peer)) {
						memcpy(&s->peer, io_uring_recvmsg_name(o), nl);
						s->msg.msg_namelen = nl;
						s->iov.iov_len = (size_t)len;
						if (send_mmsg) {
							turn_msgs[n_turn].msg_hdr = s->msg;
							turn_slot[n_turn++] = si;
							n_free--;
							goto recycle;
						}
						struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
						if (!sqe) {
							io_uring_submit(&ring);
							sqe = io_uring_get_sqe(&ring);
						}
						io_uring_prep_sendmsg(sqe, fd, &s->msg,
						                      MSG_NOSIGNAL);
						io_uring_sqe_set_data64(sqe, UD_SEND | si);
						n_free--;
					} else {
						n_drop++;
					}
				} else {
					n_drop++;
				}
			recycle:
				io_uring_buf_ring_add(br, buf, PKT_MAX, (unsigned short)bid,
				                      io_uring_buf_ring_mask(RING_BUFS),
				                      (int)returned);
				returned++;
			}
			if (!more)
				arm_recv(&ring, fd, &tmpl);
		}
		if (n_turn)
			flush_turn(fd);
		/* Buffers and CQEs are advanced separately: sends share the CQ (PLATFORM.md). */
		if (returned)
			io_uring_buf_ring_advance(br, (int)returned);
		io_uring_cq_advance(&ring, seen);
	}
	io_uring_queue_exit(&ring);
	free(bufs);
	munmap(br, br_size);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: reflector [-u | -m | -p] [-e] [-l ADDR[:PORT]]\n"
	        "  -l ADDR[:PORT]  listen address (default 127.54.0.4:5300)\n"
	        "  -u              io_uring (multishot recvmsg + sendmsg) instead of recvmmsg\n"
	        "  -m              io_uring multishot recvmsg + one sendmmsg per turn\n"
	        "  -p              io_uring multishot poll, then recvmmsg + sendmmsg\n"
	        "  -e              echo the query with QR set instead of appending an A record\n");
}

int main(int argc, char **argv)
{
	const char *listen_at = "127.54.0.4:5300";
	struct sigaction sa = {0};
	struct sockaddr_storage ss;
	struct netaddr a;
	bool uring = false;
	int c, fd, r, one = 1, big = 8 << 20;

	while ((c = getopt(argc, argv, "umpel:h")) != -1) {
		switch (c) {
		case 'u':
			uring = true;
			break;
		case 'm':
			uring = send_mmsg = true;
			break;
		case 'p':
			poll_mmsg = true;
			break;
		case 'e':
			echo_only = true;
			break;
		case 'l':
			listen_at = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (netaddr_parse(listen_at, 53, &a)) {
		fprintf(stderr, "reflector: bad address '%s'\n", listen_at);
		return 2;
	}
	socklen_t sl = netaddr_to_sockaddr(&a, &ss);
	fd = socket(a.family, SOCK_DGRAM, 0);
	if (fd < 0) {
		perror("reflector: socket");
		return 1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* Same socket buffer sizes for every server would be fairer, but a drop here is a loss
	 * dnsperf reports: large buffers keep the floor from being limited by bursts. */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
		perror("reflector: bind");
		return 1;
	}
	sa.sa_handler = on_signal; /* no SA_RESTART: the blocking call must return EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	r = poll_mmsg ? run_poll(fd) : uring ? run_uring(fd) : run_mmsg(fd);
	close(fd);
	fprintf(stderr, "reflector (%s): received %llu, sent %llu, dropped %llu\n",
	        poll_mmsg   ? "poll+mmsg"
	        : send_mmsg ? "io_uring+sendmmsg"
	        : uring     ? "io_uring"
	                    : "recvmmsg",
	        n_recv, n_sent, n_drop);
	if (r < 0) {
		fprintf(stderr, "reflector: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}
