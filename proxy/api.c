/*
 * api.c - include/verawebsockets.h over the engine helper: contexts and their
 * event queues live here; connections are forwarded to the helper.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proxy.h"

/* ---- tables (px.mu held) ---------------------------------------------------- */

struct px_ctx *px_ctx_find(uint64_t id)
{
	struct px_ctx *c;
	for (c = px.ctxs; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

struct px_conn *px_conn_find(uint64_t id)
{
	struct px_conn *c;
	for (c = px.tab[id % PX_BUCKETS]; c; c = c->hnext)
		if (c->id == id)
			return c;
	return NULL;
}

/* Adds the connection that a server of helper gen accepted (the reader, on
 * its SERVER_ESTABLISHED): open, without URL, never revived in another helper. */
struct px_conn *px_conn_accepted(struct px_ctx *c, uint64_t id, unsigned gen, uint64_t server)
{
	struct px_conn *cn = calloc(1, sizeof *cn);
	if (!cn)
		return NULL;
	cn->id = id;
	cn->ctx = c;
	cn->gen = gen;
	cn->state = VWS_STATE_OPEN;
	cn->attempt = 1;
	cn->server = server;
	cn->opts_tail = &cn->opts;
	cn->hnext = px.tab[id % PX_BUCKETS];
	px.tab[id % PX_BUCKETS] = cn;
	cn->cnext = c->conns;
	c->conns = cn;
	return cn;
}

static struct px_server *server_find(uint64_t id)
{
	struct px_server *s;
	for (s = px.servers; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

static void server_unlink(struct px_server *s)
{
	struct px_server **pp;
	for (pp = &px.servers; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
}

static void conn_unlink(struct px_conn *c)
{
	struct px_conn **pp;
	for (pp = &px.tab[c->id % PX_BUCKETS]; *pp; pp = &(*pp)->hnext)
		if (*pp == c) {
			*pp = c->hnext;
			break;
		}
	for (pp = &c->ctx->conns; *pp; pp = &(*pp)->cnext)
		if (*pp == c) {
			*pp = c->cnext;
			break;
		}
}

static void conn_destroy(struct px_conn *c)
{
	struct px_opt *o, *next;
	for (o = c->opts; o; o = next) {
		next = o->next;
		free(o->name);
		free(o->value);
		free(o);
	}
	free(c->url);
	free(c);
}

static void ctx_unref(struct px_ctx *c)
{
	if (--c->refs > 0)
		return;
	pthread_cond_destroy(&c->cond);
	free(c);
}

/* ---- event queues (px.mu held) ----------------------------------------------- */

static void pipe_signal(struct px_ctx *c)
{
	if (c->wfd >= 0 && write(c->wfd, "e", 1) < 0) { /* full or closed: still readable */ }
}

static void pipe_drain(struct px_ctx *c)
{
	char buf[64];
	if (c->rfd >= 0)
		while (read(c->rfd, buf, sizeof buf) > 0) {}
}

/* Queues a copy of *ev (it takes ev->data). */
void px_push(struct px_ctx *c, const vws_event *ev)
{
	struct px_ev *e = malloc(sizeof *e);
	if (!e) {
		free(ev->data);
		return;
	}
	e->next = NULL;
	e->ev = *ev;
	if (c->tail)
		c->tail->next = e;
	else
		c->head = e;
	c->tail = e;
	if (++c->n == 1)
		pipe_signal(c);
	if (c->waiters)
		pthread_cond_broadcast(&c->cond);
}

/* Unlinks the oldest event; the queue must not be empty. */
static struct px_ev *queue_pop(struct px_ctx *c)
{
	struct px_ev *e = c->head;
	c->head = e->next;
	if (!c->head)
		c->tail = NULL;
	if (--c->n == 0)
		pipe_drain(c);
	return e;
}

/* Marks the connection of ev as having an event taken by the caller's current call. */
static void mark_taken(struct px_ctx *c, const vws_event *ev)
{
	struct px_conn *cn = px_conn_find(ev->conn);
	if (cn)
		cn->taken = c->calls;
}

static void queue_clear(struct px_ctx *c)
{
	struct px_ev *e, *next;
	for (e = c->head; e; e = next) {
		next = e->next;
		free(e->ev.data);
		free(e);
	}
	c->head = c->tail = NULL;
	c->n = 0;
}

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
	if (!out) {
		px_seterr(err, errlen, "out is NULL");
		return VWS_EARG;
	}
	c = calloc(1, sizeof *c);
	if (!c) {
		px_seterr(err, errlen, "out of memory");
		return VWS_EINTERNAL;
	}
	{
		pthread_condattr_t a;
		pthread_condattr_init(&a);
		pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
		pthread_cond_init(&c->cond, &a);
		pthread_condattr_destroy(&a);
	}
	c->rfd = c->wfd = -1;
	c->refs = 1;
	pthread_mutex_lock(&px.mu);
	c->id = ++px.last_ctx;
	c->next = px.ctxs;
	px.ctxs = c;
	pthread_mutex_unlock(&px.mu);
	*out = c->id;
	return VWS_OK;
}

/* Sends a call that wants no reply to the live helper, if its generation is gen. */
static void fire(int op, uint64_t arg, unsigned gen)
{
	struct px_helper *h;
	struct px_buf b;
	pthread_mutex_lock(&px.mu);
	h = px.h && px.h->gen == gen ? px_helper_get(0, NULL, 0) : NULL;
	pthread_mutex_unlock(&px.mu);
	if (!h)
		return;
	px_buf_start(&b, op);
	px_buf_int(&b, (int64_t)arg);
	px_call(h, &b, 0, NULL, NULL, 0);
	px_buf_free(&b);
	pthread_mutex_lock(&px.mu);
	px_helper_put(h);
	pthread_mutex_unlock(&px.mu);
}

/* ---- failing in order --------------------------------------------------------------
 * A protocol violation of a connection's peer that the helper reports behind
 * the connection's events (a WIRE_EVENT_FAIL_PENDING marker) waits in the
 * queue until the caller has handled those events: the caller's next call for
 * events finds the marker at the head (it takes events one batch at a time and
 * calls again once their handlers ran), drops it and sends WIRE_OP_CONN_FAIL.
 * A caller that never comes back: the helper fails it after close_timeout. */

struct fail_arg {
	uint64_t conn;
	unsigned gen;
};

static void *fail_main(void *arg)
{
	struct fail_arg a = *(struct fail_arg *)arg;
	free(arg);
	fire(WIRE_OP_CONN_FAIL, a.conn, a.gen);
	return NULL;
}

/* The reader, px.mu held: the marker of cn (from helper gen) arrived. When none
 * of cn's events waits (none queued, none taken by the caller's latest call), cn
 * fails now, told from a thread of its own: the reader never writes to the
 * helper (both could block on full sockets). Else, or without a thread, the
 * marker is queued (gen in its attempt). */
void px_fail_pending(struct px_ctx *c, struct px_conn *cn, unsigned gen)
{
	struct fail_arg *a;
	struct px_ev *e;
	vws_event ev;
	int waiting = cn->taken && cn->taken == c->calls;
	for (e = c->head; e && !waiting; e = e->next)
		waiting = e->ev.conn == cn->id;
	if (!waiting && (a = malloc(sizeof *a))) {
		pthread_attr_t ta;
		pthread_t tid;
		int rc;
		a->conn = cn->id;
		a->gen = gen;
		pthread_attr_init(&ta);
		pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&ta, 128 << 10);
		rc = pthread_create(&tid, &ta, fail_main, a);
		pthread_attr_destroy(&ta);
		if (rc == 0)
			return;
		free(a);
	}
	memset(&ev, 0, sizeof ev);
	ev.type = WIRE_EVENT_FAIL_PENDING;
	ev.conn = cn->id;
	ev.attempt = (int)gen;
	px_push(c, &ev);
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
	gen = c->gen;
	while (c->conns) {
		struct px_conn *cn = c->conns;
		conn_unlink(cn);
		conn_destroy(cn);
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
	queue_clear(c);
	if (c->rfd >= 0) {
		close(c->rfd);
		close(c->wfd);
		c->rfd = c->wfd = -1;
	}
	pthread_cond_broadcast(&c->cond);
	ctx_unref(c);
	pthread_mutex_unlock(&px.mu);
	if (gen)
		fire(WIRE_OP_CTX_FREE, ctx, gen);
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
			free(queue_pop(c));
			pthread_mutex_unlock(&px.mu);
			fire(WIRE_OP_CONN_FAIL, conn, hgen);
			pthread_mutex_lock(&px.mu);
			continue;
		}
		if ((e = c->head)) {
			queue_pop(c);
			*ev = e->ev;
			mark_taken(c, ev);
			free(e);
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
	ctx_unref(c);
	pthread_mutex_unlock(&px.mu);
	return rc;
}

/* Moves ev into slot i of b: its data into b->buf at *off when it fits, else (only the
 * first event) held as it is until vws_batch_release. */
static void batch_put(vws_batch *b, int i, vws_event *ev, size_t *off)
{
	vws_event *out = &b->evs[i];
	*out = *ev;
	if (ev->len == 0) {
		free(ev->data);
		out->data = NULL;
	} else if (*off + ev->len <= b->buflen) {
		memcpy(b->buf + *off, ev->data, ev->len);
		free(ev->data);
		out->data = b->buf + *off;
		*off += ev->len;
	} else {
		b->held = (uint64_t)(uintptr_t)ev->data;
	}
	memset(ev, 0, sizeof *ev);
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
		(e->ev.len == 0 || off + e->ev.len <= b->buflen)) {
		queue_pop(c);
		mark_taken(c, &e->ev);
		batch_put(b, n++, &e->ev, &off);
		free(e);
	}
	b->left = c ? (int)c->n : 0;
	pthread_mutex_unlock(&px.mu);
	b->n = n;
	return n;
}

void vws_batch_release(vws_batch *b)
{
	if (!b || !b->held)
		return;
	free((void *)(uintptr_t)b->held);
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
	int fds[2], rc;
	pthread_mutex_lock(&px.mu);
	c = px_ctx_find(ctx);
	if (!c) {
		rc = VWS_EARG;
	} else if (c->rfd >= 0) {
		rc = c->rfd;
	} else if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) {
		rc = VWS_EINTERNAL;
	} else {
		c->rfd = fds[0];
		c->wfd = fds[1];
		if (c->n)
			pipe_signal(c);
		rc = c->rfd;
	}
	pthread_mutex_unlock(&px.mu);
	return rc;
}

int vws_ctx_active(vws_ctx ctx)
{
	struct px_ctx *c;
	struct px_helper *h = NULL;
	struct px_reply r;
	struct px_buf b;
	int rc;
	pthread_mutex_lock(&px.mu);
	c = px_ctx_find(ctx);
	if (!c) {
		pthread_mutex_unlock(&px.mu);
		return VWS_EARG;
	}
	if (px.h && c->gen == px.h->gen)
		h = px_helper_get(0, NULL, 0);
	pthread_mutex_unlock(&px.mu);
	if (!h)
		return 0; /* no connection of it lives in a helper: none is active */
	px_buf_start(&b, WIRE_OP_ACTIVE);
	px_buf_int(&b, (int64_t)ctx);
	rc = px_call(h, &b, 1, &r, NULL, 0);
	px_buf_free(&b);
	if (rc == VWS_OK)
		rc = r.n >= 3 && !r.v[2].is_bytes ? (int)r.v[2].i : VWS_EINTERNAL;
	px_reply_free(&r);
	pthread_mutex_lock(&px.mu);
	if (rc == VWS_EENGINE && px.h != h) /* died meanwhile: its connections are reported closed */
		rc = 0;
	px_helper_put(h);
	pthread_mutex_unlock(&px.mu);
	return rc;
}

/* ---- connections ----------------------------------------------------------------- */

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
		conn_destroy(cn);
		px_seterr(err, errlen, "unknown context handle %llu", (unsigned long long)ctx);
		return VWS_EARG;
	}
	h = px_helper_get(1, err, errlen);
	if (!h) {
		pthread_mutex_unlock(&px.mu);
		conn_destroy(cn);
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
		conn_destroy(cn);
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
	conn_unlink(cn);
	pthread_mutex_unlock(&px.mu);
	pthread_mutex_lock(&px.revive_mu); /* no revival is reading its options */
	pthread_mutex_unlock(&px.revive_mu);
	conn_destroy(cn);
	fire(WIRE_OP_CONN_FREE, c, gen);
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
		conn_unlink(cn);
	else
		cn = NULL;
	pthread_mutex_unlock(&px.mu);
	if (cn) {
		pthread_mutex_lock(&px.revive_mu);
		pthread_mutex_unlock(&px.revive_mu);
		conn_destroy(cn);
	}
	return rc;
}

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
	s = server_find(id);
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

/* server_call for a reply with at most one int result (*res, when not NULL):
 * releases b and the reply. */
static int server_call_int(vws_server id, struct px_buf *b, int64_t *res, char *err, size_t errlen)
{
	struct px_reply r;
	int rc = server_call(id, b, &r, err, errlen);
	px_buf_free(b);
	if (rc == VWS_OK && res)
		*res = r.n >= 3 && !r.v[2].is_bytes ? r.v[2].i : 0;
	px_reply_free(&r);
	return rc;
}

/* What a call on a server of a dead helper returns: rc, with a message. */
static int server_dead(int rc, char *err, size_t errlen)
{
	if (rc != VWS_OK)
		px_seterr(err, errlen, "server is not listening (engine helper died)");
	return rc;
}

int vws_server_new(vws_ctx ctx, vws_server *out, char *err, size_t errlen)
{
	struct px_server *s;
	struct px_ctx *c;
	struct px_helper *h;
	struct px_reply r;
	struct px_buf b;
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

	px_buf_start(&b, WIRE_OP_SERVER_NEW);
	px_buf_int(&b, (int64_t)ctx);
	px_buf_int(&b, (int64_t)s->id);
	rc = px_call(h, &b, 1, &r, err, errlen);
	px_buf_free(&b);
	px_reply_free(&r);

	pthread_mutex_lock(&px.mu);
	c = px_ctx_find(ctx);
	if (rc == VWS_OK && c) {
		s->ctx = c;
		s->gen = h->gen;
		c->gen = h->gen;
		s->next = px.servers;
		px.servers = s;
		*out = s->id;
		s = NULL;
	} else if (rc == VWS_OK) { /* the context was freed meanwhile */
		rc = VWS_EARG;
		px_seterr(err, errlen, "unknown context handle %llu", (unsigned long long)ctx);
		pthread_mutex_unlock(&px.mu);
		px_buf_start(&b, WIRE_OP_SERVER_FREE);
		px_buf_int(&b, (int64_t)s->id);
		px_call(h, &b, 0, NULL, NULL, 0);
		px_buf_free(&b);
		pthread_mutex_lock(&px.mu);
	}
	px_helper_put(h);
	pthread_mutex_unlock(&px.mu);
	free(s);
	return rc;
}

int vws_server_set_option(vws_server s, const char *name, const char *value, char *err, size_t errlen)
{
	struct px_buf b;
	int rc;
	if (!name) {
		px_seterr(err, errlen, "option name is NULL");
		return VWS_EARG;
	}
	if (!value) {
		px_seterr(err, errlen, "value of option %s is NULL", name);
		return VWS_EARG;
	}
	px_buf_start(&b, WIRE_OP_SERVER_SET_OPTION);
	px_buf_int(&b, (int64_t)s);
	px_buf_bytes(&b, name, strlen(name));
	px_buf_bytes(&b, value, strlen(value));
	rc = server_call_int(s, &b, NULL, err, errlen);
	return rc == SERVER_DEAD ? server_dead(VWS_ESTATE, err, errlen) : rc;
}

int vws_server_listen(vws_server s, char *err, size_t errlen)
{
	struct px_buf b;
	int rc;
	px_buf_start(&b, WIRE_OP_SERVER_LISTEN);
	px_buf_int(&b, (int64_t)s);
	rc = server_call_int(s, &b, NULL, err, errlen);
	return rc == SERVER_DEAD ? server_dead(VWS_ESTATE, err, errlen) : rc;
}

int vws_server_port(vws_server s)
{
	struct px_buf b;
	int64_t port = 0;
	int rc;
	px_buf_start(&b, WIRE_OP_SERVER_PORT);
	px_buf_int(&b, (int64_t)s);
	rc = server_call_int(s, &b, &port, NULL, 0);
	if (rc == SERVER_DEAD)
		return 0;
	return rc == VWS_OK ? (int)port : rc;
}

int vws_server_broadcast(vws_server s, int opcode, const char *data, size_t len, char *err, size_t errlen)
{
	struct px_buf b;
	int64_t n = 0;
	int rc;
	if (!data && len) {
		px_seterr(err, errlen, "data is NULL with a non-zero length");
		return VWS_EARG;
	}
	px_buf_start(&b, WIRE_OP_BROADCAST);
	px_buf_int(&b, (int64_t)s);
	px_buf_int(&b, opcode);
	px_buf_tail(&b, data, len);
	rc = server_call_int(s, &b, &n, err, errlen);
	if (rc == SERVER_DEAD)
		return server_dead(VWS_ESTATE, err, errlen);
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
	px_buf_start(&b, WIRE_OP_SERVER_CLIENTS);
	px_buf_int(&b, (int64_t)s);
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
	struct px_buf b;
	int rc;
	if (!reason && len) {
		px_seterr(err, errlen, "reason is NULL with a non-zero length");
		return VWS_EARG;
	}
	px_buf_start(&b, WIRE_OP_SERVER_CLOSE);
	px_buf_int(&b, (int64_t)s);
	px_buf_int(&b, code);
	px_buf_bytes(&b, reason, len);
	rc = server_call_int(s, &b, NULL, err, errlen);
	return rc == SERVER_DEAD ? VWS_OK : rc; /* its helper died: closed */
}

int vws_server_free(vws_server s)
{
	struct px_server *sv;
	unsigned gen;
	pthread_mutex_lock(&px.mu);
	sv = server_find(s);
	if (!sv) {
		pthread_mutex_unlock(&px.mu);
		return VWS_EARG;
	}
	gen = sv->gen;
	server_unlink(sv);
	pthread_mutex_unlock(&px.mu);
	free(sv);
	fire(WIRE_OP_SERVER_FREE, s, gen);
	return VWS_OK;
}
