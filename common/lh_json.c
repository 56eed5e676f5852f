/*
 * Path-tracking JSON getters.  Numbers must be JSON numbers (a quoted "5" is an
 * error, not a coercion), integers must be integral, and every range check
 * reports the accepted range.
 */
#include "lh_json.h"
#include "lh_io.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void lh_jpath_init(lh_jpath *p, const char *file)
{
    p->file = file ? file : "<input>";
    p->buf[0] = '$';
    p->buf[1] = '\0';
    p->len = 1;
}

size_t lh_jpath_push_key(lh_jpath *p, const char *key)
{
    size_t saved = p->len;
    int n = snprintf(p->buf + p->len, sizeof p->buf - p->len, ".%s", key);
    if (n > 0) p->len = p->len + (size_t)n < sizeof p->buf ? p->len + (size_t)n : sizeof p->buf - 1;
    return saved;
}

size_t lh_jpath_push_index(lh_jpath *p, size_t index)
{
    size_t saved = p->len;
    int n = snprintf(p->buf + p->len, sizeof p->buf - p->len, "[%zu]", index);
    if (n > 0) p->len = p->len + (size_t)n < sizeof p->buf ? p->len + (size_t)n : sizeof p->buf - 1;
    return saved;
}

void lh_jpath_pop(lh_jpath *p, size_t saved_len)
{
    p->len = saved_len;
    p->buf[saved_len] = '\0';
}

lh_status lh_json_fail(const lh_jpath *p, const char *key, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (key)
        return lh_fail(LH_ERR_FORMAT, "%s: %s.%s: %s", p->file, p->buf, key, msg);
    return lh_fail(LH_ERR_FORMAT, "%s: %s: %s", p->file, p->buf, msg);
}

lh_status lh_json_parse(const char *name, const char *text, size_t len, json_object **out)
{
    *out = NULL;
    if (len > (size_t)INT32_MAX) return lh_fail(LH_ERR_CAPACITY, "%s: too large", name);
    if (memchr(text, '\0', len))
        return lh_fail(LH_ERR_FORMAT, "%s: contains a NUL byte; not a JSON text file", name);
    json_tokener *tok = json_tokener_new_ex(64);
    if (!tok) return lh_fail(LH_ERR_NOMEM, "%s: out of memory", name);
    json_object *obj = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t offset = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (jerr != json_tokener_success || !obj) {
        if (obj) json_object_put(obj);
        size_t line = 1, col = 1;
        for (size_t i = 0; i < offset && i < len; i++) {
            if (text[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        const char *why = jerr == json_tokener_continue ? "unexpected end of input"
                                                        : json_tokener_error_desc(jerr);
        return lh_fail(LH_ERR_FORMAT, "%s:%zu:%zu: invalid JSON: %s", name, line, col, why);
    }
    /* Trailing garbage after the document is an error too. */
    for (size_t i = offset; i < len; i++) {
        char c = text[i];
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
            json_object_put(obj);
            return lh_fail(LH_ERR_FORMAT, "%s: invalid JSON: unexpected text after the document at byte %zu",
                           name, i);
        }
    }
    *out = obj;
    return LH_OK;
}

lh_status lh_json_parse_file(const char *path, json_object **out)
{
    char *text;
    size_t len;
    lh_status st = lh_read_file(path, (size_t)64 << 20, &text, &len);
    if (st) return st;
    st = lh_json_parse(path, text, len, out);
    free(text);
    return st;
}

lh_status lh_json_expect_object(const lh_jpath *p, json_object *obj)
{
    if (!json_object_is_type(obj, json_type_object)) return lh_json_fail(p, NULL, "expected an object");
    return LH_OK;
}

lh_status lh_json_check_keys(const lh_jpath *p, json_object *obj, const char *const *allowed)
{
    json_object_object_foreach(obj, key, val)
    {
        (void)val;
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, key) == 0) ok = 1;
        if (!ok) {
            char list[512];
            size_t n = 0;
            list[0] = '\0';
            for (const char *const *a = allowed; *a && n < sizeof list; a++)
                n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "", *a);
            return lh_json_fail(p, key, "unknown field (expected one of: %s)", list);
        }
    }
    return LH_OK;
}

static lh_status lookup(const lh_jpath *p, json_object *obj, const char *key, int required, json_object **val)
{
    *val = NULL;
    if (!json_object_object_get_ex(obj, key, val) || !*val) {
        *val = NULL;
        if (required) return lh_json_fail(p, key, "required field is missing");
    }
    return LH_OK;
}

static lh_status read_double(const lh_jpath *p, json_object *obj, const char *key, int required, double lo,
                             double hi, double *out, int *found)
{
    json_object *v;
    lh_status st = lookup(p, obj, key, required, &v);
    if (found) *found = v != NULL;
    if (st || !v) return st;
    if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
        return lh_json_fail(p, key, "expected a number, got %s", json_type_to_name(json_object_get_type(v)));
    double d = json_object_get_double(v);
    if (!isfinite(d)) return lh_json_fail(p, key, "must be finite");
    if (d < lo || d > hi) return lh_json_fail(p, key, "must be in [%g, %g], got %g", lo, hi, d);
    *out = d;
    return LH_OK;
}

lh_status lh_json_get_double(const lh_jpath *p, json_object *obj, const char *key, double lo, double hi,
                             double *out)
{
    return read_double(p, obj, key, 1, lo, hi, out, NULL);
}

lh_status lh_json_opt_double(const lh_jpath *p, json_object *obj, const char *key, double lo, double hi,
                             double *out, int *found)
{
    return read_double(p, obj, key, 0, lo, hi, out, found);
}

static lh_status read_int(const lh_jpath *p, json_object *obj, const char *key, int required, int64_t lo,
                          int64_t hi, int64_t *out, int *found)
{
    json_object *v;
    lh_status st = lookup(p, obj, key, required, &v);
    if (found) *found = v != NULL;
    if (st || !v) return st;
    int64_t i;
    if (json_object_is_type(v, json_type_int)) {
        errno = 0;
        i = json_object_get_int64(v);
        if (errno == ERANGE) return lh_json_fail(p, key, "integer out of range");
    } else if (json_object_is_type(v, json_type_double)) {
        double d = json_object_get_double(v);
        if (!isfinite(d) || d != floor(d) || fabs(d) > 9.0e15)
            return lh_json_fail(p, key, "expected an integer, got %g", d);
        i = (int64_t)d;
    } else {
        return lh_json_fail(p, key, "expected an integer, got %s", json_type_to_name(json_object_get_type(v)));
    }
    if (i < lo || i > hi)
        return lh_json_fail(p, key, "must be in [%lld, %lld], got %lld", (long long)lo, (long long)hi,
                            (long long)i);
    *out = i;
    return LH_OK;
}

lh_status lh_json_get_int(const lh_jpath *p, json_object *obj, const char *key, int64_t lo, int64_t hi,
                          int64_t *out)
{
    return read_int(p, obj, key, 1, lo, hi, out, NULL);
}

lh_status lh_json_opt_int(const lh_jpath *p, json_object *obj, const char *key, int64_t lo, int64_t hi,
                          int64_t *out, int *found)
{
    return read_int(p, obj, key, 0, lo, hi, out, found);
}

lh_status lh_json_opt_bool(const lh_jpath *p, json_object *obj, const char *key, int *out, int *found)
{
    json_object *v;
    lh_status st = lookup(p, obj, key, 0, &v);
    if (found) *found = v != NULL;
    if (st || !v) return st;
    if (!json_object_is_type(v, json_type_boolean))
        return lh_json_fail(p, key, "expected true or false, got %s", json_type_to_name(json_object_get_type(v)));
    *out = json_object_get_boolean(v) ? 1 : 0;
    return LH_OK;
}

static lh_status read_string(const lh_jpath *p, json_object *obj, const char *key, int required, char *out,
                             size_t cap, int *found)
{
    json_object *v;
    lh_status st = lookup(p, obj, key, required, &v);
    if (found) *found = v != NULL;
    if (st || !v) return st;
    if (!json_object_is_type(v, json_type_string))
        return lh_json_fail(p, key, "expected a string, got %s", json_type_to_name(json_object_get_type(v)));
    const char *s = json_object_get_string(v);
    size_t n = (size_t)json_object_get_string_len(v);
    if (strlen(s) != n) return lh_json_fail(p, key, "string contains a NUL character");
    if (n + 1 > cap) return lh_json_fail(p, key, "string is longer than %zu bytes", cap - 1);
    memcpy(out, s, n + 1);
    return LH_OK;
}

lh_status lh_json_get_string(const lh_jpath *p, json_object *obj, const char *key, char *out, size_t cap)
{
    return read_string(p, obj, key, 1, out, cap, NULL);
}

lh_status lh_json_opt_string(const lh_jpath *p, json_object *obj, const char *key, char *out, size_t cap,
                             int *found)
{
    return read_string(p, obj, key, 0, out, cap, found);
}

lh_status lh_json_opt_enum(const lh_jpath *p, json_object *obj, const char *key, const char *const *names,
                           int *out, int *found)
{
    char value[64];
    int present = 0;
    lh_status st = read_string(p, obj, key, 0, value, sizeof value, &present);
    if (found) *found = present;
    if (st || !present) return st;
    char list[256];
    size_t n = 0;
    list[0] = '\0';
    for (int i = 0; names[i]; i++) {
        if (strcmp(names[i], value) == 0) {
            *out = i;
            return LH_OK;
        }
        if (n < sizeof list) n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", names[i]);
    }
    return lh_json_fail(p, key, "\"%s\" is not one of: %s", value, list);
}

lh_status lh_json_get_array(const lh_jpath *p, json_object *obj, const char *key, json_object **arr,
                            size_t *count)
{
    json_object *v;
    lh_status st = lookup(p, obj, key, 1, &v);
    if (st) return st;
    if (!json_object_is_type(v, json_type_array))
        return lh_json_fail(p, key, "expected an array, got %s", json_type_to_name(json_object_get_type(v)));
    *arr = v;
    *count = json_object_array_length(v);
    return LH_OK;
}

static lh_status read_object(const lh_jpath *p, json_object *obj, const char *key, int required,
                             json_object **child)
{
    json_object *v;
    lh_status st = lookup(p, obj, key, required, &v);
    *child = NULL;
    if (st || !v) return st;
    if (!json_object_is_type(v, json_type_object))
        return lh_json_fail(p, key, "expected an object, got %s", json_type_to_name(json_object_get_type(v)));
    *child = v;
    return LH_OK;
}

lh_status lh_json_get_object(const lh_jpath *p, json_object *obj, const char *key, json_object **child)
{
    return read_object(p, obj, key, 1, child);
}

lh_status lh_json_opt_object(const lh_jpath *p, json_object *obj, const char *key, json_object **child)
{
    return read_object(p, obj, key, 0, child);
}

lh_status lh_json_check_header(const lh_jpath *p, json_object *root, const char *format, int64_t max_version,
                               int64_t *version)
{
    lh_status st = lh_json_expect_object(p, root);
    if (st) return st;
    char got[64];
    st = lh_json_get_string(p, root, "format", got, sizeof got);
    if (st) return st;
    if (strcmp(got, format) != 0) return lh_json_fail(p, "format", "expected \"%s\", got \"%s\"", format, got);
    return lh_json_get_int(p, root, "version", 1, max_version, version);
}

lh_status lh_json_write_file(const char *path, json_object *root)
{
    size_t len;
    const char *text = json_object_to_json_string_length(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                                     JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    if (!text) return lh_fail(LH_ERR_NOMEM, "%s: cannot serialise JSON", path);
    lh_atomic_file *f;
    lh_status st = lh_atomic_file_open(path, &f);
    if (st) return st;
    st = lh_atomic_file_write(f, text, len);
    if (!st) st = lh_atomic_file_write(f, "\n", 1);
    if (st) {
        lh_atomic_file_abort(f);
        return st;
    }
    return lh_atomic_file_commit(f);
}
