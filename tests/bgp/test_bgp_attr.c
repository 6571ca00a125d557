/*
 * test_bgp_attr.c: UPDATE validation per RFC 7606 (every 3/x outcome from
 * hand-made malformed UPDATEs) and the UPDATE builder (golden bytes, round
 * trip, packing at 4096).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgp/bgp_wire.h"

#define H16(x) (uint8_t)((x) >> 8), (uint8_t)(x)
#define MARKER                                                                                     \
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,  \
	    0xff

static uint8_t *load_vec(const char *name, size_t *len)
{
	const char *dir = getenv("ANYCACHE_VECTORS");
	cr_assert(dir, "ANYCACHE_VECTORS not set");
	char path[1024];
	snprintf(path, sizeof(path), "%s/bgp/%s", dir, name);
	FILE *f = fopen(path, "rb");
	cr_assert(f, "cannot open %s", path);
	static uint8_t tmp[BGP_EXT_MAX_LEN];
	*len = fread(tmp, 1, sizeof(tmp), f);
	fclose(f);
	uint8_t *b = malloc(*len);
	memcpy(b, tmp, *len);
	return b;
}

/* ---- hand-made UPDATE bodies ---- */

static uint8_t body[8192];
static size_t bodylen;
static struct bgp_update upd;
static struct bgp_notify err;

static void mk(const uint8_t *wd, size_t wdl, const uint8_t *at, size_t atl, const uint8_t *nl,
               size_t nll)
{
	struct wbuf w = wbuf_init(body, sizeof(body));
	wbuf_u16(&w, (uint16_t)wdl);
	wbuf_bytes(&w, wd, wdl);
	wbuf_u16(&w, (uint16_t)atl);
	wbuf_bytes(&w, at, atl);
	wbuf_bytes(&w, nl, nll);
	cr_assert_eq(w.err, 0);
	bodylen = w.off;
}

static int parse(void)
{
	static const struct bgp_ctx c = {.as4 = true};
	return bgp_update_parse(body, bodylen, &c, &upd, &err);
}

#define ORIGIN_IGP    0x40, 0x01, 0x01, 0x00
#define AS_PATH_65000 0x40, 0x02, 0x06, 0x02, 0x01, 0x00, 0x00, 0xfd, 0xe8
#define NEXT_HOP_10   0x40, 0x03, 0x04, 0x0a, 0x00, 0x00, 0x01
static const uint8_t nlri24[] = {0x18, 0xc0, 0x00, 0x02};

static void expect(int rc, enum bgp_upd_action act, uint8_t sub)
{
	cr_expect_eq(upd.action, act, "action %d want %d", upd.action, act);
	if (act == BGP_UPD_SESSION_RESET)
		cr_expect_eq(rc, -EBADMSG);
	else
		cr_expect_eq(rc, (int)act);
	cr_expect_eq(err.code, act == BGP_UPD_OK ? 0 : 3);
	cr_expect_eq(err.subcode, sub, "subcode %u want %u", err.subcode, sub);
}

Test(bgp_update_errors, valid_base)
{
	static const uint8_t at[] = {ORIGIN_IGP, AS_PATH_65000, NEXT_HOP_10};
	mk(NULL, 0, at, sizeof(at), nlri24, sizeof(nlri24));
	expect(parse(), BGP_UPD_OK, 0);
	cr_expect_eq(upd.nlri.count, 1);
	cr_expect_eq(bgp_as_path_at(upd.as_path, upd.as_path_len, true, 0), 65000);
}

Test(bgp_update_errors, e3_1_malformed_attribute_list)
{
	/* Withdrawn Routes Length beyond the message. */
	static const uint8_t b1[] = {0x00, 0x10, 0x00, 0x00};
	cr_expect_eq(bgp_update_parse(b1, sizeof(b1), NULL, &upd, &err), -EBADMSG);
	cr_expect_eq(err.code, 3);
	cr_expect_eq(err.subcode, 1);
	cr_expect_eq(err.datalen, 0);
	/* Total Path Attribute Length beyond the message. */
	static const uint8_t b2[] = {0x00, 0x00, 0x00, 0x20, 0x40, 0x01, 0x01, 0x00};
	cr_expect_eq(bgp_update_parse(b2, sizeof(b2), NULL, &upd, &err), -EBADMSG);
	cr_expect_eq(err.subcode, 1);
	/* An attribute overrunning the list, with IPv4 NLRI located: treat-as-withdraw. */
	static const uint8_t at3[] = {ORIGIN_IGP, AS_PATH_65000, 0x40, 0x03, 0x09, 0x0a};
	mk(NULL, 0, at3, sizeof(at3), nlri24, sizeof(nlri24));
	expect(parse(), BGP_UPD_TREAT_AS_WITHDRAW, 1);
	cr_expect_eq(upd.nlri.count, 1);
	/* Fewer than 3 bytes left for an attribute header. */
	static const uint8_t at4[] = {ORIGIN_IGP, AS_PATH_65000, NEXT_HOP_10, 0x40};
	mk(NULL, 0, at4, sizeof(at4), nlri24, sizeof(nlri24));
	expect(parse(), BGP_UPD_TREAT_AS_WITHDRAW, 1);
	/* Same overrun with nothing located: an MP_REACH may hide in it → reset. */
	mk(NULL, 0, at3, sizeof(at3), NULL, 0);
	expect(parse(), BGP_UPD_SESSION_RESET, 1);
	/* Two MP_REACH_NLRI: RFC 7606 §3 (g). */
	static const uint8_t at5[] = {
	    0x80, 0x0e, 0x15, 0x00, 0x02, 0x01, 0x10, 0x20, 0x01,       0x0d,
	    0xb8, 0,    0,    0,    0,    0,    0,    0,    0,          0,
	    0,    0,    1,    0x00, 0x80, 0x0e, 0x15, 0x00, 0x02,       0x01,
	    0x10, 0x20, 0x01, 0x0d, 0xb8, 0,    0,    0,    0,          0,
	    0,    0,    0,    0,    0,    0,    1,    0x00, ORIGIN_IGP, AS_PATH_65000};
	mk(NULL, 0, at5, sizeof(at5), NULL, 0);
	expect(parse(), BGP_UPD_SESSION_RESET, 1);
	/* Two MP_UNREACH_NLRI too. */
	static const uint8_t at6[] = {0x80, 0x0f, 0x03, 0x00, 0x02, 0x01,
	                              0x80, 0x0f, 0x03, 0x00, 0x02, 0x01};
	mk(NULL, 0, at6, sizeof(at6), NULL, 0);
	expect(parse(), BGP_UPD_SESSION_RESET, 1);
	/* A repeated ordinary attribute: keep the first, no error. */
	static const uint8_t at7[] = {ORIGIN_IGP, AS_PATH_65000, NEXT_HOP_10, 0x40,
	                              0x01,       0x01,          0x02};
	mk(NULL, 0, at7, sizeof(at7), nlri24, sizeof(nlri24));
	expect(parse(), BGP_UPD_OK, 0);
	cr_expect_eq(upd.origin, 0);
	cr_expect_eq(upd.n_attrs, 3);
}

Test(bgp_update_errors, e3_2_unrecognized_wellknown_golden)
{
	static const uint8_t at[] = {ORIGIN_IGP, AS_PATH_65000, NEXT_HOP_10, 0x40,
	                             0x50,       0x01,          0x07};
	mk(NULL, 0, at, sizeof(at), nlri24, sizeof(nlri24));
	expect(parse(), BGP_UPD_SESSION_RESET, 2);
	uint8_t out[64];
	struct wbuf w = wbuf_init(out, sizeof(out));
	static const uint8_t want[] = {MARKER, 0x00, 0x19, 0x03, 0x03,
	                               0x02,   0x40, 0x50, 0x01, 0x07};
	cr_assert_eq(bgp_notify_build(&w, &err), (int)sizeof(want));
	cr_expect_arr_eq(out, want, sizeof(want));
	/* Unknown but optional: kept, counted, fine (RFC 4271 §5). */
	static const uint8_t at2[] = {ORIGIN_IGP, AS_PATH_65000, NEXT_HOP_10, 0x80, 0x50,
	                              0x01,       0x07,          0xe0,        0x63, 0x00};
	mk(NULL, 0, at2, sizeof(at2), nlri24, sizeof(nlri24));
	expect(parse(), BGP_UPD_OK, 0);
	cr_expect_eq(upd.n_unknown, 2);
	cr_expect(bgp_update_has(&upd, 0x63));
}

Test(bgp_update_errors, e3_3_missing_wellknown)
{
	static const uint8_t at[] = {ORIGIN_IGP, AS_PATH_65000};
	mk(NULL, 0, at, sizeof(at), nlri24, sizeof(nlri24));
	expect(parse(), BGP_UPD_TREAT_AS_WITHDRAW, 3);
	cr_expect_eq(err.datalen, 1);
	cr_expect_eq(err.data[0], BGP_ATTR_NEXT_HOP);
	static const uint8_t at2[] = {AS_PATH_65000, NEXT_HOP_10};
	mk(NULL, 0, at2, sizeof(at2), nlri24, sizeof(nlri24));
	expect(parse(), BGP_UPD_TREAT_AS_WITHDRAW, 3);
	cr_expect_eq(err.data[0], BGP_ATTR_ORIGIN);
	/* No NLRI at all (NLRI /0 is still one prefix): no attributes needed. */
	static const uint8_t wd[] = {0x00};
	mk(wd, 1, NULL, 0, NULL, 0);
	expect(parse(), BGP_UPD_OK, 0);
	cr_expect_eq(upd.withdrawn.count, 1);
	/* MP_REACH without NEXT_HOP is fine; without AS_PATH it is not. */
	static const uint8_t at3[] = {ORIGIN_IGP, 0x80, 0x0e, 0x1a, 0x00, 0x02, 0x01, 0x10,
	                              0x20,       0x01, 0x0d, 0xb8, 0,    0,    0,    0,
	                              0,          0,    0,    0,    0,    0,    0,    1,
	                              0x00,       0x20, 0x20, 0x01, 0x0d, 0xb8};
	mk(NULL, 0, at3, sizeof(at3), NULL, 0);
	expect(parse(), BGP_UPD_TREAT_AS_WITHDRAW, 3);
	cr_expect_eq(err.data[0], BGP_ATTR_AS_PATH);
	cr_expect_eq(upd.mp_reach.count, 1);
}

Test(bgp_update_errors, e3_4_flags)
{
	static const uint8_t at[] = {0xc0, 0x01, 0x01, 0x00, AS_PATH_65000, NEXT_HOP_10};
	mk(NULL, 0, at, sizeof(at), nlri24, sizeof(nlri24));
	expect(parse(), BGP_UPD_TREAT_AS_WITHDRAW, 4);
	static const uint8_t data[] = {0xc0, 0x01, 0x01, 0x00};
	cr_expect_eq(err.datalen, 4);
	cr_expect_arr_eq(err.data, data, 4);
	/* Partial bit on a well-known attribute. */
	static const uint8_t at2[] = {0x60, 0x01, 0x01, 0x00, AS_PATH_65000, NEXT_HOP_10};
	mk(NULL, 0, at2, sizeof(at2), nlri24, sizeof(nlri24));
	expect(parse(), BGP_UPD_TREAT_AS_WITHDRAW, 4);
	/* Partial on optional transitive COMMUNITIES is legal. */
	static const uint8_t at3[] = {ORIGIN_IGP, AS_PATH_65000, NEXT_HOP_10, 0xe0, 0x08,
	                              0x04,       0xfd,          0xe8,        0x00, 0x01};
	mk(NULL, 0, at3, sizeof(at3), nlri24, sizeof(nlri24));
	expect(parse(), BGP_UPD_OK, 0);
	/* AGGREGATOR flagged well-known: attribute discard (RFC 7606 §7.7). */
	static const uint8_t at4[] = {ORIGIN_IGP, AS_PATH_65000, NEXT_HOP_10, 0x40, 0x07, 0x08, 0,
	                              0,          0xfd,          0xe8,        10,   0,    0,    1};
	mk(NULL, 0, at4, sizeof(at4), nlri24, sizeof(nlri24));
	expect(parse(), BGP_UPD_ATTR_DISCARD, 4);
	cr_expect(!bgp_update_has(&upd, BGP_ATTR_AGGREGATOR));
	/* MP_REACH flagged transitive: session reset. */
	static const uint8_t at5[] = {0xc0, 0x0e, 0x05, 0x00, 0x02, 0x01, 0x00, 0x00};
	mk(NULL, 0, at5, sizeof(at5), NULL, 0);
	expect(parse(), BGP_UPD_SESSION_RESET, 4);
}

Test(bgp_update_errors, e3_5_length)
{
	static const uint8_t at[] = {ORIGIN_IGP, AS_PATH_65000, NEXT_HOP_10, 0x80, 0x04, 0x03, 0, 0,
	                             1};
	mk(NULL, 0, at, sizeof(at), nlri24, sizeof(nlri24));
	expect(parse(), BGP_UPD_TREAT_AS_WITHDRAW, 5);
	cr_expect_eq(err.datalen, 6);
	static const uint8_t at2[] = {ORIGIN_IGP, AS_PATH_65000, 0x40, 0x03, 0x05, 10, 0, 0, 1, 1};
	mk(NULL, 0, at2, sizeof(at2), nlri24, sizeof(nlri24));
	expect(parse(), BGP_UPD_TREAT_AS_WITHDRAW, 5);
	static const uint8_t at3[] = {
	    ORIGIN_IGP, AS_PATH_65000, NEXT_HOP_10, 0xc0, 0x08, 0x03, 1, 2, 3};
	mk(NULL, 0, at3, sizeof(at3), nlri24, sizeof(nlri24));
	expect(parse(), BGP_UPD_TREAT_AS_WITHDRAW, 5);
	static const uint8_t at4[] = {
	    ORIGIN_IGP, AS_PATH_65000, NEXT_HOP_10, 0xc0, 0x20, 0x0b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
	    11};
	mk(NULL, 0, at4, sizeof(at4), nlri24, sizeof(nlri24));
	expect(parse(), BGP_UPD_TREAT_AS_WITHDRAW, 5);
	/* ATOMIC_AGGREGATE with a value: discarded, the route stands. */
	static const uint8_t at5[] = {ORIGIN_IGP, AS_PATH_65000, NEXT_HOP_10, 0x40,
	                              0x06,       0x01,          0x00};
	mk(NULL, 0, at5, sizeof(at5), nlri24, sizeof(nlri24));
	expect(parse(), BGP_UPD_ATTR_DISCARD, 5);
	cr_expect(!upd.atomic_aggregate);
	cr_expect(!bgp_update_has(&upd, BGP_ATTR_ATOMIC_AGGREGATE));
	/* AGGREGATOR of 2-octet size on a 4-octet session. */
	static const uint8_t at6[] = {ORIGIN_IGP, AS_PATH_65000, NEXT_HOP_10, 0xc0, 0x07, 0x06,
	                              0xfd,       0xe8,          10,          0,    0,    1};
	mk(NULL, 0, at6, sizeof(at6), nlri24, sizeof(nlri24));
	expect(parse(), BGP_UPD_ATTR_DISCARD, 5);
}

Test(bgp_update_errors, e3_6_origin)
{
	static const uint8_t at[] = {0x40, 0x01, 0x01, 0x03, AS_PATH_65000, NEXT_HOP_10};
	mk(NULL, 0, at, sizeof(at), nlri24, sizeof(nlri24));
	expect(parse(), BGP_UPD_TREAT_AS_WITHDRAW, 6);
	static const uint8_t data[] = {0x40, 0x01, 0x01, 0x03};
	cr_expect_arr_eq(err.data, data, 4);
}

Test(bgp_update_errors, e3_8_next_hop)
{
	static const uint8_t at[] = {ORIGIN_IGP, AS_PATH_65000, 0x40, 0x03, 0x04, 224, 0, 0, 1};
	mk(NULL, 0, at, sizeof(at), nlri24, sizeof(nlri24));
	expect(parse(), BGP_UPD_TREAT_AS_WITHDRAW, 8);
	static const uint8_t at2[] = {ORIGIN_IGP, AS_PATH_65000, 0x40, 0x03, 0x04, 0, 0, 0, 0};
	mk(NULL, 0, at2, sizeof(at2), nlri24, sizeof(nlri24));
	expect(parse(), BGP_UPD_TREAT_AS_WITHDRAW, 8);
}

Test(bgp_update_errors, e3_9_optional_attribute)
{
	/* MP_REACH IPv6 with a 4-byte next hop: NLRI cannot be trusted (RFC 7606 §7.11). */
	static const uint8_t at[] = {0x80, 0x0e, 0x09, 0x00, 0x02, 0x01,       0x04,
	                             10,   0,    0,    1,    0x00, ORIGIN_IGP, AS_PATH_65000};
	mk(NULL, 0, at, sizeof(at), NULL, 0);
	expect(parse(), BGP_UPD_SESSION_RESET, 9);
	cr_expect_eq(err.datalen, 12);
	cr_expect_arr_eq(err.data, at, 12);
	/* MP_REACH with a /129. */
	static const uint8_t at2[] = {0x80, 0x0e, 0x17, 0x00, 0x02, 0x01, 0x10, 0x20, 0x01,
	                              0x0d, 0xb8, 0,    0,    0,    0,    0,    0,    0,
	                              0,    0,    0,    0,    1,    0x00, 0x81, 0x20};
	mk(NULL, 0, at2, sizeof(at2), NULL, 0);
	expect(parse(), BGP_UPD_SESSION_RESET, 9);
	/* MP_UNREACH too short for AFI/SAFI. */
	static const uint8_t at3[] = {0x80, 0x0f, 0x02, 0x00, 0x02};
	mk(NULL, 0, at3, sizeof(at3), NULL, 0);
	expect(parse(), BGP_UPD_SESSION_RESET, 9);
	/* Malformed AS4_PATH: discarded (RFC 6793 §6). */
	static struct bgp_ctx two = {.as4 = false};
	static const uint8_t at4[] = {ORIGIN_IGP, 0x40, 0x02,        0x04, 0x02, 0x01,
	                              0x5b,       0xa0, NEXT_HOP_10, 0xc0, 0x11, 0x06,
	                              0x03,       0x01, 0,           0,    0,    1};
	mk(NULL, 0, at4, sizeof(at4), nlri24, sizeof(nlri24));
	cr_expect_eq(bgp_update_parse(body, bodylen, &two, &upd, &err), BGP_UPD_ATTR_DISCARD);
	cr_expect_eq(err.subcode, 9);
	cr_expect_null(upd.as4_path);
	/* Unknown AFI/SAFI (e.g. flowspec 1/133) is kept as bytes, not a reset. */
	static const uint8_t at5[] = {0x80, 0x0e, 0x07, 0x00, 0x01,       0x85,
	                              0x00, 0x00, 0x01, 0x02, ORIGIN_IGP, AS_PATH_65000};
	mk(NULL, 0, at5, sizeof(at5), NULL, 0);
	expect(parse(), BGP_UPD_OK, 0);
	cr_expect_eq(upd.mp_reach.fam, BGP_FAM_NONE);
}

Test(bgp_update_errors, e3_10_invalid_network_field)
{
	static const uint8_t at[] = {ORIGIN_IGP, AS_PATH_65000, NEXT_HOP_10};
	static const uint8_t bad[] = {0x21, 10, 0, 0, 1, 0};
	mk(NULL, 0, at, sizeof(at), bad, sizeof(bad));
	expect(parse(), BGP_UPD_SESSION_RESET, 10);
	mk(bad, sizeof(bad), NULL, 0, NULL, 0);
	expect(parse(), BGP_UPD_SESSION_RESET, 10);
	static const uint8_t cut[] = {0x18, 10, 0};
	mk(NULL, 0, at, sizeof(at), cut, sizeof(cut));
	expect(parse(), BGP_UPD_SESSION_RESET, 10);
	uint8_t out[64];
	struct wbuf w = wbuf_init(out, sizeof(out));
	static const uint8_t want[] = {MARKER, 0x00, 0x15, 0x03, 0x03, 0x0a};
	cr_assert_eq(bgp_notify_build(&w, &err), 21);
	cr_expect_arr_eq(out, want, 21);
}

Test(bgp_update_errors, e3_11_as_path)
{
	static const uint8_t at[] = {ORIGIN_IGP, 0x40, 0x02, 0x06, 0x07,       0x01,
	                             0,          0,    0xfd, 0xe8, NEXT_HOP_10};
	mk(NULL, 0, at, sizeof(at), nlri24, sizeof(nlri24));
	expect(parse(), BGP_UPD_TREAT_AS_WITHDRAW, 11);
	static const uint8_t at2[] = {ORIGIN_IGP, 0x40, 0x02, 0x06, 0x02,       0x02,
	                              0,          0,    0xfd, 0xe8, NEXT_HOP_10};
	mk(NULL, 0, at2, sizeof(at2), nlri24, sizeof(nlri24));
	expect(parse(), BGP_UPD_TREAT_AS_WITHDRAW, 11);
	static const uint8_t at3[] = {ORIGIN_IGP, 0x40, 0x02, 0x02, 0x02, 0x00, NEXT_HOP_10};
	mk(NULL, 0, at3, sizeof(at3), nlri24, sizeof(nlri24));
	expect(parse(), BGP_UPD_TREAT_AS_WITHDRAW, 11);
	/* The same bytes on a 2-octet session: one AS_SEQUENCE of two 2-byte ASNs. */
	static const struct bgp_ctx two = {.as4 = false};
	mk(NULL, 0, at2, sizeof(at2), nlri24, sizeof(nlri24));
	cr_expect_eq(bgp_update_parse(body, bodylen, &two, &upd, &err), BGP_UPD_OK);
	cr_expect_eq(bgp_as_path_count(upd.as_path, upd.as_path_len, false), 2);
	cr_expect_eq(bgp_as_path_at(upd.as_path, upd.as_path_len, false, 1), 65000);
}

/* ---- builder ---- */

static const uint32_t comms[] = {0xfde80001, 0xfde80002};
static const struct bgp_large_community large1[] = {{65000, 1, 2}};

static struct bgp_prefix pfx4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint8_t len)
{
	struct bgp_prefix p = {.fam = BGP_FAM_IPV4, .len = len, .addr = {a, b, c, d}};
	return p;
}

Test(bgp_update_build, golden_ipv4_ibgp_all_attributes)
{
	struct bgp_route_attrs a = {.origin = BGP_ORIGIN_IGP,
	                            .nh4 = {192, 0, 2, 1},
	                            .has_med = true,
	                            .med = 100,
	                            .has_local_pref = true,
	                            .local_pref = 200,
	                            .communities = comms,
	                            .n_communities = 2,
	                            .large = large1,
	                            .n_large = 1};
	struct bgp_prefix p[] = {pfx4(198, 51, 100, 53, 32), pfx4(192, 0, 2, 99, 24)};
	static const uint8_t want[] = {
	    MARKER, 0x00, 0x56, 0x02, 0x00, 0x00, 0x00, 0x36, 0x40, 0x01, 0x01, 0x00,
	    0x40,   0x02, 0x00, 0x40, 0x03, 0x04, 0xc0, 0x00, 0x02, 0x01, 0x80, 0x04,
	    0x04,   0x00, 0x00, 0x00, 0x64, 0x40, 0x05, 0x04, 0x00, 0x00, 0x00, 0xc8,
	    0xc0,   0x08, 0x08, 0xfd, 0xe8, 0x00, 0x01, 0xfd, 0xe8, 0x00, 0x02, 0xc0,
	    0x20,   0x0c, 0x00, 0x00, 0xfd, 0xe8, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
	    0x00,   0x02, 0x20, 0xc6, 0x33, 0x64, 0x35, 0x18, 0xc0, 0x00, 0x02};
	uint8_t out[4096];
	struct wbuf w = wbuf_init(out, sizeof(out));
	struct bgp_ctx c = {.as4 = true};
	cr_assert_eq(bgp_update_build(&w, &c, &a, p, 2), 1);
	cr_assert_eq(w.off, sizeof(want));
	cr_expect_arr_eq(out, want, sizeof(want));

	/* Round trip. */
	static struct bgp_msg m;
	cr_assert_eq(bgp_msg_parse(out, w.off, &c, &m, &err), BGP_UPD_OK);
	const struct bgp_update *u = &m.u.update;
	cr_expect_eq(u->nlri.count, 2);
	cr_expect_eq(u->med, 100);
	cr_expect_eq(u->local_pref, 200);
	cr_expect_eq(u->n_communities, 2);
	cr_expect_eq(u->n_large_communities, 1);
	cr_expect_eq(u->as_path_len, 0);
	struct bgp_nlri_iter it;
	struct bgp_prefix q;
	bgp_nlri_iter_init(&it, &u->nlri);
	cr_assert(bgp_nlri_next(&it, &q));
	cr_expect_eq(q.len, 32);
	cr_expect_arr_eq(q.addr, p[0].addr, 4);
	cr_assert(bgp_nlri_next(&it, &q));
	cr_expect_eq(q.len, 24);
	cr_expect_eq(q.addr[3], 0, "host bits are masked");
	cr_expect(!bgp_nlri_next(&it, &q));
}

Test(bgp_update_build, golden_ebgp_prepend_2octet_peer)
{
	static const uint32_t path[] = {4200000001u, 4200000001u};
	struct bgp_route_attrs a = {.origin = BGP_ORIGIN_IGP,
	                            .as_path = path,
	                            .as_path_n = 2,
	                            .nh4 = {10, 0, 0, 1},
	                            .has_med = true,
	                            .med = 50};
	struct bgp_prefix p[] = {pfx4(203, 0, 113, 0, 24)};
	static const uint8_t want[] = {
	    MARKER, 0x00, 0x43, 0x02, 0x00, 0x00, 0x00, 0x28, 0x40, 0x01, 0x01, 0x00, 0x40,
	    0x02,   0x06, 0x02, 0x02, 0x5b, 0xa0, 0x5b, 0xa0, 0x40, 0x03, 0x04, 0x0a, 0x00,
	    0x00,   0x01, 0x80, 0x04, 0x04, 0x00, 0x00, 0x00, 0x32, 0xc0, 0x11, 0x0a, 0x02,
	    0x02,   0xfa, 0x56, 0xea, 0x01, 0xfa, 0x56, 0xea, 0x01, 0x18, 0xcb, 0x00, 0x71};
	uint8_t out[4096];
	struct wbuf w = wbuf_init(out, sizeof(out));
	struct bgp_ctx two = {.as4 = false};
	cr_assert_eq(bgp_update_build(&w, &two, &a, p, 1), 1);
	cr_assert_eq(w.off, sizeof(want));
	cr_expect_arr_eq(out, want, sizeof(want));
	static struct bgp_msg m;
	cr_assert_eq(bgp_msg_parse(out, w.off, &two, &m, &err), BGP_UPD_OK);
	cr_expect_eq(bgp_as_path_at(m.u.update.as4_path, m.u.update.as4_path_len, true, 1),
	             4200000001u);

	/* The same for a 4-octet peer: a plain 4-octet AS_PATH, no AS4_PATH. */
	static const uint8_t want4[] = {MARKER, 0x00, 0x3a, 0x02, 0x00, 0x00, 0x00, 0x1f, 0x40,
	                                0x01,   0x01, 0x00, 0x40, 0x02, 0x0a, 0x02, 0x02, 0xfa,
	                                0x56,   0xea, 0x01, 0xfa, 0x56, 0xea, 0x01, 0x40, 0x03,
	                                0x04,   0x0a, 0x00, 0x00, 0x01, 0x80, 0x04, 0x04, 0x00,
	                                0x00,   0x00, 0x32, 0x18, 0xcb, 0x00, 0x71};
	struct bgp_ctx four = {.as4 = true};
	w = wbuf_init(out, sizeof(out));
	cr_assert_eq(bgp_update_build(&w, &four, &a, p, 1), 1);
	cr_assert_eq(w.off, sizeof(want4));
	cr_expect_arr_eq(out, want4, sizeof(want4));

	/* A 2-octet own AS toward a 2-octet peer needs no AS4_PATH. */
	static const uint32_t small[] = {65010};
	a.as_path = small;
	a.as_path_n = 1;
	w = wbuf_init(out, sizeof(out));
	cr_assert_eq(bgp_update_build(&w, &two, &a, p, 1), 1);
	cr_assert_eq(bgp_msg_parse(out, w.off, &two, &m, &err), BGP_UPD_OK);
	cr_expect(!bgp_update_has(&m.u.update, BGP_ATTR_AS4_PATH));
	cr_expect_eq(bgp_as_path_at(m.u.update.as_path, m.u.update.as_path_len, false, 0), 65010);
}

static struct bgp_prefix pfx6(uint16_t w2, uint16_t w3, uint8_t last, uint8_t len)
{
	struct bgp_prefix p = {
	    .fam = BGP_FAM_IPV6, .len = len, .addr = {0x20, 0x01, 0x0d, 0xb8, H16(w2), H16(w3)}};
	p.addr[15] = last;
	return p;
}

Test(bgp_update_build, golden_ipv6_mp_reach)
{
	static const uint32_t c1[] = {0xfde80001};
	struct bgp_route_attrs a = {.origin = BGP_ORIGIN_IGP,
	                            .nh6 = {0x20, 0x01, 0x0d, 0xb8},
	                            .has_local_pref = true,
	                            .local_pref = 100,
	                            .communities = c1,
	                            .n_communities = 1,
	                            .large = large1,
	                            .n_large = 1};
	a.nh6[15] = 1;
	struct bgp_prefix p[] = {pfx6(0x53, 0, 0x53, 128), pfx6(1, 0, 0, 48)};
	static const uint8_t want[] = {
	    MARKER, 0x00, 0x6b, 0x02, 0x00, 0x00, 0x00, 0x54, 0x40, 0x01, 0x01, 0x00, 0x40, 0x02,
	    0x00,   0x40, 0x05, 0x04, 0x00, 0x00, 0x00, 0x64, 0xc0, 0x08, 0x04, 0xfd, 0xe8, 0x00,
	    0x01,   0x80, 0x0e, 0x2d, 0x00, 0x02, 0x01, 0x10, 0x20, 0x01, 0x0d, 0xb8, 0,    0,
	    0,      0,    0,    0,    0,    0,    0,    0,    0,    0x01, 0x00, 0x80, 0x20, 0x01,
	    0x0d,   0xb8, 0x00, 0x53, 0,    0,    0,    0,    0,    0,    0,    0,    0,    0x53,
	    0x30,   0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0xc0, 0x20, 0x0c, 0x00, 0x00, 0xfd, 0xe8,
	    0x00,   0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02};
	uint8_t out[4096];
	struct wbuf w = wbuf_init(out, sizeof(out));
	struct bgp_ctx c = {.as4 = true};
	cr_assert_eq(bgp_update_build(&w, &c, &a, p, 2), 1);
	cr_assert_eq(w.off, sizeof(want));
	cr_expect_arr_eq(out, want, sizeof(want));
	static struct bgp_msg m;
	cr_assert_eq(bgp_msg_parse(out, w.off, &c, &m, &err), BGP_UPD_OK);
	cr_expect_eq(m.u.update.mp_reach.count, 2);
	cr_expect_eq(m.u.update.mp_nexthop_len, 16);
	cr_expect(!bgp_update_has(&m.u.update, BGP_ATTR_NEXT_HOP));

	/* With a link-local next hop the next hop is 32 bytes. */
	a.has_nh6_ll = true;
	a.nh6_ll[0] = 0xfe;
	a.nh6_ll[1] = 0x80;
	w = wbuf_init(out, sizeof(out));
	cr_assert_eq(bgp_update_build(&w, &c, &a, p, 2), 1);
	cr_assert_eq(w.off, sizeof(want) + 16);
	cr_assert_eq(bgp_msg_parse(out, w.off, &c, &m, &err), BGP_UPD_OK);
	cr_expect_eq(m.u.update.mp_nexthop_len, 32);
	cr_expect_eq(m.u.update.mp_nexthop[16], 0xfe);
}

Test(bgp_update_build, golden_withdrawals_and_eor)
{
	uint8_t out[4096];
	size_t len;
	struct wbuf w = wbuf_init(out, sizeof(out));
	struct bgp_prefix p4[] = {pfx4(198, 51, 100, 53, 32), pfx4(192, 0, 2, 0, 24)};
	static const uint8_t want4[] = {MARKER, 0x00, 0x20, 0x02, 0x00, 0x09, 0x20, 0xc6, 0x33,
	                                0x64,   0x35, 0x18, 0xc0, 0x00, 0x02, 0x00, 0x00};
	cr_assert_eq(bgp_withdraw_build(&w, p4, 2), 1);
	cr_assert_eq(w.off, sizeof(want4));
	cr_expect_arr_eq(out, want4, sizeof(want4));

	struct bgp_prefix p6[] = {pfx6(1, 0, 0, 48)};
	static const uint8_t want6[] = {MARKER, 0x00, 0x24, 0x02, 0x00, 0x00, 0x00,
	                                0x0d,   0x80, 0x0f, 0x0a, 0x00, 0x02, 0x01,
	                                0x30,   0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01};
	w = wbuf_init(out, sizeof(out));
	cr_assert_eq(bgp_withdraw_build(&w, p6, 1), 1);
	cr_assert_eq(w.off, sizeof(want6));
	cr_expect_arr_eq(out, want6, sizeof(want6));
	static struct bgp_msg m;
	struct bgp_ctx c = {.as4 = true};
	cr_assert_eq(bgp_msg_parse(out, w.off, &c, &m, &err), BGP_UPD_OK);
	cr_expect_eq(m.u.update.mp_unreach.count, 1);
	cr_expect(!m.u.update.eor);

	/* End-of-RIB: byte-identical to BIRD's (vectors 010 and 012). */
	w = wbuf_init(out, sizeof(out));
	cr_assert_eq(bgp_eor_build(&w, BGP_FAM_IPV4), 23);
	uint8_t *v = load_vec("010-bird-update-eor-ipv4.bin", &len);
	cr_expect_arr_eq(out, v, 23);
	free(v);
	w = wbuf_init(out, sizeof(out));
	cr_assert_eq(bgp_eor_build(&w, BGP_FAM_IPV6), 29);
	v = load_vec("012-bird-update-eor-ipv6.bin", &len);
	cr_assert_eq(len, 29);
	cr_expect_arr_eq(out, v, 29);
	free(v);
	cr_assert_eq(bgp_msg_parse(out, 29, &c, &m, &err), BGP_UPD_OK);
	cr_expect(m.u.update.eor);
	cr_expect_eq(m.u.update.eor_fam, BGP_FAM_IPV6);
}

/* Parses back-to-back messages; returns prefixes seen and checks each length. */
static size_t walk(const uint8_t *p, size_t len, size_t *msgs, size_t *first_len, size_t *first_n)
{
	size_t off = 0, total = 0;
	*msgs = 0;
	struct bgp_ctx c = {.as4 = true};
	while (off < len) {
		struct bgp_hdr h;
		cr_assert_eq(bgp_hdr_parse(p + off, len - off, &c, &h, &err), 0);
		cr_assert_leq(h.len, BGP_MAX_LEN);
		static struct bgp_msg m;
		cr_assert_eq(bgp_msg_parse(p + off, h.len, &c, &m, &err), BGP_UPD_OK);
		const struct bgp_update *u = &m.u.update;
		size_t n =
		    u->nlri.count + u->withdrawn.count + u->mp_reach.count + u->mp_unreach.count;
		if (*msgs == 0) {
			*first_len = h.len;
			*first_n = n;
		}
		total += n;
		off += h.len;
		(*msgs)++;
	}
	return total;
}

Test(bgp_update_build, packing_splits_at_4096)
{
	enum { N = 2000 };
	static struct bgp_prefix p[N];
	for (int i = 0; i < N; i++)
		p[i] = pfx4(10, (uint8_t)(i >> 8), (uint8_t)i, 1, 32);
	struct bgp_route_attrs a = {.origin = BGP_ORIGIN_IGP,
	                            .nh4 = {192, 0, 2, 1},
	                            .has_med = true,
	                            .med = 100,
	                            .has_local_pref = true,
	                            .local_pref = 200,
	                            .communities = comms,
	                            .n_communities = 2,
	                            .large = large1,
	                            .n_large = 1};
	static uint8_t out[64 * 1024];
	struct wbuf w = wbuf_init(out, sizeof(out));
	struct bgp_ctx c = {.as4 = true};
	cr_assert_eq(bgp_update_build(&w, &c, &a, p, N), 3);
	size_t msgs, fl, fn;
	cr_expect_eq(walk(out, w.off, &msgs, &fl, &fn), N);
	/* 77 bytes of header and attributes + 803 x 5 = 4092; one more would be 4097. */
	cr_expect_eq(fn, 803);
	cr_expect_eq(fl, 4092);

	static struct bgp_prefix q[1000];
	for (int i = 0; i < 1000; i++)
		q[i] = pfx6((uint16_t)i, 0, 1, 128);
	w = wbuf_init(out, sizeof(out));
	int nm = bgp_update_build(&w, &c, &a, q, 1000);
	cr_assert_eq(nm, 5, "got %d", nm);
	cr_expect_eq(walk(out, w.off, &msgs, &fl, &fn), 1000);
	/* 70 (header, 47 bytes of other attributes) + MP_REACH header 4 + 21 = 95;
	 * 235 x 17 = 3995 → 4090, a 236th would make 4107. */
	cr_expect_eq(fn, 235);
	cr_expect_eq(fl, 4090);

	w = wbuf_init(out, sizeof(out));
	cr_assert_eq(bgp_withdraw_build(&w, p, N), 3);
	cr_expect_eq(walk(out, w.off, &msgs, &fl, &fn), N);
	cr_expect_eq(fn, 814);
	w = wbuf_init(out, sizeof(out));
	cr_assert_gt(bgp_withdraw_build(&w, q, 1000), 1);
	cr_expect_eq(walk(out, w.off, &msgs, &fl, &fn), 1000);

	/* Too small a buffer, mixed families, bad lengths. */
	w = wbuf_init(out, 100);
	cr_expect_eq(bgp_update_build(&w, &c, &a, p, N), -EMSGSIZE);
	struct bgp_prefix mixed[] = {p[0], q[0]};
	w = wbuf_init(out, sizeof(out));
	cr_expect_eq(bgp_update_build(&w, &c, &a, mixed, 2), -EINVAL);
	struct bgp_prefix bad = pfx4(10, 0, 0, 0, 33);
	cr_expect_eq(bgp_update_build(&w, &c, &a, &bad, 1), -EINVAL);
	/* Attributes that cannot fit a message at all. */
	static uint32_t many[1100];
	a.communities = many;
	a.n_communities = 1100;
	cr_expect_eq(bgp_update_build(&w, &c, &a, p, 1), -EMSGSIZE);
	/* 300 communities need the extended length flag and still fit. */
	a.n_communities = 300;
	w = wbuf_init(out, sizeof(out));
	cr_assert_eq(bgp_update_build(&w, &c, &a, p, 1), 1);
	static struct bgp_msg m;
	cr_assert_eq(bgp_msg_parse(out, w.off, &c, &m, &err), BGP_UPD_OK);
	cr_expect_eq(m.u.update.n_communities, 300);
	for (size_t i = 0; i < m.u.update.n_attrs; i++)
		if (m.u.update.attrs[i].code == BGP_ATTR_COMMUNITIES)
			cr_expect_eq(m.u.update.attrs[i].flags, 0xd0);
}
