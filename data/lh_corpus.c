/*
 * The embedded default corpus: English-like paragraphs from a small
 * probabilistic grammar, generated in C so nothing is downloaded or shipped.
 *
 * The grammar is chosen so a small GPT has something to learn at several
 * ranges, which makes loss curves meaningful rather than flat:
 *   - spelling and word boundaries (character level, learned first);
 *   - fixed facts (each animal has one sound and one food: "The dog barks");
 *   - agreement over a paragraph (a protagonist's pronoun follows the name);
 *   - copying (the object and colour named in one sentence are repeated in
 *     the next: what induction heads learn);
 *   - sequences (weekdays in order, counting in words) and one-digit sums.
 * Determinism across platforms is part of the contract (sample ids must name
 * the same tokens everywhere), so generation uses only a 64-bit integer PRNG
 * (splitmix64), modulo selection and fixed tables; tests pin a checksum of
 * the default corpus.  Changing any table changes that checksum: bump it
 * knowingly (docs/data.md) because cached AQ-SGD state keyed by sample id
 * would no longer match.
 */
#include "lh_data.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rng {
    uint64_t state;
} rng;

static uint64_t rng_next(rng *r)
{
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static unsigned pick(rng *r, unsigned n)
{
    return (unsigned)(rng_next(r) % n);
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

typedef struct person {
    const char *name;
    int female;
} person;

typedef struct animal {
    const char *name, *sound, *food;
} animal;

static const person people[] = {{"Anna", 1}, {"Ben", 0},  {"Clara", 1}, {"David", 0}, {"Emma", 1}, {"Felix", 0},
                                {"Grace", 1}, {"Hugo", 0}, {"Iris", 1},  {"Jack", 0},  {"Lena", 1}, {"Max", 0}};
static const animal animals[] = {{"cat", "meows", "fish"},     {"dog", "barks", "bones"},  {"cow", "moos", "grass"},
                                 {"duck", "quacks", "bread"},  {"sheep", "bleats", "hay"}, {"horse", "neighs", "apples"},
                                 {"owl", "hoots", "mice"},     {"frog", "croaks", "flies"}, {"lion", "roars", "meat"},
                                 {"bee", "buzzes", "nectar"}};
static const char *const colours[] = {"red", "blue", "green", "yellow", "black", "white", "brown", "orange"};
static const char *const objects[] = {"ball", "hat", "box", "cup", "kite", "book", "boat", "bag"};
/* Each place with the preposition it takes ("in the park", "on the farm"). */
static const char *const places[][2] = {{"in", "garden"}, {"in", "park"}, {"in", "forest"}, {"at", "market"},
                                        {"by", "river"},  {"at", "school"}, {"on", "farm"},  {"on", "beach"}};
static const char *const adjectives[] = {"small", "big", "old", "young", "happy", "quiet", "lazy", "clever"};
static const char *const foods[] = {"bread", "apples", "soup", "cake", "rice", "cheese", "pears", "eggs"};
static const char *const days[] = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};
static const char *const numbers[] = {"zero",    "one",     "two",       "three",    "four",    "five",    "six",
                                      "seven",   "eight",   "nine",      "ten",      "eleven",  "twelve",  "thirteen",
                                      "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"};

/* A line under construction; sized far above the longest paragraph the grammar makes. */
typedef struct line {
    char text[2048];
    size_t len;
} line;

static void emit(line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void emit(line *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->text + l->len, sizeof l->text - l->len, fmt, ap);
    va_end(ap);
    if (n > 0) l->len += (size_t)n < sizeof l->text - l->len ? (size_t)n : sizeof l->text - l->len - 1;
}

static const char *subject(const person *p, int mentioned)
{
    return mentioned ? (p->female ? "She" : "He") : p->name;
}

static const char *article(const char *word)
{
    return strchr("aeiou", word[0]) ? "an" : "a";
}

/* Sentence kinds that start with the protagonist, so a paragraph can open with its name. */
static const unsigned protagonist_kinds[] = {1, 2, 3, 7, 8};
#define SENTENCE_KINDS 9

/* One sentence of kind `kind` about protagonist `p`; `mentioned`: use a pronoun instead of the name. */
static void sentence(rng *r, line *l, unsigned kind, const person *p, int mentioned)
{
    const animal *a = &animals[pick(r, COUNT(animals))];
    switch (kind) {
    case 0: {
        const char *const *place = places[pick(r, COUNT(places))];
        emit(l, "The %s %s %s %s the %s.", adjectives[pick(r, COUNT(adjectives))], a->name, a->sound, place[0],
             place[1]);
        break;
    }
    case 1: {
        const char *colour = colours[pick(r, COUNT(colours))], *object = objects[pick(r, COUNT(objects))];
        emit(l, "%s has %s %s %s. The %s is %s.", subject(p, mentioned), article(colour), colour, object, object,
             colour);
        break;
    }
    case 2: {
        const person *friend = &people[pick(r, COUNT(people))];
        if (friend == p) friend = &people[(size_t)(p - people + 1) % COUNT(people)];
        emit(l, "%s went to the %s with %s.", subject(p, mentioned), places[pick(r, COUNT(places))][1], friend->name);
        break;
    }
    case 3:
        emit(l, "%s saw %s %s there. The %s %s.", subject(p, mentioned), article(a->name), a->name, a->name,
             a->sound);
        break;
    case 4:
        emit(l, "%s %s likes to eat %s.", a->name[0] == 'o' ? "An" : "A", a->name, a->food);
        break;
    case 5: {
        unsigned x = pick(r, 10), y = pick(r, 10);
        emit(l, "%u plus %u is %u.", x, y, x + y);
        break;
    }
    case 6: {
        unsigned d = pick(r, COUNT(days));
        emit(l, "After %s comes %s.", days[d], days[(d + 1) % COUNT(days)]);
        break;
    }
    case 7: {
        unsigned start = pick(r, 15), n = 3 + pick(r, 4);
        emit(l, "%s counts: ", subject(p, mentioned));
        for (unsigned i = 0; i < n; i++) emit(l, "%s%s", numbers[start + i], i + 1 < n ? ", " : ".");
        break;
    }
    default:
        emit(l, "%s is %s and likes %s.", subject(p, mentioned), adjectives[pick(r, COUNT(adjectives))],
             foods[pick(r, COUNT(foods))]);
        break;
    }
}

static void paragraph(rng *r, line *l)
{
    l->len = 0;
    const person *p = &people[pick(r, COUNT(people))];
    unsigned n = 3 + pick(r, 4);
    for (unsigned i = 0; i < n; i++) {
        if (i) emit(l, " ");
        unsigned kind = i == 0 ? protagonist_kinds[pick(r, COUNT(protagonist_kinds))] : pick(r, SENTENCE_KINDS);
        sentence(r, l, kind, p, i > 0);
    }
    emit(l, "\n");
}

size_t lh_corpus_generate(uint64_t seed, char *out, size_t out_cap)
{
    rng r = {seed};
    line l;
    size_t pos = 0;
    for (;;) {
        paragraph(&r, &l);
        if (out_cap - pos < l.len) return pos;
        memcpy(out + pos, l.text, l.len);
        pos += l.len;
    }
}

lh_status lh_corpus_default(char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    char *buf = malloc(LH_CORPUS_DEFAULT_BYTES);
    if (!buf) return lh_fail(LH_ERR_NOMEM, "corpus: cannot allocate %zu bytes", LH_CORPUS_DEFAULT_BYTES);
    *len = lh_corpus_generate(LH_CORPUS_DEFAULT_SEED, buf, LH_CORPUS_DEFAULT_BYTES);
    *text = buf;
    return LH_OK;
}

lh_status lh_corpus_default_tokens(uint16_t **tokens, size_t *count)
{
    *tokens = NULL;
    *count = 0;
    char *text;
    size_t len;
    lh_status st = lh_corpus_default(&text, &len);
    if (st) return st;
    uint16_t *ids = malloc(len * sizeof *ids);
    if (!ids) {
        free(text);
        return lh_fail(LH_ERR_NOMEM, "corpus: cannot allocate %zu tokens", len);
    }
    for (size_t i = 0; i < len; i++) ids[i] = (uint8_t)text[i];
    free(text);
    *tokens = ids;
    *count = len;
    return LH_OK;
}
