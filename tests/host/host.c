/*
 * host.c - a LuaUPnP-like C host for the Luup mode of verawebsockets.
 *
 * Like LuaUPnP it runs several lua_States (Luup devices), each with a global
 * `luup` table (luup.c) and its own pthread, loads a plugin (tests/host/plugin.lua)
 * that creates Luup-mode connections and a server and returns at once, then
 * leaves the state IDLE (the thread sleeps, no Lua runs) and later runs short
 * jobs (Lua chunks) in it. Two ways to serialise Lua in a state (--mode):
 *
 *   luup (default)  the host's own mutex per state, as LuaUPnP does. The module
 *                   asks for its events with lr_ requests to the host's port
 *                   (luup.c, VWS_LUUP_PORT); a worker thread of the host runs
 *                   verawebsockets_wake under that mutex, never the module's lock.
 *   lock            vws_lua_lock/vws_lua_unlock (exported by the module) around
 *                   everything the host runs, after vws_lua_use_dispatcher(L)
 *                   (when the module has it): events come on the module's
 *                   dispatcher thread, which takes that lock.
 *
 * A call hook (the probe, luup.c) sees every call of a plugin function and
 * checks which thread runs it: in luup mode a host thread inside the state by
 * the host's mutex, in lock mode the module's dispatcher while no host job is in.
 *
 *   vws-host [--mode=luup|lock] MODDIR ECHO_URL REFUSED_URL [NSTATES]
 *   vws-host --http-test SECONDS   (the request port with a fake plugin; prints
 *                                   "port N", serves until lr_stop or SECONDS)
 *
 * MODDIR holds verawebsockets.so (a built variant). Env: HOST_STDERR_LOG (a file
 * stderr is sent to; its handler error lines are checked at the end). Calls are
 * timed for information only; that they do not block is checked by state (the
 * silent server's connection is still connecting when the plugin returns).
 * Prints TAP and a final "N passed, N failed"; exits 1 on any failure.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "host.h"

enum host_mode host_mode = MODE_LUUP;
__thread int host_thread;

static hstate states[MAX_STATES];
static const char *moddir, *echo_url, *refused_url;
static char hang_url[64];
static char modpath[4096];

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static int n_test, n_pass, n_fail;

static void (*lock_fn)(lua_State *);
static void (*unlock_fn)(lua_State *);
static int (*use_dispatcher_fn)(lua_State *);
static pthread_mutex_t sym_mu = PTHREAD_MUTEX_INITIALIZER;

double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
}

/* check prints one TAP line; thread-safe. */
int check(int ok, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&out_mu);
	n_test++;
	if (ok)
		n_pass++;
	else
		n_fail++;
	printf("%s %d - ", ok ? "ok" : "not ok", n_test);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	pthread_mutex_unlock(&out_mu);
	return ok;
}

void diag(const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&out_mu);
	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	pthread_mutex_unlock(&out_mu);
}

/* modsym finds a symbol of the module after the first require. Lua 5.1's loader
 * dlopens modules RTLD_NOW without RTLD_GLOBAL, so RTLD_DEFAULT may not see it;
 * then the already loaded module is opened with RTLD_NOLOAD. */
static void *modsym(const char *name, int *local)
{
	void *h, *p = dlsym(RTLD_DEFAULT, name);
	*local = 0;
	if (!p && (h = dlopen(modpath, RTLD_NOW | RTLD_NOLOAD))) {
		p = dlsym(h, name);
		*local = p != NULL;
		dlclose(h); /* drops the reference RTLD_NOLOAD took; the module stays loaded */
	}
	return p;
}

/* resolve_lock finds vws_lua_lock/unlock and (optional: modules from before the
 * Luup delivery start their dispatcher on their own) vws_lua_use_dispatcher. */
static int resolve_lock(void)
{
	int ok, local = 0, l2 = 0;
	pthread_mutex_lock(&sym_mu);
	if (!lock_fn) {
		lock_fn = (void (*)(lua_State *))modsym("vws_lua_lock", &local);
		unlock_fn = (void (*)(lua_State *))modsym("vws_lua_unlock", &l2);
		use_dispatcher_fn = (int (*)(lua_State *))modsym("vws_lua_use_dispatcher", &l2);
		if (lock_fn && unlock_fn)
			diag("vws_lua_lock resolved with %s", local ? "dlopen(RTLD_NOLOAD) + dlsym (Lua 5.1 loads modules RTLD_LOCAL)"
			                                            : "dlsym(RTLD_DEFAULT)");
		diag("vws_lua_use_dispatcher %s", use_dispatcher_fn ? "exported" : "absent (the module starts its dispatcher on its own)");
	}
	ok = lock_fn && unlock_fn;
	pthread_mutex_unlock(&sym_mu);
	return ok;
}

/* ---- Entering a state ------------------------------------------------------ */

static __thread int took_vws_lock;

int host_enter(hstate *hs, int activity)
{
	pthread_mutex_lock(&hs->mu);
	if (hs->closed) {
		pthread_mutex_unlock(&hs->mu);
		return 0;
	}
	/* lock mode: the module's lock too (mutex first, always in that order; the
	 * module never takes the host's mutex). Before the module is loaded nothing
	 * else can run Lua in the state. */
	took_vws_lock = host_mode == MODE_LOCK && lock_fn;
	if (took_vws_lock)
		lock_fn(hs->L);
	if (__atomic_load_n(&hs->inside, __ATOMIC_ACQUIRE) != 0)
		__atomic_add_fetch(&hs->overlaps, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&hs->inside, pthread_self(), __ATOMIC_RELEASE);
	hs->activity = activity;
	return 1;
}

void host_leave(hstate *hs)
{
	hs->activity = ACT_NONE;
	__atomic_store_n(&hs->inside, 0, __ATOMIC_RELEASE);
	if (took_vws_lock && !hs->closed) /* after lua_close the module forgot L */
		unlock_fn(hs->L);
	took_vws_lock = 0;
	pthread_mutex_unlock(&hs->mu);
}

void host_mark_closed(hstate *hs)
{
	hs->closed = 1;
}

/* A job: run a Lua chunk in the state, entered by host_enter. The chunk returns up
 * to two values, converted into *num and res (a string). Returns the lua_pcall
 * status (-1: the state is closed); *call_ms is the wall time of the pcall alone,
 * *wait_ms the wait to enter. A due luup.call_delay runs after it. */
typedef struct job_result {
	double num;
	char   res[512];
	double call_ms, wait_ms;
} job_result;

static int job(hstate *hs, const char *chunk, job_result *r)
{
	lua_State *L = hs->L;
	double t0, t1, t2;
	int rc;
	memset(r, 0, sizeof *r);
	t0 = now_ms();
	if (!host_enter(hs, ACT_JOB)) {
		snprintf(r->res, sizeof r->res, "state closed");
		return -1;
	}
	__atomic_add_fetch(&hs->jobs, 1, __ATOMIC_RELAXED);
	t1 = now_ms();
	rc = luaL_loadstring(L, chunk);
	if (rc == 0)
		rc = lua_pcall(L, 0, 2, 0);
	t2 = now_ms();
	if (rc == 0) {
		r->num = lua_tonumber(L, -2);
		if (lua_isboolean(L, -2))
			r->num = lua_toboolean(L, -2);
		if (lua_isstring(L, -1))
			snprintf(r->res, sizeof r->res, "%s", lua_tostring(L, -1));
		lua_pop(L, 2);
	} else {
		snprintf(r->res, sizeof r->res, "%s", lua_tostring(L, -1));
		lua_pop(L, 1);
	}
	luup_run_delay(hs);
	host_leave(hs);
	r->wait_ms = t1 - t0;
	r->call_ms = t2 - t1;
	return rc;
}

/* poll_job repeats a job (every 50 ms, up to max_ms) until it returns a true first
 * value. The jobs only read REC: events are delivered by the module (luup mode: by
 * the host's worker threads on the module's request; lock mode: its dispatcher). */
static int poll_job(hstate *hs, const char *chunk, int max_ms, job_result *r, double *waited)
{
	double t0 = now_ms();
	for (;;) {
		if (job(hs, chunk, r) == 0 && r->num != 0) {
			*waited = now_ms() - t0;
			return 1;
		}
		if (now_ms() - t0 > max_ms) {
			*waited = now_ms() - t0;
			return 0;
		}
		sleep_ms(50);
	}
}

static void set_globals(lua_State *L, int id)
{
	lua_pushinteger(L, id);
	lua_setglobal(L, "STATE_ID");
	lua_pushstring(L, echo_url);
	lua_setglobal(L, "ECHO_URL");
	lua_pushstring(L, refused_url);
	lua_setglobal(L, "REFUSED_URL");
	lua_pushstring(L, hang_url);
	lua_setglobal(L, "HANG_URL");
}

/* hang_listen makes a 127.0.0.1 listener that is never accepted from: the kernel
 * completes TCP handshakes, nobody answers the WebSocket handshake. */
static int hang_listen(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0)
		return -1;
	snprintf(hang_url, sizeof hang_url, "ws://127.0.0.1:%d/", ntohs(a.sin_port));
	return fd;
}

/* host_close: lua_close under host_enter (luup mode: the host's mutex, so no lr_
 * request runs meanwhile and later ones find the state closed; lock mode: also
 * vws_lua_lock, so the dispatcher runs no handler while lua_close does; the
 * module's __gc stops it). Returns the time lua_close took. */
double host_close(hstate *hs)
{
	double t0, t1;
	host_enter(hs, ACT_JOB);
	luup_forget(hs);
	t0 = now_ms();
	lua_close(hs->L);
	t1 = now_ms();
	host_mark_closed(hs);
	host_leave(hs);
	return t1 - t0;
}

static void *state_thread(void *arg)
{
	hstate *hs = arg;
	int id = hs->id;
	lua_State *L;
	job_result r;
	double t0, t1, waited;
	int rc;
	char chunk[1024];

	host_thread = 1;
	hs->L = L = luup_newstate(hs);
	luaL_openlibs(L);
	luup_open(L, hs);
	set_globals(L, id);

	/* require: the first one starts the engine; not a Luup-mode call, timed for info. */
	host_enter(hs, ACT_LOAD);
	t0 = now_ms();
	rc = luaL_dostring(L, "ws = require 'verawebsockets' return ws._VERSION");
	t1 = now_ms();
	check(rc == 0, "state %d: require 'verawebsockets' (%.1f ms)%s%s", id, t1 - t0, rc ? ": " : "",
	      rc ? lua_tostring(L, -1) : "");
	lua_settop(L, 0);
	host_leave(hs);
	if (rc != 0)
		goto close;
	if (host_mode == MODE_LOCK) {
		if (!check(resolve_lock(), "state %d: vws_lua_lock/vws_lua_unlock resolved", id))
			goto close;
		if (use_dispatcher_fn) {
			rc = use_dispatcher_fn(L);
			check(rc == 0, "state %d: vws_lua_use_dispatcher(L) returned %d before the plugin", id, rc);
		}
	}

	/* The plugin: creates and connects Luup-mode connections, returns at once. */
	host_enter(hs, ACT_LOAD);
	t0 = now_ms();
	rc = luaL_loadfile(L, "tests/host/plugin.lua");
	if (rc == 0)
		rc = lua_pcall(L, 0, 0, 0);
	t1 = now_ms();
	check(rc == 0, "state %d: plugin loaded%s%s", id, rc ? ": " : "", rc ? lua_tostring(L, -1) : "");
	lua_settop(L, 0);
	lua_getglobal(L, "HANG_STATE_AT_RETURN");
	check(lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "connecting") == 0,
	      "state %d: (c) plugin with a server and 4x create+connect (echo, refused, own server, silent server) returned while the silent "
	      "one was still connecting (state \"%s\", %.2f ms)",
	      id, lua_isstring(L, -1) ? lua_tostring(L, -1) : "?", t1 - t0);
	lua_settop(L, 0);
	host_leave(hs);
	if (host_mode == MODE_LUUP)
		check(hs->registrations == 1 && strcmp(hs->reg_fname, "verawebsockets_wake") == 0 &&
		          strncmp(hs->reg_name, "vws_", 4) == 0,
		      "state %d: the plugin's first Luup-mode object registered luup.register_handler(\"%s\", \"%s\") (%d call(s))",
		      id, hs->reg_fname, hs->reg_name, hs->registrations);
	else
		diag("state %d: luup.register_handler called %d time(s)", id, hs->registrations);

	/* IDLE: the host thread sleeps; no Lua runs in this state on this thread. */
	sleep_ms(1000);

	/* (a) delivery without the host calling anything. */
	rc = poll_job(hs, "return REC.opened == 1 and #REC.messages >= 5 and #REC.errors == 1, "
	                 "string.format('opened=%d messages=%d errors=%d', REC.opened, #REC.messages, #REC.errors)",
	              4000, &r, &waited);
	check(rc, "state %d: (a) events delivered while the host was idle (%s; ready %.0f ms after the 1 s idle)",
	      id, r.res, waited);
	job(hs, "return #REC.errors == 1 and REC.errors[1] ~= nil, tostring(REC.errors[1])", &r);
	check(r.num != 0, "state %d: (a) refused connection reported by event 1: \"%s\"", id, r.res);

	rc = poll_job(hs, "return REC.hang_error ~= nil, tostring(REC.hang_error)", 4000, &r, &waited);
	check(rc, "state %d: (c) the silent server's connect ended later by event 1: \"%s\"", id, r.res);

	/* (b) isolation: exactly this state's payloads, in order, on this state's wso. */
	snprintf(chunk, sizeof chunk,
	         "local bad = {} "
	         "for k = 1, 5 do local want = 'state-%d-msg-' .. k "
	         "  if REC.messages[k] ~= want then bad[#bad+1] = tostring(REC.messages[k]) .. '~=' .. want end end "
	         "for _, w in ipairs(REC.wrong) do bad[#bad+1] = w end "
	         "return #bad == 0, table.concat(bad, ', ')",
	         id);
	job(hs, chunk, &r);
	check(r.num != 0, "state %d: (b) saw only its own messages state-%d-msg-1..5%s%s", id, id,
	      r.res[0] ? ": " : "", r.res);

	/* (d) the handler of message 1 raised; messages 2..5 still came. */
	job(hs, "return REC.raised == 1 and #REC.messages >= 5, 'raised=' .. REC.raised .. ' messages=' .. #REC.messages", &r);
	check(r.num != 0, "state %d: (d) later events delivered after a handler raised (%s)", id, r.res);

	/* The plugin's server: its Luup-mode client's hello was answered by the server's
	 * handler; ws.close(SRV) closes that client with 1001 on both sides. */
	snprintf(chunk, sizeof chunk,
	         "return REC.sc_reply == 'srv-%d:hello-%d' and REC.srv_path == '/plugin/%d', "
	         "tostring(REC.srv_path) .. ' ' .. tostring(REC.sc_reply)",
	         id, id, id);
	rc = poll_job(hs, chunk, 4000, &r, &waited);
	check(rc, "state %d: the plugin's server answered its client (%s)", id, r.res);
	rc = job(hs, "return ws.close(SRV)", &r);
	check(rc == 0 && r.num != 0, "state %d: (c) ws.close(server) returned true in %.2f ms", id, r.call_ms);
	rc = poll_job(hs, "return REC.srv_close == 1001 and ws.state(SC) == 'closed' and SRV:port() == nil, "
	                 "tostring(REC.srv_close) .. ' ' .. ws.state(SC)",
	              4000, &r, &waited);
	check(rc, "state %d: server closed: its client closed with 1001 (%s)", id, r.res);

	/* (c) send returns at once. */
	snprintf(chunk, sizeof chunk, "return ws.send(CONN, 'state-%d-late')", id);
	rc = job(hs, chunk, &r);
	check(rc == 0 && r.num != 0,
	      "state %d: (c) ws.send returned %s in %.2f ms (lock wait %.2f ms)", id,
	      rc ? r.res : (r.num != 0 ? "true" : "false"), r.call_ms, r.wait_ms);
	snprintf(chunk, sizeof chunk, "return REC.messages[6] == 'state-%d-late', tostring(REC.messages[6])", id);
	rc = poll_job(hs, chunk, 3000, &r, &waited);
	check(rc, "state %d: its late message echoed (%s, %.0f ms)", id, r.res, waited);

	/* close: event 4 with a clean 1000 close. */
	rc = job(hs, "return ws.close(CONN)", &r);
	check(rc == 0 && r.num != 0, "state %d: (c) ws.close returned true in %.2f ms", id, r.call_ms);
	rc = poll_job(hs, "local c = REC.closed[1] return c ~= nil and c.wso == CONN, "
	                 "c and string.format('clean=%s code=%s', tostring(c.clean), tostring(c.code)) or 'none'",
	              4000, &r, &waited);
	check(rc && strstr(r.res, "clean=true code=1000") != NULL, "state %d: close event (%s)", id, r.res);

	/* (e) open a new connection and lua_close the state while it is open. */
	rc = job(hs, "OPEN2 = false "
	            "C2 = ws.create{url = ECHO_URL, standalone = false, event_handlers = "
	            "  {open = function() OPEN2 = true end}} "
	            "return ws.connect(C2)",
	         &r);
	check(rc == 0 && r.num != 0, "state %d: (c) create+connect returned true in %.2f ms%s%s",
	      id, r.call_ms, rc ? ": " : "", rc ? r.res : "");
	rc = poll_job(hs, "return OPEN2 and ws.state(C2) == 'open', ws.state(C2)", 4000, &r, &waited);
	check(rc, "state %d: second connection open (%s)", id, r.res);
	job(hs, "for i = 1, 20 do ws.send(C2, string.rep('z', 1000)) end return true", &r);
	t0 = now_ms();
	check(1, "state %d: (e) lua_close with an open connection and queued sends returned (%.1f ms)", id,
	      host_close(hs));
	t1 = now_ms();
	luup_checks(hs);
	return NULL;
close:
	host_close(hs);
	return NULL;
}

/* After every state is gone: a fresh state still works (the module stayed sane). */
static void fresh_state(void)
{
	lua_State *L = luaL_newstate();
	int rc;
	luaL_openlibs(L);
	set_globals(L, 99);
	rc = luaL_dostring(L,
	                   "local ws = require 'verawebsockets' "
	                   "local got "
	                   "local c = ws.create{url = ECHO_URL, standalone = true, event_handlers = { "
	                   "  open = function(w) ws.send(w, 'fresh') end, "
	                   "  message = function(w, d) got = d ws.close(w) end}} "
	                   "assert(ws.connect(c)) "
	                   "local done, err = ws.loop(5000) "
	                   "assert(done, err) assert(got == 'fresh', tostring(got)) return true");
	check(rc == 0, "a fresh lua_State after all states were closed: standalone round trip%s%s",
	      rc ? ": " : "", rc ? lua_tostring(L, -1) : "");
	lua_close(L);
}

int main(int argc, char **argv)
{
	pthread_t th[MAX_STATES];
	int n = 4, i, port, served, bad;
	const char *log = getenv("HOST_STDERR_LOG");
	char cpath[4200], portstr[16];

	host_thread = 1;
	if (argc == 3 && strcmp(argv[1], "--http-test") == 0)
		return luup_http_test(atoi(argv[2]));
	if (argc > 1 && strncmp(argv[1], "--mode=", 7) == 0) {
		if (strcmp(argv[1] + 7, "lock") == 0)
			host_mode = MODE_LOCK;
		else if (strcmp(argv[1] + 7, "luup") != 0)
			argc = 0;
		argv++;
		argc--;
	}
	if (argc < 4) {
		fprintf(stderr, "usage: vws-host [--mode=luup|lock] MODDIR ECHO_URL REFUSED_URL [NSTATES]\n"
		                "       vws-host --http-test SECONDS\n");
		return 2;
	}
	moddir = argv[1];
	echo_url = argv[2];
	refused_url = argv[3];
	if (argc > 4)
		n = atoi(argv[4]);
	if (n < 1 || n > MAX_STATES)
		n = 4;
	if (hang_listen() < 0) {
		perror("hang listener");
		return 2;
	}
	/* The request port, before any state requires the module (it reads VWS_LUUP_PORT). */
	if ((port = luup_serve()) < 0) {
		perror("request port");
		return 2;
	}
	snprintf(portstr, sizeof portstr, "%d", port);
	setenv("VWS_LUUP_PORT", portstr, 1);
	snprintf(modpath, sizeof modpath, "%s/verawebsockets.so", moddir);
	snprintf(cpath, sizeof cpath, "%s/?.so", moddir);
	setenv("LUA_CPATH", cpath, 1);
	if (log && !freopen(log, "w", stderr)) {
		perror(log);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	diag("host: %s mode, %d lua_States on %d pthreads, module %s, echo %s, requests on 127.0.0.1:%d", 
	     host_mode == MODE_LUUP ? "luup" : "lock", n, n, modpath, echo_url, port);

	for (i = 0; i < n; i++) {
		states[i].id = i + 1;
		pthread_mutex_init(&states[i].mu, NULL);
		if (pthread_create(&th[i], NULL, state_thread, &states[i]) != 0) {
			check(0, "pthread_create %d", i + 1);
			n = i;
			break;
		}
	}
	for (i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	sleep_ms(300); /* give anything the closed states left behind a chance to misbehave */
	fresh_state();
	luup_stop();
	served = luup_served(&bad);
	if (host_mode == MODE_LUUP)
		check(served > 0, "the host answered %d requests on its port (%d not 200)", served, bad);
	else
		diag("the host answered %d requests on its port (%d not 200)", served, bad);

	if (log) {
		/* Every state's raising handler must have been reported on stderr. */
		FILE *f;
		char line[1024];
		int errs = 0;
		fflush(stderr);
		if ((f = fopen(log, "r"))) {
			while (fgets(line, sizeof line, f)) {
				if (strncmp(line, "verawebsockets: error in handler for event 8", 44) == 0 &&
				    strstr(line, "deliberate error"))
					errs++;
			}
			fclose(f);
		}
		check(errs == n, "(d) stderr has %d \"verawebsockets: error in handler for event 8: ...deliberate error\" lines (want %d)",
		      errs, n);
	}
	printf("1..%d\n%d passed, %d failed\n", n_test, n_pass, n_fail);
	return n_fail ? 1 : 0;
}
