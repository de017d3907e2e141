/* Shape section: cat, stack, chunk, split, pad, repeat, index_select,
   gather, pixel (un)shuffle. Every op is data movement, so each result is
   compared exactly, element by element, with a plain index loop written
   here; inputs cover every dtype, odd sizes (1, 7, 17) and strided views. */
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"
#include "tests/test.h"

static const mt_dtype all_dtypes[] = {MT_F32, MT_F16, MT_BF16, MT_I64};

/* element at a multi-index, through the strides, as a double */
static double tget(const mt_tensor *t, const int64_t *idx) {
    int64_t off = 0;
    int i;
    const char *p;
    for (i = 0; i < t->ndim; i++) off += idx[i] * t->stride[i];
    p = (const char *)t->data + off * (int64_t)mt_dtype_size(t->dtype);
    switch (t->dtype) {
    case MT_F32: return *(const float *)p;
    case MT_F16: return mt_f16_to_f32(*(const uint16_t *)p);
    case MT_BF16: return mt_bf16_to_f32(*(const uint16_t *)p);
    case MT_I64: return (double)*(const int64_t *)p;
    default: return NAN;
    }
}

static void unravel(int64_t flat, int ndim, const int64_t *shape, int64_t *idx) {
    int i;
    for (i = ndim - 1; i >= 0; i--) {
        idx[i] = shape[i] ? flat % shape[i] : 0;
        flat = shape[i] ? flat / shape[i] : 0;
    }
}

/* A new contiguous tensor whose values are distinct small integers (exact
   in every dtype), from a seed. */
static void make(mt_tensor *t, mt_dtype dt, int ndim, const int64_t *shape, int seed) {
    mt_tensor f = {0};
    int64_t i, n;
    float *p;
    mt_empty(&f, MT_F32, ndim, shape);
    n = mt_numel(&f);
    p = mt_f32(&f);
    for (i = 0; i < n; i++) p[i] = (float)((i * 37 + seed * 101) % 251 - 125);
    if (dt == MT_F32)
        mt_move(t, &f);
    else {
        mt_to_dtype(t, &f, dt);
        mt_release(&f);
    }
}

/* A strided view with the given logical shape: built as the transpose of a
   tensor of the reversed shape, then (step 2 slice) every other row of dim 0
   when `sliced`, so neither the last stride nor the layout is plain. */
static void make_strided(mt_tensor *view, mt_dtype dt, int ndim, const int64_t *shape, int seed, int sliced) {
    int64_t rshape[MT_MAX_DIMS];
    int perm[MT_MAX_DIMS], i;
    mt_tensor base = {0}, p = {0};
    for (i = 0; i < ndim; i++) {
        rshape[i] = shape[ndim - 1 - i];
        perm[i] = ndim - 1 - i;
    }
    if (sliced && ndim) rshape[ndim - 1] = 2 * shape[0];
    make(&base, dt, ndim, rshape, seed);
    mt_view_permute(&p, &base, perm);
    if (sliced && ndim)
        mt_view_slice(view, &p, 0, 1, 2 * shape[0], 2);
    else
        mt_share(view, &p);
    mt_release(&p);
    mt_release(&base);
}

static int same_shape(const mt_tensor *t, int ndim, const int64_t *shape) {
    int i;
    if (t->ndim != ndim) return 0;
    for (i = 0; i < ndim; i++)
        if (t->shape[i] != shape[i]) return 0;
    return 1;
}

/* ---- cat / stack ------------------------------------------------------ */

static void test_cat(void) {
    size_t di;
    for (di = 0; di < sizeof all_dtypes / sizeof all_dtypes[0]; di++) {
        mt_dtype dt = all_dtypes[di];
        int dim;
        for (dim = 0; dim < 3; dim++) {
            int64_t sa[3] = {3, 7, 5}, sb[3] = {3, 7, 5}, sc[3] = {3, 7, 5}, want[3], idx[3], n, i;
            mt_tensor a = {0}, b = {0}, c = {0}, out = {0};
            const mt_tensor *ts[3];
            int bad = 0;
            sb[dim] = 1;
            sc[dim] = 17;
            make(&a, dt, 3, sa, 1);
            make_strided(&b, dt, 3, sb, 2, 1);
            make_strided(&c, dt, 3, sc, 3, 0);
            ts[0] = &a;
            ts[1] = &b;
            ts[2] = &c;
            CHECK(mt_cat(&out, ts, 3, dim - 3) == MT_OK, "cat %s dim %d: %s", mt_dtype_name(dt), dim - 3,
                  mt_last_error());
            memcpy(want, sa, sizeof want);
            want[dim] = sa[dim] + 1 + 17;
            CHECK(same_shape(&out, 3, want) && out.dtype == dt, "cat %s dim %d shape", mt_dtype_name(dt), dim);
            n = mt_numel(&out);
            for (i = 0; i < n && !bad; i++) {
                int64_t j[3];
                const mt_tensor *src;
                unravel(i, 3, want, idx);
                memcpy(j, idx, sizeof j);
                if (idx[dim] < sa[dim]) {
                    src = &a;
                } else if (idx[dim] < sa[dim] + 1) {
                    src = &b;
                    j[dim] -= sa[dim];
                } else {
                    src = &c;
                    j[dim] -= sa[dim] + 1;
                }
                if (tget(&out, idx) != tget(src, j)) bad = 1;
            }
            CHECK(!bad, "cat %s dim %d matches the reference loop", mt_dtype_name(dt), dim);
            mt_release(&a);
            mt_release(&b);
            mt_release(&c);
            mt_release(&out);
        }
    }
    {
        mt_tensor a = {0}, b = {0}, e = {0}, out = {0}, pre = {0}, v = {0};
        const mt_tensor *ts[3];
        float *keep;
        make(&a, MT_F32, MT_SHAPE(2, 3), 1);
        make(&b, MT_F32, MT_SHAPE(2, 4), 2);
        mt_zeros(&e, MT_F32, MT_SHAPE(0));
        ts[0] = &e;
        ts[1] = &a;
        ts[2] = &b;
        /* torch.cat skips 1-d empty tensors */
        CHECK(mt_cat(&out, ts, 3, 1) == MT_OK && out.shape[0] == 2 && out.shape[1] == 7, "cat skips [0] tensors");
        CHECK(mt_f32(&out)[3] == mt_f32(&b)[0] && mt_f32(&out)[7] == mt_f32(&a)[3], "cat values after a skip");
        mt_release(&out);
        CHECK(mt_cat(&out, ts, 1, 0) == MT_OK && out.ndim == 1 && out.shape[0] == 0, "cat of only [0] is [0]");
        mt_release(&out);
        /* errors */
        CHECK(mt_cat(&out, ts + 1, 2, 0) == MT_ERR_SHAPE && out.data == NULL, "cat mismatched shapes refused");
        CHECK(strstr(mt_last_error(), "[2, 4]") && strstr(mt_last_error(), "[2, 3]"), "error names shapes: %s",
              mt_last_error());
        CHECK(mt_cat(&out, ts + 1, 2, 2) == MT_ERR_ARGUMENT, "cat dim 2 of 2-d refused: %s", mt_last_error());
        CHECK(mt_cat(&out, ts + 1, 0, 0) == MT_ERR_ARGUMENT, "cat of no tensors refused");
        mt_to_dtype(&v, &b, MT_F16);
        ts[2] = &v;
        CHECK(mt_cat(&out, ts + 1, 2, 1) == MT_ERR_DTYPE, "cat of mixed dtypes refused: %s", mt_last_error());
        ts[2] = &b;
        mt_release(&v);
        /* preallocated output, reused in place; a wrong one refused */
        mt_zeros(&pre, MT_F32, MT_SHAPE(2, 7));
        keep = mt_f32(&pre);
        CHECK(mt_cat(&pre, ts + 1, 2, 1) == MT_OK && mt_f32(&pre) == keep && keep[13] == mt_f32(&b)[7],
              "cat into a preallocated output");
        CHECK(mt_cat(&pre, ts + 1, 2, 0) == MT_ERR_SHAPE, "cat into a wrong-shape output refused");
        /* output that is a strided view (transpose of a [7, 2] buffer) */
        mt_release(&pre);
        mt_zeros(&pre, MT_F32, MT_SHAPE(7, 2));
        mt_view_transpose(&v, &pre, 0, 1);
        CHECK(mt_cat(&v, ts + 1, 2, 1) == MT_OK && mt_f32(&pre)[2 * 3 + 1] == mt_f32(&b)[4] &&
                  mt_f32(&pre)[1] == mt_f32(&a)[3],
              "cat into a transposed view");
        mt_release(&v);
        mt_release(&pre);
        mt_release(&a);
        mt_release(&b);
        mt_release(&e);
    }
    {
        /* out aliasing an input: x = cat([x[1:], x[:1]]) written back into x */
        mt_tensor x = {0}, lo = {0}, hi = {0};
        const mt_tensor *ts[2];
        int64_t i;
        make(&x, MT_F32, MT_SHAPE(17), 4);
        mt_view_slice(&hi, &x, 0, 1, 17, 1);
        mt_view_slice(&lo, &x, 0, 0, 1, 1);
        ts[0] = &hi;
        ts[1] = &lo;
        {
            float before[17];
            memcpy(before, mt_f32(&x), sizeof before);
            CHECK(mt_cat(&x, ts, 2, 0) == MT_OK, "cat into one of its inputs");
            for (i = 0; i < 17; i++)
                if (mt_f32(&x)[i] != before[(i + 1) % 17]) break;
            CHECK(i == 17, "cat into an input rotates correctly");
        }
        mt_release(&hi);
        mt_release(&lo);
        mt_release(&x);
    }
}

static void test_stack(void) {
    size_t di;
    for (di = 0; di < sizeof all_dtypes / sizeof all_dtypes[0]; di++) {
        mt_dtype dt = all_dtypes[di];
        int dim;
        for (dim = -4; dim <= 3; dim++) {
            int64_t s[3] = {7, 1, 17}, want[4], idx[4], n, i;
            mt_tensor t[3] = {{0}};
            const mt_tensor *ts[3];
            mt_tensor out = {0};
            int d = dim < 0 ? dim + 4 : dim, k, bad = 0;
            make(&t[0], dt, 3, s, 1);
            make_strided(&t[1], dt, 3, s, 2, 1);
            make_strided(&t[2], dt, 3, s, 3, 0);
            for (k = 0; k < 3; k++) ts[k] = &t[k];
            CHECK(mt_stack(&out, ts, 3, dim) == MT_OK, "stack %s dim %d: %s", mt_dtype_name(dt), dim,
                  mt_last_error());
            for (k = 0, i = 0; i < 4; i++) want[i] = i == d ? 3 : s[k++];
            CHECK(same_shape(&out, 4, want), "stack %s dim %d shape", mt_dtype_name(dt), dim);
            n = mt_numel(&out);
            for (i = 0; i < n && !bad; i++) {
                int64_t j[3];
                int q;
                unravel(i, 4, want, idx);
                for (k = 0, q = 0; q < 4; q++)
                    if (q != d) j[k++] = idx[q];
                if (tget(&out, idx) != tget(&t[idx[d]], j)) bad = 1;
            }
            CHECK(!bad, "stack %s dim %d matches the reference loop", mt_dtype_name(dt), dim);
            for (k = 0; k < 3; k++) mt_release(&t[k]);
            mt_release(&out);
        }
    }
    {
        mt_tensor a = {0}, b = {0}, out = {0};
        const mt_tensor *ts[2];
        make(&a, MT_F32, MT_SHAPE(2, 3), 1);
        make(&b, MT_F32, MT_SHAPE(3, 2), 2);
        ts[0] = &a;
        ts[1] = &b;
        CHECK(mt_stack(&out, ts, 2, 0) == MT_ERR_SHAPE && out.data == NULL, "stack of different shapes refused: %s",
              mt_last_error());
        ts[1] = &a;
        CHECK(mt_stack(&out, ts, 2, 3) == MT_ERR_ARGUMENT, "stack dim 3 of 2-d refused");
        CHECK(mt_stack(&out, ts, 2, -4) == MT_ERR_ARGUMENT, "stack dim -4 of 2-d refused");
        CHECK(mt_stack(&out, ts, 2, -1) == MT_OK && out.shape[2] == 2 && mt_f32(&out)[1] == mt_f32(&a)[0],
              "stack a tensor with itself on a new last dim");
        mt_release(&out);
        mt_release(&a);
        mt_release(&b);
    }
}

/* ---- chunk / split ---------------------------------------------------- */

static void test_chunk_split(void) {
    mt_tensor x = {0}, parts[5] = {{0}}, s = {0};
    int count = -1, i, bad;
    int64_t j, k;
    make(&x, MT_F32, MT_SHAPE(3, 7), 1);
    /* torch.chunk(x, 3, dim=1): sizes [3, 3, 1] */
    CHECK(mt_chunk(parts, &count, &x, 3, 1) == MT_OK && count == 3, "chunk 7 in 3 gives 3 parts");
    CHECK(parts[0].shape[1] == 3 && parts[1].shape[1] == 3 && parts[2].shape[1] == 1 && parts[0].shape[0] == 3,
          "chunk sizes [3, 3, 1]");
    CHECK(mt_f32(&parts[1]) == mt_f32(&x) + 3 && parts[2].storage == x.storage, "chunks are views of the source");
    for (bad = 0, i = 0; i < 3; i++)
        for (j = 0; j < 3; j++)
            for (k = 0; k < parts[i].shape[1]; k++) {
                int64_t a[2], b[2];
                a[0] = j, a[1] = k, b[0] = j, b[1] = 3 * i + k;
                if (tget(&parts[i], a) != tget(&x, b)) bad = 1;
            }
    CHECK(!bad, "chunk values");
    /* torch.chunk(torch.zeros(6), 4): three parts of 2 (fewer than asked) */
    mt_release(&x);
    make(&x, MT_I64, MT_SHAPE(6), 1);
    CHECK(mt_chunk(parts, &count, &x, 4, -1) == MT_OK && count == 3 && parts[2].shape[0] == 2 &&
              parts[3].data == NULL,
          "chunk 6 in 4 gives 3 parts of 2, the 4th slot emptied");
    CHECK(mt_chunk(parts, &count, &x, 5, 0) == MT_OK && count == 3 && parts[4].data == NULL,
          "chunk 6 in 5 gives 3 parts");
    /* torch.chunk(torch.zeros(0, 3), 3, 0): three empty parts */
    mt_release(&x);
    mt_zeros(&x, MT_F32, MT_SHAPE(0, 3));
    CHECK(mt_chunk(parts, &count, &x, 3, 0) == MT_OK && count == 3 && parts[2].data && parts[2].shape[0] == 0 &&
              parts[2].shape[1] == 3,
          "chunk of an empty dim gives empty parts");
    mt_release(&x);
    /* a part may be the source itself */
    make(&x, MT_F32, MT_SHAPE(17, 2), 2);
    mt_share(&parts[0], &x);
    CHECK(mt_chunk(parts, NULL, &parts[0], 2, 0) == MT_OK && parts[0].shape[0] == 9 && parts[1].shape[0] == 8 &&
              mt_f32(&parts[1]) == mt_f32(&x) + 18,
          "chunk with the source in the parts array");
    /* errors */
    CHECK(mt_chunk(parts, &count, &x, 0, 0) == MT_ERR_ARGUMENT, "chunk 0 refused");
    CHECK(mt_chunk(parts, &count, &x, 2, 2) == MT_ERR_ARGUMENT, "chunk dim out of range: %s", mt_last_error());

    /* split [2, 0, 5] of a strided [17 -> 7] dim */
    make_strided(&s, MT_BF16, 2, (const int64_t[]){7, 3}, 3, 1);
    CHECK(mt_split(parts, &s, MT_SHAPE(2, 0, 5), 0) == MT_OK && parts[0].shape[0] == 2 && parts[1].shape[0] == 0 &&
              parts[2].shape[0] == 5,
          "split [2, 0, 5]");
    for (bad = 0, j = 0; j < 5; j++)
        for (k = 0; k < 3; k++) {
            int64_t a[2], b[2];
            a[0] = j, a[1] = k, b[0] = j + 2, b[1] = k;
            if (tget(&parts[2], a) != tget(&s, b)) bad = 1;
        }
    CHECK(!bad, "split values through strides");
    CHECK(mt_split(parts, &s, MT_SHAPE(2, 4), 0) == MT_ERR_SHAPE, "split sizes not adding up refused: %s",
          mt_last_error());
    CHECK(strstr(mt_last_error(), "6") && strstr(mt_last_error(), "7"), "error names both sums");
    CHECK(mt_split(parts, &s, MT_SHAPE(8, -1), 0) == MT_ERR_ARGUMENT, "negative split size refused");
    for (i = 0; i < 5; i++) mt_release(&parts[i]);
    mt_release(&s);
    mt_release(&x);
}

/* ---- pad -------------------------------------------------------------- */

/* reference source index of output index j along a dim, -1 for the value */
static int64_t pad_src(int64_t j, int64_t before, int64_t size, mt_pad_mode mode) {
    int64_t m = j - before;
    if (mode == MT_PAD_CONSTANT) return m >= 0 && m < size ? m : -1;
    if (mode == MT_PAD_REPLICATE) return m < 0 ? 0 : m >= size ? size - 1 : m;
    while (m < 0 || m >= size) m = m < 0 ? -m : 2 * (size - 1) - m;
    return m;
}

static void check_pad(const mt_tensor *x, int npad, const int64_t *pad, mt_pad_mode mode, double value,
                      const char *what) {
    mt_tensor out = {0};
    int64_t want[MT_MAX_DIMS], before[MT_MAX_DIMS], idx[MT_MAX_DIMS], src[MT_MAX_DIMS], n, i;
    int nd = x->ndim, k, bad = 0;
    mt_status s = mt_pad(&out, x, npad, pad, mode, value);
    CHECK(s == MT_OK, "pad %s: %s", what, mt_last_error());
    if (s != MT_OK) return;
    for (k = 0; k < nd; k++) {
        before[k] = 0;
        want[k] = x->shape[k];
    }
    for (k = 0; k < npad / 2; k++) {
        before[nd - 1 - k] = pad[2 * k];
        want[nd - 1 - k] += pad[2 * k] + pad[2 * k + 1];
    }
    CHECK(same_shape(&out, nd, want) && out.dtype == x->dtype, "pad %s shape", what);
    n = mt_numel(&out);
    for (i = 0; i < n && !bad; i++) {
        int inside = 1;
        double got, exp;
        unravel(i, nd, want, idx);
        for (k = 0; k < nd; k++) {
            src[k] = pad_src(idx[k], before[k], x->shape[k], mode);
            if (src[k] < 0) inside = 0;
        }
        got = tget(&out, idx);
        exp = inside ? tget(x, src) : (x->dtype == MT_I64 ? (double)(int64_t)value : value);
        if (got != exp) bad = 1;
    }
    CHECK(!bad, "pad %s matches the reference loop", what);
    mt_release(&out);
}

static void test_pad(void) {
    size_t di;
    for (di = 0; di < sizeof all_dtypes / sizeof all_dtypes[0]; di++) {
        mt_dtype dt = all_dtypes[di];
        mt_tensor a = {0}, b = {0};
        char what[96];
        make(&a, dt, MT_SHAPE(2, 3, 7, 17), 1);
        make_strided(&b, dt, 4, (const int64_t[]){1, 3, 7, 5}, 2, 1);
        snprintf(what, sizeof what, "%s constant (1, 2, 3, 0)", mt_dtype_name(dt));
        check_pad(&a, MT_SHAPE(1, 2, 3, 0), MT_PAD_CONSTANT, -2.5 * (dt != MT_I64) + 7 * (dt == MT_I64), what);
        snprintf(what, sizeof what, "%s constant crop (-1, 2, 0, -3, 1, 1)", mt_dtype_name(dt));
        check_pad(&a, MT_SHAPE(-1, 2, 0, -3, 1, 1), MT_PAD_CONSTANT, 4, what);
        snprintf(what, sizeof what, "%s constant strided (2, 2, 1, 1, 0, 1, 1, 0)", mt_dtype_name(dt));
        check_pad(&b, MT_SHAPE(2, 2, 1, 1, 0, 1, 1, 0), MT_PAD_CONSTANT, 0, what);
        snprintf(what, sizeof what, "%s reflect (4, 1, 6, 2)", mt_dtype_name(dt));
        check_pad(&b, MT_SHAPE(4, 1, 6, 2), MT_PAD_REFLECT, 0, what);
        snprintf(what, sizeof what, "%s reflect (16, 16)", mt_dtype_name(dt));
        check_pad(&a, MT_SHAPE(16, 16), MT_PAD_REFLECT, 0, what);
        snprintf(what, sizeof what, "%s replicate (3, 0, 1, 9)", mt_dtype_name(dt));
        check_pad(&b, MT_SHAPE(3, 0, 1, 9), MT_PAD_REPLICATE, 0, what);
        snprintf(what, sizeof what, "%s replicate 3 dims (1, 1, 1, 1, 2, 1)", mt_dtype_name(dt));
        check_pad(&a, MT_SHAPE(1, 1, 1, 1, 2, 1), MT_PAD_REPLICATE, 0, what);
        mt_release(&a);
        mt_release(&b);
    }
    {
        /* F.pad(torch.arange(5.).view(1, 5), (-1, 2)) = [[1, 2, 3, 4, 0, 0]] and
           F.pad(torch.arange(5.).view(1, 1, 5), (4, 0), mode='reflect') =
           [[[4, 3, 2, 1, 0, 1, 2, 3, 4]]] (PyTorch 1.13) */
        mt_tensor a = {0}, out = {0};
        static const float r1[6] = {1, 2, 3, 4, 0, 0}, r2[9] = {4, 3, 2, 1, 0, 1, 2, 3, 4};
        mt_arange(&a, 0, 5, 1);
        CHECK(mt_pad(&out, &a, MT_SHAPE(-1, 2), MT_PAD_CONSTANT, 0) == MT_OK && out.shape[0] == 6 &&
                  memcmp(mt_f32(&out), r1, sizeof r1) == 0,
              "pad (-1, 2) as torch");
        mt_release(&out);
        CHECK(mt_pad(&out, &a, MT_SHAPE(4, 0), MT_PAD_REFLECT, 0) == MT_OK && out.shape[0] == 9 &&
                  memcmp(mt_f32(&out), r2, sizeof r2) == 0,
              "reflect (4, 0) as torch");
        mt_release(&out);
        /* errors leave the output empty */
        CHECK(mt_pad(&out, &a, MT_SHAPE(1, 2, 3), MT_PAD_CONSTANT, 0) == MT_ERR_ARGUMENT && !out.data,
              "odd pad length refused: %s", mt_last_error());
        CHECK(mt_pad(&out, &a, MT_SHAPE(1, 1, 1, 1), MT_PAD_CONSTANT, 0) == MT_ERR_ARGUMENT,
              "pad of more dims than the tensor refused");
        CHECK(mt_pad(&out, &a, MT_SHAPE(5, 0), MT_PAD_REFLECT, 0) == MT_ERR_ARGUMENT, "reflect pad >= size refused: %s",
              mt_last_error());
        CHECK(mt_pad(&out, &a, MT_SHAPE(-1, 0), MT_PAD_REPLICATE, 0) == MT_ERR_ARGUMENT,
              "negative replicate pad refused");
        CHECK(mt_pad(&out, &a, MT_SHAPE(-3, -3), MT_PAD_CONSTANT, 0) == MT_ERR_SHAPE,
              "crop past the size refused: %s", mt_last_error());
        CHECK(mt_pad(&out, &a, MT_SHAPE(1, 1), (mt_pad_mode)7, 0) == MT_ERR_ARGUMENT, "unknown mode refused");
        CHECK(!out.data, "failed pads leave the output empty");
        /* zero padding into the input itself */
        CHECK(mt_pad(&a, &a, MT_SHAPE(0, 0), MT_PAD_CONSTANT, 0) == MT_OK && mt_f32(&a)[4] == 4.0f,
              "pad by nothing into the input itself");
        mt_release(&a);
    }
}

/* ---- repeat ----------------------------------------------------------- */

static void test_repeat(void) {
    size_t di;
    for (di = 0; di < sizeof all_dtypes / sizeof all_dtypes[0]; di++) {
        mt_dtype dt = all_dtypes[di];
        mt_tensor a = {0}, out = {0};
        int64_t want[4], idx[4], src[2], n, i;
        int bad = 0;
        make_strided(&a, dt, 2, (const int64_t[]){7, 3}, 1, 1);
        CHECK(mt_repeat(&out, &a, MT_SHAPE(2, 1, 3, 2)) == MT_OK, "repeat %s (2, 1, 3, 2)", mt_dtype_name(dt));
        want[0] = 2, want[1] = 1, want[2] = 21, want[3] = 6;
        CHECK(same_shape(&out, 4, want), "repeat %s shape [2, 1, 21, 6]", mt_dtype_name(dt));
        n = mt_numel(&out);
        for (i = 0; i < n && !bad; i++) {
            unravel(i, 4, want, idx);
            src[0] = idx[2] % 7;
            src[1] = idx[3] % 3;
            if (tget(&out, idx) != tget(&a, src)) bad = 1;
        }
        CHECK(!bad, "repeat %s matches the reference loop", mt_dtype_name(dt));
        mt_release(&out);
        mt_release(&a);
    }
    {
        mt_tensor a = {0}, out = {0};
        make(&a, MT_F32, MT_SHAPE(17), 1);
        CHECK(mt_repeat(&out, &a, MT_SHAPE(0)) == MT_OK && out.shape[0] == 0, "repeat 0 times is empty");
        mt_release(&out);
        CHECK(mt_repeat(&out, &a, MT_SHAPE(1)) == MT_OK && out.shape[0] == 17 && mt_f32(&out)[16] == mt_f32(&a)[16],
              "repeat once copies");
        mt_release(&out);
        CHECK(mt_repeat(&out, &a, 0, NULL) == MT_ERR_ARGUMENT, "fewer reps than dims refused: %s", mt_last_error());
        CHECK(mt_repeat(&out, &a, MT_SHAPE(-1)) == MT_ERR_ARGUMENT, "negative rep refused");
        mt_release(&a);
        mt_full(&a, MT_I64, 0, NULL, 5);
        CHECK(mt_repeat(&out, &a, MT_SHAPE(3)) == MT_OK && out.shape[0] == 3 && ((int64_t *)out.data)[2] == 5,
              "repeat a scalar");
        mt_release(&out);
        mt_release(&a);
    }
}

/* ---- index_select / gather --------------------------------------------- */

static void test_index_select(void) {
    static const int64_t iv[] = {6, 0, 0, 3, 1, 99, 2, 99, 5};
    size_t di;
    for (di = 0; di < sizeof all_dtypes / sizeof all_dtypes[0]; di++) {
        mt_dtype dt = all_dtypes[di];
        int dim;
        for (dim = 0; dim < 3; dim++) {
            mt_tensor a = {0}, idxbuf = {0}, index = {0}, out = {0};
            int64_t shape[3] = {7, 1, 17}, want[3], idx[3], src[3], n, i;
            int bad = 0;
            int64_t vals[9];
            shape[dim] = 7;
            if (dim == 1) shape[0] = 3;
            make_strided(&a, dt, 3, shape, dim, 1);
            /* index [6, 0, 3, 2, 5] read through a step-2 slice of a bigger buffer */
            for (i = 0; i < 9; i++) vals[i] = iv[i] == 99 ? 99 : iv[i] % shape[dim];
            mt_from_data(&idxbuf, MT_I64, MT_SHAPE(9), vals);
            mt_view_slice(&index, &idxbuf, 0, 0, 9, 2);
            CHECK(mt_index_select(&out, &a, dim, &index) == MT_OK, "index_select %s dim %d: %s", mt_dtype_name(dt),
                  dim, mt_last_error());
            memcpy(want, shape, sizeof want);
            want[dim] = 5;
            CHECK(same_shape(&out, 3, want), "index_select %s dim %d shape", mt_dtype_name(dt), dim);
            n = mt_numel(&out);
            for (i = 0; i < n && !bad; i++) {
                unravel(i, 3, want, idx);
                memcpy(src, idx, sizeof src);
                src[dim] = vals[2 * idx[dim]];
                if (tget(&out, idx) != tget(&a, src)) bad = 1;
            }
            CHECK(!bad, "index_select %s dim %d matches the reference loop", mt_dtype_name(dt), dim);
            mt_release(&out);
            mt_release(&index);
            /* an index out of range is an error, not a crash */
            mt_view_slice(&index, &idxbuf, 0, 0, 9, 1);
            CHECK(mt_index_select(&out, &a, dim, &index) == MT_ERR_ARGUMENT && !out.data,
                  "index_select %s: index 99 refused: %s", mt_dtype_name(dt), mt_last_error());
            mt_release(&index);
            mt_release(&idxbuf);
            mt_release(&a);
        }
    }
    {
        mt_tensor a = {0}, index = {0}, out = {0}, f = {0};
        int64_t neg = -1, two = 2;
        make(&a, MT_F32, MT_SHAPE(4, 3), 1);
        mt_from_data(&index, MT_I64, MT_SHAPE(1), &neg);
        CHECK(mt_index_select(&out, &a, 0, &index) == MT_ERR_ARGUMENT, "negative index refused (as torch)");
        CHECK(strstr(mt_last_error(), "-1") && strstr(mt_last_error(), "size 4"), "error names index and size: %s",
              mt_last_error());
        mt_release(&index);
        mt_from_data(&index, MT_I64, 0, NULL, &two);
        CHECK(mt_index_select(&out, &a, -2, &index) == MT_OK && out.shape[0] == 1 && mt_f32(&out)[2] == mt_f32(&a)[8],
              "0-d index selects one row");
        mt_release(&out);
        mt_to_dtype(&f, &index, MT_F32);
        CHECK(mt_index_select(&out, &a, 0, &f) == MT_ERR_DTYPE, "float index refused");
        CHECK(mt_index_select(&out, &a, 2, &index) == MT_ERR_ARGUMENT, "dim 2 of 2-d refused");
        mt_release(&f);
        mt_release(&index);
        mt_release(&a);
    }
}

static void test_gather(void) {
    size_t di;
    for (di = 0; di < sizeof all_dtypes / sizeof all_dtypes[0]; di++) {
        mt_dtype dt = all_dtypes[di];
        int dim;
        for (dim = 0; dim < 3; dim++) {
            mt_tensor a = {0}, ib = {0}, index = {0}, out = {0};
            int64_t ashape[3] = {7, 5, 17}, ishape[3] = {3, 5, 9}, idx[3], src[3], n, i;
            int perm[3] = {2, 1, 0}, bad = 0;
            int64_t *p;
            ishape[dim] = 11; /* may exceed a's size along dim */
            make_strided(&a, dt, 3, ashape, dim, 1);
            /* a transposed index tensor */
            mt_empty(&ib, MT_I64, MT_SHAPE(ishape[2], ishape[1], ishape[0]));
            p = (int64_t *)ib.data;
            for (i = 0; i < mt_numel(&ib); i++) p[i] = (i * 7 + 3) % ashape[dim];
            mt_view_permute(&index, &ib, perm);
            CHECK(mt_gather(&out, &a, dim - 3, &index) == MT_OK, "gather %s dim %d: %s", mt_dtype_name(dt), dim,
                  mt_last_error());
            CHECK(same_shape(&out, 3, ishape), "gather %s dim %d has the index shape", mt_dtype_name(dt), dim);
            n = mt_numel(&out);
            for (i = 0; i < n && !bad; i++) {
                unravel(i, 3, ishape, idx);
                memcpy(src, idx, sizeof src);
                src[dim] = (int64_t)tget(&index, idx);
                if (tget(&out, idx) != tget(&a, src)) bad = 1;
            }
            CHECK(!bad, "gather %s dim %d matches the reference loop", mt_dtype_name(dt), dim);
            mt_release(&out);
            p[mt_numel(&ib) - 1] = ashape[dim];
            CHECK(mt_gather(&out, &a, dim, &index) == MT_ERR_ARGUMENT && !out.data, "gather %s: index %lld refused: %s",
                  mt_dtype_name(dt), (long long)ashape[dim], mt_last_error());
            mt_release(&index);
            mt_release(&ib);
            mt_release(&a);
        }
    }
    {
        mt_tensor a = {0}, index = {0}, out = {0};
        int64_t v[6] = {0, 1, 2, 2, 1, 0};
        make(&a, MT_F32, MT_SHAPE(2, 3), 1);
        mt_from_data(&index, MT_I64, MT_SHAPE(2, 3), v);
        CHECK(mt_gather(&out, &a, 1, &index) == MT_OK && mt_f32(&out)[3] == mt_f32(&a)[5], "gather dim 1");
        /* out aliasing the input it gathers from */
        {
            float want[6];
            int i, ok = 1;
            for (i = 0; i < 6; i++) want[i] = mt_f32(&a)[(i / 3) * 3 + v[i]];
            CHECK(mt_gather(&a, &a, 1, &index) == MT_OK, "gather into its own input");
            for (i = 0; i < 6; i++) ok &= mt_f32(&a)[i] == want[i];
            CHECK(ok, "gather into its own input gives the right values");
        }
        mt_release(&out);
        mt_release(&index);
        mt_from_data(&index, MT_I64, MT_SHAPE(6), v);
        CHECK(mt_gather(&out, &a, 1, &index) == MT_ERR_SHAPE, "gather index with fewer dims refused: %s",
              mt_last_error());
        mt_release(&index);
        mt_zeros(&index, MT_I64, MT_SHAPE(3, 3));
        CHECK(mt_gather(&out, &a, 1, &index) == MT_ERR_SHAPE, "gather index larger off dim refused: %s",
              mt_last_error());
        CHECK(mt_gather(&out, &a, 3, &index) == MT_ERR_ARGUMENT, "gather dim out of range refused");
        mt_release(&index);
        mt_release(&a);
    }
}

/* ---- pixel shuffle ---------------------------------------------------- */

static void test_pixel_shuffle(void) {
    size_t di;
    for (di = 0; di < sizeof all_dtypes / sizeof all_dtypes[0]; di++) {
        mt_dtype dt = all_dtypes[di];
        int r;
        for (r = 1; r <= 3; r++) {
            mt_tensor x = {0}, y = {0}, z = {0};
            int64_t xs[4] = {2, 0, 7, 5}, ys[4], idx[4], src[4], n, i;
            int bad = 0;
            xs[1] = 3 * r * r;
            make_strided(&x, dt, 4, xs, r, r & 1);
            CHECK(mt_pixel_shuffle(&y, &x, r) == MT_OK, "pixel_shuffle %s r=%d: %s", mt_dtype_name(dt), r,
                  mt_last_error());
            ys[0] = 2, ys[1] = 3, ys[2] = 7 * r, ys[3] = 5 * r;
            CHECK(same_shape(&y, 4, ys), "pixel_shuffle %s r=%d shape", mt_dtype_name(dt), r);
            n = mt_numel(&y);
            for (i = 0; i < n && !bad; i++) {
                unravel(i, 4, ys, idx);
                src[0] = idx[0];
                src[1] = idx[1] * r * r + (idx[2] % r) * r + idx[3] % r;
                src[2] = idx[2] / r;
                src[3] = idx[3] / r;
                if (tget(&y, idx) != tget(&x, src)) bad = 1;
            }
            CHECK(!bad, "pixel_shuffle %s r=%d matches the reference loop", mt_dtype_name(dt), r);
            CHECK(mt_pixel_unshuffle(&z, &y, r) == MT_OK && same_shape(&z, 4, xs), "pixel_unshuffle %s r=%d",
                  mt_dtype_name(dt), r);
            n = mt_numel(&z);
            for (bad = 0, i = 0; i < n && !bad; i++) {
                unravel(i, 4, xs, idx);
                if (tget(&z, idx) != tget(&x, idx)) bad = 1;
            }
            CHECK(!bad, "pixel_unshuffle %s r=%d inverts pixel_shuffle", mt_dtype_name(dt), r);
            mt_release(&x);
            mt_release(&y);
            mt_release(&z);
        }
    }
    {
        /* 3-d and 5-d inputs; F.pixel_shuffle(torch.arange(8.).view(1, 4, 1, 2), 2)
           = [[[[0, 2, 1, 3], [4, 6, 5, 7]]]] (PyTorch 1.13) */
        static const float want[8] = {0, 2, 1, 3, 4, 6, 5, 7};
        mt_tensor a = {0}, v = {0}, y = {0};
        mt_arange(&a, 0, 8, 1);
        mt_view_reshape(&v, &a, MT_SHAPE(1, 4, 1, 2));
        CHECK(mt_pixel_shuffle(&y, &v, 2) == MT_OK && memcmp(mt_f32(&y), want, sizeof want) == 0,
              "pixel_shuffle as torch");
        mt_release(&y);
        mt_view_reshape(&v, &a, MT_SHAPE(4, 1, 2));
        CHECK(mt_pixel_shuffle(&y, &v, 2) == MT_OK && y.ndim == 3 && memcmp(mt_f32(&y), want, sizeof want) == 0,
              "pixel_shuffle of a 3-d input");
        mt_release(&y);
        mt_release(&a);
        make(&a, MT_F32, MT_SHAPE(2, 3, 4, 2, 2), 5);
        mt_view_transpose(&v, &a, 0, 1);
        CHECK(mt_pixel_shuffle(&y, &v, 2) == MT_OK && y.ndim == 5 && y.shape[0] == 3 && y.shape[3] == 4,
              "pixel_shuffle of a strided 5-d input");
        {
            int64_t i0[5] = {2, 1, 0, 3, 2}, s0[5] = {2, 1, 2, 1, 1};
            CHECK(tget(&y, i0) == tget(&v, s0), "5-d pixel_shuffle value");
        }
        mt_release(&y);
        CHECK(mt_pixel_shuffle(&y, &v, 3) == MT_ERR_SHAPE, "channels not divisible by r^2 refused: %s",
              mt_last_error());
        CHECK(mt_pixel_unshuffle(&y, &v, 3) == MT_ERR_SHAPE, "size not divisible by r refused: %s", mt_last_error());
        CHECK(mt_pixel_shuffle(&y, &v, 0) == MT_ERR_ARGUMENT, "factor 0 refused");
        mt_release(&v);
        mt_release(&a);
    }
}

int main(void) {
    test_cat();
    test_stack();
    test_chunk_split();
    test_pad();
    test_repeat();
    test_index_select();
    test_gather();
    test_pixel_shuffle();
    return test_finish();
}
