/*
 * drain_state.h: the operator's drains that outlive a restart (control.state).
 *
 * `anycachectl drain [VIP]` must hold across restarts and reloads until
 * `anycachectl undrain`, as exabgp healthcheck's "disable" file did. The set
 * of drained VIPs (their listen address and port) and an "every VIP" flag
 * are written to one small JSON file after every change and read at start:
 *   {"v": 1, "all": false, "drained": ["192.0.2.53:53"]}
 * Addresses no longer configured stay in the file (harmless; they drain that
 * VIP again if it comes back). Writes are atomic (a temporary file, fsync,
 * rename, fsync of the directory): a crash leaves the old file or the new.
 *
 * The codec (parse/format) is pure; load/save do the file I/O, on the
 * control thread (one write per operator command).
 */
#ifndef ANYCACHE_CORE_DRAIN_STATE_H
#define ANYCACHE_CORE_DRAIN_STATE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/netaddr.h"

#define DRAIN_STATE_MAX      64
#define DRAIN_STATE_FILE_MAX 65536

struct drain_state {
	bool all;
	unsigned n;
	struct netaddr vip[DRAIN_STATE_MAX]; /* address and port */
};

/* 0, or -EBADMSG with a sentence in why. */
int drain_state_parse(const char *text, size_t len, struct drain_state *out, char *why,
                      size_t whylen);
/* The file's text ("\n"-terminated, malloc'd), or NULL (ENOMEM). */
char *drain_state_format(const struct drain_state *s, size_t *len);

/* 0 (a missing file is an empty state), -errno, -EBADMSG (why says). */
int drain_state_load(const char *path, struct drain_state *out, char *why, size_t whylen);
/* Creates the directory if needed (0755). 0 or -errno. */
int drain_state_save(const char *path, const struct drain_state *s);

/* Whether VIP a (address and port) is drained: `all`, or listed. */
bool drain_state_has(const struct drain_state *s, const struct netaddr *a);
/* Adds or removes one VIP. -ENOSPC when full. */
int drain_state_set(struct drain_state *s, const struct netaddr *a, bool on);

#endif
