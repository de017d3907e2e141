/* One pipeline called from 8 threads at once, each call with its own seed:
   every call gives, bit for bit, what a single-threaded call with that seed
   gives. The pipeline is made of tensor blocks: noise from a per-call
   generator (mt_randn), a denoising loop whose steps draw more noise from
   the same generator (kept in the state as an owned value) and use the
   element-wise, reduction, softmax and norm kernels, and a decoder that
   resamples and reduces. Then the diffusion pipeline of the examples
   (text-to-image on the embedded shapes model), eight prompts and seeds at
   once. make tsan runs this test under ThreadSanitizer. */
#define _POSIX_C_SOURCE 200809L /* pthread barriers */
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"
#define MODULAR_IMPLEMENTATION
#include "modular.h"
#include "examples/df_components.h"
#define SHAPES_MODEL_IMPLEMENTATION
#include "examples/shapes_model.h"
#include "examples/df_blocks.h"
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

/* ---- the diffusion pipeline of examples/df_blocks.h ----------------------

   The same with the real thing: the text-to-image pipeline on the embedded
   shapes model, 64 x 64, 3 steps, eight prompts and seeds at once. */

static const char *const diffusion_prompts[NTHREADS] = {
    "a red circle",   "a blue square on a white background", "a small yellow star at the top", "a green triangle",
    "a purple ring",  "a large orange circle on a black background", "a white square in the center", "a red star"};

typedef struct diffusion_job {
    mod_pipeline *p;
    int index, ok;
    pthread_barrier_t *go;
    mt_tensor image;
} diffusion_job;

static int diffusion_call(mod_pipeline *p, int index, mt_tensor *image) {
    const char *const names[] = {"images", NULL};
    mod_value out;
    mod_arg args[] = {{"prompt", {0}}, {"height", {0}}, {"width", {0}}, {"num_inference_steps", {0}},
                      {"generator", {0}}, {"progress_bar", {0}}, {NULL, {0}}};
    int ok;
    memset(&out, 0, sizeof out);
    args[0].value = mod_str(diffusion_prompts[index]);
    args[1].value = mod_int(64);
    args[2].value = mod_int(64);
    args[3].value = mod_int(3);
    args[4].value = mod_int(1000 + index);
    args[5].value = mod_bool(0);
    ok = mod_pipeline_call_outputs(p, args, names, &out) == MOD_OK && mod_value_tensor(&out) &&
         mt_clone(image, mod_value_tensor(&out)) == MT_OK;
    mod_value_release(&out);
    return ok;
}

static void *diffusion_worker(void *arg) {
    diffusion_job *j = (diffusion_job *)arg;
    pthread_barrier_wait(j->go);
    j->ok = diffusion_call(j->p, j->index, &j->image);
    return NULL;
}

static int bits_equal(const mt_tensor *a, const mt_tensor *b) {
    int d;
    if (!a->data || !b->data || a->ndim != b->ndim) return 0;
    for (d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return memcmp(a->data, b->data, (size_t)mt_numel(a) * sizeof(float)) == 0;
}

static void diffusion_threads(void) {
    static mt_tensor alone[NTHREADS];
    diffusion_job jobs[NTHREADS];
    pthread_t th[NTHREADS];
    pthread_barrier_t go;
    mod_pipeline *p = NULL;
    int i, ok = 1, all_ran = 1, same_all = 1;
    CHECK(df_pipeline_new(&p) == MOD_OK, "the diffusion pipeline: %s", mod_last_error());
    if (!p) return;
    mt_set_num_threads(1);
    for (i = 0; i < NTHREADS; i++) ok &= diffusion_call(p, i, &alone[i]);
    CHECK(ok, "diffusion: single-threaded calls work: %s", mod_last_error());
    CHECK(ok && !bits_equal(&alone[0], &alone[1]), "diffusion: two prompts and seeds give two images");
    mt_set_num_threads(0);
    pthread_barrier_init(&go, NULL, NTHREADS);
    memset(jobs, 0, sizeof jobs);
    for (i = 0; i < NTHREADS; i++) {
        jobs[i].p = p;
        jobs[i].index = i;
        jobs[i].go = &go;
        pthread_create(&th[i], NULL, diffusion_worker, &jobs[i]);
    }
    for (i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
    for (i = 0; i < NTHREADS; i++) {
        all_ran &= jobs[i].ok;
        if (ok && jobs[i].ok && !bits_equal(&jobs[i].image, &alone[i])) same_all = 0;
        mt_release(&jobs[i].image);
        mt_release(&alone[i]);
    }
    CHECK(all_ran, "diffusion: the 8 concurrent calls work: %s", mod_last_error());
    CHECK(ok && all_ran && same_all, "diffusion: each of 8 concurrent calls gives, bit for bit, its single-threaded image");
    mod_pipeline_free(p);
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
    diffusion_threads();
    return test_finish();
}
