/* tls_glue.c: OpenSSL 3 through memory BIOs (see tls_glue.h). */
#include "core/tls_glue.h"

#include <errno.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tls_ctx {
	SSL_CTX *ctx;
};

struct tls_conn {
	SSL *ssl;
	BIO *rbio, *wbio; /* owned by ssl: ciphertext in, ciphertext out */
	bool established;
};

/* The first queued OpenSSL error as text, and the queue emptied. */
static const char *ssl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();

	if (e)
		ERR_error_string_n(e, buf, len);
	else
		snprintf(buf, len, "unknown error");
	ERR_clear_error();
	return buf;
}

static bool readable(const char *path, char *why, size_t whylen, const char *what)
{
	FILE *f = fopen(path, "r");

	if (!f) {
		snprintf(why, whylen, "%s %s: %s", what, path, strerror(errno));
		return false;
	}
	fclose(f);
	return true;
}

int tls_ctx_new(const char *cert_path, const char *key_path, char *why, size_t whylen,
                struct tls_ctx **out)
{
	static const unsigned char sid_ctx[] = "anycache-dot";
	char err[256];
	struct tls_ctx *c;

	*out = NULL;
	if (!readable(cert_path, why, whylen, "tls-certificate") ||
	    !readable(key_path, why, whylen, "tls-key"))
		return -ENOENT;
	c = calloc(1, sizeof(*c));
	if (!c || !(c->ctx = SSL_CTX_new(TLS_server_method()))) {
		free(c);
		snprintf(why, whylen, "TLS context: %s", ssl_reason(err, sizeof(err)));
		return -ENOMEM;
	}
	/* RFC 7858 §3.1 asks for TLS; RFC 8996 retires everything below 1.2. */
	SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
	/* Memory BIOs take any amount: a write always completes in full. */
	SSL_CTX_set_mode(c->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_RELEASE_BUFFERS);
	/* RFC 7858 §3.4: resumption lets clients come back cheaply. Tickets are
	 * on by default (keys made per context, so shared by every worker);
	 * the server cache serves TLS 1.2 clients without tickets. */
	SSL_CTX_set_session_cache_mode(c->ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_set_session_id_context(c->ctx, sid_ctx, sizeof(sid_ctx) - 1);
	SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(c->ctx, cert_path) != 1) {
		snprintf(why, whylen, "tls-certificate %s: %s", cert_path,
		         ssl_reason(err, sizeof(err)));
		tls_ctx_free(c);
		return -EINVAL;
	}
	if (SSL_CTX_use_PrivateKey_file(c->ctx, key_path, SSL_FILETYPE_PEM) != 1) {
		snprintf(why, whylen, "tls-key %s: %s", key_path, ssl_reason(err, sizeof(err)));
		tls_ctx_free(c);
		return -EINVAL;
	}
	if (SSL_CTX_check_private_key(c->ctx) != 1) {
		snprintf(why, whylen, "tls-key %s does not match tls-certificate %s: %s", key_path,
		         cert_path, ssl_reason(err, sizeof(err)));
		tls_ctx_free(c);
		return -EINVAL;
	}
	*out = c;
	return 0;
}

void tls_ctx_free(struct tls_ctx *c)
{
	if (!c)
		return;
	SSL_CTX_free(c->ctx);
	free(c);
}

int tls_conn_new(struct tls_ctx *c, struct tls_conn **out)
{
	struct tls_conn *t = calloc(1, sizeof(*t));

	*out = NULL;
	if (!t)
		return -ENOMEM;
	t->ssl = SSL_new(c->ctx);
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	if (!t->ssl || !t->rbio || !t->wbio) {
		BIO_free(t->rbio);
		BIO_free(t->wbio);
		SSL_free(t->ssl);
		free(t);
		ERR_clear_error();
		return -ENOMEM;
	}
	/* An empty memory BIO reads as "retry", not EOF. */
	BIO_set_mem_eof_return(t->rbio, -1);
	SSL_set_bio(t->ssl, t->rbio, t->wbio);
	SSL_set_accept_state(t->ssl);
	*out = t;
	return 0;
}

void tls_conn_free(struct tls_conn *t)
{
	if (!t)
		return;
	SSL_free(t->ssl); /* frees both BIOs */
	free(t);
}

int tls_conn_feed(struct tls_conn *t, const uint8_t *in, size_t len)
{
	while (len) {
		int n = BIO_write(t->rbio, in, len > INT_MAX ? INT_MAX : (int)len);
		if (n <= 0) {
			ERR_clear_error();
			return -ENOMEM;
		}
		in += n;
		len -= (size_t)n;
	}
	return 0;
}

int tls_conn_read(struct tls_conn *t, uint8_t *buf, size_t cap)
{
	size_t got = 0;
	int r;

	if (!t->established) {
		r = SSL_do_handshake(t->ssl);
		if (r != 1) {
			int e = SSL_get_error(t->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				return 0;
			ERR_clear_error();
			return -EPROTO;
		}
		t->established = true;
	}
	if (cap == 0)
		return 0;
	r = SSL_read_ex(t->ssl, buf, cap > INT_MAX ? INT_MAX : cap, &got);
	if (r == 1)
		return (int)got;
	switch (SSL_get_error(t->ssl, r)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		return -EPIPE;
	default:
		ERR_clear_error();
		return -EPROTO;
	}
}

int tls_conn_write(struct tls_conn *t, const uint8_t *buf, size_t len)
{
	while (len) {
		size_t n = 0;
		if (SSL_write_ex(t->ssl, buf, len, &n) != 1 || n == 0) {
			int e = SSL_get_error(t->ssl, 0);
			ERR_clear_error();
			return e == SSL_ERROR_SSL || e == SSL_ERROR_SYSCALL ? -EPROTO : -ENOMEM;
		}
		buf += n;
		len -= n;
	}
	return 0;
}

int tls_conn_shutdown(struct tls_conn *t)
{
	if (!t->established)
		return -ENOTCONN;
	/* 0: our close_notify is queued, the peer's not yet seen; 1: both. */
	int r = SSL_shutdown(t->ssl);
	if (r < 0) {
		ERR_clear_error();
		return -EPROTO;
	}
	return 0;
}

size_t tls_conn_out_pending(const struct tls_conn *t)
{
	return BIO_ctrl_pending(t->wbio);
}

size_t tls_conn_take_out(struct tls_conn *t, uint8_t *buf, size_t cap)
{
	int n = BIO_read(t->wbio, buf, cap > INT_MAX ? INT_MAX : (int)cap);

	return n > 0 ? (size_t)n : 0;
}

bool tls_conn_established(const struct tls_conn *t)
{
	return t->established;
}

bool tls_conn_resumed(const struct tls_conn *t)
{
	return t->established && SSL_session_reused(t->ssl);
}
