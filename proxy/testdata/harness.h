/*
 * harness.h - what the C test programs here share: TAP-like checks ("ok N -
 * ..." / "not ok N - ..." lines, counted in nchecks and nfailed) and a
 * monotonic clock in ms. Included first (it defines _GNU_SOURCE).
 */
#ifndef VWS_TEST_HARNESS_H
#define VWS_TEST_HARNESS_H

#define _GNU_SOURCE
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

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

/* The helper: the one child process of this program (the wrapper, e.g. qemu, when one is
 * used), or 0. */
static __attribute__((unused)) pid_t helper_pid(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = 0;
	while (d && (e = readdir(d))) {
		char path[300], buf[512], *p;
		FILE *f;
		int ppid;
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		if (fgets(buf, sizeof buf, f) && (p = strrchr(buf, ')')) && sscanf(p + 2, "%*c %d", &ppid) == 1 &&
			ppid == getpid()) {
			char st = p[2];
			if (st != 'Z')
				found = (pid_t)atoi(e->d_name);
		}
		fclose(f);
	}
	if (d)
		closedir(d);
	return found;
}

#endif
