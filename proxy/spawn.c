/*
 * spawn.c - the helper process's lifecycle: the process-wide state, where the
 * helper is (next to the .so, or VWS_HELPER), starting one (socket, spawn,
 * reader thread, first frames), references to it, fork, and its death
 * (calls failed, connections reported closed, the process reaped).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proxy.h"

extern char **environ;

struct px_state px = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.sink_mu = PTHREAD_MUTEX_INITIALIZER,
};

/* revive_mu is recursive: vws_conn_set_option holds it around a call that may revive. */
static void revive_mu_init(void)
{
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&px.revive_mu, &a);
	pthread_mutexattr_destroy(&a);
}

static void atfork_child(void)
{
	struct px_ctx *c;
	/* The child has no reader thread and no right to the parent's helper:
	 * forget it (its connections become dead handles) and start over. */
	pthread_mutex_init(&px.mu, NULL);
	revive_mu_init();
	if (px.h) {
		if (px.h->fd >= 0)
			close(px.h->fd);
		px.h = NULL; /* leaked on purpose: other threads of the parent referenced it */
	}
	px.reqs = NULL;
	for (c = px.ctxs; c; c = c->next) {
		struct px_conn *cn;
		for (cn = c->conns; cn; cn = cn->cnext)
			px_share_drop(cn); /* the parent's sockets: not the child's to write to */
		px_cond_init(&c->cond);
		c->waiters = 0;
		c->refs = 1;
		c->quiet = 0; /* a parent's thread may have been reading (direct.c) */
	}
}

__attribute__((constructor)) static void px_init(void)
{
	Dl_info di;
	char *path = NULL, *slash;
	if (dladdr((void *)&vws_abi_version, &di) && di.dli_fname)
		path = realpath(di.dli_fname, NULL);
	if (path && (slash = strrchr(path, '/'))) {
		*slash = 0;
		px.helper_path = malloc(strlen(path) + sizeof "/vws-helper");
		if (px.helper_path)
			sprintf(px.helper_path, "%s/vws-helper", path);
	}
	free(path);
	revive_mu_init();
	pthread_atfork(NULL, NULL, atfork_child);
}

/* Keeps the .so mapped for good once it has a thread running in it (Lua's
 * lua_close dlcloses C modules). */
static void pin_library(void)
{
	static int pinned;
	Dl_info di;
	if (pinned)
		return;
	pinned = 1;
	if (dladdr((void *)&vws_abi_version, &di) && di.dli_fname)
		dlopen(di.dli_fname, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE);
}


/* Sends a call frame with one int value and no reply; for the first frames
 * on a fresh socket, which never block. */
static void send_first(struct px_helper *h, int op, int64_t v)
{
	uint8_t f[4 + WIRE_HEADER_LEN + 9];
	wire_put32(f, WIRE_HEADER_LEN + 9);
	f[4] = WIRE_KIND_CALL;
	f[5] = (uint8_t)op;
	wire_put32(f + 6, 0);
	f[10] = WIRE_TAG_INT;
	wire_put64(f + 11, (uint64_t)v);
	if (send(h->fd, f, sizeof f, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) { /* the reader will see why */ }
}

/* The tag base of helper generation gen's accepted connections: 2^32 tags per
 * generation above WIRE_ACCEPTED_TAG_BASE, all below 2^53 (the Lua binding
 * keeps handles in doubles); it wraps after about two million helpers. */
static uint64_t accept_base(unsigned gen)
{
	uint64_t slots = ((1ull << 53) - WIRE_ACCEPTED_TAG_BASE) >> 32;
	return WIRE_ACCEPTED_TAG_BASE + (((uint64_t)gen - 1) % slots << 32);
}

/* Starts a helper; px.mu held. */
static struct px_helper *helper_start(char *err, size_t errlen)
{
	const char *path = getenv("VWS_HELPER"), *wrapper = getenv("VWS_HELPER_WRAPPER");
	char *wcopy = NULL, *argv[34], *tok, *save;
	int argc = 0, sv[2], childfd, rc;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t sa;
	sigset_t none, all, old;
	pthread_attr_t ta;
	pthread_t tid;
	struct px_helper *h, g;
	int gatefd = -1;
	pid_t pid;

	if (!path || !*path)
		path = px.helper_path;
	if (!path) {
		px_seterr(err, errlen, "engine helper not found (cannot locate verawebsockets.so; set VWS_HELPER)");
		return NULL;
	}
	if (wrapper && *wrapper) {
		wcopy = strdup(wrapper);
		for (tok = wcopy ? strtok_r(wcopy, " \t", &save) : NULL; tok && argc < 32; tok = strtok_r(NULL, " \t", &save))
			argv[argc++] = tok;
	}
	argv[argc++] = (char *)path;
	argv[argc] = NULL;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		px_seterr(err, errlen, "engine helper: socketpair: %s", strerror(errno));
		free(wcopy);
		return NULL;
	}
	/* The child's end must not already be fd 3 (dup2 onto itself would keep CLOEXEC). */
	childfd = fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
	close(sv[1]);
	if (childfd < 0) {
		px_seterr(err, errlen, "engine helper: dup: %s", strerror(errno));
		close(sv[0]);
		free(wcopy);
		return NULL;
	}
	/* The gate memory of shared writes (share.c) becomes the child's fd 4. */
	px_gates_open(&g);
	if (g.gates_fd >= 0 && (gatefd = fcntl(g.gates_fd, F_DUPFD_CLOEXEC, 10)) < 0)
		px_gates_close(&g);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, childfd, 3);
	if (gatefd >= 0)
		posix_spawn_file_actions_adddup2(&fa, gatefd, WIRE_GATE_FD);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawnattr_init(&sa);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&sa, &none);
	posix_spawnattr_setsigdefault(&sa, &all);
	posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawnp(&pid, argv[0], &fa, &sa, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&sa);
	close(childfd);
	if (gatefd >= 0)
		close(gatefd);
	if (g.gates_fd >= 0) { /* the mapping stays */
		close(g.gates_fd);
		g.gates_fd = -1;
	}
	if (rc != 0) {
		px_seterr(err, errlen, "cannot start engine helper %s: %s", argv[0], strerror(rc));
		px_gates_close(&g);
		close(sv[0]);
		free(wcopy);
		return NULL;
	}
	free(wcopy);

	h = calloc(1, sizeof *h);
	if (!h) {
		px_gates_close(&g);
		close(sv[0]);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		px_seterr(err, errlen, "out of memory");
		return NULL;
	}
	h->refs = 2; /* px.h + the reader thread */
	h->gates = g.gates;
	h->gates_fd = -1;
	h->gen = ++px.gen;
	h->fd = sv[0];
	h->pid = pid;
	h->started_ms = px_now_ms();
	h->heard_ms = (uint32_t)h->started_ms;
	pthread_mutex_init(&h->wmu, NULL);
	px_cond_init(&h->rcv);
	px_pipe_init(&h->handp);

	/* The reader runs with every signal blocked: the host's handlers stay on its threads. */
	pin_library();
	pthread_attr_init(&ta);
	pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&ta, 256 << 10);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&tid, &ta, px_reader_main, h);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&ta);
	if (rc != 0) {
		close(sv[0]);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		pthread_mutex_destroy(&h->wmu);
		pthread_cond_destroy(&h->rcv);
		px_gates_close(h);
		free(h);
		px_seterr(err, errlen, "engine helper: pthread_create: %s", strerror(rc));
		return NULL;
	}
	px.h = h;
	px_logf(8, "verawebsockets: started engine helper %s (pid %d)", path, (int)pid);
	/* The first frames, before any call: the tags of accepted connections
	 * must not repeat those of an earlier helper's (handles are never reused). */
	send_first(h, WIRE_OP_ACCEPT_BASE, (int64_t)accept_base(h->gen));
	if (px.log_mask) /* replay */
		send_first(h, WIRE_OP_SET_LOG_LEVEL, px.log_mask);
	if (px_log_sink_set())
		send_first(h, WIRE_OP_SET_LOG_SINK, 1);
	return h;
}

struct px_helper *px_helper_get(int start, char *err, size_t errlen)
{
	struct px_helper *h = px.h;
	if (!h && start)
		h = helper_start(err, errlen);
	else if (!h)
		px_seterr(err, errlen, "engine helper not running");
	if (h)
		h->refs++;
	return h;
}

void px_helper_put(struct px_helper *h)
{
	if (h && --h->refs == 0) {
		px_gates_close(h);
		px_pipe_close(&h->handp);
		pthread_cond_destroy(&h->rcv);
		pthread_mutex_destroy(&h->wmu);
		free(h);
	}
}

/* The helper is gone: fail its calls, report its connections closed. */
void px_helper_died(struct px_helper *h, const char *why)
{
	struct px_ctx *c;
	struct px_conn *cn;
	int st = 0;
	pid_t w = 0;
	int i;

	pthread_mutex_lock(&px.mu);
	if (px.h == h) {
		px.h = NULL;
		px_helper_put(h);
	}
	px_reqs_fail(h->gen);
	for (c = px.ctxs; c; c = c->next)
		for (cn = c->conns; cn; cn = cn->cnext) {
			vws_event ev;
			if (cn->gen != h->gen)
				continue;
			px_share_drop(cn);
			memset(&ev, 0, sizeof ev);
			ev.conn = cn->id;
			if (cn->state == VWS_STATE_CONNECTING) {
				ev.type = VWS_EV_CONNECTION_ERROR;
				ev.attempt = cn->attempt + 1;
			} else if (cn->state == VWS_STATE_OPEN || cn->state == VWS_STATE_CLOSING) {
				ev.type = VWS_EV_CLOSED;
				ev.code = 1006;
			} else {
				continue;
			}
			ev.data = strdup("engine helper died");
			ev.len = ev.data ? strlen(ev.data) : 0;
			cn->state = VWS_STATE_CLOSED;
			px_push(c, &ev);
		}
	pthread_mutex_unlock(&px.mu);

	pthread_mutex_lock(&h->wmu);
	close(h->fd);
	h->fd = -1;
	pthread_mutex_unlock(&h->wmu);

	/* Reap it (unless the host reaps its children itself). */
	for (i = 0; i < 100; i++) {
		w = waitpid(h->pid, &st, WNOHANG);
		if (w != 0)
			break;
		if (i == 20)
			kill(h->pid, SIGKILL);
		usleep(10000);
	}
	if (w == h->pid && WIFSIGNALED(st))
		px_logf(1, "verawebsockets: engine helper (pid %d) died: %s (signal %d)", (int)h->pid, why, WTERMSIG(st));
	else if (w == h->pid)
		px_logf(1, "verawebsockets: engine helper (pid %d) died: %s (exit status %d)", (int)h->pid, why, WEXITSTATUS(st));
	else
		px_logf(1, "verawebsockets: engine helper (pid %d) died: %s", (int)h->pid, why);
}
