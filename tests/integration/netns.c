/* Network namespace helpers for integration tests; see netns.h. */
#include "netns.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int ip(char *const argv[])
{
	char out[1024];
	int r = run_capture(argv, true, out, sizeof(out), 10000);

	if (r != 0) {
		fprintf(stderr, "netns: '%s %s %s %s' failed (%d): %s\n", argv[0], argv[1],
			argv[2] ? argv[2] : "", argv[2] && argv[3] ? argv[3] : "", r, out);
		return r < 0 ? r : -EIO;
	}
	return 0;
}

int netns_create(struct netns *ns, const char *tag)
{
	snprintf(ns->name, sizeof(ns->name), "anyc-%s-%d", tag, (int)getpid());
	char *add[] = {"ip", "netns", "add", ns->name, NULL};
	int r = ip(add);
	if (r) {
		ns->name[0] = '\0';
		return geteuid() == 0 ? r : -EPERM;
	}
	char *lo[] = {"ip", "-n", ns->name, "link", "set", "lo", "up", NULL};
	return ip(lo);
}

void netns_delete(struct netns *ns)
{
	if (!ns->name[0])
		return;
	/* Deleting the namespace removes its veth ends and addresses with it. */
	char *del[] = {"ip", "netns", "delete", ns->name, NULL};
	ip(del);
	ns->name[0] = '\0';
}

static int with_ns(const struct netns *ns, char *const argv[], char **full, size_t cap)
{
	size_t n = 0;

	full[n++] = "ip";
	full[n++] = "netns";
	full[n++] = "exec";
	full[n++] = (char *)ns->name;
	for (size_t i = 0; argv[i]; i++) {
		if (n + 1 >= cap)
			return -E2BIG;
		full[n++] = argv[i];
	}
	full[n] = NULL;
	return 0;
}

int netns_run(const struct netns *ns, char *const argv[], char *out, size_t cap, int timeout_ms)
{
	char *full[64];
	int r = with_ns(ns, argv, full, 64);

	return r ? r : run_capture(full, true, out, cap, timeout_ms);
}

int netns_proc_start(struct proc *p, const struct netns *ns, const char *name,
		     char *const argv[], const char *log)
{
	char *full[64];
	int r = with_ns(ns, argv, full, 64);

	/* ip netns exec execs the command in place: the PID is the command's. */
	return r ? r : proc_start(p, name, full, log);
}

int netns_link(const struct netns *a, const char *ifa, const char *cidr_a,
	       const struct netns *b, const char *ifb, const char *cidr_b)
{
	char *add[] = {"ip", "-n", (char *)a->name, "link", "add", (char *)ifa, "type", "veth",
		       "peer", "name", (char *)ifb, "netns", (char *)b->name, NULL};
	/* nodad: an IPv6 address is usable at once, not after duplicate detection. */
	char *addr_a[] = {"ip", "-n", (char *)a->name, "addr", "add", (char *)cidr_a, "dev",
			  (char *)ifa, strchr(cidr_a, ':') ? "nodad" : NULL, NULL};
	char *addr_b[] = {"ip", "-n", (char *)b->name, "addr", "add", (char *)cidr_b, "dev",
			  (char *)ifb, strchr(cidr_b, ':') ? "nodad" : NULL, NULL};
	char *up_a[] = {"ip", "-n", (char *)a->name, "link", "set", (char *)ifa, "up", NULL};
	char *up_b[] = {"ip", "-n", (char *)b->name, "link", "set", (char *)ifb, "up", NULL};
	int r;

	if ((r = ip(add)) || (r = ip(addr_a)) || (r = ip(addr_b)) || (r = ip(up_a)) ||
	    (r = ip(up_b)))
		return r;
	return 0;
}

int netns_add_lo_addr(const struct netns *ns, const char *cidr)
{
	char *add[] = {"ip", "-n", (char *)ns->name, "addr", "add", (char *)cidr, "dev", "lo",
		       NULL};
	return ip(add);
}
