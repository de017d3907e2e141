/* df_blocks.h - the standard diffusion blocks of modular.h, the C twin of
   diffusers' Stable Diffusion XL modular blocks
   (src/diffusers/modular_pipelines/stable_diffusion_xl/).

   Text-to-image, image-to-image and inpainting, built from MOD_BLOCK leaves
   composed into sequential, loop and auto blocks exactly as diffusers
   composes StableDiffusionXLAutoBlocks. Blocks never call a model directly:
   they take components from the pipeline by ComponentSpec name and call
   them through the interfaces of df_components.h, so any text encoder, VAE
   or denoiser plugs into the same slots.

   USAGE

       #include "modular_tensor.h"      // (implementations defined in one file)
       #include "modular.h"
       #include "df_components.h"
       #define SHAPES_MODEL_IMPLEMENTATION
       #include "shapes_model.h"        // optional, before df_blocks.h: the embedded
                                        // model becomes the default components
       #include "df_blocks.h"

   Everything here is static (include it in the file that builds the
   pipeline); it needs no implementation macro of its own. Link with -lm
   -lpthread.

       mod_block *blocks = NULL;
       mod_pipeline *pipe = NULL;
       mod_value images = {0};
       const char *const names[] = {"images", NULL};
       mod_arg args[] = {{"prompt", {0}}, {"generator", {0}}, {"output", {0}}, {NULL, {0}}};
       args[0].value = mod_str("a red circle");
       args[1].value = mod_int(7);
       args[2].value = mod_str("out/red_circle.png");
       if (df_pipeline_blocks(&blocks) || mod_pipeline_new(&pipe, blocks) ||
           mod_pipeline_call_outputs(pipe, args, names, &images))
           fprintf(stderr, "%s\n", mod_last_error());

   THE PIPELINE (df_pipeline_blocks; block names as in diffusers' AUTO_BLOCKS)

       DFAutoBlocks (sequential; workflows text2image, image2image, inpainting)
         text_encoder    DFTextEncoderStep
         image_encoder   DFAutoVaeEncoderStep (auto)
                           inpaint  DFInpaintVaeEncoderStep   trigger mask_image
                           img2img  DFVaeEncoderStep          trigger image
         before_denoise  DFAutoBeforeDenoiseStep (auto)
                           inpaint  DFInpaintBeforeDenoiseStep  trigger mask
                           img2img  DFImg2ImgBeforeDenoiseStep  trigger image_latents
                           text2img DFBeforeDenoiseStep         default
                           (each: input, set_timesteps, prepare_latents)
         denoise         DFAutoDenoiseStep (auto)
                           inpaint_denoise DFInpaintDenoiseStep  trigger mask
                           denoise         DFDenoiseStep         default
                           (loops over timesteps: before_denoiser, denoiser,
                            after_denoiser)
         decode          DFDecodeStep
         output          DFImageOutputStep

   COMPONENTS (ComponentSpec name, type hint = df_components.h type name)

       text_encoder  CLIPTextModel            df_text_encoder
       vae           AutoencoderKL            df_vae
       unet          UNet2DConditionModel     df_denoiser
       guider        ClassifierFreeGuidance   df_guider   (df_guider_create)
       scheduler     SchedulerMixin           mt_scheduler_config (df_scheduler_create)

   Guidance is off (one model call per step) when guidance_scale <= 1;
   diffusers turns it off at exactly 1 and would extrapolate below.

   The defaults are created by mod_pipeline_new: the guider and the
   scheduler from the config texts DF_DEFAULT_GUIDER_CONFIG and
   DF_DEFAULT_SCHEDULER_CONFIG; the text encoder, VAE and UNet by the
   functions named by DF_DEFAULT_TEXT_ENCODER, DF_DEFAULT_VAE and
   DF_DEFAULT_UNET (the embedded model's shapes_*_create when shapes_model.h
   is included first; otherwise none, and the pipeline asks for them by name
   when called). Replace any of them with mod_pipeline_set_component.

   SCHEDULER AND GUIDER CONFIG TEXT

       "kind=euler timestep_spacing=leading use_karras_sigmas=1"
       "guidance_scale=5 guidance_rescale=0.7"

   key=value pairs separated by spaces or commas, with diffusers' config
   names; an unknown key or value is an error naming it. Scheduler kinds:
   euler, euler_ancestral (euler_a), ddim, dpm (DPM-Solver++ 2M), or
   diffusers' class names.

   FUNCTIONS (all static; errors are recorded with mod_fail as modular.h's)

       df_pipeline_blocks(&blocks)        the DFAutoBlocks tree above (edit it
                                          with mod_block_replace / _insert / _pop)
       df_pipeline_new(&pipe)             blocks + mod_pipeline_new
       df_denoise_step_new(&b, inpaint)   a denoising loop with its three body blocks
       df_before_denoise_new(&b, "text2img" | "img2img" | "inpaint")
       df_scheduler_create / df_guider_create     ComponentSpec create functions
       df_scheduler_config_parse / df_guider_config_parse   config text -> struct
       df_scheduler_config_for(name, prediction_type, buf, size)
                                          Stable Diffusion's config of a kind
       df_guider_enabled / df_guider_apply        classifier-free guidance
       df_guided_predict                  one denoiser step with guidance
       df_scheduler_step                  scheduler.step on a call's run state
       df_generators_make / df_randn      diffusers' randn_tensor over generators
       df_vae_encode / df_vae_decode      with the VAE's scaling and [0, 1] images
       df_batch_expand, df_image_arg, df_output_path, df_now, df_progress_*

   Every MOD_BLOCK's definition (DFTextEncoderStep_def, ...) is usable on
   its own: mod_block_new(&b, &DFDecodeStep_def), or mod_block_run.

   RANDOMNESS

   `generator` takes a seed (image i of the batch draws from a generator
   seeded with seed + i), a list of seeds (one per image), or a borrowed
   mt_generator (PTR value of type "torch.Generator", one stream over the
   whole batch, advanced by the call like a torch.Generator). Without it a
   generator seeded with PyTorch's default seed is used.

   LICENSE: MIT, as modular.h. */
#ifndef DF_BLOCKS_H
#define DF_BLOCKS_H

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sys/time.h>
#include <unistd.h>
#define DF__HAVE_POSIX 1
#else
#define DF__HAVE_POSIX 0
#endif

#include "df_components.h"

#if defined(__GNUC__) || defined(__clang__)
#define DF__UNUSED __attribute__((unused))
#else
#define DF__UNUSED
#endif
#define DFDEF static DF__UNUSED

#ifndef DF_MALLOC
#define DF_MALLOC(sz) malloc(sz)
#define DF_FREE(p) free(p)
#endif

/* ------------------------------------------------------------------------
   Defaults
   ------------------------------------------------------------------------ */

/* Stable Diffusion XL's scheduler config (EulerDiscreteScheduler). */
#ifndef DF_DEFAULT_SCHEDULER_CONFIG
#define DF_DEFAULT_SCHEDULER_CONFIG                                                                        \
    "kind=euler beta_schedule=scaled_linear beta_start=0.00085 beta_end=0.012 timestep_spacing=leading " \
    "steps_offset=1"
#endif
#ifndef DF_DEFAULT_GUIDER_CONFIG
#define DF_DEFAULT_GUIDER_CONFIG "guidance_scale=7.5"
#endif
/* The size of a text-to-image result when height / width are not given. */
#ifndef DF_DEFAULT_SIZE
#define DF_DEFAULT_SIZE 64
#endif

/* No default: the slot stays empty until mod_pipeline_set_component. */
DFDEF mod_status df_no_default_component(const char *config, mod_value *out) {
    (void)config;
    (void)out;
    return MOD_OK;
}

#ifdef SHAPES_MODEL_H
#ifndef DF_DEFAULT_TEXT_ENCODER
#define DF_DEFAULT_TEXT_ENCODER shapes_text_encoder_create
#endif
#ifndef DF_DEFAULT_VAE
#define DF_DEFAULT_VAE shapes_vae_create
#endif
#ifndef DF_DEFAULT_UNET
#define DF_DEFAULT_UNET shapes_unet_create
#endif
#endif
#ifndef DF_DEFAULT_TEXT_ENCODER
#define DF_DEFAULT_TEXT_ENCODER df_no_default_component
#endif
#ifndef DF_DEFAULT_VAE
#define DF_DEFAULT_VAE df_no_default_component
#endif
#ifndef DF_DEFAULT_UNET
#define DF_DEFAULT_UNET df_no_default_component
#endif
#ifndef DF_DEFAULT_TEXT_ENCODER_CONFIG
#define DF_DEFAULT_TEXT_ENCODER_CONFIG ""
#endif
#ifndef DF_DEFAULT_VAE_CONFIG
#define DF_DEFAULT_VAE_CONFIG ""
#endif
#ifndef DF_DEFAULT_UNET_CONFIG
#define DF_DEFAULT_UNET_CONFIG ""
#endif

/* ------------------------------------------------------------------------
   Config text: "key=value key=value" (spaces or commas between pairs)
   ------------------------------------------------------------------------ */

#define DF_CONFIG_TEXT_MAX 512

typedef struct df__kv {
    char key[48];
    char value[80];
} df__kv;

/* Reads the next pair from *p; 0 at the end, -1 on a malformed pair. */
static int df__next_kv(const char **p, df__kv *kv, const char *what) {
    const char *s = *p, *k, *eq, *e;
    size_t nk, nv;
    while (*s && (isspace((unsigned char)*s) || *s == ',')) s++;
    if (!*s) return 0;
    k = s;
    while (*s && !isspace((unsigned char)*s) && *s != ',') s++;
    e = s;
    *p = s;
    eq = (const char *)memchr(k, '=', (size_t)(e - k));
    if (!eq || eq == k || eq + 1 == e) {
        mod_fail(NULL, MOD_ERR_ARGUMENT, "%s config: expected key=value, got '%.*s'", what, (int)(e - k), k);
        return -1;
    }
    nk = (size_t)(eq - k);
    nv = (size_t)(e - eq - 1);
    if (nk >= sizeof kv->key || nv >= sizeof kv->value) {
        mod_fail(NULL, MOD_ERR_ARGUMENT, "%s config: '%.*s' is too long", what, (int)(e - k), k);
        return -1;
    }
    memcpy(kv->key, k, nk);
    kv->key[nk] = '\0';
    memcpy(kv->value, eq + 1, nv);
    kv->value[nv] = '\0';
    return 1;
}

static mod_status df__parse_double(const char *what, const df__kv *kv, double *out) {
    char *end = NULL;
    double v = strtod(kv->value, &end);
    if (!end || *end || end == kv->value || v != v)
        return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s config: '%s' must be a number, got '%s'", what, kv->key, kv->value);
    *out = v;
    return MOD_OK;
}

static mod_status df__parse_int(const char *what, const df__kv *kv, int lo, int hi, int *out) {
    char *end = NULL;
    long v = strtol(kv->value, &end, 10);
    if (!end || *end || end == kv->value || v < lo || v > hi)
        return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s config: '%s' must be an integer in [%d, %d], got '%s'", what, kv->key,
                        lo, hi, kv->value);
    *out = (int)v;
    return MOD_OK;
}

static mod_status df__parse_flag(const char *what, const df__kv *kv, mt_sched_flag *out) {
    const char *v = kv->value;
    if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "True"))
        *out = MT_SCHED_TRUE;
    else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "False"))
        *out = MT_SCHED_FALSE;
    else
        return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s config: '%s' must be 1/0/true/false, got '%s'", what, kv->key, v);
    return MOD_OK;
}

/* One of a NULL-terminated list of names; *out points to the list's
   (static) string so the config never refers to the text it came from. */
static mod_status df__parse_name(const char *what, const df__kv *kv, const char *const *names, const char **out) {
    char list[256];
    size_t n = 0;
    int i;
    for (i = 0; names[i]; i++)
        if (!strcmp(kv->value, names[i])) {
            *out = names[i];
            return MOD_OK;
        }
    list[0] = '\0';
    for (i = 0; names[i] && n < sizeof list; i++) n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", names[i]);
    return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s config: '%s' must be one of %s; got '%s'", what, kv->key, list, kv->value);
}

/* ------------------------------------------------------------------------
   Scheduler component
   ------------------------------------------------------------------------ */

/* The component object: an mt_scheduler_config (first member, so a pointer
   to it is a pointer to the config, as df_components.h promises) and the
   text it was made from. */
typedef struct df_scheduler {
    mt_scheduler_config config;
    char text[DF_CONFIG_TEXT_MAX];
} df_scheduler;

/* Parses scheduler config text into *cfg (zeroed first). */
DFDEF mod_status df_scheduler_config_parse(const char *text, mt_scheduler_config *cfg) {
    static const char *const beta_schedules[] = {"linear", "scaled_linear", "squaredcos_cap_v2", NULL};
    static const char *const prediction_types[] = {"epsilon", "v_prediction", "sample", NULL};
    static const char *const spacings[] = {"linspace", "leading", "trailing", NULL};
    static const char *const final_sigmas[] = {"zero", "sigma_min", NULL};
    static const char *const algorithms[] = {"dpmsolver++", "dpmsolver", "sde-dpmsolver++", NULL};
    static const char *const solver_types[] = {"midpoint", "heun", NULL};
    static const char *const what = "scheduler";
    const char *p = text ? text : "";
    df__kv kv;
    int r;
    mod_status s = MOD_OK;
    memset(cfg, 0, sizeof *cfg);
    cfg->kind = MT_SCHEDULER_EULER;
    while (s == MOD_OK && (r = df__next_kv(&p, &kv, what)) != 0) {
        const char *k = kv.key;
        double d = 0.0;
        if (r < 0) return MOD_ERR_ARGUMENT;
        if (!strcmp(k, "kind")) {
            const char *v = kv.value;
            if (!strcmp(v, "euler_ancestral"))
                cfg->kind = MT_SCHEDULER_EULER_ANCESTRAL;
            else if (mt_scheduler_kind_from_name(v, &cfg->kind) != MT_OK)
                s = mod_fail(NULL, MOD_ERR_ARGUMENT,
                             "scheduler config: unknown scheduler kind '%s'; expected euler, euler_ancestral, ddim or dpm "
                             "(or a diffusers class name)",
                             v);
        } else if (!strcmp(k, "num_train_timesteps")) {
            s = df__parse_int(what, &kv, 1, 100000, &cfg->num_train_timesteps);
        } else if (!strcmp(k, "beta_start") || !strcmp(k, "beta_end")) {
            s = df__parse_double(what, &kv, &d);
            if (s == MOD_OK && !(d > 0.0 && d < 1.0))
                s = mod_fail(NULL, MOD_ERR_ARGUMENT, "scheduler config: '%s' must be in (0, 1), got %s", k, kv.value);
            if (s == MOD_OK) *(k[5] == 's' ? &cfg->beta_start : &cfg->beta_end) = d;
        } else if (!strcmp(k, "beta_schedule")) {
            s = df__parse_name(what, &kv, beta_schedules, &cfg->beta_schedule);
        } else if (!strcmp(k, "prediction_type")) {
            s = df__parse_name(what, &kv, prediction_types, &cfg->prediction_type);
        } else if (!strcmp(k, "timestep_spacing")) {
            s = df__parse_name(what, &kv, spacings, &cfg->timestep_spacing);
        } else if (!strcmp(k, "steps_offset")) {
            s = df__parse_int(what, &kv, 0, 1000, &cfg->steps_offset);
        } else if (!strcmp(k, "use_karras_sigmas")) {
            s = df__parse_flag(what, &kv, &cfg->use_karras_sigmas);
        } else if (!strcmp(k, "final_sigmas_type")) {
            s = df__parse_name(what, &kv, final_sigmas, &cfg->final_sigmas_type);
        } else if (!strcmp(k, "set_alpha_to_one")) {
            s = df__parse_flag(what, &kv, &cfg->set_alpha_to_one);
        } else if (!strcmp(k, "clip_sample")) {
            s = df__parse_flag(what, &kv, &cfg->clip_sample);
        } else if (!strcmp(k, "clip_sample_range")) {
            s = df__parse_double(what, &kv, &cfg->clip_sample_range);
        } else if (!strcmp(k, "thresholding")) {
            s = df__parse_flag(what, &kv, &cfg->thresholding);
        } else if (!strcmp(k, "dynamic_thresholding_ratio")) {
            s = df__parse_double(what, &kv, &cfg->dynamic_thresholding_ratio);
        } else if (!strcmp(k, "sample_max_value")) {
            s = df__parse_double(what, &kv, &cfg->sample_max_value);
        } else if (!strcmp(k, "solver_order")) {
            s = df__parse_int(what, &kv, 1, 3, &cfg->solver_order);
        } else if (!strcmp(k, "algorithm_type")) {
            s = df__parse_name(what, &kv, algorithms, &cfg->algorithm_type);
        } else if (!strcmp(k, "solver_type")) {
            s = df__parse_name(what, &kv, solver_types, &cfg->solver_type);
        } else if (!strcmp(k, "lower_order_final")) {
            s = df__parse_flag(what, &kv, &cfg->lower_order_final);
        } else if (!strcmp(k, "euler_at_final")) {
            s = df__parse_flag(what, &kv, &cfg->euler_at_final);
        } else {
            s = mod_fail(NULL, MOD_ERR_ARGUMENT,
                         "scheduler config: unknown key '%s'; known keys: kind, num_train_timesteps, beta_start, "
                         "beta_end, beta_schedule, prediction_type, timestep_spacing, steps_offset, use_karras_sigmas, "
                         "final_sigmas_type, set_alpha_to_one, clip_sample, clip_sample_range, thresholding, "
                         "dynamic_thresholding_ratio, sample_max_value, solver_order, algorithm_type, solver_type, "
                         "lower_order_final, euler_at_final",
                         k);
        }
    }
    if (s == MOD_OK) {
        /* let the scheduler itself check the combination */
        mt_scheduler probe;
        memset(&probe, 0, sizeof probe);
        if (mt_scheduler_init(&probe, cfg) != MT_OK)
            s = mod_fail(NULL, MOD_ERR_ARGUMENT, "scheduler config: %s", mt_last_error());
        mt_scheduler_free(&probe);
    }
    return s;
}

/* The config text of a scheduler named by its short name, with Stable
   Diffusion's settings for that kind (scaled_linear betas 0.00085..0.012;
   Euler and Euler ancestral: leading spacing, steps_offset 1; DDIM: no
   sample clipping, final alpha from the schedule; DPM-Solver++ 2M with
   Karras sigmas) and the given prediction_type (NULL: epsilon). A text
   that contains '=' is taken as a full config and copied as it is. */
DFDEF mod_status df_scheduler_config_for(const char *name, const char *prediction_type, char *buf, size_t size) {
    static const char *const betas = "beta_schedule=scaled_linear beta_start=0.00085 beta_end=0.012";
    const char *extra;
    int n;
    if (!name || !*name) return mod_fail(NULL, MOD_ERR_ARGUMENT, "scheduler name is empty");
    if (strchr(name, '=')) {
        n = snprintf(buf, size, "%s", name);
        return n >= 0 && (size_t)n < size ? MOD_OK : mod_fail(NULL, MOD_ERR_ARGUMENT, "scheduler config text is too long");
    }
    if (!strcmp(name, "euler") || !strcmp(name, "euler_ancestral") || !strcmp(name, "euler_a"))
        extra = "timestep_spacing=leading steps_offset=1";
    else if (!strcmp(name, "ddim"))
        extra = "timestep_spacing=leading steps_offset=1 clip_sample=0 set_alpha_to_one=0";
    else if (!strcmp(name, "dpm") || !strcmp(name, "dpm++2m"))
        extra = "use_karras_sigmas=1";
    else
        return mod_fail(NULL, MOD_ERR_ARGUMENT, "unknown scheduler '%s'; expected euler, euler_ancestral, ddim or dpm", name);
    n = snprintf(buf, size, "kind=%s %s %s prediction_type=%s", name, betas, extra,
                 prediction_type ? prediction_type : "epsilon");
    return n >= 0 && (size_t)n < size ? MOD_OK : mod_fail(NULL, MOD_ERR_ARGUMENT, "scheduler config text is too long");
}

static void df__free_object(void *p) { DF_FREE(p); }

static int df__scheduler_describe(const void *object, char *buf, size_t size) {
    const df_scheduler *d = (const df_scheduler *)object;
    return snprintf(buf, size, "%s(%s)", mt_scheduler_kind_name(d->config.kind), d->text);
}

static const mod_type df__scheduler_owned_type = {"SchedulerMixin", df__free_object, df__scheduler_describe};

/* ComponentSpec create function of the "scheduler" slot: an owned value of
   type "SchedulerMixin" holding the parsed config. */
DFDEF mod_status df_scheduler_create(const char *config, mod_value *out) {
    df_scheduler *d = (df_scheduler *)DF_MALLOC(sizeof *d);
    mod_status s;
    if (!d) return mod_fail(NULL, MOD_ERR_MEMORY, "out of memory");
    s = df_scheduler_config_parse(config, &d->config);
    if (s == MOD_OK) {
        snprintf(d->text, sizeof d->text, "%s", config ? config : "");
        s = mod_value_own_ptr(out, d, &df__scheduler_owned_type);
    }
    if (s != MOD_OK) DF_FREE(d);
    return s;
}

/* ------------------------------------------------------------------------
   Guider component: classifier-free guidance
   ------------------------------------------------------------------------ */

DFDEF mod_status df_guider_config_parse(const char *text, df_guider *g) {
    const char *p = text ? text : "";
    df__kv kv;
    int r;
    mod_status s = MOD_OK;
    g->guidance_scale = 7.5;
    g->guidance_rescale = 0.0;
    while (s == MOD_OK && (r = df__next_kv(&p, &kv, "guider")) != 0) {
        if (r < 0) return MOD_ERR_ARGUMENT;
        if (!strcmp(kv.key, "guidance_scale")) {
            s = df__parse_double("guider", &kv, &g->guidance_scale);
        } else if (!strcmp(kv.key, "guidance_rescale")) {
            s = df__parse_double("guider", &kv, &g->guidance_rescale);
            if (s == MOD_OK && !(g->guidance_rescale >= 0.0 && g->guidance_rescale <= 1.0))
                s = mod_fail(NULL, MOD_ERR_ARGUMENT, "guider config: 'guidance_rescale' must be in [0, 1], got %s",
                             kv.value);
        } else {
            s = mod_fail(NULL, MOD_ERR_ARGUMENT, "guider config: unknown key '%s'; known keys: guidance_scale, guidance_rescale",
                         kv.key);
        }
    }
    return s;
}

static int df__guider_describe(const void *object, char *buf, size_t size) {
    const df_guider *g = (const df_guider *)object;
    return snprintf(buf, size, "ClassifierFreeGuidance(guidance_scale=%g, guidance_rescale=%g)", g->guidance_scale,
                    g->guidance_rescale);
}

static const mod_type df__guider_owned_type = {"ClassifierFreeGuidance", df__free_object, df__guider_describe};

/* ComponentSpec create function of the "guider" slot. */
DFDEF mod_status df_guider_create(const char *config, mod_value *out) {
    df_guider *g = (df_guider *)DF_MALLOC(sizeof *g);
    mod_status s;
    if (!g) return mod_fail(NULL, MOD_ERR_MEMORY, "out of memory");
    s = df_guider_config_parse(config, g);
    if (s == MOD_OK) s = mod_value_own_ptr(out, g, &df__guider_owned_type);
    if (s != MOD_OK) DF_FREE(g);
    return s;
}

/* Guidance on: two model calls per step (conditional and unconditional). */
DFDEF int df_guider_enabled(const df_guider *g) { return g && g->guidance_scale > 1.0; }

/* ClassifierFreeGuidance.forward: uncond + scale * (cond - uncond), then
   rescale_noise_cfg when guidance_rescale > 0: the guided prediction is
   scaled so its per-image standard deviation (torch's unbiased std over
   all dims but the batch) matches the conditional one's, and mixed with
   the unscaled one by guidance_rescale. Off: out = cond (the rescale of a
   lone conditional prediction changes nothing). */
DFDEF mod_status df_guider_apply(const df_guider *g, const mt_tensor *pred_cond, const mt_tensor *pred_uncond,
                                 mt_tensor *out) {
    mt_tensor shift = {MT_F32, 0, {0}, {0}, NULL, NULL}, pred = {MT_F32, 0, {0}, {0}, NULL, NULL};
    mt_status st = MT_OK;
    if (!df_guider_enabled(g)) {
        st = mt_clone(&pred, pred_cond);
    } else {
        if (!pred_uncond || !pred_uncond->data)
            return mod_fail(NULL, MOD_ERR_MISSING, "guidance is on but there is no unconditional prediction");
        st = mt_sub(&shift, pred_cond, pred_uncond);
        if (st == MT_OK) st = mt_axpby(&pred, 1.0f, pred_uncond, (float)g->guidance_scale, &shift);
    }
    if (st == MT_OK && df_guider_enabled(g) && g->guidance_rescale > 0.0) {
        /* std over every dim but the first, keepdim */
        mt_tensor a = {MT_F32, 0, {0}, {0}, NULL, NULL}, b = {MT_F32, 0, {0}, {0}, NULL, NULL};
        mt_tensor sa = {MT_F32, 0, {0}, {0}, NULL, NULL}, sb = {MT_F32, 0, {0}, {0}, NULL, NULL};
        mt_tensor ratio = {MT_F32, 0, {0}, {0}, NULL, NULL}, scaled = {MT_F32, 0, {0}, {0}, NULL, NULL};
        int64_t flat[2], keep[MT_MAX_DIMS];
        int k;
        flat[0] = pred.shape[0];
        flat[1] = -1;
        for (k = 0; k < pred.ndim; k++) keep[k] = k ? 1 : pred.shape[0];
        st = mt_view_reshape(&a, pred_cond, 2, flat);
        if (st == MT_OK) st = mt_view_reshape(&b, &pred, 2, flat);
        if (st == MT_OK) st = mt_std(&sa, &a, 1, 1, 1);
        if (st == MT_OK) st = mt_std(&sb, &b, 1, 1, 1);
        if (st == MT_OK) st = mt_div(&ratio, &sa, &sb);
        mt_release(&a);
        if (st == MT_OK) st = mt_view_reshape(&a, &ratio, pred.ndim, keep);
        if (st == MT_OK) st = mt_mul(&scaled, &pred, &a);
        if (st == MT_OK)
            st = mt_axpby(&pred, (float)g->guidance_rescale, &scaled, (float)(1.0 - g->guidance_rescale), &pred);
        mt_release(&a);
        mt_release(&b);
        mt_release(&sa);
        mt_release(&sb);
        mt_release(&ratio);
        mt_release(&scaled);
    }
    mt_release(&shift);
    if (st != MT_OK) {
        mt_release(&pred);
        return mod_fail(NULL, MOD_ERR_TENSOR, "guidance: %s", mt_last_error());
    }
    mt_move(out, &pred);
    return MOD_OK;
}

/* ------------------------------------------------------------------------
   Generators (diffusers' `generator`: one, or one per image)
   ------------------------------------------------------------------------ */

/* The type name of a user's generator passed as `generator`. */
static const mod_type df_generator_type = {"torch.Generator", NULL, NULL};

/* PyTorch's default seed: what an unseeded torch.randn draws from. */
#define DF_TORCH_DEFAULT_SEED 67280421310721ULL

typedef struct df_generators {
    int n;            /* 1: one stream over the whole batch; else one per image */
    mt_generator *g;  /* n generators (own, or the user's) */
    mt_generator *own;
} df_generators;

static void df__generators_destroy(void *p) {
    df_generators *gs = (df_generators *)p;
    if (!gs) return;
    DF_FREE(gs->own);
    DF_FREE(gs);
}

static int df__generators_describe(const void *object, char *buf, size_t size) {
    const df_generators *gs = (const df_generators *)object;
    return snprintf(buf, size, "[%d generator%s]", gs->n, gs->n == 1 ? "" : "s");
}

static const mod_type df_generators_type = {"df_generators", df__generators_destroy, df__generators_describe};

/* The generators of a call from the `generator` input (absent: PyTorch's
   default seed), for a batch of `batch` images, as an owned value. */
DFDEF mod_status df_generators_make(mod_value *out, const mod_value *generator, int64_t batch) {
    df_generators *gs = (df_generators *)DF_MALLOC(sizeof *gs);
    int64_t i, n = 1;
    mod_status s;
    if (!gs) return mod_fail(NULL, MOD_ERR_MEMORY, "out of memory");
    memset(gs, 0, sizeof *gs);
    if (generator && generator->kind == MOD_PTR) {
        mt_generator *user = (mt_generator *)mod_value_ptr(generator, df_generator_type.name);
        if (!user) {
            DF_FREE(gs);
            return mod_fail(NULL, MOD_ERR_KIND, "'generator' must be a seed, a list of seeds or a %s, got a %s",
                            df_generator_type.name, generator->type && generator->type->name ? generator->type->name : "object");
        }
        gs->n = 1;
        gs->g = user;
    } else {
        if (generator && generator->kind == MOD_LIST) {
            n = mod_list_len(generator);
            if (n != batch) {
                DF_FREE(gs);
                return mod_fail(NULL, MOD_ERR_ARGUMENT,
                                "You have passed a list of %lld seeds as 'generator', but requested an effective batch "
                                "size of %lld. Make sure the batch size matches the length of the generators.",
                                (long long)n, (long long)batch);
            }
        } else if (generator && mod_value_is_set(generator) && generator->kind != MOD_INT) {
            DF_FREE(gs);
            return mod_fail(NULL, MOD_ERR_KIND, "'generator' must be a seed (int), a list of seeds or a %s",
                            df_generator_type.name);
        } else if (generator && generator->kind == MOD_INT) {
            n = batch;
        }
        gs->own = (mt_generator *)DF_MALLOC((size_t)n * sizeof(mt_generator));
        if (!gs->own) {
            DF_FREE(gs);
            return mod_fail(NULL, MOD_ERR_MEMORY, "out of memory");
        }
        memset(gs->own, 0, (size_t)n * sizeof(mt_generator));
        for (i = 0; i < n; i++) {
            uint64_t seed = DF_TORCH_DEFAULT_SEED;
            if (generator && generator->kind == MOD_INT) seed = (uint64_t)(generator->i + i);
            if (generator && generator->kind == MOD_LIST) {
                const mod_value *item = mod_list_at(generator, i);
                if (!item || item->kind != MOD_INT) {
                    df__generators_destroy(gs);
                    return mod_fail(NULL, MOD_ERR_KIND, "'generator' list item %lld must be an int seed", (long long)i);
                }
                seed = (uint64_t)item->i;
            }
            mt_generator_seed(&gs->own[i], seed);
        }
        gs->n = (int)n;
        gs->g = gs->own;
    }
    s = mod_value_own_ptr(out, gs, &df_generators_type);
    if (s != MOD_OK) df__generators_destroy(gs);
    return s;
}

/* diffusers' randn_tensor(shape, generator): one generator draws the whole
   shape, a list draws batch item i from generator i. */
DFDEF mod_status df_randn(mt_tensor *out, df_generators *gs, int ndim, const int64_t *shape) {
    mt_status st;
    if (!gs) return mod_fail(NULL, MOD_ERR_MISSING, "no generator to draw noise from");
    if (gs->n == 1)
        st = mt_randn(out, gs->g, ndim, shape);
    else if (gs->n == shape[0])
        st = mt_randn_batch(out, gs->g, gs->n, ndim, shape);
    else
        return mod_fail(NULL, MOD_ERR_ARGUMENT,
                        "You have passed a list of %d generators, but requested an effective batch size of %lld.", gs->n,
                        (long long)shape[0]);
    return st == MT_OK ? MOD_OK : mod_fail(NULL, MOD_ERR_TENSOR, "%s", mt_last_error());
}

/* ------------------------------------------------------------------------
   The scheduler run state of one call
   ------------------------------------------------------------------------ */

static void df__sched_state_destroy(void *p) {
    mt_scheduler *s = (mt_scheduler *)p;
    if (!s) return;
    mt_scheduler_free(s);
    DF_FREE(s);
}

static int df__sched_state_describe(const void *object, char *buf, size_t size) {
    const mt_scheduler *s = (const mt_scheduler *)object;
    return snprintf(buf, size, "%s(num_inference_steps=%d, step_index=%d)", mt_scheduler_kind_name(s->config.kind),
                    s->num_inference_steps, s->step_index);
}

static const mod_type df_scheduler_state_type = {"mt_scheduler", df__sched_state_destroy, df__sched_state_describe};

/* A new run state from the shared config, with `steps` timesteps set. */
DFDEF mod_status df_scheduler_state_make(mod_value *out, const mt_scheduler_config *config, int steps) {
    mt_scheduler *s = (mt_scheduler *)DF_MALLOC(sizeof *s);
    mod_status r;
    if (!s) return mod_fail(NULL, MOD_ERR_MEMORY, "out of memory");
    memset(s, 0, sizeof *s);
    if (mt_scheduler_init(s, config) != MT_OK || mt_scheduler_set_timesteps(s, steps) != MT_OK) {
        r = mod_fail(NULL, MOD_ERR_TENSOR, "scheduler: %s", mt_last_error());
        df__sched_state_destroy(s);
        return r;
    }
    r = mod_value_own_ptr(out, s, &df_scheduler_state_type);
    if (r != MOD_OK) df__sched_state_destroy(s);
    return r;
}

/* ------------------------------------------------------------------------
   Small tensor helpers
   ------------------------------------------------------------------------ */

/* Batch of `x` made `batch` long: torch.cat([x] * k) (tile = 1) or
   x.repeat_interleave(k, 0) (tile = 0). A batch that does not divide is an
   error naming `what`. Shares `x` when nothing needs repeating. */
DFDEF mod_status df_batch_expand(mt_tensor *out, const mt_tensor *x, int64_t batch, int tile, const char *what) {
    int64_t k, reps[MT_MAX_DIMS];
    int d;
    mt_tensor tmp = {MT_F32, 0, {0}, {0}, NULL, NULL};
    mt_status st = MT_OK;
    if (x->ndim < 1 || x->shape[0] < 1 || batch % x->shape[0] != 0)
        return mod_fail(NULL, MOD_ERR_ARGUMENT,
                        "Cannot duplicate '%s' of batch size %lld to the effective batch size %lld", what,
                        (long long)(x->ndim ? x->shape[0] : 0), (long long)batch);
    k = batch / x->shape[0];
    if (k == 1) {
        mt_tensor same = {MT_F32, 0, {0}, {0}, NULL, NULL};
        mt_share(&same, x);
        mt_move(out, &same);
        return MOD_OK;
    }
    if (tile) {
        for (d = 0; d < x->ndim; d++) reps[d] = d ? 1 : k;
        st = mt_repeat(&tmp, x, x->ndim, reps);
    } else {
        /* [n, ...] -> [n, 1, ...] expanded to [n, k, ...] -> [n * k, ...] */
        mt_tensor u = {MT_F32, 0, {0}, {0}, NULL, NULL}, e = {MT_F32, 0, {0}, {0}, NULL, NULL};
        mt_tensor c = {MT_F32, 0, {0}, {0}, NULL, NULL};
        int64_t shape[MT_MAX_DIMS + 1];
        if (x->ndim + 1 > MT_MAX_DIMS) return mod_fail(NULL, MOD_ERR_ARGUMENT, "'%s' has too many dims", what);
        shape[0] = x->shape[0];
        shape[1] = k;
        for (d = 1; d < x->ndim; d++) shape[d + 1] = x->shape[d];
        st = mt_view_unsqueeze(&u, x, 1);
        if (st == MT_OK) st = mt_view_expand(&e, &u, x->ndim + 1, shape);
        if (st == MT_OK) st = mt_contiguous(&c, &e);
        shape[1] = x->shape[0] * k;
        if (st == MT_OK) st = mt_view_reshape(&tmp, &c, x->ndim, shape + 1);
        mt_release(&u);
        mt_release(&e);
        mt_release(&c);
    }
    if (st != MT_OK) return mod_fail(NULL, MOD_ERR_TENSOR, "%s", mt_last_error());
    mt_move(out, &tmp);
    return MOD_OK;
}

/* An image argument as a float32 [B, C, H, W] tensor in [0, 1]: a tensor
   ([C, H, W] gains the batch dim) or a file path (needs the image loader of
   modular_tensor.h). `channels` is 3 for images, 1 for masks. */
DFDEF mod_status df_image_arg(mt_tensor *out, const mod_value *v, int channels, const char *what) {
    mt_tensor t = {MT_F32, 0, {0}, {0}, NULL, NULL};
    const mt_tensor *src = mod_value_tensor(v);
    mt_status st = MT_OK;
    if (v && v->kind == MOD_STR) {
#ifdef MT_IMAGE_MAX_PIXELS
        if (mt_image_load(&t, (const char *)v->p, channels, MT_RANGE_UNIT) != MT_OK)
            return mod_fail(NULL, MOD_ERR_ARGUMENT, "'%s': %s", what, mt_last_error());
#else
        return mod_fail(NULL, MOD_ERR_ARGUMENT, "'%s': loading image files needs the files section of modular_tensor.h",
                        what);
#endif
    } else if (src) {
        if (src->dtype != MT_F32)
            st = mt_to_dtype(&t, src, MT_F32);
        else
            mt_share(&t, src);
        if (st == MT_OK && t.ndim == 3) {
            mt_tensor u = {MT_F32, 0, {0}, {0}, NULL, NULL};
            st = mt_view_unsqueeze(&u, &t, 0);
            mt_move(&t, &u);
        }
        if (st != MT_OK) {
            mt_release(&t);
            return mod_fail(NULL, MOD_ERR_TENSOR, "'%s': %s", what, mt_last_error());
        }
    } else {
        return mod_fail(NULL, MOD_ERR_KIND, "'%s' must be a tensor [B, C, H, W] in [0, 1] or an image file path", what);
    }
    if (t.ndim != 4 || t.shape[1] != channels) {
        char shape[96];
        mt_shape_string(&t, shape, sizeof shape);
        mt_release(&t);
        return mod_fail(NULL, MOD_ERR_ARGUMENT, "'%s' must have shape [B, %d, H, W], got %s", what, channels, shape);
    }
    mt_move(out, &t);
    return MOD_OK;
}

/* Resizes [B, C, H, W] to h x w (bilinear, or nearest) when it differs. */
static mod_status df__resize(mt_tensor *x, int64_t h, int64_t w, mt_interp_mode mode) {
    mt_tensor r = {MT_F32, 0, {0}, {0}, NULL, NULL};
    if (x->shape[2] == h && x->shape[3] == w) return MOD_OK;
    if (mt_interpolate(&r, x, h, w, mode, 0) != MT_OK) return mod_fail(NULL, MOD_ERR_TENSOR, "%s", mt_last_error());
    mt_move(x, &r);
    return MOD_OK;
}

/* VAE encode as diffusers' _encode_vae_image: images in [0, 1] are
   normalized to [-1, 1] (VaeImageProcessor), encoded, then multiplied by
   the VAE's scaling factor. */
DFDEF mod_status df_vae_encode(const df_vae *vae, const mt_tensor *images01, mt_tensor *latents) {
    mt_tensor x = {MT_F32, 0, {0}, {0}, NULL, NULL}, z = {MT_F32, 0, {0}, {0}, NULL, NULL};
    mod_status s;
    if (mt_mul_scalar(&x, images01, 2.0f) != MT_OK || mt_add_scalar(&x, &x, -1.0f) != MT_OK) {
        mt_release(&x);
        return mod_fail(NULL, MOD_ERR_TENSOR, "%s", mt_last_error());
    }
    s = vae->encode(vae->self, &x, &z);
    mt_release(&x);
    if (s != MOD_OK) {
        mt_release(&z);
        return s;
    }
    if (mt_mul_scalar(&z, &z, (float)vae->scaling_factor) != MT_OK) {
        mt_release(&z);
        return mod_fail(NULL, MOD_ERR_TENSOR, "%s", mt_last_error());
    }
    mt_move(latents, &z);
    return MOD_OK;
}

/* The denoiser step with guidance (StableDiffusionXLLoopDenoiser): the
   conditional prediction, then (guidance on) the unconditional one and
   the guider's combination. */
DFDEF mod_status df_guided_predict(const df_denoiser *unet, const df_guider *guider, const mt_tensor *sample, double t,
                                   const mt_tensor *embeds, const mt_tensor *negative_embeds, mt_tensor *noise_pred) {
    mt_tensor cond = {MT_F32, 0, {0}, {0}, NULL, NULL}, uncond = {MT_F32, 0, {0}, {0}, NULL, NULL};
    mod_status s = unet->predict(unet->self, sample, t, embeds, &cond);
    if (s == MOD_OK && df_guider_enabled(guider)) {
        if (!negative_embeds || !negative_embeds->data)
            s = mod_fail(NULL, MOD_ERR_MISSING, "guidance is on (guidance_scale %g) but 'negative_prompt_embeds' is missing",
                         guider->guidance_scale);
        else
            s = unet->predict(unet->self, sample, t, negative_embeds, &uncond);
        if (s == MOD_OK) s = df_guider_apply(guider, &cond, &uncond, noise_pred);
    } else if (s == MOD_OK) {
        mt_move(noise_pred, &cond);
    }
    mt_release(&cond);
    mt_release(&uncond);
    return s;
}

/* Seconds from an arbitrary origin (wall clock). */
DFDEF double df_now(void) {
#if DF__HAVE_POSIX
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
#else
    return 0.0;
#endif
}

/* The progress bar of the denoising loop on stderr: shown when stderr is a
   terminal (DF_PROGRESS=1 in the environment shows it anyway, 0 hides it). */
DFDEF int df_progress_wanted(void) {
    const char *e = getenv("DF_PROGRESS");
    if (e && *e) return *e != '0';
#if DF__HAVE_POSIX
    return isatty(2);
#else
    return 0;
#endif
}

DFDEF void df_progress_draw(const char *label, int64_t done, int64_t total, double seconds) {
    char bar[31];
    int i, fill = total > 0 ? (int)(30 * done / total) : 30;
    for (i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    fprintf(stderr, "\r%s [%s] %lld/%lld", label, bar, (long long)done, (long long)total);
    if (done > 0 && seconds > 0.0) fprintf(stderr, "  %.2f steps/s ", (double)done / seconds);
    if (done >= total) fputc('\n', stderr);
    fflush(stderr);
}


/* ========================================================================
   The blocks
   ======================================================================== */

#define DF__STR2(x) #x
#define DF__STR(x) DF__STR2(x)

/* A failed helper or component call: report its message for this block. */
#define DF__TRY(s, expr)                                                        \
    do {                                                                        \
        mod_status df__try_s = (expr);                                          \
        if (df__try_s != MOD_OK) return mod_fail((s)->mod, df__try_s, "%s", mod_last_error()); \
    } while (0)

/* The component / run-state objects behind PTR and VALUE fields. */
#define DF__TEXT_ENCODER(s) ((const df_text_encoder *)(s)->text_encoder)
#define DF__VAE(s) ((const df_vae *)(s)->vae)
#define DF__UNET(s) ((const df_denoiser *)(s)->unet)
#define DF__GUIDER(s) ((const df_guider *)(s)->guider)

static mod_status df__sched(mod_block_state *bs, const mod_value *v, mt_scheduler **out) {
    *out = (mt_scheduler *)mod_value_ptr(v, df_scheduler_state_type.name);
    if (!*out) return mod_fail(bs, MOD_ERR_KIND, "'scheduler_state' must be an %s made by the set_timesteps step",
                               df_scheduler_state_type.name);
    return MOD_OK;
}

static mod_status df__iter(mod_block_state *bs, const mod_iter **it) {
    *it = mod_block_state_iter(bs);
    if (!*it) return mod_fail(bs, MOD_ERR_ARGUMENT, "this block runs inside a denoising loop (it needs the step i and timestep t)");
    return MOD_OK;
}

/* The strings of a str or list-of-str argument (pointers into the value). */
static mod_status df__strings(const mod_value *v, const char *what, const char ***out, int64_t *n) {
    int64_t i, count = v->kind == MOD_LIST ? mod_list_len(v) : 1;
    const char **list;
    if (v->kind != MOD_STR && v->kind != MOD_LIST)
        return mod_fail(NULL, MOD_ERR_KIND, "'%s' must be a str or a list of str", what);
    if (count < 1) return mod_fail(NULL, MOD_ERR_ARGUMENT, "'%s' is an empty list", what);
    list = (const char **)DF_MALLOC((size_t)count * sizeof(char *));
    if (!list) return mod_fail(NULL, MOD_ERR_MEMORY, "out of memory");
    for (i = 0; i < count; i++) {
        const mod_value *item = v->kind == MOD_LIST ? mod_list_at(v, i) : v;
        if (!item || item->kind != MOD_STR) {
            DF_FREE(list);
            return mod_fail(NULL, MOD_ERR_KIND, "'%s' item %lld must be a str", what, (long long)i);
        }
        list[i] = (const char *)item->p;
    }
    *out = list;
    *n = count;
    return MOD_OK;
}

/* ---- text encoder step ----------------------------------------------- */

/* buf += sep + text, truncated to fit (always NUL-terminated). */
static void df__append(char *buf, size_t size, const char *sep, const char *text) {
    size_t n = strlen(buf);
    while (*sep && n + 1 < size) buf[n++] = *sep++;
    while (*text && n + 1 < size) buf[n++] = *text++;
    buf[n] = '\0';
}

#define DFTextEncoderStep_PARAMS(X, S)                                                                                     \
    X(S, INPUT_REQUIRED, VALUE, prompt, "str | List[str]", NONE, "The prompt or prompts to guide the image generation.")  \
    X(S, INPUT, VALUE, negative_prompt, "str | List[str]", NONE,                                                          \
      "The prompt or prompts not to guide the image generation (\"\" when not given). Used when guidance is on.")       \
    X(S, COMPONENT, PTR, text_encoder, "CLIPTextModel", CREATE(DF_DEFAULT_TEXT_ENCODER, DF_DEFAULT_TEXT_ENCODER_CONFIG), \
      "Encodes prompts into embeddings.")                                                                                 \
    X(S, COMPONENT, PTR, guider, "ClassifierFreeGuidance", CREATE(df_guider_create, DF_DEFAULT_GUIDER_CONFIG),           \
      "Classifier-free guidance: the negative embeddings are made only when it is on.")                                  \
    X(S, KW(OUTPUT, guider_input_fields), TENSOR, prompt_embeds, "Tensor", NONE,                                        \
      "text embeddings used to guide the image generation")                                                              \
    X(S, KW(OUTPUT, guider_input_fields), TENSOR, negative_prompt_embeds, "Tensor", NONE,                               \
      "negative text embeddings used to guide the image generation (None when guidance is off)")                        \
    X(S, OUTPUT, VALUE, unknown_words, "str", NONE,                                                                      \
      "words of the prompts that the text encoder does not know, comma separated (\"\" when none)")

MOD_BLOCK(DFTextEncoderStep, "Text Encoder step that generates text embeddings to guide the image generation") {
    const df_text_encoder *te = DF__TEXT_ENCODER(s);
    const char **prompts = NULL, **negs = NULL, **uncond = NULL;
    int64_t n = 0, nn = 0, i;
    char unknown[512], more[512];
    mod_status r;
    unknown[0] = more[0] = '\0';
    r = df__strings(&s->prompt, "prompt", &prompts, &n);
    if (r == MOD_OK) r = te->encode(te->self, prompts, (int)n, &s->prompt_embeds, unknown, sizeof unknown);
    if (r == MOD_OK && df_guider_enabled(DF__GUIDER(s))) {
        static const char *const empty = "";
        if (MOD_IS_SET(s, negative_prompt)) r = df__strings(&s->negative_prompt, "negative_prompt", &negs, &nn);
        if (r == MOD_OK && nn > 1 && nn != n)
            r = mod_fail(NULL, MOD_ERR_ARGUMENT,
                         "'negative_prompt' has batch size %lld, but 'prompt' has batch size %lld; they must match",
                         (long long)nn, (long long)n);
        if (r == MOD_OK && !(uncond = (const char **)DF_MALLOC((size_t)n * sizeof(char *))))
            r = mod_fail(NULL, MOD_ERR_MEMORY, "out of memory");
        for (i = 0; r == MOD_OK && i < n; i++) uncond[i] = nn == 0 ? empty : negs[nn == 1 ? 0 : i];
        if (r == MOD_OK)
            r = te->encode(te->self, uncond, (int)n, &s->negative_prompt_embeds, more, sizeof more);
        if (r == MOD_OK && more[0]) df__append(unknown, sizeof unknown, unknown[0] ? "," : "", more);
    } else if (r == MOD_OK) {
        MOD_SET_NONE(s, negative_prompt_embeds);
    }
    DF_FREE((void *)prompts);
    DF_FREE((void *)negs);
    DF_FREE((void *)uncond);
    if (r == MOD_OK) r = mod_value_set(&s->unknown_words, mod_str(unknown));
    if (r != MOD_OK) return mod_fail(s->mod, r, "%s", mod_last_error());
    return MOD_OK;
}

/* ---- input step ------------------------------------------------------ */

#define DFInputStep_PARAMS(X, S)                                                                                    \
    X(S, INPUT, INT, num_images_per_prompt, "int", DEF(1), "The number of images to generate per prompt.")          \
    X(S, KW(MODIFIED_REQUIRED, guider_input_fields), TENSOR, prompt_embeds, "Tensor", NONE,                         \
      "Pre-generated text embeddings. Can be generated from text_encoder step.")                                    \
    X(S, KW(MODIFIED, guider_input_fields), TENSOR, negative_prompt_embeds, "Tensor", NONE,                         \
      "Pre-generated negative text embeddings. Can be generated from text_encoder step.")                           \
    X(S, OUTPUT, INT, batch_size, "int", NONE,                                                                      \
      "Number of prompts, the final batch size of model inputs should be batch_size * num_images_per_prompt")

MOD_BLOCK(DFInputStep, "Input processing step that:\n"
                       "  1. Determines `batch_size` based on `prompt_embeds`\n"
                       "  2. Adjusts input tensor shapes based on `batch_size` (number of prompts) and "
                       "`num_images_per_prompt`\n\n"
                       "Every prompt's embeddings are repeated num_images_per_prompt times, so the model "
                       "inputs have a batch size of batch_size * num_images_per_prompt.") {
    int64_t n = s->num_images_per_prompt;
    if (n < 1) return mod_fail(s->mod, MOD_ERR_ARGUMENT, "'num_images_per_prompt' must be at least 1, got %lld", (long long)n);
    if (s->prompt_embeds.ndim != 3) {
        char shape[96];
        mt_shape_string(&s->prompt_embeds, shape, sizeof shape);
        return mod_fail(s->mod, MOD_ERR_ARGUMENT, "'prompt_embeds' must have shape [batch, seq_len, dim], got %s", shape);
    }
    if (MOD_IS_SET(s, negative_prompt_embeds) && !mt_same_shape(&s->prompt_embeds, &s->negative_prompt_embeds)) {
        char a[96], b[96];
        mt_shape_string(&s->prompt_embeds, a, sizeof a);
        mt_shape_string(&s->negative_prompt_embeds, b, sizeof b);
        return mod_fail(s->mod, MOD_ERR_ARGUMENT,
                        "`prompt_embeds` and `negative_prompt_embeds` must have the same shape when passed directly, "
                        "but got: `prompt_embeds` %s != `negative_prompt_embeds` %s.",
                        a, b);
    }
    s->batch_size = s->prompt_embeds.shape[0];
    if (n > 1) {
        DF__TRY(s, df_batch_expand(&s->prompt_embeds, &s->prompt_embeds, s->batch_size * n, 0, "prompt_embeds"));
        if (MOD_IS_SET(s, negative_prompt_embeds))
            DF__TRY(s, df_batch_expand(&s->negative_prompt_embeds, &s->negative_prompt_embeds, s->batch_size * n, 0,
                                       "negative_prompt_embeds"));
    }
    return MOD_OK;
}

/* ---- set timesteps --------------------------------------------------- */

#define DF__STEPS_ROW(X, S)                                                                                           \
    X(S, INPUT_OUTPUT, INT, num_inference_steps, "int", DEF(50),                                                      \
      "The number of denoising steps (as output: the number of steps that run).")
#define DF__SCHEDULER_ROW(X, S)                                                                                       \
    X(S, COMPONENT, PTR, scheduler, "SchedulerMixin", CREATE(df_scheduler_create, DF_DEFAULT_SCHEDULER_CONFIG),     \
      "The scheduler config; every call makes its own run state from it.")
#define DF__TIMESTEPS_OUT_ROWS(X, S)                                                                                  \
    X(S, OUTPUT, TENSOR, timesteps, "Tensor", NONE, "The timesteps to use for inference")                            \
    X(S, OUTPUT, VALUE, scheduler_state, "mt_scheduler", NONE,                                                        \
      "The scheduler run state of this call (timesteps set), stepped by the denoising loop")

#define DFSetTimestepsStep_PARAMS(X, S) DF__STEPS_ROW(X, S) DF__SCHEDULER_ROW(X, S) DF__TIMESTEPS_OUT_ROWS(X, S)

/* Makes the run state and the timesteps tensor from index `start` on. */
static mod_status df__set_timesteps(mod_block_state *bs, const void *scheduler, int64_t steps, double strength,
                                    int img2img, mod_value *state, mt_tensor *timesteps, int64_t *count, double *first) {
    mt_scheduler *sched;
    int t_start = 0, n;
    int64_t shape[1];
    if (steps < 1)
        return mod_fail(bs, MOD_ERR_ARGUMENT, "'num_inference_steps' must be at least 1, got %lld", (long long)steps);
    if (steps > 100000)
        return mod_fail(bs, MOD_ERR_ARGUMENT, "'num_inference_steps' %lld is too large", (long long)steps);
    if (img2img && !(strength >= 0.0 && strength <= 1.0))
        return mod_fail(bs, MOD_ERR_ARGUMENT, "'strength' must be in [0, 1], got %g", strength);
    if (df_scheduler_state_make(state, (const mt_scheduler_config *)scheduler, (int)steps) != MOD_OK)
        return mod_fail(bs, MOD_ERR_TENSOR, "%s", mod_last_error());
    sched = (mt_scheduler *)state->p;
    n = sched->num_inference_steps;
    if (img2img && mt_scheduler_img2img_timesteps(sched, strength, &t_start, &n) != MT_OK)
        return mod_fail(bs, MOD_ERR_TENSOR, "%s", mt_last_error());
    shape[0] = n;
    if (mt_from_data(timesteps, MT_F32, 1, shape, sched->timesteps + t_start) != MT_OK)
        return mod_fail(bs, MOD_ERR_TENSOR, "%s", mt_last_error());
    *count = n;
    if (first) *first = n > 0 ? (double)sched->timesteps[t_start] : 0.0;
    return MOD_OK;
}

MOD_BLOCK(DFSetTimestepsStep, "Step that sets the scheduler's timesteps for inference") {
    return df__set_timesteps(s->mod, s->scheduler, s->num_inference_steps, 1.0, 0, &s->scheduler_state, &s->timesteps,
                             &s->num_inference_steps, NULL);
}

#define DFImg2ImgSetTimestepsStep_PARAMS(X, S)                                                                     \
    DF__STEPS_ROW(X, S)                                                                                            \
    X(S, INPUT, FLOAT, strength, "float", DEF(0.3),                                                                \
      "How much to transform the reference image, in [0, 1]: the image is noised to the level of step "          \
      "int(num_inference_steps * strength) from the end, and only those steps run. 1 ignores the image.")         \
    DF__SCHEDULER_ROW(X, S)                                                                                        \
    DF__TIMESTEPS_OUT_ROWS(X, S)                                                                                   \
    X(S, OUTPUT, FLOAT, latent_timestep, "float", NONE,                                                            \
      "The timestep that represents the initial noise level for image-to-image generation (None when no step runs)")

MOD_BLOCK(DFImg2ImgSetTimestepsStep,
          "Step that sets the timesteps for the scheduler and determines the initial noise level (latent_timestep) "
          "for image-to-image/inpainting generation.\n"
          "The latent_timestep is calculated from the `strength` parameter - higher strength means starting from a "
          "noisier version of the input image.") {
    MOD_TRY(df__set_timesteps(s->mod, s->scheduler, s->num_inference_steps, s->strength, 1, &s->scheduler_state,
                              &s->timesteps, &s->num_inference_steps, &s->latent_timestep));
    if (s->num_inference_steps == 0) MOD_SET_NONE(s, latent_timestep);
    return MOD_OK;
}

/* ---- prepare latents ------------------------------------------------- */

/* One wording for both uses, since a pipeline's doc shows the first. */
#define DF__HEIGHT_DOC                                                                                                \
    "The height in pixels of the generated image; an input image is resized to it (default: the input image's, or " \
    DF__STR(DF_DEFAULT_SIZE) " without one)"
#define DF__WIDTH_DOC                                                                                                 \
    "The width in pixels of the generated image; an input image is resized to it (default: the input image's, or "  \
    DF__STR(DF_DEFAULT_SIZE) " without one)"
#define DF__IMAGE_SIZE_ROWS(X, S)                                                                                    \
    X(S, INPUT, INT, height, "int", NONE, DF__HEIGHT_DOC)                                                            \
    X(S, INPUT, INT, width, "int", NONE, DF__WIDTH_DOC)
#define DF__BATCH_ROWS(X, S)                                                                                          \
    X(S, INPUT, INT, num_images_per_prompt, "int", DEF(1), "The number of images to generate per prompt.")            \
    X(S, INPUT, VALUE, generator, "int | List[int] | torch.Generator", NONE,                                         \
      "A seed (image i draws from seed + i), one seed per image, or an mt_generator; PyTorch's default seed when "    \
      "not given")                                                                                                    \
    X(S, INTERMEDIATE_REQUIRED, INT, batch_size, "int", NONE,                                                         \
      "Number of prompts, the final batch size of model inputs should be batch_size * num_images_per_prompt. Can "    \
      "be generated in input step.")                                                                                  \
    X(S, INTERMEDIATE_REQUIRED, VALUE, scheduler_state, "mt_scheduler", NONE,                                         \
      "The scheduler run state. Can be generated in set_timesteps step.")
#define DF__LATENTS_IO_ROW(X, S)                                                                                      \
    X(S, INPUT_OUTPUT, TENSOR, latents, "Tensor", NONE,                                                               \
      "Pre-generated noisy latents (input); the initial latents to use for the denoising process (output)")
#define DF__GENERATORS_OUT_ROW(X, S)                                                                                  \
    X(S, OUTPUT, VALUE, generators, "df_generators", NONE,                                                            \
      "The random streams of this call, used again by the denoising loop")
#define DF__VAE_ROW(X, S)                                                                                             \
    X(S, COMPONENT, PTR, vae, "AutoencoderKL", CREATE(DF_DEFAULT_VAE, DF_DEFAULT_VAE_CONFIG),                       \
      "The VAE: its latent channels and downscale give the latent shape.")

#define DFPrepareLatentsStep_PARAMS(X, S)                                                                             \
    DF__IMAGE_SIZE_ROWS(X, S)                                                                                         \
    DF__LATENTS_IO_ROW(X, S)                                                                                          \
    DF__BATCH_ROWS(X, S)                                                                                              \
    DF__VAE_ROW(X, S)                                                                                                 \
    DF__GENERATORS_OUT_ROW(X, S)

static mod_status df__total_batch(mod_block_state *bs, int64_t batch_size, int64_t per_prompt, int64_t *out) {
    if (batch_size < 1) return mod_fail(bs, MOD_ERR_ARGUMENT, "'batch_size' must be at least 1, got %lld", (long long)batch_size);
    if (per_prompt < 1)
        return mod_fail(bs, MOD_ERR_ARGUMENT, "'num_images_per_prompt' must be at least 1, got %lld", (long long)per_prompt);
    *out = batch_size * per_prompt;
    return MOD_OK;
}

MOD_BLOCK(DFPrepareLatentsStep, "Prepare latents step that prepares the latents for the text-to-image generation process") {
    const df_vae *vae = DF__VAE(s);
    mt_scheduler *sched;
    int64_t batch = 0, h = MOD_IS_SET(s, height) ? s->height : DF_DEFAULT_SIZE;
    int64_t w = MOD_IS_SET(s, width) ? s->width : DF_DEFAULT_SIZE, shape[4];
    df_generators *gs;
    MOD_TRY(df__sched(s->mod, &s->scheduler_state, &sched));
    MOD_TRY(df__total_batch(s->mod, s->batch_size, s->num_images_per_prompt, &batch));
    if (h < 1 || w < 1 || h % vae->downscale || w % vae->downscale)
        return mod_fail(s->mod, MOD_ERR_ARGUMENT, "`height` and `width` have to be divisible by %d but are %lld and %lld.",
                        vae->downscale, (long long)h, (long long)w);
    DF__TRY(s, df_generators_make(&s->generators, &s->generator, batch));
    gs = (df_generators *)s->generators.p;
    shape[0] = batch;
    shape[1] = vae->latent_channels;
    shape[2] = h / vae->downscale;
    shape[3] = w / vae->downscale;
    if (!MOD_IS_SET(s, latents)) {
        DF__TRY(s, df_randn(&s->latents, gs, 4, shape));
    } else if (s->latents.ndim != 4 || s->latents.shape[0] != batch || s->latents.shape[1] != shape[1] ||
               s->latents.shape[2] != shape[2] || s->latents.shape[3] != shape[3]) {
        char got[96];
        mt_shape_string(&s->latents, got, sizeof got);
        return mod_fail(s->mod, MOD_ERR_ARGUMENT, "'latents' must have shape [%lld, %lld, %lld, %lld], got %s",
                        (long long)shape[0], (long long)shape[1], (long long)shape[2], (long long)shape[3], got);
    }
    /* scale the initial noise by the standard deviation required by the scheduler */
    MOD_TRY_MT(s->mod, mt_mul_scalar(&s->latents, &s->latents, sched->init_noise_sigma));
    return MOD_OK;
}

#define DFImg2ImgPrepareLatentsStep_PARAMS(X, S)                                                                    \
    DF__LATENTS_IO_ROW(X, S)                                                                                        \
    DF__BATCH_ROWS(X, S)                                                                                            \
    X(S, INTERMEDIATE, FLOAT, latent_timestep, "float", NONE,                                                       \
      "The timestep that represents the initial noise level for image-to-image/inpainting generation. Can be "      \
      "generated in set_timesteps step.")                                                                           \
    X(S, INTERMEDIATE_REQUIRED, TENSOR, image_latents, "Tensor", NONE,                                              \
      "The latents representing the reference image for image-to-image/inpainting generation. Can be generated "    \
      "in vae_encode step.")                                                                                        \
    DF__GENERATORS_OUT_ROW(X, S)

/* image_latents noised to the first timestep (or as they are when no step runs). */
static mod_status df__noised_image_latents(mod_block_state *bs, mt_scheduler *sched, df_generators *gs,
                                           const mt_tensor *image_latents, int has_t, double t, mt_tensor *noise,
                                           mt_tensor *out) {
    mt_tensor n = {MT_F32, 0, {0}, {0}, NULL, NULL}, x = {MT_F32, 0, {0}, {0}, NULL, NULL};
    if (df_randn(&n, gs, image_latents->ndim, image_latents->shape) != MOD_OK)
        return mod_fail(bs, MOD_ERR_TENSOR, "%s", mod_last_error());
    if (has_t) {
        if (mt_scheduler_add_noise(sched, &x, image_latents, &n, t) != MT_OK) {
            mt_release(&n);
            return mod_fail(bs, MOD_ERR_TENSOR, "%s", mt_last_error());
        }
    } else {
        mt_share(&x, image_latents);
    }
    if (noise)
        mt_move(noise, &n);
    else
        mt_release(&n);
    mt_move(out, &x);
    return MOD_OK;
}

MOD_BLOCK(DFImg2ImgPrepareLatentsStep, "Step that prepares the latents for the image-to-image generation process") {
    mt_scheduler *sched;
    mt_tensor init = {MT_F32, 0, {0}, {0}, NULL, NULL};
    int64_t batch = 0;
    mod_status r;
    MOD_TRY(df__sched(s->mod, &s->scheduler_state, &sched));
    MOD_TRY(df__total_batch(s->mod, s->batch_size, s->num_images_per_prompt, &batch));
    DF__TRY(s, df_generators_make(&s->generators, &s->generator, batch));
    if (MOD_IS_SET(s, latents)) return MOD_OK; /* given by the user: used as they are */
    DF__TRY(s, df_batch_expand(&init, &s->image_latents, batch, 1, "image_latents"));
    r = df__noised_image_latents(s->mod, sched, (df_generators *)s->generators.p, &init, MOD_IS_SET(s, latent_timestep),
                                 s->latent_timestep, NULL, &s->latents);
    mt_release(&init);
    return r;
}

#define DFInpaintPrepareLatentsStep_PARAMS(X, S)                                                                    \
    DF__LATENTS_IO_ROW(X, S)                                                                                        \
    X(S, INPUT, FLOAT, strength, "float", DEF(0.3),                                                                 \
      "How much to transform the masked part of the image, in [0, 1]; at 1 the latents start from pure noise.")    \
    DF__BATCH_ROWS(X, S)                                                                                            \
    X(S, INTERMEDIATE, FLOAT, latent_timestep, "float", NONE,                                                       \
      "The timestep that represents the initial noise level for image-to-image/inpainting generation. Can be "      \
      "generated in set_timesteps step.")                                                                           \
    X(S, MODIFIED_REQUIRED, TENSOR, image_latents, "Tensor", NONE,                                                  \
      "The latents representing the reference image (repeated to the batch). Can be generated in vae_encode step.") \
    X(S, MODIFIED_REQUIRED, TENSOR, mask, "Tensor", NONE,                                                           \
      "The latent-resolution mask, 1 where to repaint (repeated to the batch). Can be generated in vae_encode step.") \
    X(S, MODIFIED, TENSOR, masked_image_latents, "Tensor", NONE,                                                    \
      "The masked image latents (repeated to the batch), for inpainting-specific denoisers. Can be generated in "   \
      "vae_encode step.")                                                                                           \
    X(S, OUTPUT, TENSOR, noise, "Tensor", NONE, "The noise added to the image latents, used for inpainting generation") \
    DF__GENERATORS_OUT_ROW(X, S)

MOD_BLOCK(DFInpaintPrepareLatentsStep, "Step that prepares the latents for the inpainting process") {
    mt_scheduler *sched;
    df_generators *gs;
    int64_t batch = 0;
    int strength_max = s->strength == 1.0;
    MOD_TRY(df__sched(s->mod, &s->scheduler_state, &sched));
    MOD_TRY(df__total_batch(s->mod, s->batch_size, s->num_images_per_prompt, &batch));
    DF__TRY(s, df_generators_make(&s->generators, &s->generator, batch));
    gs = (df_generators *)s->generators.p;
    DF__TRY(s, df_batch_expand(&s->image_latents, &s->image_latents, batch, 1, "image_latents"));
    DF__TRY(s, df_batch_expand(&s->mask, &s->mask, batch, 1, "mask"));
    if (MOD_IS_SET(s, masked_image_latents))
        DF__TRY(s, df_batch_expand(&s->masked_image_latents, &s->masked_image_latents, batch, 1, "masked_image_latents"));
    if (MOD_IS_SET(s, latents)) {
        /* user latents are the noise */
        mt_move(&s->noise, &s->latents);
        MOD_TRY_MT(s->mod, mt_mul_scalar(&s->latents, &s->noise, sched->init_noise_sigma));
    } else if (strength_max) {
        /* strength 1: pure noise scaled by the scheduler's init sigma */
        DF__TRY(s, df_randn(&s->noise, gs, s->image_latents.ndim, s->image_latents.shape));
        MOD_TRY_MT(s->mod, mt_mul_scalar(&s->latents, &s->noise, sched->init_noise_sigma));
    } else {
        MOD_TRY(df__noised_image_latents(s->mod, sched, gs, &s->image_latents, MOD_IS_SET(s, latent_timestep),
                                         s->latent_timestep, &s->noise, &s->latents));
    }
    return MOD_OK;
}

/* ---- VAE encoder steps ----------------------------------------------- */

#define DF__IMAGE_ROW(X, S)                                                                                          \
    X(S, INPUT_REQUIRED, VALUE, image, "Tensor | str", NONE,                                                          \
      "The image to start from: a tensor [B, 3, H, W] (or [3, H, W]) in [0, 1], or a PNG / JPEG file path")
#define DF__IMAGE_LATENTS_OUT_ROW(X, S)                                                                              \
    X(S, OUTPUT, TENSOR, image_latents, "Tensor", NONE, "The latents representation of the input image")

/* The image input, resized to height x width, checked against the VAE. */
static mod_status df__prepare_image(mod_block_state *bs, const df_vae *vae, const mod_value *image, int has_h, int64_t h,
                                    int has_w, int64_t w, mt_tensor *out) {
    if (df_image_arg(out, image, 3, "image") != MOD_OK) return mod_fail(bs, MOD_ERR_ARGUMENT, "%s", mod_last_error());
    if (!has_h) h = out->shape[2];
    if (!has_w) w = out->shape[3];
    if (h < 1 || w < 1 || h % vae->downscale || w % vae->downscale)
        return mod_fail(bs, MOD_ERR_ARGUMENT, "`height` and `width` have to be divisible by %d but are %lld and %lld.",
                        vae->downscale, (long long)h, (long long)w);
    if (df__resize(out, h, w, MT_INTERP_BILINEAR) != MOD_OK) return mod_fail(bs, MOD_ERR_TENSOR, "%s", mod_last_error());
    return MOD_OK;
}

#define DFVaeEncoderStep_PARAMS(X, S) DF__IMAGE_ROW(X, S) DF__IMAGE_SIZE_ROWS(X, S) DF__VAE_ROW(X, S) DF__IMAGE_LATENTS_OUT_ROW(X, S)

MOD_BLOCK(DFVaeEncoderStep, "Vae Encoder step that encode the input image into a latent representation") {
    mt_tensor img = {MT_F32, 0, {0}, {0}, NULL, NULL};
    mod_status r = df__prepare_image(s->mod, DF__VAE(s), &s->image, MOD_IS_SET(s, height), s->height,
                                     MOD_IS_SET(s, width), s->width, &img);
    if (r == MOD_OK && df_vae_encode(DF__VAE(s), &img, &s->image_latents) != MOD_OK)
        r = mod_fail(s->mod, MOD_ERR_BLOCK, "%s", mod_last_error());
    mt_release(&img);
    return r;
}

#define DFInpaintVaeEncoderStep_PARAMS(X, S)                                                                          \
    DF__IMAGE_SIZE_ROWS(X, S)                                                                                         \
    DF__IMAGE_ROW(X, S)                                                                                               \
    X(S, INPUT_REQUIRED, VALUE, mask_image, "Tensor | str", NONE,                                                     \
      "Where to repaint: a tensor [B, 1, H, W] (or [1, H, W]) in [0, 1] or a grayscale image file; white (>= 0.5) "   \
      "is repainted, black is kept")                                                                                  \
    DF__VAE_ROW(X, S)                                                                                                 \
    DF__IMAGE_LATENTS_OUT_ROW(X, S)                                                                                   \
    X(S, OUTPUT, TENSOR, mask, "Tensor", NONE, "The mask to use for the inpainting process (latent resolution, 0 or 1)") \
    X(S, OUTPUT, TENSOR, masked_image_latents, "Tensor", NONE,                                                        \
      "The masked image latents to use for the inpainting process (only for inpainting-specific denoisers)")

/* mask >= 0.5 -> 1, else 0 (VaeImageProcessor's binarize), in place on a copy. */
static mod_status df__binarize(mt_tensor *m) {
    mt_tensor c = {MT_F32, 0, {0}, {0}, NULL, NULL};
    int64_t i, n;
    float *p;
    if (mt_clone(&c, m) != MT_OK) return mod_fail(NULL, MOD_ERR_TENSOR, "%s", mt_last_error());
    n = mt_numel(&c);
    p = mt_f32(&c);
    for (i = 0; i < n; i++) p[i] = p[i] < 0.5f ? 0.0f : 1.0f;
    mt_move(m, &c);
    return MOD_OK;
}

MOD_BLOCK(DFInpaintVaeEncoderStep, "Vae encoder step that prepares the image and mask for the inpainting process") {
    const df_vae *vae = DF__VAE(s);
    mt_tensor img = {MT_F32, 0, {0}, {0}, NULL, NULL}, m = {MT_F32, 0, {0}, {0}, NULL, NULL};
    mt_tensor keep = {MT_F32, 0, {0}, {0}, NULL, NULL}, masked = {MT_F32, 0, {0}, {0}, NULL, NULL};
    mod_status r = df__prepare_image(s->mod, vae, &s->image, MOD_IS_SET(s, height), s->height, MOD_IS_SET(s, width),
                                     s->width, &img);
    if (r == MOD_OK && df_image_arg(&m, &s->mask_image, 1, "mask_image") != MOD_OK)
        r = mod_fail(s->mod, MOD_ERR_ARGUMENT, "%s", mod_last_error());
    if (r == MOD_OK && m.shape[0] != img.shape[0] && m.shape[0] != 1)
        r = mod_fail(s->mod, MOD_ERR_ARGUMENT, "'mask_image' has batch size %lld but 'image' has %lld", (long long)m.shape[0],
                     (long long)img.shape[0]);
    /* mask_processor: resize to the image, binarize */
    if (r == MOD_OK && (df__resize(&m, img.shape[2], img.shape[3], MT_INTERP_BILINEAR) != MOD_OK || df__binarize(&m) != MOD_OK))
        r = mod_fail(s->mod, MOD_ERR_TENSOR, "%s", mod_last_error());
    /* masked_image = image * (mask < 0.5) */
    if (r == MOD_OK && (mt_mul_scalar(&keep, &m, -1.0f) != MT_OK || mt_add_scalar(&keep, &keep, 1.0f) != MT_OK ||
                        mt_mul(&masked, &img, &keep) != MT_OK))
        r = mod_fail(s->mod, MOD_ERR_TENSOR, "%s", mt_last_error());
    if (r == MOD_OK && (df_vae_encode(vae, &img, &s->image_latents) != MOD_OK ||
                        df_vae_encode(vae, &masked, &s->masked_image_latents) != MOD_OK))
        r = mod_fail(s->mod, MOD_ERR_BLOCK, "%s", mod_last_error());
    /* prepare_mask_latents: the mask at latent resolution (nearest) */
    if (r == MOD_OK) {
        mt_share(&s->mask, &m);
        if (df__resize(&s->mask, img.shape[2] / vae->downscale, img.shape[3] / vae->downscale, MT_INTERP_NEAREST) != MOD_OK)
            r = mod_fail(s->mod, MOD_ERR_TENSOR, "%s", mod_last_error());
    }
    mt_release(&img);
    mt_release(&m);
    mt_release(&keep);
    mt_release(&masked);
    return r;
}

/* ---- the denoising loop: body blocks --------------------------------- */

#define DF__SCHED_STATE_ROW(X, S)                                                                                     \
    X(S, INTERMEDIATE_REQUIRED, VALUE, scheduler_state, "mt_scheduler", NONE,                                         \
      "The scheduler run state. Can be generated in set_timesteps step.")
#define DF__UNET_ROW(X, S)                                                                                            \
    X(S, COMPONENT, PTR, unet, "UNet2DConditionModel", CREATE(DF_DEFAULT_UNET, DF_DEFAULT_UNET_CONFIG),             \
      "The denoiser: predicts the noise (or v) of the latents.")
#define DF__GUIDER_ROW(X, S)                                                                                          \
    X(S, COMPONENT, PTR, guider, "ClassifierFreeGuidance", CREATE(df_guider_create, DF_DEFAULT_GUIDER_CONFIG),       \
      "Classifier-free guidance: one model call per step when off, two when on.")

#define DFLoopBeforeDenoiser_PARAMS(X, S)                                                                             \
    X(S, INTERMEDIATE_REQUIRED, TENSOR, latents, "Tensor", NONE,                                                      \
      "The initial latents to use for the denoising process. Can be generated in prepare_latent step.")              \
    DF__SCHED_STATE_ROW(X, S)                                                                                         \
    X(S, OUTPUT, TENSOR, scaled_latents, "Tensor", NONE, "The latents scaled for the denoiser (scale_model_input)")

MOD_BLOCK(DFLoopBeforeDenoiser, "step within the denoising loop that prepare the latent input for the denoiser. This "
                                "block should be used to compose the `sub_blocks` attribute of a "
                                "`LoopSequentialPipelineBlocks` object (e.g. `DFDenoiseStep`)") {
    const mod_iter *it;
    mt_scheduler *sched;
    MOD_TRY(df__iter(s->mod, &it));
    MOD_TRY(df__sched(s->mod, &s->scheduler_state, &sched));
    MOD_TRY_MT(s->mod, mt_scheduler_scale_model_input(sched, &s->scaled_latents, &s->latents, it->t));
    return MOD_OK;
}

#define DFInpaintLoopBeforeDenoiser_PARAMS(X, S)                                                                      \
    X(S, INTERMEDIATE_REQUIRED, TENSOR, latents, "Tensor", NONE,                                                      \
      "The initial latents to use for the denoising process. Can be generated in prepare_latent step.")              \
    X(S, INTERMEDIATE, TENSOR, mask, "Tensor", NONE,                                                                  \
      "The mask to use for the denoising process, for inpainting task only. Can be generated in vae_encode or "      \
      "prepare_latent step.")                                                                                         \
    X(S, INTERMEDIATE, TENSOR, masked_image_latents, "Tensor", NONE,                                                  \
      "The masked image latents to use for the denoising process, for inpainting task only. Can be generated in "    \
      "vae_encode or prepare_latent step.")                                                                           \
    DF__SCHED_STATE_ROW(X, S)                                                                                         \
    DF__UNET_ROW(X, S)                                                                                                \
    X(S, OUTPUT, TENSOR, scaled_latents, "Tensor", NONE,                                                              \
      "The latents scaled for the denoiser, with the mask and masked image latents for 9-channel denoisers")

MOD_BLOCK(DFInpaintLoopBeforeDenoiser,
          "step within the denoising loop that prepare the latent input for the denoiser (for inpainting workflow "
          "only). This block should be used to compose the `sub_blocks` attribute of a "
          "`LoopSequentialPipelineBlocks` object") {
    const df_denoiser *unet = DF__UNET(s);
    const mod_iter *it;
    mt_scheduler *sched;
    int64_t c = s->latents.shape[1];
    MOD_TRY(df__iter(s->mod, &it));
    MOD_TRY(df__sched(s->mod, &s->scheduler_state, &sched));
    MOD_TRY_MT(s->mod, mt_scheduler_scale_model_input(sched, &s->scaled_latents, &s->latents, it->t));
    if (unet->in_channels == c) return MOD_OK;
    if (!MOD_IS_SET(s, mask) || !MOD_IS_SET(s, masked_image_latents))
        return mod_fail(s->mod, MOD_ERR_MISSING,
                        "mask and masked_image_latents must be provided for an inpainting-specific denoiser (%d input "
                        "channels)",
                        unet->in_channels);
    if (c + s->mask.shape[1] + s->masked_image_latents.shape[1] != unet->in_channels)
        return mod_fail(s->mod, MOD_ERR_ARGUMENT,
                        "the denoiser expects %d input channels but received `num_channels_latents`: %lld + "
                        "`num_channels_mask`: %lld + `num_channels_masked_image`: %lld",
                        unet->in_channels, (long long)c, (long long)s->mask.shape[1],
                        (long long)s->masked_image_latents.shape[1]);
    {
        const mt_tensor *parts[3];
        mt_tensor cat = {MT_F32, 0, {0}, {0}, NULL, NULL};
        parts[0] = &s->scaled_latents;
        parts[1] = &s->mask;
        parts[2] = &s->masked_image_latents;
        MOD_TRY_MT(s->mod, mt_cat(&cat, parts, 3, 1));
        mt_move(&s->scaled_latents, &cat);
    }
    return MOD_OK;
}

#define DFLoopDenoiser_PARAMS(X, S)                                                                                    \
    DF__GUIDER_ROW(X, S)                                                                                               \
    DF__UNET_ROW(X, S)                                                                                                 \
    X(S, INTERMEDIATE_REQUIRED, TENSOR, scaled_latents, "Tensor", NONE,                                                \
      "The latents input of the denoiser. Can be generated in the before_denoiser step.")                              \
    X(S, KW(INTERMEDIATE_REQUIRED, guider_input_fields), TENSOR, prompt_embeds, "Tensor", NONE,                        \
      "text embeddings (the conditional batch of the guider). Can be generated in text_encoder step.")                \
    X(S, KW(INTERMEDIATE, guider_input_fields), TENSOR, negative_prompt_embeds, "Tensor", NONE,                        \
      "negative text embeddings (the unconditional batch of the guider). Can be generated in text_encoder step.")     \
    X(S, INTERMEDIATE, VALUE, scheduler_state, "mt_scheduler", NONE,                                                   \
      "The scheduler run state, to check that its prediction_type is what the denoiser predicts.")                    \
    X(S, OUTPUT, TENSOR, noise_pred, "Tensor", NONE, "The guided prediction of the denoiser")

MOD_BLOCK(DFLoopDenoiser, "Step within the denoising loop that denoise the latents with guidance. This block should be "
                          "used to compose the `sub_blocks` attribute of a `LoopSequentialPipelineBlocks` object (e.g. "
                          "`DFDenoiseStep`)") {
    const df_denoiser *unet = DF__UNET(s);
    const mod_iter *it;
    MOD_TRY(df__iter(s->mod, &it));
    if (MOD_IS_SET(s, scheduler_state) && unet->prediction_type) {
        mt_scheduler *sched;
        MOD_TRY(df__sched(s->mod, &s->scheduler_state, &sched));
        if (sched->config.prediction_type && strcmp(sched->config.prediction_type, unet->prediction_type) != 0)
            return mod_fail(s->mod, MOD_ERR_ARGUMENT,
                            "the scheduler's prediction_type is '%s' but the denoiser predicts '%s'; configure the "
                            "scheduler with prediction_type=%s",
                            sched->config.prediction_type, unet->prediction_type, unet->prediction_type);
    }
    DF__TRY(s, df_guided_predict(unet, DF__GUIDER(s), &s->scaled_latents, it->t, &s->prompt_embeds,
                                 MOD_IS_SET(s, negative_prompt_embeds) ? &s->negative_prompt_embeds : NULL,
                                 &s->noise_pred));
    return MOD_OK;
}

#define DF__AFTER_COMMON_ROWS(X, S)                                                                                   \
    X(S, INPUT, FLOAT, eta, "float", DEF(0.0), "DDIM's eta: the weight of the noise added at each step (0: none)")  \
    X(S, INTERMEDIATE, VALUE, generators, "df_generators", NONE,                                                      \
      "The random streams of this call (for schedulers that add noise). Can be generated in prepare_latents step.")  \
    X(S, INTERMEDIATE_REQUIRED, TENSOR, noise_pred, "Tensor", NONE,                                                   \
      "The prediction of the denoiser. Can be generated in the denoiser step.")                                      \
    DF__SCHED_STATE_ROW(X, S)                                                                                         \
    X(S, MODIFIED_REQUIRED, TENSOR, latents, "Tensor", NONE, "The denoised latents")

/* scheduler.step(noise_pred, t, latents, generator=..., eta=...) on the
   run state and generators of a call (the values of the `scheduler_state`
   and `generators` intermediates): *latents becomes the new latents. */
DFDEF mod_status df_scheduler_step(const mod_value *scheduler_state, const mod_value *generators, double eta,
                                   const mt_tensor *noise_pred, double t, mt_tensor *latents) {
    mt_scheduler *sched = (mt_scheduler *)mod_value_ptr(scheduler_state, df_scheduler_state_type.name);
    df_generators *gs = (df_generators *)mod_value_ptr(generators, df_generators_type.name);
    mt_tensor next = {MT_F32, 0, {0}, {0}, NULL, NULL};
    if (!sched)
        return mod_fail(NULL, MOD_ERR_KIND, "'scheduler_state' must be an %s made by the set_timesteps step",
                        df_scheduler_state_type.name);
    sched->eta = eta;
    if (mt_scheduler_step(sched, &next, noise_pred, t, latents, gs ? gs->g : NULL, gs ? gs->n : 0) != MT_OK)
        return mod_fail(NULL, MOD_ERR_TENSOR, "%s%s", mt_last_error(),
                        gs ? "" : " (no 'generators' in the state: the prepare_latents step makes them)");
    mt_move(latents, &next);
    return MOD_OK;
}

#define DFLoopAfterDenoiser_PARAMS(X, S) DF__AFTER_COMMON_ROWS(X, S)

MOD_BLOCK(DFLoopAfterDenoiser, "step within the denoising loop that update the latents. This block should be used to "
                               "compose the `sub_blocks` attribute of a `LoopSequentialPipelineBlocks` object (e.g. "
                               "`DFDenoiseStep`)") {
    const mod_iter *it;
    MOD_TRY(df__iter(s->mod, &it));
    DF__TRY(s, df_scheduler_step(&s->scheduler_state, &s->generators, s->eta, &s->noise_pred, it->t, &s->latents));
    return MOD_OK;
}

#define DFInpaintLoopAfterDenoiser_PARAMS(X, S)                                                                       \
    DF__AFTER_COMMON_ROWS(X, S)                                                                                       \
    X(S, INTERMEDIATE_REQUIRED, TENSOR, timesteps, "Tensor", NONE,                                                    \
      "The timesteps to use for the denoising process. Can be generated in set_timesteps step.")                     \
    X(S, INTERMEDIATE, TENSOR, mask, "Tensor", NONE,                                                                  \
      "The mask to use for the denoising process, for inpainting task only. Can be generated in vae_encode or "      \
      "prepare_latent step.")                                                                                         \
    X(S, INTERMEDIATE, TENSOR, noise, "Tensor", NONE,                                                                 \
      "The noise added to the image latents, for inpainting task only. Can be generated in prepare_latent step.")    \
    X(S, INTERMEDIATE, TENSOR, image_latents, "Tensor", NONE,                                                         \
      "The image latents to use for the denoising process, for inpainting/image-to-image task only. Can be "         \
      "generated in vae_encode or prepare_latent step.")                                                              \
    DF__UNET_ROW(X, S)

MOD_BLOCK(DFInpaintLoopAfterDenoiser,
          "step within the denoising loop that update the latents (for inpainting workflow only). This block should "
          "be used to compose the `sub_blocks` attribute of a `LoopSequentialPipelineBlocks` object") {
    const mod_iter *it;
    mt_scheduler *sched;
    mt_tensor proper = {MT_F32, 0, {0}, {0}, NULL, NULL}, keep = {MT_F32, 0, {0}, {0}, NULL, NULL};
    mt_tensor a = {MT_F32, 0, {0}, {0}, NULL, NULL}, b = {MT_F32, 0, {0}, {0}, NULL, NULL};
    int64_t n = s->timesteps.shape[0];
    mt_status st = MT_OK;
    MOD_TRY(df__iter(s->mod, &it));
    DF__TRY(s, df_scheduler_step(&s->scheduler_state, &s->generators, s->eta, &s->noise_pred, it->t, &s->latents));
    if (DF__UNET(s)->in_channels != s->latents.shape[1]) return MOD_OK; /* an inpainting denoiser sees the mask itself */
    if (!MOD_IS_SET(s, image_latents) || !MOD_IS_SET(s, mask) || !MOD_IS_SET(s, noise))
        return mod_fail(s->mod, MOD_ERR_MISSING, "image_latents, mask and noise are required for this step (%s missing)",
                        !MOD_IS_SET(s, image_latents) ? "image_latents" : !MOD_IS_SET(s, mask) ? "mask" : "noise");
    MOD_TRY(df__sched(s->mod, &s->scheduler_state, &sched));
    /* the known region follows the original latents, noised to the next step */
    if (it->i < n - 1)
        st = mt_scheduler_add_noise(sched, &proper, &s->image_latents, &s->noise, (double)mt_f32(&s->timesteps)[it->i + 1]);
    else
        mt_share(&proper, &s->image_latents);
    /* latents = (1 - mask) * init_latents_proper + mask * latents */
    if (st == MT_OK) st = mt_mul_scalar(&keep, &s->mask, -1.0f);
    if (st == MT_OK) st = mt_add_scalar(&keep, &keep, 1.0f);
    if (st == MT_OK) st = mt_mul(&a, &keep, &proper);
    if (st == MT_OK) st = mt_mul(&b, &s->mask, &s->latents);
    if (st == MT_OK) {
        mt_release(&s->latents);
        st = mt_add(&s->latents, &a, &b);
    }
    mt_release(&proper);
    mt_release(&keep);
    mt_release(&a);
    mt_release(&b);
    if (st != MT_OK) return mod_fail(s->mod, MOD_ERR_TENSOR, "%s", mt_last_error());
    return MOD_OK;
}

/* ---- the denoising loop: wrappers ------------------------------------ */

#define DF__LOOP_PARAMS(X, S)                                                                                         \
    X(S, INTERMEDIATE_REQUIRED, TENSOR, timesteps, "Tensor", NONE,                                                    \
      "The timesteps to use for the denoising process. Can be generated in set_timesteps step.")                     \
    X(S, INTERMEDIATE_REQUIRED, INT, num_inference_steps, "int", NONE,                                                \
      "The number of inference steps to use for the denoising process. Can be generated in set_timesteps step.")     \
    X(S, INPUT, BOOL, progress_bar, "bool", DEF(1),                                                                   \
      "Show a progress bar on stderr (steps done, steps per second) when stderr is a terminal")

/* LoopSequentialPipelineBlocks.__call__: loop_step for every timestep. */
static mod_status df__denoise_loop(mod_block_state *bs, const mt_tensor *timesteps, int progress) {
    int64_t i, n = timesteps->shape[0];
    double t0 = df_now();
    int show = progress && df_progress_wanted() && n > 0;
    if (timesteps->ndim != 1 || timesteps->dtype != MT_F32)
        return mod_fail(bs, MOD_ERR_ARGUMENT, "'timesteps' must be a 1-d float32 tensor");
    if (show) df_progress_draw("denoise", 0, n, 0.0);
    for (i = 0; i < n; i++) {
        mod_iter it;
        it.i = i;
        it.t = (double)mt_f32(timesteps)[i]; /* re-read: the wrapper's fields are gathered again by each step */
        it.user = NULL;
        MOD_TRY(mod_loop_step(bs, &it));
        if (show) df_progress_draw("denoise", i + 1, n, df_now() - t0);
    }
    return MOD_OK;
}

#define DFDenoiseStep_PARAMS(X, S) DF__LOOP_PARAMS(X, S)
MOD_LOOP(DFDenoiseStep, "Denoise step that iteratively denoise the latents. \n"
                        "At each iteration, it runs blocks defined in `sub_blocks` sequencially:\n"
                        " - `DFLoopBeforeDenoiser`\n"
                        " - `DFLoopDenoiser`\n"
                        " - `DFLoopAfterDenoiser`\n"
                        "This block supports both text2img and img2img tasks.") {
    return df__denoise_loop(s->mod, &s->timesteps, s->progress_bar);
}

#define DFInpaintDenoiseStep_PARAMS(X, S) DF__LOOP_PARAMS(X, S)
MOD_LOOP(DFInpaintDenoiseStep, "Denoise step that iteratively denoise the latents(for inpainting task only). \n"
                               "At each iteration, it runs blocks defined in `sub_blocks` sequencially:\n"
                               " - `DFInpaintLoopBeforeDenoiser`\n"
                               " - `DFLoopDenoiser`\n"
                               " - `DFInpaintLoopAfterDenoiser`\n"
                               "This block only supports inpainting tasks.") {
    return df__denoise_loop(s->mod, &s->timesteps, s->progress_bar);
}

/* ---- decode and output ----------------------------------------------- */

#define DFDecodeStep_PARAMS(X, S)                                                                                     \
    X(S, INPUT, STR, output_type, "str", DEF("pt"),                                                                   \
      "\"pt\": images as a tensor [B, 3, H, W] in [0, 1]; \"latent\": the latents, not decoded")                    \
    X(S, INTERMEDIATE_REQUIRED, TENSOR, latents, "Tensor", NONE, "The denoised latents from the denoising step")     \
    DF__VAE_ROW(X, S)                                                                                                 \
    X(S, OUTPUT, TENSOR, images, "Tensor", NONE, "The generated images")

/* vae.decode(latents / scaling_factor), then (image / 2 + 0.5).clamp(0, 1). */
DFDEF mod_status df_vae_decode(const df_vae *vae, const mt_tensor *latents, mt_tensor *images01) {
    mt_tensor z = {MT_F32, 0, {0}, {0}, NULL, NULL}, x = {MT_F32, 0, {0}, {0}, NULL, NULL};
    mod_status s;
    if (mt_div_scalar(&z, latents, (float)vae->scaling_factor) != MT_OK)
        return mod_fail(NULL, MOD_ERR_TENSOR, "%s", mt_last_error());
    s = vae->decode(vae->self, &z, &x);
    mt_release(&z);
    if (s == MOD_OK && (mt_div_scalar(&x, &x, 2.0f) != MT_OK || mt_add_scalar(&x, &x, 0.5f) != MT_OK ||
                        mt_clamp(&x, &x, 0.0f, 1.0f) != MT_OK))
        s = mod_fail(NULL, MOD_ERR_TENSOR, "%s", mt_last_error());
    if (s == MOD_OK)
        mt_move(images01, &x);
    else
        mt_release(&x);
    return s;
}

MOD_BLOCK(DFDecodeStep, "Step that decodes the denoised latents into images") {
    if (!strcmp(s->output_type, "latent")) {
        mt_share(&s->images, &s->latents);
        return MOD_OK;
    }
    if (strcmp(s->output_type, "pt") != 0)
        return mod_fail(s->mod, MOD_ERR_ARGUMENT, "'output_type' must be \"pt\" or \"latent\", got \"%s\"", s->output_type);
    DF__TRY(s, df_vae_decode(DF__VAE(s), &s->latents, &s->images));
    return MOD_OK;
}

#define DFImageOutputStep_PARAMS(X, S)                                                                                \
    X(S, INPUT, STR, output, "str", NONE,                                                                             \
      "Write each image as a PNG file to this path (nothing is written when not given). \"%d\" in the path takes "    \
      "the image index; otherwise a batch of several images gets _0, _1, ... before the extension")                  \
    X(S, INTERMEDIATE_REQUIRED, TENSOR, images, "Tensor", NONE, "The generated images [B, 3, H, W] in [0, 1]")        \
    X(S, OUTPUT, VALUE, image_paths, "List[str]", NONE, "The files written (None when `output` is not given)")

/* The file name of image i of n for the `output` pattern. */
DFDEF void df_output_path(char *buf, size_t size, const char *pattern, int64_t i, int64_t n) {
    const char *pct = strstr(pattern, "%d"), *slash = strrchr(pattern, '/'), *dot = strrchr(pattern, '.');
    if (pct)
        snprintf(buf, size, "%.*s%lld%s", (int)(pct - pattern), pattern, (long long)i, pct + 2);
    else if (n == 1)
        snprintf(buf, size, "%s", pattern);
    else if (dot && (!slash || dot > slash))
        snprintf(buf, size, "%.*s_%lld%s", (int)(dot - pattern), pattern, (long long)i, dot);
    else
        snprintf(buf, size, "%s_%lld", pattern, (long long)i);
}

MOD_BLOCK(DFImageOutputStep, "Step that writes the images as PNG files") {
    int64_t i, n = s->images.shape[0];
    if (!MOD_IS_SET(s, output)) {
        MOD_SET_NONE(s, image_paths);
        return MOD_OK;
    }
    if (s->images.ndim != 4 || s->images.shape[1] != 3) {
        char shape[96];
        mt_shape_string(&s->images, shape, sizeof shape);
        return mod_fail(s->mod, MOD_ERR_ARGUMENT,
                        "'images' must be RGB images [B, 3, H, W] to be written as PNG, got %s (output_type \"latent\"?)",
                        shape);
    }
    if (mod_list_new(&s->image_paths, n) != MOD_OK) return mod_fail(s->mod, MOD_ERR_MEMORY, "out of memory");
    for (i = 0; i < n; i++) {
        char path[1024];
        df_output_path(path, sizeof path, s->output, i, n);
#ifdef MT_IMAGE_MAX_PIXELS
        MOD_TRY_MT(s->mod, mt_image_save_png(path, &s->images, i, MT_RANGE_UNIT));
#else
        return mod_fail(s->mod, MOD_ERR_ARGUMENT, "writing '%s' needs the files section of modular_tensor.h", path);
#endif
        if (mod_list_set(&s->image_paths, i, mod_str(path)) != MOD_OK) return mod_fail(s->mod, MOD_ERR_MEMORY, "out of memory");
    }
    return MOD_OK;
}

/* ========================================================================
   Composition (diffusers' modular_blocks.py)
   ======================================================================== */

static mod_status df__seq(mod_block **out, const char *class_name, const char *description, const mod_entry *entries,
                          const mod_workflow *workflows) {
    mod_sequential_desc d;
    memset(&d, 0, sizeof d);
    d.class_name = class_name;
    d.description = description;
    d.blocks = entries;
    d.workflows = workflows;
    return mod_sequential_new(out, &d);
}

static mod_status df__auto(mod_block **out, const char *class_name, const char *description, const mod_entry *entries) {
    mod_auto_desc d;
    memset(&d, 0, sizeof d);
    d.class_name = class_name;
    d.description = description;
    d.blocks = entries;
    return mod_auto_new(out, &d);
}

static mod_entry df__def_entry(const char *name, const mod_block_def *def, const char *trigger) {
    mod_entry e;
    e.name = name;
    e.def = def;
    e.block = NULL;
    e.trigger = trigger;
    return e;
}

static mod_entry df__block_entry(const char *name, mod_block *block, const char *trigger) {
    mod_entry e;
    e.name = name;
    e.def = NULL;
    e.block = block;
    e.trigger = trigger;
    return e;
}

/* The denoising loop (DFDenoiseStep, or DFInpaintDenoiseStep with
   `inpaint`): before_denoiser, denoiser, after_denoiser. */
DFDEF mod_status df_denoise_step_new(mod_block **out, int inpaint) {
    mod_entry body[4];
    body[0] = df__def_entry("before_denoiser", inpaint ? &DFInpaintLoopBeforeDenoiser_def : &DFLoopBeforeDenoiser_def, NULL);
    body[1] = df__def_entry("denoiser", &DFLoopDenoiser_def, NULL);
    body[2] = df__def_entry("after_denoiser", inpaint ? &DFInpaintLoopAfterDenoiser_def : &DFLoopAfterDenoiser_def, NULL);
    body[3] = df__def_entry(NULL, NULL, NULL);
    return mod_loop_new(out, inpaint ? &DFInpaintDenoiseStep_def : &DFDenoiseStep_def, body);
}

/* The before-denoise sequence of a workflow: "text2img", "img2img" or
   "inpaint" (input, set_timesteps, prepare_latents). */
DFDEF mod_status df_before_denoise_new(mod_block **out, const char *workflow) {
    mod_entry e[4];
    int t2i = !strcmp(workflow, "text2img"), i2i = !strcmp(workflow, "img2img"), inp = !strcmp(workflow, "inpaint");
    if (!t2i && !i2i && !inp)
        return mod_fail(NULL, MOD_ERR_UNKNOWN, "unknown workflow '%s'; expected text2img, img2img or inpaint", workflow);
    e[0] = df__def_entry("input", &DFInputStep_def, NULL);
    e[1] = df__def_entry("set_timesteps", t2i ? &DFSetTimestepsStep_def : &DFImg2ImgSetTimestepsStep_def, NULL);
    e[2] = df__def_entry("prepare_latents",
                         t2i ? &DFPrepareLatentsStep_def : i2i ? &DFImg2ImgPrepareLatentsStep_def : &DFInpaintPrepareLatentsStep_def,
                         NULL);
    e[3] = df__def_entry(NULL, NULL, NULL);
    if (t2i)
        return df__seq(out, "DFBeforeDenoiseStep",
                       "Before denoise step that prepare the inputs for the denoise step.\n"
                       "This is a sequential pipeline blocks:\n"
                       " - `DFInputStep` is used to adjust the batch size of the model inputs\n"
                       " - `DFSetTimestepsStep` is used to set the timesteps\n"
                       " - `DFPrepareLatentsStep` is used to prepare the latents",
                       e, NULL);
    if (i2i)
        return df__seq(out, "DFImg2ImgBeforeDenoiseStep",
                       "Before denoise step that prepare the inputs for the denoise step for img2img task.\n"
                       "This is a sequential pipeline blocks:\n"
                       " - `DFInputStep` is used to adjust the batch size of the model inputs\n"
                       " - `DFImg2ImgSetTimestepsStep` is used to set the timesteps\n"
                       " - `DFImg2ImgPrepareLatentsStep` is used to prepare the latents",
                       e, NULL);
    return df__seq(out, "DFInpaintBeforeDenoiseStep",
                   "Before denoise step that prepare the inputs for the denoise step for inpainting task.\n"
                   "This is a sequential pipeline blocks:\n"
                   " - `DFInputStep` is used to adjust the batch size of the model inputs\n"
                   " - `DFImg2ImgSetTimestepsStep` is used to set the timesteps\n"
                   " - `DFInpaintPrepareLatentsStep` is used to prepare the latents",
                   e, NULL);
}

/* DFAutoBlocks: text-to-image, image-to-image and inpainting, chosen by
   the inputs given (diffusers' StableDiffusionXLAutoBlocks). */
DFDEF mod_status df_pipeline_blocks(mod_block **out) {
    static const char *const t2i_inputs[] = {"prompt", NULL};
    static const char *const i2i_inputs[] = {"image", "prompt", NULL};
    static const char *const inpaint_inputs[] = {"mask_image", "image", "prompt", NULL};
    mod_block *bd_t2i = NULL, *bd_i2i = NULL, *bd_inp = NULL, *den = NULL, *den_inp = NULL;
    mod_block *auto_vae = NULL, *auto_bd = NULL, *auto_den = NULL, *top = NULL;
    mod_workflow wf[4];
    mod_entry e[7];
    mod_status s;
    if (!out) return mod_fail(NULL, MOD_ERR_ARGUMENT, "df_pipeline_blocks: out is NULL");
    wf[0].name = "text2image";
    wf[0].triggers = t2i_inputs;
    wf[1].name = "image2image";
    wf[1].triggers = i2i_inputs;
    wf[2].name = "inpainting";
    wf[2].triggers = inpaint_inputs;
    wf[3].name = NULL;
    wf[3].triggers = NULL;
    s = df_before_denoise_new(&bd_t2i, "text2img");
    if (s == MOD_OK) s = df_before_denoise_new(&bd_i2i, "img2img");
    if (s == MOD_OK) s = df_before_denoise_new(&bd_inp, "inpaint");
    if (s == MOD_OK) s = df_denoise_step_new(&den, 0);
    if (s == MOD_OK) s = df_denoise_step_new(&den_inp, 1);
    if (s == MOD_OK) {
        e[0] = df__def_entry("inpaint", &DFInpaintVaeEncoderStep_def, "mask_image");
        e[1] = df__def_entry("img2img", &DFVaeEncoderStep_def, "image");
        e[2] = df__def_entry(NULL, NULL, NULL);
        s = df__auto(&auto_vae, "DFAutoVaeEncoderStep",
                     "Vae encoder step that encode the image inputs into their latent representations.\n"
                     "This is an auto pipeline block that works for both inpainting and img2img tasks.\n"
                     " - `DFInpaintVaeEncoderStep` (inpaint) is used when `mask_image` is provided.\n"
                     " - `DFVaeEncoderStep` (img2img) is used when only `image` is provided.\n"
                     " - if neither `mask_image` nor `image` is provided, step will be skipped.",
                     e);
    }
    if (s == MOD_OK) {
        e[0] = df__block_entry("inpaint", bd_inp, "mask");
        e[1] = df__block_entry("img2img", bd_i2i, "image_latents");
        e[2] = df__block_entry("text2img", bd_t2i, NULL);
        e[3] = df__def_entry(NULL, NULL, NULL);
        s = df__auto(&auto_bd, "DFAutoBeforeDenoiseStep",
                     "Before denoise step that prepare the inputs for the denoise step.\n"
                     "This is an auto pipeline block that works for text2img, img2img and inpainting tasks.\n"
                     " - `DFInpaintBeforeDenoiseStep` (inpaint) is used when both `mask` and `image_latents` are "
                     "provided.\n"
                     " - `DFImg2ImgBeforeDenoiseStep` (img2img) is used when only `image_latents` is provided.\n"
                     " - `DFBeforeDenoiseStep` (text2img) is used when both `image_latents` and `mask` are not "
                     "provided.",
                     e);
    }
    if (s == MOD_OK) {
        e[0] = df__block_entry("inpaint_denoise", den_inp, "mask");
        e[1] = df__block_entry("denoise", den, NULL);
        e[2] = df__def_entry(NULL, NULL, NULL);
        s = df__auto(&auto_den, "DFAutoDenoiseStep",
                     "Denoise step that iteratively denoise the latents. This is a auto pipeline block that works for "
                     "text2img, img2img and inpainting tasks.\n"
                     " - `DFInpaintDenoiseStep` (inpaint_denoise) is used when mask is provided (support inpainting "
                     "tasks).\n"
                     " - `DFDenoiseStep` (denoise) is used when mask is not provided (support text2img and img2img "
                     "tasks).",
                     e);
    }
    if (s == MOD_OK) {
        e[0] = df__def_entry("text_encoder", &DFTextEncoderStep_def, NULL);
        e[1] = df__block_entry("image_encoder", auto_vae, NULL);
        e[2] = df__block_entry("before_denoise", auto_bd, NULL);
        e[3] = df__block_entry("denoise", auto_den, NULL);
        e[4] = df__def_entry("decode", &DFDecodeStep_def, NULL);
        e[5] = df__def_entry("output", &DFImageOutputStep_def, NULL);
        e[6] = df__def_entry(NULL, NULL, NULL);
        s = df__seq(&top, "DFAutoBlocks",
                    "Auto Modular pipeline for text-to-image, image-to-image and inpainting.\n"
                    "- for image-to-image generation, you need to provide either `image` or `image_latents`\n"
                    "- for inpainting, you need to provide `mask_image` and `image`\n"
                    "- for text-to-image generation, all you need to provide is `prompt`",
                    e, wf);
    }
    mod_block_free(bd_t2i);
    mod_block_free(bd_i2i);
    mod_block_free(bd_inp);
    mod_block_free(den);
    mod_block_free(den_inp);
    mod_block_free(auto_vae);
    mod_block_free(auto_bd);
    mod_block_free(auto_den);
    if (s != MOD_OK) {
        mod_block_free(top);
        return s;
    }
    *out = top;
    return MOD_OK;
}

/* df_pipeline_blocks + mod_pipeline_new: a pipeline with the default
   components (see DF_DEFAULT_*). */
DFDEF mod_status df_pipeline_new(mod_pipeline **out) {
    mod_block *blocks = NULL;
    mod_status s = df_pipeline_blocks(&blocks);
    if (s == MOD_OK) s = mod_pipeline_new(out, blocks);
    mod_block_free(blocks);
    return s;
}

#endif /* DF_BLOCKS_H */
