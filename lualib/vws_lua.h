/*
 * vws_lua.h - what the files of the Lua binding offer each other.
 *
 * The binding talks to the engine only through include/verawebsockets.h.
 * Nothing here is visible outside the .so (-fvisibility=hidden); the only
 * exported symbols are luaopen_verawebsockets, vws_lua_lock, vws_lua_unlock
 * and vws_lua_use_dispatcher.
 *
 * Files, one role each:
 *   module.c   luaopen_verawebsockets, the per-VM record's userdata, the module table
 *   state.c    the per-VM record (vl_state), its lock, vws_lua_lock/_unlock
 *   options.c  option tables of ws.create / ws.listen -> engine option text
 *   result.c   how ws.* functions return (true | nil, msg) and shared argument checks
 *   conn.c     ws.create and the wso functions
 *   server.c   ws.listen and the server functions
 *   deliver.c  the one protected path every handler is called through
 *   http.c     plain HTTP requests of ws.listen servers: the req table, the `http` handler
 *   wait.c     ws.loop, ws.dispatch, ws.event_fd and every wait of the script's thread
 *   delivery.c how Luup-mode events reach a thread that may run Lua (mode choice,
 *              the count hook, the dispatcher thread of lock-holding hosts)
 *   luup.c     delivery in Luup hosts: per-plugin groups, the request handler,
 *              the loopback HTTP wake
 *   sync.c     ws.client.sync (lua-websockets' blocking client)
 */
#ifndef VWS_LUA_H
#define VWS_LUA_H

#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "lua.h"
#include "lauxlib.h"
#include "compat.h" /* Lua 5.1 (LuaJIT) .. 5.4 */
#include "verawebsockets.h"

#define VL_EXPORT __attribute__((visibility("default")))

#define VL_NAME    "verawebsockets"
#define VL_VERSION "2.1.0"

#define VL_STATE_MT  "verawebsockets.State"  /* registry key of the per-VM State userdata */
#define VL_CONN_MT   "verawebsockets.Conn"
#define VL_CLIENT_MT "verawebsockets.Client"
#define VL_SERVER_MT "verawebsockets.Server"

#define VL_ERRLEN 256

/* How Luup-mode (standalone = false) events reach Lua; see delivery.c. */
enum {
	VL_DELIVERY_AUTO = 0, /* not chosen yet: chosen by the first Luup-mode object */
	VL_DELIVERY_LUUP,     /* a Luup host: the host calls our request handler */
	VL_DELIVERY_HOOK,     /* a plain interpreter: the script's own thread, in waits and by a count hook */
	VL_DELIVERY_THREAD    /* a host holding vws_lua_lock: the dispatcher thread */
};

/* A recursive lock that can be released completely while a thread waits in C
 * (so the dispatcher may run handlers while the VM's own thread is blocked in
 * ws.loop) and that the dispatcher can give up waiting for when asked to stop.
 * Only lock-holding hosts (VL_DELIVERY_THREAD) ever see it contended. */
typedef struct vl_lock {
	pthread_mutex_t m;
	pthread_cond_t  cv;
	pthread_t       owner;
	int             count;
} vl_lock;

/* One plugin (one environment) of a Luup host: its own context, so each
 * plugin's events are delivered by the host in that plugin's context. Made by
 * the script's thread, never freed before the record; the fields below `fd`
 * belong to the waker thread. */
typedef struct vl_group {
	struct vl_group *next;
	vws_ctx   ctx;
	int       fd;             /* event fd of ctx, -1 if none */
	int       env_ref;        /* registry ref: the plugin's environment */
	char      name[32];       /* request name: GET /data_request?id=lr_<name> */
	unsigned  runs;           /* times the host ran the handler (atomic) */
	unsigned  fails;          /* wakes failed since the last delivery (atomic) */
	char      last_error[128];/* the last wake failure, for the next luup.log (under waker_mu) */
	/* waker thread only */
	int       sock;           /* kept-alive connection to the host, -1 */
	int       in_flight;
	int       log_wake;       /* the wake in flight is for the log queue's lines */
	unsigned  runs_at_send;
	int64_t   sent_at, next_at;
	int       backoff_ms;
	unsigned  seq;
	char      rbuf[2048];     /* the answer's head */
	size_t    rlen, hlen, body;
	char      tail[8];
	int       status, chunked, keep;
	long      clen;
} vl_group;

/* Events taken in one batch (deliver.c) and not delivered yet: ev[i..n-1]. While a
 * handler runs, a nested delivery on the same context (the handler called ws.dispatch,
 * or waited and another thread delivered meanwhile) goes on from here first, so that
 * events keep their order. Lives on the stack of the delivery that took it; listed
 * in vl_state.open under the lock. */
typedef struct vl_open_batch {
	struct vl_open_batch *prev;
	vws_ctx    ctx;
	vws_event *ev;
	int        i, n;
} vl_open_batch;

#define VL_BATCH     64          /* events per batch */
#define VL_BATCH_BUF (64 << 10)  /* bytes of event data per batch (more: held by the engine) */

/* Per lua_State record. Lives in C memory (the waker thread may use it
 * while the State userdata is being finalized); freed when its last reference
 * (the State userdata, the waker thread) is dropped. */
typedef struct vl_state {
	struct vl_state *next;     /* static list, see state.c */
	int              refs;     /* protected by the list mutex */
	lua_State       *main_L;   /* the L luaopen_verawebsockets was given */
	lua_State       *T;        /* thread the dispatcher runs handlers on */
	int              T_ref;    /* registry ref anchoring T */
	int              conns_ref;/* registry ref: handle -> wso, weak values */
	int              live_ref; /* registry ref: handle -> wso, strong, while active */
	int              dying_ref;/* registry ref: handle -> true, drop from live when drained */
	int              tb_ref;   /* registry ref: vl_traceback, the handlers' message handler */
	vws_ctx          ctxA;     /* standalone connections (ws.loop / ws.dispatch) */
	vws_ctx          ctxB;     /* Luup-mode connections, hook and thread delivery */
	int              fdA, fdB; /* cached vws_ctx_event_fd results, -1 until known */
	vl_lock          lock;
	int              stop;     /* set (under lock.m) when the state closes; read with VL_STOPPED */
	vl_open_batch   *open;     /* batches being delivered, innermost first (under lock) */
	char            *evbuf;    /* VL_BATCH_BUF bytes for the outermost batch, NULL until used */
	int              evbuf_busy;

	/* delivery (delivery.c, luup.c) */
	int              mode;      /* VL_DELIVERY_*, atomic */
	int              delivering;/* depth of deliveries on the script's thread */
	int              started;   /* waker thread started */
	pthread_t        thread;
	int              wake[2];   /* self-pipe to wake the waker's poll */
	pthread_mutex_t  waker_mu;  /* groups list, hook arming */
	vl_group        *groups;
	int              luup_port;
	int              hook_armed;
	int              hook_deferred;
	lua_Hook         saved_hook;
	int              saved_mask, saved_count;
} vl_state;

#define VL_STOPPED(st) __atomic_load_n(&(st)->stop, __ATOMIC_ACQUIRE)
#define VL_MODE(st)    __atomic_load_n(&(st)->mode, __ATOMIC_ACQUIRE)

/* The State userdata: every module function has it as upvalue 1. */
typedef struct vl_state_ud {
	vl_state *st; /* NULL once finalized */
} vl_state_ud;

/* The wso userdata. */
typedef struct vl_conn {
	vws_conn h;          /* 0 once freed */
	vws_ctx  ctx;
	int      standalone;
} vl_conn;

/* The server userdata (ws.listen). Its env table holds the handlers; the
 * wso of each accepted client gets an env sharing them. */
typedef struct vl_server {
	vws_server h;        /* 0 once freed */
	vws_ctx    ctx;
	int        standalone;
} vl_server;

/* Exported. Hosts pass the lua_State they required the module in. */
VL_EXPORT int  luaopen_verawebsockets(lua_State *L);
VL_EXPORT void vws_lua_lock(lua_State *L);
VL_EXPORT void vws_lua_unlock(lua_State *L);
VL_EXPORT int  vws_lua_use_dispatcher(lua_State *L);

/* state.c */
void      vl_lock_init(vl_lock *k);
void      vl_lock_destroy(vl_lock *k);
void      vl_lock_acquire(vl_lock *k);
void      vl_lock_release(vl_lock *k);
int       vl_lock_release_all(vl_lock *k);          /* returns the saved depth (0 if not owner) */
void      vl_lock_reacquire(vl_lock *k, int depth); /* no-op when depth == 0 */
int       vl_lock_acquire_or_stop(vl_lock *k, vl_state *st);
vl_state *vl_state_new(lua_State *L, char *err, size_t errlen);
void      vl_state_close(vl_state *st);             /* from the State __gc */
void      vl_state_ref(vl_state *st);
void      vl_state_unref(vl_state *st);
vl_state *vl_find_state(lua_State *L);              /* by main_L or T; NULL if unknown */
vl_state *vl_find_hooked(void);                      /* the one record with an armed hook, or NULL */
vl_state *vl_upstate(lua_State *L);                  /* upvalue 1; NULL once closed */

/* result.c */
int         vl_push_fail(lua_State *L, int rc, const char *err); /* nil, err or the status text, name */
int         vl_push_closed(lua_State *L);
int         vl_push_result(lua_State *L, int rc, const char *err);
const char *vl_status_text(int rc);
const char *vl_status_name(int rc);   /* "EARG", "ESTATE", "EFULL", ... */
int64_t     vl_now_ms(void);
int         vl_opt_ms(lua_State *L, int idx);      /* optional milliseconds argument, -1 if absent */
int         vl_check_opcode(lua_State *L, int idx);
void        vl_check_close_args(lua_State *L, int *code, const char **reason, size_t *len);

/* options.c: collects {engine name, value} pairs of an options table, then
 * applies them with the ABI once nothing can raise any more. */
typedef struct vl_opts {
	lua_State *L;
	int        narg;      /* argument number for errors */
	int        opts;      /* stack index of the {name, value, ...} list */
	int        n;
	int        pong;      /* a pong handler was given: the engine must deliver pongs */
	int        writeable; /* a writeable handler was given */
} vl_opts;

/* One key of an options table (ws.create, ws.listen, their ssl_settings):
 * how its Lua value is checked and handed on. The key is also the engine's
 * option name (except where parse says otherwise); the engine checks what
 * only it knows (URLs, paths, origins' form, a rate's syntax). */
enum {
	VL_OPT_CALLER,  /* read by ws.create / ws.listen themselves (url, port, event_handlers, ...) */
	VL_OPT_SECONDS, /* seconds, fractions allowed (lo = 1: 0 refused) -> milliseconds */
	VL_OPT_INTEGER, /* an integer from lo to hi */
	VL_OPT_BOOL,    /* a boolean -> "0" | "1" */
	VL_OPT_FLAG,    /* a boolean or a number, as the original C library read it -> "0" | "1" */
	VL_OPT_STRING,  /* a string without NUL bytes */
	VL_OPT_LIST,    /* "a,b" or {"a", "b"} (items: what they are, for errors) */
	VL_OPT_PARSE    /* parse(o, idx, env, def) */
};
typedef struct vl_optdef vl_optdef;
struct vl_optdef {
	const char *key;
	int         kind;
	double      lo, hi;
	const char *items;
	void (*parse)(vl_opts *o, int idx, int env, const vl_optdef *d);
};
extern const vl_optdef vl_client_ssl_opts[], vl_server_ssl_opts[];

typedef struct vl_event_name {
	const char *name;
	int id;
} vl_event_name;

extern const vl_event_name vl_client_events[];
extern const vl_event_name vl_server_events[];

int         vl_opts_begin(vl_opts *o, lua_State *L, int narg); /* pushes the list and the env; returns env index */
int         vl_push_handler_env(lua_State *L); /* pushes {handlers = {}, named = {}}; returns its index */
/* Raises for a key of the table at idx that defs do not name: "unknown option 'k'"
 * (what NULL), or "<what>: unknown key 'k'<hint>". */
void        vl_opts_check_keys(vl_opts *o, int idx, const vl_optdef *defs, const char *what, const char *hint);
/* Checks and collects every key of defs (but VL_OPT_CALLER ones) that the table at
 * idx holds; prefix ("ssl_settings." or "") names them in errors. */
void        vl_opts_collect(vl_opts *o, int idx, const vl_optdef *defs, const char *prefix, int env);
/* ssl_settings (nil or a table) by defs; hint lists the keys in the unknown-key error. */
void        vl_opt_ssl(vl_opts *o, int idx, const vl_optdef *defs, const char *hint);
void        vl_opts_add(vl_opts *o, const char *name, const char *value);
int         vl_opts_error(vl_opts *o, const char *fmt, const char *name, const char *detail);
int         vl_opts_type_error(vl_opts *o, const char *name, const char *want, int idx);
const char *vl_opts_string_value(vl_opts *o, int idx, const char *name);
void        vl_opt_seconds(vl_opts *o, int idx, const char *name, int allow_zero);
void        vl_opt_integer(vl_opts *o, int idx, const char *name, lua_Number min, lua_Number max);
void        vl_opt_bool(vl_opts *o, int idx, const char *name, const char *engine_name);
int         vl_opt_flag(vl_opts *o, int idx, const char *name); /* boolean, or a number as lua_toboolean reads it */
void        vl_opt_string(vl_opts *o, int idx, const char *name);
int         vl_opt_list(vl_opts *o, int idx, const char *name, const char *items); /* protocols, origins */
void        vl_opt_headers(vl_opts *o, int idx);
void        vl_opt_reconnect(vl_opts *o, int idx);
void        vl_opt_handlers(vl_opts *o, int idx, int env, const vl_event_name *names, int *pong, int *writeable);
int         vl_opts_apply(vl_opts *o, uint64_t h, int (*set)(uint64_t, const char *, const char *, char *, size_t),
                          char *err, size_t errlen);

/* conn.c */
vl_conn *vl_check_conn(lua_State *L, int idx);
int      vl_ws_create(lua_State *L);
int      vl_ws_connect(lua_State *L);
int      vl_ws_send(lua_State *L);
int      vl_ws_close(lua_State *L);
int      vl_ws_ping(lua_State *L);
int      vl_ws_state(lua_State *L);
int      vl_ws_buffered(lua_State *L);
int      vl_ws_protocol(lua_State *L);
int      vl_ws_headers(lua_State *L);
int      vl_ws_peer(lua_State *L);
int      vl_ws_peer_cert(lua_State *L);
int      vl_conn_gc(lua_State *L);
int      vl_conn_tostring(lua_State *L);

/* server.c */
vl_server *vl_to_server(lua_State *L, int idx);       /* NULL when idx holds something else */
int        vl_server_close(lua_State *L, vl_server *s);
int        vl_ws_listen(lua_State *L);
int        vl_ws_port(lua_State *L);
int        vl_ws_broadcast(lua_State *L);
int        vl_ws_clients(lua_State *L);
int        vl_srv_close(lua_State *L);
int        vl_ws_stop_listening(lua_State *L);
int        vl_server_gc(lua_State *L);
int        vl_server_tostring(lua_State *L);
int        vl_live_clear_cf(lua_State *L); /* (st lightuserdata, handle): live[h] = nil; pcall it */
/* Pushes the wso of a connection accepted by a server on its first event
 * (returns 1), or returns 0 (nothing pushed, connection freed). */
int        vl_accept(lua_State *L, vl_state *st, vws_conn h);

/* deliver.c */
int  vl_deliver_pending(vl_state *st, lua_State *L, vws_ctx ctx, int max); /* under lock */
int  vl_live_set_cf(lua_State *L); /* (st lightuserdata, wso, handle): live[h] = wso; pcall it */
int  vl_traceback(lua_State *L); /* the message handler of every handler call (st->tb_ref) */
/* Reports the error message at -1 (stderr; luup.log of the environment at fenv, 0: none). */
void vl_report(vl_state *st, int type, lua_State *L, int fenv);

/* http.c: delivers a VWS_EV_HTTP event (under lua_cpcall; the message handler at
 * index 1) and answers the request, whatever happens. */
int  vl_deliver_http(lua_State *L, vl_state *st, const vws_event *ev);
int  vl_deliver_filter(lua_State *L, vl_state *st, const vws_event *ev);

/* wait.c */
int  vl_event_fd(vl_state *st, vws_ctx ctx);
/* Waits up to timeout_ms (-1: no limit) for one of ctxs to have pending events,
 * with the lock released completely; Luup-mode events due on this thread (hook
 * delivery) are delivered meanwhile. Returns 1 if ctxs have pending events, 0 on
 * timeout or when the state is stopped, -1 when the interpreter's SIGINT handler
 * set its hook meanwhile (Ctrl-C). The thread reads ctxs[0]'s connections itself
 * while it waits (vws_ctx_read_fds), and keeps them over its poll slices. */
int  vl_wait(vl_state *st, lua_State *L, const vws_ctx *ctxs, int n, int timeout_ms, int *delivered);
int  vl_ws_loop(lua_State *L);
int  vl_ws_dispatch(lua_State *L);
int  vl_ws_event_fd(lua_State *L);

/* delivery.c */
/* The context a new Luup-mode object of the code at `env` (stack index) goes to,
 * choosing the delivery on first use and starting what it needs. Returns 0 with
 * *ctx set, or -1 with a message (under lock; nothing raises). */
int  vl_luup_ctx(vl_state *st, lua_State *L, int env, vws_ctx *ctx, char *err, size_t errlen);
void vl_push_caller_env(lua_State *L);   /* the environment of the Lua code calling us */
/* Hook delivery: delivers what is pending for the script's thread when called at a
 * delivery point on that thread (not nested in another delivery). */
int  vl_hook_service(vl_state *st, lua_State *L); /* returns the number delivered */
int  vl_hook_is_ours(lua_Hook h);
int  vl_start_waker(vl_state *st, char *err, size_t errlen);  /* under lock */
void vl_stop_waker(vl_state *st);
void vl_waker_kick(vl_state *st);
int  vl_ws_set_delivery(lua_State *L);
int  vl_ws_delivery(lua_State *L);
int  vl_ws_set_luup_port(lua_State *L);
const char *vl_mode_name(int mode);

/* luup.c */
int       vl_luup_default_port(void);  /* VWS_LUUP_PORT, else 3480 */
vl_group *vl_group_for_env(vl_state *st, lua_State *L, int env, char *err, size_t errlen);
vl_group *vl_group_of_caller(vl_state *st, lua_State *L); /* NULL if the caller's env has none */
void      vl_luup_poll_prepare(vl_state *st, vl_group *g, struct pollfd *p, int64_t now, int64_t *timeout);
void      vl_luup_poll_done(vl_state *st, vl_group *g, const struct pollfd *p, int64_t now);
void      vl_luup_close_groups(vl_state *st);
void      vl_luup_log(lua_State *L, int env, const char *msg, int level); /* luup.log of env, protected */
int       vl_luup_log_prepare(vl_group *g, struct pollfd *p, int64_t now); /* 1: p watches the log queue */
void      vl_luup_log_done(vl_state *st, vl_group *g, const struct pollfd *p, int64_t now);

/* logq.c: the engine's log lines, queued for luup.log */
int       vl_logq_install(void);                 /* sets the engine's log sink, once; -1: no pipe */
int       vl_logq_fd(void);                      /* readable while lines wait; -1 before install */
int       vl_logq_pending(void);
void      vl_logq_drain(lua_State *L, int fenv); /* luup.log of fenv; may raise (memory): protect it */

/* module.c: registers metatable `name` (once per VM): __index = methods, each a
 * closure over the State userdata at index su; __gc and __tostring. */
void vl_new_metatable(lua_State *L, const char *name, const luaL_Reg *methods, int su,
                      lua_CFunction gc, lua_CFunction tostring);

/* sync.c */
void vl_open_client(lua_State *L, int state_idx); /* leaves the ws.client table on the stack */

#endif /* VWS_LUA_H */
