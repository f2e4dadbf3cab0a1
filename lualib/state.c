/*
 * state.c - the per-VM record (vl_state): its life, its lock, and the list
 * of records behind the exported vws_lua_lock / vws_lua_unlock.
 *
 * Locking rules (see docs/threading in the README):
 *   - In a lock-holding host (delivery "thread"), Lua runs in a VM only by a
 *     thread holding that VM's lock: the host's threads with vws_lua_lock, the
 *     dispatcher, and every ws.* entry. In every other delivery the lock is
 *     taken by the VM's own thread only and never contended.
 *   - The lock is recursive and can be given up completely while a thread
 *     waits in C (ws.loop, ws.dispatch, the sync client), like Lua's own
 *     lua_unlock around C calls: the thread runs no Lua while it waits.
 *   - No Lua error is ever raised while the lock is held: work under the lock
 *     is ABI calls (plain C) and Lua calls made through lua_pcall/lua_cpcall.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vws_lua.h"

/* ---- The lock ------------------------------------------------------------ */

void vl_lock_init(vl_lock *k)
{
	pthread_mutex_init(&k->m, NULL);
	pthread_cond_init(&k->cv, NULL);
	k->count = 0;
}

void vl_lock_destroy(vl_lock *k)
{
	pthread_cond_destroy(&k->cv);
	pthread_mutex_destroy(&k->m);
}

static int owned_by_me(const vl_lock *k)
{
	return k->count > 0 && pthread_equal(k->owner, pthread_self());
}

void vl_lock_acquire(vl_lock *k)
{
	pthread_mutex_lock(&k->m);
	if (owned_by_me(k)) {
		k->count++;
	} else {
		while (k->count > 0)
			pthread_cond_wait(&k->cv, &k->m);
		k->owner = pthread_self();
		k->count = 1;
	}
	pthread_mutex_unlock(&k->m);
}

/* Like vl_lock_acquire, but gives up (returns 0) once VL_STOPPED(st) is set. */
int vl_lock_acquire_or_stop(vl_lock *k, vl_state *st)
{
	int ok = 0;
	pthread_mutex_lock(&k->m);
	if (owned_by_me(k)) {
		k->count++;
		ok = 1;
	} else {
		while (k->count > 0 && !VL_STOPPED(st))
			pthread_cond_wait(&k->cv, &k->m);
		if (!VL_STOPPED(st)) {
			k->owner = pthread_self();
			k->count = 1;
			ok = 1;
		}
	}
	pthread_mutex_unlock(&k->m);
	return ok;
}

void vl_lock_release(vl_lock *k)
{
	pthread_mutex_lock(&k->m);
	if (owned_by_me(k) && --k->count == 0)
		pthread_cond_broadcast(&k->cv);
	pthread_mutex_unlock(&k->m);
}

int vl_lock_release_all(vl_lock *k)
{
	int depth = 0;
	pthread_mutex_lock(&k->m);
	if (owned_by_me(k)) {
		depth = k->count;
		k->count = 0;
		pthread_cond_broadcast(&k->cv);
	}
	pthread_mutex_unlock(&k->m);
	return depth;
}

void vl_lock_reacquire(vl_lock *k, int depth)
{
	if (depth <= 0)
		return;
	pthread_mutex_lock(&k->m);
	while (k->count > 0)
		pthread_cond_wait(&k->cv, &k->m);
	k->owner = pthread_self();
	k->count = depth;
	pthread_mutex_unlock(&k->m);
}

/* ---- The list of records, for vws_lua_lock ---------------------------------- */

static pthread_mutex_t list_mu = PTHREAD_MUTEX_INITIALIZER;
static vl_state *list_head;

void vl_state_unref(vl_state *st)
{
	int last;
	pthread_mutex_lock(&list_mu);
	last = --st->refs == 0;
	pthread_mutex_unlock(&list_mu);
	if (!last)
		return;
	free(st->evbuf);
	vl_lock_destroy(&st->lock);
	pthread_mutex_destroy(&st->waker_mu);
	if (st->wake[0] >= 0)
		close(st->wake[0]);
	if (st->wake[1] >= 0)
		close(st->wake[1]);
	free(st);
}

vl_state *vl_find_state(lua_State *L)
{
	vl_state *st;
	pthread_mutex_lock(&list_mu);
	for (st = list_head; st; st = st->next)
		if (!VL_STOPPED(st) && (st->main_L == L || st->T == L))
			break;
	pthread_mutex_unlock(&list_mu);
	return st;
}

/* vws_lua_lock takes the lock of the VM `L` belongs to. L must be the
 * lua_State the module was required in (or the dispatcher's thread). Unknown
 * states are ignored. Recursive: pair every call with vws_lua_unlock. */
VL_EXPORT void vws_lua_lock(lua_State *L)
{
	vl_state *st = vl_find_state(L);
	if (st)
		vl_lock_acquire(&st->lock);
}

/* vws_lua_unlock releases one level of vws_lua_lock. */
VL_EXPORT void vws_lua_unlock(lua_State *L)
{
	vl_state *st = vl_find_state(L);
	if (st)
		vl_lock_release(&st->lock);
}

/* ---- Record life ------------------------------------------------------------ */

/* Called from luaopen (may raise on memory errors before any ABI call; the
 * contexts are made last and freed on failure by the caller's __gc). */
vl_state *vl_state_new(lua_State *L, char *err, size_t errlen)
{
	vl_state *st = calloc(1, sizeof *st);
	if (!st) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	st->refs = 1;
	st->main_L = L;
	st->wake[0] = st->wake[1] = -1;
	st->fdA = st->fdB = -1;
	st->T_ref = st->conns_ref = st->live_ref = st->dying_ref = st->tb_ref = LUA_NOREF;
	st->luup_port = vl_luup_default_port();
	vl_lock_init(&st->lock);
	pthread_mutex_init(&st->waker_mu, NULL);
	if (pipe(st->wake) != 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		st->wake[0] = st->wake[1] = -1;
		vl_state_unref(st);
		return NULL;
	}
	fcntl(st->wake[0], F_SETFL, O_NONBLOCK);
	fcntl(st->wake[1], F_SETFL, O_NONBLOCK);
	fcntl(st->wake[0], F_SETFD, FD_CLOEXEC);
	fcntl(st->wake[1], F_SETFD, FD_CLOEXEC);
	if (vws_ctx_new(&st->ctxA, err, errlen) != VWS_OK) {
		vl_state_unref(st);
		return NULL;
	}
	if (vws_ctx_new(&st->ctxB, err, errlen) != VWS_OK) {
		vws_ctx_free(st->ctxA);
		vl_state_unref(st);
		return NULL;
	}
	pthread_mutex_lock(&list_mu);
	st->next = list_head;
	list_head = st;
	pthread_mutex_unlock(&list_mu);
	return st;
}

void vl_state_close(vl_state *st)
{
	vl_state **pp;

	/* Wait until no handler runs on the dispatcher, then tell the waker to stop. */
	vl_lock_acquire(&st->lock);
	pthread_mutex_lock(&st->lock.m);
	__atomic_store_n(&st->stop, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&st->lock.cv);
	pthread_mutex_unlock(&st->lock.m);
	vl_lock_release(&st->lock);
	vl_stop_waker(st);
	vl_luup_close_groups(st);
	vws_ctx_free(st->ctxA);
	vws_ctx_free(st->ctxB);
	pthread_mutex_lock(&list_mu);
	for (pp = &list_head; *pp; pp = &(*pp)->next)
		if (*pp == st) {
			*pp = st->next;
			break;
		}
	pthread_mutex_unlock(&list_mu);
	vl_state_unref(st);
}

void vl_state_ref(vl_state *st)
{
	pthread_mutex_lock(&list_mu);
	st->refs++;
	pthread_mutex_unlock(&list_mu);
}

vl_state *vl_upstate(lua_State *L)
{
	vl_state_ud *ud = lua_touserdata(L, lua_upvalueindex(1));
	return ud ? ud->st : NULL;
}

/* The record whose count hook is armed, when there is exactly one (LuaJIT runs
 * a hook set on the main thread in whichever coroutine runs). */
vl_state *vl_find_hooked(void)
{
	vl_state *st, *found = NULL;
	int n = 0;
	pthread_mutex_lock(&list_mu);
	for (st = list_head; st; st = st->next)
		if (!VL_STOPPED(st) && __atomic_load_n(&st->hook_armed, __ATOMIC_ACQUIRE)) {
			found = st;
			n++;
		}
	pthread_mutex_unlock(&list_mu);
	return n == 1 ? found : NULL;
}
