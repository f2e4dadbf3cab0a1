/*
 * lrace.h - the race checker of the race-detecting Lua 5.1 (build/lua-race.sh).
 *
 * build/lua-race.sh appends an include of this file to luaconf.h for the core
 * (LUA_CORE) only. It turns lua_lock/lua_unlock into a check that one thread at
 * a time is inside a Lua state (a global_State, shared by all its coroutines):
 * lua_lock aborts when another thread is in, lua_unlock leaves. Lua 5.1 calls
 * lua_unlock around every C function and hook it calls, so a thread waiting in
 * a C function is not "in": only truly concurrent entry aborts.
 *
 * The owner lives in LUAI_EXTRASPACE of the main thread (set up by
 * luai_userstateopen, which lua_newstate calls before anyone can lock).
 * luai_threadyield (the unlock/lock pair at every VM jump, a yield point for
 * hosts whose lua_lock is a mutex) is off: a thread running Lua code stays in.
 */
#ifndef lrace_h
#define lrace_h

struct lua_State;

void luarace_open(struct lua_State *L);
void luarace_lock(struct lua_State *L);
void luarace_unlock(struct lua_State *L);

#undef LUAI_EXTRASPACE
#define LUAI_EXTRASPACE 16 /* the owner record; keeps lua_State 16-byte aligned */

#undef luai_userstateopen
#define luai_userstateopen(L) luarace_open(L)

#define lua_lock(L) luarace_lock(L)
#define lua_unlock(L) luarace_unlock(L)
#define luai_threadyield(L) ((void)(L))

#endif
