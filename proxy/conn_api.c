/*
 * conn_api.c - the ABI's connections, forwarded to the helper: creating one
 * (and recreating it, same handle, URL and options, in a new helper after the
 * old one died), calls on it (send, ping and close: conn_async.c), freeing
 * it; and the answer to an HTTP request (vws_http_respond), whose handle is a
 * connection's.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

/* Creates connection cn in helper h (px.mu not held): conn_new + options.
 * On failure the helper keeps nothing of it. */
static int conn_create(struct px_helper *h, struct px_conn *cn, uint64_t ctx, char *err, size_t errlen)
{
	struct px_opt *o;
	int rc = px_call_msg(h, err, errlen, WIRE_OP_CONN_NEW, ctx, "us", cn->id, cn->url);
	/* cn's options are only appended by the thread holding revive_mu, or
	 * before cn is visible: reading the list here is safe. */
	for (o = cn->opts; rc == VWS_OK && o; o = o->next) {
		rc = px_call_msg(h, err, errlen, WIRE_OP_SET_OPTION, cn->id, "ss", o->name, o->value);
		if (rc != VWS_OK)
			px_notify(h, WIRE_OP_CONN_FREE, cn->id); /* forget it */
	}
	return rc;
}

int vws_conn_new(vws_ctx ctx, const char *url, vws_conn *out, char *err, size_t errlen)
{
	struct px_conn *cn;
	struct px_ctx *c;
	struct px_helper *h;
	int rc;
	if (!url || !out) {
		px_seterr(err, errlen, "url and out must not be NULL");
		return VWS_EARG;
	}
	cn = calloc(1, sizeof *cn);
	if (!cn || !(cn->url = strdup(url))) {
		free(cn);
		px_seterr(err, errlen, "out of memory");
		return VWS_EINTERNAL;
	}
	cn->opts_tail = &cn->opts;
	cn->state = VWS_STATE_CREATED;
	cn->max_msg = PX_DEFAULT_MAX_MSG;
	pthread_mutex_lock(&px.mu);
	c = px_ctx_find(ctx);
	if (!c) {
		pthread_mutex_unlock(&px.mu);
		px_conn_destroy(cn);
		px_seterr(err, errlen, "unknown context handle %llu", (unsigned long long)ctx);
		return VWS_EARG;
	}
	h = px_helper_get(1, err, errlen);
	if (!h) {
		pthread_mutex_unlock(&px.mu);
		px_conn_destroy(cn);
		return VWS_EENGINE;
	}
	cn->id = ++px.last_conn;
	pthread_mutex_unlock(&px.mu);

	rc = conn_create(h, cn, ctx, err, errlen);

	pthread_mutex_lock(&px.mu);
	c = px_ctx_find(ctx);
	if (rc == VWS_OK && c) {
		cn->ctx = c;
		cn->gen = h->gen;
		cn->sent = 0; /* the new helper counts from 0 (share.c) */
		c->gen = h->gen;
		cn->hnext = px.tab[cn->id % PX_BUCKETS];
		px.tab[cn->id % PX_BUCKETS] = cn;
		cn->cnext = c->conns;
		c->conns = cn;
		*out = cn->id;
	} else if (rc == VWS_OK) { /* the context was freed meanwhile */
		rc = VWS_EARG;
		px_seterr(err, errlen, "unknown context handle %llu", (unsigned long long)ctx);
		pthread_mutex_unlock(&px.mu);
		px_notify(h, WIRE_OP_CONN_FREE, cn->id); /* forget it */
		pthread_mutex_lock(&px.mu);
	}
	px_helper_put(h);
	pthread_mutex_unlock(&px.mu);
	if (rc != VWS_OK)
		px_conn_destroy(cn);
	return rc;
}

/* What a call does on a connection whose helper died. */
enum dead_mode {
	DEAD_REVIVE,  /* recreate it in a (new) helper, then call */
	DEAD_NOTOPEN, /* VWS_ESTATE */
	DEAD_OK,      /* VWS_OK with a zero result */
};

/*
 * Runs call b (its first value is the connection) on connection id, in the
 * live helper; a connection whose helper died is handled as mode says. The
 * reply is in *r (r->n == 0 when none came). Returns the status.
 */
static int conn_call(vws_conn id, struct px_buf *b, enum dead_mode mode, struct px_reply *r,
	char *err, size_t errlen)
{
	struct px_conn *cn;
	struct px_helper *h;
	uint64_t ctx;
	int rc, alive;
	r->n = 0;
	if (b->oom) {
		px_seterr(err, errlen, "out of memory");
		return VWS_EINTERNAL;
	}
	pthread_mutex_lock(&px.mu);
	cn = px_conn_find(id);
	if (!cn) {
		pthread_mutex_unlock(&px.mu);
		px_seterr(err, errlen, "unknown connection handle %llu", (unsigned long long)id);
		return VWS_EARG;
	}
	alive = px.h && cn->gen == px.h->gen;
	/* An accepted connection (no URL) cannot be recreated: it died with its helper. */
	if (!alive && (mode != DEAD_REVIVE || !cn->url)) {
		pthread_mutex_unlock(&px.mu);
		if (mode == DEAD_OK)
			return VWS_OK;
		px_seterr(err, errlen, "connection is not open (engine helper died)");
		return VWS_ESTATE;
	}
	if (alive) {
		h = px_helper_get(0, err, errlen);
		pthread_mutex_unlock(&px.mu);
	} else {
		/* Recreate it in a new helper: same handle, same URL and options. */
		pthread_mutex_unlock(&px.mu);
		pthread_mutex_lock(&px.revive_mu);
		pthread_mutex_lock(&px.mu);
		cn = px_conn_find(id);
		h = cn ? px_helper_get(1, err, errlen) : NULL;
		if (!cn || !h) {
			pthread_mutex_unlock(&px.mu);
			pthread_mutex_unlock(&px.revive_mu);
			if (!cn) {
				px_seterr(err, errlen, "unknown connection handle %llu", (unsigned long long)id);
				return VWS_EARG;
			}
			return VWS_EENGINE;
		}
		if (cn->gen != h->gen) {
			ctx = cn->ctx->id;
			pthread_mutex_unlock(&px.mu);
			rc = conn_create(h, cn, ctx, err, errlen);
			pthread_mutex_lock(&px.mu);
			if (rc == VWS_OK && (cn = px_conn_find(id))) {
				cn->gen = h->gen;
				cn->sent = 0; /* the new helper counts from 0 (share.c) */
				cn->ctx->gen = h->gen;
				cn->state = VWS_STATE_CREATED;
				cn->attempt = 0;
			}
			if (rc != VWS_OK) {
				px_helper_put(h);
				pthread_mutex_unlock(&px.mu);
				pthread_mutex_unlock(&px.revive_mu);
				return rc;
			}
		}
		pthread_mutex_unlock(&px.mu);
		pthread_mutex_unlock(&px.revive_mu);
	}
	rc = px_call(h, b, 1, r, err, errlen);
	pthread_mutex_lock(&px.mu);
	px_helper_put(h);
	pthread_mutex_unlock(&px.mu);
	return rc;
}

/* conn_call for a request whose reply carries no results: releases the
 * request and the reply, returns the status. */
static int conn_call_status(vws_conn c, struct px_buf *b, enum dead_mode mode, char *err, size_t errlen)
{
	struct px_reply r;
	int rc = conn_call(c, b, mode, &r, err, errlen);
	px_buf_free(b);
	px_reply_free(&r);
	return rc;
}

/* conn_call_status of px_buf_msg(op, c, fmt, ...). */
static int conn_op(vws_conn c, enum dead_mode mode, char *err, size_t errlen, int op, const char *fmt, ...)
{
	struct px_buf b;
	va_list ap;
	va_start(ap, fmt);
	px_buf_vmsg(&b, op, c, fmt, ap);
	va_end(ap);
	return conn_call_status(c, &b, mode, err, errlen);
}

/* conn_call of op on c alone, without an error text: the status, the reply in *r. */
static int conn_query(vws_conn c, int op, enum dead_mode mode, struct px_reply *r)
{
	struct px_buf b;
	int rc;
	px_buf_msg(&b, op, c, "");
	rc = conn_call(c, &b, mode, r, NULL, 0);
	px_buf_free(&b);
	return rc;
}

int vws_conn_set_option(vws_conn c, const char *name, const char *value, char *err, size_t errlen)
{
	struct px_reply r;
	struct px_buf b;
	struct px_opt *o;
	struct px_conn *cn;
	int rc;
	if (!name || !value)
		return px_errf(VWS_EARG, err, errlen, "option name and value must not be NULL");
	o = calloc(1, sizeof *o);
	if (!o || !(o->name = strdup(name)) || !(o->value = strdup(value))) {
		if (o)
			free(o->name);
		free(o);
		px_seterr(err, errlen, "out of memory");
		return VWS_EINTERNAL;
	}
	px_buf_msg(&b, WIRE_OP_SET_OPTION, c, "ss", name, value);
	pthread_mutex_lock(&px.revive_mu); /* orders the option list against a revival */
	rc = conn_call(c, &b, DEAD_REVIVE, &r, err, errlen);
	pthread_mutex_lock(&px.mu);
	if (rc == VWS_OK && (cn = px_conn_find(c))) {
		if (strcmp(name, "max_message_size") == 0) /* the engine took it: a decimal number */
			cn->max_msg = strtoll(value, NULL, 10);
		*cn->opts_tail = o;
		cn->opts_tail = &o->next;
		o = NULL;
	}
	pthread_mutex_unlock(&px.mu);
	pthread_mutex_unlock(&px.revive_mu);
	px_buf_free(&b);
	px_reply_free(&r);
	if (o) {
		free(o->name);
		free(o->value);
		free(o);
	}
	return rc;
}

int vws_conn_check(vws_conn c, char *err, size_t errlen)
{
	return conn_op(c, DEAD_REVIVE, err, errlen, WIRE_OP_CHECK, "");
}

int vws_conn_connect(vws_conn c, char *err, size_t errlen)
{
	struct px_conn *cn;
	struct px_reply r;
	struct px_buf b;
	unsigned events = 0;
	int rc, old = -1;
	px_buf_msg(&b, WIRE_OP_CONNECT, c, "");
	/* Marked connecting before the call: its first event may overtake the reply.
	 * Not an accepted connection: the engine refuses to connect it. */
	pthread_mutex_lock(&px.mu);
	if ((cn = px_conn_find(c)) && cn->url && px.h && cn->gen == px.h->gen) {
		old = cn->state;
		events = cn->events;
		if (old != VWS_STATE_CONNECTING && old != VWS_STATE_OPEN) {
			cn->state = VWS_STATE_CONNECTING;
			cn->attempt = 0;
			cn->user_close = 0;
			free(cn->proto); /* as the engine's: "" until established */
			cn->proto = NULL;
		}
	}
	pthread_mutex_unlock(&px.mu);
	rc = conn_call(c, &b, DEAD_REVIVE, &r, err, errlen);
	pthread_mutex_lock(&px.mu);
	if ((cn = px_conn_find(c)) && px.h && cn->gen == px.h->gen) {
		if (old < 0 && rc == VWS_OK && cn->events == 0) { /* revived by this call */
			cn->state = VWS_STATE_CONNECTING;
			cn->attempt = 0;
			cn->user_close = 0;
		} else if (old >= 0 && rc != VWS_OK && cn->events == events) {
			cn->state = old;
		}
	}
	pthread_mutex_unlock(&px.mu);
	px_buf_free(&b);
	px_reply_free(&r);
	return rc;
}

/* From the proxy's table (kept from events; see the reader): no call to the
 * helper. A connection whose helper died: as last seen (created or closed). */
int vws_conn_state(vws_conn c)
{
	struct px_conn *cn;
	int rc;
	pthread_mutex_lock(&px.mu);
	cn = px_conn_find(c);
	if (!cn || cn->request)
		rc = VWS_EARG;
	else if (px.h && cn->gen == px.h->gen)
		rc = cn->state;
	else
		rc = cn->state == VWS_STATE_CREATED ? VWS_STATE_CREATED : VWS_STATE_CLOSED;
	pthread_mutex_unlock(&px.mu);
	return rc;
}

int vws_conn_buffered(vws_conn c, size_t *out)
{
	struct px_reply r;
	int rc;
	if (!out)
		return VWS_EARG;
	rc = conn_query(c, WIRE_OP_BUFFERED, DEAD_OK, &r);
	if (rc == VWS_OK)
		*out = (size_t)px_reply_int(&r, 0);
	px_reply_free(&r);
	return rc;
}

/* Copies len bytes of src into buf (buflen > 0), truncated, NUL-terminated. */
static void copy_text(char *buf, size_t buflen, const char *src, size_t len)
{
	size_t n = len < buflen - 1 ? len : buflen - 1;
	memcpy(buf, src, n);
	buf[n] = 0;
}

/* Runs a call on c whose reply carries one bytes result and copies it into buf
 * (truncated, NUL-terminated). Returns the status or, with want_len, on
 * success its whole length. */
static int conn_text(vws_conn c, int op, enum dead_mode mode, char *buf, size_t buflen, int want_len)
{
	size_t full = 0;
	struct px_reply r;
	int rc;
	if (!buf || buflen == 0)
		return VWS_EARG;
	rc = conn_query(c, op, mode, &r);
	buf[0] = 0;
	if (rc == VWS_OK && r.n >= 3 && r.v[2].is_bytes) {
		copy_text(buf, buflen, (const char *)r.v[2].b, r.v[2].len);
		full = r.v[2].len;
	}
	px_reply_free(&r);
	return rc == VWS_OK && want_len ? (int)full : rc;
}

int vws_conn_protocol(vws_conn c, char *buf, size_t buflen)
{
	struct px_conn *cn;
	if (!buf || buflen == 0)
		return VWS_EARG;
	pthread_mutex_lock(&px.mu);
	cn = px_conn_find(c);
	if (cn && cn->proto) { /* from its ESTABLISHED event: no call to the helper */
		copy_text(buf, buflen, cn->proto, strlen(cn->proto));
		pthread_mutex_unlock(&px.mu);
		return VWS_OK;
	}
	pthread_mutex_unlock(&px.mu);
	return conn_text(c, WIRE_OP_PROTOCOL, DEAD_OK, buf, buflen, 0);
}

int vws_conn_request_headers(vws_conn c, char *buf, size_t buflen)
{
	return conn_text(c, WIRE_OP_REQUEST_HEADERS, DEAD_NOTOPEN, buf, buflen, 1);
}

int vws_conn_peer(vws_conn c, char *buf, size_t buflen)
{
	return conn_text(c, WIRE_OP_PEER, DEAD_NOTOPEN, buf, buflen, 0);
}

int vws_conn_peer_cert(vws_conn c, char *buf, size_t buflen)
{
	return conn_text(c, WIRE_OP_PEER_CERT, DEAD_NOTOPEN, buf, buflen, 1);
}

int vws_conn_free(vws_conn c)
{
	struct px_conn *cn;
	unsigned gen;
	pthread_mutex_lock(&px.mu);
	cn = px_conn_find(c);
	if (!cn) {
		pthread_mutex_unlock(&px.mu);
		return VWS_EARG;
	}
	gen = cn->gen;
	px_conn_unlink(cn);
	pthread_mutex_unlock(&px.mu);
	pthread_mutex_lock(&px.revive_mu); /* no revival is reading its options */
	pthread_mutex_unlock(&px.revive_mu);
	px_conn_destroy(cn);
	px_fire(WIRE_OP_CONN_FREE, c, gen);
	return VWS_OK;
}

int vws_conn_server(vws_conn c, vws_server *out)
{
	struct px_conn *cn;
	if (!out)
		return VWS_EARG;
	pthread_mutex_lock(&px.mu);
	cn = px_conn_find(c);
	if (cn)
		*out = cn->server;
	pthread_mutex_unlock(&px.mu);
	return cn ? VWS_OK : VWS_EARG;
}

int vws_http_respond(vws_conn req, int status, const char *headers, const char *body, size_t len,
                     char *err, size_t errlen)
{
	struct px_conn *cn;
	int rc;
	if (!body && len)
		return px_errf(VWS_EARG, err, errlen, "body is NULL with a non-zero length");
	rc = conn_op(req, DEAD_NOTOPEN, err, errlen, WIRE_OP_HTTP_RESPOND, "ist", status, headers, body, len);
	/* The request's entry (made by the reader on its event) goes with the answer. */
	pthread_mutex_lock(&px.mu);
	cn = px_conn_find(req);
	if (cn && cn->request)
		px_conn_unlink(cn);
	else
		cn = NULL;
	pthread_mutex_unlock(&px.mu);
	if (cn) {
		pthread_mutex_lock(&px.revive_mu);
		pthread_mutex_unlock(&px.revive_mu);
		px_conn_destroy(cn);
	}
	return rc;
}
