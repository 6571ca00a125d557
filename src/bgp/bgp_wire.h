/*
 * bgp_wire.h: the pure BGP-4 codec (RFC 4271 with RFC 4760, 5492, 6793, 7606,
 * 7911, 8950, 2918, 7313, 4724, 9003, 9072, 8654, 9234).
 *
 * Knows only libc and core/wire.h: no sockets, no clock, no logging.
 * Implementation: bgp_wire.c (header, OPEN, NOTIFICATION, KEEPALIVE,
 * ROUTE-REFRESH), bgp_capa.c (capabilities), bgp_attr.c (UPDATE).
 *
 * Ownership: every parsed struct here is a VIEW. Pointers in it (capability
 * values, attribute values, prefix fields, NOTIFICATION data) point into the
 * caller's message buffer and die with it; nothing is allocated. Builders
 * append complete messages to a caller-owned struct wbuf and return the number
 * of bytes written or -EMSGSIZE.
 *
 * Errors: parsers return 0 (or a non-negative result) on success, -EBADMSG on
 * malformed input, and then fill a struct bgp_notify with the NOTIFICATION
 * that RFC 4271 §6 asks the session to send (code 0 = send nothing).
 */
#ifndef ANYCACHE_BGP_WIRE_H
#define ANYCACHE_BGP_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/wire.h"

#define BGP_VERSION     4
#define BGP_PORT        179
#define BGP_MARKER_LEN  16
#define BGP_HDR_LEN     19
#define BGP_MAX_LEN     4096  /* RFC 4271 §4.1 */
#define BGP_EXT_MAX_LEN 65535 /* RFC 8654 */
#define BGP_AS_TRANS    23456 /* RFC 6793 §9 */

enum bgp_type {
	BGP_MSG_OPEN = 1,
	BGP_MSG_UPDATE = 2,
	BGP_MSG_NOTIFICATION = 3,
	BGP_MSG_KEEPALIVE = 4,
	BGP_MSG_ROUTE_REFRESH = 5,
};

/* Minimum message lengths, RFC 4271 §4 and RFC 2918 §3. */
#define BGP_OPEN_MIN_LEN         29
#define BGP_UPDATE_MIN_LEN       23
#define BGP_NOTIFICATION_MIN_LEN 21
#define BGP_ROUTE_REFRESH_LEN    23

/* NOTIFICATION error codes and subcodes (RFC 4271 §4.5, IANA registry). */
enum bgp_err {
	BGP_ERR_HEADER = 1,
	BGP_ERR_OPEN = 2,
	BGP_ERR_UPDATE = 3,
	BGP_ERR_HOLD = 4,
	BGP_ERR_FSM = 5,
	BGP_ERR_CEASE = 6,
	BGP_ERR_ROUTE_REFRESH = 7, /* RFC 7313 */
};
enum bgp_err_header { BGP_HDR_NOT_SYNC = 1, BGP_HDR_BAD_LEN = 2, BGP_HDR_BAD_TYPE = 3 };
enum bgp_err_open {
	BGP_OPEN_UNSUP_VERSION = 1,
	BGP_OPEN_BAD_PEER_AS = 2,
	BGP_OPEN_BAD_ID = 3,
	BGP_OPEN_UNSUP_PARAM = 4,
	BGP_OPEN_BAD_HOLD = 6,
	BGP_OPEN_UNSUP_CAPA = 7,
	BGP_OPEN_ROLE_MISMATCH = 11, /* RFC 9234 */
};
enum bgp_err_update {
	BGP_UPD_MALFORMED_ATTR_LIST = 1,
	BGP_UPD_UNRECOGNIZED_WELLKNOWN = 2,
	BGP_UPD_MISSING_WELLKNOWN = 3,
	BGP_UPD_ATTR_FLAGS = 4,
	BGP_UPD_ATTR_LEN = 5,
	BGP_UPD_INVALID_ORIGIN = 6,
	BGP_UPD_INVALID_NEXT_HOP = 8,
	BGP_UPD_OPTIONAL_ATTR = 9,
	BGP_UPD_INVALID_NETWORK = 10,
	BGP_UPD_MALFORMED_AS_PATH = 11,
};
enum bgp_err_cease {
	BGP_CEASE_MAX_PREFIX = 1,
	BGP_CEASE_ADMIN_SHUTDOWN = 2,
	BGP_CEASE_PEER_DECONFIGURED = 3,
	BGP_CEASE_ADMIN_RESET = 4,
	BGP_CEASE_CONN_REJECTED = 5,
	BGP_CEASE_OTHER_CONFIG_CHANGE = 6,
	BGP_CEASE_CONN_COLLISION = 7,
	BGP_CEASE_OUT_OF_RESOURCES = 8,
	BGP_CEASE_HARD_RESET = 9, /* RFC 8538 */
	BGP_CEASE_BFD_DOWN = 10,  /* RFC 9384 */
};

/* The largest NOTIFICATION data that fits a 4096-byte message. */
#define BGP_NOTIFY_DATA_MAX (BGP_MAX_LEN - BGP_NOTIFICATION_MIN_LEN)

/*
 * The NOTIFICATION a parser asks the session to send. code 0: nothing to send.
 * Data longer than BGP_NOTIFY_DATA_MAX (a huge attribute on an extended-message
 * session) is truncated: the NOTIFICATION itself must stay <= 4096 bytes.
 */
struct bgp_notify {
	uint8_t code, subcode;
	uint8_t data[BGP_NOTIFY_DATA_MAX];
	size_t datalen;
};

/* Address families this codec parses NLRI for; index for per-family arrays. */
enum bgp_fam { BGP_FAM_IPV4 = 0, BGP_FAM_IPV6 = 1, BGP_FAM_COUNT = 2, BGP_FAM_NONE = 255 };
#define BGP_AFI_IPV4     1
#define BGP_AFI_IPV6     2
#define BGP_SAFI_UNICAST 1
/* IPv4/unicast or IPv6/unicast → BGP_FAM_*, anything else → BGP_FAM_NONE. */
uint8_t bgp_fam_of(uint16_t afi, uint8_t safi);
uint16_t bgp_fam_afi(uint8_t fam);

/*
 * What the bytes of an UPDATE do not say (RFC 6793 AS width, RFC 7911 path ids,
 * RFC 8654 length limit): the session fills it from the negotiated capabilities
 * (bgp_ctx_negotiate) and passes it to every parser and builder.
 */
struct bgp_ctx {
	bool as4;                       /* both sides sent capability 65 */
	bool addpath_rx[BGP_FAM_COUNT]; /* NLRI we receive carry a 4-byte path id */
	bool ext_msg;                   /* both sides sent capability 6 */
};

/* ---- header (RFC 4271 §4.1, §6.1) ---- */

struct bgp_hdr {
	uint16_t len; /* whole message, header included */
	uint8_t type;
};

/*
 * Checks the 19-byte header at buf (len >= BGP_HDR_LEN, else -EBADMSG with no
 * NOTIFICATION): marker all ones (1/1), length within 19..4096 (65535 for
 * UPDATE/NOTIFICATION/ROUTE-REFRESH with ctx->ext_msg, RFC 8654 §4) and the
 * per-type minimum (1/2, data = the length), type 1..5 (1/3, data = the type).
 */
int bgp_hdr_parse(const uint8_t *buf, size_t len, const struct bgp_ctx *ctx, struct bgp_hdr *hdr,
                  struct bgp_notify *err);
/*
 * RFC 4271 §4.1 stream framing: the next message of a TCP byte stream in
 * buf[0..len). Its length (header included) when all of it is there, 0 when
 * more bytes are needed, -EBADMSG with the NOTIFICATION in *err when the
 * header is bad (the framing is lost: the connection must end).
 */
int bgp_frame(const uint8_t *buf, size_t len, const struct bgp_ctx *ctx, struct bgp_hdr *hdr,
              struct bgp_notify *err);

/* Starts a message (marker, length placeholder, type); bgp_msg_end fills the length. */
size_t bgp_msg_begin(struct wbuf *b, uint8_t type);
/* Returns the message length, or -EMSGSIZE (buffer full or message > max_len). */
int bgp_msg_end(struct wbuf *b, size_t start, size_t max_len);

/* ---- capabilities (RFC 5492) and OPEN (RFC 4271 §4.2, §6.2) ---- */

enum bgp_capa_code {
	BGP_CAPA_MP = 1,
	BGP_CAPA_ROUTE_REFRESH = 2,
	BGP_CAPA_EXT_NEXTHOP = 5, /* RFC 8950 */
	BGP_CAPA_EXT_MSG = 6,
	BGP_CAPA_ROLE = 9,
	BGP_CAPA_GR = 64,
	BGP_CAPA_AS4 = 65,
	BGP_CAPA_ADDPATH = 69,
	BGP_CAPA_ENHANCED_RR = 70,
	BGP_CAPA_LLGR = 71,
	BGP_CAPA_FQDN = 73,
};
#define BGP_ADDPATH_RX 1 /* RFC 7911 §4 Send/Receive field, as the sender states it */
#define BGP_ADDPATH_TX 2

#define BGP_CAPS_LIST_MAX 64 /* capabilities remembered in order; more are counted */

struct bgp_capa {
	uint8_t code;
	uint8_t len;
	const uint8_t *val; /* view into the OPEN */
};

/* The decoded capability set of one OPEN; unknown codes are kept in list[] only. */
struct bgp_caps {
	struct bgp_capa list[BGP_CAPS_LIST_MAX];
	size_t n; /* capabilities seen (list holds the first BGP_CAPS_LIST_MAX) */
	size_t n_unknown;
	bool mp[BGP_FAM_COUNT];
	bool mp_other; /* some other AFI/SAFI advertised */
	bool route_refresh;
	bool enhanced_rr;
	bool ext_msg;
	bool ext_nexthop;
	bool as4;
	uint32_t as4_asn;
	bool gr;
	uint16_t gr_flags_time; /* restart flags (4 bits) + restart time (12 bits) */
	bool llgr;
	uint8_t addpath[BGP_FAM_COUNT]; /* BGP_ADDPATH_RX|TX as advertised */
	bool role;
	uint8_t role_value;
	bool fqdn;
	const uint8_t *host;
	uint8_t hostlen;
	const uint8_t *domain;
	uint8_t domainlen;
};

/*
 * Parses the capabilities inside one type-2 optional parameter value (several
 * per parameter, or one each as FRR sends them), accumulating into caps.
 * -EBADMSG when a capability overruns the parameter or a known one has an
 * impossible length.
 */
int bgp_caps_parse(const uint8_t *p, size_t len, struct bgp_caps *caps);

/* What we advertise (RFC 4760, 2918, 6793); nothing else is ever sent. */
struct bgp_open_cfg {
	uint32_t asn;
	uint16_t hold;
	uint32_t bgp_id; /* host byte order */
	bool fam[BGP_FAM_COUNT];
	bool route_refresh;
	bool as4;
};

/* Writes our capabilities as one type-2 optional parameter. */
int bgp_caps_build(struct wbuf *b, const struct bgp_open_cfg *cfg);

/* Fills the parse context from what both sides advertised (RFC 6793, 7911, 8654). */
void bgp_ctx_negotiate(const struct bgp_caps *ours, const struct bgp_caps *theirs,
                       struct bgp_ctx *ctx);

struct bgp_open {
	uint8_t version;
	uint16_t my_as; /* the 2-octet field, AS_TRANS for 4-octet speakers */
	uint16_t hold;
	uint32_t bgp_id; /* host byte order */
	uint32_t asn;    /* the capability-65 ASN if present, else my_as */
	size_t n_params;
	bool ext_params; /* RFC 9072 extended optional parameters length */
	struct bgp_caps caps;
};

/*
 * Parses an OPEN body (after the header). Errors (-EBADMSG, err filled):
 * 2/1 version != 4 (data: 0x0004), 2/2 AS 0 (RFC 7607), 2/3 BGP id 0
 * (RFC 6286), 2/4 optional parameter other than capabilities, 2/6 hold 1 or 2,
 * 2/0 malformed parameters or capabilities.
 */
int bgp_open_parse(const uint8_t *body, size_t len, struct bgp_open *o, struct bgp_notify *err);

/* 2/2 when the peer's AS is not expected_asn (0: accept any). */
int bgp_open_check_as(const struct bgp_open *o, uint32_t expected_asn, struct bgp_notify *err);

/* Builds our OPEN; my-AS is AS_TRANS when cfg->asn > 65535 (RFC 6793 §4.1). */
int bgp_open_build(struct wbuf *b, const struct bgp_open_cfg *cfg);

/* ---- NOTIFICATION (RFC 4271 §4.5, RFC 9003), KEEPALIVE, ROUTE-REFRESH ---- */

#define BGP_SHUTDOWN_MAX 255 /* RFC 9003 §2 */

struct bgp_notification {
	uint8_t code, subcode;
	const uint8_t *data; /* view */
	size_t datalen;
	/* RFC 9003: Cease 6/2 or 6/4 whose data is a length byte and that many bytes */
	bool has_shutdown;
	bool shutdown_utf8; /* the text is well-formed UTF-8 */
	const uint8_t *shutdown;
	size_t shutdown_len;
};

/* Never fails on bad shutdown data (it is just not reported as text). */
int bgp_notification_parse(const uint8_t *body, size_t len, struct bgp_notification *n);
int bgp_notification_build(struct wbuf *b, uint8_t code, uint8_t subcode, const void *data,
                           size_t datalen);
int bgp_notify_build(struct wbuf *b, const struct bgp_notify *n);
/* Cease 6/2 or 6/4 with an RFC 9003 shutdown communication; -EINVAL if text > 255 bytes. */
int bgp_notification_build_shutdown(struct wbuf *b, uint8_t subcode, const char *text,
                                    size_t textlen);
/* True for well-formed UTF-8 (no overlongs, surrogates or values > U+10FFFF). */
bool bgp_utf8_valid(const uint8_t *p, size_t len);
/*
 * A peer's shutdown communication (RFC 9003 §2: UTF-8 chosen by the peer) as
 * text fit for one log line: C0 controls, DEL, C1 controls (U+0080..U+009F),
 * '\\' and '"' become \xNN escapes, as does every byte of text that is not
 * well-formed UTF-8; the rest is kept. Always NUL-terminates (outlen > 0),
 * never splits an escape or a character; returns the length written.
 * 4 * BGP_SHUTDOWN_MAX + 1 octets always hold the whole text.
 */
size_t bgp_shutdown_text_escape(const uint8_t *p, size_t len, char *out, size_t outlen);

int bgp_keepalive_build(struct wbuf *b);

enum bgp_rr_subtype { BGP_RR_REQUEST = 0, BGP_RR_BORR = 1, BGP_RR_EORR = 2 };

struct bgp_route_refresh {
	uint16_t afi;
	uint8_t subtype; /* RFC 7313 §3.2: the caller ignores values > 2 */
	uint8_t safi;
};

/* Body of exactly 4 bytes (the header check already enforces length 23). */
int bgp_route_refresh_parse(const uint8_t *body, size_t len, struct bgp_route_refresh *rr,
                            struct bgp_notify *err);
int bgp_route_refresh_build(struct wbuf *b, uint16_t afi, uint8_t safi, uint8_t subtype);

/* ---- UPDATE (RFC 4271 §4.3, §6.3; RFC 4760; RFC 7606) ---- */

enum bgp_attr_code {
	BGP_ATTR_ORIGIN = 1,
	BGP_ATTR_AS_PATH = 2,
	BGP_ATTR_NEXT_HOP = 3,
	BGP_ATTR_MED = 4,
	BGP_ATTR_LOCAL_PREF = 5,
	BGP_ATTR_ATOMIC_AGGREGATE = 6,
	BGP_ATTR_AGGREGATOR = 7,
	BGP_ATTR_COMMUNITIES = 8,
	BGP_ATTR_ORIGINATOR_ID = 9,
	BGP_ATTR_CLUSTER_LIST = 10,
	BGP_ATTR_MP_REACH = 14,
	BGP_ATTR_MP_UNREACH = 15,
	BGP_ATTR_EXT_COMMUNITIES = 16,
	BGP_ATTR_AS4_PATH = 17,
	BGP_ATTR_AS4_AGGREGATOR = 18,
	BGP_ATTR_LARGE_COMMUNITY = 32,
	BGP_ATTR_OTC = 35, /* RFC 9234 */
};
#define BGP_ATTR_F_OPTIONAL   0x80
#define BGP_ATTR_F_TRANSITIVE 0x40
#define BGP_ATTR_F_PARTIAL    0x20
#define BGP_ATTR_F_EXTLEN     0x10

enum bgp_origin { BGP_ORIGIN_IGP = 0, BGP_ORIGIN_EGP = 1, BGP_ORIGIN_INCOMPLETE = 2 };
enum bgp_as_seg {
	BGP_AS_SET = 1,
	BGP_AS_SEQUENCE = 2,
	BGP_AS_CONFED_SEQUENCE = 3,
	BGP_AS_CONFED_SET = 4
};

/*
 * RFC 7606 §2 outcomes, in increasing severity. bgp_update_parse returns the
 * first three (>= 0) and -EBADMSG for SESSION_RESET.
 */
enum bgp_upd_action {
	BGP_UPD_OK = 0,
	BGP_UPD_ATTR_DISCARD = 1,
	BGP_UPD_TREAT_AS_WITHDRAW = 2,
	BGP_UPD_SESSION_RESET = 3,
};

/* A syntactically validated run of prefixes (RFC 4271 §4.3, RFC 7911 §3). */
struct bgp_nlri {
	const uint8_t *p; /* view; NULL when absent */
	size_t len;
	size_t count; /* prefixes in it (0 for an unknown family) */
	uint8_t fam;  /* BGP_FAM_*; BGP_FAM_NONE: not parsed */
	bool addpath;
};

struct bgp_prefix {
	uint8_t fam;      /* BGP_FAM_IPV4 or BGP_FAM_IPV6 */
	uint8_t len;      /* bits */
	uint8_t addr[16]; /* bits past len are zero */
	uint32_t path_id; /* 0 when the field carries none */
};

struct bgp_nlri_iter {
	struct wire w;
	uint8_t fam;
	bool addpath;
};
void bgp_nlri_iter_init(struct bgp_nlri_iter *it, const struct bgp_nlri *n);
/* Next prefix, or false at the end (a validated field never fails). */
bool bgp_nlri_next(struct bgp_nlri_iter *it, struct bgp_prefix *out);

#define BGP_UPD_ATTRS_MAX 64 /* attributes remembered in order; more are counted */

struct bgp_attr_view {
	uint8_t flags, code;
	uint16_t len;
	const uint8_t *val;
};

struct bgp_update {
	struct bgp_nlri withdrawn; /* IPv4 Withdrawn Routes field */
	struct bgp_nlri nlri;      /* IPv4 NLRI field */
	bool has_mp_reach, has_mp_unreach;
	uint16_t mp_reach_afi, mp_unreach_afi;
	uint8_t mp_reach_safi, mp_unreach_safi;
	const uint8_t *mp_nexthop; /* view; 4, 16 or 32 bytes for the unicast families */
	uint8_t mp_nexthop_len;
	struct bgp_nlri mp_reach;
	struct bgp_nlri mp_unreach;

	struct bgp_attr_view attrs[BGP_UPD_ATTRS_MAX]; /* in wire order, duplicates dropped */
	size_t n_attrs;
	uint32_t seen[8]; /* bitmap of attribute codes present (first kept) */
	size_t n_unknown;

	uint8_t origin;
	const uint8_t *as_path; /* view of the AS_PATH value, validated */
	size_t as_path_len;
	bool as_path_as4;        /* 4-octet ASNs in AS_PATH (ctx->as4) */
	const uint8_t *as4_path; /* NULL when absent or discarded (RFC 6793 §6) */
	size_t as4_path_len;
	uint8_t next_hop[4];
	uint32_t med, local_pref, originator_id, otc;
	bool atomic_aggregate;
	uint32_t aggregator_as, aggregator_id;
	uint32_t as4_aggregator_as, as4_aggregator_id;
	const uint8_t *communities; /* n_communities x 4 bytes */
	size_t n_communities;
	const uint8_t *ext_communities; /* x 8 */
	size_t n_ext_communities;
	const uint8_t *large_communities; /* x 12 */
	size_t n_large_communities;
	const uint8_t *cluster_list; /* x 4 */
	size_t n_cluster_list;

	bool eor; /* End-of-RIB, RFC 4724 §2 */
	uint8_t eor_fam;
	enum bgp_upd_action action;
};

/* True when the attribute code was present (and not discarded). */
bool bgp_update_has(const struct bgp_update *u, uint8_t code);
/* Number of ASNs in a validated AS_PATH/AS4_PATH value (AS_SET counts each member). */
size_t bgp_as_path_count(const uint8_t *p, size_t len, bool as4);
/* The i-th ASN of a validated path value (in segment order), 0 if out of range. */
uint32_t bgp_as_path_at(const uint8_t *p, size_t len, bool as4, size_t i);

/*
 * Parses and validates an UPDATE body per RFC 7606. Returns BGP_UPD_OK,
 * BGP_UPD_ATTR_DISCARD (the bad attribute is dropped, the rest stands) or
 * BGP_UPD_TREAT_AS_WITHDRAW (every prefix in nlri/mp_reach must be handled as
 * withdrawn), or -EBADMSG for a session reset. err holds the NOTIFICATION for a
 * reset; for the softer outcomes it holds the same detail for logging only
 * (RFC 7606 §3: no NOTIFICATION is sent). u->action mirrors the outcome.
 */
int bgp_update_parse(const uint8_t *body, size_t len, const struct bgp_ctx *ctx,
                     struct bgp_update *u, struct bgp_notify *err);

/* The attribute set of routes we originate (we never forward). */
struct bgp_large_community {
	uint32_t global, local1, local2;
};

struct bgp_route_attrs {
	uint8_t origin;          /* BGP_ORIGIN_IGP */
	const uint32_t *as_path; /* AS_SEQUENCE, leftmost first; n=0 for iBGP */
	size_t as_path_n;
	uint8_t nh4[4];  /* NEXT_HOP for IPv4 NLRI */
	uint8_t nh6[16]; /* MP_REACH next hop for IPv6 NLRI */
	bool has_nh6_ll;
	uint8_t nh6_ll[16]; /* optional link-local (RFC 2545 §3) */
	bool has_med;
	uint32_t med;
	bool has_local_pref; /* iBGP only: the caller decides */
	uint32_t local_pref;
	const uint32_t *communities;
	size_t n_communities;
	const struct bgp_large_community *large;
	size_t n_large;
};

/*
 * Appends UPDATEs announcing prefixes[0..n) (all of one family) with attrs,
 * packed, each <= 4096 bytes: IPv4 in the NLRI field, IPv6 in MP_REACH_NLRI.
 * With !ctx->as4 the AS_PATH is 2-octet with AS_TRANS plus an AS4_PATH when
 * some ASN needs 4 octets (RFC 6793 §4.2.2). Returns the number of messages,
 * -EMSGSIZE (buffer too small, or attributes alone exceed a message), -EINVAL.
 */
int bgp_update_build(struct wbuf *b, const struct bgp_ctx *ctx, const struct bgp_route_attrs *a,
                     const struct bgp_prefix *prefixes, size_t n);
/* Withdrawals: IPv4 Withdrawn Routes field, IPv6 MP_UNREACH_NLRI. Returns messages. */
int bgp_withdraw_build(struct wbuf *b, const struct bgp_prefix *prefixes, size_t n);
/* End-of-RIB (RFC 4724 §2). Returns the message length. */
int bgp_eor_build(struct wbuf *b, uint8_t fam);

/* ---- whole messages ---- */

struct bgp_msg {
	struct bgp_hdr hdr;
	const uint8_t *body;
	size_t bodylen;
	union {
		struct bgp_open open;
		struct bgp_update update;
		struct bgp_notification notification;
		struct bgp_route_refresh rr;
	} u;
};

/*
 * Parses one complete message (len must equal the header length, else 1/2).
 * Returns what the body parser returns (for UPDATE: the RFC 7606 action).
 */
int bgp_msg_parse(const uint8_t *buf, size_t len, const struct bgp_ctx *ctx, struct bgp_msg *m,
                  struct bgp_notify *err);

#endif
