/* The failover lab's namespaces, daemons and failure switches; see lab_net.h. */
#include "lab_net.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define LAB_AS    64512
#define KNOT_PORT 5300
#define QTYPE_TXT 16

const char *const lab_ns_tags[] = {"flr", "flk", "fla", "flb", "flc"};
const unsigned lab_ns_ntags = 5;

static void say(struct lab *lab, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct lab *lab, const char *fmt, ...)
{
	va_list ap;

	if (!lab->log)
		return;
	va_start(ap, fmt);
	fprintf(lab->log, "lab: ");
	vfprintf(lab->log, fmt, ap);
	fprintf(lab->log, "\n");
	fflush(lab->log);
	va_end(ap);
}

static int fail(struct lab *lab, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct lab *lab, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(lab->err, sizeof(lab->err), fmt, ap);
	va_end(ap);
	say(lab, "error: %s (%s)", lab->err, strerror(r < 0 ? -r : EIO));
	return r < 0 ? r : -EIO;
}

/* Runs argv in the root namespace (ip -n ..., birdc); its exit code. */
static int cmd(char *const argv[], char *out, size_t cap)
{
	char dummy[256];
	if (!out) {
		out = dummy;
		cap = sizeof(dummy);
	}
	return run_capture(argv, true, out, cap, 10000);
}

/* One UDP exchange from inside ns; the answer's length or -errno. */
static int ns_query(const struct netns *ns, const char *addr, uint16_t port, const char *qname,
                    int timeout_ms)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	uint8_t q[512], a[1500];
	int qlen = dns_make_query(q, sizeof(q), 0x5151, qname, QTYPE_TXT, false);
	int fd, r;

	if (qlen < 0 || inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return -EINVAL;
	fd = netns_socket(ns, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fd;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    send(fd, q, (size_t)qlen, 0) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	struct pollfd pf = {.fd = fd, .events = POLLIN};
	r = poll(&pf, 1, timeout_ms);
	if (r > 0) {
		ssize_t n = recv(fd, a, sizeof(a), 0);
		r = n < 0 ? -errno : (int)n;
	} else {
		r = r == 0 ? -ETIMEDOUT : -errno;
	}
	close(fd);
	return r;
}

/* Polls ns_query until an answer (any RCODE) or timeout_ms; gives up when p dies. */
static int wait_answer(const struct netns *ns, const char *addr, uint16_t port, struct proc *p,
                       int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;

	do {
		if (ns_query(ns, addr, port, LAB_QNAME, 200) >= 12)
			return 0;
		if (!proc_alive(p))
			return -ESRCH;
		sleep_ms(50);
	} while (now_ms() < end);
	return -ETIMEDOUT;
}

static int knot_start(struct lab *lab, struct lab_node *nd)
{
	char kdir[360], conf[4096], zone[512], path[400], log[400];
	int r;

	snprintf(kdir, sizeof(kdir), "%s/knot", nd->dir);
	if (mkdir(kdir, 0700) < 0 && errno != EEXIST)
		return -errno;
	/* TTL 1 s: the node's cache asks its upstream again every second. */
	snprintf(zone, sizeof(zone),
	         "$ORIGIN lab.test.\n"
	         "$TTL 1\n"
	         "@      SOA ns hostmaster 1 3600 600 86400 1\n"
	         "@      NS  ns\n"
	         "ns     A   127.0.0.1\n"
	         "who  1 TXT \"node-%c\"\n"
	         "*.load 60 TXT \"load\"\n",
	         nd->id);
	if ((r = write_file(kdir, "lab.test.zone", zone, NULL, 0)))
		return r;
	/* knotd as root needs an explicit user and a writable rundir (PLATFORM.md). */
	snprintf(conf, sizeof(conf),
	         "server:\n"
	         "    rundir: \"%s\"\n"
	         "    user: root:root\n"
	         "    listen: 127.0.0.1@%d\n"
	         "    background-workers: 1\n"
	         "    udp-workers: 1\n"
	         "    tcp-workers: 1\n"
	         "database:\n"
	         "    storage: \"%s\"\n"
	         "control:\n"
	         "    listen: \"%s/knot.sock\"\n"
	         "log:\n"
	         "  - target: stderr\n"
	         "    any: warning\n"
	         "template:\n"
	         "  - id: default\n"
	         "    storage: \"%s\"\n"
	         "    zonefile-sync: -1\n"
	         "    journal-content: none\n"
	         "zone:\n"
	         "  - domain: lab.test\n"
	         "    file: \"%s/lab.test.zone\"\n",
	         kdir, KNOT_PORT, kdir, kdir, kdir, kdir);
	if ((r = write_file(kdir, "knot.conf", conf, path, sizeof(path))))
		return r;
	snprintf(log, sizeof(log), "%s/knotd.log", kdir);
	char *argv[] = {"knotd", "-c", path, NULL};
	if ((r = netns_proc_start(&nd->knot, &nd->ns, "knotd", argv, log)))
		return r;
	r = wait_answer(&nd->ns, "127.0.0.1", KNOT_PORT, &nd->knot, 10000);
	if (r)
		proc_dump_log(&nd->knot);
	return r;
}

static int bird_start(struct lab *lab)
{
	char conf[4096], path[400], log[400];
	size_t off;
	int r;

	off = (size_t)snprintf(
	    conf, sizeof(conf),
	    "log \"%s/bird.log\" all;\n"
	    "router id 10.53.50.1;\n"
	    "protocol device { scan time 10; }\n"
	    /* The best routes into the router's kernel; equal ones merged: ECMP. */
	    "protocol kernel {\n"
	    "  ipv4 { export where source = RTS_BGP; };\n"
	    "  merge paths on;\n"
	    "}\n"
	    "protocol bfd {\n"
	    "  interface \"*\" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };\n"
	    "}\n"
	    "template bgp node {\n"
	    "  local as %d;\n"
	    "  direct;\n"
	    "  hold time 10;\n"
	    /* BIRD refuses a peer for up to 60 s after an error without this (PLATFORM.md). */
	    "  error wait time 1, 5;\n"
	    "  connect delay time 1;\n"
	    "  connect retry time 2;\n"
	    "  bfd on;\n"
	    "  ipv4 { import all; export none; };\n"
	    "}\n",
	    lab->dir.path, LAB_AS);
	for (unsigned i = 0; i < lab->n; i++)
		off += (size_t)snprintf(conf + off, sizeof(conf) - off,
		                        "protocol bgp node_%c from node { local %s as %d; "
		                        "neighbor %s as %d; }\n",
		                        lab->node[i].id, lab->node[i].peer, LAB_AS,
		                        lab->node[i].addr, LAB_AS);
	if ((r = write_file(lab->dir.path, "bird.conf", conf, path, sizeof(path))))
		return r;
	snprintf(lab->bird_sock, sizeof(lab->bird_sock), "%s/bird.ctl", lab->dir.path);
	snprintf(log, sizeof(log), "%s/bird.out", lab->dir.path);
	char *argv[] = {"bird", "-f", "-c", path, "-s", lab->bird_sock, NULL};
	if ((r = netns_proc_start(&lab->bird, &lab->r, "bird", argv, log)))
		return r;
	uint64_t end = now_ms() + 10000;
	struct stat sb;
	while (stat(lab->bird_sock, &sb) != 0 && now_ms() < end && proc_alive(&lab->bird))
		sleep_ms(50);
	return stat(lab->bird_sock, &sb) == 0 ? 0 : -ETIMEDOUT;
}

/* Polls `birdc show protocols` until every node's session is Established. */
static int wait_sessions(struct lab *lab, int timeout_ms)
{
	static char out[8192];
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	char *argv[] = {"birdc", "-s", lab->bird_sock, "show", "protocols", NULL};

	do {
		unsigned up = 0;
		cmd(argv, out, sizeof(out));
		for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n"))
			if (strncmp(l, "node_", 5) == 0 && strstr(l, "Established"))
				up++;
		if (up == lab->n)
			return 0;
		sleep_ms(100);
	} while (now_ms() < end);
	return -ETIMEDOUT;
}

void lab_node_yaml(const struct lab *lab, unsigned i, const char *extra_health, char *out,
                   size_t cap)
{
	const struct lab_node *nd = &lab->node[i];
	/* Like examples/two-node-{a,b}.yaml: a prefers VIP1, b VIP2; ecmp: VIP1 equal everywhere.
	 */
	unsigned lp1 = lab->ecmp || i == 0 ? 200 : 150, lp2 = i == 1 ? 200 : 150;

	snprintf(out, cap,
	         "dns:\n"
	         "  listen: [%s, %s]\n"
	         "  allow: [10.53.50.0/24]\n"
	         "  upstreams: [\"127.0.0.1:%d\"]\n"
	         "  identity: node-%c\n"
	         "  threads: 2\n"
	         "bgp:\n"
	         "  asn: %d\n"
	         "  router-id: %s\n"
	         "  neighbors:\n"
	         "    - address: %s\n"
	         "      asn: %d\n"
	         "      local-address: %s\n"
	         "      hold-time: 10s\n"
	         "      bfd: true\n"
	         "  announce:\n"
	         "    - {prefix: %s/32, local-preference: %u}\n"
	         "    - {prefix: %s/32, local-preference: %u}\n"
	         "  degraded: {local-preference: 100}\n"
	         "bfd: {interval: 100ms, multiplier: 3}\n"
	         "health:\n"
	         "  interval: 100ms\n"
	         "  rise: 3\n"
	         "  fall: 2\n"
	         "  drain: 2s\n"
	         "%s",
	         LAB_VIP1, LAB_VIP2, KNOT_PORT, nd->id, LAB_AS, nd->addr, nd->peer, LAB_AS,
	         nd->addr, LAB_VIP1, lp1, LAB_VIP2, lp2, extra_health ? extra_health : "");
}

int lab_node_start(struct lab *lab, unsigned i)
{
	struct lab_node *nd = &lab->node[i];
	char yaml[4096];
	int r;

	lab_node_yaml(lab, i, lab->extra_health[i], yaml, sizeof(yaml));
	if ((r = netns_anycached_start(&nd->any, &nd->ns, nd->dir, yaml)))
		return fail(lab, r, "node %c: anycached did not start", nd->id);
	r = wait_answer(&nd->ns, LAB_VIP1, 53, &nd->any, 10000);
	if (r) {
		proc_dump_log(&nd->any);
		return fail(lab, r, "node %c: anycached does not answer on %s", nd->id, LAB_VIP1);
	}
	return 0;
}

int lab_node_signal(struct lab *lab, unsigned i, int sig)
{
	struct lab_node *nd = &lab->node[i];

	if (nd->any.pid <= 0)
		return -ESRCH;
	return kill(nd->any.pid, sig) < 0 ? -errno : 0;
}

int lab_node_reap(struct lab *lab, unsigned i, int timeout_ms)
{
	struct lab_node *nd = &lab->node[i];
	int st = proc_wait(&nd->any, timeout_ms);

	if (st == -ETIMEDOUT)
		st = proc_stop(&nd->any, SIGKILL, 5000);
	return st;
}

/* RTM_SETLINK of IFLA_XDP on ifname inside ns: prog_fd, or -1 to detach. */
static int xdp_set(const struct netns *ns, const char *ifname, int prog_fd)
{
	struct {
		struct nlmsghdr n;
		struct ifinfomsg i;
		char attrs[128];
	} req;
	uint32_t flags = XDP_FLAGS_SKB_MODE; /* generic XDP: works on veth without a peer program */
	char ans[512];
	int fd, r;

	memset(&req, 0, sizeof(req));
	req.n.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
	req.n.nlmsg_type = RTM_SETLINK;
	req.n.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	req.i.ifi_family = AF_UNSPEC; /* ifi_index 0: the kernel finds it by IFLA_IFNAME */
	struct rtattr *name = (struct rtattr *)((char *)&req + NLMSG_ALIGN(req.n.nlmsg_len));
	name->rta_type = IFLA_IFNAME;
	name->rta_len = (unsigned short)RTA_LENGTH(strlen(ifname) + 1);
	memcpy(RTA_DATA(name), ifname, strlen(ifname) + 1);
	req.n.nlmsg_len = NLMSG_ALIGN(req.n.nlmsg_len) + RTA_ALIGN(name->rta_len);
	struct rtattr *xdp = (struct rtattr *)((char *)&req + req.n.nlmsg_len);
	xdp->rta_type = IFLA_XDP | NLA_F_NESTED;
	struct rtattr *a = RTA_DATA(xdp);
	a->rta_type = IFLA_XDP_FD;
	a->rta_len = RTA_LENGTH(sizeof(int));
	memcpy(RTA_DATA(a), &prog_fd, sizeof(int));
	struct rtattr *b = (struct rtattr *)((char *)a + RTA_ALIGN(a->rta_len));
	b->rta_type = IFLA_XDP_FLAGS;
	b->rta_len = RTA_LENGTH(sizeof(uint32_t));
	memcpy(RTA_DATA(b), &flags, sizeof(flags));
	xdp->rta_len = (unsigned short)RTA_LENGTH(RTA_ALIGN(a->rta_len) + RTA_ALIGN(b->rta_len));
	req.n.nlmsg_len += RTA_ALIGN(xdp->rta_len);

	fd = netns_socket(ns, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return fd;
	struct timeval tv = {.tv_sec = 2};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (send(fd, &req, req.n.nlmsg_len, 0) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	ssize_t n = recv(fd, ans, sizeof(ans), 0);
	close(fd);
	if (n < (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)))
		return n < 0 ? -errno : -EBADMSG;
	const struct nlmsghdr *h = (const struct nlmsghdr *)ans;
	if (h->nlmsg_type != NLMSG_ERROR)
		return -EBADMSG;
	return ((const struct nlmsgerr *)NLMSG_DATA(h))->error;
}

/* An XDP program of two instructions, r0 = XDP_DROP; exit: every frame is dropped. */
static int xdp_drop_prog(void)
{
	struct bpf_insn insns[2] = {
	    {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = XDP_DROP},
	    {.code = BPF_JMP | BPF_EXIT},
	};
	char license[] = "GPL";
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_XDP;
	attr.insns = (uint64_t)(uintptr_t)insns;
	attr.insn_cnt = 2;
	attr.license = (uint64_t)(uintptr_t)license;
	int fd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
	return fd < 0 ? -errno : fd;
}

int lab_node_cut(struct lab *lab, unsigned i, bool on)
{
	struct lab_node *nd = &lab->node[i];
	int r;

	if (on && nd->xdp_prog < 0) {
		nd->xdp_prog = xdp_drop_prog();
		if (nd->xdp_prog < 0)
			return fail(lab, nd->xdp_prog, "node %c: cannot load the XDP drop program",
			            nd->id);
	}
	r = xdp_set(&nd->ns, "n0", on ? nd->xdp_prog : -1);
	if (r)
		return fail(lab, r, "node %c: cannot %s XDP on n0", nd->id,
		            on ? "attach" : "detach");
	nd->cut = on;
	return 0;
}

int lab_node_vip1(struct lab *lab, unsigned i, bool present)
{
	struct lab_node *nd = &lab->node[i];
	char *argv[] = {"ip",           "-n",  nd->ns.name, "addr", present ? "add" : "del",
	                LAB_VIP1 "/32", "dev", "lo",        NULL};
	char out[256];
	int r = cmd(argv, out, sizeof(out));

	return r ? fail(lab, r, "node %c: ip addr %s: %s", nd->id, argv[4], out) : 0;
}

int lab_node_knot_signal(struct lab *lab, unsigned i, int sig)
{
	struct lab_node *nd = &lab->node[i];

	if (nd->knot.pid <= 0)
		return -ESRCH;
	return kill(nd->knot.pid, sig) < 0 ? -errno : 0;
}

static void release_tids(struct lab_node *nd)
{
	for (unsigned k = 0; k < nd->ntids; k++)
		ptrace(PTRACE_DETACH, nd->tids[k], 0, 0);
	nd->ntids = 0;
}

/* Calls fn(tid, arg) for each thread of pid named dns-*; how many, or -errno. */
static int each_dns_thread(pid_t pid, int (*fn)(pid_t tid, void *arg), void *arg)
{
	char path[64];
	int count = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return -errno;
	for (struct dirent *e; (e = readdir(d)) && count < LAB_MAX_TIDS;) {
		char cpath[96], comm[32] = "";
		pid_t tid = (pid_t)atoi(e->d_name);
		if (tid <= 0)
			continue;
		snprintf(cpath, sizeof(cpath), "%s/%d/comm", path, (int)tid);
		FILE *f = fopen(cpath, "r");
		if (!f)
			continue;
		if (!fgets(comm, sizeof(comm), f))
			comm[0] = '\0';
		fclose(f);
		if (strncmp(comm, "dns-", 4) != 0)
			continue;
		int r = fn ? fn(tid, arg) : 0;
		if (r) {
			closedir(d);
			return r;
		}
		count++;
	}
	closedir(d);
	return count;
}

int lab_node_dns_threads(struct lab *lab, unsigned i)
{
	if (lab->node[i].any.pid <= 0)
		return -ESRCH;
	return each_dns_thread(lab->node[i].any.pid, NULL, NULL);
}

static int seize(pid_t tid, void *arg)
{
	struct lab_node *nd = arg;

	/* PTRACE_SEIZE stops nothing; PTRACE_INTERRUPT then stops this one thread. */
	if (ptrace(PTRACE_SEIZE, tid, 0, 0) < 0)
		return -errno;
	nd->tids[nd->ntids++] = tid;
	return ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0 ? -errno : 0;
}

int lab_node_stall_dns(struct lab *lab, unsigned i, bool on)
{
	struct lab_node *nd = &lab->node[i];
	int r;

	if (!on) {
		release_tids(nd);
		return 0;
	}
	if (nd->any.pid <= 0)
		return -ESRCH;
	r = each_dns_thread(nd->any.pid, seize, nd);
	if (r < 0) {
		release_tids(nd);
		return fail(lab, r, "node %c: cannot stop its dns-* threads", nd->id);
	}
	if (nd->ntids == 0)
		return -ENOENT;
	/* Each thread reports its stop to us (the tracer); bounded wait. */
	for (unsigned k = 0; k < nd->ntids; k++) {
		int st;
		uint64_t end = now_ms() + 2000;
		while (waitpid(nd->tids[k], &st, __WALL | WNOHANG) == 0 && now_ms() < end)
			sleep_ms(1);
	}
	return 0;
}

int lab_route_mask(struct lab *lab)
{
	return lab_route_mask_now(&lab->r, &lab->route, 2000);
}

int lab_wait_route(struct lab *lab, int want, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;

	do {
		if (lab_route_mask(lab) == want)
			return 0;
		sleep_ms(50);
	} while (now_ms() < end);
	return -ETIMEDOUT;
}

int lab_steady_mask(const struct lab *lab)
{
	return lab->ecmp ? (1 << lab->n) - 1 : 1;
}

static int sysctl_ns(const struct netns *ns, const char *kv)
{
	char *argv[] = {"ip", "netns", "exec", (char *)ns->name, "sysctl", "-qw", (char *)kv, NULL};
	return cmd(argv, NULL, 0);
}

static int ip_route_default(const struct netns *ns, const char *via)
{
	char *argv[] = {"ip",      "-n",  (char *)ns->name, "route", "add",
	                "default", "via", (char *)via,      NULL};
	return cmd(argv, NULL, 0);
}

int lab_up(struct lab *lab, unsigned n, bool ecmp, const char *extra_health_a, FILE *log)
{
	static const char ids[] = "abc";
	int r;

	memset(lab, 0, sizeof(*lab));
	lab->log = log;
	lab->extra_health[0] = extra_health_a;
	lab->n = n;
	lab->ecmp = ecmp;
	for (unsigned i = 0; i < LAB_MAX_NODES; i++)
		lab->node[i].xdp_prog = -1;
	if (n < 2 || n > LAB_MAX_NODES)
		return fail(lab, -EINVAL, "2 or 3 nodes");
	netns_reap_stale(lab_ns_tags, lab_ns_ntags);
	if ((r = tmpdir_make(&lab->dir, "failover")))
		return fail(lab, r, "tmpdir");
	if ((r = netns_create(&lab->r, "flr")) || (r = netns_create(&lab->c, "flk")))
		return fail(lab, r, "ip netns add");
	if ((r = netns_link(&lab->r, "rk", "10.53.50.1/24", &lab->c, "c0", "10.53.50.2/24")) ||
	    (r = ip_route_default(&lab->c, "10.53.50.1")))
		return fail(lab, r, "client link");
	/* A router forwards; its ECMP hash takes the ports (L4), so flows spread. */
	if ((r = sysctl_ns(&lab->r, "net.ipv4.ip_forward=1")) ||
	    (r = sysctl_ns(&lab->r, "net.ipv4.fib_multipath_hash_policy=1")))
		return fail(lab, r, "router sysctls");
	inet_pton(AF_INET, LAB_VIP1, &lab->route.dst);
	lab->route.nnodes = n;
	for (unsigned i = 0; i < n; i++) {
		struct lab_node *nd = &lab->node[i];
		char tag[8], rif[8], cidr_r[24], cidr_n[24];
		nd->id = ids[i];
		snprintf(tag, sizeof(tag), "fl%c", nd->id);
		snprintf(rif, sizeof(rif), "r%c", nd->id);
		snprintf(nd->addr, sizeof(nd->addr), "10.53.%u.2", 51 + i);
		snprintf(nd->peer, sizeof(nd->peer), "10.53.%u.1", 51 + i);
		snprintf(cidr_r, sizeof(cidr_r), "%s/24", nd->peer);
		snprintf(cidr_n, sizeof(cidr_n), "%s/24", nd->addr);
		inet_pton(AF_INET, nd->addr, &lab->route.nh[i]);
		snprintf(nd->dir, sizeof(nd->dir), "%s/%c", lab->dir.path, nd->id);
		if (mkdir(nd->dir, 0700) < 0)
			return fail(lab, -errno, "mkdir %s", nd->dir);
		if ((r = netns_create(&nd->ns, tag)))
			return fail(lab, r, "ip netns add (node %c)", nd->id);
		if ((r = netns_link(&lab->r, rif, cidr_r, &nd->ns, "n0", cidr_n)) ||
		    (r = ip_route_default(&nd->ns, nd->peer)) ||
		    (r = netns_add_lo_addr(&nd->ns, LAB_VIP1 "/32")) ||
		    (r = netns_add_lo_addr(&nd->ns, LAB_VIP2 "/32")))
			return fail(lab, r, "node %c network", nd->id);
		if ((r = knot_start(lab, nd)))
			return fail(lab, r, "node %c: knotd", nd->id);
	}
	if ((r = bird_start(lab)))
		return fail(lab, r, "bird did not start");
	for (unsigned i = 0; i < n; i++)
		if ((r = lab_node_start(lab, i)))
			return r;
	say(lab, "%u nodes%s up; waiting for BGP", n, ecmp ? " (ECMP)" : "");
	if ((r = wait_sessions(lab, 30000)))
		return fail(lab, r, "BGP sessions not all Established within 30 s");
	if ((r = lab_wait_route(lab, lab_steady_mask(lab), 15000)))
		return fail(lab, r, "VIP1's route at the router is not the steady one (mask %d)",
		            lab_route_mask(lab));
	say(lab, "steady: VIP1 via %s", ecmp ? "every node" : "node a");
	return 0;
}

void lab_save_logs(struct lab *lab, const char *dir)
{
	static const char *const top[] = {"bird.conf", "bird.log", "bird.out", "dnsperf.log"};
	static const char *const per_node[] = {"anycache.yaml", "anycached.log", "knot/knotd.log"};
	char from[600], to[600];

	if (!lab->dir.path[0] || (mkdir(dir, 0755) < 0 && errno != EEXIST))
		return;
	for (unsigned k = 0; k < sizeof(top) / sizeof(top[0]); k++) {
		snprintf(from, sizeof(from), "%s/%s", lab->dir.path, top[k]);
		snprintf(to, sizeof(to), "%s/%s", dir, top[k]);
		char *argv[] = {"cp", from, to, NULL};
		if (access(from, R_OK) == 0)
			cmd(argv, NULL, 0);
	}
	for (unsigned i = 0; i < lab->n; i++) {
		for (unsigned k = 0; k < sizeof(per_node) / sizeof(per_node[0]); k++) {
			const char *base = strrchr(per_node[k], '/');
			snprintf(from, sizeof(from), "%s/%s", lab->node[i].dir, per_node[k]);
			snprintf(to, sizeof(to), "%s/%c-%s", dir, lab->node[i].id,
			         base ? base + 1 : per_node[k]);
			char *argv[] = {"cp", from, to, NULL};
			if (access(from, R_OK) == 0)
				cmd(argv, NULL, 0);
		}
	}
}

void lab_down(struct lab *lab)
{
	for (unsigned i = 0; i < LAB_MAX_NODES; i++) {
		struct lab_node *nd = &lab->node[i];
		release_tids(nd);
		if (nd->any.pid > 0) {
			kill(nd->any.pid, SIGCONT);
			proc_stop(&nd->any, SIGTERM, 5000);
		}
		if (nd->knot.pid > 0) {
			kill(nd->knot.pid, SIGCONT);
			proc_stop(&nd->knot, SIGTERM, 5000);
		}
		if (nd->xdp_prog >= 0)
			close(nd->xdp_prog);
		nd->xdp_prog = -1;
	}
	if (lab->bird.pid > 0)
		proc_stop(&lab->bird, SIGTERM, 5000);
	for (unsigned i = 0; i < LAB_MAX_NODES; i++)
		netns_delete(&lab->node[i].ns);
	netns_delete(&lab->c);
	netns_delete(&lab->r);
	if (lab->dir.path[0] && !getenv("LAB_KEEP"))
		tmpdir_remove(&lab->dir);
}
