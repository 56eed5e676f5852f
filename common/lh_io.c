/*
 * File helpers.  CRC-32C uses the SSE4.2 crc32 instruction when the compiler
 * targets it (x86-64-v2 and up) and a byte table otherwise; both give the same
 * values, checked by the test vectors in tests/common.
 */
#include "lh_io.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__SSE4_2__)
#include <nmmintrin.h>
#endif

lh_status lh_read_file(const char *path, size_t max_bytes, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return lh_fail(LH_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return lh_fail(LH_ERR_IO, "%s: not a regular file", path);
    }
    if ((unsigned long long)st.st_size > max_bytes) {
        fclose(f);
        return lh_fail(LH_ERR_CAPACITY, "%s: %lld bytes is more than the limit of %zu", path,
                       (long long)st.st_size, max_bytes);
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size + 1);
    if (!buf) {
        fclose(f);
        return lh_fail(LH_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, size + 1);
    }
    size_t got = fread(buf, 1, size, f);
    int err = ferror(f);
    fclose(f);
    if (err || got != size) {
        free(buf);
        return lh_fail(LH_ERR_IO, "%s: short read (%zu of %zu bytes)", path, got, size);
    }
    buf[size] = '\0';
    *data = buf;
    *len = size;
    return LH_OK;
}

struct lh_atomic_file {
    int fd;
    char *path;
    char *tmp_path;
};

lh_status lh_atomic_file_open(const char *path, lh_atomic_file **out)
{
    *out = NULL;
    lh_atomic_file *f = calloc(1, sizeof *f);
    size_t n = strlen(path) + 32;
    if (!f || !(f->path = strdup(path)) || !(f->tmp_path = malloc(n))) {
        if (f) free(f->path);
        free(f);
        return lh_fail(LH_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(f->tmp_path, n, "%s.tmp.%ld", path, (long)getpid());
    f->fd = open(f->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f->fd < 0) {
        lh_status st = lh_fail(LH_ERR_IO, "%s: cannot create: %s", f->tmp_path, strerror(errno));
        free(f->tmp_path);
        free(f->path);
        free(f);
        return st;
    }
    *out = f;
    return LH_OK;
}

lh_status lh_atomic_file_write(lh_atomic_file *f, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(f->fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return lh_fail(LH_ERR_IO, "%s: write failed: %s", f->tmp_path, strerror(errno));
        }
        p += w;
        len -= (size_t)w;
    }
    return LH_OK;
}

void lh_atomic_file_abort(lh_atomic_file *f)
{
    if (!f) return;
    if (f->fd >= 0) close(f->fd);
    unlink(f->tmp_path);
    free(f->tmp_path);
    free(f->path);
    free(f);
}

static void fsync_parent_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy) return;
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd); /* best effort: some filesystems refuse fsync on directories */
        close(dfd);
    }
    free(copy);
}

lh_status lh_atomic_file_commit(lh_atomic_file *f)
{
    lh_status st = LH_OK;
    if (fsync(f->fd) != 0)
        st = lh_fail(LH_ERR_IO, "%s: fsync failed: %s", f->tmp_path, strerror(errno));
    if (close(f->fd) != 0 && st == LH_OK)
        st = lh_fail(LH_ERR_IO, "%s: close failed: %s", f->tmp_path, strerror(errno));
    f->fd = -1;
    if (st == LH_OK && rename(f->tmp_path, f->path) != 0)
        st = lh_fail(LH_ERR_IO, "%s: rename into place failed: %s", f->path, strerror(errno));
    if (st == LH_OK) {
        fsync_parent_dir(f->path);
        free(f->tmp_path);
        free(f->path);
        free(f);
        return LH_OK;
    }
    lh_atomic_file_abort(f);
    return st;
}

lh_status lh_write_file_atomic(const char *path, const void *data, size_t len)
{
    lh_atomic_file *f;
    lh_status st = lh_atomic_file_open(path, &f);
    if (st) return st;
    st = lh_atomic_file_write(f, data, len);
    if (st) {
        lh_atomic_file_abort(f);
        return st;
    }
    return lh_atomic_file_commit(f);
}

#if !defined(__SSE4_2__)
static uint32_t crc32c_table[256];
static int crc32c_table_ready;

static void crc32c_init_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc32c_table[i] = c;
    }
    crc32c_table_ready = 1;
}
#endif

uint32_t lh_crc32c(uint32_t crc, const void *data, size_t len)
{
    const unsigned char *p = data;
    crc = ~crc;
#if defined(__SSE4_2__)
    uint64_t c = crc;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
        p += 8;
        len -= 8;
    }
    crc = (uint32_t)c;
    while (len--) crc = _mm_crc32_u8(crc, *p++);
#else
    if (!crc32c_table_ready) crc32c_init_table();
    while (len--) crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
#endif
    return ~crc;
}

lh_status lh_mkdir_p(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return lh_fail(LH_ERR_INVALID_ARG, "mkdir: bad path length");
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char saved = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return lh_fail(LH_ERR_IO, "mkdir %s: %s", buf, strerror(errno));
            buf[i] = saved;
        }
    }
    return LH_OK;
}
