/*
 * lh_log: levelled logging to stderr.
 *
 * The level comes from LONGHAUL_LOG (error, warn, info, debug, trace; default
 * info) the first time anything is logged, or from lh_log_set_level().  Lines
 * carry elapsed seconds and, once set, the MPI rank, so interleaved output of
 * many ranks stays readable:  "[  1.234 r3 info] plan: 4 stages x 2 replicas".
 */
#ifndef LH_LOG_H
#define LH_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lh_log_level {
    LH_LOG_OFF = 0,
    LH_LOG_ERROR,
    LH_LOG_WARN,
    LH_LOG_INFO,
    LH_LOG_DEBUG,
    LH_LOG_TRACE
} lh_log_level;

/** Parse "error".."trace" or "off"; returns -1 for an unknown name. */
int lh_log_level_parse(const char *name);

/** Override the level from LONGHAUL_LOG. */
void lh_log_set_level(lh_log_level level);

/** Current level (reads LONGHAUL_LOG on first use). */
lh_log_level lh_log_get_level(void);

/** Tag subsequent lines with this rank; a negative rank removes the tag. */
void lh_log_set_rank(int rank);

/** Log one line (a newline is added) when `level` is enabled. */
void lh_log(lh_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LH_ERROR(...) lh_log(LH_LOG_ERROR, __VA_ARGS__)
#define LH_WARN(...) lh_log(LH_LOG_WARN, __VA_ARGS__)
#define LH_INFO(...) lh_log(LH_LOG_INFO, __VA_ARGS__)
#define LH_DEBUG(...) \
    do { if (lh_log_get_level() >= LH_LOG_DEBUG) lh_log(LH_LOG_DEBUG, __VA_ARGS__); } while (0)

#ifdef __cplusplus
}
#endif
#endif
