/*
 * A minimal blocking HTTP/1.1 client for the loopback tests and the load
 * benchmark.  Why not a library: libcurl is not among the project's
 * dependencies, and what the tests need is small: one request per
 * connection (Connection: close), read until the peer closes, then parse.
 * Reading everything before parsing keeps the parser a pure function of
 * bytes, which is what the fuzz target exercises.  Handles Content-Length
 * and chunked bodies (libmicrohttpd streams server-sent events chunked).
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lh_serve.h"

void lh_http_response_clear(lh_http_response *resp)
{
    if (!resp) return;
    free(resp->body);
    memset(resp, 0, sizeof *resp);
}

/* Position of "\r\n\r\n" in raw[0..len), or len when absent. */
static size_t find_header_end(const char *raw, size_t len)
{
    for (size_t i = 0; i + 3 < len; i++)
        if (raw[i] == '\r' && raw[i + 1] == '\n' && raw[i + 2] == '\r' && raw[i + 3] == '\n') return i;
    return len;
}

/* Whether header line [line, line+n) is `name: ...`; *value points after the colon and spaces. */
static int header_is(const char *line, size_t n, const char *name, const char **value, size_t *value_len)
{
    size_t k = strlen(name);
    if (n <= k || line[k] != ':' || strncasecmp(line, name, k) != 0) return 0;
    size_t i = k + 1;
    while (i < n && (line[i] == ' ' || line[i] == '\t')) i++;
    *value = line + i;
    *value_len = n - i;
    while (*value_len && ((*value)[*value_len - 1] == ' ' || (*value)[*value_len - 1] == '\t')) (*value_len)--;
    return 1;
}

static lh_status parse_decimal(const char *p, size_t n, int base, size_t *out, const char *what)
{
    size_t v = 0;
    if (n == 0 || n > 15) return lh_fail(LH_ERR_FORMAT, "http response: bad %s", what);
    for (size_t i = 0; i < n; i++) {
        int d;
        char ch = p[i];
        if (ch >= '0' && ch <= '9') d = ch - '0';
        else if (base == 16 && ch >= 'a' && ch <= 'f') d = ch - 'a' + 10;
        else if (base == 16 && ch >= 'A' && ch <= 'F') d = ch - 'A' + 10;
        else return lh_fail(LH_ERR_FORMAT, "http response: bad %s", what);
        v = v * (size_t)base + (size_t)d;
    }
    *out = v;
    return LH_OK;
}

lh_status lh_http_parse_response(const char *raw, size_t len, lh_http_response *out)
{
    memset(out, 0, sizeof *out);
    size_t head = find_header_end(raw, len);
    if (head == len) return lh_fail(LH_ERR_FORMAT, "http response: no end of headers in %zu bytes", len);
    if (head < 12 || memcmp(raw, "HTTP/1.", 7) != 0 || raw[8] != ' ')
        return lh_fail(LH_ERR_FORMAT, "http response: bad status line");
    size_t status = 0;
    lh_status st = parse_decimal(raw + 9, 3, 10, &status, "status code");
    if (st) return st;
    size_t content_length = 0;
    int has_length = 0, chunked = 0;
    size_t line = 0;
    while (line < head && raw[line] != '\n') line++;
    line++;
    while (line < head) {
        size_t end = line;
        while (end < head && raw[end] != '\r') end++;
        const char *value;
        size_t vl;
        if (header_is(raw + line, end - line, "Content-Length", &value, &vl)) {
            if ((st = parse_decimal(value, vl, 10, &content_length, "Content-Length"))) return st;
            has_length = 1;
        } else if (header_is(raw + line, end - line, "Transfer-Encoding", &value, &vl)) {
            chunked = vl == 7 && strncasecmp(value, "chunked", 7) == 0;
        }
        line = end + 2;
    }
    const char *body = raw + head + 4;
    size_t avail = len - head - 4;
    char *out_body = malloc(avail + 1);
    if (!out_body) return lh_fail(LH_ERR_NOMEM, "http response: out of memory");
    size_t n = 0;
    if (chunked) {
        size_t pos = 0;
        for (;;) {
            size_t e = pos;
            while (e < avail && body[e] != '\r' && body[e] != ';') e++;
            size_t size = 0;
            if ((st = parse_decimal(body + pos, e - pos, 16, &size, "chunk size"))) break;
            while (e + 1 < avail && !(body[e] == '\r' && body[e + 1] == '\n')) e++;
            if (e + 1 >= avail) {
                st = lh_fail(LH_ERR_TRUNCATED, "http response: chunk header cut short");
                break;
            }
            pos = e + 2;
            if (size == 0) break;
            if (size > avail - pos || avail - pos - size < 2) {
                st = lh_fail(LH_ERR_TRUNCATED, "http response: chunk of %zu bytes cut short", size);
                break;
            }
            memcpy(out_body + n, body + pos, size);
            n += size;
            pos += size;
            if (body[pos] != '\r' || body[pos + 1] != '\n') {
                st = lh_fail(LH_ERR_FORMAT, "http response: chunk not followed by CRLF");
                break;
            }
            pos += 2;
        }
    } else if (has_length) {
        if (content_length > avail)
            st = lh_fail(LH_ERR_TRUNCATED, "http response: body has %zu of %zu bytes", avail, content_length);
        else {
            memcpy(out_body, body, content_length);
            n = content_length;
        }
    } else {
        memcpy(out_body, body, avail);
        n = avail;
    }
    if (st) {
        free(out_body);
        return st;
    }
    out_body[n] = 0;
    out->status = (int)status;
    out->body = out_body;
    out->body_len = n;
    out->chunked = chunked;
    return LH_OK;
}

static lh_status send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return lh_fail(LH_ERR_IO, "http: send: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return LH_OK;
}

lh_status lh_http_request(const char *host, int port, const char *method, const char *path, const char *body,
                          size_t body_len, lh_http_response *out)
{
    memset(out, 0, sizeof *out);
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(host, service, &hints, &ai);
    if (rc != 0) return lh_fail(LH_ERR_IO, "http: %s:%d: %s", host, port, gai_strerror(rc));
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        int err = errno;
        if (fd >= 0) close(fd);
        freeaddrinfo(ai);
        return lh_fail(LH_ERR_IO, "http: connect %s:%d: %s", host, port, strerror(err));
    }
    freeaddrinfo(ai);
    char head[512];
    int hl = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      method, path, host, port, body ? body_len : 0);
    lh_status st = hl > 0 && (size_t)hl < sizeof head ? LH_OK : lh_fail(LH_ERR_INVALID_ARG, "http: path too long");
    if (!st) st = send_all(fd, head, (size_t)hl);
    if (!st && body && body_len) st = send_all(fd, body, body_len);
    char *raw = NULL;
    size_t len = 0, cap = 0;
    while (!st) {
        if (len + 4096 > cap) {
            size_t ncap = cap ? cap * 2 : 16384;
            char *grown = realloc(raw, ncap);
            if (!grown) {
                st = lh_fail(LH_ERR_NOMEM, "http: out of memory");
                break;
            }
            raw = grown;
            cap = ncap;
        }
        ssize_t r = recv(fd, raw + len, cap - len, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            st = lh_fail(LH_ERR_IO, "http: recv: %s", strerror(errno));
            break;
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    close(fd);
    if (!st) st = lh_http_parse_response(raw ? raw : "", len, out);
    free(raw);
    return st;
}
