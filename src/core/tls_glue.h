/*
 * tls_glue.h: a TLS server session over memory buffers (OpenSSL 3, glue).
 *
 * No sockets here: the caller receives ciphertext however it likes (the
 * io_uring loop), feeds it in, reads plaintext out, writes plaintext in and
 * takes ciphertext out to send (PLATFORM.md: memory BIOs keep all I/O in the
 * loop; nothing here ever blocks or touches a descriptor). Knows no DNS.
 *
 * One struct tls_ctx per process (certificate, key, protocol versions,
 * session tickets): OpenSSL's SSL_CTX may be shared by threads, so every
 * worker uses the same one and a ticket issued by one worker resumes on any
 * other (the ticket keys live in the context). TLS 1.2 and 1.3 only.
 * Resumption: TLS 1.3 tickets (RFC 8446 §4.6.1) and TLS 1.2 tickets
 * (RFC 5077) and the server-side session cache.
 *
 * Ownership: tls_conn_* copy what they are given; a tls_conn belongs to one
 * thread at a time. Errors are 0/-errno: -EPROTO for a TLS failure (the
 * peer's alert or a bad record; the connection cannot go on), -ENOMEM.
 */
#ifndef ANYCACHE_CORE_TLS_GLUE_H
#define ANYCACHE_CORE_TLS_GLUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tls_ctx;
struct tls_conn;

/*
 * A server context from PEM files. 0, or -errno with an operator sentence in
 * why ("tls-certificate /x.pem: No such file or directory", "... does not
 * match the key").
 */
int tls_ctx_new(const char *cert_path, const char *key_path, char *why, size_t whylen,
                struct tls_ctx **out);
void tls_ctx_free(struct tls_ctx *c);

int tls_conn_new(struct tls_ctx *c, struct tls_conn **out);
void tls_conn_free(struct tls_conn *t);

/* Ciphertext from the peer. 0 or -ENOMEM. */
int tls_conn_feed(struct tls_conn *t, const uint8_t *in, size_t len);
/*
 * Runs the handshake and decrypts: n > 0 plaintext bytes in buf, 0 when more
 * ciphertext is needed (or cap is 0), -EPIPE when the peer sent close_notify,
 * -EPROTO on failure. Handshake replies and tickets appear as output
 * (tls_conn_out_pending) after any call here.
 */
int tls_conn_read(struct tls_conn *t, uint8_t *buf, size_t cap);
/* Encrypts all of buf (after the handshake). 0, -EPROTO, -ENOMEM. */
int tls_conn_write(struct tls_conn *t, const uint8_t *buf, size_t len);
/*
 * Our close_notify alert (RFC 8446 §6.1: each side MUST send one before
 * closing its write side), queued as output like any record: send it, then
 * close. 0, -ENOTCONN before the handshake finished, -EPROTO.
 */
int tls_conn_shutdown(struct tls_conn *t);
/* Ciphertext waiting to be sent, and taking it out (returns bytes copied). */
size_t tls_conn_out_pending(const struct tls_conn *t);
size_t tls_conn_take_out(struct tls_conn *t, uint8_t *buf, size_t cap);

bool tls_conn_established(const struct tls_conn *t);
/* After the handshake: whether the session was resumed (abbreviated handshake). */
bool tls_conn_resumed(const struct tls_conn *t);

#endif
