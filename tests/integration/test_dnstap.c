/*
 * Issue 11, dnstap: anycached logs to a Frame Streams file; a client at
 * 127.53.88.50 asks mail.example.test twice (a miss, then a hit) and
 * nx.example.test once over TCP; after the stop the file is read with the
 * real reader, dnstap-read -y (bind9-dnsutils), and the messages are checked:
 * types, question names, addresses, transports, and that the hit went
 * nowhere upstream. A second test logs client queries only. Addresses
 * 127.53.88.x (anycached .61/.71, knotd .62/.72).
 */
#include <strings.h>
#include <sys/stat.h>

#include "dns_itest.h"

#define NET    88
#define CLIENT "127.53.88.50"

TestSuite(dnstap, .fini = down, .timeout = 120);

static struct tmpdir keep;
static char tapfile[300];
static char out[1 << 20];

struct counts {
	unsigned cq, cr, fq, fr; /* client/forwarder query/response for the name */
	unsigned bad_addr;       /* a message whose addresses are not the expected ones */
	unsigned tcp;            /* client messages over TCP */
	unsigned docs;
};

/* Counts the messages of dnstap-read -y whose question is `name` (any case: 0x20 upstream). */
static void count(const char *yaml, const char *name, struct counts *c)
{
	char q[300];
	snprintf(q, sizeof(q), ";%s.", name);
	memset(c, 0, sizeof(*c));
	for (const char *doc = yaml; doc && *doc;) {
		const char *end = strstr(doc + 1, "\n---");
		size_t n = end ? (size_t)(end - doc) : strlen(doc);
		char d[16384];
		if (n >= sizeof(d))
			n = sizeof(d) - 1;
		memcpy(d, doc, n);
		d[n] = 0;
		doc = end ? end + 1 : NULL;
		c->docs++;
		if (!strcasestr(d, q))
			continue;
		bool client = false;
		if (strstr(d, "type: CLIENT_QUERY")) {
			c->cq++;
			client = true;
		} else if (strstr(d, "type: CLIENT_RESPONSE")) {
			c->cr++;
			client = true;
		} else if (strstr(d, "type: FORWARDER_QUERY")) {
			c->fq++;
		} else if (strstr(d, "type: FORWARDER_RESPONSE")) {
			c->fr++;
		}
		if (client && !strstr(d, "query_address: \"" CLIENT "\""))
			c->bad_addr++;
		if (!client && !strstr(d, "response_address: \"127.53.88."))
			c->bad_addr++;
		if (client && strstr(d, "socket_protocol: TCP"))
			c->tcp++;
	}
}

static void start(int n, const char *messages)
{
	char extra[600];

	cr_assert_eq(tmpdir_make(&keep, "dnstap"), 0);
	snprintf(tapfile, sizeof(tapfile), "%s/anycache.tap", keep.path);
	/* At column 0: a top-level section after up_with's dns: keys. */
	snprintf(extra, sizeof(extra), "dnstap:\n  file: \"%s\"\n%s", tapfile,
	         messages ? messages : "");
	up_with(NET, n + 5, extra);
}

static int ask_from(bool tcp, const char *name)
{
	uint8_t q[512], a[4096];
	int qlen = dns_make_query(q, sizeof(q), 0x2222, name, 1, false);
	int n;
	if (tcp)
		n = dns_tcp_exchange(node, PORT, q, (size_t)qlen, a, sizeof(a), 3000);
	else
		n = dns_udp_exchange_from(CLIENT, node, PORT, q, (size_t)qlen, a, sizeof(a), 3000);
	cr_assert_geq(n, 12, "no answer for %s", name);
	return RCODE(a);
}

static void read_tap(void)
{
	struct stat sb;
	char why[256];
	/* Strict: exit 0, no sanitizer report (an ASan build runs the same test). */
	cr_assert_eq(anycached_stop_clean(&daemon_, 10000, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(stat(tapfile, &sb), 0);
	char *argv[] = {"dnstap-read", "-y", tapfile, NULL};
	int r = run_capture(argv, true, out, sizeof(out), 15000);
	cr_assert_eq(r, 0, "dnstap-read failed (%d): %.2000s", r, out);
}

Test(dnstap, client_and_forwarder_messages)
{
	struct counts c;

	start(1, NULL);
	cr_assert_eq(ask_from(false, "mail.example.test"), 0); /* miss */
	cr_assert_eq(ask_from(false, "mail.example.test"), 0); /* hit */
	cr_assert_eq(ask_from(true, "nx.example.test"), 3);    /* miss, over TCP, NXDOMAIN */
	read_tap();

	count(out, "mail.example.test", &c);
	cr_assert_eq(c.cq, 2, "client queries %u\n%.3000s", c.cq, out);
	cr_assert_eq(c.cr, 2, "client responses %u", c.cr);
	cr_assert_eq(c.fq, 1, "the hit must not go upstream: forwarder queries %u", c.fq);
	cr_assert_eq(c.fr, 1, "forwarder responses %u", c.fr);
	cr_assert_eq(c.bad_addr, 0, "addresses\n%.3000s", out);
	cr_assert_eq(c.tcp, 0);
	count(out, "nx.example.test", &c);
	cr_assert_eq(c.cq, 1);
	cr_assert_eq(c.cr, 1);
	cr_assert_eq(c.tcp, 2, "both client messages over TCP");
	cr_assert_eq(c.fq, 1);
	cr_assert_eq(c.fr, 1);
	cr_assert(strstr(out, "NXDOMAIN"), "the NXDOMAIN response is in the log");
	cr_assert(strstr(out, "identity: "), "Dnstap.identity is set");
	tmpdir_remove(&keep);
}

Test(dnstap, only_the_chosen_messages)
{
	struct counts c;

	start(2, "  messages: [client-query]\n");
	cr_assert_eq(ask_from(false, "mail.example.test"), 0);
	cr_assert_eq(ask_from(false, "mail.example.test"), 0);
	read_tap();
	count(out, "mail.example.test", &c);
	cr_assert_eq(c.cq, 2);
	cr_assert_eq(c.cr + c.fq + c.fr, 0, "only client queries");
	cr_assert(!strstr(out, "CLIENT_RESPONSE"));
	tmpdir_remove(&keep);
}
