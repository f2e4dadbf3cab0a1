/*
 * http.c - plain HTTP requests of a ws.listen server (VWS_EV_HTTP): the req
 * table, the `http` handler called through the protected path, its answer
 * given back with vws_http_respond.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "vws_lua.h"

/* Pushes the req table of an event's data: "METHOD TARGET PEER\n", header
 * lines "Name: value\n", "\n", body. Header names are lower-cased; a header
 * sent more than once gets its values joined with ", ". */
static void push_request(lua_State *L, const char *d, size_t len)
{
	const char *end = d + len, *nl, *sp1, *sp2, *q;
	luaL_Buffer b;

	lua_createtable(L, 0, 8);
	nl = memchr(d, '\n', len);
	if (!nl)
		nl = end;
	sp1 = memchr(d, ' ', (size_t)(nl - d));
	sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(nl - sp1 - 1)) : NULL;
	if (!sp1 || !sp2)
		sp1 = sp2 = nl;
	lua_pushlstring(L, d, (size_t)(sp1 - d));
	lua_setfield(L, -2, "method");
	if (sp2 > sp1) {
		const char *t = sp1 + 1;
		lua_pushlstring(L, t, (size_t)(sp2 - t));
		lua_setfield(L, -2, "target");
		q = memchr(t, '?', (size_t)(sp2 - t));
		lua_pushlstring(L, t, (size_t)((q ? q : sp2) - t));
		lua_setfield(L, -2, "path");
		lua_pushlstring(L, q ? q + 1 : "", q ? (size_t)(sp2 - q - 1) : 0);
		lua_setfield(L, -2, "query");
		lua_pushlstring(L, sp2 + 1, (size_t)(nl - sp2 - 1));
		lua_setfield(L, -2, "peer");
	}
	lua_newtable(L);
	d = nl < end ? nl + 1 : end;
	while (d < end && *d != '\n') {
		const char *colon, *v;
		size_t i, vn;
		nl = memchr(d, '\n', (size_t)(end - d));
		if (!nl)
			nl = end;
		colon = memchr(d, ':', (size_t)(nl - d));
		if (colon) {
			luaL_buffinit(L, &b);
			for (i = 0; d + i < colon; i++)
				luaL_addchar(&b, (char)tolower((unsigned char)d[i]));
			luaL_pushresult(&b);
			v = colon + 1;
			while (v < nl && *v == ' ')
				v++;
			vn = (size_t)(nl - v);
			lua_pushvalue(L, -1);
			lua_rawget(L, -3);
			if (lua_isstring(L, -1)) {
				lua_pushliteral(L, ", ");
				lua_pushlstring(L, v, vn);
				lua_concat(L, 3);
			} else {
				lua_pop(L, 1);
				lua_pushlstring(L, v, vn);
			}
			lua_rawset(L, -3);
		}
		d = nl < end ? nl + 1 : end;
	}
	lua_setfield(L, -2, "headers");
	if (d < end)
		d++; /* the empty line */
	lua_pushlstring(L, d, (size_t)(end - d));
	lua_setfield(L, -2, "body");
}

/* Answers request h with a short text (the request failed in Lua). */
static void respond_text(vws_conn h, int status, const char *text)
{
	vws_http_respond(h, status, "Content-Type: text/plain; charset=utf-8", text, strlen(text), NULL, 0);
}

/* Collects the handler's headers table at idx as "Name: value\n" lines
 * (pushed); returns 0 (nothing pushed) when it is not a table of strings. */
static int push_header_text(lua_State *L, int idx)
{
	luaL_Buffer b;
	if (lua_isnil(L, idx)) {
		lua_pushliteral(L, "");
		return 1;
	}
	if (!lua_istable(L, idx))
		return 0;
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		if (lua_type(L, -2) != LUA_TSTRING || (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)) {
			lua_pop(L, 2);
			return 0;
		}
		lua_pop(L, 1);
	}
	luaL_buffinit(L, &b);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pushvalue(L, -2);
		luaL_addvalue(&b);
		luaL_addlstring(&b, ": ", 2);
		luaL_addvalue(&b); /* the value (a number becomes text) */
		luaL_addchar(&b, '\n');
	}
	luaL_pushresult(&b);
	return 1;
}

/* Answers request ev with the handler's results status, headers, body at
 * base .. base+2 (status lo..599, headers a table of strings or nil, body a
 * string or nil); anything else is reported as an error of `who` and
 * answered with 500. */
static void respond_results(lua_State *L, vl_state *st, const vws_event *ev, int base, int fenv, const char *who,
                            const char *first, int lo)
{
	size_t blen = 0;
	const char *body;
	char err[VL_ERRLEN] = "";
	int status = 0, bad = 0;

	if (lua_type(L, base) != LUA_TNUMBER)
		bad = lua_pushfstring(L, "%s: %s expected as its first result", who, first) != NULL;
	else if ((status = (int)lua_tonumber(L, base)) < lo || status > 599)
		bad = lua_pushfstring(L, "%s: status %d..599 expected", who, lo) != NULL;
	else if (!lua_isnil(L, base + 2) && !lua_isstring(L, base + 2))
		bad = lua_pushfstring(L, "%s: body (a string) expected as its third result", who) != NULL;
	else if (!push_header_text(L, base + 1))
		bad = lua_pushfstring(L, "%s: headers ({[\"Name\"] = \"value\"}) expected as its second result", who) != NULL;
	if (bad) {
		vl_report(st, ev->type, L, fenv);
		respond_text(ev->conn, 500, "internal server error\n");
		return;
	}
	body = lua_isnil(L, base + 2) ? "" : lua_tolstring(L, base + 2, &blen);
	if (vws_http_respond(ev->conn, status, lua_tostring(L, -1), body, blen, err, sizeof err) != VWS_OK) {
		lua_pushfstring(L, "%s: %s", who, err);
		vl_report(st, ev->type, L, fenv);
	}
}

/* Pushes the uservalue table of request ev's server and its fenv: on
 * success the stack ends ... uservalue, fenv, *uv and *fenv are their
 * indexes (*fenv 0 when it is no table); else nothing is left and 0 is
 * returned (the server is gone). */
static int push_server_env(lua_State *L, vl_state *st, const vws_event *ev, int *uv, int *fenv)
{
	vws_server sh = 0;
	int top = lua_gettop(L);

	if (vws_conn_server(ev->conn, &sh) != VWS_OK || sh == 0)
		return 0;
	lua_rawgeti(L, LUA_REGISTRYINDEX, st->conns_ref);
	lua_pushnumber(L, (lua_Number)sh);
	lua_rawget(L, -2);
	lua_remove(L, -2);
	if (!vl_to_server(L, -1)) {
		lua_settop(L, top);
		return 0;
	}
	lua_getuservalue(L, -1);
	lua_remove(L, -2);
	*uv = lua_gettop(L);
	lua_getfield(L, -1, "fenv");
	*fenv = lua_istable(L, -1) ? lua_gettop(L) : 0;
	return 1;
}

/* push_server_env, then the server's handler `name` (a function) on top. */
static int push_handler(lua_State *L, vl_state *st, const vws_event *ev, const char *name, int *fenv)
{
	int top = lua_gettop(L), uv;

	if (!push_server_env(L, st, ev, &uv, fenv))
		return 0;
	lua_getfield(L, uv, name);
	if (!lua_isfunction(L, -1)) {
		lua_settop(L, top);
		return 0;
	}
	return 1;
}

/* Delivers a VWS_EV_HTTP event (under lua_cpcall, stack: [1] = message
 * handler): finds the server's `http` handler, calls it with the req table
 * and answers with what it returns; nil (or no handler) = not handled (the
 * server goes on with http_root, or 404); an error = 500, reported. */
int vl_deliver_http(lua_State *L, vl_state *st, const vws_event *ev)
{
	int fenv, base;

	if (!push_handler(L, st, ev, "http", &fenv)) {
		vws_http_respond(ev->conn, 0, NULL, NULL, 0, NULL, 0);
		return 0;
	}
	base = lua_gettop(L);
	push_request(L, ev->data ? ev->data : "", ev->len);
	if (lua_pcall(L, 1, 3, 1) != 0) {
		vl_report(st, ev->type, L, fenv);
		respond_text(ev->conn, 500, "internal server error\n");
		return 0;
	}
	/* status, headers, body at base .. base+2 */
	if (lua_isnil(L, base)) {
		vws_http_respond(ev->conn, 0, NULL, NULL, 0, NULL, 0);
		return 0;
	}
	respond_results(L, st, ev, base, fenv, "http handler", "status (a number) or nil", 200);
	return 0;
}

/* Sets req.protocols (the offered subprotocols, a list) from req.headers
 * and moves req.body (the verified client certificate's subject) to
 * req.peer_cert (nil without one); req at idx. */
static void filter_fields(lua_State *L, int idx)
{
	const char *p;
	int n = 0;

	lua_newtable(L);
	lua_getfield(L, idx, "headers");
	lua_getfield(L, -1, "sec-websocket-protocol");
	p = lua_tostring(L, -1);
	while (p && *p) {
		const char *e;
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		e = p;
		while (*e && *e != ',' && *e != ' ' && *e != '\t')
			e++;
		if (e > p) {
			lua_pushlstring(L, p, (size_t)(e - p));
			lua_rawseti(L, -4, ++n);
		}
		p = e;
	}
	lua_pop(L, 2);
	lua_setfield(L, idx, "protocols");
	lua_getfield(L, idx, "body");
	if (lua_objlen(L, -1) > 0)
		lua_setfield(L, idx, "peer_cert");
	else
		lua_pop(L, 1);
	lua_pushnil(L);
	lua_setfield(L, idx, "body");
}

/* Delivers a VWS_EV_FILTER event (under lua_cpcall, stack: [1] = message
 * handler). A handshake the Origin policy refuses (opcode 403, origins
 * given as a function) first goes to origins(origin, req): falsy refuses
 * with 403. Then the server's `filter`, if any, with the req table: nil or
 * true accepts; false refuses with 403; status (300..599), headers, body
 * refuse with them. An error, or anything else, refuses with 500 and is
 * reported: a filter that fails lets nobody in. */
int vl_deliver_filter(lua_State *L, vl_state *st, const vws_event *ev)
{
	int uv, fenv, req, base;

	if (!push_server_env(L, st, ev, &uv, &fenv)) {
		respond_text(ev->conn, 503, "server going away\n");
		return 0;
	}
	push_request(L, ev->data ? ev->data : "", ev->len);
	req = lua_gettop(L);
	filter_fields(L, req);
	if (ev->opcode == 403) {
		lua_getfield(L, uv, "origins");
		lua_getfield(L, req, "headers");
		lua_getfield(L, -1, "origin");
		lua_remove(L, -2);
		lua_pushvalue(L, req);
		if (!lua_isfunction(L, -3)) {
			lua_settop(L, req);
			respond_text(ev->conn, 403, "origin not allowed\n");
			return 0;
		}
		if (lua_pcall(L, 2, 1, 1) != 0) {
			vl_report(st, ev->type, L, fenv);
			respond_text(ev->conn, 500, "internal server error\n");
			return 0;
		}
		if (!lua_toboolean(L, -1)) {
			respond_text(ev->conn, 403, "origin not allowed\n");
			return 0;
		}
		lua_settop(L, req);
	}
	lua_getfield(L, uv, "filter");
	if (!lua_isfunction(L, -1)) {
		vws_http_respond(ev->conn, 0, NULL, NULL, 0, NULL, 0);
		return 0;
	}
	base = lua_gettop(L);
	lua_pushvalue(L, req);
	if (lua_pcall(L, 1, 3, 1) != 0) {
		vl_report(st, ev->type, L, fenv);
		respond_text(ev->conn, 500, "internal server error\n");
		return 0;
	}
	if (lua_isnil(L, base) || (lua_isboolean(L, base) && lua_toboolean(L, base))) {
		vws_http_respond(ev->conn, 0, NULL, NULL, 0, NULL, 0);
		return 0;
	}
	if (lua_isboolean(L, base)) {
		respond_text(ev->conn, 403, "forbidden\n");
		return 0;
	}
	respond_results(L, st, ev, base, fenv, "filter", "true, nil, false or a status (a number)", 300);
	return 0;
}
