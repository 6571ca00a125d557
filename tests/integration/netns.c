/* Network namespace helpers for integration tests; see netns.h. */
#include "netns.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
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

int netns_proc_start(struct proc *p, const struct netns *ns, const char *name, char *const argv[],
                     const char *log)
{
	char *full[64];
	int r = with_ns(ns, argv, full, 64);

	/* ip netns exec execs the command in place: the PID is the command's. */
	return r ? r : proc_start(p, name, full, log);
}

int netns_socket(const struct netns *ns, int domain, int type, int protocol)
{
	char path[96];
	int self, target, fd, err = 0;

	snprintf(path, sizeof(path), "/run/netns/%s", ns->name);
	self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return -errno;
	target = open(path, O_RDONLY | O_CLOEXEC);
	if (target < 0) {
		err = -errno;
		close(self);
		return err;
	}
	if (setns(target, CLONE_NEWNET) < 0) {
		err = -errno;
		close(target);
		close(self);
		return err;
	}
	fd = socket(domain, type, protocol);
	if (fd < 0)
		err = -errno;
	/* Back home; a thread left in the wrong namespace would send anywhere. */
	if (setns(self, CLONE_NEWNET) < 0)
		abort();
	close(target);
	close(self);
	return fd < 0 ? err : fd;
}

int netns_link(const struct netns *a, const char *ifa, const char *cidr_a, const struct netns *b,
               const char *ifb, const char *cidr_b)
{
	char *add[] = {"ip",        "-n",    (char *)a->name, "link", "add",
	               (char *)ifa, "type",  "veth",          "peer", "name",
	               (char *)ifb, "netns", (char *)b->name, NULL};
	/* nodad: an IPv6 address is usable at once, not after duplicate detection. */
	char *addr_a[] = {"ip",   "-n",        (char *)a->name,
	                  "addr", "add",       (char *)cidr_a,
	                  "dev",  (char *)ifa, strchr(cidr_a, ':') ? "nodad" : NULL,
	                  NULL};
	char *addr_b[] = {"ip",   "-n",        (char *)b->name,
	                  "addr", "add",       (char *)cidr_b,
	                  "dev",  (char *)ifb, strchr(cidr_b, ':') ? "nodad" : NULL,
	                  NULL};
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
	char *add[] = {"ip", "-n", (char *)ns->name, "addr", "add", (char *)cidr, "dev",
	               "lo", NULL};
	return ip(add);
}

int netns_add_addr(const struct netns *ns, const char *dev, const char *cidr)
{
	char *add[] = {"ip",   "-n",        (char *)ns->name,
	               "addr", "add",       (char *)cidr,
	               "dev",  (char *)dev, strchr(cidr, ':') ? "nodad" : NULL,
	               NULL};
	return ip(add);
}

void netns_reap_stale(const char *const *tags, unsigned ntags)
{
	static char out[16384];
	char *list[] = {"ip", "netns", "list", NULL};

	if (run_capture(list, false, out, sizeof(out), 10000) != 0)
		return;
	/* Lines look like "anyc-gr-1234" or "anyc-gr-1234 (id: 3)". */
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		char name[48];
		if (sscanf(line, "%47s", name) != 1 || strncmp(name, "anyc-", 5) != 0)
			continue;
		for (unsigned i = 0; i < ntags; i++) {
			size_t tl = strlen(tags[i]);
			if (strncmp(name + 5, tags[i], tl) != 0 || name[5 + tl] != '-')
				continue;
			char *end;
			long pid = strtol(name + 6 + tl, &end, 10);
			if (*end || pid <= 0 || pid == getpid())
				continue;
			if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
				continue; /* its test is still running */
			struct netns ns;
			snprintf(ns.name, sizeof(ns.name), "%s", name);
			fprintf(stderr, "netns: deleting %s left by a dead test\n", name);
			netns_delete(&ns);
		}
	}
}

int netns_anycached_start(struct proc *p, const struct netns *ns, const char *dir,
                          const char *conf_yaml)
{
	const char *bin = getenv("ANYCACHED");
	char conf[512], log[512];
	int r;

	if (!bin)
		return -ENOENT;
	char *text = harness_private_control(dir, conf_yaml);
	if (!text)
		return -ENOMEM;
	r = write_file(dir, "anycache.yaml", text, conf, sizeof(conf));
	free(text);
	if (r)
		return r;
	snprintf(log, sizeof(log), "%s/anycached.log", dir);
	char *argv[] = {(char *)bin, "-c", conf, NULL};
	return netns_proc_start(p, ns, "anycached", argv, log);
}
