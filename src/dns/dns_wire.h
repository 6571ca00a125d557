/*
 * dns_wire.h: the pure DNS codec (RFC 1035, RFC 6891, RFC 2308).
 *
 * Knows only libc and core/wire.h: no sockets, no c-ares, no io_uring.
 * Four parts:
 *   - names (dns_name_*): decompression into a fixed buffer, compare, case;
 *   - request validation for the server (dns_request_parse);
 *   - builders for what the server and forwarder send (dns_build_*), all
 *     writing through a struct wbuf and returning the length or -EMSGSIZE;
 *   - a scanner over a whole message (dns_scan) for the cache and forwarder.
 *
 * Ownership: struct dns_request and struct dns_scan are views. Every pointer
 * in them (qname, question) and every offset points into the packet buffer
 * the caller passed in; they die with that buffer. The only owned copy is
 * dns_request.qname_lc (the lowercased name), which lives inside the struct.
 * Builders that take a request read the request's packet: keep it alive
 * until the builder returns.
 *
 * Names here are in uncompressed wire form: length-prefixed labels ending
 * with the zero-length root label, at most DNS_NAME_MAX (255) octets in all.
 */
#ifndef ANYCACHE_DNS_WIRE_H
#define ANYCACHE_DNS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/wire.h"

#define DNS_HDR_LEN           12
#define DNS_MSG_MAX           65535 /* RFC 1035 §4.2.2: TCP length prefix */
#define DNS_NAME_MAX          255   /* RFC 1035 §3.1, including the root label */
#define DNS_LABEL_MAX         63    /* RFC 1035 §3.1 */
#define DNS_NAME_MAX_HOPS     128   /* compression pointers followed per name */
#define DNS_RR_MIN_LEN        11    /* root owner + type, class, TTL, RDLENGTH */
#define DNS_UDP_MIN           512   /* RFC 1035 §4.2.1; also the floor for EDNS sizes */
#define DNS_EDNS_UDP_SIZE     1232  /* what we advertise: DNS Flag Day 2020 */
#define DNS_EDNS_VERSION      0
#define DNS_MAX_TTL_OFFSETS   128 /* dns_scan returns -E2BIG beyond this */
#define DNS_0X20_RANDOM_BYTES 32  /* one bit per octet of a 255-octet name */

/* Header flag bits in the second 16-bit word (RFC 1035 §4.1.1, RFC 4035 §3.2). */
#define DNS_FLAG_QR      0x8000u
#define DNS_FLAG_AA      0x0400u
#define DNS_FLAG_TC      0x0200u
#define DNS_FLAG_RD      0x0100u
#define DNS_FLAG_RA      0x0080u
#define DNS_FLAG_AD      0x0020u
#define DNS_FLAG_CD      0x0010u
#define DNS_OPCODE_SHIFT 11
#define DNS_OPCODE_MASK  0x7800u
#define DNS_RCODE_MASK   0x000fu

/* OPT "TTL" field layout (RFC 6891 §6.1.3). */
#define DNS_EDNS_DO 0x8000u

enum dns_type {
	DNS_TYPE_A = 1,
	DNS_TYPE_NS = 2,
	DNS_TYPE_CNAME = 5,
	DNS_TYPE_SOA = 6,
	DNS_TYPE_NULL = 10,
	DNS_TYPE_PTR = 12,
	DNS_TYPE_MX = 15,
	DNS_TYPE_TXT = 16,
	DNS_TYPE_AAAA = 28,
	DNS_TYPE_SRV = 33,
	DNS_TYPE_NAPTR = 35,
	DNS_TYPE_OPT = 41,
	DNS_TYPE_DS = 43,
	DNS_TYPE_RRSIG = 46,
	DNS_TYPE_NSEC = 47,
	DNS_TYPE_DNSKEY = 48,
	DNS_TYPE_NSEC3 = 50,
	DNS_TYPE_NSEC3PARAM = 51,
	DNS_TYPE_SVCB = 64,
	DNS_TYPE_HTTPS = 65,
	DNS_TYPE_IXFR = 251,
	DNS_TYPE_AXFR = 252,
	DNS_TYPE_ANY = 255,
};

enum dns_class {
	DNS_CLASS_IN = 1,
	DNS_CLASS_CH = 3,
	DNS_CLASS_NONE = 254,
	DNS_CLASS_ANY = 255,
};

enum dns_opcode {
	DNS_OPCODE_QUERY = 0,
	DNS_OPCODE_IQUERY = 1,
	DNS_OPCODE_STATUS = 2,
	DNS_OPCODE_NOTIFY = 4,
	DNS_OPCODE_UPDATE = 5,
};

/* RCODEs; values above 15 exist only through OPT (RFC 6891 §6.1.3). */
enum dns_rcode {
	DNS_RCODE_NOERROR = 0,
	DNS_RCODE_FORMERR = 1,
	DNS_RCODE_SERVFAIL = 2,
	DNS_RCODE_NXDOMAIN = 3,
	DNS_RCODE_NOTIMP = 4,
	DNS_RCODE_REFUSED = 5,
	DNS_RCODE_BADVERS = 16,
	DNS_RCODE_BADCOOKIE = 23,
};

enum dns_edns_option {
	DNS_EDNS_OPT_NSID = 3,
	DNS_EDNS_OPT_ECS = 8,
	DNS_EDNS_OPT_COOKIE = 10,
	DNS_EDNS_OPT_PADDING = 12,
	DNS_EDNS_OPT_EDE = 15,
};

/* ---- names ---- */

/* dns_name_read flag: the name must not contain a compression pointer. */
#define DNS_NAME_NOCOMPRESS 0x1u

/*
 * Reads the (possibly compressed) name at w->off. w must span the whole
 * message (offset 0 = the header), because pointers are message offsets.
 * Rules (RFC 1035 §3.1, §4.1.4): labels <= 63, whole name <= 255 octets,
 * label types 0b01/0b10 rejected, every pointer points strictly before the
 * start of the label run that holds it and not into the header, at most
 * DNS_NAME_MAX_HOPS pointers. On success the cursor sits after the name's
 * in-place octets; out (DNS_NAME_MAX bytes, may be NULL) receives the
 * uncompressed name and *out_len (may be NULL) its length.
 * Returns 0 or -EBADMSG (and fails the cursor).
 */
int dns_name_read(struct wire *w, uint8_t *out, size_t *out_len, unsigned flags);

/* Validates and skips the name at w->off; same rules as dns_name_read. */
int dns_name_skip(struct wire *w);

/* Case-insensitive (ASCII only, RFC 4343) equality of two uncompressed names. */
bool dns_name_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);

/*
 * A name in presentation form ("www.example.com", trailing dot optional; "."
 * is the root) to uncompressed wire form in out (cap bytes). Labels 1..63
 * octets of printable ASCII other than '.' and '\\' (no escapes: an operator
 * types plain host names), whole name <= 255 octets (RFC 1035 §2.3.4).
 * Returns the wire length or -EINVAL.
 */
int dns_name_from_text(const char *text, uint8_t *out, size_t cap);

/* Copies an uncompressed name with ASCII letters lowercased; dst may equal src. */
void dns_name_lower(uint8_t *dst, const uint8_t *src, size_t len);

/*
 * DNS 0x20 (draft-vixie-dnsext-dns0x20): sets the case of each letter of an
 * uncompressed name from one caller-supplied random bit per name octet
 * (bit i of the stream decides octet i; length octets are skipped). rnd
 * must hold at least (len + 7) / 8 bytes; DNS_0X20_RANDOM_BYTES always does.
 */
void dns_name_randomize_case(uint8_t *name, size_t len, const uint8_t *rnd, size_t rnd_len);

/* ---- request validation (server side) ---- */

struct dns_request {
	uint16_t id;
	uint16_t flags; /* the raw second header word */
	uint8_t opcode;
	bool rd, cd, ad;
	uint16_t qdcount, ancount, nscount, arcount;

	bool has_question;       /* QDCOUNT == 1 and the question parsed */
	const uint8_t *question; /* qname + qtype + qclass as sent, in the packet */
	size_t question_len;
	const uint8_t *qname; /* as sent (never compressed), in the packet */
	size_t qname_len;
	uint8_t qname_lc[DNS_NAME_MAX]; /* lowercased copy, owned */
	uint16_t qtype, qclass;

	bool edns; /* a valid OPT was found */
	uint8_t edns_version;
	uint16_t udp_size; /* client's size as sent */
	bool do_bit;
	size_t opt_off;  /* OPT RR (owner octet) in the packet */
	size_t opts_off; /* OPT RDATA (the options) and its length */
	uint16_t opts_len;
	bool has_cookie;
	size_t cookie_off; /* COOKIE option data (RFC 7873) */
	uint16_t cookie_len;
	bool has_ecs; /* ECS present (RFC 7871); never forwarded */
};

/*
 * Validates a query for the server. Returns -EBADMSG when the packet must be
 * dropped without answer (shorter than the header, or QR=1: never answer a
 * response, RFC 1035 §7.3 and loop avoidance). Otherwise returns 0 with
 * *rcode set:
 *   NOERROR  serve it;
 *   FORMERR  QDCOUNT != 1; bad or compressed question name; truncated
 *            question or record; bytes after the last record; OPT outside
 *            the additional section, with a non-root owner, or twice
 *            (RFC 6891 §6.1.1); OPT options overrunning their RDATA;
 *   NOTIMP   opcode != QUERY (RFC 1035 §4.1.1), checked before the rest of
 *            the message is judged because UPDATE and friends give the
 *            sections other meanings;
 *   BADVERS  EDNS version > 0 (RFC 6891 §6.1.3), only once the message is
 *            otherwise well formed.
 * Records in the answer and authority sections of a query are allowed when
 * they parse (RFC 1035 does not forbid them; RFC 7873 and NOTIFY-like uses
 * put data there) and are otherwise ignored.
 * req is always filled as far as parsing got: has_question and edns say
 * whether the builders may echo the question and OPT.
 */
/*
 * RFC 1035 §4.2.2, RFC 7766 §8: the next message of a TCP stream in
 * buf[0..len), each message behind a 2-octet length. The message's length
 * (it starts at buf + 2) when all of it is there, 0 when more bytes are
 * needed, -EBADMSG when the length is under a header (nothing to answer and
 * the framing cannot be trusted: close the connection).
 */
int dns_tcp_frame(const uint8_t *buf, size_t len);

int dns_request_parse(const uint8_t *pkt, size_t len, struct dns_request *req, uint8_t *rcode);

/* Largest UDP answer for this request: 512 without EDNS, else min(max(size, 512), 1232). */
size_t dns_request_udp_limit(const struct dns_request *req);

/* True for CH TXT id.server. / hostname.bind. (RFC 4892), any letter case. */
bool dns_request_is_identity(const struct dns_request *req);

/* ---- builders ---- */

/*
 * An answer with no records: the client's ID, opcode, RD and CD, RA set (we
 * recurse), the question exactly as sent (header only when it did not
 * parse), the RCODE, and an OPT (size 1232, DO echoed, no options) iff the
 * query had one (RFC 6891 §7). RCODEs above 15 go out through OPT; without
 * an OPT in the query they are -EINVAL.
 */
int dns_build_error(struct wbuf *b, const struct dns_request *req, uint16_t rcode);

/*
 * An upstream query: id, RD=1, CD as given, the question with qname as given
 * (the caller applies dns_name_randomize_case), and an OPT with size 1232 and
 * DO as given, no options: client cookies and ECS are not forwarded. The OPT
 * is the last record, so c-ares 1.18's EDNS fallback (cut the last 11 octets)
 * leaves a valid plain query.
 */
int dns_build_query(struct wbuf *b, uint16_t id, const uint8_t *qname, size_t qname_len,
                    uint16_t qtype, uint16_t qclass, bool cd, bool do_bit);

/* The CH TXT answer for id.server / hostname.bind (RFC 4892): one TXT with
 * identity (cut at 255 octets), TTL 0, AA set, OPT as for dns_build_error. */
int dns_build_identity(struct wbuf *b, const struct dns_request *req, const char *identity);

/*
 * UDP truncation (RFC 1035 §4.2.1, RFC 6891 §7, RFC 2181 §9): when ans_len
 * <= limit, copies the answer unchanged. Otherwise writes its header with
 * TC=1, AN=NS=0, then its question and its OPT with the options dropped
 * (AR=1), or no OPT (AR=0) when it had none. -EBADMSG if ans does not scan.
 */
int dns_build_truncated(struct wbuf *b, const uint8_t *ans, size_t ans_len, size_t limit);

/* ---- whole-message scan (cache and forwarder) ---- */

struct dns_scan {
	uint16_t id;
	uint16_t flags; /* raw second header word */
	uint8_t opcode;
	uint16_t rcode; /* 12-bit: OPT's extended bits merged in */
	bool qr, aa, tc;
	uint16_t qdcount, ancount, nscount, arcount;

	bool has_question;
	size_t q_off, q_len; /* question (qname + qtype + qclass) in the packet */
	size_t qname_len;
	uint16_t qtype, qclass;

	bool has_opt;
	size_t opt_off, opt_len; /* the whole OPT RR */
	uint16_t udp_size;
	uint8_t edns_version;
	bool do_bit;

	bool has_answer_ttl;
	uint32_t min_answer_ttl; /* over answer RRs; RFC 2181 §8: MSB set reads as 0 */
	bool negative;           /* NXDOMAIN, or NOERROR without answer RRs (NODATA) */
	bool has_soa;            /* first SOA of the authority section */
	uint32_t soa_ttl, soa_minimum;
	uint32_t neg_ttl; /* RFC 2308 §5: min(SOA TTL, SOA MINIMUM) */

	size_t n_ttl;      /* TTL fields of all RRs but OPT, in message order */
	bool ttl_overflow; /* more than DNS_MAX_TTL_OFFSETS: ttl_off holds the first ones */
	uint16_t ttl_off[DNS_MAX_TTL_OFFSETS];
};

/*
 * Walks all four sections of any message. QDCOUNT must be 0 or 1; OPT may
 * appear once, in the additional section, with the root owner; SOA RDATA is
 * parsed (names plus exactly 20 octets); every other RDATA is opaque but
 * must fit its RDLENGTH; no trailing bytes. Returns 0, -EBADMSG, or -E2BIG
 * when the message is well formed but holds more than DNS_MAX_TTL_OFFSETS
 * TTL-bearing records (s is then filled except for ttl_off: do not cache).
 */
int dns_scan(const uint8_t *pkt, size_t len, struct dns_scan *s);

enum dns_qmatch {
	DNS_QMATCH_NONE = 0,   /* different question (or none) */
	DNS_QMATCH_NOCASE = 1, /* same question, letter case differs */
	DNS_QMATCH_EXACT = 2,  /* same octets: the 0x20 pattern came back */
};

/* Compares the scanned message's question with qname/qtype/qclass. */
enum dns_qmatch dns_scan_match_question(const uint8_t *pkt, const struct dns_scan *s,
                                        const uint8_t *qname, size_t qname_len, uint16_t qtype,
                                        uint16_t qclass);

/*
 * The same comparison for a message that did not scan: reads only the
 * header and the question (QDCOUNT must be 1), so a forwarder can tell a
 * broken answer to its query (EXACT) from someone else's datagram (NONE).
 */
enum dns_qmatch dns_match_question(const uint8_t *pkt, size_t len, const uint8_t *qname,
                                   size_t qname_len, uint16_t qtype, uint16_t qclass);

#endif
