/* ops benchmark: element-wise kernels, reductions and softmax against plain
   loops over contiguous arrays in the same run (the loops a user would
   write by hand), at 1 and 2 threads. Prints milliseconds per call and the
   ratio reference / kernel (above 1: the kernel is faster). */
#define _POSIX_C_SOURCE 199309L
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef void (*bench_fn)(void *ctx);

/* best of `reps` runs, in milliseconds */
static double best_ms(bench_fn fn, void *ctx, int reps) {
    double best = 1e30;
    int r;
    fn(ctx); /* warm up */
    for (r = 0; r < reps; r++) {
        double t0 = now();
        fn(ctx);
        t0 = now() - t0;
        if (t0 < best) best = t0;
    }
    return best * 1e3;
}

typedef struct ctx {
    mt_tensor a, b, out, bias, big, rows;
    float *pa, *pb, *po;
    int64_t n, c, hw, batch;
    volatile double sink;
} ctx;

/* ---- kernels under test ---- */
static void k_add(void *p) { ctx *c = (ctx *)p; mt_add(&c->out, &c->a, &c->b); }
static void k_bias(void *p) { ctx *c = (ctx *)p; mt_add(&c->out, &c->a, &c->bias); }
static void k_axpby(void *p) { ctx *c = (ctx *)p; mt_axpby(&c->out, 0.9f, &c->a, 0.1f, &c->b); }
static void k_mul_scalar(void *p) { ctx *c = (ctx *)p; mt_mul_scalar(&c->out, &c->a, 0.18215f); }
static void k_clamp(void *p) { ctx *c = (ctx *)p; mt_clamp(&c->out, &c->a, -1.0f, 1.0f); }
static void k_silu(void *p) { ctx *c = (ctx *)p; mt_silu(&c->out, &c->a); }
static void k_gelu(void *p) { ctx *c = (ctx *)p; mt_gelu(&c->out, &c->a); }
static void k_sum_all(void *p) {
    ctx *c = (ctx *)p;
    mt_tensor s = {0};
    mt_sum(&s, &c->a, MT_DIM_ALL, 0);
    c->sink = mt_f32(&s)[0];
    mt_release(&s);
}
static void k_mean_last(void *p) {
    ctx *c = (ctx *)p;
    mt_tensor s = {0};
    mt_mean(&s, &c->rows, -1, 0);
    c->sink = mt_f32(&s)[0];
    mt_release(&s);
}
static void k_mean_channels(void *p) {
    ctx *c = (ctx *)p;
    mt_tensor s = {0};
    mt_mean(&s, &c->a, 1, 0);
    c->sink = mt_f32(&s)[0];
    mt_release(&s);
}
static void k_softmax(void *p) { ctx *c = (ctx *)p; mt_softmax(&c->out, &c->rows, -1); }

/* ---- plain loops ---- */
static void r_add(void *p) {
    ctx *c = (ctx *)p;
    int64_t i;
    for (i = 0; i < c->n; i++) c->po[i] = c->pa[i] + c->pb[i];
}
static void r_bias(void *p) {
    ctx *c = (ctx *)p;
    const float *bias = mt_f32(&c->bias);
    int64_t bch, ch, i;
    for (bch = 0; bch < c->batch; bch++)
        for (ch = 0; ch < c->c; ch++) {
            int64_t o = (bch * c->c + ch) * c->hw;
            for (i = 0; i < c->hw; i++) c->po[o + i] = c->pa[o + i] + bias[ch];
        }
}
static void r_axpby(void *p) {
    ctx *c = (ctx *)p;
    int64_t i;
    for (i = 0; i < c->n; i++) c->po[i] = 0.9f * c->pa[i] + 0.1f * c->pb[i];
}
static void r_mul_scalar(void *p) {
    ctx *c = (ctx *)p;
    int64_t i;
    for (i = 0; i < c->n; i++) c->po[i] = c->pa[i] * 0.18215f;
}
static void r_clamp(void *p) {
    ctx *c = (ctx *)p;
    int64_t i;
    for (i = 0; i < c->n; i++) {
        float x = c->pa[i] < -1.0f ? -1.0f : c->pa[i];
        c->po[i] = x > 1.0f ? 1.0f : x;
    }
}
static void r_silu(void *p) {
    ctx *c = (ctx *)p;
    int64_t i;
    for (i = 0; i < c->n; i++) c->po[i] = c->pa[i] / (1.0f + expf(-c->pa[i]));
}
static void r_gelu(void *p) {
    ctx *c = (ctx *)p;
    int64_t i;
    for (i = 0; i < c->n; i++) c->po[i] = c->pa[i] * 0.5f * (1.0f + erff(c->pa[i] * 0.70710678f));
}
static void r_sum_all(void *p) {
    ctx *c = (ctx *)p;
    double s = 0;
    int64_t i;
    for (i = 0; i < c->n; i++) s += c->pa[i];
    c->sink = s;
}
static void r_mean_last(void *p) {
    ctx *c = (ctx *)p;
    const float *x = mt_f32(&c->rows);
    int64_t r, i, len = c->rows.shape[1];
    for (r = 0; r < c->rows.shape[0]; r++) {
        double s = 0;
        for (i = 0; i < len; i++) s += x[r * len + i];
        c->po[r] = (float)(s / (double)len);
    }
}
static void r_mean_channels(void *p) {
    ctx *c = (ctx *)p;
    int64_t bch, ch, i;
    double *acc = (double *)malloc((size_t)c->hw * sizeof(double));
    for (bch = 0; bch < c->batch; bch++) {
        for (i = 0; i < c->hw; i++) acc[i] = 0;
        for (ch = 0; ch < c->c; ch++)
            for (i = 0; i < c->hw; i++) acc[i] += c->pa[(bch * c->c + ch) * c->hw + i];
        for (i = 0; i < c->hw; i++) c->po[bch * c->hw + i] = (float)(acc[i] / (double)c->c);
    }
    free(acc);
}
static void r_softmax(void *p) {
    ctx *c = (ctx *)p;
    const float *x = mt_f32(&c->rows);
    int64_t r, i, len = c->rows.shape[1];
    for (r = 0; r < c->rows.shape[0]; r++) {
        const float *xr = x + r * len;
        float *y = c->po + r * len, mx = -INFINITY;
        double s = 0;
        for (i = 0; i < len; i++) mx = xr[i] > mx ? xr[i] : mx;
        for (i = 0; i < len; i++) {
            y[i] = expf(xr[i] - mx);
            s += y[i];
        }
        for (i = 0; i < len; i++) y[i] = (float)(y[i] / s);
    }
}

int main(void) {
    static ctx c;
    struct {
        const char *name;
        bench_fn kernel, ref;
    } cases[] = {
        {"add [2,320,64,64] + same", k_add, r_add},
        {"add [2,320,64,64] + [1,320,1,1]", k_bias, r_bias},
        {"axpby 0.9 a + 0.1 b", k_axpby, r_axpby},
        {"mul_scalar", k_mul_scalar, r_mul_scalar},
        {"clamp(-1, 1)", k_clamp, r_clamp},
        {"silu", k_silu, r_silu},
        {"gelu (erf)", k_gelu, r_gelu},
        {"sum of all 2.6M", k_sum_all, r_sum_all},
        {"mean [4096,640] last dim", k_mean_last, r_mean_last},
        {"mean [2,320,4096] dim 1", k_mean_channels, r_mean_channels},
        {"softmax [4096,640] last dim", k_softmax, r_softmax},
    };
    int64_t shape[4] = {2, 320, 64, 64}, bshape[4] = {1, 320, 1, 1}, rshape[2] = {4096, 640};
    int threads[2] = {1, 2}, t;
    size_t k;
    c.batch = 2;
    c.c = 320;
    c.hw = 64 * 64;
    mt_empty(&c.a, MT_F32, 4, shape);
    mt_empty(&c.b, MT_F32, 4, shape);
    mt_empty(&c.out, MT_F32, 4, shape);
    mt_empty(&c.bias, MT_F32, 4, bshape);
    mt_empty(&c.rows, MT_F32, 2, rshape);
    c.n = mt_numel(&c.a);
    c.pa = mt_f32(&c.a);
    c.pb = mt_f32(&c.b);
    c.po = (float *)malloc((size_t)c.n * sizeof(float));
    {
        int64_t i;
        uint32_t s = 1;
        for (i = 0; i < c.n; i++) {
            s = s * 1664525u + 1013904223u;
            c.pa[i] = (float)((s >> 8) & 0xffff) / 8192.0f - 4.0f;
            c.pb[i] = (float)((s >> 16) & 0xff) / 64.0f - 2.0f;
        }
        for (i = 0; i < 320; i++) mt_f32(&c.bias)[i] = (float)i / 320.0f;
        memcpy(mt_f32(&c.rows), c.pa, (size_t)mt_numel(&c.rows) * sizeof(float));
    }
    printf("ops benchmark: best of 7, milliseconds per call; ratio = plain loop / kernel\n");
    printf("%-34s %8s %10s %10s %7s\n", "case", "threads", "kernel", "loop", "ratio");
    for (t = 0; t < 2; t++) {
        mt_set_num_threads(threads[t]);
        for (k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            double km, rm;
            mt_tensor keep = c.out;
            if (cases[k].kernel == k_softmax || cases[k].kernel == k_mean_last || cases[k].kernel == k_mean_channels) {
                /* outputs of another shape: let the kernel allocate */
                memset(&c.out, 0, sizeof c.out);
                if (cases[k].kernel == k_softmax) mt_empty(&c.out, MT_F32, 2, rshape);
            }
            km = best_ms(cases[k].kernel, &c, 7);
            rm = best_ms(cases[k].ref, &c, 7);
            if (c.out.data != keep.data) {
                mt_release(&c.out);
                c.out = keep;
            }
            printf("%-34s %8d %10.3f %10.3f %7.2f\n", cases[k].name, mt_get_num_threads(), km, rm, rm / km);
        }
    }
    mt_release(&c.a);
    mt_release(&c.b);
    mt_release(&c.out);
    mt_release(&c.bias);
    mt_release(&c.rows);
    free(c.po);
    return 0;
}
