/*
 * silence_test.c - what counts as a wedged helper, against a fake one (run
 * by cmd/vws-helper/silence_test.go: VWS_HELPER is the Go test binary, which
 * answers on cue, VWS_HELPER_TIMEOUT_MS is T): a call waits while events
 * stream in, however long, and fails with VWS_EENGINE once the helper has been
 * silent for T. Prints "ok N - ..." / "not ok N - ..." and exits 1 on failure.
 */
#include "harness.h"

int main(void)
{
	const char *ts = getenv("VWS_HELPER_TIMEOUT_MS");
	long long T = ts ? atoll(ts) : 0, t0, ms;
	char err[256] = "", buf[64];
	vws_ctx ctx;
	vws_conn c;
	size_t n = 0;
	int rc, before;

	if (T <= 0) {
		fprintf(stderr, "set VWS_HELPER_TIMEOUT_MS (and VWS_HELPER to the fake helper)\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	check(vws_ctx_new(&ctx, err, sizeof err) == VWS_OK, "ctx_new");
	rc = vws_conn_new(ctx, "ws://127.0.0.1:1/fake", &c, err, sizeof err);
	check(rc == VWS_OK, "conn_new through the fake helper: %d (%s)", rc, err);

	/* Answered by the proxy: the fake helper never answers OpActive or OpState. */
	t0 = now_ms();
	rc = vws_ctx_active(ctx);
	before = vws_conn_state(c);
	ms = now_ms() - t0;
	check(rc == 0 && before == VWS_STATE_CREATED && ms < T / 2,
		"active %d, state %d without the helper, in %lld ms (T %lld)", rc, before, ms, T);

	t0 = now_ms();
	rc = vws_conn_request_headers(c, buf, sizeof buf);
	ms = now_ms() - t0;
	check(rc == 9 && !strcmp(buf, "Seven: 7\n") && ms >= 3 * T,
		"a reply after 3T of events: the call waited (%d after %lld ms, T %lld)", rc, ms, T);
	check(vws_ctx_pending(ctx) == 24, "the 24 events came before it (%d)", vws_ctx_pending(ctx));

	t0 = now_ms();
	rc = vws_conn_peer(c, buf, sizeof buf);
	ms = now_ms() - t0;
	check(rc == VWS_EENGINE && ms >= T - 50 && ms < 3 * T, "silent helper: peer %d after %lld ms (T %lld)", rc, ms, T);

	rc = vws_conn_buffered(c, &n);
	check(rc == VWS_OK && n == 42, "the next call is answered: buffered %d, %zu", rc, n);

	before = vws_ctx_pending(ctx);
	t0 = now_ms();
	rc = vws_conn_protocol(c, buf, sizeof buf);
	ms = now_ms() - t0;
	check(rc == VWS_EENGINE && ms >= 3 * T, "3T of events, then silence: protocol %d after %lld ms (T %lld)", rc, ms, T);
	check(vws_ctx_pending(ctx) - before == 24, "its 24 events came (%d)", vws_ctx_pending(ctx) - before);

	check(vws_ctx_free(ctx) == VWS_OK, "ctx_free");
	printf("1..%d\n", nchecks);
	printf("%s: %d of %d checks failed\n", nfailed ? "FAIL" : "PASS", nfailed, nchecks);
	return nfailed ? 1 : 0;
}
