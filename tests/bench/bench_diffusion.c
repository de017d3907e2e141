/* The denoising step of the diffusion pipeline (examples/df_blocks.h) on the
   embedded shapes model, at 64x64 and 256x256: the time per step through
   the pipeline, and where it goes.

     pipeline   one step of the DFDenoiseStep loop inside a pipeline call:
                (T(n2 steps) - T(n1 steps)) / (n2 - n1) of whole calls, so
                the per-call work (text encoding, noise, decoding) cancels
     direct     the same step (scale_model_input, guided denoiser,
                scheduler step) called as plain functions in a C loop, no
                block state, no gather / scatter, no dispatch
     model      the time spent inside the denoiser's predict calls (a timing
                wrapper in the "unet" slot), per step

   With the embedded model the step is the model: pipeline and direct agree
   within the timing noise of a shared machine (medians of several runs).
   What the block system adds per step (gathering and scattering the body
   blocks' params, the loop's state, dispatch) is measured with a stub
   model that predicts zeros at no cost, over 1000 steps, best of several
   runs: framework = pipeline - direct there, then shown as a share of the
   real steps. Classifier-free guidance is on (two model calls per step),
   Euler scheduler.

   Run by `make bench`; `bench_diffusion [reps]`. */
#define _POSIX_C_SOURCE 200809L
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"
#define MODULAR_IMPLEMENTATION
#include "modular.h"
#include "examples/df_components.h"
#define SHAPES_MODEL_IMPLEMENTATION
#include "examples/shapes_model.h"
#include "examples/df_blocks.h"

#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A denoiser that times the one it wraps; with `null` set it predicts
   zeros at no cost instead (to show what remains without a model). */
typedef struct timed_unet {
    df_denoiser iface;
    const df_denoiser *inner;
    int null;
    double seconds;
    long calls;
} timed_unet;

static mod_status timed_predict(void *self, const mt_tensor *sample, double t, const mt_tensor *embeds, mt_tensor *out) {
    timed_unet *u = (timed_unet *)self;
    double t0 = now();
    mod_status s = MOD_OK;
    if (u->null) {
        if (mt_zeros(out, MT_F32, sample->ndim, sample->shape) != MT_OK) s = MOD_ERR_TENSOR;
    } else {
        s = u->inner->predict(u->inner->self, sample, t, embeds, out);
    }
    u->seconds += now() - t0;
    u->calls++;
    return s;
}

static int fail(const char *what) {
    fprintf(stderr, "bench_diffusion: %s: %s\n", what, mod_last_error());
    return 1;
}

/* Seconds of one pipeline call of `steps` steps at size x size. */
static double pipeline_call(mod_pipeline *p, int size, int steps) {
    mod_value out;
    const char *const names[] = {"latents", NULL};
    mod_arg args[] = {{"prompt", {0}}, {"num_inference_steps", {0}}, {"height", {0}}, {"width", {0}}, {"generator", {0}},
                      {"output_type", {0}}, {"progress_bar", {0}}, {NULL, {0}}};
    double t0;
    args[0].value = mod_str("a red circle");
    args[1].value = mod_int(steps);
    args[2].value = mod_int(size);
    args[3].value = mod_int(size);
    args[4].value = mod_int(1);
    args[5].value = mod_str("latent");
    args[6].value = mod_bool(0);
    memset(&out, 0, sizeof out);
    t0 = now();
    if (mod_pipeline_call_outputs(p, args, names, &out) != MOD_OK) return -1.0;
    t0 = now() - t0;
    mod_value_release(&out);
    return t0;
}

/* Seconds of the same loop written directly (without the per-call work). */
static double direct_loop(mod_pipeline *p, int size, int steps) {
    const df_denoiser *unet = (const df_denoiser *)mod_value_ptr(mod_pipeline_component(p, "unet"), NULL);
    const df_guider *guider = (const df_guider *)mod_value_ptr(mod_pipeline_component(p, "guider"), NULL);
    const df_text_encoder *te = (const df_text_encoder *)mod_value_ptr(mod_pipeline_component(p, "text_encoder"), NULL);
    const mt_scheduler_config *cfg = (const mt_scheduler_config *)mod_value_ptr(mod_pipeline_component(p, "scheduler"), NULL);
    const char *prompt = "a red circle", *empty = "";
    mt_tensor emb = {0}, neg = {0}, latents = {0}, scaled = {0}, pred = {0};
    mod_value sched, gens, seed;
    mt_scheduler *s;
    int64_t shape[4];
    double t0, dt;
    int i;
    memset(&sched, 0, sizeof sched);
    memset(&gens, 0, sizeof gens);
    seed = mod_int(1);
    te->encode(te->self, &prompt, 1, &emb, NULL, 0);
    te->encode(te->self, &empty, 1, &neg, NULL, 0);
    t0 = now(); /* set_timesteps grows with the steps: timed as in the pipeline */
    df_scheduler_state_make(&sched, cfg, steps);
    df_generators_make(&gens, &seed, 1);
    s = (mt_scheduler *)sched.p;
    shape[0] = 1;
    shape[1] = SHAPES_LATENT_CHANNELS;
    shape[2] = size / SHAPES_DOWNSCALE;
    shape[3] = size / SHAPES_DOWNSCALE;
    df_randn(&latents, (df_generators *)gens.p, 4, shape);
    mt_mul_scalar(&latents, &latents, s->init_noise_sigma);
    for (i = 0; i < s->num_inference_steps; i++) {
        double t = s->timesteps[i];
        mt_release(&scaled);
        mt_scheduler_scale_model_input(s, &scaled, &latents, t);
        mt_release(&pred);
        df_guided_predict(unet, guider, &scaled, t, &emb, &neg, &pred);
        df_scheduler_step(&sched, &gens, 0.0, &pred, t, &latents);
    }
    dt = now() - t0;
    mt_release(&emb);
    mt_release(&neg);
    mt_release(&latents);
    mt_release(&scaled);
    mt_release(&pred);
    mod_value_release(&sched);
    mod_value_release(&gens);
    return dt;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#define MAX_REPS 31

int main(int argc, char **argv) {
    static const int sizes[2] = {64, 256};
    int reps = argc > 1 ? atoi(argv[1]) : 7, c, r;
    mod_pipeline *p = NULL;
    mod_value inner;
    timed_unet tu;
    double step_ms[2], fw_pipe, fw_direct, fw;
    if (reps < 1) reps = 1;
    if (reps > MAX_REPS) reps = MAX_REPS;
    memset(&inner, 0, sizeof inner);
    if (df_pipeline_new(&p) != MOD_OK) return fail("df_pipeline_new");
    memset(&tu, 0, sizeof tu);
    /* keep the model's unet alive: the pipeline drops it when the slot is replaced */
    if (mod_value_set(&inner, *mod_pipeline_component(p, "unet")) != MOD_OK) return fail("unet");
    tu.inner = (const df_denoiser *)mod_value_ptr(&inner, NULL);
    tu.iface = *tu.inner;
    tu.iface.predict = timed_predict;
    tu.iface.self = &tu;
    if (mod_pipeline_set_component(p, "unet", mod_ptr(&tu.iface, &df_denoiser_type)) != MOD_OK) return fail("set unet");
    printf("one denoising step: Euler, guidance on (2 model calls per step), %d thread%s, median of %d runs\n",
           mt_get_num_threads(), mt_get_num_threads() == 1 ? "" : "s", reps);
    printf("each figure per step = (T(n2 steps) - T(n1 steps)) / (n2 - n1)\n\n");
    printf("%-10s %12s %12s %12s %12s\n", "size", "pipeline", "direct loop", "model", "model share");
    for (c = 0; c < 3; c++) {
        int size = c < 2 ? sizes[c] : 64, n1 = c == 1 ? 4 : 10, n2 = c == 1 ? 16 : c == 2 ? 1000 : 50;
        double pipe[MAX_REPS], direct[MAX_REPS], model[MAX_REPS], mp, md, mm;
        double best_a1 = 1e30, best_a2 = 1e30, best_d1 = 1e30, best_d2 = 1e30;
        tu.null = c == 2;
        if (pipeline_call(p, size, 2) < 0) return fail("warm-up call"); /* the model's latent cache for this size */
        for (r = 0; r < reps; r++) {
            double a1, a2, m1, m2, d1, d2;
            tu.seconds = 0;
            a1 = pipeline_call(p, size, n1);
            m1 = tu.seconds;
            tu.seconds = 0;
            a2 = pipeline_call(p, size, n2);
            m2 = tu.seconds;
            if (a1 < 0 || a2 < 0) return fail("pipeline call");
            d1 = direct_loop(p, size, n1);
            d2 = direct_loop(p, size, n2);
            if (a1 < best_a1) best_a1 = a1;
            if (a2 < best_a2) best_a2 = a2;
            if (d1 < best_d1) best_d1 = d1;
            if (d2 < best_d2) best_d2 = d2;
            pipe[r] = (a2 - a1) / (n2 - n1);
            direct[r] = (d2 - d1) / (n2 - n1);
            model[r] = (m2 - m1) / (n2 - n1);
        }
        mp = median(pipe, reps);
        md = median(direct, reps);
        mm = median(model, reps);
        if (c < 2) {
            step_ms[c] = 1e3 * mp;
            printf("%3dx%-6d %9.3f ms %9.3f ms %9.3f ms %11.1f%%\n", size, size, 1e3 * mp, 1e3 * md, 1e3 * mm,
                   100.0 * mm / mp);
        } else {
            /* pure CPU work of a few microseconds: the best run is the
               least disturbed one */
            fw_pipe = 1e6 * (best_a2 - best_a1) / (n2 - n1);
            fw_direct = 1e6 * (best_d2 - best_d1) / (n2 - n1);
        }
    }
    fw = fw_pipe - fw_direct;
    printf("\nwith a stub model (zeros, no cost), 64x64, %d steps, best of %d: what is left of a step\n", 1000, reps);
    printf("  pipeline %.2f us/step, direct loop %.2f us/step (scheduler, guider, tensor kernels)\n", fw_pipe, fw_direct);
    printf("  framework (gather / scatter of the body blocks, loop state, dispatch): %.2f us/step\n", fw);
    printf("  = %.3f%% of a 64x64 step, %.4f%% of a 256x256 step\n", 100.0 * fw / (1e3 * step_ms[0]),
           100.0 * fw / (1e3 * step_ms[1]));
    mod_pipeline_free(p);
    mod_value_release(&inner);
    return 0;
}
