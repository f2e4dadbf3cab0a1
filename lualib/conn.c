/*
 * conn.c - ws.create and the functions of a wso (a connection): connect, send,
 * close, ping, state, buffered, protocol, headers, peer, peer_cert; __gc and __tostring.
 *
 * Rules kept everywhere: arguments are checked (and may raise) before any ABI
 * call; ABI calls happen under the VM lock; errors found by the engine are
 * raised (create) or returned (nil, msg) only after the ABI call returned and
 * the lock was released; success returns true.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "vws_lua.h"

static void parse_headers(vl_opts *o, int idx, int env, const vl_optdef *d)
{
	(void)env, (void)d;
	vl_opt_headers(o, idx);
}

static void parse_reconnect(vl_opts *o, int idx, int env, const vl_optdef *d)
{
	(void)env, (void)d;
	vl_opt_reconnect(o, idx);
}

/* The options of ws.create{...}. */
static const vl_optdef create_opts[] = {
	{"url", VL_OPT_CALLER, 0, 0, NULL, NULL},
	{"event_handlers", VL_OPT_CALLER, 0, 0, NULL, NULL},
	{"ssl_settings", VL_OPT_CALLER, 0, 0, NULL, NULL},
	{"standalone", VL_OPT_CALLER, 0, 0, NULL, NULL},
	{"protocols", VL_OPT_LIST, 0, 0, "names", NULL},
	{"headers", VL_OPT_PARSE, 0, 0, NULL, parse_headers},
	{"origin", VL_OPT_STRING, 0, 0, NULL, NULL},
	{"connect_timeout", VL_OPT_SECONDS, 1, 0, NULL, NULL},
	{"ping_interval", VL_OPT_SECONDS, 0, 0, NULL, NULL},
	{"pong_timeout", VL_OPT_SECONDS, 1, 0, NULL, NULL},
	{"close_timeout", VL_OPT_SECONDS, 0, 0, NULL, NULL},
	{"reconnect", VL_OPT_PARSE, 0, 0, NULL, parse_reconnect},
	{"max_message_size", VL_OPT_INTEGER, 1, 9007199254740992.0, NULL, NULL},
	{"max_send_queue", VL_OPT_INTEGER, 1, 9007199254740992.0, NULL, NULL},
	{"compression", VL_OPT_BOOL, 0, 0, NULL, NULL},
	{"proxy", VL_OPT_STRING, 0, 0, NULL, NULL},
	{"max_redirects", VL_OPT_INTEGER, 0, 10, NULL, NULL},
	{"pong_events", VL_OPT_BOOL, 0, 0, NULL, NULL},
	{NULL, 0, 0, 0, NULL, NULL}};

/* ws.create{url=, event_handlers=, ssl_settings=, standalone=, ...}
 * ws.create(url, event_handlers, ssl_settings, standalone) */
int vl_ws_create(lua_State *L)
{
	vl_state *st = vl_upstate(L);
	vl_opts o;
	int tableform, env, rc = VWS_OK, standalone = 0;
	int n_handlers_arg, n_ssl_arg, n_std_arg;
	const char *url;
	vl_conn *c;
	vws_conn h = 0;
	char err[VL_ERRLEN] = "";

	if (lua_istable(L, 1)) {
		tableform = 1;
		lua_settop(L, 1);
	} else if (lua_type(L, 1) == LUA_TSTRING) {
		tableform = 0;
		lua_settop(L, 4);
	} else {
		return luaL_argerror(L, 1, lua_pushfstring(L, "table or URL string expected, got %s", luaL_typename(L, 1)));
	}
	if (!st)
		return vl_push_closed(L);
	env = vl_opts_begin(&o, L, 1); /* env of the wso: { handlers = {}, named = {}, url = url } */

	if (tableform) {
		vl_opts_check_keys(&o, 1, create_opts, NULL, NULL);
		lua_getfield(L, 1, "url");
		url = vl_opts_string_value(&o, -1, "url");
		lua_setfield(L, env, "url");
		lua_getfield(L, 1, "event_handlers");
		n_handlers_arg = lua_gettop(L);
		lua_getfield(L, 1, "ssl_settings");
		n_ssl_arg = lua_gettop(L);
		lua_getfield(L, 1, "standalone");
		n_std_arg = lua_gettop(L);
	} else {
		url = vl_opts_string_value(&o, 1, "url");
		lua_pushvalue(L, 1);
		lua_setfield(L, env, "url");
		n_handlers_arg = 2;
		n_ssl_arg = 3;
		n_std_arg = 4;
	}

	if (!tableform)
		o.narg = 2;
	vl_opt_handlers(&o, n_handlers_arg, env, vl_client_events, &o.pong, &o.writeable);
	if (!tableform)
		o.narg = 3;
	vl_opt_ssl(&o, n_ssl_arg, vl_client_ssl_opts, NULL);
	if (!tableform)
		o.narg = 4;
	if (!lua_isnil(L, n_std_arg))
		standalone = vl_opt_flag(&o, n_std_arg, "standalone");
	o.narg = 1;

	if (tableform)
		vl_opts_collect(&o, 1, create_opts, "", env);
	if (o.pong) /* a pong handler implies pong events */
		vl_opts_add(&o, "pong_events", "1");
	if (o.writeable)
		vl_opts_add(&o, "writeable_events", "1");

	/* The wso exists before the connection does, so nothing leaks if a later
	 * allocation fails: its __gc frees whatever handle it holds. */
	vl_push_caller_env(L); /* handler names are looked up there first */
	lua_setfield(L, env, "fenv");
	c = lua_newuserdata(L, sizeof *c);
	c->h = 0;
	c->ctx = st->ctxA;
	c->standalone = standalone;
	luaL_getmetatable(L, VL_CONN_MT);
	lua_setmetatable(L, -2);
	lua_pushvalue(L, env);
	lua_setuservalue(L, -2);

	/* ABI calls: nothing below raises until the lock is released. */
	vl_lock_acquire(&st->lock);
	if (!standalone && vl_luup_ctx(st, L, env, &c->ctx, err, sizeof err) != 0)
		rc = VWS_EINTERNAL;
	if (rc == VWS_OK)
		rc = vws_conn_new(c->ctx, url, &h, err, sizeof err);
	if (rc == VWS_OK)
		rc = vl_opts_apply(&o, h, vws_conn_set_option, err, sizeof err);
	if (rc == VWS_OK)
		rc = vws_conn_check(h, err, sizeof err);
	if (rc != VWS_OK && h != 0) {
		vws_conn_free(h);
		h = 0;
	}
	vl_lock_release(&st->lock);
	if (rc == VWS_EINTERNAL && err[0])
		return luaL_error(L, "verawebsockets: %s", err);
	if (rc != VWS_OK) {
		if (!err[0])
			snprintf(err, sizeof err, "%s", vl_status_text(rc));
		return luaL_argerror(L, 1, err);
	}
	c->h = h;

	/* conns[h] = wso (weak): how events find their wso. */
	lua_rawgeti(L, LUA_REGISTRYINDEX, st->conns_ref);
	lua_pushnumber(L, (lua_Number)h);
	lua_pushvalue(L, -3);
	lua_rawset(L, -3);
	lua_pop(L, 1);
	return 1;
}

/* Pushes nil, err and returns 2 when c cannot take a call (the Lua state is
 * closing, or the connection was freed); returns 0 when it can. */
static int push_unusable(lua_State *L, const vl_state *st, const vl_conn *c)
{
	if (!st)
		return vl_push_closed(L);
	if (c->h == 0)
		return vl_push_fail(L, VWS_EARG, "connection was freed");
	return 0;
}

vl_conn *vl_check_conn(lua_State *L, int idx)
{
	return luaL_checkudata(L, idx, VL_CONN_MT);
}

/* ---- wso functions ------------------------------------------------------------ */

int vl_ws_connect(lua_State *L)
{
	vl_conn *c = vl_check_conn(L, 1);
	vl_state *st = vl_upstate(L);
	char err[VL_ERRLEN] = "";
	int rc = VWS_OK, bad;

	if ((bad = push_unusable(L, st, c)) != 0)
		return bad;
	lua_settop(L, 1);
	lua_pushcfunction(L, vl_live_set_cf);
	lua_pushlightuserdata(L, st);
	lua_pushvalue(L, 1);
	lua_pushnumber(L, (lua_Number)c->h);
	vl_lock_acquire(&st->lock);
	rc = vws_conn_connect(c->h, err, sizeof err);
	/* Only a Luup-mode wso is kept alive by the module while it is active: its
	 * events arrive without the script calling anything. A standalone wso lives
	 * as long as the script holds it; collecting it closes the connection. */
	if (rc == VWS_OK && !c->standalone) {
		if (lua_pcall(L, 3, 0, 0) != 0)
			lua_pop(L, 1);
	} else {
		lua_pop(L, 4);
	}
	vl_lock_release(&st->lock);
	return vl_push_result(L, rc, err);
}

int vl_ws_send(lua_State *L)
{
	vl_conn *c = vl_check_conn(L, 1);
	size_t len;
	const char *data = luaL_checklstring(L, 2, &len);
	int op = vl_check_opcode(L, 3), rc, bad;
	vl_state *st = vl_upstate(L);
	char err[VL_ERRLEN] = "";

	if ((bad = push_unusable(L, st, c)) != 0)
		return bad;
	vl_lock_acquire(&st->lock);
	rc = vws_conn_send(c->h, op, data, len, err, sizeof err);
	vl_lock_release(&st->lock);
	return vl_push_result(L, rc, err);
}


/* ws.close(wso[, code[, reason]]), and ws.close(server[, code[, reason]]). */
int vl_ws_close(lua_State *L)
{
	vl_server *s = vl_to_server(L, 1);
	vl_conn *c = s ? NULL : vl_check_conn(L, 1);
	int code, rc, bad;
	size_t len;
	const char *reason;
	vl_state *st = vl_upstate(L);
	char err[VL_ERRLEN] = "";

	if (s)
		return vl_server_close(L, s);
	vl_check_close_args(L, &code, &reason, &len);
	if ((bad = push_unusable(L, st, c)) != 0)
		return bad;
	vl_lock_acquire(&st->lock);
	rc = vws_conn_close(c->h, code, reason, len, err, sizeof err);
	vl_lock_release(&st->lock);
	return vl_push_result(L, rc, err);
}

int vl_ws_ping(lua_State *L)
{
	vl_conn *c = vl_check_conn(L, 1);
	size_t len = 0;
	const char *data = luaL_optlstring(L, 2, "", &len);
	vl_state *st = vl_upstate(L);
	char err[VL_ERRLEN] = "";
	int rc, bad;

	if (len > 125)
		return luaL_argerror(L, 2, "ping payload longer than 125 bytes");
	if ((bad = push_unusable(L, st, c)) != 0)
		return bad;
	vl_lock_acquire(&st->lock);
	rc = vws_conn_ping(c->h, data, len, err, sizeof err);
	vl_lock_release(&st->lock);
	return vl_push_result(L, rc, err);
}

int vl_ws_state(lua_State *L)
{
	static const char *const names[] = {"created", "connecting", "open", "closing", "closed"};
	vl_conn *c = vl_check_conn(L, 1);
	vl_state *st = vl_upstate(L);
	int s = VWS_STATE_CLOSED;
	if (st && c->h != 0) {
		vl_lock_acquire(&st->lock);
		s = vws_conn_state(c->h);
		vl_lock_release(&st->lock);
	}
	if (s < 0 || s > VWS_STATE_CLOSED)
		s = VWS_STATE_CLOSED;
	lua_pushstring(L, names[s]);
	return 1;
}

int vl_ws_buffered(lua_State *L)
{
	vl_conn *c = vl_check_conn(L, 1);
	vl_state *st = vl_upstate(L);
	size_t n = 0;
	int rc, bad;
	if ((bad = push_unusable(L, st, c)) != 0)
		return bad;
	vl_lock_acquire(&st->lock);
	rc = vws_conn_buffered(c->h, &n);
	vl_lock_release(&st->lock);
	if (rc != VWS_OK)
		return vl_push_fail(L, rc, NULL);
	lua_pushnumber(L, (lua_Number)n);
	return 1;
}

/* Pushes the string get() copies out for the wso at 1, or nil, err (earg: the
 * message for VWS_EARG, NULL for the status text). */
static int push_conn_text(lua_State *L, int (*get)(vws_conn, char *, size_t), const char *earg)
{
	vl_conn *c = vl_check_conn(L, 1);
	vl_state *st = vl_upstate(L);
	char buf[512] = "";
	int rc, bad;
	if ((bad = push_unusable(L, st, c)) != 0)
		return bad;
	vl_lock_acquire(&st->lock);
	rc = get(c->h, buf, sizeof buf);
	vl_lock_release(&st->lock);
	if (rc != VWS_OK)
		return vl_push_fail(L, rc, rc == VWS_EARG ? earg : NULL);
	lua_pushstring(L, buf);
	return 1;
}

int vl_ws_protocol(lua_State *L)
{
	return push_conn_text(L, vws_conn_protocol, NULL);
}

/* ws.headers(wso): the request headers of a client's opening handshake (a wso
 * a server accepted), as a table: lower-case names, repeated headers joined
 * with ", ". */
int vl_ws_headers(lua_State *L)
{
	vl_conn *c = vl_check_conn(L, 1);
	vl_state *st = vl_upstate(L);
	char small[4096], *buf = small;
	size_t cap = sizeof small;
	const char *p, *end;
	int n, bad;

	if ((bad = push_unusable(L, st, c)) != 0)
		return bad;
	for (;;) {
		vl_lock_acquire(&st->lock);
		n = vws_conn_request_headers(c->h, buf, cap);
		vl_lock_release(&st->lock);
		if (n < 0)
			return vl_push_fail(L, n, n == VWS_ESTATE ? "not opened yet (no handshake response)" : NULL);
		if ((size_t)n < cap)
			break;
		cap = (size_t)n + 1; /* a Lua-owned buffer: nothing leaks if a later call raises */
		buf = lua_newuserdata(L, cap);
	}
	lua_newtable(L);
	for (p = buf, end = buf + n; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *colon;
		size_t i;
		luaL_Buffer name;
		if (!nl)
			nl = end;
		colon = memchr(p, ':', (size_t)(nl - p));
		if (colon) {
			const char *v = colon + 1;
			while (v < nl && *v == ' ')
				v++;
			luaL_buffinit(L, &name);
			for (i = 0; p + i < colon; i++)
				luaL_addchar(&name, (char)tolower((unsigned char)p[i]));
			luaL_pushresult(&name);
			lua_pushvalue(L, -1);
			lua_rawget(L, -3);
			if (lua_isstring(L, -1)) { /* repeated: "old, new" */
				lua_pushliteral(L, ", ");
				lua_pushlstring(L, v, (size_t)(nl - v));
				lua_concat(L, 3);
			} else {
				lua_pop(L, 1);
				lua_pushlstring(L, v, (size_t)(nl - v));
			}
			lua_rawset(L, -3);
		}
		p = nl + 1;
	}
	return 1;
}

/* ws.peer(wso): the address of a client a server accepted ("127.0.0.1:54321"). */
int vl_ws_peer(lua_State *L)
{
	return push_conn_text(L, vws_conn_peer, "not a connection accepted by a server");
}

/* ws.peer_cert(wso): the subject (RFC 2253) of the client certificate a wss
 * server verified for the client of wso, or nil when it gave none. */
int vl_ws_peer_cert(lua_State *L)
{
	vl_conn *c = vl_check_conn(L, 1);
	vl_state *st = vl_upstate(L);
	char small[512], *buf = small;
	size_t cap = sizeof small;
	int n, bad;

	if ((bad = push_unusable(L, st, c)) != 0)
		return bad;
	for (;;) {
		vl_lock_acquire(&st->lock);
		n = vws_conn_peer_cert(c->h, buf, cap);
		vl_lock_release(&st->lock);
		if (n < 0)
			return vl_push_fail(L, n, n == VWS_EARG ? "not a connection accepted by a server" : NULL);
		if ((size_t)n < cap)
			break;
		cap = (size_t)n + 1; /* a Lua-owned buffer: nothing leaks if a later call raises */
		buf = lua_newuserdata(L, cap);
	}
	if (n == 0)
		lua_pushnil(L);
	else
		lua_pushlstring(L, buf, (size_t)n);
	return 1;
}

int vl_conn_gc(lua_State *L)
{
	vl_conn *c = luaL_checkudata(L, 1, VL_CONN_MT);
	if (c->h != 0) {
		vws_conn h = c->h;
		c->h = 0;
		vws_conn_free(h); /* 1001 if open, no further events; may run twice: h is 0 then */
	}
	return 0;
}

int vl_conn_tostring(lua_State *L)
{
	vl_conn *c = luaL_checkudata(L, 1, VL_CONN_MT);
	const char *url = "";
	lua_getuservalue(L, 1);
	if (lua_istable(L, -1)) {
		lua_getfield(L, -1, "url");
		if (lua_type(L, -1) == LUA_TSTRING)
			url = lua_tostring(L, -1);
	}
	lua_pushfstring(L, VL_CONN_MT ": %p (%s)", (void *)c, url);
	return 1;
}
