/*
 * wait.c - every wait of the script's thread (ws.loop, ws.dispatch, the sync
 * client) and ws.event_fd. While it waits, the thread holds no lock and runs
 * no Lua; with hook delivery it also delivers Luup-mode events that arrive.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "vws_lua.h"

/* The event fd of ctx, cached for the state's own contexts (called under the lock). */
int vl_event_fd(vl_state *st, vws_ctx ctx)
{
	if (ctx == st->ctxA) {
		if (st->fdA < 0)
			st->fdA = vws_ctx_event_fd(ctx);
		return st->fdA;
	}
	if (ctx == st->ctxB) {
		if (st->fdB < 0)
			st->fdB = vws_ctx_event_fd(ctx);
		return st->fdB;
	}
	return vws_ctx_event_fd(ctx);
}

#define VL_MAX_WAIT 4

/* The longest single poll: every wait wakes on its event fds (and on SIGINT, which
 * Linux gives the main thread first), so this only bounds how late a Ctrl-C (or a
 * stop) is seen by a Lua state that runs on another thread: an idle loop wakes
 * every 5 s, and goes on polling the connections it holds (vl_wait keeps them). */
#define VL_WAIT_SLICE_MS 5000

/* The script's thread got a hook it did not have when the wait began, and it is
 * not ours: lua.c's (and LuaJIT's) SIGINT handler sets one to stop the script. */
static int vl_interrupted(vl_state *st, lua_Hook h0)
{
	lua_Hook h = lua_gethook(st->main_L);
	return h && h != h0 && !vl_hook_is_ours(h);
}

/* Claims the reading of ctx's connections for this wait (vws_ctx_read_fds) and
 * appends their descriptors to p[*nfd..], growing p past its room *cap (p is
 * *own when grown: the caller frees it). Returns the number added; *now: poll
 * without waiting. A failure leaves the reading to the engine. */
static int vl_claim(vws_ctx ctx, struct pollfd **p, int *cap, struct pollfd **own, int nfd, int *now)
{
	for (;;) {
		int n = vws_ctx_read_fds(ctx, *p + nfd, *cap - nfd, now);
		struct pollfd *q;
		if (n <= *cap - nfd)
			return n < 0 ? 0 : n;
		q = realloc(*own, sizeof **p * (size_t)(nfd + n + 8));
		if (!q) /* the rest stay unread while this thread waits (at most a wait slice) */
			return *cap - nfd;
		if (!*own)
			memcpy(q, *p, sizeof **p * (size_t)nfd);
		*own = *p = q;
		*cap = nfd + n + 8;
	}
}

/* The next poll's timeout: what is left until deadline (timeout_ms >= 0; may be
 * 0 or less), at most a slice. */
static int64_t vl_slice(int timeout_ms, int64_t deadline)
{
	int64_t left = timeout_ms >= 0 ? deadline - vl_now_ms() : VL_WAIT_SLICE_MS;
	return left > VL_WAIT_SLICE_MS ? VL_WAIT_SLICE_MS : left;
}

/* Returns rc from vl_wait. held: the last vws_ctx_read said again (the wait goes
 * on), so the engine still counts this thread as waiting: tell it the wait ended,
 * or it would leave the reading with a thread that runs Lua now. */
static int vl_wait_end(vws_ctx ctx, int held, int rc)
{
	if (held)
		vws_ctx_read(ctx, NULL, 0, 0);
	return rc;
}

int vl_wait(vl_state *st, lua_State *L, const vws_ctx *ctxs, int n, int timeout_ms, int *delivered)
{
	int64_t deadline = timeout_ms >= 0 ? vl_now_ms() + timeout_ms : 0;
	int hook = VL_MODE(st) == VL_DELIVERY_HOOK;
	lua_Hook h0 = lua_gethook(st->main_L);
	int held = 0;

	for (;;) {
		struct pollfd room[VL_MAX_WAIT + 1 + 32], *p = room, *own = NULL;
		int i, nfd = 0, fallback = 0, depth, own_b = 0, cap = (int)(sizeof room / sizeof room[0]);
		int nd, now = 0, stop, intr, again, queued;
		int64_t left;

		if (hook) {
			int k = vl_hook_service(st, L);
			if (delivered)
				*delivered += k;
		}
		/* ctxs[0]'s pending events: vws_ctx_read_fds says so (now), and
		 * vws_ctx_read returns their count (one call into the engine fewer). */
		for (i = 0; i < n && i < VL_MAX_WAIT; i++) {
			if (i > 0 && vws_ctx_pending(ctxs[i]) > 0)
				return vl_wait_end(ctxs[0], held, 1);
			if (ctxs[i] == st->ctxB)
				own_b = 1;
			p[nfd].fd = vl_event_fd(st, ctxs[i]);
			p[nfd].events = POLLIN;
			p[nfd].revents = 0;
			if (p[nfd].fd < 0)
				fallback = 1;
			else
				nfd++;
		}
		left = vl_slice(timeout_ms, deadline);
		if (left <= 0)
			return vl_wait_end(ctxs[0], held, 0);
		/* Luup-mode events wake this wait only where it can deliver them. */
		if (hook && !own_b && st->delivering == 0 && !VL_STOPPED(st)) {
			p[nfd].fd = vl_event_fd(st, st->ctxB);
			p[nfd].events = POLLIN;
			p[nfd].revents = 0;
			if (p[nfd].fd >= 0)
				nfd++;
		}
		/* This thread reads its standalone connections itself while it waits
		 * (ctxs[0]: ws.loop's and ws.dispatch's ctxA, or a sync client's). */
		nd = vl_claim(ctxs[0], &p, &cap, &own, nfd, &now);
		for (;;) {
			int rc;
			depth = vl_lock_release_all(&st->lock);
			if (now)
				rc = poll(p, (nfds_t)(nfd + nd), 0);
			else if (fallback) /* no event fd: look again in small steps */
				rc = poll(p, (nfds_t)(nfd + nd), left < 10 ? (int)left : 10);
			else
				rc = poll(p, (nfds_t)(nfd + nd), (int)left);
			vl_lock_reacquire(&st->lock, depth);
			/* lua.c's SIGINT handler (laction) sets its hook while we wait: then we
			 * return to Lua at once, where it raises "interrupted!" with a traceback. */
			stop = VL_STOPPED(st);
			intr = !stop && vl_interrupted(st, h0);
			/* Back at once (the engine need not watch) unless this wait ends here
			 * or runs Luup handlers (hook delivery) before it polls again. */
			again = !stop && !intr && !hook && (timeout_ms < 0 || deadline - vl_now_ms() > 0);
			/* A whole slice with nothing on any descriptor: the engine has nothing to
			 * say (whatever it has wakes one of them), so the same descriptors again
			 * without entering it. An idle loop's slice costs one wakeup, not the Go
			 * runtime's (its monitor thread wakes when a call returns to C). */
			if (rc != 0 || now || fallback || !again)
				break;
			left = vl_slice(timeout_ms, deadline);
			if (left < 0)
				left = 0;
		}
		queued = vws_ctx_read(ctxs[0], p + nfd, nd, again);
		held = again && queued <= 0; /* else the read ended the wait itself */
		free(own);
		if (stop)
			return 0;
		if (intr)
			return -1;
		if (queued > 0)
			return 1;
	}
}

int vl_ws_loop(lua_State *L)
{
	int timeout = vl_opt_ms(L, 1), done = 0, active = 0, interrupted = 0;
	vl_state *st = vl_upstate(L);
	int64_t deadline;

	if (!st)
		return vl_push_closed(L);
	deadline = timeout >= 0 ? vl_now_ms() + timeout : 0;
	vl_lock_acquire(&st->lock);
	for (;;) {
		int64_t left = -1;
		vl_deliver_pending(st, L, st->ctxA, -1);
		active = vws_ctx_active(st->ctxA);
		if (active < 0)
			break; /* the engine failed: nil, err below */
		if (VL_STOPPED(st) || (active == 0 && vws_ctx_pending(st->ctxA) <= 0)) {
			done = 1;
			break;
		}
		if (timeout >= 0) {
			left = deadline - vl_now_ms();
			if (left <= 0)
				break;
		}
		if (vl_wait(st, L, &st->ctxA, 1, (int)left, NULL) < 0) {
			interrupted = 1;
			break;
		}
	}
	vl_lock_release(&st->lock);
	if (done) {
		lua_pushboolean(L, 1);
		return 1;
	}
	if (active < 0)
		return vl_push_fail(L, active, NULL);
	lua_pushboolean(L, 0);
	if (interrupted)
		lua_pushliteral(L, "interrupted");
	else
		lua_pushliteral(L, "timeout");
	return 2;
}

/* ws.dispatch([ms]): delivers what is pending for this thread: standalone events,
 * and Luup-mode events where they are this thread's to run (hook and thread
 * delivery: all; in a Luup host: the calling plugin's). Waits up to ms for the
 * first. Returns the number delivered. */
int vl_ws_dispatch(lua_State *L)
{
	int max = vl_opt_ms(L, 1), n = 0, mode;
	vl_state *st = vl_upstate(L);
	vl_group *g = NULL;
	vws_ctx both[2];
	int nctx = 1;
	int64_t deadline;

	if (!st)
		return vl_push_closed(L);
	if (max < 0)
		max = 0;
	deadline = vl_now_ms() + max;
	mode = VL_MODE(st);
	if (mode == VL_DELIVERY_LUUP)
		g = vl_group_of_caller(st, L);
	vl_lock_acquire(&st->lock);
	both[0] = st->ctxA;
	if (mode == VL_DELIVERY_HOOK || mode == VL_DELIVERY_THREAD)
		both[nctx++] = st->ctxB;
	else if (g)
		both[nctx++] = g->ctx;
	for (;;) {
		int64_t left;
		int i;
		for (i = 0; i < nctx; i++)
			n += vl_deliver_pending(st, L, both[i], -1);
		if (n > 0 || VL_STOPPED(st))
			break;
		left = deadline - vl_now_ms();
		if (left <= 0)
			break;
		if (vl_wait(st, L, both, nctx, (int)left, &n) < 0)
			break;
	}
	vl_lock_release(&st->lock);
	lua_pushinteger(L, n);
	return 1;
}

int vl_ws_event_fd(lua_State *L)
{
	vl_state *st = vl_upstate(L);
	int fd;
	if (!st)
		return vl_push_closed(L);
	vl_lock_acquire(&st->lock);
	fd = vws_ctx_event_fd(st->ctxA);
	vl_lock_release(&st->lock);
	if (fd < 0)
		return vl_push_fail(L, fd, NULL);
	lua_pushinteger(L, fd);
	return 1;
}
