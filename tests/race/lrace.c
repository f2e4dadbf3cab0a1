/*
 * lrace.c - the race checker of the race-detecting Lua 5.1 (see lrace.h).
 * Compiled into liblua-race.a with the Lua core by build/lua-race.sh.
 */
#define _GNU_SOURCE
#define LUA_CORE

#include <execinfo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lua.h"
#include "lstate.h"

/* The owner record, in the LUAI_EXTRASPACE bytes before the main thread. */
typedef struct race_owner {
	int owner; /* kernel thread id of the thread inside, 0 if none */
	int depth; /* lua_lock nesting of that thread (Lua 5.1 does not nest: 1) */
} race_owner;

typedef char race_owner_fits[sizeof(race_owner) <= LUAI_EXTRASPACE ? 1 : -1];

#define OWNER(L) ((race_owner *)((char *)G(L)->mainthread - LUAI_EXTRASPACE))

static __thread int my_tid __attribute__((tls_model("initial-exec")));

static int tid(void)
{
	if (my_tid == 0)
		my_tid = (int)syscall(SYS_gettid);
	return my_tid;
}

/* report writes the line in msg (and a backtrace) to stderr and aborts. */
static void report(const char *msg, int me, lua_State *L)
{
	char more[128];
	void *frames[32];
	int n;
	if (write(2, msg, strlen(msg)) < 0)
		_exit(134);
	n = snprintf(more, sizeof more, "lua-race: (global_State %p) backtrace of thread %d:\n", (void *)G(L), me);
	if (n > 0 && write(2, more, (size_t)n) < 0)
		_exit(134);
	backtrace_symbols_fd(frames, backtrace(frames, 32), 2);
	abort();
}

void luarace_open(lua_State *L)
{
	race_owner *o = OWNER(L);
	o->depth = 0;
	__atomic_store_n(&o->owner, 0, __ATOMIC_RELEASE);
}

void luarace_lock(lua_State *L)
{
	race_owner *o = OWNER(L);
	int me = tid(), prev = 0;
	char msg[128];
	if (__atomic_compare_exchange_n(&o->owner, &prev, me, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
		o->depth = 1;
		return;
	}
	if (prev == me) {
		o->depth++;
		return;
	}
	snprintf(msg, sizeof msg, "lua-race: thread %d entered a Lua state that thread %d is in\n", me, prev);
	report(msg, me, L);
}

void luarace_unlock(lua_State *L)
{
	race_owner *o = OWNER(L);
	int me = tid(), cur = __atomic_load_n(&o->owner, __ATOMIC_ACQUIRE);
	char msg[128];
	if (cur != me) {
		snprintf(msg, sizeof msg, "lua-race: thread %d left a Lua state it was not in (owner: thread %d)\n", me, cur);
		report(msg, me, L);
	}
	if (--o->depth == 0)
		__atomic_store_n(&o->owner, 0, __ATOMIC_RELEASE);
}
