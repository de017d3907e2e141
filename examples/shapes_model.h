/* shapes_model.h - the embedded default model of the diffusion example

   A procedurally generated, captioned image set (coloured shapes on plain
   backgrounds) and three components made from it, so that the diffusion
   pipeline samples real images without downloading a model:

       slot            create callback               component
       "text_encoder"  shapes_text_encoder_create    prompt words -> vocabulary tokens
       "vae"           shapes_vae_create             linear patch autoencoder fitted to the set
       "unet"          shapes_unet_create            exact posterior-mean denoiser of the set

   WHAT IT IS AND IS NOT

   It is not a neural network and it learns nothing beyond the set. The
   "unet" computes, for the noisy latent it is given, the exact posterior
   mean of the clean latent under a prior that puts all its mass on the set's
   latents, weighted by how well each item's caption matches the prompt;
   it returns the epsilon (or v) that this posterior mean implies. Every
   scheduler drives it as it drives a trained UNet, classifier-free guidance
   works on it, and the sampler converges to (a close neighbour of) one of
   the set's images that carries the prompt's words. It cannot draw anything
   the set does not contain: a prompt outside the vocabulary gets an image
   of the set chosen by the noise. Replace it by a real UNet, VAE and text
   encoder through the same component slots to get a real model.

   USAGE

   Include modular_tensor.h, modular.h and examples/df_components.h first;
   in exactly one file define SHAPES_MODEL_IMPLEMENTATION before including
   this header (the tensor and block implementations may live elsewhere).

       #include "modular_tensor.h"
       #include "modular.h"
       #include "examples/df_components.h"
       #define SHAPES_MODEL_IMPLEMENTATION
       #include "examples/shapes_model.h"

       // as ComponentSpec create callbacks: {"unet", "UNet2DConditionModel",
       //   "the denoiser", "prediction_type=epsilon", shapes_unet_create}
       mod_value v = {0};
       if (shapes_unet_create("", &v) != MOD_OK) fprintf(stderr, "%s\n", mod_last_error());
       df_denoiser *unet = (df_denoiser *)mod_value_ptr(&v, df_denoiser_type.name);
       ...
       mod_value_release(&v);

   THE SET

   Every combination of 7 shapes (circle, square, triangle, diamond, cross,
   ring, star), 9 colours (red, green, blue, yellow, orange, purple, cyan,
   magenta, white), 2 sizes (small, large), 5 positions (center, left,
   right, top, bottom) and 3 backgrounds (white, black, gray), except a white
   shape on white: 1820 items. Captions read "a large red circle on the left
   on a white background". Images are rendered on demand at any size (width
   and height >= 8) from signed distance functions with a one-pixel
   anti-aliased edge, in [-1, 1], deterministically; nothing is stored but
   the latents the denoiser uses.

   THE COMPONENTS

   text_encoder: splits the prompt into words (letters and digits, case
   insensitive), maps them and a few synonyms (grey, centre, middle, big,
   little, tiny, violet, disc, plus, donut, rhombus, upper, lower, plurals)
   onto the vocabulary and ignores filler words (a, an, the, on, in, at, of,
   with, and, ...). A colour followed by "background", or a background-only
   colour (black, gray), or "white" after the shape word, names the
   background. Other words are reported in `unknown`, never an error. The
   embedding [n, seq_len, 32] has a first token that marks a prompt (feature
   26) or the empty prompt (feature 27, the unconditional embedding), then
   one token per vocabulary word, one-hot over the 26 vocabulary values
   (features 0-6 shape, 7-15 colour, 16-17 size, 18-22 position, 23-25
   background), then zero rows. At most seq_len - 1 words count (like
   CLIP's truncation).

   vae: latents [B, 4, H/4, W/4] (H, W multiples of 4). The encoder projects
   each 4x4 RGB patch (48 values) on the 4 leading principal components of
   the set's patches; the decoder maps each latent position and its 8
   neighbours (36 values) back to the 4x4 patch by least squares. Both are
   fitted to the set (every 11th item at 64x64, some 50 ms) when the model
   is first created. scaling_factor makes the set's latents unit variance.
   Decoded set images average 30 dB PSNR at 64x64 and 36 dB at 256x256
   (tests/test_shapes_model.c); at 1/8 size a linear autoencoder with 4
   channels stays below 25 dB on these images, hence 1/4.

   unet: for x_t = sqrt(abar) x0 + sqrt(1 - abar) eps (the model input of
   every scheduler: Euler's scale_model_input gives exactly this), it
   computes weights over the set's scaled latents z_i,
       w_i ~ prior_i * exp(-|x_t - sqrt(abar) z_i|^2 / (2 (1 - abar))),
   x0_hat = sum_i w_i z_i, and returns eps = (x_t - sqrt(abar) x0_hat) /
   sqrt(1 - abar) or v = sqrt(abar) eps - sqrt(1 - abar) x0_hat. The prior
   is softmax(lambda * matches_i), matches_i counting the prompt tokens that
   name a value item i has (the unconditional embedding gives a uniform
   prior), lambda = caption_strength * (latent values / 1024): the evidence
   of the noisy latent grows with the image size, and so does the caption's,
   so a prompt acts alike at every size. (With Stable Diffusion's schedule
   pure noise still carries some signal at the first step, and it looks
   like a mid-gray image: without that scaling, 256x256 samples would take
   a gray background whatever the prompt, the bias of the real model that
   zero-terminal-SNR schedules remove.) Set latents exceed [-1, 1]: run
   DDIM with clip_sample off, as Stable Diffusion's scheduler config does. abar comes from the training schedule of its config
   (integer timestep t: alphas_cumprod[t]; fractional t: log-sigma
   interpolation between the neighbouring timesteps, the inverse of
   diffusers' _sigma_to_t). The set's latents are computed once per latent
   size, on first use, and cached (thread safe), as runs of latent positions
   per row: an item differs from its flat background only on its shape,
   whose inside is flat too, so a step costs a few table lookups per run
   plus a pass over the shape's edge tiles (about 5 MB and a few ms per
   image per step at 256x256).

   CONFIG STRINGS ("key=value key=value", spaces or commas between; empty =
   defaults; an unknown key or a bad value is an error naming it)

       text_encoder  seq_len=16                tokens per prompt, 2..256
       vae           (no keys)
       unet          prediction_type=epsilon   or v_prediction
                     num_train_timesteps=1000  \  the training schedule; must
                     beta_start=0.00085         | match the scheduler's
                     beta_end=0.012             | (these are Stable
                     beta_schedule=scaled_linear/  Diffusion's)
                     caption_strength=12       log-prior per matched word for
                                               1024 latent values (a 64x64
                                               image), in proportion for other
                                               sizes; >= 0

   THREADS AND STATE

   Component calls are safe from several threads at once. The vae and unet
   share one process-wide model (the fitted autoencoder and the latent
   caches), created by the first component and freed with the last one
   (shapes_model_refs() counts them); this is the header's only global
   state. Heavy loops run on modular_tensor.h's pool (mt_parallel_for) and
   are split by output, so results do not depend on the thread count.

   OPTIONS (define before the implementation)

       SHAPES_MALLOC(sz) / SHAPES_FREE(p)   allocator (default libc)
       SHAPESDEF         linkage (default extern; SHAPES_STATIC for static)
       SHAPES_NO_THREADS no locking (single-threaded programs, or platforms
                         without POSIX threads, where it is the default)

   LICENSE: MIT, as modular.h.
*/
#ifndef SHAPES_MODEL_H
#define SHAPES_MODEL_H

#if !defined(MODULAR_TENSOR_H) || !defined(MODULAR_H) || !defined(DF_COMPONENTS_H)
#error "include modular_tensor.h, modular.h and examples/df_components.h before shapes_model.h"
#endif

#ifndef SHAPESDEF
#ifdef SHAPES_STATIC
#define SHAPESDEF static
#else
#define SHAPESDEF extern
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define SHAPES_EMBED_DIM 32      /* text embedding width */
#define SHAPES_SEQ_LEN 16        /* default tokens per prompt */
#define SHAPES_LATENT_CHANNELS 4
#define SHAPES_DOWNSCALE 4       /* image size / latent size */
#define SHAPES_MAX_TOKENS 64     /* vocabulary words kept by shapes_parse_prompt */

/* ---- vocabulary ---- */

typedef enum shapes_attr {
    SHAPES_SHAPE = 0,   /* circle square triangle diamond cross ring star */
    SHAPES_COLOR,       /* red green blue yellow orange purple cyan magenta white */
    SHAPES_SIZE,        /* small large */
    SHAPES_POSITION,    /* center left right top bottom */
    SHAPES_BACKGROUND,  /* white black gray */
    SHAPES_ATTR_COUNT
} shapes_attr;

SHAPESDEF const char *shapes_attr_name(shapes_attr a);        /* "shape", "color", ... */
SHAPESDEF int shapes_vocab_size(shapes_attr a);               /* values of the attribute, 0 if invalid */
SHAPESDEF const char *shapes_vocab_name(shapes_attr a, int v); /* "circle"; NULL when out of range */
SHAPESDEF int shapes_vocab_find(shapes_attr a, const char *name); /* value, or -1 */

/* ---- the set ---- */

typedef struct shapes_item {
    int value[SHAPES_ATTR_COUNT]; /* e.g. value[SHAPES_COLOR] indexes shapes_vocab_name(SHAPES_COLOR, .) */
} shapes_item;

SHAPESDEF int shapes_set_count(void); /* 1820 */
SHAPESDEF mod_status shapes_set_item(int index, shapes_item *out);
/* the item with these attributes, or -1 (white on white is not in the set) */
SHAPESDEF int shapes_set_find(const shapes_item *item);
/* "a large red circle on the left on a white background"; returns the
   caption's length (as snprintf), -1 for a bad index */
SHAPESDEF int shapes_set_caption(int index, char *buf, size_t size);
/* The item's image, float32 in [-1, 1]: out empty -> a new [1, 3, height,
   width] tensor; preallocated -> must be [1, 3, H, W] or [3, H, W] (any
   strides, any float dtype). width and height >= 8. */
SHAPESDEF mod_status shapes_set_image(int index, int width, int height, mt_tensor *out);
/* The set image nearest to `image` ([3, H, W] or [1, 3, H, W], values in
   [-1, 1]) in mean squared error over all pixels and channels, rendered at
   the image's size; ties go to the lower index. mse may be NULL. */
SHAPESDEF mod_status shapes_set_nearest(const mt_tensor *image, int *index, double *mse);

/* ---- prompts ---- */

typedef struct shapes_prompt {
    int value[SHAPES_ATTR_COUNT];        /* first value named per attribute, -1 when none */
    int n_tokens;                         /* vocabulary words, in prompt order (first SHAPES_MAX_TOKENS kept) */
    int token_attr[SHAPES_MAX_TOKENS];
    int token_value[SHAPES_MAX_TOKENS];
    int n_unknown;                        /* words outside the vocabulary */
    int empty;                            /* 1 when the prompt has no word at all ("" or punctuation) */
} shapes_prompt;

/* Parses as the text encoder does. Unknown words (deduplicated, ", "
   separated) go to `unknown` when it is not NULL (truncated with "..." when
   it is too small; always NUL-terminated when unknown_size > 0). prompt
   NULL is the empty prompt. Returns n_unknown. */
SHAPESDEF int shapes_parse_prompt(const char *prompt, shapes_prompt *out, char *unknown, size_t unknown_size);

/* ---- components (ComponentSpec create callbacks) ----
   Each returns an owned PTR value (mod_value_own_ptr) whose object starts
   with the df_components.h interface (df_text_encoder, df_vae,
   df_denoiser) and whose mod_type name is that slot's (CLIPTextModel,
   AutoencoderKL, UNet2DConditionModel). */
SHAPESDEF mod_status shapes_text_encoder_create(const char *config, mod_value *out);
SHAPESDEF mod_status shapes_vae_create(const char *config, mod_value *out);
SHAPESDEF mod_status shapes_unet_create(const char *config, mod_value *out);

/* References held on the shared model (vae and unet components, 0 when it
   does not exist). */
SHAPESDEF int shapes_model_refs(void);

/* ---- inspection (for tests and tools); `unet` must come from
   shapes_unet_create ---- */

/* abar of a (possibly fractional) timestep, as predict uses it */
SHAPESDEF mod_status shapes_unet_alpha_bar(const df_denoiser *unet, double timestep, double *alpha_bar);
/* The posterior weights predict computes: weights[b * shapes_set_count() +
   i] for batch item b of `sample` [B, 4, h, w] and set item i (each row
   sums to 1). */
SHAPESDEF mod_status shapes_unet_posterior(const df_denoiser *unet, const mt_tensor *sample, double timestep,
                                           const mt_tensor *embeds, double *weights);

#ifdef __cplusplus
}
#endif

#endif /* SHAPES_MODEL_H */

/* ************************************************************************
   IMPLEMENTATION
   ************************************************************************ */
#ifdef SHAPES_MODEL_IMPLEMENTATION
#ifndef SHAPES_MODEL_IMPLEMENTATION_DONE
#define SHAPES_MODEL_IMPLEMENTATION_DONE

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef SHAPES_MALLOC
#define SHAPES_MALLOC(sz) malloc(sz)
#define SHAPES_FREE(p) free(p)
#endif

#if !defined(SHAPES_NO_THREADS) && (defined(__unix__) || defined(__APPLE__))
#include <pthread.h>
typedef pthread_mutex_t shapes__mutex;
#define SHAPES__MUTEX_INIT PTHREAD_MUTEX_INITIALIZER
static int shapes__mutex_init(shapes__mutex *m) { return pthread_mutex_init(m, NULL) == 0; }
static void shapes__mutex_free(shapes__mutex *m) { pthread_mutex_destroy(m); }
static void shapes__lock(shapes__mutex *m) { pthread_mutex_lock(m); }
static void shapes__unlock(shapes__mutex *m) { pthread_mutex_unlock(m); }
#else
typedef int shapes__mutex;
#define SHAPES__MUTEX_INIT 0
static int shapes__mutex_init(shapes__mutex *m) { *m = 0; return 1; }
static void shapes__mutex_free(shapes__mutex *m) { (void)m; }
static void shapes__lock(shapes__mutex *m) { (void)m; }
static void shapes__unlock(shapes__mutex *m) { (void)m; }
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
   Vocabulary and the set
   ====================================================================== */

enum { SHAPES__NS = 7, SHAPES__NC = 9, SHAPES__NZ = 2, SHAPES__NP = 5, SHAPES__NB = 3 };
enum { SHAPES__PAIRS = SHAPES__NC * SHAPES__NB - 1 }; /* colour/background pairs without white on white */
enum { SHAPES__COUNT = SHAPES__NS * SHAPES__NZ * SHAPES__NP * SHAPES__PAIRS };
enum { SHAPES__FEATURES = SHAPES__NS + SHAPES__NC + SHAPES__NZ + SHAPES__NP + SHAPES__NB }; /* 26 */
enum { SHAPES__F_PROMPT = 26, SHAPES__F_UNCOND = 27 };
enum { SHAPES__CIRCLE, SHAPES__SQUARE, SHAPES__TRIANGLE, SHAPES__DIAMOND, SHAPES__CROSS, SHAPES__RING, SHAPES__STAR };
enum { SHAPES__WHITE_COLOR = 8, SHAPES__WHITE_BG = 0 };

static const char *const shapes__shape_names[SHAPES__NS] = {"circle", "square", "triangle", "diamond",
                                                            "cross",  "ring",   "star"};
static const char *const shapes__color_names[SHAPES__NC] = {"red",    "green", "blue",    "yellow", "orange",
                                                            "purple", "cyan",  "magenta", "white"};
static const char *const shapes__size_names[SHAPES__NZ] = {"small", "large"};
static const char *const shapes__position_names[SHAPES__NP] = {"center", "left", "right", "top", "bottom"};
static const char *const shapes__background_names[SHAPES__NB] = {"white", "black", "gray"};
static const char *const shapes__attr_names[SHAPES_ATTR_COUNT] = {"shape", "color", "size", "position",
                                                                  "background"};
static const int shapes__attr_sizes[SHAPES_ATTR_COUNT] = {SHAPES__NS, SHAPES__NC, SHAPES__NZ, SHAPES__NP,
                                                          SHAPES__NB};
static const int shapes__attr_offsets[SHAPES_ATTR_COUNT] = {0, SHAPES__NS, SHAPES__NS + SHAPES__NC,
                                                            SHAPES__NS + SHAPES__NC + SHAPES__NZ,
                                                            SHAPES__NS + SHAPES__NC + SHAPES__NZ + SHAPES__NP};
static const char *const shapes__position_phrases[SHAPES__NP] = {"in the center", "on the left", "on the right",
                                                                 "at the top", "at the bottom"};

/* sRGB 0..255 */
static const unsigned char shapes__color_rgb[SHAPES__NC][3] = {
    {220, 30, 30},  {40, 170, 60},  {40, 80, 220},  {245, 210, 30},  {245, 135, 25},
    {135, 50, 180}, {40, 200, 220}, {220, 50, 200}, {255, 255, 255}};
static const unsigned char shapes__background_rgb[SHAPES__NB][3] = {{255, 255, 255}, {0, 0, 0}, {128, 128, 128}};

/* geometry, in units of the size radius r = size * min(width, height) */
static const double shapes__size_radius[SHAPES__NZ] = {0.13, 0.24};
static const double shapes__position_xy[SHAPES__NP][2] = {
    {0.5, 0.5}, {0.28, 0.5}, {0.72, 0.5}, {0.5, 0.28}, {0.5, 0.72}};
static const double shapes__extent[SHAPES__NS] = {1.0, 0.85, 1.0, 1.1, 1.0, 1.0, 1.1}; /* half width of the bbox */

static const char *const *shapes__names(int a) {
    switch (a) {
    case SHAPES_SHAPE: return shapes__shape_names;
    case SHAPES_COLOR: return shapes__color_names;
    case SHAPES_SIZE: return shapes__size_names;
    case SHAPES_POSITION: return shapes__position_names;
    case SHAPES_BACKGROUND: return shapes__background_names;
    default: return NULL;
    }
}

SHAPESDEF const char *shapes_attr_name(shapes_attr a) {
    return (unsigned)a < SHAPES_ATTR_COUNT ? shapes__attr_names[a] : NULL;
}
SHAPESDEF int shapes_vocab_size(shapes_attr a) { return (unsigned)a < SHAPES_ATTR_COUNT ? shapes__attr_sizes[a] : 0; }
SHAPESDEF const char *shapes_vocab_name(shapes_attr a, int v) {
    if ((unsigned)a >= SHAPES_ATTR_COUNT || v < 0 || v >= shapes__attr_sizes[a]) return NULL;
    return shapes__names((int)a)[v];
}
SHAPESDEF int shapes_vocab_find(shapes_attr a, const char *name) {
    int v;
    if ((unsigned)a >= SHAPES_ATTR_COUNT || !name) return -1;
    for (v = 0; v < shapes__attr_sizes[a]; v++)
        if (strcmp(shapes__names((int)a)[v], name) == 0) return v;
    return -1;
}

SHAPESDEF int shapes_set_count(void) { return SHAPES__COUNT; }

/* index = ((shape * 2 + size) * 5 + position) * 26 + pair; pair k < 24 is
   (colour k / 3, background k % 3), 24 and 25 are white on black and gray */
static void shapes__decode(int index, int *v) {
    int k = index % SHAPES__PAIRS, rest = index / SHAPES__PAIRS;
    v[SHAPES_POSITION] = rest % SHAPES__NP;
    rest /= SHAPES__NP;
    v[SHAPES_SIZE] = rest % SHAPES__NZ;
    v[SHAPES_SHAPE] = rest / SHAPES__NZ;
    if (k < SHAPES__PAIRS - 2) {
        v[SHAPES_COLOR] = k / SHAPES__NB;
        v[SHAPES_BACKGROUND] = k % SHAPES__NB;
    } else {
        v[SHAPES_COLOR] = SHAPES__WHITE_COLOR;
        v[SHAPES_BACKGROUND] = k - (SHAPES__PAIRS - 2) + 1;
    }
}

SHAPESDEF mod_status shapes_set_item(int index, shapes_item *out) {
    if (!out) return mod_fail(NULL, MOD_ERR_ARGUMENT, "shapes_set_item: out is NULL");
    if (index < 0 || index >= SHAPES__COUNT)
        return mod_fail(NULL, MOD_ERR_INDEX, "shapes_set_item: index %d outside [0, %d)", index, SHAPES__COUNT);
    shapes__decode(index, out->value);
    return MOD_OK;
}

SHAPESDEF int shapes_set_find(const shapes_item *item) {
    const int *v;
    int a, k;
    if (!item) return -1;
    v = item->value;
    for (a = 0; a < SHAPES_ATTR_COUNT; a++)
        if (v[a] < 0 || v[a] >= shapes__attr_sizes[a]) return -1;
    if (v[SHAPES_COLOR] == SHAPES__WHITE_COLOR) {
        if (v[SHAPES_BACKGROUND] == SHAPES__WHITE_BG) return -1;
        k = SHAPES__PAIRS - 2 + v[SHAPES_BACKGROUND] - 1;
    } else {
        k = v[SHAPES_COLOR] * SHAPES__NB + v[SHAPES_BACKGROUND];
    }
    return ((v[SHAPES_SHAPE] * SHAPES__NZ + v[SHAPES_SIZE]) * SHAPES__NP + v[SHAPES_POSITION]) * SHAPES__PAIRS + k;
}

SHAPESDEF int shapes_set_caption(int index, char *buf, size_t size) {
    int v[SHAPES_ATTR_COUNT];
    if (index < 0 || index >= SHAPES__COUNT) {
        if (buf && size) buf[0] = '\0';
        return -1;
    }
    shapes__decode(index, v);
    return snprintf(buf, size, "a %s %s %s %s on a %s background", shapes__size_names[v[SHAPES_SIZE]],
                    shapes__color_names[v[SHAPES_COLOR]], shapes__shape_names[v[SHAPES_SHAPE]],
                    shapes__position_phrases[v[SHAPES_POSITION]], shapes__background_names[v[SHAPES_BACKGROUND]]);
}

/* ---- rendering ---- */

typedef struct shapes__geom {
    int shape;
    double cx, cy, r;       /* centre and size radius, pixels */
    double vx[10], vy[10];  /* polygon vertices (triangle, diamond, star), pixels */
    int nv;
    float col[3], bg[3];    /* in [-1, 1] */
    int x0, x1, y0, y1;     /* pixels outside [x0, x1) x [y0, y1) are background */
} shapes__geom;

static float shapes__unit(unsigned char c) { return (float)c / 127.5f - 1.0f; }

static void shapes__geom_init(shapes__geom *g, int index, int width, int height) {
    int v[SHAPES_ATTR_COUNT], c, k;
    double m = width < height ? width : height, e;
    shapes__decode(index, v);
    g->shape = v[SHAPES_SHAPE];
    g->cx = shapes__position_xy[v[SHAPES_POSITION]][0] * width;
    g->cy = shapes__position_xy[v[SHAPES_POSITION]][1] * height;
    g->r = shapes__size_radius[v[SHAPES_SIZE]] * m;
    for (c = 0; c < 3; c++) {
        g->col[c] = shapes__unit(shapes__color_rgb[v[SHAPES_COLOR]][c]);
        g->bg[c] = shapes__unit(shapes__background_rgb[v[SHAPES_BACKGROUND]][c]);
    }
    g->nv = 0;
    if (g->shape == SHAPES__TRIANGLE) {
        /* equilateral, pointing up, circumradius 1.15, its bbox centred */
        for (k = 0; k < 3; k++) {
            double a = -3.14159265358979323846 / 2 + k * 2 * 3.14159265358979323846 / 3;
            g->vx[k] = g->cx + 1.15 * g->r * cos(a);
            g->vy[k] = g->cy + (1.15 * sin(a) + 0.2875) * g->r;
        }
        g->nv = 3;
    } else if (g->shape == SHAPES__DIAMOND) {
        static const double dx[4] = {0, 1.1, 0, -1.1}, dy[4] = {-1.1, 0, 1.1, 0};
        for (k = 0; k < 4; k++) {
            g->vx[k] = g->cx + dx[k] * g->r;
            g->vy[k] = g->cy + dy[k] * g->r;
        }
        g->nv = 4;
    } else if (g->shape == SHAPES__STAR) {
        for (k = 0; k < 10; k++) {
            double a = -3.14159265358979323846 / 2 + k * 3.14159265358979323846 / 5, rr = k % 2 ? 0.45 : 1.1;
            g->vx[k] = g->cx + rr * g->r * cos(a);
            g->vy[k] = g->cy + rr * g->r * sin(a);
        }
        g->nv = 10;
    }
    /* bbox plus a margin: pixel centres outside are >= 1 pixel away */
    e = shapes__extent[g->shape] * g->r + 1.5;
    g->x0 = (int)floor(g->cx - e);
    g->x1 = (int)ceil(g->cx + e) + 1;
    g->y0 = (int)floor(g->cy - e);
    g->y1 = (int)ceil(g->cy + e) + 1;
    if (g->x0 < 0) g->x0 = 0;
    if (g->y0 < 0) g->y0 = 0;
    if (g->x1 > width) g->x1 = width;
    if (g->y1 > height) g->y1 = height;
}

static double shapes__box(double px, double py, double bx, double by) {
    double qx = fabs(px) - bx, qy = fabs(py) - by, mx = qx > 0 ? qx : 0, my = qy > 0 ? qy : 0;
    double in = qx > qy ? qx : qy;
    return sqrt(mx * mx + my * my) + (in < 0 ? in : 0);
}

/* exact signed distance to a polygon (negative inside) */
static double shapes__polygon(const double *vx, const double *vy, int n, double px, double py) {
    double d = (px - vx[0]) * (px - vx[0]) + (py - vy[0]) * (py - vy[0]), s = 1;
    int i, j;
    for (i = 0, j = n - 1; i < n; j = i, i++) {
        double ex = vx[j] - vx[i], ey = vy[j] - vy[i], wx = px - vx[i], wy = py - vy[i];
        double h = (wx * ex + wy * ey) / (ex * ex + ey * ey), bx, by;
        int c1, c2, c3;
        if (h < 0) h = 0;
        if (h > 1) h = 1;
        bx = wx - ex * h;
        by = wy - ey * h;
        if (bx * bx + by * by < d) d = bx * bx + by * by;
        c1 = py >= vy[i];
        c2 = py < vy[j];
        c3 = ex * wy > ey * wx;
        if ((c1 && c2 && c3) || (!c1 && !c2 && !c3)) s = -s;
    }
    return s * sqrt(d);
}

/* Signed distance in pixels from (px, py) to the shape; every one is
   1-Lipschitz, which the tile test below relies on. */
static double shapes__sdf(const shapes__geom *g, double px, double py) {
    double x = px - g->cx, y = py - g->cy, r = g->r;
    switch (g->shape) {
    case SHAPES__CIRCLE: return sqrt(x * x + y * y) - r;
    case SHAPES__SQUARE: return shapes__box(x, y, 0.85 * r, 0.85 * r);
    case SHAPES__CROSS: {
        double a = shapes__box(x, y, r, 0.32 * r), b = shapes__box(x, y, 0.32 * r, r);
        return a < b ? a : b;
    }
    case SHAPES__RING: return fabs(sqrt(x * x + y * y) - 0.775 * r) - 0.225 * r;
    default: return shapes__polygon(g->vx, g->vy, g->nv, px, py);
    }
}

/* tile classification: 0 background, 1 shape colour, 2 mixed. A tile is
   the 4x4 pixels from (tx*4, ty*4); its pixel centres lie within 1.5*sqrt(2)
   of the tile centre, so |sdf(centre)| > 2.75 decides all 16 pixels
   (coverage 0 needs sdf >= 0.5, coverage 1 needs sdf <= -0.5). */
static int shapes__tile_kind(const shapes__geom *g, int tx, int ty) {
    double d;
    if (tx * 4 + 4 <= g->x0 || tx * 4 >= g->x1 || ty * 4 + 4 <= g->y0 || ty * 4 >= g->y1) return 0;
    d = shapes__sdf(g, tx * 4 + 2.0, ty * 4 + 2.0);
    return d > 2.75 ? 0 : d < -2.75 ? 1 : 2;
}

/* one pixel: coverage = clamp(0.5 - sdf(pixel centre), 0, 1), a one-pixel
   box filter across the edge */
static void shapes__pixel(const shapes__geom *g, int x, int y, float *rgb) {
    double d = shapes__sdf(g, x + 0.5, y + 0.5), cv = 0.5 - d;
    float c = (float)(cv < 0 ? 0 : cv > 1 ? 1 : cv);
    int k;
    for (k = 0; k < 3; k++) rgb[k] = g->bg[k] * (1.0f - c) + g->col[k] * c;
}

/* Renders the image [3][height][width] into img. */
static void shapes__render(const shapes__geom *g, int width, int height, float *img) {
    int64_t plane = (int64_t)width * height;
    int x, y, k, tx, ty;
    for (k = 0; k < 3; k++) {
        float *p = img + k * plane, b = g->bg[k];
        int64_t i;
        for (i = 0; i < plane; i++) p[i] = b;
    }
    for (ty = g->y0 / 4; ty * 4 < g->y1; ty++)
        for (tx = g->x0 / 4; tx * 4 < g->x1; tx++) {
            int kind = shapes__tile_kind(g, tx, ty);
            if (kind == 0) continue;
            for (y = ty * 4; y < ty * 4 + 4 && y < height; y++)
                for (x = tx * 4; x < tx * 4 + 4 && x < width; x++) {
                    float rgb[3];
                    if (kind == 1) {
                        rgb[0] = g->col[0];
                        rgb[1] = g->col[1];
                        rgb[2] = g->col[2];
                    } else {
                        shapes__pixel(g, x, y, rgb);
                    }
                    for (k = 0; k < 3; k++) img[k * plane + (int64_t)y * width + x] = rgb[k];
                }
        }
}

/* a float32 contiguous copy (or share) of t */
static mod_status shapes__input(const mt_tensor *t, mt_tensor *c, const char *who, const char *name) {
    mt_status st;
    if (!t || !t->data) return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: %s is empty", who, name);
    st = t->dtype == MT_F32 ? mt_contiguous(c, t) : mt_to_dtype(c, t, MT_F32);
    if (st != MT_OK) return mod_fail(NULL, MOD_ERR_TENSOR, "%s: %s: %s", who, name, mt_last_error());
    return MOD_OK;
}

/* hands tmp to out: moved when out is empty, else copied after a shape check */
static mod_status shapes__output(mt_tensor *out, mt_tensor *tmp, const char *who, const char *name) {
    if (!out->data) {
        mt_move(out, tmp);
        return MOD_OK;
    }
    if (!mt_same_shape(out, tmp)) {
        char a[64], b[64];
        mt_shape_string(out, a, sizeof a);
        mt_shape_string(tmp, b, sizeof b);
        mt_release(tmp);
        return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: %s has shape %s, expected %s", who, name, a, b);
    }
    if (mt_copy(out, tmp) != MT_OK) {
        mt_release(tmp);
        return mod_fail(NULL, MOD_ERR_TENSOR, "%s: %s: %s", who, name, mt_last_error());
    }
    mt_release(tmp);
    return MOD_OK;
}

SHAPESDEF mod_status shapes_set_image(int index, int width, int height, mt_tensor *out) {
    mt_tensor tmp;
    shapes__geom g;
    mod_status s;
    int64_t shape[4];
    memset(&tmp, 0, sizeof tmp);
    if (!out) return mod_fail(NULL, MOD_ERR_ARGUMENT, "shapes_set_image: out is NULL");
    if (index < 0 || index >= SHAPES__COUNT)
        return mod_fail(NULL, MOD_ERR_INDEX, "shapes_set_image: index %d outside [0, %d)", index, SHAPES__COUNT);
    if (width < 8 || height < 8 || width > 16384 || height > 16384)
        return mod_fail(NULL, MOD_ERR_ARGUMENT, "shapes_set_image: size %dx%d outside [8, 16384]", width, height);
    shape[0] = 1;
    shape[1] = 3;
    shape[2] = height;
    shape[3] = width;
    if (out->data && out->ndim == 3) {
        shape[0] = 3;
        shape[1] = height;
        shape[2] = width;
    }
    if (mt_empty(&tmp, MT_F32, out->data && out->ndim == 3 ? 3 : 4, shape) != MT_OK)
        return mod_fail(NULL, MOD_ERR_MEMORY, "shapes_set_image: %s", mt_last_error());
    shapes__geom_init(&g, index, width, height);
    shapes__render(&g, width, height, mt_f32(&tmp));
    s = shapes__output(out, &tmp, "shapes_set_image", "out");
    return s;
}

/* Nearest set image: the squared error to item i is the error to its flat
   background everywhere, corrected on the tiles the shape touches, with
   summed-area tables of the per-pixel error to each flat colour (so only
   the tiles on the shape's edge are rendered). The error outside the
   item's bounding box is a lower bound of the whole: items are visited by
   increasing bound and the search stops when the bound passes the best
   error found, which leaves the answer as an exhaustive search gives it. */
typedef struct shapes__nearest_ctx {
    const float *img;
    int width, height;
    const double *sat; /* [NB + NC][(H + 1) (W + 1)]: backgrounds, then colours */
} shapes__nearest_ctx;

static double shapes__sat_rect(const double *sat, int W, int x0, int y0, int x1, int y1) {
    int64_t W1 = W + 1;
    return sat[(int64_t)y1 * W1 + x1] - sat[(int64_t)y0 * W1 + x1] - sat[(int64_t)y1 * W1 + x0] +
           sat[(int64_t)y0 * W1 + x0];
}

/* squared error to item i (full = 1) or its lower bound (full = 0) */
static double shapes__nearest_sse(const shapes__nearest_ctx *c, int i, int full) {
    int W = c->width, H = c->height;
    int64_t plane = (int64_t)W * H, S1 = (int64_t)(W + 1) * (H + 1);
    shapes__geom g;
    int v[SHAPES_ATTR_COUNT], tx, ty;
    const double *sb, *sc;
    double sse;
    shapes__decode(i, v);
    shapes__geom_init(&g, i, W, H);
    sb = c->sat + v[SHAPES_BACKGROUND] * S1;
    sc = c->sat + (SHAPES__NB + v[SHAPES_COLOR]) * S1;
    sse = sb[S1 - 1];
    if (!full) return sse - shapes__sat_rect(sb, W, g.x0, g.y0, g.x1 > g.x0 ? g.x1 : g.x0, g.y1 > g.y0 ? g.y1 : g.y0);
    for (ty = g.y0 / 4; ty * 4 < g.y1; ty++)
        for (tx = g.x0 / 4; tx * 4 < g.x1; tx++) {
            int kind = shapes__tile_kind(&g, tx, ty), x0 = tx * 4, y0 = ty * 4;
            int x1 = x0 + 4 < W ? x0 + 4 : W, y1 = y0 + 4 < H ? y0 + 4 : H, x, y, k;
            if (kind == 0) continue;
            sse -= shapes__sat_rect(sb, W, x0, y0, x1, y1);
            if (kind == 1) {
                sse += shapes__sat_rect(sc, W, x0, y0, x1, y1);
                continue;
            }
            for (y = y0; y < y1; y++)
                for (x = x0; x < x1; x++) {
                    float rgb[3];
                    shapes__pixel(&g, x, y, rgb);
                    for (k = 0; k < 3; k++) {
                        double d = (double)c->img[k * plane + (int64_t)y * W + x] - (double)rgb[k];
                        sse += d * d;
                    }
                }
        }
    return sse;
}

typedef struct shapes__bound {
    double lb;
    int index;
} shapes__bound;

static int shapes__bound_cmp(const void *a, const void *b) {
    const shapes__bound *x = (const shapes__bound *)a, *y = (const shapes__bound *)b;
    if (x->lb != y->lb) return x->lb < y->lb ? -1 : 1;
    return x->index - y->index;
}

SHAPESDEF mod_status shapes_set_nearest(const mt_tensor *image, int *index, double *mse) {
    mt_tensor img;
    shapes__nearest_ctx ctx;
    double *all, *sat;
    const float *px;
    shapes__bound *order;
    int i, best = -1, H, W, f, x, y;
    int64_t S1, plane;
    double best_sse = HUGE_VAL;
    mod_status s;
    memset(&img, 0, sizeof img);
    if (!index) return mod_fail(NULL, MOD_ERR_ARGUMENT, "shapes_set_nearest: index is NULL");
    if (!image || !image->data) return mod_fail(NULL, MOD_ERR_ARGUMENT, "shapes_set_nearest: image is empty");
    if (!((image->ndim == 3 && image->shape[0] == 3) ||
          (image->ndim == 4 && image->shape[0] == 1 && image->shape[1] == 3))) {
        char b[64];
        mt_shape_string(image, b, sizeof b);
        return mod_fail(NULL, MOD_ERR_ARGUMENT,
                        "shapes_set_nearest: image has shape %s, expected [3, H, W] or [1, 3, H, W]", b);
    }
    H = (int)image->shape[image->ndim - 2];
    W = (int)image->shape[image->ndim - 1];
    if (W < 8 || H < 8 || W > 16384 || H > 16384)
        return mod_fail(NULL, MOD_ERR_ARGUMENT, "shapes_set_nearest: size %dx%d outside [8, 16384]", W, H);
    if ((s = shapes__input(image, &img, "shapes_set_nearest", "image")) != MOD_OK) return s;
    S1 = (int64_t)(W + 1) * (H + 1);
    plane = (int64_t)W * H;
    all = (double *)SHAPES_MALLOC(((size_t)0 + (size_t)(SHAPES__NB + SHAPES__NC) * S1) * sizeof(double) +
                                  SHAPES__COUNT * sizeof(shapes__bound));
    if (!all) {
        mt_release(&img);
        return mod_fail(NULL, MOD_ERR_MEMORY, "shapes_set_nearest: out of memory for a %dx%d image", W, H);
    }
    sat = all;
    px = mt_f32(&img);
    for (f = 0; f < SHAPES__NB + SHAPES__NC; f++) {
        const unsigned char *rgb = f < SHAPES__NB ? shapes__background_rgb[f] : shapes__color_rgb[f - SHAPES__NB];
        double *t = sat + f * S1, c[3];
        int k;
        for (k = 0; k < 3; k++) c[k] = (double)shapes__unit(rgb[k]);
        for (x = 0; x <= W; x++) t[x] = 0;
        for (y = 0; y < H; y++) {
            double row = 0;
            t[(int64_t)(y + 1) * (W + 1)] = 0;
            for (x = 0; x < W; x++) {
                double e = 0;
                for (k = 0; k < 3; k++) {
                    double d = (double)px[k * plane + (int64_t)y * W + x] - c[k];
                    e += d * d;
                }
                row += e;
                t[(int64_t)(y + 1) * (W + 1) + x + 1] = t[(int64_t)y * (W + 1) + x + 1] + row;
            }
        }
    }
    ctx.img = px;
    ctx.width = W;
    ctx.height = H;
    ctx.sat = sat;
    order = (shapes__bound *)(sat + (SHAPES__NB + SHAPES__NC) * S1);
    for (i = 0; i < SHAPES__COUNT; i++) {
        order[i].lb = shapes__nearest_sse(&ctx, i, 0);
        order[i].index = i;
    }
    qsort(order, SHAPES__COUNT, sizeof *order, shapes__bound_cmp);
    for (i = 0; i < SHAPES__COUNT; i++) {
        double e;
        /* the margin covers rounding in the table differences (errors are
           at most 4 per value) */
        if (order[i].lb > best_sse + 1e-10 * 12.0 * (double)plane) break;
        e = shapes__nearest_sse(&ctx, order[i].index, 1);
        if (e < best_sse || (e == best_sse && order[i].index < best)) {
            best_sse = e;
            best = order[i].index;
        }
    }
    *index = best;
    if (mse) *mse = (best_sse > 0 ? best_sse : 0) / (3.0 * (double)plane);
    SHAPES_FREE(all);
    mt_release(&img);
    return MOD_OK;
}

/* ======================================================================
   Prompts
   ====================================================================== */

/* Reads the next word (ASCII letters and digits, lowercased, at most
   size - 1 kept) from *p; returns 0 at the end. */
static int shapes__word(const char **p, char *buf, size_t size) {
    const char *s = *p;
    size_t n = 0;
    while (*s && !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9'))) s++;
    if (!*s) {
        *p = s;
        return 0;
    }
    while ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')) {
        if (n + 1 < size) buf[n++] = (char)(*s >= 'A' && *s <= 'Z' ? *s - 'A' + 'a' : *s);
        s++;
    }
    buf[n] = '\0';
    *p = s;
    return 1;
}

static int shapes__in(const char *w, const char *const *list) {
    int i;
    for (i = 0; list[i]; i++)
        if (strcmp(w, list[i]) == 0) return 1;
    return 0;
}

static const char *const shapes__stopwords[] = {"a",    "an",   "the",  "on",  "in",       "at",        "of",
                                                "with", "and",  "to",   "is",  "its",      "one",       "side",
                                                "some", "over", "upon", "coloured", "colored",   "shape",
                                                "shaped", NULL};

/* synonyms and plurals onto vocabulary spellings (in place) */
static void shapes__normalize(char *w) {
    static const char *const syn[][2] = {
        {"grey", "gray"},     {"centre", "center"},   {"middle", "center"}, {"centered", "center"},
        {"centred", "center"}, {"central", "center"},  {"big", "large"},     {"huge", "large"},
        {"little", "small"},  {"tiny", "small"},      {"violet", "purple"}, {"disc", "circle"},
        {"disk", "circle"},   {"plus", "cross"},      {"donut", "ring"},    {"doughnut", "ring"},
        {"rhombus", "diamond"}, {"upper", "top"},     {"lower", "bottom"},  {"backdrop", "background"}};
    size_t i, n = strlen(w);
    for (i = 0; i < sizeof syn / sizeof syn[0]; i++)
        if (strcmp(w, syn[i][0]) == 0) {
            strcpy(w, syn[i][1]);
            return;
        }
    if (n > 2 && w[n - 1] == 's') {
        char t[64];
        if (n - 1 >= sizeof t) return;
        memcpy(t, w, n - 1);
        t[n - 1] = '\0';
        if (n > 3 && t[n - 2] == 'e') {
            t[n - 2] = '\0'; /* crosses -> cross */
            if (shapes_vocab_find(SHAPES_SHAPE, t) >= 0 || strcmp(t, "background") == 0) {
                strcpy(w, t);
                return;
            }
            t[n - 2] = 'e';
        }
        shapes__normalize(t);
        if (shapes_vocab_find(SHAPES_SHAPE, t) >= 0 || strcmp(t, "background") == 0) strcpy(w, t);
    }
}

/* appends `word` to the unknown list unless already there */
static void shapes__unknown_add(char *buf, size_t size, const char *word) {
    size_t len, wl = strlen(word);
    const char *p;
    if (!buf || size == 0) return;
    len = strlen(buf);
    if (len >= 3 && strcmp(buf + len - 3, "...") == 0) return; /* already truncated */
    for (p = buf; (p = strstr(p, word)) != NULL; p += wl)
        if ((p == buf || (p >= buf + 2 && p[-2] == ',' && p[-1] == ' ')) && (p[wl] == '\0' || p[wl] == ','))
            return;
    if (len + (len ? 2 : 0) + wl + 1 <= size) {
        if (len) {
            buf[len++] = ',';
            buf[len++] = ' ';
        }
        memcpy(buf + len, word, wl + 1);
    } else if (len + (len ? 2 : 0) + 4 <= size) {
        memcpy(buf + len, len ? ", ..." : "...", len ? 6 : 4);
    } else if (size >= 4) {
        memcpy(buf + size - 4, "...", 4);
    }
}

static void shapes__token(shapes_prompt *o, int attr, int value) {
    if (o->value[attr] < 0) o->value[attr] = value;
    if (o->n_tokens < SHAPES_MAX_TOKENS) {
        o->token_attr[o->n_tokens] = attr;
        o->token_value[o->n_tokens] = value;
    }
    o->n_tokens++;
}

/* append: add to the words already in `unknown` */
static int shapes__parse(const char *prompt, shapes_prompt *out, char *unknown, size_t unknown_size, int append) {
    shapes_prompt o;
    const char *p = prompt ? prompt : "";
    char w[64];
    int a, seen_shape = 0, words = 0;
    memset(&o, 0, sizeof o);
    for (a = 0; a < SHAPES_ATTR_COUNT; a++) o.value[a] = -1;
    if (unknown && unknown_size && !append) unknown[0] = '\0';
    while (shapes__word(&p, w, sizeof w)) {
        int v, col, bg;
        words++;
        shapes__normalize(w);
        if (shapes__in(w, shapes__stopwords) || strcmp(w, "background") == 0) continue;
        if ((v = shapes_vocab_find(SHAPES_SHAPE, w)) >= 0) {
            shapes__token(&o, SHAPES_SHAPE, v);
            seen_shape = 1;
            continue;
        }
        if ((v = shapes_vocab_find(SHAPES_SIZE, w)) >= 0) {
            shapes__token(&o, SHAPES_SIZE, v);
            continue;
        }
        if ((v = shapes_vocab_find(SHAPES_POSITION, w)) >= 0) {
            shapes__token(&o, SHAPES_POSITION, v);
            continue;
        }
        col = shapes_vocab_find(SHAPES_COLOR, w);
        bg = shapes_vocab_find(SHAPES_BACKGROUND, w);
        if (col >= 0 || bg >= 0) {
            /* does the next word (filler skipped) say "background"? */
            const char *q = p;
            char nx[64];
            int next_bg = 0;
            while (shapes__word(&q, nx, sizeof nx)) {
                shapes__normalize(nx);
                if (shapes__in(nx, shapes__stopwords)) continue;
                next_bg = strcmp(nx, "background") == 0;
                break;
            }
            if (next_bg && bg < 0) {
                char phrase[80];
                snprintf(phrase, sizeof phrase, "%s background", w);
                shapes__unknown_add(unknown, unknown_size, phrase);
                o.n_unknown++;
            } else if (bg >= 0 && (next_bg || col < 0 || seen_shape)) {
                shapes__token(&o, SHAPES_BACKGROUND, bg);
            } else {
                shapes__token(&o, SHAPES_COLOR, col);
            }
            continue;
        }
        shapes__unknown_add(unknown, unknown_size, w);
        o.n_unknown++;
    }
    o.empty = words == 0;
    if (o.n_tokens > SHAPES_MAX_TOKENS) o.n_tokens = SHAPES_MAX_TOKENS;
    if (out) *out = o;
    return o.n_unknown;
}

SHAPESDEF int shapes_parse_prompt(const char *prompt, shapes_prompt *out, char *unknown, size_t unknown_size) {
    return shapes__parse(prompt, out, unknown, unknown_size, 0);
}

/* ======================================================================
   Config strings
   ====================================================================== */

/* Next "key=value" item of *p (space or comma separated); 0 at the end,
   -1 (after recording a message) when malformed. */
static int shapes__config_next(const char **p, char *key, size_t ks, char *val, size_t vs, const char *who) {
    const char *s = *p, *b, *eq = NULL;
    size_t n;
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == ',') s++;
    if (!*s) {
        *p = s;
        return 0;
    }
    b = s;
    while (*s && *s != ' ' && *s != '\t' && *s != '\n' && *s != '\r' && *s != ',') {
        if (*s == '=' && !eq) eq = s;
        s++;
    }
    *p = s;
    if (!eq || eq == b || eq + 1 == s) {
        mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: config item '%.*s' is not key=value", who, (int)(s - b), b);
        return -1;
    }
    n = (size_t)(eq - b);
    if (n >= ks || (size_t)(s - eq - 1) >= vs) {
        mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: config item '%.*s' is too long", who, (int)(s - b), b);
        return -1;
    }
    memcpy(key, b, n);
    key[n] = '\0';
    n = (size_t)(s - eq - 1);
    memcpy(val, eq + 1, n);
    val[n] = '\0';
    return 1;
}

static int shapes__parse_double(const char *s, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v == v) || v > 1e300 || v < -1e300) return 0;
    *out = v;
    return 1;
}

static int shapes__parse_int(const char *s, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < -1000000000L || v > 1000000000L) return 0;
    *out = (int)v;
    return 1;
}

/* ======================================================================
   The shared model: fitted autoencoder and the set's latents
   ====================================================================== */

enum { SHAPES__P = 48, SHAPES__F = 37 }; /* patch values, decoder features (+ bias) */
enum { SHAPES__FIT_SIZE = 64, SHAPES__FIT_STRIDE = 11 };

/* The set's scaled latents at one latent size h x w. Item i equals its
   background's flat latent everywhere but on its segments: runs of latent
   positions (row y, columns xa <= x < xb) that hold the flat latent of the
   item's colour (kind 1) or anything else (kind 2, the edge of the shape,
   whose values are stored at data[off ...] as [4][xb - xa]). Segments are
   sorted by row, then column. */
typedef struct shapes__seg {
    int16_t y, xa, xb, kind;
    int32_t off;
} shapes__seg;

typedef struct shapes__res {
    int h, w;
    int64_t *seg_begin; /* [count + 1]: item i's segments are seg[seg_begin[i] .. seg_begin[i + 1]) */
    shapes__seg *seg;
    float *data;
    struct shapes__res *next;
} shapes__res;

typedef struct shapes_model {
    int refs; /* guarded by the registry lock */
    float enc_w[SHAPES_LATENT_CHANNELS][SHAPES__P];
    float enc_b[SHAPES_LATENT_CHANNELS];
    float dec_w[SHAPES__F][SHAPES__P]; /* rows: (dy, dx, channel) of the 3x3 neighbourhood, then bias */
    double scaling_factor;             /* exactly a float */
    float color_latent[SHAPES__NC][SHAPES_LATENT_CHANNELS]; /* scaled latents of flat patches */
    float bg_latent[SHAPES__NB][SHAPES_LATENT_CHANNELS];
    shapes__mutex mu; /* guards res */
    shapes__res *res;
} shapes_model;

/* z = W p + b, float, fixed order; p is [c][dy][dx] */
static void shapes__encode_patch(const shapes_model *m, const float *p, float *z) {
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    int j;
    for (j = 0; j < SHAPES__P; j++) { /* each sum in the order j = 0..47 */
        float pj = p[j];
        a0 += m->enc_w[0][j] * pj;
        a1 += m->enc_w[1][j] * pj;
        a2 += m->enc_w[2][j] * pj;
        a3 += m->enc_w[3][j] * pj;
    }
    z[0] = a0 + m->enc_b[0];
    z[1] = a1 + m->enc_b[1];
    z[2] = a2 + m->enc_b[2];
    z[3] = a3 + m->enc_b[3];
}

/* the 48 values of the 4x4 patch at latent (ty, tx) of an image [3][H][W] */
static void shapes__gather_patch(const float *img, int64_t H, int64_t W, int64_t ty, int64_t tx, float *p) {
    int c, dy, dx;
    for (c = 0; c < 3; c++)
        for (dy = 0; dy < 4; dy++)
            for (dx = 0; dx < 4; dx++) p[(c * 4 + dy) * 4 + dx] = img[(c * H + ty * 4 + dy) * W + tx * 4 + dx];
}

/* Symmetric eigen-decomposition by cyclic Jacobi rotations: a [n][n] is
   destroyed, vec [n][n] gets the eigenvectors as columns, val the values. */
static void shapes__jacobi(double *a, int n, double *vec, double *val) {
    int i, j, p, q, sweep;
    for (i = 0; i < n; i++)
        for (j = 0; j < n; j++) vec[i * n + j] = i == j;
    for (sweep = 0; sweep < 100; sweep++) {
        double off = 0, diag = 0;
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++) {
                if (i != j)
                    off += a[i * n + j] * a[i * n + j];
                else
                    diag += a[i * n + j] * a[i * n + j];
            }
        if (off <= 1e-26 * diag || off == 0) break;
        for (p = 0; p < n - 1; p++)
            for (q = p + 1; q < n; q++) {
                double apq = a[p * n + q], theta, t, c, s;
                if (fabs(apq) < 1e-300) continue;
                theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
                t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
                c = 1 / sqrt(t * t + 1);
                s = t * c;
                for (i = 0; i < n; i++) { /* columns p, q */
                    double aip = a[i * n + p], aiq = a[i * n + q];
                    a[i * n + p] = c * aip - s * aiq;
                    a[i * n + q] = s * aip + c * aiq;
                }
                for (i = 0; i < n; i++) { /* rows p, q */
                    double api = a[p * n + i], aqi = a[q * n + i];
                    a[p * n + i] = c * api - s * aqi;
                    a[q * n + i] = s * api + c * aqi;
                }
                for (i = 0; i < n; i++) {
                    double vip = vec[i * n + p], viq = vec[i * n + q];
                    vec[i * n + p] = c * vip - s * viq;
                    vec[i * n + q] = s * vip + c * viq;
                }
            }
    }
    for (i = 0; i < n; i++) val[i] = a[i * n + i];
}

/* Solves a x = b for the SPD a [n][n] (destroyed) and m right-hand sides
   b [n][m] (overwritten by x). Returns 0 when a is not positive definite. */
static int shapes__cholesky_solve(double *a, int n, double *b, int m) {
    int i, j, k;
    for (j = 0; j < n; j++) {
        double d = a[j * n + j];
        for (k = 0; k < j; k++) d -= a[j * n + k] * a[j * n + k];
        if (!(d > 0)) return 0;
        d = sqrt(d);
        a[j * n + j] = d;
        for (i = j + 1; i < n; i++) {
            double s = a[i * n + j];
            for (k = 0; k < j; k++) s -= a[i * n + k] * a[j * n + k];
            a[i * n + j] = s / d;
        }
    }
    for (k = 0; k < m; k++) {
        for (i = 0; i < n; i++) { /* L y = b */
            double s = b[i * m + k];
            for (j = 0; j < i; j++) s -= a[i * n + j] * b[j * m + k];
            b[i * m + k] = s / a[i * n + i];
        }
        for (i = n - 1; i >= 0; i--) { /* L^T x = y */
            double s = b[i * m + k];
            for (j = i + 1; j < n; j++) s -= a[j * n + i] * b[j * m + k];
            b[i * m + k] = s / a[i * n + i];
        }
    }
    return 1;
}

/* Fits the autoencoder on every SHAPES__FIT_STRIDE-th item at 64x64.
   Flat patches (one colour) and rows whose whole neighbourhood is one flat
   colour repeat many times: they are counted per colour and added once. */
static mod_status shapes__fit(shapes_model *m) {
    enum { S = SHAPES__FIT_SIZE, T = S / 4, P = SHAPES__P, F = SHAPES__F, NF = SHAPES__NC + SHAPES__NB };
    int nfit = (SHAPES__COUNT + SHAPES__FIT_STRIDE - 1) / SHAPES__FIT_STRIDE;
    int64_t ntile = (int64_t)nfit * T * T;
    float *img = (float *)SHAPES_MALLOC((size_t)nfit * 3 * S * S * sizeof(float));
    float *lat = (float *)SHAPES_MALLOC((size_t)ntile * 4 * sizeof(float));
    unsigned char *cls = (unsigned char *)SHAPES_MALLOC((size_t)ntile);
    double *cov = (double *)SHAPES_MALLOC((size_t)(P * P * 2 + P + P + F * F + F * P) * sizeof(double));
    double *vec, *mean, *val, *A, *B, npatch = 0, sum2 = 0, sum1 = 0, ridge = 0, cnt[NF];
    float flat_p[NF][SHAPES__P], flat_z[NF][4];
    int it, i, j, k, q, order[SHAPES__P];
    if (!img || !lat || !cls || !cov) {
        SHAPES_FREE(img);
        SHAPES_FREE(lat);
        SHAPES_FREE(cls);
        SHAPES_FREE(cov);
        return mod_fail(NULL, MOD_ERR_MEMORY, "shapes model: out of memory fitting the autoencoder");
    }
    vec = cov + P * P;
    mean = vec + P * P;
    val = mean + P;
    A = val + P;
    B = A + F * F;
    memset(cov, 0, (size_t)(P * P * 2 + P + P + F * F + F * P) * sizeof(double));
    for (q = 0; q < NF; q++) {
        const unsigned char *rgb = q < SHAPES__NC ? shapes__color_rgb[q] : shapes__background_rgb[q - SHAPES__NC];
        for (i = 0; i < P; i++) flat_p[q][i] = shapes__unit(rgb[i / 16]);
    }

    /* the fit images, and each tile's flat colour class (255: not flat) */
    for (it = 0; it < nfit; it++) {
        shapes__geom g;
        int v[SHAPES_ATTR_COUNT], ty, tx;
        shapes__decode(it * SHAPES__FIT_STRIDE, v);
        shapes__geom_init(&g, it * SHAPES__FIT_STRIDE, S, S);
        shapes__render(&g, S, S, img + (int64_t)it * 3 * S * S);
        for (ty = 0; ty < T; ty++)
            for (tx = 0; tx < T; tx++) {
                int kind = shapes__tile_kind(&g, tx, ty);
                cls[((int64_t)it * T + ty) * T + tx] =
                    (unsigned char)(kind == 0 ? SHAPES__NC + v[SHAPES_BACKGROUND] : kind == 1 ? v[SHAPES_COLOR] : 255);
            }
    }

    /* 1. principal components of the 4x4 patches */
    for (q = 0; q < NF; q++) cnt[q] = 0;
    for (it = 0; it < nfit; it++) {
        int ty, tx;
        for (ty = 0; ty < T; ty++)
            for (tx = 0; tx < T; tx++) {
                float p[SHAPES__P];
                int c = cls[((int64_t)it * T + ty) * T + tx];
                npatch += 1;
                if (c != 255) {
                    cnt[c] += 1;
                    continue;
                }
                shapes__gather_patch(img + (int64_t)it * 3 * S * S, S, S, ty, tx, p);
                for (i = 0; i < P; i++) {
                    mean[i] += p[i];
                    for (j = i; j < P; j++) cov[i * P + j] += (double)p[i] * p[j];
                }
            }
    }
    for (q = 0; q < NF; q++)
        for (i = 0; i < P; i++) {
            mean[i] += cnt[q] * flat_p[q][i];
            for (j = i; j < P; j++) cov[i * P + j] += cnt[q] * (double)flat_p[q][i] * flat_p[q][j];
        }
    for (i = 0; i < P; i++) mean[i] /= npatch;
    for (i = 0; i < P; i++)
        for (j = i; j < P; j++) cov[j * P + i] = cov[i * P + j] = cov[i * P + j] / npatch - mean[i] * mean[j];
    shapes__jacobi(cov, P, vec, val);
    for (i = 0; i < P; i++) order[i] = i;
    for (i = 1; i < P; i++) /* insertion sort, descending */
        for (j = i; j > 0 && val[order[j]] > val[order[j - 1]]; j--) {
            k = order[j];
            order[j] = order[j - 1];
            order[j - 1] = k;
        }
    for (k = 0; k < SHAPES_LATENT_CHANNELS; k++) {
        int c = order[k], big = 0;
        double s = 0, b = 0, sign;
        for (i = 0; i < P; i++) {
            s += vec[i * P + c];
            if (fabs(vec[i * P + c]) > fabs(vec[big * P + c])) big = i;
        }
        sign = fabs(s) > 1e-6 ? (s > 0 ? 1 : -1) : (vec[big * P + c] > 0 ? 1 : -1); /* fixed sign */
        for (i = 0; i < P; i++) {
            m->enc_w[k][i] = (float)(sign * vec[i * P + c]);
            b -= sign * vec[i * P + c] * mean[i];
        }
        m->enc_b[k] = (float)b;
    }

    /* 2. latents of the fit images (flat tiles encode to their class's
       latent: same function, same input) and the scaling factor */
    for (q = 0; q < NF; q++) shapes__encode_patch(m, flat_p[q], flat_z[q]);
    for (it = 0; it < nfit; it++) {
        int ty, tx;
        for (ty = 0; ty < T; ty++)
            for (tx = 0; tx < T; tx++) {
                int64_t t = ((int64_t)it * T + ty) * T + tx;
                float p[SHAPES__P], *z = lat + t * 4;
                if (cls[t] != 255) {
                    memcpy(z, flat_z[cls[t]], 4 * sizeof(float));
                } else {
                    shapes__gather_patch(img + (int64_t)it * 3 * S * S, S, S, ty, tx, p);
                    shapes__encode_patch(m, p, z);
                }
                for (k = 0; k < 4; k++) {
                    sum1 += z[k];
                    sum2 += (double)z[k] * z[k];
                }
            }
    }
    {
        double n = npatch * 4, var = sum2 / n - (sum1 / n) * (sum1 / n);
        m->scaling_factor = (double)(float)(1.0 / sqrt(var));
    }

    /* 3. least-squares decoder from the 3x3 latent neighbourhood (edges
       replicated) to the patch */
    for (q = 0; q < NF; q++) cnt[q] = 0;
    for (it = 0; it < nfit; it++) {
        int ty, tx;
        for (ty = 0; ty < T; ty++)
            for (tx = 0; tx < T; tx++) {
                double f[SHAPES__F];
                float p[SHAPES__P];
                int dy, dx, n = 0, c = cls[((int64_t)it * T + ty) * T + tx], same = c != 255;
                for (dy = -1; dy <= 1; dy++)
                    for (dx = -1; dx <= 1; dx++) {
                        int yy = ty + dy < 0 ? 0 : ty + dy >= T ? T - 1 : ty + dy;
                        int xx = tx + dx < 0 ? 0 : tx + dx >= T ? T - 1 : tx + dx;
                        int64_t t = ((int64_t)it * T + yy) * T + xx;
                        const float *z = lat + t * 4;
                        if (cls[t] != c) same = 0;
                        for (k = 0; k < 4; k++) f[n++] = z[k];
                    }
                if (same) {
                    cnt[c] += 1;
                    continue;
                }
                f[n] = 1.0;
                shapes__gather_patch(img + (int64_t)it * 3 * S * S, S, S, ty, tx, p);
                for (i = 0; i < F; i++) {
                    for (j = i; j < F; j++) A[i * F + j] += f[i] * f[j];
                    for (j = 0; j < P; j++) B[i * P + j] += f[i] * p[j];
                }
            }
    }
    for (q = 0; q < NF; q++) {
        double f[SHAPES__F];
        for (i = 0; i < F - 1; i++) f[i] = flat_z[q][i % 4];
        f[F - 1] = 1.0;
        for (i = 0; i < F; i++) {
            for (j = i; j < F; j++) A[i * F + j] += cnt[q] * f[i] * f[j];
            for (j = 0; j < P; j++) B[i * P + j] += cnt[q] * f[i] * flat_p[q][j];
        }
    }
    for (i = 0; i < F; i++) {
        for (j = 0; j < i; j++) A[i * F + j] = A[j * F + i];
        ridge += A[i * F + i];
    }
    ridge = 1e-9 * ridge / F;
    for (i = 0; i < F; i++) A[i * F + i] += ridge;
    SHAPES_FREE(img);
    SHAPES_FREE(lat);
    SHAPES_FREE(cls);
    if (!shapes__cholesky_solve(A, F, B, P)) {
        SHAPES_FREE(cov);
        return mod_fail(NULL, MOD_ERR_ARGUMENT, "shapes model: the decoder's normal equations are singular");
    }
    for (i = 0; i < F; i++)
        for (j = 0; j < P; j++) m->dec_w[i][j] = (float)B[i * P + j];
    SHAPES_FREE(cov);

    /* 4. scaled latents of flat patches */
    for (q = 0; q < NF; q++) {
        float sf = (float)m->scaling_factor;
        float *dst = q < SHAPES__NC ? m->color_latent[q] : m->bg_latent[q - SHAPES__NC];
        for (i = 0; i < 4; i++) dst[i] = flat_z[q][i] * sf;
    }
    return MOD_OK;
}

static void shapes__res_free(shapes__res *r) {
    if (!r) return;
    SHAPES_FREE(r->seg_begin);
    SHAPES_FREE(r->seg);
    SHAPES_FREE(r->data);
    SHAPES_FREE(r);
}

static void shapes__model_free(shapes_model *m) {
    shapes__res *r, *next;
    if (!m) return;
    for (r = m->res; r; r = next) {
        next = r->next;
        shapes__res_free(r);
    }
    shapes__mutex_free(&m->mu);
    SHAPES_FREE(m);
}

/* the process-wide model */
static shapes__mutex shapes__registry_mu = SHAPES__MUTEX_INIT;
static shapes_model *shapes__shared;

static mod_status shapes__model_acquire(shapes_model **out) {
    mod_status s = MOD_OK;
    shapes__lock(&shapes__registry_mu);
    if (!shapes__shared) {
        shapes_model *m = (shapes_model *)SHAPES_MALLOC(sizeof(shapes_model));
        if (!m) {
            shapes__unlock(&shapes__registry_mu);
            return mod_fail(NULL, MOD_ERR_MEMORY, "shapes model: out of memory");
        }
        memset(m, 0, sizeof *m);
        if (!shapes__mutex_init(&m->mu)) {
            SHAPES_FREE(m);
            shapes__unlock(&shapes__registry_mu);
            return mod_fail(NULL, MOD_ERR_MEMORY, "shapes model: cannot create a mutex");
        }
        if ((s = shapes__fit(m)) != MOD_OK) {
            shapes__model_free(m);
            shapes__unlock(&shapes__registry_mu);
            return s;
        }
        shapes__shared = m;
    }
    shapes__shared->refs++;
    *out = shapes__shared;
    shapes__unlock(&shapes__registry_mu);
    return MOD_OK;
}

static void shapes__model_release(shapes_model *m) {
    int last;
    if (!m) return;
    shapes__lock(&shapes__registry_mu);
    last = --m->refs == 0;
    if (last && shapes__shared == m) shapes__shared = NULL;
    shapes__unlock(&shapes__registry_mu);
    if (last) shapes__model_free(m);
}

SHAPESDEF int shapes_model_refs(void) {
    int n;
    shapes__lock(&shapes__registry_mu);
    n = shapes__shared ? shapes__shared->refs : 0;
    shapes__unlock(&shapes__registry_mu);
    return n;
}

/* ---- the set's latents at one size ---- */

typedef struct shapes__build_ctx {
    const shapes_model *m;
    shapes__res *r;
    int64_t *nseg;  /* [count] segments per item (counting pass) */
    int64_t *ndata; /* [count] stored floats per item (counting pass); then offsets */
    int fill;       /* 0: count, 1: fill */
} shapes__build_ctx;

/* the scaled latent of the mixed tile (tx, ty) */
static void shapes__tile_latent(const shapes_model *m, const shapes__geom *g, int tx, int ty, float *z) {
    float p[SHAPES__P], sf = (float)m->scaling_factor;
    int dy, dx, k;
    for (dy = 0; dy < 4; dy++)
        for (dx = 0; dx < 4; dx++) {
            float rgb[3];
            shapes__pixel(g, tx * 4 + dx, ty * 4 + dy, rgb);
            for (k = 0; k < 3; k++) p[(k * 4 + dy) * 4 + dx] = rgb[k];
        }
    shapes__encode_patch(m, p, z);
    for (k = 0; k < 4; k++) z[k] *= sf;
}

static void shapes__build_range(void *vctx, int64_t begin, int64_t end) {
    shapes__build_ctx *c = (shapes__build_ctx *)vctx;
    shapes__res *r = c->r;
    int64_t i;
    for (i = begin; i < end; i++) {
        shapes__geom g;
        int ty, tx, ty0, ty1, tx0, tx1;
        int64_t ns = 0, nd = 0;
        shapes__seg *seg = c->fill ? r->seg + r->seg_begin[i] : NULL;
        float *data = c->fill ? r->data + c->ndata[i] : NULL;
        shapes__geom_init(&g, (int)i, r->w * 4, r->h * 4);
        ty0 = g.y0 / 4;
        ty1 = (g.y1 + 3) / 4;
        tx0 = g.x0 / 4;
        tx1 = (g.x1 + 3) / 4;
        for (ty = ty0; ty < ty1; ty++) {
            int run_kind = 0, run_start = tx0;
            for (tx = tx0; tx <= tx1; tx++) {
                int kind = tx < tx1 ? shapes__tile_kind(&g, tx, ty) : 0;
                if (kind == run_kind) continue;
                if (run_kind) { /* close the run [run_start, tx) */
                    if (seg) {
                        shapes__seg *sg = seg + ns;
                        sg->y = (int16_t)ty;
                        sg->xa = (int16_t)run_start;
                        sg->xb = (int16_t)tx;
                        sg->kind = (int16_t)run_kind;
                        sg->off = (int32_t)(c->ndata[i] + nd);
                        if (run_kind == 2) {
                            int n = tx - run_start, x, k;
                            for (x = run_start; x < tx; x++) {
                                float z[4];
                                shapes__tile_latent(c->m, &g, x, ty, z);
                                for (k = 0; k < 4; k++) data[nd + (int64_t)k * n + (x - run_start)] = z[k];
                            }
                        }
                    }
                    ns++;
                    if (run_kind == 2) nd += (int64_t)4 * (tx - run_start);
                }
                run_kind = kind;
                run_start = tx;
            }
        }
        if (!c->fill) {
            c->nseg[i] = ns;
            c->ndata[i] = nd;
        }
    }
}

/* The latents at h x w, computed on first use (under the model's lock). */
static mod_status shapes__latents(shapes_model *m, int h, int w, const shapes__res **out) {
    shapes__res *r;
    shapes__build_ctx ctx;
    int64_t nseg = 0, ndata = 0, *count = NULL;
    int i;
    if (h > 8192 || w > 8192)
        return mod_fail(NULL, MOD_ERR_ARGUMENT, "shapes unet: latent size %dx%d is larger than 8192", h, w);
    shapes__lock(&m->mu);
    for (r = m->res; r; r = r->next)
        if (r->h == h && r->w == w) {
            shapes__unlock(&m->mu);
            *out = r;
            return MOD_OK;
        }
    r = (shapes__res *)SHAPES_MALLOC(sizeof(shapes__res));
    count = (int64_t *)SHAPES_MALLOC((size_t)SHAPES__COUNT * 2 * sizeof(int64_t));
    if (r) {
        memset(r, 0, sizeof *r);
        r->seg_begin = (int64_t *)SHAPES_MALLOC((size_t)(SHAPES__COUNT + 1) * sizeof(int64_t));
    }
    if (!r || !r->seg_begin || !count) goto oom;
    r->h = h;
    r->w = w;
    ctx.m = m;
    ctx.r = r;
    ctx.nseg = count;
    ctx.ndata = count + SHAPES__COUNT;
    ctx.fill = 0;
    mt_parallel_for(SHAPES__COUNT, 8, shapes__build_range, &ctx);
    for (i = 0; i < SHAPES__COUNT; i++) {
        int64_t nd = ctx.ndata[i];
        r->seg_begin[i] = nseg;
        nseg += ctx.nseg[i];
        ctx.ndata[i] = ndata; /* now the offset */
        ndata += nd;
    }
    r->seg_begin[SHAPES__COUNT] = nseg;
    if (ndata > 0x7fffffff) {
        shapes__res_free(r);
        SHAPES_FREE(count);
        shapes__unlock(&m->mu);
        return mod_fail(NULL, MOD_ERR_ARGUMENT, "shapes unet: latent size %dx%d is too large", h, w);
    }
    r->seg = (shapes__seg *)SHAPES_MALLOC((size_t)(nseg > 0 ? nseg : 1) * sizeof(shapes__seg));
    r->data = (float *)SHAPES_MALLOC((size_t)(ndata > 0 ? ndata : 1) * sizeof(float));
    if (!r->seg || !r->data) goto oom;
    ctx.fill = 1;
    mt_parallel_for(SHAPES__COUNT, 8, shapes__build_range, &ctx);
    SHAPES_FREE(count);
    r->next = m->res;
    m->res = r;
    shapes__unlock(&m->mu);
    *out = r;
    return MOD_OK;
oom:
    shapes__res_free(r);
    SHAPES_FREE(count);
    shapes__unlock(&m->mu);
    return mod_fail(NULL, MOD_ERR_MEMORY, "shapes unet: out of memory for the set's latents at %dx%d", h, w);
}

/* ======================================================================
   Text encoder
   ====================================================================== */

enum { SHAPES__MAGIC_TE = 0x53544531, SHAPES__MAGIC_VAE = 0x53564145, SHAPES__MAGIC_UNET = 0x53554e31 };

typedef struct shapes__te {
    df_text_encoder iface; /* first: the component value points here */
    int magic;
} shapes__te;

static mod_status shapes__te_encode(void *self, const char *const *prompts, int n, mt_tensor *embeds, char *unknown,
                                    size_t unknown_size) {
    shapes__te *te = (shapes__te *)self;
    mt_tensor tmp;
    int64_t shape[3];
    float *e;
    int i, t;
    memset(&tmp, 0, sizeof tmp);
    if (unknown && unknown_size) unknown[0] = '\0';
    if (!te || te->magic != SHAPES__MAGIC_TE)
        return mod_fail(NULL, MOD_ERR_ARGUMENT, "shapes text_encoder: self is not a shapes text encoder");
    if (n < 1 || !prompts || !embeds)
        return mod_fail(NULL, MOD_ERR_ARGUMENT, "shapes text_encoder: need n >= 1 prompts and an output (n = %d)", n);
    shape[0] = n;
    shape[1] = te->iface.seq_len;
    shape[2] = SHAPES_EMBED_DIM;
    if (mt_zeros(&tmp, MT_F32, 3, shape) != MT_OK)
        return mod_fail(NULL, MOD_ERR_MEMORY, "shapes text_encoder: %s", mt_last_error());
    e = mt_f32(&tmp);
    for (i = 0; i < n; i++) {
        shapes_prompt pr;
        float *row = e + (int64_t)i * te->iface.seq_len * SHAPES_EMBED_DIM;
        shapes__parse(prompts[i], &pr, unknown, unknown_size, 1);
        row[pr.empty ? SHAPES__F_UNCOND : SHAPES__F_PROMPT] = 1.0f;
        for (t = 0; t < pr.n_tokens && t + 1 < te->iface.seq_len; t++)
            row[(int64_t)(t + 1) * SHAPES_EMBED_DIM + shapes__attr_offsets[pr.token_attr[t]] + pr.token_value[t]] =
                1.0f;
    }
    return shapes__output(embeds, &tmp, "shapes text_encoder", "embeds");
}

static void shapes__te_destroy(void *object) { SHAPES_FREE(object); }

static int shapes__te_describe(const void *object, char *buf, size_t size) {
    const shapes__te *te = (const shapes__te *)object;
    return snprintf(buf, size, "ShapesTextEncoder(seq_len=%d, dim=%d, vocabulary=%d)", te->iface.seq_len,
                    SHAPES_EMBED_DIM, (int)SHAPES__FEATURES);
}

static const mod_type shapes__te_type = {"CLIPTextModel", shapes__te_destroy, shapes__te_describe};

SHAPESDEF mod_status shapes_text_encoder_create(const char *config, mod_value *out) {
    static const char *const who = "shapes_text_encoder_create";
    const char *p = config ? config : "";
    char key[64], val[64];
    int seq_len = SHAPES_SEQ_LEN, r;
    shapes__te *te;
    mod_status s;
    if (!out) return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: out is NULL", who);
    while ((r = shapes__config_next(&p, key, sizeof key, val, sizeof val, who)) > 0) {
        if (strcmp(key, "seq_len") == 0) {
            if (!shapes__parse_int(val, &seq_len) || seq_len < 2 || seq_len > 256)
                return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: seq_len '%s' is not an integer in [2, 256]", who, val);
        } else {
            return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: unknown config key '%s' (known: seq_len)", who, key);
        }
    }
    if (r < 0) return MOD_ERR_ARGUMENT;
    te = (shapes__te *)SHAPES_MALLOC(sizeof(shapes__te));
    if (!te) return mod_fail(NULL, MOD_ERR_MEMORY, "%s: out of memory", who);
    memset(te, 0, sizeof *te);
    te->iface.seq_len = seq_len;
    te->iface.dim = SHAPES_EMBED_DIM;
    te->iface.encode = shapes__te_encode;
    te->iface.self = te;
    te->magic = SHAPES__MAGIC_TE;
    if ((s = mod_value_own_ptr(out, te, &shapes__te_type)) != MOD_OK) SHAPES_FREE(te);
    return s;
}

/* ======================================================================
   VAE
   ====================================================================== */

typedef struct shapes__vae {
    df_vae iface;
    int magic;
    shapes_model *model;
} shapes__vae;

typedef struct shapes__codec_ctx {
    const shapes_model *m;
    const float *in;
    float *out;
    int64_t h, w; /* latent size */
} shapes__codec_ctx;

/* rows (b * h + ty) of the latents */
static void shapes__encode_range(void *vctx, int64_t begin, int64_t end) {
    shapes__codec_ctx *c = (shapes__codec_ctx *)vctx;
    int64_t row, tx, H = c->h * 4, W = c->w * 4, plane = c->h * c->w;
    for (row = begin; row < end; row++) {
        int64_t b = row / c->h, ty = row % c->h;
        const float *img = c->in + b * 3 * H * W;
        float *lat = c->out + b * 4 * plane;
        for (tx = 0; tx < c->w; tx++) {
            float p[SHAPES__P], z[4];
            int k;
            shapes__gather_patch(img, H, W, ty, tx, p);
            shapes__encode_patch(c->m, p, z);
            for (k = 0; k < 4; k++) lat[k * plane + ty * c->w + tx] = z[k];
        }
    }
}

static void shapes__decode_range(void *vctx, int64_t begin, int64_t end) {
    shapes__codec_ctx *c = (shapes__codec_ctx *)vctx;
    const shapes_model *m = c->m;
    int64_t row, tx, H = c->h * 4, W = c->w * 4, plane = c->h * c->w;
    for (row = begin; row < end; row++) {
        int64_t b = row / c->h, ty = row % c->h;
        const float *lat = c->in + b * 4 * plane;
        float *img = c->out + b * 3 * H * W;
        for (tx = 0; tx < c->w; tx++) {
            float f[SHAPES__F - 1], p[SHAPES__P];
            int dy, dx, k, n = 0, j;
            for (dy = -1; dy <= 1; dy++)
                for (dx = -1; dx <= 1; dx++) {
                    int64_t yy = ty + dy < 0 ? 0 : ty + dy >= c->h ? c->h - 1 : ty + dy;
                    int64_t xx = tx + dx < 0 ? 0 : tx + dx >= c->w ? c->w - 1 : tx + dx;
                    for (k = 0; k < 4; k++) f[n++] = lat[k * plane + yy * c->w + xx];
                }
            for (j = 0; j < SHAPES__P; j++) p[j] = 0.0f;
            for (k = 0; k < SHAPES__F - 1; k++) {
                const float *wr = m->dec_w[k];
                float fk = f[k];
                for (j = 0; j < SHAPES__P; j++) p[j] += fk * wr[j];
            }
            for (j = 0; j < SHAPES__P; j++) p[j] += m->dec_w[SHAPES__F - 1][j];
            for (k = 0; k < 3; k++)
                for (dy = 0; dy < 4; dy++)
                    for (dx = 0; dx < 4; dx++)
                        img[(k * H + ty * 4 + dy) * W + tx * 4 + dx] = p[(k * 4 + dy) * 4 + dx];
        }
    }
}

static mod_status shapes__vae_check(void *self, const char *who, shapes__vae **out) {
    shapes__vae *v = (shapes__vae *)self;
    if (!v || v->magic != SHAPES__MAGIC_VAE)
        return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: self is not a shapes vae", who);
    *out = v;
    return MOD_OK;
}

static mod_status shapes__vae_encode(void *self, const mt_tensor *images, mt_tensor *latents) {
    static const char *const who = "shapes vae encode";
    shapes__vae *v = NULL;
    mt_tensor in, tmp;
    shapes__codec_ctx ctx;
    int64_t shape[4];
    mod_status s;
    memset(&in, 0, sizeof in);
    memset(&tmp, 0, sizeof tmp);
    if ((s = shapes__vae_check(self, who, &v)) != MOD_OK) return s;
    if (!latents) return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: latents is NULL", who);
    if (!images || !images->data || images->ndim != 4 || images->shape[1] != 3 || images->shape[0] < 1 ||
        images->shape[2] < 4 || images->shape[3] < 4 || images->shape[2] % 4 || images->shape[3] % 4) {
        char b[64] = "(empty)";
        if (images && images->data) mt_shape_string(images, b, sizeof b);
        return mod_fail(NULL, MOD_ERR_ARGUMENT,
                        "%s: images have shape %s, expected [B, 3, H, W] with H and W multiples of 4", who, b);
    }
    if ((s = shapes__input(images, &in, who, "images")) != MOD_OK) return s;
    shape[0] = images->shape[0];
    shape[1] = 4;
    shape[2] = images->shape[2] / 4;
    shape[3] = images->shape[3] / 4;
    if (mt_empty(&tmp, MT_F32, 4, shape) != MT_OK) {
        mt_release(&in);
        return mod_fail(NULL, MOD_ERR_MEMORY, "%s: %s", who, mt_last_error());
    }
    ctx.m = v->model;
    ctx.in = mt_f32(&in);
    ctx.out = mt_f32(&tmp);
    ctx.h = shape[2];
    ctx.w = shape[3];
    mt_parallel_for(shape[0] * shape[2], 4, shapes__encode_range, &ctx);
    mt_release(&in);
    return shapes__output(latents, &tmp, who, "latents");
}

static mod_status shapes__vae_decode(void *self, const mt_tensor *latents, mt_tensor *images) {
    static const char *const who = "shapes vae decode";
    shapes__vae *v = NULL;
    mt_tensor in, tmp;
    shapes__codec_ctx ctx;
    int64_t shape[4];
    mod_status s;
    memset(&in, 0, sizeof in);
    memset(&tmp, 0, sizeof tmp);
    if ((s = shapes__vae_check(self, who, &v)) != MOD_OK) return s;
    if (!images) return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: images is NULL", who);
    if (!latents || !latents->data || latents->ndim != 4 || latents->shape[1] != 4 || latents->shape[0] < 1 ||
        latents->shape[2] < 1 || latents->shape[3] < 1) {
        char b[64] = "(empty)";
        if (latents && latents->data) mt_shape_string(latents, b, sizeof b);
        return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: latents have shape %s, expected [B, 4, h, w]", who, b);
    }
    if ((s = shapes__input(latents, &in, who, "latents")) != MOD_OK) return s;
    shape[0] = latents->shape[0];
    shape[1] = 3;
    shape[2] = latents->shape[2] * 4;
    shape[3] = latents->shape[3] * 4;
    if (mt_empty(&tmp, MT_F32, 4, shape) != MT_OK) {
        mt_release(&in);
        return mod_fail(NULL, MOD_ERR_MEMORY, "%s: %s", who, mt_last_error());
    }
    ctx.m = v->model;
    ctx.in = mt_f32(&in);
    ctx.out = mt_f32(&tmp);
    ctx.h = latents->shape[2];
    ctx.w = latents->shape[3];
    mt_parallel_for(shape[0] * ctx.h, 2, shapes__decode_range, &ctx);
    mt_release(&in);
    return shapes__output(images, &tmp, who, "images");
}

static void shapes__vae_destroy(void *object) {
    shapes__vae *v = (shapes__vae *)object;
    shapes__model_release(v->model);
    SHAPES_FREE(v);
}

static int shapes__vae_describe(const void *object, char *buf, size_t size) {
    const shapes__vae *v = (const shapes__vae *)object;
    return snprintf(buf, size, "ShapesVAE(latent_channels=4, downscale=4, scaling_factor=%.6g)",
                    v->iface.scaling_factor);
}

static const mod_type shapes__vae_type = {"AutoencoderKL", shapes__vae_destroy, shapes__vae_describe};

SHAPESDEF mod_status shapes_vae_create(const char *config, mod_value *out) {
    static const char *const who = "shapes_vae_create";
    const char *p = config ? config : "";
    char key[64], val[64];
    shapes__vae *v = NULL;
    mod_status s;
    int r;
    if (!out) return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: out is NULL", who);
    if ((r = shapes__config_next(&p, key, sizeof key, val, sizeof val, who)) > 0)
        return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: unknown config key '%s' (the vae takes no keys)", who, key);
    if (r < 0) return MOD_ERR_ARGUMENT;
    v = (shapes__vae *)SHAPES_MALLOC(sizeof(shapes__vae));
    if (!v) return mod_fail(NULL, MOD_ERR_MEMORY, "%s: out of memory", who);
    memset(v, 0, sizeof *v);
    if ((s = shapes__model_acquire(&v->model)) != MOD_OK) {
        SHAPES_FREE(v);
        return s;
    }
    v->iface.latent_channels = SHAPES_LATENT_CHANNELS;
    v->iface.downscale = SHAPES_DOWNSCALE;
    v->iface.scaling_factor = v->model->scaling_factor;
    v->iface.encode = shapes__vae_encode;
    v->iface.decode = shapes__vae_decode;
    v->iface.self = v;
    v->magic = SHAPES__MAGIC_VAE;
    if ((s = mod_value_own_ptr(out, v, &shapes__vae_type)) != MOD_OK) shapes__vae_destroy(v);
    return s;
}

/* ======================================================================
   Denoiser
   ====================================================================== */

typedef struct shapes__unet {
    df_denoiser iface;
    int magic;
    shapes_model *model;
    int v_prediction;
    double caption_strength;
    int num_train_timesteps;
    double beta_start, beta_end;
    const char *beta_schedule; /* static string */
    double *alphas_cumprod;    /* [N], float32 values of the scheduler */
    double *log_sigmas;        /* [N], logf of the float32 sigmas, as diffusers' Euler */
} shapes__unet;

static mod_status shapes__unet_check(const void *self, const char *who, const shapes__unet **out) {
    const shapes__unet *u = (const shapes__unet *)self;
    if (!u || u->magic != SHAPES__MAGIC_UNET)
        return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: not a shapes unet (make it with shapes_unet_create)", who);
    *out = u;
    return MOD_OK;
}

static mod_status shapes__alpha_bar(const shapes__unet *u, double t, double *abar, const char *who) {
    int N = u->num_train_timesteps, lo;
    double w;
    if (!(t >= 0 && t <= N - 1))
        return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: timestep %g outside [0, %d] (num_train_timesteps = %d)", who, t,
                        N - 1, N);
    lo = (int)floor(t);
    w = t - lo;
    if (w == 0) {
        *abar = u->alphas_cumprod[lo];
    } else {
        double ls = (1 - w) * u->log_sigmas[lo] + w * u->log_sigmas[lo + 1], sigma = exp(ls);
        *abar = 1 / (1 + sigma * sigma);
    }
    return MOD_OK;
}

/* per-call state of one batch item */
typedef struct shapes__post {
    const shapes__res *r;
    const shapes_model *m;
    const float *x;   /* [4][h][w] */
    float *out;       /* [4][h][w] or NULL (weights only) */
    double s, sv;     /* sqrt(abar), sqrt(1 - abar) */
    int v_pred;
    double *rows;     /* [NB + NC][h][w + 1]: per-row prefix sums of |x - s f|^2 for each flat latent f */
    double *dist;     /* [count] */
    double *weight;   /* [count], normalized */
    double *acc;      /* [4][h][w] accumulator of x0_hat */
    double *diff;     /* [4][h][w + 1] difference rows of the flat runs */
    double bgw[SHAPES__NB];
    int *active;
    int n_active;
} shapes__post;

enum { SHAPES__NF = SHAPES__NB + SHAPES__NC }; /* flat latents: backgrounds, then colours */

/* sum over n of (x - s z)^2 in double: eight interleaved partial sums
   (vectorizable), combined in a fixed order */
static double shapes__sqdist(const float *x, const float *z, int n, double s) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, t = 0;
    int i, l;
    for (i = 0; i + 8 <= n; i += 8)
        for (l = 0; l < 8; l++) {
            double d = (double)x[i + l] - s * (double)z[i + l];
            acc[l] += d * d;
        }
    for (; i < n; i++) {
        double d = (double)x[i] - s * (double)z[i];
        t += d * d;
    }
    return (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) + t;
}

/* |x - s z_i|^2 = |x - s bg|^2 over the whole latent, corrected on the
   item's segments */
static void shapes__dist_range(void *vctx, int64_t begin, int64_t end) {
    shapes__post *c = (shapes__post *)vctx;
    const shapes__res *r = c->r;
    int h = r->h, w = r->w;
    int64_t plane = (int64_t)h * w, W1 = w + 1, i, j;
    for (i = begin; i < end; i++) {
        int v[SHAPES_ATTR_COUNT], y;
        const double *eb, *ec;
        double d = 0;
        shapes__decode((int)i, v);
        eb = c->rows + (int64_t)v[SHAPES_BACKGROUND] * h * W1;
        ec = c->rows + (int64_t)(SHAPES__NB + v[SHAPES_COLOR]) * h * W1;
        for (y = 0; y < h; y++) d += eb[(int64_t)y * W1 + w];
        for (j = r->seg_begin[i]; j < r->seg_begin[i + 1]; j++) {
            const shapes__seg *sg = r->seg + j;
            int64_t o = (int64_t)sg->y * W1;
            double part = -(eb[o + sg->xb] - eb[o + sg->xa]);
            if (sg->kind == 1) {
                part += ec[o + sg->xb] - ec[o + sg->xa];
            } else {
                int n = sg->xb - sg->xa, k;
                const float *z = r->data + sg->off;
                for (k = 0; k < 4; k++)
                    part += shapes__sqdist(c->x + k * plane + (int64_t)sg->y * w + sg->xa, z + (int64_t)k * n, n, c->s);
            }
            d += part;
        }
        c->dist[i] = d;
    }
}

/* first segment of [seg, end) on a row >= y */
static int64_t shapes__seg_lower(const shapes__seg *seg, int64_t lo, int64_t hi, int y) {
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (seg[mid].y < y)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* x0_hat and the prediction for latent rows [begin, end):
   x0_hat = sum_b W_b bg_b + sum_i w_i (z_i - bg_i), the second sum only on
   each item's segments (flat runs through difference rows) */
static void shapes__mean_range(void *vctx, int64_t begin, int64_t end) {
    shapes__post *c = (shapes__post *)vctx;
    const shapes__res *r = c->r;
    const shapes_model *m = c->m;
    int h = r->h, w = r->w, a, y, x, k;
    int64_t plane = (int64_t)h * w, W1 = w + 1, j;
    for (k = 0; k < 4; k++) {
        double base = 0;
        int b;
        for (b = 0; b < SHAPES__NB; b++) base += c->bgw[b] * (double)m->bg_latent[b][k];
        for (y = (int)begin; y < (int)end; y++) {
            double *ar = c->acc + k * plane + (int64_t)y * w, *dr = c->diff + (k * h + y) * W1;
            for (x = 0; x < w; x++) ar[x] = base;
            for (x = 0; x <= w; x++) dr[x] = 0;
        }
    }
    for (a = 0; a < c->n_active; a++) {
        int i = c->active[a], v[SHAPES_ATTR_COUNT];
        double wi = c->weight[i], flat[4];
        int64_t e = r->seg_begin[i + 1];
        shapes__decode(i, v);
        for (k = 0; k < 4; k++)
            flat[k] = wi * ((double)m->color_latent[v[SHAPES_COLOR]][k] - (double)m->bg_latent[v[SHAPES_BACKGROUND]][k]);
        for (j = shapes__seg_lower(r->seg, r->seg_begin[i], e, (int)begin); j < e && r->seg[j].y < end; j++) {
            const shapes__seg *sg = r->seg + j;
            if (sg->kind == 1) {
                for (k = 0; k < 4; k++) {
                    double *dr = c->diff + (k * h + sg->y) * W1;
                    dr[sg->xa] += flat[k];
                    dr[sg->xb] -= flat[k];
                }
            } else {
                int n = sg->xb - sg->xa;
                const float *z = r->data + sg->off;
                for (k = 0; k < 4; k++) {
                    double bgv = (double)m->bg_latent[v[SHAPES_BACKGROUND]][k];
                    double *ar = c->acc + k * plane + (int64_t)sg->y * w + sg->xa;
                    const float *zr = z + (int64_t)k * n;
                    for (x = 0; x < n; x++) ar[x] += wi * ((double)zr[x] - bgv);
                }
            }
        }
    }
    for (k = 0; k < 4; k++)
        for (y = (int)begin; y < (int)end; y++) {
            const double *dr = c->diff + (k * h + y) * W1;
            const double *ar = c->acc + k * plane + (int64_t)y * w;
            const float *xr = c->x + k * plane + (int64_t)y * w;
            float *orow = c->out + k * plane + (int64_t)y * w;
            double run = 0;
            for (x = 0; x < w; x++) {
                double x0, eps;
                run += dr[x];
                x0 = ar[x] + run;
                eps = ((double)xr[x] - c->s * x0) / c->sv;
                orow[x] = (float)(c->v_pred ? c->s * eps - c->sv * x0 : eps);
            }
        }
}

/* Posterior of one batch item: weights into c->weight; with c->out, the
   prediction too. emb: [L][32]. */
static mod_status shapes__posterior(const shapes__unet *u, shapes__post *c, const float *emb, int64_t L,
                                    double abar, const char *who) {
    const shapes__res *r = c->r;
    int h = r->h, w = r->w, i, k, f, y, x, nact = 0;
    int64_t W1 = w + 1, plane = (int64_t)h * w;
    double pooled[SHAPES__FEATURES], vv = 1 - abar, mx = -HUGE_VAL, total = 0;
    /* the caption's weight grows with the latent size as the image evidence
       does (caption_strength is per 1024 latent values, a 64x64 image) */
    double lambda = u->caption_strength * (4.0 * h * w) / 1024.0;
    /* per-row prefix sums of |x - s f|^2 for the flat latents */
    for (f = 0; f < SHAPES__NF; f++) {
        const float *fl = f < SHAPES__NB ? c->m->bg_latent[f] : c->m->color_latent[f - SHAPES__NB];
        double sf[4];
        for (k = 0; k < 4; k++) sf[k] = c->s * (double)fl[k];
        for (y = 0; y < h; y++) {
            double *row = c->rows + ((int64_t)f * h + y) * W1, run = 0;
            const float *xr = c->x + (int64_t)y * w;
            row[0] = 0;
            for (x = 0; x < w; x++) {
                double d0 = (double)xr[x] - sf[0], d1 = (double)xr[plane + x] - sf[1];
                double d2 = (double)xr[2 * plane + x] - sf[2], d3 = (double)xr[3 * plane + x] - sf[3];
                run += ((d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3));
                row[x + 1] = run;
            }
        }
    }
    mt_parallel_for(SHAPES__COUNT, 32, shapes__dist_range, c);
    /* caption prior: tokens pooled, then strength * matched words */
    for (k = 0; k < SHAPES__FEATURES; k++) pooled[k] = 0;
    for (i = 0; i < L; i++)
        for (k = 0; k < SHAPES__FEATURES; k++) pooled[k] += (double)emb[(int64_t)i * SHAPES_EMBED_DIM + k];
    for (i = 0; i < SHAPES__COUNT; i++) {
        int v[SHAPES_ATTR_COUNT], a;
        double score = 0;
        shapes__decode(i, v);
        for (a = 0; a < SHAPES_ATTR_COUNT; a++) score += pooled[shapes__attr_offsets[a] + v[a]];
        c->weight[i] = lambda * score - c->dist[i] / (2 * vv);
        if (!(c->weight[i] > -HUGE_VAL && c->weight[i] < HUGE_VAL))
            return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: the sample or the embeddings hold NaN or infinity", who);
        if (c->weight[i] > mx) mx = c->weight[i];
    }
    for (i = 0; i < SHAPES__COUNT; i++) {
        double d = c->weight[i] - mx;
        c->weight[i] = d < -36 ? 0 : exp(d); /* e^-36 < 2.4e-16: below double precision next to the largest */
        total += c->weight[i];
    }
    for (k = 0; k < SHAPES__NB; k++) c->bgw[k] = 0;
    for (i = 0; i < SHAPES__COUNT; i++) {
        int v[SHAPES_ATTR_COUNT];
        c->weight[i] /= total;
        if (c->weight[i] > 0) {
            c->active[nact++] = i;
            shapes__decode(i, v);
            c->bgw[v[SHAPES_BACKGROUND]] += c->weight[i];
        }
    }
    c->n_active = nact;
    if (c->out) mt_parallel_for(h, 1, shapes__mean_range, c);
    return MOD_OK;
}

/* shared by predict and shapes_unet_posterior */
static mod_status shapes__unet_run(const shapes__unet *u, const mt_tensor *sample, double timestep,
                                   const mt_tensor *embeds, mt_tensor *out, double *weights, const char *who) {
    mt_tensor xs, es, tmp;
    shapes__post c;
    const shapes__res *r = NULL;
    double abar = 0, *buf = NULL;
    int64_t B, h, w, L, b, plane;
    mod_status s;
    memset(&xs, 0, sizeof xs);
    memset(&es, 0, sizeof es);
    memset(&tmp, 0, sizeof tmp);
    if (!sample || !sample->data || sample->ndim != 4 || sample->shape[1] != 4 || sample->shape[0] < 1 ||
        sample->shape[2] < 1 || sample->shape[3] < 1 || sample->shape[2] > 4096 || sample->shape[3] > 4096) {
        char t[64] = "(empty)";
        if (sample && sample->data) mt_shape_string(sample, t, sizeof t);
        return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: sample has shape %s, expected [B, 4, h, w]", who, t);
    }
    B = sample->shape[0];
    h = sample->shape[2];
    w = sample->shape[3];
    if (!embeds || !embeds->data || embeds->ndim != 3 || embeds->shape[0] != B ||
        embeds->shape[2] != SHAPES_EMBED_DIM || embeds->shape[1] < 1) {
        char t[64] = "(empty)";
        if (embeds && embeds->data) mt_shape_string(embeds, t, sizeof t);
        return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: embeds have shape %s, expected [%lld, seq_len, %d]", who, t,
                        (long long)B, SHAPES_EMBED_DIM);
    }
    L = embeds->shape[1];
    if ((s = shapes__alpha_bar(u, timestep, &abar, who)) != MOD_OK) return s;
    if ((s = shapes__latents(u->model, (int)h, (int)w, &r)) != MOD_OK) return s;
    if ((s = shapes__input(sample, &xs, who, "sample")) != MOD_OK) return s;
    if ((s = shapes__input(embeds, &es, who, "embeds")) != MOD_OK) {
        mt_release(&xs);
        return s;
    }
    if (out && mt_empty(&tmp, MT_F32, 4, sample->shape) != MT_OK) {
        mt_release(&xs);
        mt_release(&es);
        return mod_fail(NULL, MOD_ERR_MEMORY, "%s: %s", who, mt_last_error());
    }
    plane = h * w;
    buf = (double *)SHAPES_MALLOC(((size_t)(SHAPES__NF + 4) * h * (w + 1) + 2 * SHAPES__COUNT + 4 * plane) *
                                      sizeof(double) +
                                  SHAPES__COUNT * sizeof(int));
    if (!buf) {
        mt_release(&xs);
        mt_release(&es);
        mt_release(&tmp);
        return mod_fail(NULL, MOD_ERR_MEMORY, "%s: out of memory", who);
    }
    memset(&c, 0, sizeof c);
    c.r = r;
    c.m = u->model;
    c.s = sqrt(abar);
    c.sv = sqrt(1 - abar);
    c.v_pred = u->v_prediction;
    c.rows = buf;
    c.diff = c.rows + SHAPES__NF * h * (w + 1);
    c.dist = c.diff + 4 * h * (w + 1);
    c.weight = c.dist + SHAPES__COUNT;
    c.acc = c.weight + SHAPES__COUNT;
    c.active = (int *)(c.acc + 4 * plane);
    for (b = 0; b < B && s == MOD_OK; b++) {
        c.x = mt_f32(&xs) + b * 4 * plane;
        c.out = out ? mt_f32(&tmp) + b * 4 * plane : NULL;
        s = shapes__posterior(u, &c, mt_f32(&es) + b * L * SHAPES_EMBED_DIM, L, abar, who);
        if (s == MOD_OK && weights) memcpy(weights + b * SHAPES__COUNT, c.weight, SHAPES__COUNT * sizeof(double));
    }
    SHAPES_FREE(buf);
    mt_release(&xs);
    mt_release(&es);
    if (s != MOD_OK) {
        mt_release(&tmp);
        return s;
    }
    return out ? shapes__output(out, &tmp, who, "out") : MOD_OK;
}

static mod_status shapes__unet_predict(void *self, const mt_tensor *sample, double timestep, const mt_tensor *embeds,
                                       mt_tensor *out) {
    static const char *const who = "shapes unet";
    const shapes__unet *u = NULL;
    mod_status s;
    if ((s = shapes__unet_check(self, who, &u)) != MOD_OK) return s;
    if (!out) return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: out is NULL", who);
    return shapes__unet_run(u, sample, timestep, embeds, out, NULL, who);
}

SHAPESDEF mod_status shapes_unet_alpha_bar(const df_denoiser *unet, double timestep, double *alpha_bar) {
    static const char *const who = "shapes_unet_alpha_bar";
    const shapes__unet *u = NULL;
    mod_status s;
    if (!unet || !alpha_bar) return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: unet and alpha_bar are required", who);
    if ((s = shapes__unet_check(unet->self, who, &u)) != MOD_OK) return s;
    return shapes__alpha_bar(u, timestep, alpha_bar, who);
}

SHAPESDEF mod_status shapes_unet_posterior(const df_denoiser *unet, const mt_tensor *sample, double timestep,
                                           const mt_tensor *embeds, double *weights) {
    static const char *const who = "shapes_unet_posterior";
    const shapes__unet *u = NULL;
    mod_status s;
    if (!unet || !weights) return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: unet and weights are required", who);
    if ((s = shapes__unet_check(unet->self, who, &u)) != MOD_OK) return s;
    return shapes__unet_run(u, sample, timestep, embeds, NULL, weights, who);
}

static void shapes__unet_destroy(void *object) {
    shapes__unet *u = (shapes__unet *)object;
    shapes__model_release(u->model);
    SHAPES_FREE(u->alphas_cumprod);
    SHAPES_FREE(u);
}

static int shapes__unet_describe(const void *object, char *buf, size_t size) {
    const shapes__unet *u = (const shapes__unet *)object;
    return snprintf(buf, size,
                    "ShapesPosteriorDenoiser(prediction_type='%s', num_train_timesteps=%d, beta_start=%g, "
                    "beta_end=%g, beta_schedule='%s', caption_strength=%g, items=%d)",
                    u->iface.prediction_type, u->num_train_timesteps, u->beta_start, u->beta_end, u->beta_schedule,
                    u->caption_strength, (int)SHAPES__COUNT);
}

static const mod_type shapes__unet_type = {"UNet2DConditionModel", shapes__unet_destroy, shapes__unet_describe};

SHAPESDEF mod_status shapes_unet_create(const char *config, mod_value *out) {
    static const char *const who = "shapes_unet_create";
    const char *p = config ? config : "";
    char key[64], val[64], schedule[64] = "scaled_linear";
    int v_pred = 0, N = 1000, r, j;
    double beta_start = 0.00085, beta_end = 0.012, strength = 12;
    mt_scheduler_config cfg;
    mt_scheduler sch;
    shapes__unet *u;
    mod_status s;
    if (!out) return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: out is NULL", who);
    while ((r = shapes__config_next(&p, key, sizeof key, val, sizeof val, who)) > 0) {
        if (strcmp(key, "prediction_type") == 0) {
            if (strcmp(val, "epsilon") == 0)
                v_pred = 0;
            else if (strcmp(val, "v_prediction") == 0)
                v_pred = 1;
            else
                return mod_fail(NULL, MOD_ERR_ARGUMENT,
                                "%s: prediction_type '%s' is not \"epsilon\" or \"v_prediction\"", who, val);
        } else if (strcmp(key, "num_train_timesteps") == 0) {
            if (!shapes__parse_int(val, &N) || N < 2 || N > 1000000)
                return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: num_train_timesteps '%s' is not an integer in [2, 1000000]",
                                who, val);
        } else if (strcmp(key, "beta_start") == 0) {
            if (!shapes__parse_double(val, &beta_start))
                return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: beta_start '%s' is not a number", who, val);
        } else if (strcmp(key, "beta_end") == 0) {
            if (!shapes__parse_double(val, &beta_end))
                return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: beta_end '%s' is not a number", who, val);
        } else if (strcmp(key, "beta_schedule") == 0) {
            strcpy(schedule, val);
        } else if (strcmp(key, "caption_strength") == 0) {
            if (!shapes__parse_double(val, &strength) || strength < 0 || strength > 1000)
                return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: caption_strength '%s' is not a number in [0, 1000]", who,
                                val);
        } else {
            return mod_fail(NULL, MOD_ERR_ARGUMENT,
                            "%s: unknown config key '%s' (known: prediction_type, num_train_timesteps, beta_start, "
                            "beta_end, beta_schedule, caption_strength)",
                            who, key);
        }
    }
    if (r < 0) return MOD_ERR_ARGUMENT;
    if (!(beta_start > 0 && beta_start < 1) || !(beta_end > 0 && beta_end < 1))
        return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: beta_start %g and beta_end %g must lie in (0, 1)", who,
                        beta_start, beta_end);
    /* the schedule, from the scheduler section (same arithmetic as the scheduler) */
    memset(&cfg, 0, sizeof cfg);
    cfg.kind = MT_SCHEDULER_EULER;
    cfg.num_train_timesteps = N;
    cfg.beta_start = beta_start;
    cfg.beta_end = beta_end;
    cfg.beta_schedule = schedule;
    if (mt_scheduler_init(&sch, &cfg) != MT_OK) {
        mt_scheduler_free(&sch);
        return mod_fail(NULL, MOD_ERR_ARGUMENT, "%s: %s", who, mt_last_error());
    }
    u = (shapes__unet *)SHAPES_MALLOC(sizeof(shapes__unet));
    if (u) {
        memset(u, 0, sizeof *u);
        u->alphas_cumprod = (double *)SHAPES_MALLOC((size_t)N * 2 * sizeof(double));
    }
    if (!u || !u->alphas_cumprod) {
        if (u) SHAPES_FREE(u);
        mt_scheduler_free(&sch);
        return mod_fail(NULL, MOD_ERR_MEMORY, "%s: out of memory", who);
    }
    u->log_sigmas = u->alphas_cumprod + N;
    for (j = 0; j < N; j++) {
        float a = sch.alphas_cumprod[j];
        u->alphas_cumprod[j] = a;
        u->log_sigmas[j] = logf(sqrtf((1.0f - a) / a));
    }
    u->beta_schedule = sch.config.beta_schedule; /* static string of the scheduler section */
    mt_scheduler_free(&sch);
    if ((s = shapes__model_acquire(&u->model)) != MOD_OK) {
        SHAPES_FREE(u->alphas_cumprod);
        SHAPES_FREE(u);
        return s;
    }
    u->v_prediction = v_pred;
    u->caption_strength = strength;
    u->num_train_timesteps = N;
    u->beta_start = beta_start;
    u->beta_end = beta_end;
    u->iface.in_channels = SHAPES_LATENT_CHANNELS;
    u->iface.prediction_type = v_pred ? "v_prediction" : "epsilon";
    u->iface.predict = shapes__unet_predict;
    u->iface.self = u;
    u->magic = SHAPES__MAGIC_UNET;
    if ((s = mod_value_own_ptr(out, u, &shapes__unet_type)) != MOD_OK) shapes__unet_destroy(u);
    return s;
}

#ifdef __cplusplus
}
#endif

#endif /* SHAPES_MODEL_IMPLEMENTATION_DONE */
#endif /* SHAPES_MODEL_IMPLEMENTATION */
