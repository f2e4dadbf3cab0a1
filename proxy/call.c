/*
 * call.c - calls to the helper: a call frame goes out (px_call), its caller
 * waits for the reply with the same id, until the helper has been silent too
 * long; the reader hands replies over (px_req_answer) and fails the calls of
 * a dead helper (px_reqs_fail).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proxy.h"

/* A call waiting for its reply. */
struct px_req {
	struct px_req *next;
	uint32_t id;
	unsigned gen;
	int done;
	int dead;                 /* the helper died before answering */
	pthread_cond_t cond;
	struct px_reply *reply;
};

/* A call fails with VWS_EENGINE when the helper has been silent this long:
 * no reply, and no byte of any frame (events stream ahead of replies). */
#define DEFAULT_TIMEOUT_MS 2000
#define STARTUP_GRACE_MS   10000 /* a new helper (maybe under qemu) gets this long to answer */

static void deadline_ts(int64_t deadline_ms, struct timespec *ts)
{
	ts->tv_sec = deadline_ms / 1000;
	ts->tv_nsec = (long)(deadline_ms % 1000) * 1000000;
}

static int env_int(const char *name, int def)
{
	const char *s = getenv(name);
	char *end;
	long v;
	if (!s || !*s)
		return def;
	v = strtol(s, &end, 10);
	return (*end || v <= 0 || v > INT_MAX) ? def : (int)v;
}

static struct px_req *req_unlink(uint32_t id)
{
	struct px_req **pp, *r;
	for (pp = &px.reqs; (r = *pp); pp = &r->next)
		if (r->id == id) {
			*pp = r->next;
			return r;
		}
	return NULL;
}

/*
 * Sends call frame b to h and, if want_reply, waits for the reply (values in
 * *r: status, err, results; release with px_reply_free). Returns the reply's
 * status (err filled from it), or VWS_EENGINE when the helper is gone, the
 * frame cannot be sent, or the helper is wedged: silent (no reply, no event,
 * not reading) for VWS_HELPER_TIMEOUT_MS. A reply may come after a long
 * stream of events; while they come, the call waits.
 */
int px_call(struct px_helper *h, struct px_buf *b, int want_reply, struct px_reply *r, char *err, size_t errlen)
{
	struct px_req req;
	int64_t now = px_now_ms(), deadline;
	int timeout = env_int("VWS_HELPER_TIMEOUT_MS", DEFAULT_TIMEOUT_MS), status, sent;
	struct timespec ts;

	if (b->oom) {
		px_seterr(err, errlen, "out of memory (or message over %u bytes)", WIRE_MAX_BODY);
		return VWS_EINTERNAL;
	}
	if (b->len - 4 + b->tail_len > WIRE_MAX_BODY) {
		px_seterr(err, errlen, "message too big for the engine helper (%zu bytes)", b->tail_len);
		return VWS_ETOOBIG;
	}
	deadline = now + timeout + (int64_t)(b->tail_len >> 22) * 1000; /* +1 s per 4 MiB */
	wire_put32(b->p, (uint32_t)(b->len - 4 + b->tail_len));

	memset(&req, 0, sizeof req);
	pthread_mutex_lock(&px.mu);
	if (!h->ready && deadline < h->started_ms + STARTUP_GRACE_MS)
		deadline = h->started_ms + STARTUP_GRACE_MS; /* still starting (qemu is slow) */
	if (px.h != h) {
		pthread_mutex_unlock(&px.mu);
		px_seterr(err, errlen, "engine helper died");
		return VWS_EENGINE;
	}
	if (want_reply) {
		do
			req.id = ++px.last_id;
		while (req.id == 0);
		req.gen = h->gen;
		req.reply = r;
		r->n = 0;
		px_cond_init(&req.cond);
		req.next = px.reqs;
		px.reqs = &req;
	}
	pthread_mutex_unlock(&px.mu);
	wire_put32(b->p + 6, req.id);

	pthread_mutex_lock(&h->wmu);
	sent = h->fd >= 0 && px_send_frame(h, b, deadline, timeout) == 0;
	if (!sent && h->fd >= 0)
		/* A cut frame leaves the stream unusable: end this helper; its
		 * reader sees EOF and reports its connections closed. */
		kill(h->pid, SIGKILL);
	pthread_mutex_unlock(&h->wmu);

	if (!want_reply)
		return sent ? VWS_OK : VWS_EENGINE;

	pthread_mutex_lock(&px.mu);
	/* The reply is read by the reader thread unless a caller waiting for
	 * events reads the socket now (direct.c): one that is away gives the
	 * reading back at once rather than after its grace. */
	px_rd_take_back(h);
	deadline_ts(deadline, &ts);
	while (sent && !req.done) {
		int64_t alive;
		if (pthread_cond_timedwait(&req.cond, &px.mu, &ts) != ETIMEDOUT || req.done)
			continue;
		/* Not wedged while it streams: wait until it has been silent for timeout. */
		alive = px_heard_at(h) + timeout;
		if (alive <= deadline)
			break;
		deadline = alive;
		deadline_ts(deadline, &ts);
	}
	if (!req.done) {
		req_unlink(req.id);
		pthread_mutex_unlock(&px.mu);
		pthread_cond_destroy(&req.cond);
		px_reply_free(r);
		if (!sent)
			px_seterr(err, errlen, "engine helper died (cannot send)");
		else
			px_seterr(err, errlen, "engine helper did not answer (silent for %d ms, %lld ms after the call)",
				timeout, (long long)(px_now_ms() - now));
		return VWS_EENGINE;
	}
	pthread_mutex_unlock(&px.mu);
	pthread_cond_destroy(&req.cond);
	if (req.dead) {
		px_seterr(err, errlen, "engine helper died");
		return VWS_EENGINE;
	}
	if (r->n < 2 || r->v[0].is_bytes || !r->v[1].is_bytes) {
		px_reply_free(r);
		px_seterr(err, errlen, "engine helper: malformed reply");
		return VWS_EINTERNAL;
	}
	status = (int)r->v[0].i;
	if (status != VWS_OK)
		px_seterr(err, errlen, "%s", r->v[1].b);
	return status;
}

/* The reader, px.mu held: reply v (its values move) answers call id of h, if
 * that call still waits. */
void px_req_answer(struct px_helper *h, uint32_t id, struct px_reply *v)
{
	struct px_req *q = req_unlink(id);
	if (q && q->gen == h->gen) {
		*q->reply = *v; /* moves the values */
		v->n = 0;
		q->done = 1;
		pthread_cond_signal(&q->cond);
	}
}

/* px.mu held: helper generation gen died; its calls end (VWS_EENGINE). */
void px_reqs_fail(unsigned gen)
{
	struct px_req *r, **rp;
	for (rp = &px.reqs; (r = *rp);) {
		if (r->gen != gen) {
			rp = &r->next;
			continue;
		}
		*rp = r->next; /* unlinked before its caller returns */
		r->done = r->dead = 1;
		pthread_cond_signal(&r->cond);
	}
}

int px_call_msg(struct px_helper *h, char *err, size_t errlen, int op, uint64_t id, const char *fmt, ...)
{
	struct px_reply r;
	struct px_buf b;
	va_list ap;
	int rc;
	va_start(ap, fmt);
	px_buf_vmsg(&b, op, id, fmt, ap);
	va_end(ap);
	rc = px_call(h, &b, 1, &r, err, errlen);
	px_buf_free(&b);
	px_reply_free(&r);
	return rc;
}

void px_notify(struct px_helper *h, int op, uint64_t arg)
{
	struct px_buf b;
	px_buf_start(&b, op);
	px_buf_int(&b, (int64_t)arg);
	px_call(h, &b, 0, NULL, NULL, 0);
	px_buf_free(&b);
}

/* Sends a call that wants no reply to the live helper, if its generation is gen
 * (0: whichever it is; generations count from 1). */
void px_fire(int op, uint64_t arg, unsigned gen)
{
	struct px_helper *h;
	pthread_mutex_lock(&px.mu);
	h = px.h && (gen == 0 || px.h->gen == gen) ? px_helper_get(0, NULL, 0) : NULL;
	pthread_mutex_unlock(&px.mu);
	if (!h)
		return;
	px_notify(h, op, arg);
	pthread_mutex_lock(&px.mu);
	px_helper_put(h);
	pthread_mutex_unlock(&px.mu);
}
