/* Tensor core: creation, references, views, copies, dtype conversion. */
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"
#include "tests/test.h"

static void test_creation(void) {
    mt_tensor t = {0}, u = {0};
    float *p;
    int64_t i;
    CHECK(mt_zeros(&t, MT_F32, MT_SHAPE(2, 3, 4)) == MT_OK, "zeros [2, 3, 4]");
    CHECK(mt_numel(&t) == 24 && t.ndim == 3 && t.stride[0] == 12 && t.stride[2] == 1, "contiguous strides");
    CHECK(((uintptr_t)t.data & 63) == 0, "data aligned to 64 bytes");
    p = mt_f32(&t);
    for (i = 0; i < 24; i++) p[i] = (float)i;
    /* a preallocated output is reused when the shape matches */
    CHECK(mt_full(&t, MT_F32, MT_SHAPE(2, 3, 4), 2.5) == MT_OK && mt_f32(&t) == p && p[23] == 2.5f,
          "full writes into a matching preallocated output");
    CHECK(mt_full(&t, MT_F32, MT_SHAPE(2, 3), 1.0) == MT_ERR_SHAPE, "mismatched preallocated output is refused");
    CHECK(strstr(mt_last_error(), "[2, 3, 4]") != NULL && strstr(mt_last_error(), "[2, 3]") != NULL,
          "error names both shapes: %s", mt_last_error());
    mt_release(&t);
    CHECK(t.data == NULL && t.storage == NULL, "release empties the struct");
    mt_release(&t); /* twice is harmless */

    CHECK(mt_zeros(&t, MT_F32, 2, (const int64_t[]){2, -1}) == MT_ERR_SHAPE, "negative dim refused");
    CHECK(t.data == NULL, "failed creation leaves output empty");
    CHECK(mt_zeros(&t, MT_F32, 9, (const int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}) == MT_ERR_SHAPE, "9 dims refused");

    /* torch.arange(0, 1, 0.25) = [0, 0.25, 0.5, 0.75] */
    CHECK(mt_arange(&t, 0, 1, 0.25) == MT_OK && mt_numel(&t) == 4 && mt_f32(&t)[3] == 0.75f, "arange");
    mt_release(&t);
    CHECK(mt_arange(&t, 0, 1, 0) == MT_ERR_ARGUMENT, "arange step 0 refused");
    /* torch.linspace(0, 999, 10) ends exactly on 999 and starts on 0 */
    CHECK(mt_linspace(&t, 0, 999, 10) == MT_OK && mt_f32(&t)[0] == 0.0f && mt_f32(&t)[9] == 999.0f &&
              mt_f32(&t)[1] == 111.0f,
          "linspace end points exact");
    mt_release(&t);

    {
        float buf[6] = {1, 2, 3, 4, 5, 6};
        CHECK(mt_borrow(&t, MT_F32, MT_SHAPE(2, 3), buf) == MT_OK && mt_f32(&t) == buf, "borrow does not copy");
        CHECK(mt_from_data(&u, MT_F32, MT_SHAPE(2, 3), buf) == MT_OK && mt_f32(&u) != buf && mt_f32(&u)[5] == 6.0f,
              "from_data copies");
        mt_release(&t);
        mt_release(&u);
    }
}

static int adopt_released;
static void adopt_release(void *ctx) { adopt_released += *(int *)ctx; }

static void test_references(void) {
    mt_tensor a = {0}, b = {0}, v = {0};
    static float data[4] = {1, 2, 3, 4};
    int one = 1;
    CHECK(mt_adopt(&a, MT_F32, MT_SHAPE(4), data, adopt_release, &one) == MT_OK, "adopt");
    mt_share(&b, &a);
    CHECK(mt_view_slice(&v, &a, 0, 1, 3, 1) == MT_OK && mt_f32(&v)[0] == 2.0f, "slice view");
    mt_release(&a);
    mt_release(&b);
    CHECK(adopt_released == 0, "storage alive while a view holds it");
    mt_release(&v);
    CHECK(adopt_released == 1, "release callback runs once, with the last reference");

    CHECK(mt_ones(&a, MT_F32, MT_SHAPE(3)) == MT_OK, "ones");
    mt_move(&b, &a);
    CHECK(a.data == NULL && b.data != NULL && mt_f32(&b)[2] == 1.0f, "move empties the source");
    mt_release(&b);
}

static void test_views(void) {
    mt_tensor t = {0}, v = {0}, w = {0}, c = {0};
    float *p;
    int i;
    int perm[3] = {2, 0, 1};
    mt_arange(&t, 0, 24, 1);
    CHECK(mt_view_reshape(&v, &t, 3, (const int64_t[]){2, -1, 4}) == MT_OK && v.shape[1] == 3, "reshape infers -1");
    CHECK(mt_view_reshape(&w, &t, MT_SHAPE(5, 5)) == MT_ERR_SHAPE, "reshape with wrong count refused");
    CHECK(mt_view_permute(&w, &v, perm) == MT_OK && w.shape[0] == 4 && w.shape[1] == 2 && w.shape[2] == 3,
          "permute shape");
    CHECK(!mt_is_contiguous(&w), "permuted view is not contiguous");
    CHECK(mt_view_reshape(&c, &w, MT_SHAPE(24)) == MT_ERR_ARGUMENT, "reshape of non-contiguous view refused");
    CHECK(mt_contiguous(&c, &w) == MT_OK && mt_is_contiguous(&c), "contiguous copy");
    p = mt_f32(&c);
    /* c[k][i][j] = v[i][j][k] = 12 i + 4 j + k */
    {
        int ok = 1, k, j;
        for (k = 0; k < 4; k++)
            for (i = 0; i < 2; i++)
                for (j = 0; j < 3; j++) ok &= p[k * 6 + i * 3 + j] == (float)(12 * i + 4 * j + k);
        CHECK(ok, "permute then contiguous reorders elements");
    }
    mt_release(&c);
    CHECK(mt_view_select(&w, &v, 1, -1) == MT_OK && w.ndim == 2 && mt_f32(&w)[0] == 8.0f, "select negative index");
    CHECK(mt_view_slice(&w, &v, 2, 0, 4, 2) == MT_OK && w.shape[2] == 2 && w.stride[2] == 2, "strided slice");
    CHECK(mt_clone(&c, &w) == MT_OK && mt_f32(&c)[1] == 2.0f && mt_f32(&c)[2] == 4.0f, "clone of strided slice");
    mt_release(&c);
    CHECK(mt_view_unsqueeze(&w, &v, 0) == MT_OK && w.ndim == 4 && w.shape[0] == 1, "unsqueeze");
    CHECK(mt_view_squeeze(&c, &w, 0) == MT_OK && mt_same_shape(&c, &v), "squeeze undoes unsqueeze");
    CHECK(mt_view_squeeze(&c, &v, 0) == MT_ERR_SHAPE, "squeeze of size-2 dim refused");
    mt_release(&c);
    {
        mt_tensor row = {0}, e = {0};
        mt_arange(&row, 0, 3, 1);
        CHECK(mt_view_expand(&e, &row, MT_SHAPE(4, 3)) == MT_OK && e.stride[0] == 0, "expand adds a 0 stride");
        CHECK(mt_clone(&c, &e) == MT_OK && mt_f32(&c)[10] == 1.0f, "expanded clone repeats rows");
        CHECK(mt_view_expand(&e, &row, MT_SHAPE(4, 2)) == MT_ERR_SHAPE, "expand of size 3 to 2 refused");
        mt_release(&row);
        mt_release(&e);
        mt_release(&c);
    }
    CHECK(mt_view_transpose(&w, &v, 0, 2) == MT_OK && w.shape[0] == 4 && w.shape[2] == 2, "transpose");
    mt_release(&w);
    mt_release(&v);
    mt_release(&t);
}

static void test_dtypes(void) {
    /* float16 / bfloat16 bit patterns from numpy/torch:
       torch.tensor(1.0).half() = 0x3c00; 65504 = 0x7bff; 2^-24 = 0x0001 (smallest
       subnormal); 0.1 -> 0x2e66; bfloat16(1.0) = 0x3f80, bfloat16(0.1) = 0x3dcd */
    CHECK(mt_f32_to_f16(1.0f) == 0x3c00, "f16(1)");
    CHECK(mt_f32_to_f16(65504.0f) == 0x7bff, "f16(65504)");
    CHECK(mt_f32_to_f16(70000.0f) == 0x7c00, "f16 overflow to inf");
    CHECK(mt_f32_to_f16(5.9604645e-08f) == 0x0001, "f16 smallest subnormal");
    CHECK(mt_f32_to_f16(0.1f) == 0x2e66, "f16(0.1)");
    CHECK(mt_f32_to_f16(-2.0f) == 0xc000, "f16(-2)");
    CHECK(mt_f16_to_f32(0x2e66) == 0.0999755859375f, "f16 -> f32");
    CHECK(mt_f16_to_f32(0x0001) == 5.9604645e-08f, "f16 subnormal -> f32");
    CHECK(mt_f32_to_bf16(1.0f) == 0x3f80 && mt_f32_to_bf16(0.1f) == 0x3dcd, "bf16 rounding");
    CHECK(mt_bf16_to_f32(0x3dcd) == 0.10009765625f, "bf16 -> f32");
    {
        /* every half value round-trips */
        int ok = 1;
        unsigned h;
        for (h = 0; h < 0x10000; h++) {
            uint16_t x = (uint16_t)h;
            float f = mt_f16_to_f32(x);
            if (f != f) continue;
            ok &= mt_f32_to_f16(f) == x;
        }
        CHECK(ok, "all finite float16 values round-trip");
    }
    {
        mt_tensor a = {0}, h = {0}, b = {0};
        mt_linspace(&a, -3, 3, 7);
        CHECK(mt_to_dtype(&h, &a, MT_F16) == MT_OK && h.dtype == MT_F16, "to float16");
        CHECK(mt_to_dtype(&b, &h, MT_F32) == MT_OK && mt_f32(&b)[0] == -3.0f && mt_f32(&b)[6] == 3.0f,
              "and back");
        mt_release(&a);
        mt_release(&h);
        mt_release(&b);
    }
}

static void test_describe(void) {
    mt_tensor t = {0};
    char buf[128];
    mt_zeros(&t, MT_F32, MT_SHAPE(1, 4, 64, 64));
    mt_describe(&t, buf, sizeof buf);
    CHECK_STR(buf, "Tensor(dtype=float32, shape=[1, 4, 64, 64])", "describe");
    mt_release(&t);
    CHECK(strcmp(mt_status_name(MT_ERR_SHAPE), "MT_ERR_SHAPE") == 0, "status name");
}

int main(void) {
    test_creation();
    test_references();
    test_views();
    test_dtypes();
    test_describe();
    return test_finish();
}
