/*
 * privs.c: privs.h's drop of root, with libcap for the capability sets.
 *
 * Order matters (capabilities(7), "Effect of user ID changes"):
 *   1. the bounding set first, while CAP_SETPCAP is still effective;
 *   2. PR_SET_KEEPCAPS, so the permitted set survives the change of uid
 *      (setresuid from root clears it otherwise; the effective set is
 *      cleared either way);
 *   3. setgroups, setresgid, setresuid (groups before the uid: once we are
 *      not root we may not change them);
 *   4. permitted = effective = the kept capabilities, inheritable empty,
 *      ambient cleared (we never exec, so nothing needs to inherit them);
 *   5. KEEPCAPS off again, NO_NEW_PRIVS on, and a check that setuid(0) fails.
 */
#include "core/privs.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

int privs_lookup(const char *name, struct privs_user *out)
{
	struct passwd pw, *res = NULL;
	char buf[16384];
	char *end;
	int r;

	if (!name || !*name || strlen(name) > PRIVS_NAME_MAX)
		return -EINVAL;
	errno = 0;
	unsigned long v = strtoul(name, &end, 10);
	if (*end == '\0' && name[0] >= '0' && name[0] <= '9') {
		if (errno || v > (uid_t)-2)
			return -ERANGE;
		r = getpwuid_r((uid_t)v, &pw, buf, sizeof(buf), &res);
	} else {
		r = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
	}
	if (r)
		return -r;
	if (!res)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", pw.pw_name);
	out->uid = pw.pw_uid;
	out->gid = pw.pw_gid;
	return 0;
}

int privs_thread_count(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static bool kept(int c, const int *keep, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (keep[i] == c)
			return true;
	return false;
}

static int fail(int err, char *why, size_t whylen, const char *step)
{
	snprintf(why, whylen, "%s: %s", step, strerror(err));
	return -err;
}

/* Step 1: needs CAP_SETPCAP; without it (started unprivileged, e.g. by
 * systemd with User= and a CapabilityBoundingSet) the bound stays as given. */
static int drop_bound(cap_t cur, const int *keep, unsigned n, char *why, size_t whylen)
{
	cap_flag_value_t v = CAP_CLEAR;

	if (cap_get_flag(cur, CAP_SETPCAP, CAP_EFFECTIVE, &v) < 0 || v != CAP_SET)
		return 0;
	for (int c = 0; c < (int)cap_max_bits(); c++) {
		if (kept(c, keep, n) || cap_get_bound((cap_value_t)c) <= 0)
			continue;
		if (cap_drop_bound((cap_value_t)c) < 0)
			return fail(errno, why, whylen, "cannot drop from the bounding set");
	}
	return 0;
}

/* Step 4: only what the process still has may be kept. */
static int set_caps(cap_t cur, const int *keep, unsigned n, char *why, size_t whylen)
{
	cap_t want = cap_init();
	int r = 0;

	if (!want)
		return fail(errno, why, whylen, "cap_init");
	for (unsigned i = 0; i < n; i++) {
		cap_flag_value_t v = CAP_CLEAR;
		cap_value_t c = (cap_value_t)keep[i];
		if (cap_get_flag(cur, c, CAP_PERMITTED, &v) < 0 || v != CAP_SET)
			continue;
		if (cap_set_flag(want, CAP_PERMITTED, 1, &c, CAP_SET) < 0 ||
		    cap_set_flag(want, CAP_EFFECTIVE, 1, &c, CAP_SET) < 0) {
			r = fail(errno, why, whylen, "cap_set_flag");
			break;
		}
	}
	if (!r && cap_set_proc(want) < 0)
		r = fail(errno, why, whylen, "cannot set the capability sets");
	cap_free(want);
	if (!r && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		r = fail(errno, why, whylen, "cannot clear the ambient set");
	return r;
}

static int become(const struct privs_user *u, char *why, size_t whylen)
{
	char step[96];

	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		return fail(errno, why, whylen, "PR_SET_KEEPCAPS");
	snprintf(step, sizeof(step), "cannot become user '%s' (uid %u gid %u)", u->name,
	         (unsigned)u->uid, (unsigned)u->gid);
	/* Only the primary group: the daemon needs no other file access. */
	if (setgroups(1, &u->gid) < 0 || setresgid(u->gid, u->gid, u->gid) < 0 ||
	    setresuid(u->uid, u->uid, u->uid) < 0)
		return fail(errno, why, whylen, step);
	return 0;
}

int privs_drop(const struct privs_user *u, const int *keep, unsigned n, char *why, size_t whylen)
{
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid;
	cap_t cur;
	int r, threads = privs_thread_count();

	if (threads < 0)
		return fail(-threads, why, whylen, "cannot count threads");
	if (threads != 1) {
		snprintf(why, whylen,
		         "%d threads running: capability sets are per thread, drop before "
		         "starting any",
		         threads);
		return -EBUSY;
	}
	if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0)
		return fail(errno, why, whylen, "getresuid");
	bool change = ruid != u->uid || euid != u->uid || suid != u->uid || rgid != u->gid ||
	              egid != u->gid || sgid != u->gid;

	cur = cap_get_proc();
	if (!cur)
		return fail(errno, why, whylen, "cap_get_proc");
	r = drop_bound(cur, keep, n, why, whylen);
	if (!r && change)
		r = become(u, why, whylen);
	if (!r)
		r = set_caps(cur, keep, n, why, whylen);
	cap_free(cur);
	if (r)
		return r;
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		return fail(errno, why, whylen, "PR_SET_KEEPCAPS off");
	/* We never exec; this only makes sure nothing we might exec gains. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return fail(errno, why, whylen, "PR_SET_NO_NEW_PRIVS");
	if (change && u->uid != 0 &&
	    (setuid(0) == 0 || getuid() != u->uid || geteuid() != u->uid)) {
		snprintf(why, whylen, "root could be regained after becoming '%s'", u->name);
		return -EPERM;
	}
	return 0;
}
