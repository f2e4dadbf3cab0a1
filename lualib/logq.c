#define _GNU_SOURCE
/*
 * logq.c - the engine's log lines in a Luup host's log.
 *
 * With the first Luup group (luup.c) the module sets the engine's log sink
 * (vws_set_log_sink): every line ws.set_log_level enables, written by any
 * thread of the engine (or, out of process, by the helper), is copied into
 * a bounded queue here, as well as going to stderr. No Lua runs on those
 * threads: the lines wait until the host runs a plugin's request handler,
 * which writes them with that plugin's luup.log before it delivers events.
 * While lines wait, a pipe is readable, and the waker of each Luup state asks
 * its host for a wake (the same request as for events, with the same gap and
 * backoff), so a line with no event after it still reaches the log.
 *
 * The queue is process-wide, like the engine's log: with several states (a
 * host with one lua_State per plugin) the first handler to run writes them.
 * A burst over VL_LOGQ_MAX lines keeps the first ones and counts the rest.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vws_lua.h"

#define VL_LOGQ_MAX  128 /* lines waiting */
#define VL_LOGQ_LINE 1000 /* bytes kept of a line */

static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	int   level;
	char *msg;
} q[VL_LOGQ_MAX];
static int q_head, q_len;
static unsigned q_dropped;
static int q_pipe[2] = {-1, -1}; /* readable while lines wait */
static int q_installed;

/* The sink: any thread. Copies the line; no Lua, no vws_ call. */
static void sink(void *ud, int level, const char *msg)
{
	char *copy = strndup(msg, VL_LOGQ_LINE);
	(void)ud;
	pthread_mutex_lock(&q_mu);
	if (!copy || q_len == VL_LOGQ_MAX) {
		q_dropped++;
		free(copy);
	} else {
		int i = (q_head + q_len) % VL_LOGQ_MAX;
		q[i].level = level;
		q[i].msg = copy;
		if (q_len++ == 0 && q_dropped == 0) {
			char c = 1;
			ssize_t n = write(q_pipe[1], &c, 1);
			(void)n;
		}
	}
	pthread_mutex_unlock(&q_mu);
}

int vl_logq_install(void)
{
	int rc = 0;
	pthread_mutex_lock(&q_mu);
	if (!q_installed) {
		if (pipe2(q_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
			rc = -1;
		} else {
			q_installed = 1;
			vws_set_log_sink(sink, NULL); /* never removed: the .so is never unloaded */
		}
	}
	pthread_mutex_unlock(&q_mu);
	return rc;
}

int vl_logq_fd(void)
{
	return __atomic_load_n(&q_installed, __ATOMIC_ACQUIRE) ? q_pipe[0] : -1;
}

int vl_logq_pending(void)
{
	int n;
	pthread_mutex_lock(&q_mu);
	n = q_len + (q_dropped > 0);
	pthread_mutex_unlock(&q_mu);
	return n;
}

/* Takes the oldest line (or the count of dropped ones once the queue is empty)
 * into *msg (caller frees) and its Luup level. Returns 0 when none is left, and
 * then empties the pipe. */
static int take(char **msg, int *luup_level)
{
	int got = 1;
	pthread_mutex_lock(&q_mu);
	if (q_len > 0) {
		int lvl = q[q_head].level;
		*msg = q[q_head].msg;
		*luup_level = lvl == 1 ? 1 : lvl == 2 ? 2 : 50; /* Luup: 1 critical, 2 warning, 50 info */
		q_head = (q_head + 1) % VL_LOGQ_MAX;
		q_len--;
	} else if (q_dropped > 0) {
		char buf[96];
		snprintf(buf, sizeof buf, "%u more log lines were dropped (over %d waiting)", q_dropped, VL_LOGQ_MAX);
		*msg = strdup(buf);
		*luup_level = 2;
		q_dropped = 0;
	} else {
		got = 0;
	}
	if (q_len == 0 && q_dropped == 0) {
		char buf[64];
		while (read(q_pipe[0], buf, sizeof buf) > 0)
			;
	}
	pthread_mutex_unlock(&q_mu);
	return got;
}

/* Writes the waiting lines with luup.log of the environment at fenv (a Luup
 * request handler's plugin), "verawebsockets: " before each that lacks it. At most the
 * lines waiting when it starts, so a line logged meanwhile waits for the next. */
void vl_logq_drain(lua_State *L, int fenv)
{
	int n = VL_LOGQ_MAX + 1, level;
	char *msg;
	while (n-- > 0 && take(&msg, &level)) {
		if (msg) {
			lua_pushfstring(L, "%s%s", strncmp(msg, "verawebsockets", 14) == 0 ? "" : "verawebsockets: ", msg);
			free(msg);
			vl_luup_log(L, fenv, lua_tostring(L, -1), level);
			lua_pop(L, 1);
		}
	}
}
