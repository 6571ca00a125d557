/*
 * test_bfd_wire.c: the BFD Control packet codec. Every captured vector in
 * tests/vectors/bfd is parsed, printed the way MANIFEST.tsv describes it and
 * compared with that description, then rebuilt byte for byte; then every
 * §6.8.6 discard on hand-made packets.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgp/bfd_wire.h"

static uint8_t *load(const char *name, size_t *len)
{
	const char *dir = getenv("ANYCACHE_VECTORS");
	cr_assert(dir, "ANYCACHE_VECTORS not set");
	char path[1024];
	snprintf(path, sizeof(path), "%s/bfd/%s", dir, name);
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

/* The manifest's description format, from the parsed fields. */
static void describe(const struct bfd_pkt *p, char *out, size_t cap)
{
	char flags[32] = "";
	const struct {
		bool on;
		const char *name;
	} fl[] = {{p->poll, "P"}, {p->final, "F"},  {p->cpi, "C"},
	          {p->auth, "A"}, {p->demand, "D"}, {p->multipoint, "M"}};
	for (size_t i = 0; i < sizeof(fl) / sizeof(fl[0]); i++)
		if (fl[i].on) {
			if (flags[0])
				strcat(flags, " ");
			strcat(flags, fl[i].name);
		}
	snprintf(out, cap,
	         "BFD v%u %s diag %u (%s) flags [%s] mult %u len %u my-disc 0x%08x your-disc "
	         "0x%08x desired-min-tx %uus required-min-rx %uus required-min-echo-rx %uus",
	         p->version, bfd_state_name(p->state), p->diag, bfd_diag_name(p->diag), flags,
	         p->detect_mult, p->length, p->my_disc, p->your_disc, p->desired_min_tx_us,
	         p->required_min_rx_us, p->required_min_echo_rx_us);
}

Test(bfd_wire, every_vector_matches_its_manifest_row_and_rebuilds)
{
	const char *dir = getenv("ANYCACHE_VECTORS");
	cr_assert(dir);
	char path[1024];
	snprintf(path, sizeof(path), "%s/bfd/MANIFEST.tsv", dir);
	FILE *f = fopen(path, "r");
	cr_assert(f, "cannot open %s", path);
	static char line[8192];
	unsigned rows = 0;
	cr_assert(fgets(line, sizeof(line), f), "empty manifest");
	cr_assert(strncmp(line, "file\tsender\treceiver\ttransport\tlength\ttrigger\tdescription",
	                  56) == 0,
	          "manifest columns changed: %s", line);
	while (fgets(line, sizeof(line), f)) {
		char *col[8] = {0};
		char *save = NULL, *t = strtok_r(line, "\t\n", &save);
		for (int i = 0; t && i < 8; i++, t = strtok_r(NULL, "\t\n", &save))
			col[i] = t;
		cr_assert(col[6], "short manifest row");
		size_t len;
		uint8_t *buf = load(col[0], &len);
		cr_assert_eq(len, (size_t)atoi(col[4]), "%s: length column", col[0]);

		struct bfd_pkt p;
		enum bfd_discard why;
		int r = bfd_parse(buf, len, &p, &why);
		cr_assert_eq(r, 0, "%s rejected: %s", col[0], bfd_discard_name(why));
		char desc[512];
		describe(&p, desc, sizeof(desc));
		cr_expect_str_eq(desc, col[6], "%s", col[0]);

		uint8_t out[64];
		cr_assert_eq(bfd_build(&p, out, sizeof(out)), (int)len, "%s", col[0]);
		cr_expect(memcmp(out, buf, len) == 0, "%s: rebuilt bytes differ", col[0]);

		/* Every cut of the packet is refused, without reading past it. */
		for (size_t cut = 0; cut < len; cut++) {
			uint8_t *c = malloc(cut ? cut : 1);
			memcpy(c, buf, cut);
			cr_expect_eq(bfd_parse(c, cut, &p, &why), -EBADMSG, "%s cut at %zu", col[0],
			             cut);
			free(c);
		}
		free(buf);
		rows++;
	}
	fclose(f);
	cr_assert_eq(rows, 27, "27 vectors in the manifest, read %u", rows);
}

/* ---- hand-made packets ---- */

/* BIRD's Up packet (vector 007), a valid base for the malformed cases. */
static const uint8_t up[24] = {0x20, 0xc0, 0x03, 0x18, 0xc7, 0x34, 0x22, 0x4b,
                               0xcf, 0x9d, 0xea, 0xd2, 0x00, 0x04, 0x93, 0xe0,
                               0x00, 0x04, 0x93, 0xe0, 0x00, 0x00, 0x00, 0x00};

static int parse_mod(const uint8_t *b, size_t len, enum bfd_discard *why)
{
	struct bfd_pkt p;
	uint8_t *c = malloc(len); /* exact size: an overread shows under ASan */
	memcpy(c, b, len);
	int r = bfd_parse(c, len, &p, why);
	free(c);
	return r;
}

static void expect_discard(const uint8_t *b, size_t len, int err, enum bfd_discard want)
{
	enum bfd_discard why = BFD_OK;
	int r = parse_mod(b, len, &why);
	cr_expect_eq(r, err, "result %d, want %d", r, err);
	cr_expect_eq(why, want, "reason '%s', want '%s'", bfd_discard_name(why),
	             bfd_discard_name(want));
}

Test(bfd_wire, base_packet_is_valid)
{
	enum bfd_discard why;
	cr_assert_eq(parse_mod(up, sizeof(up), &why), 0);
	cr_assert_eq(why, BFD_OK);
}

Test(bfd_wire, short_packets)
{
	expect_discard(up, 0, -EBADMSG, BFD_DISCARD_SHORT);
	expect_discard(up, 23, -EBADMSG, BFD_DISCARD_SHORT);
}

Test(bfd_wire, version_not_1)
{
	uint8_t b[24];
	for (unsigned v = 0; v < 8; v++) {
		if (v == 1)
			continue;
		memcpy(b, up, 24);
		b[0] = (uint8_t)(v << 5 | (b[0] & 0x1f));
		expect_discard(b, 24, -EBADMSG, BFD_DISCARD_VERSION);
	}
	/* §6.8.6 checks the version first: a short packet of version 0 says so. */
	b[0] = 0x00;
	expect_discard(b, 10, -EBADMSG, BFD_DISCARD_VERSION);
}

Test(bfd_wire, length_field)
{
	uint8_t b[40];
	memcpy(b, up, 24);
	b[3] = 23;
	expect_discard(b, 24, -EBADMSG, BFD_DISCARD_LENGTH);
	b[3] = 0;
	expect_discard(b, 24, -EBADMSG, BFD_DISCARD_LENGTH);
	b[3] = 25; /* more than the payload */
	expect_discard(b, 24, -EBADMSG, BFD_DISCARD_TRUNCATED);
	b[3] = 255;
	expect_discard(b, 24, -EBADMSG, BFD_DISCARD_TRUNCATED);
	/* A set needs room for Auth Type and Auth Len. */
	b[1] |= 0x04;
	b[3] = 25;
	memset(b + 24, 0, 16);
	expect_discard(b, 25, -EBADMSG, BFD_DISCARD_LENGTH);
}

Test(bfd_wire, octets_beyond_the_packet_are_ignored)
{
	uint8_t b[40];
	enum bfd_discard why;
	memset(b, 0xee, sizeof(b));
	memcpy(b, up, 24);
	/* UDP payload longer than Length. */
	cr_expect_eq(parse_mod(b, sizeof(b), &why), 0, "%s", bfd_discard_name(why));
	/* Length 30 with A clear: §6.8.6 does not discard it (nor do BIRD, FRR). */
	b[3] = 30;
	cr_expect_eq(parse_mod(b, 30, &why), 0, "%s", bfd_discard_name(why));
}

Test(bfd_wire, detect_mult_zero)
{
	uint8_t b[24];
	memcpy(b, up, 24);
	b[2] = 0;
	expect_discard(b, 24, -EBADMSG, BFD_DISCARD_DETECT_MULT);
}

Test(bfd_wire, multipoint_bit)
{
	uint8_t b[24];
	memcpy(b, up, 24);
	b[1] |= 0x01;
	expect_discard(b, 24, -EBADMSG, BFD_DISCARD_MULTIPOINT);
}

Test(bfd_wire, my_discriminator_zero)
{
	uint8_t b[24];
	memcpy(b, up, 24);
	memset(b + 4, 0, 4);
	expect_discard(b, 24, -EBADMSG, BFD_DISCARD_MY_DISC);
}

Test(bfd_wire, your_discriminator_zero_only_in_down_and_admindown)
{
	uint8_t b[24];
	enum bfd_discard why;
	for (unsigned st = 0; st < 4; st++) {
		memcpy(b, up, 24);
		memset(b + 8, 0, 4);
		b[1] = (uint8_t)(st << 6);
		if (st == BFD_STATE_INIT || st == BFD_STATE_UP)
			expect_discard(b, 24, -EBADMSG, BFD_DISCARD_YOUR_DISC);
		else
			cr_expect_eq(parse_mod(b, 24, &why), 0, "state %u", st);
	}
}

/* An authentication section after the mandatory part. */
static size_t with_auth(uint8_t *b, uint8_t type, uint8_t auth_len, size_t section)
{
	memcpy(b, up, 24);
	b[1] |= 0x04;
	b[3] = (uint8_t)(24 + section);
	memset(b + 24, 0x5a, section);
	b[24] = type;
	b[25] = auth_len;
	return 24 + section;
}

Test(bfd_wire, well_formed_authentication_is_refused)
{
	uint8_t b[64];
	struct bfd_pkt p;
	enum bfd_discard why;
	size_t n = with_auth(b, BFD_AUTH_SIMPLE, 4 + 5, 4 + 5);
	expect_discard(b, n, -ENOTSUP, BFD_DISCARD_AUTH);
	cr_expect_eq(bfd_parse(b, n, &p, &why), -ENOTSUP);
	cr_expect(p.auth);
	cr_expect_eq(p.auth_type, BFD_AUTH_SIMPLE);
	cr_expect_eq(p.auth_len, 9);
	n = with_auth(b, BFD_AUTH_KEYED_MD5, 24, 24);
	expect_discard(b, n, -ENOTSUP, BFD_DISCARD_AUTH);
	n = with_auth(b, BFD_AUTH_METICULOUS_MD5, 24, 24);
	expect_discard(b, n, -ENOTSUP, BFD_DISCARD_AUTH);
	n = with_auth(b, BFD_AUTH_KEYED_SHA1, 28, 28);
	expect_discard(b, n, -ENOTSUP, BFD_DISCARD_AUTH);
	n = with_auth(b, BFD_AUTH_METICULOUS_SHA1, 28, 28);
	expect_discard(b, n, -ENOTSUP, BFD_DISCARD_AUTH);
	n = with_auth(b, 99, 6, 6); /* unknown type: only the framing is checked */
	expect_discard(b, n, -ENOTSUP, BFD_DISCARD_AUTH);
}

Test(bfd_wire, malformed_authentication_sections)
{
	uint8_t b[64];
	/* Auth Len disagrees with Length. */
	size_t n = with_auth(b, BFD_AUTH_KEYED_MD5, 25, 24);
	expect_discard(b, n, -EBADMSG, BFD_DISCARD_AUTH_LEN);
	n = with_auth(b, BFD_AUTH_KEYED_MD5, 23, 24);
	expect_discard(b, n, -EBADMSG, BFD_DISCARD_AUTH_LEN);
	n = with_auth(b, 99, 0, 2);
	expect_discard(b, n, -EBADMSG, BFD_DISCARD_AUTH_LEN);
	/* Sizes the types do not allow (§4.2-§4.4). */
	n = with_auth(b, BFD_AUTH_SIMPLE, 3, 3);
	expect_discard(b, n, -EBADMSG, BFD_DISCARD_AUTH_LEN);
	n = with_auth(b, BFD_AUTH_SIMPLE, 20, 20);
	expect_discard(b, n, -EBADMSG, BFD_DISCARD_AUTH_LEN);
	n = with_auth(b, BFD_AUTH_KEYED_MD5, 20, 20);
	expect_discard(b, n, -EBADMSG, BFD_DISCARD_AUTH_LEN);
	n = with_auth(b, BFD_AUTH_KEYED_SHA1, 24, 24);
	expect_discard(b, n, -EBADMSG, BFD_DISCARD_AUTH_LEN);
	/* The section is bounded by Length, not by the payload behind it. */
	n = with_auth(b, BFD_AUTH_KEYED_SHA1, 28, 28);
	b[3] = 24 + 20;
	expect_discard(b, n, -EBADMSG, BFD_DISCARD_AUTH_LEN);
}

/* ---- build ---- */

static struct bfd_pkt good(void)
{
	struct bfd_pkt p = {.state = BFD_STATE_UP,
	                    .detect_mult = 3,
	                    .my_disc = 0x11223344,
	                    .your_disc = 0x55667788,
	                    .desired_min_tx_us = 100000,
	                    .required_min_rx_us = 100000};
	return p;
}

Test(bfd_wire, build_then_parse)
{
	struct bfd_pkt p = good(), q;
	uint8_t b[24];
	enum bfd_discard why;
	p.diag = BFD_DIAG_NEIGHBOR_DOWN;
	p.poll = true;
	p.cpi = true;
	p.demand = true;
	cr_assert_eq(bfd_build(&p, b, sizeof(b)), 24);
	cr_assert_eq(bfd_parse(b, 24, &q, &why), 0);
	cr_expect_eq(q.version, 1);
	cr_expect_eq(q.length, 24);
	cr_expect_eq(q.diag, BFD_DIAG_NEIGHBOR_DOWN);
	cr_expect_eq(q.state, BFD_STATE_UP);
	cr_expect(q.poll && !q.final && q.cpi && !q.auth && q.demand && !q.multipoint);
	cr_expect_eq(q.detect_mult, 3);
	cr_expect_eq(q.my_disc, 0x11223344u);
	cr_expect_eq(q.your_disc, 0x55667788u);
	cr_expect_eq(q.desired_min_tx_us, 100000u);
	cr_expect_eq(q.required_min_rx_us, 100000u);
	cr_expect_eq(q.required_min_echo_rx_us, 0u);
}

Test(bfd_wire, build_refuses_what_a_peer_must_discard)
{
	uint8_t b[64];
	struct bfd_pkt p = good();
	cr_expect_eq(bfd_build(&p, b, 23), -EMSGSIZE);
	p.poll = p.final = true; /* §6.8.7 */
	cr_expect_eq(bfd_build(&p, b, sizeof(b)), -EINVAL);
	p = good();
	p.auth = true;
	cr_expect_eq(bfd_build(&p, b, sizeof(b)), -EINVAL);
	p = good();
	p.multipoint = true;
	cr_expect_eq(bfd_build(&p, b, sizeof(b)), -EINVAL);
	p = good();
	p.detect_mult = 0;
	cr_expect_eq(bfd_build(&p, b, sizeof(b)), -EINVAL);
	p = good();
	p.my_disc = 0;
	cr_expect_eq(bfd_build(&p, b, sizeof(b)), -EINVAL);
	p = good();
	p.your_disc = 0; /* Up without knowing the peer */
	cr_expect_eq(bfd_build(&p, b, sizeof(b)), -EINVAL);
	p.state = BFD_STATE_DOWN;
	cr_expect_eq(bfd_build(&p, b, sizeof(b)), 24);
	p.state = 4;
	cr_expect_eq(bfd_build(&p, b, sizeof(b)), -EINVAL);
	p = good();
	p.diag = 32;
	cr_expect_eq(bfd_build(&p, b, sizeof(b)), -EINVAL);
}

Test(bfd_wire, names)
{
	cr_expect_str_eq(bfd_state_name(BFD_STATE_ADMIN_DOWN), "AdminDown");
	cr_expect_str_eq(bfd_state_name(9), "?");
	cr_expect_str_eq(bfd_diag_name(BFD_DIAG_TIME_EXPIRED), "Control Detection Time Expired");
	cr_expect_str_eq(bfd_diag_name(31), "Reserved");
	cr_expect_str_eq(bfd_discard_name(BFD_DISCARD_TTL), "TTL not 255");
}

/* §6.8.7 forbids sending P and F together, but §6.8.6 does not discard such a packet. */
Test(bfd_wire, poll_and_final_together_are_parsed)
{
	uint8_t b[24];
	struct bfd_pkt p;
	enum bfd_discard why;
	memcpy(b, up, 24);
	b[1] |= 0x30;
	cr_assert_eq(bfd_parse(b, 24, &p, &why), 0, "%s", bfd_discard_name(why));
	cr_expect(p.poll && p.final);
}
