/*
 * harness.h - what the C test programs here share: TAP-like checks ("ok N -
 * ..." / "not ok N - ..." lines, counted in nchecks and nfailed) and a
 * monotonic clock in ms. Included first (it defines _GNU_SOURCE).
 */
#ifndef VWS_TEST_HARNESS_H
#define VWS_TEST_HARNESS_H

#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "verawebsockets.h"

static int nchecks, nfailed;

static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char *fmt, ...)
{
	va_list ap;
	nchecks++;
	if (!ok)
		nfailed++;
	printf("%s %d - ", ok ? "ok" : "not ok", nchecks);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
