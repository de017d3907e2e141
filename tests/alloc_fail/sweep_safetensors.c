/* Allocation failure at every k over a safetensors round trip: three tensors
   (F32, F16, BF16; one of them a strided view) and two metadata pairs are
   saved, the file is opened (mapped) and read back, tensor by tensor, into
   new and preallocated tensors, then the same bytes are opened from memory;
   see tests/alloc_fail.h (make alloc-fail). */
#define _POSIX_C_SOURCE 200809L
#include "tests/test.h"
#include "tests/alloc_fail.h"
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"

#define SWEEP_PATH "build/alloc-fail/sweep_safetensors.safetensors"

/* Prints a tensor's name, dtype, shape and the sum of its values. */
static mt_status print_tensor(const char *name, const mt_tensor *t) {
    mt_tensor f = {MT_F32, 0, {0}, {0}, NULL, NULL};
    mt_status s = mt_to_dtype(&f, t, MT_F32);
    int64_t i, n;
    double sum = 0.0;
    if (s != MT_OK) return s;
    n = mt_numel(&f);
    for (i = 0; i < n; i++) sum += mt_f32(&f)[i];
    printf("%s: %s %lld values, sum %a\n", name, mt_dtype_name(t->dtype), (long long)n, sum);
    mt_release(&f);
    return MT_OK;
}

/* Reads every tensor of an open file, as a view and as a copy. */
static mt_status read_all(const mt_safetensors *st) {
    int i;
    for (i = 0; i < mt_safetensors_count(st); i++) {
        const char *name = mt_safetensors_name(st, i);
        mt_tensor view = {MT_F32, 0, {0}, {0}, NULL, NULL}, copy = view;
        mt_safetensors_tensor_info info;
        mt_status s = mt_safetensors_info(st, i, &info);
        if (s == MT_OK) s = mt_safetensors_get(st, name, &view);
        if (s == MT_OK) s = mt_empty(&copy, info.dt, info.ndim, info.shape);
        if (s == MT_OK) s = mt_safetensors_get(st, name, &copy);
        if (s == MT_OK) s = print_tensor(name, &copy);
        mt_release(&view);
        mt_release(&copy);
        if (s != MT_OK) return s;
    }
    printf("metadata: %s, %s\n", mt_safetensors_metadata(st, "format"), mt_safetensors_metadata(st, "note"));
    return MT_OK;
}

static int safetensors_main(void) {
    mt_tensor a = {MT_F32, 0, {0}, {0}, NULL, NULL}, m = a, at = a, h = a, b = a;
    mt_safetensors *st = NULL;
    const char *names[] = {"weight", "half", "brain"};
    const char *meta[] = {"format", "pt", "note", "alloc-fail sweep"};
    const mt_tensor *tensors[3];
    unsigned char *bytes = NULL;
    long size = 0;
    FILE *f = NULL;
    mt_status s;
    int rc = 1;
    s = mt_arange(&a, 0.0, 12.0, 1.0);
    if (s == MT_OK) s = mt_view_reshape(&m, &a, MT_SHAPE(3, 4));
    if (s == MT_OK) s = mt_view_transpose(&at, &m, 0, 1); /* strided: written row-major */
    mt_release(&m);
    if (s == MT_OK) s = mt_to_dtype(&h, &a, MT_F16);
    if (s == MT_OK) s = mt_to_dtype(&b, &a, MT_BF16);
    tensors[0] = &at;
    tensors[1] = &h;
    tensors[2] = &b;
    if (s == MT_OK) s = mt_safetensors_save(SWEEP_PATH, 3, names, tensors, 2, meta);
    if (s == MT_OK) s = mt_safetensors_open(&st, SWEEP_PATH);
    if (s == MT_OK) s = read_all(st);
    mt_safetensors_close(st);
    st = NULL;
    if (s != MT_OK) goto done;
    /* the same bytes from memory (read with plain stdio, not counted) */
    f = fopen(SWEEP_PATH, "rb");
    if (!f || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) != 0) goto done;
    bytes = (unsigned char *)malloc((size_t)size);
    if (!bytes || fread(bytes, 1, (size_t)size, f) != (size_t)size) goto done;
    s = mt_safetensors_open_memory(&st, bytes, (size_t)size);
    free(bytes); /* the reader keeps its own copy */
    bytes = NULL;
    if (s == MT_OK) s = read_all(st);
    mt_safetensors_close(st);
    if (s == MT_OK) rc = 0;
done:
    if (rc) fprintf(stderr, "error: %s\n", mt_last_error());
    if (f) fclose(f);
    free(bytes);
    mt_release(&a);
    mt_release(&at);
    mt_release(&h);
    mt_release(&b);
    return rc;
}

int main(void) {
    af_sweep("safetensors save, open (file and memory), get", safetensors_main);
    remove(SWEEP_PATH);
    return test_finish();
}
