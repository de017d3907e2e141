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

/* ---- thread counts -------------------------------------------------------- */

static void test_thread_identity(void) {
    int p, t;
    for (p = 0; p < npaths; p++) {
        mt_tensor a = {0}, b = {0}, r1 = {0}, rt = {0};
        int same = 1;
        int64_t big = valgrind_run ? 60 : 300;
        mt_set_simd(paths[p]);
        mt_empty(&a, MT_F32, 3, (const int64_t[]){2, big - 1, 517});
        mt_empty(&b, MT_F32, 2, (const int64_t[]){517, big + 33});
        fill_rand(&a);
        fill_rand(&b);
        mt_set_num_threads(1);
        mt_matmul(&r1, &a, &b);
        for (t = 2; t <= 3; t++) {
            mt_set_num_threads(t);
            mt_matmul(&rt, &a, &b);
            same &= bits_equal(&r1, &rt);
            mt_release(&rt);
        }
        mt_set_num_threads(0);
        CHECK(same && r1.data, "%s: matmul bit-identical with 1, 2 and 3 threads", mt_simd_name(paths[p]));
        mt_release(&r1);
        mt_release(&a);
        mt_release(&b);
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
    test_thread_identity();
    mt_threads_shutdown();
    return test_finish();
}
