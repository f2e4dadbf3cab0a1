/*
 * host.c - a LuaUPnP-like C host for the Luup mode of verawebsockets.
 *
 * Like LuaUPnP it links Debian's liblua5.1, runs several lua_States, each on its
 * own pthread, loads a plugin (tests/host/plugin.lua) that creates Luup-mode
 * connections and returns at once, then leaves the state IDLE (the thread
 * sleeps, no Lua runs) and later runs short jobs (Lua chunks) in it while
 * holding vws_lua_lock(L)/vws_lua_unlock(L), exported by the module.
 *
 *   vws-host MODDIR ECHO_URL REFUSED_URL [NSTATES]
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

#define MAX_STATES 16

static const char *moddir, *echo_url, *refused_url;
static char hang_url[64];
static char modpath[4096];

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static int n_test, n_pass, n_fail;

static void (*lock_fn)(lua_State *);
static void (*unlock_fn)(lua_State *);
static pthread_mutex_t sym_mu = PTHREAD_MUTEX_INITIALIZER;

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
}

/* check prints one TAP line; thread-safe. */
static int check(int ok, const char *fmt, ...)
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

static void diag(const char *fmt, ...)
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

/* resolve_lock finds vws_lua_lock/unlock after the first require. Lua 5.1's
 * loader dlopens modules RTLD_NOW without RTLD_GLOBAL, so RTLD_DEFAULT may not
 * see them; then the already loaded module is opened with RTLD_NOLOAD. */
static int resolve_lock(void)
{
	void *h;
	int ok = 1;
	pthread_mutex_lock(&sym_mu);
	if (!lock_fn) {
		lock_fn = (void (*)(lua_State *))dlsym(RTLD_DEFAULT, "vws_lua_lock");
		unlock_fn = (void (*)(lua_State *))dlsym(RTLD_DEFAULT, "vws_lua_unlock");
		if (lock_fn && unlock_fn) {
			diag("vws_lua_lock resolved with dlsym(RTLD_DEFAULT)");
		} else if ((h = dlopen(modpath, RTLD_NOW | RTLD_NOLOAD))) {
			lock_fn = (void (*)(lua_State *))dlsym(h, "vws_lua_lock");
			unlock_fn = (void (*)(lua_State *))dlsym(h, "vws_lua_unlock");
			diag("vws_lua_lock not in RTLD_DEFAULT (Lua 5.1 loads modules RTLD_LOCAL); "
			     "resolved with dlopen(\"%s\", RTLD_NOLOAD) + dlsym", modpath);
		}
		ok = lock_fn && unlock_fn;
	}
	pthread_mutex_unlock(&sym_mu);
	return ok;
}

/* A job: run a Lua chunk in L under the module's lock. The chunk returns up to two
 * values, converted into *num and res (a string). Returns the lua_pcall status;
 * *call_ms is the wall time of the pcall alone, *wait_ms the wait for the lock. */
typedef struct job_result {
	double num;
	char   res[512];
	double call_ms, wait_ms;
} job_result;

static int job(lua_State *L, const char *chunk, job_result *r)
{
	double t0, t1, t2;
	int rc;
	memset(r, 0, sizeof *r);
	t0 = now_ms();
	lock_fn(L);
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
	unlock_fn(L);
	r->wait_ms = t1 - t0;
	r->call_ms = t2 - t1;
	return rc;
}

/* poll_job repeats a job (every 50 ms, up to max_ms) until it returns a true first
 * value. The jobs only read REC: events are delivered by the module's dispatcher. */
static int poll_job(lua_State *L, const char *chunk, int max_ms, job_result *r, double *waited)
{
	double t0 = now_ms();
	for (;;) {
		if (job(L, chunk, r) == 0 && r->num != 0) {
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

static void *state_thread(void *arg)
{
	int id = (int)(long)arg;
	lua_State *L = luaL_newstate();
	job_result r;
	double t0, t1, waited;
	int rc;
	char chunk[1024];

	luaL_openlibs(L);
	set_globals(L, id);

	/* require: the first one starts the engine; not a Luup-mode call, timed for info. */
	t0 = now_ms();
	rc = luaL_dostring(L, "ws = require 'verawebsockets' return ws._VERSION");
	t1 = now_ms();
	if (!check(rc == 0, "state %d: require 'verawebsockets' (%.1f ms)%s%s", id, t1 - t0,
	           rc ? ": " : "", rc ? lua_tostring(L, -1) : "")) {
		lua_close(L);
		return NULL;
	}
	lua_settop(L, 0);
	if (!check(resolve_lock(), "state %d: vws_lua_lock/vws_lua_unlock resolved", id)) {
		lua_close(L);
		return NULL;
	}

	/* The plugin: creates and connects two Luup-mode connections, returns at once. */
	lock_fn(L);
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
	unlock_fn(L);

	/* IDLE: the host thread sleeps; no Lua runs in this state on this thread. */
	sleep_ms(1000);

	/* (a) delivery without the host calling anything. */
	rc = poll_job(L, "return REC.opened == 1 and #REC.messages >= 5 and #REC.errors == 1, "
	                 "string.format('opened=%d messages=%d errors=%d', REC.opened, #REC.messages, #REC.errors)",
	              4000, &r, &waited);
	check(rc, "state %d: (a) events delivered while the host was idle (%s; ready %.0f ms after the 1 s idle)",
	      id, r.res, waited);
	job(L, "return #REC.errors == 1 and REC.errors[1] ~= nil, tostring(REC.errors[1])", &r);
	check(r.num != 0, "state %d: (a) refused connection reported by event 1: \"%s\"", id, r.res);

	rc = poll_job(L, "return REC.hang_error ~= nil, tostring(REC.hang_error)", 4000, &r, &waited);
	check(rc, "state %d: (c) the silent server's connect ended later by event 1: \"%s\"", id, r.res);

	/* (b) isolation: exactly this state's payloads, in order, on this state's wso. */
	snprintf(chunk, sizeof chunk,
	         "local bad = {} "
	         "for k = 1, 5 do local want = 'state-%d-msg-' .. k "
	         "  if REC.messages[k] ~= want then bad[#bad+1] = tostring(REC.messages[k]) .. '~=' .. want end end "
	         "for _, w in ipairs(REC.wrong) do bad[#bad+1] = w end "
	         "return #bad == 0, table.concat(bad, ', ')",
	         id);
	job(L, chunk, &r);
	check(r.num != 0, "state %d: (b) saw only its own messages state-%d-msg-1..5%s%s", id, id,
	      r.res[0] ? ": " : "", r.res);

	/* (d) the handler of message 1 raised; messages 2..5 still came. */
	job(L, "return REC.raised == 1 and #REC.messages >= 5, 'raised=' .. REC.raised .. ' messages=' .. #REC.messages", &r);
	check(r.num != 0, "state %d: (d) later events delivered after a handler raised (%s)", id, r.res);

	/* The plugin's server: its Luup-mode client's hello was answered by the server's
	 * handler; ws.close(SRV) closes that client with 1001 on both sides. */
	snprintf(chunk, sizeof chunk,
	         "return REC.sc_reply == 'srv-%d:hello-%d' and REC.srv_path == '/plugin/%d', "
	         "tostring(REC.srv_path) .. ' ' .. tostring(REC.sc_reply)",
	         id, id, id);
	rc = poll_job(L, chunk, 4000, &r, &waited);
	check(rc, "state %d: the plugin's server answered its client (%s)", id, r.res);
	rc = job(L, "return ws.close(SRV)", &r);
	check(rc == 0 && r.num != 0, "state %d: (c) ws.close(server) returned true in %.2f ms", id, r.call_ms);
	rc = poll_job(L, "return REC.srv_close == 1001 and ws.state(SC) == 'closed' and SRV:port() == nil, "
	                 "tostring(REC.srv_close) .. ' ' .. ws.state(SC)",
	              4000, &r, &waited);
	check(rc, "state %d: server closed: its client closed with 1001 (%s)", id, r.res);

	/* (c) send returns at once. */
	snprintf(chunk, sizeof chunk, "return ws.send(CONN, 'state-%d-late')", id);
	rc = job(L, chunk, &r);
	check(rc == 0 && r.num != 0,
	      "state %d: (c) ws.send returned %s in %.2f ms (lock wait %.2f ms)", id,
	      rc ? r.res : (r.num != 0 ? "true" : "false"), r.call_ms, r.wait_ms);
	snprintf(chunk, sizeof chunk, "return REC.messages[6] == 'state-%d-late', tostring(REC.messages[6])", id);
	rc = poll_job(L, chunk, 3000, &r, &waited);
	check(rc, "state %d: its late message echoed (%s, %.0f ms)", id, r.res, waited);

	/* close: event 4 with a clean 1000 close. */
	rc = job(L, "return ws.close(CONN)", &r);
	check(rc == 0 && r.num != 0, "state %d: (c) ws.close returned true in %.2f ms", id, r.call_ms);
	rc = poll_job(L, "local c = REC.closed[1] return c ~= nil and c.wso == CONN, "
	                 "c and string.format('clean=%s code=%s', tostring(c.clean), tostring(c.code)) or 'none'",
	              4000, &r, &waited);
	check(rc && strstr(r.res, "clean=true code=1000") != NULL, "state %d: close event (%s)", id, r.res);

	/* (e) open a new connection and lua_close the state while it is open. */
	rc = job(L, "OPEN2 = false "
	            "C2 = ws.create{url = ECHO_URL, standalone = false, event_handlers = "
	            "  {open = function() OPEN2 = true end}} "
	            "return ws.connect(C2)",
	         &r);
	check(rc == 0 && r.num != 0, "state %d: (c) create+connect returned true in %.2f ms%s%s",
	      id, r.call_ms, rc ? ": " : "", rc ? r.res : "");
	rc = poll_job(L, "return OPEN2 and ws.state(C2) == 'open', ws.state(C2)", 4000, &r, &waited);
	check(rc, "state %d: second connection open (%s)", id, r.res);
	job(L, "for i = 1, 20 do ws.send(C2, string.rep('z', 1000)) end return true", &r);
	t0 = now_ms();
	lua_close(L); /* no lock: the module's __gc stops the dispatcher and frees the connections */
	t1 = now_ms();
	check(1, "state %d: (e) lua_close with an open connection and queued sends returned (%.1f ms)", id, t1 - t0);
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
	int n = 4, i;
	const char *log = getenv("HOST_STDERR_LOG"), *s;
	char cpath[4200];

	if (argc < 4) {
		fprintf(stderr, "usage: %s MODDIR ECHO_URL REFUSED_URL [NSTATES]\n", argv[0]);
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
	snprintf(modpath, sizeof modpath, "%s/verawebsockets.so", moddir);
	snprintf(cpath, sizeof cpath, "%s/?.so", moddir);
	setenv("LUA_CPATH", cpath, 1);
	if (log && !freopen(log, "w", stderr)) {
		perror(log);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	diag("host: %d lua_States on %d pthreads, module %s, echo %s", n, n, modpath, echo_url);

	for (i = 0; i < n; i++)
		if (pthread_create(&th[i], NULL, state_thread, (void *)(long)(i + 1)) != 0) {
			check(0, "pthread_create %d", i + 1);
			n = i;
			break;
		}
	for (i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	sleep_ms(300); /* give anything the closed states left behind a chance to misbehave */
	fresh_state();

	if (log) {
		/* Every state's raising handler must have been reported on stderr. */
		FILE *f;
		char line[1024];
		int errs = 0;
		fflush(stderr);
		if ((f = fopen(log, "r"))) {
			while (fgets(line, sizeof line, f)) {
				if (strstr(line, "verawebsockets: error in handler for event 8") &&
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
