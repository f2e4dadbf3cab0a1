/*
 * readtest.h - checks of reading on the waiting thread (vws_ctx_read_fds,
 * vws_ctx_read) for the C tests of both variants. Include after
 * verawebsockets.h and after defining check(), now_ms() and VWS_FN(f) (how
 * the test calls f: p_##f through dlsym, or f itself).
 */
#ifndef VWS_TEST_READTEST_H
#define VWS_TEST_READTEST_H

#include <poll.h>
#include <string.h>

/* One wait of a thread that reads ctx itself: claim, poll up to ms, read.
 * *before, *after: events pending before and after vws_ctx_read. Returns the
 * number of fds polled besides none, or a negative status. */
static int rt_wait(vws_ctx ctx, int ms, int *before, int *after)
{
	struct pollfd p[16];
	int now = 0, n = VWS_FN(vws_ctx_read_fds)(ctx, p, 16, &now);
	if (n < 0)
		return n;
	if (n > 16)
		n = 16;
	poll(p, (nfds_t)n, now ? 0 : ms);
	*before = VWS_FN(vws_ctx_pending)(ctx);
	if (VWS_FN(vws_ctx_read)(ctx, p, n, 0) != VWS_OK)
		return VWS_EINTERNAL;
	*after = VWS_FN(vws_ctx_pending)(ctx);
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

/* direct: the variant reads on the waiting thread (in process); else the
 * helper reads and there is never anything to poll. */
static void read_checks(const char *url, int direct)
{
	char err[256];
	vws_ctx ctx = 0;
	vws_conn c = 0;
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
	check(VWS_FN(vws_ctx_read)(ctx, p, 0, 0) == VWS_OK, "read after it");
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
	if (direct)
		check(maxfds >= 1 && synchronous >= 3, "in process the waiting thread reads: %d fds, %d echoes queued by "
		      "vws_ctx_read itself", maxfds, synchronous);
	else
		check(maxfds == 0, "out of process nothing to poll (%d fds)", maxfds);
	VWS_FN(vws_conn_close)(c, 1000, "", 0, err, sizeof err);
	memset(&ev, 0, sizeof ev);
	while (rt_next(ctx, &ev, &maxfds) && ev.type != VWS_EV_CLOSED)
		VWS_FN(vws_event_clear)(&ev);
	check(ev.type == VWS_EV_CLOSED && ev.code == 1000, "closed 1000 (%d)", ev.code);
	VWS_FN(vws_event_clear)(&ev);
	VWS_FN(vws_conn_free)(c);
	VWS_FN(vws_ctx_free)(ctx);
}

#endif
