/*
 * One fprintf per line so lines from threads and ranks do not interleave
 * mid-line; the level is read once and cached.
 */
#include "lh_log.h"
#include "lh_time.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

static int log_level = -1;
static int log_rank = -1;
static double log_start = -1.0;

static const char *const level_names[] = {"off", "error", "warn", "info", "debug", "trace"};

int lh_log_level_parse(const char *name)
{
    for (int i = 0; i <= LH_LOG_TRACE; i++)
        if (strcasecmp(name, level_names[i]) == 0) return i;
    return -1;
}

void lh_log_set_level(lh_log_level level) { log_level = (int)level; }

lh_log_level lh_log_get_level(void)
{
    if (log_level < 0) {
        const char *env = getenv("LONGHAUL_LOG");
        int parsed = env ? lh_log_level_parse(env) : -1;
        log_level = parsed >= 0 ? parsed : LH_LOG_INFO;
        if (env && parsed < 0)
            fprintf(stderr, "longhaul: LONGHAUL_LOG=%s is not one of off,error,warn,info,debug,trace; using info\n", env);
    }
    return (lh_log_level)log_level;
}

void lh_log_set_rank(int rank) { log_rank = rank; }

void lh_log(lh_log_level level, const char *fmt, ...)
{
    if (level == LH_LOG_OFF || (int)level > (int)lh_log_get_level()) return;
    double now = lh_now_s();
    if (log_start < 0) log_start = now;
    char line[2048];
    int n;
    if (log_rank >= 0)
        n = snprintf(line, sizeof line, "[%8.3f r%d %s] ", now - log_start, log_rank, level_names[level]);
    else
        n = snprintf(line, sizeof line, "[%8.3f %s] ", now - log_start, level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}
