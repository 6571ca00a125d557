/* prom.c: the Prometheus text format writer (see prom.h). */
#include "core/prom.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void prom_init(struct prom *p)
{
	memset(p, 0, sizeof(*p));
}

void prom_free(struct prom *p)
{
	free(p->buf);
	prom_init(p);
}

static bool reserve(struct prom *p, size_t more)
{
	if (p->err)
		return false;
	if (p->len + more + 1 <= p->cap)
		return true;
	size_t cap = p->cap ? p->cap : 4096;
	while (cap < p->len + more + 1)
		cap *= 2;
	char *b = realloc(p->buf, cap);
	if (!b) {
		p->err = -ENOMEM;
		return false;
	}
	p->buf = b;
	p->cap = cap;
	return true;
}

static void put(struct prom *p, const char *s, size_t n)
{
	if (!reserve(p, n))
		return;
	memcpy(p->buf + p->len, s, n);
	p->len += n;
	p->buf[p->len] = '\0';
}

static void puts_(struct prom *p, const char *s)
{
	put(p, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void putf(struct prom *p, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		if (!p->err)
			p->err = -EINVAL;
		return;
	}
	put(p, tmp, (size_t)n);
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* for metrics; labels the same without ':'. */
static bool name_ok(const char *s, bool label)
{
	if (!s || !*s)
		return false;
	for (const char *c = s; *c; c++) {
		bool alpha = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_' ||
		             (!label && *c == ':');
		if (!alpha && !(c > s && *c >= '0' && *c <= '9'))
			return false;
	}
	return true;
}

static void check_name(struct prom *p, const char *s, bool label)
{
	if (!name_ok(s, label) && !p->err)
		p->err = -EINVAL;
}

/* HELP text escapes backslash and newline; label values also the double quote. */
static void put_escaped(struct prom *p, const char *s, bool quote)
{
	for (; s && *s; s++) {
		if (*s == '\\')
			puts_(p, "\\\\");
		else if (*s == '\n')
			puts_(p, "\\n");
		else if (quote && *s == '"')
			puts_(p, "\\\"");
		else
			put(p, s, 1);
	}
}

void prom_family(struct prom *p, const char *name, const char *type, const char *help)
{
	check_name(p, name, false);
	if (strcmp(type, "counter") && strcmp(type, "gauge") && strcmp(type, "histogram") &&
	    strcmp(type, "untyped") && !p->err)
		p->err = -EINVAL;
	puts_(p, "# HELP ");
	puts_(p, name);
	puts_(p, " ");
	put_escaped(p, help, false);
	puts_(p, "\n# TYPE ");
	puts_(p, name);
	puts_(p, " ");
	puts_(p, type);
	puts_(p, "\n");
}

static void put_labels(struct prom *p, const struct prom_label *l, unsigned n, const char *le)
{
	if ((n > PROM_MAX_LABELS || (n && !l)) && !p->err)
		p->err = -EINVAL;
	if (p->err || (n == 0 && !le))
		return;
	puts_(p, "{");
	for (unsigned i = 0; i < n; i++) {
		check_name(p, l[i].name, true);
		if (i)
			puts_(p, ",");
		puts_(p, l[i].name);
		puts_(p, "=\"");
		put_escaped(p, l[i].value, true);
		puts_(p, "\"");
	}
	if (le) {
		puts_(p, n ? ",le=\"" : "le=\"");
		puts_(p, le);
		puts_(p, "\"");
	}
	puts_(p, "}");
}

/* The shortest text that reads back as exactly v (0.0001, not 0.000100000000000000005). */
static void fmt_double(char *out, size_t cap, double v)
{
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(out, cap, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

static void put_value(struct prom *p, double v)
{
	char tmp[40];

	if (isnan(v))
		puts_(p, "NaN");
	else if (isinf(v))
		puts_(p, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) <= 9007199254740992.0) /* 2^53: exact */
		putf(p, "%lld", (long long)v);
	else {
		fmt_double(tmp, sizeof(tmp), v);
		puts_(p, tmp);
	}
}

void prom_sample(struct prom *p, const char *name, const struct prom_label *labels, unsigned n,
                 double value)
{
	check_name(p, name, false);
	puts_(p, name);
	put_labels(p, labels, n, NULL);
	puts_(p, " ");
	put_value(p, value);
	puts_(p, "\n");
}

void prom_sample_u64(struct prom *p, const char *name, const struct prom_label *labels, unsigned n,
                     uint64_t value)
{
	check_name(p, name, false);
	puts_(p, name);
	put_labels(p, labels, n, NULL);
	putf(p, " %llu\n", (unsigned long long)value);
}

static void suffixed(struct prom *p, char *out, size_t cap, const char *name, const char *sfx)
{
	if ((size_t)snprintf(out, cap, "%s%s", name, sfx) >= cap && !p->err)
		p->err = -EINVAL;
}

void prom_histogram(struct prom *p, const char *name, const struct prom_label *labels, unsigned n,
                    const double *bounds, const uint64_t *counts, unsigned n_bounds, double sum)
{
	char nm[128], le[32];
	uint64_t cum = 0;

	suffixed(p, nm, sizeof(nm), name, "_bucket");
	check_name(p, nm, false);
	for (unsigned i = 0; i <= n_bounds && !p->err; i++) {
		cum += counts[i];
		if (i < n_bounds) {
			if (i && !(bounds[i] > bounds[i - 1]))
				p->err = -EINVAL;
			fmt_double(le, sizeof(le), bounds[i]);
		} else {
			snprintf(le, sizeof(le), "+Inf");
		}
		puts_(p, nm);
		put_labels(p, labels, n, le);
		putf(p, " %llu\n", (unsigned long long)cum);
	}
	suffixed(p, nm, sizeof(nm), name, "_sum");
	prom_sample(p, nm, labels, n, sum);
	suffixed(p, nm, sizeof(nm), name, "_count");
	prom_sample_u64(p, nm, labels, n, cum);
}

int prom_result(const struct prom *p)
{
	return p->err;
}

char *prom_take(struct prom *p, size_t *len)
{
	char *b;

	if (p->err || !reserve(p, 0)) {
		prom_free(p);
		return NULL;
	}
	b = p->buf;
	if (len)
		*len = p->len;
	b[p->len] = '\0';
	prom_init(p);
	return b;
}
