/*
 * host.h - what the parts of the LuaUPnP-like test host share (host.c: the
 * states and their checks; luup.c: the luup table, the request port, the probe).
 */
#ifndef VWS_HOST_H
#define VWS_HOST_H

#include <pthread.h>
#include <stddef.h>

#include <lua.h>

#define MAX_STATES 16

/* How the host serialises Lua in a state, and so how events reach it. */
enum host_mode {
	MODE_LUUP, /* the host's own mutex per state; events come as lr_ requests to the
	              host's port, run on its worker threads under that mutex */
	MODE_LOCK  /* vws_lua_lock around everything the host runs; events come on the
	              module's dispatcher thread (vws_lua_use_dispatcher) */
};

/* What a host thread is doing inside a state (for the probe). */
enum activity { ACT_NONE, ACT_LOAD, ACT_JOB, ACT_WAKE };

/* One lua_State of the host: a Luup device running one plugin. */
typedef struct hstate {
	int             id; /* the device number (luup.device) */
	lua_State      *L;
	pthread_mutex_t mu;     /* MODE_LUUP: the host's serialisation of L */
	int             closed; /* under mu: lua_close'd */
	pthread_t       inside; /* the host thread running Lua in L now, 0 if none (atomic) */
	int             activity;

	/* luup.register_handler calls of this state (under reg_mu in luup.c) */
	int  registrations;
	char reg_fname[64], reg_name[64];

	/* call_delay: at most one pending, run by the state's thread */
	char   delay_fn[64], delay_data[128];
	double delay_at;

	/* counters (atomic) */
	int jobs, wakes, wake_errors, overlaps, max_in_flight, in_flight;
	int h_calls, h_ok, h_in_wake, h_foreign, h_bad; /* plugin handler calls seen by the probe */
	int luup_log_errors;                            /* luup.log lines of handler errors */
} hstate;

extern enum host_mode host_mode;
extern __thread int host_thread; /* set on every thread the host starts */

int    check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void   diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
double now_ms(void);
void   sleep_ms(int ms);

/* host_enter/host_leave bracket everything the host runs in hs->L: the host's
 * mutex (MODE_LUUP) or vws_lua_lock (MODE_LOCK). host_enter returns 0 if the
 * state is closed (then it holds nothing). */
int  host_enter(hstate *hs, int activity);
void host_leave(hstate *hs);
void host_mark_closed(hstate *hs); /* between host_enter and host_leave, after lua_close */

double host_close(hstate *hs); /* lua_close under host_enter; returns how long it took */

/* luup.c */
lua_State *luup_newstate(hstate *hs);    /* lua_newstate with hs as the allocator's ud, the probe set */
void       luup_open(lua_State *L, hstate *hs); /* the global luup table */
void       luup_forget(hstate *hs);             /* drop its registered handlers */
void       luup_run_delay(hstate *hs);          /* a due call_delay; the caller is inside */
hstate    *luup_find_handler(const char *name, char *fname, size_t fnlen); /* lr_<name>'s state */
void       luup_checks(hstate *hs);             /* the probe's findings, after host_close */
int        luup_http_test(int seconds);         /* vws-host --http-test */

/* port.c: the request port */
int  luup_serve(void);       /* starts it; returns the port, or -1 */
void luup_stop(void);        /* stops it and joins its threads (bounded) */
int  luup_served(int *bad);  /* requests answered (and how many not 200) */

#endif
