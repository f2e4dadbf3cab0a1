/*
 * sinktest.h - a log sink (vws_set_log_sink) that collects the lines it gets,
 * for the C tests of both variants (capi/testdata/abi_test.c,
 * proxy/testdata/oop_test.c). Include after verawebsockets.h.
 */
#ifndef VWS_TEST_SINKTEST_H
#define VWS_TEST_SINKTEST_H

#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t sink_mu = PTHREAD_MUTEX_INITIALIZER;
static char sink_text[16384];
static int sink_bad; /* a call with the wrong ud (&sink_bad) or a level that is not one bit */

static void test_sink(void *ud, int level, const char *msg)
{
	pthread_mutex_lock(&sink_mu);
	if (ud != &sink_bad || level <= 0 || (level & (level - 1)) != 0)
		sink_bad = 1;
	if (strlen(sink_text) + strlen(msg) + 2 < sizeof sink_text) {
		strcat(sink_text, msg);
		strcat(sink_text, "\n");
	}
	pthread_mutex_unlock(&sink_mu);
}

/* Whether the sink got a line containing s, waiting up to ms for it. */
static int sink_has(const char *s, long ms)
{
	struct timespec ts;
	long long now, end;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	end = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + ms;
	for (;;) {
		int found;
		pthread_mutex_lock(&sink_mu);
		found = strstr(sink_text, s) != NULL;
		pthread_mutex_unlock(&sink_mu);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
		if (found || now >= end)
			return found;
		usleep(10000);
	}
}

static int sink_all_good(void)
{
	int good;
	pthread_mutex_lock(&sink_mu);
	good = !sink_bad;
	pthread_mutex_unlock(&sink_mu);
	return good;
}

#endif
