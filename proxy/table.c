/*
 * table.c - the handle tables (px.mu held): contexts, connections (hashed by
 * handle, and listed per context) and servers; finding, adding an accepted
 * connection, unlinking and freeing entries.
 */
#define _GNU_SOURCE
#include <stdlib.h>

#include "proxy.h"

struct px_ctx *px_ctx_find(uint64_t id)
{
	struct px_ctx *c;
	for (c = px.ctxs; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

struct px_conn *px_conn_find(uint64_t id)
{
	struct px_conn *c;
	for (c = px.tab[id % PX_BUCKETS]; c; c = c->hnext)
		if (c->id == id)
			return c;
	return NULL;
}

/* Adds the connection that a server of helper gen accepted (the reader, on
 * its SERVER_ESTABLISHED): open, without URL, never revived in another helper;
 * its max_message_size is the server's. */
struct px_conn *px_conn_accepted(struct px_ctx *c, uint64_t id, unsigned gen, uint64_t server)
{
	struct px_conn *cn = calloc(1, sizeof *cn);
	if (!cn)
		return NULL;
	cn->id = id;
	cn->ctx = c;
	cn->gen = gen;
	cn->state = VWS_STATE_OPEN;
	cn->attempt = 1;
	cn->server = server;
	cn->max_msg = PX_DEFAULT_MAX_MSG;
	{
		struct px_server *s = px_server_find(server);
		if (s)
			cn->max_msg = s->max_msg;
	}
	cn->opts_tail = &cn->opts;
	cn->hnext = px.tab[id % PX_BUCKETS];
	px.tab[id % PX_BUCKETS] = cn;
	cn->cnext = c->conns;
	c->conns = cn;
	return cn;
}

struct px_server *px_server_find(uint64_t id)
{
	struct px_server *s;
	for (s = px.servers; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

void px_server_unlink(struct px_server *s)
{
	struct px_server **pp;
	for (pp = &px.servers; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
}

void px_conn_unlink(struct px_conn *c)
{
	struct px_conn **pp;
	for (pp = &px.tab[c->id % PX_BUCKETS]; *pp; pp = &(*pp)->hnext)
		if (*pp == c) {
			*pp = c->hnext;
			break;
		}
	for (pp = &c->ctx->conns; *pp; pp = &(*pp)->cnext)
		if (*pp == c) {
			*pp = c->cnext;
			break;
		}
}

void px_conn_destroy(struct px_conn *c)
{
	struct px_opt *o, *next;
	for (o = c->opts; o; o = next) {
		next = o->next;
		free(o->name);
		free(o->value);
		free(o);
	}
	px_share_drop(c);
	free(c->url);
	free(c->async_err);
	free(c->proto);
	free(c);
}

void px_ctx_unref(struct px_ctx *c)
{
	if (--c->refs > 0)
		return;
	pthread_cond_destroy(&c->cond);
	free(c);
}
