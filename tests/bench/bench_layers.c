/* Benchmark of the layers and shape kernels at the sizes of a small
   diffusion UNet with 64x64 latents, against plain loops written here (the
   reference, run in the same process), with 1 and 2 threads. Prints the
   best of several runs in milliseconds and the speedup over the plain loop. */
#define _POSIX_C_SOURCE 199309L
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"

#include <math.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#define REPS 7
#define C_ 320
#define H_ 64
#define W_ 64
#define HW_ (H_ * W_)

static float *X, *Y; /* input [C, H, W] and a scratch output big enough for x4 */

/* ---- plain loops --------------------------------------------------------- */

static void ref_group_norm(void) {
    int g, c, i, cg = C_ / 32;
    for (g = 0; g < 32; g++) {
        double s = 0, q = 0, m, r;
        for (c = g * cg; c < (g + 1) * cg; c++)
            for (i = 0; i < HW_; i++) s += X[c * HW_ + i];
        m = s / (cg * HW_);
        for (c = g * cg; c < (g + 1) * cg; c++)
            for (i = 0; i < HW_; i++) q += (X[c * HW_ + i] - m) * (X[c * HW_ + i] - m);
        r = 1 / sqrt(q / (cg * HW_) + 1e-5);
        for (c = g * cg; c < (g + 1) * cg; c++)
            for (i = 0; i < HW_; i++) Y[c * HW_ + i] = (float)((X[c * HW_ + i] - m) * r);
    }
}

static void ref_layer_norm(void) { /* rows of 320 over [4096, 320] */
    int r, j;
    for (r = 0; r < HW_; r++) {
        const float *x = X + r * C_;
        double s = 0, q = 0, m, rs;
        for (j = 0; j < C_; j++) s += x[j];
        m = s / C_;
        for (j = 0; j < C_; j++) q += (x[j] - m) * (x[j] - m);
        rs = 1 / sqrt(q / C_ + 1e-5);
        for (j = 0; j < C_; j++) Y[r * C_ + j] = (float)((x[j] - m) * rs);
    }
}

static void ref_nearest(void) {
    int c, h, w;
    for (c = 0; c < C_; c++)
        for (h = 0; h < 2 * H_; h++)
            for (w = 0; w < 2 * W_; w++) Y[(c * 2 * H_ + h) * 2 * W_ + w] = X[(c * H_ + h / 2) * W_ + w / 2];
}

static void ref_bilinear(void) { /* align_corners=False, scale 2 */
    int c, h, w;
    for (c = 0; c < C_; c++)
        for (h = 0; h < 2 * H_; h++)
            for (w = 0; w < 2 * W_; w++) {
                double sh = (h + 0.5) / 2 - 0.5, sw = (w + 0.5) / 2 - 0.5, lh, lw;
                int h0, w0, h1, w1;
                const float *p = X + c * HW_;
                if (sh < 0) sh = 0;
                if (sw < 0) sw = 0;
                h0 = (int)sh, w0 = (int)sw;
                h1 = h0 + (h0 < H_ - 1), w1 = w0 + (w0 < W_ - 1);
                lh = sh - h0, lw = sw - w0;
                Y[(c * 2 * H_ + h) * 2 * W_ + w] =
                    (float)((1 - lh) * ((1 - lw) * p[h0 * W_ + w0] + lw * p[h0 * W_ + w1]) +
                            lh * ((1 - lw) * p[h1 * W_ + w0] + lw * p[h1 * W_ + w1]));
            }
}

static void ref_avg_pool(void) { /* 2x2 stride 2 */
    int c, h, w;
    for (c = 0; c < C_; c++)
        for (h = 0; h < H_ / 2; h++)
            for (w = 0; w < W_ / 2; w++) {
                const float *p = X + c * HW_ + 2 * h * W_ + 2 * w;
                Y[(c * H_ / 2 + h) * W_ / 2 + w] = (p[0] + p[1] + p[W_] + p[W_ + 1]) / 4;
            }
}

static void ref_max_pool(void) { /* 3x3 stride 2 padding 1 */
    int c, h, w, i, j;
    for (c = 0; c < C_; c++)
        for (h = 0; h < H_ / 2; h++)
            for (w = 0; w < W_ / 2; w++) {
                float m = -INFINITY;
                for (i = 2 * h - 1; i <= 2 * h + 1; i++)
                    for (j = 2 * w - 1; j <= 2 * w + 1; j++)
                        if (i >= 0 && i < H_ && j >= 0 && j < W_ && X[c * HW_ + i * W_ + j] > m) m = X[c * HW_ + i * W_ + j];
                Y[(c * H_ / 2 + h) * W_ / 2 + w] = m;
            }
}

static void ref_cat(void) { /* cat([x, x], dim=1) */
    int64_t i;
    for (i = 0; i < (int64_t)C_ * HW_; i++) Y[i] = X[i];
    for (i = 0; i < (int64_t)C_ * HW_; i++) Y[(int64_t)C_ * HW_ + i] = X[i];
}

static void ref_pixel_shuffle(void) { /* r = 2: [320, 64, 64] -> [80, 128, 128] */
    int c, h, w;
    for (c = 0; c < C_ / 4; c++)
        for (h = 0; h < 2 * H_; h++)
            for (w = 0; w < 2 * W_; w++)
                Y[(c * 2 * H_ + h) * 2 * W_ + w] = X[((c * 4 + (h % 2) * 2 + w % 2) * H_ + h / 2) * W_ + w / 2];
}

/* ---- the kernels --------------------------------------------------------- */

static mt_tensor x4, xrows, out;

static void k_group_norm(void) { mt_group_norm(&out, &x4, 32, NULL, NULL, 1e-5); }
static void k_layer_norm(void) { mt_layer_norm(&out, &xrows, 1, NULL, NULL, 1e-5); }
static void k_nearest(void) { mt_interpolate(&out, &x4, 2 * H_, 2 * W_, MT_INTERP_NEAREST, 0); }
static void k_bilinear(void) { mt_interpolate(&out, &x4, 2 * H_, 2 * W_, MT_INTERP_BILINEAR, 0); }
static void k_avg_pool(void) { mt_avg_pool2d(&out, &x4, 2, 2, 0, 0, 0, 0); }
static void k_max_pool(void) { mt_max_pool2d(&out, &x4, 3, 3, 2, 2, 1, 1); }
static void k_cat(void) {
    const mt_tensor *ts[2];
    ts[0] = &x4;
    ts[1] = &x4;
    mt_cat(&out, ts, 2, 1);
}
static void k_pixel_shuffle(void) { mt_pixel_shuffle(&out, &x4, 2); }

static double best_ms(void (*fn)(void), int release) {
    double best = 1e30;
    int r;
    for (r = 0; r < REPS; r++) {
        double t = now();
        fn();
        t = now() - t;
        if (t < best) best = t;
        if (release) mt_release(&out); /* allocation is part of the kernel's cost */
    }
    return best * 1e3;
}

int main(void) {
    static const struct {
        const char *name;
        void (*ref)(void);
        void (*kernel)(void);
    } cases[] = {
        {"group_norm [1, 320, 64, 64] G=32", ref_group_norm, k_group_norm},
        {"layer_norm [4096, 320]", ref_layer_norm, k_layer_norm},
        {"interpolate nearest x2", ref_nearest, k_nearest},
        {"interpolate bilinear x2", ref_bilinear, k_bilinear},
        {"avg_pool2d 2x2", ref_avg_pool, k_avg_pool},
        {"max_pool2d 3x3 s2 p1", ref_max_pool, k_max_pool},
        {"cat 2 x [1, 320, 64, 64] dim 1", ref_cat, k_cat},
        {"pixel_shuffle r=2", ref_pixel_shuffle, k_pixel_shuffle},
    };
    int64_t i;
    size_t c;
    X = (float *)malloc(sizeof(float) * C_ * HW_);
    Y = (float *)malloc(sizeof(float) * C_ * HW_ * 4);
    if (!X || !Y) return 1;
    for (i = 0; i < (int64_t)C_ * HW_; i++) X[i] = (float)((i * 37 + 11) % 101 - 50) / 16.0f;
    mt_borrow(&x4, MT_F32, MT_SHAPE(1, C_, H_, W_), X);
    mt_borrow(&xrows, MT_F32, MT_SHAPE(HW_, C_), X);
    printf("layers and shape kernels, best of %d, ms (speedup over the plain loop)\n", REPS);
    printf("%-34s %10s %18s %18s\n", "", "plain loop", "1 thread", "2 threads");
    for (c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double ref = best_ms(cases[c].ref, 0), t1, t2;
        mt_set_num_threads(1);
        t1 = best_ms(cases[c].kernel, 1);
        mt_set_num_threads(2);
        t2 = best_ms(cases[c].kernel, 1);
        printf("%-34s %10.3f %10.3f (%4.2fx) %10.3f (%4.2fx)\n", cases[c].name, ref, t1, ref / t1, t2, ref / t2);
    }
    mt_set_num_threads(0);
    mt_release(&x4);
    mt_release(&xrows);
    free(X);
    free(Y);
    return 0;
}
