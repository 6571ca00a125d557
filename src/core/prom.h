/*
 * prom.h: the Prometheus text exposition format, version 0.0.4 (pure).
 *
 * A growable buffer the metrics page is written into: one HELP and TYPE
 * line per family, then its samples, each `name{label="value",...} value`.
 * Label values are escaped (backslash, double quote, newline) as the format
 * requires; values print as integers when they are whole (exact up to 2^53)
 * and otherwise in the shortest form that reads back exactly, +Inf/-Inf/NaN
 * by their names. Metric and label
 * names are the caller's constants and are checked ([a-zA-Z_:][a-zA-Z0-9_:]*,
 * labels without ':'): a bad one makes the whole buffer fail, never a page
 * promtool would reject.
 *
 * Errors are sticky (like core/wire.h's cursor): write everything, check
 * prom_result() once. Ownership: the buffer is the caller's; prom_take()
 * hands its memory over (free() it).
 */
#ifndef ANYCACHE_CORE_PROM_H
#define ANYCACHE_CORE_PROM_H

#include <stddef.h>
#include <stdint.h>

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define PROM_MAX_LABELS   4

struct prom {
	char *buf;
	size_t len, cap;
	int err; /* 0, -ENOMEM or -EINVAL: the first error */
};

struct prom_label {
	const char *name;
	const char *value; /* any bytes but NUL; escaped here */
};

void prom_init(struct prom *p);
void prom_free(struct prom *p);

/* "# HELP name help" and "# TYPE name type" (counter, gauge, histogram, untyped). */
void prom_family(struct prom *p, const char *name, const char *type, const char *help);

/* One sample; n labels (at most PROM_MAX_LABELS). */
void prom_sample(struct prom *p, const char *name, const struct prom_label *labels, unsigned n,
                 double value);
/* The same for a counter kept as an integer (printed exactly). */
void prom_sample_u64(struct prom *p, const char *name, const struct prom_label *labels, unsigned n,
                     uint64_t value);

/*
 * A histogram's samples (after its family line): name_bucket{...,le="b"}
 * cumulative over counts[0..n_bounds] (counts[i] = observations in
 * (bounds[i-1], bounds[i]], counts[n_bounds] = above the last bound), the
 * +Inf bucket, name_sum and name_count. bounds ascending, in the metric's unit.
 */
void prom_histogram(struct prom *p, const char *name, const struct prom_label *labels, unsigned n,
                    const double *bounds, const uint64_t *counts, unsigned n_bounds, double sum);

/* 0 or the first error. */
int prom_result(const struct prom *p);
/* The text (NUL-terminated, *len bytes) for the caller to free, or NULL after an error. */
char *prom_take(struct prom *p, size_t *len);

#endif
