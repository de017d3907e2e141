/* Tests of the diffusion blocks (examples/df_blocks.h) on the embedded
   shapes model (examples/shapes_model.h): components from config text, the
   guider's arithmetic, generators, the composed pipeline and its
   workflows, generated images judged against the model's image set,
   determinism across thread counts and concurrent calls, image-to-image
   and inpainting guarantees, editing every block, every scheduler with
   guidance on and off, and the messages of bad calls.

   Sizes are small (64x64, a few steps) so that the whole file runs in
   seconds, and under valgrind (MT_VALGRIND=1, set by make valgrind) with
   fewer steps. */
#define _POSIX_C_SOURCE 200809L /* pthreads for the concurrent-call check */
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

/* CHECK that a call succeeds; on failure the library's message follows. */
#define CHECK_OK(expr, ...)                                                         \
    do {                                                                            \
        int check__failed = (expr) != MOD_OK;                                       \
        if (!CHECK(!check__failed, __VA_ARGS__)) printf("     %s\n", mod_last_error()); \
    } while (0)

/* Denoising steps: of the judged images, of the scheduler runs, of the
   plumbing checks, of the block-editing runs. Under valgrind (MT_VALGRIND)
   the judged prompts keep their steps but fewer of them run, the rest use
   fewer steps. */
static int steps_full = 20;
static int steps_sched = 20;
static int steps_quick = 6;
static int steps_edit = 4;
static int under_valgrind = 0;

/* ------------------------------------------------------------------------
   The model's image set, for judging outputs
   ------------------------------------------------------------------------ */

/* Set image k rendered at h x w, [1, 3, h, w] in [0, 1] (the pipeline's
   output range), and its caption. */
static const char *set_caption(int k, char *buf, size_t size) {
    shapes_set_caption(k, buf, size);
    return buf;
}
static void set_render(int k, int64_t h, int64_t w, mt_tensor *out) {
    mt_tensor img = {0};
    shapes_set_image(k, (int)w, (int)h, &img);
    mt_add_scalar(&img, &img, 1.0f);
    mt_div_scalar(&img, &img, 2.0f);
    mt_release(out);
    mt_move(out, &img);
}

/* The set item with these attribute names. */
static int set_index(const char *shape, const char *colour, const char *size, const char *position, const char *background) {
    shapes_item it;
    it.value[SHAPES_SHAPE] = shapes_vocab_find(SHAPES_SHAPE, shape);
    it.value[SHAPES_COLOR] = shapes_vocab_find(SHAPES_COLOR, colour);
    it.value[SHAPES_SIZE] = shapes_vocab_find(SHAPES_SIZE, size);
    it.value[SHAPES_POSITION] = shapes_vocab_find(SHAPES_POSITION, position);
    it.value[SHAPES_BACKGROUND] = shapes_vocab_find(SHAPES_BACKGROUND, background);
    return shapes_set_find(&it);
}

/* The set image nearest (mean squared error) to image b of `images`,
   compared at 32x32: the output is average-pooled to 32x32 and the set is
   rendered at 32x32 once (shapes_set_nearest renders every item at the
   full size on each call, too slow under valgrind). */
#define JUDGE_SIZE 32
static float *judge_set; /* [count][3 * 32 * 32] in [0, 1] */

static int nearest_set_image(const mt_tensor *images, int64_t b, double *mse_out) {
    const int64_t n = 3 * JUDGE_SIZE * JUDGE_SIZE;
    mt_tensor slice = {0}, small = {0}, img = {0};
    int k, best = -1, count = shapes_set_count();
    double best_mse = 1e30;
    int64_t i;
    if (!judge_set) {
        judge_set = (float *)malloc((size_t)count * (size_t)n * sizeof(float));
        for (k = 0; judge_set && k < count; k++) {
            set_render(k, JUDGE_SIZE, JUDGE_SIZE, &img);
            memcpy(judge_set + (size_t)k * (size_t)n, mt_f32(&img), (size_t)n * sizeof(float));
            mt_release(&img);
        }
    }
    if (!judge_set || images->shape[2] % JUDGE_SIZE || images->shape[3] % JUDGE_SIZE) return -1;
    mt_view_slice(&slice, images, 0, b, b + 1, 1);
    if (images->shape[2] == JUDGE_SIZE && images->shape[3] == JUDGE_SIZE)
        mt_contiguous(&small, &slice);
    else
        mt_avg_pool2d(&small, &slice, (int)(images->shape[2] / JUDGE_SIZE), (int)(images->shape[3] / JUDGE_SIZE), 0, 0, 0, 0);
    for (k = 0; k < count; k++) {
        const float *r = judge_set + (size_t)k * (size_t)n, *a = mt_f32(&small);
        double mse = 0;
        for (i = 0; i < n; i++) mse += ((double)a[i] - r[i]) * ((double)a[i] - r[i]);
        mse /= (double)n;
        if (mse < best_mse) {
            best_mse = mse;
            best = k;
        }
    }
    mt_release(&slice);
    mt_release(&small);
    if (mse_out) *mse_out = best_mse;
    return best;
}

/* Whether set item k has the shape and colour the prompt names; *named
   and *matched (may be NULL) count the other attributes the prompt names
   (size, position, background) and how many of them the item has. */
static int carries_prompt_ex(int k, const char *prompt, int *named, int *matched) {
    shapes_prompt pr;
    shapes_item it;
    int a;
    memset(&it, 0, sizeof it);
    if (k < 0 || shapes_set_item(k, &it) != MOD_OK) return 0;
    shapes_parse_prompt(prompt, &pr, NULL, 0);
    for (a = 0; a < SHAPES_ATTR_COUNT; a++) {
        if (a == SHAPES_SHAPE || a == SHAPES_COLOR || pr.value[a] < 0) continue;
        if (named) (*named)++;
        if (matched && pr.value[a] == it.value[a]) (*matched)++;
    }
    return pr.value[SHAPES_SHAPE] >= 0 && pr.value[SHAPES_COLOR] >= 0 && pr.value[SHAPES_SHAPE] == it.value[SHAPES_SHAPE] &&
           pr.value[SHAPES_COLOR] == it.value[SHAPES_COLOR];
}

static int carries_prompt(int k, const char *prompt) { return carries_prompt_ex(k, prompt, NULL, NULL); }

/* ------------------------------------------------------------------------
   Helpers
   ------------------------------------------------------------------------ */

static mod_pipeline *pipe_default;

/* Calls the pipeline and returns the named output (owned copy) in *out. */
static mod_status call_for(mod_pipeline *p, const mod_arg *args, const char *name, mod_value *out) {
    const char *names[2];
    names[0] = name;
    names[1] = NULL;
    memset(out, 0, sizeof *out);
    return mod_pipeline_call_outputs(p, args, names, out);
}

/* Calls the pipeline and copies the images into *images (empty on failure). */
static mod_status generate(mod_pipeline *p, const mod_arg *args, mt_tensor *images) {
    mod_value v;
    mod_status s = call_for(p, args, "images", &v);
    mt_release(images);
    if (s == MOD_OK && mod_value_tensor(&v)) mt_clone(images, mod_value_tensor(&v));
    mod_value_release(&v);
    return s;
}

static double max_abs_diff(const mt_tensor *a, const mt_tensor *b) {
    mt_tensor ca = {0}, cb = {0};
    double m = 0;
    int64_t i, n;
    if (!mt_same_shape(a, b)) return 1e30;
    mt_contiguous(&ca, a);
    mt_contiguous(&cb, b);
    n = mt_numel(&ca);
    for (i = 0; i < n; i++) {
        double d = fabs((double)mt_f32(&ca)[i] - mt_f32(&cb)[i]);
        if (d > m || d != d) m = d != d ? 1e30 : d;
    }
    mt_release(&ca);
    mt_release(&cb);
    return m;
}

/* PSNR in dB of images in [0, 1] */
static double psnr(const mt_tensor *a, const mt_tensor *b) {
    mt_tensor ca = {0}, cb = {0};
    double se = 0;
    int64_t i, n;
    if (!mt_same_shape(a, b)) return 0;
    mt_contiguous(&ca, a);
    mt_contiguous(&cb, b);
    n = mt_numel(&ca);
    for (i = 0; i < n; i++) se += ((double)mt_f32(&ca)[i] - mt_f32(&cb)[i]) * ((double)mt_f32(&ca)[i] - mt_f32(&cb)[i]);
    mt_release(&ca);
    mt_release(&cb);
    return se > 0 ? 10.0 * log10((double)n / se) : 99.0;
}

static int bit_equal(const mt_tensor *a, const mt_tensor *b) {
    return a->data && b->data && mt_same_shape(a, b) && mt_is_contiguous(a) && mt_is_contiguous(b) &&
           memcmp(a->data, b->data, (size_t)mt_numel(a) * sizeof(float)) == 0;
}

static int all_in_unit_range(const mt_tensor *t) {
    int64_t i, n = mt_numel(t);
    const float *p = mt_f32(t);
    for (i = 0; i < n; i++)
        if (!(p[i] >= 0.0f && p[i] <= 1.0f)) return 0;
    return n > 0;
}

static int contains(const char *text, const char *part) { return text && part && strstr(text, part) != NULL; }

/* A pipeline whose scheduler / guider come from config text. */
static mod_pipeline *pipeline_with(const char *scheduler_config, const char *guider_config) {
    mod_pipeline *p = NULL;
    mod_value v;
    memset(&v, 0, sizeof v);
    if (df_pipeline_new(&p) != MOD_OK) return NULL;
    if (scheduler_config && (df_scheduler_create(scheduler_config, &v) != MOD_OK ||
                             mod_pipeline_set_component(p, "scheduler", v) != MOD_OK)) {
        mod_value_release(&v);
        mod_pipeline_free(p);
        return NULL;
    }
    mod_value_release(&v);
    if (guider_config &&
        (df_guider_create(guider_config, &v) != MOD_OK || mod_pipeline_set_component(p, "guider", v) != MOD_OK)) {
        mod_value_release(&v);
        mod_pipeline_free(p);
        return NULL;
    }
    mod_value_release(&v);
    return p;
}

/* ------------------------------------------------------------------------
   Components from config text
   ------------------------------------------------------------------------ */

static void test_scheduler_config(void) {
    mod_value v;
    const mt_scheduler_config *c;
    const char *kinds[] = {"euler", "euler_ancestral", "ddim", "dpm"};
    const mt_scheduler_kind want[] = {MT_SCHEDULER_EULER, MT_SCHEDULER_EULER_ANCESTRAL, MT_SCHEDULER_DDIM,
                                      MT_SCHEDULER_DPMSOLVER_MULTISTEP};
    char text[DF_CONFIG_TEXT_MAX], buf[600];
    int i;
    memset(&v, 0, sizeof v);
    CHECK(df_scheduler_create("kind=euler timestep_spacing=leading use_karras_sigmas=1 prediction_type=epsilon", &v) ==
              MOD_OK,
          "scheduler config text with the brief's keys is accepted");
    c = (const mt_scheduler_config *)mod_value_ptr(&v, "SchedulerMixin");
    CHECK(c && c->kind == MT_SCHEDULER_EULER && c->use_karras_sigmas == MT_SCHED_TRUE &&
              !strcmp(c->timestep_spacing, "leading") && !strcmp(c->prediction_type, "epsilon"),
          "the parsed config holds kind, spacing, Karras sigmas and prediction type");
    mod_value_repr(&v, buf, sizeof buf);
    CHECK(contains(buf, "EulerDiscreteScheduler(") && contains(buf, "use_karras_sigmas=1"),
          "a scheduler component describes itself with its class and config (%s)", buf);
    mod_value_release(&v);

    CHECK(df_scheduler_create("kind=foo", &v) == MOD_ERR_ARGUMENT && contains(mod_last_error(), "unknown scheduler kind 'foo'"),
          "an unknown scheduler kind is an error naming it: %s", mod_last_error());
    CHECK(df_scheduler_create("kind=euler colour=red", &v) == MOD_ERR_ARGUMENT && contains(mod_last_error(), "unknown key 'colour'"),
          "an unknown key is an error naming it: %s", mod_last_error());
    CHECK(df_scheduler_create("beta_schedule=cubic", &v) == MOD_ERR_ARGUMENT &&
              contains(mod_last_error(), "'beta_schedule' must be one of linear, scaled_linear, squaredcos_cap_v2; got 'cubic'"),
          "an unknown value is an error listing the accepted ones: %s", mod_last_error());
    CHECK(df_scheduler_create("use_karras_sigmas=maybe", &v) == MOD_ERR_ARGUMENT && contains(mod_last_error(), "use_karras_sigmas"),
          "a bad flag is an error: %s", mod_last_error());
    CHECK(df_scheduler_create("steps_offset=x", &v) == MOD_ERR_ARGUMENT && contains(mod_last_error(), "'steps_offset'"),
          "a bad integer is an error: %s", mod_last_error());
    CHECK(df_scheduler_create("kind=euler_ancestral prediction_type=sample", &v) == MOD_ERR_ARGUMENT &&
              contains(mod_last_error(), "scheduler config:"),
          "a combination the scheduler refuses is refused at creation: %s", mod_last_error());
    CHECK(df_scheduler_create("kind", &v) == MOD_ERR_ARGUMENT && contains(mod_last_error(), "expected key=value"),
          "a pair without '=' is an error: %s", mod_last_error());
    CHECK(v.kind == MOD_ABSENT, "failed creations leave the value untouched");

    for (i = 0; i < 4; i++) {
        CHECK(df_scheduler_config_for(kinds[i], "v_prediction", text, sizeof text) == MOD_OK &&
                  df_scheduler_create(text, &v) == MOD_OK,
              "df_scheduler_config_for(%s) makes a valid config: %s", kinds[i], text);
        c = (const mt_scheduler_config *)mod_value_ptr(&v, "SchedulerMixin");
        CHECK(c && c->kind == want[i] && !strcmp(c->prediction_type, "v_prediction") && !strcmp(c->beta_schedule, "scaled_linear"),
              "%s: kind, prediction type and betas", kinds[i]);
        mod_value_release(&v);
    }
    CHECK(df_scheduler_config_for("heun", NULL, text, sizeof text) == MOD_ERR_ARGUMENT &&
              contains(mod_last_error(), "unknown scheduler 'heun'"),
          "df_scheduler_config_for refuses unknown names: %s", mod_last_error());
}

static void test_guider_config(void) {
    mod_value v;
    const df_guider *g;
    df_guider off;
    memset(&v, 0, sizeof v);
    CHECK(df_guider_create("guidance_scale=5 guidance_rescale=0.7", &v) == MOD_OK, "guider config accepted");
    g = (const df_guider *)mod_value_ptr(&v, "ClassifierFreeGuidance");
    CHECK(g && g->guidance_scale == 5.0 && g->guidance_rescale == 0.7, "guider fields parsed");
    mod_value_release(&v);
    CHECK(df_guider_create("", &v) == MOD_OK && (g = (const df_guider *)mod_value_ptr(&v, "ClassifierFreeGuidance")) &&
              g->guidance_scale == 7.5 && g->guidance_rescale == 0.0,
          "empty guider config: diffusers' defaults (7.5, 0)");
    mod_value_release(&v);
    CHECK(df_guider_create("scale=5", &v) == MOD_ERR_ARGUMENT && contains(mod_last_error(), "unknown key 'scale'"),
          "unknown guider key: %s", mod_last_error());
    CHECK(df_guider_create("guidance_rescale=2", &v) == MOD_ERR_ARGUMENT && contains(mod_last_error(), "guidance_rescale"),
          "rescale outside [0, 1]: %s", mod_last_error());
    off.guidance_rescale = 0;
    off.guidance_scale = 1.0;
    CHECK(!df_guider_enabled(&off), "guidance off at scale 1");
    off.guidance_scale = 0.5;
    CHECK(!df_guider_enabled(&off), "guidance off below 1");
    off.guidance_scale = 1.5;
    CHECK(df_guider_enabled(&off), "guidance on above 1");
}

/* ClassifierFreeGuidance.forward and rescale_noise_cfg
   (diffusers src/diffusers/guiders/classifier_free_guidance.py,
   guider_utils.py) against a plain double-precision loop. */
static void test_guider_math(void) {
    mt_generator g;
    mt_tensor cond = {0}, uncond = {0}, out = {0};
    df_guider gd;
    const int64_t B = 2, n = 4 * 3 * 5;
    int64_t b, i;
    int r;
    mt_generator_seed(&g, 11);
    mt_randn(&cond, &g, MT_SHAPE(2, 4, 3, 5));
    mt_randn(&uncond, &g, MT_SHAPE(2, 4, 3, 5));
    for (r = 0; r < 2; r++) {
        double worst = 0;
        gd.guidance_scale = 7.5;
        gd.guidance_rescale = r ? 0.7 : 0.0;
        CHECK(df_guider_apply(&gd, &cond, &uncond, &out) == MOD_OK, "guider apply (rescale %g)", gd.guidance_rescale);
        for (b = 0; b < B; b++) {
            const float *c = mt_f32(&cond) + b * n, *u = mt_f32(&uncond) + b * n;
            double cfg[60], mc = 0, mg = 0, sc = 0, sg = 0, ratio;
            for (i = 0; i < n; i++) {
                cfg[i] = u[i] + 7.5 * ((double)c[i] - u[i]);
                mc += c[i];
                mg += cfg[i];
            }
            mc /= (double)n;
            mg /= (double)n;
            for (i = 0; i < n; i++) {
                sc += (c[i] - mc) * (c[i] - mc);
                sg += (cfg[i] - mg) * (cfg[i] - mg);
            }
            ratio = sqrt(sc / (double)(n - 1)) / sqrt(sg / (double)(n - 1)); /* torch.std: unbiased */
            for (i = 0; i < n; i++) {
                double want = r ? 0.7 * cfg[i] * ratio + 0.3 * cfg[i] : cfg[i];
                double d = fabs(want - mt_f32(&out)[b * n + i]) / (1.0 + fabs(want));
                if (d > worst) worst = d;
            }
        }
        CHECK(worst < 2e-6, "guided prediction matches the reference loop (rescale %g): relative error %g",
              gd.guidance_rescale, worst);
    }
    gd.guidance_scale = 1.0;
    gd.guidance_rescale = 0.7;
    CHECK(df_guider_apply(&gd, &cond, NULL, &out) == MOD_OK && bit_equal(&out, &cond), "guidance off: the conditional prediction");
    mt_release(&cond);
    mt_release(&uncond);
    mt_release(&out);
}

/* diffusers' randn_tensor with a generator per image (the seed form) or
   one generator for the batch. */
static void test_generators(void) {
    mod_value gv, list, seeds;
    mt_tensor got = {0}, want = {0}, one = {0};
    mt_generator g, user;
    df_generators *gs;
    int64_t i;
    memset(&gv, 0, sizeof gv);
    memset(&list, 0, sizeof list);
    memset(&seeds, 0, sizeof seeds);
    CHECK(df_generators_make(&gv, &(mod_value){MOD_INT, 5, 0, NULL, NULL, NULL}, 3) == MOD_OK, "generators from a seed");
    gs = (df_generators *)mod_value_ptr(&gv, "df_generators");
    CHECK(gs && gs->n == 3, "a seed gives one generator per image");
    df_randn(&got, gs, MT_SHAPE(3, 4, 2, 3));
    for (i = 0; i < 3; i++) {
        mt_tensor slice = {0};
        mt_generator_seed(&g, (uint64_t)(5 + i));
        mt_randn(&one, &g, MT_SHAPE(1, 4, 2, 3));
        mt_view_slice(&slice, &got, 0, i, i + 1, 1);
        CHECK(max_abs_diff(&slice, &one) == 0.0, "image %lld draws torch.randn from a generator seeded %lld", (long long)i,
              (long long)(5 + i));
        mt_release(&slice);
        mt_release(&one);
    }
    mod_value_release(&gv);
    mt_release(&got);

    mod_list_new(&list, 2);
    mod_list_set(&list, 0, mod_int(9));
    mod_list_set(&list, 1, mod_int(4));
    CHECK(df_generators_make(&gv, &list, 2) == MOD_OK && (gs = (df_generators *)gv.p)->n == 2, "generators from a list of seeds");
    df_randn(&got, gs, MT_SHAPE(2, 20));
    mt_generator_seed(&g, 4);
    mt_randn(&one, &g, MT_SHAPE(1, 20));
    {
        mt_tensor slice = {0};
        mt_view_slice(&slice, &got, 0, 1, 2, 1);
        CHECK(max_abs_diff(&slice, &one) == 0.0, "list item 1 seeds image 1");
        mt_release(&slice);
    }
    mod_value_release(&gv);
    mt_release(&got);
    mt_release(&one);
    CHECK(df_generators_make(&gv, &list, 3) == MOD_ERR_ARGUMENT && contains(mod_last_error(), "list of 2 seeds"),
          "a list of the wrong length is an error: %s", mod_last_error());
    mod_value_release(&list);

    mt_generator_seed(&user, 21);
    CHECK(df_generators_make(&gv, &(mod_value){MOD_PTR, 0, 0, &user, &df_generator_type, NULL}, 2) == MOD_OK,
          "a user generator is accepted");
    df_randn(&got, (df_generators *)gv.p, MT_SHAPE(2, 20));
    mt_generator_seed(&g, 21);
    mt_randn(&want, &g, MT_SHAPE(2, 20));
    CHECK(max_abs_diff(&got, &want) == 0.0, "one generator draws the whole batch at once");
    CHECK(memcmp(&user, &g, sizeof g) == 0, "the user's generator advances, as a torch.Generator does");
    mod_value_release(&gv);
    CHECK(df_generators_make(&gv, &(mod_value){MOD_FLOAT, 0, 1.5, NULL, NULL, NULL}, 1) == MOD_ERR_KIND &&
              contains(mod_last_error(), "'generator' must be"),
          "a float generator is an error: %s", mod_last_error());
    CHECK(df_generators_make(&gv, NULL, 2) == MOD_OK && ((df_generators *)gv.p)->n == 1, "no generator: one default stream");
    df_randn(&got, (df_generators *)gv.p, MT_SHAPE(20));
    mt_generator_seed(&g, DF_TORCH_DEFAULT_SEED);
    mt_randn(&want, &g, MT_SHAPE(20));
    CHECK(max_abs_diff(&got, &want) == 0.0, "the default stream is PyTorch's default seed");
    mod_value_release(&gv);
    mt_release(&got);
    mt_release(&want);
    (void)seeds;
}

static void test_output_path(void) {
    char buf[64];
    df_output_path(buf, sizeof buf, "out/a.png", 0, 1);
    CHECK_STR(buf, "out/a.png", "one image: the path as given");
    df_output_path(buf, sizeof buf, "out/a.png", 2, 3);
    CHECK_STR(buf, "out/a_2.png", "a batch: _i before the extension");
    df_output_path(buf, sizeof buf, "out.d/img", 1, 2);
    CHECK_STR(buf, "out.d/img_1", "a batch without extension: _i at the end");
    df_output_path(buf, sizeof buf, "out/img%d.png", 7, 9);
    CHECK_STR(buf, "out/img7.png", "%%d takes the index");
}

/* ------------------------------------------------------------------------
   The composed pipeline
   ------------------------------------------------------------------------ */

/* Dotted paths of every leaf (and loop body leaf) under b. */
static int leaf_paths(const mod_block *b, const char *prefix, char paths[][96], int n) {
    int i, k = mod_block_count(b);
    if (k == 0) {
        snprintf(paths[n], 96, "%s", prefix);
        return n + 1;
    }
    for (i = 0; i < k; i++) {
        char p[96];
        snprintf(p, sizeof p, "%s%s%s", prefix, *prefix ? "." : "", mod_block_child_name(b, i));
        n = leaf_paths(mod_block_child_at(b, i), p, paths, n);
    }
    return n;
}

/* The names of an execution list and their classes, joined with spaces. */
static void execution_names(const mod_block *b, char *buf, size_t size) {
    int i;
    size_t n = 0;
    buf[0] = '\0';
    for (i = 0; i < mod_block_count(b) && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? " " : "", mod_block_child_name(b, i));
}

static void execution_classes(const mod_block *b, char *buf, size_t size) {
    int i;
    size_t n = 0;
    buf[0] = '\0';
    for (i = 0; i < mod_block_count(b) && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? " " : "", mod_block_class_name(mod_block_child_at(b, i)));
}

static void test_structure(void) {
    mod_block *blocks = NULL, *wf = NULL;
    char *text, names[1024];
    const mod_block *root;
    CHECK(df_pipeline_blocks(&blocks) == MOD_OK, "df_pipeline_blocks");
    CHECK_OK(mod_block_validate(blocks), "the composed blocks validate for every trigger combination");
    root = blocks;
    CHECK_STR(mod_block_class_name(root), "DFAutoBlocks", "top-level class");
    execution_names(root, names, sizeof names);
    CHECK_STR(names, "text_encoder image_encoder before_denoise denoise decode output", "top-level blocks, in order");
    CHECK(mod_block_workflow_count(root) == 3, "three workflows declared");
    CHECK(mod_block_get_workflow(root, "text2image", &wf) == MOD_OK, "get_workflow(text2image)");
    execution_names(wf, names, sizeof names);
    CHECK_STR(names,
              "text_encoder before_denoise.input before_denoise.set_timesteps before_denoise.prepare_latents denoise "
              "decode output",
              "text2image: the blocks that run");
    execution_classes(wf, names, sizeof names);
    CHECK_STR(names,
              "DFTextEncoderStep DFInputStep DFSetTimestepsStep DFPrepareLatentsStep DFDenoiseStep DFDecodeStep "
              "DFImageOutputStep",
              "text2image runs the text-to-image blocks");
    mod_block_free(wf);
    CHECK(mod_block_get_workflow(root, "image2image", &wf) == MOD_OK, "get_workflow(image2image)");
    execution_classes(wf, names, sizeof names);
    CHECK_STR(names,
              "DFTextEncoderStep DFVaeEncoderStep DFInputStep DFImg2ImgSetTimestepsStep DFImg2ImgPrepareLatentsStep "
              "DFDenoiseStep DFDecodeStep DFImageOutputStep",
              "image2image encodes the image and prepares noised image latents");
    mod_block_free(wf);
    CHECK(mod_block_get_workflow(root, "inpainting", &wf) == MOD_OK, "get_workflow(inpainting)");
    execution_classes(wf, names, sizeof names);
    CHECK_STR(names,
              "DFTextEncoderStep DFInpaintVaeEncoderStep DFInputStep DFImg2ImgSetTimestepsStep DFInpaintPrepareLatentsStep "
              "DFInpaintDenoiseStep DFDecodeStep DFImageOutputStep",
              "inpainting encodes image and mask and runs the inpainting loop");
    mod_block_free(wf);
    text = mod_block_repr(root);
    CHECK(contains(text, "[3] denoise (DFAutoDenoiseStep)") && contains(text, "`inpainting`: requires `mask_image`, `image`, `prompt`"),
          "repr shows the block tree and the workflows");
    mod_text_free(text);
    text = mod_block_doc(mod_block_find(root, "denoise.denoise"));
    CHECK(contains(text, "class DFDenoiseStep") && contains(text, "timesteps (`Tensor`)") &&
              contains(text, "unet (`UNet2DConditionModel`)"),
          "the denoise loop documents its params and components");
    mod_text_free(text);
    mod_block_free(blocks);
}

/* The blocks outside DFAutoBlocks: a plain text-to-image sequence composed
   by hand gives the auto pipeline's image bit for bit, and one block runs
   on its own with mod_block_run (its components created from their specs). */
static void test_blocks_reused(void) {
    mod_block *seq = NULL, *loop = NULL, *te = NULL;
    mod_pipeline *p = NULL;
    mod_state *st = NULL;
    mt_tensor want = {0}, got = {0};
    mod_entry e[7];
    mod_sequential_desc d;
    mod_arg args[] = {{"prompt", mod_str("a cyan diamond")}, {"num_inference_steps", mod_int(steps_quick)},
                      {"generator", mod_int(12)}, {"progress_bar", mod_bool(0)}, {NULL, {0}}};
    const mt_tensor *emb;
    memset(e, 0, sizeof e);
    memset(&d, 0, sizeof d);
    df_denoise_step_new(&loop, 0);
    e[0].name = "text_encoder";
    e[0].def = &DFTextEncoderStep_def;
    e[1].name = "input";
    e[1].def = &DFInputStep_def;
    e[2].name = "set_timesteps";
    e[2].def = &DFSetTimestepsStep_def;
    e[3].name = "prepare_latents";
    e[3].def = &DFPrepareLatentsStep_def;
    e[4].name = "denoise";
    e[4].block = loop;
    e[5].name = "decode";
    e[5].def = &DFDecodeStep_def;
    d.class_name = "MyText2Image";
    d.blocks = e;
    CHECK_OK(mod_sequential_new(&seq, &d) || mod_pipeline_new(&p, seq), "a text-to-image sequence composed by hand");
    CHECK_OK(generate(p, args, &got), "it runs");
    CHECK_OK(generate(pipe_default, args, &want), "the auto pipeline, same arguments");
    CHECK(bit_equal(&got, &want), "the hand-composed sequence gives the auto pipeline's image bit for bit");
    CHECK_OK(mod_block_new(&te, &DFTextEncoderStep_def) ||
                 mod_block_run(te, (const mod_arg[]){{"prompt", mod_str("a cyan diamond on the left")}, {NULL, {0}}}, &st),
             "mod_block_run of the text encoder step alone");
    emb = st ? mod_value_tensor(mod_state_intermediate(st, "prompt_embeds")) : NULL;
    CHECK(emb && emb->ndim == 3 && emb->shape[0] == 1, "it makes prompt_embeds [1, seq_len, dim]");
    mod_state_free(st);
    mt_release(&want);
    mt_release(&got);
    mod_pipeline_free(p);
    mod_block_free(seq);
    mod_block_free(loop);
    mod_block_free(te);
}

/* ------------------------------------------------------------------------
   Images judged against the set
   ------------------------------------------------------------------------ */

/* For each prompt, the image generated for it is judged against the set:
   the nearest set image must have the prompt's colour and shape. The
   model samples its set's posterior, so the other attributes a prompt
   names (size, position, background) are honoured most of the time, not
   always, at 20 steps: they are checked in aggregate. */
static void test_prompts_judged(void) {
    static const char *const prompts[] = {"a red circle",
                                          "a blue square",
                                          "a green triangle",
                                          "a yellow star",
                                          "a purple diamond",
                                          "a large orange cross on the left",
                                          "a small cyan ring at the top on a black background",
                                          "a magenta circle on a white background",
                                          "a white square on a gray background"};
    static const int valgrind_subset[] = {0, 1, 5, 6};
    int j, named = 0, matched = 0;
    int n = under_valgrind ? 4 : (int)(sizeof prompts / sizeof prompts[0]);
    for (j = 0; j < n; j++) {
        int i = under_valgrind ? valgrind_subset[j] : j;
        mt_tensor images = {0};
        mod_arg args[] = {{"prompt", mod_str(prompts[i])}, {"num_inference_steps", mod_int(steps_full)},
                          {"generator", mod_int(100 + i)}, {"progress_bar", mod_bool(0)}, {NULL, {0}}};
        mod_status s = generate(pipe_default, args, &images);
        char caption[96];
        double mse = 0;
        int k;
        if (!CHECK(s == MOD_OK, "generate '%s'%s%s", prompts[i], s ? ": " : "", s ? mod_last_error() : "")) continue;
        CHECK(images.ndim == 4 && images.shape[0] == 1 && images.shape[1] == 3 && all_in_unit_range(&images),
              "'%s': one RGB image in [0, 1]", prompts[i]);
        k = nearest_set_image(&images, 0, &mse);
        set_caption(k, caption, sizeof caption);
        CHECK(carries_prompt_ex(k, prompts[i], &named, &matched),
              "'%s': the nearest set image, '%s' (mse %.4f), has its colour and shape", prompts[i], caption, mse);
        mt_release(&images);
    }
    CHECK(matched * 3 >= named * 2, "sizes, positions and backgrounds the prompts name: %d of %d honoured (>= 2/3)",
          matched, named);
}

/* ------------------------------------------------------------------------
   Determinism
   ------------------------------------------------------------------------ */

static void test_threads_bitwise(void) {
    mt_tensor a = {0}, b = {0};
    mod_arg args[] = {{"prompt", mod_str("a blue circle")}, {"num_inference_steps", mod_int(steps_quick)},
                      {"generator", mod_int(77)}, {"height", mod_int(64)}, {"width", mod_int(64)},
                      {"progress_bar", mod_bool(0)}, {NULL, {0}}};
    int saved = mt_get_num_threads();
    mt_set_num_threads(1);
    CHECK(generate(pipe_default, args, &a) == MOD_OK, "generate at 1 thread");
    mt_set_num_threads(2);
    CHECK(generate(pipe_default, args, &b) == MOD_OK, "generate at 2 threads");
    mt_set_num_threads(saved);
    CHECK(bit_equal(&a, &b), "the same seed gives the same image bit for bit at 1 and 2 threads");
    mt_release(&a);
    mt_release(&b);
}

typedef struct concurrent_job {
    const char *prompt;
    int64_t seed;
    mt_tensor images;
    mod_status status;
} concurrent_job;

static void *concurrent_run(void *arg) {
    concurrent_job *j = (concurrent_job *)arg;
    mod_arg args[] = {{"prompt", mod_str(j->prompt)}, {"num_inference_steps", mod_int(steps_quick)},
                      {"generator", mod_int(j->seed)}, {"progress_bar", mod_bool(0)}, {NULL, {0}}};
    j->status = generate(pipe_default, args, &j->images);
    return NULL;
}

/* One pipeline, two calls at once: each call makes its own scheduler run
   state and generators, so each gives what it gives alone. */
static void test_concurrent_calls(void) {
    concurrent_job jobs[2];
    pthread_t th[2];
    mt_tensor alone = {0};
    int i;
    memset(jobs, 0, sizeof jobs);
    jobs[0].prompt = "a red square";
    jobs[0].seed = 5;
    jobs[1].prompt = "a green circle";
    jobs[1].seed = 6;
    for (i = 0; i < 2; i++) pthread_create(&th[i], NULL, concurrent_run, &jobs[i]);
    for (i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (i = 0; i < 2; i++) {
        mod_arg args[] = {{"prompt", mod_str(jobs[i].prompt)}, {"num_inference_steps", mod_int(steps_quick)},
                          {"generator", mod_int(jobs[i].seed)}, {"progress_bar", mod_bool(0)}, {NULL, {0}}};
        CHECK(jobs[i].status == MOD_OK, "concurrent call %d ran", i);
        CHECK(generate(pipe_default, args, &alone) == MOD_OK && bit_equal(&alone, &jobs[i].images),
              "concurrent call %d gives the image it gives alone", i);
        mt_release(&jobs[i].images);
    }
    mt_release(&alone);
}

/* A batch: two prompts, two images each, a seed: image j is what a single
   call with its prompt and seed + j gives. */
static void test_batch(void) {
    mod_value prompts;
    mt_tensor batch = {0}, one = {0}, slice = {0};
    int j;
    memset(&prompts, 0, sizeof prompts);
    mod_list_new(&prompts, 2);
    mod_list_set(&prompts, 0, mod_str("a red circle"));
    mod_list_set(&prompts, 1, mod_str("a blue square"));
    {
        mod_arg args[] = {{"prompt", prompts}, {"num_images_per_prompt", mod_int(2)}, {"num_inference_steps", mod_int(steps_quick)},
                          {"generator", mod_int(40)}, {"progress_bar", mod_bool(0)}, {NULL, {0}}};
        CHECK(generate(pipe_default, args, &batch) == MOD_OK && batch.shape[0] == 4, "two prompts x two images: 4 images");
    }
    for (j = 0; j < 4 && batch.data; j++) {
        mod_arg args[] = {{"prompt", mod_str(j < 2 ? "a red circle" : "a blue square")},
                          {"num_inference_steps", mod_int(steps_quick)}, {"generator", mod_int(40 + j)},
                          {"progress_bar", mod_bool(0)}, {NULL, {0}}};
        generate(pipe_default, args, &one);
        mt_view_slice(&slice, &batch, 0, j, j + 1, 1);
        CHECK(max_abs_diff(&slice, &one) <= 1e-5, "batch image %d equals a single call with its prompt and seed %d", j, 40 + j);
        mt_release(&slice);
    }
    mt_release(&one);
    mt_release(&batch);
    mod_value_release(&prompts);
}

/* ------------------------------------------------------------------------
   Image-to-image and inpainting
   ------------------------------------------------------------------------ */

/* decode(encode(x)) through the pipeline's VAE (the best any latent
   pipeline can return). */
static void vae_roundtrip(const mt_tensor *x, mt_tensor *out) {
    const df_vae *vae = (const df_vae *)mod_value_ptr(mod_pipeline_component(pipe_default, "vae"), NULL);
    mt_tensor z = {0};
    df_vae_encode(vae, x, &z);
    df_vae_decode(vae, &z, out);
    mt_release(&z);
}

static void test_img2img_strength_zero(void) {
    mt_tensor src = {0}, out = {0}, rt = {0};
    double err, rt_err;
    set_render(set_index("triangle", "cyan", "large", "center", "black"), 64, 64, &src);
    {
        mod_arg args[] = {{"prompt", mod_str("a yellow square")}, {"image", mod_tensor(&src)}, {"strength", mod_float(0.0)},
                          {"num_inference_steps", mod_int(steps_quick)}, {"generator", mod_int(1)},
                          {"progress_bar", mod_bool(0)}, {NULL, {0}}};
        CHECK(generate(pipe_default, args, &out) == MOD_OK, "image-to-image at strength 0 runs (no denoising step)");
    }
    vae_roundtrip(&src, &rt);
    err = max_abs_diff(&out, &rt);
    rt_err = max_abs_diff(&rt, &src);
    CHECK(err <= 1e-6, "strength 0 returns the input through the VAE unchanged (max |out - vae(x)| = %g <= 1e-6)", err);
    CHECK(max_abs_diff(&out, &src) <= rt_err + 1e-6, "strength 0 is within the VAE's reconstruction error of the input (max %g)",
          rt_err);
    CHECK(psnr(&out, &src) >= 25.0, "strength 0 returns the input at %.1f dB PSNR (>= 25 dB, the VAE's promise)", psnr(&out, &src));
    mt_release(&src);
    mt_release(&out);
    mt_release(&rt);
}

static void test_img2img_changes(void) {
    mt_tensor src = {0}, out = {0};
    char caption[64];
    int k;
    set_render(set_index("circle", "red", "large", "center", "white"), 64, 64, &src);
    {
        mod_arg args[] = {{"prompt", mod_str("a blue circle")}, {"image", mod_tensor(&src)}, {"strength", mod_float(0.9)},
                          {"num_inference_steps", mod_int(steps_full)}, {"generator", mod_int(3)},
                          {"progress_bar", mod_bool(0)}, {NULL, {0}}};
        CHECK(generate(pipe_default, args, &out) == MOD_OK, "image-to-image at strength 0.9");
    }
    k = nearest_set_image(&out, 0, NULL);
    set_caption(k, caption, sizeof caption);
    CHECK(out.data && carries_prompt(k, "a blue circle"), "red circle -> 'a blue circle' at strength 0.9 gives '%s'", caption);
    mt_release(&src);
    mt_release(&out);
}

static void test_inpaint_keeps_unmasked(void) {
    mt_tensor src = {0}, mask = {0}, out = {0}, rt = {0};
    int64_t y, x, c, H = 64, W = 64;
    double worst_rt = 0, worst_src = 0, rt_src = 0;
    float *m;
    set_render(set_index("square", "red", "large", "left", "gray"), H, W, &src);
    mt_zeros(&mask, MT_F32, MT_SHAPE(1, 1, 64, 64));
    m = mt_f32(&mask);
    for (y = 0; y < H; y++)
        for (x = W / 2; x < W; x++) m[y * W + x] = 1.0f; /* repaint the right half */
    {
        mod_arg args[] = {{"prompt", mod_str("a green square")}, {"image", mod_tensor(&src)}, {"mask_image", mod_tensor(&mask)},
                          {"strength", mod_float(1.0)}, {"num_inference_steps", mod_int(steps_full)},
                          {"generator", mod_int(8)}, {"progress_bar", mod_bool(0)}, {NULL, {0}}};
        CHECK_OK(generate(pipe_default, args, &out), "inpainting runs");
    }
    vae_roundtrip(&src, &rt);
    for (c = 0; c < 3 && out.data; c++)
        for (y = 0; y < H; y++)
            for (x = 0; x < W / 2; x++) {
                int64_t i = (c * H + y) * W + x;
                double a = fabs((double)mt_f32(&out)[i] - mt_f32(&rt)[i]), b = fabs((double)mt_f32(&out)[i] - mt_f32(&src)[i]);
                double r = fabs((double)mt_f32(&rt)[i] - mt_f32(&src)[i]);
                if (a > worst_rt) worst_rt = a;
                if (b > worst_src) worst_src = b;
                if (r > rt_src) rt_src = r;
            }
    CHECK(worst_rt <= 1e-5, "inpainting: the unmasked half is the VAE reconstruction of the input (max diff %g <= 1e-5)",
          worst_rt);
    CHECK(worst_src <= rt_src + 1e-5, "inpainting: the unmasked half is within the VAE's error of the input (max %g)", worst_src);
    mt_release(&src);
    mt_release(&mask);
    mt_release(&out);
    mt_release(&rt);
}

/* ------------------------------------------------------------------------
   Editing: every block can be replaced, blocks can be inserted and popped
   ------------------------------------------------------------------------ */

/* The standard definition at every leaf path of the pipeline. */
typedef struct path_def {
    const char *path;
    const mod_block_def *def;
} path_def;

static const path_def every_block[] = {
    {"text_encoder", &DFTextEncoderStep_def},
    {"image_encoder.inpaint", &DFInpaintVaeEncoderStep_def},
    {"image_encoder.img2img", &DFVaeEncoderStep_def},
    {"before_denoise.inpaint.input", &DFInputStep_def},
    {"before_denoise.inpaint.set_timesteps", &DFImg2ImgSetTimestepsStep_def},
    {"before_denoise.inpaint.prepare_latents", &DFInpaintPrepareLatentsStep_def},
    {"before_denoise.img2img.input", &DFInputStep_def},
    {"before_denoise.img2img.set_timesteps", &DFImg2ImgSetTimestepsStep_def},
    {"before_denoise.img2img.prepare_latents", &DFImg2ImgPrepareLatentsStep_def},
    {"before_denoise.text2img.input", &DFInputStep_def},
    {"before_denoise.text2img.set_timesteps", &DFSetTimestepsStep_def},
    {"before_denoise.text2img.prepare_latents", &DFPrepareLatentsStep_def},
    {"denoise.inpaint_denoise.before_denoiser", &DFInpaintLoopBeforeDenoiser_def},
    {"denoise.inpaint_denoise.denoiser", &DFLoopDenoiser_def},
    {"denoise.inpaint_denoise.after_denoiser", &DFInpaintLoopAfterDenoiser_def},
    {"denoise.denoise.before_denoiser", &DFLoopBeforeDenoiser_def},
    {"denoise.denoise.denoiser", &DFLoopDenoiser_def},
    {"denoise.denoise.after_denoiser", &DFLoopAfterDenoiser_def},
    {"decode", &DFDecodeStep_def},
    {"output", &DFImageOutputStep_def},
};
#define N_BLOCKS ((int)(sizeof every_block / sizeof every_block[0]))

/* A user's after-denoiser (make_block, generic state): the scheduler step,
   then a copy of the new latents appended to the list it was given. */
typedef struct recorder {
    mt_tensor steps[64];
    int n;
} recorder;

static mod_status record_after_denoiser(mod_block_state *bs) {
    recorder *r = (recorder *)mod_block_state_user(bs);
    const mod_iter *it = mod_block_state_iter(bs);
    const mod_value *eta = mod_block_state_get(bs, "eta");
    mt_tensor latents = {0};
    mod_status s;
    mt_share(&latents, mod_value_tensor(mod_block_state_get(bs, "latents")));
    s = df_scheduler_step(mod_block_state_get(bs, "scheduler_state"), mod_block_state_get(bs, "generators"),
                          eta ? eta->f : 0.0, mod_value_tensor(mod_block_state_get(bs, "noise_pred")), it->t, &latents);
    if (s == MOD_OK) s = mod_block_state_set(bs, "latents", mod_tensor(&latents));
    if (s == MOD_OK && r->n < 64) mt_clone(&r->steps[r->n++], &latents);
    mt_release(&latents);
    return s == MOD_OK ? MOD_OK : mod_fail(bs, s, "%s", mod_last_error());
}

/* A user block inserted in the loop body: counts the iterations. */
static mod_status count_steps(mod_block_state *bs) {
    (*(int *)mod_block_state_user(bs))++;
    return MOD_OK;
}

static void test_edit_every_block(void) {
    mod_block *blocks = NULL, *edited = NULL;
    mod_pipeline *p = NULL;
    mt_tensor want_t2i = {0}, want_inp = {0}, got = {0}, src = {0}, mask = {0};
    char paths[64][96];
    int n, i, k, covered = 1;
    mod_arg t2i[] = {{"prompt", mod_str("a red square")}, {"num_inference_steps", mod_int(steps_edit)}, {"generator", mod_int(2)},
                     {"progress_bar", mod_bool(0)}, {NULL, {0}}};
    mod_arg inp[] = {{"prompt", mod_str("a red square")}, {"image", {0}}, {"mask_image", {0}}, {"strength", mod_float(0.8)},
                     {"num_inference_steps", mod_int(steps_edit)}, {"generator", mod_int(2)}, {"progress_bar", mod_bool(0)},
                     {NULL, {0}}};
    set_render(set_index("star", "yellow", "large", "center", "black"), 64, 64, &src);
    mt_zeros(&mask, MT_F32, MT_SHAPE(1, 1, 64, 64));
    for (i = 0; i < 64 * 32; i++) mt_f32(&mask)[i] = 1.0f; /* top half */
    inp[1].value = mod_tensor(&src);
    inp[2].value = mod_tensor(&mask);
    generate(pipe_default, t2i, &want_t2i);
    generate(pipe_default, inp, &want_inp);

    df_pipeline_blocks(&blocks);
    n = leaf_paths(blocks, "", paths, 0);
    for (i = 0; i < n; i++) {
        int found = 0;
        for (k = 0; k < N_BLOCKS; k++) found |= !strcmp(paths[i], every_block[k].path);
        if (!found) covered = 0;
    }
    CHECK(n == N_BLOCKS && covered, "the replacement table covers all %d leaf blocks of the pipeline", n);
    mod_block_free(blocks);

    /* every block replaced by a user-made instance of its definition: the
       pipeline still gives the same images */
    for (k = 0; k < N_BLOCKS; k++) {
        mod_block *b = NULL;
        int ok;
        df_pipeline_blocks(&edited);
        ok = mod_block_new(&b, every_block[k].def) == MOD_OK && mod_block_replace(edited, every_block[k].path, b) == MOD_OK &&
             mod_block_find(edited, every_block[k].path) == b && mod_pipeline_new(&p, edited) == MOD_OK;
        ok = ok && generate(p, strstr(every_block[k].path, "inpaint") ? inp : t2i, &got) == MOD_OK &&
             bit_equal(&got, strstr(every_block[k].path, "inpaint") ? &want_inp : &want_t2i);
        CHECK(ok, "mod_block_replace('%s') with a user instance: same images (%s)", every_block[k].path,
              ok ? "ok" : mod_last_error());
        mod_pipeline_free(p);
        p = NULL;
        mod_block_free(b);
        mod_block_free(edited);
        edited = NULL;
    }

    /* a custom after-denoiser that records each step's latents */
    {
        static const mod_input_param inputs[] = {{"eta", "float", {MOD_FLOAT, 0, 0.0, NULL, NULL, NULL}, 0, "eta", NULL},
                                                 {NULL, NULL, {MOD_ABSENT, 0, 0, NULL, NULL, NULL}, 0, NULL, NULL}};
        static const mod_input_param inter[] = {
            {"generators", "df_generators", {MOD_ABSENT, 0, 0, NULL, NULL, NULL}, 0, "", NULL},
            {"noise_pred", "Tensor", {MOD_ABSENT, 0, 0, NULL, NULL, NULL}, 1, "", NULL},
            {"scheduler_state", "mt_scheduler", {MOD_ABSENT, 0, 0, NULL, NULL, NULL}, 1, "", NULL},
            {"latents", "Tensor", {MOD_ABSENT, 0, 0, NULL, NULL, NULL}, 1, "", NULL},
            {NULL, NULL, {MOD_ABSENT, 0, 0, NULL, NULL, NULL}, 0, NULL, NULL}};
        static const mod_output_param outs[] = {{"latents", "Tensor", "the denoised latents", NULL}, {NULL, NULL, NULL, NULL}};
        recorder *rec = (recorder *)calloc(1, sizeof(recorder));
        int counter = 0;
        mod_block *custom = NULL, *counter_block = NULL, *popped = NULL;
        mod_block_desc d;
        mod_value latents;
        memset(&d, 0, sizeof d);
        memset(&latents, 0, sizeof latents);
        d.class_name = "RecordingAfterDenoiser";
        d.description = "scheduler step, keeping a copy of every step's latents";
        d.inputs = inputs;
        d.intermediate_inputs = inter;
        d.intermediate_outputs = outs;
        d.fn = record_after_denoiser;
        d.user = rec;
        df_pipeline_blocks(&edited);
        CHECK_OK(mod_make_block(&custom, &d) || mod_block_replace(edited, "denoise.denoise.after_denoiser", custom),
                 "replace the after-denoiser with a recording one (mod_block_replace)");
        memset(&d, 0, sizeof d);
        d.class_name = "StepCounter";
        d.fn = count_steps;
        d.user = &counter;
        CHECK_OK(mod_make_block(&counter_block, &d) ||
                     mod_block_insert(mod_block_find(edited, "denoise.denoise"), 3, "counter", counter_block),
                 "insert a step counter at the end of the loop body (mod_block_insert)");
        CHECK(mod_block_pop(edited, "output", &popped) == MOD_OK && popped && !strcmp(mod_block_class_name(popped), "DFImageOutputStep"),
              "pop the output block (mod_block_pop)");
        CHECK_OK(mod_pipeline_new(&p, edited), "the edited blocks make a pipeline");
        CHECK_OK(call_for(p, t2i, "latents", &latents), "the edited pipeline runs");
        CHECK(rec->n == steps_edit && counter == steps_edit, "the recorder saw %d steps (%d) and the counter counted them (%d)",
              steps_edit, rec->n, counter);
        CHECK(rec->n == steps_edit && bit_equal(&rec->steps[steps_edit - 1], mod_value_tensor(&latents)),
              "the last recorded latents are the pipeline's final latents");
        CHECK(rec->n == steps_edit && max_abs_diff(&rec->steps[0], &rec->steps[steps_edit - 1]) > 1e-3,
              "the recorded latents change from step to step");
        {
            mt_tensor img = {0};
            CHECK(generate(p, t2i, &img) == MOD_OK && bit_equal(&img, &want_t2i),
                  "a user after-denoiser doing the same step gives the same image");
            mt_release(&img);
        }
        CHECK(mod_pipeline_call(p, (const mod_arg[]){{"prompt", mod_str("a red square")}, {"output", mod_str("x.png")}, {NULL, {0}}},
                                &(mod_state *){NULL}) == MOD_ERR_UNKNOWN &&
                  contains(mod_last_error(), "unknown argument 'output'"),
              "the popped output block no longer takes `output`: %s", mod_last_error());
        for (i = 0; i < rec->n; i++) mt_release(&rec->steps[i]);
        free(rec);
        mod_value_release(&latents);
        mod_pipeline_free(p);
        mod_block_free(custom);
        mod_block_free(counter_block);
        mod_block_free(popped);
        mod_block_free(edited);
    }
    mt_release(&want_t2i);
    mt_release(&want_inp);
    mt_release(&got);
    mt_release(&src);
    mt_release(&mask);
}

/* ------------------------------------------------------------------------
   Every scheduler, guidance on and off; a user's component in a slot
   ------------------------------------------------------------------------ */

/* A user denoiser that counts the model calls and forwards them. */
typedef struct counting_unet {
    df_denoiser iface;
    const df_denoiser *inner;
    long calls;
} counting_unet;

static mod_status counting_predict(void *self, const mt_tensor *sample, double t, const mt_tensor *embeds, mt_tensor *out) {
    counting_unet *c = (counting_unet *)self;
    __atomic_add_fetch(&c->calls, 1, __ATOMIC_RELAXED);
    return c->inner->predict(c->inner->self, sample, t, embeds, out);
}

static void test_schedulers_and_guidance(void) {
    static const char *const kinds[] = {"euler", "euler_ancestral", "ddim", "dpm"};
    const df_denoiser *unet = (const df_denoiser *)mod_value_ptr(mod_pipeline_component(pipe_default, "unet"), NULL);
    int i, g;
    for (i = 0; i < 4; i++)
        for (g = 0; g < 2; g++) {
            char config[DF_CONFIG_TEXT_MAX], caption[64];
            mod_pipeline *p;
            counting_unet cu;
            mt_tensor images = {0};
            mod_arg args[] = {{"prompt", mod_str("a green square")}, {"num_inference_steps", mod_int(steps_sched)},
                              {"generator", mod_int(9)}, {"progress_bar", mod_bool(0)}, {NULL, {0}}};
            int k;
            df_scheduler_config_for(kinds[i], unet->prediction_type, config, sizeof config);
            p = pipeline_with(config, g ? "guidance_scale=3" : "guidance_scale=1");
            cu.iface = *unet;
            cu.iface.predict = counting_predict;
            cu.iface.self = &cu;
            cu.inner = unet;
            cu.calls = 0;
            CHECK(p && mod_pipeline_set_component(p, "unet", mod_ptr(&cu.iface, &df_denoiser_type)) == MOD_OK,
                  "%s: a user denoiser plugs into the 'unet' slot", kinds[i]);
            CHECK(generate(p, args, &images) == MOD_OK, "%s, guidance %s: runs%s%s", kinds[i], g ? "on" : "off",
                  images.data ? "" : ": ", images.data ? "" : mod_last_error());
            CHECK(cu.calls == (g ? 2 : 1) * steps_sched, "%s, guidance %s: %ld model calls for %d steps", kinds[i],
                  g ? "on" : "off", cu.calls, steps_sched);
            k = images.data ? nearest_set_image(&images, 0, NULL) : 0;
            set_caption(k, caption, sizeof caption);
            CHECK(images.data && all_in_unit_range(&images) && (steps_sched < 20 || carries_prompt(k, "a green square")),
                  "%s, guidance %s: the image is a green square (nearest: %s)", kinds[i], g ? "on" : "off", caption);
            mt_release(&images);
            mod_pipeline_free(p);
        }
}

/* ------------------------------------------------------------------------
   Bad calls: clear errors naming the block and the param
   ------------------------------------------------------------------------ */

static void test_errors(void) {
    mod_state *st = NULL;
    mt_tensor src = {0};
    mod_pipeline *p = NULL;
    mod_value v;
    memset(&v, 0, sizeof v);
    set_render(set_index("circle", "red", "large", "center", "white"), 64, 64, &src);
    CHECK(mod_pipeline_call(pipe_default,
                            (const mod_arg[]){{"prompt", mod_str("a red circle")}, {"num_inference_steps", mod_int(0)}, {NULL, {0}}},
                            &st) == MOD_ERR_ARGUMENT &&
              contains(mod_last_error(), "'num_inference_steps' must be at least 1, got 0 (block before_denoise.text2img.set_timesteps)"),
          "zero steps: %s", mod_last_error());
    CHECK(mod_pipeline_call(pipe_default,
                            (const mod_arg[]){{"prompt", mod_str("a red circle")}, {"image", mod_tensor(&src)},
                                              {"strength", mod_float(1.5)}, {NULL, {0}}},
                            &st) == MOD_ERR_ARGUMENT &&
              contains(mod_last_error(), "'strength' must be in [0, 1], got 1.5 (block before_denoise.img2img.set_timesteps)"),
          "strength 1.5: %s", mod_last_error());
    CHECK(mod_pipeline_call(pipe_default, (const mod_arg[]){{"num_inference_steps", mod_int(3)}, {NULL, {0}}}, &st) ==
                  MOD_ERR_MISSING &&
              contains(mod_last_error(), "Required input 'prompt' is missing (block text_encoder)"),
          "missing prompt: %s", mod_last_error());
    CHECK(mod_pipeline_call(pipe_default,
                            (const mod_arg[]){{"prompt", mod_str("a red circle")}, {"mask_image", mod_tensor(&src)}, {NULL, {0}}},
                            &st) == MOD_ERR_MISSING &&
              contains(mod_last_error(), "Required input 'image' is missing (block image_encoder.inpaint)"),
          "a mask without an image: %s", mod_last_error());
    CHECK(mod_pipeline_call(pipe_default,
                            (const mod_arg[]){{"prompt", mod_str("a red circle")}, {"height", mod_int(62)}, {NULL, {0}}},
                            &st) == MOD_ERR_ARGUMENT &&
              contains(mod_last_error(), "have to be divisible by") &&
              contains(mod_last_error(), "(block before_denoise.text2img.prepare_latents)"),
          "a height the VAE cannot take: %s", mod_last_error());
    CHECK(mod_pipeline_call(pipe_default,
                            (const mod_arg[]){{"prompt", mod_int(3)}, {NULL, {0}}}, &st) == MOD_ERR_KIND &&
              contains(mod_last_error(), "'prompt' must be a str or a list of str (block text_encoder)"),
          "a prompt that is not text: %s", mod_last_error());
    CHECK(mod_pipeline_call(pipe_default,
                            (const mod_arg[]){{"prompt", mod_str("a red circle")}, {"num_inference_steps", mod_int(2)},
                                              {"output_type", mod_str("pil")}, {"progress_bar", mod_bool(0)}, {NULL, {0}}},
                            &st) == MOD_ERR_ARGUMENT &&
              contains(mod_last_error(), "'output_type' must be \"pt\" or \"latent\", got \"pil\" (block decode)"),
          "an unknown output type: %s", mod_last_error());
    CHECK(mod_pipeline_call(pipe_default,
                            (const mod_arg[]){{"prompt", mod_str("a red circle")}, {"image", mod_str("/nonexistent/x.png")},
                                              {NULL, {0}}},
                            &st) != MOD_OK &&
              contains(mod_last_error(), "'image'") && contains(mod_last_error(), "(block image_encoder.img2img)"),
          "an image file that does not exist: %s", mod_last_error());
    CHECK(st == NULL, "failed calls return no state");
    /* an unknown scheduler name as the component's config */
    CHECK(df_scheduler_create("kind=foo", &v) == MOD_ERR_ARGUMENT &&
              contains(mod_last_error(), "unknown scheduler kind 'foo'"),
          "unknown scheduler name: %s", mod_last_error());
    /* a scheduler whose prediction type the denoiser does not make */
    p = pipeline_with("kind=euler prediction_type=v_prediction", NULL);
    CHECK(p && mod_pipeline_call(p,
                                 (const mod_arg[]){{"prompt", mod_str("a red circle")}, {"num_inference_steps", mod_int(2)},
                                                   {"progress_bar", mod_bool(0)}, {NULL, {0}}},
                                 &st) == MOD_ERR_ARGUMENT &&
              contains(mod_last_error(), "prediction_type is 'v_prediction'") &&
              contains(mod_last_error(), "(block denoise.denoise.denoiser)"),
          "scheduler and denoiser disagree on the prediction: %s", mod_last_error());
    mod_pipeline_free(p);
    /* a component of the wrong type in a slot */
    df_pipeline_new(&p);
    CHECK(p && df_guider_create("", &v) == MOD_OK && mod_pipeline_set_component(p, "unet", v) == MOD_ERR_KIND &&
              contains(mod_last_error(), "component 'unet' must be a UNet2DConditionModel, got a ClassifierFreeGuidance"),
          "a guider in the unet slot: %s", mod_last_error());
    mod_value_release(&v);
    mod_pipeline_free(p);
    /* a slot left empty (what a pipeline without the embedded model has) */
    df_pipeline_new(&p);
    CHECK(p && mod_pipeline_set_component(p, "unet", mod_none()) == MOD_OK &&
              mod_pipeline_call(p, (const mod_arg[]){{"prompt", mod_str("a red circle")}, {NULL, {0}}}, &st) == MOD_ERR_MISSING &&
              contains(mod_last_error(), "Component 'unet' is not set"),
          "an empty component slot is reported by name before anything runs: %s", mod_last_error());
    mod_pipeline_free(p);
    mt_release(&src);
}

/* ------------------------------------------------------------------------
   Block-system behaviour the diffusion blocks rely on (modular.h fixes made
   while building them; each check failed before its fix)
   ------------------------------------------------------------------------ */

/* a loop body's scalar output that is 0 on the first iteration */
#define zero_output_PARAMS(X, S) X(S, OUTPUT, INT, count, "int", NONE, "0 the first time")
MOD_BLOCK(zero_output, "writes count = iteration index") {
    s->count = mod_block_state_iter(s->mod)->i;
    return MOD_OK;
}
#define one_step_PARAMS(X, S) X(S, INPUT, INT, steps, "int", DEF(1), "iterations")
MOD_LOOP(one_step, "runs its body `steps` times") {
    int64_t i;
    for (i = 0; i < s->steps; i++) {
        mod_iter it = {0, 0.0, NULL};
        it.i = i;
        MOD_TRY(mod_loop_step(s->mod, &it));
    }
    return MOD_OK;
}

static void test_block_system_regressions(void) {
    mod_block *loop = NULL;
    mod_pipeline *p = NULL;
    mod_state *st = NULL;
    const mod_value *v;
    const mod_entry body[] = {{"zero", &zero_output_def, NULL, NULL}, {NULL, NULL, NULL, NULL}};
    mod_value sched;
    memset(&sched, 0, sizeof sched);
    CHECK_OK(mod_loop_new(&loop, &one_step_def, body) || mod_pipeline_new(&p, loop) ||
                 mod_pipeline_call(p, (const mod_arg[]){{"steps", mod_int(1)}, {NULL, {0}}}, &st),
             "a loop whose body outputs 0");
    v = st ? mod_state_intermediate(st, "count") : NULL;
    CHECK(v && v->kind == MOD_INT && v->i == 0, "a body's scalar output of 0 reaches the state");
    mod_state_free(st);
    st = NULL;
    CHECK_OK(mod_pipeline_call(p, (const mod_arg[]){{"steps", mod_int(0)}, {NULL, {0}}}, &st),
             "a loop of zero iterations runs (image-to-image at strength 0 has no step)");
    CHECK(st && !mod_state_intermediate(st, "count"), "the outputs of a body that never ran are not written");
    mod_state_free(st);
    mod_pipeline_free(p);
    mod_block_free(loop);
    /* a typed block's own VALUE output (an owned PTR) outlives the block */
    {
        mod_arg args[] = {{"prompt", mod_str("a red circle")}, {"num_inference_steps", mod_int(3)},
                          {"output_type", mod_str("latent")}, {"progress_bar", mod_bool(0)}, {NULL, {0}}};
        const mt_scheduler *s;
        CHECK_OK(call_for(pipe_default, args, "scheduler_state", &sched), "call for the scheduler run state");
        s = (const mt_scheduler *)mod_value_ptr(&sched, "mt_scheduler");
        CHECK(s && s->alphas_cumprod && s->num_inference_steps == 3 && s->step_index == 3,
              "the run state set_timesteps made is alive after the call, stepped 3 times");
        mod_value_release(&sched);
    }
}

/* ------------------------------------------------------------------------
   PNG output
   ------------------------------------------------------------------------ */

static void test_png_output(void) {
#ifdef MT_IMAGE_MAX_PIXELS
    mod_value paths;
    mt_tensor back = {0}, images = {0};
    mod_arg args[] = {{"prompt", mod_str("a blue square")}, {"num_inference_steps", mod_int(steps_quick)},
                      {"generator", mod_int(4)}, {"num_images_per_prompt", mod_int(2)},
                      {"output", mod_str("build/test_diffusion_%d.png")}, {"progress_bar", mod_bool(0)}, {NULL, {0}}};
    CHECK(call_for(pipe_default, args, "image_paths", &paths) == MOD_OK && mod_list_len(&paths) == 2,
          "output writes one PNG per image: %s", mod_last_error());
    CHECK(mod_list_len(&paths) == 2 && !strcmp((const char *)mod_list_at(&paths, 1)->p, "build/test_diffusion_1.png"),
          "image_paths lists the files");
    generate(pipe_default, args, &images);
    CHECK(mt_image_load(&back, "build/test_diffusion_1.png", 3, MT_RANGE_UNIT) == MT_OK, "the PNG loads back");
    {
        mt_tensor slice = {0};
        mt_view_slice(&slice, &images, 0, 1, 2, 1);
        CHECK(max_abs_diff(&slice, &back) <= 0.5 / 255 + 1e-6, "the PNG holds the image to 8 bits");
        mt_release(&slice);
    }
    mod_value_release(&paths);
    mt_release(&back);
    mt_release(&images);
    remove("build/test_diffusion_0.png");
    remove("build/test_diffusion_1.png");
#else
    CHECK(1, "PNG output: needs the files section of modular_tensor.h (not merged yet)");
#endif
}

int main(void) {
    if (getenv("MT_VALGRIND")) {
        under_valgrind = 1;
        steps_sched = 6;
        steps_quick = 3;
        steps_edit = 2;
    }
    test_scheduler_config();
    test_guider_config();
    test_guider_math();
    test_generators();
    test_output_path();
    test_structure();
    CHECK_OK(df_pipeline_new(&pipe_default), "the default pipeline (embedded model) is made by mod_pipeline_new alone");
    if (!pipe_default) return test_finish();
    test_blocks_reused();
    test_prompts_judged();
    test_threads_bitwise();
    test_concurrent_calls();
    test_batch();
    test_img2img_strength_zero();
    test_img2img_changes();
    test_inpaint_keeps_unmasked();
    test_edit_every_block();
    test_schedulers_and_guidance();
    test_errors();
    test_block_system_regressions();
    test_png_output();
    mod_pipeline_free(pipe_default);
    free(judge_set);
    return test_finish();
}
