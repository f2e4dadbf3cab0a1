/*
 * host-race.c - a C host linked with liblua-race.a (build/test-race.sh).
 *
 *   host-race race    two threads run Lua in one lua_State at once: must abort
 *   host-race serial  the same threads, serialised by the host's mutex, and a C
 *                     module (LuaSocket) loaded into the host: must not abort
 *
 * Prints "done" and exits 0 when it got to the end. Every loop is bounded.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

static lua_State *L;
static int serial;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int errors;

static void run(const char *chunk)
{
	if (serial)
		pthread_mutex_lock(&mu);
	if (luaL_dostring(L, chunk) != 0) {
		fprintf(stderr, "host-race: %s\n", lua_tostring(L, -1));
		errors++;
	}
	lua_settop(L, 0);
	if (serial)
		pthread_mutex_unlock(&mu);
}

static void *worker(void *arg)
{
	int i;
	for (i = 0; i < 200; i++)
		run(arg);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t a, b;
	serial = argc > 1 && strcmp(argv[1], "serial") == 0;
	L = luaL_newstate();
	luaL_openlibs(L);
	run("N = 0 socket = require 'socket'");
	pthread_create(&a, NULL, worker, "local x = 0 for i = 1, 20000 do x = x + i end N = N + 1");
	pthread_create(&b, NULL, worker, "local t = {} for i = 1, 2000 do t[i] = i end N = N + 1 "
	                                 "assert(socket.gettime() > 0)");
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	run("assert(N == 400, N)");
	lua_close(L);
	printf("%s\n", errors ? "errors" : "done");
	return errors != 0;
}
