/*
 * Thread-local error messages.  Messages are bounded (LH_ERROR_MAX) and
 * truncated rather than allocated so that reporting an out-of-memory error
 * cannot itself fail.
 */
#include "lh_status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define LH_ERROR_MAX 1024

static _Thread_local char error_message[LH_ERROR_MAX];

static const char *const status_names[LH_STATUS_COUNT] = {
    [LH_OK] = "ok",
    [LH_ERR_INVALID_ARG] = "invalid-argument",
    [LH_ERR_NOMEM] = "out-of-memory",
    [LH_ERR_IO] = "io",
    [LH_ERR_FORMAT] = "format",
    [LH_ERR_TRUNCATED] = "truncated",
    [LH_ERR_CORRUPT] = "corrupt",
    [LH_ERR_UNSUPPORTED] = "unsupported",
    [LH_ERR_MISMATCH] = "mismatch",
    [LH_ERR_COMM] = "communication",
    [LH_ERR_TIMEOUT] = "timeout",
    [LH_ERR_AUTH] = "authentication",
    [LH_ERR_NOT_FOUND] = "not-found",
    [LH_ERR_CAPACITY] = "capacity",
    [LH_ERR_INTERNAL] = "internal",
};

const char *lh_status_name(lh_status status)
{
    if ((unsigned)status >= LH_STATUS_COUNT) return "unknown";
    return status_names[status];
}

lh_status lh_fail(lh_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_message, sizeof error_message, fmt, ap);
    va_end(ap);
    return status;
}

lh_status lh_fail_prefix(lh_status status, const char *fmt, ...)
{
    char prefix[LH_ERROR_MAX];
    char old[LH_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, error_message, sizeof old);
    if (old[0])
        snprintf(error_message, sizeof error_message, "%s: %s", prefix, old);
    else
        snprintf(error_message, sizeof error_message, "%s: %s", prefix, lh_status_name(status));
    return status;
}

const char *lh_last_error(void) { return error_message; }

void lh_clear_error(void) { error_message[0] = '\0'; }
