/*
 * util.c - small things every file uses (error text, the monotonic clock,
 * condition variables on it) and logging in internal/lwslog's format,
 * with the ABI's vws_log and vws_set_log_level.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proxy.h"

/* ---- small things ---------------------------------------------------------- */

void px_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int px_errf(int rc, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (err && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* Whether p[0..n-1] is valid UTF-8: no overlong forms, surrogates or code
 * points over U+10FFFF (the engine's check of text messages and close reasons). */
int px_utf8_valid(const void *p, size_t n)
{
	const unsigned char *s = p, *end = s + n;
	while (s < end) {
		unsigned c = *s++;
		unsigned lo = 0x80, hi = 0xBF;
		int more;
		if (c < 0x80)
			continue;
		if (c < 0xC2 || c > 0xF4)
			return 0;
		more = c < 0xE0 ? 1 : c < 0xF0 ? 2 : 3;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
		else if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
		if (end - s < more || *s < lo || *s > hi)
			return 0;
		for (s++; --more > 0; s++)
			if (*s < 0x80 || *s > 0xBF)
				return 0;
	}
	return 1;
}

int64_t px_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void px_cond_init(pthread_cond_t *c)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
}

static const char *const level_names[] = {"ERR", "WARN", "NOTICE", "INFO", "DEBUG", "PARSER",
	"HEADER", "EXT", "CLIENT", "LATENCY", "USER"};

/* Writes one line as internal/lwslog does, if level is enabled. */
static void log_line(int level, const char *msg)
{
	char stamp[64], *line;
	struct timespec ts;
	struct tm tm;
	const char *name = "LOG";
	size_t n;
	int i;
	if (!(__atomic_load_n(&px.log_mask, __ATOMIC_RELAXED) & level))
		return;
	for (i = 0; i < 11; i++)
		if (level & (1 << i)) {
			name = level_names[i];
			break;
		}
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	snprintf(stamp, sizeof stamp, "[%04d/%02d/%02d %02d:%02d:%02d:%04ld]", tm.tm_year + 1900,
		tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 100000);
	n = strlen(stamp) + strlen(name) + strlen(msg) + 5;
	line = malloc(n);
	if (!line)
		return;
	n = (size_t)snprintf(line, n, "%s %s: %s\n", stamp, name, msg);
	if (write(2, line, n) < 0) { /* nothing to do */ }
	free(line);
	px_log_to_sink(level, msg);
}

/* Hands a line (already written to stderr, or by the helper to its own) to the sink. */
void px_log_to_sink(int level, const char *msg)
{
	pthread_mutex_lock(&px.sink_mu);
	if (px.sink)
		px.sink(px.sink_ud, level, msg);
	pthread_mutex_unlock(&px.sink_mu);
}

int px_log_sink_set(void)
{
	int set;
	pthread_mutex_lock(&px.sink_mu);
	set = px.sink != NULL;
	pthread_mutex_unlock(&px.sink_mu);
	return set;
}

int vws_set_log_sink(vws_log_sink fn, void *ud)
{
	pthread_mutex_lock(&px.sink_mu);
	px.sink = fn;
	px.sink_ud = ud;
	pthread_mutex_unlock(&px.sink_mu);
	px_fire(WIRE_OP_SET_LOG_SINK, fn != NULL, 0); /* a helper started later has it replayed */
	return VWS_OK;
}

void px_logf(int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	if (!(__atomic_load_n(&px.log_mask, __ATOMIC_RELAXED) & level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_line(level, msg);
}

int vws_log(int level, const char *msg)
{
	if (!msg)
		return VWS_EARG;
	log_line(level, msg);
	return VWS_OK;
}

int vws_set_log_level(int mask)
{
	mask &= 2047;
	pthread_mutex_lock(&px.mu); /* a helper starting meanwhile replays it */
	__atomic_store_n(&px.log_mask, mask, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&px.mu);
	px_fire(WIRE_OP_SET_LOG_LEVEL, (uint64_t)mask, 0);
	return VWS_OK;
}
