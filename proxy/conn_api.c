/*
 * conn_api.c - the ABI's connections, forwarded to the helper: creating one
 * (and recreating it, same handle, URL and options, in a new helper after the
 * old one died), calls on it, freeing it; and the answer to an HTTP request
 * (vws_http_respond), whose handle is a connection's.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

/* Tells helper h to forget connection id (no reply). */
static void forget(struct px_helper *h, uint64_t id)
{
	struct px_buf b;
	px_buf_start(&b, WIRE_OP_CONN_FREE);
	px_buf_int(&b, (int64_t)id);
	px_call(h, &b, 0, NULL, NULL, 0);
	px_buf_free(&b);
}

/* Creates connection cn in helper h (px.mu not held): conn_new + options.
 * On failure the helper keeps nothing of it. */
static int conn_create(struct px_helper *h, struct px_conn *cn, uint64_t ctx, char *err, size_t errlen)
{
	struct px_reply r;
	struct px_buf b;
	struct px_opt *o;
	int rc;
	px_buf_start(&b, WIRE_OP_CONN_NEW);
	px_buf_int(&b, (int64_t)ctx);
	px_buf_int(&b, (int64_t)cn->id);
	px_buf_bytes(&b, cn->url, strlen(cn->url));
	rc = px_call(h, &b, 1, &r, err, errlen);
	px_buf_free(&b);
	px_reply_free(&r);
	/* cn's options are only appended by the thread holding revive_mu, or
	 * before cn is visible: reading the list here is safe. */
	for (o = cn->opts; rc == VWS_OK && o; o = o->next) {
		px_buf_start(&b, WIRE_OP_SET_OPTION);
		px_buf_int(&b, (int64_t)cn->id);
		px_buf_bytes(&b, o->name, strlen(o->name));
		px_buf_bytes(&b, o->value, strlen(o->value));
		rc = px_call(h, &b, 1, &r, err, errlen);
		px_buf_free(&b);
		px_reply_free(&r);
		if (rc != VWS_OK)
			forget(h, cn->id);
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
		forget(h, cn->id);
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

static int conn_simple(vws_conn c, int op, enum dead_mode mode, char *err, size_t errlen)
{
	struct px_buf b;
	px_buf_start(&b, op);
	px_buf_int(&b, (int64_t)c);
	return conn_call_status(c, &b, mode, err, errlen);
}

int vws_conn_set_option(vws_conn c, const char *name, const char *value, char *err, size_t errlen)
{
	struct px_reply r;
	struct px_buf b;
	struct px_opt *o;
	struct px_conn *cn;
	int rc;
	if (!name || !value) {
		px_seterr(err, errlen, "option name and value must not be NULL");
		return VWS_EARG;
	}
	o = calloc(1, sizeof *o);
	if (!o || !(o->name = strdup(name)) || !(o->value = strdup(value))) {
		if (o)
			free(o->name);
		free(o);
		px_seterr(err, errlen, "out of memory");
		return VWS_EINTERNAL;
	}
	px_buf_start(&b, WIRE_OP_SET_OPTION);
	px_buf_int(&b, (int64_t)c);
	px_buf_bytes(&b, name, strlen(name));
	px_buf_bytes(&b, value, strlen(value));
	pthread_mutex_lock(&px.revive_mu); /* orders the option list against a revival */
	rc = conn_call(c, &b, DEAD_REVIVE, &r, err, errlen);
	pthread_mutex_lock(&px.mu);
	if (rc == VWS_OK && (cn = px_conn_find(c))) {
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
	return conn_simple(c, WIRE_OP_CHECK, DEAD_REVIVE, err, errlen);
}

int vws_conn_connect(vws_conn c, char *err, size_t errlen)
{
	struct px_conn *cn;
	struct px_reply r;
	struct px_buf b;
	unsigned events = 0;
	int rc, old = -1;
	px_buf_start(&b, WIRE_OP_CONNECT);
	px_buf_int(&b, (int64_t)c);
	/* Marked connecting before the call: its first event may overtake the reply.
	 * Not an accepted connection: the engine refuses to connect it. */
	pthread_mutex_lock(&px.mu);
	if ((cn = px_conn_find(c)) && cn->url && px.h && cn->gen == px.h->gen) {
		old = cn->state;
		events = cn->events;
		if (old != VWS_STATE_CONNECTING && old != VWS_STATE_OPEN) {
			cn->state = VWS_STATE_CONNECTING;
			cn->attempt = 0;
		}
	}
	pthread_mutex_unlock(&px.mu);
	rc = conn_call(c, &b, DEAD_REVIVE, &r, err, errlen);
	pthread_mutex_lock(&px.mu);
	if ((cn = px_conn_find(c)) && px.h && cn->gen == px.h->gen) {
		if (old < 0 && rc == VWS_OK && cn->events == 0) { /* revived by this call */
			cn->state = VWS_STATE_CONNECTING;
			cn->attempt = 0;
		} else if (old >= 0 && rc != VWS_OK && cn->events == events) {
			cn->state = old;
		}
	}
	pthread_mutex_unlock(&px.mu);
	px_buf_free(&b);
	px_reply_free(&r);
	return rc;
}

int vws_conn_send(vws_conn c, int opcode, const char *data, size_t len, char *err, size_t errlen)
{
	struct px_buf b;
	if (!data && len) {
		px_seterr(err, errlen, "data is NULL");
		return VWS_EARG;
	}
	px_buf_start(&b, WIRE_OP_SEND);
	px_buf_int(&b, (int64_t)c);
	px_buf_int(&b, opcode);
	px_buf_tail(&b, data, len);
	return conn_call_status(c, &b, DEAD_NOTOPEN, err, errlen);
}

int vws_conn_ping(vws_conn c, const char *data, size_t len, char *err, size_t errlen)
{
	struct px_buf b;
	if (!data && len) {
		px_seterr(err, errlen, "data is NULL");
		return VWS_EARG;
	}
	px_buf_start(&b, WIRE_OP_PING);
	px_buf_int(&b, (int64_t)c);
	px_buf_bytes(&b, data, len);
	return conn_call_status(c, &b, DEAD_NOTOPEN, err, errlen);
}

int vws_conn_close(vws_conn c, int code, const char *reason, size_t len, char *err, size_t errlen)
{
	struct px_buf b;
	if (!reason && len) {
		px_seterr(err, errlen, "reason is NULL");
		return VWS_EARG;
	}
	px_buf_start(&b, WIRE_OP_CLOSE);
	px_buf_int(&b, (int64_t)c);
	px_buf_int(&b, code);
	px_buf_bytes(&b, reason, len);
	return conn_call_status(c, &b, DEAD_OK, err, errlen);
}

int vws_conn_state(vws_conn c)
{
	struct px_conn *cn;
	struct px_reply r;
	struct px_buf b;
	int rc;
	px_buf_start(&b, WIRE_OP_STATE);
	px_buf_int(&b, (int64_t)c);
	rc = conn_call(c, &b, DEAD_OK, &r, NULL, 0);
	px_buf_free(&b);
	if (rc == VWS_OK && r.n == 0) { /* dead: as last seen (CREATED or CLOSED) */
		pthread_mutex_lock(&px.mu);
		cn = px_conn_find(c);
		rc = cn ? (cn->state == VWS_STATE_CREATED ? VWS_STATE_CREATED : VWS_STATE_CLOSED) : VWS_EARG;
		pthread_mutex_unlock(&px.mu);
	} else if (rc == VWS_OK) {
		rc = r.n >= 3 && !r.v[2].is_bytes ? (int)r.v[2].i : VWS_EINTERNAL;
	}
	px_reply_free(&r);
	return rc;
}

int vws_conn_buffered(vws_conn c, size_t *out)
{
	struct px_reply r;
	struct px_buf b;
	int rc;
	if (!out)
		return VWS_EARG;
	px_buf_start(&b, WIRE_OP_BUFFERED);
	px_buf_int(&b, (int64_t)c);
	rc = conn_call(c, &b, DEAD_OK, &r, NULL, 0);
	px_buf_free(&b);
	if (rc == VWS_OK)
		*out = r.n >= 3 && !r.v[2].is_bytes ? (size_t)r.v[2].i : 0;
	px_reply_free(&r);
	return rc;
}

/* Runs a call on c whose reply carries one bytes result and copies it into buf
 * (truncated, NUL-terminated); *full gets its whole length. */
static int conn_text(vws_conn c, int op, enum dead_mode mode, char *buf, size_t buflen, size_t *full)
{
	struct px_reply r;
	struct px_buf b;
	int rc;
	*full = 0;
	if (!buf || buflen == 0)
		return VWS_EARG;
	px_buf_start(&b, op);
	px_buf_int(&b, (int64_t)c);
	rc = conn_call(c, &b, mode, &r, NULL, 0);
	px_buf_free(&b);
	buf[0] = 0;
	if (rc == VWS_OK && r.n >= 3 && r.v[2].is_bytes) {
		size_t n = r.v[2].len < buflen - 1 ? r.v[2].len : buflen - 1;
		memcpy(buf, r.v[2].b, n);
		buf[n] = 0;
		*full = r.v[2].len;
	}
	px_reply_free(&r);
	return rc;
}

int vws_conn_protocol(vws_conn c, char *buf, size_t buflen)
{
	size_t full;
	return conn_text(c, WIRE_OP_PROTOCOL, DEAD_OK, buf, buflen, &full);
}

int vws_conn_request_headers(vws_conn c, char *buf, size_t buflen)
{
	size_t full;
	int rc = conn_text(c, WIRE_OP_REQUEST_HEADERS, DEAD_NOTOPEN, buf, buflen, &full);
	return rc == VWS_OK ? (int)full : rc;
}

int vws_conn_peer(vws_conn c, char *buf, size_t buflen)
{
	size_t full;
	return conn_text(c, WIRE_OP_PEER, DEAD_NOTOPEN, buf, buflen, &full);
}

int vws_conn_peer_cert(vws_conn c, char *buf, size_t buflen)
{
	size_t full;
	int rc = conn_text(c, WIRE_OP_PEER_CERT, DEAD_NOTOPEN, buf, buflen, &full);
	return rc == VWS_OK ? (int)full : rc;
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
	struct px_buf b;
	int rc;
	if (!body && len) {
		px_seterr(err, errlen, "body is NULL with a non-zero length");
		return VWS_EARG;
	}
	px_buf_start(&b, WIRE_OP_HTTP_RESPOND);
	px_buf_int(&b, (int64_t)req);
	px_buf_int(&b, status);
	px_buf_bytes(&b, headers ? headers : "", headers ? strlen(headers) : 0);
	px_buf_tail(&b, body, len);
	rc = conn_call_status(req, &b, DEAD_NOTOPEN, err, errlen);
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
