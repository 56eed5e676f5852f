/*
 * The user-written file formats: every example in examples/ loads, every file
 * in tests/formats/broken/ is rejected with the message a user needs, and what
 * is saved loads back the same.
 */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "lh_job.h"
#include "lh_plan.h"
#include "lh_test.h"
#include "lh_topology.h"

#define EXAMPLES LH_SOURCE_DIR "/examples/"
#define BROKEN LH_SOURCE_DIR "/tests/formats/broken/"

static void test_example_topology(void)
{
    lh_topology *t;
    LH_ASSERT_OK(lh_topology_load(EXAMPLES "topology.json", &t));
    CU_ASSERT_EQUAL(t->n_devices, 4);
    CU_ASSERT_EQUAL(t->n_regions, 2);
    CU_ASSERT_STRING_EQUAL(t->regions[0], "ohio");
    CU_ASSERT_STRING_EQUAL(t->devices[2].region, "virginia");
    int ok;
    lh_link l = lh_topology_link(t, 0, 1, &ok);
    CU_ASSERT_TRUE(ok);
    CU_ASSERT_DOUBLE_EQUAL(l.latency_s, 0.001, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(l.bandwidth_bps, 5e9, 1);
    /* The directed device-pair entry overrides the region pair in one direction only. */
    l = lh_topology_link(t, 1, 2, &ok);
    CU_ASSERT_DOUBLE_EQUAL(l.latency_s, 0.009, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(l.bandwidth_bps, 2.5e9, 1);
    l = lh_topology_link(t, 2, 1, &ok);
    CU_ASSERT_DOUBLE_EQUAL(l.latency_s, 0.011, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(l.bandwidth_bps, 1.12e9, 1);
    lh_topology_link(t, 1, 1, &ok);
    CU_ASSERT_FALSE(ok);
    double lat[16], bw[16];
    LH_ASSERT_OK(lh_topology_dense(t, lat, bw));
    CU_ASSERT_DOUBLE_EQUAL(lat[1 * 4 + 2], 0.009, 1e-12);
    CU_ASSERT_TRUE(isinf(bw[3 * 4 + 3]));
    lh_topology_free(t);
}

static void test_topology_round_trip(void)
{
    lh_topology *t, *back;
    LH_ASSERT_OK(lh_topology_load(EXAMPLES "topology.json", &t));
    char path[] = "/tmp/lh_topo_XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    LH_ASSERT_OK(lh_topology_save(t, path));
    LH_ASSERT_OK(lh_topology_load(path, &back));
    CU_ASSERT_EQUAL(back->n_devices, t->n_devices);
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_STRING_EQUAL(back->devices[i].name, t->devices[i].name);
        CU_ASSERT_DOUBLE_EQUAL(back->devices[i].flops, t->devices[i].flops, 1);
        for (int j = 0; j < 4; j++) {
            if (i == j) continue;
            int ok1, ok2;
            lh_link a = lh_topology_link(t, i, j, &ok1), b = lh_topology_link(back, i, j, &ok2);
            CU_ASSERT_TRUE(ok1 && ok2);
            CU_ASSERT_DOUBLE_EQUAL(a.latency_s, b.latency_s, 1e-12);
            CU_ASSERT_DOUBLE_EQUAL(a.bandwidth_bps, b.bandwidth_bps, 1e-3);
        }
    }
    unlink(path);
    lh_topology_free(t);
    lh_topology_free(back);
}

static void test_topology_built_in_code(void)
{
    lh_topology *t;
    LH_ASSERT_OK(lh_topology_create(6, &t));
    int east, west;
    LH_ASSERT_OK(lh_topology_add_region(t, "east", &east));
    LH_ASSERT_OK(lh_topology_add_region(t, "west", &west));
    for (int i = 0; i < 6; i++) t->devices[i].region_index = i < 3 ? east : west;
    LH_ASSERT_OK(lh_topology_set_region_link(t, east, east, (lh_link){0.001, 1e10}, 1));
    /* west-west and east-west are missing: validation names a missing pair. */
    LH_ASSERT_FAILS_WITH(lh_topology_validate(t), LH_ERR_FORMAT, "no link from device");
    LH_ASSERT_OK(lh_topology_set_region_link(t, west, west, (lh_link){0.001, 1e10}, 1));
    LH_ASSERT_OK(lh_topology_set_region_link(t, east, west, (lh_link){0.05, 1e8}, 1));
    LH_ASSERT_OK(lh_topology_validate(t));
    LH_ASSERT_FAILS_WITH(lh_topology_set_pair_link(t, 2, 2, (lh_link){0, 1}, 1), LH_ERR_INVALID_ARG, "bad device pair");
    LH_ASSERT_FAILS_WITH(lh_topology_set_region_link(t, east, west, (lh_link){0, 0}, 1), LH_ERR_INVALID_ARG,
                         "bandwidth");
    lh_topology_free(t);
}

static void test_example_plan_and_job(void)
{
    lh_plan *p;
    lh_topology *t;
    LH_ASSERT_OK(lh_plan_load(EXAMPLES "plan.json", &p));
    LH_ASSERT_OK(lh_topology_load(EXAMPLES "topology.json", &t));
    LH_ASSERT_OK(lh_plan_validate(p, t));
    CU_ASSERT_EQUAL(lh_plan_device(p, 1, 0), 1);
    CU_ASSERT_EQUAL(lh_plan_device(p, 0, 1), 2);
    int r, s;
    CU_ASSERT_TRUE(lh_plan_find_device(p, 3, &r, &s));
    CU_ASSERT_EQUAL(r, 1);
    CU_ASSERT_EQUAL(s, 1);
    CU_ASSERT_FALSE(lh_plan_find_device(p, 7, &r, &s));
    t->n_devices = 3; /* a smaller topology no longer holds device 3 */
    LH_ASSERT_FAILS_WITH(lh_plan_validate(p, t), LH_ERR_MISMATCH, "device 3 is not in the topology");
    t->n_devices = 4;
    lh_topology_free(t);

    char path[] = "/tmp/lh_plan_XXXXXX";
    CU_ASSERT_FATAL(mkstemp(path) >= 0);
    p->cost_s = 1.5;
    LH_ASSERT_OK(lh_plan_save(p, path));
    lh_plan *back;
    LH_ASSERT_OK(lh_plan_load(path, &back));
    CU_ASSERT_EQUAL(memcmp(back->device, p->device, 4 * sizeof(int)), 0);
    CU_ASSERT_EQUAL(memcmp(back->num_layers, p->num_layers, 2 * sizeof(int)), 0);
    CU_ASSERT_DOUBLE_EQUAL(back->cost_s, 1.5, 1e-12);
    unlink(path);
    lh_plan_free(back);
    lh_plan_free(p);

    lh_job job;
    LH_ASSERT_OK(lh_job_load(EXAMPLES "job.json", &job));
    CU_ASSERT_EQUAL(job.model.layers, 4);
    CU_ASSERT_EQUAL(job.batch.micro_batch, 2);
    CU_ASSERT_EQUAL(job.compression.mode, LH_COMPRESS_AQSGD);
    CU_ASSERT_EQUAL(job.schedule, LH_JOB_SCHEDULE_1F1B);
    CU_ASSERT_EQUAL(job.pipeline_depth, LH_JOB_DEPTH_AUTO);
    CU_ASSERT_STRING_EQUAL(job.data.train, "embedded");
    /* Input paths are resolved against the job file's folder. */
    CU_ASSERT_STRING_EQUAL(job.placement.topology, EXAMPLES "topology.json");
    CU_ASSERT_STRING_EQUAL(job.checkpoint.dir, "");
    CU_ASSERT_EQUAL(job.batch.steps, 60);
}

static void test_plan_create_splits_layers(void)
{
    lh_plan *p;
    LH_ASSERT_OK(lh_plan_create(3, 2, 10, &p));
    CU_ASSERT_EQUAL(p->num_layers[0], 4);
    CU_ASSERT_EQUAL(p->num_layers[1], 3);
    CU_ASSERT_EQUAL(p->num_layers[2], 3);
    CU_ASSERT_EQUAL(p->first_layer[2], 7);
    LH_ASSERT_OK(lh_plan_validate(p, NULL));
    p->device[5] = 0;
    LH_ASSERT_FAILS_WITH(lh_plan_validate(p, NULL), LH_ERR_FORMAT, "device 0 runs more than one stage");
    lh_plan_free(p);
    LH_ASSERT_FAILS_WITH(lh_plan_create(4, 1, 3, &p), LH_ERR_INVALID_ARG, "layers >= stages");
}

typedef struct broken_case {
    const char *file;
    lh_status expected;
    const char *message;
} broken_case;

static const broken_case broken_cases[] = {
    {"topo_zero_bandwidth.json", LH_ERR_FORMAT, "$.links[0].bandwidth_gbps: must be > 0"},
    {"topo_missing_link.json", LH_ERR_FORMAT, "no link from device 0"},
    {"topo_duplicate_id.json", LH_ERR_FORMAT, "$.devices[1].id: device id 0 appears twice"},
    {"topo_unknown_field.json", LH_ERR_FORMAT, "$.devices[0].gpus: unknown field"},
    {"topo_bad_region.json", LH_ERR_FORMAT, "$.links[0].to_region: no device is in region \"mars\""},
    {"topo_wrong_format.json", LH_ERR_FORMAT, "$.format: expected \"longhaul-topology\""},
    {"topo_future_version.json", LH_ERR_FORMAT, "$.version: must be in [1, 1], got 7"},
    {"topo_syntax.json", LH_ERR_FORMAT, "topo_syntax.json:1:"},
    {"topo_negative_flops.json", LH_ERR_FORMAT, "$.devices[0].flops: must be in"},
    {"plan_gap.json", LH_ERR_FORMAT, "$.stages[1].first_layer: is 2 but the previous stage ends at layer 1"},
    {"plan_duplicate_device.json", LH_ERR_FORMAT, "device 1 runs more than one stage"},
    {"plan_short_replica.json", LH_ERR_FORMAT, "$.replicas[0]: has 1 devices but pipeline_stages is 2"},
    {"plan_uncovered.json", LH_ERR_FORMAT, "cover layers [0, 4) but the model has 5 layers"},
    {"job_heads.json", LH_ERR_FORMAT, "$.model.heads: 3 heads do not divide 100 channels"},
    {"job_micro.json", LH_ERR_FORMAT, "$.batch.micro_batch: must divide batch_size (8), got 3"},
    {"job_bits.json", LH_ERR_FORMAT, "$.compression.forward_bits: must be in [1, 8], got 9"},
    {"job_clip.json", LH_ERR_FORMAT, "$.compression.clip: must be in [0, 1e+06], got -1"},
    {"job_mode.json", LH_ERR_FORMAT, "$.compression.mode: \"gzip\" is not one of: fp32, aqsgd, directq"},
    {"job_device.json", LH_ERR_FORMAT, "$.device: \"tpu\" is not one of: cpu, cuda"},
    {"job_nccl_cpu.json", LH_ERR_FORMAT, "$.transport: nccl moves device memory: it needs \"device\": \"cuda\""},
    {"job_depth.json", LH_ERR_FORMAT, "$.pipeline.depth: expected a number >= 1 or \"auto\", got \"deep\""},
    {"job_seq.json", LH_ERR_FORMAT, "$.batch.seq_len: 64 is longer than the model context 32"},
    {"job_missing_model.json", LH_ERR_FORMAT, "$.model: required field is missing"},
    {"job_typo.json", LH_ERR_FORMAT, "$.optimiser: unknown field"},
    {"job_stages.json", LH_ERR_FORMAT, "4 stages need at least as many layers"},
    {"job_string_number.json", LH_ERR_FORMAT, "$.model.layers: expected an integer, got string"},
    {"job_steps_and_epochs.json", LH_ERR_FORMAT, "give steps or epochs, not both"},
    {"job_emulate_no_topology.json", LH_ERR_FORMAT, "emulation needs a topology"},
};

static lh_status load_any(const char *path)
{
    const char *name = strrchr(path, '/') + 1;
    if (strncmp(name, "topo_", 5) == 0) {
        lh_topology *t = NULL;
        lh_status st = lh_topology_load(path, &t);
        lh_topology_free(t);
        return st;
    }
    if (strncmp(name, "plan_", 5) == 0) {
        lh_plan *p = NULL;
        lh_status st = lh_plan_load(path, &p);
        lh_plan_free(p);
        return st;
    }
    lh_job job;
    return lh_job_load(path, &job);
}

static void test_broken_files_are_rejected(void)
{
    for (size_t i = 0; i < sizeof broken_cases / sizeof broken_cases[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, BROKEN "%s", broken_cases[i].file);
        LH_ASSERT_FAILS_WITH(load_any(path), broken_cases[i].expected, broken_cases[i].message);
        /* Every message names the file it is about. */
        CU_ASSERT_PTR_NOT_NULL(strstr(lh_last_error(), broken_cases[i].file));
    }
}

int main(void)
{
    CU_TestInfo topology_tests[] = {{"example loads and resolves links", test_example_topology},
                                    {"save then load is the same", test_topology_round_trip},
                                    {"built in code and validated", test_topology_built_in_code},
                                    CU_TEST_INFO_NULL};
    CU_TestInfo plan_job_tests[] = {{"examples load; plan round trip", test_example_plan_and_job},
                                    {"create splits layers evenly", test_plan_create_splits_layers},
                                    CU_TEST_INFO_NULL};
    CU_TestInfo broken_tests[] = {{"broken files are rejected", test_broken_files_are_rejected}, CU_TEST_INFO_NULL};
    CU_SuiteInfo suites[] = {{"topology", NULL, NULL, NULL, NULL, topology_tests},
                             {"plan and job", NULL, NULL, NULL, NULL, plan_job_tests},
                             {"broken", NULL, NULL, NULL, NULL, broken_tests},
                             CU_SUITE_INFO_NULL};
    return lh_test_run(suites);
}
