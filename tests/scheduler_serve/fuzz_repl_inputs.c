/*
 * Fuzz target for the replication simulator's input readers (outside input:
 * a user's trace and node files).  The first byte picks the reader (even:
 * trace, odd: node set); the rest is the document.  A trace that parses is
 * also simulated (when small) on a fixed two-node set under every built-in
 * policy, so odd-but-valid numbers (huge gaps, tiny models) must not crash,
 * hang or break the accounting either.
 */
#include <stdint.h>
#include <stdlib.h>

#include "lh_serve_sim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    if (data[0] & 1) {
        lh_repl_nodes *n;
        if (lh_repl_nodes_parse("fuzz.json", text, len, &n) == LH_OK) {
            if (n->n_nodes < 1) abort();
            lh_repl_nodes_free(n);
        }
        return 0;
    }
    lh_repl_trace *t;
    if (lh_repl_trace_parse("fuzz.json", text, len, &t) != LH_OK) return 0;
    if (t->n_models < 1) abort();
    if (t->n_requests <= 64 && t->n_models <= 16) {
        lh_repl_node nodes[2] = {{"a", 1e10, 1.0}, {"b", 4e10, 0.1}};
        lh_repl_nodes ns = {2, nodes};
        lh_repl_policy_params pp;
        lh_repl_policy_defaults(&pp);
        pp.initial_copies = 1;
        for (int i = 0; lh_repl_policies[i]; i++) {
            lh_repl_result r;
            if (lh_repl_simulate(t, &ns, lh_repl_policies[i], &pp, &r) == LH_OK &&
                (r.served + r.unserved != r.requests || r.hits > r.served))
                abort();
        }
    }
    lh_repl_trace_free(t);
    return 0;
}
