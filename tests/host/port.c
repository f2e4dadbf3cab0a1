/*
 * port.c - the test host's request port, as LuaUPnP's port 3480: an HTTP/1.1
 * server on 127.0.0.1 (a free port; main puts it in VWS_LUUP_PORT).
 *
 *     GET /data_request?id=lr_<name>&... HTTP/1.1
 *
 * calls the function registered with luup.register_handler(fname, name) as
 * fname(lul_request, lul_parameters, lul_outputformat) in the registering state
 * and answers 200 with the text it returns (500 with the message if it raises,
 * 404 for an unknown name). Each connection gets a worker thread of the host;
 * kept-alive (and pipelined) requests are answered in order; the handler runs
 * under host_enter (the host's own mutex of that state in luup mode), never
 * under the module's lock. Every wait is bounded: workers look at `stopping`
 * every 250 ms, and luup_stop joins them all.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <lua.h>

#include "host.h"

#define MAX_CONNS  64
#define MAX_PARAMS 32
#define HEAD_MAX   8192

static int lfd = -1, stopping, served, served_bad;
static pthread_t acc_thread;
static pthread_mutex_t conns_mu = PTHREAD_MUTEX_INITIALIZER;
static struct hconn {
	int       fd, used, done;
	pthread_t th;
} conns[MAX_CONNS];

typedef struct response {
	int         status;
	const char *mime;
	char       *body; /* malloc'd */
	size_t      len;
} response;

static void set_text(response *r, int status, const char *text)
{
	r->status = status;
	r->mime = "text/plain";
	r->body = strdup(text);
	r->len = strlen(text);
}

static int hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* url_decode decodes s in place (%XX and '+'). */
static void url_decode(char *s)
{
	char *w = s;
	for (; *s; s++) {
		if (*s == '+')
			*w++ = ' ';
		else if (*s == '%' && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
			*w++ = (char)(hexval(s[1]) * 16 + hexval(s[2]));
			s += 2;
		} else
			*w++ = *s;
	}
	*w = 0;
}

/* run_handler calls fname(lul_request, lul_parameters, lul_outputformat) in hs->L
 * under host_enter, from this worker thread. */
static void run_handler(hstate *hs, const char *fname, const char *id, char **keys, char **vals, int n, response *r)
{
	lua_State *L;
	const char *fmt = NULL, *s;
	size_t len;
	int i, top, fl = __atomic_add_fetch(&hs->in_flight, 1, __ATOMIC_ACQ_REL), m;

	while (fl > (m = __atomic_load_n(&hs->max_in_flight, __ATOMIC_ACQUIRE)) &&
	       !__atomic_compare_exchange_n(&hs->max_in_flight, &m, fl, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		;
	if (!host_enter(hs, ACT_WAKE)) {
		__atomic_sub_fetch(&hs->in_flight, 1, __ATOMIC_ACQ_REL);
		set_text(r, 404, "No handler (device closed)");
		return;
	}
	L = hs->L;
	top = lua_gettop(L);
	lua_getglobal(L, fname);
	lua_pushstring(L, id);
	lua_newtable(L);
	for (i = 0; i < n; i++) {
		if (strcmp(keys[i], "id") == 0)
			continue;
		if (strcmp(keys[i], "output_format") == 0)
			fmt = vals[i];
		lua_pushstring(L, vals[i]);
		lua_setfield(L, -2, keys[i]);
	}
	if (fmt)
		lua_pushstring(L, fmt);
	else
		lua_pushnil(L);
	if (lua_pcall(L, 3, 2, 0) == 0) {
		s = lua_isstring(L, -2) ? lua_tolstring(L, -2, &len) : (len = 0, "");
		r->status = 200;
		r->mime = "text/plain";
		if (lua_isstring(L, -1)) {
			const char *mt = lua_tostring(L, -1);
			r->mime = strstr(mt, "json") ? "application/json" : strstr(mt, "xml") ? "text/xml" :
			          strstr(mt, "html") ? "text/html" : "text/plain";
		}
		r->body = malloc(len + 1);
		memcpy(r->body, s, len);
		r->len = len;
	} else {
		__atomic_add_fetch(&hs->wake_errors, 1, __ATOMIC_RELAXED);
		set_text(r, 500, lua_isstring(L, -1) ? lua_tostring(L, -1) : "error");
	}
	lua_settop(L, top);
	__atomic_add_fetch(&hs->wakes, 1, __ATOMIC_RELAXED);
	host_leave(hs);
	__atomic_sub_fetch(&hs->in_flight, 1, __ATOMIC_ACQ_REL);
}

/* handle answers one request head (NUL-terminated); *close_after is set for
 * "Connection: close" and HTTP/1.0. */
static void handle(char *head, response *r, int *close_after)
{
	char *line_end = strstr(head, "\r\n"), *method, *target, *version, *path, *query, *p, *save = NULL;
	char *keys[MAX_PARAMS], *vals[MAX_PARAMS], *id = NULL, fname[64];
	hstate *hs;
	int n = 0;

	*line_end = 0;
	method = strtok_r(head, " ", &save);
	target = strtok_r(NULL, " ", &save);
	version = strtok_r(NULL, " ", &save);
	if (!method || !target || !version || strncmp(version, "HTTP/1.", 7) != 0) {
		set_text(r, 400, "Bad request");
		*close_after = 1;
		return;
	}
	*close_after = strcmp(version, "HTTP/1.0") == 0;
	for (p = line_end + 2; *p; p = strstr(p, "\r\n") ? strstr(p, "\r\n") + 2 : p + strlen(p))
		if (strncasecmp(p, "Connection:", 11) == 0) {
			char *e = strstr(p, "\r\n"), c = e ? *e : 0;
			if (e)
				*e = 0;
			if (strcasestr(p, "close"))
				*close_after = 1;
			else if (strcasestr(p, "keep-alive"))
				*close_after = 0;
			if (e)
				*e = c;
		}
	if (strcmp(method, "GET") != 0) {
		set_text(r, 405, "Only GET");
		return;
	}
	path = target;
	query = strchr(target, '?');
	if (query)
		*query++ = 0;
	if (strcmp(path, "/data_request") != 0 && strcmp(path, "/port_3480/data_request") != 0) {
		set_text(r, 404, "Not found");
		return;
	}
	for (p = query ? strtok_r(query, "&", &save) : NULL; p && n < MAX_PARAMS; p = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(p, '=');
		keys[n] = p;
		vals[n] = eq ? (*eq = 0, eq + 1) : p + strlen(p);
		url_decode(keys[n]);
		url_decode(vals[n]);
		if (strcmp(keys[n], "id") == 0)
			id = vals[n];
		n++;
	}
	if (!id) {
		set_text(r, 400, "No id");
		return;
	}
	if (strcmp(id, "alive") == 0) {
		set_text(r, 200, "OK");
		return;
	}
	if (strncmp(id, "lr_", 3) != 0) {
		set_text(r, 501, "Unknown id");
		return;
	}
	if (!(hs = luup_find_handler(id + 3, fname, sizeof fname))) {
		set_text(r, 404, "No handler");
		return;
	}
	run_handler(hs, fname, id, keys, vals, n, r);
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k <= 0) {
			if (k < 0 && errno == EINTR)
				continue;
			return -1;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	default: return "Not Implemented";
	}
}

static void *conn_main(void *arg)
{
	struct hconn *c = arg;
	char buf[HEAD_MAX + 1], hdr[256];
	size_t have = 0;
	int fd = c->fd, close_after = 0;

	host_thread = 1;
	while (!close_after && !__atomic_load_n(&stopping, __ATOMIC_ACQUIRE)) {
		char *end;
		size_t hlen;
		response r = {0, NULL, NULL, 0};
		struct pollfd p = {fd, POLLIN, 0};
		buf[have] = 0;
		end = have ? strstr(buf, "\r\n\r\n") : NULL;
		if (!end) {
			ssize_t k;
			if (have == HEAD_MAX) {
				set_text(&r, 431, "Request head too large");
				close_after = 1;
				goto answer;
			}
			if (poll(&p, 1, 250) == 0)
				continue; /* idle keep-alive: look at `stopping` again */
			k = recv(fd, buf + have, HEAD_MAX - have, 0);
			if (k <= 0)
				break;
			have += (size_t)k;
			continue;
		}
		hlen = (size_t)(end - buf) + 4;
		end[2] = 0; /* the head, with its last CRLF */
		handle(buf, &r, &close_after);
		memmove(buf, buf + hlen, have - hlen); /* pipelined bytes (GET has no body) */
		have -= hlen;
	answer:
		snprintf(hdr, sizeof hdr, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: %s\r\n\r\n",
		         r.status, reason(r.status), r.mime, r.len, close_after ? "close" : "keep-alive");
		__atomic_add_fetch(&served, 1, __ATOMIC_RELAXED);
		if (r.status != 200)
			__atomic_add_fetch(&served_bad, 1, __ATOMIC_RELAXED);
		if (send_all(fd, hdr, strlen(hdr)) != 0 || send_all(fd, r.body ? r.body : "", r.len) != 0)
			close_after = 1;
		free(r.body);
	}
	pthread_mutex_lock(&conns_mu);
	c->fd = -1;
	c->done = 1;
	pthread_mutex_unlock(&conns_mu);
	close(fd);
	return NULL;
}

static void *accept_main(void *arg)
{
	(void)arg;
	host_thread = 1;
	while (!__atomic_load_n(&stopping, __ATOMIC_ACQUIRE)) {
		struct pollfd p = {lfd, POLLIN, 0};
		int fd, i;
		if (poll(&p, 1, 250) <= 0)
			continue;
		if ((fd = accept(lfd, NULL, NULL)) < 0)
			continue;
		pthread_mutex_lock(&conns_mu);
		for (i = 0; i < MAX_CONNS && conns[i].used && !conns[i].done; i++)
			;
		if (i < MAX_CONNS && conns[i].used) { /* a finished worker: reap it */
			pthread_mutex_unlock(&conns_mu);
			pthread_join(conns[i].th, NULL);
			pthread_mutex_lock(&conns_mu);
		}
		if (i == MAX_CONNS) {
			pthread_mutex_unlock(&conns_mu);
			close(fd);
			continue;
		}
		conns[i].fd = fd;
		conns[i].used = 1;
		conns[i].done = 0;
		if (pthread_create(&conns[i].th, NULL, conn_main, &conns[i]) != 0) {
			conns[i].used = 0;
			close(fd);
		}
		pthread_mutex_unlock(&conns_mu);
	}
	return NULL;
}

int luup_serve(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	int one = 1;
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 64) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &len) != 0)
		return -1;
	if (pthread_create(&acc_thread, NULL, accept_main, NULL) != 0)
		return -1;
	return ntohs(a.sin_port);
}

void luup_stop(void)
{
	int i;
	if (lfd < 0)
		return;
	__atomic_store_n(&stopping, 1, __ATOMIC_RELEASE);
	pthread_join(acc_thread, NULL); /* within 250 ms */
	close(lfd);
	lfd = -1;
	pthread_mutex_lock(&conns_mu);
	for (i = 0; i < MAX_CONNS; i++)
		if (conns[i].used && conns[i].fd >= 0)
			shutdown(conns[i].fd, SHUT_RDWR);
	pthread_mutex_unlock(&conns_mu);
	for (i = 0; i < MAX_CONNS; i++)
		if (conns[i].used) {
			pthread_join(conns[i].th, NULL); /* each within 250 ms plus a handler */
			conns[i].used = 0;
		}
}

int luup_served(int *bad)
{
	*bad = __atomic_load_n(&served_bad, __ATOMIC_ACQUIRE);
	return __atomic_load_n(&served, __ATOMIC_ACQUIRE);
}
