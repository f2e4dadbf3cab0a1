#define _GNU_SOURCE
/*
 * luup.c - delivery in Luup hosts (LuaUPnP, openLuup).
 *
 * Each plugin (each environment that makes Luup-mode objects; openLuup keeps
 * several in one lua_State) gets a group: a context of its own and a request
 * handler, registered through the host's own luup.register_handler as the
 * function verawebsockets_wake defined in the plugin's environment. When the
 * group has pending events, the waker thread asks the host to run it:
 *
 *     GET /data_request?id=lr_vws_<N>&seq=<k> HTTP/1.1      (to 127.0.0.1:<port>)
 *
 * written as one complete request on a kept-alive connection. The host runs
 * the handler on its own thread, in the plugin's context; it delivers every
 * pending event of the group in order and returns. One wake in flight per
 * group, at least VL_WAKE_GAP_MS apart; a wake that fails (no connection, no
 * answer within VL_WAKE_TIMEOUT_MS, not 200, or the handler did not run while
 * events wait) backs off exponentially up to VL_WAKE_BACKOFF_MAX_MS and is
 * logged. Nothing polls while idle: the waker waits on the group's event fd.
 * A stray request to the handler only delivers what is pending.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "vws_lua.h"

#define VL_WAKE_FN             "verawebsockets_wake"
#define VL_WAKE_GAP_MS         50
#define VL_WAKE_TIMEOUT_MS     30000
#define VL_WAKE_BACKOFF_MIN_MS 100
#define VL_WAKE_BACKOFF_MAX_MS 30000

static unsigned group_counter; /* request names are unique in the process */

int vl_luup_default_port(void)
{
	const char *s = getenv("VWS_LUUP_PORT");
	long p = s && *s ? strtol(s, NULL, 10) : 0;
	return p > 0 && p < 65536 ? (int)p : 3480;
}

/* ---- The plugin's side: groups and the request handler -------------------------- */

/* luup.log(msg, level) of the environment at fenv; errors are swallowed. */
void vl_luup_log(lua_State *L, int fenv, const char *msg, int level)
{
	int top = lua_gettop(L);
	lua_getfield(L, fenv, "luup");
	if (lua_istable(L, -1)) {
		lua_getfield(L, -1, "log");
		if (lua_isfunction(L, -1)) {
			lua_pushstring(L, msg);
			lua_pushinteger(L, level);
			lua_pcall(L, 2, 0, 0);
		}
	}
	lua_settop(L, top);
}

typedef struct wake_log_args {
	vl_group *g;
	char      msg[300];
} wake_log_args;

static int wake_log_cf(lua_State *L)
{
	wake_log_args *a = lua_touserdata(L, 1);
	lua_rawgeti(L, LUA_REGISTRYINDEX, a->g->env_ref);
	if (a->msg[0])
		vl_luup_log(L, lua_gettop(L), a->msg, 2);
	vl_logq_drain(L, lua_gettop(L)); /* the engine's lines (logq.c) */
	return 0;
}

/* verawebsockets_wake(lul_request, lul_parameters, lul_outputformat): the host
 * runs it; it delivers the group's pending events. Upvalues: the State
 * userdata, the group (light userdata). */
static int wake_handler(lua_State *L)
{
	vl_state *st = vl_upstate(L);
	vl_group *g = lua_touserdata(L, lua_upvalueindex(2));
	unsigned fails;
	int n;

	lua_settop(L, 0);
	if (!st || !g) {
		lua_pushliteral(L, "verawebsockets: closed");
		lua_pushliteral(L, "text/plain");
		return 2;
	}
	vl_lock_acquire(&st->lock);
	__atomic_add_fetch(&g->runs, 1, __ATOMIC_ACQ_REL);
	fails = __atomic_exchange_n(&g->fails, 0, __ATOMIC_ACQ_REL);
	if (fails > 0 || vl_logq_pending() > 0) {
		wake_log_args a;
		a.g = g;
		a.msg[0] = 0;
		if (fails > 0) {
			pthread_mutex_lock(&st->waker_mu);
			snprintf(a.msg, sizeof a.msg,
			         "verawebsockets: %u wake request(s) to the Luup port failed before this one; last: %s", fails,
			         g->last_error);
			pthread_mutex_unlock(&st->waker_mu);
		}
		if (lua_cpcall(L, wake_log_cf, &a) != 0)
			lua_pop(L, 1);
	}
	n = vl_deliver_pending(st, L, g->ctx, -1);
	vl_lock_release(&st->lock);
	vl_waker_kick(st);
	lua_pushfstring(L, "ok %d", n);
	lua_pushliteral(L, "text/plain");
	return 2;
}

typedef struct register_args {
	vl_group *g;
	int       su_ref; /* the State userdata */
} register_args;

/* Under lua_cpcall: env.verawebsockets_wake = handler; luup.register_handler(...). */
static int register_cf(lua_State *L)
{
	register_args *a = lua_touserdata(L, 1);
	lua_rawgeti(L, LUA_REGISTRYINDEX, a->g->env_ref); /* 2 */
	lua_rawgeti(L, LUA_REGISTRYINDEX, a->su_ref);
	lua_pushlightuserdata(L, a->g);
	lua_pushcclosure(L, wake_handler, 2);
	lua_setfield(L, 2, VL_WAKE_FN);
	lua_getfield(L, 2, "luup");
	lua_getfield(L, -1, "register_handler");
	lua_pushliteral(L, VL_WAKE_FN);
	lua_pushstring(L, a->g->name);
	lua_call(L, 2, 0);
	return 0;
}

static int same_env_cf(lua_State *L)
{
	int *args = lua_touserdata(L, 1); /* {result, ref a, ref b} */
	lua_rawgeti(L, LUA_REGISTRYINDEX, args[1]);
	lua_rawgeti(L, LUA_REGISTRYINDEX, args[2]);
	args[0] = lua_rawequal(L, -1, -2);
	return 0;
}

/* The group of the environment `fenv_ref` refers to, or NULL. */
static vl_group *find_group(vl_state *st, lua_State *L, int fenv_ref)
{
	vl_group *g;
	for (g = st->groups; g; g = g->next) {
		int args[3] = {0, g->env_ref, fenv_ref};
		if (lua_cpcall(L, same_env_cf, args) != 0)
			lua_pop(L, 1);
		if (args[0])
			return g;
	}
	return NULL;
}

vl_group *vl_group_for_env(vl_state *st, lua_State *L, int env, char *err, size_t errlen)
{
	vl_group *g;
	register_args a;
	int fenv_ref;

	lua_getfield(L, env, "fenv");
	fenv_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	g = find_group(st, L, fenv_ref);
	if (g) {
		luaL_unref(L, LUA_REGISTRYINDEX, fenv_ref);
		return g;
	}
	g = calloc(1, sizeof *g);
	if (!g) {
		luaL_unref(L, LUA_REGISTRYINDEX, fenv_ref);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	g->env_ref = fenv_ref;
	g->sock = -1;
	snprintf(g->name, sizeof g->name, "vws_%u", __atomic_add_fetch(&group_counter, 1, __ATOMIC_ACQ_REL));
	if (vws_ctx_new(&g->ctx, err, errlen) != VWS_OK) {
		luaL_unref(L, LUA_REGISTRYINDEX, fenv_ref);
		free(g);
		return NULL;
	}
	g->fd = vws_ctx_event_fd(g->ctx);
	a.g = g;
	lua_pushvalue(L, lua_upvalueindex(1)); /* the State userdata (ws.create, ws.listen) */
	a.su_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	if (lua_cpcall(L, register_cf, &a) != 0) {
		snprintf(err, errlen, "cannot register the Luup request handler: %s",
		         lua_isstring(L, -1) ? lua_tostring(L, -1) : "error");
		lua_pop(L, 1);
		luaL_unref(L, LUA_REGISTRYINDEX, a.su_ref);
		vws_ctx_free(g->ctx);
		luaL_unref(L, LUA_REGISTRYINDEX, fenv_ref);
		free(g);
		return NULL;
	}
	luaL_unref(L, LUA_REGISTRYINDEX, a.su_ref);
	if (vl_logq_install() != 0)
		fprintf(stderr, "verawebsockets: no pipe for the log queue: engine log lines go to stderr only\n");
	pthread_mutex_lock(&st->waker_mu);
	g->next = st->groups;
	st->groups = g;
	pthread_mutex_unlock(&st->waker_mu);
	vl_waker_kick(st); /* the waker watches the new group's queue */
	return g;
}

vl_group *vl_group_of_caller(vl_state *st, lua_State *L)
{
	vl_group *g;
	int ref;
	if (!st->groups)
		return NULL;
	vl_push_caller_env(L);
	ref = luaL_ref(L, LUA_REGISTRYINDEX);
	g = find_group(st, L, ref);
	luaL_unref(L, LUA_REGISTRYINDEX, ref);
	return g;
}

/* After the waker stopped: frees the groups' contexts (their events with them). */
void vl_luup_close_groups(vl_state *st)
{
	vl_group *g, *next;
	pthread_mutex_lock(&st->waker_mu);
	g = st->groups;
	st->groups = NULL;
	pthread_mutex_unlock(&st->waker_mu);
	for (; g; g = next) {
		next = g->next;
		if (g->sock >= 0)
			close(g->sock);
		vws_ctx_free(g->ctx);
		free(g); /* env_ref goes with the registry when the state closes */
	}
}

/* ---- The waker's side: one HTTP request per wake ----------------------------------- */

static void reset_response(vl_group *g);

static void wake_failed(vl_state *st, vl_group *g, int64_t now, const char *why)
{
	if (g->sock >= 0) {
		close(g->sock);
		g->sock = -1;
	}
	g->in_flight = 0;
	reset_response(g);
	g->backoff_ms = g->backoff_ms ? g->backoff_ms * 2 : VL_WAKE_BACKOFF_MIN_MS;
	if (g->backoff_ms > VL_WAKE_BACKOFF_MAX_MS)
		g->backoff_ms = VL_WAKE_BACKOFF_MAX_MS;
	g->next_at = now + g->backoff_ms;
	pthread_mutex_lock(&st->waker_mu);
	snprintf(g->last_error, sizeof g->last_error, "%s", why);
	pthread_mutex_unlock(&st->waker_mu);
	__atomic_add_fetch(&g->fails, 1, __ATOMIC_ACQ_REL);
	fprintf(stderr, "verawebsockets: Luup wake lr_%s to 127.0.0.1:%d failed: %s; next try in %d ms\n", g->name,
	        __atomic_load_n(&st->luup_port, __ATOMIC_ACQUIRE), why, g->backoff_ms);
	fflush(stderr);
}

static int connect_host(int port)
{
	struct sockaddr_in a;
	struct pollfd p;
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), err = 0;
	socklen_t len = sizeof err;
	if (s < 0)
		return -1;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
		if (errno != EINPROGRESS) {
			close(s);
			return -1;
		}
		p.fd = s;
		p.events = POLLOUT;
		if (poll(&p, 1, 2000) != 1 || getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
			close(s);
			errno = err ? err : ETIMEDOUT;
			return -1;
		}
	}
	return s;
}

static void send_wake(vl_state *st, vl_group *g, int64_t now)
{
	char req[256];
	int port = __atomic_load_n(&st->luup_port, __ATOMIC_ACQUIRE), n, tries;
	n = snprintf(req, sizeof req,
	             "GET /data_request?id=lr_%s&seq=%u HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: verawebsockets\r\n\r\n",
	             g->name, ++g->seq, port);
	/* A kept-alive connection the host has closed fails the first write: try once more on a new one. */
	/* before the request leaves: the host may run the handler before send returns */
	g->runs_at_send = __atomic_load_n(&g->runs, __ATOMIC_ACQUIRE);
	for (tries = 0; tries < 2; tries++) {
		if (g->sock < 0 && (g->sock = connect_host(port)) < 0) {
			char why[96];
			snprintf(why, sizeof why, "connect: %s", strerror(errno));
			wake_failed(st, g, now, why);
			return;
		}
		if (send(g->sock, req, (size_t)n, MSG_NOSIGNAL) == n)
			break;
		close(g->sock);
		g->sock = -1;
	}
	if (tries == 2) {
		wake_failed(st, g, now, "cannot send the request");
		return;
	}
	g->in_flight = 1;
	g->log_wake = 0;
	reset_response(g);
	g->sent_at = now;
}

/* Takes in n bytes of the answer. Returns 1 when it is complete, 0 when more is
 * needed, -1 when it is not HTTP. Only the head is kept; body bytes are counted
 * (and the last few kept, for the end of a chunked body). */
static int take_response(vl_group *g, const char *buf, size_t n, int eof)
{
	size_t i;
	if (!g->hlen) {
		char *end, *line, *hdr_end;
		size_t room = sizeof g->rbuf - 1 - g->rlen;
		size_t k = n < room ? n : room;
		memcpy(g->rbuf + g->rlen, buf, k);
		g->rlen += k;
		g->rbuf[g->rlen] = 0;
		hdr_end = strstr(g->rbuf, "\r\n\r\n");
		if (!hdr_end)
			return g->rlen >= sizeof g->rbuf - 1 || eof ? -1 : 0;
		if (strncmp(g->rbuf, "HTTP/1.", 7) != 0 || g->rlen < 12)
			return -1;
		g->hlen = (size_t)(hdr_end - g->rbuf) + 4;
		g->status = atoi(g->rbuf + 9);
		g->clen = -1;
		g->chunked = 0;
		g->keep = g->rbuf[7] != '0';
		for (line = strstr(g->rbuf, "\r\n") + 2; line < hdr_end; line = end + 2) {
			end = strstr(line, "\r\n");
			if (strncasecmp(line, "Content-Length:", 15) == 0)
				g->clen = strtol(line + 15, NULL, 10);
			else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0 && strstr(line, "chunked"))
				g->chunked = 1;
			else if (strncasecmp(line, "Connection:", 11) == 0 && strcasestr(line, "close"))
				g->keep = 0;
		}
		/* the body bytes that came with the head */
		buf += n - (g->rlen - g->hlen) - (n - k);
		n = g->rlen - g->hlen + (n - k);
	}
	for (i = 0; i < n; i++) {
		memmove(g->tail, g->tail + 1, sizeof g->tail - 1);
		g->tail[sizeof g->tail - 1] = buf[i];
	}
	g->body += n;
	if (g->clen >= 0)
		return g->body >= (size_t)g->clen ? 1 : (eof ? -1 : 0);
	if (g->chunked) {
		if (g->body >= 5 && memcmp(g->tail + sizeof g->tail - 5, "0\r\n\r\n", 5) == 0)
			return 1;
		return eof ? -1 : 0;
	}
	g->keep = 0; /* the body ends with the connection */
	return eof ? 1 : 0;
}

static void reset_response(vl_group *g)
{
	g->rlen = g->hlen = g->body = 0;
	memset(g->tail, 0, sizeof g->tail);
}

static void read_response(vl_state *st, vl_group *g, int64_t now)
{
	char buf[4096];
	int r = 0;
	for (;;) {
		ssize_t n = recv(g->sock, buf, sizeof buf, MSG_DONTWAIT);
		if (n > 0) {
			r = take_response(g, buf, (size_t)n, 0);
			if (r != 0)
				break;
			continue;
		}
		if (n == 0) {
			r = take_response(g, buf, 0, 1);
			if (r == 0)
				r = -1;
		} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			wake_failed(st, g, now, "connection reset while waiting for the answer");
			return;
		}
		break;
	}
	if (r == 0)
		return;
	if (r < 0) {
		wake_failed(st, g, now, g->hlen ? "the answer was cut short" : "no HTTP answer");
		return;
	}
	g->in_flight = 0;
	if (!g->keep) {
		close(g->sock);
		g->sock = -1;
	}
	reset_response(g);
	if (g->status != 200) {
		char why[64];
		snprintf(why, sizeof why, "HTTP status %d", g->status);
		wake_failed(st, g, now, why);
		return;
	}
	if (__atomic_load_n(&g->runs, __ATOMIC_ACQUIRE) == g->runs_at_send &&
	    (vws_ctx_pending(g->ctx) > 0 || (g->log_wake && vl_logq_pending() > 0))) {
		wake_failed(st, g, now, "the host answered 200 but did not run " VL_WAKE_FN);
		return;
	}
	g->backoff_ms = 0;
	g->next_at = now + VL_WAKE_GAP_MS;
}

void vl_luup_poll_prepare(vl_state *st, vl_group *g, struct pollfd *p, int64_t now, int64_t *timeout)
{
	int64_t t = -1;
	(void)st;
	p->fd = -1;
	p->events = POLLIN;
	p->revents = 0;
	if (g->in_flight) {
		p->fd = g->sock;
		t = g->sent_at + VL_WAKE_TIMEOUT_MS - now;
	} else if (now < g->next_at) {
		t = g->next_at - now;
	} else if (g->fd >= 0) {
		p->fd = g->fd;
	} else {
		t = 20; /* no event fd: look in small steps */
	}
	if (t >= 0) {
		if (t < 1)
			t = 1;
		if (*timeout < 0 || t < *timeout)
			*timeout = t;
	}
}

void vl_luup_poll_done(vl_state *st, vl_group *g, const struct pollfd *p, int64_t now)
{
	if (g->in_flight) {
		if (p->revents)
			read_response(st, g, now);
		else if (now - g->sent_at >= VL_WAKE_TIMEOUT_MS)
			wake_failed(st, g, now, "no answer in time");
		return;
	}
	if (now < g->next_at)
		return;
	if (vws_ctx_pending(g->ctx) > 0)
		send_wake(st, g, now);
}

/* The engine's log lines (logq.c) go out through the state's oldest group: it
 * watches the queue's pipe whenever it could send a wake. */
int vl_luup_log_prepare(vl_group *g, struct pollfd *p, int64_t now)
{
	int fd = vl_logq_fd();
	if (fd < 0 || g->in_flight || now < g->next_at)
		return 0;
	p->fd = fd;
	p->events = POLLIN;
	p->revents = 0;
	return 1;
}

void vl_luup_log_done(vl_state *st, vl_group *g, const struct pollfd *p, int64_t now)
{
	if (!(p->revents & POLLIN) || g->in_flight || now < g->next_at || vl_logq_pending() == 0)
		return;
	send_wake(st, g, now);
	if (g->in_flight)
		g->log_wake = 1;
}
