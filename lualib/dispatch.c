/*
 * dispatch.c - the per-VM record, its lock, the Luup-mode dispatcher thread
 * and the one protected path every event handler is called through.
 *
 * Locking rules (see THREADING in the README):
 *   - Lua runs in a VM only by a thread holding that VM's lock (the host's
 *     threads with vws_lua_lock, the dispatcher, and every ws.* entry).
 *   - The lock is recursive and can be given up completely while a thread
 *     waits in C (ws.loop, ws.dispatch, the sync client), like Lua's own
 *     lua_unlock around C calls: the thread runs no Lua while it waits.
 *   - No Lua error is ever raised while the lock is held: work under the lock
 *     is ABI calls (plain C) and Lua calls made through lua_pcall/lua_cpcall.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vws_lua.h"

/* ---- The lock ------------------------------------------------------------ */

void vl_lock_init(vl_lock *k)
{
	pthread_mutex_init(&k->m, NULL);
	pthread_cond_init(&k->cv, NULL);
	k->count = 0;
}

void vl_lock_destroy(vl_lock *k)
{
	pthread_cond_destroy(&k->cv);
	pthread_mutex_destroy(&k->m);
}

static int owned_by_me(const vl_lock *k)
{
	return k->count > 0 && pthread_equal(k->owner, pthread_self());
}

void vl_lock_acquire(vl_lock *k)
{
	pthread_mutex_lock(&k->m);
	if (owned_by_me(k)) {
		k->count++;
	} else {
		while (k->count > 0)
			pthread_cond_wait(&k->cv, &k->m);
		k->owner = pthread_self();
		k->count = 1;
	}
	pthread_mutex_unlock(&k->m);
}

/* Like vl_lock_acquire, but gives up (returns 0) once VL_STOPPED(st) is set. */
int vl_lock_acquire_or_stop(vl_lock *k, vl_state *st)
{
	int ok = 0;
	pthread_mutex_lock(&k->m);
	if (owned_by_me(k)) {
		k->count++;
		ok = 1;
	} else {
		while (k->count > 0 && !VL_STOPPED(st))
			pthread_cond_wait(&k->cv, &k->m);
		if (!VL_STOPPED(st)) {
			k->owner = pthread_self();
			k->count = 1;
			ok = 1;
		}
	}
	pthread_mutex_unlock(&k->m);
	return ok;
}

void vl_lock_release(vl_lock *k)
{
	pthread_mutex_lock(&k->m);
	if (owned_by_me(k) && --k->count == 0)
		pthread_cond_broadcast(&k->cv);
	pthread_mutex_unlock(&k->m);
}

int vl_lock_release_all(vl_lock *k)
{
	int depth = 0;
	pthread_mutex_lock(&k->m);
	if (owned_by_me(k)) {
		depth = k->count;
		k->count = 0;
		pthread_cond_broadcast(&k->cv);
	}
	pthread_mutex_unlock(&k->m);
	return depth;
}

void vl_lock_reacquire(vl_lock *k, int depth)
{
	if (depth <= 0)
		return;
	pthread_mutex_lock(&k->m);
	while (k->count > 0)
		pthread_cond_wait(&k->cv, &k->m);
	k->owner = pthread_self();
	k->count = depth;
	pthread_mutex_unlock(&k->m);
}

/* ---- The list of records, for vws_lua_lock ---------------------------------- */

static pthread_mutex_t list_mu = PTHREAD_MUTEX_INITIALIZER;
static vl_state *list_head;

static void state_unref(vl_state *st)
{
	int last;
	pthread_mutex_lock(&list_mu);
	last = --st->refs == 0;
	pthread_mutex_unlock(&list_mu);
	if (!last)
		return;
	vl_lock_destroy(&st->lock);
	if (st->wake[0] >= 0)
		close(st->wake[0]);
	if (st->wake[1] >= 0)
		close(st->wake[1]);
	free(st);
}

static vl_state *find_state(lua_State *L)
{
	vl_state *st;
	pthread_mutex_lock(&list_mu);
	for (st = list_head; st; st = st->next)
		if (!VL_STOPPED(st) && (st->main_L == L || st->T == L))
			break;
	pthread_mutex_unlock(&list_mu);
	return st;
}

/* vws_lua_lock takes the lock of the VM `L` belongs to. L must be the
 * lua_State the module was required in (or the dispatcher's thread). Unknown
 * states are ignored. Recursive: pair every call with vws_lua_unlock. */
VL_EXPORT void vws_lua_lock(lua_State *L)
{
	vl_state *st = find_state(L);
	if (st)
		vl_lock_acquire(&st->lock);
}

/* vws_lua_unlock releases one level of vws_lua_lock. */
VL_EXPORT void vws_lua_unlock(lua_State *L)
{
	vl_state *st = find_state(L);
	if (st)
		vl_lock_release(&st->lock);
}

/* ---- Record life ------------------------------------------------------------ */

/* Called from luaopen (may raise on memory errors before any ABI call; the
 * contexts are made last and freed on failure by the caller's __gc). */
vl_state *vl_state_new(lua_State *L, char *err, size_t errlen)
{
	vl_state *st = calloc(1, sizeof *st);
	if (!st) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	st->refs = 1;
	st->main_L = L;
	st->wake[0] = st->wake[1] = -1;
	st->fdA = st->fdB = -1;
	st->T_ref = st->conns_ref = st->live_ref = st->dying_ref = LUA_NOREF;
	vl_lock_init(&st->lock);
	if (pipe(st->wake) != 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		st->wake[0] = st->wake[1] = -1;
		state_unref(st);
		return NULL;
	}
	fcntl(st->wake[0], F_SETFL, O_NONBLOCK);
	fcntl(st->wake[1], F_SETFL, O_NONBLOCK);
	fcntl(st->wake[0], F_SETFD, FD_CLOEXEC);
	fcntl(st->wake[1], F_SETFD, FD_CLOEXEC);
	if (vws_ctx_new(&st->ctxA, err, errlen) != VWS_OK) {
		state_unref(st);
		return NULL;
	}
	if (vws_ctx_new(&st->ctxB, err, errlen) != VWS_OK) {
		vws_ctx_free(st->ctxA);
		state_unref(st);
		return NULL;
	}
	pthread_mutex_lock(&list_mu);
	st->next = list_head;
	list_head = st;
	pthread_mutex_unlock(&list_mu);
	return st;
}

void vl_state_close(vl_state *st)
{
	vl_state **pp;
	char c = 1;
	ssize_t n;

	/* Wait until no handler runs on the dispatcher, then tell it to stop. */
	vl_lock_acquire(&st->lock);
	pthread_mutex_lock(&st->lock.m);
	__atomic_store_n(&st->stop, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&st->lock.cv);
	pthread_mutex_unlock(&st->lock.m);
	vl_lock_release(&st->lock);
	n = write(st->wake[1], &c, 1);
	(void)n;
	vws_ctx_wake(st->ctxB);
	if (st->started) {
		if (pthread_equal(st->thread, pthread_self()))
			pthread_detach(st->thread);
		else
			pthread_join(st->thread, NULL);
	}
	vws_ctx_free(st->ctxA);
	vws_ctx_free(st->ctxB);
	pthread_mutex_lock(&list_mu);
	for (pp = &list_head; *pp; pp = &(*pp)->next)
		if (*pp == st) {
			*pp = st->next;
			break;
		}
	pthread_mutex_unlock(&list_mu);
	state_unref(st);
}

vl_state *vl_upstate(lua_State *L)
{
	vl_state_ud *ud = lua_touserdata(L, lua_upvalueindex(1));
	return ud ? ud->st : NULL;
}

/* ---- Handlers --------------------------------------------------------------- */

/* Message handler: msg + traceback. debug.traceback is looked up at call time
 * without metamethods (package.loaded.debug, then _G.debug); if it is missing
 * or fails, the bare message is returned. */
static int traceback(lua_State *L)
{
	int i;
	if (!lua_isstring(L, 1)) {
		if (luaL_callmeta(L, 1, "__tostring") && lua_isstring(L, -1))
			lua_replace(L, 1);
		else
			lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1)), lua_replace(L, 1);
	}
	lua_settop(L, 1);
	for (i = 0; i < 2; i++) {
		if (i == 0) {
			lua_pushliteral(L, "_LOADED");
			lua_rawget(L, LUA_REGISTRYINDEX);
		} else {
			lua_pushvalue(L, LUA_GLOBALSINDEX);
		}
		if (lua_istable(L, -1)) {
			lua_pushliteral(L, "debug");
			lua_rawget(L, -2);
			if (lua_istable(L, -1)) {
				lua_pushliteral(L, "traceback");
				lua_rawget(L, -2);
				if (lua_isfunction(L, -1)) {
					lua_pushvalue(L, 1);
					lua_pushinteger(L, 2);
					if (lua_pcall(L, 2, 1, 0) == 0 && lua_isstring(L, -1))
						return 1;
				}
			}
		}
		lua_settop(L, 1);
	}
	return 1;
}

static void report(int type, lua_State *L)
{
	const char *msg = lua_tostring(L, -1);
	fprintf(stderr, "verawebsockets: error in handler for event %d: %s\n", type, msg ? msg : "(no message)");
	fflush(stderr);
}

typedef struct deliver_args {
	vl_state  *st;
	vws_event *ev;
	vws_ctx    ctx;
} deliver_args;

static void push_num_handle(lua_State *L, vws_conn h)
{
	lua_pushnumber(L, (lua_Number)h);
}

/* Runs under lua_cpcall: finds the wso and its handler, calls it protected. */
static int deliver_cf(lua_State *L)
{
	deliver_args *a = lua_touserdata(L, 1);
	vl_state *st = a->st;
	vws_event *ev = a->ev;
	int wso, mh, named, nargs, base;

	lua_settop(L, 0);
	lua_pushcfunction(L, traceback);
	mh = 1;
	lua_rawgeti(L, LUA_REGISTRYINDEX, st->conns_ref);
	push_num_handle(L, ev->conn);
	lua_rawget(L, -2);
	if (!lua_isuserdata(L, -1)) {
		lua_pop(L, 1);
		if (ev->type != VWS_EV_SERVER_ESTABLISHED || !vl_accept(L, st, ev->conn))
			return 0; /* the wso is gone: ignore */
	}
	wso = lua_gettop(L);

	/* The strong reference that keeps an active wso alive is dropped once its
	 * connection is closed for good (no reconnect pending) and the queue is
	 * drained (events queued behind this one still find their wso). */
	if (ev->type == VWS_EV_CLOSED || ev->type == VWS_EV_CONNECTION_ERROR) {
		int s = vws_conn_state(ev->conn);
		if (s < 0 || s == VWS_STATE_CLOSED) {
			lua_rawgeti(L, LUA_REGISTRYINDEX, st->dying_ref);
			push_num_handle(L, ev->conn);
			lua_pushnumber(L, (lua_Number)a->ctx);
			lua_rawset(L, -3);
			lua_pop(L, 1);
		}
	}

	/* env = { handlers = {[id] = name|function}, named = {[id] = true}, url = ... } */
	lua_getfenv(L, wso);
	if (!lua_istable(L, -1))
		return 0;
	lua_getfield(L, -1, "named");
	lua_rawgeti(L, -1, ev->type);
	named = lua_toboolean(L, -1);
	lua_pop(L, 2);
	lua_getfield(L, -1, "handlers");
	if (!lua_istable(L, -1))
		return 0;
	lua_rawgeti(L, -1, ev->type);
	if (lua_isstring(L, -1) && lua_type(L, -1) == LUA_TSTRING) {
		const char *name = lua_tostring(L, -1);
		lua_getfield(L, LUA_GLOBALSINDEX, name); /* looked up when the event fires */
	}
	if (!lua_isfunction(L, -1))
		return 0; /* a missing handler is skipped */
	base = lua_gettop(L);
	if (named)
		lua_pushvalue(L, wso);
	switch (ev->type) {
	case VWS_EV_CONNECTION_ERROR:
	case VWS_EV_ESTABLISHED:
		lua_pushlstring(L, ev->data ? ev->data : "", ev->len);
		lua_pushinteger(L, ev->attempt);
		break;
	case VWS_EV_SERVER_ESTABLISHED: {
		char proto[512] = "";
		lua_pushlstring(L, ev->data ? ev->data : "", ev->len);
		vws_conn_protocol(ev->conn, proto, sizeof proto);
		lua_pushstring(L, proto);
		break;
	}
	case VWS_EV_CLOSED:
		lua_pushboolean(L, ev->clean);
		lua_pushinteger(L, ev->code);
		lua_pushlstring(L, ev->data ? ev->data : "", ev->len);
		break;
	case VWS_EV_RECEIVE:
	case VWS_EV_SERVER_RECEIVE:
		lua_pushlstring(L, ev->data ? ev->data : "", ev->len);
		lua_pushstring(L, ev->opcode == VWS_OP_BINARY ? "binary" : "text");
		break;
	case VWS_EV_RECEIVE_PONG:
	case VWS_EV_SERVER_RECEIVE_PONG:
		lua_pushlstring(L, ev->data ? ev->data : "", ev->len);
		break;
	default:
		break;
	}
	if (!named)
		lua_pushvalue(L, wso);
	nargs = lua_gettop(L) - base;
	if (lua_pcall(L, nargs, 0, mh) != 0)
		report(ev->type, L);
	lua_settop(L, 0);
	return 0;
}

/* Drops the strong references of connections that failed for good in ctx. */
static int drop_dying_cf(lua_State *L)
{
	deliver_args *a = lua_touserdata(L, 1);
	vl_state *st = a->st;
	lua_settop(L, 0);
	lua_rawgeti(L, LUA_REGISTRYINDEX, st->dying_ref); /* 1 */
	lua_rawgeti(L, LUA_REGISTRYINDEX, st->live_ref);  /* 2 */
	lua_pushnil(L);
	while (lua_next(L, 1)) {
		if (lua_tonumber(L, -1) == (lua_Number)a->ctx) {
			lua_pop(L, 1);
			lua_pushvalue(L, -1);
			lua_pushnil(L);
			lua_rawset(L, 2);
			lua_pushvalue(L, -1);
			lua_pushnil(L);
			lua_rawset(L, 1); /* clearing a field during lua_next is allowed */
		} else {
			lua_pop(L, 1);
		}
	}
	return 0;
}

/* live[h] = wso; dying[h] = nil. Args: st (light userdata), wso, handle. */
int vl_live_set_cf(lua_State *L)
{
	vl_state *st = lua_touserdata(L, 1);
	lua_rawgeti(L, LUA_REGISTRYINDEX, st->live_ref);
	lua_pushvalue(L, 3);
	lua_pushvalue(L, 2);
	lua_rawset(L, -3);
	lua_rawgeti(L, LUA_REGISTRYINDEX, st->dying_ref);
	lua_pushvalue(L, 3);
	lua_pushnil(L);
	lua_rawset(L, -3);
	return 0;
}

/* Pops and delivers up to max events of ctx (max < 0: the number pending on
 * entry, so handlers that cause new events cannot keep us here forever).
 * Called with the lock held; returns the number of events delivered. */
int vl_deliver_pending(vl_state *st, lua_State *L, vws_ctx ctx, int max)
{
	int n = 0, top = lua_gettop(L);
	deliver_args a;
	vws_event ev;

	if (max < 0) {
		max = vws_ctx_pending(ctx);
		if (max <= 0)
			return 0;
	}
	memset(&ev, 0, sizeof ev);
	a.st = st;
	a.ev = &ev;
	a.ctx = ctx;
	while (n < max && !VL_STOPPED(st) && vws_ctx_next_event(ctx, 0, &ev) == 1) {
		n++;
		if (lua_cpcall(L, deliver_cf, &a) != 0) {
			report(ev.type, L); /* e.g. a failing __index on _G, or out of memory */
		}
		lua_settop(L, top);
		vws_event_clear(&ev);
	}
	if (!VL_STOPPED(st) && vws_ctx_pending(ctx) == 0) {
		if (lua_cpcall(L, drop_dying_cf, &a) != 0)
			report(0, L);
		lua_settop(L, top);
	}
	return n;
}

/* The event fd of ctx, cached for the state's own contexts (called under the lock). */
static int event_fd(vl_state *st, vws_ctx ctx)
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

/* Waits up to timeout_ms (>= 0) for one of ctxs to have pending events, with
 * the lock released completely. Returns 1 if events are pending, else 0. */
int vl_wait_fds(vl_state *st, const vws_ctx *ctxs, int n, int timeout_ms)
{
	struct pollfd p[4];
	int i, depth, r = 0, nfd = 0, fallback = 0;

	for (i = 0; i < n && i < 4; i++) {
		if (vws_ctx_pending(ctxs[i]) > 0)
			return 1;
		p[nfd].fd = event_fd(st, ctxs[i]);
		p[nfd].events = POLLIN;
		p[nfd].revents = 0;
		if (p[nfd].fd < 0)
			fallback = 1;
		else
			nfd++;
	}
	if (timeout_ms <= 0)
		return 0;
	depth = vl_lock_release_all(&st->lock);
	if (fallback) {
		/* No event fd: sleep in small steps and look at the queues. */
		while (timeout_ms > 0 && !r) {
			int step = timeout_ms < 10 ? timeout_ms : 10;
			poll(NULL, 0, step);
			timeout_ms -= step;
			for (i = 0; i < n && i < 4 && !r; i++)
				r = vws_ctx_pending(ctxs[i]) > 0;
		}
	} else {
		r = poll(p, nfd, timeout_ms) > 0;
	}
	vl_lock_reacquire(&st->lock, depth);
	return r;
}

/* ---- The dispatcher thread -------------------------------------------------- */

static void *dispatcher_main(void *arg)
{
	vl_state *st = arg;
	int fd = -1;
	char buf[64];

	while (!VL_STOPPED(st)) {
		struct pollfd p[2];
		int nfd = 0;

		if (fd < 0)
			fd = vws_ctx_event_fd(st->ctxB);
		p[nfd].fd = st->wake[0];
		p[nfd].events = POLLIN;
		p[nfd++].revents = 0;
		if (fd >= 0) {
			p[nfd].fd = fd;
			p[nfd].events = POLLIN;
			p[nfd++].revents = 0;
		}
		/* No lock held while waiting; 200 ms bounds every wait (20 ms
		 * polling steps when the implementation has no event fd). */
		poll(p, nfd, fd >= 0 ? 200 : 20);
		if (p[0].revents & POLLIN)
			while (read(st->wake[0], buf, sizeof buf) > 0)
				;
		if (VL_STOPPED(st))
			break;
		if (fd >= 0 && !(p[1].revents & (POLLIN | POLLHUP | POLLERR)))
			continue; /* timeout: nothing to ask the engine */
		if (vws_ctx_pending(st->ctxB) <= 0) {
			if (fd >= 0)
				poll(NULL, 0, 5); /* readable but empty (taken by ws.dispatch): do not spin */
			continue;
		}
		if (!vl_lock_acquire_or_stop(&st->lock, st))
			break;
		if (!VL_STOPPED(st)) {
			vl_deliver_pending(st, st->T, st->ctxB, -1);
			lua_settop(st->T, 0);
		}
		vl_lock_release(&st->lock);
	}
	state_unref(st);
	return NULL;
}

/* Starts the dispatcher once (called under the lock by the first Luup-mode
 * connect). Returns 0, or -1 with a message. */
int vl_start_dispatcher(vl_state *st, char *err, size_t errlen)
{
	pthread_attr_t attr;
	int rc;

	if (st->started)
		return 0;
	pthread_mutex_lock(&list_mu);
	st->refs++;
	pthread_mutex_unlock(&list_mu);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 1024 * 1024);
	rc = pthread_create(&st->thread, &attr, dispatcher_main, st);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start the dispatcher thread: %s", strerror(rc));
		state_unref(st);
		return -1;
	}
	st->started = 1;
	return 0;
}
