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
 *   4. permitted = effective = inheritable = ambient = the kept
 *      capabilities (ambient: a restart's successor, exec'd as the user,
 *      starts with them; nothing else is ever exec'd);
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

/* The wanted sets: the kept capabilities the process still has, permitted,
 * effective and inheritable (inheritable: ambient needs it). NULL on ENOMEM. */
static cap_t wanted_caps(cap_t cur, const int *keep, unsigned n)
{
	cap_t want = cap_init();

	for (unsigned i = 0; want && i < n; i++) {
		cap_flag_value_t v = CAP_CLEAR;
		cap_value_t c = (cap_value_t)keep[i];
		if (cap_get_flag(cur, c, CAP_PERMITTED, &v) < 0 || v != CAP_SET)
			continue;
		if (cap_set_flag(want, CAP_PERMITTED, 1, &c, CAP_SET) < 0 ||
		    cap_set_flag(want, CAP_EFFECTIVE, 1, &c, CAP_SET) < 0 ||
		    cap_set_flag(want, CAP_INHERITABLE, 1, &c, CAP_SET) < 0) {
			cap_free(want);
			return NULL;
		}
	}
	return want;
}

/* Whether the ambient set is exactly want's permitted set. */
static bool ambient_is(cap_t want)
{
	for (int c = 0; c < (int)cap_max_bits(); c++) {
		cap_flag_value_t v = CAP_CLEAR;
		cap_get_flag(want, (cap_value_t)c, CAP_PERMITTED, &v);
		int on = prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0);
		if (on < 0 || (on == 1) != (v == CAP_SET))
			return false;
	}
	return true;
}

/*
 * Step 4. Ambient = the kept set too: nothing is exec'd but a restart's
 * successor (execve of ourselves, as this user: no file capabilities), and
 * it must start with the same one capability, not with none.
 */
static int set_caps(cap_t want, char *why, size_t whylen)
{
	if (cap_set_proc(want) < 0)
		return fail(errno, why, whylen, "cannot set the capability sets");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		return fail(errno, why, whylen, "cannot clear the ambient set");
	for (int c = 0; c < (int)cap_max_bits(); c++) {
		cap_flag_value_t v = CAP_CLEAR;
		if (cap_get_flag(want, (cap_value_t)c, CAP_PERMITTED, &v) < 0 || v != CAP_SET)
			continue;
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
			return fail(errno, why, whylen, "cannot raise an ambient capability");
	}
	return 0;
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
	cap_t cur, want;
	int r;

	if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0)
		return fail(errno, why, whylen, "getresuid");
	bool change = ruid != u->uid || euid != u->uid || suid != u->uid || rgid != u->gid ||
	              egid != u->gid || sgid != u->gid;

	cur = cap_get_proc();
	if (!cur)
		return fail(errno, why, whylen, "cap_get_proc");
	want = wanted_caps(cur, keep, n);
	if (!want) {
		cap_free(cur);
		return fail(ENOMEM, why, whylen, "cap_init");
	}
	/* Already there (a restart's successor exec'd as the user with the kept
	 * capability in its ambient set): nothing to change, threads or not. */
	if (!change && cap_compare(cur, want) == 0 && ambient_is(want)) {
		cap_free(want);
		cap_free(cur);
		/* no_new_privs is per thread: set it only where it reaches every
		 * thread (a successor inherited it through execve anyway). */
		if (privs_thread_count() == 1 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			return fail(errno, why, whylen, "PR_SET_NO_NEW_PRIVS");
		return 0;
	}
	int threads = privs_thread_count();
	if (threads != 1) {
		cap_free(want);
		cap_free(cur);
		if (threads < 0)
			return fail(-threads, why, whylen, "cannot count threads");
		snprintf(why, whylen,
		         "%d threads running: capability sets are per thread, drop before "
		         "starting any",
		         threads);
		return -EBUSY;
	}
	r = drop_bound(cur, keep, n, why, whylen);
	if (!r && change)
		r = become(u, why, whylen);
	if (!r)
		r = set_caps(want, why, whylen);
	cap_free(want);
	cap_free(cur);
	if (r)
		return r;
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		return fail(errno, why, whylen, "PR_SET_KEEPCAPS off");
	/* Nothing exec'd (a restart's successor included) can gain more. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return fail(errno, why, whylen, "PR_SET_NO_NEW_PRIVS");
	if (change && u->uid != 0 &&
	    (setuid(0) == 0 || getuid() != u->uid || geteuid() != u->uid)) {
		snprintf(why, whylen, "root could be regained after becoming '%s'", u->name);
		return -EPERM;
	}
	return 0;
}
