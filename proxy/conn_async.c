/*
 * conn_async.c - the ABI's send, ping and close, asynchronous out of process.
 *
 * They go to the helper without waiting for a reply (frames with id 0, in
 * order with every other call). What the proxy can tell itself is checked
 * here first, in the engine's order, with its status and message: a bad
 * argument, a connection that is not open (its state from events), a message
 * over max_message_size. What only the helper knows (the send queue over
 * max_send_queue, ...) comes back as WIRE_EVENT_SEND_ERROR and is returned
 * by the connection's next send or ping, which then sends WIRE_OP_SEND_ACK
 * instead of itself (the helper reports nothing in between); a send
 * the helper finds closing or closed (its CLOSED event is on its way) is
 * dropped without a report.
 */
#define _GNU_SOURCE
#include <stdlib.h>

#include "proxy.h"

/* The call that conn_async makes. */
struct async_call {
	int op;                   /* WIRE_OP_SEND, WIRE_OP_PING or WIRE_OP_CLOSE */
	int opcode;               /* send */
	const char *data;         /* send, ping: the payload; close: the reason */
	size_t len;
	int code;                 /* close */
};

/* The checks of a call that need no connection (hub.Send, Ping, Close, then
 * wsengine's). Returns the status. */
static int async_args(const struct async_call *a, char *err, size_t errlen)
{
	switch (a->op) {
	case WIRE_OP_SEND:
		if (a->opcode != VWS_OP_TEXT && a->opcode != VWS_OP_BINARY)
			return px_errf(VWS_EARG, err, errlen, "bad opcode %d (1 text, 2 binary)", a->opcode);
		break;
	case WIRE_OP_PING:
		if (a->len > 125)
			return px_errf(VWS_EARG, err, errlen, "ping payload of %zu bytes (at most 125)", a->len);
		break;
	case WIRE_OP_CLOSE: {
		int code = a->code ? a->code : 1000;
		if (code < 1000 || code > 4999 || code == 1004 || code == 1005 || code == 1006 || code == 1015)
			return px_errf(VWS_EARG, err, errlen, "bad close code %d", code);
		if (a->len > 123)
			return px_errf(VWS_EARG, err, errlen, "close reason of %zu bytes (at most 123)", a->len);
		if (code > 1014 && code < 3000)
			return px_errf(VWS_EARG, err, errlen,
				"option close code: not a valid close code (1000-1003, 1007-1014, 3000-4999)");
		if (!px_utf8_valid(a->data, a->len))
			return px_errf(VWS_EARG, err, errlen, "option close reason: not valid UTF-8");
		break;
	}
	}
	return VWS_OK;
}

/* The checks against connection cn's state (px.mu held); a close moves its
 * state on as the engine's Close does. Returns the status; *ack is set when
 * it is the helper's report, which the call acknowledges instead. */
static int async_state(struct px_conn *cn, const struct async_call *a, int *ack, char *err, size_t errlen)
{
	int rc;
	if (a->op == WIRE_OP_CLOSE) {
		cn->user_close = 1;
		if (cn->state == VWS_STATE_CREATED)
			cn->state = VWS_STATE_CLOSED;
		else if (cn->state == VWS_STATE_OPEN)
			cn->state = VWS_STATE_CLOSING;
		return VWS_OK; /* connecting: the attempt is cancelled, its event follows */
	}
	if (cn->state != VWS_STATE_OPEN)
		return px_errf(VWS_ESTATE, err, errlen, "connection is not open");
	if (a->op == WIRE_OP_SEND && (uint64_t)a->len > (uint64_t)cn->max_msg)
		return px_errf(VWS_ETOOBIG, err, errlen, "message exceeds max_message_size");
	if (cn->async_rc) {
		rc = px_errf(cn->async_rc, err, errlen, "%s (an earlier %s failed in the engine helper; this one was not sent)",
			cn->async_err ? cn->async_err : "failed", a->op == WIRE_OP_SEND ? "send" : "call");
		free(cn->async_err);
		cn->async_err = NULL;
		cn->async_rc = 0;
		*ack = 1;
		return rc;
	}
	if (a->op == WIRE_OP_SEND && a->opcode == VWS_OP_TEXT && !px_utf8_valid(a->data, a->len))
		return px_errf(VWS_EARG, err, errlen, "option text: message is not valid UTF-8 (send it as binary)");
	return VWS_OK;
}

/* Checks call a on connection id, then sends it to the helper without waiting. */
static int conn_async(vws_conn id, const struct async_call *a, char *err, size_t errlen)
{
	struct px_conn *cn;
	struct px_helper *h;
	struct px_buf b;
	uint8_t fb[PX_SHARE_MAX + 14];
	uint32_t gen;
	int rc = async_args(a, err, errlen), ack = 0;
	if (rc != VWS_OK)
		return rc;
	pthread_mutex_lock(&px.mu);
	cn = px_conn_find(id);
	if (!cn || cn->request) {
		pthread_mutex_unlock(&px.mu);
		return px_errf(VWS_EARG, err, errlen, "unknown connection handle %llu", (unsigned long long)id);
	}
	if (!px.h || cn->gen != px.h->gen) { /* its helper died: closed */
		pthread_mutex_unlock(&px.mu);
		if (a->op == WIRE_OP_CLOSE)
			return VWS_OK;
		return px_errf(VWS_ESTATE, err, errlen, "connection is not open (engine helper died)");
	}
	rc = async_state(cn, a, &ack, err, errlen);
	if (rc == VWS_OK && !ack && a->op == WIRE_OP_SEND && cn->share) {
		/* Written here while the helper has nothing to write (share.c). */
		const uint8_t *rest = NULL;
		size_t restlen = 0;
		int d = px_share_write(px.h, cn, a->opcode, a->data, a->len, fb, &rest, &restlen);
		if (d == PX_SHARE_DONE) {
			pthread_mutex_unlock(&px.mu);
			return VWS_OK;
		}
		if (d == PX_SHARE_PART) { /* the helper writes the rest first */
			h = px_helper_get(0, NULL, 0);
			cn->sent++;
			gen = cn->share->gen;
			pthread_mutex_unlock(&px.mu);
			px_buf_msg(&b, WIRE_OP_SHARE_REST, id, "ib", (int)gen, (const char *)rest, restlen);
			goto call;
		}
	}
	if (rc == VWS_OK)
		cn->sent++; /* counted by the helper once taken (share.c) */
	h = rc == VWS_OK || ack ? px_helper_get(0, NULL, 0) : NULL;
	pthread_mutex_unlock(&px.mu);
	if (ack) { /* the helper reports the connection's failures again */
		px_buf_msg(&b, WIRE_OP_SEND_ACK, id, "");
		px_call(h, &b, 0, NULL, NULL, 0);
		px_buf_free(&b);
		pthread_mutex_lock(&px.mu);
		px_helper_put(h);
		pthread_mutex_unlock(&px.mu);
		return rc;
	}
	if (rc != VWS_OK)
		return rc;

	switch (a->op) {
	case WIRE_OP_SEND:
		px_buf_msg(&b, a->op, id, "it", a->opcode, a->data, a->len);
		break;
	case WIRE_OP_PING:
		px_buf_msg(&b, a->op, id, "b", a->data, a->len);
		break;
	default:
		px_buf_msg(&b, a->op, id, "ib", a->code, a->data, a->len);
		break;
	}
call:
	rc = px_call(h, &b, 0, NULL, err, errlen);
	px_buf_free(&b);
	pthread_mutex_lock(&px.mu);
	px_helper_put(h);
	pthread_mutex_unlock(&px.mu);
	if (rc == VWS_EENGINE) /* the helper died: its connections are closed */
		rc = a->op == WIRE_OP_CLOSE ? VWS_OK : px_errf(VWS_ESTATE, err, errlen, "connection is not open (engine helper died)");
	return rc;
}

int vws_conn_send(vws_conn c, int opcode, const char *data, size_t len, char *err, size_t errlen)
{
	struct async_call a = {WIRE_OP_SEND, opcode, data, len, 0};
	if (!data && len)
		return px_errf(VWS_EARG, err, errlen, "data is NULL");
	return conn_async(c, &a, err, errlen);
}

int vws_conn_ping(vws_conn c, const char *data, size_t len, char *err, size_t errlen)
{
	struct async_call a = {WIRE_OP_PING, 0, data, len, 0};
	if (!data && len)
		return px_errf(VWS_EARG, err, errlen, "data is NULL");
	return conn_async(c, &a, err, errlen);
}

int vws_conn_close(vws_conn c, int code, const char *reason, size_t len, char *err, size_t errlen)
{
	struct async_call a = {WIRE_OP_CLOSE, 0, reason, len, code};
	if (!reason && len)
		return px_errf(VWS_EARG, err, errlen, "reason is NULL");
	return conn_async(c, &a, err, errlen);
}
