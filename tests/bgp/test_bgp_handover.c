/*
 * test_bgp_handover.c: the session state codec (round trip, truncations,
 * caps), bgp_fsm_import/export and bgp_adjout_restore: a restored session
 * keeps its deadlines and sends nothing until the desired routes change.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "bgp/bfd_fsm.h"
#include "bgp/bgp_handover.h"

static struct bgp_handover_session *sample(void)
{
	static struct bgp_handover_session s;

	memset(&s, 0, sizeof(s));
	s.local_as = 65001;
	s.bgp_id = 0x7f355702;
	s.conf_peer_as = 65000;
	cr_assert_eq(netaddr_parse_ip("127.53.87.1", &s.peer), 0);
	s.outgoing = true;
	s.fsm = (struct bgp_fsm_session){.hold_time = 9,
	                                 .keepalive_ms = 3000,
	                                 .peer_bgp_id = 0x7f355701,
	                                 .peer_as = 65000,
	                                 .peer_as4 = true,
	                                 .afi_ipv4 = true,
	                                 .afi_ipv6 = true,
	                                 .route_refresh = true,
	                                 .hold_at = 123456789012ull,
	                                 .keepalive_at = 123456786000ull,
	                                 .established_at = 100,
	                                 .flaps = 2};
	s.ctx_as4 = true;
	s.ctx_addpath_rx[1] = true;
	s.rlen = 5;
	memset(s.rbuf, 0xff, 5); /* the start of a marker: a message cut in two */
	s.n_routes = 2;
	cr_assert_eq(netprefix_parse("64.0.0.0/2", &s.prefix[0]), 0);
	cr_assert_eq(netprefix_parse("fd53:87::/64", &s.prefix[1]), 0);
	s.attrs[0] = (struct bgp_adjout_attrs){
	    .local_pref = 100, .n_communities = 1, .communities = {0xffff0000}};
	s.attrs[1] = (struct bgp_adjout_attrs){.med = 7,
	                                       .has_med = true,
	                                       .prepend = 2,
	                                       .n_large_communities = 1,
	                                       .large_communities = {{1, 2, 3}}};
	s.eor_v6_owed = true;
	s.updates_sent = 4;
	s.prefixes_announced = 2;
	return &s;
}

Test(bgp_handover, round_trip)
{
	static uint8_t buf[BGP_HANDOVER_MAX_LEN];
	static struct bgp_handover_session out;
	const struct bgp_handover_session *in = sample();
	int len = bgp_handover_encode(in, buf, sizeof(buf));

	cr_assert_gt(len, 0);
	cr_assert_eq(bgp_handover_decode(buf, (size_t)len, &out), 0);
	cr_assert_eq(memcmp(&out.fsm, &in->fsm, sizeof(out.fsm)), 0);
	cr_assert_eq(out.local_as, 65001);
	cr_assert_eq(out.bgp_id, in->bgp_id);
	cr_assert(netaddr_equal_ip(&out.peer, &in->peer));
	cr_assert(out.outgoing && out.ctx_as4 && !out.ctx_ext_msg && out.ctx_addpath_rx[1]);
	cr_assert(!out.eor_v4_owed && out.eor_v6_owed);
	cr_assert_eq(out.rlen, 5);
	cr_assert_eq(memcmp(out.rbuf, in->rbuf, 5), 0);
	cr_assert_eq(out.n_routes, 2);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(out.prefix[i].family, in->prefix[i].family);
		cr_assert_eq(out.prefix[i].len, in->prefix[i].len);
		cr_assert(bgp_adjout_attrs_equal(&out.attrs[i], &in->attrs[i]));
	}
	cr_assert_eq(out.updates_sent, 4);
	for (int cut = 0; cut < len; cut++)
		cr_assert_eq(bgp_handover_decode(buf, (size_t)cut, &out), -EBADMSG, "cut %d", cut);
	cr_assert_eq(bgp_handover_decode(buf, (size_t)len + 1, &out), -EBADMSG);
	buf[3]++;
	cr_assert_eq(bgp_handover_decode(buf, (size_t)len, &out), -EPROTO);
}

Test(bgp_handover, caps)
{
	static uint8_t buf[BGP_HANDOVER_MAX_LEN];
	static struct bgp_handover_session out;
	struct bgp_handover_session *in = sample();
	int len;

	in->n_routes = BGP_ADJOUT_MAX_ROUTES + 1;
	cr_assert_eq(bgp_handover_encode(in, buf, sizeof(buf)), -EINVAL);
	in = sample();
	in->attrs[0].n_communities = BGP_ADJOUT_MAX_COMMUNITIES + 1;
	cr_assert_eq(bgp_handover_encode(in, buf, sizeof(buf)), -EINVAL);
	cr_assert_eq(bgp_handover_encode(sample(), buf, 40), -EMSGSIZE);
	/* A full session fits BGP_HANDOVER_MAX_LEN. */
	in = sample();
	in->rlen = BGP_HANDOVER_RBUF_MAX;
	in->n_routes = BGP_ADJOUT_MAX_ROUTES;
	for (size_t i = 0; i < in->n_routes; i++) {
		in->prefix[i] = in->prefix[1];
		in->prefix[i].addr[7] = (uint8_t)i;
		in->attrs[i].n_communities = BGP_ADJOUT_MAX_COMMUNITIES;
		in->attrs[i].n_large_communities = BGP_ADJOUT_MAX_LARGE_COMMUNITIES;
	}
	len = bgp_handover_encode(in, buf, sizeof(buf));
	cr_assert_gt(len, 0);
	cr_assert_eq(bgp_handover_decode(buf, (size_t)len, &out), 0);
	cr_assert_eq(out.n_routes, BGP_ADJOUT_MAX_ROUTES);
	/* A route count over the table, forged on the wire. */
	len = bgp_handover_encode(sample(), buf, sizeof(buf));
	size_t at = 3 + 1 + 12 + 1 + 16 + 2 + 2 + 12 + 24 + 4 + 24 + 2 + 5;
	buf[at] = 0x01; /* n_routes = 256 + 2 */
	cr_assert_eq(bgp_handover_decode(buf, (size_t)len, &out), -EBADMSG);
}

Test(bgp_handover, garbage_never_crashes)
{
	static uint8_t buf[512];
	static struct bgp_handover_session out;
	uint32_t x = 7;

	for (int round = 0; round < 20000; round++) {
		size_t len = x % sizeof(buf);
		for (size_t i = 0; i < len; i++) {
			x = x * 1103515245u + 12345u;
			buf[i] = (uint8_t)(x >> 16);
		}
		if (len > 4) {
			memcpy(buf, "BGS", 3);
			buf[3] = BGP_HANDOVER_VERSION;
		}
		bgp_handover_decode(buf, len, &out);
	}
}

static struct bgp_fsm_conf fconf = {
    .local_as = 65001, .peer_as = 65000, .bgp_id = 2, .hold_time = 9, .seed = 1};

/* The successor's fsm goes on where the old one was: same deadlines, its
 * KEEPALIVE due at the old keepalive deadline, a ManualStart ignored. */
Test(bgp_handover, fsm_import_keeps_the_deadlines)
{
	struct bgp_fsm f;
	struct bgp_fsm_session st = sample()->fsm, back;
	struct bgp_fsm_actions a;
	struct bgp_fsm_event start = {.type = BGP_FSM_EV_MANUAL_START};
	struct bgp_fsm_event tick = {.type = BGP_FSM_EV_TICK};

	cr_assert_eq(bgp_fsm_init(&f, &fconf), 0);
	st.hold_at = 10000;
	st.keepalive_at = 4000;
	cr_assert_eq(bgp_fsm_import(&f, &st), 0);
	cr_assert_eq(f.state, BGP_FSM_ESTABLISHED);
	cr_assert_eq(bgp_fsm_next_deadline(&f), 4000);
	cr_assert_eq(bgp_fsm_step(&f, &start, 3000, &a), 0);
	cr_assert_eq(a.n, 0);
	cr_assert_eq(f.state, BGP_FSM_ESTABLISHED);
	cr_assert_eq(bgp_fsm_step(&f, &tick, 4000, &a), 0);
	cr_assert_eq(a.n, 1);
	cr_assert_eq(a.act[0], BGP_FSM_ACT_SEND_KEEPALIVE);
	bgp_fsm_export(&f, &back);
	cr_assert_eq(back.hold_at, 10000);
	cr_assert_eq(back.peer_bgp_id, st.peer_bgp_id);
	/* The hold timer still runs from the old process's last message. */
	cr_assert_eq(bgp_fsm_step(&f, &tick, 10000, &a), 0);
	cr_assert_neq(f.state, BGP_FSM_ESTABLISHED);
}

Test(bgp_handover, fsm_import_refuses_nonsense)
{
	struct bgp_fsm f;
	struct bgp_fsm_session st = sample()->fsm;

	cr_assert_eq(bgp_fsm_init(&f, &fconf), 0);
	st.hold_time = 2;
	cr_assert_eq(bgp_fsm_import(&f, &st), -EINVAL);
	st = sample()->fsm;
	st.hold_at = BGP_FSM_NEVER;
	cr_assert_eq(bgp_fsm_import(&f, &st), -EINVAL);
	st = sample()->fsm;
	st.peer_bgp_id = 0;
	cr_assert_eq(bgp_fsm_import(&f, &st), -EINVAL);
	cr_assert_eq(f.state, BGP_FSM_IDLE);
	st = sample()->fsm;
	cr_assert_eq(bgp_fsm_import(&f, &st), 0);
	cr_assert_eq(bgp_fsm_import(&f, &st), -EINVAL); /* not a fresh fsm */
}

Test(bgp_handover, adjout_restore_sends_only_changes)
{
	struct bgp_handover_session *s = sample();
	struct bgp_adjout *ao = bgp_adjout_new();
	static struct bgp_adjout_diff d;

	cr_assert_eq(bgp_adjout_restore(ao, s->prefix, s->attrs, 2, false, false), 0);
	cr_assert_eq(bgp_adjout_restore(ao, s->prefix, s->attrs, 2, false, false), -EBUSY);
	cr_assert_eq(bgp_adjout_diff(ao, BGP_ADJOUT_AF_IPV4 | BGP_ADJOUT_AF_IPV6, &d), 0);
	cr_assert(!d.eor_v4 && !d.eor_v6);
	/* The same routes desired again: still nothing to send. */
	struct bgp_adjout_route r[2] = {{.prefix = s->prefix[0], .attrset = 0},
	                                {.prefix = s->prefix[1], .attrset = 1}};
	cr_assert_eq(bgp_adjout_set_desired(ao, s->attrs, 2, r, 2), 0);
	cr_assert_eq(bgp_adjout_diff(ao, BGP_ADJOUT_AF_IPV4 | BGP_ADJOUT_AF_IPV6, &d), 0);
	/* One route withdrawn: exactly one withdrawal. */
	r[1].attrset = BGP_ADJOUT_WITHDRAWN;
	cr_assert_eq(bgp_adjout_set_desired(ao, s->attrs, 2, r, 2), 0);
	cr_assert_eq(bgp_adjout_diff(ao, BGP_ADJOUT_AF_IPV4 | BGP_ADJOUT_AF_IPV6, &d), 1);
	cr_assert_eq(d.n_withdraw, 1);
	cr_assert_eq(d.n_announce, 0);
	bgp_adjout_free(ao);

	ao = bgp_adjout_new();
	struct netprefix dup[2] = {s->prefix[0], s->prefix[0]};
	cr_assert_eq(bgp_adjout_restore(ao, dup, s->attrs, 2, false, false), -EINVAL);
	cr_assert_eq(bgp_adjout_sent_count(ao), 0);
	bgp_adjout_free(ao);
}

/* BFD: the whole session round-trips; a Detection Time about to expire
 * restarts from the import; garbage and truncations are refused. */
Test(bgp_handover, bfd_fsm_round_trip)
{
	struct bfd_fsm_conf c = {.local_disc = 0x1234,
	                         .desired_min_tx_us = 100000,
	                         .required_min_rx_us = 100000,
	                         .detect_mult = 3,
	                         .seed = 9};
	struct bfd_fsm f, g;
	uint8_t buf[BFD_FSM_EXPORT_MAX];

	cr_assert_eq(bfd_fsm_init(&f, &c), 0);
	f.state = BFD_STATE_UP;
	f.remote_state = BFD_STATE_UP;
	f.remote_disc = 0xabcd;
	f.remote_detect_mult = 3;
	f.remote_min_tx_us = 100000;
	f.remote_min_rx_us = 100000;
	f.rx_used_us = f.tx_used_us = 100000;
	f.started = f.ever_up = true;
	f.last_rx = 1000;
	f.detect_at = 1300;
	f.next_tx = 1080;
	f.st.ups = 1;
	int len = bfd_fsm_export(&f, buf, sizeof(buf));
	cr_assert_gt(len, 0);
	/* Imported at 1100: 200 ms left, the full 300 ms not: restarted from 1100. */
	cr_assert_eq(bfd_fsm_import(&g, buf, (size_t)len, 1100), 0);
	cr_assert_eq(g.conf.local_disc, 0x1234);
	cr_assert_eq(g.remote_disc, 0xabcd);
	cr_assert_eq(g.state, BFD_STATE_UP);
	cr_assert(g.started && g.ever_up && !g.poll_active);
	cr_assert_eq(g.next_tx, 1080);
	cr_assert_eq(g.detect_at, 1400);
	cr_assert_eq(g.st.ups, 1);
	/* Imported right at the export: nothing to extend. */
	cr_assert_eq(bfd_fsm_import(&g, buf, (size_t)len, 1000), 0);
	cr_assert_eq(g.detect_at, 1300);
	for (int cut = 0; cut < len; cut++)
		cr_assert_lt(bfd_fsm_import(&g, buf, (size_t)cut, 0), 0);
	cr_assert_eq(bfd_fsm_import(&g, buf, (size_t)len + 1, 0), -EBADMSG);
	buf[3] = 2;
	cr_assert_eq(bfd_fsm_import(&g, buf, (size_t)len, 0), -EPROTO);
	buf[3] = 1;
	buf[4 + 4 + 4 + 4 + 1 + 8] = 9; /* state out of range */
	cr_assert_eq(bfd_fsm_import(&g, buf, (size_t)len, 0), -EBADMSG);
	cr_assert_eq(bfd_fsm_export(&f, buf, 20), -EMSGSIZE);
}
