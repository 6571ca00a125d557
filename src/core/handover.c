/*
 * handover.c: the handover codec, channel and registry. See handover.h.
 */
#include "core/handover.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/wire.h"

#define ENTRY_FIXED (1 + 4 + 1 + 16 + 2 + 1 + 4) /* without tag and data */
#define HDR_LEN     8

/* ---------------------------------------------------------------- codec */

static int family_code(int family)
{
	return family == 0 ? 0 : family == AF_INET ? 4 : family == AF_INET6 ? 6 : -1;
}

int handover_msg_encode(enum handover_msg_type type, bool last, const struct handover_entry *e,
                        size_t n, uint8_t *buf, size_t cap)
{
	struct wbuf b = wbuf_init(buf, cap);

	if (n > UINT16_MAX)
		return -EINVAL;
	wbuf_bytes(&b, "AHO", 3);
	wbuf_u8(&b, HANDOVER_VERSION);
	wbuf_u8(&b, (uint8_t)type);
	wbuf_u8(&b, last ? 1 : 0);
	wbuf_u16(&b, (uint16_t)n);
	for (size_t i = 0; i < n; i++) {
		size_t tl = strnlen(e[i].tag, sizeof(e[i].tag));
		int fc = family_code(e[i].addr.family);
		if (tl == 0 || tl > HANDOVER_TAG_MAX || fc < 0 || e[i].data_len > HANDOVER_DATA_MAX)
			return -EINVAL;
		wbuf_u8(&b, (uint8_t)tl);
		wbuf_bytes(&b, e[i].tag, tl);
		wbuf_u32(&b, e[i].index);
		wbuf_u8(&b, (uint8_t)fc);
		wbuf_bytes(&b, e[i].addr.addr, 16);
		wbuf_u16(&b, e[i].addr.port);
		wbuf_u8(&b, e[i].fd >= 0 ? 1 : 0);
		wbuf_u32(&b, (uint32_t)e[i].data_len);
		if (e[i].data_len)
			wbuf_bytes(&b, e[i].data, e[i].data_len);
	}
	int r = wbuf_result(&b);
	return r < 0 ? -EMSGSIZE : (int)b.off;
}

int handover_msg_decode(const uint8_t *buf, size_t len, const int *fds, size_t nfds,
                        enum handover_msg_type *type, bool *last, struct handover_entry *e,
                        size_t max, size_t *n)
{
	struct wire w = wire_init(buf, len);
	uint8_t magic[3], ver, t, flags;
	size_t count, used = 0;

	*n = 0;
	wire_bytes(&w, magic, 3);
	ver = wire_u8(&w);
	t = wire_u8(&w);
	flags = wire_u8(&w);
	count = wire_u16(&w);
	if (w.err || memcmp(magic, "AHO", 3) != 0)
		return -EBADMSG;
	if (ver != HANDOVER_VERSION)
		return -EPROTO;
	if (t < HANDOVER_MSG_OFFER || t > HANDOVER_MSG_ABORT || (flags & ~1u))
		return -EBADMSG;
	/* Cap before trusting: each entry needs at least ENTRY_FIXED + 1 bytes. */
	if (count > wire_left(&w) / (ENTRY_FIXED + 1))
		return -EBADMSG;
	if (count > max)
		return -ENOSPC;
	for (size_t i = 0; i < count; i++) {
		struct handover_entry *x = &e[i];
		size_t tl = wire_u8(&w);
		memset(x, 0, sizeof(*x));
		if (tl == 0 || tl > HANDOVER_TAG_MAX)
			return -EBADMSG;
		wire_bytes(&w, x->tag, tl);
		x->tag[tl] = '\0';
		x->index = wire_u32(&w);
		uint8_t fc = wire_u8(&w);
		wire_bytes(&w, x->addr.addr, 16);
		x->addr.port = wire_u16(&w);
		uint8_t has_fd = wire_u8(&w);
		x->data_len = wire_u32(&w);
		if (w.err)
			return -EBADMSG;
		if (fc != 0 && fc != 4 && fc != 6)
			return -EBADMSG;
		x->addr.family = fc == 4 ? AF_INET : fc == 6 ? AF_INET6 : 0;
		if (has_fd > 1 || x->data_len > HANDOVER_DATA_MAX)
			return -EBADMSG;
		for (size_t k = 0; k < tl; k++)
			if (x->tag[k] < 0x21 || x->tag[k] > 0x7e)
				return -EBADMSG;
		x->data = x->data_len ? wire_ptr(&w, x->data_len) : NULL;
		if (w.err)
			return -EBADMSG;
		x->fd = -1;
		if (has_fd) {
			if (used == nfds)
				return -EBADMSG;
			x->fd = fds[used++];
		}
	}
	if (!wire_done(&w) || used != nfds)
		return -EBADMSG;
	*type = (enum handover_msg_type)t;
	*last = flags & 1;
	*n = count;
	return 0;
}

/* ---------------------------------------------------------------- channel */

int handover_channel(int *keep, int *give)
{
	int sv[2], sz = 1 << 20;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	/* Room for a whole batch of state without blocking the control loop. */
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	/* A peer that stops reading must not hold a sender (the old process's
	 * control thread) for long: a bounded send fails with -EAGAIN. */
	struct timeval tv = {.tv_sec = 2};
	setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(sv[1], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	*keep = sv[0];
	*give = sv[1];
	return 0;
}

static int send_one(int sock, enum handover_msg_type type, bool last,
                    const struct handover_entry *e, size_t n, uint8_t *buf)
{
	union {
		struct cmsghdr h;
		uint8_t b[CMSG_SPACE(sizeof(int) * HANDOVER_FDS_PER_MSG)];
	} cm;
	int fds[HANDOVER_FDS_PER_MSG];
	size_t nfds = 0;
	int len = handover_msg_encode(type, last, e, n, buf, HANDOVER_MSG_MAX);

	if (len < 0)
		return len;
	for (size_t i = 0; i < n; i++)
		if (e[i].fd >= 0)
			fds[nfds++] = e[i].fd;
	struct iovec iov = {.iov_base = buf, .iov_len = (size_t)len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (nfds) {
		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.b;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	for (;;) {
		ssize_t r = sendmsg(sock, &mh, MSG_NOSIGNAL);
		if (r >= 0)
			return r == len ? 0 : -EMSGSIZE;
		if (errno != EINTR)
			return -errno;
	}
}

int handover_send(int sock, enum handover_msg_type type, const struct handover_entry *e, size_t n)
{
	uint8_t *buf = malloc(HANDOVER_MSG_MAX);
	size_t first = 0;
	int r = 0;

	if (!buf)
		return -ENOMEM;
	do {
		/* A batch: up to HANDOVER_FDS_PER_MSG fds and what fits one message. */
		size_t count = 0, fds = 0, bytes = HDR_LEN;
		while (first + count < n) {
			const struct handover_entry *x = &e[first + count];
			size_t need = ENTRY_FIXED + strnlen(x->tag, sizeof(x->tag)) + x->data_len;
			if (fds + (x->fd >= 0) > HANDOVER_FDS_PER_MSG ||
			    bytes + need > HANDOVER_MSG_MAX || count == UINT16_MAX)
				break;
			fds += x->fd >= 0;
			bytes += need;
			count++;
		}
		if (count == 0 && first < n) {
			r = -EMSGSIZE;
			break;
		}
		r = send_one(sock, type, first + count == n, e + first, count, buf);
		first += count;
	} while (r == 0 && first < n);
	free(buf);
	return r;
}

/* ---------------------------------------------------------------- registry */

struct held {
	struct handover_entry e;
	uint8_t *copy; /* inherited data */
	bool taken;
};

static struct {
	pthread_mutex_t mu;
	struct handover_entry offered[HANDOVER_MAX_ENTRIES];
	size_t n_offered;
	struct held *in;
	size_t n_in;
	bool active;
} reg = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int hold(const struct handover_entry *e)
{
	struct held *h;

	if (reg.n_in == HANDOVER_MAX_ENTRIES)
		return -ENOSPC;
	if (!reg.in) {
		reg.in = calloc(HANDOVER_MAX_ENTRIES, sizeof(*reg.in));
		if (!reg.in)
			return -ENOMEM;
	}
	h = &reg.in[reg.n_in];
	memset(h, 0, sizeof(*h));
	h->e = *e;
	if (e->data_len) {
		h->copy = malloc(e->data_len);
		if (!h->copy)
			return -ENOMEM;
		memcpy(h->copy, e->data, e->data_len);
	}
	h->e.data = h->copy;
	reg.n_in++;
	return 0;
}

static void close_fds(const int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
}

int handover_recv(int sock, unsigned timeout_ms, enum handover_msg_type *type)
{
	uint64_t deadline = clock_now_ms() + timeout_ms;
	uint8_t *buf = malloc(HANDOVER_MSG_MAX);
	struct handover_entry *e = malloc(sizeof(*e) * HANDOVER_MAX_ENTRIES);
	int r = 0;
	bool have_type = false;

	if (!buf || !e) {
		free(buf);
		free(e);
		return -ENOMEM;
	}
	for (;;) {
		union {
			struct cmsghdr h;
			uint8_t b[CMSG_SPACE(sizeof(int) * 253)];
		} cm;
		int fds[253];
		size_t nfds = 0, n;
		bool last;
		enum handover_msg_type t;
		uint64_t now = clock_now_ms();
		struct pollfd p = {.fd = sock, .events = POLLIN};

		if (now >= deadline) {
			r = -ETIMEDOUT;
			break;
		}
		r = poll(&p, 1, (int)(deadline - now));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			r = r < 0 ? -errno : -ETIMEDOUT;
			break;
		}
		struct iovec iov = {.iov_base = buf, .iov_len = HANDOVER_MSG_MAX};
		struct msghdr mh = {.msg_iov = &iov,
		                    .msg_iovlen = 1,
		                    .msg_control = cm.b,
		                    .msg_controllen = sizeof(cm)};
		ssize_t got = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			r = got == 0 ? -ECONNRESET : -errno;
			break;
		}
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k && nfds < 253; i++)
				memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
		}
		if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
			close_fds(fds, nfds);
			r = -EMSGSIZE;
			break;
		}
		r = handover_msg_decode(buf, (size_t)got, fds, nfds, &t, &last, e,
		                        HANDOVER_MAX_ENTRIES, &n);
		if (r == 0 && have_type && t != *type)
			r = -EBADMSG;
		if (r < 0) {
			close_fds(fds, nfds);
			break;
		}
		*type = t;
		have_type = true;
		pthread_mutex_lock(&reg.mu);
		for (size_t i = 0; i < n && r == 0; i++) {
			r = hold(&e[i]);
			if (r < 0)
				for (size_t j = i; j < n; j++)
					if (e[j].fd >= 0)
						close(e[j].fd);
		}
		pthread_mutex_unlock(&reg.mu);
		if (r < 0 || last)
			break;
	}
	free(buf);
	free(e);
	return r;
}

int handover_offer(const char *tag, uint32_t index, const struct netaddr *addr, int fd)
{
	struct handover_entry *e;
	int r = 0;

	pthread_mutex_lock(&reg.mu);
	if (reg.n_offered == HANDOVER_MAX_ENTRIES) {
		r = -ENOSPC;
	} else {
		e = &reg.offered[reg.n_offered++];
		memset(e, 0, sizeof(*e));
		snprintf(e->tag, sizeof(e->tag), "%s", tag);
		e->index = index;
		if (addr)
			e->addr = *addr;
		e->fd = fd;
	}
	pthread_mutex_unlock(&reg.mu);
	return r;
}

void handover_forget(int fd)
{
	pthread_mutex_lock(&reg.mu);
	for (size_t i = 0; i < reg.n_offered;)
		if (reg.offered[i].fd == fd)
			reg.offered[i] = reg.offered[--reg.n_offered];
		else
			i++;
	pthread_mutex_unlock(&reg.mu);
}

const struct handover_entry *handover_offered(size_t *n)
{
	*n = reg.n_offered;
	return reg.offered;
}

bool handover_active(void)
{
	return reg.active;
}

void handover_set_active(bool on)
{
	reg.active = on;
}

static int take(const char *tag, uint32_t index, const struct netaddr *addr, bool with_fd,
                const uint8_t **data, size_t *len)
{
	int fd = -ENOENT;

	pthread_mutex_lock(&reg.mu);
	for (size_t i = 0; i < reg.n_in; i++) {
		struct held *h = &reg.in[i];
		if (h->taken || (h->e.fd >= 0) != with_fd || strcmp(h->e.tag, tag) != 0 ||
		    h->e.index != index)
			continue;
		if (addr && (h->e.addr.family != addr->family ||
		             (addr->family && !netaddr_equal(&h->e.addr, addr))))
			continue;
		h->taken = true;
		fd = with_fd ? h->e.fd : 0;
		if (data)
			*data = h->e.data;
		if (len)
			*len = h->e.data_len;
		break;
	}
	pthread_mutex_unlock(&reg.mu);
	return fd;
}

int handover_take(const char *tag, uint32_t index, const struct netaddr *addr, const uint8_t **data,
                  size_t *len)
{
	return take(tag, index, addr, true, data, len);
}

int handover_take_data(const char *tag, uint32_t index, const struct netaddr *addr,
                       const uint8_t **data, size_t *len)
{
	return take(tag, index, addr, false, data, len);
}

void handover_release_unused(void)
{
	char b[NETADDR_STRLEN];

	pthread_mutex_lock(&reg.mu);
	for (size_t i = 0; i < reg.n_in; i++) {
		struct held *h = &reg.in[i];
		if (!h->taken && h->e.fd >= 0) {
			log_info("handover", "inherited %s %u %s not in this configuration: closed",
			         h->e.tag, h->e.index,
			         netaddr_format(&h->e.addr, true, b, sizeof(b)));
			close(h->e.fd);
		}
		free(h->copy);
	}
	free(reg.in);
	reg.in = NULL;
	reg.n_in = 0;
	pthread_mutex_unlock(&reg.mu);
}
