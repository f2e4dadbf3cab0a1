/*
 * server_api.c - the ABI's servers, forwarded to the helper that made them.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

/* ---- servers ----------------------------------------------------------------------
 * A server lives in the helper that made it; when that helper dies it is gone
 * for good (its clients were reported closed): it is then not listening. */

/* server_call's status when the server's helper died (no status is positive;
 * test for it before reading a result). */
#define SERVER_DEAD 1

/*
 * Runs call b (its first value is the server) on server id in its helper.
 * Returns the status, with the reply in *r (r->n == 0 when none came), or
 * SERVER_DEAD when its helper died (before or during the call).
 */
static int server_call(vws_server id, struct px_buf *b, struct px_reply *r, char *err, size_t errlen)
{
	struct px_server *s;
	struct px_helper *h = NULL;
	int rc;
	r->n = 0;
	if (b->oom) {
		px_seterr(err, errlen, "out of memory");
		return VWS_EINTERNAL;
	}
	pthread_mutex_lock(&px.mu);
	s = px_server_find(id);
	if (s && px.h && s->gen == px.h->gen)
		h = px_helper_get(0, err, errlen);
	pthread_mutex_unlock(&px.mu);
	if (!s) {
		px_seterr(err, errlen, "unknown server handle %llu", (unsigned long long)id);
		return VWS_EARG;
	}
	if (!h)
		return SERVER_DEAD;
	rc = px_call(h, b, 1, r, err, errlen);
	pthread_mutex_lock(&px.mu);
	if (rc == VWS_EENGINE && px.h != h) /* it died meanwhile */
		rc = SERVER_DEAD;
	px_helper_put(h);
	pthread_mutex_unlock(&px.mu);
	return rc;
}

/* server_call of px_buf_msg(op, id, fmt, ...) for a reply with at most one
 * int result (*res, when not NULL). */
static int server_op(vws_server id, int64_t *res, char *err, size_t errlen, int op, const char *fmt, ...)
{
	struct px_reply r;
	struct px_buf b;
	va_list ap;
	int rc;
	va_start(ap, fmt);
	px_buf_vmsg(&b, op, id, fmt, ap);
	va_end(ap);
	rc = server_call(id, &b, &r, err, errlen);
	px_buf_free(&b);
	if (rc == VWS_OK && res)
		*res = px_reply_int(&r, 0);
	px_reply_free(&r);
	return rc;
}

/* rc, or, when the server's helper died (SERVER_DEAD), VWS_ESTATE with a message. */
static int server_live(int rc, char *err, size_t errlen)
{
	if (rc != SERVER_DEAD)
		return rc;
	return px_errf(VWS_ESTATE, err, errlen, "server is not listening (engine helper died)");
}

int vws_server_new(vws_ctx ctx, vws_server *out, char *err, size_t errlen)
{
	struct px_server *s;
	struct px_ctx *c;
	struct px_helper *h;
	int rc;
	if (!out) {
		px_seterr(err, errlen, "out is NULL");
		return VWS_EARG;
	}
	s = calloc(1, sizeof *s);
	if (!s) {
		px_seterr(err, errlen, "out of memory");
		return VWS_EINTERNAL;
	}
	pthread_mutex_lock(&px.mu);
	c = px_ctx_find(ctx);
	h = c ? px_helper_get(1, err, errlen) : NULL;
	if (!h) {
		pthread_mutex_unlock(&px.mu);
		free(s);
		if (c)
			return VWS_EENGINE;
		px_seterr(err, errlen, "unknown context handle %llu", (unsigned long long)ctx);
		return VWS_EARG;
	}
	s->id = ++px.last_conn;
	pthread_mutex_unlock(&px.mu);

	rc = px_call_msg(h, err, errlen, WIRE_OP_SERVER_NEW, ctx, "u", s->id);

	pthread_mutex_lock(&px.mu);
	c = px_ctx_find(ctx);
	if (rc == VWS_OK && c) {
		s->ctx = c;
		s->gen = h->gen;
		s->max_msg = PX_DEFAULT_MAX_MSG;
		c->gen = h->gen;
		s->next = px.servers;
		px.servers = s;
		*out = s->id;
		s = NULL;
	} else if (rc == VWS_OK) { /* the context was freed meanwhile */
		rc = VWS_EARG;
		px_seterr(err, errlen, "unknown context handle %llu", (unsigned long long)ctx);
		pthread_mutex_unlock(&px.mu);
		px_notify(h, WIRE_OP_SERVER_FREE, s->id);
		pthread_mutex_lock(&px.mu);
	}
	px_helper_put(h);
	pthread_mutex_unlock(&px.mu);
	free(s);
	return rc;
}

/* Sets what the proxy keeps of server id (px.mu not held): listening, or
 * max_message_size (when max_msg >= 0). */
static void server_note(vws_server id, int listening, int64_t max_msg)
{
	struct px_server *sv;
	pthread_mutex_lock(&px.mu);
	if ((sv = px_server_find(id))) {
		if (listening >= 0)
			sv->listening = listening;
		if (max_msg >= 0)
			sv->max_msg = max_msg;
	}
	pthread_mutex_unlock(&px.mu);
}

int vws_server_set_option(vws_server s, const char *name, const char *value, char *err, size_t errlen)
{
	int rc;
	if (!name)
		return px_errf(VWS_EARG, err, errlen, "option name is NULL");
	if (!value)
		return px_errf(VWS_EARG, err, errlen, "value of option %s is NULL", name);
	rc = server_live(server_op(s, NULL, err, errlen, WIRE_OP_SERVER_SET_OPTION, "ss", name, value), err, errlen);
	if (rc == VWS_OK && strcmp(name, "max_message_size") == 0) /* sends to its clients check it here */
		server_note(s, -1, strtoll(value, NULL, 10));
	return rc;
}

int vws_server_listen(vws_server s, char *err, size_t errlen)
{
	int rc = server_live(server_op(s, NULL, err, errlen, WIRE_OP_SERVER_LISTEN, ""), err, errlen);
	if (rc == VWS_OK) /* vws_ctx_active counts it */
		server_note(s, 1, -1);
	return rc;
}

int vws_server_port(vws_server s)
{
	int64_t port = 0;
	int rc = server_op(s, &port, NULL, 0, WIRE_OP_SERVER_PORT, "");
	if (rc == SERVER_DEAD)
		return 0;
	return rc == VWS_OK ? (int)port : rc;
}

int vws_server_broadcast(vws_server s, int opcode, const char *data, size_t len, char *err, size_t errlen)
{
	int64_t n = 0;
	int rc;
	if (!data && len)
		return px_errf(VWS_EARG, err, errlen, "data is NULL with a non-zero length");
	rc = server_live(server_op(s, &n, err, errlen, WIRE_OP_BROADCAST, "it", opcode, data, len), err, errlen);
	return rc == VWS_OK ? (int)n : rc;
}

int vws_server_clients(vws_server s, vws_conn *out, size_t n)
{
	struct px_reply r;
	struct px_buf b;
	size_t i, total = 0;
	int rc;
	if (n > 0 && !out)
		return VWS_EARG;
	px_buf_msg(&b, WIRE_OP_SERVER_CLIENTS, s, "");
	rc = server_call(s, &b, &r, NULL, 0);
	px_buf_free(&b);
	if (rc == SERVER_DEAD) {
		rc = 0;
	} else if (rc == VWS_OK && r.n >= 3 && r.v[2].is_bytes) {
		total = r.v[2].len / 8; /* u64 big-endian tags */
		for (i = 0; i < total && i < n; i++)
			out[i] = wire_get64((const uint8_t *)r.v[2].b + 8 * i);
		rc = (int)total;
	} else if (rc == VWS_OK) {
		rc = VWS_EINTERNAL;
	}
	px_reply_free(&r);
	return rc;
}

int vws_server_close(vws_server s, int code, const char *reason, size_t len, char *err, size_t errlen)
{
	int rc;
	if (!reason && len)
		return px_errf(VWS_EARG, err, errlen, "reason is NULL with a non-zero length");
	rc = server_op(s, NULL, err, errlen, WIRE_OP_SERVER_CLOSE, "ib", code, reason, len);
	if (rc == VWS_OK) /* not listening (also with code -1) */
		server_note(s, 0, -1);
	return rc == SERVER_DEAD ? VWS_OK : rc; /* its helper died: closed */
}

int vws_server_free(vws_server s)
{
	struct px_server *sv;
	unsigned gen;
	pthread_mutex_lock(&px.mu);
	sv = px_server_find(s);
	if (!sv) {
		pthread_mutex_unlock(&px.mu);
		return VWS_EARG;
	}
	gen = sv->gen;
	px_server_unlink(sv);
	{ /* its clients are closed without further events: closed from now on */
		struct px_conn *cn;
		for (cn = sv->ctx->conns; cn; cn = cn->cnext)
			if (cn->server == s && cn->state != VWS_STATE_CREATED)
				cn->state = VWS_STATE_CLOSED;
	}
	pthread_mutex_unlock(&px.mu);
	free(sv);
	px_fire(WIRE_OP_SERVER_FREE, s, gen);
	return VWS_OK;
}
