/* Monotonic wall-clock time, for metrics and timeouts (never for test verdicts). */
#ifndef LH_TIME_H
#define LH_TIME_H

#ifdef __cplusplus
extern "C" {
#endif

/** Seconds from an arbitrary fixed point, monotonic, nanosecond resolution. */
double lh_now_s(void);

/** Sleep for `seconds` (restarts after signals until the time has passed). */
void lh_sleep_s(double seconds);

#ifdef __cplusplus
}
#endif
#endif
