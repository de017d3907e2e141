/* tests/bench/bench_kernels.c - matmul, conv2d and attention of
   modular_tensor.h against OpenBLAS and oneDNN, in one run.

   Built and run by `make bench` (links -lopenblas -ldnnl). Prints, for 1
   and 2 threads, GFLOP/s of ours and of the reference and the ratio
   ours / reference (above 1 = ours faster); best of a few repetitions,
   ours and the reference alternating so that both see the same machine
   load. `bench_kernels matmul` runs only the cases whose name contains
   "matmul" (likewise gemm, conv, attention).

   References:
   - matmul / GEMM: cblas_sgemm of OpenBLAS. Debian's OpenBLAS 0.3.21 does
     not recognise recent CPUs and would run a generic kernel, so the bench
     sets OPENBLAS_CORETYPE (SkylakeX with AVX-512, Haswell with AVX2) and
     re-executes itself before OpenBLAS reads it; the core name OpenBLAS
     reports is printed.
   - conv2d: im2col (threaded) + cblas_sgemm + bias; and oneDNN's
     convolution primitive with the memory formats it prefers (blocked),
     timing the primitive only (reorders to and from NCHW excluded).
   - attention: per head cblas_sgemm (Q K^T), a row softmax with expf
     (threaded), cblas_sgemm (P V). Its scores buffer is Sq x Sk floats.
     Memory: the library's workspace is counted through MT_MALLOC.
   Thread counts: ours mt_set_num_threads, OpenBLAS openblas_set_num_threads,
   oneDNN (OpenMP build) omp_set_num_threads. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- counting allocator: the library's peak workspace ------------------ */

static size_t bench_live, bench_peak;

static void bench_count(long delta) {
    size_t live = __atomic_add_fetch(&bench_live, (size_t)delta, __ATOMIC_RELAXED);
    size_t peak = __atomic_load_n(&bench_peak, __ATOMIC_RELAXED);
    while (live > peak && !__atomic_compare_exchange_n(&bench_peak, &peak, live, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

static void *bench_malloc(size_t n) {
    size_t *p = (size_t *)malloc(n + 16);
    if (!p) return NULL;
    p[0] = n;
    bench_count((long)n);
    return (char *)p + 16;
}

static void bench_free(void *q) {
    size_t *p;
    if (!q) return;
    p = (size_t *)(void *)((char *)q - 16);
    bench_count(-(long)p[0]);
    free(p);
}

#if defined(__GNUC__)
__attribute__((unused))
#endif
static void *bench_realloc(void *q, size_t n) {
    void *r = bench_malloc(n);
    if (r && q) {
        size_t old = ((size_t *)(void *)((char *)q - 16))[0];
        memcpy(r, q, old < n ? old : n);
    }
    if (r) bench_free(q);
    return r;
}

#define MT_MALLOC(sz) bench_malloc(sz)
#define MT_REALLOC(p, sz) bench_realloc(p, sz)
#define MT_FREE(p) bench_free(p)
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"

#include <cblas.h>
#include <dnnl.h>

/* ---- timing ------------------------------------------------------------ */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef void (*bench_fn)(void *ctx);

typedef struct side {
    bench_fn fn;
    void *ctx;
    double best;
} side;

/* Alternates the sides, `rounds` times (fewer when slow), best time each.
   With several threads each timed run follows untimed ones (at least 5 ms
   of them: waking a sleeping thread takes milliseconds on a busy machine),
   so it sees the library's helper threads awake, as in a sequence of
   calls; between
   sides the bench sleeps 0.2 s, longer than OpenBLAS's helpers spin after
   a call (2^28 cycles), so that one library's spinning threads do not
   steal the other's cores. */
static void race(side *s, int nsides, int threads, double budget) {
    int r, i, rounds = threads > 1 ? 6 : 10;
    double spent = 0;
    for (i = 0; i < nsides; i++) s[i].best = 1e30;
    for (r = 0; r < rounds; r++) {
        for (i = 0; i < nsides; i++) {
            double t;
            if (!s[i].fn) continue;
            if (threads > 1) {
                double w0;
                usleep(200000);
                w0 = now();
                do s[i].fn(s[i].ctx);
                while (now() - w0 < 0.005);
            }
            t = now();
            s[i].fn(s[i].ctx);
            t = now() - t;
            spent += t * (threads > 1 ? 2 : 1);
            if (t < s[i].best) s[i].best = t;
        }
        if (r >= 1 && spent > budget) break;
    }
}

static void (*omp_set_threads)(int);

static void set_threads(int n) {
    mt_set_num_threads(n);
    openblas_set_num_threads(n);
    if (omp_set_threads) omp_set_threads(n);
}

static void fill(float *p, int64_t n, unsigned seed) {
    int64_t i;
    for (i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
}

static const char *filter;
static int want(const char *name) { return !filter || strstr(name, filter) != NULL; }

static void row(const char *name, int threads, double flops, double ours, double ref1, double ref2) {
    printf("%-34s %3d %9.1f %9.1f %6.2fx", name, threads, flops / ours * 1e-9, flops / ref1 * 1e-9, ref1 / ours);
    if (ref2 > 0) printf(" %9.1f %6.2fx", flops / ref2 * 1e-9, ref2 / ours);
    printf("\n");
    fflush(stdout);
}

/* ---- matmul / GEMM ----------------------------------------------------- */

typedef struct gemm_case {
    int64_t m, n, k;
    float *a, *b, *c;
    mt_tensor ta, tb, tc;
} gemm_case;

static void ours_matmul(void *p) {
    gemm_case *g = (gemm_case *)p;
    if (mt_matmul(&g->tc, &g->ta, &g->tb) != MT_OK) fprintf(stderr, "mt_matmul: %s\n", mt_last_error());
}

static void ours_gemm(void *p) {
    gemm_case *g = (gemm_case *)p;
    if (mt_gemm(MT_NO_TRANS, MT_NO_TRANS, g->m, g->n, g->k, 1.0f, g->a, g->k, g->b, g->n, 0.0f, g->c, g->n) != MT_OK)
        fprintf(stderr, "mt_gemm: %s\n", mt_last_error());
}

static void ref_gemm(void *p) {
    gemm_case *g = (gemm_case *)p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)g->m, (int)g->n, (int)g->k, 1.0f, g->a, (int)g->k,
                g->b, (int)g->n, 0.0f, g->c, (int)g->n);
}

static void bench_gemm(const char *kind, int64_t m, int64_t k, int64_t n) {
    gemm_case g;
    char name[96];
    int t;
    double flops = 2.0 * (double)m * (double)n * (double)k;
    snprintf(name, sizeof name, "%s M=%lld K=%lld N=%lld", kind, (long long)m, (long long)k, (long long)n);
    if (!want(name)) return;
    memset(&g, 0, sizeof g);
    g.m = m;
    g.n = n;
    g.k = k;
    mt_empty(&g.ta, MT_F32, 2, (const int64_t[]){m, k});
    mt_empty(&g.tb, MT_F32, 2, (const int64_t[]){k, n});
    mt_zeros(&g.tc, MT_F32, 2, (const int64_t[]){m, n});
    g.a = mt_f32(&g.ta);
    g.b = mt_f32(&g.tb);
    g.c = mt_f32(&g.tc);
    fill(g.a, m * k, 1);
    fill(g.b, k * n, 2);
    for (t = 1; t <= 2; t++) {
        side s[2];
        set_threads(t);
        s[0].fn = strcmp(kind, "matmul") == 0 ? ours_matmul : ours_gemm;
        s[0].ctx = &g;
        s[1].fn = ref_gemm;
        s[1].ctx = &g;
        race(s, 2, t, 5.0);
        row(name, t, flops, s[0].best, s[1].best, 0);
    }
    mt_release(&g.ta);
    mt_release(&g.tb);
    mt_release(&g.tc);
}

/* ---- conv2d 3x3, padding 1 ----------------------------------------------- */

typedef struct conv_case {
    int64_t c, h, w;   /* C_in = C_out = c, H x W, batch 1 */
    mt_tensor x, wt, bias, out;
    float *col, *ref_out;
    /* oneDNN */
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, bia, dst;
    int dnnl_ok;
} conv_case;

static void ours_conv(void *p) {
    conv_case *c = (conv_case *)p;
    mt_conv2d_desc d;
    memset(&d, 0, sizeof d);
    d.padding[0] = d.padding[1] = 1;
    if (mt_conv2d(&c->out, &c->x, &c->wt, &c->bias, &d) != MT_OK) fprintf(stderr, "mt_conv2d: %s\n", mt_last_error());
}

/* im2col rows (channel, kernel row, kernel column), threaded on our pool */
static void im2col_rows(void *p, int64_t r0, int64_t r1) {
    conv_case *c = (conv_case *)p;
    int64_t r, oy, hw = c->h * c->w;
    const float *x = mt_f32(&c->x);
    for (r = r0; r < r1; r++) {
        int64_t ch = r / 9, u = r / 3 % 3, v = r % 3;
        float *dst = c->col + r * hw;
        for (oy = 0; oy < c->h; oy++) {
            int64_t iy = oy - 1 + u, lo = v == 0 ? 1 : 0, hi = v == 2 ? c->w - 1 : c->w;
            float *d = dst + oy * c->w;
            if (iy < 0 || iy >= c->h) {
                memset(d, 0, sizeof(float) * (size_t)c->w);
                continue;
            }
            d[0] = 0.0f;
            d[c->w - 1] = 0.0f;
            memcpy(d + lo, x + (ch * c->h + iy) * c->w + lo - 1 + v, sizeof(float) * (size_t)(hi - lo));
        }
    }
}

static void ref_conv_im2col(void *p) {
    conv_case *c = (conv_case *)p;
    int64_t hw = c->h * c->w, i, j;
    mt_parallel_for(c->c * 9, 1, im2col_rows, c);
    for (i = 0; i < c->c; i++)
        for (j = 0; j < hw; j++) c->ref_out[i * hw + j] = mt_f32(&c->bias)[i];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)c->c, (int)hw, (int)(c->c * 9), 1.0f, mt_f32(&c->wt),
                (int)(c->c * 9), c->col, (int)hw, 1.0f, c->ref_out, (int)hw);
}

static void ref_conv_dnnl(void *p) {
    conv_case *c = (conv_case *)p;
    dnnl_exec_arg_t args[4];
    args[0].arg = DNNL_ARG_SRC;
    args[0].memory = c->src;
    args[1].arg = DNNL_ARG_WEIGHTS;
    args[1].memory = c->wei;
    args[2].arg = DNNL_ARG_BIAS;
    args[2].memory = c->bia;
    args[3].arg = DNNL_ARG_DST;
    args[3].memory = c->dst;
    dnnl_primitive_execute(c->prim, c->stream, 4, args);
    dnnl_stream_wait(c->stream);
}

/* Copies a user buffer in `tag` layout into `mem` (the primitive's layout). */
static int dnnl_fill(dnnl_engine_t eng, dnnl_stream_t st, dnnl_memory_t mem, int nd, const dnnl_dims_t dims,
                     dnnl_format_tag_t tag, float *data) {
    dnnl_memory_desc_t umd;
    const dnnl_memory_desc_t *md;
    dnnl_memory_t um;
    dnnl_primitive_desc_t rpd;
    dnnl_primitive_t r;
    dnnl_exec_arg_t args[2];
    if (dnnl_memory_get_memory_desc(mem, &md) != dnnl_success) return 0;
    if (dnnl_memory_desc_init_by_tag(&umd, nd, dims, dnnl_f32, tag) != dnnl_success) return 0;
    if (dnnl_memory_create(&um, &umd, eng, data) != dnnl_success) return 0;
    if (dnnl_reorder_primitive_desc_create(&rpd, &umd, eng, md, eng, NULL) != dnnl_success) return 0;
    if (dnnl_primitive_create(&r, rpd) != dnnl_success) return 0;
    args[0].arg = DNNL_ARG_FROM;
    args[0].memory = um;
    args[1].arg = DNNL_ARG_TO;
    args[1].memory = mem;
    dnnl_primitive_execute(r, st, 2, args);
    dnnl_stream_wait(st);
    dnnl_primitive_destroy(r);
    dnnl_primitive_desc_destroy(rpd);
    dnnl_memory_destroy(um);
    return 1;
}

/* A oneDNN direct convolution in the layouts it prefers; call after the
   thread count is set (oneDNN plans for the current OpenMP thread count). */
static int dnnl_conv_make(conv_case *c, const char **impl) {
    dnnl_memory_desc_t smd, wmd, bmd, dmd;
    dnnl_convolution_desc_t cd;
    dnnl_dims_t sd, wd, bd, strides, pad;
    memset(sd, 0, sizeof sd);
    memset(wd, 0, sizeof wd);
    memset(bd, 0, sizeof bd);
    memset(strides, 0, sizeof strides);
    memset(pad, 0, sizeof pad);
    sd[0] = 1;
    sd[1] = c->c;
    sd[2] = c->h;
    sd[3] = c->w;
    wd[0] = c->c;
    wd[1] = c->c;
    wd[2] = 3;
    wd[3] = 3;
    bd[0] = c->c;
    strides[0] = strides[1] = 1;
    pad[0] = pad[1] = 1;
    *impl = "?";
    if (dnnl_memory_desc_init_by_tag(&smd, 4, sd, dnnl_f32, dnnl_format_tag_any) != dnnl_success) return 0;
    if (dnnl_memory_desc_init_by_tag(&wmd, 4, wd, dnnl_f32, dnnl_format_tag_any) != dnnl_success) return 0;
    if (dnnl_memory_desc_init_by_tag(&bmd, 1, bd, dnnl_f32, dnnl_a) != dnnl_success) return 0;
    if (dnnl_memory_desc_init_by_tag(&dmd, 4, sd, dnnl_f32, dnnl_format_tag_any) != dnnl_success) return 0;
    if (dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &smd, &wmd, &bmd,
                                           &dmd, strides, pad, pad) != dnnl_success)
        return 0;
    if (dnnl_primitive_desc_create(&c->pd, &cd, NULL, c->eng, NULL) != dnnl_success) return 0;
    dnnl_primitive_desc_query(c->pd, dnnl_query_impl_info_str, 0, (void *)impl);
    if (dnnl_memory_create(&c->src, dnnl_primitive_desc_query_md(c->pd, dnnl_query_src_md, 0), c->eng,
                           DNNL_MEMORY_ALLOCATE) != dnnl_success ||
        dnnl_memory_create(&c->wei, dnnl_primitive_desc_query_md(c->pd, dnnl_query_weights_md, 0), c->eng,
                           DNNL_MEMORY_ALLOCATE) != dnnl_success ||
        dnnl_memory_create(&c->bia, dnnl_primitive_desc_query_md(c->pd, dnnl_query_weights_md, 1), c->eng,
                           DNNL_MEMORY_ALLOCATE) != dnnl_success ||
        dnnl_memory_create(&c->dst, dnnl_primitive_desc_query_md(c->pd, dnnl_query_dst_md, 0), c->eng,
                           DNNL_MEMORY_ALLOCATE) != dnnl_success)
        return 0;
    if (!dnnl_fill(c->eng, c->stream, c->src, 4, sd, dnnl_nchw, mt_f32(&c->x)) ||
        !dnnl_fill(c->eng, c->stream, c->wei, 4, wd, dnnl_oihw, mt_f32(&c->wt)) ||
        !dnnl_fill(c->eng, c->stream, c->bia, 1, bd, dnnl_a, mt_f32(&c->bias)))
        return 0;
    return dnnl_primitive_create(&c->prim, c->pd) == dnnl_success;
}

static void dnnl_conv_free(conv_case *c) {
    if (c->prim) dnnl_primitive_destroy(c->prim);
    if (c->pd) dnnl_primitive_desc_destroy(c->pd);
    if (c->src) dnnl_memory_destroy(c->src);
    if (c->wei) dnnl_memory_destroy(c->wei);
    if (c->bia) dnnl_memory_destroy(c->bia);
    if (c->dst) dnnl_memory_destroy(c->dst);
    c->prim = NULL;
    c->pd = NULL;
    c->src = c->wei = c->bia = c->dst = NULL;
}

static void bench_conv(int64_t ch, int64_t hw) {
    conv_case c;
    char name[96];
    int t;
    double flops = 2.0 * (double)ch * (double)ch * 9.0 * (double)hw * (double)hw;
    snprintf(name, sizeof name, "conv2d 3x3 %lldch %lldx%lld", (long long)ch, (long long)hw, (long long)hw);
    if (!want(name)) return;
    memset(&c, 0, sizeof c);
    c.c = ch;
    c.h = c.w = hw;
    mt_empty(&c.x, MT_F32, 4, (const int64_t[]){1, ch, hw, hw});
    mt_empty(&c.wt, MT_F32, 4, (const int64_t[]){ch, ch, 3, 3});
    mt_empty(&c.bias, MT_F32, 1, (const int64_t[]){ch});
    mt_zeros(&c.out, MT_F32, 4, (const int64_t[]){1, ch, hw, hw});
    fill(mt_f32(&c.x), mt_numel(&c.x), 3);
    fill(mt_f32(&c.wt), mt_numel(&c.wt), 4);
    fill(mt_f32(&c.bias), ch, 5);
    c.col = (float *)malloc(sizeof(float) * (size_t)(ch * 9 * hw * hw));
    c.ref_out = (float *)malloc(sizeof(float) * (size_t)(ch * hw * hw));
    dnnl_engine_create(&c.eng, dnnl_cpu, 0);
    dnnl_stream_create(&c.stream, c.eng, dnnl_stream_default_flags);
    for (t = 1; t <= 2; t++) {
        side s[3];
        const char *impl = "?";
        set_threads(t);
        c.dnnl_ok = dnnl_conv_make(&c, &impl);
        if (t == 1) printf("    (oneDNN implementation: %s)\n", c.dnnl_ok ? impl : "failed to create");
        s[0].fn = ours_conv;
        s[0].ctx = &c;
        s[1].fn = ref_conv_im2col;
        s[1].ctx = &c;
        s[2].fn = c.dnnl_ok ? ref_conv_dnnl : NULL;
        s[2].ctx = &c;
        race(s, 3, t, 8.0);
        row(name, t, flops, s[0].best, s[1].best, c.dnnl_ok ? s[2].best : -1);
        if (t == 1) {
            /* same numbers as the reference, to the float32 bound */
            int64_t i, n = ch * hw * hw;
            double worst = 0;
            for (i = 0; i < n; i++) {
                double e = fabs(mt_f32(&c.out)[i] - c.ref_out[i]);
                if (e > worst) worst = e;
            }
            if (worst > 1e-3) printf("    WARNING: conv2d differs from im2col + sgemm by %g\n", worst);
        }
        dnnl_conv_free(&c);
    }
    dnnl_stream_destroy(c.stream);
    dnnl_engine_destroy(c.eng);
    free(c.col);
    free(c.ref_out);
    mt_release(&c.x);
    mt_release(&c.wt);
    mt_release(&c.bias);
    mt_release(&c.out);
}

/* ---- attention -------------------------------------------------------------- */

typedef struct attn_case {
    int64_t h, s, d;
    mt_tensor q, k, v, out;
    float *scores, *ref_out;
    int64_t row0; /* softmax: first row of the current head */
} attn_case;

static void ours_attn(void *p) {
    attn_case *a = (attn_case *)p;
    if (mt_attention(&a->out, &a->q, &a->k, &a->v, NULL, 0) != MT_OK)
        fprintf(stderr, "mt_attention: %s\n", mt_last_error());
}

static void softmax_rows(void *p, int64_t r0, int64_t r1) {
    attn_case *a = (attn_case *)p;
    int64_t r, j;
    for (r = r0; r < r1; r++) {
        float *s = a->scores + r * a->s, mx = -INFINITY, sum = 0;
        for (j = 0; j < a->s; j++) mx = s[j] > mx ? s[j] : mx;
        for (j = 0; j < a->s; j++) {
            s[j] = expf(s[j] - mx);
            sum += s[j];
        }
        for (j = 0; j < a->s; j++) s[j] /= sum;
    }
}

static int ref_gemm_only;

static void ref_attn(void *p) {
    attn_case *a = (attn_case *)p;
    int64_t hh, sd = a->s * a->d;
    float scale = 1.0f / sqrtf((float)a->d);
    for (hh = 0; hh < a->h; hh++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)a->s, (int)a->s, (int)a->d, scale,
                    mt_f32(&a->q) + hh * sd, (int)a->d, mt_f32(&a->k) + hh * sd, (int)a->d, 0.0f, a->scores, (int)a->s);
        if (!ref_gemm_only) mt_parallel_for(a->s, 16, softmax_rows, a);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)a->s, (int)a->d, (int)a->s, 1.0f, a->scores,
                    (int)a->s, mt_f32(&a->v) + hh * sd, (int)a->d, 0.0f, a->ref_out + hh * sd, (int)a->d);
    }
}

static void bench_attention(int64_t heads, int64_t seq, int64_t dim) {
    attn_case a;
    char name[96];
    int t;
    double flops = 4.0 * (double)heads * (double)seq * (double)seq * (double)dim;
    snprintf(name, sizeof name, "attention S=%lld D=%lld H=%lld", (long long)seq, (long long)dim, (long long)heads);
    if (!want(name)) return;
    memset(&a, 0, sizeof a);
    a.h = heads;
    a.s = seq;
    a.d = dim;
    mt_empty(&a.q, MT_F32, 4, (const int64_t[]){1, heads, seq, dim});
    mt_empty(&a.k, MT_F32, 4, (const int64_t[]){1, heads, seq, dim});
    mt_empty(&a.v, MT_F32, 4, (const int64_t[]){1, heads, seq, dim});
    mt_zeros(&a.out, MT_F32, 4, (const int64_t[]){1, heads, seq, dim});
    fill(mt_f32(&a.q), mt_numel(&a.q), 6);
    fill(mt_f32(&a.k), mt_numel(&a.k), 7);
    fill(mt_f32(&a.v), mt_numel(&a.v), 8);
    a.scores = (float *)malloc(sizeof(float) * (size_t)(seq * seq));
    a.ref_out = (float *)malloc(sizeof(float) * (size_t)(heads * seq * dim));
    for (t = 1; t <= 2; t++) {
        side s[2], g;
        set_threads(t);
        s[0].fn = ours_attn;
        s[0].ctx = &a;
        s[1].fn = ref_attn;
        s[1].ctx = &a;
        race(s, 2, t, 16.0);
        ref_gemm_only = 1;
        g.fn = ref_attn;
        g.ctx = &a;
        race(&g, 1, t, 4.0);
        ref_gemm_only = 0;
        row(name, t, flops, s[0].best, s[1].best, -1);
        printf("%-34s %3s  (reference without its softmax: %.1f GFLOP/s, ours %.2fx)\n", "", "",
               flops / g.best * 1e-9, g.best / s[0].best);
    }
    {
        /* workspace: ours through MT_MALLOC (output preallocated), the
           reference's scores buffer of one head */
        size_t before = __atomic_load_n(&bench_live, __ATOMIC_RELAXED), ours;
        int64_t i, n = heads * seq * dim;
        double worst = 0;
        __atomic_store_n(&bench_peak, before, __ATOMIC_RELAXED);
        ours_attn(&a);
        ours = __atomic_load_n(&bench_peak, __ATOMIC_RELAXED) - before;
        printf("%-34s %3s  workspace: ours %.2f MB (2 threads), reference %.2f MB (Sq x Sk scores of one head)\n", "",
               "", (double)ours / 1048576.0, (double)(seq * seq) * 4.0 / 1048576.0);
        ref_attn(&a);
        for (i = 0; i < n; i++) {
            double e = fabs(mt_f32(&a.out)[i] - a.ref_out[i]);
            if (e > worst) worst = e;
        }
        if (worst > 1e-4) printf("    WARNING: attention differs from the reference by %g\n", worst);
    }
    free(a.scores);
    free(a.ref_out);
    mt_release(&a.q);
    mt_release(&a.k);
    mt_release(&a.v);
    mt_release(&a.out);
}

int main(int argc, char **argv) {
    {
        /* OpenBLAS reads OPENBLAS_CORETYPE when it loads: set the best core
           for this CPU and start again (once), unless the caller asked to
           keep theirs with BENCH_KEEP_CORETYPE=1. */
        mt_simd best = mt_simd_best();
        const char *core = best == MT_SIMD_AVX512 ? "SkylakeX" : best == MT_SIMD_AVX2 ? "Haswell" : NULL;
        const char *have = getenv("OPENBLAS_CORETYPE"), *keep = getenv("BENCH_KEEP_CORETYPE");
        if (core && !getenv("BENCH_REEXEC") && !(keep && *keep == '1') && (!have || strcmp(have, core) != 0)) {
            if (have) printf("OPENBLAS_CORETYPE=%s in the environment; using %s, the best core for this CPU\n", have, core);
            fflush(stdout);
            setenv("OPENBLAS_CORETYPE", core, 1);
            setenv("BENCH_REEXEC", "1", 1);
            execv("/proc/self/exe", argv);
            perror("re-exec with OPENBLAS_CORETYPE set");
        }
    }
    filter = argc > 1 ? argv[1] : NULL;
    {
        /* machine and date, for the record */
        char line[256], model[160] = "unknown CPU", day[32] = "";
        FILE *f = fopen("/proc/cpuinfo", "r");
        time_t now_t = time(NULL);
        while (f && fgets(line, sizeof line, f))
            if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
                snprintf(model, sizeof model, "%s", strchr(line, ':') + 2);
                model[strcspn(model, "\n")] = 0;
                break;
            }
        if (f) fclose(f);
        strftime(day, sizeof day, "%Y-%m-%d", localtime(&now_t));
        printf("%s, %s, %ld online cores\n", day, model, sysconf(_SC_NPROCESSORS_ONLN));
    }
    *(void **)(&omp_set_threads) = dlsym(RTLD_DEFAULT, "omp_set_num_threads");
    printf("modular_tensor.h kernels: SIMD path %s;%s core %s; oneDNN threads via %s\n",
           mt_simd_name(mt_get_simd()), OPENBLAS_VERSION, openblas_get_corename(),
           omp_set_threads ? "omp_set_num_threads" : "(not found)");
    printf("ref: OpenBLAS sgemm (matmul, gemm), im2col + OpenBLAS (conv2d), OpenBLAS GEMM + softmax + GEMM\n"
           "(attention); ref2: oneDNN convolution; ratio = ours / ref speed; best of up to 10 runs (6 with\n"
           "2 threads, each after 5 ms of untimed calls)\n");
    printf("%-34s %3s %9s %9s %7s %9s %7s\n", "case", "thr", "ours", "ref", "ratio", "ref2", "ratio2");
    printf("%-34s %3s %9s %9s %7s %9s %7s\n", "", "", "GFLOP/s", "GFLOP/s", "", "GFLOP/s", "");
    bench_gemm("matmul", 256, 256, 256);
    bench_gemm("matmul", 512, 512, 512);
    bench_gemm("matmul", 1024, 1024, 1024);
    bench_gemm("matmul", 2048, 2048, 2048);
    bench_gemm("gemm", 320, 2880, 4096);
    bench_gemm("gemm", 640, 5760, 1024);
    bench_gemm("gemm", 1280, 11520, 256);
    bench_conv(320, 64);
    bench_conv(640, 32);
    bench_conv(1280, 16);
    bench_attention(8, 4096, 40);
    bench_attention(8, 1024, 80);
    mt_threads_shutdown();
    return 0;
}
