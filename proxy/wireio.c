/*
 * wireio.c - the wire's frames (internal/wire): building call frames
 * (px_buf_*), sending a whole frame without blocking for good (px_send_frame),
 * and reading a frame's values on the reader's side (px_rd_exact,
 * px_read_values).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "proxy.h"

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

void px_buf_vmsg(struct px_buf *b, int op, uint64_t id, const char *fmt, va_list ap)
{
	px_buf_start(b, op);
	px_buf_int(b, (int64_t)id);
	for (; *fmt; fmt++) {
		const char *s;
		const void *p;
		size_t n;
		switch (*fmt) {
		case 'i':
			px_buf_int(b, va_arg(ap, int));
			break;
		case 'u':
			px_buf_int(b, (int64_t)va_arg(ap, uint64_t));
			break;
		case 's':
			s = va_arg(ap, const char *);
			px_buf_bytes(b, s ? s : "", s ? strlen(s) : 0);
			break;
		case 'b':
		case 't':
			p = va_arg(ap, const void *);
			n = va_arg(ap, size_t);
			if (*fmt == 'b')
				px_buf_bytes(b, p, n);
			else
				px_buf_tail(b, p, n);
			break;
		}
	}
}

void px_buf_msg(struct px_buf *b, int op, uint64_t id, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	px_buf_vmsg(b, op, id, fmt, ap);
	va_end(ap);
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

int64_t px_reply_int(const struct px_reply *r, int64_t def)
{
	return r->n >= 3 && !r->v[2].is_bytes ? r->v[2].i : def;
}

/* ---- sending frames ------------------------------------------------------ */

/*
 * When helper h last showed it is alive: now if bytes from it wait in the
 * socket (its frames are coming; our reader has yet to take them), else when
 * the reader last got bytes. Its fd must be open: wmu held, or px.mu held
 * with a request of h not yet done (px_helper_died ends those before closing).
 */
int64_t px_heard_at(struct px_helper *h)
{
	int64_t now = px_now_ms();
	int unread = 0;
	if (h->fd >= 0 && ioctl(h->fd, FIONREAD, &unread) == 0 && unread > 0)
		return now;
	return now - (uint32_t)((uint32_t)now - __atomic_load_n(&h->heard_ms, __ATOMIC_RELAXED));
}

/* Sends a whole frame to h (wmu held); -1 on failure, or when neither a byte
 * of it went out nor one came from h for timeout ms once deadline_ms passed. */
int px_send_frame(struct px_helper *h, struct px_buf *b, int64_t deadline_ms, int timeout)
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
			int64_t alive = px_heard_at(h), left;
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

/* ---- receiving frames ---------------------------------------------------- */

/* Reads exactly n bytes into dst (buffered; large reads go straight to dst). */
int px_rd_exact(struct px_rd *r, void *dst, size_t n)
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
			k = px_rd_recv(r, d, n, 0);
		else
			k = px_rd_recv(r, r->buf, sizeof r->buf, 0);
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
int px_read_values(struct px_rd *r, uint32_t rest, struct px_reply *v)
{
	uint8_t t[9];
	v->n = 0;
	while (rest > 0) {
		struct px_val *x;
		if (v->n == WIRE_MAX_VALUES || px_rd_exact(r, t, 1) < 0)
			return -1;
		x = &v->v[v->n];
		memset(x, 0, sizeof *x);
		if (t[0] == WIRE_TAG_INT) {
			if (rest < 9 || px_rd_exact(r, t + 1, 8) < 0)
				return -1;
			x->i = (int64_t)wire_get64(t + 1);
			rest -= 9;
		} else if (t[0] == WIRE_TAG_BYTES) {
			uint32_t n;
			if (rest < 5 || px_rd_exact(r, t + 1, 4) < 0)
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
			if (px_rd_exact(r, x->b, n) < 0)
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
