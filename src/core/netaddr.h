/*
 * netaddr.h: IPv4/IPv6 addresses, address:port pairs and prefixes as values.
 *
 * Used by the configuration (listen, allow, upstreams, neighbors, announce),
 * the DNS access check and the BGP speaker. Pure: no sockets, no resolver.
 * Host names are never accepted: a daemon that serves DNS must not depend on
 * DNS to read its own configuration.
 */
#ifndef ANYCACHE_CORE_NETADDR_H
#define ANYCACHE_CORE_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct netaddr {
	int family;       /* AF_INET or AF_INET6; 0 = unset */
	uint8_t addr[16]; /* network byte order; IPv4 uses the first 4 bytes */
	uint16_t port;    /* host byte order; 0 = unset */
};

struct netprefix {
	int family;
	uint8_t addr[16];
	uint8_t len; /* 0..32 or 0..128 */
};

/* Longest text form: "[" IPv6 "]:" port, or a prefix, plus NUL. */
#define NETADDR_STRLEN 64

/*
 * Parses "192.0.2.1", "192.0.2.1:53", "2001:db8::1" or "[2001:db8::1]:53".
 * A missing port becomes default_port. Returns 0 or -EINVAL.
 */
int netaddr_parse(const char *s, uint16_t default_port, struct netaddr *out);

/* Parses a bare address (no port); returns 0 or -EINVAL. */
int netaddr_parse_ip(const char *s, struct netaddr *out);

/*
 * Parses "192.0.2.0/24" or "2001:db8::/32"; a bare address is a host prefix
 * (/32 or /128). Bits set beyond the prefix length are an error (-EINVAL):
 * "192.0.2.1/24" is almost always a typo an operator wants to hear about.
 */
int netprefix_parse(const char *s, struct netprefix *out);

bool netprefix_contains(const struct netprefix *p, const struct netaddr *a);
bool netaddr_equal_ip(const struct netaddr *a, const struct netaddr *b);
bool netaddr_equal(const struct netaddr *a, const struct netaddr *b);
bool netaddr_is_loopback(const struct netaddr *a);

/* Converts; an IPv4-mapped IPv6 source (::ffff:a.b.c.d) becomes AF_INET. */
int netaddr_from_sockaddr(const struct sockaddr *sa, socklen_t salen, struct netaddr *out);
/* Fills a sockaddr_in/sockaddr_in6 in *ss; returns its length. */
socklen_t netaddr_to_sockaddr(const struct netaddr *a, struct sockaddr_storage *ss);

/* "192.0.2.1", or with_port: "192.0.2.1:53" / "[2001:db8::1]:53". */
const char *netaddr_format(const struct netaddr *a, bool with_port, char *buf, size_t size);
const char *netprefix_format(const struct netprefix *p, char *buf, size_t size);

#endif
