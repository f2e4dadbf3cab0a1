/*
 * verawebsockets.c - luaopen_verawebsockets and the ws.* API (Lua 5.1).
 *
 * Written against include/verawebsockets.h only. Rules kept everywhere:
 *   - arguments are checked (and may raise) before any ABI call; ABI calls
 *     and handler deliveries happen under the VM lock; errors found by the
 *     engine are raised (create) or returned (nil, msg) only after the ABI
 *     call returned and the lock was released;
 *   - success returns true.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vws_lua.h"

static char state_key; /* registry[&state_key] = the State userdata */

static const char *status_text(int rc)
{
	switch (rc) {
	case VWS_EARG: return "bad argument";
	case VWS_ESTATE: return "connection is not open";
	case VWS_EFULL: return "send queue is full";
	case VWS_ETOOBIG: return "message exceeds max_message_size";
	case VWS_EENGINE: return "engine unavailable";
	case VWS_EINTERNAL: return "internal error";
	default: return "error";
	}
}

/* Returns nil, msg (msg = err if set, else the status text). */
static int push_fail(lua_State *L, int rc, const char *err)
{
	lua_pushnil(L);
	lua_pushstring(L, err && err[0] ? err : status_text(rc));
	return 2;
}

static int push_closed(lua_State *L)
{
	lua_pushnil(L);
	lua_pushliteral(L, "verawebsockets: the Lua state is closing");
	return 2;
}

/* Pushes nil, err and returns 2 when c cannot take a call (the Lua state is
 * closing, or the connection was freed); returns 0 when it can. */
static int push_unusable(lua_State *L, const vl_state *st, const vl_conn *c)
{
	if (!st)
		return push_closed(L);
	if (c->h == 0)
		return push_fail(L, VWS_EARG, "connection was freed");
	return 0;
}

/* Pushes true for VWS_OK, else nil, err. */
static int push_result(lua_State *L, int rc, const char *err)
{
	if (rc != VWS_OK)
		return push_fail(L, rc, err);
	lua_pushboolean(L, 1);
	return 1;
}

static vl_conn *check_conn(lua_State *L, int idx)
{
	return luaL_checkudata(L, idx, VL_CONN_MT);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Optional millisecond timeout argument: -1 when absent. */
static int opt_ms(lua_State *L, int idx)
{
	lua_Number n;
	if (lua_isnoneornil(L, idx))
		return -1;
	n = luaL_checknumber(L, idx);
	if (!(n >= 0) || n > 2147483647.0)
		luaL_argerror(L, idx, "milliseconds from 0 to 2147483647 expected");
	return (int)n;
}

/* ---- create: option collection ------------------------------------------------ */

typedef struct opt_ctx {
	lua_State *L;
	int        narg;  /* argument number for errors */
	int        opts;  /* stack index of the {name, value, ...} list */
	int        n;
} opt_ctx;

static void add_opt(opt_ctx *o, const char *name, const char *value)
{
	lua_State *L = o->L;
	lua_pushstring(L, name);
	lua_rawseti(L, o->opts, ++o->n);
	lua_pushstring(L, value);
	lua_rawseti(L, o->opts, ++o->n);
}

static int opt_error(opt_ctx *o, const char *fmt, const char *name, const char *detail)
{
	lua_State *L = o->L;
	lua_pushfstring(L, fmt, name, detail);
	return luaL_argerror(L, o->narg, lua_tostring(L, -1));
}

static int type_error(opt_ctx *o, const char *name, const char *want, int idx)
{
	lua_State *L = o->L;
	lua_pushfstring(L, "%s: %s expected, got %s", name, want, luaL_typename(L, idx));
	return luaL_argerror(L, o->narg, lua_tostring(L, -1));
}

static lua_Number get_number(opt_ctx *o, int idx, const char *name)
{
	if (lua_type(o->L, idx) != LUA_TNUMBER)
		type_error(o, name, "number", idx);
	return lua_tonumber(o->L, idx);
}

/* Seconds (fractions allowed) -> "ms". */
static void opt_seconds(opt_ctx *o, int idx, const char *name, const char *engine_name, int allow_zero)
{
	char buf[32];
	lua_Number s = get_number(o, idx, name);
	double ms;
	if (!(s >= 0) || (!allow_zero && s == 0))
		opt_error(o, "%s: %s", name, allow_zero ? "seconds >= 0 expected" : "seconds > 0 expected");
	ms = floor(s * 1000.0 + 0.5);
	if (ms > 2147483647.0)
		opt_error(o, "%s: %s", name, "too large (at most 2147483 seconds)");
	if (ms == 0 && s > 0)
		ms = 1;
	snprintf(buf, sizeof buf, "%.0f", ms);
	add_opt(o, engine_name, buf);
}

static lua_Number get_integer(opt_ctx *o, int idx, const char *name, lua_Number min, lua_Number max)
{
	lua_Number v = get_number(o, idx, name);
	char range[96];
	if (v != floor(v) || v < min || v > max) {
		snprintf(range, sizeof range, "integer from %.0f to %.0f expected", min, max);
		opt_error(o, "%s: %s", name, range);
	}
	return v;
}

static void opt_integer(opt_ctx *o, int idx, const char *name, lua_Number min, lua_Number max)
{
	char buf[32];
	snprintf(buf, sizeof buf, "%.0f", get_integer(o, idx, name, min, max));
	add_opt(o, name, buf);
}

static void opt_bool(opt_ctx *o, int idx, const char *name, const char *engine_name)
{
	if (lua_type(o->L, idx) != LUA_TBOOLEAN)
		type_error(o, name, "boolean", idx);
	add_opt(o, engine_name, lua_toboolean(o->L, idx) ? "1" : "0");
}

static const char *get_string(opt_ctx *o, int idx, const char *name)
{
	if (lua_type(o->L, idx) != LUA_TSTRING)
		type_error(o, name, "string", idx);
	return lua_tostring(o->L, idx);
}

static void opt_string(opt_ctx *o, int idx, const char *name)
{
	add_opt(o, name, get_string(o, idx, name));
}

static void opt_protocols(opt_ctx *o, int idx)
{
	lua_State *L = o->L;
	luaL_Buffer b;
	int i, n;
	if (lua_type(L, idx) == LUA_TSTRING) {
		add_opt(o, "protocols", lua_tostring(L, idx));
		return;
	}
	if (!lua_istable(L, idx))
		type_error(o, "protocols", "table or string", idx);
	n = (int)lua_objlen(L, idx);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, idx, i);
		if (lua_type(L, -1) != LUA_TSTRING || lua_objlen(L, -1) == 0 || strchr(lua_tostring(L, -1), ','))
			opt_error(o, "%s: %s", "protocols", "non-empty names without commas expected");
		lua_pop(L, 1);
	}
	luaL_buffinit(L, &b);
	for (i = 1; i <= n; i++) {
		if (i > 1)
			luaL_addchar(&b, ',');
		lua_rawgeti(L, idx, i);
		luaL_addvalue(&b);
	}
	luaL_pushresult(&b);
	add_opt(o, "protocols", lua_tostring(L, -1));
	lua_pop(L, 1);
}

/* An HTTP header name is an RFC 7230 token: no separators, no controls. */
static int is_token(const char *s, size_t len)
{
	size_t i;
	if (len == 0)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch <= 32 || ch >= 127 || strchr("()<>@,;:\\\"/[]?={}", ch))
			return 0;
	}
	return 1;
}

static void opt_headers(opt_ctx *o, int idx)
{
	lua_State *L = o->L;
	if (!lua_istable(L, idx))
		type_error(o, "headers", "table", idx);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		if (lua_type(L, -2) != LUA_TSTRING || (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER))
			opt_error(o, "%s: %s", "headers", "{[\"Name\"] = \"value\"} expected");
		{
			size_t nl;
			const char *name = lua_tolstring(L, -2, &nl);
			if (!is_token(name, nl))
				opt_error(o, "headers: invalid header name \"%s\"%s", name, "");
		}
		lua_pushfstring(L, "%s: %s", lua_tostring(L, -2), lua_tostring(L, -1));
		add_opt(o, "header", lua_tostring(L, -1));
		lua_pop(L, 2);
	}
}

static void opt_reconnect(opt_ctx *o, int idx)
{
	lua_State *L = o->L;
	static const char *const keys[] = {"min_delay", "max_delay", "factor", "jitter", "max_attempts", NULL};
	lua_Number v[5] = {1, 30, 2, 0.2, 0};
	char buf[160];
	int i;

	if (lua_type(L, idx) == LUA_TBOOLEAN) {
		if (lua_toboolean(L, idx))
			add_opt(o, "reconnect", "1000,30000,2,0.2,0");
		else
			add_opt(o, "reconnect", "");
		return;
	}
	if (!lua_istable(L, idx))
		type_error(o, "reconnect", "boolean or table", idx);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
		for (i = 0; keys[i]; i++)
			if (k && strcmp(k, keys[i]) == 0)
				break;
		if (!keys[i])
			opt_error(o, "%s: unknown key '%s'", "reconnect", k ? k : luaL_typename(L, -2));
		lua_pop(L, 1);
	}
	for (i = 0; keys[i]; i++) {
		lua_getfield(L, idx, keys[i]);
		if (!lua_isnil(L, -1)) {
			lua_pushfstring(L, "reconnect.%s", keys[i]);
			v[i] = get_number(o, -2, lua_tostring(L, -1));
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
	}
	if (!(v[0] >= 0) || v[0] > 2147483)
		opt_error(o, "%s: %s", "reconnect.min_delay", "seconds from 0 to 2147483 expected");
	if (!(v[1] >= v[0]) || v[1] > 2147483)
		opt_error(o, "%s: %s", "reconnect.max_delay", "seconds from min_delay to 2147483 expected");
	if (!(v[2] >= 1) || v[2] > 1000)
		opt_error(o, "%s: %s", "reconnect.factor", "number from 1 to 1000 expected");
	if (!(v[3] >= 0 && v[3] <= 1))
		opt_error(o, "%s: %s", "reconnect.jitter", "number from 0 to 1 expected");
	if (!(v[4] >= 0) || v[4] != floor(v[4]) || v[4] > 2147483647.0)
		opt_error(o, "%s: %s", "reconnect.max_attempts", "integer >= 0 expected (0 = unlimited)");
	snprintf(buf, sizeof buf, "%.0f,%.0f,%.6g,%.6g,%.0f",
	         floor(v[0] * 1000 + 0.5), floor(v[1] * 1000 + 0.5), v[2], v[3], v[4]);
	add_opt(o, "reconnect", buf);
}

static void opt_ssl(opt_ctx *o, int idx)
{
	lua_State *L = o->L;
	if (lua_isnil(L, idx))
		return;
	if (!lua_istable(L, idx))
		type_error(o, "ssl_settings", "table", idx);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
		int v = lua_gettop(L);
		if (k && (strcmp(k, "client_ssl_cert_filepath") == 0 ||
		          strcmp(k, "client_ssl_private_key_filepath") == 0 ||
		          strcmp(k, "client_ssl_ca_filepath") == 0)) {
			lua_pushfstring(L, "ssl_settings.%s", k);
			add_opt(o, k, get_string(o, v, lua_tostring(L, -1)));
			lua_pop(L, 1);
		} else if (k && strcmp(k, "allow_self_signed") == 0) {
			opt_bool(o, v, "ssl_settings.allow_self_signed", k);
		} else {
			opt_error(o, "%s: unknown key '%s'", "ssl_settings", k ? k : luaL_typename(L, -2));
		}
		lua_pop(L, 1);
	}
}

/* Starts an option collection for argument narg: pushes the {name, value, ...}
 * list and the env table { handlers = {}, named = {} } of the new object;
 * returns the env's stack index. */
static int opt_begin(opt_ctx *o, lua_State *L, int narg)
{
	int env;
	o->L = L;
	o->narg = narg;
	o->n = 0;
	lua_newtable(L);
	o->opts = lua_gettop(L);
	lua_newtable(L);
	env = lua_gettop(L);
	lua_newtable(L);
	lua_setfield(L, env, "handlers");
	lua_newtable(L);
	lua_setfield(L, env, "named");
	return env;
}

/* Raises for a key of the options table at idx that is not in keys. */
static void check_keys(opt_ctx *o, int idx, const char *const *keys)
{
	lua_State *L = o->L;
	int i;
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
		for (i = 0; keys[i]; i++)
			if (k && strcmp(k, keys[i]) == 0)
				break;
		if (!keys[i])
			opt_error(o, "%s '%s'", "unknown option", k ? k : luaL_typename(L, -2));
		lua_pop(L, 1);
	}
}

/* Applies the collected options to handle h with set (vws_conn_set_option or
 * vws_server_set_option); stops at the first failure. Plain ABI calls and
 * rawgeti of strings: nothing here raises. */
static int opt_apply(opt_ctx *o, uint64_t h, int (*set)(uint64_t, const char *, const char *, char *, size_t),
                     char *err, size_t errlen)
{
	lua_State *L = o->L;
	int i, rc = VWS_OK;
	for (i = 1; rc == VWS_OK && i < o->n; i += 2) {
		lua_rawgeti(L, o->opts, i);
		lua_rawgeti(L, o->opts, i + 1);
		rc = set(h, lua_tostring(L, -2), lua_tostring(L, -1), err, errlen);
		lua_pop(L, 2);
	}
	return rc;
}

/* The optional close code and reason at arguments 2 and 3 (ws.close). */
static void check_close_args(lua_State *L, int *code, const char **reason, size_t *len)
{
	*code = 0;
	*reason = "";
	*len = 0;
	if (!lua_isnoneornil(L, 2)) {
		lua_Number n = luaL_checknumber(L, 2);
		if (n != floor(n) || n < 1000 || n > 4999)
			luaL_argerror(L, 2, "close code from 1000 to 4999 expected");
		*code = (int)n;
	}
	if (!lua_isnoneornil(L, 3)) {
		*reason = luaL_checklstring(L, 3, len);
		if (*len > 123)
			luaL_argerror(L, 3, "reason longer than 123 bytes");
	}
}

typedef struct event_name {
	const char *name;
	int id;
} event_name;

/* Client events (ws.create) and server events (ws.listen): libwebsockets 2.4
 * callback reasons, and the names that may be used instead. */
static const event_name client_events[] = {
	{"error", VWS_EV_CONNECTION_ERROR}, {"open", VWS_EV_ESTABLISHED}, {"close", VWS_EV_CLOSED},
	{"message", VWS_EV_RECEIVE},        {"pong", VWS_EV_RECEIVE_PONG}, {"writeable", VWS_EV_WRITEABLE},
	{NULL, 0}};
static const event_name server_events[] = {
	{"open", VWS_EV_SERVER_ESTABLISHED}, {"close", VWS_EV_CLOSED},
	{"message", VWS_EV_SERVER_RECEIVE},  {"pong", VWS_EV_SERVER_RECEIVE_PONG},
	{"writeable", VWS_EV_SERVER_WRITEABLE}, {NULL, 0}};

/* Fills env.handlers / env.named from the event_handlers table at idx, with
 * the events of `names`. Sets *pong / *writeable when handlers for those
 * events exist. */
static void parse_handlers(opt_ctx *o, int idx, int env, const event_name *names, int *pong, int *writeable)
{
	lua_State *L = o->L;
	int handlers, named, id, i;

	if (lua_isnil(L, idx))
		return;
	if (!lua_istable(L, idx))
		type_error(o, "event_handlers", "table", idx);
	lua_getfield(L, env, "handlers");
	handlers = lua_gettop(L);
	lua_getfield(L, env, "named");
	named = lua_gettop(L);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		int isnamed = 0;
		id = 0;
		if (lua_type(L, -2) == LUA_TNUMBER) {
			lua_Number k = lua_tonumber(L, -2);
			if (k != floor(k) || k < 0 || k > 1000)
				opt_error(o, "%s: %s", "event_handlers", "keys must be event IDs or names");
			id = (int)k;
			/* Other libwebsockets callback reasons are accepted and never fire. */
			for (i = 0; names[i].name; i++)
				if (names[i].id == id)
					break;
			if (!names[i].name) {
				lua_pop(L, 1);
				continue;
			}
		} else if (lua_type(L, -2) == LUA_TSTRING) {
			const char *k = lua_tostring(L, -2);
			for (i = 0; names[i].name; i++)
				if (strcmp(k, names[i].name) == 0)
					break;
			if (!names[i].name)
				opt_error(o, "%s: unknown event name '%s'", "event_handlers", k);
			id = names[i].id;
			isnamed = 1;
		} else {
			opt_error(o, "%s: %s", "event_handlers", "keys must be event IDs or names");
		}
		if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TFUNCTION) {
			lua_pushfstring(L, "event_handlers: handler for event %d: function or global function name expected, got %s",
			                id, luaL_typename(L, -1));
			luaL_argerror(L, o->narg, lua_tostring(L, -1));
		}
		lua_rawgeti(L, handlers, id);
		if (!lua_isnil(L, -1)) {
			lua_pushfstring(L, "event_handlers: event %d given twice (by ID and by name)", id);
			luaL_argerror(L, o->narg, lua_tostring(L, -1));
		}
		lua_pop(L, 1);
		lua_pushvalue(L, -1);
		lua_rawseti(L, handlers, id);
		if (isnamed) {
			lua_pushboolean(L, 1);
			lua_rawseti(L, named, id);
		}
		if (id == VWS_EV_RECEIVE_PONG || id == VWS_EV_SERVER_RECEIVE_PONG)
			*pong = 1;
		if (id == VWS_EV_WRITEABLE || id == VWS_EV_SERVER_WRITEABLE)
			*writeable = 1;
		lua_pop(L, 1);
	}
	lua_pop(L, 2);
}

static const char *const create_keys[] = {
	"url", "event_handlers", "ssl_settings", "standalone", "protocols", "headers", "origin",
	"connect_timeout", "ping_interval", "pong_timeout", "close_timeout", "reconnect",
	"max_message_size", "max_send_queue", "compression", "proxy", "max_redirects", "pong_events",
	NULL};

/* ws.create{url=, event_handlers=, ssl_settings=, standalone=, ...}
 * ws.create(url, event_handlers, ssl_settings, standalone) */
static int ws_create(lua_State *L)
{
	vl_state *st = vl_upstate(L);
	opt_ctx o;
	int tableform, env, v, i, rc = VWS_OK, pong = 0, writeable = 0, standalone = 0;
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
		return push_closed(L);
	env = opt_begin(&o, L, 1); /* env of the wso: { handlers = {}, named = {}, url = url } */

	if (tableform) {
		check_keys(&o, 1, create_keys);
		lua_getfield(L, 1, "url");
		url = get_string(&o, -1, "url");
		lua_setfield(L, env, "url");
		lua_getfield(L, 1, "event_handlers");
		n_handlers_arg = lua_gettop(L);
		lua_getfield(L, 1, "ssl_settings");
		n_ssl_arg = lua_gettop(L);
		lua_getfield(L, 1, "standalone");
		n_std_arg = lua_gettop(L);
	} else {
		url = lua_tostring(L, 1);
		lua_pushvalue(L, 1);
		lua_setfield(L, env, "url");
		n_handlers_arg = 2;
		n_ssl_arg = 3;
		n_std_arg = 4;
	}

	if (!tableform)
		o.narg = 2;
	parse_handlers(&o, n_handlers_arg, env, client_events, &pong, &writeable);
	if (!tableform)
		o.narg = 3;
	opt_ssl(&o, n_ssl_arg);
	if (!tableform)
		o.narg = 4;
	if (!lua_isnil(L, n_std_arg)) {
		if (lua_type(L, n_std_arg) != LUA_TBOOLEAN)
			type_error(&o, "standalone", "boolean", n_std_arg);
		standalone = lua_toboolean(L, n_std_arg);
	}
	o.narg = 1;

	if (tableform) {
		for (i = 4; create_keys[i]; i++) {
			const char *k = create_keys[i];
			lua_getfield(L, 1, k);
			v = lua_gettop(L);
			if (lua_isnil(L, v)) {
				lua_pop(L, 1);
				continue;
			}
			if (strcmp(k, "protocols") == 0) opt_protocols(&o, v);
			else if (strcmp(k, "headers") == 0) opt_headers(&o, v);
			else if (strcmp(k, "origin") == 0) opt_string(&o, v, k);
			else if (strcmp(k, "proxy") == 0) opt_string(&o, v, k);
			else if (strcmp(k, "connect_timeout") == 0) opt_seconds(&o, v, k, k, 0);
			else if (strcmp(k, "ping_interval") == 0) opt_seconds(&o, v, k, k, 1);
			else if (strcmp(k, "pong_timeout") == 0) opt_seconds(&o, v, k, k, 0);
			else if (strcmp(k, "close_timeout") == 0) opt_seconds(&o, v, k, k, 1);
			else if (strcmp(k, "reconnect") == 0) opt_reconnect(&o, v);
			else if (strcmp(k, "max_message_size") == 0) opt_integer(&o, v, k, 1, 9007199254740992.0);
			else if (strcmp(k, "max_send_queue") == 0) opt_integer(&o, v, k, 1, 9007199254740992.0);
			else if (strcmp(k, "compression") == 0) opt_bool(&o, v, k, k);
			else if (strcmp(k, "max_redirects") == 0) opt_integer(&o, v, k, 0, 10);
			else if (strcmp(k, "pong_events") == 0) opt_bool(&o, v, k, k);
			lua_pop(L, 1);
		}
	}
	if (pong) /* a pong handler implies pong events */
		add_opt(&o, "pong_events", "1");
	if (writeable)
		add_opt(&o, "writeable_events", "1");

	/* The wso exists before the connection does, so nothing leaks if a later
	 * allocation fails: its __gc frees whatever handle it holds. */
	c = lua_newuserdata(L, sizeof *c);
	c->h = 0;
	c->ctx = standalone ? st->ctxA : st->ctxB;
	c->standalone = standalone;
	luaL_getmetatable(L, VL_CONN_MT);
	lua_setmetatable(L, -2);
	lua_pushvalue(L, env);
	lua_setfenv(L, -2);

	/* ABI calls: nothing below raises until the lock is released. */
	vl_lock_acquire(&st->lock);
	rc = vws_conn_new(c->ctx, url, &h, err, sizeof err);
	if (rc == VWS_OK)
		rc = opt_apply(&o, h, vws_conn_set_option, err, sizeof err);
	if (rc == VWS_OK)
		rc = vws_conn_check(h, err, sizeof err);
	if (rc != VWS_OK && h != 0) {
		vws_conn_free(h);
		h = 0;
	}
	vl_lock_release(&st->lock);
	if (rc != VWS_OK) {
		if (!err[0])
			snprintf(err, sizeof err, "%s", status_text(rc));
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

/* ---- wso functions ------------------------------------------------------------ */

static int ws_connect(lua_State *L)
{
	vl_conn *c = check_conn(L, 1);
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
	if (!c->standalone && vl_start_dispatcher(st, err, sizeof err) != 0)
		rc = VWS_EINTERNAL;
	if (rc == VWS_OK)
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
	return push_result(L, rc, err);
}

static int check_opcode(lua_State *L, int idx)
{
	if (lua_isnoneornil(L, idx))
		return VWS_OP_TEXT;
	if (lua_type(L, idx) == LUA_TNUMBER) {
		lua_Number n = lua_tonumber(L, idx);
		if (n == VWS_OP_TEXT || n == VWS_OP_BINARY)
			return (int)n;
	} else if (lua_type(L, idx) == LUA_TSTRING) {
		const char *s = lua_tostring(L, idx);
		if (strcmp(s, "text") == 0)
			return VWS_OP_TEXT;
		if (strcmp(s, "binary") == 0)
			return VWS_OP_BINARY;
	}
	return luaL_argerror(L, idx, "\"text\", \"binary\", ws.TEXT or ws.BINARY expected");
}

static int ws_send(lua_State *L)
{
	vl_conn *c = check_conn(L, 1);
	size_t len;
	const char *data = luaL_checklstring(L, 2, &len);
	int op = check_opcode(L, 3), rc, bad;
	vl_state *st = vl_upstate(L);
	char err[VL_ERRLEN] = "";

	if ((bad = push_unusable(L, st, c)) != 0)
		return bad;
	vl_lock_acquire(&st->lock);
	rc = vws_conn_send(c->h, op, data, len, err, sizeof err);
	vl_lock_release(&st->lock);
	return push_result(L, rc, err);
}

static int server_close(lua_State *L, vl_server *s);
static vl_server *to_server(lua_State *L, int idx);

/* ws.close(wso[, code[, reason]]), and ws.close(server[, code[, reason]]). */
static int ws_close(lua_State *L)
{
	vl_server *s = to_server(L, 1);
	vl_conn *c = s ? NULL : check_conn(L, 1);
	int code, rc, bad;
	size_t len;
	const char *reason;
	vl_state *st = vl_upstate(L);
	char err[VL_ERRLEN] = "";

	if (s)
		return server_close(L, s);
	check_close_args(L, &code, &reason, &len);
	if ((bad = push_unusable(L, st, c)) != 0)
		return bad;
	vl_lock_acquire(&st->lock);
	rc = vws_conn_close(c->h, code, reason, len, err, sizeof err);
	vl_lock_release(&st->lock);
	return push_result(L, rc, err);
}

static int ws_ping(lua_State *L)
{
	vl_conn *c = check_conn(L, 1);
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
	return push_result(L, rc, err);
}

static int ws_state(lua_State *L)
{
	static const char *const names[] = {"created", "connecting", "open", "closing", "closed"};
	vl_conn *c = check_conn(L, 1);
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

static int ws_buffered(lua_State *L)
{
	vl_conn *c = check_conn(L, 1);
	vl_state *st = vl_upstate(L);
	size_t n = 0;
	int rc, bad;
	if ((bad = push_unusable(L, st, c)) != 0)
		return bad;
	vl_lock_acquire(&st->lock);
	rc = vws_conn_buffered(c->h, &n);
	vl_lock_release(&st->lock);
	if (rc != VWS_OK)
		return push_fail(L, rc, NULL);
	lua_pushnumber(L, (lua_Number)n);
	return 1;
}

/* Pushes the string get() copies out for the wso at 1, or nil, err (earg: the
 * message for VWS_EARG, NULL for the status text). */
static int push_conn_text(lua_State *L, int (*get)(vws_conn, char *, size_t), const char *earg)
{
	vl_conn *c = check_conn(L, 1);
	vl_state *st = vl_upstate(L);
	char buf[512] = "";
	int rc, bad;
	if ((bad = push_unusable(L, st, c)) != 0)
		return bad;
	vl_lock_acquire(&st->lock);
	rc = get(c->h, buf, sizeof buf);
	vl_lock_release(&st->lock);
	if (rc != VWS_OK)
		return push_fail(L, rc, rc == VWS_EARG ? earg : NULL);
	lua_pushstring(L, buf);
	return 1;
}

static int ws_protocol(lua_State *L)
{
	return push_conn_text(L, vws_conn_protocol, NULL);
}

/* ws.headers(wso): the request headers of a client's opening handshake (a wso
 * a server accepted), as a table: lower-case names, repeated headers joined
 * with ", ". */
static int ws_headers(lua_State *L)
{
	vl_conn *c = check_conn(L, 1);
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
			return push_fail(L, n, n == VWS_EARG ? "not a connection accepted by a server" : NULL);
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
static int ws_peer(lua_State *L)
{
	return push_conn_text(L, vws_conn_peer, "not a connection accepted by a server");
}

static int conn_gc(lua_State *L)
{
	vl_conn *c = luaL_checkudata(L, 1, VL_CONN_MT);
	if (c->h != 0) {
		vws_conn h = c->h;
		c->h = 0;
		vws_conn_free(h); /* 1001 if open, no further events; may run twice: h is 0 then */
	}
	return 0;
}

static int conn_tostring(lua_State *L)
{
	vl_conn *c = luaL_checkudata(L, 1, VL_CONN_MT);
	const char *url = "";
	lua_getfenv(L, 1);
	if (lua_istable(L, -1)) {
		lua_getfield(L, -1, "url");
		if (lua_type(L, -1) == LUA_TSTRING)
			url = lua_tostring(L, -1);
	}
	lua_pushfstring(L, VL_CONN_MT ": %p (%s)", (void *)c, url);
	return 1;
}

/* ---- Servers ---------------------------------------------------------------------- */

static vl_server *check_server(lua_State *L, int idx)
{
	return luaL_checkudata(L, idx, VL_SERVER_MT);
}

/* The server userdata at idx, or NULL when idx holds something else. */
static vl_server *to_server(lua_State *L, int idx)
{
	vl_server *s = lua_touserdata(L, idx);
	int is;
	if (!s || !lua_getmetatable(L, idx))
		return NULL;
	luaL_getmetatable(L, VL_SERVER_MT);
	is = lua_rawequal(L, -1, -2);
	lua_pop(L, 2);
	return is ? s : NULL;
}

static const char *const listen_keys[] = {
	"port", "host", "event_handlers", "standalone", "ssl_settings", "protocols", "max_clients",
	"handshake_timeout", "max_message_size", "max_send_queue", "ping_interval", "pong_timeout",
	"close_timeout", "compression", NULL};

static void opt_server_ssl(opt_ctx *o, int idx)
{
	lua_State *L = o->L;
	if (lua_isnil(L, idx))
		return;
	if (!lua_istable(L, idx))
		type_error(o, "ssl_settings", "table", idx);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
		int v = lua_gettop(L);
		if (k && (strcmp(k, "ssl_cert_filepath") == 0 || strcmp(k, "ssl_private_key_filepath") == 0)) {
			lua_pushfstring(L, "ssl_settings.%s", k);
			add_opt(o, k, get_string(o, v, lua_tostring(L, -1)));
			lua_pop(L, 1);
		} else {
			opt_error(o, "%s: unknown key '%s' (ssl_cert_filepath, ssl_private_key_filepath)", "ssl_settings",
			          k ? k : luaL_typename(L, -2));
		}
		lua_pop(L, 1);
	}
}

/* live[h] = nil (the module stops keeping the value of handle h alive).
 * Args: st (light userdata), handle. */
static int live_clear_cf(lua_State *L)
{
	vl_state *st = lua_touserdata(L, 1);
	lua_rawgeti(L, LUA_REGISTRYINDEX, st->live_ref);
	lua_pushvalue(L, 2);
	lua_pushnil(L);
	lua_rawset(L, -3);
	return 0;
}

/* ws.listen{port=, host=, event_handlers=, standalone=, ...} -> server | nil, err */
static int ws_listen(lua_State *L)
{
	vl_state *st = vl_upstate(L);
	opt_ctx o;
	int env, v, i, rc = VWS_OK, pong = 0, writeable = 0, standalone = 0;
	vl_server *s;
	vws_server h = 0;
	char err[VL_ERRLEN] = "";

	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	if (!st)
		return push_closed(L);
	env = opt_begin(&o, L, 1); /* env of the server; its clients' envs share the handlers */
	check_keys(&o, 1, listen_keys);
	lua_getfield(L, 1, "port");
	if (lua_isnil(L, -1))
		opt_error(&o, "%s: %s", "port", "required (0 = any free port)");
	opt_integer(&o, lua_gettop(L), "port", 0, 65535);
	lua_pop(L, 1);
	lua_getfield(L, 1, "event_handlers");
	parse_handlers(&o, lua_gettop(L), env, server_events, &pong, &writeable);
	lua_pop(L, 1);
	lua_getfield(L, 1, "ssl_settings");
	opt_server_ssl(&o, lua_gettop(L));
	lua_pop(L, 1);
	lua_getfield(L, 1, "standalone");
	if (!lua_isnil(L, -1)) {
		if (lua_type(L, -1) != LUA_TBOOLEAN)
			type_error(&o, "standalone", "boolean", lua_gettop(L));
		standalone = lua_toboolean(L, -1);
	}
	lua_pop(L, 1);
	for (i = 5; listen_keys[i]; i++) {
		const char *k = listen_keys[i];
		lua_getfield(L, 1, k);
		v = lua_gettop(L);
		if (lua_isnil(L, v)) {
			lua_pop(L, 1);
			continue;
		}
		if (strcmp(k, "protocols") == 0) opt_protocols(&o, v);
		else if (strcmp(k, "max_clients") == 0) opt_integer(&o, v, k, 1, 100000);
		else if (strcmp(k, "handshake_timeout") == 0) opt_seconds(&o, v, k, k, 0);
		else if (strcmp(k, "ping_interval") == 0) opt_seconds(&o, v, k, k, 1);
		else if (strcmp(k, "pong_timeout") == 0) opt_seconds(&o, v, k, k, 0);
		else if (strcmp(k, "close_timeout") == 0) opt_seconds(&o, v, k, k, 1);
		else if (strcmp(k, "compression") == 0) opt_bool(&o, v, k, k);
		else opt_integer(&o, v, k, 1, 9007199254740992.0); /* max_message_size, max_send_queue */
		lua_pop(L, 1);
	}
	lua_getfield(L, 1, "host");
	if (!lua_isnil(L, -1))
		opt_string(&o, lua_gettop(L), "host");
	lua_pop(L, 1);
	if (pong)
		add_opt(&o, "pong_events", "1");
	if (writeable)
		add_opt(&o, "writeable_events", "1");

	s = lua_newuserdata(L, sizeof *s);
	s->h = 0;
	s->ctx = standalone ? st->ctxA : st->ctxB;
	s->standalone = standalone;
	luaL_getmetatable(L, VL_SERVER_MT);
	lua_setmetatable(L, -2);
	lua_pushvalue(L, env);
	lua_setfenv(L, -2);
	lua_pushcfunction(L, vl_live_set_cf);
	lua_pushlightuserdata(L, st);
	lua_pushvalue(L, -3);

	/* ABI calls: nothing below raises until the lock is released. */
	vl_lock_acquire(&st->lock);
	rc = vws_server_new(s->ctx, &h, err, sizeof err);
	if (rc == VWS_OK)
		rc = opt_apply(&o, h, vws_server_set_option, err, sizeof err);
	if (rc == VWS_OK && !standalone && vl_start_dispatcher(st, err, sizeof err) != 0)
		rc = VWS_EINTERNAL;
	if (rc == VWS_OK)
		rc = vws_server_listen(h, err, sizeof err);
	if (rc == VWS_OK) {
		s->h = h;
		/* The module keeps a listening server alive (and every accepted client
		 * while it is active): a script may drop them and still get events. */
		lua_pushnumber(L, (lua_Number)h);
		if (lua_pcall(L, 3, 0, 0) != 0)
			lua_pop(L, 1);
	} else {
		lua_pop(L, 3);
		if (h != 0)
			vws_server_free(h);
	}
	vl_lock_release(&st->lock);
	if (rc != VWS_OK) {
		if (rc == VWS_EARG && strncmp(err, "option ", 7) == 0)
			return luaL_argerror(L, 1, err); /* a bad option value the checks above let through */
		return push_fail(L, rc, err);
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, st->conns_ref); /* conns[h] = server (weak) */
	lua_pushnumber(L, (lua_Number)h);
	lua_pushvalue(L, -3);
	lua_rawset(L, -3);
	lua_pop(L, 1);
	return 1;
}

/* Called by the dispatch path (under lua_cpcall) for the first event of a
 * connection accepted by server sh: pushes a new wso for it, or nothing
 * (returns 0) when the server's userdata is gone, in which case the
 * connection is freed. */
int vl_accept(lua_State *L, vl_state *st, vws_conn h)
{
	vws_server sh = 0;
	vl_conn *c;
	int srv;

	if (vws_conn_server(h, &sh) != VWS_OK || sh == 0)
		return 0;
	lua_rawgeti(L, LUA_REGISTRYINDEX, st->conns_ref);
	lua_pushnumber(L, (lua_Number)sh);
	lua_rawget(L, -2);
	lua_remove(L, -2);
	if (!to_server(L, -1)) {
		lua_pop(L, 1);
		vws_conn_free(h);
		return 0;
	}
	srv = lua_gettop(L);
	c = lua_newuserdata(L, sizeof *c);
	c->h = h;
	c->ctx = ((vl_server *)lua_touserdata(L, srv))->ctx;
	c->standalone = ((vl_server *)lua_touserdata(L, srv))->standalone;
	luaL_getmetatable(L, VL_CONN_MT);
	lua_setmetatable(L, -2);
	/* env = { handlers = server's, named = server's, url = "(server)", server = srv } */
	lua_newtable(L);
	lua_getfenv(L, srv);
	lua_getfield(L, -1, "handlers");
	lua_setfield(L, -3, "handlers");
	lua_getfield(L, -1, "named");
	lua_setfield(L, -3, "named");
	lua_pop(L, 1);
	lua_pushliteral(L, "accepted");
	lua_setfield(L, -2, "url");
	lua_pushvalue(L, srv);
	lua_setfield(L, -2, "server");
	lua_setfenv(L, -2);
	lua_remove(L, srv);
	lua_rawgeti(L, LUA_REGISTRYINDEX, st->conns_ref);
	lua_pushnumber(L, (lua_Number)h);
	lua_pushvalue(L, -3);
	lua_rawset(L, -3);
	lua_pop(L, 1);
	lua_rawgeti(L, LUA_REGISTRYINDEX, st->live_ref);
	lua_pushnumber(L, (lua_Number)h);
	lua_pushvalue(L, -3);
	lua_rawset(L, -3);
	lua_pop(L, 1);
	return 1;
}

static int srv_unusable(lua_State *L, const vl_state *st, const vl_server *s)
{
	if (!st)
		return push_closed(L);
	if (s->h == 0)
		return push_fail(L, VWS_EARG, "server was freed");
	return 0;
}

static int ws_port(lua_State *L)
{
	vl_server *s = check_server(L, 1);
	vl_state *st = vl_upstate(L);
	int port, bad;
	if ((bad = srv_unusable(L, st, s)) != 0)
		return bad;
	vl_lock_acquire(&st->lock);
	port = vws_server_port(s->h);
	vl_lock_release(&st->lock);
	if (port < 0)
		return push_fail(L, port, NULL);
	if (port == 0)
		return push_fail(L, VWS_ESTATE, "server is not listening");
	lua_pushinteger(L, port);
	return 1;
}

static int ws_broadcast(lua_State *L)
{
	vl_server *s = check_server(L, 1);
	size_t len;
	const char *data = luaL_checklstring(L, 2, &len);
	int op = check_opcode(L, 3), n, bad;
	vl_state *st = vl_upstate(L);
	char err[VL_ERRLEN] = "";

	if ((bad = srv_unusable(L, st, s)) != 0)
		return bad;
	vl_lock_acquire(&st->lock);
	n = vws_server_broadcast(s->h, op, data, len, err, sizeof err);
	vl_lock_release(&st->lock);
	if (n < 0)
		return push_fail(L, n, err);
	lua_pushinteger(L, n);
	return 1;
}

/* Array of the open clients' wsos (those whose open event was delivered). */
static int ws_clients(lua_State *L)
{
	vl_server *s = check_server(L, 1);
	vl_state *st = vl_upstate(L);
	vws_conn small[64], *hs = small;
	int n, cap = 64, i, k = 0, bad;

	if ((bad = srv_unusable(L, st, s)) != 0)
		return bad;
	for (;;) {
		vl_lock_acquire(&st->lock);
		n = vws_server_clients(s->h, hs, (size_t)cap);
		vl_lock_release(&st->lock);
		if (n <= cap)
			break;
		cap = n + 16; /* a Lua-owned buffer: nothing leaks if a later call raises */
		hs = lua_newuserdata(L, (size_t)cap * sizeof *hs);
	}
	if (n < 0)
		return push_fail(L, n, NULL);
	lua_newtable(L);
	lua_rawgeti(L, LUA_REGISTRYINDEX, st->conns_ref);
	for (i = 0; i < n; i++) {
		lua_pushnumber(L, (lua_Number)hs[i]);
		lua_rawget(L, -2);
		if (lua_isuserdata(L, -1))
			lua_rawseti(L, -3, ++k);
		else
			lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return 1;
}

static int server_close(lua_State *L, vl_server *s)
{
	int code, rc, bad;
	size_t len;
	const char *reason;
	vl_state *st = vl_upstate(L);
	char err[VL_ERRLEN] = "";

	check_close_args(L, &code, &reason, &len);
	if ((bad = srv_unusable(L, st, s)) != 0)
		return bad;
	lua_settop(L, 3);
	lua_pushcfunction(L, live_clear_cf);
	lua_pushlightuserdata(L, st);
	lua_pushnumber(L, (lua_Number)s->h);
	vl_lock_acquire(&st->lock);
	rc = vws_server_close(s->h, code, reason, len, err, sizeof err);
	if (rc == VWS_OK) {
		if (lua_pcall(L, 2, 0, 0) != 0)
			lua_pop(L, 1);
	} else {
		lua_pop(L, 3);
	}
	vl_lock_release(&st->lock);
	return push_result(L, rc, err);
}

static int srv_close(lua_State *L)
{
	return server_close(L, check_server(L, 1));
}

static int server_gc(lua_State *L)
{
	vl_server *s = luaL_checkudata(L, 1, VL_SERVER_MT);
	if (s->h != 0) {
		vws_server h = s->h;
		s->h = 0;
		vws_server_free(h);
	}
	return 0;
}

static int server_tostring(lua_State *L)
{
	vl_server *s = luaL_checkudata(L, 1, VL_SERVER_MT);
	lua_pushfstring(L, VL_SERVER_MT ": %p", (void *)s);
	return 1;
}

/* ---- Module functions ------------------------------------------------------------ */

static int ws_loop(lua_State *L)
{
	int timeout = opt_ms(L, 1), done = 0, active = 0;
	vl_state *st = vl_upstate(L);
	int64_t deadline;

	if (!st)
		return push_closed(L);
	deadline = timeout >= 0 ? now_ms() + timeout : 0;
	vl_lock_acquire(&st->lock);
	for (;;) {
		int64_t left = 100;
		vl_deliver_pending(st, L, st->ctxA, -1);
		active = vws_ctx_active(st->ctxA);
		if (active < 0)
			break; /* the engine failed: nil, err below */
		if (VL_STOPPED(st) || (active == 0 && vws_ctx_pending(st->ctxA) <= 0)) {
			done = 1;
			break;
		}
		if (timeout >= 0) {
			left = deadline - now_ms();
			if (left <= 0)
				break;
			if (left > 100)
				left = 100;
		}
		vl_wait_fds(st, &st->ctxA, 1, (int)left);
	}
	vl_lock_release(&st->lock);
	if (done) {
		lua_pushboolean(L, 1);
		return 1;
	}
	if (active < 0)
		return push_fail(L, active, NULL);
	lua_pushboolean(L, 0);
	lua_pushliteral(L, "timeout");
	return 2;
}

static int ws_dispatch(lua_State *L)
{
	int max = opt_ms(L, 1), n;
	vl_state *st = vl_upstate(L);
	vws_ctx both[2];
	int64_t deadline;

	if (!st)
		return push_closed(L);
	if (max < 0)
		max = 0;
	deadline = now_ms() + max;
	vl_lock_acquire(&st->lock);
	both[0] = st->ctxA;
	both[1] = st->ctxB;
	for (;;) {
		int64_t left;
		n = vl_deliver_pending(st, L, st->ctxA, -1);
		n += vl_deliver_pending(st, L, st->ctxB, -1);
		if (n > 0 || VL_STOPPED(st))
			break;
		left = deadline - now_ms();
		if (left <= 0)
			break;
		vl_wait_fds(st, both, 2, left > 100 ? 100 : (int)left);
	}
	vl_lock_release(&st->lock);
	lua_pushinteger(L, n);
	return 1;
}

static int ws_event_fd(lua_State *L)
{
	vl_state *st = vl_upstate(L);
	int fd;
	if (!st)
		return push_closed(L);
	vl_lock_acquire(&st->lock);
	fd = vws_ctx_event_fd(st->ctxA);
	vl_lock_release(&st->lock);
	if (fd < 0)
		return push_fail(L, fd, NULL);
	lua_pushinteger(L, fd);
	return 1;
}

static int ws_set_log_level(lua_State *L)
{
	int mask;
	vl_state *st = vl_upstate(L);
	if (lua_type(L, 1) == LUA_TSTRING) {
		if (strcmp(lua_tostring(L, 1), "all") != 0)
			return luaL_argerror(L, 1, "log mask (0..2047) or \"all\" expected");
		mask = 2047;
	} else if (lua_type(L, 1) == LUA_TNUMBER) {
		lua_Number n = lua_tonumber(L, 1);
		if (n != floor(n) || n < 0 || n > 2047)
			return luaL_argerror(L, 1, "log mask (0..2047) or \"all\" expected");
		mask = (int)n;
	} else {
		return luaL_argerror(L, 1, lua_pushfstring(L, "number or \"all\" expected, got %s", luaL_typename(L, 1)));
	}
	if (st)
		vl_lock_acquire(&st->lock);
	vws_set_log_level(mask);
	if (st)
		vl_lock_release(&st->lock);
	lua_pushboolean(L, 1);
	return 1;
}

/* ---- Opening ----------------------------------------------------------------- */

static int state_gc(lua_State *L)
{
	vl_state_ud *ud = luaL_checkudata(L, 1, VL_STATE_MT);
	vl_state *st = ud->st;
	if (st) {
		ud->st = NULL; /* every module function sees "closed" from now on */
		vl_state_close(st);
	}
	return 0;
}

static const luaL_Reg conn_methods[] = {
	{"connect", ws_connect}, {"send", ws_send},         {"close", ws_close},
	{"ping", ws_ping},       {"state", ws_state},       {"buffered", ws_buffered},
	{"protocol", ws_protocol}, {"headers", ws_headers}, {"peer", ws_peer}, {NULL, NULL}};

static const luaL_Reg server_methods[] = {
	{"port", ws_port}, {"broadcast", ws_broadcast}, {"clients", ws_clients}, {"close", srv_close},
	{NULL, NULL}};

static const luaL_Reg module_funcs[] = {
	{"create", ws_create},     {"connect", ws_connect},   {"send", ws_send},
	{"close", ws_close},       {"ping", ws_ping},         {"state", ws_state},
	{"buffered", ws_buffered}, {"protocol", ws_protocol}, {"loop", ws_loop},
	{"dispatch", ws_dispatch}, {"event_fd", ws_event_fd}, {"set_log_level", ws_set_log_level},
	{"listen", ws_listen},     {"port", ws_port},         {"broadcast", ws_broadcast},
	{"clients", ws_clients},   {"headers", ws_headers},   {"peer", ws_peer},
	{NULL, NULL}};

/* Sets the functions of l into the table at -1 as closures over the value at su. */
static void set_funcs(lua_State *L, const luaL_Reg *l, int su)
{
	for (; l->name; l++) {
		lua_pushvalue(L, su);
		lua_pushcclosure(L, l->func, 1);
		lua_setfield(L, -2, l->name);
	}
}

void vl_new_metatable(lua_State *L, const char *name, const luaL_Reg *methods, int su,
                      lua_CFunction gc, lua_CFunction tostring)
{
	if (luaL_newmetatable(L, name)) {
		lua_newtable(L);
		set_funcs(L, methods, su);
		lua_setfield(L, -2, "__index");
		lua_pushcfunction(L, gc);
		lua_setfield(L, -2, "__gc");
		lua_pushcfunction(L, tostring);
		lua_setfield(L, -2, "__tostring");
	}
	lua_pop(L, 1);
}

/* Keeps this .so mapped for the life of the process: a Go runtime cannot be
 * unloaded, and lua_close would otherwise dlclose it. */
static void pin_library(void)
{
	Dl_info info;
	if (dladdr((void *)&luaopen_verawebsockets, &info) && info.dli_fname)
		dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

/* Returns the State userdata (pushed), making it on first use in this VM. */
static int get_state(lua_State *L)
{
	vl_state_ud *ud;
	vl_state *st;
	lua_State *T;
	int T_ref, conns_ref, live_ref, dying_ref;
	char err[VL_ERRLEN] = "";

	lua_pushlightuserdata(L, &state_key);
	lua_rawget(L, LUA_REGISTRYINDEX);
	if (lua_isuserdata(L, -1))
		return lua_gettop(L);
	lua_pop(L, 1);

	ud = lua_newuserdata(L, sizeof *ud);
	ud->st = NULL;
	if (luaL_newmetatable(L, VL_STATE_MT)) {
		lua_pushcfunction(L, state_gc);
		lua_setfield(L, -2, "__gc");
		lua_pushliteral(L, "locked");
		lua_setfield(L, -2, "__metatable");
	}
	lua_setmetatable(L, -2);
	T = lua_newthread(L);
	T_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_newtable(L);
	lua_newtable(L);
	lua_pushliteral(L, "v");
	lua_setfield(L, -2, "__mode");
	lua_setmetatable(L, -2);
	conns_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_newtable(L);
	live_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_newtable(L);
	dying_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pushlightuserdata(L, &state_key);
	lua_pushvalue(L, -2);
	lua_rawset(L, LUA_REGISTRYINDEX);

	st = vl_state_new(L, err, sizeof err); /* ABI calls; returns before we raise */
	if (!st)
		luaL_error(L, "verawebsockets: cannot create an engine context: %s", err);
	st->T = T;
	st->T_ref = T_ref;
	st->conns_ref = conns_ref;
	st->live_ref = live_ref;
	st->dying_ref = dying_ref;
	ud->st = st;
	return lua_gettop(L);
}

VL_EXPORT int luaopen_verawebsockets(lua_State *L)
{
	int su;
	static const struct {
		const char *name;
		int id;
	} events[] = {{"CONNECTION_ERROR", VWS_EV_CONNECTION_ERROR}, {"ESTABLISHED", VWS_EV_ESTABLISHED},
	              {"CLOSED", VWS_EV_CLOSED},                     {"RECEIVE", VWS_EV_RECEIVE},
	              {"RECEIVE_PONG", VWS_EV_RECEIVE_PONG},         {"WRITEABLE", VWS_EV_WRITEABLE},
	              {NULL, 0}};
	static const struct {
		const char *name;
		int id;
	} server_event_ids[] = {{"ESTABLISHED", VWS_EV_SERVER_ESTABLISHED}, {"CLOSED", VWS_EV_CLOSED},
	                        {"RECEIVE", VWS_EV_SERVER_RECEIVE},         {"RECEIVE_PONG", VWS_EV_SERVER_RECEIVE_PONG},
	                        {"WRITEABLE", VWS_EV_SERVER_WRITEABLE},     {NULL, 0}};
	int i;

	pin_library();
	su = get_state(L);

	vl_new_metatable(L, VL_CONN_MT, conn_methods, su, conn_gc, conn_tostring);
	vl_new_metatable(L, VL_SERVER_MT, server_methods, su, server_gc, server_tostring);

	lua_newtable(L);
	set_funcs(L, module_funcs, su);
	lua_pushliteral(L, VL_NAME);
	lua_setfield(L, -2, "_NAME");
	lua_pushliteral(L, VL_VERSION);
	lua_setfield(L, -2, "_VERSION");
	lua_pushinteger(L, VWS_OP_TEXT);
	lua_setfield(L, -2, "TEXT");
	lua_pushinteger(L, VWS_OP_BINARY);
	lua_setfield(L, -2, "BINARY");
	lua_newtable(L);
	for (i = 0; events[i].name; i++) {
		lua_pushinteger(L, events[i].id);
		lua_setfield(L, -2, events[i].name);
	}
	lua_setfield(L, -2, "EVENTS");
	lua_newtable(L);
	for (i = 0; server_event_ids[i].name; i++) {
		lua_pushinteger(L, server_event_ids[i].id);
		lua_setfield(L, -2, server_event_ids[i].name);
	}
	lua_setfield(L, -2, "SERVER_EVENTS");
	vl_open_client(L, su);
	lua_setfield(L, -2, "client");
	return 1;
}
