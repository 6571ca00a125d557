/*
 * test_bgp_wire.c: header, OPEN, NOTIFICATION, KEEPALIVE, ROUTE-REFRESH, and
 * every captured vector in tests/vectors/bgp checked against MANIFEST.tsv.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgp/bgp_wire.h"

/* ---- helpers ---- */

static uint8_t *load(const char *name, size_t *len)
{
	const char *dir = getenv("ANYCACHE_VECTORS");
	cr_assert(dir, "ANYCACHE_VECTORS not set");
	char path[1024];
	snprintf(path, sizeof(path), "%s/bgp/%s", dir, name);
	FILE *f = fopen(path, "rb");
	cr_assert(f, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *buf = malloc(n ? (size_t)n : 1);
	cr_assert(fread(buf, 1, (size_t)n, f) == (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static bool has(const char *s, const char *needle)
{
	return strstr(s, needle) != NULL;
}

/* Number of whitespace-separated tokens after the first word of an item. */
static size_t tokens_after_first(const char *item)
{
	size_t n = 0;
	const char *p = strchr(item, ' ');
	while (p && *p) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		n++;
		while (*p && *p != ' ')
			p++;
	}
	return n;
}

static void fmt_prefix(const struct bgp_prefix *p, bool addpath, char *out, size_t size)
{
	char a[INET6_ADDRSTRLEN];
	inet_ntop(p->fam == BGP_FAM_IPV6 ? AF_INET6 : AF_INET, p->addr, a, sizeof(a));
	if (addpath)
		snprintf(out, size, "%s/%u(path-id %u)", a, p->len, p->path_id);
	else
		snprintf(out, size, "%s/%u", a, p->len);
}

/* Formats a path value like the manifest: "65002 65003 {64497,64498}", "(empty)". */
static void fmt_path(const uint8_t *p, size_t len, bool as4, char *out, size_t size)
{
	size_t o = 0;
	out[0] = 0;
	if (len == 0) {
		snprintf(out, size, "(empty)");
		return;
	}
	struct wire w = wire_init(p, len);
	while (wire_left(&w) > 0) {
		uint8_t t = wire_u8(&w), n = wire_u8(&w);
		if (o)
			o += snprintf(out + o, size - o, " ");
		if (t == BGP_AS_SET)
			o += snprintf(out + o, size - o, "{");
		for (int i = 0; i < n; i++) {
			uint32_t as = as4 ? wire_u32(&w) : wire_u16(&w);
			const char *sep = i == 0 ? "" : (t == BGP_AS_SET ? "," : " ");
			o += snprintf(out + o, size - o, "%s%u", sep, as);
		}
		if (t == BGP_AS_SET)
			o += snprintf(out + o, size - o, "}");
	}
}

/* Every prefix of a field must appear in the description; returns the count. */
static size_t check_prefixes(const struct bgp_nlri *n, const char *desc, const char *file)
{
	struct bgp_nlri_iter it;
	struct bgp_prefix p;
	size_t count = 0;
	bgp_nlri_iter_init(&it, n);
	while (bgp_nlri_next(&it, &p)) {
		char s[128];
		fmt_prefix(&p, n->addpath, s, sizeof(s));
		cr_expect(has(desc, s), "%s: prefix %s not in description", file, s);
		count++;
	}
	cr_expect_eq(count, n->count, "%s: iterator %zu vs count %zu", file, count, n->count);
	return count;
}

/* Counts prefixes in a description: tokens like a.b.c.d/n or x:y::/n. */
static size_t desc_prefix_count(const char *desc)
{
	size_t n = 0;
	char buf[8192];
	snprintf(buf, sizeof(buf), "%s", desc);
	for (char *save, *t = strtok_r(buf, " ;", &save); t; t = strtok_r(NULL, " ;", &save)) {
		char *slash = strchr(t, '/');
		if (slash && slash > t && (slash[-1] == ':' || strchr(t, '.') || strchr(t, ':')) &&
		    slash[1] >= '0' && slash[1] <= '9' && !has(t, "unicast"))
			n++;
	}
	return n;
}

static void check_update(const struct bgp_update *u, const struct bgp_ctx *ctx, const char *desc,
                         const char *file)
{
	size_t n = check_prefixes(&u->withdrawn, desc, file) +
	           check_prefixes(&u->nlri, desc, file) + check_prefixes(&u->mp_reach, desc, file) +
	           check_prefixes(&u->mp_unreach, desc, file);
	cr_expect_eq(n, desc_prefix_count(desc), "%s: %zu prefixes, manifest %zu", file, n,
	             desc_prefix_count(desc));
	cr_expect_eq(u->eor, has(desc, "End-of-RIB"), "%s: End-of-RIB", file);
	if (u->eor)
		cr_expect_eq(u->eor_fam, has(desc, "IPv6") ? BGP_FAM_IPV6 : BGP_FAM_IPV4);

	/* Walk the description's items and check each attribute named there. */
	char buf[8192];
	snprintf(buf, sizeof(buf), "%s", desc);
	size_t attrs_named = 0;
	for (char *save, *it = strtok_r(buf, ";", &save); it; it = strtok_r(NULL, ";", &save)) {
		while (*it == ' ')
			it++;
		char s[512];
		if (!strncmp(it, "ORIGIN ", 7)) {
			static const char *names[] = {"IGP", "EGP", "INCOMPLETE"};
			cr_expect(bgp_update_has(u, BGP_ATTR_ORIGIN));
			cr_expect_str_eq(it + 7, names[u->origin % 3], "%s: origin", file);
			attrs_named++;
		} else if (!strncmp(it, "AS_PATH ", 8)) {
			cr_expect(bgp_update_has(u, BGP_ATTR_AS_PATH), "%s: AS_PATH", file);
			fmt_path(u->as_path, u->as_path_len, u->as_path_as4, s, sizeof(s));
			cr_expect_str_eq(s, it + 8, "%s: AS_PATH '%s' vs '%s'", file, s, it + 8);
			attrs_named++;
		} else if (!strncmp(it, "AS4_PATH ", 9)) {
			cr_expect(bgp_update_has(u, BGP_ATTR_AS4_PATH), "%s: AS4_PATH", file);
			fmt_path(u->as4_path, u->as4_path_len, true, s, sizeof(s));
			cr_expect_str_eq(s, it + 9, "%s: AS4_PATH '%s' vs '%s'", file, s, it + 9);
			attrs_named++;
		} else if (!strncmp(it, "NEXT_HOP ", 9)) {
			inet_ntop(AF_INET, u->next_hop, s, sizeof(s));
			cr_expect_str_eq(s, it + 9, "%s: NEXT_HOP", file);
			attrs_named++;
		} else if (!strncmp(it, "MED ", 4)) {
			cr_expect_eq(u->med, strtoul(it + 4, NULL, 10), "%s: MED", file);
			attrs_named++;
		} else if (!strncmp(it, "LOCAL_PREF ", 11)) {
			cr_expect_eq(u->local_pref, strtoul(it + 11, NULL, 10), "%s: LOCAL_PREF",
			             file);
			attrs_named++;
		} else if (!strncmp(it, "OTC ", 4)) {
			cr_expect_eq(u->otc, strtoul(it + 4, NULL, 10), "%s: OTC", file);
			attrs_named++;
		} else if (!strcmp(it, "ATOMIC_AGGREGATE")) {
			cr_expect(u->atomic_aggregate, "%s", file);
			attrs_named++;
		} else if (!strncmp(it, "AGGREGATOR ", 11)) {
			char a[INET_ADDRSTRLEN];
			uint8_t id[4] = {
			    (uint8_t)(u->aggregator_id >> 24), (uint8_t)(u->aggregator_id >> 16),
			    (uint8_t)(u->aggregator_id >> 8), (uint8_t)u->aggregator_id};
			inet_ntop(AF_INET, id, a, sizeof(a));
			snprintf(s, sizeof(s), "%u %s", u->aggregator_as, a);
			cr_expect_str_eq(s, it + 11, "%s: AGGREGATOR", file);
			attrs_named++;
		} else if (!strncmp(it, "COMMUNITIES ", 12)) {
			const char *vals = strstr(it, "(");
			size_t want = vals ? strtoul(vals + 1, NULL, 10) : tokens_after_first(it);
			cr_expect_eq(u->n_communities, want, "%s: communities %zu vs %zu", file,
			             u->n_communities, want);
			attrs_named++;
		} else if (!strncmp(it, "EXT_COMMUNITIES ", 16)) {
			cr_expect_eq(u->n_ext_communities, tokens_after_first(it), "%s", file);
			attrs_named++;
		} else if (!strncmp(it, "LARGE_COMMUNITIES ", 18)) {
			cr_expect_eq(u->n_large_communities, tokens_after_first(it), "%s", file);
			attrs_named++;
		} else if (!strncmp(it, "unknown attribute ", 18)) {
			unsigned code, flags;
			char hex[64];
			cr_assert_eq(sscanf(it, "unknown attribute %u flags 0x%x value 0x%63s",
			                    &code, &flags, hex),
			             3);
			bool found = false;
			for (size_t i = 0; i < u->n_attrs; i++) {
				if (u->attrs[i].code != code)
					continue;
				found = true;
				cr_expect_eq(u->attrs[i].flags, flags, "%s: unknown attr flags",
				             file);
				char got[64] = "";
				for (size_t k = 0; k < u->attrs[i].len && k < 30; k++)
					sprintf(got + 2 * k, "%02x", u->attrs[i].val[k]);
				cr_expect_str_eq(got, hex, "%s: unknown attr value", file);
			}
			cr_expect(found, "%s: unknown attribute %u", file, code);
			cr_expect_eq(u->n_unknown, 1);
			attrs_named++;
		} else if (!strncmp(it, "MP_REACH ", 9)) {
			cr_expect(u->has_mp_reach, "%s", file);
			cr_expect_eq(u->mp_reach_afi, has(it, "MP_REACH IPv6") ? 2 : 1, "%s", file);
			/* "nh X + link-local Y" is 32 bytes; a lone IPv4 would be 4. */
			size_t nhl = has(it, "link-local") ? 32 : 16;
			cr_expect_eq(u->mp_nexthop_len, nhl, "%s: next hop length", file);
			const char *nh = strstr(it, " nh ") + 4;
			inet_ntop(AF_INET6, u->mp_nexthop, s, sizeof(s));
			cr_expect(!strncmp(nh, s, strlen(s)) && nh[strlen(s)] == ' ',
			          "%s: MP next hop %s", file, s);
			attrs_named++;
		} else if (!strncmp(it, "MP_UNREACH ", 11) || has(it, "MP_UNREACH with no NLRI")) {
			cr_expect(u->has_mp_unreach, "%s", file);
			cr_expect_eq(u->mp_unreach_afi, has(it, "IPv6") ? 2 : 1, "%s", file);
			attrs_named++;
		}
	}
	cr_expect_eq(u->n_attrs, attrs_named, "%s: %zu attributes parsed, %zu in manifest", file,
	             u->n_attrs, attrs_named);
	(void)ctx;
}

static void check_open(const struct bgp_open *o, const char *desc, const char *file)
{
	unsigned as, hold, ncaps, nparams;
	char id[32];
	cr_assert_eq(sscanf(desc, "OPEN v4 AS %u", &as), 1, "%s: desc", file);
	cr_assert_eq(sscanf(strstr(desc, " hold "), " hold %u id %31[0-9.]", &hold, id), 2,
	             "%s: desc", file);
	cr_expect_eq(o->my_as, as, "%s: my AS", file);
	cr_expect_eq(o->hold, hold, "%s: hold", file);
	struct in_addr ia;
	inet_pton(AF_INET, id, &ia);
	cr_expect_eq(o->bgp_id, ntohl(ia.s_addr), "%s: id", file);
	const char *c = strstr(desc, "; ");
	cr_assert_eq(sscanf(c, "; %u capabilities in %u optional", &ncaps, &nparams), 2);
	cr_expect_eq(o->caps.n, ncaps, "%s: %zu capabilities vs %u", file, o->caps.n, ncaps);
	cr_expect_eq(o->n_params, nparams, "%s: params", file);
	const struct bgp_caps *k = &o->caps;
	cr_expect_eq(k->mp[BGP_FAM_IPV4], has(desc, "MP IPv4/unicast"), "%s", file);
	cr_expect_eq(k->mp[BGP_FAM_IPV6], has(desc, "MP IPv6/unicast"), "%s", file);
	cr_expect_eq(k->route_refresh, has(desc, "route-refresh;") || has(desc, ": route-refresh"),
	             "%s: route refresh", file);
	cr_expect_eq(k->enhanced_rr, has(desc, "enhanced-route-refresh"), "%s", file);
	cr_expect_eq(k->ext_msg, has(desc, "extended-message"), "%s", file);
	cr_expect_eq(k->ext_nexthop, has(desc, "extended-nexthop"), "%s", file);
	cr_expect_eq(k->gr, has(desc, "GR restart-time"), "%s", file);
	cr_expect_eq(k->llgr, has(desc, "LLGR["), "%s", file);
	cr_expect_eq(k->role, has(desc, "role "), "%s", file);
	const char *a4 = strstr(desc, "4-octet-AS ");
	cr_expect_eq(k->as4, a4 != NULL, "%s", file);
	if (a4) {
		cr_expect_eq(k->as4_asn, strtoul(a4 + 11, NULL, 10), "%s: 4-octet ASN", file);
		cr_expect_eq(o->asn, k->as4_asn);
	}
	const char *ap = strstr(desc, "add-path[IPv4/unicast ");
	if (ap) {
		uint8_t want = has(ap, "IPv4/unicast rx+tx") ? 3 : BGP_ADDPATH_RX;
		cr_expect_eq(k->addpath[BGP_FAM_IPV4], want, "%s: add-path", file);
	} else {
		cr_expect_eq(k->addpath[BGP_FAM_IPV4], 0, "%s: add-path", file);
	}
	const char *h = strstr(desc, "FQDN host \"");
	cr_expect_eq(k->fqdn, h != NULL);
	if (h) {
		h += 11;
		size_t hl = strchr(h, '"') - h;
		cr_expect_eq(k->hostlen, hl, "%s: hostname length", file);
		cr_expect(!memcmp(k->host, h, hl), "%s: hostname", file);
	}
	/* Codes we do not know (pre-standard RR 128, dynamic 66/67, operational, multisession). */
	size_t unknown = 0;
	for (size_t i = 0; i < k->n && i < BGP_CAPS_LIST_MAX; i++)
		switch (k->list[i].code) {
		case 1:
		case 2:
		case 5:
		case 6:
		case 9:
		case 64:
		case 65:
		case 69:
		case 70:
		case 71:
		case 73:
			break;
		default:
			unknown++;
		}
	cr_expect_eq(k->n_unknown, unknown, "%s", file);
}

static void check_notification(const struct bgp_notification *n, const char *desc, const char *file)
{
	unsigned code, sub;
	cr_assert_eq(sscanf(desc, "NOTIFICATION %u/%u", &code, &sub), 2);
	cr_expect_eq(n->code, code, "%s", file);
	cr_expect_eq(n->subcode, sub, "%s", file);
	const char *sc = strstr(desc, "shutdown communication (");
	cr_expect_eq(n->has_shutdown, sc != NULL, "%s: shutdown text", file);
	if (sc) {
		size_t len = strtoul(sc + 24, NULL, 10);
		const char *q = strchr(sc, '"') + 1;
		cr_expect_eq(n->shutdown_len, len, "%s", file);
		cr_expect(!memcmp(n->shutdown, q, len), "%s: text", file);
		cr_expect(n->shutdown_utf8, "%s: utf8", file);
	}
	const char *d = strstr(desc, "data 0x");
	if (d) {
		d += 7;
		cr_expect_eq(n->datalen * 2, strcspn(d, " "), "%s: data length", file);
		for (size_t i = 0; i < n->datalen; i++) {
			unsigned x;
			sscanf(d + 2 * i, "%2x", &x);
			cr_expect_eq(n->data[i], x, "%s: data[%zu]", file, i);
		}
	} else if (!sc) {
		cr_expect_eq(n->datalen, 0, "%s: no data expected", file);
	}
}

static const char *type_name(uint8_t t)
{
	static const char *n[] = {"?",         "OPEN",         "UPDATE", "NOTIFICATION",
	                          "KEEPALIVE", "ROUTE-REFRESH"};
	return t <= 5 ? n[t] : "?";
}

static struct bgp_ctx ctx_from_manifest(const char *pc, size_t len)
{
	struct bgp_ctx c = {.as4 = !has(pc, "4-octet AS: no")};
	bool ap = has(pc, "IPv4/unicast,IPv6/unicast");
	c.addpath_rx[BGP_FAM_IPV4] = c.addpath_rx[BGP_FAM_IPV6] = ap;
	/* Only the sessions that negotiated RFC 8654 carried messages this long. */
	c.ext_msg = len > BGP_MAX_LEN;
	return c;
}

Test(bgp_vectors, every_manifest_row_parses_and_matches)
{
	const char *dir = getenv("ANYCACHE_VECTORS");
	cr_assert(dir);
	char path[1024];
	snprintf(path, sizeof(path), "%s/bgp/MANIFEST.tsv", dir);
	FILE *f = fopen(path, "r");
	cr_assert(f);
	static char line[65536];
	size_t rows = 0, per_type[6] = {0}, ext = 0;
	cr_assert(fgets(line, sizeof(line), f)); /* header row */
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		char *col[10] = {0};
		char *save, *p = line;
		for (int i = 0; i < 10; i++) {
			col[i] = p;
			char *t = strchr(p, '\t');
			if (!t)
				break;
			*t = 0;
			p = t + 1;
		}
		(void)save;
		cr_assert(col[8], "short row");
		const char *file = col[0], *type = col[3], *pc = col[6], *desc = col[8];
		size_t len;
		uint8_t *buf = load(file, &len);
		cr_expect_eq(len, strtoul(col[4], NULL, 10), "%s: length column", file);
		struct bgp_ctx ctx = ctx_from_manifest(pc, len);
		static struct bgp_msg m;
		static struct bgp_notify err;
		int rc = bgp_msg_parse(buf, len, &ctx, &m, &err);
		cr_expect_eq(rc, 0, "%s: rc %d notify %u/%u", file, rc, err.code, err.subcode);
		cr_expect_str_eq(type_name(m.hdr.type), type, "%s", file);
		if (rc == 0) {
			per_type[m.hdr.type]++;
			switch (m.hdr.type) {
			case BGP_MSG_OPEN:
				check_open(&m.u.open, desc, file);
				break;
			case BGP_MSG_UPDATE:
				cr_expect_eq(m.u.update.action, BGP_UPD_OK, "%s", file);
				check_update(&m.u.update, &ctx, desc, file);
				break;
			case BGP_MSG_NOTIFICATION:
				check_notification(&m.u.notification, desc, file);
				break;
			case BGP_MSG_ROUTE_REFRESH: {
				const struct bgp_route_refresh *rr = &m.u.rr;
				cr_expect_eq(rr->afi, has(desc, "IPv6") ? 2 : 1, "%s", file);
				cr_expect_eq(rr->safi, 1);
				uint8_t st = has(desc, "BoRR") ? 1 : has(desc, "EoRR") ? 2 : 0;
				cr_expect_eq(rr->subtype, st, "%s", file);
				break;
			}
			default:
				break;
			}
		}
		/* RFC 8654: without the negotiated capability, > 4096 is a 1/2 error. */
		if (len > BGP_MAX_LEN) {
			ext++;
			struct bgp_ctx plain = ctx;
			plain.ext_msg = false;
			cr_expect_eq(bgp_msg_parse(buf, len, &plain, &m, &err), -EBADMSG, "%s",
			             file);
			cr_expect_eq(err.code, 1);
			cr_expect_eq(err.subcode, 2);
			cr_expect_eq(err.datalen, 2);
			cr_expect_eq(err.data[0] << 8 | err.data[1], len);
		}
		free(buf);
		rows++;
	}
	fclose(f);
	cr_expect_eq(rows, 148, "manifest rows: %zu", rows);
	cr_expect_eq(ext, 3);
	cr_expect_eq(per_type[BGP_MSG_OPEN], 12);
	cr_expect_eq(per_type[BGP_MSG_KEEPALIVE], 4);
}

/* 2-octet sessions: the AS_TRANS path plus AS4_PATH; a 4-octet context ignores AS4_PATH. */
Test(bgp_vectors, as4_path_only_on_2octet_sessions)
{
	size_t len;
	uint8_t *buf = load("096-exabgp-update-ipv4-nlri-addpath-2octet-as-as4-path.bin", &len);
	struct bgp_ctx c = {.as4 = false, .addpath_rx = {true, true}};
	static struct bgp_msg m;
	static struct bgp_notify err;
	cr_assert_eq(bgp_msg_parse(buf, len, &c, &m, &err), 0);
	const struct bgp_update *u = &m.u.update;
	cr_expect_eq(bgp_as_path_count(u->as_path, u->as_path_len, false), 2);
	cr_expect_eq(bgp_as_path_at(u->as_path, u->as_path_len, false, 1), BGP_AS_TRANS);
	cr_expect_eq(bgp_as_path_at(u->as4_path, u->as4_path_len, true, 1), 4200000099u);
	free(buf);
	/* Wrong context (no add-path): the prefix bytes do not parse → 3/10 reset. */
	buf = load("087-gobgp-update-ipv4-nlri-addpath-2octet-as-as4-path.bin", &len);
	cr_assert_eq(bgp_msg_parse(buf, len, &c, &m, &err), 0);
	struct bgp_ctx wrong = {.as4 = false};
	cr_expect_eq(bgp_msg_parse(buf, len, &wrong, &m, &err), -EBADMSG);
	cr_expect_eq(err.code, 3);
	cr_expect_eq(err.subcode, 10);
	free(buf);
}

/* ---- truncation: every prefix of several valid messages ---- */

Test(bgp_vectors, truncation_at_every_byte)
{
	static const char *files[] = {
	    "001-bird-open-to-gobgp.bin",
	    "036-frr-open-to-bird-ipv6-transport.bin",
	    "007-gobgp-update-ipv4-nlri-unknown-attr.bin",
	    "048-frr-update-mp-reach-ipv4-v6-nexthop-ll-nexthop-addpath.bin",
	    "087-gobgp-update-ipv4-nlri-addpath-2octet-as-as4-path.bin",
	    "071-bird-notification-cease-admin-shutdown-with-message-utf8.bin",
	    "058-frr-route-refresh-borr-ipv4.bin",
	    "117-exabgp-update-eor-ipv6.bin",
	};
	for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		size_t len;
		uint8_t *full = load(files[f], &len);
		struct bgp_ctx c = {
		    .as4 = !has(files[f], "2octet"),
		    .addpath_rx = {has(files[f], "addpath"), has(files[f], "addpath")}};
		for (size_t cut = 0; cut < len; cut++) {
			/* Exact-size copy so a sanitizer build catches any over-read. */
			uint8_t *b = malloc(cut ? cut : 1);
			memcpy(b, full, cut);
			static struct bgp_msg m;
			static struct bgp_notify err;
			cr_expect_lt(bgp_msg_parse(b, cut, &c, &m, &err), 0, "%s cut %zu", files[f],
			             cut);
			/* And with the header length patched to match: any result, no crash. */
			if (cut >= BGP_HDR_LEN) {
				b[16] = (uint8_t)(cut >> 8);
				b[17] = (uint8_t)cut;
				int rc = bgp_msg_parse(b, cut, &c, &m, &err);
				cr_expect(rc >= -EBADMSG && rc <= BGP_UPD_TREAT_AS_WITHDRAW);
				if (rc < 0 && m.hdr.type != BGP_MSG_NOTIFICATION)
					cr_expect_neq(err.code, 0,
					              "%s cut %zu: error without notify", files[f],
					              cut);
			}
			free(b);
		}
		free(full);
	}
}

/* ---- header ---- */

static void hdr(uint8_t *b, uint16_t len, uint8_t type)
{
	memset(b, 0xff, 16);
	b[16] = (uint8_t)(len >> 8);
	b[17] = (uint8_t)len;
	b[18] = type;
}

Test(bgp_hdr, errors_per_rfc4271_6_1)
{
	uint8_t b[64];
	struct bgp_hdr h;
	static struct bgp_notify e;
	struct bgp_ctx c = {0};

	hdr(b, 19, 4);
	cr_expect_eq(bgp_hdr_parse(b, 19, &c, &h, &e), 0);
	cr_expect_eq(h.type, 4);
	cr_expect_eq(h.len, 19);

	hdr(b, 19, 4);
	b[5] = 0xfe;
	cr_expect_eq(bgp_hdr_parse(b, 19, &c, &h, &e), -EBADMSG);
	cr_expect_eq(e.code, 1);
	cr_expect_eq(e.subcode, 1);
	cr_expect_eq(e.datalen, 0);

	static const struct {
		uint16_t len;
		uint8_t type;
	} bad[] = {
	    {18, 4}, {20, 4}, {28, 1}, {22, 2}, {20, 3}, {22, 5}, {24, 5}, {4097, 2}, {65535, 3},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		hdr(b, bad[i].len, bad[i].type);
		cr_expect_eq(bgp_hdr_parse(b, 19, &c, &h, &e), -EBADMSG, "case %zu", i);
		cr_expect_eq(e.code, 1);
		cr_expect_eq(e.subcode, 2, "case %zu", i);
		cr_expect_eq(e.datalen, 2);
		cr_expect_eq(e.data[0] << 8 | e.data[1], bad[i].len);
	}
	/* Minimums are fine. */
	static const struct {
		uint16_t len;
		uint8_t type;
	} good[] = {
	    {29, 1}, {23, 2}, {21, 3}, {23, 5}, {4096, 2},
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		hdr(b, good[i].len, good[i].type);
		cr_expect_eq(bgp_hdr_parse(b, 19, &c, &h, &e), 0, "good %zu", i);
	}
	for (int t = 0; t < 256; t += 6) {
		if (t >= 1 && t <= 5)
			continue;
		hdr(b, 19, (uint8_t)t);
		cr_expect_eq(bgp_hdr_parse(b, 19, &c, &h, &e), -EBADMSG);
		cr_expect_eq(e.code, 1);
		cr_expect_eq(e.subcode, 3);
		cr_expect_eq(e.datalen, 1);
		cr_expect_eq(e.data[0], t);
	}
	/* RFC 8654: extended messages, but never for OPEN or KEEPALIVE. */
	struct bgp_ctx x = {.ext_msg = true};
	hdr(b, 65535, 2);
	cr_expect_eq(bgp_hdr_parse(b, 19, &x, &h, &e), 0);
	hdr(b, 5000, 1);
	cr_expect_eq(bgp_hdr_parse(b, 19, &x, &h, &e), -EBADMSG);
	cr_expect_eq(e.subcode, 2);
	/* Short input: framing, nothing to send. */
	cr_expect_eq(bgp_hdr_parse(b, 18, &c, &h, &e), -EBADMSG);
	cr_expect_eq(e.code, 0);
}

Test(bgp_hdr, golden_header_error_notifications)
{
	uint8_t b[19];
	struct bgp_hdr h;
	static struct bgp_notify e;
	uint8_t out[64];
	struct wbuf w = wbuf_init(out, sizeof(out));

	hdr(b, 4100, 2);
	cr_assert_eq(bgp_hdr_parse(b, 19, NULL, &h, &e), -EBADMSG);
	cr_assert_eq(bgp_notify_build(&w, &e), 23);
	static const uint8_t want_len[23] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	                                     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	                                     0x00, 0x17, 0x03, 0x01, 0x02, 0x10, 0x04};
	cr_expect_arr_eq(out, want_len, 23);

	hdr(b, 19, 9);
	w = wbuf_init(out, sizeof(out));
	cr_assert_eq(bgp_hdr_parse(b, 19, NULL, &h, &e), -EBADMSG);
	cr_assert_eq(bgp_notify_build(&w, &e), 22);
	static const uint8_t tail_type[] = {0x00, 0x16, 0x03, 0x01, 0x03, 0x09};
	cr_expect_arr_eq(out + 16, tail_type, 6);

	b[0] = 0;
	w = wbuf_init(out, sizeof(out));
	cr_assert_eq(bgp_hdr_parse(b, 19, NULL, &h, &e), -EBADMSG);
	cr_assert_eq(bgp_notify_build(&w, &e), 21);
	static const uint8_t tail_sync[] = {0x00, 0x15, 0x03, 0x01, 0x01};
	cr_expect_arr_eq(out + 16, tail_sync, 5);
}

/* ---- OPEN ---- */

static const uint8_t
    open2[] =
        {
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x33, 0x01, 0x04,
            0xfd, 0xf2, 0x00, 0x5a, 0x0a, 0x00, 0x00, 0x01, 0x16, /* v4 AS 65010 hold 90 id */
            0x02, 0x14,                                           /* capabilities, 20 bytes */
            0x01, 0x04, 0x00, 0x01, 0x00, 0x01,                   /* MP IPv4 unicast */
            0x01, 0x04, 0x00, 0x02, 0x00, 0x01,                   /* MP IPv6 unicast */
            0x02, 0x00,                                           /* route refresh */
            0x41, 0x04, 0x00, 0x00, 0xfd, 0xf2,                   /* 4-octet AS 65010 */
};

Test(bgp_open, golden_2octet_asn)
{
	struct bgp_open_cfg cfg = {.asn = 65010,
	                           .hold = 90,
	                           .bgp_id = 0x0a000001,
	                           .fam = {true, true},
	                           .route_refresh = true,
	                           .as4 = true};
	uint8_t out[128];
	struct wbuf w = wbuf_init(out, sizeof(out));
	cr_assert_eq(bgp_open_build(&w, &cfg), (int)sizeof(open2));
	cr_expect_arr_eq(out, open2, sizeof(open2));
}

Test(bgp_open, golden_4octet_asn_uses_as_trans)
{
	struct bgp_open_cfg cfg = {.asn = 4200000001u,
	                           .hold = 30,
	                           .bgp_id = 0xc0000201,
	                           .fam = {true, false},
	                           .route_refresh = true,
	                           .as4 = true};
	static const uint8_t want[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	                               0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x2d,
	                               0x01, 0x04, 0x5b, 0xa0, 0x00, 0x1e, 0xc0, 0x00, 0x02,
	                               0x01, 0x10, 0x02, 0x0e, 0x01, 0x04, 0x00, 0x01, 0x00,
	                               0x01, 0x02, 0x00, 0x41, 0x04, 0xfa, 0x56, 0xea, 0x01};
	uint8_t out[128];
	struct wbuf w = wbuf_init(out, sizeof(out));
	cr_assert_eq(bgp_open_build(&w, &cfg), (int)sizeof(want));
	cr_expect_arr_eq(out, want, sizeof(want));

	/* Round trip. */
	static struct bgp_msg m;
	static struct bgp_notify e;
	cr_assert_eq(bgp_msg_parse(out, sizeof(want), NULL, &m, &e), 0);
	cr_expect_eq(m.u.open.my_as, BGP_AS_TRANS);
	cr_expect_eq(m.u.open.asn, 4200000001u);
	cr_expect_eq(m.u.open.hold, 30);
	cr_expect(m.u.open.caps.mp[BGP_FAM_IPV4]);
	cr_expect(!m.u.open.caps.mp[BGP_FAM_IPV6]);
	cr_expect(m.u.open.caps.route_refresh);
	cr_expect_eq(bgp_open_check_as(&m.u.open, 4200000001u, &e), 0);
	cr_expect_eq(bgp_open_check_as(&m.u.open, 65001, &e), -EBADMSG);
	cr_expect_eq(e.code, 2);
	cr_expect_eq(e.subcode, 2);

	/* A 4-octet ASN cannot be sent without the capability. */
	cfg.as4 = false;
	w = wbuf_init(out, sizeof(out));
	cr_expect_eq(bgp_open_build(&w, &cfg), -EINVAL);
	w = wbuf_init(out, 20);
	cfg.as4 = true;
	cr_expect_eq(bgp_open_build(&w, &cfg), -EMSGSIZE);
}

static int open_err(const uint8_t *body, size_t len, struct bgp_notify *e)
{
	static struct bgp_open o;
	return bgp_open_parse(body, len, &o, e);
}

Test(bgp_open, errors_per_rfc4271_6_2)
{
	static struct bgp_notify e;
	uint8_t b[64];
	const uint8_t *body = open2 + BGP_HDR_LEN;
	size_t blen = sizeof(open2) - BGP_HDR_LEN;

	memcpy(b, body, blen);
	cr_expect_eq(open_err(b, blen, &e), 0);

	b[0] = 3;
	cr_expect_eq(open_err(b, blen, &e), -EBADMSG);
	cr_expect_eq(e.code, 2);
	cr_expect_eq(e.subcode, 1);
	cr_expect_eq(e.datalen, 2);
	cr_expect_eq(e.data[0], 0);
	cr_expect_eq(e.data[1], 4);

	memcpy(b, body, blen);
	b[3] = 0;
	b[4] = 2; /* hold 2 */
	cr_expect_eq(open_err(b, blen, &e), -EBADMSG);
	cr_expect_eq(e.subcode, 6);
	b[4] = 1;
	cr_expect_eq(open_err(b, blen, &e), -EBADMSG);
	cr_expect_eq(e.subcode, 6);
	b[4] = 0; /* hold 0 is legal: no keepalives */
	cr_expect_eq(open_err(b, blen, &e), 0);
	b[4] = 3;
	cr_expect_eq(open_err(b, blen, &e), 0);

	memcpy(b, body, blen);
	memset(b + 5, 0, 4);
	cr_expect_eq(open_err(b, blen, &e), -EBADMSG);
	cr_expect_eq(e.subcode, 3);

	memcpy(b, body, blen);
	b[1] = b[2] = 0; /* my AS 0, RFC 7607 */
	cr_expect_eq(open_err(b, blen, &e), -EBADMSG);
	cr_expect_eq(e.subcode, 2);
	memcpy(b, body, blen);
	memset(b + blen - 4, 0, 4); /* 4-octet capability with AS 0 */
	cr_expect_eq(open_err(b, blen, &e), -EBADMSG);
	cr_expect_eq(e.subcode, 2);

	memcpy(b, body, blen);
	b[10] = 1; /* parameter type 1 (authentication, deprecated) */
	cr_expect_eq(open_err(b, blen, &e), -EBADMSG);
	cr_expect_eq(e.subcode, 4);

	memcpy(b, body, blen);
	b[9] = 0x17; /* optional parameters length overruns */
	cr_expect_eq(open_err(b, blen, &e), -EBADMSG);
	cr_expect_eq(e.code, 2);
	cr_expect_eq(e.subcode, 0);

	memcpy(b, body, blen);
	b[11] = 0x13; /* parameter shorter than its capabilities */
	cr_expect_eq(open_err(b, blen, &e), -EBADMSG);
	cr_expect_eq(e.subcode, 0);

	/* Golden NOTIFICATION for 2/1. */
	memcpy(b, body, blen);
	b[0] = 5;
	cr_assert_eq(open_err(b, blen, &e), -EBADMSG);
	uint8_t out[64];
	struct wbuf w = wbuf_init(out, sizeof(out));
	cr_assert_eq(bgp_notify_build(&w, &e), 23);
	static const uint8_t tail[] = {0x00, 0x17, 0x03, 0x02, 0x01, 0x00, 0x04};
	cr_expect_arr_eq(out + 16, tail, sizeof(tail));
}

/* ---- NOTIFICATION ---- */

Test(bgp_notification, golden_and_shutdown_text)
{
	uint8_t out[512];
	struct wbuf w = wbuf_init(out, sizeof(out));
	const char *t = "maintenance";
	cr_assert_eq(bgp_notification_build_shutdown(&w, BGP_CEASE_ADMIN_SHUTDOWN, t, strlen(t)),
	             33);
	/* Byte-identical to what BIRD sent (vector 027). */
	size_t len;
	uint8_t *bird = load("027-bird-notification-cease-admin-shutdown-with-message.bin", &len);
	cr_assert_eq(len, 33);
	cr_expect_arr_eq(out, bird, 33);
	free(bird);

	static struct bgp_notification n;
	cr_assert_eq(bgp_notification_parse(out + 19, 14, &n), 0);
	cr_expect(n.has_shutdown);
	cr_expect_eq(n.shutdown_len, 11);

	/* 6/4 with 255 bytes of text; 256 is refused. */
	char big[300];
	memset(big, 'x', sizeof(big));
	w = wbuf_init(out, sizeof(out));
	cr_expect_eq(bgp_notification_build_shutdown(&w, BGP_CEASE_ADMIN_RESET, big, 255),
	             19 + 3 + 255);
	cr_expect_eq(bgp_notification_parse(out + 19, 3 + 255, &n), 0);
	cr_expect_eq(n.subcode, 4);
	cr_expect_eq(n.shutdown_len, 255);
	w = wbuf_init(out, sizeof(out));
	cr_expect_eq(bgp_notification_build_shutdown(&w, BGP_CEASE_ADMIN_RESET, big, 256), -EINVAL);

	/* Bad length byte: no text, no crash. */
	static const uint8_t bad[] = {6, 2, 40, 'a', 'b'};
	cr_expect_eq(bgp_notification_parse(bad, sizeof(bad), &n), 0);
	cr_expect(!n.has_shutdown);
	cr_expect_eq(n.datalen, 3);
	/* Invalid UTF-8 is reported, not trusted. */
	static const uint8_t badutf[] = {6, 2, 3, 0xc3, 0x28, 'a'};
	cr_expect_eq(bgp_notification_parse(badutf, sizeof(badutf), &n), 0);
	cr_expect(n.has_shutdown);
	cr_expect(!n.shutdown_utf8);
	/* Same data on another Cease subcode is just data. */
	static const uint8_t other[] = {6, 6, 1, 'a'};
	cr_expect_eq(bgp_notification_parse(other, sizeof(other), &n), 0);
	cr_expect(!n.has_shutdown);
	cr_expect_eq(bgp_notification_parse(other, 1, &n), -EBADMSG);

	/* Plain 4/0. */
	w = wbuf_init(out, sizeof(out));
	cr_expect_eq(bgp_notification_build(&w, 4, 0, NULL, 0), 21);
	uint8_t *hte = load("142-frr-notification-hold-timer-expired.bin", &len);
	cr_expect_arr_eq(out, hte, 21);
	free(hte);
}

Test(bgp_notification, utf8_validation)
{
	cr_expect(bgp_utf8_valid((const uint8_t *)"caf\xc3\xa9 \xe2\x98\x95 \xf0\x9f\x98\x80", 14));
	cr_expect(!bgp_utf8_valid((const uint8_t *)"\xc0\xaf", 2));         /* overlong */
	cr_expect(!bgp_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));     /* surrogate */
	cr_expect(!bgp_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
	cr_expect(!bgp_utf8_valid((const uint8_t *)"\xe2\x98", 2));         /* truncated */
	cr_expect(!bgp_utf8_valid((const uint8_t *)"\xff", 1));
}

/* ---- KEEPALIVE, ROUTE-REFRESH ---- */

Test(bgp_misc, keepalive_and_route_refresh_golden)
{
	uint8_t out[64];
	size_t len;
	struct wbuf w = wbuf_init(out, sizeof(out));
	cr_assert_eq(bgp_keepalive_build(&w), 19);
	uint8_t *ka = load("003-bird-keepalive.bin", &len);
	cr_expect_arr_eq(out, ka, 19);
	free(ka);

	static const struct {
		const char *file;
		uint16_t afi;
		uint8_t st;
	} rr[] = {
	    {"024-bird-route-refresh-request-ipv4.bin", 1, 0},
	    {"059-frr-route-refresh-borr-ipv6.bin", 2, 1},
	    {"069-bird-route-refresh-eorr-ipv4.bin", 1, 2},
	};
	for (size_t i = 0; i < 3; i++) {
		w = wbuf_init(out, sizeof(out));
		cr_assert_eq(bgp_route_refresh_build(&w, rr[i].afi, 1, rr[i].st), 23);
		uint8_t *v = load(rr[i].file, &len);
		cr_expect_arr_eq(out, v, 23, "%s", rr[i].file);
		free(v);
	}
	static struct bgp_notify e;
	struct bgp_route_refresh r;
	static const uint8_t five[] = {0, 1, 0, 1, 0};
	cr_expect_eq(bgp_route_refresh_parse(five, 5, &r, &e), -EBADMSG);
	cr_expect_eq(e.code, 7);
	cr_expect_eq(e.subcode, 1);
}

/* Issue 10 fault 7: a shutdown communication is logged as one safe line. */
Test(bgp_wire, shutdown_text_escape)
{
	char out[4 * BGP_SHUTDOWN_MAX + 1];
	static const uint8_t t1[] = "a\nb\x1b\"\\\x7f";
	cr_assert_eq(bgp_shutdown_text_escape(t1, sizeof(t1) - 1, out, sizeof(out)), 22);
	cr_assert_str_eq(out, "a\\x0ab\\x1b\\x22\\x5c\\x7f");
	/* UTF-8 kept, a C1 control (U+0085, NEL) escaped. */
	static const uint8_t t2[] = "caf\xc3\xa9 \xc2\x85!";
	bgp_shutdown_text_escape(t2, sizeof(t2) - 1, out, sizeof(out));
	cr_assert_str_eq(out, "caf\xc3\xa9 \\xc2\\x85!");
	/* Not UTF-8: every high byte escaped. */
	static const uint8_t t3[] = "x\xff\xc3";
	bgp_shutdown_text_escape(t3, sizeof(t3) - 1, out, sizeof(out));
	cr_assert_str_eq(out, "x\\xff\\xc3");
	/* Truncation never splits an escape. */
	char small[5];
	cr_assert_eq(bgp_shutdown_text_escape(t1, sizeof(t1) - 1, small, sizeof(small)), 1);
	cr_assert_str_eq(small, "a");
	/* The worst case fits the documented bound. */
	uint8_t all[BGP_SHUTDOWN_MAX];
	memset(all, 1, sizeof(all));
	cr_assert_eq(bgp_shutdown_text_escape(all, sizeof(all), out, sizeof(out)), 4 * sizeof(all));
}
