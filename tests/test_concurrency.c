/* One pipeline called from 8 threads at once, each call with its own seed:
   every call gives, bit for bit, what a single-threaded call with that seed
   gives. The pipeline is made of tensor blocks: noise from a per-call
   generator (mt_randn), a denoising loop whose steps draw more noise from
   the same generator (kept in the state as an owned value) and use the
   element-wise, reduction, softmax and norm kernels, and a decoder that
   resamples and reduces. make tsan runs this test under ThreadSanitizer. */
#define _POSIX_C_SOURCE 200809L /* pthread barriers */
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"
#define MODULAR_IMPLEMENTATION
#include "modular.h"
#include "tests/test.h"

#include <pthread.h>

#define NTHREADS 8
#define CALLS 3 /* per thread */

/* ---- a generator owned by the state ------------------------------------ */

static void generator_destroy(void *g) { free(g); }
static const mod_type generator_type = {"Generator", generator_destroy, NULL};

#define start_PARAMS(X, S)                                                    \
    X(S, INPUT_REQUIRED, INT, seed, "int", NONE, "the call's seed")           \
    X(S, INPUT, INT, size, "int", DEF(32), "latent height and width")         \
    X(S, OUTPUT, VALUE, generator, "Generator", NONE, "the call's generator") \
    X(S, OUTPUT, TENSOR, latents, "Tensor", NONE, "")
MOD_BLOCK(start, "Seeds a generator and draws the starting latents.") {
    mt_generator *g = (mt_generator *)malloc(sizeof *g);
    if (!g) return mod_fail(s->mod, MOD_ERR_MEMORY, "out of memory");
    mt_generator_seed(g, (uint64_t)s->seed);
    if (mod_value_own_ptr(&s->generator, g, &generator_type) != MOD_OK) {
        free(g);
        return mod_fail(s->mod, MOD_ERR_MEMORY, "out of memory");
    }
    MOD_TRY_MT(s->mod, mt_randn(&s->latents, g, MT_SHAPE(2, 4, s->size, s->size)));
    return MOD_OK;
}

#define denoise_PARAMS(X, S) X(S, INPUT, INT, num_steps, "int", DEF(4), "")
MOD_LOOP(denoise, "The denoising loop.") {
    int64_t i;
    for (i = 0; i < s->num_steps; i++) {
        mod_iter it = {0, 0.0, NULL};
        it.i = i;
        it.t = 1.0 - (double)i / (double)s->num_steps;
        MOD_TRY(mod_loop_step(s->mod, &it));
    }
    return MOD_OK;
}

/* latents = (1 - 0.2 t) latents + 0.1 silu(group_norm(latents))
             + 0.05 softmax(latents, -1) + 0.02 t randn(generator) */
#define step_PARAMS(X, S)                                                    \
    X(S, INTERMEDIATE_REQUIRED, VALUE, generator, "Generator", NONE, "")     \
    X(S, MODIFIED_REQUIRED, TENSOR, latents, "Tensor", NONE, "")
MOD_BLOCK(step, "One step.") {
    const mod_iter *it = mod_block_state_iter(s->mod);
    mt_generator *g = (mt_generator *)mod_value_ptr(&s->generator, "Generator");
    mt_tensor gn = {MT_F32, 0, {0}, {0}, NULL, NULL}, sm = gn, noise = gn, a = gn, b = gn;
    double t = it ? it->t : 0.0;
    mod_status st = MOD_OK;
    if (!g) return mod_fail(s->mod, MOD_ERR_KIND, "no generator");
    if (mt_group_norm(&gn, &s->latents, 2, NULL, NULL, 1e-5) != MT_OK || mt_silu(&gn, &gn) != MT_OK ||
        mt_softmax(&sm, &s->latents, -1) != MT_OK || mt_randn(&noise, g, s->latents.ndim, s->latents.shape) != MT_OK ||
        mt_axpby(&a, (float)(1.0 - 0.2 * t), &s->latents, 0.1f, &gn) != MT_OK ||
        mt_axpby(&b, 0.05f, &sm, (float)(0.02 * t), &noise) != MT_OK || mt_add(&a, &a, &b) != MT_OK)
        st = mod_fail(s->mod, MOD_ERR_TENSOR, "%s", mt_last_error());
    if (st == MOD_OK) {
        mt_release(&s->latents);
        s->latents = a;
    } else {
        mt_release(&a);
    }
    mt_release(&gn);
    mt_release(&sm);
    mt_release(&noise);
    mt_release(&b);
    return st;
}

#define decode_PARAMS(X, S)                                                  \
    X(S, INTERMEDIATE_REQUIRED, TENSOR, latents, "Tensor", NONE, "")         \
    X(S, OUTPUT, TENSOR, image, "Tensor", NONE, "")                          \
    X(S, OUTPUT, TENSOR, channel_mean, "Tensor", NONE, "")
MOD_BLOCK(decode, "Upsamples, squashes and averages.") {
    mt_tensor up = {MT_F32, 0, {0}, {0}, NULL, NULL};
    mod_status st = MOD_OK;
    if (mt_interpolate(&up, &s->latents, 2 * s->latents.shape[2], 2 * s->latents.shape[3], MT_INTERP_BILINEAR, 0) !=
            MT_OK ||
        mt_tanh(&s->image, &up) != MT_OK || mt_mean(&s->channel_mean, &s->image, 1, 0) != MT_OK)
        st = mod_fail(s->mod, MOD_ERR_TENSOR, "%s", mt_last_error());
    mt_release(&up);
    return st;
}

/* ---- the runs ----------------------------------------------------------- */

typedef struct result {
    float *image; /* malloc'd copy */
    int64_t n;
    double mean_sum;
} result;

static int call(mod_pipeline *p, int64_t seed, result *r) {
    mod_state *st = NULL;
    mod_arg args[2];
    const mt_tensor *img, *mean;
    int64_t i;
    args[0].name = "seed";
    args[0].value = mod_int(seed);
    args[1].name = NULL;
    memset(&args[1].value, 0, sizeof args[1].value);
    if (mod_pipeline_call(p, args, &st) != MOD_OK) return 0;
    img = mod_value_tensor(mod_state_intermediate(st, "image"));
    mean = mod_value_tensor(mod_state_intermediate(st, "channel_mean"));
    if (!img || !mean) {
        mod_state_free(st);
        return 0;
    }
    r->n = mt_numel(img);
    r->image = (float *)malloc((size_t)r->n * sizeof(float));
    if (r->image) memcpy(r->image, mt_f32(img), (size_t)r->n * sizeof(float));
    r->mean_sum = 0.0;
    for (i = 0; i < mt_numel(mean); i++) r->mean_sum += mt_f32(mean)[i];
    mod_state_free(st);
    return r->image != NULL;
}

static int same(const result *a, const result *b) {
    return a->n == b->n && memcmp(a->image, b->image, (size_t)a->n * sizeof(float)) == 0 &&
           memcmp(&a->mean_sum, &b->mean_sum, sizeof(double)) == 0;
}

typedef struct job {
    mod_pipeline *p;
    int index;
    result got[CALLS];
    int ok;
    pthread_barrier_t *go;
} job;

static int64_t seed_of(int thread, int k) { return 1000 + 17 * thread + 7919 * k; }

static void *worker(void *arg) {
    job *j = (job *)arg;
    int k;
    j->ok = 1;
    pthread_barrier_wait(j->go); /* all eight start together */
    for (k = 0; k < CALLS; k++)
        if (!call(j->p, seed_of(j->index, k), &j->got[k])) j->ok = 0;
    return NULL;
}

static mod_block *build(void) {
    mod_block *loop = NULL, *seq = NULL;
    const mod_entry body[] = {{"step", &step_def, NULL, NULL}, {NULL, NULL, NULL, NULL}};
    mod_entry e[4] = {{"start", &start_def, NULL, NULL}, {"denoise", NULL, NULL, NULL}, {"decode", &decode_def, NULL, NULL},
                      {NULL, NULL, NULL, NULL}};
    mod_sequential_desc d;
    if (mod_loop_new(&loop, &denoise_def, body) != MOD_OK) return NULL;
    e[1].block = loop;
    memset(&d, 0, sizeof d);
    d.blocks = e;
    if (mod_sequential_new(&seq, &d) != MOD_OK) seq = NULL;
    mod_block_free(loop);
    return seq;
}

static void run_threads(mod_pipeline *p, result (*want)[CALLS], const char *what) {
    pthread_t th[NTHREADS];
    job jobs[NTHREADS];
    pthread_barrier_t go;
    int i, k, ok = 1, all_ran = 1;
    pthread_barrier_init(&go, NULL, NTHREADS);
    for (i = 0; i < NTHREADS; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].p = p;
        jobs[i].index = i;
        jobs[i].go = &go;
        pthread_create(&th[i], NULL, worker, &jobs[i]);
    }
    for (i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
    for (i = 0; i < NTHREADS; i++) {
        all_ran &= jobs[i].ok;
        for (k = 0; k < CALLS; k++) {
            if (jobs[i].ok && !same(&jobs[i].got[k], &want[i][k])) ok = 0;
            free(jobs[i].got[k].image);
        }
    }
    CHECK(all_ran, "%s: every call of the 8 threads works: %s", what, mod_last_error());
    CHECK(ok, "%s: each of the %d calls gives, bit for bit, the single-threaded result of its seed", what,
          NTHREADS * CALLS);
}

int main(void) {
    mod_block *blocks = build();
    mod_pipeline *p = NULL;
    static result want[NTHREADS][CALLS];
    int i, k, ok = 1, differ = 0;
    CHECK(blocks && mod_pipeline_new(&p, blocks) == MOD_OK, "the pipeline: %s", mod_last_error());
    if (!p) return test_finish();
    /* single-threaded references, one call at a time, kernels on one thread */
    mt_set_num_threads(1);
    for (i = 0; i < NTHREADS; i++)
        for (k = 0; k < CALLS; k++)
            if (!call(p, seed_of(i, k), &want[i][k])) ok = 0;
    CHECK(ok, "single-threaded calls work: %s", mod_last_error());
    for (i = 0; i < NTHREADS && ok; i++)
        for (k = 0; k < CALLS; k++)
            if (!same(&want[i][k], &want[0][0]) && (i || k)) differ++;
    CHECK(differ == NTHREADS * CALLS - 1, "the seeds give different images (%d of %d differ from the first)", differ,
          NTHREADS * CALLS - 1);
    if (ok) {
        run_threads(p, want, "kernels on one thread");
        mt_set_num_threads(0); /* the kernels on the pool too, shared by the eight callers */
        run_threads(p, want, "kernels on the thread pool");
    }
    for (i = 0; i < NTHREADS; i++)
        for (k = 0; k < CALLS; k++) free(want[i][k].image);
    mod_pipeline_free(p);
    mod_block_free(blocks);
    return test_finish();
}
