/*
 * share.c - shared writes (internal/wire/doc.go, wsengine/gate.go): the
 * caller's thread writes a small message's frame to the connection's socket
 * itself, instead of waking the helper for it, while the gate in the memory
 * shared with the helper lets it. A round trip then waits for three wakeups,
 * not four (docs/platforms.md, "What is left out of process").
 *
 * The gate memory is made here before the helper starts (a memfd, else an
 * unlinked file in /dev/shm or /tmp) and becomes the helper's fd 4. The helper
 * hands over a copy of each ws:// connection's socket with a WIRE_EVENT_SHARE
 * (the descriptor on the frame's first byte: the reader keeps the descriptors
 * that come with its reads in order, px_rd_recv). All of it under px.mu.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <unistd.h>

#include "proxy.h"

#ifndef SIOCOUTQ
#include <linux/sockios.h>
#endif
#ifndef MSG_CMSG_CLOEXEC
#define MSG_CMSG_CLOEXEC 0x40000000 /* Linux 2.6.23 */
#endif

#define GATES_SIZE (WIRE_GATE_SLOTS * 8)

/* VWS_SHARE in the environment: "0" turns shared writes off (no gate memory:
 * every message goes through the helper); "cut" (for tests) makes every third
 * frame written here stop after 3 bytes, so that the helper takes the rest. */
static int share_off, share_cut;

/* Makes the gate memory: its descriptor (close-on-exec) and mapping in h, or
 * leaves h->gates NULL (then no writes are shared). */
void px_gates_open(struct px_helper *h)
{
	int fd = -1;
	void *m;
	const char *env = getenv("VWS_SHARE");
	h->gates = NULL;
	h->gates_fd = -1;
	share_off = env && strcmp(env, "0") == 0;
	share_cut = env && strcmp(env, "cut") == 0;
	if (share_off)
		return;
#ifdef SYS_memfd_create
	fd = (int)syscall(SYS_memfd_create, "vws-gates", 1u /* MFD_CLOEXEC */);
#endif
	if (fd < 0) {
		static const char *dirs[] = {"/dev/shm", "/tmp"};
		size_t i;
		for (i = 0; i < sizeof dirs / sizeof dirs[0] && fd < 0; i++) {
			char path[64];
			snprintf(path, sizeof path, "%s/vws-gates-XXXXXX", dirs[i]);
			fd = mkstemp(path); /* mkostemp is missing from older uClibc */
			if (fd >= 0) {
				unlink(path);
				fcntl(fd, F_SETFD, FD_CLOEXEC);
			}
		}
	}
	if (fd < 0)
		return;
	if (ftruncate(fd, GATES_SIZE) < 0) {
		close(fd);
		return;
	}
	m = mmap(NULL, GATES_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		close(fd);
		return;
	}
	h->gates = m;
	h->gates_fd = fd;
}

void px_gates_close(struct px_helper *h)
{
	if (h->gates)
		munmap(h->gates, GATES_SIZE);
	if (h->gates_fd >= 0)
		close(h->gates_fd);
	h->gates = NULL;
	h->gates_fd = -1;
}

/* ---- descriptors that come with the helper's frames ---------------------- */

ssize_t px_rd_recv(struct px_rd *r, void *buf, size_t n, int flags)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(PX_RD_FDS * sizeof(int))];
	} cb;
	struct iovec iov;
	struct msghdr m;
	struct cmsghdr *c;
	ssize_t k;

	iov.iov_base = buf;
	iov.iov_len = n;
	memset(&m, 0, sizeof m);
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = cb.b;
	m.msg_controllen = sizeof cb.b;
	k = recvmsg(r->fd, &m, flags | MSG_CMSG_CLOEXEC);
	if (k < 0)
		return k;
	for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		size_t i, nfd;
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < nfd; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
			if (r->nfds < PX_RD_FDS) {
				r->fds[r->nfds++] = fd;
			} else { /* never: one a frame, frames taken in order */
				close(fd);
				r->fds_lost = 1; /* the descriptors no longer match their frames */
			}
		}
	}
	return k;
}

/* The oldest descriptor received and not taken, or -1. */
static int rd_take_fd(struct px_rd *r)
{
	int fd;
	if (r->nfds == 0)
		return -1;
	fd = r->fds[0];
	memmove(r->fds, r->fds + 1, (size_t)--r->nfds * sizeof(int));
	return fd;
}

void px_rd_close_fds(struct px_rd *r)
{
	while (r->nfds > 0)
		close(r->fds[--r->nfds]);
}

/* ---- the shares -------------------------------------------------------------- */

/* The local port of socket fd, or -1. */
static int local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}

/* A WIRE_EVENT_SHARE of helper h (px.mu held): values ctx, conn, slot
 * (opcode), 0, gen (code), the socket's local port (attempt), ...; its
 * descriptor is the oldest taken with the frames. Kept for an open
 * connection of h's when it is that socket, else closed. */
void px_share_attach(struct px_helper *h, struct px_rd *r, const struct px_reply *v)
{
	int fd = rd_take_fd(r);
	struct px_conn *cn;
	struct px_share *s;
	uint64_t slot;
	if (fd < 0)
		return;
	if (v->n < 6 || v->v[1].is_bytes || v->v[2].is_bytes || v->v[4].is_bytes || v->v[5].is_bytes || !h->gates ||
		r->fds_lost || local_port(fd) != v->v[5].i) {
		close(fd);
		return;
	}
	cn = px_conn_find((uint64_t)v->v[1].i);
	slot = (uint64_t)v->v[2].i;
	if (!cn || cn->gen != h->gen || cn->state != VWS_STATE_OPEN || slot >= WIRE_GATE_SLOTS ||
		!(s = malloc(sizeof *s))) {
		close(fd);
		return;
	}
	px_share_drop(cn);
	s->fd = fd;
	s->slot = (uint32_t)slot;
	s->gen = (uint32_t)v->v[4].i;
	cn->share = s;
}

void px_share_drop(struct px_conn *cn)
{
	if (cn->share) {
		close(cn->share->fd);
		free(cn->share);
		cn->share = NULL;
	}
}

/* Unpredictable masking keys (RFC 6455 section 5.3), drawn 64 at a time. */
static int mask_key(uint8_t key[4])
{
	static uint8_t pool[256];
	static size_t left;
	if (left < 4) {
		ssize_t k = -1;
#ifdef SYS_getrandom
		do
			k = syscall(SYS_getrandom, pool, sizeof pool, 0);
		while (k < 0 && errno == EINTR);
#endif
		if (k != (ssize_t)sizeof pool) {
			int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
			k = fd < 0 ? -1 : read(fd, pool, sizeof pool);
			if (fd >= 0)
				close(fd);
			if (k != (ssize_t)sizeof pool)
				return -1;
		}
		left = sizeof pool;
	}
	memcpy(key, pool + sizeof pool - left, 4);
	left -= 4;
	return 0;
}

/* Writes a message of connection cn itself when its gate lets it (px.mu
 * held; h is px.h). Returns PX_SHARE_DONE (written whole), PX_SHARE_NO (not
 * written: send it through the helper), or PX_SHARE_PART (the frame in fb,
 * of which the socket took part: *rest and *restlen say what is left, to go
 * to the helper with WIRE_OP_SHARE_REST while the gate stays the proxy's). */
int px_share_write(struct px_helper *h, struct px_conn *cn, int opcode, const char *data, size_t len,
	uint8_t *fb, const uint8_t **rest, size_t *restlen)
{
	static unsigned cuts;
	struct px_share *s = cn->share;
	uint32_t *gate, free_;
	size_t hl = 0, i;
	int outq = 0;
	ssize_t k;

	if (!s || !h->gates || cn->gen != h->gen || len > PX_SHARE_MAX)
		return PX_SHARE_NO;
	gate = &h->gates[2 * s->slot];
	if (__atomic_load_n(gate + 1, __ATOMIC_SEQ_CST) != cn->sent)
		return PX_SHARE_NO; /* calls sent before are still on their way */
	free_ = s->gen << WIRE_GATE_GEN_SHIFT;
	if (!__atomic_compare_exchange_n(gate, &free_, free_ | WIRE_GATE_OTHER, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		return PX_SHARE_NO;
	/* Only into an empty send queue: a frame this small then goes out whole. */
	if (ioctl(s->fd, SIOCOUTQ, &outq) < 0 || outq != 0)
		goto no;
	fb[hl++] = (uint8_t)(0x80 | opcode);
	if (len < 126) {
		fb[hl++] = (uint8_t)len;
	} else {
		fb[hl++] = 126;
		fb[hl++] = (uint8_t)(len >> 8);
		fb[hl++] = (uint8_t)len;
	}
	if (!cn->server) { /* a client masks its frames */
		uint8_t *key = fb + hl;
		fb[hl - (len < 126 ? 1 : 3)] |= 0x80;
		if (mask_key(key) < 0)
			goto no;
		hl += 4;
		for (i = 0; i < len; i++)
			fb[hl + i] = (uint8_t)data[i] ^ key[i & 3];
	} else {
		memcpy(fb + hl, data, len);
	}
	do
		k = send(s->fd, fb, share_cut && ++cuts % 3 == 0 ? 3 : hl + len, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (k < 0 && errno == EINTR);
	if (k == (ssize_t)(hl + len)) {
		__atomic_and_fetch(gate, ~WIRE_GATE_OTHER, __ATOMIC_SEQ_CST);
		return PX_SHARE_DONE;
	}
	if (k > 0) {
		*rest = fb + k;
		*restlen = hl + len - (size_t)k;
		return PX_SHARE_PART;
	}
no:
	__atomic_and_fetch(gate, ~WIRE_GATE_OTHER, __ATOMIC_SEQ_CST);
	return PX_SHARE_NO;
}
