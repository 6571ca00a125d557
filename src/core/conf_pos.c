/*
 * conf_pos.c: the libyaml pass that maps node paths to line:column, and the
 * message sink shared by the configuration loader.
 */
#include "core/conf_pos.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* Nesting deeper than this is no configuration of ours; refuse it early. */
#define POS_MAX_DEPTH 32
/* Bounds the index of a hostile file; later nodes fall back to ancestors. */
#define POS_MAX_ENTRIES 100000

void conf_sink_vadd(struct conf_sink *s, unsigned line, unsigned col, const char *fmt, va_list ap)
{
	struct conf_diag_msg *m;
	int n;

	if (!s->diag)
		return;
	if (s->diag->count >= CONF_DIAG_MAX) {
		s->diag->overflow++;
		return;
	}
	m = &s->diag->msgs[s->diag->count++];
	m->line = line;
	m->column = col;
	n = snprintf(m->text, sizeof(m->text), "%s:%u:%u: ", s->name, line, col);
	if (n < 0 || (size_t)n >= sizeof(m->text))
		return;
	vsnprintf(m->text + n, sizeof(m->text) - (size_t)n, fmt, ap);
}

void conf_sink_add(struct conf_sink *s, unsigned line, unsigned col, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conf_sink_vadd(s, line, col, fmt, ap);
	va_end(ap);
}

const struct conf_pos_entry *conf_pos_get(const struct conf_pos *idx, const char *path)
{
	for (size_t i = 0; i < idx->n; i++)
		if (strcmp(idx->e[i].path, path) == 0)
			return &idx->e[i];
	return NULL;
}

bool conf_pos_replaced(const struct conf_pos *idx, const char *path)
{
	char p[CONF_PATH_LEN];
	const struct conf_pos_entry *e;

	snprintf(p, sizeof(p), "%s", path);
	while (!(e = conf_pos_get(idx, p)) && p[0]) {
		char *dot = strrchr(p, '.');
		char *br = strrchr(p, '[');
		char *cut = dot > br ? dot : br;
		if (cut)
			*cut = '\0';
		else
			p[0] = '\0';
	}
	while (e) {
		if (e->replace)
			return true;
		e = e->parent == CONF_POS_NO_PARENT ? NULL : &idx->e[e->parent];
	}
	return false;
}

void conf_pos_find(const struct conf_pos *idx, const char *path, bool want_key, unsigned *line,
                   unsigned *col)
{
	char p[CONF_PATH_LEN];
	const struct conf_pos_entry *e;

	snprintf(p, sizeof(p), "%s", path);
	for (;;) {
		e = conf_pos_get(idx, p);
		if (e) {
			if (want_key && e->key_line) {
				*line = e->key_line;
				*col = e->key_col;
			} else {
				*line = e->line;
				*col = e->col;
			}
			return;
		}
		if (!p[0])
			break;
		/* Strip the last component: ".key" or "[n]". */
		char *dot = strrchr(p, '.');
		char *br = strrchr(p, '[');
		char *cut = dot > br ? dot : br;
		if (cut)
			*cut = '\0';
		else
			p[0] = '\0';
		/* An ancestor stands in for a missing node: point at its key if it has one. */
		want_key = true;
	}
	*line = 1;
	*col = 1;
}

struct frame {
	bool is_map;
	bool want_key;  /* maps: next node is a key */
	unsigned index; /* sequences: next entry index */
	char key[CONF_PATH_LEN];
	size_t key_len;
	unsigned key_line, key_col;
	size_t path_len; /* this container's path length in pathbuf */
	size_t entry;    /* this container's index entry (CONF_POS_NO_PARENT past the cap) */
};

static int push_entry(struct conf_pos *idx, const char *path, const struct frame *parent,
                      unsigned l, unsigned c, enum conf_node_kind kind)
{
	struct conf_pos_entry *e;

	if (idx->n >= POS_MAX_ENTRIES)
		return 0;
	if (idx->n == idx->cap) {
		size_t cap = idx->cap ? idx->cap * 2 : 64;
		e = realloc(idx->e, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		idx->e = e;
		idx->cap = cap;
	}
	e = &idx->e[idx->n++];
	memset(e, 0, sizeof(*e));
	snprintf(e->path, sizeof(e->path), "%s", path);
	e->parent = parent ? parent->entry : CONF_POS_NO_PARENT;
	if (parent && parent->is_map) {
		size_t kl = strnlen(parent->key, sizeof(e->key) - 1);
		memcpy(e->key, parent->key, kl); /* cut: key_len tells schema_field */
		e->key[kl] = '\0';
		e->key_len = parent->key_len;
		e->key_line = parent->key_line;
		e->key_col = parent->key_col;
	}
	e->line = l;
	e->col = c;
	e->kind = kind;
	e->is_scalar = kind == CONF_NODE_SCALAR;
	return 0;
}

void conf_pos_free(struct conf_pos *idx)
{
	free(idx->e);
	idx->e = NULL;
	idx->n = idx->cap = 0;
}

int conf_pos_build(struct conf_pos *idx, const char *text, size_t len, struct conf_sink *s)
{
	struct frame st[POS_MAX_DEPTH];
	char path[CONF_PATH_LEN * 2];
	yaml_parser_t parser;
	yaml_event_t ev;
	int depth = 0, docs = 0, rc = 0;
	bool done = false;

	memset(idx, 0, sizeof(*idx));
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	path[0] = '\0';

	while (!done) {
		if (!yaml_parser_parse(&parser, &ev)) {
			conf_sink_add(
			    s, (unsigned)parser.problem_mark.line + 1,
			    (unsigned)parser.problem_mark.column + 1, "YAML syntax: %s%s%s",
			    parser.problem ? parser.problem : "error", parser.context ? " " : "",
			    parser.context ? parser.context : "");
			rc = -EINVAL;
			break;
		}
		unsigned l = (unsigned)ev.start_mark.line + 1,
		         c = (unsigned)ev.start_mark.column + 1;
		struct frame *top = depth ? &st[depth - 1] : NULL;

		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1) {
				conf_sink_add(s, l, c, "only one YAML document is allowed");
				rc = -EINVAL;
				done = true;
			}
			break;
		case YAML_ALIAS_EVENT:
			conf_sink_add(s, l, c, "YAML aliases are not supported");
			rc = -EINVAL;
			done = true;
			break;
		case YAML_SCALAR_EVENT:
		case YAML_MAPPING_START_EVENT:
		case YAML_SEQUENCE_START_EVENT: {
			bool scalar = ev.type == YAML_SCALAR_EVENT;
			enum conf_node_kind kind = scalar ? CONF_NODE_SCALAR
			                           : ev.type == YAML_MAPPING_START_EVENT
			                               ? CONF_NODE_MAPPING
			                               : CONF_NODE_SEQUENCE;
			size_t base = top ? top->path_len : 0;

			if (top && top->is_map && top->want_key) {
				if (!scalar) {
					conf_sink_add(s, l, c,
					              "mapping keys must be plain strings");
					rc = -EINVAL;
					done = true;
					break;
				}
				snprintf(top->key, sizeof(top->key), "%s",
				         (const char *)ev.data.scalar.value);
				top->key_len = ev.data.scalar.length;
				top->key_line = l;
				top->key_col = c;
				top->want_key = false;
				/* Duplicate keys: libcyaml would let the last one win. */
				snprintf(path + base, sizeof(path) - base, "%s%s", base ? "." : "",
				         top->key);
				if (conf_pos_get(idx, path)) {
					conf_sink_add(s, l, c, "duplicate key '%s'", top->key);
					rc = -EINVAL;
				}
				path[base] = '\0';
				break;
			}
			if (top && top->is_map) {
				snprintf(path + base, sizeof(path) - base, "%s%s", base ? "." : "",
				         top->key);
				top->want_key = true;
			} else if (top) {
				snprintf(path + base, sizeof(path) - base, "[%u]", top->index++);
			}
			if (strlen(path) >= CONF_PATH_LEN)
				path[CONF_PATH_LEN - 1] = '\0';
			size_t self = idx->n < POS_MAX_ENTRIES ? idx->n : CONF_POS_NO_PARENT;
			if (push_entry(idx, path, top, l, c, kind)) {
				rc = -ENOMEM;
				done = true;
				break;
			}
			if (scalar) {
				path[base] = '\0';
				break;
			}
			if (depth == POS_MAX_DEPTH) {
				conf_sink_add(s, l, c, "nesting deeper than %d levels",
				              POS_MAX_DEPTH);
				rc = -EINVAL;
				done = true;
				break;
			}
			struct frame *f = &st[depth++];
			memset(f, 0, sizeof(*f));
			f->is_map = ev.type == YAML_MAPPING_START_EVENT;
			f->want_key = true;
			f->path_len = strlen(path);
			f->entry = self;
			break;
		}
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			if (depth) {
				depth--;
				path[depth ? st[depth - 1].path_len : 0] = '\0';
			}
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	if (rc == -ENOMEM)
		conf_pos_free(idx);
	return rc;
}

/* ---- rewrite: the same document with wrong-kind nodes emptied ---------- */

/* The rewrite re-quotes scalars; bound it well above the 1 MiB input cap. */
#define REWRITE_MAX (8u << 20)

struct outbuf {
	char *p;
	size_t len, cap;
	bool too_big, oom;
};

static int out_write(void *data, unsigned char *buf, size_t size)
{
	struct outbuf *o = data;

	if (o->len + size + 1 > REWRITE_MAX) {
		o->too_big = true;
		return 0;
	}
	if (o->len + size + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 4096;
		while (cap < o->len + size + 1)
			cap *= 2;
		char *np = realloc(o->p, cap);
		if (!np) {
			o->oom = true;
			return 0;
		}
		o->p = np;
		o->cap = cap;
	}
	memcpy(o->p + o->len, buf, size);
	o->len += size;
	o->p[o->len] = '\0';
	return 1;
}

/* Index of the first entry after entry k's subtree (pre-order: contiguous). */
static size_t subtree_end(const struct conf_pos *idx, size_t k)
{
	size_t j = k + 1;

	for (; j < idx->n; j++) {
		size_t p = idx->e[j].parent;
		while (p != CONF_POS_NO_PARENT && p > k)
			p = idx->e[p].parent;
		if (p != k)
			break;
	}
	return j;
}

static int emit_empty(yaml_emitter_t *em, enum conf_node_kind kind)
{
	yaml_event_t ev;

	switch (kind) {
	case CONF_NODE_SCALAR:
		if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)"", 0, 1, 1,
		                                  YAML_SINGLE_QUOTED_SCALAR_STYLE))
			return -ENOMEM;
		return yaml_emitter_emit(em, &ev) ? 0 : -EINVAL;
	case CONF_NODE_MAPPING:
		if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
		                                         YAML_FLOW_MAPPING_STYLE))
			return -ENOMEM;
		if (!yaml_emitter_emit(em, &ev))
			return -EINVAL;
		if (!yaml_mapping_end_event_initialize(&ev))
			return -ENOMEM;
		return yaml_emitter_emit(em, &ev) ? 0 : -EINVAL;
	case CONF_NODE_SEQUENCE:
		if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
		                                          YAML_FLOW_SEQUENCE_STYLE))
			return -ENOMEM;
		if (!yaml_emitter_emit(em, &ev))
			return -EINVAL;
		if (!yaml_sequence_end_event_initialize(&ev))
			return -ENOMEM;
		return yaml_emitter_emit(em, &ev) ? 0 : -EINVAL;
	}
	return -EINVAL;
}

int conf_pos_rewrite(const struct conf_pos *idx, const char *text, size_t len, char **out,
                     size_t *out_len)
{
	/* Per open container: is it a mapping, and is its next node a key. */
	bool is_map[POS_MAX_DEPTH], want_key[POS_MAX_DEPTH];
	struct outbuf o = {0};
	yaml_parser_t parser;
	yaml_emitter_t em;
	yaml_event_t ev;
	size_t node = 0; /* entry index of the next value node */
	int depth = 0, skip = 0, rc = 0;
	bool done = false;

	*out = NULL;
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	if (!yaml_emitter_initialize(&em)) {
		yaml_parser_delete(&parser);
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	yaml_emitter_set_output(&em, out_write, &o);
	yaml_emitter_set_unicode(&em, 1);
	yaml_emitter_set_width(&em, -1);

	while (!done && !rc) {
		if (!yaml_parser_parse(&parser, &ev)) {
			rc = -EINVAL; /* conf_pos_build accepted this text: cannot happen */
			break;
		}
		if (ev.type == YAML_STREAM_END_EVENT)
			done = true;
		if (skip) {
			/* Inside a replaced collection: drop everything to its end. */
			if (ev.type == YAML_MAPPING_START_EVENT ||
			    ev.type == YAML_SEQUENCE_START_EVENT)
				skip++;
			else if (ev.type == YAML_MAPPING_END_EVENT ||
			         ev.type == YAML_SEQUENCE_END_EVENT)
				skip--;
			yaml_event_delete(&ev);
			continue;
		}
		bool is_node = ev.type == YAML_SCALAR_EVENT ||
		               ev.type == YAML_MAPPING_START_EVENT ||
		               ev.type == YAML_SEQUENCE_START_EVENT;
		if (is_node && depth && is_map[depth - 1] && want_key[depth - 1]) {
			/* A key: not an index entry, always kept. */
			want_key[depth - 1] = false;
			is_node = false;
		} else if (is_node && depth && is_map[depth - 1]) {
			want_key[depth - 1] = true;
		}
		if (is_node) {
			size_t k = node++;
			if (k < idx->n && idx->e[k].replace) {
				if (ev.type != YAML_SCALAR_EVENT) {
					skip = 1;
					node = subtree_end(idx, k);
				}
				yaml_event_delete(&ev);
				rc = emit_empty(&em, idx->e[k].want);
				continue;
			}
			if (ev.type != YAML_SCALAR_EVENT) {
				if (depth == POS_MAX_DEPTH) {
					yaml_event_delete(&ev);
					rc = -EINVAL;
					break;
				}
				is_map[depth] = ev.type == YAML_MAPPING_START_EVENT;
				want_key[depth] = true;
				depth++;
			}
		} else if (ev.type == YAML_MAPPING_END_EVENT ||
		           ev.type == YAML_SEQUENCE_END_EVENT) {
			if (depth)
				depth--;
		}
		/* The emitter owns the event from here, failed or not. */
		if (!yaml_emitter_emit(&em, &ev))
			rc = em.error == YAML_MEMORY_ERROR || o.oom ? -ENOMEM : -EINVAL;
	}
	yaml_emitter_delete(&em);
	yaml_parser_delete(&parser);
	if (rc || !o.p) {
		free(o.p);
		return rc ? rc : -EINVAL;
	}
	*out = o.p;
	*out_len = o.len;
	return 0;
}
