/*
 * direct.c - the thread that waits for a context's events (ws.loop,
 * ws.dispatch, a sync client's receive) reads the helper's socket itself, as
 * the in-process engine lets it read its connections (internal/hub/direct.go):
 * a frame no longer goes through the reader thread and the event pipe on its
 * way to the handler.
 *
 * vws_ctx_read_fds asks for the reading. The reader thread hands it over
 * between two frames (px_rd_turn) and pokes the hand-over pipe, which the
 * caller polls until then (the frame read meanwhile comes as before). The
 * holder then polls the socket, and vws_ctx_read reads what arrived without
 * waiting: every complete frame in the reader's buffer, with the reader's own
 * code (px_rd_frame), whatever context or call it is for. A frame larger than
 * the buffer, EOF, an error or a broken frame goes back to the reader thread,
 * which reads it blocking or ends the helper.
 *
 * While the holder runs handlers it is away. The reader thread takes the
 * reading back once it has been away for PX_RD_GRACE_MS, and at once when a
 * call waits for its reply (px_rd_take_back), so no reply, event of another
 * context, or flow control of the socket waits longer than that. While the
 * holder waits, the reader thread sleeps without a deadline: an idle process
 * has no wakeups from it. One context holds the reading at a time (the first
 * to ask); the others get their events through its reads or the reader
 * thread's. All the state is under px.mu; the buffer belongs to whoever reads.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proxy.h"

#define PX_RD_GRACE_MS 20
#define PX_RD_BUDGET   (256u << 10) /* bytes read by one vws_ctx_read */

/* Gives the reading back to the reader thread (px.mu held). */
static void rd_release(struct px_helper *h)
{
	h->rmode = PX_RD_THREAD;
	h->rholder = 0;
	h->rwait = 0;
	pthread_cond_signal(&h->rcv);
}

/* 1: a whole frame is in r's buffer; 0: not yet; -1: the next frame is for
 * the reader thread (larger than the buffer, or broken). */
static int rd_complete(const struct px_rd *r)
{
	size_t have = r->len - r->off;
	uint32_t n;
	if (have < 4)
		return 0;
	n = wire_get32(r->buf + r->off);
	if (n < WIRE_MIN_BODY || n > WIRE_MAX_BODY || 4 + (size_t)n > sizeof r->buf)
		return -1;
	return have >= 4 + (size_t)n;
}

int px_rd_turn(struct px_helper *h)
{
	int rc;
	pthread_mutex_lock(&px.mu);
	if (h->rmode == PX_RD_ASKED) {
		h->rmode = PX_RD_HANDED;
		px_pipe_poke(&h->handp);
	}
	while (h->rmode == PX_RD_HANDED) {
		struct timespec ts;
		int64_t due;
		if (h->rwait && !h->rleft) { /* the holder waits: so does this thread */
			h->rparked = 1;
			pthread_cond_wait(&h->rcv, &px.mu);
			h->rparked = 0;
			continue;
		}
		h->rleft = 0;
		due = (h->rwait ? px_now_ms() : h->rleft_ms) + PX_RD_GRACE_MS;
		if (!h->rwait && px_now_ms() >= due) {
			rd_release(h); /* away for the grace: the reading comes back */
			break;
		}
		ts.tv_sec = (time_t)(due / 1000);
		ts.tv_nsec = (long)(due % 1000) * 1000000;
		pthread_cond_timedwait(&h->rcv, &px.mu, &ts);
	}
	rc = h->rfail ? -1 : 0;
	pthread_mutex_unlock(&px.mu);
	return rc;
}

void px_rd_end(struct px_helper *h, const char **why)
{
	pthread_mutex_lock(&px.mu);
	if (h->rfail)
		*why = h->rfail;
	if (h->rmode == PX_RD_ASKED)
		px_pipe_poke(&h->handp); /* the asker stops polling a pipe nobody pokes */
	h->rmode = PX_RD_THREAD;
	h->rholder = 0;
	h->rwait = 0;
	h->rd = NULL;
	pthread_mutex_unlock(&px.mu);
}

void px_rd_take_back(struct px_helper *h)
{
	/* The holder's own thread is not in its wait while it makes a call, even
	 * if a wait it left did not say so. */
	if (h->rmode != PX_RD_THREAD && (!h->rwait || pthread_equal(h->rthread, pthread_self())))
		rd_release(h);
}

void px_rd_ctx_gone(uint64_t ctx)
{
	if (px.h && px.h->rholder == ctx)
		rd_release(px.h);
}

static int has_open(const struct px_ctx *c)
{
	const struct px_conn *cn;
	for (cn = c->conns; cn; cn = cn->cnext)
		if (cn->state == VWS_STATE_OPEN || cn->state == VWS_STATE_CLOSING)
			return 1;
	return 0;
}

int px_rd_fds(struct px_ctx *c, struct pollfd *fds, int max, int *now)
{
	struct px_helper *h = px.h;
	if (c->n)
		*now = 1;
	px_ctx_owe(c);
	if (!h || (h->rholder && h->rholder != c->id))
		return 0;
	/* Nothing to read for a context without an open connection (as in process).
	 * One that holds the reading gives it back: it would not poll the socket,
	 * and leaving its short waits again and again would keep the reader
	 * thread from ever finding it away. */
	if (!has_open(c) || !h->ready || !h->rd || h->fd < 0) {
		if (h->rholder == c->id)
			rd_release(h);
		return 0;
	}
	if (max < 1)
		return 1;
	if (h->rmode == PX_RD_THREAD) {
		if (px_pipe_open(&h->handp) < 0)
			return 0;
		h->rmode = PX_RD_ASKED;
		h->rholder = c->id;
	}
	h->rwait = 1;
	h->rthread = pthread_self();
	fds[0].events = POLLIN;
	fds[0].revents = 0;
	if (h->rmode == PX_RD_ASKED) {
		fds[0].fd = h->handp.fd[0];
	} else {
		fds[0].fd = h->fd;
		if (rd_complete(h->rd))
			*now = 1; /* left in the buffer by the reader thread */
	}
	return 1;
}

/* Reads without waiting and acts on every whole frame (px.mu not held).
 * Returns 1 when the reading must go back to the reader thread. */
static int rd_consume(struct px_helper *h, struct px_rd *r)
{
	struct px_reply v;
	const char *why = NULL;
	size_t got = 0;
	int drained = 0;

	memset(&v, 0, sizeof v);
	for (;;) {
		size_t room;
		ssize_t k;
		int whole;
		while ((whole = rd_complete(r)) > 0)
			if (px_rd_frame(h, r, &v, &why) < 0) {
				pthread_mutex_lock(&px.mu);
				h->rfail = why;
				pthread_mutex_unlock(&px.mu);
				return 1;
			}
		if (whole < 0)
			return 1;
		if (drained || got >= PX_RD_BUDGET)
			return 0;
		if (r->off > 0) {
			memmove(r->buf, r->buf + r->off, r->len - r->off);
			r->len -= r->off;
			r->off = 0;
		}
		room = sizeof r->buf - r->len;
		k = px_rd_recv(r, r->buf + r->len, room, MSG_DONTWAIT);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (k <= 0)
			return 1; /* EOF or an error: the reader thread finds it */
		__atomic_store_n(&h->heard_ms, (uint32_t)px_now_ms(), __ATOMIC_RELAXED);
		r->len += (size_t)k;
		got += (size_t)k;
		drained = (size_t)k < room; /* no second recv to learn it is empty */
	}
}

int px_rd_read(struct px_ctx *c, const struct pollfd *fds, int n, int again)
{
	struct px_helper *h = px.h;
	uint64_t id = c->id;
	int back = 0, ready = n >= 1 && fds[0].revents;

	if (!h || h->rholder != id)
		return (int)c->n;
	if (ready && fds[0].fd == h->handp.fd[0])
		px_pipe_drain(&h->handp); /* just handed over: read at once */
	if (h->rmode == PX_RD_HANDED && h->rd && (ready || rd_complete(h->rd))) {
		struct px_rd *r = h->rd;
		h->refs++;
		c->quiet++;
		pthread_mutex_unlock(&px.mu);
		back = rd_consume(h, r);
		pthread_mutex_lock(&px.mu);
		if ((c = px_ctx_find(id)))
			c->quiet--;
		if (back && h->rholder == id)
			rd_release(h);
		px_helper_put(h);
		h = px.h;
	}
	if (!c)
		return VWS_EARG; /* freed meanwhile */
	if (back || !h || h->rholder != id)
		return (int)c->n;
	if (!again || c->n > 0) { /* the wait ends here */
		if (px.reqs) { /* a call waits for its reply: not until the grace ends */
			rd_release(h);
			return (int)c->n;
		}
		h->rwait = 0;
		h->rleft = 1;
		h->rleft_ms = px_now_ms();
		if (h->rparked)
			pthread_cond_signal(&h->rcv);
	}
	return (int)c->n;
}
