/* The block system's own cost: a sequential pipeline of 100 leaf blocks
   with 4 params each, called many times, against calling the same 100
   block functions directly on one struct. Prints ns per block and the
   ratio. Run by `make bench`. */
#define _POSIX_C_SOURCE 200809L
#define MODULAR_IMPLEMENTATION
#include "modular.h"

#include <time.h>

#define step_PARAMS(X, S)                                         \
    X(S, INPUT, INT, k, "int", DEF(1), "increment")               \
    X(S, MODIFIED, INT, x, "int", NONE, "running value")          \
    X(S, MODIFIED, FLOAT, acc, "float", NONE, "running sum")      \
    X(S, OUTPUT, INT, y, "int", NONE, "twice x")

static void step_body(int64_t k, int64_t *x, double *acc, int64_t *y) {
    *x += k;
    *acc += 0.5;
    *y = *x * 2;
}

MOD_BLOCK(step, "x += k; acc += 0.5; y = 2x") {
    step_body(s->k, &s->x, &s->acc, &s->y);
    return MOD_OK;
}

#define NBLOCKS 100

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* the direct baseline: the same function, called through a pointer so the
   compiler cannot fold the 100 calls */
typedef struct direct_state {
    int64_t k, x, y;
    double acc;
} direct_state;
static void (*volatile direct_fn)(int64_t, int64_t *, double *, int64_t *) = step_body;

int main(int argc, char **argv) {
    mod_entry entries[NBLOCKS + 1];
    char names[NBLOCKS][8];
    mod_block *one = NULL, *seq = NULL;
    mod_sequential_desc d = {0};
    mod_pipeline *pipe = NULL;
    const mod_arg args[] = {{"k", mod_int(2)}, {"x", mod_int(0)}, {"acc", mod_float(0)}, {NULL, {0}}};
    int i, rep, calls = argc > 1 ? atoi(argv[1]) : 20000, reps = argc > 2 ? atoi(argv[2]) : 7;
    double best_pipe = 1e30, best_direct = 1e30;
    int64_t check = 0;

    if (mod_block_new(&one, &step_def) != MOD_OK) return 1;
    for (i = 0; i < NBLOCKS; i++) {
        snprintf(names[i], sizeof names[i], "b%d", i);
        entries[i].name = names[i];
        entries[i].def = NULL;
        entries[i].block = one;
        entries[i].trigger = NULL;
    }
    memset(&entries[NBLOCKS], 0, sizeof entries[NBLOCKS]);
    d.blocks = entries;
    if (mod_sequential_new(&seq, &d) != MOD_OK || mod_pipeline_new(&pipe, seq) != MOD_OK) {
        fprintf(stderr, "%s\n", mod_last_error());
        return 1;
    }
    for (rep = 0; rep < reps; rep++) {
        double t0 = now(), t;
        int c;
        for (c = 0; c < calls; c++) {
            mod_state *st = NULL;
            if (mod_pipeline_call(pipe, args, &st) != MOD_OK) return 1;
            check += mod_state_intermediate(st, "y")->i;
            mod_state_free(st);
        }
        t = (now() - t0) / ((double)calls * NBLOCKS);
        if (t < best_pipe) best_pipe = t;
        t0 = now();
        for (c = 0; c < calls; c++) {
            direct_state ds = {2, 0, 0, 0.0};
            int b;
            for (b = 0; b < NBLOCKS; b++) direct_fn(ds.k, &ds.x, &ds.acc, &ds.y);
            check += ds.y;
        }
        t = (now() - t0) / ((double)calls * NBLOCKS);
        if (t < best_direct) best_direct = t;
    }
    printf("framework: %d leaf blocks x 4 params, %d calls, best of %d\n", NBLOCKS, calls, reps);
    printf("  through the pipeline  %8.1f ns per block (state, argument routing, checks, gather, scatter)\n",
           best_pipe * 1e9);
    printf("  direct function calls %8.1f ns per block\n", best_direct * 1e9);
    printf("  framework cost        %8.1f ns per block (ratio %.1fx)\n", (best_pipe - best_direct) * 1e9,
           best_pipe / best_direct);
    printf("  (checksum %lld)\n", (long long)check);
    mod_pipeline_free(pipe);
    mod_block_free(seq);
    mod_block_free(one);
    return 0;
}
