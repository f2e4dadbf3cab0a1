/*
 * ctx_api.c - the ABI's contexts: creating and freeing them, taking their
 * events (one, or a batch), waking a waiter, the event fd, how many of their
 * connections are active (answered here); and vws_event_clear, vws_abi_version.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proxy.h"

void vws_event_clear(vws_event *ev)
{
	if (!ev)
		return;
	free(ev->data);
	memset(ev, 0, sizeof *ev);
}

int vws_abi_version(void) { return VWS_ABI_VERSION; }

/* ---- contexts ------------------------------------------------------------------ */

int vws_ctx_new(vws_ctx *out, char *err, size_t errlen)
{
	struct px_ctx *c;
	if (!out)
		return px_errf(VWS_EARG, err, errlen, "out is NULL");
	c = calloc(1, sizeof *c);
	if (!c)
		return px_errf(VWS_EINTERNAL, err, errlen, "out of memory");
	px_cond_init(&c->cond);
	px_pipe_init(&c->ev);
	c->refs = 1;
	pthread_mutex_lock(&px.mu);
	c->id = ++px.last_ctx;
	c->next = px.ctxs;
	px.ctxs = c;
	pthread_mutex_unlock(&px.mu);
	*out = c->id;
	return VWS_OK;
}

int vws_ctx_free(vws_ctx ctx)
{
	struct px_ctx **pp, *c;
	unsigned gen;
	pthread_mutex_lock(&px.mu);
	for (pp = &px.ctxs; (c = *pp); pp = &c->next)
		if (c->id == ctx)
			break;
	if (!c) {
		pthread_mutex_unlock(&px.mu);
		return VWS_EARG;
	}
	*pp = c->next;
	c->freed = 1;
	px_rd_ctx_gone(c->id);
	gen = c->gen;
	while (c->conns) {
		struct px_conn *cn = c->conns;
		px_conn_unlink(cn);
		px_conn_destroy(cn);
	}
	{ /* its servers: the helper frees them with the context */
		struct px_server **sp, *s;
		for (sp = &px.servers; (s = *sp);) {
			if (s->ctx == c) {
				*sp = s->next;
				free(s);
			} else {
				sp = &s->next;
			}
		}
	}
	px_queue_clear(c);
	px_pipe_close(&c->ev);
	pthread_cond_broadcast(&c->cond);
	px_ctx_unref(c);
	pthread_mutex_unlock(&px.mu);
	if (gen)
		px_fire(WIRE_OP_CTX_FREE, ctx, gen);
	return VWS_OK;
}

int vws_ctx_next_event(vws_ctx ctx, int timeout_ms, vws_event *ev)
{
	struct px_ctx *c;
	struct px_ev *e;
	struct timespec ts;
	int64_t deadline = 0;
	uint64_t gen = 0;
	int waited = 0, rc;
	if (!ev)
		return VWS_EARG;
	memset(ev, 0, sizeof *ev); /* also when nothing comes: a clear is then harmless */
	pthread_mutex_lock(&px.mu);
	c = px_ctx_find(ctx);
	if (!c) {
		pthread_mutex_unlock(&px.mu);
		return VWS_EARG;
	}
	c->refs++;
	c->calls++; /* the caller is back: it handled the events it took before */
	for (;;) {
		if (c->freed) {
			rc = VWS_EARG;
			break;
		}
		if ((e = c->head) && e->ev.type == WIRE_EVENT_FAIL_PENDING) {
			vws_conn conn = e->ev.conn;
			unsigned hgen = (unsigned)e->ev.attempt;
			px_ev_free(px_queue_pop(c));
			pthread_mutex_unlock(&px.mu);
			px_fire(WIRE_OP_CONN_FAIL, conn, hgen);
			pthread_mutex_lock(&px.mu);
			continue;
		}
		if ((e = c->head)) {
			px_queue_pop(c);
			*ev = e->ev;
			px_mark_taken(c, ev);
			px_ev_free(e);
			rc = 1;
			break;
		}
		if (!waited) { /* first pass with an empty queue: this call would wait */
			if (c->wake_set) {
				c->wake_set = 0;
				rc = 0;
				break;
			}
			if (timeout_ms <= 0) {
				rc = 0;
				break;
			}
			deadline = px_now_ms() + timeout_ms;
			ts.tv_sec = deadline / 1000;
			ts.tv_nsec = (long)(deadline % 1000) * 1000000;
			gen = c->wake_gen;
			waited = 1;
		} else if (c->wake_gen != gen || px_now_ms() >= deadline) {
			rc = 0;
			break;
		}
		c->waiters++;
		pthread_cond_timedwait(&c->cond, &px.mu, &ts);
		c->waiters--;
	}
	px_ctx_unref(c);
	pthread_mutex_unlock(&px.mu);
	return rc;
}

/* PX_HOLD_MIN: data from this size on are handed to the caller where they are (held until
 * vws_batch_release) instead of copied into its buffer: one copy fewer. */
#define PX_HOLD_MIN (4u << 10)

/* What a batch holds (b->held): the data it handed on where they are, freed by
 * vws_batch_release. Room for all of the batch's events, made with the first held. When
 * that malloc fails for the batch's first event, held is its data's address with the low
 * bit set (malloc's blocks are aligned) and the batch takes no other held data. */
struct px_held {
	int   n;
	void *data[];
};

#define PX_HELD_ONE 1u

/* Records that b holds data (the i-th event's); 0, or -1 when it cannot (then nothing
 * changed). */
static int batch_hold(vws_batch *b, int i, void *data)
{
	struct px_held *h;
	if (b->held & PX_HELD_ONE)
		return -1;
	if (!b->held) {
		h = malloc(sizeof *h + (size_t)b->max * sizeof h->data[0]);
		if (!h) {
			if (i > 0)
				return -1;
			b->held = (uint64_t)(uintptr_t)data | PX_HELD_ONE;
			return 0;
		}
		h->n = 0;
		b->held = (uint64_t)(uintptr_t)h;
	}
	h = (struct px_held *)(uintptr_t)b->held;
	h->data[h->n++] = data;
	return 0;
}

/* Moves ev into slot i of b: its data into b->buf at *off when they are small and fit, else
 * held as they are until vws_batch_release; a small event that does not fit is held only as
 * the batch's first, a later one waits for the next batch. Returns 0, or -1 when ev stays
 * out of the batch (never the first; ev is left as it was). */
static int batch_put(vws_batch *b, int i, vws_event *ev, size_t *off)
{
	vws_event *out = &b->evs[i];
	int small = ev->len < PX_HOLD_MIN;
	if (ev->len > 0 && (!small || *off + ev->len > b->buflen)) {
		if ((small && i > 0) || batch_hold(b, i, ev->data) != 0)
			return -1;
		*out = *ev;
	} else {
		*out = *ev;
		out->data = NULL;
		if (ev->len > 0) {
			memcpy(b->buf + *off, ev->data, ev->len);
			out->data = b->buf + *off;
			*off += ev->len;
		}
		free(ev->data);
	}
	memset(ev, 0, sizeof *ev);
	return 0;
}

/* The first event as vws_ctx_next_event takes it, the rest from the queue while their
 * data fit, up to a marker (the next call handles it): no call to the helper. */
int vws_ctx_next_events(vws_ctx ctx, int timeout_ms, vws_batch *b)
{
	struct px_ctx *c;
	struct px_ev *e;
	vws_event ev;
	size_t off = 0;
	int rc, n = 1;
	if (!b || !b->evs || b->max <= 0 || (!b->buf && b->buflen > 0))
		return VWS_EARG;
	b->n = b->left = 0;
	b->held = 0;
	rc = vws_ctx_next_event(ctx, timeout_ms, &ev);
	if (rc <= 0)
		return rc;
	batch_put(b, 0, &ev, &off);
	pthread_mutex_lock(&px.mu);
	c = px_ctx_find(ctx);
	while (c && !c->freed && n < b->max && (e = c->head) && e->ev.type != WIRE_EVENT_FAIL_PENDING &&
		batch_put(b, n, &e->ev, &off) == 0) {
		n++;
		px_queue_pop(c);
		px_mark_taken(c, &b->evs[n - 1]);
		px_ev_free(e);
	}
	b->left = c ? (int)c->n : 0;
	pthread_mutex_unlock(&px.mu);
	b->n = n;
	return n;
}

void vws_batch_release(vws_batch *b)
{
	struct px_held *h;
	int i;
	if (!b || !b->held)
		return;
	if (b->held & PX_HELD_ONE) {
		free((void *)(uintptr_t)(b->held & ~(uint64_t)PX_HELD_ONE));
	} else {
		h = (struct px_held *)(uintptr_t)b->held;
		for (i = 0; i < h->n; i++)
			free(h->data[i]);
		free(h);
	}
	b->held = 0;
}

int vws_ctx_pending(vws_ctx ctx)
{
	struct px_ctx *c;
	int n;
	pthread_mutex_lock(&px.mu);
	c = px_ctx_find(ctx);
	n = c ? (int)c->n : VWS_EARG;
	pthread_mutex_unlock(&px.mu);
	return n;
}

int vws_ctx_wake(vws_ctx ctx)
{
	struct px_ctx *c;
	pthread_mutex_lock(&px.mu);
	c = px_ctx_find(ctx);
	if (c) {
		if (c->waiters) {
			c->wake_gen++;
			pthread_cond_broadcast(&c->cond);
		} else {
			c->wake_set = 1;
		}
	}
	pthread_mutex_unlock(&px.mu);
	return c ? VWS_OK : VWS_EARG;
}

int vws_ctx_event_fd(vws_ctx ctx)
{
	struct px_ctx *c;
	int rc;
	pthread_mutex_lock(&px.mu);
	c = px_ctx_find(ctx);
	if (!c) {
		rc = VWS_EARG;
	} else if (px_pipe_open(&c->ev) < 0) {
		rc = VWS_EINTERNAL;
	} else {
		px_ctx_owe(c);
		rc = c->ev.fd[0];
	}
	pthread_mutex_unlock(&px.mu);
	return rc;
}

/* From the proxy's tables, no call to the helper: its connections whose state
 * (kept from their events, see the reader) is connecting, open or closing, and
 * its servers listening in the live helper. A connection's CLOSED (or final
 * CONNECTION_ERROR) is queued in the same step that stops counting it: a
 * count of 0 with nothing pending means every such event was taken. */
int vws_ctx_active(vws_ctx ctx)
{
	struct px_ctx *c;
	struct px_conn *cn;
	struct px_server *s;
	int n = 0;
	pthread_mutex_lock(&px.mu);
	c = px_ctx_find(ctx);
	if (!c) {
		pthread_mutex_unlock(&px.mu);
		return VWS_EARG;
	}
	for (cn = c->conns; cn; cn = cn->cnext)
		if (cn->state == VWS_STATE_CONNECTING || cn->state == VWS_STATE_OPEN || cn->state == VWS_STATE_CLOSING)
			n++;
	for (s = px.servers; s; s = s->next)
		if (s->ctx == c && s->listening && px.h && s->gen == px.h->gen)
			n++;
	pthread_mutex_unlock(&px.mu);
	return n;
}

/* Reading on the waiting thread: the caller claims the helper's socket (direct.c). */
int vws_ctx_read_fds(vws_ctx ctx, struct pollfd *fds, int max, int *now)
{
	struct px_ctx *c;
	int n, ignored = 0;
	if (now)
		*now = 0;
	if (max < 0 || (!fds && max > 0))
		return VWS_EARG;
	pthread_mutex_lock(&px.mu);
	c = px_ctx_find(ctx);
	n = c ? px_rd_fds(c, fds, max, now ? now : &ignored) : VWS_EARG;
	pthread_mutex_unlock(&px.mu);
	return n;
}

int vws_ctx_read(vws_ctx ctx, const struct pollfd *fds, int n, int again)
{
	struct px_ctx *c;
	int rc;
	if (n < 0 || (!fds && n > 0))
		return VWS_EARG;
	pthread_mutex_lock(&px.mu);
	c = px_ctx_find(ctx);
	rc = c ? px_rd_read(c, fds, n, again) : VWS_EARG;
	pthread_mutex_unlock(&px.mu);
	return rc;
}
