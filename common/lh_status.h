/*
 * lh_status: the one error convention of longhaul.
 *
 * Every library function that can fail returns an lh_status.  LH_OK is 0, so
 * `if (st) return st;` propagates.  The human-readable reason lives in a
 * thread-local message set by lh_fail(), the way errno pairs with strerror but
 * with the specifics ("topology.json: $.links[3].bandwidth_gbps: must be > 0").
 * Callers add context on the way up with lh_fail_prefix().  Library code never
 * exits; only main() decides that.
 */
#ifndef LH_STATUS_H
#define LH_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lh_status {
    LH_OK = 0,
    LH_ERR_INVALID_ARG,  /* caller passed a value outside the contract */
    LH_ERR_NOMEM,        /* allocation failed */
    LH_ERR_IO,           /* open/read/write/fsync/rename failed */
    LH_ERR_FORMAT,       /* input file or message is malformed or inconsistent */
    LH_ERR_TRUNCATED,    /* input ended before its declared length */
    LH_ERR_CORRUPT,      /* checksum or digest mismatch */
    LH_ERR_UNSUPPORTED,  /* valid request this build or version cannot do */
    LH_ERR_MISMATCH,     /* two parties disagree (shapes, versions, replicas) */
    LH_ERR_COMM,         /* transport failure or peer protocol violation */
    LH_ERR_TIMEOUT,      /* a peer or operation did not answer in time */
    LH_ERR_AUTH,         /* authentication or decryption failed */
    LH_ERR_NOT_FOUND,    /* a named thing does not exist */
    LH_ERR_CAPACITY,     /* output buffer or device memory too small */
    LH_ERR_INTERNAL,     /* a bug in longhaul: please report */
    LH_STATUS_COUNT
} lh_status;

/** Stable lower-case name of a status code ("format", "io", ...); never NULL. */
const char *lh_status_name(lh_status status);

/**
 * Record a failure: formats the message into this thread's error buffer and
 * returns `status`, so `return lh_fail(LH_ERR_IO, "open %s: %s", p, strerror(errno));`.
 */
lh_status lh_fail(lh_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/**
 * Prepend context to this thread's current message ("loading job.json: " +
 * old message) and return `status` unchanged.  Use when propagating.
 */
lh_status lh_fail_prefix(lh_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** This thread's last failure message ("" when none was recorded). */
const char *lh_last_error(void);

/** Forget this thread's last failure message. */
void lh_clear_error(void);

#ifdef __cplusplus
}
#endif
#endif
