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
	unsigned key_line, key_col;
	size_t path_len; /* this container's path length in pathbuf */
};

static int push_entry(struct conf_pos *idx, const char *path, unsigned kl, unsigned kc, unsigned l,
                      unsigned c, bool scalar)
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
	snprintf(e->path, sizeof(e->path), "%s", path);
	e->key_line = kl;
	e->key_col = kc;
	e->line = l;
	e->col = c;
	e->is_scalar = scalar;
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
			unsigned kl = 0, kc = 0;
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
				kl = top->key_line;
				kc = top->key_col;
				top->want_key = true;
			} else if (top) {
				snprintf(path + base, sizeof(path) - base, "[%u]", top->index++);
			}
			if (strlen(path) >= CONF_PATH_LEN)
				path[CONF_PATH_LEN - 1] = '\0';
			if (push_entry(idx, path, kl, kc, l, c, scalar)) {
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
