/*
 * server.c - ws.listen and the functions of a server: port, broadcast,
 * clients, close; __gc and __tostring; the wso of each accepted client.
 */
#include <stdio.h>
#include <string.h>

#include "vws_lua.h"

static vl_server *check_server(lua_State *L, int idx)
{
	return luaL_checkudata(L, idx, VL_SERVER_MT);
}

/* The server userdata at idx, or NULL when idx holds something else. */
vl_server *vl_to_server(lua_State *L, int idx)
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

/* protocols = {name = handlers, ...} (each value an event_handlers table for the
 * clients that choose that subprotocol; array entries are names that use
 * event_handlers) -> env.protocols = {name = {handlers, named}} and the
 * "protocols" option "n1,n2". Other forms go to vl_opt_list. */
static void opt_protocol_handlers(vl_opts *o, int idx, int env, const vl_optdef *d)
{
	lua_State *L = o->L;
	int protos, names = 0, keyed = 0;

	(void)d;
	if (lua_istable(L, idx)) {
		lua_pushnil(L);
		while (lua_next(L, idx)) {
			if (lua_type(L, -2) == LUA_TSTRING)
				keyed = 1;
			lua_pop(L, 1);
		}
	}
	if (!keyed) {
		vl_opt_list(o, idx, "protocols", "names");
		return;
	}
	lua_newtable(L);
	protos = lua_gettop(L);
	lua_newtable(L); /* the names, as an array */
	names = lua_gettop(L);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		int v = lua_gettop(L);
		const char *name;
		if (lua_type(L, -2) == LUA_TSTRING) {
			lua_pushvalue(L, -2);
			if (!lua_istable(L, v))
				vl_opts_error(o, "protocols.%s: %s", lua_tostring(L, -1), "an event_handlers table expected");
		} else if (lua_type(L, -2) == LUA_TNUMBER && lua_type(L, v) == LUA_TSTRING) {
			lua_pushvalue(L, v); /* a name of the list: event_handlers */
		} else {
			vl_opts_error(o, "%s: %s", "protocols", "{name = event_handlers, ...} or a list of names expected");
		}
		name = lua_tostring(L, -1);
		if (lua_objlen(L, -1) == 0 || strchr(name, ',') || strlen(name) != lua_objlen(L, -1))
			vl_opts_error(o, "%s: %s", "protocols", "non-empty names without commas or NUL bytes expected");
		lua_rawseti(L, names, (int)lua_objlen(L, names) + 1);
		if (lua_type(L, -2) == LUA_TSTRING) {
			int sub = vl_push_handler_env(L);
			vl_opt_handlers(o, v, sub, vl_server_events, &o->pong, &o->writeable);
			lua_pushvalue(L, -3); /* the name */
			lua_pushvalue(L, sub);
			lua_rawset(L, protos);
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
	}
	vl_opt_list(o, names, "protocols", "names"); /* the names, comma-joined */
	lua_pop(L, 1);
	lua_setfield(L, env, "protocols");
}

/* origins = "*" | "scheme://host[:port]" | {origin, ...} -> "o1,o2" (the engine
 * checks each origin's form); a function -> env.origins and "filter" (the
 * handshakes the policy refuses go to it, see vl_deliver_filter). */
static void opt_origins(vl_opts *o, int idx, int env, const vl_optdef *d)
{
	(void)d;
	if (lua_isfunction(o->L, idx)) {
		lua_pushvalue(o->L, idx);
		lua_setfield(o->L, env, "origins");
		vl_opts_add(o, "origins", "filter");
		vl_opts_add(o, "filter", "1");
		return;
	}
	if (vl_opt_list(o, idx, "origins", "origins") == 0)
		vl_opts_error(o, "%s: %s", "origins", "an empty list allows nothing more than the default (leave it out)");
}

/* handshake_rate = rate | {rate = r[, burst = b]} -> "r" | "r,b" (per second,
 * per client address). */
static void opt_handshake_rate(vl_opts *o, int idx, int env, const vl_optdef *d)
{
	lua_State *L = o->L;
	lua_Number rate, burst = 0;
	char buf[64];

	(void)env, (void)d;
	if (lua_istable(L, idx)) {
		lua_getfield(L, idx, "rate");
		lua_getfield(L, idx, "burst");
		if (lua_type(L, -2) != LUA_TNUMBER || (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TNUMBER))
			vl_opts_error(o, "%s: %s", "handshake_rate", "{rate = number[, burst = number]} expected");
		rate = lua_tonumber(L, -2);
		if (!lua_isnil(L, -1) && !((burst = lua_tonumber(L, -1)) >= 1))
			vl_opts_error(o, "%s: %s", "handshake_rate", "burst >= 1 expected");
		lua_pop(L, 2);
	} else if (lua_type(L, idx) == LUA_TNUMBER) {
		rate = lua_tonumber(L, idx);
	} else {
		vl_opts_type_error(o, "handshake_rate", "number or table", idx);
		return;
	}
	if (!(rate > 0))
		vl_opts_error(o, "%s: %s", "handshake_rate", "rate > 0 expected (handshakes per second)");
	if (burst > 0)
		snprintf(buf, sizeof buf, "%.17g,%.17g", (double)rate, (double)burst);
	else
		snprintf(buf, sizeof buf, "%.17g", (double)rate);
	vl_opts_add(o, "handshake_rate", buf);
}

/* http = function, filter = function -> env[key] and the engine's switch
 * (http_handler, filter). */
static void opt_handler_fn(vl_opts *o, int idx, int env, const vl_optdef *d)
{
	if (!lua_isfunction(o->L, idx))
		vl_opts_type_error(o, d->key, "function", idx);
	lua_pushvalue(o->L, idx);
	lua_setfield(o->L, env, d->key);
	vl_opts_add(o, strcmp(d->key, "http") == 0 ? "http_handler" : "filter", "1");
}

/* The options of ws.listen{...}. */
static const vl_optdef listen_opts[] = {
	{"port", VL_OPT_CALLER, 0, 0, NULL, NULL},
	{"host", VL_OPT_CALLER, 0, 0, NULL, NULL},
	{"event_handlers", VL_OPT_CALLER, 0, 0, NULL, NULL},
	{"standalone", VL_OPT_CALLER, 0, 0, NULL, NULL},
	{"ssl_settings", VL_OPT_CALLER, 0, 0, NULL, NULL},
	{"protocols", VL_OPT_PARSE, 0, 0, NULL, opt_protocol_handlers},
	{"max_clients", VL_OPT_INTEGER, 1, 100000, NULL, NULL},
	{"handshake_timeout", VL_OPT_SECONDS, 1, 0, NULL, NULL},
	{"max_message_size", VL_OPT_INTEGER, 1, 9007199254740992.0, NULL, NULL},
	{"max_send_queue", VL_OPT_INTEGER, 1, 9007199254740992.0, NULL, NULL},
	{"ping_interval", VL_OPT_SECONDS, 0, 0, NULL, NULL},
	{"pong_timeout", VL_OPT_SECONDS, 1, 0, NULL, NULL},
	{"close_timeout", VL_OPT_SECONDS, 0, 0, NULL, NULL},
	{"compression", VL_OPT_BOOL, 0, 0, NULL, NULL},
	{"max_clients_per_ip", VL_OPT_INTEGER, 0, 100000, NULL, NULL},
	{"handshake_rate", VL_OPT_PARSE, 0, 0, NULL, opt_handshake_rate},
	{"origins", VL_OPT_PARSE, 0, 0, NULL, opt_origins},
	{"http", VL_OPT_PARSE, 0, 0, NULL, opt_handler_fn},
	{"http_root", VL_OPT_STRING, 0, 0, NULL, NULL},
	{"max_http_body", VL_OPT_INTEGER, 0, 1073741824.0, NULL, NULL},
	{"filter", VL_OPT_PARSE, 0, 0, NULL, opt_handler_fn},
	{NULL, 0, 0, 0, NULL, NULL}};

/* live[h] = nil (the module stops keeping the value of handle h alive).
 * Args: st (light userdata), handle. */
int vl_live_clear_cf(lua_State *L)
{
	vl_state *st = lua_touserdata(L, 1);
	lua_rawgeti(L, LUA_REGISTRYINDEX, st->live_ref);
	lua_pushvalue(L, 2);
	lua_pushnil(L);
	lua_rawset(L, -3);
	return 0;
}

/* ws.listen{port=, host=, event_handlers=, standalone=, ...} -> server | nil, err */
int vl_ws_listen(lua_State *L)
{
	vl_state *st = vl_upstate(L);
	vl_opts o;
	int env, rc = VWS_OK, standalone = 0;
	vl_server *s;
	vws_server h = 0;
	char err[VL_ERRLEN] = "";

	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	if (!st)
		return vl_push_closed(L);
	env = vl_opts_begin(&o, L, 1); /* env of the server; its clients' envs share the handlers */
	vl_opts_check_keys(&o, 1, listen_opts, NULL, NULL);
	lua_getfield(L, 1, "port");
	if (lua_isnil(L, -1))
		vl_opts_error(&o, "%s: %s", "port", "required (0 = any free port)");
	vl_opt_integer(&o, lua_gettop(L), "port", 0, 65535);
	lua_pop(L, 1);
	lua_getfield(L, 1, "event_handlers");
	vl_opt_handlers(&o, lua_gettop(L), env, vl_server_events, &o.pong, &o.writeable);
	lua_pop(L, 1);
	lua_getfield(L, 1, "ssl_settings");
	vl_opt_ssl(&o, lua_gettop(L), vl_server_ssl_opts,
	           " (ssl_cert_filepath, ssl_private_key_filepath, ssl_ca_filepath, require_client_cert)");
	lua_pop(L, 1);
	lua_getfield(L, 1, "standalone");
	if (!lua_isnil(L, -1))
		standalone = vl_opt_flag(&o, lua_gettop(L), "standalone");
	lua_pop(L, 1);
	vl_opts_collect(&o, 1, listen_opts, "", env);
	lua_getfield(L, 1, "host");
	if (!lua_isnil(L, -1))
		vl_opt_string(&o, lua_gettop(L), "host");
	lua_pop(L, 1);
	if (o.pong)
		vl_opts_add(&o, "pong_events", "1");
	if (o.writeable)
		vl_opts_add(&o, "writeable_events", "1");

	vl_push_caller_env(L); /* handler names are looked up there first */
	lua_setfield(L, env, "fenv");
	s = lua_newuserdata(L, sizeof *s);
	s->h = 0;
	s->ctx = st->ctxA;
	s->standalone = standalone;
	luaL_getmetatable(L, VL_SERVER_MT);
	lua_setmetatable(L, -2);
	lua_pushvalue(L, env);
	lua_setuservalue(L, -2);
	lua_pushcfunction(L, vl_live_set_cf);
	lua_pushlightuserdata(L, st);
	lua_pushvalue(L, -3);

	/* ABI calls: nothing below raises until the lock is released. */
	vl_lock_acquire(&st->lock);
	if (!standalone && vl_luup_ctx(st, L, env, &s->ctx, err, sizeof err) != 0)
		rc = VWS_EINTERNAL;
	if (rc == VWS_OK)
		rc = vws_server_new(s->ctx, &h, err, sizeof err);
	if (rc == VWS_OK)
		rc = vl_opts_apply(&o, h, vws_server_set_option, err, sizeof err);
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
		if (rc == VWS_EOPTION)
			return luaL_argerror(L, 1, err); /* a bad option value the checks above let through */
		return vl_push_fail(L, rc, err);
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
	if (!vl_to_server(L, -1)) {
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
	/* env = { handlers, named, fenv = the server's, url = "accepted", server = srv }:
	 * the handlers of the client's subprotocol (protocols = {name = handlers}),
	 * else the server's event_handlers. */
	lua_newtable(L);
	lua_getuservalue(L, srv);
	lua_pushvalue(L, -1);
	lua_getfield(L, -1, "protocols");
	if (lua_istable(L, -1)) {
		char proto[256] = "";
		vws_conn_protocol(h, proto, sizeof proto);
		lua_getfield(L, -1, proto);
		if (proto[0] && lua_istable(L, -1)) {
			lua_replace(L, -3);
			lua_pop(L, 1);
		} else {
			lua_pop(L, 2);
		}
	} else {
		lua_pop(L, 1);
	}
	lua_getfield(L, -1, "handlers");
	lua_setfield(L, -4, "handlers");
	lua_getfield(L, -1, "named");
	lua_setfield(L, -4, "named");
	lua_pop(L, 1);
	lua_getfield(L, -1, "fenv");
	lua_setfield(L, -3, "fenv");
	lua_pop(L, 1);
	lua_pushliteral(L, "accepted");
	lua_setfield(L, -2, "url");
	lua_pushvalue(L, srv);
	lua_setfield(L, -2, "server");
	lua_setuservalue(L, -2);
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
		return vl_push_closed(L);
	if (s->h == 0)
		return vl_push_fail(L, VWS_EARG, "server was freed");
	return 0;
}

int vl_ws_port(lua_State *L)
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
		return vl_push_fail(L, port, NULL);
	if (port == 0)
		return vl_push_fail(L, VWS_ESTATE, "server is not listening");
	lua_pushinteger(L, port);
	return 1;
}

int vl_ws_broadcast(lua_State *L)
{
	vl_server *s = check_server(L, 1);
	size_t len;
	const char *data = luaL_checklstring(L, 2, &len);
	int op = vl_check_opcode(L, 3), n, bad;
	vl_state *st = vl_upstate(L);
	char err[VL_ERRLEN] = "";

	if ((bad = srv_unusable(L, st, s)) != 0)
		return bad;
	vl_lock_acquire(&st->lock);
	n = vws_server_broadcast(s->h, op, data, len, err, sizeof err);
	vl_lock_release(&st->lock);
	if (n < 0)
		return vl_push_fail(L, n, err);
	lua_pushinteger(L, n);
	return 1;
}

/* Array of the open clients' wsos (those whose open event was delivered). */
int vl_ws_clients(lua_State *L)
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
		return vl_push_fail(L, n, NULL);
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

int vl_server_close(lua_State *L, vl_server *s)
{
	int code, rc, bad;
	size_t len;
	const char *reason;
	vl_state *st = vl_upstate(L);
	char err[VL_ERRLEN] = "";

	vl_check_close_args(L, &code, &reason, &len);
	if ((bad = srv_unusable(L, st, s)) != 0)
		return bad;
	lua_settop(L, 3);
	lua_pushcfunction(L, vl_live_clear_cf);
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
	return vl_push_result(L, rc, err);
}

int vl_srv_close(lua_State *L)
{
	return vl_server_close(L, check_server(L, 1));
}

/* ws.stop_listening(server): the port is released, the clients stay (a
 * later ws.close(server) closes them). */
int vl_ws_stop_listening(lua_State *L)
{
	vl_server *s = check_server(L, 1);
	vl_state *st = vl_upstate(L);
	char err[VL_ERRLEN] = "";
	int rc, bad;

	if ((bad = srv_unusable(L, st, s)) != 0)
		return bad;
	vl_lock_acquire(&st->lock);
	rc = vws_server_close(s->h, -1, NULL, 0, err, sizeof err);
	vl_lock_release(&st->lock);
	return vl_push_result(L, rc, err);
}

int vl_server_gc(lua_State *L)
{
	vl_server *s = luaL_checkudata(L, 1, VL_SERVER_MT);
	if (s->h != 0) {
		vws_server h = s->h;
		s->h = 0;
		vws_server_free(h);
	}
	return 0;
}

int vl_server_tostring(lua_State *L)
{
	vl_server *s = luaL_checkudata(L, 1, VL_SERVER_MT);
	lua_pushfstring(L, VL_SERVER_MT ": %p", (void *)s);
	return 1;
}
