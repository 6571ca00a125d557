/* test_bgp_capa.c: capabilities (RFC 5492) and the negotiated parse context. */
#include <criterion/criterion.h>
#include <string.h>

#include "bgp/bgp_wire.h"

Test(bgp_capa, parse_known_and_unknown)
{
	static const uint8_t p[] = {
	    0x01, 0x04, 0x00, 0x02, 0x00, 0x01, /* MP IPv6 unicast */
	    0x01, 0x04, 0x00, 0x01, 0x00, 0x85, /* MP IPv4 flowspec: other */
	    0x45, 0x08, 0x00, 0x01, 0x01, 0x03, /* ADD-PATH IPv4 rx+tx */
	    0x00, 0x02, 0x01, 0x01,             /* ADD-PATH IPv6 rx */
	    0x40, 0x02, 0x80, 0x78,             /* GR R bit, 120 s, no AFI */
	    0x49, 0x04, 0x02, 'v',  'm',  0x00, /* FQDN "vm" "" */
	    0x09, 0x01, 0x00,                   /* role Provider */
	    0x80, 0x00,                         /* pre-standard RR: unknown */
	    0x47, 0x00,                         /* LLGR, empty (BIRD iBGP) */
	};
	static struct bgp_caps c;
	memset(&c, 0, sizeof(c));
	cr_assert_eq(bgp_caps_parse(p, sizeof(p), &c), 0);
	cr_expect_eq(c.n, 8);
	cr_expect(c.mp[BGP_FAM_IPV6]);
	cr_expect(!c.mp[BGP_FAM_IPV4]);
	cr_expect(c.mp_other);
	cr_expect_eq(c.addpath[BGP_FAM_IPV4], BGP_ADDPATH_RX | BGP_ADDPATH_TX);
	cr_expect_eq(c.addpath[BGP_FAM_IPV6], BGP_ADDPATH_RX);
	cr_expect(c.gr);
	cr_expect_eq(c.gr_flags_time, 0x8078);
	cr_expect(c.fqdn);
	cr_expect_eq(c.hostlen, 2);
	cr_expect(!memcmp(c.host, "vm", 2));
	cr_expect_eq(c.domainlen, 0);
	cr_expect(c.role);
	cr_expect_eq(c.role_value, 0);
	cr_expect(c.llgr);
	cr_expect_eq(c.n_unknown, 1);
	cr_expect_eq(c.list[6].code, 0x80);
}

Test(bgp_capa, malformed)
{
	static struct bgp_caps c;
	static const uint8_t overrun[] = {0x01, 0x05, 0x00, 0x01, 0x00, 0x01};
	cr_expect_eq(bgp_caps_parse(overrun, sizeof(overrun), &c), -EBADMSG);
	static const uint8_t as4short[] = {0x41, 0x02, 0x00, 0x01};
	cr_expect_eq(bgp_caps_parse(as4short, sizeof(as4short), &c), -EBADMSG);
	static const uint8_t rrlong[] = {0x02, 0x01, 0x00};
	cr_expect_eq(bgp_caps_parse(rrlong, sizeof(rrlong), &c), -EBADMSG);
	static const uint8_t fqdn[] = {0x49, 0x03, 0x05, 'a', 'b'};
	cr_expect_eq(bgp_caps_parse(fqdn, sizeof(fqdn), &c), -EBADMSG);
	static const uint8_t half[] = {0x41};
	cr_expect_eq(bgp_caps_parse(half, sizeof(half), &c), -EBADMSG);
	/* More capabilities than the list holds: all counted, none lost. */
	static uint8_t many[2 * 100];
	for (int i = 0; i < 100; i++) {
		many[2 * i] = 0xf0;
		many[2 * i + 1] = 0;
	}
	memset(&c, 0, sizeof(c));
	cr_expect_eq(bgp_caps_parse(many, sizeof(many), &c), 0);
	cr_expect_eq(c.n, 100);
	cr_expect_eq(c.n_unknown, 100);
}

/* FRR style (one capability per parameter) and RFC 9072 extended parameters. */
Test(bgp_capa, open_parameter_layouts)
{
	static const uint8_t frr[] = {0x04, 0xfd, 0xe9, 0x00, 0xb4, 0x0a, 0x00, 0x00, 0x02,
	                              0x10, 0x02, 0x06, 0x01, 0x04, 0x00, 0x01, 0x00, 0x01,
	                              0x02, 0x02, 0x02, 0x00, 0x02, 0x02, 0x46, 0x00};
	static struct bgp_open o;
	static struct bgp_notify e;
	cr_assert_eq(bgp_open_parse(frr, sizeof(frr), &o, &e), 0);
	cr_expect_eq(o.n_params, 3);
	cr_expect_eq(o.caps.n, 3);
	cr_expect(o.caps.mp[BGP_FAM_IPV4]);
	cr_expect(o.caps.route_refresh);
	cr_expect(o.caps.enhanced_rr);
	cr_expect_eq(o.asn, 65001);

	static const uint8_t ext[] = {0x04, 0xfd, 0xe9, 0x00, 0xb4, 0x0a, 0x00, 0x00,
	                              0x02, 0xff, 0xff, 0x00, 0x0b, 0x02, 0x00, 0x08,
	                              0x02, 0x00, 0x41, 0x04, 0xfa, 0x56, 0xea, 0x01};
	cr_assert_eq(bgp_open_parse(ext, sizeof(ext), &o, &e), 0);
	cr_expect(o.ext_params);
	cr_expect_eq(o.asn, 4200000001u);
	cr_expect_eq(o.my_as, 65001);
	/* Extended length that lies. */
	static uint8_t bad[sizeof(ext)];
	memcpy(bad, ext, sizeof(ext));
	bad[12] = 0x0c;
	cr_expect_eq(bgp_open_parse(bad, sizeof(bad), &o, &e), -EBADMSG);
	cr_expect_eq(e.code, 2);
}

Test(bgp_capa, negotiate_context)
{
	static struct bgp_caps ours, theirs;
	struct bgp_ctx c;
	ours.as4 = true;
	ours.addpath[BGP_FAM_IPV4] = BGP_ADDPATH_RX;
	theirs.as4 = true;
	theirs.ext_msg = true;
	theirs.addpath[BGP_FAM_IPV4] = BGP_ADDPATH_TX;
	theirs.addpath[BGP_FAM_IPV6] = BGP_ADDPATH_TX;
	bgp_ctx_negotiate(&ours, &theirs, &c);
	cr_expect(c.as4);
	cr_expect(!c.ext_msg);
	cr_expect(c.addpath_rx[BGP_FAM_IPV4]);
	cr_expect(!c.addpath_rx[BGP_FAM_IPV6]);
	theirs.as4 = false;
	bgp_ctx_negotiate(&ours, &theirs, &c);
	cr_expect(!c.as4);
	/* What we build parses back to what we meant. */
	struct bgp_open_cfg cfg = {.asn = 65010,
	                           .hold = 90,
	                           .bgp_id = 1,
	                           .fam = {true, true},
	                           .route_refresh = true,
	                           .as4 = true};
	uint8_t buf[128];
	struct wbuf w = wbuf_init(buf, sizeof(buf));
	cr_assert_gt(bgp_open_build(&w, &cfg), 0);
	static struct bgp_open o;
	static struct bgp_notify e;
	cr_assert_eq(bgp_open_parse(buf + 19, w.off - 19, &o, &e), 0);
	cr_expect(o.caps.as4 && o.caps.route_refresh && o.caps.mp[0] && o.caps.mp[1]);
	cr_expect(!o.caps.ext_msg && !o.caps.gr && !o.caps.addpath[0]);
}
