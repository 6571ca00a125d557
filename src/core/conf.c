/*
 * conf.c: the configuration loader's entry points.
 *
 * libcyaml loads every scalar as text into a raw tree (conf_schema.c). It
 * stops at its first error, so structure is judged first against the same
 * schema (conf_schema_check), and libcyaml loads a rewrite where each
 * wrong-kind node is emptied, so the well-formed rest still loads. Values
 * are then converted (conf_section.c), where each error is recorded and the
 * pass goes on; messages about a replaced node (it is reported once already)
 * are dropped. One run shows every mistake in the file.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/conf_int.h"

/* NULL env: a machine with one CPU, no host name and no resolv.conf. */
static const struct conf_env no_env = {.ncpu = 1};

/* ---- loader context ------------------------------------------------------ */

void conf_err_at(struct ld *ld, const char *path, bool at_key, const char *fmt, ...)
{
	unsigned l, c;
	va_list ap;

	ld->errors = true;
	/* The wrong kind was reported at the node; what follows from emptying it is not news. */
	if (ld->replaced && conf_pos_replaced(&ld->pos, path))
		return;
	conf_pos_find(&ld->pos, path, at_key, &l, &c);
	va_start(ap, fmt);
	conf_sink_vadd(&ld->sink, l, c, fmt, ap);
	va_end(ap);
}

bool conf_present(struct ld *ld, const char *path)
{
	return conf_pos_get(&ld->pos, path) != NULL;
}

void conf_path_fmt(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
}

/* ---- entry points ------------------------------------------------------------------- */

static void sort_diag(struct conf_diag *d)
{
	/* Stable insertion sort by position: messages read top to bottom. */
	for (unsigned i = 1; i < d->count; i++) {
		struct conf_diag_msg m = d->msgs[i];
		unsigned j = i;
		while (j > 0 &&
		       (d->msgs[j - 1].line > m.line ||
		        (d->msgs[j - 1].line == m.line && d->msgs[j - 1].column > m.column))) {
			d->msgs[j] = d->msgs[j - 1];
			j--;
		}
		d->msgs[j] = m;
	}
}

int conf_load_buffer(const char *text, size_t len, const char *name, const struct conf_env *env,
                     struct conf *out, struct conf_diag *diag)
{
	struct conf_diag local;
	struct raw_conf *raw = NULL;
	struct conf_cyaml_log lg = {.len = 0};
	struct ld ld;
	cyaml_config_t cfg = {
	    .log_fn = conf_cyaml_log_fn,
	    .log_ctx = &lg,
	    .mem_fn = cyaml_mem,
	    .log_level = CYAML_LOG_ERROR,
	    .flags = CYAML_CFG_NO_ALIAS | CYAML_CFG_IGNORE_UNKNOWN_KEYS,
	};
	int rc;

	if (!diag)
		diag = &local;
	memset(diag, 0, sizeof(*diag));
	memset(&ld, 0, sizeof(ld));
	ld.sink.name = name ? name : "<config>";
	ld.sink.diag = diag;
	ld.env = env ? env : &no_env;
	lg.buf[0] = '\0';

	conf_section_defaults(out, ld.env);
	rc = conf_pos_build(&ld.pos, text, len, &ld.sink);
	if (rc == -ENOMEM)
		return rc;
	if (rc) {
		conf_pos_free(&ld.pos);
		sort_diag(diag);
		return -EINVAL;
	}

	const struct conf_pos_entry *root = conf_pos_get(&ld.pos, "");
	if (root && root->is_scalar) {
		/* An empty document is a null scalar: all defaults. Anything else is not a map. */
		bool empty = true;
		for (size_t i = 0; i < len; i++) {
			const char *l = text + i;
			if (*l == '#') {
				while (i < len && text[i] != '\n')
					i++;
			} else if (!isspace((unsigned char)*l) && *l != '-' && *l != '.') {
				empty = false;
			}
		}
		if (!empty)
			conf_err_at(&ld, "", false, "top level: expected a mapping");
		root = NULL;
	}
	/* A scalar document: empty means all defaults; otherwise its error stands alone. */
	bool loaded = !root && !ld.errors;
	if (root) {
		const char *yaml = text;
		size_t yaml_len = len;
		char *rewritten = NULL;

		rc = conf_schema_check(&ld);
		if (!rc && ld.replaced)
			rc = conf_pos_rewrite(&ld.pos, text, len, &rewritten, &yaml_len);
		if (rc == -ENOMEM) {
			conf_pos_free(&ld.pos);
			return rc;
		}
		if (rewritten)
			yaml = rewritten;
		if (!rc) {
			cyaml_err_t e =
			    cyaml_load_data((const uint8_t *)yaml, yaml_len, &cfg, &conf_schema_top,
			                    (cyaml_data_t **)&raw, NULL);
			if (e == CYAML_ERR_OOM) {
				free(rewritten);
				conf_pos_free(&ld.pos);
				return -ENOMEM;
			}
			if (e != CYAML_OK) {
				/* Structure was checked above; only what that check does not
				 * know can land here (placed through libcyaml's backtrace). */
				conf_cyaml_log_report(&ld, &lg, e);
				raw = NULL;
			} else {
				loaded = true;
			}
		} else {
			conf_sink_add(&ld.sink, 1, 1, "cannot rewrite the document for loading");
			ld.errors = true;
		}
		free(rewritten);
	}
	if (loaded) {
		struct raw_conf none = {0};
		const struct raw_conf *r = raw ? raw : &none;
		conf_section_load(&ld, r, out);
	}
	if (raw)
		cyaml_free(&cfg, &conf_schema_top, raw, 0);
	conf_pos_free(&ld.pos);
	sort_diag(diag);
	return ld.errors ? -EINVAL : 0;
}

int conf_load_file(const char *path, const struct conf_env *env, struct conf *out,
                   struct conf_diag *diag)
{
	struct conf_sink s = {.name = path, .diag = diag};
	size_t len;
	int err = 0, rc;
	char *text = conf_env_read_file(path, &len, &err);

	if (!text) {
		if (diag) {
			memset(diag, 0, sizeof(*diag));
			conf_sink_add(&s, 1, 1, "cannot read: %s", strerror(-err));
		}
		return err;
	}
	rc = conf_load_buffer(text, len, path, env, out, diag);
	free(text);
	return rc;
}

void conf_diag_print(FILE *f, const struct conf_diag *diag)
{
	for (unsigned i = 0; i < diag->count; i++)
		fprintf(f, "%s\n", diag->msgs[i].text);
	if (diag->overflow)
		fprintf(f, "(%u more errors not shown)\n", diag->overflow);
}

void conf_default(struct conf *out, const struct conf_env *env)
{
	if (!env)
		env = &no_env;
	conf_section_defaults(out, env);
	conf_section_default_lists(out, env);
}
