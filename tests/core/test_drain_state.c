/* Unit tests for the persisted operator drains (src/core/drain_state.c). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/drain_state.h"

static struct netaddr A(const char *s) {
	struct netaddr a;
	cr_assert_eq(netaddr_parse(s, 0, &a), 0, "%s", s);
	return a;
}

Test(drain_state, set_has_and_round_trip)
{
	struct drain_state s = {0}, back;
	struct netaddr v4 = A("192.0.2.53:53"), v6 = A("[2001:db8::53]:53"),
	               other_port = A("192.0.2.53:5300");
	char why[128];
	size_t len;

	cr_assert_not(drain_state_has(&s, &v4));
	cr_assert_eq(drain_state_set(&s, &v4, true), 0);
	cr_assert_eq(drain_state_set(&s, &v4, true), 0, "twice is once");
	cr_assert_eq(drain_state_set(&s, &v6, true), 0);
	cr_assert_eq(s.n, 2);
	cr_assert(drain_state_has(&s, &v4));
	cr_assert_not(drain_state_has(&s, &other_port), "the port is part of a VIP");
	char *text = drain_state_format(&s, &len);
	cr_assert_str_eq(
	    text,
	    "{\"v\":1,\"all\":false,\"drained\":[\"192.0.2.53:53\",\"[2001:db8::53]:53\"]}\n");
	cr_assert_eq(drain_state_parse(text, len, &back, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(back.n, 2);
	cr_assert(drain_state_has(&back, &v6));
	free(text);
	cr_assert_eq(drain_state_set(&s, &v4, false), 0);
	cr_assert_eq(drain_state_set(&s, &v4, false), 0, "absent: nothing to do");
	cr_assert_not(drain_state_has(&s, &v4));
	s.all = true;
	cr_assert(drain_state_has(&s, &other_port), "all drains every VIP");
}

Test(drain_state, bad_files)
{
	const char *bad[] = {"",
	                     "x",
	                     "[]",
	                     "{\"v\":2}",
	                     "{\"v\":1,\"all\":1}",
	                     "{\"v\":1,\"drained\":{}}",
	                     "{\"v\":1,\"drained\":[\"192.0.2.1\"]}",
	                     "{\"v\":1,\"drained\":[\"nonsense:53\"]}",
	                     "{\"v\":1,\"x\":true}",
	                     "{\"v\":1,\"v\":1}",
	                     NULL};
	for (unsigned i = 0; bad[i]; i++) {
		struct drain_state s;
		char why[128] = "";
		cr_expect_eq(drain_state_parse(bad[i], strlen(bad[i]), &s, why, sizeof(why)),
		             -EBADMSG, "'%s'", bad[i]);
		cr_expect_neq(why[0], '\0');
		cr_expect_eq(s.n, 0);
		cr_expect_not(s.all);
	}
}

Test(drain_state, save_and_load)
{
	char dir[] = "/tmp/anycache-drainstate-XXXXXX", path[256], why[300];
	struct drain_state s = {.all = true}, back;
	struct netaddr v = A("127.0.0.1:5300");
	struct stat st;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sub/dir/drain.json", dir);
	/* A missing file is an empty state. */
	cr_assert_eq(drain_state_load(path, &back, why, sizeof(why)), 0);
	cr_assert_not(back.all);
	cr_assert_eq(back.n, 0);
	drain_state_set(&s, &v, true);
	cr_assert_eq(drain_state_save(path, &s), 0, "directories made as needed");
	cr_assert_eq(drain_state_load(path, &back, why, sizeof(why)), 0, "%s", why);
	cr_assert(back.all);
	cr_assert(drain_state_has(&back, &v));
	snprintf(why, sizeof(why), "%s.tmp", path);
	cr_assert_neq(stat(why, &st), 0, "no temporary file left");
	/* A damaged file is reported, not taken for "nothing drained". */
	FILE *f = fopen(path, "w");
	fputs("{\"v\":1,", f);
	fclose(f);
	cr_assert_eq(drain_state_load(path, &back, why, sizeof(why)), -EBADMSG);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}
