/* Unit tests for core/addrwatch.c: the rtnetlink parser on crafted messages,
 * and the glue on the real kernel inside a private network namespace (so
 * adding and deleting addresses touches nothing outside this test). */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/addrwatch.h"
#include "core/loop.h"

struct seen {
	unsigned n, lost;
	struct netaddr addr[8];
	bool present[8];
};

static void record(void *arg, const struct netaddr *a, bool present)
{
	struct seen *s = arg;
	if (!a) {
		s->lost++;
		return;
	}
	if (s->n < 8) {
		s->addr[s->n] = *a;
		s->present[s->n] = present;
	}
	s->n++;
}

/* Appends one RTM_*ADDR message with the given attributes to buf. */
static size_t put_msg(uint8_t *buf, uint16_t type, int family, const void *local,
                      const void *address)
{
	size_t alen = family == AF_INET ? 4 : 16;
	struct nlmsghdr *nh = (struct nlmsghdr *)buf;
	struct ifaddrmsg *ifa = NLMSG_DATA(nh);
	size_t off = NLMSG_LENGTH(sizeof(*ifa));

	memset(buf, 0, 256);
	nh->nlmsg_type = type;
	ifa->ifa_family = (uint8_t)family;
	ifa->ifa_prefixlen = family == AF_INET ? 32 : 128;
	const void *vals[2] = {address, local};
	uint16_t types[2] = {IFA_ADDRESS, IFA_LOCAL};
	for (int i = 0; i < 2; i++) {
		if (!vals[i])
			continue;
		struct rtattr *ra = (struct rtattr *)(buf + off);
		ra->rta_type = types[i];
		ra->rta_len = (unsigned short)RTA_LENGTH(alen);
		memcpy(RTA_DATA(ra), vals[i], alen);
		off += RTA_ALIGN(ra->rta_len);
	}
	nh->nlmsg_len = (uint32_t)off;
	return NLMSG_ALIGN(off);
}

Test(addrwatch, parses_new_and_del_v4_v6)
{
	uint8_t buf[1024];
	struct seen s = {0};
	uint8_t a4[4] = {192, 0, 2, 1}, peer4[4] = {192, 0, 2, 9};
	uint8_t a6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
	size_t n = 0;

	n += put_msg(buf + n, RTM_NEWADDR, AF_INET, a4, peer4); /* ptp: IFA_LOCAL wins */
	n += put_msg(buf + n, RTM_DELADDR, AF_INET6, NULL, a6);
	cr_assert_eq(addrwatch_parse(buf, n, record, &s), 2);
	cr_assert_eq(s.n, 2);
	cr_assert_eq(s.addr[0].family, AF_INET);
	cr_assert_arr_eq(s.addr[0].addr, a4, 4);
	cr_assert(s.present[0]);
	cr_assert_eq(s.addr[1].family, AF_INET6);
	cr_assert_arr_eq(s.addr[1].addr, a6, 16);
	cr_assert(!s.present[1]);
}

Test(addrwatch, rejects_truncated_and_bad_lengths)
{
	uint8_t buf[512];
	struct seen s = {0};
	uint8_t a4[4] = {192, 0, 2, 1};
	size_t n = put_msg(buf, RTM_NEWADDR, AF_INET, a4, NULL);

	/* Every truncation is refused or yields no event; never a read past len. */
	for (size_t cut = 0; cut < n; cut++) {
		uint8_t *copy = malloc(cut ? cut : 1);
		memcpy(copy, buf, cut);
		int r = addrwatch_parse(copy, cut, record, &s);
		cr_assert(r == -EBADMSG || r == 0, "cut %zu: %d", cut, r);
		free(copy);
	}
	cr_assert_eq(s.n, 0);
	/* nlmsg_len larger than the datagram. */
	((struct nlmsghdr *)buf)->nlmsg_len = (uint32_t)n + 4;
	cr_assert_eq(addrwatch_parse(buf, n, record, &s), -EBADMSG);
	/* An address attribute of the wrong size for the family. */
	n = put_msg(buf, RTM_NEWADDR, AF_INET, a4, NULL);
	struct rtattr *ra = (struct rtattr *)(buf + NLMSG_LENGTH(sizeof(struct ifaddrmsg)));
	ra->rta_len = RTA_LENGTH(3);
	cr_assert_eq(addrwatch_parse(buf, n, record, &s), -EBADMSG);
	cr_assert_eq(s.n, 0);
}

Test(addrwatch, skips_other_messages)
{
	uint8_t buf[256] = {0};
	struct nlmsghdr *nh = (struct nlmsghdr *)buf;
	struct seen s = {0};

	nh->nlmsg_type = RTM_NEWLINK;
	nh->nlmsg_len = NLMSG_LENGTH(16);
	cr_assert_eq(addrwatch_parse(buf, NLMSG_ALIGN(nh->nlmsg_len), record, &s), 0);
	cr_assert_eq(s.n, 0);
}

/* ---- glue, in a network namespace of our own ---- */

static int ip(const char *cmd)
{
	char line[256];
	snprintf(line, sizeof(line), "ip %s >/dev/null 2>&1", cmd);
	return system(line);
}

struct live {
	struct loop *l;
	struct seen s;
	int step;
};

static void live_event(void *arg, const struct netaddr *a, bool present)
{
	struct live *lv = arg;
	record(&lv->s, a, present);
	if (a && a->family == AF_INET && a->addr[0] == 10 && a->addr[3] == 7) {
		if (present && lv->step == 0) {
			lv->step = 1;
			cr_assert_eq(ip("addr del 10.99.0.7/32 dev lo"), 0);
		} else if (!present && lv->step == 1) {
			lv->step = 2;
			loop_stop(lv->l);
		}
	}
}

static void give_up(struct timer *t, uint64_t now, void *arg)
{
	(void)t;
	(void)now;
	loop_stop(arg);
}

Test(addrwatch, sees_an_address_come_and_go)
{
	static struct live lv;
	struct addrwatch *w;
	struct timer wd;

	if (unshare(CLONE_NEWNET) != 0)
		cr_skip_test("no network namespace here (unshare: %s)", strerror(errno));
	cr_assert_eq(ip("link set lo up"), 0);
	cr_assert_eq(loop_new(NULL, &lv.l), 0);
	cr_assert_eq(addrwatch_new(lv.l, live_event, &lv, &w), 0);
	cr_assert_eq(ip("addr add 10.99.0.7/32 dev lo"), 0);
	timer_init(&wd, give_up, lv.l);
	loop_timer_arm_in(lv.l, &wd, 5000);
	cr_assert_eq(loop_run(lv.l), 0);
	cr_assert_eq(lv.step, 2, "saw add and delete (step %d, %u events)", lv.step, lv.s.n);
	cr_assert_eq(lv.s.lost, 0);
	addrwatch_free(w);
	loop_drain(lv.l, 1000);
	loop_free(lv.l);
}
