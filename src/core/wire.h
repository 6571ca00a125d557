/*
 * wire.h: bounds-checked reading and writing of network byte order data.
 *
 * Every codec in anycache (DNS, BGP, BFD) reads packets through a struct wire
 * and writes them through a struct wbuf; nothing indexes a packet by hand.
 *
 * Reading: the cursor remembers its first error (sticky), so a parser may read
 * a group of fields and check once (Knot DNS's wire_ctx does the same). After
 * an error every read returns 0 and moves nothing. A child cursor made with
 * wire_sub() bounds one length-delimited field (an RR, a TLV, a path
 * attribute) so an inner parser cannot run past its parent; the parent skips
 * the whole field whatever the child did.
 *
 * Ownership: a struct wire is a view. It never owns or copies the bytes; the
 * caller keeps the buffer alive while the cursor (and any pointer obtained
 * from wire_ptr()) is in use.
 *
 * Writing: struct wbuf appends into a caller-owned buffer and fails with
 * -EMSGSIZE (sticky) instead of overrunning it.
 */
#ifndef ANYCACHE_CORE_WIRE_H
#define ANYCACHE_CORE_WIRE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct wire {
	const uint8_t *p;
	size_t len;
	size_t off;
	int err; /* 0, or the first -errno (always -EBADMSG for reads past the end) */
};

static inline struct wire wire_init(const void *p, size_t len)
{
	struct wire w = {.p = p, .len = len, .off = 0, .err = 0};
	return w;
}

static inline size_t wire_left(const struct wire *w)
{
	return w->err ? 0 : w->len - w->off;
}

/* Marks the cursor failed; keeps the first error. */
static inline void wire_fail(struct wire *w, int err)
{
	if (!w->err)
		w->err = err;
}

/* True when n more bytes can be read; otherwise fails the cursor. */
static inline bool wire_need(struct wire *w, size_t n)
{
	if (w->err)
		return false;
	if (w->len - w->off < n) {
		w->err = -EBADMSG;
		return false;
	}
	return true;
}

static inline uint8_t wire_u8(struct wire *w)
{
	if (!wire_need(w, 1))
		return 0;
	return w->p[w->off++];
}

static inline uint16_t wire_u16(struct wire *w)
{
	if (!wire_need(w, 2))
		return 0;
	uint16_t v = (uint16_t)(w->p[w->off] << 8 | w->p[w->off + 1]);
	w->off += 2;
	return v;
}

static inline uint32_t wire_u24(struct wire *w)
{
	if (!wire_need(w, 3))
		return 0;
	uint32_t v =
	    (uint32_t)w->p[w->off] << 16 | (uint32_t)w->p[w->off + 1] << 8 | w->p[w->off + 2];
	w->off += 3;
	return v;
}

static inline uint32_t wire_u32(struct wire *w)
{
	if (!wire_need(w, 4))
		return 0;
	uint32_t v = (uint32_t)w->p[w->off] << 24 | (uint32_t)w->p[w->off + 1] << 16 |
	             (uint32_t)w->p[w->off + 2] << 8 | w->p[w->off + 3];
	w->off += 4;
	return v;
}

/* Copies n bytes out; on failure dst is zeroed so callers never see garbage. */
static inline void wire_bytes(struct wire *w, void *dst, size_t n)
{
	if (!wire_need(w, n)) {
		memset(dst, 0, n);
		return;
	}
	memcpy(dst, w->p + w->off, n);
	w->off += n;
}

/* A view of the next n bytes, valid while the underlying buffer lives; NULL on failure. */
static inline const uint8_t *wire_ptr(struct wire *w, size_t n)
{
	if (!wire_need(w, n))
		return NULL;
	const uint8_t *q = w->p + w->off;
	w->off += n;
	return q;
}

static inline void wire_skip(struct wire *w, size_t n)
{
	if (wire_need(w, n))
		w->off += n;
}

/*
 * A child cursor over the next n bytes; the parent moves past them at once.
 * If the parent cannot supply n bytes both fail. The child's own errors do not
 * propagate: the caller checks the child and decides (RFC 7606 treat-as-withdraw
 * needs exactly that).
 */
static inline struct wire wire_sub(struct wire *w, size_t n)
{
	struct wire c = {.p = NULL, .len = 0, .off = 0, .err = 0};
	if (!wire_need(w, n)) {
		c.err = -EBADMSG;
		return c;
	}
	c.p = w->p + w->off;
	c.len = n;
	w->off += n;
	return c;
}

/* True when the cursor has no error and every byte was consumed. */
static inline bool wire_done(const struct wire *w)
{
	return w->err == 0 && w->off == w->len;
}

/* 0 when everything was consumed without error, else -EBADMSG (or the sticky error). */
static inline int wire_end(const struct wire *w)
{
	if (w->err)
		return w->err;
	return w->off == w->len ? 0 : -EBADMSG;
}

/* ---- writing ---- */

struct wbuf {
	uint8_t *p;
	size_t cap;
	size_t off;
	int err; /* 0, or -EMSGSIZE after the first write that did not fit */
};

static inline struct wbuf wbuf_init(void *p, size_t cap)
{
	struct wbuf b = {.p = p, .cap = cap, .off = 0, .err = 0};
	return b;
}

static inline bool wbuf_room(struct wbuf *b, size_t n)
{
	if (b->err)
		return false;
	if (b->cap - b->off < n) {
		b->err = -EMSGSIZE;
		return false;
	}
	return true;
}

static inline void wbuf_u8(struct wbuf *b, uint8_t v)
{
	if (wbuf_room(b, 1))
		b->p[b->off++] = v;
}

static inline void wbuf_u16(struct wbuf *b, uint16_t v)
{
	if (!wbuf_room(b, 2))
		return;
	b->p[b->off++] = (uint8_t)(v >> 8);
	b->p[b->off++] = (uint8_t)v;
}

static inline void wbuf_u32(struct wbuf *b, uint32_t v)
{
	if (!wbuf_room(b, 4))
		return;
	b->p[b->off++] = (uint8_t)(v >> 24);
	b->p[b->off++] = (uint8_t)(v >> 16);
	b->p[b->off++] = (uint8_t)(v >> 8);
	b->p[b->off++] = (uint8_t)v;
}

static inline void wbuf_bytes(struct wbuf *b, const void *src, size_t n)
{
	if (n && wbuf_room(b, n)) {
		memcpy(b->p + b->off, src, n);
		b->off += n;
	}
}

/* Reserves n bytes (e.g. a length field written later); returns their offset, or SIZE_MAX. */
static inline size_t wbuf_reserve(struct wbuf *b, size_t n)
{
	if (!wbuf_room(b, n))
		return SIZE_MAX;
	size_t at = b->off;
	memset(b->p + at, 0, n);
	b->off += n;
	return at;
}

/*
 * Write v at an offset already written (from wbuf_reserve(), or inside bytes
 * the caller copied in and now patches); a no-op after an error or past off.
 */
static inline void wbuf_put_u16_at(struct wbuf *b, size_t at, uint16_t v)
{
	if (b->err || at == SIZE_MAX || at + 2 > b->off)
		return;
	b->p[at] = (uint8_t)(v >> 8);
	b->p[at + 1] = (uint8_t)v;
}

static inline void wbuf_put_u32_at(struct wbuf *b, size_t at, uint32_t v)
{
	if (b->err || at == SIZE_MAX || at + 4 > b->off)
		return;
	b->p[at] = (uint8_t)(v >> 24);
	b->p[at + 1] = (uint8_t)(v >> 16);
	b->p[at + 2] = (uint8_t)(v >> 8);
	b->p[at + 3] = (uint8_t)v;
}

static inline void wbuf_put_u8_at(struct wbuf *b, size_t at, uint8_t v)
{
	if (b->err || at == SIZE_MAX || at + 1 > b->off)
		return;
	b->p[at] = v;
}

/* The written length, or the sticky -EMSGSIZE. */
static inline int wbuf_result(const struct wbuf *b)
{
	return b->err ? b->err : (int)b->off;
}

/*
 * A 16-bit field at p, network byte order, for fixed fields whose bounds the
 * caller has already checked (a DNS header it holds whole, a TCP length
 * prefix it has counted): the one home for this, instead of p[0] << 8 | p[1]
 * written by hand in every file.
 */
static inline uint16_t wire_get_u16_at(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void wire_set_u16_at(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

#endif
