/*
 * proxy.h - internals shared by the proxy's files (hidden symbols; the .so
 * exports only the vws_* ABI).
 *
 * Locking: one process-wide mutex (px.mu) guards contexts, their event
 * queues, the connection table, the server list, the request list and the
 * current helper.
 * A helper's socket writes are serialized by its own wmu, taken without
 * px.mu held. No lock is held across a wait for the helper except through a
 * condition variable with a deadline.
 */
#ifndef VWS_PROXY_H
#define VWS_PROXY_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The ABI is exported although the build compiles with -fvisibility=hidden. */
#pragma GCC visibility push(default)
#include "verawebsockets.h"
#pragma GCC visibility pop
#include "wire.h"

#define PX_HIDDEN __attribute__((visibility("hidden")))

/* One queued event. */
struct px_ev {
	struct px_ev *next;
	vws_event ev;
};

struct px_conn;

/* A non-blocking pipe that wakes a poll (px.mu held for all of it): one byte in
 * it while signaled, so a drain is one read. */
struct px_pipe {
	int fd[2];                /* read and write ends, -1 until opened */
	int signaled;             /* the pipe holds its byte */
};

/* A context: the event queue lives here, in the host process. */
struct px_ctx {
	struct px_ctx *next;      /* px.ctxs */
	uint64_t id;
	int refs;                 /* 1 while listed, +1 per thread inside next_event */
	int freed;
	struct px_ev *head, *tail;
	size_t n;
	pthread_cond_t cond;
	int waiters;
	uint64_t wake_gen;
	int wake_set;             /* a wake that found no waiter (as internal/hub) */
	struct px_pipe ev;        /* its events are pending (opened by vws_ctx_event_fd) */
	int quiet;                /* its caller is reading the helper's socket itself (direct.c)
	                           * and takes what it queues without polling the pipe */
	unsigned gen;             /* helper generation that has this context (0 none) */
	struct px_conn *conns;    /* its connections, via cnext */
	uint64_t calls;           /* calls for events: a new one means those taken before were handled */
};

/* A server; its id is the handle the caller sees (and the helper's tag). It
 * lives in one helper generation and is never recreated in another. */
struct px_server {
	struct px_server *next;   /* px.servers */
	uint64_t id;
	struct px_ctx *ctx;
	unsigned gen;             /* helper generation that has it */
	int listening;            /* vws_server_listen succeeded, no vws_server_close since */
	int64_t max_msg;          /* max_message_size as set, for the connections it accepts */
};

/* An option as set, replayed when a connection is recreated in a new helper. */
struct px_opt {
	struct px_opt *next;
	char *name, *value;
};

/* A connection; its id is the handle the caller sees (and the helper's tag). */
struct px_conn {
	struct px_conn *hnext;    /* hash chain */
	struct px_conn *cnext;    /* ctx->conns */
	uint64_t id;
	struct px_ctx *ctx;
	unsigned gen;             /* helper generation that has it (0 none) */
	int state;                /* VWS_STATE_*, kept from its events and the caller's connect and
	                           * close: vws_conn_state and vws_ctx_active answer from it */
	int attempt;              /* last attempt number reported */
	unsigned events;          /* events seen (orders a reply against events) */
	uint64_t taken;           /* ctx->calls of the call that last took one of its events (0: none) */
	char *url;                /* NULL for an accepted connection */
	uint64_t server;          /* the server that accepted it; 0 for a client */
	int request;              /* an HTTP request (VWS_EV_HTTP) until vws_http_respond */
	int user_close;           /* vws_conn_close was called (since the last vws_conn_connect) */
	int64_t max_msg;          /* max_message_size as set: larger sends are refused here */
	int async_rc;             /* an asynchronous send, ping or close that failed in the helper
	                           * (WIRE_EVENT_SEND_ERROR; 0: none): the next send or ping returns it */
	char *async_err;          /* its message, or NULL */
	char *proto;              /* the subprotocol of its last ESTABLISHED (NULL: not since
	                           * vws_conn_connect): vws_conn_protocol answers from it */
	struct px_opt *opts, **opts_tail;
	struct px_share *share;   /* a copy of its socket to write to (share.c), or NULL */
	uint32_t sent;            /* asynchronous calls sent for it (SEND, PING, CLOSE, SHARE_REST):
	                           * share.c compares it with the helper's count */
};

/* A connection's socket shared by the helper (share.c). */
struct px_share {
	int fd;
	uint32_t slot, gen;       /* its gate in the helper's gate memory */
};

/* One helper process. */
struct px_helper {
	int refs;                 /* under px.mu */
	unsigned gen;
	int fd;                   /* -1 once closed (under wmu) */
	pid_t pid;
	pthread_mutex_t wmu;
	int64_t started_ms;       /* monotonic */
	uint32_t heard_ms;        /* when the reader last got bytes: the low 32 bits of
	                           * px_now_ms (atomic; 64-bit atomics need libatomic on MIPS32) */
	int ready;                /* hello received (under px.mu) */

	/* Who reads the socket (direct.c; all under px.mu): the reader thread,
	 * or the context whose caller waits (vws_ctx_read_fds). */
	struct px_rd *rd;         /* the reader's buffer, shared by whoever reads */
	int rmode;                /* PX_RD_THREAD, PX_RD_ASKED or PX_RD_HANDED */
	uint64_t rholder;         /* the context asking or holding it, or 0 */
	int rwait;                /* its caller is in its wait (between vws_ctx_read_fds and
	                           * vws_ctx_read that ends the wait) */
	pthread_t rthread;        /* the thread of its last vws_ctx_read_fds */
	int rleft;                /* it left a wait since the reader thread last looked */
	int64_t rleft_ms;         /* when it last left */
	int rparked;              /* the reader thread waits for rcv without a deadline */
	const char *rfail;        /* the holder found the stream broken: the helper ends */
	pthread_cond_t rcv;       /* wakes the reader thread */
	struct px_pipe handp;     /* poked when the reading is handed over */
	uint32_t *gates;          /* the gate memory (share.c), or NULL */
	int gates_fd;             /* its descriptor until the helper has it, or -1 */
};

#define PX_RD_THREAD 0
#define PX_RD_ASKED  1
#define PX_RD_HANDED 2

/* A decoded value of a reply or event. */
struct px_val {
	int is_bytes;
	int64_t i;
	char *b;                  /* malloc'd, NUL-terminated */
	uint32_t len;
};

struct px_reply {
	int n;
	struct px_val v[WIRE_MAX_VALUES];
};

/* A frame under construction; the last bytes value's payload may stay in the
 * caller's memory (tail) and is sent from there. */
struct px_buf {
	uint8_t *p;
	size_t len, cap;
	int oom;
	const void *tail;
	size_t tail_len;
};

#define PX_BUCKETS 256

struct px_state {
	pthread_mutex_t mu;
	struct px_ctx *ctxs;
	struct px_conn *tab[PX_BUCKETS];
	struct px_server *servers;
	uint64_t last_ctx, last_conn; /* last_conn numbers servers too: handles never collide */
	int log_mask;
	pthread_mutex_t sink_mu;  /* the log sink: guards sink and sink_ud */
	vws_log_sink sink;
	void *sink_ud;
	struct px_helper *h;      /* the live helper, or NULL */
	unsigned gen;             /* generation of the newest helper */
	uint32_t last_id;
	struct px_req *reqs;
	char *helper_path;        /* next to the .so */
	pthread_mutex_t revive_mu;
};

PX_HIDDEN extern struct px_state px;

/* The reader's buffered view of a helper's socket (wireio.c). */
#define PX_RD_FDS 8
struct px_rd {
	struct px_helper *h;
	int fd;
	uint8_t buf[64 << 10];
	size_t off, len;
	int fds[PX_RD_FDS];       /* descriptors received with the frames, not yet taken */
	int nfds;
	int fds_lost;             /* one was dropped: no more are matched to their frames */
};

/* share.c: shared writes */
#define PX_SHARE_MAX  WIRE_SHARE_MAX
#define PX_SHARE_NO   0
#define PX_SHARE_DONE 1
#define PX_SHARE_PART 2
PX_HIDDEN void px_gates_open(struct px_helper *h);
PX_HIDDEN void px_gates_close(struct px_helper *h);
PX_HIDDEN ssize_t px_rd_recv(struct px_rd *r, void *buf, size_t n, int flags);
PX_HIDDEN void px_rd_close_fds(struct px_rd *r);
PX_HIDDEN void px_share_attach(struct px_helper *h, struct px_rd *r, const struct px_reply *v);
PX_HIDDEN void px_share_drop(struct px_conn *cn);
PX_HIDDEN int px_share_write(struct px_helper *h, struct px_conn *cn, int opcode, const char *data, size_t len,
	uint8_t *fb, const uint8_t **rest, size_t *restlen);

/* direct.c: the thread that waits reads the helper's socket (see there) */
PX_HIDDEN int px_rd_turn(struct px_helper *h);
PX_HIDDEN void px_rd_take_back(struct px_helper *h);
PX_HIDDEN void px_rd_end(struct px_helper *h, const char **why);
PX_HIDDEN void px_rd_ctx_gone(uint64_t ctx);
PX_HIDDEN int px_rd_fds(struct px_ctx *c, struct pollfd *fds, int max, int *now);
PX_HIDDEN int px_rd_read(struct px_ctx *c, const struct pollfd *fds, int n, int again);
/* reader.c */
PX_HIDDEN int px_rd_frame(struct px_helper *h, struct px_rd *r, struct px_reply *v, const char **why);

/* util.c */
PX_HIDDEN void px_seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Sets err as px_seterr does and returns rc. */
PX_HIDDEN int px_errf(int rc, char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
PX_HIDDEN int64_t px_now_ms(void);
PX_HIDDEN void px_cond_init(pthread_cond_t *c);                                 /* on CLOCK_MONOTONIC */
PX_HIDDEN void px_logf(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
PX_HIDDEN void px_log_to_sink(int level, const char *msg); /* to the log sink, if one is set */
PX_HIDDEN int px_log_sink_set(void);
PX_HIDDEN int px_utf8_valid(const void *p, size_t n);                          /* as Go's utf8.Valid */

/* The engine's default max_message_size (wsengine.DefaultMaxMessageSize). */
#define PX_DEFAULT_MAX_MSG (16ll << 20)

/* wireio.c: frames */
PX_HIDDEN void px_buf_start(struct px_buf *b, int op);
PX_HIDDEN void px_buf_int(struct px_buf *b, int64_t v);
PX_HIDDEN void px_buf_bytes(struct px_buf *b, const void *p, size_t n);
PX_HIDDEN void px_buf_tail(struct px_buf *b, const void *p, size_t n);
/* A whole call frame: op, first value id (a handle), then the values fmt says:
 * 'i' an int, 'u' a uint64_t, 's' a C string (NULL as ""), 'b' bytes
 * (const void *, size_t), 't' the tail bytes (const void *, size_t; last). */
PX_HIDDEN void px_buf_msg(struct px_buf *b, int op, uint64_t id, const char *fmt, ...);
PX_HIDDEN void px_buf_vmsg(struct px_buf *b, int op, uint64_t id, const char *fmt, va_list ap);
PX_HIDDEN void px_buf_free(struct px_buf *b);
PX_HIDDEN void px_reply_free(struct px_reply *r);
PX_HIDDEN int64_t px_reply_int(const struct px_reply *r, int64_t def);          /* the int result, else def */
PX_HIDDEN int64_t px_heard_at(struct px_helper *h);
PX_HIDDEN int px_send_frame(struct px_helper *h, struct px_buf *b, int64_t deadline_ms, int timeout); /* wmu held */
PX_HIDDEN int px_rd_exact(struct px_rd *r, void *dst, size_t n);
PX_HIDDEN int px_read_values(struct px_rd *r, uint32_t rest, struct px_reply *v);

/* call.c */
PX_HIDDEN int px_call(struct px_helper *h, struct px_buf *b, int want_reply, struct px_reply *r,
	char *err, size_t errlen);                                                     /* px.mu not held */
PX_HIDDEN void px_req_answer(struct px_helper *h, uint32_t id, struct px_reply *v); /* px.mu held */
PX_HIDDEN void px_reqs_fail(unsigned gen);                                         /* px.mu held */
/* px_call of px_buf_msg(op, id, fmt, ...) wanting a reply without results: the status. */
PX_HIDDEN int px_call_msg(struct px_helper *h, char *err, size_t errlen, int op, uint64_t id, const char *fmt, ...);
PX_HIDDEN void px_notify(struct px_helper *h, int op, uint64_t arg);             /* op(arg), no reply; px.mu not held */
PX_HIDDEN void px_fire(int op, uint64_t arg, unsigned gen);                        /* px_notify to helper gen (0: any), if live */

/* spawn.c */
PX_HIDDEN struct px_helper *px_helper_get(int start, char *err, size_t errlen); /* px.mu held; adds a ref */
PX_HIDDEN void px_helper_put(struct px_helper *h);                               /* px.mu held */
PX_HIDDEN void px_helper_died(struct px_helper *h, const char *why);             /* the reader, px.mu not held */

/* reader.c */
PX_HIDDEN void *px_reader_main(void *arg);                                       /* arg: the helper */

/* table.c (px.mu held) */
PX_HIDDEN struct px_ctx *px_ctx_find(uint64_t id);
PX_HIDDEN void px_ctx_unref(struct px_ctx *c);
PX_HIDDEN struct px_conn *px_conn_find(uint64_t id);
PX_HIDDEN struct px_conn *px_conn_accepted(struct px_ctx *c, uint64_t id, unsigned gen, uint64_t server);
PX_HIDDEN void px_conn_unlink(struct px_conn *c);
PX_HIDDEN void px_conn_destroy(struct px_conn *c);                               /* unlinked; px.mu not needed */
PX_HIDDEN struct px_server *px_server_find(uint64_t id);
PX_HIDDEN void px_server_unlink(struct px_server *s);

/* queue.c (px.mu held) */
PX_HIDDEN void px_push(struct px_ctx *c, const vws_event *ev);
PX_HIDDEN struct px_ev *px_queue_pop(struct px_ctx *c);
PX_HIDDEN void px_ev_free(struct px_ev *e); /* a node popped, to the spares or free (px.mu held) */
PX_HIDDEN void px_queue_clear(struct px_ctx *c);
PX_HIDDEN void px_mark_taken(struct px_ctx *c, const vws_event *ev);
PX_HIDDEN void px_pipe_init(struct px_pipe *p);  /* not open */
PX_HIDDEN int  px_pipe_open(struct px_pipe *p);  /* unless open: 0, or -1 with errno */
PX_HIDDEN void px_pipe_poke(struct px_pipe *p);  /* its byte, unless it has it (or is not open) */
PX_HIDDEN void px_pipe_drain(struct px_pipe *p);
PX_HIDDEN void px_pipe_close(struct px_pipe *p);
PX_HIDDEN void px_ctx_owe(struct px_ctx *c);     /* pokes c->ev for events queued quietly */
PX_HIDDEN void px_fail_pending(struct px_ctx *c, struct px_conn *cn, unsigned gen);

#endif
