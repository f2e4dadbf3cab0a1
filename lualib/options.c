/*
 * options.c - the options tables of ws.create and ws.listen, checked for their
 * Lua types and turned into the engine's option text ({name, value} pairs that
 * vl_opts_apply hands to vws_conn_set_option / vws_server_set_option once
 * nothing can raise any more). Every function here may raise a Lua error
 * (bad argument #narg): call them before any ABI call.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "vws_lua.h"

void vl_opts_add(vl_opts *o, const char *name, const char *value)
{
	lua_State *L = o->L;
	lua_pushstring(L, name);
	lua_rawseti(L, o->opts, ++o->n);
	lua_pushstring(L, value);
	lua_rawseti(L, o->opts, ++o->n);
}

int vl_opts_error(vl_opts *o, const char *fmt, const char *name, const char *detail)
{
	lua_State *L = o->L;
	lua_pushfstring(L, fmt, name, detail);
	return luaL_argerror(L, o->narg, lua_tostring(L, -1));
}

int vl_opts_type_error(vl_opts *o, const char *name, const char *want, int idx)
{
	lua_State *L = o->L;
	lua_pushfstring(L, "%s: %s expected, got %s", name, want, luaL_typename(L, idx));
	return luaL_argerror(L, o->narg, lua_tostring(L, -1));
}

static lua_Number get_number(vl_opts *o, int idx, const char *name)
{
	if (lua_type(o->L, idx) != LUA_TNUMBER)
		vl_opts_type_error(o, name, "number", idx);
	return lua_tonumber(o->L, idx);
}

/* Seconds (fractions allowed) -> "ms". */
void vl_opt_seconds(vl_opts *o, int idx, const char *name, int allow_zero)
{
	char buf[32];
	lua_Number s = get_number(o, idx, name);
	double ms;
	if (!(s >= 0) || (!allow_zero && s == 0))
		vl_opts_error(o, "%s: %s", name, allow_zero ? "seconds >= 0 expected" : "seconds > 0 expected");
	ms = floor(s * 1000.0 + 0.5);
	if (ms > 2147483647.0)
		vl_opts_error(o, "%s: %s", name, "too large (at most 2147483 seconds)");
	if (ms == 0 && s > 0)
		ms = 1;
	snprintf(buf, sizeof buf, "%.0f", ms);
	vl_opts_add(o, name, buf);
}

static lua_Number get_integer(vl_opts *o, int idx, const char *name, lua_Number min, lua_Number max)
{
	lua_Number v = get_number(o, idx, name);
	char range[96];
	if (v != floor(v) || v < min || v > max) {
		snprintf(range, sizeof range, "integer from %.0f to %.0f expected", min, max);
		vl_opts_error(o, "%s: %s", name, range);
	}
	return v;
}

void vl_opt_integer(vl_opts *o, int idx, const char *name, lua_Number min, lua_Number max)
{
	char buf[32];
	snprintf(buf, sizeof buf, "%.0f", get_integer(o, idx, name, min, max));
	vl_opts_add(o, name, buf);
}

void vl_opt_bool(vl_opts *o, int idx, const char *name, const char *engine_name)
{
	if (lua_type(o->L, idx) != LUA_TBOOLEAN)
		vl_opts_type_error(o, name, "boolean", idx);
	vl_opts_add(o, engine_name, lua_toboolean(o->L, idx) ? "1" : "0");
}

/* A flag of the original API: a boolean, or a number read as the original C
 * library read it (lua_toboolean: every number is true, 0 included). */
int vl_opt_flag(vl_opts *o, int idx, const char *name)
{
	int t = lua_type(o->L, idx);
	if (t != LUA_TBOOLEAN && t != LUA_TNUMBER)
		vl_opts_type_error(o, name, "boolean", idx);
	return lua_toboolean(o->L, idx);
}

/* The string at idx; a NUL byte inside is refused (the engine takes C strings,
 * so it would cut the value short on the wire). */
const char *vl_opts_string_value(vl_opts *o, int idx, const char *name)
{
	size_t len;
	const char *s;
	if (lua_type(o->L, idx) != LUA_TSTRING)
		vl_opts_type_error(o, name, "string", idx);
	s = lua_tolstring(o->L, idx, &len);
	if (strlen(s) != len)
		vl_opts_error(o, "option %s: %s", name, "contains CR, LF, NUL or control bytes");
	return s;
}

void vl_opt_string(vl_opts *o, int idx, const char *name)
{
	vl_opts_add(o, name, vl_opts_string_value(o, idx, name));
}

/* A list option (protocols, origins): a string "a,b", or an array of non-empty
 * strings without commas or NUL bytes (items names them in the error), handed to
 * the engine comma-joined as `name`. Returns the array's length, -1 for a string. */
int vl_opt_list(vl_opts *o, int idx, const char *name, const char *items)
{
	lua_State *L = o->L;
	luaL_Buffer b;
	int i, n;
	if (lua_type(L, idx) == LUA_TSTRING) {
		vl_opts_add(o, name, vl_opts_string_value(o, idx, name));
		return -1;
	}
	if (!lua_istable(L, idx))
		vl_opts_type_error(o, name, "table or string", idx);
	n = (int)lua_objlen(L, idx);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, idx, i);
		if (lua_type(L, -1) != LUA_TSTRING || lua_objlen(L, -1) == 0 || strchr(lua_tostring(L, -1), ',') ||
		    strlen(lua_tostring(L, -1)) != lua_objlen(L, -1)) {
			lua_pushfstring(L, "non-empty %s without commas or NUL bytes expected", items);
			vl_opts_error(o, "%s: %s", name, lua_tostring(L, -1));
		}
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
	vl_opts_add(o, name, lua_tostring(L, -1));
	lua_pop(L, 1);
	return n;
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

void vl_opt_headers(vl_opts *o, int idx)
{
	lua_State *L = o->L;
	if (!lua_istable(L, idx))
		vl_opts_type_error(o, "headers", "table", idx);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		if (lua_type(L, -2) != LUA_TSTRING || (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER))
			vl_opts_error(o, "%s: %s", "headers", "{[\"Name\"] = \"value\"} expected");
		{
			size_t nl;
			const char *name = lua_tolstring(L, -2, &nl);
			if (!is_token(name, nl))
				vl_opts_error(o, "headers: invalid header name \"%s\"%s", name, "");
		}
		{
			size_t vl;
			const char *v = lua_tolstring(L, -1, &vl);
			if (strlen(v) != vl)
				vl_opts_error(o, "option header: value of %s %s", lua_tostring(L, -2),
				              "contains CR, LF, NUL or control bytes");
		}
		lua_pushfstring(L, "%s: %s", lua_tostring(L, -2), lua_tostring(L, -1));
		vl_opts_add(o, "header", lua_tostring(L, -1));
		lua_pop(L, 2);
	}
}

void vl_opt_reconnect(vl_opts *o, int idx)
{
	lua_State *L = o->L;
	static const char *const keys[] = {"min_delay", "max_delay", "factor", "jitter", "max_attempts", NULL};
	lua_Number v[5] = {1, 30, 2, 0.2, 0};
	char buf[160];
	int i;

	if (lua_type(L, idx) == LUA_TBOOLEAN) {
		if (lua_toboolean(L, idx))
			vl_opts_add(o, "reconnect", "1000,30000,2,0.2,0");
		else
			vl_opts_add(o, "reconnect", "");
		return;
	}
	if (!lua_istable(L, idx))
		vl_opts_type_error(o, "reconnect", "boolean or table", idx);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
		for (i = 0; keys[i]; i++)
			if (k && strcmp(k, keys[i]) == 0)
				break;
		if (!keys[i])
			vl_opts_error(o, "%s: unknown key '%s'", "reconnect", k ? k : luaL_typename(L, -2));
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
		vl_opts_error(o, "%s: %s", "reconnect.min_delay", "seconds from 0 to 2147483 expected");
	if (!(v[1] >= v[0]) || v[1] > 2147483)
		vl_opts_error(o, "%s: %s", "reconnect.max_delay", "seconds from min_delay to 2147483 expected");
	if (!(v[2] >= 1) || v[2] > 1000)
		vl_opts_error(o, "%s: %s", "reconnect.factor", "number from 1 to 1000 expected");
	if (!(v[3] >= 0 && v[3] <= 1))
		vl_opts_error(o, "%s: %s", "reconnect.jitter", "number from 0 to 1 expected");
	if (!(v[4] >= 0) || v[4] != floor(v[4]) || v[4] > 2147483647.0)
		vl_opts_error(o, "%s: %s", "reconnect.max_attempts", "integer >= 0 expected (0 = unlimited)");
	snprintf(buf, sizeof buf, "%.0f,%.0f,%.6g,%.6g,%.0f",
	         floor(v[0] * 1000 + 0.5), floor(v[1] * 1000 + 0.5), v[2], v[3], v[4]);
	vl_opts_add(o, "reconnect", buf);
}

/* Starts an option collection for argument narg: pushes the {name, value, ...}
 * list and the env table { handlers = {}, named = {} } of the new object;
 * returns the env's stack index. */
int vl_opts_begin(vl_opts *o, lua_State *L, int narg)
{
	int env;
	o->L = L;
	o->narg = narg;
	o->n = 0;
	o->pong = o->writeable = 0;
	lua_newtable(L);
	o->opts = lua_gettop(L);
	env = vl_push_handler_env(L);
	return env;
}

int vl_push_handler_env(lua_State *L)
{
	int env;
	lua_newtable(L);
	env = lua_gettop(L);
	lua_newtable(L);
	lua_setfield(L, env, "handlers");
	lua_newtable(L);
	lua_setfield(L, env, "named");
	return env;
}

static const vl_optdef *find_def(const vl_optdef *defs, const char *k)
{
	for (; k && defs->key; defs++)
		if (strcmp(k, defs->key) == 0)
			return defs;
	return NULL;
}

void vl_opts_check_keys(vl_opts *o, int idx, const vl_optdef *defs, const char *what, const char *hint)
{
	lua_State *L = o->L;
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
		if (!find_def(defs, k)) {
			if (!what)
				vl_opts_error(o, "%s '%s'", "unknown option", k ? k : luaL_typename(L, -2));
			lua_pushfstring(L, "%s: unknown key '%s'%s", what, k ? k : luaL_typename(L, -2), hint ? hint : "");
			luaL_argerror(L, o->narg, lua_tostring(L, -1));
		}
		lua_pop(L, 1);
	}
}

void vl_opts_collect(vl_opts *o, int idx, const vl_optdef *defs, const char *prefix, int env)
{
	lua_State *L = o->L;
	char buf[32];
	const char *name;
	int v;

	for (; defs->key; defs++) {
		if (defs->kind == VL_OPT_CALLER)
			continue;
		lua_getfield(L, idx, defs->key);
		v = lua_gettop(L);
		if (lua_isnil(L, v)) {
			lua_pop(L, 1);
			continue;
		}
		lua_pushfstring(L, "%s%s", prefix, defs->key); /* the name errors give */
		name = lua_tostring(L, -1);
		switch (defs->kind) {
		case VL_OPT_SECONDS: vl_opt_seconds(o, v, defs->key, defs->lo == 0); break;
		case VL_OPT_INTEGER: vl_opt_integer(o, v, defs->key, defs->lo, defs->hi); break;
		case VL_OPT_BOOL: vl_opt_bool(o, v, defs->key, defs->key); break;
		case VL_OPT_FLAG:
			snprintf(buf, sizeof buf, "%d", vl_opt_flag(o, v, name) ? 1 : 0);
			vl_opts_add(o, defs->key, buf);
			break;
		case VL_OPT_STRING: vl_opts_add(o, defs->key, vl_opts_string_value(o, v, name)); break;
		case VL_OPT_LIST: vl_opt_list(o, v, defs->key, defs->items); break;
		case VL_OPT_PARSE: defs->parse(o, v, env, defs); break;
		}
		lua_pop(L, 2);
	}
}

void vl_opt_ssl(vl_opts *o, int idx, const vl_optdef *defs, const char *hint)
{
	if (lua_isnil(o->L, idx))
		return;
	if (!lua_istable(o->L, idx))
		vl_opts_type_error(o, "ssl_settings", "table", idx);
	vl_opts_check_keys(o, idx, defs, "ssl_settings", hint);
	vl_opts_collect(o, idx, defs, "ssl_settings.", 0);
}

const vl_optdef vl_client_ssl_opts[] = {
	{"client_ssl_cert_filepath", VL_OPT_STRING, 0, 0, NULL, NULL},
	{"client_ssl_private_key_filepath", VL_OPT_STRING, 0, 0, NULL, NULL},
	{"client_ssl_ca_filepath", VL_OPT_STRING, 0, 0, NULL, NULL},
	{"allow_self_signed", VL_OPT_FLAG, 0, 0, NULL, NULL},
	{NULL, 0, 0, 0, NULL, NULL}};

const vl_optdef vl_server_ssl_opts[] = {
	{"ssl_cert_filepath", VL_OPT_STRING, 0, 0, NULL, NULL},
	{"ssl_private_key_filepath", VL_OPT_STRING, 0, 0, NULL, NULL},
	{"ssl_ca_filepath", VL_OPT_STRING, 0, 0, NULL, NULL},
	{"require_client_cert", VL_OPT_FLAG, 0, 0, NULL, NULL},
	{NULL, 0, 0, 0, NULL, NULL}};

/* Applies the collected options to handle h with set (vws_conn_set_option or
 * vws_server_set_option); stops at the first failure. Plain ABI calls and
 * rawgeti of strings: nothing here raises. */
int vl_opts_apply(vl_opts *o, uint64_t h, int (*set)(uint64_t, const char *, const char *, char *, size_t),
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

/* Client events (ws.create) and server events (ws.listen): libwebsockets 2.4
 * callback reasons, and the names that may be used instead. */
const vl_event_name vl_client_events[] = {
	{"error", VWS_EV_CONNECTION_ERROR}, {"open", VWS_EV_ESTABLISHED}, {"close", VWS_EV_CLOSED},
	{"message", VWS_EV_RECEIVE},        {"pong", VWS_EV_RECEIVE_PONG}, {"writeable", VWS_EV_WRITEABLE},
	{NULL, 0}};
const vl_event_name vl_server_events[] = {
	{"open", VWS_EV_SERVER_ESTABLISHED}, {"close", VWS_EV_CLOSED},
	{"message", VWS_EV_SERVER_RECEIVE},  {"pong", VWS_EV_SERVER_RECEIVE_PONG},
	{"writeable", VWS_EV_SERVER_WRITEABLE}, {NULL, 0}};

/* Fills env.handlers / env.named from the event_handlers table at idx, with
 * the events of `names`. Sets *pong / *writeable when handlers for those
 * events exist. */
void vl_opt_handlers(vl_opts *o, int idx, int env, const vl_event_name *names, int *pong, int *writeable)
{
	lua_State *L = o->L;
	int handlers, named, id, i;

	if (lua_isnil(L, idx))
		return;
	if (!lua_istable(L, idx))
		vl_opts_type_error(o, "event_handlers", "table", idx);
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
				vl_opts_error(o, "%s: %s", "event_handlers", "keys must be event IDs or names");
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
				vl_opts_error(o, "%s: unknown event name '%s'", "event_handlers", k);
			id = names[i].id;
			isnamed = 1;
		} else {
			vl_opts_error(o, "%s: %s", "event_handlers", "keys must be event IDs or names");
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
