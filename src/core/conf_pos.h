/*
 * conf_pos.h: internal to the configuration loader (conf*.c).
 *
 * A position index from one libyaml event pass: every node's path
 * ("bgp.neighbors[0].hold-time", root "") with the marks of its key and its
 * value. libcyaml 1.3 reports no line or column, so every message the loader
 * emits, libcyaml's own included, is placed through this index.
 *
 * Ownership: the index owns its entry array (heap, freed by conf_pos_free);
 * nothing in it points into the text.
 */
#ifndef ANYCACHE_CORE_CONF_POS_H
#define ANYCACHE_CORE_CONF_POS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/conf.h"

#define CONF_PATH_LEN 128

struct conf_pos_entry {
	char path[CONF_PATH_LEN];
	unsigned key_line, key_col; /* 0 when the node is not a mapping value */
	unsigned line, col;         /* start of the value node, 1-based */
	bool is_scalar;
};

struct conf_pos {
	struct conf_pos_entry *e;
	size_t n, cap;
};

/* Message sink: name of the file for the "FILE:L:C: " prefix. */
struct conf_sink {
	const char *name;
	struct conf_diag *diag;
};

void conf_sink_add(struct conf_sink *s, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void conf_sink_vadd(struct conf_sink *s, unsigned line, unsigned col, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/*
 * Builds the index. Syntax errors, aliases, duplicate keys, non-scalar keys
 * and extra documents go to the sink. Returns 0, -EINVAL (structure
 * unusable: do not hand the text to libcyaml) or -ENOMEM.
 */
int conf_pos_build(struct conf_pos *idx, const char *text, size_t len, struct conf_sink *s);
void conf_pos_free(struct conf_pos *idx);

const struct conf_pos_entry *conf_pos_get(const struct conf_pos *idx, const char *path);
/* Position of path's value (or its key, when want_key and it has one);
 * falls back to the nearest ancestor, then 1:1. */
void conf_pos_find(const struct conf_pos *idx, const char *path, bool want_key, unsigned *line,
                   unsigned *col);

#endif
