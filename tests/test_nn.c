/* nn kernels: mt_gemm, mt_matmul, mt_linear, mt_conv2d,
   mt_conv_transpose2d, mt_attention.

   Every kernel is compared with a plain loop written here that accumulates
   in double, on odd sizes (1, 7, 17, 63, 65, 129, sizes that are not
   multiples of the register blocks, depths beyond one cache block),
   transposed / sliced / expanded views and broadcasting, for every SIMD path
   this machine runs (portable always; AVX2 and AVX-512 when present).

   Tolerance of a product or convolution output: the float32 worst-case
   rounding bound for a sum of n products, (n + 2) * 2^-23 * sum |a_i b_i|,
   plus 1e-30. Attention: 2e-5 * (1 + |ref|) (softmax with a polynomial exp
   within 2 ulp, then a weighted sum of values in [-0.5, 0.5]).

   Thread counts: results of 1, 2 and 3 threads are compared bit for bit.

   Golden values from PyTorch (tests/golden/gen_nn.py, PyTorch 1.13.1 on
   Debian 12, CPU float32) check the semantics of conv2d (stride, padding,
   dilation, groups), conv_transpose2d (output_padding) and attention (mask,
   default scale) on small deterministic inputs. */
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"
#include "tests/test.h"

#include "tests/golden/nn_golden.h"

#include <pthread.h>

static int valgrind_run; /* MT_VALGRIND=1: smaller sizes */

/* ---- helpers ------------------------------------------------------------ */

static unsigned rng_state = 12345u;

static float frand(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) & 0xffff) / 65536.0f - 0.5f;
}

static void fill_rand(mt_tensor *t) {
    int64_t i, n = mt_numel(t);
    float *p = mt_f32(t);
    for (i = 0; i < n; i++) p[i] = frand();
}

static float *frand_buf(int64_t n) {
    float *p = (float *)malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    int64_t i;
    for (i = 0; i < n; i++) p[i] = frand();
    return p;
}

/* element of a float32 tensor at a multi-index */
static float at(const mt_tensor *t, const int64_t *idx) {
    int64_t off = 0;
    int d;
    for (d = 0; d < t->ndim; d++) off += idx[d] * t->stride[d];
    return mt_f32(t)[off];
}

static float at4(const mt_tensor *t, int64_t a, int64_t b, int64_t c, int64_t d) {
    int64_t idx[4];
    idx[0] = a;
    idx[1] = b;
    idx[2] = c;
    idx[3] = d;
    return at(t, idx);
}

static double bound(double sum_abs, int64_t n) { return (double)(n + 2) * (1.0 / 8388608.0) * sum_abs + 1e-30; }

static int bits_equal(const mt_tensor *a, const mt_tensor *b) {
    if (!a->data || !b->data || !mt_same_shape(a, b)) return 0;
    return memcmp(a->data, b->data, sizeof(float) * (size_t)mt_numel(a)) == 0;
}

static mt_simd paths[3];
static int npaths;

static void find_paths(void) {
    mt_simd best = mt_simd_best();
    npaths = 0;
    paths[npaths++] = MT_SIMD_PORTABLE;
    if (best >= MT_SIMD_AVX2) paths[npaths++] = MT_SIMD_AVX2;
    if (best >= MT_SIMD_AVX512) paths[npaths++] = MT_SIMD_AVX512;
}

/* ---- SIMD selection ----------------------------------------------------- */

static void test_simd(void) {
    mt_simd best = mt_simd_best();
    CHECK(mt_get_simd() == best, "auto path is the best one (%s)", mt_simd_name(best));
    CHECK(mt_set_simd(MT_SIMD_PORTABLE) == MT_OK && mt_get_simd() == MT_SIMD_PORTABLE, "portable can be forced");
    if (best < MT_SIMD_AVX512) {
        CHECK(mt_set_simd(MT_SIMD_AVX512) == MT_ERR_UNSUPPORTED && strstr(mt_last_error(), "avx512"),
              "forcing AVX-512 on a machine without it fails: %s", mt_last_error());
        CHECK(mt_get_simd() == MT_SIMD_PORTABLE, "failed set keeps the previous path");
    }
    CHECK(mt_set_simd((mt_simd)9) == MT_ERR_ARGUMENT, "unknown path refused");
    CHECK(mt_set_simd(MT_SIMD_AUTO) == MT_OK && mt_get_simd() == best, "auto restores the best path");
    CHECK(strcmp(mt_simd_name(MT_SIMD_AVX2), "avx2") == 0, "path names");
}

/* ---- mt_gemm ------------------------------------------------------------ */

/* Checks C = alpha op(A) op(B) + beta C0 against a double loop. */
static int check_gemm(mt_trans ta, mt_trans tb, int64_t m, int64_t n, int64_t k, float alpha, float beta,
                      int pad, int nan_c) {
    /* BLAS: leading dimensions are at least 1 */
    int64_t lda = (ta ? m : k) + pad > 0 ? (ta ? m : k) + pad : 1, ldb = (tb ? k : n) + pad > 0 ? (tb ? k : n) + pad : 1;
    int64_t ldc = n + pad > 0 ? n + pad : 1, i, j, p;
    float *a = frand_buf((ta ? k : m) * lda), *b = frand_buf((tb ? n : k) * ldb), *c = frand_buf(m * ldc);
    float *c0 = (float *)malloc(sizeof(float) * (size_t)(m * ldc > 0 ? m * ldc : 1));
    int ok = 1;
    mt_status s;
    if (nan_c)
        for (i = 0; i < m * ldc; i++) c[i] = NAN;
    memcpy(c0, c, sizeof(float) * (size_t)(m * ldc));
    s = mt_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    ok = s == MT_OK;
    for (i = 0; i < m && ok; i++)
        for (j = 0; j < ldc && ok; j++) {
            double ref = 0, sa = 0;
            if (j >= n) {
                ok = memcmp(&c[i * ldc + j], &c0[i * ldc + j], sizeof(float)) == 0; /* padding untouched */
                continue;
            }
            for (p = 0; p < k; p++) {
                double x = ta ? a[p * lda + i] : a[i * lda + p], y = tb ? b[j * ldb + p] : b[p * ldb + j];
                ref += x * y;
                sa += fabs(x * y);
            }
            ref *= alpha;
            sa *= fabs(alpha);
            if (beta != 0.0f) {
                ref += (double)beta * c0[i * ldc + j];
                sa += fabs((double)beta * c0[i * ldc + j]);
            }
            if (!(fabs(c[i * ldc + j] - ref) <= bound(sa, k + 1))) {
                printf("     C[%lld, %lld] = %.9g, want %.9g\n", (long long)i, (long long)j, c[i * ldc + j], ref);
                ok = 0;
            }
        }
    free(a);
    free(b);
    free(c);
    free(c0);
    return ok;
}

static void test_gemm(void) {
    static const int64_t sizes[][3] = {
        {1, 1, 1},    {7, 17, 63},  {65, 129, 17}, {129, 65, 7},  {17, 1, 65},   {1, 129, 63},
        {63, 63, 129}, {14, 32, 300}, {15, 33, 517}, {30, 2100, 9}, {200, 40, 20}, {29, 31, 5},
        {3, 70, 450},  {6, 16, 8},   {5, 0, 3},     {0, 4, 3},     {4, 5, 0}};
    int p, t;
    size_t z;
    for (p = 0; p < npaths; p++) {
        int ok = 1;
        mt_set_simd(paths[p]);
        for (z = 0; z < sizeof sizes / sizeof *sizes; z++) {
            if (valgrind_run && sizes[z][0] * sizes[z][1] * sizes[z][2] > 100000) continue;
            for (t = 0; t < 4; t++) {
                int r = check_gemm((mt_trans)(t & 1), (mt_trans)(t >> 1), sizes[z][0], sizes[z][1], sizes[z][2], 1.0f,
                                   0.0f, 0, 0);
                if (!r) printf("     %s: %lldx%lldx%lld trans %d\n", mt_simd_name(paths[p]), (long long)sizes[z][0],
                               (long long)sizes[z][1], (long long)sizes[z][2], t);
                ok &= r;
            }
        }
        CHECK(ok, "%s: gemm, 4 transpose cases x 17 shapes (1..2100, depth up to 517) match the double loop",
              mt_simd_name(paths[p]));
        CHECK(check_gemm(MT_NO_TRANS, MT_TRANS, 33, 47, 130, 0.5f, 0.0f, 3, 1) &&
                  check_gemm(MT_TRANS, MT_NO_TRANS, 33, 47, 130, -1.5f, 0.0f, 5, 1),
              "%s: beta 0 overwrites a NaN-filled C; alpha scales; lda/ldb/ldc padding untouched",
              mt_simd_name(paths[p]));
        CHECK(check_gemm(MT_NO_TRANS, MT_NO_TRANS, 45, 70, 400, 1.0f, 0.25f, 2, 0) &&
                  check_gemm(MT_TRANS, MT_TRANS, 3, 40, 9, 2.0f, -1.0f, 1, 0) &&
                  check_gemm(MT_NO_TRANS, MT_NO_TRANS, 9, 9, 9, 0.0f, 0.5f, 0, 0),
              "%s: beta != 0 accumulates into C (also with alpha 0)", mt_simd_name(paths[p]));
    }
    mt_set_simd(MT_SIMD_AUTO);
    {
        float a[4] = {0}, c[4] = {0};
        CHECK(mt_gemm(MT_NO_TRANS, MT_NO_TRANS, -1, 2, 2, 1, a, 2, a, 2, 0, c, 2) == MT_ERR_SHAPE, "negative m");
        CHECK(mt_gemm(MT_NO_TRANS, MT_NO_TRANS, 2, 2, 3, 1, a, 2, a, 2, 0, c, 2) == MT_ERR_ARGUMENT &&
                  strstr(mt_last_error(), "lda 2 < 3"),
              "lda smaller than k: %s", mt_last_error());
        CHECK(mt_gemm(MT_NO_TRANS, MT_NO_TRANS, 2, 2, 2, 1, a, 2, a, 2, 0, c, 1) == MT_ERR_ARGUMENT, "ldc < n");
        CHECK(mt_gemm(MT_NO_TRANS, MT_NO_TRANS, 2, 2, 2, 1, NULL, 2, a, 2, 0, c, 2) == MT_ERR_ARGUMENT, "NULL A");
        CHECK(mt_gemm((mt_trans)7, MT_NO_TRANS, 2, 2, 2, 1, a, 2, a, 2, 0, c, 2) == MT_ERR_ARGUMENT, "bad flag");
    }
}

/* ---- mt_matmul ---------------------------------------------------------- */

/* Reference torch.matmul for float32 tensors of any strides. */
static int check_matmul(const mt_tensor *a, const mt_tensor *b, const mt_tensor *out) {
    int an = a->ndim, bn = b->ndim, nb, i, ok = 1;
    int64_t m = an == 1 ? 1 : a->shape[an - 2], k = a->shape[an - 1], n = bn == 1 ? 1 : b->shape[bn - 1];
    int64_t bshape[MT_MAX_DIMS], nbatch = 1, bi;
    int abd = an > 2 ? an - 2 : 0, bbd = bn > 2 ? bn - 2 : 0;
    nb = abd > bbd ? abd : bbd;
    for (i = 0; i < nb; i++) {
        int ai = i - (nb - abd), bj = i - (nb - bbd);
        int64_t da = ai >= 0 ? a->shape[ai] : 1, db = bj >= 0 ? b->shape[bj] : 1;
        bshape[i] = da == 1 ? db : da;
        nbatch *= bshape[i];
    }
    if (out->ndim != nb + (an > 1) + (bn > 1)) return 0;
    for (bi = 0; bi < nbatch; bi++) {
        int64_t idx[MT_MAX_DIMS], rem = bi, r, c, p;
        for (i = nb - 1; i >= 0; i--) {
            idx[i] = rem % bshape[i];
            rem /= bshape[i];
        }
        for (r = 0; r < m; r++)
            for (c = 0; c < n; c++) {
                double ref = 0, sa = 0;
                int64_t ia[MT_MAX_DIMS], ib[MT_MAX_DIMS], io[MT_MAX_DIMS];
                int d, q = 0;
                for (d = 0; d < nb; d++) io[q++] = idx[d];
                if (an > 1) io[q++] = r;
                if (bn > 1) io[q++] = c;
                for (p = 0; p < k; p++) {
                    double x, y;
                    for (d = 0; d < an - 2; d++) ia[d] = a->shape[d] == 1 ? 0 : idx[d + nb - (an - 2)];
                    if (an == 1) {
                        ia[0] = p;
                    } else {
                        ia[an - 2] = r;
                        ia[an - 1] = p;
                    }
                    for (d = 0; d < bn - 2; d++) ib[d] = b->shape[d] == 1 ? 0 : idx[d + nb - (bn - 2)];
                    if (bn == 1) {
                        ib[0] = p;
                    } else {
                        ib[bn - 2] = p;
                        ib[bn - 1] = c;
                    }
                    x = at(a, ia);
                    y = at(b, ib);
                    ref += x * y;
                    sa += fabs(x * y);
                }
                if (!(fabs(at(out, io) - ref) <= bound(sa, k))) {
                    if (ok) printf("     out[batch %lld, %lld, %lld] = %.9g, want %.9g\n", (long long)bi, (long long)r,
                                   (long long)c, at(out, io), ref);
                    ok = 0;
                }
            }
    }
    return ok;
}

static int matmul_case(int an, const int64_t *as, int bn, const int64_t *bs, int ond, const int64_t *os) {
    mt_tensor a = {0}, b = {0}, o = {0};
    int ok;
    mt_empty(&a, MT_F32, an, as);
    mt_empty(&b, MT_F32, bn, bs);
    fill_rand(&a);
    fill_rand(&b);
    ok = mt_matmul(&o, &a, &b) == MT_OK && o.ndim == ond && (ond == 0 || memcmp(o.shape, os, sizeof(int64_t) * (size_t)ond) == 0) &&
         check_matmul(&a, &b, &o);
    mt_release(&a);
    mt_release(&b);
    mt_release(&o);
    return ok;
}

static void test_matmul(void) {
    int p;
    for (p = 0; p < npaths; p++) {
        mt_set_simd(paths[p]);
        {
            const int64_t a1[] = {63}, b1[] = {63};
            CHECK(matmul_case(1, a1, 1, b1, 0, NULL), "%s: [63] . [63] -> 0-d dot", mt_simd_name(paths[p]));
        }
        {
            const int64_t as[] = {17, 63}, bs[] = {63}, os[] = {17};
            CHECK(matmul_case(2, as, 1, bs, 1, os), "%s: [17, 63] x [63] -> [17]", mt_simd_name(paths[p]));
        }
        {
            const int64_t as[] = {63}, bs[] = {63, 65}, os[] = {65};
            CHECK(matmul_case(1, as, 2, bs, 1, os), "%s: [63] x [63, 65] -> [65]", mt_simd_name(paths[p]));
        }
        {
            const int64_t as[] = {5}, bs[] = {2, 5, 3}, os[] = {2, 3};
            CHECK(matmul_case(1, as, 3, bs, 2, os), "%s: [5] x [2, 5, 3] -> [2, 3]", mt_simd_name(paths[p]));
        }
        {
            const int64_t as[] = {2, 3, 5}, bs[] = {5}, os[] = {2, 3};
            CHECK(matmul_case(3, as, 1, bs, 2, os), "%s: [2, 3, 5] x [5] -> [2, 3]", mt_simd_name(paths[p]));
        }
        {
            const int64_t as[] = {65, 129}, bs[] = {129, 17}, os[] = {65, 17};
            CHECK(matmul_case(2, as, 2, bs, 2, os), "%s: [65, 129] x [129, 17]", mt_simd_name(paths[p]));
        }
        {
            const int64_t as[] = {2, 1, 7, 17}, bs[] = {3, 17, 5}, os[] = {2, 3, 7, 5};
            CHECK(matmul_case(4, as, 3, bs, 4, os), "%s: batch broadcast [2, 1, 7, 17] x [3, 17, 5] -> [2, 3, 7, 5]",
                  mt_simd_name(paths[p]));
        }
        {
            const int64_t as[] = {4, 33, 40}, bs[] = {40, 63}, os[] = {4, 33, 63};
            CHECK(matmul_case(3, as, 2, bs, 3, os), "%s: [4, 33, 40] x [40, 63] (b shared by the batch)",
                  mt_simd_name(paths[p]));
        }
    }
    mt_set_simd(MT_SIMD_AUTO);

    /* views: transposes, slices with a step, expand (stride 0) */
    {
        mt_tensor a = {0}, b = {0}, at_ = {0}, bt = {0}, o = {0}, s = {0}, e = {0}, o2 = {0};
        int ok;
        mt_empty(&a, MT_F32, 2, (const int64_t[]){129, 63}); /* used as a^T: [63, 129] */
        mt_empty(&b, MT_F32, 2, (const int64_t[]){65, 129}); /* used as b^T: [129, 65] */
        fill_rand(&a);
        fill_rand(&b);
        mt_view_transpose(&at_, &a, 0, 1);
        mt_view_transpose(&bt, &b, 0, 1);
        ok = mt_matmul(&o, &at_, &bt) == MT_OK && o.shape[0] == 63 && o.shape[1] == 65 && check_matmul(&at_, &bt, &o);
        CHECK(ok, "a^T x b^T through transposed views [63, 129] x [129, 65]");
        mt_release(&o);
        mt_view_slice(&s, &a, 0, 1, 129, 2); /* [64, 63], row stride 126 */
        mt_view_slice(&s, &s, 1, 0, 63, 3);  /* [64, 21], column stride 3 */
        ok = mt_matmul(&o, &bt, &s) == MT_OK && check_matmul(&bt, &s, &o);
        CHECK(!ok, "shape mismatch [129, 65] x [64, 21] refused");
        mt_release(&o);
        mt_view_slice(&bt, &bt, 0, 0, 64, 1); /* [64, 65] */
        mt_view_transpose(&bt, &bt, 0, 1);    /* [65, 64] with strides (1, 129) */
        ok = mt_matmul(&o, &bt, &s) == MT_OK && o.shape[0] == 65 && o.shape[1] == 21 && check_matmul(&bt, &s, &o);
        CHECK(ok, "strided views (step 2 rows, step 3 columns, transposed) [65, 64] x [64, 21]");
        mt_view_expand(&e, &s, 3, (const int64_t[]){3, 64, 21});
        ok = mt_matmul(&o2, &bt, &e) == MT_OK && o2.ndim == 3 && o2.shape[0] == 3 && check_matmul(&bt, &e, &o2);
        CHECK(ok, "expanded (stride 0) batch [65, 64] x [3, 64, 21]");
        mt_release(&a);
        mt_release(&b);
        mt_release(&at_);
        mt_release(&bt);
        mt_release(&o);
        mt_release(&s);
        mt_release(&e);
        mt_release(&o2);
    }

    /* output rules: preallocated, aliasing an input, mismatched */
    {
        mt_tensor a = {0}, b = {0}, o = {0}, ref = {0}, v = {0};
        float *keep;
        mt_empty(&a, MT_F32, 2, (const int64_t[]){17, 17});
        mt_empty(&b, MT_F32, 2, (const int64_t[]){17, 17});
        fill_rand(&a);
        fill_rand(&b);
        mt_matmul(&ref, &a, &b);
        mt_zeros(&o, MT_F32, 2, (const int64_t[]){17, 17});
        keep = mt_f32(&o);
        CHECK(mt_matmul(&o, &a, &b) == MT_OK && mt_f32(&o) == keep && bits_equal(&o, &ref),
              "preallocated output written in place");
        CHECK(mt_matmul(&a, &a, &b) == MT_OK && bits_equal(&a, &ref), "out aliasing input a gives a @ b");
        mt_release(&o);
        mt_zeros(&o, MT_F32, 2, (const int64_t[]){17, 34});
        mt_view_slice(&v, &o, 1, 0, 34, 2); /* non-contiguous [17, 17] output */
        CHECK(mt_matmul(&v, &ref, &b) == MT_OK, "non-contiguous output view");
        {
            mt_tensor want = {0};
            mt_matmul(&want, &ref, &b);
            CHECK(at4(&v, 0, 0, 0, 0) == mt_f32(&want)[0] && mt_f32(&o)[1] == 0.0f && mt_f32(&o)[2] == mt_f32(&want)[1],
                  "non-contiguous output written through its strides");
            mt_release(&want);
        }
        mt_release(&o);
        mt_zeros(&o, MT_F32, 2, (const int64_t[]){17, 16});
        CHECK(mt_matmul(&o, &a, &b) == MT_ERR_SHAPE && strstr(mt_last_error(), "[17, 16]") &&
                  strstr(mt_last_error(), "[17, 17]"),
              "wrong preallocated output named: %s", mt_last_error());
        mt_release(&o);
        mt_release(&a);
        mt_release(&b);
        mt_release(&ref);
        mt_release(&v);
    }

    /* errors */
    {
        mt_tensor a = {0}, b = {0}, o = {0}, h = {0}, s0 = {0};
        mt_zeros(&a, MT_F32, 2, (const int64_t[]){2, 3});
        mt_zeros(&b, MT_F32, 2, (const int64_t[]){4, 5});
        CHECK(mt_matmul(&o, &a, &b) == MT_ERR_SHAPE && strstr(mt_last_error(), "a [2, 3]") &&
                  strstr(mt_last_error(), "b [4, 5]"),
              "inner size mismatch names both shapes: %s", mt_last_error());
        CHECK(o.data == NULL, "failed matmul leaves out empty");
        mt_release(&b);
        mt_zeros(&b, MT_F32, 3, (const int64_t[]){2, 3, 5});
        mt_release(&a);
        mt_zeros(&a, MT_F32, 3, (const int64_t[]){3, 4, 3});
        CHECK(mt_matmul(&o, &a, &b) == MT_ERR_SHAPE && strstr(mt_last_error(), "broadcast"),
              "batch dims 3 vs 2 do not broadcast: %s", mt_last_error());
        mt_zeros(&s0, MT_F32, 0, NULL);
        CHECK(mt_matmul(&o, &s0, &b) == MT_ERR_SHAPE, "0-d operand refused");
        mt_zeros(&h, MT_F16, 2, (const int64_t[]){3, 2});
        CHECK(mt_matmul(&o, &h, &h) == MT_ERR_DTYPE && strstr(mt_last_error(), "float16"),
              "float16 refused: %s", mt_last_error());
        CHECK(mt_matmul(&o, &o, &a) == MT_ERR_ARGUMENT, "empty operand refused");
        mt_release(&a);
        mt_release(&b);
        mt_release(&h);
        mt_release(&s0);
    }
}

/* ---- mt_linear ---------------------------------------------------------- */

static int check_linear(const mt_tensor *x, const mt_tensor *w, const mt_tensor *bias, const mt_tensor *out) {
    int64_t rows = 1, in = w->shape[1], of = w->shape[0], r, j, p;
    int d, ok = 1;
    for (d = 0; d < x->ndim - 1; d++) rows *= x->shape[d];
    for (r = 0; r < rows; r++) {
        int64_t idx[MT_MAX_DIMS], rem = r, oidx[MT_MAX_DIMS];
        for (d = x->ndim - 2; d >= 0; d--) {
            idx[d] = rem % x->shape[d];
            rem /= x->shape[d];
            oidx[d] = idx[d];
        }
        for (j = 0; j < of; j++) {
            double ref = bias ? mt_f32(bias)[j * bias->stride[0]] : 0.0, sa = fabs(ref);
            for (p = 0; p < in; p++) {
                double xv, wv;
                int64_t wi[2];
                idx[x->ndim - 1] = p;
                xv = at(x, idx);
                wi[0] = j;
                wi[1] = p;
                wv = at(w, wi);
                ref += xv * wv;
                sa += fabs(xv * wv);
            }
            oidx[x->ndim - 1] = j;
            if (!(fabs(at(out, oidx) - ref) <= bound(sa, in + 1))) ok = 0;
        }
    }
    return ok;
}

static void test_linear(void) {
    int p;
    for (p = 0; p < npaths; p++) {
        mt_tensor x = {0}, w = {0}, bias = {0}, o = {0}, xt = {0}, wt = {0}, w2 = {0}, x1 = {0};
        mt_set_simd(paths[p]);
        mt_empty(&x, MT_F32, 3, (const int64_t[]){2, 3, 17});
        mt_empty(&w, MT_F32, 2, (const int64_t[]){65, 17});
        mt_empty(&bias, MT_F32, 1, (const int64_t[]){65});
        fill_rand(&x);
        fill_rand(&w);
        fill_rand(&bias);
        CHECK(mt_linear(&o, &x, &w, &bias) == MT_OK && o.ndim == 3 && o.shape[2] == 65 && check_linear(&x, &w, &bias, &o),
              "%s: linear [2, 3, 17] x [65, 17]^T + bias", mt_simd_name(paths[p]));
        mt_release(&o);
        CHECK(mt_linear(&o, &x, &w, NULL) == MT_OK && check_linear(&x, &w, NULL, &o), "%s: linear without bias",
              mt_simd_name(paths[p]));
        mt_release(&o);
        /* x non-contiguous (leading dims not collapsible): [3, 2, 17] view */
        mt_view_transpose(&xt, &x, 0, 1);
        CHECK(mt_linear(&o, &xt, &w, &bias) == MT_OK && o.shape[0] == 3 && check_linear(&xt, &w, &bias, &o),
              "%s: linear on a transposed x view", mt_simd_name(paths[p]));
        mt_release(&o);
        /* weight as a transposed view of [17, 65] */
        mt_empty(&w2, MT_F32, 2, (const int64_t[]){17, 65});
        fill_rand(&w2);
        mt_view_transpose(&wt, &w2, 0, 1);
        CHECK(mt_linear(&o, &x, &wt, &bias) == MT_OK && check_linear(&x, &wt, &bias, &o),
              "%s: linear with a transposed weight view", mt_simd_name(paths[p]));
        mt_release(&o);
        mt_view_select(&x1, &x, 0, 1);
        mt_view_select(&x1, &x1, 0, 2); /* [17] */
        CHECK(mt_linear(&o, &x1, &w, &bias) == MT_OK && o.ndim == 1 && o.shape[0] == 65 && check_linear(&x1, &w, &bias, &o),
              "%s: linear on a 1-d x [17] -> [65]", mt_simd_name(paths[p]));
        mt_release(&o);
        mt_release(&x);
        mt_release(&w);
        mt_release(&bias);
        mt_release(&xt);
        mt_release(&wt);
        mt_release(&w2);
        mt_release(&x1);
    }
    mt_set_simd(MT_SIMD_AUTO);
    {
        mt_tensor x = {0}, w = {0}, b = {0}, o = {0};
        mt_zeros(&x, MT_F32, 2, (const int64_t[]){4, 5});
        mt_zeros(&w, MT_F32, 2, (const int64_t[]){3, 6});
        CHECK(mt_linear(&o, &x, &w, NULL) == MT_ERR_SHAPE && strstr(mt_last_error(), "[4, 5]") &&
                  strstr(mt_last_error(), "[3, 6]"),
              "in_features mismatch: %s", mt_last_error());
        mt_release(&w);
        mt_zeros(&w, MT_F32, 2, (const int64_t[]){3, 5});
        mt_zeros(&b, MT_F32, 1, (const int64_t[]){4});
        CHECK(mt_linear(&o, &x, &w, &b) == MT_ERR_SHAPE && strstr(mt_last_error(), "bias [4]"),
              "bias size mismatch: %s", mt_last_error());
        CHECK(mt_linear(&o, &x, &b, NULL) == MT_ERR_SHAPE, "1-d weight refused");
        mt_release(&x);
        mt_release(&w);
        mt_release(&b);
    }
}

/* ---- conv2d ------------------------------------------------------------- */

typedef struct conv_case {
    int64_t n, c, h, w, co, kh, kw;
    int sh, sw, ph, pw, dh, dw, groups;
} conv_case;

static int check_conv(const mt_tensor *x, const mt_tensor *w, const mt_tensor *bias, const mt_conv2d_desc *d,
                      const mt_tensor *out) {
    int64_t n = x->shape[0], c = x->shape[1], h = x->shape[2], wd = x->shape[3];
    int64_t co = w->shape[0], cig = w->shape[1], kh = w->shape[2], kw = w->shape[3];
    int64_t sh = d->stride[0] ? d->stride[0] : 1, sw = d->stride[1] ? d->stride[1] : 1;
    int64_t dh = d->dilation[0] ? d->dilation[0] : 1, dw = d->dilation[1] ? d->dilation[1] : 1;
    int64_t g = d->groups ? d->groups : 1, cog = co / g;
    int64_t ho = (h + 2 * d->padding[0] - dh * (kh - 1) - 1) / sh + 1;
    int64_t wo = (wd + 2 * d->padding[1] - dw * (kw - 1) - 1) / sw + 1;
    int64_t i, o, y, xx, ci, u, v;
    int ok = 1;
    (void)c;
    if (out->ndim != 4 || out->shape[0] != n || out->shape[1] != co || out->shape[2] != ho || out->shape[3] != wo)
        return 0;
    for (i = 0; i < n; i++)
        for (o = 0; o < co; o++)
            for (y = 0; y < ho; y++)
                for (xx = 0; xx < wo; xx++) {
                    double ref = bias ? mt_f32(bias)[o * bias->stride[0]] : 0.0, sa = fabs(ref);
                    int64_t gi = o / cog;
                    for (ci = 0; ci < cig; ci++)
                        for (u = 0; u < kh; u++)
                            for (v = 0; v < kw; v++) {
                                int64_t iy = y * sh - d->padding[0] + u * dh, ix = xx * sw - d->padding[1] + v * dw;
                                double a, b;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                                a = at4(x, i, gi * cig + ci, iy, ix);
                                b = at4(w, o, ci, u, v);
                                ref += a * b;
                                sa += fabs(a * b);
                            }
                    if (!(fabs(at4(out, i, o, y, xx) - ref) <= bound(sa, cig * kh * kw + 1))) {
                        if (ok) printf("     out[%lld, %lld, %lld, %lld] = %.9g, want %.9g\n", (long long)i,
                                       (long long)o, (long long)y, (long long)xx, at4(out, i, o, y, xx), ref);
                        ok = 0;
                    }
                }
    return ok;
}

static void desc_of(const conv_case *k, mt_conv2d_desc *d) {
    memset(d, 0, sizeof *d);
    d->stride[0] = k->sh;
    d->stride[1] = k->sw;
    d->padding[0] = k->ph;
    d->padding[1] = k->pw;
    d->dilation[0] = k->dh;
    d->dilation[1] = k->dw;
    d->groups = k->groups;
}

static void test_conv2d(void) {
    static const conv_case cases[] = {
        /* n  c   h   w  co kh kw sh sw ph pw dh dw g */
        {2, 7, 5, 6, 17, 1, 1, 0, 0, 0, 0, 0, 0, 0},   /* 1x1 */
        {1, 17, 9, 11, 19, 3, 3, 1, 1, 1, 1, 1, 1, 1},  /* 3x3 pad 1 */
        {2, 5, 13, 10, 7, 3, 3, 2, 2, 1, 1, 0, 0, 0},   /* stride 2 */
        {1, 3, 12, 12, 5, 3, 3, 1, 1, 2, 2, 2, 2, 0},   /* dilation 2 */
        {1, 6, 8, 8, 4, 3, 3, 1, 1, 1, 1, 1, 1, 2},     /* groups 2 */
        {1, 4, 7, 7, 4, 3, 3, 1, 1, 1, 1, 1, 1, 4},     /* depthwise */
        {1, 3, 9, 7, 6, 3, 1, 1, 2, 1, 0, 1, 1, 1},     /* non-square */
        {1, 50, 17, 17, 65, 3, 3, 1, 1, 1, 1, 1, 1, 1}, /* depth 450 > one block, runs across rows */
        {1, 3, 6, 40, 33, 3, 3, 1, 1, 1, 1, 1, 1, 1},   /* rows wider than a panel */
        {1, 2, 5, 5, 3, 5, 5, 1, 1, 0, 0, 1, 1, 1},     /* kernel = image: 1x1 output */
        {1, 3, 4, 4, 2, 1, 1, 2, 2, 0, 0, 1, 1, 1},     /* 1x1 stride 2 */
        {1, 8, 11, 9, 9, 1, 1, 1, 1, 1, 1, 1, 1, 1},    /* 1x1 with padding */
        {3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1}};    /* all ones */
    int p;
    size_t z;
    for (p = 0; p < npaths; p++) {
        int ok = 1;
        mt_set_simd(paths[p]);
        for (z = 0; z < sizeof cases / sizeof *cases; z++) {
            const conv_case *k = &cases[z];
            mt_tensor x = {0}, w = {0}, b = {0}, o = {0};
            mt_conv2d_desc d;
            int64_t g = k->groups ? k->groups : 1;
            int r;
            if (valgrind_run && k->c > 40) continue;
            desc_of(k, &d);
            mt_empty(&x, MT_F32, 4, (const int64_t[]){k->n, k->c, k->h, k->w});
            mt_empty(&w, MT_F32, 4, (const int64_t[]){k->co, k->c / g, k->kh, k->kw});
            mt_empty(&b, MT_F32, 1, (const int64_t[]){k->co});
            fill_rand(&x);
            fill_rand(&w);
            fill_rand(&b);
            r = mt_conv2d(&o, &x, &w, (z & 1) ? &b : NULL, &d) == MT_OK && check_conv(&x, &w, (z & 1) ? &b : NULL, &d, &o);
            if (!r) printf("     %s: conv case %d failed (%s)\n", mt_simd_name(paths[p]), (int)z, mt_last_error());
            ok &= r;
            mt_release(&x);
            mt_release(&w);
            mt_release(&b);
            mt_release(&o);
        }
        CHECK(ok, "%s: conv2d on 13 shapes (1x1, 3x3, stride, padding, dilation, groups, depthwise) matches the loop",
              mt_simd_name(paths[p]));
        /* strided input views: NHWC storage seen as NCHW, and a spatial slice */
        {
            mt_tensor nhwc = {0}, x = {0}, xs = {0}, w = {0}, o = {0}, w3 = {0};
            mt_conv2d_desc d;
            memset(&d, 0, sizeof d);
            d.padding[0] = d.padding[1] = 1;
            mt_empty(&nhwc, MT_F32, 4, (const int64_t[]){2, 9, 10, 5});
            fill_rand(&nhwc);
            mt_view_permute(&x, &nhwc, (const int[]){0, 3, 1, 2}); /* [2, 5, 9, 10] */
            mt_empty(&w, MT_F32, 4, (const int64_t[]){7, 5, 3, 3});
            fill_rand(&w);
            CHECK(mt_conv2d(&o, &x, &w, NULL, &d) == MT_OK && check_conv(&x, &w, NULL, &d, &o),
                  "%s: conv2d of a permuted (NHWC storage) input", mt_simd_name(paths[p]));
            mt_release(&o);
            mt_view_slice(&xs, &x, 3, 1, 10, 2); /* width stride 2 */
            CHECK(mt_conv2d(&o, &xs, &w, NULL, &d) == MT_OK && check_conv(&xs, &w, NULL, &d, &o),
                  "%s: conv2d of a column-strided slice", mt_simd_name(paths[p]));
            mt_release(&o);
            mt_view_slice(&w3, &w, 2, 0, 3, 2); /* [7, 5, 2, 3] non-contiguous weight */
            CHECK(mt_conv2d(&o, &x, &w3, NULL, &d) == MT_OK && check_conv(&x, &w3, NULL, &d, &o),
                  "%s: conv2d with a sliced (non-contiguous) weight", mt_simd_name(paths[p]));
            mt_release(&o);
            d.padding[0] = d.padding[1] = 0;
            mt_view_slice(&w3, &w, 2, 1, 2, 1);
            mt_view_slice(&w3, &w3, 3, 1, 2, 1); /* [7, 5, 1, 1] */
            CHECK(mt_conv2d(&o, &x, &w3, NULL, &d) == MT_OK && check_conv(&x, &w3, NULL, &d, &o),
                  "%s: 1x1 conv2d of a permuted input", mt_simd_name(paths[p]));
            mt_release(&o);
            mt_release(&nhwc);
            mt_release(&x);
            mt_release(&xs);
            mt_release(&w);
            mt_release(&w3);
        }
    }
    mt_set_simd(MT_SIMD_AUTO);
    {
        mt_tensor x = {0}, w = {0}, b = {0}, o = {0};
        mt_conv2d_desc d;
        memset(&d, 0, sizeof d);
        mt_zeros(&x, MT_F32, 4, (const int64_t[]){1, 4, 5, 5});
        mt_zeros(&w, MT_F32, 4, (const int64_t[]){6, 3, 3, 3});
        CHECK(mt_conv2d(&o, &x, &w, NULL, NULL) == MT_ERR_SHAPE && strstr(mt_last_error(), "[6, 3, 3, 3]") &&
                  strstr(mt_last_error(), "[1, 4, 5, 5]"),
              "channel mismatch names both shapes: %s", mt_last_error());
        mt_release(&w);
        mt_zeros(&w, MT_F32, 4, (const int64_t[]){6, 2, 3, 3});
        d.groups = 3;
        CHECK(mt_conv2d(&o, &x, &w, NULL, &d) == MT_ERR_SHAPE && strstr(mt_last_error(), "groups"),
              "groups not dividing channels: %s", mt_last_error());
        d.groups = 2;
        CHECK(mt_conv2d(&o, &x, &w, NULL, &d) == MT_OK && o.shape[2] == 3, "groups 2 accepted");
        mt_release(&o);
        mt_release(&w);
        mt_zeros(&w, MT_F32, 4, (const int64_t[]){6, 4, 7, 7});
        CHECK(mt_conv2d(&o, &x, &w, NULL, NULL) == MT_ERR_SHAPE && strstr(mt_last_error(), "larger"),
              "kernel larger than the input: %s", mt_last_error());
        d.groups = 0;
        d.padding[0] = -1;
        CHECK(mt_conv2d(&o, &x, &w, NULL, &d) == MT_ERR_ARGUMENT, "negative padding refused");
        mt_release(&w);
        mt_zeros(&w, MT_F32, 4, (const int64_t[]){6, 4, 3, 3});
        mt_zeros(&b, MT_F32, 1, (const int64_t[]){5});
        CHECK(mt_conv2d(&o, &x, &w, &b, NULL) == MT_ERR_SHAPE && strstr(mt_last_error(), "bias [5]"),
              "bias size mismatch: %s", mt_last_error());
        CHECK(mt_conv2d(&o, &b, &w, NULL, NULL) == MT_ERR_SHAPE, "1-d input refused");
        CHECK(o.data == NULL, "failed conv leaves out empty");
        mt_release(&x);
        mt_release(&w);
        mt_release(&b);
    }
}

/* ---- conv_transpose2d ----------------------------------------------------- */

static int check_convt(const mt_tensor *x, const mt_tensor *w, const mt_tensor *bias, const mt_conv2d_desc *d,
                       const mt_tensor *out) {
    int64_t n = x->shape[0], c = x->shape[1], h = x->shape[2], wd = x->shape[3];
    int64_t cog = w->shape[1], kh = w->shape[2], kw = w->shape[3];
    int64_t sh = d->stride[0] ? d->stride[0] : 1, sw = d->stride[1] ? d->stride[1] : 1;
    int64_t dh = d->dilation[0] ? d->dilation[0] : 1, dw = d->dilation[1] ? d->dilation[1] : 1;
    int64_t g = d->groups ? d->groups : 1, cig = c / g, co = cog * g;
    int64_t ho = (h - 1) * sh - 2 * d->padding[0] + dh * (kh - 1) + d->output_padding[0] + 1;
    int64_t wo = (wd - 1) * sw - 2 * d->padding[1] + dw * (kw - 1) + d->output_padding[1] + 1;
    double *ref, *sa;
    int64_t i, ci, y, xx, u, v, o, idx;
    int ok = 1;
    if (out->ndim != 4 || out->shape[0] != n || out->shape[1] != co || out->shape[2] != ho || out->shape[3] != wo)
        return 0;
    ref = (double *)calloc((size_t)(n * co * ho * wo), sizeof(double));
    sa = (double *)calloc((size_t)(n * co * ho * wo), sizeof(double));
    for (i = 0; i < n; i++)
        for (ci = 0; ci < c; ci++)
            for (y = 0; y < h; y++)
                for (xx = 0; xx < wd; xx++)
                    for (o = 0; o < cog; o++)
                        for (u = 0; u < kh; u++)
                            for (v = 0; v < kw; v++) {
                                int64_t oy = y * sh - d->padding[0] + u * dh, ox = xx * sw - d->padding[1] + v * dw;
                                int64_t oc = (ci / cig) * cog + o;
                                double p;
                                if (oy < 0 || oy >= ho || ox < 0 || ox >= wo) continue;
                                p = (double)at4(x, i, ci, y, xx) * at4(w, ci, o, u, v);
                                idx = ((i * co + oc) * ho + oy) * wo + ox;
                                ref[idx] += p;
                                sa[idx] += fabs(p);
                            }
    for (i = 0; i < n; i++)
        for (o = 0; o < co; o++)
            for (y = 0; y < ho; y++)
                for (xx = 0; xx < wo; xx++) {
                    double b = bias ? mt_f32(bias)[o] : 0.0;
                    idx = ((i * co + o) * ho + y) * wo + xx;
                    if (!(fabs(at4(out, i, o, y, xx) - (ref[idx] + b)) <= bound(sa[idx] + fabs(b), cig * kh * kw + 1)))
                        ok = 0;
                }
    free(ref);
    free(sa);
    return ok;
}

static void test_conv_transpose2d(void) {
    static const conv_case cases[] = {
        /* n  c  h  w co kh kw sh sw ph pw dh dw g   (co = C_out per group) */
        {1, 4, 5, 5, 3, 4, 4, 2, 2, 1, 1, 1, 1, 1},  /* x2 upsampling */
        {2, 3, 4, 6, 5, 3, 3, 2, 2, 1, 1, 1, 1, 1},  /* with output_padding 1 */
        {1, 6, 3, 4, 2, 3, 3, 1, 1, 0, 0, 2, 2, 2},  /* dilation, groups */
        {1, 17, 7, 9, 7, 1, 1, 1, 1, 0, 0, 1, 1, 1}, /* 1x1 */
        {1, 2, 1, 1, 3, 2, 3, 3, 1, 0, 1, 1, 1, 1}}; /* 1x1 input */
    int p;
    size_t z;
    for (p = 0; p < npaths; p++) {
        int ok = 1;
        mt_set_simd(paths[p]);
        for (z = 0; z < sizeof cases / sizeof *cases; z++) {
            const conv_case *k = &cases[z];
            mt_tensor x = {0}, w = {0}, b = {0}, o = {0};
            mt_conv2d_desc d;
            int64_t g = k->groups ? k->groups : 1;
            int r;
            desc_of(k, &d);
            if (z == 1) d.output_padding[0] = d.output_padding[1] = 1;
            mt_empty(&x, MT_F32, 4, (const int64_t[]){k->n, k->c, k->h, k->w});
            mt_empty(&w, MT_F32, 4, (const int64_t[]){k->c, k->co, k->kh, k->kw});
            mt_empty(&b, MT_F32, 1, (const int64_t[]){k->co * g});
            fill_rand(&x);
            fill_rand(&w);
            fill_rand(&b);
            r = mt_conv_transpose2d(&o, &x, &w, (z & 1) ? NULL : &b, &d) == MT_OK &&
                check_convt(&x, &w, (z & 1) ? NULL : &b, &d, &o);
            if (!r) printf("     %s: conv_transpose case %d failed (%s)\n", mt_simd_name(paths[p]), (int)z, mt_last_error());
            ok &= r;
            mt_release(&x);
            mt_release(&w);
            mt_release(&b);
            mt_release(&o);
        }
        CHECK(ok, "%s: conv_transpose2d on 5 shapes (stride, output_padding, dilation, groups) matches the loop",
              mt_simd_name(paths[p]));
    }
    mt_set_simd(MT_SIMD_AUTO);
    {
        mt_tensor x = {0}, w = {0}, o = {0};
        mt_conv2d_desc d;
        memset(&d, 0, sizeof d);
        d.stride[0] = d.stride[1] = 2;
        d.output_padding[0] = 2;
        mt_zeros(&x, MT_F32, 4, (const int64_t[]){1, 4, 5, 5});
        mt_zeros(&w, MT_F32, 4, (const int64_t[]){4, 3, 3, 3});
        CHECK(mt_conv_transpose2d(&o, &x, &w, NULL, &d) == MT_ERR_ARGUMENT && strstr(mt_last_error(), "output_padding"),
              "output_padding >= stride refused: %s", mt_last_error());
        mt_release(&w);
        mt_zeros(&w, MT_F32, 4, (const int64_t[]){3, 3, 3, 3});
        CHECK(mt_conv_transpose2d(&o, &x, &w, NULL, NULL) == MT_ERR_SHAPE && strstr(mt_last_error(), "[3, 3, 3, 3]"),
              "input channel mismatch: %s", mt_last_error());
        mt_release(&x);
        mt_release(&w);
    }
}

/* ---- attention ----------------------------------------------------------- */

/* Reference softmax(q k^T scale + mask) v in double, one row at a time. */
static int check_attention(const mt_tensor *q, const mt_tensor *k, const mt_tensor *v, const mt_tensor *mask,
                           float scale, const mt_tensor *out) {
    int64_t B = q->shape[0], H = q->shape[1], sq = q->shape[2], D = q->shape[3], sk = k->shape[2], dv = v->shape[3];
    int64_t b, h, i, j, d;
    double sc = scale > 0 ? scale : 1.0 / sqrt((double)D);
    double *s = (double *)malloc(sizeof(double) * (size_t)(sk > 0 ? sk : 1));
    int ok = 1;
    for (b = 0; b < B; b++)
        for (h = 0; h < H; h++)
            for (i = 0; i < sq; i++) {
                double mx = -INFINITY, sum = 0;
                for (j = 0; j < sk; j++) {
                    double acc = 0;
                    for (d = 0; d < D; d++) acc += (double)at4(q, b, h, i, d) * at4(k, b, h, j, d);
                    acc *= sc;
                    if (mask) {
                        int64_t mi[4], md = mask->ndim, z;
                        int64_t full[4];
                        full[0] = b;
                        full[1] = h;
                        full[2] = i;
                        full[3] = j;
                        for (z = 0; z < md; z++) mi[z] = mask->shape[z] == 1 ? 0 : full[4 - md + z];
                        acc += at(mask, mi);
                    }
                    s[j] = acc;
                    if (acc > mx) mx = acc;
                }
                for (j = 0; j < sk; j++) {
                    s[j] = exp(s[j] - mx);
                    sum += s[j];
                }
                for (d = 0; d < dv; d++) {
                    double ref = 0, got = at4(out, b, h, i, d);
                    for (j = 0; j < sk; j++) ref += s[j] / sum * at4(v, b, h, j, d);
                    if (sum == 0 || mx == -INFINITY) {
                        if (!isnan(got)) ok = 0; /* all keys hidden: NaN, as PyTorch */
                    } else if (!(fabs(got - ref) <= 2e-5 * (1 + fabs(ref)))) {
                        if (ok) printf("     out[%lld, %lld, %lld, %lld] = %.9g, want %.9g\n", (long long)b, (long long)h,
                                       (long long)i, (long long)d, got, ref);
                        ok = 0;
                    }
                }
            }
    free(s);
    return ok;
}

static int attn_case(int64_t B, int64_t H, int64_t sq, int64_t sk, int64_t D, int64_t dv, const mt_tensor *mask,
                     float scale) {
    mt_tensor q = {0}, k = {0}, v = {0}, o = {0};
    int ok;
    mt_empty(&q, MT_F32, 4, (const int64_t[]){B, H, sq, D});
    mt_empty(&k, MT_F32, 4, (const int64_t[]){B, H, sk, D});
    mt_empty(&v, MT_F32, 4, (const int64_t[]){B, H, sk, dv});
    fill_rand(&q);
    fill_rand(&k);
    fill_rand(&v);
    /* larger logits than uniform [-0.5, 0.5] so the softmax is peaked */
    {
        int64_t i;
        for (i = 0; i < mt_numel(&q); i++) mt_f32(&q)[i] *= 8.0f;
    }
    ok = mt_attention(&o, &q, &k, &v, mask, scale) == MT_OK && check_attention(&q, &k, &v, mask, scale, &o);
    if (!ok) printf("     attention B=%lld H=%lld Sq=%lld Sk=%lld D=%lld Dv=%lld: %s\n", (long long)B, (long long)H,
                    (long long)sq, (long long)sk, (long long)D, (long long)dv, mt_last_error());
    mt_release(&q);
    mt_release(&k);
    mt_release(&v);
    mt_release(&o);
    return ok;
}

static void test_attention(void) {
    int p;
    for (p = 0; p < npaths; p++) {
        mt_tensor m = {0}, kp = {0};
        int64_t i, j;
        mt_set_simd(paths[p]);
        CHECK(attn_case(1, 1, 1, 1, 1, 1, NULL, 0) && attn_case(2, 3, 17, 63, 7, 5, NULL, 0) &&
                  attn_case(1, 2, 65, 300, 40, 17, NULL, 0.3f) && attn_case(1, 1, 33, 7, 80, 80, NULL, 0),
              "%s: attention, sizes 1..300 (key blocks of 252), head dims 1..80, explicit scale", mt_simd_name(paths[p]));
        /* full additive mask [Sq, Sk] and a causal one */
        mt_empty(&m, MT_F32, 2, (const int64_t[]){17, 63});
        fill_rand(&m);
        CHECK(attn_case(2, 3, 17, 63, 7, 5, &m, 0), "%s: additive mask [17, 63] broadcast over batch and heads",
              mt_simd_name(paths[p]));
        for (i = 0; i < 17; i++)
            for (j = 0; j < 63; j++) mt_f32(&m)[i * 63 + j] = j > i + 40 ? -INFINITY : 0.0f;
        CHECK(attn_case(2, 1, 17, 63, 9, 4, &m, 0), "%s: causal-style -inf mask", mt_simd_name(paths[p]));
        /* key padding mask [B, 1, 1, Sk] hiding all keys of row... every key for batch 1 */
        mt_empty(&kp, MT_F32, 4, (const int64_t[]){2, 1, 1, 260});
        for (j = 0; j < 260; j++) {
            mt_f32(&kp)[j] = j % 3 == 0 ? -INFINITY : 0.0f;
            mt_f32(&kp)[260 + j] = -INFINITY;
        }
        CHECK(attn_case(2, 2, 5, 260, 8, 3, &kp, 0), "%s: key padding mask [2, 1, 1, 260]; fully hidden rows give NaN",
              mt_simd_name(paths[p]));
        mt_release(&m);
        mt_release(&kp);
    }
    mt_set_simd(MT_SIMD_AUTO);
    /* q, k, v as [B, S, H, D] storage viewed [B, H, S, D] */
    {
        mt_tensor qs = {0}, ks = {0}, vs = {0}, q = {0}, k = {0}, v = {0}, o = {0};
        mt_empty(&qs, MT_F32, 4, (const int64_t[]){2, 19, 3, 16});
        mt_empty(&ks, MT_F32, 4, (const int64_t[]){2, 23, 3, 16});
        mt_empty(&vs, MT_F32, 4, (const int64_t[]){2, 23, 3, 12});
        fill_rand(&qs);
        fill_rand(&ks);
        fill_rand(&vs);
        mt_view_transpose(&q, &qs, 1, 2);
        mt_view_transpose(&k, &ks, 1, 2);
        mt_view_transpose(&v, &vs, 1, 2);
        CHECK(mt_attention(&o, &q, &k, &v, NULL, 0) == MT_OK && check_attention(&q, &k, &v, NULL, 0, &o),
              "attention of transposed [B, S, H, D] views");
        mt_release(&o);
        mt_release(&qs);
        mt_release(&ks);
        mt_release(&vs);
        mt_release(&q);
        mt_release(&k);
        mt_release(&v);
    }
    /* errors */
    {
        mt_tensor q = {0}, k = {0}, v = {0}, m = {0}, o = {0};
        mt_zeros(&q, MT_F32, 4, (const int64_t[]){1, 2, 5, 8});
        mt_zeros(&k, MT_F32, 4, (const int64_t[]){1, 2, 6, 7});
        mt_zeros(&v, MT_F32, 4, (const int64_t[]){1, 2, 6, 3});
        CHECK(mt_attention(&o, &q, &k, &v, NULL, 0) == MT_ERR_SHAPE && strstr(mt_last_error(), "[1, 2, 5, 8]") &&
                  strstr(mt_last_error(), "[1, 2, 6, 7]"),
              "head dim mismatch: %s", mt_last_error());
        mt_release(&k);
        mt_zeros(&k, MT_F32, 4, (const int64_t[]){1, 2, 6, 8});
        mt_zeros(&m, MT_F32, 2, (const int64_t[]){4, 6});
        CHECK(mt_attention(&o, &q, &k, &v, &m, 0) == MT_ERR_SHAPE && strstr(mt_last_error(), "mask [4, 6]"),
              "mask that does not broadcast: %s", mt_last_error());
        mt_release(&v);
        mt_zeros(&v, MT_F32, 3, (const int64_t[]){2, 6, 3});
        CHECK(mt_attention(&o, &q, &k, &v, NULL, 0) == MT_ERR_SHAPE, "3-d v refused");
        mt_release(&v);
        mt_zeros(&v, MT_F32, 4, (const int64_t[]){1, 2, 0, 3});
        mt_release(&k);
        mt_zeros(&k, MT_F32, 4, (const int64_t[]){1, 2, 0, 8});
        CHECK(mt_attention(&o, &q, &k, &v, NULL, 0) == MT_OK && o.shape[3] == 3 && mt_f32(&o)[0] == 0.0f,
              "no keys: zeros [1, 2, 5, 3]");
        mt_release(&q);
        mt_release(&k);
        mt_release(&v);
        mt_release(&m);
        mt_release(&o);
    }
}

/* ---- thread counts -------------------------------------------------------- */

static void test_thread_identity(void) {
    int p, t;
    for (p = 0; p < npaths; p++) {
        mt_tensor a = {0}, b = {0}, x = {0}, w = {0}, wt = {0}, cb = {0}, q = {0}, k = {0}, v = {0};
        mt_tensor r1[4], rt[4];
        mt_conv2d_desc d;
        int same = 1, i;
        int64_t big = valgrind_run ? 60 : 300;
        mt_set_simd(paths[p]);
        memset(r1, 0, sizeof r1);
        memset(rt, 0, sizeof rt);
        memset(&d, 0, sizeof d);
        d.padding[0] = d.padding[1] = 1;
        mt_empty(&a, MT_F32, 3, (const int64_t[]){2, big - 1, 517});
        mt_empty(&b, MT_F32, 2, (const int64_t[]){517, big + 33});
        mt_empty(&x, MT_F32, 4, (const int64_t[]){2, 24, 21, 19});
        mt_empty(&w, MT_F32, 4, (const int64_t[]){33, 24, 3, 3});
        mt_empty(&wt, MT_F32, 4, (const int64_t[]){24, 7, 4, 4});
        mt_empty(&cb, MT_F32, 1, (const int64_t[]){33});
        mt_empty(&q, MT_F32, 4, (const int64_t[]){1, 3, 70, 24});
        mt_empty(&k, MT_F32, 4, (const int64_t[]){1, 3, 300, 24});
        mt_empty(&v, MT_F32, 4, (const int64_t[]){1, 3, 300, 20});
        fill_rand(&a);
        fill_rand(&b);
        fill_rand(&x);
        fill_rand(&w);
        fill_rand(&wt);
        fill_rand(&cb);
        fill_rand(&q);
        fill_rand(&k);
        fill_rand(&v);
        mt_set_num_threads(1);
        mt_matmul(&r1[0], &a, &b);
        mt_conv2d(&r1[1], &x, &w, &cb, &d);
        mt_attention(&r1[2], &q, &k, &v, NULL, 0);
        mt_conv_transpose2d(&r1[3], &x, &wt, NULL, &d);
        for (t = 2; t <= 3; t++) {
            mt_set_num_threads(t);
            mt_matmul(&rt[0], &a, &b);
            mt_conv2d(&rt[1], &x, &w, &cb, &d);
            mt_attention(&rt[2], &q, &k, &v, NULL, 0);
            mt_conv_transpose2d(&rt[3], &x, &wt, NULL, &d);
            for (i = 0; i < 4; i++) {
                if (!bits_equal(&r1[i], &rt[i])) printf("     kernel %d differs with %d threads\n", i, t);
                same &= bits_equal(&r1[i], &rt[i]);
                mt_release(&rt[i]);
            }
        }
        mt_set_num_threads(0);
        CHECK(same && r1[0].data && r1[1].data && r1[2].data && r1[3].data,
              "%s: matmul, conv2d, attention, conv_transpose2d bit-identical with 1, 2 and 3 threads",
              mt_simd_name(paths[p]));
        for (i = 0; i < 4; i++) mt_release(&r1[i]);
        mt_release(&a);
        mt_release(&b);
        mt_release(&x);
        mt_release(&w);
        mt_release(&wt);
        mt_release(&cb);
        mt_release(&q);
        mt_release(&k);
        mt_release(&v);
    }
    mt_set_simd(MT_SIMD_AUTO);
}

/* ---- several user threads at once ------------------------------------------ */

typedef struct user_job {
    const mt_tensor *a, *b, *x, *w, *q, *k, *v;
    const mt_tensor *want[3];
    int ok;
} user_job;

static void *user_run(void *p) {
    user_job *u = (user_job *)p;
    int rep, i;
    mt_conv2d_desc d;
    memset(&d, 0, sizeof d);
    d.padding[0] = d.padding[1] = 1;
    u->ok = 1;
    for (rep = 0; rep < 3; rep++) {
        mt_tensor r[3];
        memset(r, 0, sizeof r);
        u->ok &= mt_matmul(&r[0], u->a, u->b) == MT_OK;
        u->ok &= mt_conv2d(&r[1], u->x, u->w, NULL, &d) == MT_OK;
        u->ok &= mt_attention(&r[2], u->q, u->k, u->v, NULL, 0) == MT_OK;
        for (i = 0; i < 3; i++) {
            u->ok &= bits_equal(&r[i], u->want[i]);
            mt_release(&r[i]);
        }
    }
    return NULL;
}

/* Eight threads run matmul, conv2d and attention at the same time (one of
   them gets the pool per call, the others run inline): same bits as a
   lone call. */
static void test_concurrent_users(void) {
    mt_tensor a = {0}, b = {0}, x = {0}, w = {0}, q = {0}, k = {0}, v = {0}, want[3];
    mt_conv2d_desc d;
    pthread_t th[8];
    user_job u[8];
    int i, started = 0, ok = 1;
    memset(want, 0, sizeof want);
    memset(&d, 0, sizeof d);
    d.padding[0] = d.padding[1] = 1;
    mt_empty(&a, MT_F32, 2, (const int64_t[]){70, 90});
    mt_empty(&b, MT_F32, 2, (const int64_t[]){90, 65});
    mt_empty(&x, MT_F32, 4, (const int64_t[]){1, 8, 12, 12});
    mt_empty(&w, MT_F32, 4, (const int64_t[]){9, 8, 3, 3});
    mt_empty(&q, MT_F32, 4, (const int64_t[]){1, 2, 40, 16});
    mt_empty(&k, MT_F32, 4, (const int64_t[]){1, 2, 50, 16});
    mt_empty(&v, MT_F32, 4, (const int64_t[]){1, 2, 50, 8});
    fill_rand(&a);
    fill_rand(&b);
    fill_rand(&x);
    fill_rand(&w);
    fill_rand(&q);
    fill_rand(&k);
    fill_rand(&v);
    mt_set_num_threads(2);
    mt_matmul(&want[0], &a, &b);
    mt_conv2d(&want[1], &x, &w, NULL, &d);
    mt_attention(&want[2], &q, &k, &v, NULL, 0);
    for (i = 0; i < 8; i++) {
        u[i].a = &a;
        u[i].b = &b;
        u[i].x = &x;
        u[i].w = &w;
        u[i].q = &q;
        u[i].k = &k;
        u[i].v = &v;
        u[i].want[0] = &want[0];
        u[i].want[1] = &want[1];
        u[i].want[2] = &want[2];
        u[i].ok = 0;
        if (pthread_create(&th[i], NULL, user_run, &u[i]) != 0) break;
        started++;
    }
    for (i = 0; i < started; i++) pthread_join(th[i], NULL);
    for (i = 0; i < started; i++) ok &= u[i].ok;
    CHECK(started == 8 && ok, "8 user threads x 3 rounds of matmul, conv2d, attention at once: same bits as alone");
    mt_set_num_threads(0);
    for (i = 0; i < 3; i++) mt_release(&want[i]);
    mt_release(&a);
    mt_release(&b);
    mt_release(&x);
    mt_release(&w);
    mt_release(&q);
    mt_release(&k);
    mt_release(&v);
}

/* ---- PyTorch golden values ---------------------------------------------- */

/* Inputs of tests/golden/gen_nn.py: element i of a tensor with seed s is
   (float)sin(0.37 * i + s). */
static void fill_golden(mt_tensor *t, double seed) {
    int64_t i, n = mt_numel(t);
    for (i = 0; i < n; i++) mt_f32(t)[i] = (float)sin(0.37 * (double)i + seed);
}

static int close_to(const mt_tensor *t, const float *want, int64_t n, double tol) {
    int64_t i;
    if (mt_numel(t) != n) return 0;
    for (i = 0; i < n; i++)
        if (!(fabs(mt_f32(t)[i] - want[i]) <= tol * (1 + fabs(want[i])))) {
            printf("     element %lld = %.9g, PyTorch %.9g\n", (long long)i, mt_f32(t)[i], want[i]);
            return 0;
        }
    return 1;
}

static void test_golden(void) {
    int p;
    for (p = 0; p < npaths; p++) {
        mt_tensor x = {0}, w = {0}, b = {0}, o = {0}, q = {0}, k = {0}, v = {0}, m = {0};
        mt_conv2d_desc d;
        mt_set_simd(paths[p]);
        /* conv2d: x [1, 4, 7, 6], w [6, 2, 3, 3], bias [6], stride (2, 1), padding (1, 2),
           dilation (1, 2), groups 2 */
        mt_empty(&x, MT_F32, 4, (const int64_t[]){1, 4, 7, 6});
        mt_empty(&w, MT_F32, 4, (const int64_t[]){6, 2, 3, 3});
        mt_empty(&b, MT_F32, 1, (const int64_t[]){6});
        fill_golden(&x, 0.0);
        fill_golden(&w, 1.0);
        fill_golden(&b, 2.0);
        memset(&d, 0, sizeof d);
        d.stride[0] = 2;
        d.stride[1] = 1;
        d.padding[0] = 1;
        d.padding[1] = 2;
        d.dilation[0] = 1;
        d.dilation[1] = 2;
        d.groups = 2;
        CHECK(mt_conv2d(&o, &x, &w, &b, &d) == MT_OK && o.shape[2] == 4 && o.shape[3] == 6 &&
                  close_to(&o, golden_conv2d, (int64_t)(sizeof golden_conv2d / sizeof(float)), 1e-5),
              "%s: conv2d matches PyTorch 1.13 F.conv2d (gen_nn.py)", mt_simd_name(paths[p]));
        mt_release(&o);
        mt_release(&w);
        /* conv_transpose2d: x as above, w [4, 3, 3, 3], bias [6], stride 2, padding 1,
           output_padding 1, groups 2 */
        mt_empty(&w, MT_F32, 4, (const int64_t[]){4, 3, 3, 3});
        fill_golden(&w, 1.0);
        memset(&d, 0, sizeof d);
        d.stride[0] = d.stride[1] = 2;
        d.padding[0] = d.padding[1] = 1;
        d.output_padding[0] = d.output_padding[1] = 1;
        d.groups = 2;
        CHECK(mt_conv_transpose2d(&o, &x, &w, &b, &d) == MT_OK && o.shape[2] == 14 && o.shape[3] == 12 &&
                  close_to(&o, golden_conv_transpose2d, (int64_t)(sizeof golden_conv_transpose2d / sizeof(float)), 1e-5),
              "%s: conv_transpose2d matches PyTorch 1.13 F.conv_transpose2d (gen_nn.py)", mt_simd_name(paths[p]));
        mt_release(&o);
        /* attention: q [1, 2, 5, 8], k [1, 2, 6, 8], v [1, 2, 6, 3], mask [5, 6] */
        mt_empty(&q, MT_F32, 4, (const int64_t[]){1, 2, 5, 8});
        mt_empty(&k, MT_F32, 4, (const int64_t[]){1, 2, 6, 8});
        mt_empty(&v, MT_F32, 4, (const int64_t[]){1, 2, 6, 3});
        mt_empty(&m, MT_F32, 2, (const int64_t[]){5, 6});
        fill_golden(&q, 0.5);
        fill_golden(&k, 1.5);
        fill_golden(&v, 2.5);
        fill_golden(&m, 3.5);
        CHECK(mt_attention(&o, &q, &k, &v, &m, 0) == MT_OK &&
                  close_to(&o, golden_attention, (int64_t)(sizeof golden_attention / sizeof(float)), 1e-5),
              "%s: attention matches PyTorch 1.13 softmax(q k^T / sqrt(8) + mask) v (gen_nn.py)",
              mt_simd_name(paths[p]));
        mt_release(&o);
        mt_release(&x);
        mt_release(&w);
        mt_release(&b);
        mt_release(&q);
        mt_release(&k);
        mt_release(&v);
        mt_release(&m);
    }
    mt_set_simd(MT_SIMD_AUTO);
}

int main(void) {
    const char *vg = getenv("MT_VALGRIND");
    valgrind_run = vg && *vg && *vg != '0';
    find_paths();
    test_simd();
    test_gemm();
    test_matmul();
    test_linear();
    test_conv2d();
    test_conv_transpose2d();
    test_attention();
    test_thread_identity();
    test_concurrent_users();
    test_golden();
    mt_threads_shutdown();
    return test_finish();
}
