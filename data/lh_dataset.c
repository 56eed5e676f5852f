/*
 * Dataset: a token stream cut into (T+1)-token samples with stable ids,
 * split into train/validation, partitioned over data-parallel replicas and
 * visited in a per-epoch shuffled order.
 *
 * The per-epoch order is a keyed bijection of [0, n) rather than a stored
 * Fisher-Yates permutation: a 4-round Feistel network over the smallest
 * even-bit power-of-two domain >= n, with cycle walking to stay in [0, n).
 * That makes "the sample at (epoch, index)" an O(1) pure function of
 * (seed, epoch, replica, index), so resuming from a checkpoint is just
 * storing two integers, no per-epoch state or memory grows with the
 * dataset, and any rank can ask which sample another rank sees at any step.
 * The round function is splitmix64's finaliser on integers only, so the
 * order is identical on every platform.
 *
 * Token sources: shards (validated, with the vocabulary when given), text
 * files through the byte tokenizer, or the embedded corpus.  Shards are
 * memory-mapped, not copied (on little-endian hosts, where the file's bytes
 * are already host-order uint16): a fineweb-sized stream of many 100M-token
 * shards costs address space and page cache, not heap, and the stream is
 * the concatenation of the mapped segments, so a sample may straddle two
 * shards exactly as it would in the concatenated file.  Text and in-memory
 * tokens are one owned segment.
 */
#include "lh_data.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lh_io.h"
#include "lh_log.h"

/* Text files are byte-tokenized in memory: bound them so a mistaken path cannot exhaust memory. */
#define TEXT_FILE_MAX_BYTES ((size_t)4 << 30)

/* A contiguous run of the token stream: a mapped shard body or an owned array. */
typedef struct segment {
    const uint16_t *tokens;
    size_t count;
    uint64_t start;  /* stream index of tokens[0] */
    void *map;       /* munmap(map, map_len) on free when not NULL */
    size_t map_len;
    uint16_t *owned; /* free() on free when not NULL */
    int checked;     /* ids already validated against the vocabulary */
} segment;

struct lh_dataset {
    lh_dataset_config cfg;
    segment *segs;
    size_t n_segs;
    uint64_t token_count;
    uint64_t total_samples;
    uint64_t first_id;        /* of this replica's range */
    uint64_t replica_samples; /* per epoch */
    lh_dataset_position pos;
};

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A keyed bijection of [0, n): Feistel on 2*half bits, cycle-walking values >= n back in. */
static uint64_t permute_index(uint64_t index, uint64_t n, uint64_t key)
{
    if (n <= 1) return index;
    unsigned bits = 64 - (unsigned)__builtin_clzll(n - 1);
    if (bits & 1) bits++;
    unsigned half = bits / 2;
    uint64_t mask = (half == 64) ? ~0ull : ((1ull << half) - 1);
    uint64_t x = index;
    do {
        uint64_t left = x >> half, right = x & mask;
        for (uint64_t round = 0; round < 4; round++) {
            uint64_t f = mix64(right ^ key ^ (round * 0x9E3779B97F4A7C15ull)) & mask;
            uint64_t next_left = right;
            right = left ^ f;
            left = next_left;
        }
        x = (left << half) | right;
    } while (x >= n);
    return x;
}

void lh_dataset_config_default(lh_dataset_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->seq_len = 64;
    cfg->vocab_size = 0;
    cfg->replica = 0;
    cfg->replicas = 1;
    cfg->seed = 1337;
    cfg->shuffle = 1;
    cfg->split = LH_SPLIT_TRAIN;
    cfg->val_fraction = 0.1;
}

static lh_status check_config(const lh_dataset_config *cfg)
{
    if (cfg->seq_len == 0) return lh_fail(LH_ERR_INVALID_ARG, "dataset: seq_len must be >= 1");
    if (cfg->replicas == 0) return lh_fail(LH_ERR_INVALID_ARG, "dataset: replicas must be >= 1");
    if (cfg->replica >= cfg->replicas)
        return lh_fail(LH_ERR_INVALID_ARG, "dataset: replica %" PRIu32 " is outside [0, %" PRIu32 ")", cfg->replica,
                       cfg->replicas);
    if (cfg->split != LH_SPLIT_TRAIN && cfg->split != LH_SPLIT_VAL && cfg->split != LH_SPLIT_ALL)
        return lh_fail(LH_ERR_INVALID_ARG, "dataset: unknown split %d", (int)cfg->split);
    if (!(cfg->val_fraction >= 0.0 && cfg->val_fraction < 1.0))
        return lh_fail(LH_ERR_INVALID_ARG, "dataset: val_fraction %g is outside [0, 1)", cfg->val_fraction);
    if (cfg->vocab_size > LH_SHARD_MAX_VOCAB)
        return lh_fail(LH_ERR_INVALID_ARG, "dataset: vocab_size %" PRIu32 " exceeds the uint16 token range (%u)",
                       cfg->vocab_size, LH_SHARD_MAX_VOCAB);
    return LH_OK;
}

static const char *split_name(lh_split split)
{
    return split == LH_SPLIT_TRAIN ? "train" : split == LH_SPLIT_VAL ? "validation" : "whole";
}

static void free_segments(segment *segs, size_t n)
{
    for (size_t i = 0; segs && i < n; i++) {
        if (segs[i].map) munmap(segs[i].map, segs[i].map_len);
        free(segs[i].owned);
    }
    free(segs);
}

/*
 * Takes ownership of `segs` (freed on failure too).  Segments not marked
 * `checked` are validated against the vocabulary here; shards were checked
 * as they were read or mapped.
 */
static lh_status dataset_adopt(segment *segs, size_t n_segs, const lh_dataset_config *cfg, lh_dataset **out)
{
    *out = NULL;
    lh_status st = check_config(cfg);
    uint64_t count = 0;
    for (size_t s = 0; !st && s < n_segs; s++) {
        segs[s].start = count;
        count += segs[s].count;
        if (!cfg->vocab_size || segs[s].checked) continue;
        for (size_t i = 0; i < segs[s].count; i++)
            if (segs[s].tokens[i] >= cfg->vocab_size) {
                st = lh_fail(LH_ERR_FORMAT, "dataset: token %u at index %" PRIu64 " is outside the vocabulary of %" PRIu32,
                             segs[s].tokens[i], segs[s].start + i, cfg->vocab_size);
                break;
            }
    }
    uint64_t total = (!st && count > 0) ? (count - 1) / cfg->seq_len : 0;
    if (!st && total == 0)
        st = lh_fail(LH_ERR_INVALID_ARG, "dataset: %" PRIu64 " tokens are too few for one sample of %" PRIu32 " + 1 tokens",
                     count, cfg->seq_len);
    uint64_t val = 0, split_start = 0, split_size = 0;
    if (!st) {
        val = cfg->split == LH_SPLIT_ALL ? 0 : (uint64_t)((double)total * cfg->val_fraction);
        split_start = cfg->split == LH_SPLIT_VAL ? total - val : 0;
        split_size = cfg->split == LH_SPLIT_VAL ? val : total - val;
        if (split_size / cfg->replicas == 0)
            st = lh_fail(LH_ERR_INVALID_ARG,
                         "dataset: the %s split has %" PRIu64 " samples of %" PRIu32 "+1 tokens (of %" PRIu64
                         "), fewer than the %" PRIu32 " replicas",
                         split_name(cfg->split), split_size, cfg->seq_len, total, cfg->replicas);
    }
    lh_dataset *ds = NULL;
    if (!st && !(ds = calloc(1, sizeof *ds))) st = lh_fail(LH_ERR_NOMEM, "dataset: out of memory");
    if (st) {
        free_segments(segs, n_segs);
        return st;
    }
    ds->cfg = *cfg;
    ds->segs = segs;
    ds->n_segs = n_segs;
    ds->token_count = count;
    ds->total_samples = total;
    ds->replica_samples = split_size / cfg->replicas;
    ds->first_id = split_start + (uint64_t)cfg->replica * ds->replica_samples;
    if (split_size % cfg->replicas)
        LH_DEBUG("dataset: %" PRIu64 " %s samples at the end of the split go to no replica",
                 split_size % cfg->replicas, split_name(cfg->split));
    *out = ds;
    return LH_OK;
}

/* One owned segment holding `tokens` (taken over; freed on failure). */
static lh_status dataset_adopt_array(uint16_t *tokens, size_t count, const lh_dataset_config *cfg, lh_dataset **out)
{
    segment *seg = calloc(1, sizeof *seg);
    if (!seg) {
        free(tokens);
        return lh_fail(LH_ERR_NOMEM, "dataset: out of memory");
    }
    seg->tokens = tokens;
    seg->owned = tokens;
    seg->count = count;
    return dataset_adopt(seg, 1, cfg, out);
}

lh_status lh_dataset_create_from_tokens(const uint16_t *tokens, size_t count, const lh_dataset_config *cfg,
                                        lh_dataset **out)
{
    *out = NULL;
    uint16_t *copy = malloc(count ? count * sizeof *copy : 1);
    if (!copy) return lh_fail(LH_ERR_NOMEM, "dataset: cannot copy %zu tokens", count);
    if (count) memcpy(copy, tokens, count * sizeof *copy);
    return dataset_adopt_array(copy, count, cfg, out);
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* Map a shard read-only and validate it in place; its body is the segment. */
static lh_status map_shard(const char *path, uint32_t vocab_size, segment *seg)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lh_fail(LH_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return lh_fail(LH_ERR_IO, "%s: not a regular file", path);
    }
    size_t len = (size_t)sb.st_size;
    if (len < LH_SHARD_HEADER_BYTES) {
        close(fd);
        return lh_fail(LH_ERR_TRUNCATED, "%s: %zu bytes is shorter than the %d-byte shard header", path, len,
                       LH_SHARD_HEADER_BYTES);
    }
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return lh_fail(LH_ERR_IO, "%s: cannot map %zu bytes: %s", path, len, strerror(errno));
    size_t n;
    lh_status st = lh_shard_parse(map, len, path, vocab_size, &n);
    if (st) {
        munmap(map, len);
        return st;
    }
    seg->tokens = (const uint16_t *)((const char *)map + LH_SHARD_HEADER_BYTES);
    seg->count = n;
    seg->map = map;
    seg->map_len = len;
    seg->checked = 1;
    return LH_OK;
}
#else
/* Big-endian hosts: the file's bytes are not host-order uint16, so read and convert. */
static lh_status map_shard(const char *path, uint32_t vocab_size, segment *seg)
{
    uint16_t *tokens;
    size_t n;
    lh_status st = lh_shard_read(path, vocab_size, &tokens, &n);
    if (st) return st;
    seg->tokens = tokens;
    seg->owned = tokens;
    seg->count = n;
    seg->checked = 1;
    return LH_OK;
}
#endif

static int is_shard_source(const char *source)
{
    size_t n = strlen(source);
    return strpbrk(source, "*?[") || (n >= 4 && strcmp(source + n - 4, ".bin") == 0);
}

/* Shard paths of `source`: the glob's sorted matches, or the one path. */
static lh_status list_shards(const char *source, glob_t *g)
{
    memset(g, 0, sizeof *g);
    int rc = glob(source, strpbrk(source, "*?[") ? 0 : GLOB_NOCHECK, NULL, g);
    if (rc == GLOB_NOMATCH || (rc == 0 && g->gl_pathc == 0)) {
        globfree(g);
        return lh_fail(LH_ERR_NOT_FOUND, "%s: no shard matches", source);
    }
    if (rc != 0) {
        globfree(g);
        return lh_fail(LH_ERR_IO, "%s: cannot list matching shards", source);
    }
    return LH_OK;
}

lh_status lh_dataset_create_from_source(const char *source, const lh_dataset_config *cfg, lh_dataset **out)
{
    *out = NULL;
    lh_status st = check_config(cfg);
    if (st) return st;
    if (!source || !is_shard_source(source)) {
        uint16_t *tokens;
        size_t count;
        st = lh_data_load_tokens(source, cfg->vocab_size, &tokens, &count);
        if (st) return st;
        st = dataset_adopt_array(tokens, count, cfg, out);
        return st ? lh_fail_prefix(st, "%s", source) : LH_OK;
    }
    glob_t g;
    st = list_shards(source, &g);
    if (st) return st;
    segment *segs = calloc(g.gl_pathc, sizeof *segs);
    if (!segs) st = lh_fail(LH_ERR_NOMEM, "%s: out of memory", source);
    size_t n = 0;
    for (; !st && n < g.gl_pathc; n++) {
        st = map_shard(g.gl_pathv[n], cfg->vocab_size, &segs[n]);
        if (st) break;
    }
    globfree(&g);
    if (st) {
        free_segments(segs, n);
        return st;
    }
    st = dataset_adopt(segs, n, cfg, out);
    return st ? lh_fail_prefix(st, "%s", source) : LH_OK;
}

void lh_dataset_free(lh_dataset *ds)
{
    if (!ds) return;
    free_segments(ds->segs, ds->n_segs);
    free(ds);
}

uint64_t lh_dataset_total_samples(const lh_dataset *ds)
{
    return ds->total_samples;
}

uint64_t lh_dataset_replica_samples(const lh_dataset *ds)
{
    return ds->replica_samples;
}

uint64_t lh_dataset_first_sample_id(const lh_dataset *ds)
{
    return ds->first_id;
}

lh_status lh_dataset_sample_at(const lh_dataset *ds, uint64_t epoch, uint64_t index, uint64_t *sample_id)
{
    if (index >= ds->replica_samples)
        return lh_fail(LH_ERR_INVALID_ARG, "dataset: index %" PRIu64 " is outside this replica's %" PRIu64 " samples",
                       index, ds->replica_samples);
    uint64_t offset = index;
    if (ds->cfg.shuffle) {
        uint64_t key = mix64(mix64(mix64(ds->cfg.seed) ^ epoch) ^ ((uint64_t)ds->cfg.replica << 1 | 1));
        offset = permute_index(index, ds->replica_samples, key);
    }
    *sample_id = ds->first_id + offset;
    return LH_OK;
}

/* Index of the segment holding stream position `pos` (< token_count): the last one starting at or before it. */
static size_t find_segment(const lh_dataset *ds, uint64_t pos)
{
    size_t lo = 0, hi = ds->n_segs;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (ds->segs[mid].start <= pos) lo = mid;
        else hi = mid;
    }
    while (pos - ds->segs[lo].start >= ds->segs[lo].count) lo++; /* step over empty segments */
    return lo;
}

lh_status lh_dataset_get_sample(const lh_dataset *ds, uint64_t sample_id, int32_t *inputs, int32_t *targets)
{
    if (sample_id >= ds->total_samples)
        return lh_fail(LH_ERR_INVALID_ARG, "dataset: sample id %" PRIu64 " is outside [0, %" PRIu64 ")", sample_id,
                       ds->total_samples);
    const uint32_t T = ds->cfg.seq_len;
    uint64_t pos = sample_id * T;
    size_t s = find_segment(ds, pos);
    size_t off = (size_t)(pos - ds->segs[s].start);
    if (ds->segs[s].count - off >= (size_t)T + 1) { /* the usual case: one segment holds the window */
        const uint16_t *window = ds->segs[s].tokens + off;
        for (uint32_t t = 0; t < T; t++) {
            if (inputs) inputs[t] = window[t];
            if (targets) targets[t] = window[t + 1];
        }
        return LH_OK;
    }
    for (uint32_t t = 0; t <= T; t++) { /* the window straddles shards */
        while (off >= ds->segs[s].count) {
            off = 0;
            s++;
        }
        int32_t token = ds->segs[s].tokens[off++];
        if (inputs && t < T) inputs[t] = token;
        if (targets && t > 0) targets[t - 1] = token;
    }
    return LH_OK;
}

lh_status lh_dataset_next_batch(lh_dataset *ds, uint32_t batch, int32_t *inputs, int32_t *targets,
                                uint64_t *sample_ids)
{
    const size_t T = ds->cfg.seq_len;
    for (uint32_t b = 0; b < batch; b++) {
        uint64_t id;
        lh_status st = lh_dataset_sample_at(ds, ds->pos.epoch, ds->pos.index, &id);
        if (st) return st;
        st = lh_dataset_get_sample(ds, id, inputs ? inputs + b * T : NULL, targets ? targets + b * T : NULL);
        if (st) return st;
        if (sample_ids) sample_ids[b] = id;
        if (++ds->pos.index == ds->replica_samples) {
            ds->pos.index = 0;
            ds->pos.epoch++;
        }
    }
    return LH_OK;
}

lh_dataset_position lh_dataset_tell(const lh_dataset *ds)
{
    return ds->pos;
}

lh_status lh_dataset_seek(lh_dataset *ds, lh_dataset_position pos)
{
    if (pos.index >= ds->replica_samples)
        return lh_fail(LH_ERR_INVALID_ARG, "dataset: position index %" PRIu64 " is outside this replica's %" PRIu64
                       " samples per epoch (was the checkpoint made with another seq_len, split or replica count?)",
                       pos.index, ds->replica_samples);
    ds->pos = pos;
    return LH_OK;
}

/* ---- token sources ---- */

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static lh_status load_shard_list(const char *pattern, uint32_t vocab_size, uint16_t **tokens, size_t *count)
{
    glob_t g;
    memset(&g, 0, sizeof g);
    int rc = glob(pattern, 0, NULL, &g); /* glob sorts the names */
    if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
        globfree(&g);
        return lh_fail(LH_ERR_NOT_FOUND, "%s: no shard matches", pattern);
    }
    if (rc != 0) {
        globfree(&g);
        return lh_fail(LH_ERR_IO, "%s: cannot list matching shards", pattern);
    }
    uint16_t *all = NULL;
    size_t total = 0;
    lh_status st = LH_OK;
    for (size_t i = 0; i < g.gl_pathc && !st; i++) {
        uint16_t *part;
        size_t n;
        st = lh_shard_read(g.gl_pathv[i], vocab_size, &part, &n);
        if (st) break;
        uint16_t *grown = realloc(all, (total + n ? total + n : 1) * sizeof *grown);
        if (!grown) {
            free(part);
            st = lh_fail(LH_ERR_NOMEM, "%s: cannot hold %zu tokens", pattern, total + n);
            break;
        }
        all = grown;
        memcpy(all + total, part, n * sizeof *part);
        total += n;
        free(part);
    }
    globfree(&g);
    if (st) {
        free(all);
        return st;
    }
    *tokens = all;
    *count = total;
    return LH_OK;
}

lh_status lh_data_load_tokens(const char *source, uint32_t vocab_size, uint16_t **tokens, size_t *count)
{
    *tokens = NULL;
    *count = 0;
    if (!source || !*source) return lh_fail(LH_ERR_INVALID_ARG, "data source is empty (use \"embedded\" or a path)");
    lh_status st;
    if (strcmp(source, "embedded") == 0) {
        st = lh_corpus_default_tokens(tokens, count);
    } else if (strpbrk(source, "*?[")) {
        st = load_shard_list(source, vocab_size, tokens, count);
        return st;
    } else if (has_suffix(source, ".bin")) {
        return lh_shard_read(source, vocab_size, tokens, count);
    } else {
        char *text;
        size_t len;
        st = lh_read_file(source, TEXT_FILE_MAX_BYTES, &text, &len);
        if (st) return st;
        uint16_t *ids = malloc(len ? len * sizeof *ids : 1);
        if (!ids) {
            free(text);
            return lh_fail(LH_ERR_NOMEM, "%s: cannot allocate %zu tokens", source, len);
        }
        for (size_t i = 0; i < len; i++) ids[i] = (uint8_t)text[i];
        free(text);
        *tokens = ids;
        *count = len;
        st = LH_OK;
    }
    if (st) return st;
    /* Byte tokens are < 256; a smaller vocabulary cannot hold them. */
    if (vocab_size && vocab_size < 256) {
        for (size_t i = 0; i < *count; i++)
            if ((*tokens)[i] >= vocab_size) {
                lh_status e = lh_fail(LH_ERR_FORMAT, "%s: byte %u at offset %zu is outside the vocabulary of %" PRIu32,
                                      source, (*tokens)[i], i, vocab_size);
                free(*tokens);
                *tokens = NULL;
                *count = 0;
                return e;
            }
    }
    return LH_OK;
}
