/*
 * readtest.h - checks of reading on the waiting thread (vws_ctx_read_fds,
 * vws_ctx_read) for the C tests of both variants. Include after
 * verawebsockets.h and after defining check(), now_ms() and VWS_FN(f) (how
 * the test calls f: p_##f through dlsym, or f itself).
 */
#ifndef VWS_TEST_READTEST_H
#define VWS_TEST_READTEST_H

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One wait of a thread that reads ctx itself: claim, poll up to ms, read.
 * *before, *after: events pending before and after vws_ctx_read. Returns the
 * number of fds polled besides none, or a negative status. */
static int rt_wait(vws_ctx ctx, int ms, int *before, int *after)
{
	struct pollfd p[16];
	int now = 0, k, n = VWS_FN(vws_ctx_read_fds)(ctx, p, 16, &now);
	if (n < 0)
		return n;
	if (n > 16)
		n = 16;
	poll(p, (nfds_t)n, now ? 0 : ms);
	*before = VWS_FN(vws_ctx_pending)(ctx);
	k = VWS_FN(vws_ctx_read)(ctx, p, n, 0);
	*after = VWS_FN(vws_ctx_pending)(ctx);
	if (k < 0 || k > *after) { /* the count it returns; nothing took events since */
		check(0, "vws_ctx_read returned %d with %d pending after it", k, *after);
		return VWS_EINTERNAL;
	}
	return n;
}

/* The next event of ctx, reading while waiting (up to 5 s): 1, or 0. */
static int rt_next(vws_ctx ctx, vws_event *ev, int *maxfds)
{
	long end = now_ms() + 5000;
	while (now_ms() < end) {
		int before, after, n;
		if (VWS_FN(vws_ctx_next_event)(ctx, 0, ev) == 1)
			return 1;
		n = rt_wait(ctx, 50, &before, &after);
		if (n > *maxfds)
			*maxfds = n;
	}
	return 0;
}

/* Both variants read on the waiting thread: in process the connections, out
 * of process the helper's socket. */
static void read_checks(const char *url)
{
	char err[256];
	vws_ctx ctx = 0, ctx2 = 0;
	vws_conn c = 0, c2 = 0;
	vws_event ev;
	struct pollfd p[1];
	int now = 7, maxfds = 0, i, synchronous = 0, echoed = 0;

	check(VWS_FN(vws_ctx_read_fds)(0, p, 1, &now) == VWS_EARG, "read_fds(bad ctx) -> EARG");
	check(VWS_FN(vws_ctx_read)(0, p, 0, 0) == VWS_EARG, "read(bad ctx) -> EARG");
	if (VWS_FN(vws_ctx_new)(&ctx, err, sizeof err) != VWS_OK ||
	    VWS_FN(vws_conn_new)(ctx, url, &c, err, sizeof err) != VWS_OK) {
		check(0, "read checks: ctx and conn (%s)", err);
		return;
	}
	check(VWS_FN(vws_ctx_read_fds)(ctx, NULL, 1, &now) == VWS_EARG, "read_fds(NULL fds, max 1) -> EARG");
	check(VWS_FN(vws_ctx_read_fds)(ctx, p, 1, &now) == 0 && now == 0, "nothing to claim before connect");
	check(VWS_FN(vws_ctx_read)(ctx, p, 0, 0) == 0, "read after it: nothing pending");
	VWS_FN(vws_conn_connect)(c, err, sizeof err);
	memset(&ev, 0, sizeof ev);
	check(rt_next(ctx, &ev, &maxfds) && ev.type == VWS_EV_ESTABLISHED, "established, reading while waiting");
	VWS_FN(vws_event_clear)(&ev);
	/* Each echo is read by this thread once the reading is handed over: the
	 * event is queued by vws_ctx_read, not before it. */
	for (i = 0; i < 20 && echoed == i; i++) {
		long end = now_ms() + 5000;
		int before = 0, after = 0, n;
		if (VWS_FN(vws_conn_send)(c, VWS_OP_TEXT, "direct", 6, err, sizeof err) != VWS_OK)
			break;
		while (now_ms() < end) {
			n = rt_wait(ctx, 50, &before, &after);
			if (n > maxfds)
				maxfds = n;
			if (after > 0)
				break;
		}
		if (after > 0 && before == 0)
			synchronous++;
		if (VWS_FN(vws_ctx_next_event)(ctx, 0, &ev) == 1 && ev.type == VWS_EV_RECEIVE && ev.len == 6 &&
		    memcmp(ev.data, "direct", 6) == 0)
			echoed++;
		VWS_FN(vws_event_clear)(&ev);
		if (synchronous >= 3)
			break;
	}
	check(echoed == i + (synchronous >= 3), "every echo arrived (%d)", echoed);
	check(maxfds >= 1 && synchronous >= 3, "the waiting thread reads: %d fds, %d echoes queued by "
	      "vws_ctx_read itself", maxfds, synchronous);
	/* A second context, open before the first one's last connection closes. */
	if (VWS_FN(vws_ctx_new)(&ctx2, err, sizeof err) != VWS_OK ||
	    VWS_FN(vws_conn_new)(ctx2, url, &c2, err, sizeof err) != VWS_OK ||
	    VWS_FN(vws_conn_connect)(c2, err, sizeof err) != VWS_OK) {
		check(0, "read checks: a second context (%s)", err);
		return;
	}
	check(VWS_FN(vws_ctx_next_event)(ctx2, 5000, &ev) == 1 && ev.type == VWS_EV_ESTABLISHED, "second context open");
	VWS_FN(vws_event_clear)(&ev);
	VWS_FN(vws_conn_close)(c, 1000, "", 0, err, sizeof err);
	memset(&ev, 0, sizeof ev);
	while (rt_next(ctx, &ev, &maxfds) && ev.type != VWS_EV_CLOSED)
		VWS_FN(vws_event_clear)(&ev);
	check(ev.type == VWS_EV_CLOSED && ev.code == 1000, "closed 1000 (%d)", ev.code);
	VWS_FN(vws_event_clear)(&ev);
	/* The first context may still hold the reading, with no connection open:
	 * it has nothing to poll, and its waits of a few ms must not keep the
	 * other context's echo from being read (out of process: one socket). */
	{
		long end = now_ms() + 3000;
		int got = 0, before, after;
		VWS_FN(vws_conn_send)(c2, VWS_OP_TEXT, "other", 5, err, sizeof err);
		while (!got && now_ms() < end) {
			rt_wait(ctx, 5, &before, &after);
			if (VWS_FN(vws_ctx_next_event)(ctx2, 0, &ev) == 1) {
				got = ev.type == VWS_EV_RECEIVE;
				VWS_FN(vws_event_clear)(&ev);
			}
		}
		check(got, "with no connection open, short waits of the first context let the second one's echo in");
	}
	VWS_FN(vws_conn_free)(c2);
	VWS_FN(vws_ctx_free)(ctx2);
	VWS_FN(vws_conn_free)(c);
	VWS_FN(vws_ctx_free)(ctx);
}

/* A thread that makes calls (vws_conn_buffered: a call to the helper out of
 * process) while another reads on its waiting thread: the replies must come
 * while the reader is away, not only when it is back in its wait. */
struct rt_caller {
	vws_conn c;
	int stop;                 /* atomic */
	int calls, failed;
	long worst_ms;
};

static void *rt_caller_main(void *arg)
{
	struct rt_caller *k = arg;
	while (!__atomic_load_n(&k->stop, __ATOMIC_RELAXED)) {
		size_t b = 0;
		long t0 = now_ms(), t;
		if (VWS_FN(vws_conn_buffered)(k->c, &b) != VWS_OK)
			k->failed++;
		t = now_ms() - t0;
		if (t > k->worst_ms)
			k->worst_ms = t;
		k->calls++;
	}
	return NULL;
}

/* Churn: the reading goes to the waiting thread and back many times while
 * CHURN_N echoes stream in. The thread is away (handlers, elsewhere) for
 * 0-30 ms between its waits, and ends a wait with again = 0 or 1 at random,
 * while another thread makes calls. Every echo arrives once and in order. */
#define CHURN_N 3000
static void read_churn(const char *url)
{
	char err[256], msg[32];
	vws_ctx ctx = 0;
	vws_conn c = 0;
	vws_event ev;
	struct rt_caller k;
	pthread_t th;
	int i, next = 0, bad = 0, turns = 0, direct = 0, maxfds = 0;
	long end;
	unsigned seed = 12345;

	memset(&k, 0, sizeof k);
	if (VWS_FN(vws_ctx_new)(&ctx, err, sizeof err) != VWS_OK ||
	    VWS_FN(vws_conn_new)(ctx, url, &c, err, sizeof err) != VWS_OK) {
		check(0, "churn: ctx and conn (%s)", err);
		return;
	}
	VWS_FN(vws_conn_connect)(c, err, sizeof err);
	memset(&ev, 0, sizeof ev);
	check(rt_next(ctx, &ev, &maxfds) && ev.type == VWS_EV_ESTABLISHED, "churn: established");
	VWS_FN(vws_event_clear)(&ev);
	k.c = c;
	pthread_create(&th, NULL, rt_caller_main, &k);
	end = now_ms() + 60000;
	i = 0;
	while (next < CHURN_N && !bad && now_ms() < end) {
		struct pollfd p[16];
		int now = 0, before, after, n, again, sent = i + 10;
		struct timespec away;
		for (; i < CHURN_N && i < sent; i++) { /* ten more each turn: the echoes go on streaming */
			int len = snprintf(msg, sizeof msg, "m%06d", i);
			if (VWS_FN(vws_conn_send)(c, VWS_OP_TEXT, msg, (size_t)len, err, sizeof err) != VWS_OK) {
				check(0, "churn: send %d: %s", i, err);
				bad = 1;
			}
		}
		n = VWS_FN(vws_ctx_read_fds)(ctx, p, 16, &now);
		if (n < 0 || n > 16)
			break;
		poll(p, (nfds_t)n, now ? 0 : 20);
		before = VWS_FN(vws_ctx_pending)(ctx);
		seed = seed * 1103515245u + 12345u;
		again = (seed >> 16) & 1;
		VWS_FN(vws_ctx_read)(ctx, p, n, again);
		after = VWS_FN(vws_ctx_pending)(ctx);
		turns++;
		if (n > 0 && after > before)
			direct++;
		while (VWS_FN(vws_ctx_next_event)(ctx, 0, &ev) == 1) {
			if (ev.type == VWS_EV_RECEIVE) {
				snprintf(msg, sizeof msg, "m%06d", next);
				if (ev.len != strlen(msg) || memcmp(ev.data, msg, ev.len) != 0)
					bad = 1;
				else
					next++;
			}
			VWS_FN(vws_event_clear)(&ev);
		}
		seed = seed * 1103515245u + 12345u;
		away.tv_sec = 0;
		away.tv_nsec = (long)((seed >> 16) % 31) * 1000000L;
		/* Away only where the wait ended (again promises to come straight back
		 * when nothing is pending); half of those come straight back too. */
		if ((!again || after > 0) && ((seed >> 8) & 1))
			nanosleep(&away, NULL);
	}
	__atomic_store_n(&k.stop, 1, __ATOMIC_RELAXED);
	pthread_join(th, NULL);
	check(next == CHURN_N && !bad, "churn: %d of %d echoes, in order%s (%d turns, %d read by the waiting thread)",
	      next, CHURN_N, bad ? " NOT" : "", turns, direct);
	check(direct > 0, "churn: the waiting thread read (%d of %d turns)", direct, turns);
	check(k.calls > 0 && k.failed == 0 && k.worst_ms < 1000,
	      "churn: %d calls from another thread meanwhile, %d failed, the slowest %ld ms", k.calls, k.failed, k.worst_ms);
	VWS_FN(vws_conn_close)(c, 1000, "", 0, err, sizeof err);
	while (rt_next(ctx, &ev, &maxfds) && ev.type != VWS_EV_CLOSED)
		VWS_FN(vws_event_clear)(&ev);
	VWS_FN(vws_event_clear)(&ev);
	VWS_FN(vws_conn_free)(c);
	VWS_FN(vws_ctx_free)(ctx);
}

#endif
