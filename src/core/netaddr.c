#include "core/netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_port(const char *s, uint16_t *port)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v == 0 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int netaddr_parse_ip(const char *s, struct netaddr *out)
{
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, s, out->addr) == 1) {
		out->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, out->addr) == 1) {
		out->family = AF_INET6;
		return 0;
	}
	return -EINVAL;
}

int netaddr_parse(const char *s, uint16_t default_port, struct netaddr *out)
{
	char host[NETADDR_STRLEN];
	const char *colon;
	size_t n;
	uint16_t port = default_port;

	if (!s)
		return -EINVAL;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || (size_t)(close - s - 1) >= sizeof(host))
			return -EINVAL;
		n = (size_t)(close - s - 1);
		memcpy(host, s + 1, n);
		host[n] = '\0';
		if (close[1] == ':') {
			if (parse_port(close + 2, &port))
				return -EINVAL;
		} else if (close[1] != '\0') {
			return -EINVAL;
		}
		if (netaddr_parse_ip(host, out) || out->family != AF_INET6)
			return -EINVAL;
		out->port = port;
		return 0;
	}
	colon = strchr(s, ':');
	if (colon && strchr(colon + 1, ':') == NULL) {
		/* Exactly one colon: IPv4 with a port. */
		n = (size_t)(colon - s);
		if (n >= sizeof(host))
			return -EINVAL;
		memcpy(host, s, n);
		host[n] = '\0';
		if (parse_port(colon + 1, &port))
			return -EINVAL;
		if (netaddr_parse_ip(host, out) || out->family != AF_INET)
			return -EINVAL;
		out->port = port;
		return 0;
	}
	if (netaddr_parse_ip(s, out))
		return -EINVAL;
	out->port = port;
	return 0;
}

int netprefix_parse(const char *s, struct netprefix *out)
{
	char host[NETADDR_STRLEN];
	struct netaddr a;
	const char *slash;
	unsigned long len;
	unsigned max;
	char *end;

	memset(out, 0, sizeof(*out));
	if (!s)
		return -EINVAL;
	slash = strchr(s, '/');
	if (slash) {
		size_t n = (size_t)(slash - s);
		if (n >= sizeof(host) || slash[1] < '0' || slash[1] > '9')
			return -EINVAL;
		memcpy(host, s, n);
		host[n] = '\0';
		errno = 0;
		len = strtoul(slash + 1, &end, 10);
		if (errno || *end)
			return -EINVAL;
	} else {
		if (strlen(s) >= sizeof(host))
			return -EINVAL;
		strcpy(host, s);
		len = ~0ul;
	}
	if (netaddr_parse_ip(host, &a))
		return -EINVAL;
	max = a.family == AF_INET ? 32 : 128;
	if (len == ~0ul)
		len = max;
	if (len > max)
		return -EINVAL;
	out->family = a.family;
	out->len = (uint8_t)len;
	memcpy(out->addr, a.addr, sizeof(a.addr));
	/* Reject host bits beyond the prefix length. */
	for (unsigned bit = (unsigned)len; bit < max; bit++)
		if (out->addr[bit / 8] & (0x80 >> (bit % 8)))
			return -EINVAL;
	return 0;
}

bool netprefix_contains(const struct netprefix *p, const struct netaddr *a)
{
	unsigned full, rest;

	if (p->family != a->family)
		return false;
	full = p->len / 8u;
	rest = p->len % 8u;
	if (memcmp(p->addr, a->addr, full) != 0)
		return false;
	if (rest) {
		uint8_t mask = (uint8_t)(0xff << (8 - rest));
		if ((p->addr[full] & mask) != (a->addr[full] & mask))
			return false;
	}
	return true;
}

bool netaddr_equal_ip(const struct netaddr *a, const struct netaddr *b)
{
	size_t n = a->family == AF_INET ? 4 : 16;
	return a->family == b->family && memcmp(a->addr, b->addr, n) == 0;
}

bool netaddr_equal(const struct netaddr *a, const struct netaddr *b)
{
	return netaddr_equal_ip(a, b) && a->port == b->port;
}

bool netaddr_is_loopback(const struct netaddr *a)
{
	static const uint8_t v6lo[16] = {[15] = 1};
	if (a->family == AF_INET)
		return a->addr[0] == 127;
	return a->family == AF_INET6 && memcmp(a->addr, v6lo, 16) == 0;
}

int netaddr_from_sockaddr(const struct sockaddr *sa, socklen_t salen, struct netaddr *out)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	memset(out, 0, sizeof(*out));
	if (salen < (socklen_t)sizeof(sa->sa_family))
		return -EAFNOSUPPORT;
	if (sa->sa_family == AF_INET && salen >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		out->family = AF_INET;
		memcpy(out->addr, &in->sin_addr, 4);
		out->port = ntohs(in->sin_port);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && salen >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		if (memcmp(&in6->sin6_addr, mapped, sizeof(mapped)) == 0) {
			out->family = AF_INET;
			memcpy(out->addr, (const uint8_t *)&in6->sin6_addr + 12, 4);
		} else {
			out->family = AF_INET6;
			memcpy(out->addr, &in6->sin6_addr, 16);
		}
		out->port = ntohs(in6->sin6_port);
		return 0;
	}
	return -EAFNOSUPPORT;
}

socklen_t netaddr_to_sockaddr(const struct netaddr *a, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;
		in->sin_family = AF_INET;
		in->sin_port = htons(a->port);
		memcpy(&in->sin_addr, a->addr, 4);
		return sizeof(*in);
	}
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(a->port);
	memcpy(&in6->sin6_addr, a->addr, 16);
	return sizeof(*in6);
}

const char *netaddr_format(const struct netaddr *a, bool with_port, char *buf, size_t size)
{
	char ip[INET6_ADDRSTRLEN];

	if (!inet_ntop(a->family == AF_INET ? AF_INET : AF_INET6, a->addr, ip, sizeof(ip)))
		snprintf(ip, sizeof(ip), "?");
	if (!with_port)
		snprintf(buf, size, "%s", ip);
	else if (a->family == AF_INET6)
		snprintf(buf, size, "[%s]:%u", ip, a->port);
	else
		snprintf(buf, size, "%s:%u", ip, a->port);
	return buf;
}

const char *netprefix_format(const struct netprefix *p, char *buf, size_t size)
{
	char ip[INET6_ADDRSTRLEN];

	if (!inet_ntop(p->family == AF_INET ? AF_INET : AF_INET6, p->addr, ip, sizeof(ip)))
		snprintf(ip, sizeof(ip), "?");
	snprintf(buf, size, "%s/%u", ip, p->len);
	return buf;
}
