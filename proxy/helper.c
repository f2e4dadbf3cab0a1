/*
 * helper.c - the engine helper process (cmd/vws-helper): start, requests over
 * the socket (internal/wire framing), the reader thread, death handling.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proxy.h"

extern char **environ;

struct px_state px = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
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

/* A call waiting for its reply. */
struct px_req {
	struct px_req *next;
	uint32_t id;
	unsigned gen;
	int done;
	int dead;                 /* the helper died before answering */
	pthread_cond_t cond;
	struct px_reply *reply;
};

/* A call fails with VWS_EENGINE when the helper has been silent this long:
 * no reply, and no byte of any frame (events stream ahead of replies). */
#define DEFAULT_TIMEOUT_MS 2000
#define STARTUP_GRACE_MS   10000 /* a new helper (maybe under qemu) gets this long to answer */

/* ---- small things ---------------------------------------------------------- */

void px_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int64_t px_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void deadline_ts(int64_t deadline_ms, struct timespec *ts)
{
	ts->tv_sec = deadline_ms / 1000;
	ts->tv_nsec = (long)(deadline_ms % 1000) * 1000000;
}

static void cond_init(pthread_cond_t *c)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
}

static int env_int(const char *name, int def)
{
	const char *s = getenv(name);
	char *end;
	long v;
	if (!s || !*s)
		return def;
	v = strtol(s, &end, 10);
	return (*end || v <= 0 || v > INT_MAX) ? def : (int)v;
}

static const char *const level_names[] = {"ERR", "WARN", "NOTICE", "INFO", "DEBUG", "PARSER",
	"HEADER", "EXT", "CLIENT", "LATENCY", "USER"};

/* Writes one line as internal/lwslog does, if level is enabled. */
static void log_line(int level, const char *msg)
{
	char stamp[64], *line;
	struct timespec ts;
	struct tm tm;
	const char *name = "LOG";
	size_t n;
	int i;
	if (!(__atomic_load_n(&px.log_mask, __ATOMIC_RELAXED) & level))
		return;
	for (i = 0; i < 11; i++)
		if (level & (1 << i)) {
			name = level_names[i];
			break;
		}
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	snprintf(stamp, sizeof stamp, "[%04d/%02d/%02d %02d:%02d:%02d:%04ld]", tm.tm_year + 1900,
		tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 100000);
	n = strlen(stamp) + strlen(name) + strlen(msg) + 5;
	line = malloc(n);
	if (!line)
		return;
	n = (size_t)snprintf(line, n, "%s %s: %s\n", stamp, name, msg);
	if (write(2, line, n) < 0) { /* nothing to do */ }
	free(line);
}

void px_logf(int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	if (!(__atomic_load_n(&px.log_mask, __ATOMIC_RELAXED) & level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_line(level, msg);
}

int vws_log(int level, const char *msg)
{
	if (!msg)
		return VWS_EARG;
	log_line(level, msg);
	return VWS_OK;
}

/* ---- frame buffers ------------------------------------------------------- */

static void buf_grow(struct px_buf *b, size_t n)
{
	uint8_t *p;
	size_t cap;
	if (b->oom || b->len + n <= b->cap)
		return;
	cap = b->cap ? b->cap : 128;
	while (cap < b->len + n)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = 1;
		return;
	}
	b->p = p;
	b->cap = cap;
}

/* Starts a call frame (length and id are filled in by px_call). */
void px_buf_start(struct px_buf *b, int op)
{
	memset(b, 0, sizeof *b);
	buf_grow(b, 4 + WIRE_HEADER_LEN);
	if (b->oom)
		return;
	memset(b->p, 0, 4 + WIRE_HEADER_LEN);
	b->p[4] = WIRE_KIND_CALL;
	b->p[5] = (uint8_t)op;
	b->len = 4 + WIRE_HEADER_LEN;
}

void px_buf_int(struct px_buf *b, int64_t v)
{
	buf_grow(b, 9);
	if (b->oom)
		return;
	b->p[b->len] = WIRE_TAG_INT;
	wire_put64(b->p + b->len + 1, (uint64_t)v);
	b->len += 9;
}

void px_buf_bytes(struct px_buf *b, const void *p, size_t n)
{
	if (n > WIRE_MAX_BODY) {
		b->oom = 1;
		return;
	}
	buf_grow(b, 5 + n);
	if (b->oom)
		return;
	b->p[b->len] = WIRE_TAG_BYTES;
	wire_put32(b->p + b->len + 1, (uint32_t)n);
	if (n)
		memcpy(b->p + b->len + 5, p, n);
	b->len += 5 + n;
}

/* The last value: bytes sent from the caller's memory. */
void px_buf_tail(struct px_buf *b, const void *p, size_t n)
{
	if (n > WIRE_MAX_BODY) {
		b->oom = 1;
		return;
	}
	buf_grow(b, 5);
	if (b->oom)
		return;
	b->p[b->len] = WIRE_TAG_BYTES;
	wire_put32(b->p + b->len + 1, (uint32_t)n);
	b->len += 5;
	b->tail = p;
	b->tail_len = n;
}

void px_buf_free(struct px_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

void px_reply_free(struct px_reply *r)
{
	int i;
	if (!r)
		return;
	for (i = 0; i < r->n; i++)
		free(r->v[i].b);
	r->n = 0;
}

/* ---- the helper's path and process --------------------------------------- */

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
		cond_init(&c->cond);
		c->waiters = 0;
		c->refs = 1;
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

static void *reader_main(void *arg);

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
	struct px_helper *h;
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
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, childfd, 3);
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
	if (rc != 0) {
		px_seterr(err, errlen, "cannot start engine helper %s: %s", argv[0], strerror(rc));
		close(sv[0]);
		free(wcopy);
		return NULL;
	}
	free(wcopy);

	h = calloc(1, sizeof *h);
	if (!h) {
		close(sv[0]);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		px_seterr(err, errlen, "out of memory");
		return NULL;
	}
	h->refs = 2; /* px.h + the reader thread */
	h->gen = ++px.gen;
	h->fd = sv[0];
	h->pid = pid;
	h->started_ms = px_now_ms();
	h->heard_ms = (uint32_t)h->started_ms;
	pthread_mutex_init(&h->wmu, NULL);

	/* The reader runs with every signal blocked: the host's handlers stay on its threads. */
	pin_library();
	pthread_attr_init(&ta);
	pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&ta, 256 << 10);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&tid, &ta, reader_main, h);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&ta);
	if (rc != 0) {
		close(sv[0]);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		pthread_mutex_destroy(&h->wmu);
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
		pthread_mutex_destroy(&h->wmu);
		free(h);
	}
}

int vws_set_log_level(int mask)
{
	struct px_helper *h;
	struct px_buf b;
	mask &= 2047;
	pthread_mutex_lock(&px.mu);
	__atomic_store_n(&px.log_mask, mask, __ATOMIC_RELAXED);
	h = px_helper_get(0, NULL, 0);
	pthread_mutex_unlock(&px.mu);
	if (!h)
		return VWS_OK; /* replayed when a helper starts */
	px_buf_start(&b, WIRE_OP_SET_LOG_LEVEL);
	px_buf_int(&b, mask);
	px_call(h, &b, 0, NULL, NULL, 0);
	px_buf_free(&b);
	pthread_mutex_lock(&px.mu);
	px_helper_put(h);
	pthread_mutex_unlock(&px.mu);
	return VWS_OK;
}

/* ---- sending and calls ----------------------------------------------------- */

/*
 * When helper h last showed it is alive: now if bytes from it wait in the
 * socket (its frames are coming; our reader has yet to take them), else when
 * the reader last got bytes. Its fd must be open: wmu held, or px.mu held
 * with a request of h not yet done (helper_died ends those before closing).
 */
static int64_t heard_at(struct px_helper *h)
{
	int64_t now = px_now_ms();
	int unread = 0;
	if (h->fd >= 0 && ioctl(h->fd, FIONREAD, &unread) == 0 && unread > 0)
		return now;
	return now - (uint32_t)((uint32_t)now - __atomic_load_n(&h->heard_ms, __ATOMIC_RELAXED));
}

/* Sends a whole frame to h (wmu held); -1 on failure, or when neither a byte
 * of it went out nor one came from h for timeout ms once deadline_ms passed. */
static int send_frame(struct px_helper *h, struct px_buf *b, int64_t deadline_ms, int timeout)
{
	int fd = h->fd;
	int64_t sent_ms = px_now_ms();
	struct iovec iov[2];
	struct msghdr mh;
	struct pollfd pfd;
	size_t off = 0, total = b->len + b->tail_len;
	while (off < total) {
		ssize_t n;
		int k = 0;
		memset(&mh, 0, sizeof mh);
		if (off < b->len) {
			iov[k].iov_base = b->p + off;
			iov[k++].iov_len = b->len - off;
			if (b->tail_len) {
				iov[k].iov_base = (void *)b->tail;
				iov[k++].iov_len = b->tail_len;
			}
		} else {
			iov[k].iov_base = (char *)b->tail + (off - b->len);
			iov[k++].iov_len = total - off;
		}
		mh.msg_iov = iov;
		mh.msg_iovlen = (size_t)k;
		n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			off += (size_t)n;
			sent_ms = px_now_ms(); /* it reads: alive */
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int64_t alive = heard_at(h), left;
			if (alive < sent_ms)
				alive = sent_ms;
			if (alive + timeout > deadline_ms)
				deadline_ms = alive + timeout;
			left = deadline_ms - px_now_ms();
			if (left <= 0)
				return -1;
			pfd.fd = fd;
			pfd.events = POLLOUT;
			poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
			continue;
		}
		return -1;
	}
	return 0;
}

static struct px_req *req_unlink(uint32_t id)
{
	struct px_req **pp, *r;
	for (pp = &px.reqs; (r = *pp); pp = &r->next)
		if (r->id == id) {
			*pp = r->next;
			return r;
		}
	return NULL;
}

/*
 * Sends call frame b to h and, if want_reply, waits for the reply (values in
 * *r: status, err, results; release with px_reply_free). Returns the reply's
 * status (err filled from it), or VWS_EENGINE when the helper is gone, the
 * frame cannot be sent, or the helper is wedged: silent (no reply, no event,
 * not reading) for VWS_HELPER_TIMEOUT_MS. A reply may come after a long
 * stream of events; while they come, the call waits.
 */
int px_call(struct px_helper *h, struct px_buf *b, int want_reply, struct px_reply *r, char *err, size_t errlen)
{
	struct px_req req;
	int64_t now = px_now_ms(), deadline;
	int timeout = env_int("VWS_HELPER_TIMEOUT_MS", DEFAULT_TIMEOUT_MS), status, sent;
	struct timespec ts;

	if (b->oom) {
		px_seterr(err, errlen, "out of memory (or message over %u bytes)", WIRE_MAX_BODY);
		return VWS_EINTERNAL;
	}
	if (b->len - 4 + b->tail_len > WIRE_MAX_BODY) {
		px_seterr(err, errlen, "message too big for the engine helper (%zu bytes)", b->tail_len);
		return VWS_ETOOBIG;
	}
	deadline = now + timeout + (int64_t)(b->tail_len >> 22) * 1000; /* +1 s per 4 MiB */
	wire_put32(b->p, (uint32_t)(b->len - 4 + b->tail_len));

	memset(&req, 0, sizeof req);
	pthread_mutex_lock(&px.mu);
	if (!h->ready && deadline < h->started_ms + STARTUP_GRACE_MS)
		deadline = h->started_ms + STARTUP_GRACE_MS; /* still starting (qemu is slow) */
	if (px.h != h) {
		pthread_mutex_unlock(&px.mu);
		px_seterr(err, errlen, "engine helper died");
		return VWS_EENGINE;
	}
	if (want_reply) {
		do
			req.id = ++px.last_id;
		while (req.id == 0);
		req.gen = h->gen;
		req.reply = r;
		r->n = 0;
		cond_init(&req.cond);
		req.next = px.reqs;
		px.reqs = &req;
	}
	pthread_mutex_unlock(&px.mu);
	wire_put32(b->p + 6, req.id);

	pthread_mutex_lock(&h->wmu);
	sent = h->fd >= 0 && send_frame(h, b, deadline, timeout) == 0;
	if (!sent && h->fd >= 0)
		/* A cut frame leaves the stream unusable: end this helper; its
		 * reader sees EOF and reports its connections closed. */
		kill(h->pid, SIGKILL);
	pthread_mutex_unlock(&h->wmu);

	if (!want_reply)
		return sent ? VWS_OK : VWS_EENGINE;

	pthread_mutex_lock(&px.mu);
	deadline_ts(deadline, &ts);
	while (sent && !req.done) {
		int64_t alive;
		if (pthread_cond_timedwait(&req.cond, &px.mu, &ts) != ETIMEDOUT || req.done)
			continue;
		/* Not wedged while it streams: wait until it has been silent for timeout. */
		alive = heard_at(h) + timeout;
		if (alive <= deadline)
			break;
		deadline = alive;
		deadline_ts(deadline, &ts);
	}
	if (!req.done) {
		req_unlink(req.id);
		pthread_mutex_unlock(&px.mu);
		pthread_cond_destroy(&req.cond);
		px_reply_free(r);
		if (!sent)
			px_seterr(err, errlen, "engine helper died (cannot send)");
		else
			px_seterr(err, errlen, "engine helper did not answer (silent for %d ms, %lld ms after the call)",
				timeout, (long long)(px_now_ms() - now));
		return VWS_EENGINE;
	}
	pthread_mutex_unlock(&px.mu);
	pthread_cond_destroy(&req.cond);
	if (req.dead) {
		px_seterr(err, errlen, "engine helper died");
		return VWS_EENGINE;
	}
	if (r->n < 2 || r->v[0].is_bytes || !r->v[1].is_bytes) {
		px_reply_free(r);
		px_seterr(err, errlen, "engine helper: malformed reply");
		return VWS_EINTERNAL;
	}
	status = (int)r->v[0].i;
	if (status != VWS_OK)
		px_seterr(err, errlen, "%s", r->v[1].b);
	return status;
}

/* ---- the reader thread ----------------------------------------------------- */

struct rd {
	struct px_helper *h;
	int fd;
	uint8_t buf[64 << 10];
	size_t off, len;
};

/* Reads exactly n bytes into dst (buffered; large reads go straight to dst). */
static int rd_exact(struct rd *r, void *dst, size_t n)
{
	uint8_t *d = dst;
	while (n > 0) {
		ssize_t k;
		if (r->off < r->len) {
			size_t c = r->len - r->off < n ? r->len - r->off : n;
			memcpy(d, r->buf + r->off, c);
			r->off += c;
			d += c;
			n -= c;
			continue;
		}
		if (n >= sizeof r->buf)
			k = recv(r->fd, d, n, 0);
		else
			k = recv(r->fd, r->buf, sizeof r->buf, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		__atomic_store_n(&r->h->heard_ms, (uint32_t)px_now_ms(), __ATOMIC_RELAXED);
		if (n >= sizeof r->buf) {
			d += k;
			n -= (size_t)k;
		} else {
			r->off = 0;
			r->len = (size_t)k;
		}
	}
	return 0;
}

/* Reads the values of a frame body of rest bytes into *v. Bytes values are
 * malloc'd (NUL-terminated). Returns -1 on EOF or a malformed frame. */
static int read_values(struct rd *r, uint32_t rest, struct px_reply *v)
{
	uint8_t t[9];
	v->n = 0;
	while (rest > 0) {
		struct px_val *x;
		if (v->n == WIRE_MAX_VALUES || rd_exact(r, t, 1) < 0)
			return -1;
		x = &v->v[v->n];
		memset(x, 0, sizeof *x);
		if (t[0] == WIRE_TAG_INT) {
			if (rest < 9 || rd_exact(r, t + 1, 8) < 0)
				return -1;
			x->i = (int64_t)wire_get64(t + 1);
			rest -= 9;
		} else if (t[0] == WIRE_TAG_BYTES) {
			uint32_t n;
			if (rest < 5 || rd_exact(r, t + 1, 4) < 0)
				return -1;
			n = wire_get32(t + 1);
			if (n > rest - 5)
				return -1;
			x->is_bytes = 1;
			x->len = n;
			x->b = malloc((size_t)n + 1);
			if (!x->b)
				return -1;
			v->n++; /* owns b from here */
			if (rd_exact(r, x->b, n) < 0)
				return -1;
			x->b[n] = 0;
			rest -= 5 + n;
			continue;
		} else {
			return -1;
		}
		v->n++;
	}
	return 0;
}

static int ival(const struct px_reply *v, int i) { return i < v->n && !v->v[i].is_bytes; }

/* An event frame: queue it in its context (px.mu held). Takes data. */
static void on_event(struct px_helper *h, int type, struct px_reply *v)
{
	struct px_ctx *c;
	struct px_conn *cn;
	vws_event ev;
	int i, state;
	for (i = 0; i < 7; i++)
		if (!ival(v, i))
			return;
	if (v->n != 8 || !v->v[7].is_bytes)
		return;
	c = px_ctx_find((uint64_t)v->v[0].i);
	if (!c)
		return; /* freed meanwhile */
	memset(&ev, 0, sizeof ev);
	ev.type = type;
	ev.conn = (vws_conn)v->v[1].i;
	ev.opcode = (int)v->v[2].i;
	ev.clean = (int)v->v[3].i;
	ev.code = (int)v->v[4].i;
	ev.attempt = (int)v->v[5].i;
	state = (int)v->v[6].i;
	if (v->v[7].len) {
		ev.data = v->v[7].b;
		ev.len = v->v[7].len;
	} else {
		free(v->v[7].b);
	}
	v->v[7].b = NULL;
	cn = px_conn_find(ev.conn);
	if (type == WIRE_EVENT_FAIL_PENDING) { /* a marker, never an application event */
		free(ev.data);
		if (cn && cn->gen == h->gen)
			px_fail_pending(c, cn, h->gen);
		return;
	}
	if (type == VWS_EV_SERVER_ESTABLISHED || type == VWS_EV_HTTP || type == VWS_EV_FILTER) {
		/* A connection a server accepted, or an HTTP request, tagged by the
		 * helper; code names the server (the caller asks vws_conn_server). A
		 * request's entry lives until vws_http_respond; it is never "open", so
		 * the helper's death reports nothing for it. */
		if (!cn) {
			cn = px_conn_accepted(c, ev.conn, h->gen, (uint64_t)v->v[4].i);
			if (cn && type != VWS_EV_SERVER_ESTABLISHED) {
				cn->state = VWS_STATE_CLOSED;
				cn->request = 1;
			}
		}
		ev.code = 0;
	}
	if (cn && cn->gen == h->gen) {
		cn->events++;
		switch (type) {
		case VWS_EV_SERVER_ESTABLISHED:
			cn->state = VWS_STATE_OPEN;
			break;
		case VWS_EV_ESTABLISHED:
			cn->state = VWS_STATE_OPEN;
			cn->attempt = ev.attempt;
			break;
		case VWS_EV_CONNECTION_ERROR:
			cn->state = state == VWS_STATE_CLOSED ? VWS_STATE_CLOSED : VWS_STATE_CONNECTING;
			cn->attempt = ev.attempt;
			break;
		case VWS_EV_CLOSED:
			cn->state = VWS_STATE_CLOSED;
			break;
		}
	}
	px_push(c, &ev);
}

/* The helper is gone: fail its calls, report its connections closed. */
static void helper_died(struct px_helper *h, const char *why)
{
	struct px_req *r, **rp;
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
	for (rp = &px.reqs; (r = *rp);) {
		if (r->gen != h->gen) {
			rp = &r->next;
			continue;
		}
		*rp = r->next; /* unlinked before its caller returns */
		r->done = r->dead = 1;
		pthread_cond_signal(&r->cond);
	}
	for (c = px.ctxs; c; c = c->next)
		for (cn = c->conns; cn; cn = cn->cnext) {
			vws_event ev;
			if (cn->gen != h->gen)
				continue;
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

static void *reader_main(void *arg)
{
	struct px_helper *h = arg;
	struct rd *r = malloc(sizeof *r);
	struct px_reply v;
	const char *why = "EOF";
	uint8_t hdr[4 + WIRE_HEADER_LEN];

	memset(&v, 0, sizeof v);
	if (!r) {
		why = "out of memory";
		kill(h->pid, SIGKILL);
		goto out;
	}
	r->h = h;
	r->fd = h->fd; /* only helper_died (on this thread) closes it */
	r->off = r->len = 0;
	for (;;) {
		uint32_t n;
		int kind, op;
		uint32_t id;
		if (rd_exact(r, hdr, sizeof hdr) < 0)
			break;
		n = wire_get32(hdr);
		kind = hdr[4];
		op = hdr[5];
		id = wire_get32(hdr + 6);
		if (n < WIRE_MIN_BODY || n > WIRE_MAX_BODY || read_values(r, n - WIRE_HEADER_LEN, &v) < 0) {
			why = "EOF or malformed frame";
			kill(h->pid, SIGKILL);
			break;
		}
		if (kind == WIRE_KIND_REPLY) {
			struct px_req *q;
			pthread_mutex_lock(&px.mu);
			q = req_unlink(id);
			if (q && q->gen == h->gen) {
				*q->reply = v; /* moves the values */
				v.n = 0;
				q->done = 1;
				pthread_cond_signal(&q->cond);
			}
			pthread_mutex_unlock(&px.mu);
		} else if (kind == WIRE_KIND_EVENT) {
			pthread_mutex_lock(&px.mu);
			on_event(h, op, &v);
			pthread_mutex_unlock(&px.mu);
		} else if (kind == WIRE_KIND_HELLO) {
			if (op != WIRE_VERSION) {
				why = "protocol version mismatch";
				kill(h->pid, SIGKILL);
				break;
			}
			pthread_mutex_lock(&px.mu);
			h->ready = 1;
			pthread_mutex_unlock(&px.mu);
			px_logf(8, "verawebsockets: engine helper pid %lld ready (protocol %d)",
				ival(&v, 0) ? (long long)v.v[0].i : -1LL, op);
		} else {
			why = "unknown frame kind";
			kill(h->pid, SIGKILL);
			break;
		}
		px_reply_free(&v);
	}
out:
	px_reply_free(&v);
	free(r);
	helper_died(h, why);
	pthread_mutex_lock(&px.mu);
	px_helper_put(h); /* the reader's reference */
	pthread_mutex_unlock(&px.mu);
	return NULL;
}
