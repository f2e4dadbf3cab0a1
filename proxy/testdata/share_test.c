/*
 * share_test.c - shared writes (proxy/share.c): the proxy writes small
 * messages' frames to the connection's socket itself while the helper writes
 * its own (keepalive pings every 2 ms, pongs to the server's pings, messages
 * over 4 KiB, the caller's pings) to the same socket. Run by
 * cmd/vws-helper/share_test.go against a strict server that fails the
 * connection on any bad frame:
 *   VWS_HELPER=... VWS_TEST_URL=ws://127.0.0.1:P/ [VWS_SHARE=0|cut] ./share_test shared|off|cut
 * With "shared", round trips of 1,000 bytes must cost the helper less than
 * 1,500 bytes of reading each (the echo only: the send did not go through it);
 * with "off" (VWS_SHARE=0), more than 1,800 (the send and the echo); with
 * "cut" (VWS_SHARE=cut: every third frame written here stops after 3 bytes
 * and the helper writes the rest) it is only printed.
 */
#include "harness.h"

#include <unistd.h>

static int wait_event(vws_ctx ctx, int timeout_ms, vws_event *ev)
{
	int rc;
	memset(ev, 0, sizeof *ev);
	rc = vws_ctx_next_event(ctx, timeout_ms, ev);
	return rc;
}

/* The bytes the helper has read so far (/proc/PID/io), or -1. */
static long long helper_rchar(void)
{
	char path[64], line[128];
	long long v = -1;
	pid_t pid = helper_pid();
	FILE *f;
	if (pid <= 0)
		return -1;
	snprintf(path, sizeof path, "/proc/%d/io", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "rchar: %lld", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* The next message event (pongs skipped); 0 when none came in 5 s. */
static int next_message(vws_ctx ctx, vws_event *ev)
{
	for (;;) {
		if (wait_event(ctx, 5000, ev) != 1)
			return 0;
		if (ev->type == VWS_EV_RECEIVE)
			return 1;
		if (ev->type != VWS_EV_RECEIVE_PONG) {
			printf("# event %d: %.*s\n", ev->type, (int)ev->len, ev->data ? ev->data : "");
			return 0;
		}
		vws_event_clear(ev);
	}
}

/* Message i of the mixed phase: its size cycles through small ones (written
 * here) and one over 4 KiB (through the helper); it starts with its number. */
static size_t mixed(int i, char *buf)
{
	static const size_t sizes[] = {10, 200, 5000, 100, 4096, 1};
	size_t n = sizes[i % 6];
	char num[16];
	int k = snprintf(num, sizeof num, "%06d", i);
	memset(buf, 'a' + i % 26, n);
	memcpy(buf, num, n < (size_t)k ? n : (size_t)k);
	return n;
}

int main(int argc, char **argv)
{
	const char *url = getenv("VWS_TEST_URL"), *mode = argc > 1 ? argv[1] : "shared";
	static char buf[8192], big[8192];
	char err[256] = "";
	vws_ctx ctx;
	vws_conn c;
	vws_event ev;
	long long r0, r1;
	int i, rc, ok, sent, got;
	const int rtts = 400, n = 3000, burst = 50;

	if (!url) {
		fprintf(stderr, "VWS_TEST_URL not set\n");
		return 2;
	}
	/* Round trips on a connection of its own, where nothing else writes. */
	rc = vws_ctx_new(&ctx, err, sizeof err) == VWS_OK && vws_conn_new(ctx, url, &c, err, sizeof err) == VWS_OK &&
		vws_conn_connect(c, err, sizeof err) == VWS_OK && wait_event(ctx, 5000, &ev) == 1 &&
		ev.type == VWS_EV_ESTABLISHED;
	check(rc, "open (%s)", err);
	vws_event_clear(&ev);
	if (!rc)
		return 1;

	/* Round trips: where the sends went, from the helper's reading. */
	memset(buf, 'r', 1000);
	r0 = helper_rchar();
	for (i = 0, ok = 1; i < rtts && ok; i++) {
		snprintf(buf, 16, "%06d", i);
		buf[6] = 'r';
		ok = vws_conn_send(c, VWS_OP_TEXT, buf, 1000, err, sizeof err) == VWS_OK && next_message(ctx, &ev) &&
			ev.len == 1000 && memcmp(ev.data, buf, 1000) == 0;
		if (ok)
			vws_event_clear(&ev);
	}
	r1 = helper_rchar();
	check(ok, "%d round trips of 1000 bytes (%s)", rtts, err);
	check(r0 >= 0 && r1 > r0, "the helper's rchar: %lld -> %lld", r0, r1);
	if (strcmp(mode, "off") == 0)
		check((r1 - r0) / rtts > 1800, "through the helper: it read %lld bytes a round trip", (r1 - r0) / rtts);
	else if (strcmp(mode, "shared") == 0)
		check((r1 - r0) / rtts < 1500, "written here: the helper read %lld bytes a round trip", (r1 - r0) / rtts);
	else
		printf("# the helper read %lld bytes a round trip\n", (r1 - r0) / rtts);

	vws_conn_close(c, 1000, NULL, 0, err, sizeof err);
	while (wait_event(ctx, 5000, &ev) == 1 && ev.type != VWS_EV_CLOSED)
		vws_event_clear(&ev);
	vws_event_clear(&ev);
	vws_conn_free(c);

	/* Mixed: bursts of messages written here and by the helper, with the
	 * helper's keepalive pings every 2 ms, the caller's pings, and pongs to
	 * the server's pings (every 1 ms once a binary message came), every echo
	 * in order. */
	rc = vws_conn_new(ctx, url, &c, err, sizeof err) == VWS_OK &&
		vws_conn_set_option(c, "ping_interval", "2", err, sizeof err) == VWS_OK &&
		vws_conn_set_option(c, "pong_timeout", "10000", err, sizeof err) == VWS_OK &&
		vws_conn_set_option(c, "pong_events", "1", err, sizeof err) == VWS_OK &&
		vws_conn_connect(c, err, sizeof err) == VWS_OK && wait_event(ctx, 5000, &ev) == 1 &&
		ev.type == VWS_EV_ESTABLISHED;
	check(rc, "open, keepalive pings every 2 ms (%s)", err);
	vws_event_clear(&ev);
	for (sent = got = 0, ok = 1; got < n && ok;) {
		for (i = 0; i < burst && sent < n; i++, sent++) {
			size_t len = mixed(sent, big);
			rc = vws_conn_send(c, sent % 2 ? VWS_OP_BINARY : VWS_OP_TEXT, big, len, err, sizeof err);
			if (rc == VWS_OK && sent % 7 == 0)
				rc = vws_conn_ping(c, "p", 1, err, sizeof err);
			if (rc != VWS_OK) {
				printf("# send %d: %s\n", sent, err);
				ok = 0;
				break;
			}
		}
		for (; got < sent && ok; got++) {
			size_t len = mixed(got, big);
			ok = next_message(ctx, &ev) && ev.len == len && memcmp(ev.data, big, len) == 0 &&
				ev.opcode == (got % 2 ? VWS_OP_BINARY : VWS_OP_TEXT);
			if (!ok)
				printf("# echo %d: type %d, %zu bytes (want %zu): %.*s\n", got, ev.type, ev.len, len,
					(int)(ev.len < 16 ? ev.len : 16), ev.data ? ev.data : "");
			vws_event_clear(&ev);
		}
	}
	check(ok && got == n, "%d messages of 1 to 5000 bytes with pings, echoed in order (%d)", n, got);

	rc = vws_conn_close(c, 1000, "bye", 3, err, sizeof err);
	for (ok = 0; rc == VWS_OK && wait_event(ctx, 5000, &ev) == 1;) {
		int closed = ev.type == VWS_EV_CLOSED;
		ok = closed && ev.code == 1000;
		vws_event_clear(&ev);
		if (closed)
			break;
	}
	check(ok, "closed cleanly (1000)");
	check(vws_ctx_free(ctx) == VWS_OK, "ctx_free");
	printf("PASS: %d of %d failed\n", nfailed, nchecks);
	return nfailed ? 1 : 0;
}
