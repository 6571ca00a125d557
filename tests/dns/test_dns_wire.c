/*
 * Tests for src/dns/dns_wire.c: every captured vector through the scanner and
 * (queries) the request validator, checked against MANIFEST.tsv; hand-built
 * malformed queries; golden bytes for the builders; TTL patching.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "dns/dns_wire.h"

/* ---- vector access ---- */

static uint8_t *load_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "cannot open %s", path);
	static uint8_t tmp[70000];
	size_t n = fread(tmp, 1, sizeof(tmp), f);
	fclose(f);
	uint8_t *p = malloc(n ? n : 1);
	cr_assert_not_null(p);
	memcpy(p, tmp, n);
	*len = n;
	return p;
}

static const char *vec_dir(void)
{
	const char *d = getenv("ANYCACHE_VECTORS");
	cr_assert_not_null(d, "ANYCACHE_VECTORS not set (run through meson test)");
	return d;
}

static uint8_t *load_vec(const char *name, size_t *len)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/dns/%s", vec_dir(), name);
	return load_file(path, len);
}

struct vec {
	char file[160];
	char kind[16];
	size_t length;
	char *desc;
};

static size_t load_manifest(struct vec **out)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/dns/MANIFEST.tsv", vec_dir());
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	char *line = NULL;
	size_t cap = 0, n = 0;
	struct vec *v = calloc(400, sizeof(*v));
	cr_assert_not_null(v);
	bool header = true;
	while (getline(&line, &cap, f) > 0) {
		if (header) {
			header = false;
			continue;
		}
		char *cols[8] = {0};
		char *save = NULL, *p = line;
		for (int i = 0; i < 8; i++) {
			cols[i] = strtok_r(p, "\t\n", &save);
			p = NULL;
		}
		cr_assert_not_null(cols[6], "short manifest row %zu", n);
		cr_assert_lt(n, 400);
		snprintf(v[n].file, sizeof(v[n].file), "%s", cols[0]);
		snprintf(v[n].kind, sizeof(v[n].kind), "%s", cols[3]);
		v[n].length = strtoul(cols[4], NULL, 10);
		v[n].desc = strdup(cols[6]);
		n++;
	}
	free(line);
	fclose(f);
	*out = v;
	return n;
}

/* The text of description field "<key> ..." up to the next " | ", or NULL. */
static bool desc_field(const char *desc, const char *key, char *out, size_t cap)
{
	size_t kl = strlen(key);
	const char *p = desc;
	while (p) {
		if (!strncmp(p, key, kl)) {
			const char *e = strstr(p, " | ");
			size_t n = e ? (size_t)(e - p) : strlen(p);
			if (n >= cap)
				n = cap - 1;
			memcpy(out, p, n);
			out[n] = 0;
			return true;
		}
		p = strstr(p, " | ");
		if (p)
			p += 3;
	}
	return false;
}

static int rcode_num(const char *s)
{
	static const struct {
		const char *n;
		int v;
	} t[] = {{"NOERROR", 0}, {"FORMERR", 1}, {"SERVFAIL", 2}, {"NXDOMAIN", 3},
	         {"NOTIMP", 4},  {"REFUSED", 5}, {"BADVERS", 16}, {"BADCOOKIE", 23}};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (!strncmp(s, t[i].n, strlen(t[i].n)))
			return t[i].v;
	cr_assert_fail("unknown rcode %s", s);
	return -1;
}

static int opcode_num(const char *s)
{
	if (!strcmp(s, "QUERY"))
		return 0;
	if (!strcmp(s, "STATUS"))
		return 2;
	if (!strcmp(s, "NOTIFY"))
		return 4;
	if (!strcmp(s, "UPDATE"))
		return 5;
	cr_assert_fail("unknown opcode %s", s);
	return -1;
}

static unsigned type_num(const char *s)
{
	static const struct {
		const char *n;
		unsigned v;
	} t[] = {{"A", 1},     {"NS", 2},     {"CNAME", 5},  {"SOA", 6},     {"NULL", 10},
	         {"PTR", 12},  {"MX", 15},    {"TXT", 16},   {"AAAA", 28},   {"LOC", 29},
	         {"SRV", 33},  {"NAPTR", 35}, {"SSHFP", 44}, {"DNSKEY", 48}, {"NSEC3PARAM", 51},
	         {"TLSA", 52}, {"SVCB", 64},  {"HTTPS", 65}, {"AXFR", 252},  {"ANY", 255},
	         {"CAA", 257}};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (!strcmp(s, t[i].n))
			return t[i].v;
	unsigned v;
	if (sscanf(s, "TYPE%u", &v) == 1)
		return v;
	cr_assert_fail("unknown type %s", s);
	return 0;
}

/* Presentation form (RFC 1035 §5.1 escapes, as dnspython prints them). */
static void name_text(const uint8_t *n, size_t len, char *out, size_t cap)
{
	size_t o = 0, i = 0;
	if (len == 1) {
		snprintf(out, cap, ".");
		return;
	}
	while (i < len && n[i]) {
		uint8_t l = n[i++];
		for (uint8_t k = 0; k < l && o + 5 < cap; k++, i++) {
			uint8_t c = n[i];
			if (strchr("\"().;\\@$", c) && c)
				o += (size_t)snprintf(out + o, cap - o, "\\%c", c);
			else if (c < 0x21 || c > 0x7e)
				o += (size_t)snprintf(out + o, cap - o, "\\%03u", c);
			else
				out[o++] = (char)c;
		}
		if (o + 1 < cap)
			out[o++] = '.';
	}
	out[o] = 0;
}

static bool has_flag(const char *flags_field, const char *flag)
{
	/* flags_field looks like "flags [qr aa rd]" */
	char buf[128];
	snprintf(buf, sizeof(buf), " %s ", flag);
	char f[256];
	const char *lb = strchr(flags_field, '[');
	if (!lb)
		return false;
	snprintf(f, sizeof(f), " %s", lb + 1);
	char *rb = strchr(f, ']');
	if (rb)
		strcpy(rb, " ");
	return strstr(f, buf) != NULL;
}

/* ---- every captured vector through the scanner ---- */

struct expect {
	unsigned id, qd, an, ns, ar;
	int opcode, rcode;
	bool qr, aa, tc, rd, cd, ad;
	bool edns;
	unsigned edns_v, udp;
	bool do_bit, cookie, ecs;
	bool question;
	char qname[600];
	char qclass[8];
	unsigned qtype;
};

static void parse_desc(const struct vec *v, struct expect *x)
{
	char f[4096];
	memset(x, 0, sizeof(*x));
	cr_assert_eq(sscanf(v->desc, "id %u", &x->id), 1, "%s", v->file);
	cr_assert(desc_field(v->desc, "opcode ", f, sizeof(f)));
	x->opcode = opcode_num(f + 7);
	cr_assert(desc_field(v->desc, "rcode ", f, sizeof(f)));
	x->rcode = rcode_num(f + 6);
	cr_assert(desc_field(v->desc, "flags ", f, sizeof(f)));
	x->qr = has_flag(f, "qr");
	x->aa = has_flag(f, "aa");
	x->tc = has_flag(f, "tc");
	x->rd = has_flag(f, "rd");
	x->cd = has_flag(f, "cd");
	x->ad = has_flag(f, "ad");
	cr_assert(desc_field(v->desc, "counts ", f, sizeof(f)));
	cr_assert_eq(sscanf(f, "counts qd=%u an=%u ns=%u ar=%u", &x->qd, &x->an, &x->ns, &x->ar),
	             4);
	if (desc_field(v->desc, "EDNS ", f, sizeof(f))) {
		x->edns = true;
		cr_assert_eq(sscanf(f, "EDNS v%u udp %u", &x->edns_v, &x->udp), 2, "%s", f);
		char *opts = strstr(f, "options:");
		cr_assert_not_null(opts);
		*opts = 0;
		x->do_bit = strstr(f, "[do") != NULL;
		x->cookie = strstr(opts + 1, "COOKIE") != NULL;
		x->ecs = strstr(opts + 1, "ECS") != NULL;
	} else {
		cr_assert(desc_field(v->desc, "no EDNS", f, sizeof(f)), "%s", v->file);
	}
	if (desc_field(v->desc, "question ", f, sizeof(f))) {
		char type[32];
		x->question = true;
		cr_assert_eq(sscanf(f, "question %599s %7s %31s", x->qname, x->qclass, type), 3);
		x->qtype = type_num(type);
	}
}

Test(dns_vectors, all_scan_and_match_manifest)
{
	struct vec *v;
	size_t n = load_manifest(&v);
	cr_assert_eq(n, 237, "MANIFEST rows (README: 237 DNS messages)");
	size_t queries = 0, with_opt = 0, with_ttl = 0;
	for (size_t i = 0; i < n; i++) {
		size_t len;
		uint8_t *pkt = load_vec(v[i].file, &len);
		struct expect x;
		parse_desc(&v[i], &x);
		cr_assert_eq(len, v[i].length, "%s", v[i].file);

		struct dns_scan s;
		cr_assert_eq(dns_scan(pkt, len, &s), 0, "%s", v[i].file);
		cr_assert_eq(s.id, x.id, "%s", v[i].file);
		cr_assert_eq(s.opcode, x.opcode, "%s", v[i].file);
		cr_assert_eq(s.rcode, x.rcode, "%s rcode %u", v[i].file, s.rcode);
		cr_assert_eq(s.qr, x.qr, "%s", v[i].file);
		cr_assert_eq(s.aa, x.aa, "%s", v[i].file);
		cr_assert_eq(s.tc, x.tc, "%s", v[i].file);
		cr_assert_eq(s.qdcount, x.qd);
		cr_assert_eq(s.ancount, x.an);
		cr_assert_eq(s.nscount, x.ns);
		cr_assert_eq(s.arcount, x.ar);
		cr_assert_eq(s.has_opt, x.edns, "%s", v[i].file);
		if (x.edns) {
			with_opt++;
			cr_assert_eq(s.edns_version, x.edns_v);
			cr_assert_eq(s.udp_size, x.udp, "%s", v[i].file);
			cr_assert_eq(s.do_bit, x.do_bit, "%s", v[i].file);
		}
		cr_assert_eq(s.n_ttl, x.an + x.ns + x.ar - (x.edns ? 1 : 0), "%s", v[i].file);
		for (size_t k = 0; k + 1 < s.n_ttl; k++)
			cr_assert_lt(s.ttl_off[k], s.ttl_off[k + 1]);
		with_ttl += s.n_ttl > 0;
		cr_assert_eq(s.has_question, x.question, "%s", v[i].file);
		if (x.question) {
			char txt[1200];
			name_text(pkt + s.q_off, s.qname_len, txt, sizeof(txt));
			cr_assert_str_eq(txt, x.qname, "%s", v[i].file);
			cr_assert_eq(s.qtype, x.qtype, "%s", v[i].file);
			cr_assert_eq(s.qclass,
			             !strcmp(x.qclass, "CH") ? DNS_CLASS_CH : DNS_CLASS_IN);
			cr_assert_eq(s.q_len, s.qname_len + 4);
		}

		struct dns_request req;
		uint8_t rcode = 0xEE;
		int r = dns_request_parse(pkt, len, &req, &rcode);
		if (strcmp(v[i].kind, "query")) {
			cr_assert_eq(r, -EBADMSG, "%s: responses (QR=1) are dropped", v[i].file);
			free(pkt);
			continue;
		}
		queries++;
		cr_assert_eq(r, 0, "%s", v[i].file);
		/* The RCODE a server owes each query, from the manifest alone. */
		int want = x.opcode != DNS_OPCODE_QUERY ? DNS_RCODE_NOTIMP
		           : x.qd != 1                  ? DNS_RCODE_FORMERR
		           : x.edns && x.edns_v > 0     ? DNS_RCODE_BADVERS
		                                        : DNS_RCODE_NOERROR;
		cr_assert_eq(rcode, want, "%s: rcode %u want %d", v[i].file, rcode, want);
		cr_assert_eq(req.id, x.id);
		cr_assert_eq(req.opcode, x.opcode);
		cr_assert_eq(req.rd, x.rd, "%s", v[i].file);
		cr_assert_eq(req.cd, x.cd, "%s", v[i].file);
		cr_assert_eq(req.ad, x.ad, "%s", v[i].file);
		cr_assert_eq(req.edns, x.edns, "%s", v[i].file);
		cr_assert_eq(req.has_question, x.question, "%s", v[i].file);
		if (x.edns) {
			cr_assert_eq(req.udp_size, x.udp);
			cr_assert_eq(req.do_bit, x.do_bit);
			cr_assert_eq(req.edns_version, x.edns_v);
			cr_assert_eq(req.has_cookie, x.cookie, "%s", v[i].file);
			cr_assert_eq(req.has_ecs, x.ecs, "%s", v[i].file);
			if (req.has_cookie)
				cr_assert(req.cookie_len == 8 || req.cookie_len == 24, "%s",
				          v[i].file);
			cr_assert_eq(dns_request_udp_limit(&req), x.udp < 1232 ? x.udp : 1232);
		} else {
			cr_assert_eq(dns_request_udp_limit(&req), 512);
		}
		if (req.has_question) {
			cr_assert_eq(req.qtype, x.qtype);
			cr_assert_eq(req.qname, pkt + s.q_off);
			cr_assert_eq(req.qname_len, s.qname_len);
			uint8_t lc[DNS_NAME_MAX];
			dns_name_lower(lc, req.qname, req.qname_len);
			cr_assert_eq(memcmp(lc, req.qname_lc, req.qname_len), 0);
		}

		/* The error answer for it scans, and echoes the question exactly. */
		uint8_t out[600];
		struct wbuf b = wbuf_init(out, sizeof(out));
		int ol = dns_build_error(&b, &req,
		                         rcode == DNS_RCODE_NOERROR ? DNS_RCODE_SERVFAIL : rcode);
		cr_assert_gt(ol, 0, "%s", v[i].file);
		struct dns_scan a;
		cr_assert_eq(dns_scan(out, (size_t)ol, &a), 0);
		cr_assert(a.qr);
		cr_assert_eq(a.id, x.id);
		cr_assert_eq(a.has_opt, x.edns);
		if (req.has_question)
			cr_assert_eq(dns_scan_match_question(out, &a, req.qname, req.qname_len,
			                                     req.qtype, req.qclass),
			             DNS_QMATCH_EXACT);
		free(pkt);
	}
	cr_assert_eq(queries, 121);
	cr_assert_gt(with_opt, 100);
	cr_assert_gt(with_ttl, 80);
	for (size_t i = 0; i < n; i++)
		free(v[i].desc);
	free(v);
}

/* Queries the server must not simply serve, each with the reason. */
Test(dns_vectors, rejected_queries)
{
	static const struct {
		const char *file;
		uint8_t rcode;
		const char *why;
	} t[] = {
	    {"086-kdig-query-www-a-edns1.bin", DNS_RCODE_BADVERS, "kdig +edns=1: RFC 6891 §6.1.3"},
	    {"109-dig-query-no-question-cookie.bin", DNS_RCODE_FORMERR,
	     "dig +header-only: QDCOUNT 0"},
	    {"111-dig-query-www-a-opcodestatus-cookie.bin", DNS_RCODE_NOTIMP, "opcode STATUS"},
	    {"113-dig-query-www-a-opcodestatus-cookie.bin", DNS_RCODE_NOTIMP, "opcode STATUS"},
	    {"115-dig-query-www-a-opcodeupdate-cookie.bin", DNS_RCODE_NOTIMP, "opcode UPDATE"},
	    {"117-dig-query-www-a-opcodeupdate-cookie.bin", DNS_RCODE_NOTIMP, "opcode UPDATE"},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t len;
		uint8_t *pkt = load_vec(t[i].file, &len);
		struct dns_request req;
		uint8_t rcode;
		cr_assert_eq(dns_request_parse(pkt, len, &req, &rcode), 0);
		cr_assert_eq(rcode, t[i].rcode, "%s (%s)", t[i].file, t[i].why);
		cr_assert(req.edns, "%s: the answer must carry OPT", t[i].file);
		free(pkt);
	}
}

/* Our answers to the rejected queries match knotd's own answers, header and OPT. */
Test(dns_vectors, error_answers_like_knot)
{
	static const struct {
		const char *q, *a;
	} t[] = {
	    {"086-kdig-query-www-a-edns1.bin", "087-knot-response-www-a-badvers.bin"},
	    {"109-dig-query-no-question-cookie.bin", "110-knot-response-no-question-formerr.bin"},
	};
	for (size_t i = 0; i < 2; i++) {
		size_t ql, al;
		uint8_t *q = load_vec(t[i].q, &ql), *a = load_vec(t[i].a, &al);
		struct dns_request req;
		uint8_t rcode;
		cr_assert_eq(dns_request_parse(q, ql, &req, &rcode), 0);
		uint8_t out[512];
		struct wbuf b = wbuf_init(out, sizeof(out));
		int n = dns_build_error(&b, &req, rcode);
		cr_assert_eq(n, (int)al, "%s", t[i].a);
		/* knotd does not set RA (it is authoritative); we do: mask that bit */
		out[3] &= (uint8_t)~0x80;
		cr_assert_eq(memcmp(out, a, al), 0, "%s", t[i].a);
		free(q);
		free(a);
	}
}

/* ---- hand-built queries ---- */

#define QNAME                                                                                      \
	"\x03www\x07"                                                                              \
	"example\x04test"
#define QNAME_LEN 18

struct q {
	uint8_t b[1024];
	struct wbuf w;
};

static void q_begin(struct q *q, uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns, uint16_t ar)
{
	q->w = wbuf_init(q->b, sizeof(q->b));
	wbuf_u16(&q->w, 0x1234);
	wbuf_u16(&q->w, flags);
	wbuf_u16(&q->w, qd);
	wbuf_u16(&q->w, an);
	wbuf_u16(&q->w, ns);
	wbuf_u16(&q->w, ar);
}

static void q_question(struct q *q)
{
	wbuf_bytes(&q->w, QNAME, QNAME_LEN);
	wbuf_u16(&q->w, DNS_TYPE_A);
	wbuf_u16(&q->w, DNS_CLASS_IN);
}

static void q_opt(struct q *q, uint8_t version, bool do_bit, const void *opts, uint16_t olen)
{
	wbuf_u8(&q->w, 0);
	wbuf_u16(&q->w, DNS_TYPE_OPT);
	wbuf_u16(&q->w, 4096);
	wbuf_u32(&q->w, (uint32_t)version << 16 | (do_bit ? 0x8000u : 0));
	wbuf_u16(&q->w, olen);
	wbuf_bytes(&q->w, opts, olen);
}

static int q_parse(struct q *q, struct dns_request *req, uint8_t *rcode)
{
	cr_assert_eq(q->w.err, 0);
	return dns_request_parse(q->b, q->w.off, req, rcode);
}

static uint8_t q_rcode(struct q *q)
{
	struct dns_request req;
	uint8_t rcode = 0xEE;
	cr_assert_eq(q_parse(q, &req, &rcode), 0);
	return rcode;
}

Test(dns_request, valid_with_opt)
{
	struct q q;
	q_begin(&q, DNS_FLAG_RD | DNS_FLAG_CD, 1, 0, 0, 1);
	q_question(&q);
	static const uint8_t opts[] = {0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8};
	q_opt(&q, 0, true, opts, sizeof(opts));
	struct dns_request req;
	uint8_t rcode;
	cr_assert_eq(q_parse(&q, &req, &rcode), 0);
	cr_assert_eq(rcode, DNS_RCODE_NOERROR);
	cr_assert_eq(req.id, 0x1234);
	cr_assert(req.rd && req.cd && !req.ad);
	cr_assert_eq(req.qname, q.b + 12);
	cr_assert_eq(req.qname_len, QNAME_LEN);
	cr_assert_eq(req.question_len, QNAME_LEN + 4);
	cr_assert_eq(req.qtype, DNS_TYPE_A);
	cr_assert(req.edns && req.do_bit);
	cr_assert_eq(req.udp_size, 4096);
	cr_assert_eq(req.opt_off, 12 + QNAME_LEN + 4);
	cr_assert_eq(req.opts_len, sizeof(opts));
	cr_assert(req.has_cookie);
	cr_assert_eq(req.cookie_len, 8);
	cr_assert_eq(q.b[req.cookie_off], 1);
	cr_assert_eq(dns_request_udp_limit(&req), 1232);
}

Test(dns_request, drop_short_and_responses)
{
	struct q q;
	q_begin(&q, DNS_FLAG_RD, 1, 0, 0, 0);
	q_question(&q);
	struct dns_request req;
	uint8_t rcode;
	for (size_t n = 0; n < DNS_HDR_LEN; n++)
		cr_assert_eq(dns_request_parse(q.b, n, &req, &rcode), -EBADMSG);
	q.b[2] |= 0x80; /* QR */
	cr_assert_eq(q_parse(&q, &req, &rcode), -EBADMSG);
}

Test(dns_request, qdcount_not_one)
{
	struct q q;
	struct dns_request req;
	uint8_t rcode;
	q_begin(&q, 0, 0, 0, 0, 0);
	cr_assert_eq(q_parse(&q, &req, &rcode), 0);
	cr_assert_eq(rcode, DNS_RCODE_FORMERR);
	cr_assert_not(req.has_question);

	q_begin(&q, 0, 2, 0, 0, 0);
	q_question(&q);
	q_question(&q);
	cr_assert_eq(q_parse(&q, &req, &rcode), 0);
	cr_assert_eq(rcode, DNS_RCODE_FORMERR);
}

Test(dns_request, bad_names)
{
	struct q q;
	/* label of 64 */
	q_begin(&q, 0, 1, 0, 0, 0);
	uint8_t l[65] = {64};
	memset(l + 1, 'a', 64);
	wbuf_bytes(&q.w, l, 65);
	wbuf_bytes(&q.w, "\0\0\1\0\1", 5);
	cr_assert_eq(q_rcode(&q), DNS_RCODE_FORMERR);

	/* name of 256: 4 labels of 62 + 1 label of 2... = 4*63 + 3 + 1 */
	q_begin(&q, 0, 1, 0, 0, 0);
	uint8_t lab[64] = {62};
	memset(lab + 1, 'b', 62);
	for (int i = 0; i < 4; i++)
		wbuf_bytes(&q.w, lab, 63);
	wbuf_bytes(&q.w, "\x02xy\0\0\1\0\1", 8); /* 252 + 3 + 1 = 256 */
	cr_assert_eq(q_rcode(&q), DNS_RCODE_FORMERR);
	/* 255 is fine */
	q_begin(&q, 0, 1, 0, 0, 0);
	for (int i = 0; i < 4; i++)
		wbuf_bytes(&q.w, lab, 63);
	wbuf_bytes(&q.w, "\x01x\0\0\1\0\1", 7);
	cr_assert_eq(q_rcode(&q), DNS_RCODE_NOERROR);

	/* compression in the question: pointer to the header, and a self pointer */
	q_begin(&q, 0, 1, 0, 0, 0);
	wbuf_bytes(&q.w, "\x03www\xc0\x02\0\1\0\1", 10);
	cr_assert_eq(q_rcode(&q), DNS_RCODE_FORMERR);
	q_begin(&q, 0, 1, 0, 0, 0);
	wbuf_bytes(&q.w, "\xc0\x0c\0\1\0\1", 6);
	cr_assert_eq(q_rcode(&q), DNS_RCODE_FORMERR);
	/* reserved label types */
	q_begin(&q, 0, 1, 0, 0, 0);
	wbuf_bytes(&q.w, "\x41\0\0\1\0\1", 6);
	cr_assert_eq(q_rcode(&q), DNS_RCODE_FORMERR);
	q_begin(&q, 0, 1, 0, 0, 0);
	wbuf_bytes(&q.w, "\x81\0\0\1\0\1", 6);
	cr_assert_eq(q_rcode(&q), DNS_RCODE_FORMERR);
}

Test(dns_request, compression_in_additional)
{
	/* An RR owner in the additional section may point back at the question. */
	struct q q;
	q_begin(&q, 0, 1, 0, 0, 1);
	q_question(&q);
	wbuf_bytes(&q.w, "\xc0\x0c\0\1\0\1\0\0\0\x3c\0\4\x7f\0\0\1", 16);
	cr_assert_eq(q_rcode(&q), DNS_RCODE_NOERROR);
	/* ... but not forwards, not at itself */
	q_begin(&q, 0, 1, 0, 0, 1);
	q_question(&q);
	size_t self = q.w.off;
	wbuf_u16(&q.w, (uint16_t)(0xC000 | self));
	wbuf_bytes(&q.w, "\0\1\0\1\0\0\0\x3c\0\4\x7f\0\0\1", 14);
	cr_assert_eq(q_rcode(&q), DNS_RCODE_FORMERR);
	q_begin(&q, 0, 1, 0, 0, 1);
	q_question(&q);
	wbuf_u16(&q.w, (uint16_t)(0xC000 | (q.w.off + 4)));
	wbuf_bytes(&q.w, "\0\1\0\1\0\0\0\x3c\0\4\x7f\0\0\1", 14);
	cr_assert_eq(q_rcode(&q), DNS_RCODE_FORMERR);
}

Test(dns_request, answer_section_allowed_if_it_parses)
{
	struct q q;
	q_begin(&q, 0, 1, 1, 1, 0);
	q_question(&q);
	wbuf_bytes(&q.w, "\xc0\x0c\0\1\0\1\0\0\0\x3c\0\4\x7f\0\0\1", 16);
	wbuf_bytes(&q.w, "\xc0\x0c\0\1\0\1\0\0\0\x3c\0\4\x7f\0\0\2", 16);
	cr_assert_eq(q_rcode(&q), DNS_RCODE_NOERROR);
	/* ANCOUNT=1 with no record */
	q_begin(&q, 0, 1, 1, 0, 0);
	q_question(&q);
	cr_assert_eq(q_rcode(&q), DNS_RCODE_FORMERR);
	/* RDLENGTH past the end */
	q_begin(&q, 0, 1, 1, 0, 0);
	q_question(&q);
	wbuf_bytes(&q.w, "\xc0\x0c\0\1\0\1\0\0\0\x3c\0\5\x7f\0\0\1", 16);
	cr_assert_eq(q_rcode(&q), DNS_RCODE_FORMERR);
	/* absurd counts are refused before any record is read */
	q_begin(&q, 0, 1, 0xFFFF, 0xFFFF, 0xFFFF);
	q_question(&q);
	cr_assert_eq(q_rcode(&q), DNS_RCODE_FORMERR);
}

Test(dns_request, trailing_garbage)
{
	struct q q;
	q_begin(&q, 0, 1, 0, 0, 0);
	q_question(&q);
	wbuf_u8(&q.w, 0);
	struct dns_request req;
	uint8_t rcode;
	cr_assert_eq(q_parse(&q, &req, &rcode), 0);
	cr_assert_eq(rcode, DNS_RCODE_FORMERR);
	cr_assert(req.has_question, "the question parsed and can be echoed");
	/* after an OPT too */
	q_begin(&q, 0, 1, 0, 0, 1);
	q_question(&q);
	q_opt(&q, 0, false, NULL, 0);
	wbuf_bytes(&q.w, "xx", 2);
	cr_assert_eq(q_rcode(&q), DNS_RCODE_FORMERR);
}

Test(dns_request, opt_rules)
{
	struct q q;
	/* two OPTs (RFC 6891 §6.1.1) */
	q_begin(&q, 0, 1, 0, 0, 2);
	q_question(&q);
	q_opt(&q, 0, false, NULL, 0);
	q_opt(&q, 0, false, NULL, 0);
	cr_assert_eq(q_rcode(&q), DNS_RCODE_FORMERR);
	/* OPT with a non-root owner */
	q_begin(&q, 0, 1, 0, 0, 1);
	q_question(&q);
	wbuf_bytes(&q.w, "\xc0\x0c\0\x29\x10\0\0\0\0\0\0\0", 12);
	cr_assert_eq(q_rcode(&q), DNS_RCODE_FORMERR);
	/* OPT in the answer section */
	q_begin(&q, 0, 1, 1, 0, 0);
	q_question(&q);
	q_opt(&q, 0, false, NULL, 0);
	cr_assert_eq(q_rcode(&q), DNS_RCODE_FORMERR);
	/* OPT in the authority section */
	q_begin(&q, 0, 1, 0, 1, 0);
	q_question(&q);
	q_opt(&q, 0, false, NULL, 0);
	cr_assert_eq(q_rcode(&q), DNS_RCODE_FORMERR);
	/* an option overrunning the RDATA */
	q_begin(&q, 0, 1, 0, 0, 1);
	q_question(&q);
	q_opt(&q, 0, false,
	      "\0\x0a\0\x09"
	      "12345678",
	      12);
	cr_assert_eq(q_rcode(&q), DNS_RCODE_FORMERR);
	/* a half option header */
	q_begin(&q, 0, 1, 0, 0, 1);
	q_question(&q);
	q_opt(&q, 0, false, "\0\x0a\0", 3);
	cr_assert_eq(q_rcode(&q), DNS_RCODE_FORMERR);
}

Test(dns_request, opcodes_notimp)
{
	for (unsigned op = 1; op < 16; op++) {
		struct q q;
		q_begin(&q, (uint16_t)(op << 11 | DNS_FLAG_RD), 1, 0, 0, 1);
		q_question(&q);
		q_opt(&q, 0, true, NULL, 0);
		struct dns_request req;
		uint8_t rcode;
		cr_assert_eq(q_parse(&q, &req, &rcode), 0);
		cr_assert_eq(rcode, DNS_RCODE_NOTIMP, "opcode %u", op);
		cr_assert_eq(req.opcode, op);
		cr_assert(req.has_question && req.edns);
	}
	/* NOTIMP wins over a malformed body: we do not judge what we do not implement */
	struct q q;
	q_begin(&q, DNS_OPCODE_UPDATE << 11, 1, 3, 0, 0);
	q_question(&q);
	cr_assert_eq(q_rcode(&q), DNS_RCODE_NOTIMP);
}

Test(dns_request, badvers)
{
	struct q q;
	q_begin(&q, DNS_FLAG_RD, 1, 0, 0, 1);
	q_question(&q);
	q_opt(&q, 1, true, NULL, 0);
	struct dns_request req;
	uint8_t rcode;
	cr_assert_eq(q_parse(&q, &req, &rcode), 0);
	cr_assert_eq(rcode, DNS_RCODE_BADVERS);
	cr_assert_eq(req.edns_version, 1);
	/* a malformed version-1 message is FORMERR, not BADVERS */
	wbuf_u8(&q.w, 0);
	cr_assert_eq(q_rcode(&q), DNS_RCODE_FORMERR);
}

Test(dns_request, small_udp_size_floor)
{
	struct q q;
	q_begin(&q, 0, 1, 0, 0, 1);
	q_question(&q);
	q_opt(&q, 0, false, NULL, 0);
	q.b[q.w.off - 8] = 0; /* class = UDP size: 4096 -> 0x0000 | low byte 0 */
	q.b[q.w.off - 7] = 100;
	struct dns_request req;
	uint8_t rcode;
	cr_assert_eq(q_parse(&q, &req, &rcode), 0);
	cr_assert_eq(req.udp_size, 100);
	cr_assert_eq(dns_request_udp_limit(&req), 512);
}

Test(dns_request, truncated_at_every_byte)
{
	size_t len;
	uint8_t *full = load_vec("011-kdig-query-www-a-do-nsid-cookie.bin", &len);
	struct dns_request req;
	uint8_t rcode;
	cr_assert_eq(dns_request_parse(full, len, &req, &rcode), 0);
	cr_assert_eq(rcode, DNS_RCODE_NOERROR);
	for (size_t n = 0; n < len; n++) {
		uint8_t *p =
		    malloc(n ? n : 1); /* exact size: out-of-bounds reads would show under ASan */
		memcpy(p, full, n);
		int r = dns_request_parse(p, n, &req, &rcode);
		if (n < DNS_HDR_LEN)
			cr_assert_eq(r, -EBADMSG, "prefix %zu", n);
		else
			cr_assert(r == 0 && rcode == DNS_RCODE_FORMERR, "prefix %zu: r %d rcode %u",
			          n, r, rcode);
		struct dns_scan s;
		cr_assert_eq(dns_scan(p, n, &s), -EBADMSG, "scan prefix %zu", n);
		free(p);
	}
	free(full);
}

/* ---- builders ---- */

static void parse_ok(struct q *q, struct dns_request *req)
{
	uint8_t rcode;
	cr_assert_eq(q_parse(q, req, &rcode), 0);
}

Test(dns_build, error_golden)
{
	struct q q;
	q_begin(&q, DNS_FLAG_RD | DNS_FLAG_CD | DNS_FLAG_AD, 1, 0, 0, 1);
	q_question(&q);
	q_opt(&q, 0, true,
	      "\0\x0a\0\x08"
	      "abcdefgh",
	      12);
	struct dns_request req;
	parse_ok(&q, &req);
	uint8_t out[128];
	struct wbuf b = wbuf_init(out, sizeof(out));
	static const uint8_t want[] = {
	    0x12, 0x34, 0x81, 0x92, 0,    1,   0,   0,    0,   0,   0,   1, /* QR RD RA CD, SERVFAIL
	                                                                     */
	    3,    'w',  'w',  'w',  7,    'e', 'x', 'a',  'm', 'p', 'l', 'e', 4,
	    't',  'e',  's',  't',  0,    0,   1,   0,    1,           /* A IN */
	    0,    0,    41,   0x04, 0xd0, 0,   0,   0x80, 0,   0,   0, /* OPT 1232 DO, no options */
	};
	cr_assert_eq(dns_build_error(&b, &req, DNS_RCODE_SERVFAIL), (int)sizeof(want));
	cr_assert_eq(memcmp(out, want, sizeof(want)), 0);

	/* BADVERS: 16 = extended 1, header 0 */
	b = wbuf_init(out, sizeof(out));
	cr_assert_eq(dns_build_error(&b, &req, DNS_RCODE_BADVERS), (int)sizeof(want));
	cr_assert_eq(out[3], 0x90);
	cr_assert_eq(out[sizeof(want) - 6], 1, "extended RCODE in the OPT TTL");
	struct dns_scan s;
	cr_assert_eq(dns_scan(out, sizeof(want), &s), 0);
	cr_assert_eq(s.rcode, DNS_RCODE_BADVERS);

	/* too small a buffer */
	b = wbuf_init(out, sizeof(want) - 1);
	cr_assert_eq(dns_build_error(&b, &req, DNS_RCODE_SERVFAIL), -EMSGSIZE);
}

Test(dns_build, error_without_question_or_edns)
{
	struct q q;
	q_begin(&q, DNS_FLAG_RD, 0, 0, 0, 0);
	struct dns_request req;
	parse_ok(&q, &req);
	uint8_t out[64];
	struct wbuf b = wbuf_init(out, sizeof(out));
	static const uint8_t want[] = {0x12, 0x34, 0x81, 0x81, 0, 0, 0, 0, 0, 0, 0, 0};
	cr_assert_eq(dns_build_error(&b, &req, DNS_RCODE_FORMERR), 12);
	cr_assert_eq(memcmp(out, want, 12), 0);
	b = wbuf_init(out, sizeof(out));
	cr_assert_eq(dns_build_error(&b, &req, DNS_RCODE_BADVERS), -EINVAL, "needs an OPT");
}

Test(dns_build, notimp_echoes_opcode)
{
	struct q q;
	q_begin(&q, DNS_OPCODE_STATUS << 11, 1, 0, 0, 0);
	q_question(&q);
	struct dns_request req;
	uint8_t rcode;
	cr_assert_eq(q_parse(&q, &req, &rcode), 0);
	uint8_t out[64];
	struct wbuf b = wbuf_init(out, sizeof(out));
	cr_assert_eq(dns_build_error(&b, &req, rcode), 12 + QNAME_LEN + 4);
	cr_assert_eq(out[2], 0x90, "QR + opcode 2");
	cr_assert_eq(out[3], 0x04, "NOTIMP, no RA: RA is QUERY's");
}

/*
 * Issue 10, item 10 (genreport "opcode" and "opcodeflg"): the answer to an
 * unknown opcode carries only ID, QR, opcode and RCODE, whatever flags the
 * query set (TC, RD, RA, Z, AD, CD, AA), and an empty question section.
 */
Test(dns_build, notimp_only_shared_header_fields)
{
	static const uint16_t flags[] = {
	    15 << 11,
	    15 << 11 | DNS_FLAG_TC | DNS_FLAG_RD | DNS_FLAG_RA | 0x0040 | DNS_FLAG_AD |
	        DNS_FLAG_CD | DNS_FLAG_AA,
	};
	for (unsigned i = 0; i < 2; i++) {
		struct q q;
		q_begin(&q, flags[i], 0, 0, 0, 0);
		struct dns_request req;
		uint8_t rcode;
		cr_assert_eq(q_parse(&q, &req, &rcode), 0);
		cr_assert_eq(rcode, DNS_RCODE_NOTIMP);
		uint8_t out[64];
		struct wbuf b = wbuf_init(out, sizeof(out));
		cr_assert_eq(dns_build_error(&b, &req, rcode), 12);
		cr_assert_eq(out[2], 0x80 | 15 << 3, "QR + opcode 15 only (case %u): %02x", i,
		             out[2]);
		cr_assert_eq(out[3], DNS_RCODE_NOTIMP, "NOTIMP only (case %u): %02x", i, out[3]);
		cr_assert_eq(
		    out[4] | out[5] | out[6] | out[7] | out[8] | out[9] | out[10] | out[11], 0);
	}
}

/*
 * Issue 10, item 8: the head reads the header and the question and nothing
 * of the record sections beyond a lone OPT, so a server checks its ACL
 * before walking them. A question followed by 5000 records of garbage (any
 * walk would reject them) leaves the head content; the rest then FORMERRs.
 */
Test(dns_request, head_does_not_walk_records)
{
	static uint8_t pkt[12 + QNAME_LEN + 4 + 5000 * 11];
	size_t len = sizeof(pkt);
	memset(pkt, 0xff, len); /* every "record" starts with a bad label type */
	const uint8_t hdr[12] = {0xab, 0xcd, 0x01, 0x00, 0, 1, 0x13, 0x88, 0, 0, 0, 0};
	memcpy(pkt, hdr, 12);
	memcpy(pkt + 12, QNAME "\0\x00\x01\x00\x01", QNAME_LEN + 4);
	struct dns_request req;
	cr_assert_eq(dns_request_parse_head(pkt, len, &req), 0);
	cr_assert(req.has_question);
	cr_assert_eq(req.qtype, DNS_TYPE_A);
	cr_assert_eq(req.ancount, 5000);
	cr_assert_not(req.edns);
	uint8_t rcode = 0xEE;
	cr_assert_eq(dns_request_parse_rest(pkt, len, &req, &rcode), 0);
	cr_assert_eq(rcode, DNS_RCODE_FORMERR);
	/* A response is dropped by the head alone. */
	pkt[2] |= 0x80;
	cr_assert_eq(dns_request_parse_head(pkt, len, &req), -EBADMSG);
}

/* The head takes the OPT of the usual query shape (question + OPT only). */
Test(dns_request, head_takes_lone_opt)
{
	struct q q;
	q_begin(&q, DNS_FLAG_RD, 1, 0, 0, 1);
	q_question(&q);
	q_opt(&q, 0, true, NULL, 0);
	struct dns_request req;
	cr_assert_eq(dns_request_parse_head(q.b, q.w.off, &req), 0);
	cr_assert(req.edns);
	cr_assert(req.do_bit);
}

Test(dns_build, upstream_query_golden)
{
	uint8_t name[] = QNAME;
	uint8_t rnd[DNS_0X20_RANDOM_BYTES];
	memset(rnd, 0xAA, sizeof(rnd));
	dns_name_randomize_case(name, QNAME_LEN, rnd, sizeof(rnd));
	uint8_t out[128];
	struct wbuf b = wbuf_init(out, sizeof(out));
	static const uint8_t want[] = {
	    0xbe, 0xef, 0x01, 0x10, 0,   1,    0,   0,   0,   0,   0,   1, /* RD CD */
	    3,    'W',  'w',  'W',  7,   'E',  'x', 'A', 'm', 'P', 'l', 'E',
	    4,    'T',  'e',  'S',  't', 0,    0,   28,  0,   1,   0,   0,
	    41,   0x04, 0xd0, 0,    0,   0x80, 0,   0,   0,
	};
	int n =
	    dns_build_query(&b, 0xBEEF, name, QNAME_LEN, DNS_TYPE_AAAA, DNS_CLASS_IN, true, true);
	cr_assert_eq(n, (int)sizeof(want));
	cr_assert_eq(memcmp(out, want, sizeof(want)), 0);
	/* the OPT is the last 11 octets */
	struct dns_scan s;
	cr_assert_eq(dns_scan(out, (size_t)n, &s), 0);
	cr_assert(s.has_opt);
	cr_assert_eq(s.opt_off + s.opt_len, (size_t)n);
	cr_assert_eq(s.opt_len, 11);
	cr_assert_eq(dns_scan_match_question(out, &s, name, QNAME_LEN, DNS_TYPE_AAAA, DNS_CLASS_IN),
	             DNS_QMATCH_EXACT);
	cr_assert_eq(dns_scan_match_question(out, &s, (const uint8_t *)QNAME, QNAME_LEN,
	                                     DNS_TYPE_AAAA, DNS_CLASS_IN),
	             DNS_QMATCH_NOCASE);
	cr_assert_eq(dns_scan_match_question(out, &s, name, QNAME_LEN, DNS_TYPE_A, DNS_CLASS_IN),
	             DNS_QMATCH_NONE);
	/* The question alone gives the same verdicts, also when the rest does not parse. */
	for (size_t cut = (size_t)n; cut >= DNS_HDR_LEN + QNAME_LEN + 4; cut--) {
		cr_assert_eq(
		    dns_match_question(out, cut, name, QNAME_LEN, DNS_TYPE_AAAA, DNS_CLASS_IN),
		    DNS_QMATCH_EXACT, "cut at %zu", cut);
		cr_assert_eq(dns_match_question(out, cut, (const uint8_t *)QNAME, QNAME_LEN,
		                                DNS_TYPE_AAAA, DNS_CLASS_IN),
		             DNS_QMATCH_NOCASE);
	}
	cr_assert_eq(dns_match_question(out, (size_t)n, name, QNAME_LEN, DNS_TYPE_A, DNS_CLASS_IN),
	             DNS_QMATCH_NONE);
	cr_assert_eq(dns_match_question(out, DNS_HDR_LEN + QNAME_LEN + 3, name, QNAME_LEN,
	                                DNS_TYPE_AAAA, DNS_CLASS_IN),
	             DNS_QMATCH_NONE, "question cut short");
	cr_assert_eq(dns_match_question(out, 11, name, QNAME_LEN, DNS_TYPE_AAAA, DNS_CLASS_IN),
	             DNS_QMATCH_NONE);
	out[5] = 2; /* QDCOUNT 2 */
	cr_assert_eq(
	    dns_match_question(out, (size_t)n, name, QNAME_LEN, DNS_TYPE_AAAA, DNS_CLASS_IN),
	    DNS_QMATCH_NONE);
	out[5] = 1;
	out[12] = 0xc0; /* a pointer where the question starts */
	out[13] = 0x0c;
	cr_assert_eq(
	    dns_match_question(out, (size_t)n, name, QNAME_LEN, DNS_TYPE_AAAA, DNS_CLASS_IN),
	    DNS_QMATCH_NONE);
	/* without DO and CD */
	b = wbuf_init(out, sizeof(out));
	cr_assert_eq(
	    dns_build_query(&b, 1, name, QNAME_LEN, DNS_TYPE_A, DNS_CLASS_IN, false, false), n);
	cr_assert_eq(out[3], 0x00);
	cr_assert_eq(out[n - 4], 0x00);
	b = wbuf_init(out, 20);
	cr_assert_eq(
	    dns_build_query(&b, 1, name, QNAME_LEN, DNS_TYPE_A, DNS_CLASS_IN, false, false),
	    -EMSGSIZE);
}

Test(dns_build, identity_golden)
{
	size_t len;
	uint8_t *pkt = load_vec("098-kdig-query-id_server-txt-noedns.bin", &len);
	struct dns_request req;
	uint8_t rcode;
	cr_assert_eq(dns_request_parse(pkt, len, &req, &rcode), 0);
	cr_assert_eq(rcode, DNS_RCODE_NOERROR);
	cr_assert(dns_request_is_identity(&req));
	uint8_t out[128];
	struct wbuf b = wbuf_init(out, sizeof(out));
	int n = dns_build_identity(&b, &req, "node");
	static const uint8_t want[] = {
	    29938 >> 8, 29938 & 0xff, 0x85, 0x00, 0,   1,   0,   1,   0,   0,   0, 0, /* QR AA RD */
	    2,          'i',          'd',  6,    's', 'e', 'r', 'v', 'e', 'r', 0, 0, 16, 0,
	    3,          0xc0,         0x0c, 0,    16,  0,   3,   0,   0,   0,   0, 0, 5,  4,
	    'n',        'o',          'd',  'e',
	};
	cr_assert_eq(n, (int)sizeof(want));
	cr_assert_eq(memcmp(out, want, sizeof(want)), 0);
	/* the answer has knotd's shape for the same query: same length with a same-length id */
	size_t al;
	uint8_t *knot = load_vec("099-knot-response-id_server-txt-noedns.bin", &al);
	struct dns_scan s, k;
	cr_assert_eq(dns_scan(out, (size_t)n, &s), 0);
	cr_assert_eq(dns_scan(knot, al, &k), 0);
	cr_assert_eq(s.ancount, k.ancount);
	cr_assert_eq(s.q_len, k.q_len);
	free(knot);
	free(pkt);

	pkt = load_vec("096-kdig-query-version_bind-txt-noedns.bin", &len);
	cr_assert_eq(dns_request_parse(pkt, len, &req, &rcode), 0);
	cr_assert_not(dns_request_is_identity(&req));
	free(pkt);
}

Test(dns_build, identity_hostname_bind_with_edns)
{
	struct q q;
	q_begin(&q, 0, 1, 0, 0, 1);
	wbuf_bytes(&q.w,
	           "\x08HOSTNAME\x04"
	           "bind\0\0\x10\0\x03",
	           19);
	q_opt(&q, 0, true, NULL, 0);
	struct dns_request req;
	parse_ok(&q, &req);
	cr_assert(dns_request_is_identity(&req));
	uint8_t out[600];
	struct wbuf b = wbuf_init(out, sizeof(out));
	char longid[300];
	memset(longid, 'x', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = 0;
	int n = dns_build_identity(&b, &req, longid);
	cr_assert_eq(n, 12 + 19 + 12 + 256 + 11, "identity cut at 255");
	struct dns_scan s;
	cr_assert_eq(dns_scan(out, (size_t)n, &s), 0);
	cr_assert(s.has_opt && s.do_bit && s.aa);
	cr_assert_eq(memcmp(out + 12, "\x08HOSTNAME", 9), 0, "letter case echoed");
}

static void check_truncation(const char *full_name, const char *tc_name, size_t limit)
{
	size_t fl, tl;
	uint8_t *full = load_vec(full_name, &fl), *tc = load_vec(tc_name, &tl);
	cr_assert_gt(fl, limit);
	uint8_t out[1500];
	struct wbuf b = wbuf_init(out, sizeof(out));
	int n = dns_build_truncated(&b, full, fl, limit);
	cr_assert_eq(n, (int)tl, "%s: %d vs %zu", full_name, n, tl);
	cr_assert_eq(memcmp(out, tc, tl), 0, "%s", full_name);
	free(full);
	free(tc);
}

Test(dns_build, truncation_matches_knot_and_unbound)
{
	/* knotd's and Unbound's own UDP answers for the same IDs are the goldens. */
	check_truncation("026-knot-response-big-txt-tcp-do.bin",
	                 "024-knot-response-big-txt-tc-do.bin", 1232);
	check_truncation("142-unbound-response-big-txt-tcp-do.bin",
	                 "141-unbound-response-big-txt-tc-do.bin", 1232);
}

Test(dns_build, truncation_no_edns_and_fits)
{
	size_t fl;
	uint8_t *full = load_vec("196-unbound-response-big-txt-tcp-noedns.bin", &fl);
	uint8_t out[1500];
	struct wbuf b = wbuf_init(out, sizeof(out));
	int n = dns_build_truncated(&b, full, fl, 512);
	cr_assert_eq(n, 12 + 22);
	struct dns_scan s;
	cr_assert_eq(dns_scan(out, (size_t)n, &s), 0);
	cr_assert(s.tc && !s.has_opt && s.has_question);
	cr_assert_eq(s.ancount + s.nscount + s.arcount, 0);
	cr_assert_eq(memcmp(out + 12, full + 12, 22), 0);
	cr_assert_eq(memcmp(out, full, 2), 0);
	free(full);
	/* a small answer is copied unchanged */
	full = load_vec("010-unbound-response-www-a-noedns.bin", &fl);
	b = wbuf_init(out, sizeof(out));
	cr_assert_eq(dns_build_truncated(&b, full, fl, 512), (int)fl);
	cr_assert_eq(memcmp(out, full, fl), 0);
	cr_assert_eq(dns_build_truncated(&b, (const uint8_t *)"xx", 2, 512), -EBADMSG);
	free(full);
}

/* ---- scan ---- */

Test(dns_scan, ttl_offsets_patch_and_rescan)
{
	size_t len;
	uint8_t *pkt = load_vec("018-knot-response-apex-mx-do.bin", &len);
	struct dns_scan s;
	cr_assert_eq(dns_scan(pkt, len, &s), 0);
	cr_assert_eq(s.n_ttl, 9 + 21);
	cr_assert(s.has_answer_ttl);
	cr_assert_eq(s.min_answer_ttl, 3600);
	cr_assert_not(s.negative);
	uint8_t *copy = malloc(len);
	memcpy(copy, pkt, len);
	for (size_t i = 0; i < s.n_ttl; i++) {
		cr_assert_eq(pkt[s.ttl_off[i] - 4 + 2], 0, "class IN high octet before the TTL");
		cr_assert_eq(pkt[s.ttl_off[i] - 4 + 3], 1);
		uint8_t *t = copy + s.ttl_off[i];
		t[0] = 0;
		t[1] = 0;
		t[2] = 0;
		t[3] = (uint8_t)(40 + i);
	}
	struct dns_scan s2;
	cr_assert_eq(dns_scan(copy, len, &s2), 0);
	cr_assert_eq(s2.min_answer_ttl, 40);
	cr_assert_eq(s2.n_ttl, s.n_ttl);
	cr_assert(s2.has_opt && s2.do_bit && s2.udp_size == 1232, "OPT untouched");
	/* only TTL octets changed */
	size_t changed = 0;
	for (size_t i = 0; i < len; i++)
		changed += pkt[i] != copy[i];
	cr_assert_leq(changed, 4 * s.n_ttl);
	cr_assert_gt(changed, s.n_ttl);
	free(copy);
	free(pkt);
}

Test(dns_scan, negative_ttls)
{
	size_t len;
	uint8_t *pkt = load_vec("236-unbound-response-nosuch-aaaa-nxdomain-noedns.bin", &len);
	struct dns_scan s;
	cr_assert_eq(dns_scan(pkt, len, &s), 0);
	cr_assert(s.negative && s.has_soa);
	cr_assert_eq(s.rcode, DNS_RCODE_NXDOMAIN);
	cr_assert_eq(s.soa_ttl, 267);
	cr_assert_eq(s.soa_minimum, 300);
	cr_assert_eq(s.neg_ttl, 267);
	cr_assert_not(s.has_answer_ttl);
	free(pkt);

	pkt = load_vec("032-knot-response-www-txt-do.bin", &len); /* NODATA */
	cr_assert_eq(dns_scan(pkt, len, &s), 0);
	cr_assert(s.negative && s.has_soa);
	cr_assert_eq(s.rcode, DNS_RCODE_NOERROR);
	cr_assert_eq(s.neg_ttl, 300);
	free(pkt);

	pkt = load_vec("003-knot-response-apex-soa-noedns.bin", &len); /* SOA in answer: positive */
	cr_assert_eq(dns_scan(pkt, len, &s), 0);
	cr_assert_not(s.negative);
	cr_assert_not(s.has_soa);
	cr_assert_eq(s.min_answer_ttl, 3600);
	free(pkt);
}

/* A response with n A records for www.example.test. */
static size_t many_a(uint8_t *buf, size_t cap, size_t n, uint32_t ttl0)
{
	struct wbuf b = wbuf_init(buf, cap);
	wbuf_u16(&b, 1);
	wbuf_u16(&b, DNS_FLAG_QR | DNS_FLAG_RD | DNS_FLAG_RA);
	wbuf_u16(&b, 1);
	wbuf_u16(&b, (uint16_t)n);
	wbuf_u16(&b, 0);
	wbuf_u16(&b, 0);
	wbuf_bytes(&b, QNAME, QNAME_LEN);
	wbuf_u16(&b, 1);
	wbuf_u16(&b, 1);
	for (size_t i = 0; i < n; i++) {
		wbuf_u16(&b, 0xC00C);
		wbuf_u16(&b, 1);
		wbuf_u16(&b, 1);
		wbuf_u32(&b, ttl0 + (uint32_t)i);
		wbuf_u16(&b, 4);
		wbuf_u32(&b, 0x7f000001);
	}
	cr_assert_eq(b.err, 0);
	return b.off;
}

Test(dns_scan, too_many_rrs)
{
	static uint8_t buf[8192];
	struct dns_scan s;
	size_t n = many_a(buf, sizeof(buf), DNS_MAX_TTL_OFFSETS, 100);
	cr_assert_eq(dns_scan(buf, n, &s), 0);
	cr_assert_eq(s.n_ttl, DNS_MAX_TTL_OFFSETS);
	cr_assert_eq(s.min_answer_ttl, 100);
	n = many_a(buf, sizeof(buf), DNS_MAX_TTL_OFFSETS + 1, 100);
	cr_assert_eq(dns_scan(buf, n, &s), -E2BIG);
}

Test(dns_scan, ttl_msb_reads_as_zero)
{
	uint8_t buf[256];
	size_t n = many_a(buf, sizeof(buf), 2, 0x80000000u); /* RFC 2181 §8 */
	struct dns_scan s;
	cr_assert_eq(dns_scan(buf, n, &s), 0);
	cr_assert_eq(s.min_answer_ttl, 0);
}

Test(dns_scan, malformed)
{
	uint8_t buf[256];
	struct dns_scan s;
	size_t n = many_a(buf, sizeof(buf), 2, 60);
	cr_assert_eq(dns_scan(buf, n, &s), 0);
	buf[n] = 0;
	cr_assert_eq(dns_scan(buf, n + 1, &s), -EBADMSG, "trailing octet");
	buf[5] = 2; /* QDCOUNT 2 */
	cr_assert_eq(dns_scan(buf, n, &s), -EBADMSG);
	buf[5] = 1;
	buf[7] = 3; /* ANCOUNT 3, only 2 present */
	cr_assert_eq(dns_scan(buf, n, &s), -EBADMSG);
	buf[7] = 2;
	/* SOA with short RDATA */
	size_t at = 12 + QNAME_LEN + 4 + 2;
	buf[at + 1] = DNS_TYPE_SOA;
	cr_assert_eq(dns_scan(buf, n, &s), -EBADMSG);
}

Test(dns_scan, question_match_on_vectors)
{
	/* Unbound's 0x20 query and knotd's answer: the case pattern comes back. */
	size_t ql, al;
	uint8_t *q = load_vec("004-unbound-query-www-a-do-0x20.bin", &ql);
	uint8_t *a = load_vec("005-knot-response-www-a-do.bin", &al);
	struct dns_scan sq, sa;
	cr_assert_eq(dns_scan(q, ql, &sq), 0);
	cr_assert_eq(dns_scan(a, al, &sa), 0);
	cr_assert_eq(
	    dns_scan_match_question(a, &sa, q + sq.q_off, sq.qname_len, sq.qtype, sq.qclass),
	    DNS_QMATCH_EXACT);
	cr_assert_eq(dns_scan_match_question(a, &sa, (const uint8_t *)QNAME, QNAME_LEN, DNS_TYPE_A,
	                                     DNS_CLASS_IN),
	             DNS_QMATCH_NOCASE);
	free(q);
	free(a);
}

/* Issue 10, item 3: meta-QTYPEs are answered locally, never forwarded. */
Test(dns_request, meta_qtypes_answered_locally)
{
	struct dns_request req = {.has_question = true, .qclass = DNS_CLASS_IN};
	static const struct {
		uint16_t qtype;
		uint8_t rcode;
	} t[] = {
	    {DNS_TYPE_AXFR, DNS_RCODE_REFUSED}, {DNS_TYPE_IXFR, DNS_RCODE_REFUSED},
	    {DNS_TYPE_MAILA, DNS_RCODE_NOTIMP}, {DNS_TYPE_MAILB, DNS_RCODE_NOTIMP},
	    {DNS_TYPE_A, DNS_RCODE_NOERROR},    {DNS_TYPE_ANY, DNS_RCODE_NOERROR},
	    {DNS_TYPE_SOA, DNS_RCODE_NOERROR},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		req.qtype = t[i].qtype;
		cr_assert_eq(dns_request_local_rcode(&req), t[i].rcode, "qtype %u", t[i].qtype);
	}
}
