/*
 * reader.c - the reader thread of a helper: takes its frames in order, hands
 * replies to the waiting calls, queues events in their contexts (keeping the
 * connection table's view of each connection's state), and on EOF or a bad
 * frame ends the helper (px_helper_died).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

static int ival(const struct px_reply *v, int i) { return i < v->n && !v->v[i].is_bytes; }

/* An event frame: queue it in its context (px.mu held). Takes data. */
static void on_event(struct px_helper *h, int type, struct px_reply *v)
{
	struct px_ctx *c;
	struct px_conn *cn;
	vws_event ev;
	int i, state, orphan = 0;
	for (i = 0; i < 7; i++)
		if (!ival(v, i))
			return;
	if (v->n < 8 || v->n > 9 || !v->v[7].is_bytes || (v->n == 9 && !v->v[8].is_bytes))
		return;
	c = px_ctx_find((uint64_t)v->v[0].i);
	if (!c)
		return; /* freed meanwhile */
	memset(&ev, 0, sizeof ev);
	ev.type = type;
	ev.conn = (vws_conn)v->v[1].i;
	ev.opcode = (int)v->v[2].i;
	ev.clean = (int)v->v[3].i;
	ev.code = (int)v->v[4].i;
	ev.attempt = (int)v->v[5].i;
	state = (int)v->v[6].i;
	if (v->v[7].len) {
		ev.data = v->v[7].b;
		ev.len = v->v[7].len;
	} else {
		free(v->v[7].b);
	}
	v->v[7].b = NULL;
	cn = px_conn_find(ev.conn);
	if (type == WIRE_EVENT_FAIL_PENDING) { /* a marker, never an application event */
		free(ev.data);
		if (cn && cn->gen == h->gen)
			px_fail_pending(c, cn, h->gen);
		return;
	}
	if (type == WIRE_EVENT_SEND_ERROR) { /* neither: the next send or ping returns it */
		if (cn && cn->gen == h->gen && !cn->async_rc) {
			cn->async_rc = ev.code < 0 ? ev.code : VWS_EINTERNAL;
			cn->async_err = ev.data;
		} else {
			free(ev.data);
		}
		return;
	}
	if (type == VWS_EV_SERVER_ESTABLISHED || type == VWS_EV_HTTP || type == VWS_EV_FILTER) {
		/* A connection a server accepted, or an HTTP request, tagged by the
		 * helper; code names the server (the caller asks vws_conn_server). A
		 * request's entry lives until vws_http_respond; it is never "open", so
		 * the helper's death reports nothing for it. */
		if (!cn) {
			cn = px_conn_accepted(c, ev.conn, h->gen, (uint64_t)v->v[4].i);
			if (cn && type != VWS_EV_SERVER_ESTABLISHED) {
				cn->state = VWS_STATE_CLOSED;
				cn->request = 1;
			}
			/* Accepted just before vws_server_free: closed with the
			 * server's other clients, without further events. */
			orphan = cn && !px_server_find(cn->server);
		}
		ev.code = 0;
	}
	if (cn && cn->gen == h->gen) {
		/* The connection's state, as vws_conn_state and vws_ctx_active answer
		 * it: set with its event, under px.mu, so it is closed exactly once
		 * the event that ends it for good is queued (the helper's state value
		 * of CLOSED and CONNECTION_ERROR says whether a reconnect follows),
		 * and it never goes back to open from closing: the caller's
		 * vws_conn_close sets closing, and a state value read after the
		 * event was queued (closing or closed: the peer began closing) only
		 * moves an open connection on to closing. */
		int closing = state == VWS_STATE_CLOSING || state == VWS_STATE_CLOSED;
		cn->events++;
		switch (type) {
		case VWS_EV_SERVER_ESTABLISHED:
		case VWS_EV_ESTABLISHED: /* closed by the caller while connecting: closing */
			cn->state = closing || cn->user_close ? VWS_STATE_CLOSING : VWS_STATE_OPEN;
			if (type == VWS_EV_ESTABLISHED)
				cn->attempt = ev.attempt;
			if (v->n == 9) { /* its subprotocol, NUL-terminated by px_read_values */
				char *p = v->v[8].b ? (char *)v->v[8].b : strdup("");
				if (p) {
					free(cn->proto);
					cn->proto = p;
					v->v[8].b = NULL;
				}
			}
			break;
		case VWS_EV_CONNECTION_ERROR:
			cn->state = state == VWS_STATE_CLOSED ? VWS_STATE_CLOSED : VWS_STATE_CONNECTING;
			cn->attempt = ev.attempt;
			px_share_drop(cn);
			break;
		case VWS_EV_CLOSED:
			cn->state = state == VWS_STATE_CLOSED ? VWS_STATE_CLOSED : VWS_STATE_CONNECTING;
			px_share_drop(cn); /* its session's socket: a reconnect shares its own */
			break;
		default: /* a message, a pong, writeable */
			if (cn->state == VWS_STATE_OPEN && closing)
				cn->state = VWS_STATE_CLOSING;
		}
		if (orphan)
			cn->state = VWS_STATE_CLOSED;
	}
	px_push(c, &ev);
}

/* Reads the frame at r (from its buffer, then from its socket) and acts on
 * it. Returns 0, or -1 with *why when the stream ends or is broken (then the
 * helper is killed, except at EOF). */
int px_rd_frame(struct px_helper *h, struct px_rd *r, struct px_reply *v, const char **why)
{
	uint8_t hdr[4 + WIRE_HEADER_LEN];
	uint32_t n, id;
	int kind, op;

	if (px_rd_exact(r, hdr, sizeof hdr) < 0) {
		*why = "EOF";
		return -1;
	}
	n = wire_get32(hdr);
	kind = hdr[4];
	op = hdr[5];
	id = wire_get32(hdr + 6);
	if (n < WIRE_MIN_BODY || n > WIRE_MAX_BODY || px_read_values(r, n - WIRE_HEADER_LEN, v) < 0) {
		*why = "EOF or malformed frame";
		goto broken;
	}
	if (kind == WIRE_KIND_REPLY) {
		pthread_mutex_lock(&px.mu);
		px_req_answer(h, id, v);
		pthread_mutex_unlock(&px.mu);
	} else if (kind == WIRE_KIND_EVENT) {
		pthread_mutex_lock(&px.mu);
		if (op == WIRE_EVENT_SHARE) /* never an application event */
			px_share_attach(h, r, v);
		else
			on_event(h, op, v);
		pthread_mutex_unlock(&px.mu);
	} else if (kind == WIRE_KIND_LOG) {
		if (v->n == 1 && v->v[0].is_bytes) /* NUL-terminated by px_read_values */
			px_log_to_sink((int)id, v->v[0].len ? (const char *)v->v[0].b : "");
	} else if (kind == WIRE_KIND_HELLO) {
		if (op != WIRE_VERSION) {
			*why = "protocol version mismatch";
			goto broken;
		}
		pthread_mutex_lock(&px.mu);
		h->ready = 1;
		pthread_mutex_unlock(&px.mu);
		px_logf(8, "verawebsockets: engine helper pid %lld ready (protocol %d)",
			ival(v, 0) ? (long long)v->v[0].i : -1LL, op);
	} else {
		*why = "unknown frame kind";
		goto broken;
	}
	px_reply_free(v);
	return 0;
broken:
	px_reply_free(v);
	kill(h->pid, SIGKILL);
	return -1;
}

/* The reader thread reads the frames, except while the thread that waits for
 * events reads them itself (px_rd_turn). */
void *px_reader_main(void *arg)
{
	struct px_helper *h = arg;
	struct px_rd *r = malloc(sizeof *r);
	struct px_reply v;
	const char *why = "EOF";

	memset(&v, 0, sizeof v);
	if (!r) {
		why = "out of memory";
		kill(h->pid, SIGKILL);
		goto out;
	}
	r->h = h;
	r->fd = h->fd; /* only px_helper_died (on this thread) closes it */
	r->off = r->len = 0;
	r->nfds = r->fds_lost = 0;
	pthread_mutex_lock(&px.mu);
	h->rd = r;
	pthread_mutex_unlock(&px.mu);
	while (px_rd_turn(h) == 0 && px_rd_frame(h, r, &v, &why) == 0) {}
out:
	px_rd_end(h, &why);
	px_helper_died(h, why);
	px_rd_close_fds(r);
	free(r);
	px_helper_put(h); /* the reader's reference */
	return NULL;
}
