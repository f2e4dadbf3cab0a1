/*
 * order_test.c - failing in order through the out-of-process proxy: a
 * protocol violation that the helper reports behind a message waits in the
 * proxy's queue until the caller comes back for events. Run by
 * cmd/vws-helper/order_test.go against its raw peer (paths /queued, /signal,
 * /stalled; the peer checks the frames it gets):
 *   VWS_HELPER=... VWS_TEST_URL=ws://127.0.0.1:P ./order_test
 * Prints "ok N - ..." / "not ok N - ..." lines and exits 1 if any check failed.
 */
#include "harness.h"

#include <unistd.h>

/* Waits up to 5 s, taking nothing, until ctx has n events pending. */
static int wait_pending(vws_ctx ctx, int n)
{
	long long end = now_ms() + 5000;
	while (vws_ctx_pending(ctx) < n && now_ms() < end)
		usleep(2000);
	return vws_ctx_pending(ctx) >= n;
}

/* Connects to base + path in ctx (with option name=value unless NULL) and
 * takes its ESTABLISHED event. */
static vws_conn open_conn(vws_ctx ctx, const char *base, const char *path, const char *name, const char *value)
{
	char url[256], err[256] = "";
	vws_conn c = 0;
	vws_event ev;
	int ok;
	snprintf(url, sizeof url, "%s%s", base, path);
	ok = vws_conn_new(ctx, url, &c, err, sizeof err) == VWS_OK &&
		(!name || vws_conn_set_option(c, name, value, err, sizeof err) == VWS_OK) &&
		vws_conn_connect(c, err, sizeof err) == VWS_OK &&
		vws_ctx_next_event(ctx, 5000, &ev) == 1;
	ok = ok && ev.type == VWS_EV_ESTABLISHED && ev.conn == c;
	check(ok, "%s: open (%s)", path, err);
	vws_event_clear(&ev);
	return c;
}

/* Takes the next event and checks it is the unclean CLOSED 1002 of c. */
static void expect_closed(vws_ctx ctx, vws_conn c, const char *path)
{
	vws_event ev;
	int rc = vws_ctx_next_event(ctx, 5000, &ev);
	check(rc == 1 && ev.conn == c && ev.type == VWS_EV_CLOSED && !ev.clean && ev.code == 1002,
		"%s: CLOSED 1002 (rc %d, type %d, code %d, %.*s)", path, rc, ev.type, ev.code, (int)ev.len, ev.data ? ev.data : "");
	vws_event_clear(&ev);
}

int main(void)
{
	const char *base = getenv("VWS_TEST_URL");
	char err[256] = "", buf[4096];
	vws_event evs[8], ev;
	vws_batch b;
	vws_ctx ctx;
	vws_conn c;
	long long t0;
	int n, ok;

	if (!base) {
		fprintf(stderr, "VWS_TEST_URL not set\n");
		return 2;
	}
	check(vws_ctx_new(&ctx, err, sizeof err) == VWS_OK, "ctx_new (%s)", err);

	/* ---- the message and the marker queued: the batch stops before the marker ---- */
	c = open_conn(ctx, base, "/queued", NULL, NULL);
	check(wait_pending(ctx, 2), "/queued: message and marker pending (%d)", vws_ctx_pending(ctx));
	memset(&b, 0, sizeof b);
	b.evs = evs;
	b.max = 8;
	b.buf = buf;
	b.buflen = sizeof buf;
	n = vws_ctx_next_events(ctx, 0, &b);
	check(n == 1 && b.left == 1 && evs[0].type == VWS_EV_RECEIVE && evs[0].len == 5 && !memcmp(evs[0].data, "Hello", 5),
		"/queued: the batch is the message alone (n %d, left %d, type %d)", n, b.left, n > 0 ? evs[0].type : -1);
	vws_batch_release(&b);
	usleep(100000); /* a slow handler */
	check(vws_conn_state(c) == VWS_STATE_OPEN, "/queued: still open while the failure waits (%d)", vws_conn_state(c));
	check(vws_conn_send(c, VWS_OP_TEXT, "Hello", 5, err, sizeof err) == VWS_OK, "/queued: the handler's echo (%s)", err);
	expect_closed(ctx, c, "/queued"); /* the caller is back: the marker goes, the close follows */
	vws_conn_free(c);

	/* ---- nothing of it waits (taken, and the caller came back): fails at once ---- */
	c = open_conn(ctx, base, "/signal", NULL, NULL);
	check(vws_ctx_next_event(ctx, 5000, &ev) == 1 && ev.type == VWS_EV_RECEIVE, "/signal: message");
	vws_event_clear(&ev);
	check(vws_ctx_next_event(ctx, 0, &ev) == 0, "/signal: back for more, nothing");
	check(vws_conn_send(c, VWS_OP_TEXT, "go", 2, err, sizeof err) == VWS_OK, "/signal: send go (%s)", err);
	t0 = now_ms();
	ok = wait_pending(ctx, 1);
	t0 = now_ms() - t0;
	check(ok && t0 < 1500, "/signal: CLOSED queued after %lld ms, with no call (close_timeout 3 s)", t0);
	expect_closed(ctx, c, "/signal");
	vws_conn_free(c);

	/* ---- a caller that does not come back: failed after close_timeout ---- */
	t0 = now_ms(); /* the violation comes right after the handshake */
	c = open_conn(ctx, base, "/stalled", "close_timeout", "300");
	ok = wait_pending(ctx, 3);
	t0 = now_ms() - t0;
	check(ok && t0 >= 250, "/stalled: message, marker and CLOSED pending after %lld ms (close_timeout 300)", t0);
	check(vws_ctx_next_event(ctx, 0, &ev) == 1 && ev.type == VWS_EV_RECEIVE, "/stalled: message first");
	vws_event_clear(&ev);
	expect_closed(ctx, c, "/stalled");
	check(vws_ctx_pending(ctx) == 0, "/stalled: nothing left (%d)", vws_ctx_pending(ctx));
	vws_conn_free(c);

	check(vws_ctx_free(ctx) == VWS_OK, "ctx_free");
	printf("1..%d\n", nchecks);
	printf("%s: %d of %d checks failed\n", nfailed ? "FAIL" : "PASS", nfailed, nchecks);
	return nfailed ? 1 : 0;
}
