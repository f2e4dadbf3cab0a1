/*
 * sync.c - ws.client.sync / ws.client.new: a blocking client with the API of
 * lua-websockets' sync client (connect, receive, send, close).
 *
 * Each client has its own engine context, so its events never mix with the
 * event-handler API. Waits release the VM lock completely (the thread runs no
 * Lua while it waits), so Luup-mode handlers can run meanwhile.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "vws_lua.h"

typedef struct vl_client {
	vws_ctx  ctx;        /* 0 once freed */
	vws_conn h;          /* current connection, 0 if none */
	int      timeout_ms; /* -1: no timeout */
	int      open;       /* ESTABLISHED seen and no CLOSED yet */
	int      have_close; /* close info below is valid */
	int      clean, code;
	char     reason[128];
	size_t   reason_len;
} vl_client;

#define SLICE_MS 5000 /* each wait wakes on its event fd; see wait.c */

static vl_client *check_client(lua_State *L)
{
	return luaL_checkudata(L, 1, VL_CLIENT_MT);
}

static void drop_conn(vl_client *cl)
{
	if (cl->h) {
		vws_conn_free(cl->h);
		cl->h = 0;
	}
	cl->open = 0;
}

static void set_close(vl_client *cl, int clean, int code, const char *reason, size_t len)
{
	cl->have_close = 1;
	cl->clean = clean;
	cl->code = code;
	if (len >= sizeof cl->reason)
		len = sizeof cl->reason - 1;
	if (reason && len)
		memcpy(cl->reason, reason, len);
	cl->reason[len] = 0;
	cl->reason_len = len;
}

/* Waits (lock released while blocked; Luup-mode events delivered meanwhile where
 * this thread is theirs) for the next event of the current connection, up to
 * timeout_ms (-1: no limit). Returns 1 with *ev filled, 0 on timeout, or a
 * negative status. Events of older connections are dropped. */
static int next_event(vl_state *st, lua_State *L, vl_client *cl, int timeout_ms, vws_event *ev)
{
	int64_t deadline = timeout_ms >= 0 ? vl_now_ms() + timeout_ms : 0;
	for (;;) {
		int64_t left = -1;
		int rc;
		if (timeout_ms >= 0) {
			left = deadline - vl_now_ms();
			if (left < 0)
				left = 0;
		}
		rc = vws_ctx_next_event(cl->ctx, 0, ev);
		if (rc == 0 && left != 0 && st) {
			if (vl_wait(st, L, &cl->ctx, 1, (int)left, NULL) < 0)
				return 0; /* interrupted (Ctrl-C): back to Lua, which raises */
			rc = vws_ctx_next_event(cl->ctx, 0, ev);
		} else if (rc == 0 && left != 0) {
			rc = vws_ctx_next_event(cl->ctx, left < 0 || left > SLICE_MS ? SLICE_MS : (int)left, ev);
		}
		if (rc < 0)
			return rc;
		if (rc == 1) {
			if (ev->conn == cl->h)
				return 1;
			vws_event_clear(ev);
			continue;
		}
		if (st && VL_STOPPED(st))
			return 0;
		if (timeout_ms >= 0 && vl_now_ms() >= deadline)
			return 0;
	}
}

static int push_close_info(lua_State *L, vl_client *cl, const char *fallback)
{
	if (cl->have_close) {
		lua_pushboolean(L, cl->clean);
		lua_pushinteger(L, cl->code);
		lua_pushlstring(L, cl->reason, cl->reason_len);
	} else {
		lua_pushboolean(L, 0);
		lua_pushinteger(L, 1006);
		lua_pushstring(L, fallback);
	}
	return 3;
}

/* client:connect(url[, protocol]) -> true | nil, err */
static int client_connect(lua_State *L)
{
	vl_client *cl = check_client(L);
	const char *url = luaL_checkstring(L, 2);
	const char *proto = luaL_optstring(L, 3, NULL);
	vl_state *st = vl_upstate(L);
	char err[VL_ERRLEN] = "", tmo[32];
	vws_event ev;
	int rc;

	if (!st || !cl->ctx) {
		lua_pushnil(L);
		lua_pushliteral(L, "closed");
		return 2;
	}
	if (cl->open || (cl->h && vws_conn_state(cl->h) != VWS_STATE_CLOSED)) {
		lua_pushnil(L);
		lua_pushliteral(L, "wrong state");
		return 2;
	}
	memset(&ev, 0, sizeof ev);
	vl_lock_acquire(&st->lock);
	drop_conn(cl);
	cl->have_close = 0;
	rc = vws_conn_new(cl->ctx, url, &cl->h, err, sizeof err);
	if (rc == VWS_OK && proto && proto[0])
		rc = vws_conn_set_option(cl->h, "protocols", proto, err, sizeof err);
	if (rc == VWS_OK && cl->timeout_ms > 0) {
		snprintf(tmo, sizeof tmo, "%d", cl->timeout_ms);
		rc = vws_conn_set_option(cl->h, "connect_timeout", tmo, err, sizeof err);
	}
	if (rc == VWS_OK)
		rc = vws_conn_connect(cl->h, err, sizeof err);
	if (rc == VWS_OK) {
		for (;;) {
			rc = next_event(st, L, cl, cl->timeout_ms, &ev);
			if (rc <= 0)
				break;
			if (ev.type == VWS_EV_ESTABLISHED) {
				cl->open = 1;
				break;
			}
			if (ev.type == VWS_EV_CONNECTION_ERROR) {
				snprintf(err, sizeof err, "%.*s", (int)ev.len, ev.data ? ev.data : "");
				rc = VWS_EARG;
				break;
			}
			vws_event_clear(&ev);
		}
		if (rc == 0)
			snprintf(err, sizeof err, "timeout");
	}
	vws_event_clear(&ev);
	if (!cl->open) {
		drop_conn(cl);
		if (!err[0])
			snprintf(err, sizeof err, "connection failed (status %d)", rc);
	}
	vl_lock_release(&st->lock);
	if (!cl->open) {
		lua_pushnil(L);
		lua_pushstring(L, err);
		return 2;
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* client:receive() -> message, opcode | nil, nil, was_clean, code, reason | nil, "timeout" */
static int client_receive(lua_State *L)
{
	vl_client *cl = check_client(L);
	vl_state *st = vl_upstate(L);
	vws_event ev;
	int rc;

	if (!st || !cl->open) {
		lua_pushnil(L);
		lua_pushnil(L);
		return 2 + push_close_info(L, cl, "wrong state");
	}
	memset(&ev, 0, sizeof ev);
	vl_lock_acquire(&st->lock);
	for (;;) {
		rc = next_event(st, L, cl, cl->timeout_ms, &ev);
		if (rc <= 0)
			break;
		if (ev.type == VWS_EV_RECEIVE)
			break;
		if (ev.type == VWS_EV_CLOSED) {
			set_close(cl, ev.clean, ev.code, ev.data, ev.len);
			drop_conn(cl);
			break;
		}
		if (ev.type == VWS_EV_CONNECTION_ERROR) {
			set_close(cl, 0, 1006, ev.data, ev.len);
			drop_conn(cl);
			break;
		}
		vws_event_clear(&ev); /* pong, writeable */
	}
	vl_lock_release(&st->lock);
	if (rc == 1 && ev.type == VWS_EV_RECEIVE) {
		lua_pushlstring(L, ev.data ? ev.data : "", ev.len);
		lua_pushinteger(L, ev.opcode == VWS_OP_BINARY ? VWS_OP_BINARY : VWS_OP_TEXT);
		vws_event_clear(&ev);
		return 2;
	}
	vws_event_clear(&ev);
	lua_pushnil(L);
	if (rc == 0) {
		lua_pushliteral(L, "timeout");
		return 2;
	}
	lua_pushnil(L);
	if (rc < 0 && !cl->have_close)
		set_close(cl, 0, 1006, "engine failure", 14);
	return 2 + push_close_info(L, cl, "closed");
}

/* client:send(message[, opcode]) -> true | nil, was_clean, code, reason */
static int client_send(lua_State *L)
{
	vl_client *cl = check_client(L);
	size_t len;
	const char *data = luaL_checklstring(L, 2, &len);
	vl_state *st = vl_upstate(L);
	char err[VL_ERRLEN] = "";
	int op = VWS_OP_TEXT, rc;

	if (!lua_isnoneornil(L, 3)) {
		if (lua_type(L, 3) == LUA_TNUMBER && (lua_tonumber(L, 3) == VWS_OP_TEXT || lua_tonumber(L, 3) == VWS_OP_BINARY))
			op = (int)lua_tonumber(L, 3);
		else if (lua_type(L, 3) == LUA_TSTRING && strcmp(lua_tostring(L, 3), "binary") == 0)
			op = VWS_OP_BINARY;
		else if (lua_type(L, 3) == LUA_TSTRING && strcmp(lua_tostring(L, 3), "text") == 0)
			op = VWS_OP_TEXT;
		else
			return luaL_argerror(L, 3, "ws.TEXT or ws.BINARY expected");
	}
	if (!st || !cl->open || !cl->h) {
		lua_pushnil(L);
		return 1 + push_close_info(L, cl, "wrong state");
	}
	vl_lock_acquire(&st->lock);
	rc = vws_conn_send(cl->h, op, data, len, err, sizeof err);
	vl_lock_release(&st->lock);
	if (rc == VWS_OK) {
		lua_pushboolean(L, 1);
		return 1;
	}
	lua_pushnil(L);
	if (rc == VWS_ESTATE)
		return 1 + push_close_info(L, cl, err[0] ? err : "wrong state");
	lua_pushboolean(L, 0);
	lua_pushinteger(L, rc == VWS_ETOOBIG ? 1009 : 1006);
	lua_pushstring(L, err[0] ? err : "send failed");
	return 4;
}

/* client:close([code[, reason]]) -> was_clean, code, reason */
static int client_close(lua_State *L)
{
	vl_client *cl = check_client(L);
	int code = 1000, rc, bound;
	size_t len = 0;
	const char *reason = luaL_optlstring(L, 3, "", &len);
	vl_state *st = vl_upstate(L);
	char err[VL_ERRLEN] = "";
	vws_event ev;

	if (!lua_isnoneornil(L, 2)) {
		lua_Number n = luaL_checknumber(L, 2);
		if (n != floor(n) || n < 1000 || n > 4999)
			return luaL_argerror(L, 2, "close code from 1000 to 4999 expected");
		code = (int)n;
	}
	if (len > 123)
		return luaL_argerror(L, 3, "reason longer than 123 bytes");
	if (!st || !cl->open || !cl->h) {
		lua_pushboolean(L, 0);
		lua_pushinteger(L, 1006);
		lua_pushliteral(L, "wrong state");
		return 3;
	}
	memset(&ev, 0, sizeof ev);
	/* The engine gives up on the peer after close_timeout (3 s) and reports 1006. */
	bound = (cl->timeout_ms > 0 ? cl->timeout_ms : 0) + 5000;
	vl_lock_acquire(&st->lock);
	rc = vws_conn_close(cl->h, code, reason, len, err, sizeof err);
	while (rc == VWS_OK) {
		rc = next_event(st, L, cl, bound, &ev);
		if (rc <= 0)
			break;
		if (ev.type == VWS_EV_CLOSED || ev.type == VWS_EV_CONNECTION_ERROR) {
			set_close(cl, ev.type == VWS_EV_CLOSED && ev.clean, ev.type == VWS_EV_CLOSED ? ev.code : 1006,
			          ev.data, ev.len);
			break;
		}
		vws_event_clear(&ev); /* messages arriving while closing are dropped */
		rc = VWS_OK;
	}
	vws_event_clear(&ev);
	if (!cl->have_close)
		set_close(cl, 0, 1006, rc == 0 ? "timeout" : (err[0] ? err : "close failed"),
		          strlen(rc == 0 ? "timeout" : (err[0] ? err : "close failed")));
	drop_conn(cl);
	vl_lock_release(&st->lock);
	return push_close_info(L, cl, "closed");
}

static int client_gc(lua_State *L)
{
	vl_client *cl = luaL_checkudata(L, 1, VL_CLIENT_MT);
	drop_conn(cl);
	if (cl->ctx) {
		vws_ctx c = cl->ctx;
		cl->ctx = 0;
		vws_ctx_free(c);
	}
	return 0;
}

static int client_tostring(lua_State *L)
{
	vl_client *cl = luaL_checkudata(L, 1, VL_CLIENT_MT);
	lua_pushfstring(L, VL_CLIENT_MT ": %p (%s)", (void *)cl, cl->open ? "open" : "closed");
	return 1;
}

/* ws.client.sync([{timeout = seconds}]) / ws.client.new */
static int client_new(lua_State *L)
{
	vl_client *cl;
	int timeout_ms = -1, rc;
	char err[VL_ERRLEN] = "";
	vws_ctx ctx = 0;

	if (!lua_isnoneornil(L, 1)) {
		luaL_checktype(L, 1, LUA_TTABLE);
		lua_pushnil(L);
		while (lua_next(L, 1)) {
			if (lua_type(L, -2) != LUA_TSTRING || strcmp(lua_tostring(L, -2), "timeout") != 0) {
				lua_pushfstring(L, "unknown option '%s'", lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : luaL_typename(L, -2));
				return luaL_argerror(L, 1, lua_tostring(L, -1));
			}
			lua_pop(L, 1);
		}
		lua_getfield(L, 1, "timeout");
		if (!lua_isnil(L, -1)) {
			lua_Number s;
			if (lua_type(L, -1) != LUA_TNUMBER)
				return luaL_argerror(L, 1, "timeout: number of seconds expected");
			s = lua_tonumber(L, -1);
			if (!(s >= 0) || s > 2147483)
				return luaL_argerror(L, 1, "timeout: seconds from 0 to 2147483 expected");
			timeout_ms = (int)floor(s * 1000 + 0.5);
		}
		lua_pop(L, 1);
	}
	cl = lua_newuserdata(L, sizeof *cl);
	memset(cl, 0, sizeof *cl);
	cl->timeout_ms = timeout_ms;
	luaL_getmetatable(L, VL_CLIENT_MT);
	lua_setmetatable(L, -2);
	rc = vws_ctx_new(&ctx, err, sizeof err);
	if (rc != VWS_OK) {
		lua_pushnil(L);
		lua_pushstring(L, err[0] ? err : "cannot create a context");
		return 2;
	}
	cl->ctx = ctx;
	return 1;
}

static const luaL_Reg client_methods[] = {
	{"connect", client_connect}, {"receive", client_receive},
	{"send", client_send},       {"close", client_close},
	{NULL, NULL}};

void vl_open_client(lua_State *L, int su)
{
	vl_new_metatable(L, VL_CLIENT_MT, client_methods, su, client_gc, client_tostring);
	lua_newtable(L);
	lua_pushvalue(L, su);
	lua_pushcclosure(L, client_new, 1);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "sync");
	lua_setfield(L, -2, "new");
}
