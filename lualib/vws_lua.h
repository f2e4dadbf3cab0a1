/*
 * vws_lua.h - internal declarations shared by the files of the Lua binding.
 *
 * The binding talks to the engine only through include/verawebsockets.h.
 * Nothing here is visible outside the .so (-fvisibility=hidden); the only
 * exported symbols are luaopen_verawebsockets, vws_lua_lock and vws_lua_unlock.
 */
#ifndef VWS_LUA_H
#define VWS_LUA_H

#include <pthread.h>
#include <stddef.h>

#include "lua.h"
#include "lauxlib.h"
#include "verawebsockets.h"

#define VL_EXPORT __attribute__((visibility("default")))

#define VL_NAME    "verawebsockets"
#define VL_VERSION "2.0.0"

#define VL_STATE_MT  "verawebsockets.State"  /* registry key of the per-VM State userdata */
#define VL_CONN_MT   "verawebsockets.Conn"
#define VL_CLIENT_MT "verawebsockets.Client"
#define VL_SERVER_MT "verawebsockets.Server"

#define VL_ERRLEN 256

/* A recursive lock that can be released completely while a thread waits in C
 * (so the dispatcher may run handlers while the VM's own thread is blocked in
 * ws.loop) and that the dispatcher can give up waiting for when asked to stop. */
typedef struct vl_lock {
	pthread_mutex_t m;
	pthread_cond_t  cv;
	pthread_t       owner;
	int             count;
} vl_lock;

/* Per lua_State record. Lives in C memory (the dispatcher thread may use it
 * while the State userdata is being finalized); freed when its last reference
 * (the State userdata, the dispatcher thread) is dropped. */
typedef struct vl_state {
	struct vl_state *next;     /* static list, see dispatch.c */
	int              refs;     /* protected by the list mutex */
	lua_State       *main_L;   /* the L luaopen_verawebsockets was given */
	lua_State       *T;        /* thread the dispatcher runs handlers on */
	int              T_ref;    /* registry ref anchoring T */
	int              conns_ref;/* registry ref: handle -> wso, weak values */
	int              live_ref; /* registry ref: handle -> wso, strong, while active */
	int              dying_ref;/* registry ref: handle -> true, drop from live when drained */
	vws_ctx          ctxA;     /* standalone connections (ws.loop / ws.dispatch) */
	vws_ctx          ctxB;     /* Luup-mode connections (dispatcher thread) */
	int              fdA, fdB; /* cached vws_ctx_event_fd results, -1 until known */
	vl_lock          lock;
	int              stop;     /* set (under lock.m) when the state closes; read with VL_STOPPED */
	int              started;  /* dispatcher thread started */
	pthread_t        thread;
	int              wake[2];  /* self-pipe to wake the dispatcher's poll */
} vl_state;

#define VL_STOPPED(st) __atomic_load_n(&(st)->stop, __ATOMIC_ACQUIRE)

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

/* dispatch.c */
void      vl_lock_init(vl_lock *k);
void      vl_lock_destroy(vl_lock *k);
void      vl_lock_acquire(vl_lock *k);
void      vl_lock_release(vl_lock *k);
int       vl_lock_release_all(vl_lock *k);          /* returns the saved depth (0 if not owner) */
void      vl_lock_reacquire(vl_lock *k, int depth); /* no-op when depth == 0 */
vl_state *vl_state_new(lua_State *L, char *err, size_t errlen);
void      vl_state_close(vl_state *st);             /* from the State __gc */
vl_state *vl_upstate(lua_State *L);                  /* upvalue 1; NULL once closed */
int       vl_start_dispatcher(vl_state *st, char *err, size_t errlen); /* under lock */
int       vl_deliver_pending(vl_state *st, lua_State *L, vws_ctx ctx, int max); /* under lock */
int       vl_wait_fds(vl_state *st, const vws_ctx *ctxs, int n, int timeout_ms); /* lock released inside */
int       vl_live_set_cf(lua_State *L); /* (st lightuserdata, wso, handle): live[h] = wso; pcall it */
int       vl_lock_acquire_or_stop(vl_lock *k, vl_state *st);

/* Registers metatable `name` (once per VM): __index = methods, each a closure
 * over the State userdata at index su; __gc and __tostring. Leaves the stack as is. */
void vl_new_metatable(lua_State *L, const char *name, const luaL_Reg *methods, int su,
                      lua_CFunction gc, lua_CFunction tostring);

/* verawebsockets.c: pushes the wso of a connection accepted by a server on its
 * first event (returns 1), or returns 0 (nothing pushed, connection freed). */
int vl_accept(lua_State *L, vl_state *st, vws_conn h);

/* sync.c */
void vl_open_client(lua_State *L, int state_idx); /* leaves the ws.client table on the stack */

#endif /* VWS_LUA_H */
