/*
 * deliver.c - the one protected path every event handler is called through:
 * find the wso of the event, its handler (a function, or a name looked up in
 * the creator's environment, then the globals), call it under lua_pcall with a
 * traceback; a failing handler is reported and delivery goes on.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vws_lua.h"

/* Message handler: msg + traceback. debug.traceback is looked up at call time
 * without metamethods (package.loaded.debug, then _G.debug); if it is missing
 * or fails, the bare message is returned. */
int vl_traceback(lua_State *L)
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
			lua_pushglobaltable(L);
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

/* Reports the error message at -1 on stderr and, in a Luup host, with luup.log of
 * the environment at fenv (0: none) as well. */
void vl_report(vl_state *st, int type, lua_State *L, int fenv)
{
	const char *msg = lua_tostring(L, -1);
	fprintf(stderr, "verawebsockets: error in handler for event %d: %s\n", type, msg ? msg : "(no message)");
	fflush(stderr);
	if (fenv && VL_MODE(st) == VL_DELIVERY_LUUP) {
		lua_pushfstring(L, "verawebsockets: error in handler for event %d: %s", type, msg ? msg : "(no message)");
		vl_luup_log(L, fenv, lua_tostring(L, -1), 1);
		lua_pop(L, 1);
	}
}

typedef struct deliver_args {
	vl_state       *st;
	vws_event      *ev;  /* the event being delivered */
	vws_ctx         ctx;
	vl_open_batch  *ob;  /* its batch */
	int             n;   /* events delivered (counted as they start) */
	int             max; /* the most to deliver */
} deliver_args;

static void push_num_handle(lua_State *L, vws_conn h)
{
	lua_pushnumber(L, (lua_Number)h);
}

/* Finds the wso of a->ev and its handler, calls it protected (on an empty
 * stack, under lua_cpcall: see deliver_cf). */
static int deliver_event(lua_State *L, deliver_args *a)
{
	vl_state *st = a->st;
	vws_event *ev = a->ev;
	int wso, mh, named, nargs, base, fenv;

	lua_rawgeti(L, LUA_REGISTRYINDEX, st->tb_ref);
	mh = 1;
	if (ev->type == VWS_EV_HTTP)
		return vl_deliver_http(L, st, ev);
	if (ev->type == VWS_EV_FILTER)
		return vl_deliver_filter(L, st, ev);
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

	/* env = { handlers = {[id] = name|function}, named = {[id] = true}, fenv = env, url = ... } */
	lua_getuservalue(L, wso);
	if (!lua_istable(L, -1))
		return 0;
	lua_getfield(L, -1, "fenv");
	fenv = lua_gettop(L);
	lua_pushvalue(L, -2);
	lua_getfield(L, -1, "named");
	lua_rawgeti(L, -1, ev->type);
	named = lua_toboolean(L, -1);
	lua_pop(L, 2);
	lua_getfield(L, -1, "handlers");
	if (!lua_istable(L, -1))
		return 0;
	lua_rawgeti(L, -1, ev->type);
	if (lua_type(L, -1) == LUA_TSTRING) {
		/* A name is looked up when the event fires: in the environment of the
		 * code that made the object (a Luup plugin's), then in the globals. */
		const char *name = lua_tostring(L, -1);
		lua_pushnil(L);
		if (lua_istable(L, fenv)) {
			lua_pop(L, 1);
			lua_getfield(L, fenv, name);
		}
		if (lua_isnil(L, -1)) {
			lua_pop(L, 1);
			lua_getglobal(L, name);
		}
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
		vl_report(st, ev->type, L, lua_istable(L, fenv) ? fenv : 0);
	lua_settop(L, 0);
	return 0;
}

/* Runs under lua_cpcall: delivers the events of a->ob in order, each on an
 * empty stack, up to a->max in all. One protected call for the batch, not
 * one an event (each allocates a closure in Lua 5.1); if an error escapes
 * deliver_event (a failing __index on _G, out of memory), deliver_batch
 * reports it and goes on with the next event. The batch is read afresh at
 * each event: a handler's ws.dispatch delivers from it too (deliver_open). */
static int deliver_cf(lua_State *L)
{
	deliver_args *a = lua_touserdata(L, 1);
	vl_open_batch *ob = a->ob;
	while (ob->i < ob->n && a->n < a->max && !VL_STOPPED(a->st)) {
		a->n++;
		a->ev = &ob->ev[ob->i++];
		lua_settop(L, 0);
		deliver_event(L, a);
	}
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

/* Delivers the events of ob not delivered yet, until a->n reaches a->max,
 * through deliver_cf; the stack is left at top. */
static void deliver_batch(deliver_args *a, lua_State *L, vl_open_batch *ob, int top)
{
	a->ob = ob;
	while (ob->i < ob->n && a->n < a->max && !VL_STOPPED(a->st)) {
		int i0 = ob->i;
		if (lua_cpcall(L, deliver_cf, a) != 0) {
			/* A failing __index on _G, or out of memory; if lua_cpcall failed
			 * before deliver_cf took an event (no memory for its closure), the
			 * next one is dropped and reported, as one cpcall an event did:
			 * the loop always moves on, and a->ev is the event reported. */
			if (ob->i == i0) {
				a->n++;
				a->ev = &ob->ev[ob->i++];
			}
			vl_report(a->st, a->ev->type, L, 0);
		}
		lua_settop(L, top);
	}
}

/* Delivers the events of ctx's open batches that an outer delivery took and has
 * not delivered yet (see vl_open_batch), up to a->max in all. */
static void deliver_open(vl_state *st, lua_State *L, deliver_args *a, int top)
{
	vl_open_batch *o;
	for (o = st->open; o; o = o->prev)
		if (o->ctx == a->ctx)
			deliver_batch(a, L, o, top);
}

/* Pops and delivers up to max events of ctx (max < 0: the number pending on
 * entry, so handlers that cause new events cannot keep us here forever), taken
 * in batches (vws_ctx_next_events: one call for many events, their data in one
 * buffer). Called with the lock held, on a thread that may run Lua in L now;
 * returns the number of events delivered. */
int vl_deliver_pending(vl_state *st, lua_State *L, vws_ctx ctx, int max)
{
	int n = 0, top = lua_gettop(L), left = -1, k;
	deliver_args a;
	vws_event evs[VL_BATCH];
	vws_batch b;
	vl_open_batch ob;
	char *buf = NULL;
	int own = 0;

	memset(&a, 0, sizeof a);
	a.st = st;
	a.ctx = ctx;
	a.max = max < 0 ? INT_MAX : max;
	st->delivering++;
	deliver_open(st, L, &a, top);
	n = a.n;
	if (max >= 0 && n >= max)
		goto done;
	/* The state's buffer for the outermost delivery, one of our own when nested. */
	if (!st->evbuf_busy) {
		if (!st->evbuf)
			st->evbuf = malloc(VL_BATCH_BUF);
		if (st->evbuf) {
			buf = st->evbuf;
			st->evbuf_busy = own = 1;
		}
	}
	if (!buf)
		buf = malloc(VL_BATCH_BUF);
	memset(&b, 0, sizeof b);
	memset(&ob, 0, sizeof ob);
	ob.ctx = ctx;
	ob.ev = evs;
	ob.prev = st->open;
	st->open = &ob;
	while (!VL_STOPPED(st) && (max < 0 || n < max)) {
		b.evs = evs;
		b.max = VL_BATCH;
		if (max >= 0 && max - n < VL_BATCH)
			b.max = max - n;
		b.buf = buf;
		b.buflen = buf ? VL_BATCH_BUF : 0;
		k = vws_ctx_next_events(ctx, 0, &b);
		if (k <= 0) {
			left = k == 0 ? 0 : -1;
			break;
		}
		left = b.left;
		if (max < 0)
			max = n + k + b.left; /* what was pending on entry (and is in order behind) */
		ob.i = 0;
		ob.n = k;
		a.max = max; /* >= n + k: the whole batch */
		deliver_batch(&a, L, &ob, top);
		n = a.n;
		ob.i = ob.n = 0;
		if (b.held) /* a call into the engine only when data is held */
			vws_batch_release(&b);
		if (left == 0)
			break;
	}
	st->open = ob.prev;
	if (own)
		st->evbuf_busy = 0;
	else
		free(buf);
done:
	if (!VL_STOPPED(st) && (left == 0 || (left < 0 && vws_ctx_pending(ctx) == 0))) {
		if (lua_cpcall(L, drop_dying_cf, &a) != 0)
			vl_report(st, 0, L, 0);
		lua_settop(L, top);
	}
	st->delivering--;
	/* Luup-mode events whose hook fired during these handlers come now. */
	if (st->delivering == 0 && st->hook_deferred)
		n += vl_hook_service(st, L);
	return n;
}

/* The event fd of ctx, cached for the state's own contexts (called under the lock). */
