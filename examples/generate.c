/* generate.c - text-to-image, image-to-image and inpainting from the command
   line, with the diffusion blocks of df_blocks.h and the embedded model of
   shapes_model.h (no download).

   Build and run from the repository root (needs libstb-dev):
       cc -std=c99 -O2 -I. -o generate examples/generate.c -lm -lpthread
       ./generate --prompt "a red circle" --out red.png
       ./generate --prompt "a blue circle" --image red.png --strength 0.6 --out blue.png
       ./generate --prompt "a green square" --image red.png --mask mask.png --out green.png

   Exit status: 0 done, 1 the pipeline failed, 2 bad command line. */
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"
#define MODULAR_IMPLEMENTATION
#include "modular.h"
#include "df_components.h"
#define SHAPES_MODEL_IMPLEMENTATION
#include "shapes_model.h"
#include "df_blocks.h"

#include <errno.h>
#include <limits.h>

static const char usage_text[] =
    "usage: generate --prompt TEXT [options]\n"
    "\n"
    "Generates an image with the embedded shapes model and writes it as PNG.\n"
    "Give --image to transform an image (image-to-image), and --mask too to\n"
    "repaint the white part of the mask (inpainting).\n"
    "\n"
    "options:\n"
    "  --prompt TEXT            what to draw (required), e.g. \"a red circle\"\n"
    "  --negative-prompt TEXT   what to steer away from (used when guidance > 1)\n"
    "  --steps N                denoising steps (default 30)\n"
    "  --guidance F             classifier-free guidance scale; <= 1 turns it off\n"
    "                           (one model call per step instead of two)\n"
    "  --seed N                 random seed (default 0)\n"
    "  --scheduler NAME         euler, euler_ancestral, ddim or dpm (default euler),\n"
    "                           or a config text such as \"kind=ddim timestep_spacing=trailing\"\n"
    "  --width N, --height N    image size in pixels (default 64, or the size of --image)\n"
    "  --image PATH             start from this image (PNG or JPEG)\n"
    "  --mask PATH              inpainting mask (white = repaint); needs --image\n"
    "  --strength F             how much to change --image, in [0, 1] (default 0.6,\n"
    "                           1 with --mask)\n"
    "  --out PATH               output PNG (default out.png; \"%d\" takes the image index)\n"
    "  --threads N              compute threads (default: one per core)\n"
    "  --no-progress            no progress bar (it is shown only on a terminal anyway)\n"
    "  --help                   this text\n";

typedef struct options {
    const char *prompt, *negative_prompt, *scheduler, *image, *mask, *out;
    long steps, seed, width, height, threads;
    double guidance, strength;
    int has_guidance, has_strength, has_width, has_height, progress;
} options;

static const char usage_hint[] = "Try 'generate --help' for the options.\n";

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "generate: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage_hint);
    return 2;
}

static int parse_long(const char *opt, const char *text, long lo, long hi, long *out) {
    char *end = NULL;
    long v;
    errno = 0;
    v = strtol(text, &end, 10);
    if (errno || !end || *end || end == text || v < lo || v > hi) {
        fprintf(stderr, "generate: %s takes an integer in [%ld, %ld], got '%s'\n%s", opt, lo, hi, text, usage_hint);
        return 0;
    }
    *out = v;
    return 1;
}

static int parse_double(const char *opt, const char *text, double *out) {
    char *end = NULL;
    double v = strtod(text, &end);
    if (!end || *end || end == text || v != v) {
        fprintf(stderr, "generate: %s takes a number, got '%s'\n%s", opt, text, usage_hint);
        return 0;
    }
    *out = v;
    return 1;
}

/* 0: run; 1: --help shown; 2: usage error. */
static int parse_args(int argc, char **argv, options *o) {
    int i;
    memset(o, 0, sizeof *o);
    o->steps = 30;
    o->out = "out.png";
    o->progress = 1;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage_text, stdout);
            return 1;
        }
        if (!strcmp(a, "--no-progress")) {
            o->progress = 0;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) return usage_error("unexpected argument '%s'", a);
        if (!v) return usage_error("%s needs a value", a);
        if (!strcmp(a, "--prompt"))
            o->prompt = v;
        else if (!strcmp(a, "--negative-prompt"))
            o->negative_prompt = v;
        else if (!strcmp(a, "--scheduler"))
            o->scheduler = v;
        else if (!strcmp(a, "--image"))
            o->image = v;
        else if (!strcmp(a, "--mask"))
            o->mask = v;
        else if (!strcmp(a, "--out"))
            o->out = v;
        else if (!strcmp(a, "--steps")) {
            if (!parse_long(a, v, 1, 10000, &o->steps)) return 2;
        } else if (!strcmp(a, "--seed")) {
            if (!parse_long(a, v, 0, LONG_MAX, &o->seed)) return 2;
        } else if (!strcmp(a, "--width")) {
            if (!parse_long(a, v, 1, 8192, &o->width)) return 2;
            o->has_width = 1;
        } else if (!strcmp(a, "--height")) {
            if (!parse_long(a, v, 1, 8192, &o->height)) return 2;
            o->has_height = 1;
        } else if (!strcmp(a, "--threads")) {
            if (!parse_long(a, v, 1, 1024, &o->threads)) return 2;
        } else if (!strcmp(a, "--guidance")) {
            if (!parse_double(a, v, &o->guidance)) return 2;
            o->has_guidance = 1;
        } else if (!strcmp(a, "--strength")) {
            if (!parse_double(a, v, &o->strength)) return 2;
            if (!(o->strength >= 0.0 && o->strength <= 1.0)) return usage_error("--strength must be in [0, 1], got %s", v);
            o->has_strength = 1;
        } else {
            return usage_error("unknown option '%s'", a);
        }
        i++;
    }
    if (!o->prompt) return usage_error("%s is required", "--prompt");
    if (o->mask && !o->image) return usage_error("%s needs --image (the image to repaint)", "--mask");
    if (o->has_strength && !o->image) return usage_error("%s applies to --image only", "--strength");
    return 0;
}

int main(int argc, char **argv) {
    options o;
    mod_pipeline *pipe = NULL;
    mod_value outs[2];
    const char *const names[] = {"image_paths", "unknown_words", NULL};
    mod_arg args[16];
    int n = 0, rc = parse_args(argc, argv, &o);
    int64_t i;
    if (rc) return rc == 1 ? 0 : 2;
    memset(outs, 0, sizeof outs);
    if (o.threads) mt_set_num_threads((int)o.threads);

    if (df_pipeline_new(&pipe) != MOD_OK) {
        fprintf(stderr, "generate: %s\n", mod_last_error());
        return 1;
    }
    /* components from the command line: a scheduler and a guider of the
       given kind replace the defaults in their slots */
    if (o.scheduler) {
        const df_denoiser *unet = (const df_denoiser *)mod_value_ptr(mod_pipeline_component(pipe, "unet"), NULL);
        char config[DF_CONFIG_TEXT_MAX];
        mod_value v;
        memset(&v, 0, sizeof v);
        if (df_scheduler_config_for(o.scheduler, unet ? unet->prediction_type : NULL, config, sizeof config) != MOD_OK ||
            df_scheduler_create(config, &v) != MOD_OK) {
            fprintf(stderr, "generate: --scheduler: %s\n", mod_last_error());
            mod_pipeline_free(pipe);
            return 2;
        }
        rc = mod_pipeline_set_component(pipe, "scheduler", v) != MOD_OK;
        mod_value_release(&v);
    }
    if (!rc && o.has_guidance) {
        char config[64];
        mod_value v;
        memset(&v, 0, sizeof v);
        snprintf(config, sizeof config, "guidance_scale=%.17g", o.guidance);
        rc = df_guider_create(config, &v) != MOD_OK || mod_pipeline_set_component(pipe, "guider", v) != MOD_OK;
        mod_value_release(&v);
    }
    if (rc) {
        fprintf(stderr, "generate: %s\n", mod_last_error());
        mod_pipeline_free(pipe);
        return 1;
    }

#define ARG(key, val) (args[n].name = (key), args[n].value = (val), n++)
    ARG("prompt", mod_str(o.prompt));
    if (o.negative_prompt) ARG("negative_prompt", mod_str(o.negative_prompt));
    ARG("num_inference_steps", mod_int(o.steps));
    ARG("generator", mod_int(o.seed));
    if (o.has_width) ARG("width", mod_int(o.width));
    if (o.has_height) ARG("height", mod_int(o.height));
    if (o.image) ARG("image", mod_str(o.image));
    if (o.mask) ARG("mask_image", mod_str(o.mask));
    if (o.image) ARG("strength", mod_float(o.has_strength ? o.strength : o.mask ? 1.0 : 0.6));
    ARG("output", mod_str(o.out));
    ARG("progress_bar", mod_bool(o.progress));
    args[n].name = NULL;
#undef ARG

    if (mod_pipeline_call_outputs(pipe, args, names, outs) != MOD_OK) {
        fprintf(stderr, "generate: %s\n", mod_last_error());
        mod_pipeline_free(pipe);
        return 1;
    }
    if (outs[1].kind == MOD_STR && *(const char *)outs[1].p)
        fprintf(stderr, "generate: words the model does not know (ignored): %s\n", (const char *)outs[1].p);
    for (i = 0; i < mod_list_len(&outs[0]); i++) printf("wrote %s\n", (const char *)mod_list_at(&outs[0], i)->p);
    mod_value_release(&outs[0]);
    mod_value_release(&outs[1]);
    mod_pipeline_free(pipe);
    return 0;
}
