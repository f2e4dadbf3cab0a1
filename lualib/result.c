/*
 * result.c - how ws.* functions return (true, or nil and a message) and the
 * argument checks several of them share.
 */
#include <math.h>
#include <string.h>
#include <time.h>

#include "vws_lua.h"

const char *vl_status_text(int rc)
{
	switch (rc) {
	case VWS_EARG: return "bad argument";
	case VWS_ESTATE: return "connection is not open";
	case VWS_EFULL: return "send queue is full";
	case VWS_ETOOBIG: return "message exceeds max_message_size";
	case VWS_EENGINE: return "engine unavailable";
	case VWS_EINTERNAL: return "internal error";
	case VWS_EOPTION: return "bad option";
	case VWS_EBIND: return "cannot listen on that address";
	default: return "error";
	}
}

/* The stable name of a status, the third value of a failure (as luv's). */
const char *vl_status_name(int rc)
{
	switch (rc) {
	case VWS_EARG: return "EARG";
	case VWS_ESTATE: return "ESTATE";
	case VWS_EFULL: return "EFULL";
	case VWS_ETOOBIG: return "ETOOBIG";
	case VWS_EENGINE: return "EENGINE";
	case VWS_EINTERNAL: return "EINTERNAL";
	case VWS_EOPTION: return "EOPTION";
	case VWS_EBIND: return "EBIND";
	default: return "EINTERNAL";
	}
}

/* Returns nil, msg, name (msg = err if set, else the status text). */
int vl_push_fail(lua_State *L, int rc, const char *err)
{
	lua_pushnil(L);
	lua_pushstring(L, err && err[0] ? err : vl_status_text(rc));
	lua_pushstring(L, vl_status_name(rc));
	return 3;
}

int vl_push_closed(lua_State *L)
{
	lua_pushnil(L);
	lua_pushliteral(L, "verawebsockets: the Lua state is closing");
	lua_pushliteral(L, "ECLOSED");
	return 3;
}

/* Pushes true for VWS_OK, else nil, err. */
int vl_push_result(lua_State *L, int rc, const char *err)
{
	if (rc != VWS_OK)
		return vl_push_fail(L, rc, err);
	lua_pushboolean(L, 1);
	return 1;
}

int64_t vl_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Optional millisecond timeout argument: -1 when absent. */
int vl_opt_ms(lua_State *L, int idx)
{
	lua_Number n;
	if (lua_isnoneornil(L, idx))
		return -1;
	n = luaL_checknumber(L, idx);
	if (!(n >= 0) || n > 2147483647.0)
		luaL_argerror(L, idx, "milliseconds from 0 to 2147483647 expected");
	return (int)n;
}

int vl_check_opcode(lua_State *L, int idx)
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

/* The optional close code and reason at arguments 2 and 3 (ws.close). */
void vl_check_close_args(lua_State *L, int *code, const char **reason, size_t *len)
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
