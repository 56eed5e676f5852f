/* Tests of the conventions every module relies on: status, JSON paths, atomic files, CRC-32C. */
#include <stdlib.h>
#include <unistd.h>

#include "lh_io.h"
#include "lh_json.h"
#include "lh_log.h"
#include "lh_test.h"

static void test_status_names(void)
{
    CU_ASSERT_STRING_EQUAL(lh_status_name(LH_OK), "ok");
    CU_ASSERT_STRING_EQUAL(lh_status_name(LH_ERR_FORMAT), "format");
    CU_ASSERT_STRING_EQUAL(lh_status_name((lh_status)999), "unknown");
    for (int s = 0; s < LH_STATUS_COUNT; s++) CU_ASSERT_PTR_NOT_NULL(lh_status_name((lh_status)s));
}

static void test_fail_and_prefix(void)
{
    lh_clear_error();
    CU_ASSERT_STRING_EQUAL(lh_last_error(), "");
    CU_ASSERT_EQUAL(lh_fail(LH_ERR_IO, "open %s", "x.bin"), LH_ERR_IO);
    CU_ASSERT_STRING_EQUAL(lh_last_error(), "open x.bin");
    CU_ASSERT_EQUAL(lh_fail_prefix(LH_ERR_IO, "loading %d", 3), LH_ERR_IO);
    CU_ASSERT_STRING_EQUAL(lh_last_error(), "loading 3: open x.bin");
}

static void test_log_levels(void)
{
    CU_ASSERT_EQUAL(lh_log_level_parse("debug"), LH_LOG_DEBUG);
    CU_ASSERT_EQUAL(lh_log_level_parse("WARN"), LH_LOG_WARN);
    CU_ASSERT_EQUAL(lh_log_level_parse("loud"), -1);
    lh_log_set_level(LH_LOG_ERROR);
    CU_ASSERT_EQUAL(lh_log_get_level(), LH_LOG_ERROR);
}

static void test_json_paths_in_errors(void)
{
    const char *text = "{\"format\":\"x\",\"version\":1,\"a\":{\"b\":[1,{\"c\":-2}]}}";
    json_object *root;
    LH_ASSERT_OK(lh_json_parse("t.json", text, strlen(text), &root));
    lh_jpath p;
    lh_jpath_init(&p, "t.json");
    int64_t version;
    LH_ASSERT_OK(lh_json_check_header(&p, root, "x", 1, &version));
    LH_ASSERT_FAILS_WITH(lh_json_check_header(&p, root, "y", 1, &version), LH_ERR_FORMAT, "expected \"y\"");
    json_object *a, *arr;
    size_t n;
    LH_ASSERT_OK(lh_json_get_object(&p, root, "a", &a));
    lh_jpath_push_key(&p, "a");
    LH_ASSERT_OK(lh_json_get_array(&p, a, "b", &arr, &n));
    CU_ASSERT_EQUAL(n, 2);
    lh_jpath_push_key(&p, "b");
    lh_jpath_push_index(&p, 1);
    int64_t c;
    LH_ASSERT_FAILS_WITH(lh_json_get_int(&p, json_object_array_get_idx(arr, 1), "c", 0, 10, &c), LH_ERR_FORMAT,
                         "t.json: $.a.b[1].c: must be in [0, 10], got -2");
    static const char *const allowed[] = {"d", NULL};
    LH_ASSERT_FAILS_WITH(lh_json_check_keys(&p, json_object_array_get_idx(arr, 1), allowed), LH_ERR_FORMAT,
                         "$.a.b[1].c: unknown field");
    json_object_put(root);
}

static void test_json_syntax_error_has_line(void)
{
    const char *text = "{\n  \"a\": 1,\n  \"b\": ]\n}";
    json_object *root;
    LH_ASSERT_FAILS_WITH(lh_json_parse("bad.json", text, strlen(text), &root), LH_ERR_FORMAT, "bad.json:3:");
    LH_ASSERT_FAILS_WITH(lh_json_parse("trail.json", "{} x", 4, &root), LH_ERR_FORMAT, "after the document");
    LH_ASSERT_FAILS_WITH(lh_json_parse("cut.json", "{\"a\":", 5, &root), LH_ERR_FORMAT, "invalid JSON");
}

static void test_json_types_are_strict(void)
{
    const char *text = "{\"n\":\"5\",\"f\":2.5,\"s\":3,\"e\":\"gpipe\"}";
    json_object *root;
    LH_ASSERT_OK(lh_json_parse("t.json", text, strlen(text), &root));
    lh_jpath p;
    lh_jpath_init(&p, "t.json");
    int64_t i;
    double d;
    char s[8];
    LH_ASSERT_FAILS_WITH(lh_json_get_int(&p, root, "n", 0, 9, &i), LH_ERR_FORMAT, "expected an integer");
    LH_ASSERT_FAILS_WITH(lh_json_get_int(&p, root, "f", 0, 9, &i), LH_ERR_FORMAT, "expected an integer");
    LH_ASSERT_OK(lh_json_get_double(&p, root, "f", 0, 9, &d));
    CU_ASSERT_DOUBLE_EQUAL(d, 2.5, 0);
    LH_ASSERT_FAILS_WITH(lh_json_get_string(&p, root, "s", s, sizeof s), LH_ERR_FORMAT, "expected a string");
    LH_ASSERT_FAILS_WITH(lh_json_get_double(&p, root, "missing", 0, 1, &d), LH_ERR_FORMAT, "required field");
    static const char *const names[] = {"gpipe", "1f1b", NULL};
    int e = -1, found = 0;
    LH_ASSERT_OK(lh_json_opt_enum(&p, root, "e", names, &e, &found));
    CU_ASSERT_EQUAL(e, 0);
    CU_ASSERT_EQUAL(found, 1);
    json_object_put(root);
}

static void test_atomic_write_and_read(void)
{
    char dir[] = "/tmp/lh_test_io_XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/sub/dir/f.bin", dir);
    char parent[256];
    snprintf(parent, sizeof parent, "%s/sub/dir", dir);
    LH_ASSERT_OK(lh_mkdir_p(parent));
    LH_ASSERT_OK(lh_write_file_atomic(path, "hello", 5));
    char *data;
    size_t len;
    LH_ASSERT_OK(lh_read_file(path, 100, &data, &len));
    CU_ASSERT_EQUAL(len, 5);
    CU_ASSERT_NSTRING_EQUAL(data, "hello", 5);
    free(data);
    LH_ASSERT_FAILS_WITH(lh_read_file(path, 4, &data, &len), LH_ERR_CAPACITY, "limit");

    /* An aborted write leaves the old contents and no temporary file behind. */
    lh_atomic_file *f;
    LH_ASSERT_OK(lh_atomic_file_open(path, &f));
    LH_ASSERT_OK(lh_atomic_file_write(f, "partial", 7));
    lh_atomic_file_abort(f);
    LH_ASSERT_OK(lh_read_file(path, 100, &data, &len));
    CU_ASSERT_NSTRING_EQUAL(data, "hello", 5);
    free(data);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls %s | grep tmp)\"", parent);
    CU_ASSERT_EQUAL(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
    LH_ASSERT_FAILS_WITH(lh_read_file("/nonexistent/x", 10, &data, &len), LH_ERR_IO, "cannot open");
}

static void test_crc32c_vectors(void)
{
    /* RFC 3720 B.4 test vectors. */
    unsigned char zeros[32] = {0}, ones[32], inc[32];
    for (int i = 0; i < 32; i++) {
        ones[i] = 0xff;
        inc[i] = (unsigned char)i;
    }
    CU_ASSERT_EQUAL(lh_crc32c(0, zeros, 32), 0x8A9136AAu);
    CU_ASSERT_EQUAL(lh_crc32c(0, ones, 32), 0x62A8AB43u);
    CU_ASSERT_EQUAL(lh_crc32c(0, inc, 32), 0x46DD794Eu);
    CU_ASSERT_EQUAL(lh_crc32c(0, "123456789", 9), 0xE3069283u);
    /* Streaming in pieces gives the same value. */
    CU_ASSERT_EQUAL(lh_crc32c(lh_crc32c(0, "12345", 5), "6789", 4), 0xE3069283u);
}

int main(void)
{
    CU_TestInfo status_tests[] = {{"status names", test_status_names},
                                  {"fail and prefix", test_fail_and_prefix},
                                  {"log levels", test_log_levels},
                                  CU_TEST_INFO_NULL};
    CU_TestInfo json_tests[] = {{"paths in errors", test_json_paths_in_errors},
                                {"syntax error has line", test_json_syntax_error_has_line},
                                {"types are strict", test_json_types_are_strict},
                                CU_TEST_INFO_NULL};
    CU_TestInfo io_tests[] = {{"atomic write and read", test_atomic_write_and_read},
                              {"crc32c vectors", test_crc32c_vectors},
                              CU_TEST_INFO_NULL};
    CU_SuiteInfo suites[] = {{"status", NULL, NULL, NULL, NULL, status_tests},
                             {"json", NULL, NULL, NULL, NULL, json_tests},
                             {"io", NULL, NULL, NULL, NULL, io_tests},
                             CU_SUITE_INFO_NULL};
    return lh_test_run(suites);
}
