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
#define CONF_KEY_LEN  64 /* longer keys are stored cut; key_len keeps the truth */

#define CONF_POS_NO_PARENT ((size_t)-1)

enum conf_node_kind {
	CONF_NODE_SCALAR,
	CONF_NODE_MAPPING,
	CONF_NODE_SEQUENCE,
};

/*
 * Entries are in document order (pre-order), so a parent always precedes
 * its children and the n-th node event of any pass over the same text is
 * entry n. The schema check walks parent links and keys, never the path
 * text, so keys holding '.' or '[' and cut paths cannot mislead it.
 */
struct conf_pos_entry {
	char path[CONF_PATH_LEN];
	char key[CONF_KEY_LEN];     /* mapping values: their key; else "" */
	size_t key_len;             /* the key's real length */
	size_t parent;              /* entry index, CONF_POS_NO_PARENT for the root */
	unsigned key_line, key_col; /* 0 when the node is not a mapping value */
	unsigned line, col;         /* start of the value node, 1-based */
	enum conf_node_kind kind;
	bool is_scalar;
	/* Set by the loader: the node has the wrong kind; conf_pos_rewrite
	 * puts an empty node of kind `want` in its place. */
	bool replace;
	enum conf_node_kind want;
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

/*
 * Re-emits text with every entry marked `replace` swapped for an empty node
 * of its wanted kind ('' , {} or []), everything else kept, so libcyaml can
 * load the well-formed rest while paths (and so positions) stay those of the
 * original. Only for text conf_pos_build accepted into idx. *out is
 * malloc'ed and NUL-terminated. Returns 0, -ENOMEM or -EINVAL.
 */
int conf_pos_rewrite(const struct conf_pos *idx, const char *text, size_t len, char **out,
                     size_t *out_len);

const struct conf_pos_entry *conf_pos_get(const struct conf_pos *idx, const char *path);
/* Position of path's value (or its key, when want_key and it has one);
 * falls back to the nearest ancestor, then 1:1. */
/*
 * Calls fn for every node the schema (conf_schema.c) allows, parents first: "" for
 * the root, "dns.cache.size", "bgp.neighbors[]" for a list's entries. For
 * tests: the schema is the one table keys and kinds are checked against.
 */
void conf_schema_walk(void (*fn)(const char *path, enum conf_node_kind kind, void *ctx), void *ctx);

/* Whether path (or its nearest indexed ancestor) lies in a node marked `replace`. */
bool conf_pos_replaced(const struct conf_pos *idx, const char *path);
void conf_pos_find(const struct conf_pos *idx, const char *path, bool want_key, unsigned *line,
                   unsigned *col);

#endif
