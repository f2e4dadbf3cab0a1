/*
 * racy.c - a C module for the race checker's self-test (build/test-race.sh).
 *
 *   racy.race(fn, mode, seconds)  starts a thread that calls into the caller's
 *       lua_State for up to `seconds` ("push": lua_pushnumber + lua_pop; "pcall":
 *       lua_pcall of fn) and returns at once: a race while the caller runs Lua.
 *   racy.join(fn, x)     a thread calls fn(x) in this state while this C function
 *       waits in pthread_join (unlocked): clean; returns fn's result.
 *   racy.handoff(fn, n)  this C function and a thread take turns (a mutex and a
 *       condition variable) calling fn(k), n turns each: clean; returns the count.
 *   racy.states(nthreads, rounds)  each thread makes its own lua_State, runs Lua
 *       in it and closes it: independent states, clean; returns the total.
 *
 * Every loop and wait is bounded.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "lauxlib.h"
#include "lua.h"
#include "lualib.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- racy.race ------------------------------------------------------------- */

static struct race_arg {
	lua_State *L;
	int pcall;
	double seconds;
} race;

static void *race_main(void *p)
{
	struct race_arg *a = p;
	double end = now_s() + a->seconds;
	int i = 0;
	while (now_s() < end) {
		if (a->pcall) {
			lua_getfield(a->L, LUA_REGISTRYINDEX, "racy.fn");
			lua_pushnumber(a->L, i++);
			lua_pcall(a->L, 1, 0, 0);
		} else {
			lua_pushnumber(a->L, i++);
			lua_pop(a->L, 1);
		}
	}
	return NULL;
}

static int l_race(lua_State *L)
{
	pthread_t t;
	const char *mode = luaL_optstring(L, 2, "push");
	luaL_checktype(L, 1, LUA_TFUNCTION);
	lua_pushvalue(L, 1);
	lua_setfield(L, LUA_REGISTRYINDEX, "racy.fn");
	race.L = L;
	race.pcall = strcmp(mode, "pcall") == 0;
	race.seconds = luaL_optnumber(L, 3, 3);
	if (pthread_create(&t, NULL, race_main, &race) != 0)
		return luaL_error(L, "pthread_create failed");
	pthread_detach(t);
	lua_pushboolean(L, 1);
	return 1;
}

/* ---- racy.join --------------------------------------------------------------- */

static struct join_arg {
	lua_State *L;
	int status;
} join;

static void *join_main(void *p)
{
	struct join_arg *a = p;
	lua_pushvalue(a->L, 1);
	lua_pushvalue(a->L, 2);
	a->status = lua_pcall(a->L, 1, 1, 0);
	return NULL;
}

static int l_join(lua_State *L)
{
	pthread_t t;
	luaL_checktype(L, 1, LUA_TFUNCTION);
	lua_settop(L, 2);
	join.L = L;
	if (pthread_create(&t, NULL, join_main, &join) != 0)
		return luaL_error(L, "pthread_create failed");
	pthread_join(t, NULL);
	if (join.status != 0)
		return lua_error(L);
	return 1;
}

/* ---- racy.handoff -------------------------------------------------------------- */

static struct handoff_arg {
	lua_State      *L;
	pthread_mutex_t mu;
	pthread_cond_t  cv;
	int             turn; /* 0: the C function's thread, 1: the other one */
	int             n, calls, failed;
} ho = {NULL, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0};

/* wait_turn waits (at most 5 s) until it is `who`'s turn; 0 on timeout. */
static int wait_turn(int who)
{
	struct timespec dl;
	int ok = 1;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 5;
	pthread_mutex_lock(&ho.mu);
	while (ho.turn != who && !ho.failed)
		if (pthread_cond_timedwait(&ho.cv, &ho.mu, &dl) != 0) {
			ho.failed = 1;
			break;
		}
	ok = !ho.failed;
	pthread_mutex_unlock(&ho.mu);
	return ok;
}

static void give_turn(int to)
{
	pthread_mutex_lock(&ho.mu);
	ho.turn = to;
	pthread_cond_broadcast(&ho.cv);
	pthread_mutex_unlock(&ho.mu);
}

static void call_fn(void)
{
	lua_pushvalue(ho.L, 1);
	lua_pushinteger(ho.L, ++ho.calls);
	if (lua_pcall(ho.L, 1, 0, 0) != 0) {
		lua_pop(ho.L, 1);
		ho.failed = 1;
	}
}

static void *handoff_main(void *p)
{
	int k;
	(void)p;
	for (k = 0; k < ho.n; k++) {
		if (!wait_turn(1))
			break;
		call_fn();
		give_turn(0);
	}
	return NULL;
}

static int l_handoff(lua_State *L)
{
	pthread_t t;
	int k;
	luaL_checktype(L, 1, LUA_TFUNCTION);
	ho.L = L;
	ho.n = luaL_checkint(L, 2);
	ho.turn = 0;
	ho.calls = ho.failed = 0;
	if (pthread_create(&t, NULL, handoff_main, NULL) != 0)
		return luaL_error(L, "pthread_create failed");
	for (k = 0; k < ho.n; k++) {
		if (!wait_turn(0))
			break;
		call_fn();
		give_turn(1);
	}
	wait_turn(0);
	pthread_join(t, NULL);
	if (ho.failed)
		return luaL_error(L, "handoff failed after %d calls", ho.calls);
	lua_pushinteger(L, ho.calls);
	return 1;
}

/* ---- racy.states ------------------------------------------------------------------ */

static int states_rounds;

static void *states_main(void *p)
{
	long total = 0;
	int r;
	(void)p;
	for (r = 0; r < states_rounds; r++) {
		lua_State *S = luaL_newstate();
		luaL_openlibs(S);
		if (luaL_dostring(S, "local t = {} for i = 1, 2000 do t[i] = tostring(i) end "
		                     "local co = coroutine.wrap(function() coroutine.yield(#t) end) "
		                     "return co() + select(2, pcall(error, 0))") == 0)
			total += (long)lua_tonumber(S, -1);
		lua_close(S);
	}
	return (void *)total;
}

static int l_states(lua_State *L)
{
	pthread_t t[16];
	int n = luaL_checkint(L, 1), i, started = 0;
	long total = 0;
	void *res;
	states_rounds = luaL_checkint(L, 2);
	luaL_argcheck(L, n >= 1 && n <= 16, 1, "1..16 threads");
	for (i = 0; i < n; i++)
		if (pthread_create(&t[i], NULL, states_main, NULL) == 0)
			started++;
	for (i = 0; i < started; i++) {
		pthread_join(t[i], &res);
		total += (long)res;
	}
	lua_pushinteger(L, total);
	return 1;
}

int luaopen_racy(lua_State *L)
{
	static const luaL_Reg fns[] = {
	    {"race", l_race}, {"join", l_join}, {"handoff", l_handoff}, {"states", l_states}, {NULL, NULL}};
	luaL_register(L, "racy", fns);
	return 1;
}
