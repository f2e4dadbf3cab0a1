/*
 * queue.c - a context's event queue (px.mu held): pushing, popping, the
 * readiness pipe of vws_ctx_event_fd (a px_pipe, as the helper's hand-over
 * pipe), and failing a connection in order behind the events its caller has
 * yet to handle.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy.h"

void px_pipe_init(struct px_pipe *p)
{
	p->fd[0] = p->fd[1] = -1;
	p->signaled = 0;
}

int px_pipe_open(struct px_pipe *p)
{
	if (p->fd[0] >= 0)
		return 0;
	if (pipe2(p->fd, O_CLOEXEC | O_NONBLOCK) < 0) {
		px_pipe_init(p);
		return -1;
	}
	p->signaled = 0;
	return 0;
}

void px_pipe_poke(struct px_pipe *p)
{
	if (p->fd[1] < 0 || p->signaled)
		return;
	p->signaled = 1;
	if (write(p->fd[1], "e", 1) < 0) { /* full or closed: still readable */ }
}

void px_pipe_drain(struct px_pipe *p)
{
	char buf[64];
	if (p->fd[0] < 0 || !p->signaled)
		return;
	p->signaled = 0;
	while (read(p->fd[0], buf, sizeof buf) == (ssize_t)sizeof buf) {}
}

void px_pipe_close(struct px_pipe *p)
{
	if (p->fd[0] >= 0) {
		close(p->fd[0]);
		close(p->fd[1]);
	}
	px_pipe_init(p);
}

/* Signals the pipe for events queued quietly (direct.c), unless a quiet read
 * is still going on: its caller takes them without the pipe. */
void px_ctx_owe(struct px_ctx *c)
{
	if (c->n && !c->quiet)
		px_pipe_poke(&c->ev);
}

/* Spare queue nodes (px.mu held): a burst of events reuses them instead of a
 * malloc and a free each. */
#define PX_SPARE_MAX 256
static struct px_ev *spare;
static int nspare;

/* Returns a queue node, spare or new (NULL: no memory). */
static struct px_ev *ev_new(void)
{
	struct px_ev *e = spare;
	if (!e)
		return malloc(sizeof *e);
	spare = e->next;
	nspare--;
	return e;
}

void px_ev_free(struct px_ev *e)
{
	if (nspare < PX_SPARE_MAX) {
		e->next = spare;
		spare = e;
		nspare++;
	} else {
		free(e);
	}
}

/* Queues a copy of *ev (it takes ev->data). */
void px_push(struct px_ctx *c, const vws_event *ev)
{
	struct px_ev *e = ev_new();
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
	c->n++;
	if (!c->quiet) /* a quiet push is signaled when the pipe is asked for */
		px_pipe_poke(&c->ev);
	if (c->waiters)
		pthread_cond_broadcast(&c->cond);
}

/* Unlinks the oldest event; the queue must not be empty. */
struct px_ev *px_queue_pop(struct px_ctx *c)
{
	struct px_ev *e = c->head;
	c->head = e->next;
	if (!c->head)
		c->tail = NULL;
	if (--c->n == 0)
		px_pipe_drain(&c->ev);
	return e;
}

/* Marks the connection of ev as having an event taken by the caller's current call. */
void px_mark_taken(struct px_ctx *c, const vws_event *ev)
{
	struct px_conn *cn = px_conn_find(ev->conn);
	if (cn)
		cn->taken = c->calls;
}

void px_queue_clear(struct px_ctx *c)
{
	struct px_ev *e, *next;
	for (e = c->head; e; e = next) {
		next = e->next;
		free(e->ev.data);
		px_ev_free(e);
	}
	c->head = c->tail = NULL;
	c->n = 0;
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
	px_fire(WIRE_OP_CONN_FAIL, a.conn, a.gen);
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
