/*
 * compat.h - one binding source for Lua 5.1 (and LuaJIT 2.1, which builds
 * against the 5.1 headers), 5.2, 5.3 and 5.4. Included by vws_lua.h after
 * lua.h and lauxlib.h.
 *
 * The binding is written against the 5.2+ names; on 5.1 they map back:
 *   lua_getuservalue / lua_setuservalue  the per-object data table: a
 *       userdata's environment on 5.1, its (first) user value on 5.2+;
 *   lua_pushglobaltable                  LUA_GLOBALSINDEX on 5.1.
 * And the 5.1 names that 5.2+ dropped stay usable:
 *   lua_cpcall                           a pcall of a light C function on 5.2+;
 *   lua_objlen                           lua_rawlen on 5.2+.
 * Function environments (lua_getfenv of a function) have no 5.2+ equivalent:
 * vl_push_caller_env (delivery.c) reads the caller's _ENV upvalue there.
 * lua_Integer is ptrdiff_t on 5.1/5.2 and long long on 5.3+: the binding only
 * pushes ints with lua_pushinteger and reads numbers as lua_Number. Hooks
 * (lua_sethook, lua_gethook*, lua_Hook) have the same signatures everywhere
 * (lua_sethook returns int on 5.1-5.3, void on 5.4: never use its result).
 */
#ifndef VWS_COMPAT_H
#define VWS_COMPAT_H

#include "lua.h"
#include "lauxlib.h"

#if !defined(LUA_VERSION_NUM) || LUA_VERSION_NUM < 501 || LUA_VERSION_NUM > 504
#error "verawebsockets builds against the headers of Lua 5.1 (or LuaJIT), 5.2, 5.3 or 5.4"
#endif

#if LUA_VERSION_NUM == 501

#define VL_LUA_ENV_UPVALUE 0 /* environments are function environments */
#ifndef lua_getuservalue
#define lua_getuservalue(L, idx) lua_getfenv((L), (idx))
#endif
#ifndef lua_setuservalue
#define lua_setuservalue(L, idx) ((void)lua_setfenv((L), (idx)))
#endif
#ifndef lua_pushglobaltable
#define lua_pushglobaltable(L) lua_pushvalue((L), LUA_GLOBALSINDEX)
#endif

#else /* 5.2, 5.3, 5.4 */

#define VL_LUA_ENV_UPVALUE 1 /* environments are the _ENV upvalue of a function */
/* 5.2 keeps lua_cpcall only with LUA_COMPAT_ALL; same semantics: f(lightuserdata ud)
 * called protected, nothing left on success, the error object on failure. */
#undef lua_cpcall
#define lua_cpcall(L, f, ud) \
	(lua_pushcfunction((L), (f)), lua_pushlightuserdata((L), (ud)), lua_pcall((L), 1, 0, 0))
#ifndef lua_objlen
#define lua_objlen(L, idx) lua_rawlen((L), (idx))
#endif

#endif

#endif /* VWS_COMPAT_H */
