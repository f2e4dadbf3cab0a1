/*
 * luup.c - the Luup side of the test host: each state's allocator and probe,
 * the global `luup` table (register_handler, log, call_delay, device), the
 * table of registered lr_ handlers the request port (port.c) looks in, and the
 * request port's self-test with a fake plugin (vws-host --http-test).
 *
 * The probe is a call hook on every state: for each call of a function defined
 * in the plugin it records which thread runs it. In luup mode that must be a
 * host thread inside the state by host_enter (the host's mutex); in lock mode
 * the module's dispatcher, while no host thread is inside.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "host.h"

/* ---- States: the allocator (its ud names the hstate) and the probe ---------- */

static void *alloc_fn(void *ud, void *ptr, size_t osize, size_t nsize)
{
	(void)ud;
	(void)osize;
	if (nsize == 0) {
		free(ptr);
		return NULL;
	}
	return realloc(ptr, nsize);
}

static int panic_fn(lua_State *L)
{
	fprintf(stderr, "PANIC: unprotected error in call to Lua API (%s)\n", lua_tostring(L, -1));
	return 0;
}

/* The probe: a call hook on every state (coroutines made later inherit it; the
 * allocator's ud names the hstate from any of them). */
static void probe(lua_State *L, lua_Debug *ar)
{
	void *ud = NULL;
	hstate *hs;
	pthread_t self = pthread_self(), inside;

	if (ar->event != LUA_HOOKCALL || !lua_getinfo(L, "S", ar) || ar->linedefined <= 0 ||
	    !strstr(ar->source, "plugin.lua"))
		return;
	lua_getallocf(L, &ud);
	if (!(hs = ud))
		return;
	inside = __atomic_load_n(&hs->inside, __ATOMIC_ACQUIRE);
	__atomic_add_fetch(&hs->h_calls, 1, __ATOMIC_RELAXED);
	if (!host_thread)
		__atomic_add_fetch(&hs->h_foreign, 1, __ATOMIC_RELAXED);
	if (host_mode == MODE_LUUP) {
		/* luup: only a host thread that holds the state's mutex runs Lua in it */
		if (host_thread && inside && pthread_equal(inside, self)) {
			__atomic_add_fetch(&hs->h_ok, 1, __ATOMIC_RELAXED);
			if (hs->activity == ACT_WAKE)
				__atomic_add_fetch(&hs->h_in_wake, 1, __ATOMIC_RELAXED);
		} else {
			__atomic_add_fetch(&hs->h_bad, 1, __ATOMIC_RELAXED);
			if (inside && !pthread_equal(inside, self))
				__atomic_add_fetch(&hs->overlaps, 1, __ATOMIC_RELAXED);
		}
	} else {
		/* lock: handlers come on the module's dispatcher, never while a host
		 * thread is inside the state */
		if (!host_thread && !inside)
			__atomic_add_fetch(&hs->h_ok, 1, __ATOMIC_RELAXED);
		else
			__atomic_add_fetch(&hs->h_bad, 1, __ATOMIC_RELAXED);
		if (inside && !pthread_equal(inside, self))
			__atomic_add_fetch(&hs->overlaps, 1, __ATOMIC_RELAXED);
	}
}

lua_State *luup_newstate(hstate *hs)
{
	lua_State *L = lua_newstate(alloc_fn, hs);
	if (L) {
		lua_atpanic(L, panic_fn);
		lua_sethook(L, probe, LUA_MASKCALL, 0);
	}
	return L;
}

/* ---- The luup table -------------------------------------------------------------- */

#define MAX_HANDLERS 64

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct handler {
	char    name[64], fname[64];
	hstate *hs;
} handlers[MAX_HANDLERS];
static int n_handlers;

static hstate *up_state(lua_State *L)
{
	return lua_touserdata(L, lua_upvalueindex(1));
}

/* luup.register_handler(fname, name) */
static int l_register_handler(lua_State *L)
{
	hstate *hs = up_state(L);
	const char *fname = luaL_checkstring(L, 1), *name = luaL_checkstring(L, 2);
	int i;
	luaL_argcheck(L, strlen(fname) < 64, 1, "too long");
	luaL_argcheck(L, strlen(name) < 64, 2, "too long");
	pthread_mutex_lock(&reg_mu);
	for (i = 0; i < n_handlers && strcmp(handlers[i].name, name) != 0; i++)
		;
	if (i == n_handlers && n_handlers < MAX_HANDLERS)
		n_handlers++;
	if (i < n_handlers) {
		if (handlers[i].hs && handlers[i].hs != hs)
			fprintf(stderr, "host: lr_%s of device %d taken over by device %d\n", name, handlers[i].hs->id, hs->id);
		snprintf(handlers[i].name, sizeof handlers[i].name, "%s", name);
		snprintf(handlers[i].fname, sizeof handlers[i].fname, "%s", fname);
		handlers[i].hs = hs;
	}
	hs->registrations++;
	snprintf(hs->reg_fname, sizeof hs->reg_fname, "%s", fname);
	snprintf(hs->reg_name, sizeof hs->reg_name, "%s", name);
	pthread_mutex_unlock(&reg_mu);
	return 0;
}

/* luup.log(msg [, level]): one line on stderr with the device number. */
static int l_log(lua_State *L)
{
	hstate *hs = up_state(L);
	const char *msg = luaL_optstring(L, 1, "");
	int level = luaL_optint(L, 2, 50);
	if (!lua_isstring(L, 1))
		msg = luaL_typename(L, 1);
	fprintf(stderr, "%02d\tluup_log:%d: %s\n", level, hs->id, msg);
	fflush(stderr);
	if (strstr(msg, "error in handler"))
		__atomic_add_fetch(&hs->luup_log_errors, 1, __ATOMIC_RELAXED);
	return 0;
}

/* luup.call_delay(fname, seconds [, data]) -> 0: at most one pending call; the
 * state's own thread runs it (luup_run_delay) when it is due. */
static int l_call_delay(lua_State *L)
{
	hstate *hs = up_state(L);
	const char *fname = luaL_checkstring(L, 1), *data = luaL_optstring(L, 3, "");
	double s = luaL_checknumber(L, 2);
	snprintf(hs->delay_fn, sizeof hs->delay_fn, "%s", fname);
	snprintf(hs->delay_data, sizeof hs->delay_data, "%s", data);
	hs->delay_at = now_ms() + s * 1000;
	lua_pushinteger(L, 0);
	return 1;
}

void luup_open(lua_State *L, hstate *hs)
{
	static const luaL_Reg fns[] = {
	    {"register_handler", l_register_handler}, {"log", l_log}, {"call_delay", l_call_delay}, {NULL, NULL}};
	const luaL_Reg *f;
	lua_newtable(L);
	for (f = fns; f->name; f++) {
		lua_pushlightuserdata(L, hs);
		lua_pushcclosure(L, f->func, 1);
		lua_setfield(L, -2, f->name);
	}
	lua_pushinteger(L, hs->id);
	lua_setfield(L, -2, "device");
	lua_pushinteger(L, 1);
	lua_setfield(L, -2, "version_major");
	lua_setglobal(L, "luup");
}

/* luup_run_delay runs a due call_delay; the caller is inside the state. */
void luup_run_delay(hstate *hs)
{
	lua_State *L = hs->L;
	if (!hs->delay_fn[0] || now_ms() < hs->delay_at)
		return;
	lua_getglobal(L, hs->delay_fn);
	lua_pushstring(L, hs->delay_data);
	hs->delay_fn[0] = 0;
	if (lua_pcall(L, 1, 0, 0) != 0) {
		fprintf(stderr, "host: call_delay of device %d: %s\n", hs->id, lua_tostring(L, -1));
		lua_pop(L, 1);
	}
}

void luup_forget(hstate *hs)
{
	int i;
	pthread_mutex_lock(&reg_mu);
	for (i = 0; i < n_handlers; i++)
		if (handlers[i].hs == hs)
			handlers[i].hs = NULL;
	pthread_mutex_unlock(&reg_mu);
}

/* luup_find_handler: the state that registered lr_<name> and its function name. */
hstate *luup_find_handler(const char *name, char *fname, size_t fnlen)
{
	hstate *hs = NULL;
	int i;
	pthread_mutex_lock(&reg_mu);
	for (i = 0; i < n_handlers; i++)
		if (strcmp(handlers[i].name, name) == 0 && handlers[i].hs) {
			hs = handlers[i].hs;
			snprintf(fname, fnlen, "%s", handlers[i].fname);
		}
	pthread_mutex_unlock(&reg_mu);
	return hs;
}

/* ---- Checks -------------------------------------------------------------------- */

/* The probe's findings for one closed state: who ran the plugin's handlers. */
void luup_checks(hstate *hs)
{
	int calls = hs->h_calls, ok = hs->h_ok, bad = hs->h_bad, foreign = hs->h_foreign, wake = hs->h_in_wake;
	if (host_mode == MODE_LUUP) {
		check(calls > 0 && ok == calls && bad == 0 && foreign == 0,
		      "state %d: all %d plugin handler calls ran on host threads inside the state by the host's mutex "
		      "(%d during lr_ requests; %d on module threads, %d bad)",
		      hs->id, calls, wake, foreign, bad);
		check(hs->wakes > 0 && hs->max_in_flight <= 1,
		      "state %d: %d lr_%s requests ran verawebsockets_wake on host worker threads (%d raised), at most %d in flight",
		      hs->id, hs->wakes, hs->reg_name, hs->wake_errors, hs->max_in_flight);
	} else {
		check(calls > 0 && ok == calls && bad == 0,
		      "state %d: all %d plugin handler calls ran on the module's dispatcher, none on a host thread or while a host job was in "
		      "(%d bad)",
		      hs->id, calls, bad);
	}
	check(hs->overlaps == 0, "state %d: host jobs (%d) and handlers never overlapped (%d overlaps)", hs->id, hs->jobs,
	      hs->overlaps);
	if (hs->luup_log_errors)
		diag("state %d: luup.log got %d handler error line(s)", hs->id, hs->luup_log_errors);
}

/* ---- vws-host --http-test: the request port with a fake plugin, for curl ------------ */

static const char fake_plugin[] =
    "local n = 0\n"
    "function fake_handler(lul_request, lul_parameters, lul_outputformat)\n"
    "  n = n + 1\n"
    "  return string.format('fake %s n=%d x=%s fmt=%s device=%d', lul_request, n,\n"
    "    tostring(lul_parameters.x), tostring(lul_outputformat), luup.device), 'text/plain'\n"
    "end\n"
    "function fake_error() error('fake failure') end\n"
    "function fake_stop() STOP = true return 'stopping' end\n"
    "luup.register_handler('fake_handler', 'fake')\n"
    "luup.register_handler('fake_error', 'fake_error')\n"
    "luup.register_handler('fake_stop', 'stop')\n"
    "luup.log('fake plugin loaded')\n";

int luup_http_test(int seconds)
{
	static hstate st;
	hstate *hs = &st;
	double t0 = now_ms();
	int port, rc, served, bad, stop = 0;

	host_thread = 1;
	hs->id = 7;
	pthread_mutex_init(&hs->mu, NULL);
	if ((port = luup_serve()) < 0) {
		perror("request port");
		return 2;
	}
	hs->L = luup_newstate(hs);
	luaL_openlibs(hs->L);
	luup_open(hs->L, hs);
	host_enter(hs, ACT_LOAD);
	rc = luaL_loadbuffer(hs->L, fake_plugin, sizeof fake_plugin - 1, "@fake-plugin.lua");
	if (rc == 0)
		rc = lua_pcall(hs->L, 0, 0, 0);
	if (rc != 0)
		fprintf(stderr, "fake plugin: %s\n", lua_tostring(hs->L, -1));
	host_leave(hs);
	printf("port %d\n", port);
	fflush(stdout);
	while (rc == 0 && !stop && now_ms() - t0 < seconds * 1000.0) {
		sleep_ms(50);
		host_enter(hs, ACT_JOB);
		lua_getglobal(hs->L, "STOP");
		stop = lua_toboolean(hs->L, -1);
		lua_pop(hs->L, 1);
		host_leave(hs);
	}
	host_close(hs);
	luup_stop();
	served = luup_served(&bad);
	printf("http-test: %d requests answered (%d not 200); %d handler calls, %d on host workers inside by the mutex, "
	       "%d bad, %d overlaps\n",
	       served, bad, hs->h_calls, hs->h_ok, hs->h_bad, hs->overlaps);
	return rc == 0 && hs->h_calls > 0 && hs->h_ok == hs->h_calls && hs->overlaps == 0 ? 0 : 1;
}

