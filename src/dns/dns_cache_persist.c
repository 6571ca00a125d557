/*
 * dns_cache_persist.c: the answer cache to a file and back (dns_cache.h,
 * "persistence"). File I/O lives here, not in dns_cache.c, which stays logic.
 *
 * Format, version 1 (all integers big-endian, written and read through
 * core/wire.h):
 *
 *   header  "ANYCACHE" (8) | version u16 | flags u16 (0) | reserved u32 (0)
 *           | saved wall time, ms since the epoch u64
 *   entry   tag u8 = 1 | key flags u8 (bit 0 DO, bit 1 CD) | answer length u16
 *           | lifetime s u32 | age ms u64 | answer
 *   end     tag u8 = 0 | entry count u32 | CRC32C u32 over every byte before it
 *
 * An entry's answer is the stored form (dns_answer.h) with each TTL field set
 * to the TTL the cache holds for that RR (clamped at insert), so the loader
 * can treat it as an upstream answer `age` old: it is scanned by the codec
 * and inserted through dns_cache_insert_aged, which applies today's
 * configuration (min/max TTL, negative cap, stale window) once more. The
 * file says nothing the codec does not check again, except the age and the
 * key's DO/CD bits, and an age can only make an entry die sooner.
 *
 * CRC32C (Castagnoli) detects every burst error up to 32 bits and every
 * truncation that the end record does not already catch; it guards against
 * accidents (a torn write, a disk error), not against someone who can write
 * the file: that one is answered by the per-entry checks.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/wire.h"
#include "dns/dns_cache.h"
#include "dns/dns_wire.h"

static const uint8_t MAGIC[8] = {'A', 'N', 'Y', 'C', 'A', 'C', 'H', 'E'};

#define PERSIST_VERSION  1u
#define HEADER_LEN       24u
#define ENTRY_HDR_LEN    16u
#define END_LEN          9u
#define TAG_END          0u
#define TAG_ENTRY        1u
#define KEYF_DO          0x01u
#define KEYF_CD          0x02u
#define WBUF_SIZE        (64u << 10)
#define PATH_TMP_SUFFIX  ".tmp"
#define PERSIST_PATH_MAX 4096u

/* ---- CRC32C (RFC 3720 §12.1 polynomial, reflected 0x82F63B78) ---- */

static void crc_table(uint32_t t[256])
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		t[i] = c;
	}
}

/* crc: the running value, ~0 to start; the final CRC is ~crc. */
static uint32_t crc_update(const uint32_t t[256], uint32_t crc, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		crc = t[(crc ^ p[i]) & 0xffu] ^ (crc >> 8);
	return crc;
}

/* ---- save ---- */

struct saver {
	int fd;
	int err;
	uint32_t crc;
	uint32_t count;
	uint64_t now_ms;
	size_t fill;
	uint32_t table[256];
	uint8_t ans[DNS_MSG_MAX]; /* an answer with its TTL fields rewritten */
	uint8_t buf[WBUF_SIZE];
};

static void flush_buf(struct saver *s)
{
	size_t off = 0;

	while (s->err == 0 && off < s->fill) {
		ssize_t n = write(s->fd, s->buf + off, s->fill - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			s->err = n < 0 ? -errno : -EIO;
		else
			off += (size_t)n;
	}
	s->fill = 0;
}

/* Appends to the file, feeding the checksum. */
static void put(struct saver *s, const void *p, size_t n)
{
	const uint8_t *b = p;

	s->crc = crc_update(s->table, s->crc, b, n);
	while (n && s->err == 0) {
		size_t room = sizeof(s->buf) - s->fill;
		size_t k = n < room ? n : room;
		memcpy(s->buf + s->fill, b, k);
		s->fill += k;
		b += k;
		n -= k;
		if (s->fill == sizeof(s->buf))
			flush_buf(s);
	}
}

static int save_entry(void *arg, const struct dns_cache_entry_view *v)
{
	struct saver *s = arg;
	uint8_t hdr[ENTRY_HDR_LEN];
	struct wbuf w = wbuf_init(hdr, sizeof(hdr));
	struct wbuf a = wbuf_init(s->ans, sizeof(s->ans));

	/* A cached failure lives seconds and says nothing about the name. */
	if (v->kind == DNS_CACHE_SERVFAIL || v->len > sizeof(s->ans))
		return 0;
	wbuf_bytes(&a, v->answer, v->len);
	for (unsigned i = 0; i < v->n_ttl; i++)
		wbuf_put_u32_at(&a, v->ttl_off[i], v->ttl[i]);
	wbuf_u8(&w, TAG_ENTRY);
	wbuf_u8(&w, (uint8_t)((v->do_bit ? KEYF_DO : 0) | (v->cd_bit ? KEYF_CD : 0)));
	wbuf_u16(&w, (uint16_t)v->len);
	wbuf_u32(&w, v->life_s);
	wbuf_u32(&w, (uint32_t)(v->age_ms >> 32));
	wbuf_u32(&w, (uint32_t)v->age_ms);
	if (wbuf_result(&w) < 0 || wbuf_result(&a) < 0)
		return -EINVAL; /* cannot happen: sizes are fixed above */
	put(s, hdr, sizeof(hdr));
	put(s, s->ans, v->len);
	s->count++;
	return s->err;
}

/* fsync the directory holding path, so the rename itself is durable. */
static int sync_dir(const char *path)
{
	char dir[PERSIST_PATH_MAX];
	int fd, r = 0;

	snprintf(dir, sizeof(dir), "%s", path);
	fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

int dns_cache_save(struct dns_cache *c, const char *path, uint64_t wall_now_ms,
                   uint64_t mono_now_ms)
{
	char tmp[PERSIST_PATH_MAX];
	uint8_t hdr[HEADER_LEN], end[END_LEN];
	struct wbuf w;
	int r;

	if (!c || !path || !*path)
		return -EINVAL;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s" PATH_TMP_SUFFIX, path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	struct saver *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	crc_table(s->table);
	s->crc = ~0u;
	s->now_ms = mono_now_ms;
	s->fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (s->fd < 0) {
		r = -errno;
		free(s);
		return r;
	}

	w = wbuf_init(hdr, sizeof(hdr));
	wbuf_bytes(&w, MAGIC, sizeof(MAGIC));
	wbuf_u16(&w, PERSIST_VERSION);
	wbuf_u16(&w, 0);
	wbuf_u32(&w, 0);
	wbuf_u32(&w, (uint32_t)(wall_now_ms >> 32));
	wbuf_u32(&w, (uint32_t)wall_now_ms);
	put(s, hdr, sizeof(hdr));
	r = dns_cache_walk(c, mono_now_ms, save_entry, s);
	if (r == 0 && s->err == 0) {
		w = wbuf_init(end, sizeof(end));
		wbuf_u8(&w, TAG_END);
		wbuf_u32(&w, s->count);
		put(s, end, END_LEN - 4);
		wbuf_u32(&w, ~s->crc);
		put(s, end + END_LEN - 4, 4);
		flush_buf(s);
	}
	if (r == 0)
		r = s->err;
	if (r == 0 && fsync(s->fd) < 0)
		r = -errno;
	if (close(s->fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r == 0)
		r = sync_dir(path);
	else
		unlink(tmp);
	free(s);
	return r;
}

/* ---- load ---- */

/*
 * The cache kind of a stored-form answer, as the server decides it for an
 * upstream answer (dns_server.c answer_kind): -1 when it would not have been
 * cached, or is a failure (never saved).
 */
static int kind_of(const struct dns_scan *sc)
{
	switch (sc->rcode) {
	case DNS_RCODE_NOERROR:
		if (sc->ancount)
			return DNS_CACHE_POSITIVE;
		return sc->has_soa ? DNS_CACHE_NODATA : -1; /* RFC 2308 §5 */
	case DNS_RCODE_NXDOMAIN:
		return sc->has_soa ? DNS_CACHE_NXDOMAIN : -1;
	default:
		return -1;
	}
}

/* One record: checked as an upstream answer, then inserted aged. */
static void load_entry(struct dns_cache *c, const uint8_t *ans, size_t len, uint8_t keyf,
                       uint32_t life_s, uint64_t age_ms, uint64_t mono_now_ms,
                       struct dns_cache_load_stats *st)
{
	struct dns_scan sc;
	int kind;

	if ((keyf & ~(KEYF_DO | KEYF_CD)) || dns_scan(ans, len, &sc) < 0 || !sc.qr || sc.tc ||
	    sc.opcode != DNS_OPCODE_QUERY || !sc.has_question || sc.qdcount != 1 ||
	    sc.q_off != DNS_HDR_LEN || sc.has_opt || sc.ttl_overflow ||
	    sc.n_ttl > DNS_MAX_TTL_OFFSETS || (kind = kind_of(&sc)) < 0) {
		st->invalid++;
		return;
	}
	struct dns_cache_key key = {
	    .qname = ans + DNS_HDR_LEN,
	    .qname_len = (uint16_t)sc.qname_len,
	    .qtype = sc.qtype,
	    .qclass = sc.qclass,
	    .do_bit = (keyf & KEYF_DO) != 0,
	    .cd_bit = (keyf & KEYF_CD) != 0,
	};
	/* A negative answer lives no longer than its SOA says nor than it did before. */
	uint32_t neg = sc.neg_ttl < life_s ? sc.neg_ttl : life_s;
	int r = dns_cache_insert_aged(c, &key, ans, len, sc.ttl_off, (unsigned)sc.n_ttl,
	                              (enum dns_cache_kind)kind, neg, mono_now_ms, age_ms);
	if (r == 1) {
		st->loaded++;
	} else if (r < 0) {
		st->invalid++;
	} else {
		/* 0: already held, or dead by now; tell them apart for the log. */
		unsigned f = 0;
		uint8_t probe[1];
		int h = dns_cache_lookup(c, &key, 0, true, mono_now_ms, probe, 0, &f);
		if (h == -EMSGSIZE)
			st->kept++;
		else
			st->expired++;
	}
}

/* Walks the entry records: inserts only when `insert`, else checks the framing. */
static int parse_body(struct dns_cache *c, struct wire *w, uint64_t elapsed_ms,
                      uint64_t mono_now_ms, bool insert, struct dns_cache_load_stats *st)
{
	uint32_t n = 0;

	for (;;) {
		uint8_t tag = wire_u8(w);
		if (w->err)
			return -EBADMSG;
		if (tag == TAG_END)
			break;
		if (tag != TAG_ENTRY)
			return -EBADMSG;
		uint8_t keyf = wire_u8(w);
		uint16_t len = wire_u16(w);
		uint32_t life = wire_u32(w);
		uint64_t age = (uint64_t)wire_u32(w) << 32;
		age |= wire_u32(w);
		const uint8_t *ans = wire_ptr(w, len);
		if (w->err)
			return -EBADMSG;
		n++;
		if (insert) {
			/* Saturating: a huge age only means the entry is dead. */
			uint64_t total =
			    age > UINT64_MAX - elapsed_ms ? UINT64_MAX : age + elapsed_ms;
			load_entry(c, ans, len, keyf, life, total, mono_now_ms, st);
		}
	}
	uint32_t count = wire_u32(w);
	if (w->err || count != n)
		return -EBADMSG;
	st->entries = n;
	return 0;
}

int dns_cache_load_buf(struct dns_cache *c, const uint8_t *buf, size_t len, uint64_t wall_now_ms,
                       uint64_t mono_now_ms, unsigned flags, struct dns_cache_load_stats *st)
{
	struct dns_cache_load_stats dummy;
	struct wire w = wire_init(buf, len);

	if (!st)
		st = &dummy;
	memset(st, 0, sizeof(*st));
	if (!c || !buf || len < HEADER_LEN + END_LEN)
		return -EBADMSG;
	const uint8_t *magic = wire_ptr(&w, sizeof(MAGIC));
	if (memcmp(magic, MAGIC, sizeof(MAGIC)) != 0)
		return -EBADMSG;
	uint16_t version = wire_u16(&w);
	uint16_t hflags = wire_u16(&w);
	uint32_t reserved = wire_u32(&w);
	uint64_t saved = (uint64_t)wire_u32(&w) << 32;
	saved |= wire_u32(&w);
	if (version > PERSIST_VERSION)
		return -EPROTONOSUPPORT;
	if (version != PERSIST_VERSION || hflags || reserved)
		return -EBADMSG;
	if (!(flags & DNS_CACHE_LOAD_NOCHECKSUM)) {
		uint32_t t[256];
		struct wire tail = wire_init(buf + len - 4, 4);
		crc_table(t);
		if (~crc_update(t, ~0u, buf, len - 4) != wire_u32(&tail))
			return -EBADMSG;
	}
	if (saved > wall_now_ms)
		return -ESTALE;

	/* Two passes: the framing of the whole file first, so a bad file inserts nothing. */
	struct wire body = w;
	int r = parse_body(c, &body, 0, mono_now_ms, false, st);
	if (r == 0 && wire_left(&body) != 4) /* exactly the CRC must be left */
		r = -EBADMSG;
	if (r < 0)
		return r;
	r = parse_body(c, &w, wall_now_ms - saved, mono_now_ms, true, st);
	return r < 0 ? r : (int)st->loaded;
}

/* The file image is bounded by what the cache could hold, plus the framing. */
static size_t file_cap(struct dns_cache *c)
{
	struct dns_cache_stats cs;

	dns_cache_stats(c, &cs);
	return cs.table_bytes + (size_t)cs.shards * cs.shard_bytes + (1u << 20);
}

int dns_cache_load(struct dns_cache *c, const char *path, uint64_t wall_now_ms,
                   uint64_t mono_now_ms)
{
	struct stat sb;
	int fd, r;

	if (!c || !path || !*path)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > file_cap(c)) {
		close(fd);
		return S_ISREG(sb.st_mode) ? -EFBIG : -EINVAL;
	}
	size_t len = (size_t)sb.st_size, got = 0;
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* shrank under us: the checks below refuse the short image */
		got += (size_t)n;
	}
	close(fd);
	r = dns_cache_load_buf(c, buf, got, wall_now_ms, mono_now_ms, 0, NULL);
	free(buf);
	return r;
}
