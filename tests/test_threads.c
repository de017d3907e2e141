/* Thread pool: coverage of [0, n), grain, nesting, concurrent callers,
   shutdown and restart. (Kernels' bit-identity across thread counts is
   checked in test_nn.c.) */
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"
#include "tests/test.h"

#include <pthread.h>
#include <unistd.h>

typedef struct cover_ctx {
    int *hits;         /* one counter per item (atomic) */
    int64_t grain, n;
    int short_ranges;  /* ranges shorter than grain that are not the last (atomic) */
    int bad_ranges;    /* empty or out of [0, n) (atomic) */
} cover_ctx;

static void cover_fn(void *p, int64_t b, int64_t e) {
    cover_ctx *c = (cover_ctx *)p;
    int64_t i;
    if (b < 0 || e > c->n || b >= e) __atomic_fetch_add(&c->bad_ranges, 1, __ATOMIC_RELAXED);
    if (e - b < c->grain && e != c->n) __atomic_fetch_add(&c->short_ranges, 1, __ATOMIC_RELAXED);
    for (i = b; i < e && i >= 0 && i < c->n; i++) __atomic_fetch_add(&c->hits[i], 1, __ATOMIC_RELAXED);
}

/* Runs one coverage check; returns 1 when every item ran exactly once. */
static int cover(int64_t n, int64_t grain) {
    cover_ctx c;
    int64_t i;
    int ok = 1;
    c.hits = (int *)calloc((size_t)(n > 0 ? n : 1), sizeof(int));
    c.grain = grain < 1 ? 1 : grain;
    c.n = n;
    c.short_ranges = 0;
    c.bad_ranges = 0;
    mt_parallel_for(n, grain, cover_fn, &c);
    for (i = 0; i < n; i++) ok &= c.hits[i] == 1;
    ok &= c.short_ranges == 0 && c.bad_ranges == 0;
    free(c.hits);
    return ok;
}

static void test_counts(void) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    mt_set_num_threads(0);
    CHECK(mt_get_num_threads() == (int)(cores < 1 ? 1 : cores), "default is one thread per online core (%d)",
          mt_get_num_threads());
    mt_set_num_threads(3);
    CHECK(mt_get_num_threads() == 3, "set 3 threads");
    mt_set_num_threads(-5);
    CHECK(mt_get_num_threads() == (int)(cores < 1 ? 1 : cores), "negative means default");
}

static void test_coverage(void) {
    static const int threads[] = {1, 2, 3, 8};
    static const int64_t sizes[] = {0, 1, 2, 7, 17, 63, 64, 65, 1000, 4097};
    static const int64_t grains[] = {0, 1, 3, 16, 100000};
    size_t t, s, g;
    for (t = 0; t < sizeof threads / sizeof *threads; t++) {
        int all = 1;
        mt_set_num_threads(threads[t]);
        for (s = 0; s < sizeof sizes / sizeof *sizes; s++)
            for (g = 0; g < sizeof grains / sizeof *grains; g++) all &= cover(sizes[s], grains[g]);
        CHECK(all, "%d threads: every item once, ranges >= grain but the last (n in 0..4097, grain 0..1e5)",
              threads[t]);
    }
}

/* A parallel call made from inside a parallel region runs inline. */
typedef struct nest_ctx {
    int64_t sums[64];
} nest_ctx;

typedef struct inner_ctx {
    int64_t *out;
    int64_t row;
} inner_ctx;

static void inner_fn(void *p, int64_t b, int64_t e) {
    inner_ctx *c = (inner_ctx *)p;
    int64_t i;
    for (i = b; i < e; i++) c->out[i] = c->row * 1000 + i;
}

static void outer_fn(void *p, int64_t b, int64_t e) {
    nest_ctx *c = (nest_ctx *)p;
    int64_t r, i, vals[100];
    for (r = b; r < e; r++) {
        inner_ctx ic;
        ic.out = vals;
        ic.row = r;
        mt_parallel_for(100, 1, inner_fn, &ic);
        c->sums[r] = 0;
        for (i = 0; i < 100; i++) c->sums[r] += vals[i];
    }
}

static void test_nested(void) {
    nest_ctx c;
    int r, ok = 1;
    mt_set_num_threads(2);
    mt_parallel_for(64, 1, outer_fn, &c);
    for (r = 0; r < 64; r++) ok &= c.sums[r] == (int64_t)r * 100000 + 4950;
    CHECK(ok, "nested parallel_for from a worker runs inline and completes");
}

/* Eight user threads call parallel_for at once, many times. */
typedef struct user_ctx {
    int id, ok;
} user_ctx;

typedef struct square_ctx {
    double *out;
    int id;
} square_ctx;

static void square_fn(void *p, int64_t b, int64_t e) {
    square_ctx *c = (square_ctx *)p;
    int64_t i;
    for (i = b; i < e; i++) c->out[i] = (double)i * (double)i + c->id;
}

static void *user_thread(void *p) {
    user_ctx *u = (user_ctx *)p;
    double out[333];
    int rep;
    int64_t i;
    u->ok = 1;
    for (rep = 0; rep < 200; rep++) {
        square_ctx c;
        c.out = out;
        c.id = u->id;
        memset(out, 0, sizeof out);
        mt_parallel_for(333, 7, square_fn, &c);
        for (i = 0; i < 333; i++) u->ok &= out[i] == (double)i * (double)i + u->id;
    }
    return NULL;
}

static void test_concurrent_callers(void) {
    pthread_t th[8];
    user_ctx u[8];
    int i, ok = 1, started = 0;
    mt_set_num_threads(2);
    for (i = 0; i < 8; i++) {
        u[i].id = i;
        u[i].ok = 0;
        if (pthread_create(&th[i], NULL, user_thread, &u[i]) == 0) started++;
        else break;
    }
    for (i = 0; i < started; i++) pthread_join(th[i], NULL);
    for (i = 0; i < started; i++) ok &= u[i].ok;
    CHECK(started == 8 && ok, "8 user threads x 200 parallel calls at once: all results right");
}

static void test_shutdown(void) {
    mt_set_num_threads(2);
    CHECK(cover(1000, 10), "pool works before shutdown");
    mt_threads_shutdown();
    mt_threads_shutdown();
    CHECK(cover(1000, 10), "pool restarts after shutdown (twice)");
    mt_set_num_threads(4);
    CHECK(cover(1000, 10), "pool resizes to 4 threads");
    mt_set_num_threads(1);
    CHECK(cover(1000, 10), "one thread runs inline");
    mt_set_num_threads(0);
}

int main(void) {
    test_counts();
    test_coverage();
    test_nested();
    test_concurrent_callers();
    test_shutdown();
    return test_finish();
}
