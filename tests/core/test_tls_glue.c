/*
 * Unit tests for core/tls_glue.c: a server session driven only through
 * memory (feed / read / write / take_out) against an OpenSSL client on
 * memory BIOs, no sockets: handshake for TLS 1.2 and 1.3, data both ways,
 * resumption with the ticket, garbage and bad files.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/tls_glue.h"

static char dir[64], cert[128], key[128];

/* A self-signed P-256 certificate and its key as PEM files. */
static void make_files(void)
{
	snprintf(dir, sizeof(dir), "/tmp/tls-glue.XXXXXX");
	cr_assert(mkdtemp(dir));
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	cr_assert(pk && x);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, pk);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	                           (const unsigned char *)"glue.test", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	cr_assert(X509_sign(x, pk, EVP_sha256()));
	FILE *f = fopen(cert, "w");
	PEM_write_X509(f, x);
	fclose(f);
	f = fopen(key, "w");
	PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(pk);
}

static void rm_files(void)
{
	unlink(cert);
	unlink(key);
	rmdir(dir);
}

TestSuite(tls_glue, .init = make_files, .fini = rm_files);

struct client {
	SSL *ssl;
	BIO *in, *out; /* in: what the server sent; out: what the client sends */
};

static void client_new(struct client *c, SSL_CTX *ctx, SSL_SESSION *sess)
{
	c->ssl = SSL_new(ctx);
	c->in = BIO_new(BIO_s_mem());
	c->out = BIO_new(BIO_s_mem());
	BIO_set_mem_eof_return(c->in, -1);
	SSL_set_bio(c->ssl, c->in, c->out);
	SSL_set_connect_state(c->ssl);
	if (sess)
		SSL_set_session(c->ssl, sess);
}

/* Moves bytes both ways until neither side has anything to say (bounded). */
static void pump(struct client *c, struct tls_conn *s, uint8_t *plain, size_t cap, int *got)
{
	uint8_t buf[32768];

	for (int round = 0; round < 20; round++) {
		bool moved = false;
		SSL_do_handshake(c->ssl);
		int n;
		while ((n = BIO_read(c->out, buf, sizeof(buf))) > 0) {
			cr_assert_eq(tls_conn_feed(s, buf, (size_t)n), 0);
			moved = true;
		}
		int r = tls_conn_read(s, plain + *got, cap - (size_t)*got);
		cr_assert_geq(r, 0, "server read: %d", r);
		*got += r;
		size_t k;
		while ((k = tls_conn_take_out(s, buf, sizeof(buf))) > 0) {
			BIO_write(c->in, buf, (int)k);
			moved = true;
		}
		if (!moved && r == 0)
			return;
	}
}

static void round_trip(int version, bool resume_expected, SSL_SESSION **sess, SSL_CTX *cctx,
                       struct tls_ctx *sctx)
{
	struct client c;
	struct tls_conn *s;
	uint8_t plain[256], back[256];
	int got = 0;

	cr_assert_eq(tls_conn_new(sctx, &s), 0);
	client_new(&c, cctx, *sess);
	pump(&c, s, plain, sizeof(plain), &got);
	cr_assert(tls_conn_established(s), "no handshake");
	cr_assert_eq(SSL_version(c.ssl), version);
	cr_assert_eq(tls_conn_resumed(s), resume_expected);
	/* Client to server. */
	cr_assert_eq(SSL_write(c.ssl, "query-bytes", 11), 11);
	pump(&c, s, plain, sizeof(plain), &got);
	cr_assert_eq(got, 11);
	cr_assert_eq(memcmp(plain, "query-bytes", 11), 0);
	/* Server to client. */
	cr_assert_eq(tls_conn_write(s, (const uint8_t *)"answer", 6), 0);
	cr_assert_gt(tls_conn_out_pending(s), 0);
	pump(&c, s, plain, sizeof(plain), &got);
	cr_assert_eq(SSL_read(c.ssl, back, sizeof(back)), 6);
	cr_assert_eq(memcmp(back, "answer", 6), 0);
	if (!*sess)
		*sess = SSL_get1_session(c.ssl);
	/* Our close_notify (RFC 8446 §6.1): the client reads an orderly end. */
	cr_assert_eq(tls_conn_shutdown(s), 0);
	size_t k = tls_conn_take_out(s, back, sizeof(back));
	cr_assert_gt(k, 0, "no close_notify record");
	BIO_write(c.in, back, (int)k);
	int r = SSL_read(c.ssl, back, sizeof(back));
	cr_assert_eq(SSL_get_error(c.ssl, r), SSL_ERROR_ZERO_RETURN);
	/* Without a close_notify OpenSSL marks the session not resumable. */
	SSL_shutdown(c.ssl);
	SSL_free(c.ssl);
	tls_conn_free(s);
}

static void versions(int version)
{
	char why[256];
	struct tls_ctx *sctx;
	SSL_SESSION *sess = NULL;

	cr_assert_eq(tls_ctx_new(cert, key, why, sizeof(why), &sctx), 0, "%s", why);
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(cctx, version);
	SSL_CTX_set_max_proto_version(cctx, version);
	round_trip(version, false, &sess, cctx, sctx);
	cr_assert(sess && SSL_SESSION_is_resumable(sess));
	round_trip(version, true, &sess, cctx, sctx);
	SSL_SESSION_free(sess);
	SSL_CTX_free(cctx);
	tls_ctx_free(sctx);
}

Test(tls_glue, tls13_handshake_data_and_resumption)
{
	versions(TLS1_3_VERSION);
}

Test(tls_glue, tls12_handshake_data_and_resumption)
{
	versions(TLS1_2_VERSION);
}

Test(tls_glue, tls11_is_refused)
{
	char why[256];
	struct tls_ctx *sctx;
	struct tls_conn *s;
	struct client c;
	uint8_t buf[16384];
	int r = 0, n;

	cr_assert_eq(tls_ctx_new(cert, key, why, sizeof(why), &sctx), 0, "%s", why);
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_security_level(cctx, 0);
	SSL_CTX_set_min_proto_version(cctx, TLS1_1_VERSION);
	SSL_CTX_set_max_proto_version(cctx, TLS1_1_VERSION);
	cr_assert_eq(tls_conn_new(sctx, &s), 0);
	client_new(&c, cctx, NULL);
	SSL_do_handshake(c.ssl);
	n = BIO_read(c.out, buf, sizeof(buf));
	if (n > 0) {
		tls_conn_feed(s, buf, (size_t)n);
		r = tls_conn_read(s, buf, sizeof(buf));
	}
	cr_assert(n <= 0 || r == -EPROTO, "TLS 1.1 ClientHello: %d", r);
	cr_assert_not(tls_conn_established(s));
	SSL_free(c.ssl);
	SSL_CTX_free(cctx);
	tls_conn_free(s);
	tls_ctx_free(sctx);
}

Test(tls_glue, no_close_notify_before_the_handshake)
{
	struct tls_ctx *ctx;
	struct tls_conn *s;
	char why[256];

	cr_assert_eq(tls_ctx_new(cert, key, why, sizeof(why), &ctx), 0, "%s", why);
	cr_assert_eq(tls_conn_new(ctx, &s), 0);
	cr_assert_eq(tls_conn_shutdown(s), -ENOTCONN);
	cr_assert_eq(tls_conn_out_pending(s), 0);
	tls_conn_free(s);
	tls_ctx_free(ctx);
}

Test(tls_glue, garbage_is_a_protocol_error)
{
	char why[256];
	struct tls_ctx *sctx;
	struct tls_conn *s;
	uint8_t junk[600], out[64];

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 37 + 11);
	cr_assert_eq(tls_ctx_new(cert, key, why, sizeof(why), &sctx), 0, "%s", why);
	cr_assert_eq(tls_conn_new(sctx, &s), 0);
	cr_assert_eq(tls_conn_feed(s, junk, sizeof(junk)), 0);
	cr_assert_eq(tls_conn_read(s, out, sizeof(out)), -EPROTO);
	tls_conn_free(s);
	/* Nothing yet: asks for more, not an error. */
	cr_assert_eq(tls_conn_new(sctx, &s), 0);
	cr_assert_eq(tls_conn_read(s, out, sizeof(out)), 0);
	tls_conn_free(s);
	tls_ctx_free(sctx);
}

Test(tls_glue, bad_files_say_which)
{
	char why[256];
	struct tls_ctx *c;

	cr_assert_eq(tls_ctx_new("/nonexistent/c.pem", key, why, sizeof(why), &c), -ENOENT);
	cr_assert(strstr(why, "tls-certificate /nonexistent/c.pem"), "%s", why);
	cr_assert_eq(tls_ctx_new(cert, "/nonexistent/k.pem", why, sizeof(why), &c), -ENOENT);
	cr_assert(strstr(why, "tls-key /nonexistent/k.pem"), "%s", why);
	/* A key file given as the certificate and the other way round. */
	cr_assert_eq(tls_ctx_new(key, cert, why, sizeof(why), &c), -EINVAL);
	cr_assert(strstr(why, "tls-certificate"), "%s", why);
}
