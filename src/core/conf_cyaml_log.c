/*
 * conf_cyaml_log.c: libcyaml's log scraped into one FILE:LINE:COLUMN message.
 *
 * The structure check (conf_schema.c) runs first, so libcyaml should only
 * fail on what that check does not know; when it does, its log is the only
 * account of why and where.
 */
#include <stdio.h>
#include <string.h>

#include "core/conf_int.h"

void conf_cyaml_log_fn(cyaml_log_t level, void *ctx, const char *fmt, va_list args)
{
	struct conf_cyaml_log *lg = ctx;
	int n;

	if (level < CYAML_LOG_ERROR || lg->len + 1 >= sizeof(lg->buf))
		return;
	n = vsnprintf(lg->buf + lg->len, sizeof(lg->buf) - lg->len, fmt, args);
	if (n > 0)
		lg->len += (size_t)n < sizeof(lg->buf) - lg->len ? (size_t)n
		                                                 : sizeof(lg->buf) - lg->len - 1;
}

/* "MAPPING", "SEQUENCE_START", "SCALAR", "STRING": what an operator calls it. */
static const char *kind_name(const char *w)
{
	if (strncmp(w, "MAPPING", 7) == 0)
		return "a mapping";
	if (strncmp(w, "SEQUENCE", 8) == 0)
		return "a list";
	return "a single value";
}

/*
 * libcyaml 1.3 logs "Load: <message>", then "Load: Backtrace:" and one line
 * per level, innermost first. 1.3.0 writes "  in mapping field: KEY" and
 * "  in sequence entry: N"; Debian's 1.3.1 writes "  in mapping field 'KEY'
 * (line: L, column: C)" and "  in sequence entry 'N' (...)". N counts the
 * entries begun, so the index is N - 1. "  in mapping" carries no key. Its
 * positions are those of the parser's last event, not of the node, so the
 * path is rebuilt and placed through our own index instead.
 */
void conf_cyaml_log_report(struct ld *ld, const struct conf_cyaml_log *lg, cyaml_err_t err)
{
	char msg[256] = "", path[CONF_PATH_LEN] = "";
	char comps[16][CONF_PATH_LEN];
	unsigned nc = 0;
	const char *p = lg->buf;
	bool at_key = false;

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char line[256], key[CONF_PATH_LEN];
		unsigned idx;

		PATH(line, "%.*s", (int)(len < 255 ? len : 255), p);
		if (strncmp(line, "Load: Backtrace:", 16) == 0) {
			/* nothing */
		} else if (strncmp(line, "Load: ", 6) == 0 && !msg[0]) {
			PATH(msg, "%s", line + 6);
		} else if (nc < 16 && (sscanf(line, "  in mapping field: %127s", key) == 1 ||
		                       sscanf(line, "  in mapping field '%127[^']'", key) == 1)) {
			PATH(comps[nc++], ".%s", key);
		} else if (nc < 16 && (sscanf(line, "  in sequence entry: %u", &idx) == 1 ||
		                       sscanf(line, "  in sequence entry '%u'", &idx) == 1)) {
			PATH(comps[nc++], "[%u]", idx ? idx - 1 : 0);
		}
		p = nl ? nl + 1 : p + len;
	}
	for (unsigned i = nc; i-- > 0;) {
		size_t l = strlen(path);
		conf_path_fmt(path + l, sizeof(path) - l, "%s", comps[i]);
	}
	if (strncmp(msg, "Unexpected key: ", 16) == 0) {
		size_t l = strlen(path);
		conf_path_fmt(path + l, sizeof(path) - l, ".%s", msg + 16);
		at_key = true;
	}
	const char *show = path[0] == '.' ? path + 1 : path;
	memmove(path, show, strlen(show) + 1);
	const char *what = path[0] ? path : "top level";
	char want[32], got[32];
	if (at_key) {
		conf_err_at(ld, path, true, "unknown key '%s'", path);
	} else if (sscanf(msg, "Expecting %31[A-Z_], got event: %31[A-Z_]", want, got) == 2) {
		conf_err_at(ld, path, false, "%s: wrong type: expected %s, got %s", what,
		            kind_name(want), kind_name(got));
	} else {
		conf_err_at(ld, path, false, "%s: %s", what, msg[0] ? msg : cyaml_strerror(err));
	}
}
