/*
 * module.c - luaopen_verawebsockets: the per-VM record's userdata (made once per
 * lua_State, in the registry), the metatables and the module table.
 * luaopen_ returns the table and creates no globals.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <string.h>

#include "vws_lua.h"

static char state_key; /* registry[&state_key] = the State userdata */

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
	{"connect", vl_ws_connect}, {"send", vl_ws_send},         {"close", vl_ws_close},
	{"ping", vl_ws_ping},       {"state", vl_ws_state},       {"buffered", vl_ws_buffered},
	{"protocol", vl_ws_protocol}, {"headers", vl_ws_headers}, {"peer", vl_ws_peer},
	{"peer_cert", vl_ws_peer_cert}, {NULL, NULL}};

static const luaL_Reg server_methods[] = {
	{"port", vl_ws_port}, {"broadcast", vl_ws_broadcast}, {"clients", vl_ws_clients}, {"close", vl_srv_close},
	{"stop_listening", vl_ws_stop_listening}, {NULL, NULL}};

static const luaL_Reg module_funcs[] = {
	{"create", vl_ws_create},     {"connect", vl_ws_connect},   {"send", vl_ws_send},
	{"close", vl_ws_close},       {"ping", vl_ws_ping},         {"state", vl_ws_state},
	{"buffered", vl_ws_buffered}, {"protocol", vl_ws_protocol}, {"loop", vl_ws_loop},
	{"dispatch", vl_ws_dispatch}, {"event_fd", vl_ws_event_fd}, {"set_log_level", ws_set_log_level},
	{"listen", vl_ws_listen},     {"port", vl_ws_port},         {"broadcast", vl_ws_broadcast},
	{"clients", vl_ws_clients},   {"headers", vl_ws_headers},   {"peer", vl_ws_peer},
	{"peer_cert", vl_ws_peer_cert}, {"stop_listening", vl_ws_stop_listening},
	{"set_delivery", vl_ws_set_delivery}, {"delivery", vl_ws_delivery},
	{"set_luup_port", vl_ws_set_luup_port},
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
	int T_ref, conns_ref, live_ref, dying_ref, tb_ref;
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
	lua_pushcfunction(L, vl_traceback);
	tb_ref = luaL_ref(L, LUA_REGISTRYINDEX);
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
	st->tb_ref = tb_ref;
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

	vl_new_metatable(L, VL_CONN_MT, conn_methods, su, vl_conn_gc, vl_conn_tostring);
	vl_new_metatable(L, VL_SERVER_MT, server_methods, su, vl_server_gc, vl_server_tostring);

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
