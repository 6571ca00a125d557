/*
 * dns_name.c: domain names in wire form (RFC 1035 §3.1, §4.1.4; RFC 4343).
 */
#include "dns/dns_hash.h" /* dns_lower: the one case fold */
#include "dns/dns_wire.h"

#include <errno.h>
#include <string.h>

/*
 * Compression pointers must point strictly before the label run that holds
 * them (a run starts at the name itself or at the previous pointer's target).
 * Targets therefore decrease strictly, which rules out loops, self pointers
 * and forward pointers in one check; DNS_NAME_MAX_HOPS bounds the work on top.
 * Targets inside the header are refused: no name can start there.
 * What a pointer leads to must also end before the run that holds the
 * pointer (every octet read after a jump lies below `limit`): a compressor
 * only points at names written earlier, and a name that ran on into its own
 * record would take in that record's TTL, which the cache rewrites as the
 * answer ages (the name would change under the client; found by fuzzing).
 */
int dns_name_read(struct wire *w, uint8_t *out, size_t *out_len, unsigned flags)
{
	if (w->err)
		return w->err;
	size_t pos = w->off, run_start = w->off, end = 0, n = 0, limit = w->len;
	unsigned hops = 0;
	bool jumped = false;

	for (;;) {
		if (pos >= limit)
			goto bad;
		uint8_t c = w->p[pos];
		switch (c & 0xC0) {
		case 0x00:
			if (n + 1 + c > DNS_NAME_MAX || (size_t)c + 1 > limit - pos)
				goto bad;
			if (out) {
				out[n] = c;
				memcpy(out + n + 1, w->p + pos + 1, c);
			}
			n += 1 + (size_t)c;
			pos += 1 + (size_t)c;
			if (c == 0) {
				if (!jumped)
					end = pos;
				goto done;
			}
			break;
		case 0xC0: {
			if ((flags & DNS_NAME_NOCOMPRESS) || limit - pos < 2)
				goto bad;
			size_t target = (size_t)(c & 0x3F) << 8 | w->p[pos + 1];
			if (!jumped)
				end = pos + 2;
			if (target < DNS_HDR_LEN || target >= run_start ||
			    ++hops > DNS_NAME_MAX_HOPS)
				goto bad;
			jumped = true;
			limit = run_start;
			pos = run_start = target;
			break;
		}
		default: /* 0b01 (RFC 6891 §5 deprecated extended labels) and 0b10: reserved */
			goto bad;
		}
	}
done:
	w->off = end;
	if (out_len)
		*out_len = n;
	return 0;
bad:
	wire_fail(w, -EBADMSG);
	return -EBADMSG;
}

int dns_name_skip(struct wire *w)
{
	return dns_name_read(w, NULL, NULL, 0);
}

/* Length octets are < 64, never letters, so a bytewise fold keeps the label structure. */
bool dns_name_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++)
		if (dns_lower(a[i]) != dns_lower(b[i]))
			return false;
	return true;
}

void dns_name_lower(uint8_t *dst, const uint8_t *src, size_t len)
{
	for (size_t i = 0; i < len; i++)
		dst[i] = dns_lower(src[i]);
}

void dns_name_randomize_case(uint8_t *name, size_t len, const uint8_t *rnd, size_t rnd_len)
{
	size_t i = 0, j = 0;

	if (!rnd_len)
		return;
	/* Eight octets per random byte, bit 0 first: no division per octet (this runs for
	 * every upstream query). c | 0x20 is a lowercase letter exactly when c is a letter. */
	while (i < len) {
		unsigned r = rnd[j];
		size_t end = len - i > 8 ? i + 8 : len;
		for (; i < end; i++, r >>= 1) {
			uint8_t c = name[i];
			if ((uint8_t)((c | 0x20) - 'a') < 26)
				name[i] = (r & 1) ? (uint8_t)(c & ~0x20) : (uint8_t)(c | 0x20);
		}
		if (++j == rnd_len)
			j = 0;
	}
}

int dns_name_from_text(const char *text, uint8_t *out, size_t cap)
{
	const char *p = text;
	size_t n = 0;

	if (!text || !*text)
		return -EINVAL;
	if (strcmp(text, ".") == 0)
		p++; /* the root: no label at all */
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);
		/* Room for this label and the root label after it. */
		if (len == 0 || len > DNS_LABEL_MAX || n + 1 + len + 1 > cap ||
		    n + 1 + len + 1 > DNS_NAME_MAX)
			return -EINVAL;
		out[n++] = (uint8_t)len;
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)p[i];
			if (c <= 0x20 || c >= 0x7f || c == '\\')
				return -EINVAL;
			out[n++] = c;
		}
		p += len;
		if (*p == '.')
			p++; /* a trailing dot ends the loop here */
	}
	if (n + 1 > cap)
		return -EINVAL;
	out[n++] = 0;
	return (int)n;
}
