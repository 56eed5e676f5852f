/*
 * lh_json: strict reading of longhaul's JSON files (topology, plan, job) on top
 * of json-c, with every error naming the file, the JSON path and the problem:
 *
 *     examples/job.json: $.batch.micro_batch: must divide batch_size (8), got 3
 *
 * A reader walks the document with an lh_jpath that tracks where it is.
 * Unknown keys are rejected (lh_json_check_keys) because a misspelt optional
 * field that silently takes its default is a bug the user never sees.
 */
#ifndef LH_JSON_H
#define LH_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "lh_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Where a reader is: the file name and a JSON path such as "$.devices[3]". */
typedef struct lh_jpath {
    const char *file;
    size_t len;
    char buf[256];
} lh_jpath;

/** Start at the document root "$". */
void lh_jpath_init(lh_jpath *p, const char *file);
/** Descend into `key`; returns the length to restore with lh_jpath_pop. */
size_t lh_jpath_push_key(lh_jpath *p, const char *key);
/** Descend into array element `index`; returns the length to restore. */
size_t lh_jpath_push_index(lh_jpath *p, size_t index);
/** Return to a saved length. */
void lh_jpath_pop(lh_jpath *p, size_t saved_len);

/** Fail with LH_ERR_FORMAT: "<file>: <path>[.key]: <message>".  `key` may be NULL. */
lh_status lh_json_fail(const lh_jpath *p, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** Parse `len` bytes of JSON text named `name` (line and column on error). */
lh_status lh_json_parse(const char *name, const char *text, size_t len, json_object **out);

/** Read and parse a file of at most 64 MiB. */
lh_status lh_json_parse_file(const char *path, json_object **out);

/** Require an object here. */
lh_status lh_json_expect_object(const lh_jpath *p, json_object *obj);

/** Reject any key of `obj` not in the NULL-terminated list `allowed`. */
lh_status lh_json_check_keys(const lh_jpath *p, json_object *obj, const char *const *allowed);

/**
 * Require (or, for the _opt variants, allow) `key` in `obj` with a value in
 * [lo, hi].  Optional getters leave *out unchanged when the key is absent and
 * report whether it was present through `found` (may be NULL).
 */
lh_status lh_json_get_double(const lh_jpath *p, json_object *obj, const char *key, double lo, double hi,
                             double *out);
lh_status lh_json_opt_double(const lh_jpath *p, json_object *obj, const char *key, double lo, double hi,
                             double *out, int *found);
lh_status lh_json_get_int(const lh_jpath *p, json_object *obj, const char *key, int64_t lo, int64_t hi,
                          int64_t *out);
lh_status lh_json_opt_int(const lh_jpath *p, json_object *obj, const char *key, int64_t lo, int64_t hi,
                          int64_t *out, int *found);
lh_status lh_json_opt_bool(const lh_jpath *p, json_object *obj, const char *key, int *out, int *found);

/** A string value copied into `out` (capacity `cap`, must fit). */
lh_status lh_json_get_string(const lh_jpath *p, json_object *obj, const char *key, char *out, size_t cap);
lh_status lh_json_opt_string(const lh_jpath *p, json_object *obj, const char *key, char *out, size_t cap,
                             int *found);

/** A string that must be one of `names` (NULL-terminated); *out is its index. */
lh_status lh_json_opt_enum(const lh_jpath *p, json_object *obj, const char *key, const char *const *names,
                           int *out, int *found);

/** An array value; *arr stays owned by `obj`. */
lh_status lh_json_get_array(const lh_jpath *p, json_object *obj, const char *key, json_object **arr,
                            size_t *count);

/** An object value (present and an object), or NULL in *child when optional and absent. */
lh_status lh_json_get_object(const lh_jpath *p, json_object *obj, const char *key, json_object **child);
lh_status lh_json_opt_object(const lh_jpath *p, json_object *obj, const char *key, json_object **child);

/** Check the "format" and "version" keys every longhaul document starts with. */
lh_status lh_json_check_header(const lh_jpath *p, json_object *root, const char *format, int64_t max_version,
                               int64_t *version);

/** Write `root` pretty-printed with a final newline to `path`, atomically. */
lh_status lh_json_write_file(const char *path, json_object *root);

#ifdef __cplusplus
}
#endif
#endif
