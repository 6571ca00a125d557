/*
 * privs.h: giving up root once every privileged socket is bound.
 *
 * The mechanism only: which user and which capabilities are the caller's
 * choice (src/main.c keeps CAP_NET_BIND_SERVICE and says why). Nothing here
 * knows DNS or BGP.
 *
 * Whole process, not one thread: setgroups/setresgid/setresuid in glibc
 * apply to every thread of the process (glibc signals each one, the
 * "setxid" broadcast, as POSIX requires), but capability sets are
 * per-thread in Linux and libcap's cap_set_proc changes the caller's alone
 * (libpsx would broadcast it; we do not link it). privs_drop therefore
 * refuses to run while the process has a second thread (/proc/self/task):
 * the caller drops before it starts any, and every thread started after
 * inherits the reduced sets. io_uring work punted to its async workers runs
 * with the credentials of the task that submitted it (captured at
 * submission), so requests submitted after the drop carry the new ones.
 */
#ifndef ANYCACHE_CORE_PRIVS_H
#define ANYCACHE_CORE_PRIVS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define PRIVS_NAME_MAX 32

struct privs_user {
	char name[PRIVS_NAME_MAX + 1];
	uid_t uid;
	gid_t gid; /* the passwd entry's primary group */
};

/*
 * Looks a user up by name, or by number (which must have a passwd entry: its
 * primary group is needed). 0, -ENOENT (no such user) or -errno.
 */
int privs_lookup(const char *name, struct privs_user *out);

/*
 * Becomes u (when not already) with exactly the capabilities keep[0..n-1]
 * (those of them the process still has) in the permitted, effective,
 * inheritable and ambient sets (ambient: so a successor exec'd by a restart
 * starts with the same ones), and (when allowed to change it) a bounding
 * set of keep alone; supplementary groups: u's primary group only. Sets
 * PR_SET_NO_NEW_PRIVS. After a change of user, checks that root cannot be
 * regained. A process already in that state is left alone (0, whatever its
 * threads); otherwise it must have one thread (-EBUSY). 0, or -errno with
 * the step that failed in why.
 */
int privs_drop(const struct privs_user *u, const int *keep, unsigned n, char *why, size_t whylen);

/* How many threads the process has now (/proc/self/task), or -errno. */
int privs_thread_count(void);

#endif
