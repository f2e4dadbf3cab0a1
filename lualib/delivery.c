/*
 * delivery.c - how Luup-mode (standalone = false) events reach a thread that
 * may run Lua. No thread of ours ever runs Lua in a state on its own:
 *
 *   luup    a Luup host (the creating code sees luup.register_handler): the host
 *           runs our request handler on its own thread, in the plugin's context,
 *           when our waker asks it to over loopback HTTP (luup.c);
 *   hook    a plain interpreter: the script's own thread delivers them inside
 *           every waiting ws.* call, and at its next Lua instruction through a
 *           count hook the waker sets (lua_sethook is meant to be called
 *           asynchronously: Lua 5.1's ldebug.c, and lua.c's SIGINT handler);
 *   thread  a host that holds vws_lua_lock whenever it runs Lua and said so
 *           (vws_lua_use_dispatcher or ws.set_delivery "thread"): the waker
 *           thread takes the lock and delivers, as the dispatcher always did.
 *
 * One waker thread per VM, started with the first Luup-mode object. It only
 * waits on descriptors (no timer while idle) and, by mode, arms the hook, makes
 * the HTTP wake, or (thread) delivers under the lock.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vws_lua.h"

static const char *const mode_names[] = {"auto", "luup", "hook", "thread", NULL};

const char *vl_mode_name(int mode)
{
	return mode >= 0 && mode <= VL_DELIVERY_THREAD ? mode_names[mode] : "?";
}

/* Pushes the environment of the Lua function at -1, running at `ar`, if it is a
 * table (returns 1), else nothing (returns 0). 5.1: its function environment.
 * 5.2+: the _ENV in scope at the call: the innermost active local named _ENV
 * (local _ENV = t, or a parameter), else its upvalue _ENV, which a function has
 * when it names a global (a chunk always has it; a function that only uses
 * locals and upvalues has none). Names need debug information: after luac -s
 * or string.dump(f, true) there are none, and the search goes on up the stack. */
static int push_fn_env(lua_State *L, lua_Debug *ar)
{
#if VL_LUA_ENV_UPVALUE
	const char *name;
	int i, found = 0;
	for (i = 1; i <= 255 && (name = lua_getlocal(L, ar, i)) != NULL; i++) {
		lua_pop(L, 1);
		if (strcmp(name, "_ENV") == 0)
			found = i; /* a later one shadows an earlier one */
	}
	if (found) {
		lua_getlocal(L, ar, found);
	} else {
		for (i = 1; !found && i <= 255 && (name = lua_getupvalue(L, -1, i)) != NULL; i++) {
			found = strcmp(name, "_ENV") == 0;
			if (!found)
				lua_pop(L, 1);
		}
		if (!found)
			return 0;
	}
#else
	(void)ar;
	lua_getfenv(L, -1);
#endif
	if (lua_istable(L, -1))
		return 1;
	lua_pop(L, 1);
	return 0;
}

/* Pushes the environment of the nearest Lua function calling us that has one
 * (a Luup plugin's code runs in its own: setfenv on 5.1, load(..., env) or a
 * local _ENV on 5.2+), or the globals. */
void vl_push_caller_env(lua_State *L)
{
	lua_Debug ar;
	int level;
	for (level = 1; level < 8 && lua_getstack(L, level, &ar); level++) {
		if (!lua_getinfo(L, "Sf", &ar))
			break;
		if (strcmp(ar.what, "C") != 0 && push_fn_env(L, &ar)) {
			lua_remove(L, -2);
			return;
		}
		lua_pop(L, 1);
	}
	lua_pushglobaltable(L);
}

/* Under lua_cpcall: is there a luup.register_handler in the environment at
 * the light userdata's... (arg 1: a table) */
static int has_luup_cf(lua_State *L)
{
	int *found = lua_touserdata(L, 1);
	lua_rawgeti(L, LUA_REGISTRYINDEX, found[1]);
	lua_getfield(L, -1, "luup");
	if (lua_istable(L, -1)) {
		lua_getfield(L, -1, "register_handler");
		found[0] = lua_isfunction(L, -1);
	}
	return 0;
}

static int is_luup_host(lua_State *L, int env)
{
	int args[2] = {0, LUA_NOREF};
	lua_getfield(L, env, "fenv");
	args[1] = luaL_ref(L, LUA_REGISTRYINDEX);
	if (lua_cpcall(L, has_luup_cf, args) != 0)
		lua_pop(L, 1);
	luaL_unref(L, LUA_REGISTRYINDEX, args[1]);
	return args[0];
}

int vl_luup_ctx(vl_state *st, lua_State *L, int env, vws_ctx *ctx, char *err, size_t errlen)
{
	int mode = VL_MODE(st);
	if (mode == VL_DELIVERY_AUTO) {
		mode = is_luup_host(L, env) ? VL_DELIVERY_LUUP : VL_DELIVERY_HOOK;
		__atomic_store_n(&st->mode, mode, __ATOMIC_RELEASE);
	}
	if (mode == VL_DELIVERY_LUUP) {
		vl_group *g = vl_group_for_env(st, L, env, err, errlen);
		if (!g)
			return -1;
		*ctx = g->ctx;
	} else {
		*ctx = st->ctxB;
	}
	return vl_start_waker(st, err, errlen);
}

/* ---- Hook delivery ---------------------------------------------------------- */

static void hook_fn(lua_State *L, lua_Debug *ar);

int vl_hook_is_ours(lua_Hook h)
{
	return h == hook_fn;
}

/* Waker thread: sets the count hook on the script's thread (once). */
static void hook_arm(vl_state *st)
{
	pthread_mutex_lock(&st->waker_mu);
	if (!st->hook_armed && !st->hook_deferred && !VL_STOPPED(st)) {
		lua_State *L = st->main_L;
		lua_Hook h = lua_gethook(L);
		if (h != hook_fn) {
			st->saved_hook = h;
			st->saved_mask = lua_gethookmask(L);
			st->saved_count = lua_gethookcount(L);
		}
		lua_sethook(L, hook_fn, LUA_MASKCOUNT, 1);
		__atomic_store_n(&st->hook_armed, 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&st->waker_mu);
}

/* Script's thread: puts back the hook we replaced (unless the script or the
 * interpreter set another since); deferred: a delivery in progress will
 * deliver. Returns 1 if the hook was armed. */
static int hook_disarm(vl_state *st, int deferred)
{
	int was;
	pthread_mutex_lock(&st->waker_mu);
	was = st->hook_armed;
	if (was) {
		if (lua_gethook(st->main_L) == hook_fn)
			lua_sethook(st->main_L, st->saved_hook, st->saved_mask, st->saved_count);
		__atomic_store_n(&st->hook_armed, 0, __ATOMIC_RELEASE);
	}
	st->hook_deferred = deferred;
	pthread_mutex_unlock(&st->waker_mu);
	return was;
}

int vl_hook_service(vl_state *st, lua_State *L)
{
	int n = 0, was;
	if (VL_MODE(st) != VL_DELIVERY_HOOK || st->delivering > 0 || VL_STOPPED(st))
		return 0;
	was = hook_disarm(st, 0);
	if (vws_ctx_pending(st->ctxB) > 0)
		n = vl_deliver_pending(st, L, st->ctxB, -1);
	if (was || n > 0)
		vl_waker_kick(st); /* watch the queue again */
	return n;
}

/* Runs on the script's thread at its next Lua instruction after hook_arm. */
static void hook_fn(lua_State *L, lua_Debug *ar)
{
	vl_state *st = vl_find_state(L);
	(void)ar;
	if (!st)
		st = vl_find_hooked(); /* LuaJIT: the hook fired in a coroutine */
	if (!st) {
		lua_sethook(L, NULL, 0, 0);
		return;
	}
	vl_lock_acquire(&st->lock);
	if (st->delivering > 0)
		hook_disarm(st, 1); /* inside a handler: delivered when it returns */
	else
		vl_hook_service(st, L);
	vl_lock_release(&st->lock);
}

/* ---- The waker thread --------------------------------------------------------- */

void vl_waker_kick(vl_state *st)
{
	char c = 1;
	ssize_t n = write(st->wake[1], &c, 1);
	(void)n;
}

static void drain(int fd)
{
	char buf[64];
	while (read(fd, buf, sizeof buf) > 0)
		;
}

/* thread: deliver ctxB under the VM lock, as the dispatcher always did. */
static void waker_thread_mode(vl_state *st, struct pollfd *p, int *nfd, int *timeout, int phase)
{
	if (phase == 0) {
		int fd = vl_event_fd(st, st->ctxB);
		if (fd >= 0) {
			p[*nfd].fd = fd;
			p[*nfd].events = POLLIN;
			p[(*nfd)++].revents = 0;
		} else {
			*timeout = 20; /* no event fd: look in small steps */
		}
		return;
	}
	if (vws_ctx_pending(st->ctxB) <= 0)
		return;
	if (!vl_lock_acquire_or_stop(&st->lock, st))
		return;
	if (!VL_STOPPED(st)) {
		vl_deliver_pending(st, st->T, st->ctxB, -1);
		lua_settop(st->T, 0);
	}
	vl_lock_release(&st->lock);
}

/* hook: arm the count hook when Luup-mode events are pending; then wait for the
 * script's thread to take them (it kicks us) before watching the queue again. */
static void waker_hook_mode(vl_state *st, struct pollfd *p, int *nfd, int *timeout, int phase)
{
	int armed = __atomic_load_n(&st->hook_armed, __ATOMIC_ACQUIRE);
	if (phase == 0) {
		int fd;
		if (armed || st->hook_deferred) {
			*timeout = 1000; /* check that nobody replaced our hook */
			return;
		}
		fd = vl_event_fd(st, st->ctxB);
		if (fd >= 0) {
			p[*nfd].fd = fd;
			p[*nfd].events = POLLIN;
			p[(*nfd)++].revents = 0;
		} else {
			*timeout = 20;
		}
		return;
	}
	if (armed) {
		/* The script (debug.sethook) or lua.c (Ctrl-C) set a hook over ours:
		 * ours is gone, arm again on top of theirs. */
		pthread_mutex_lock(&st->waker_mu);
		if (st->hook_armed && lua_gethook(st->main_L) != hook_fn)
			st->hook_armed = 0;
		pthread_mutex_unlock(&st->waker_mu);
		return;
	}
	if (!st->hook_deferred && vws_ctx_pending(st->ctxB) > 0)
		hook_arm(st);
}

static void *waker_main(void *arg)
{
	vl_state *st = arg;
	int mode = VL_MODE(st);

	while (!VL_STOPPED(st)) {
		struct pollfd p[64];
		vl_group *gs[64];
		int nfd = 1, ng = 0, i, timeout = -1, logp = -1;
		int64_t now = vl_now_ms(), t = -1;

		p[0].fd = st->wake[0];
		p[0].events = POLLIN;
		p[0].revents = 0;
		if (mode == VL_DELIVERY_THREAD) {
			waker_thread_mode(st, p, &nfd, &timeout, 0);
		} else if (mode == VL_DELIVERY_HOOK) {
			waker_hook_mode(st, p, &nfd, &timeout, 0);
		} else {
			vl_group *g;
			pthread_mutex_lock(&st->waker_mu);
			for (g = st->groups; g && ng < 62; g = g->next)
				gs[ng++] = g;
			pthread_mutex_unlock(&st->waker_mu);
			for (i = 0; i < ng; i++) {
				vl_luup_poll_prepare(st, gs[i], &p[nfd], now, &t);
				nfd++;
			}
			if (ng > 0 && vl_luup_log_prepare(gs[ng - 1], &p[nfd], now))
				logp = nfd++;
			if (t >= 0)
				timeout = (int)(t > 60000 ? 60000 : t);
		}
		if (poll(p, (nfds_t)nfd, timeout) < 0 && errno != EINTR)
			poll(NULL, 0, 10);
		if (p[0].revents & POLLIN)
			drain(st->wake[0]);
		if (VL_STOPPED(st))
			break;
		if (mode == VL_DELIVERY_THREAD)
			waker_thread_mode(st, p, &nfd, &timeout, 1);
		else if (mode == VL_DELIVERY_HOOK)
			waker_hook_mode(st, p, &nfd, &timeout, 1);
		else {
			for (i = 0; i < ng; i++)
				vl_luup_poll_done(st, gs[i], &p[1 + i], vl_now_ms());
			if (logp >= 0)
				vl_luup_log_done(st, gs[ng - 1], &p[logp], vl_now_ms());
		}
	}
	vl_state_unref(st);
	return NULL;
}

/* Starts the waker once (under the lock). Returns 0, or -1 with a message. */
int vl_start_waker(vl_state *st, char *err, size_t errlen)
{
	pthread_attr_t attr;
	int rc;

	if (st->started)
		return 0;
	vl_state_ref(st);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, VL_DELIVERY_THREAD == VL_MODE(st) ? 1024 * 1024 : 256 * 1024);
	rc = pthread_create(&st->thread, &attr, waker_main, st);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start the waker thread: %s", strerror(rc));
		vl_state_unref(st);
		return -1;
	}
	st->started = 1;
	return 0;
}

/* Stops and joins the waker (st->stop is set), then puts back our hook's predecessor. */
void vl_stop_waker(vl_state *st)
{
	vl_waker_kick(st);
	vws_ctx_wake(st->ctxB);
	if (st->started) {
		if (pthread_equal(st->thread, pthread_self()))
			pthread_detach(st->thread);
		else
			pthread_join(st->thread, NULL);
		st->started = 0;
	}
	hook_disarm(st, 0);
}

/* ---- Choosing the delivery ----------------------------------------------------- */

static int set_mode(vl_state *st, int mode)
{
	int cur = VL_MODE(st);
	if (st->started && cur != mode)
		return -1;
	__atomic_store_n(&st->mode, mode, __ATOMIC_RELEASE);
	return 0;
}

/* vws_lua_use_dispatcher: the host holds vws_lua_lock(L) whenever it runs Lua in
 * L, so Luup-mode events may come on a thread of the module that takes it.
 * Call it after require and before the first Luup-mode object. */
VL_EXPORT int vws_lua_use_dispatcher(lua_State *L)
{
	vl_state *st = vl_find_state(L);
	int rc;
	if (!st)
		return -1;
	vl_lock_acquire(&st->lock);
	rc = set_mode(st, VL_DELIVERY_THREAD);
	vl_lock_release(&st->lock);
	return rc;
}

/* ws.set_delivery(mode): "auto" | "luup" | "hook" | "thread" -> true | nil, err */
int vl_ws_set_delivery(lua_State *L)
{
	vl_state *st = vl_upstate(L);
	int mode = luaL_checkoption(L, 1, NULL, mode_names), rc;
	if (!st)
		return vl_push_closed(L);
	vl_lock_acquire(&st->lock);
	rc = set_mode(st, mode);
	vl_lock_release(&st->lock);
	if (rc != 0) {
		lua_pushnil(L);
		lua_pushfstring(L, "delivery is already \"%s\": choose it before the first Luup-mode connection or server",
		                vl_mode_name(VL_MODE(st)));
		lua_pushliteral(L, "ESTATE");
		return 3;
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* ws.delivery() -> "auto" | "luup" | "hook" | "thread" */
int vl_ws_delivery(lua_State *L)
{
	vl_state *st = vl_upstate(L);
	if (!st)
		return vl_push_closed(L);
	lua_pushstring(L, vl_mode_name(VL_MODE(st)));
	return 1;
}

/* ws.set_luup_port(port): the Luup host's request port (default VWS_LUUP_PORT or 3480). */
int vl_ws_set_luup_port(lua_State *L)
{
	vl_state *st = vl_upstate(L);
	lua_Number n = luaL_checknumber(L, 1);
	if (n != (int)n || n < 1 || n > 65535)
		return luaL_argerror(L, 1, "port from 1 to 65535 expected");
	if (!st)
		return vl_push_closed(L);
	__atomic_store_n(&st->luup_port, (int)n, __ATOMIC_RELEASE);
	lua_pushboolean(L, 1);
	return 1;
}
