/*
 * conf_value.c: value parsers, pure text -> number/address. No diagnostics
 * here: callers (conf_section.c) word the message with the key's path.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/conf_int.h"

/* Decimal digits only: no sign, no space, no 0x (YAML 1.1 would read 010 as octal). */
int conf_parse_u64(const char *s, const char **end, uint64_t *out)
{
	uint64_t v = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*end = p;
	*out = v;
	return 0;
}

static int parse_scaled(const char *s, const char *const units[], const uint64_t mult[],
                        uint64_t *out)
{
	const char *end;
	uint64_t v;
	int rc;

	if (!s)
		return -EINVAL;
	rc = conf_parse_u64(s, &end, &v);
	if (rc)
		return rc;
	for (unsigned i = 0; units[i]; i++) {
		if (strcmp(end, units[i]) == 0) {
			if (v > UINT64_MAX / mult[i])
				return -ERANGE;
			*out = v * mult[i];
			return 0;
		}
	}
	return -EINVAL;
}

int conf_parse_duration_ms(const char *s, uint64_t *ms)
{
	/* A bare number is seconds: the unit operators mean for timers and TTLs. */
	static const char *const units[] = {"", "ms", "s", "m", "h", "d", NULL};
	static const uint64_t mult[] = {1000, 1, 1000, 60000, 3600000, 86400000};

	return parse_scaled(s, units, mult, ms);
}

int conf_parse_size(const char *s, uint64_t *bytes)
{
	static const char *const units[] = {"", "B", "KiB", "MiB", "GiB", NULL};
	static const uint64_t mult[] = {1, 1, 1ull << 10, 1ull << 20, 1ull << 30};

	return parse_scaled(s, units, mult, bytes);
}

/* Digits after the point, at most `places` of them, scaled to that many places. */
static int parse_decimal(const char *s, unsigned places, const char **end, uint64_t *out)
{
	uint64_t v;
	int rc = conf_parse_u64(s, end, &v);
	unsigned k = 0;

	if (rc)
		return rc;
	if (**end == '.') {
		const char *p = *end + 1;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		for (; isdigit((unsigned char)*p); p++, k++) {
			if (k == places || v > UINT64_MAX / 10 - 9)
				return -EINVAL;
			v = v * 10 + (uint64_t)(*p - '0');
		}
		*end = p;
	}
	for (; k < places; k++) {
		if (v > UINT64_MAX / 10)
			return -ERANGE;
		v *= 10;
	}
	*out = v;
	return 0;
}

int conf_parse_ratio_pm(const char *s, uint32_t *pm)
{
	const char *end;
	uint64_t v;

	if (!s)
		return -EINVAL;
	/* "90%" / "92.5%": tenths of a percent are per mille. */
	if (parse_decimal(s, 1, &end, &v) == 0 && strcmp(end, "%") == 0) {
		if (v > 1000)
			return -ERANGE;
		*pm = (uint32_t)v;
		return 0;
	}
	int rc = parse_decimal(s, 3, &end, &v);
	if (rc || *end)
		return rc ? rc : -EINVAL;
	if (v > 1000)
		return -ERANGE;
	*pm = (uint32_t)v;
	return 0;
}

int conf_parse_uint_range(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	const char *end;
	uint64_t v;
	int rc;

	if (!s)
		return -EINVAL;
	rc = conf_parse_u64(s, &end, &v);
	if (rc)
		return rc;
	if (*end)
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

/* "A:B" (RFC 1997) or "A:B:C" (RFC 8092), parts separated by ':'. */
int conf_parse_parts(const char *s, unsigned n, uint64_t max, uint32_t *out)
{
	const char *p = s, *end;
	uint64_t v;

	for (unsigned i = 0; i < n; i++) {
		if (conf_parse_u64(p, &end, &v) || v > max)
			return -EINVAL;
		out[i] = (uint32_t)v;
		if (i + 1 < n) {
			if (*end != ':')
				return -EINVAL;
			p = end + 1;
		} else if (*end) {
			return -EINVAL;
		}
	}
	return 0;
}

int conf_parse_resolv(const char *text, struct netaddr *out, unsigned max)
{
	unsigned n = 0;
	const char *line = text;

	while (line && *line && n < max) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char buf[256], word[32], addr[NETADDR_STRLEN + 1];

		if (len < sizeof(buf)) {
			memcpy(buf, line, len);
			buf[len] = '\0';
			/* Comments start with # or ; anywhere on the line (as glibc's parser). */
			buf[strcspn(buf, "#;")] = '\0';
			if (sscanf(buf, "%31s %64s", word, addr) == 2 &&
			    strcmp(word, "nameserver") == 0 && !strchr(addr, '%')) {
				struct netaddr a;
				if (netaddr_parse_ip(addr, &a) == 0) {
					a.port = 53;
					out[n++] = a;
				}
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	return (int)n;
}
