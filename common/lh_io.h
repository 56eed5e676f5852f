/*
 * lh_io: whole-file reads, atomic writes and CRC-32C, shared by every reader and
 * writer of on-disk formats.
 *
 * Atomic means: data goes to "<path>.tmp.<pid>", is fsync'ed, renamed over
 * <path>, and the directory is fsync'ed, so a crash leaves either the old file
 * or the complete new one, never a torn mix.
 */
#ifndef LH_IO_H
#define LH_IO_H

#include <stddef.h>
#include <stdint.h>

#include "lh_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Read all of `path` into a new buffer (NUL-terminated for convenience; the
 * terminator is not counted in *len).  Fails with LH_ERR_CAPACITY when the file
 * is larger than `max_bytes`.  Free *data with free().
 */
lh_status lh_read_file(const char *path, size_t max_bytes, char **data, size_t *len);

/** Write `len` bytes to `path` atomically (see above). */
lh_status lh_write_file_atomic(const char *path, const void *data, size_t len);

/** A file being written atomically; invisible at its final path until committed. */
typedef struct lh_atomic_file lh_atomic_file;

/** Start writing `path`; nothing appears at `path` before lh_atomic_file_commit(). */
lh_status lh_atomic_file_open(const char *path, lh_atomic_file **out);

/** Append bytes. */
lh_status lh_atomic_file_write(lh_atomic_file *f, const void *data, size_t len);

/** fsync, rename into place, fsync the directory; frees `f` whatever happens. */
lh_status lh_atomic_file_commit(lh_atomic_file *f);

/** Discard the temporary file and free `f` (NULL is accepted). */
void lh_atomic_file_abort(lh_atomic_file *f);

/** CRC-32C (Castagnoli) of `len` bytes, continuing from `crc` (start with 0). */
uint32_t lh_crc32c(uint32_t crc, const void *data, size_t len);

/** Create `path` and its missing parents (like mkdir -p). */
lh_status lh_mkdir_p(const char *path);

#ifdef __cplusplus
}
#endif
#endif
