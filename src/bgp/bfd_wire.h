/*
 * bfd_wire.h: the BFD Control packet (RFC 5880 §4.1), pure codec.
 *
 *    0                   1                   2                   3
 *   |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
 *   |                       My Discriminator                        |
 *   |                      Your Discriminator                       |
 *   |                    Desired Min TX Interval                    |
 *   |                   Required Min RX Interval                    |
 *   |                 Required Min Echo RX Interval                 |
 *   [ Auth Type | Auth Len | Authentication Data...                 ] (A set)
 *
 * bfd_parse() reads through the cursor of core/wire.h and applies every
 * check of RFC 5880 §6.8.6 that needs nothing but the packet (version,
 * lengths, Detect Mult, M bit, discriminators, the A bit). The checks that
 * need a session (which session, whether it is Up) are bfd_fsm's. We do not
 * implement authentication: a packet with A set has its section
 * length-checked (§4.2-§4.4) and is then refused, as §6.8.6 requires when no
 * authentication is in use. bfd_build() writes only packets that pass the
 * same checks, without authentication (A clear, Length 24).
 *
 * Ownership: struct bfd_pkt is a value; nothing points into the buffer.
 */
#ifndef ANYCACHE_BGP_BFD_WIRE_H
#define ANYCACHE_BGP_BFD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BFD_VERSION     1
#define BFD_PKT_LEN     24    /* the mandatory section (§4.1) */
#define BFD_AUTH_MIN    2     /* Auth Type + Auth Len */
#define BFD_PORT        3784  /* RFC 5881 §4: single-hop control packets */
#define BFD_SRC_PORT_LO 49152 /* RFC 5881 §4: the source port range */
#define BFD_SRC_PORT_HI 65535
#define BFD_TTL         255 /* RFC 5881 §5: sent with, and received only with, TTL 255 */

/* bfd.SessionState values as on the wire (§4.1 "Sta"). */
enum bfd_state {
	BFD_STATE_ADMIN_DOWN = 0,
	BFD_STATE_DOWN = 1,
	BFD_STATE_INIT = 2,
	BFD_STATE_UP = 3,
};

/* Diagnostic codes (§4.1 "Diag"). */
enum bfd_diag {
	BFD_DIAG_NONE = 0,
	BFD_DIAG_TIME_EXPIRED = 1, /* Control Detection Time Expired */
	BFD_DIAG_ECHO_FAILED = 2,
	BFD_DIAG_NEIGHBOR_DOWN = 3, /* Neighbor Signaled Session Down */
	BFD_DIAG_FWD_RESET = 4,
	BFD_DIAG_PATH_DOWN = 5,
	BFD_DIAG_CONCAT_PATH_DOWN = 6,
	BFD_DIAG_ADMIN_DOWN = 7,
	BFD_DIAG_REV_CONCAT_PATH_DOWN = 8,
};

/* Authentication types (§4.1 "Auth Type"). */
enum bfd_auth_type {
	BFD_AUTH_SIMPLE = 1,
	BFD_AUTH_KEYED_MD5 = 2,
	BFD_AUTH_METICULOUS_MD5 = 3,
	BFD_AUTH_KEYED_SHA1 = 4,
	BFD_AUTH_METICULOUS_SHA1 = 5,
};

/* Why a packet is discarded: the §6.8.6 checks, in the order the section lists them. */
enum bfd_discard {
	BFD_OK = 0,
	BFD_DISCARD_SHORT,       /* fewer bytes than the mandatory section */
	BFD_DISCARD_VERSION,     /* version is not 1 */
	BFD_DISCARD_LENGTH,      /* Length < 24 (A clear) or < 26 (A set) */
	BFD_DISCARD_TRUNCATED,   /* Length > the bytes the UDP payload holds */
	BFD_DISCARD_AUTH_LEN,    /* A set: Auth Len inconsistent with Length or Auth Type */
	BFD_DISCARD_DETECT_MULT, /* Detect Mult is zero */
	BFD_DISCARD_MULTIPOINT,  /* M bit set */
	BFD_DISCARD_MY_DISC,     /* My Discriminator is zero */
	BFD_DISCARD_YOUR_DISC,   /* Your Discriminator zero while State is Init or Up */
	BFD_DISCARD_AUTH,        /* A set: we use no authentication */
	BFD_DISCARD_NO_SESSION,  /* (fsm/glue) no session has this Your Discriminator/source */
	BFD_DISCARD_ADMIN_DOWN, /* (fsm) our session is AdminDown: §6.8.6 discards after updating */
	BFD_DISCARD_TTL,        /* (glue) TTL/hop limit is not 255, RFC 5881 §5 */
};

struct bfd_pkt {
	uint8_t version;
	uint8_t diag;  /* enum bfd_diag (5 bits: values above 8 are kept as received) */
	uint8_t state; /* enum bfd_state */
	bool poll, final, cpi, auth, demand, multipoint;
	uint8_t detect_mult;
	uint8_t length; /* the Length field */
	uint32_t my_disc, your_disc;
	uint32_t desired_min_tx_us, required_min_rx_us, required_min_echo_rx_us;
	uint8_t auth_type, auth_len; /* when auth: the section's header */
};

/*
 * Parses one Control packet from a UDP payload of len bytes. Returns 0;
 * -EBADMSG for a packet §6.8.6 discards; -ENOTSUP when A is set (a well-formed
 * authentication section we do not verify). *why (may be NULL) says which
 * check failed. Octets after Length, and octets within Length after the
 * mandatory part when A is clear, carry nothing and are ignored (§6.8.6
 * discards only when Length is too small or exceeds the payload).
 * *out is filled as far as it was read, also on failure (for logs).
 */
int bfd_parse(const uint8_t *buf, size_t len, struct bfd_pkt *out, enum bfd_discard *why);

/* The §6.8.6 checks that need only the parsed fields; BFD_OK when none fails. */
enum bfd_discard bfd_check(const struct bfd_pkt *p);

/*
 * Writes p (version 1, Length 24, no authentication) into buf. Returns the
 * length (24), -EMSGSIZE when cap is too small, -EINVAL for a packet a peer
 * would have to discard (it fails bfd_check, has A set, or both P and F,
 * which §6.8.7 forbids) or a field out of range.
 */
int bfd_build(const struct bfd_pkt *p, uint8_t *buf, size_t cap);

const char *bfd_state_name(unsigned s);
const char *bfd_diag_name(unsigned d);
const char *bfd_discard_name(enum bfd_discard d);

#endif
