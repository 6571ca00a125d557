/*
 * addrwatch.h: the host's address events (rtnetlink), so health can take a
 * VIP down the moment its address is removed instead of waiting for probes.
 *
 * An address deleted from `lo` leaves a socket bound to it open but deaf
 * (PLATFORM.md): nothing on the data path notices, so we listen to the
 * kernel's RTM_NEWADDR/RTM_DELADDR multicast groups (RTMGRP_IPV4_IFADDR,
 * RTMGRP_IPV6_IFADDR; rtnetlink(7)).
 *
 * Threads: glue on one loop; fn runs on that loop's thread.
 * Lifetime: addrwatch_free() before loop_free() of its loop.
 */
#ifndef ANYCACHE_CORE_ADDRWATCH_H
#define ANYCACHE_CORE_ADDRWATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/netaddr.h"

struct loop;
struct addrwatch;

/*
 * One address event: addr (port 0) was added (present) or removed. addr NULL:
 * the kernel dropped events (the socket overran, ENOBUFS), so every address
 * must be checked again another way.
 */
typedef void (*addrwatch_fn)(void *arg, const struct netaddr *addr, bool present);

int addrwatch_new(struct loop *l, addrwatch_fn fn, void *arg, struct addrwatch **out);
/* Closes the socket through the loop; the watch is freed once the kernel is done. */
void addrwatch_free(struct addrwatch *w);

/*
 * Pure: parses one rtnetlink datagram (one or more nlmsghdr) and calls fn
 * for every RTM_NEWADDR/RTM_DELADDR of family AF_INET/AF_INET6. The
 * interface's own address is IFA_LOCAL when present (IPv4 point-to-point
 * puts the peer in IFA_ADDRESS), IFA_ADDRESS otherwise. Other message types
 * are skipped. Returns the number of events, or -EBADMSG for a truncated
 * or inconsistent message (events before it were delivered).
 */
int addrwatch_parse(const uint8_t *buf, size_t len, addrwatch_fn fn, void *arg);

#endif
