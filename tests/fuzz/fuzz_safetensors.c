/* tests/fuzz/fuzz_safetensors.c - libFuzzer harness for the safetensors
   reader of modular_tensor.h.

   The input is a file: mt_safetensors_open_memory parses it. When it opens,
   every tensor is listed, looked up by name and loaded (into an empty and
   into a preallocated tensor; every byte is read, so the sanitizers see any
   read outside the file), converted to float32, and the metadata is read;
   loaded tensors are released after the file is closed (they keep it
   alive). A file that opens and holds only loadable tensors is written back
   with mt_safetensors_save and read again: the same names, shapes and bytes
   must come back. Then the open is repeated with one allocation failing
   (chosen by the input) and must fail cleanly or succeed.

   Checks beyond the sanitizers: statuses are known; a failure leaves a
   message and *st NULL; what the reader reports is consistent (sizes,
   offsets within the file, names found by mt_safetensors_find); nothing the
   library allocates outlives the input. */
#define _POSIX_C_SOURCE 200809L
#include "tests/alloc_fail.h"
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond, ...)                                                   \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "fuzz_safetensors: check failed: %s\n  ", #cond); \
            fprintf(stderr, __VA_ARGS__);                                    \
            fprintf(stderr, "\n  last error: %s\n", mt_last_error());        \
            abort();                                                         \
        }                                                                    \
    } while (0)

#define MAX_ROUND_TRIP 32 /* tensors */

static void check_status(mt_status s, const char *what) {
    REQUIRE((unsigned)s < MT_STATUS_COUNT, "%s returned status %d", what, (int)s);
    if (s != MT_OK) REQUIRE(mt_last_error()[0] != '\0', "%s failed with %s and no message", what, mt_status_name(s));
}

static uint64_t touch(const mt_tensor *t) {
    const unsigned char *p = (const unsigned char *)t->data;
    size_t n = (size_t)mt_numel(t) * mt_dtype_size(t->dtype), i;
    uint64_t h = 1469598103934665603ull;
    REQUIRE(mt_is_contiguous(t), "a loaded tensor is not contiguous");
    for (i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static char tmp_path[256];

static const char *round_trip_path(void) {
    if (!tmp_path[0]) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(tmp_path, sizeof tmp_path, "%s/fuzz_safetensors_%ld.safetensors", dir, (long)getpid());
    }
    return tmp_path;
}

/* Reads everything an open file offers; returns 1 when every tensor loads. */
static int read_all(mt_safetensors *st, size_t file_size, mt_tensor *loaded, const char **names, int *n_loaded) {
    int n = mt_safetensors_count(st), i, all = 1;
    *n_loaded = 0;
    REQUIRE(n >= 0, "negative count %d", n);
    REQUIRE(mt_safetensors_name(st, n) == NULL && mt_safetensors_name(st, -1) == NULL, "a name out of range");
    for (i = 0; i < n; i++) {
        mt_safetensors_tensor_info info;
        const char *name = mt_safetensors_name(st, i);
        mt_tensor t = {MT_F32, 0, {0}, {0}, NULL, NULL}, pre = {MT_F32, 0, {0}, {0}, NULL, NULL};
        mt_tensor f = {MT_F32, 0, {0}, {0}, NULL, NULL};
        mt_status s;
        REQUIRE(name != NULL, "tensor %d has no name", i);
        REQUIRE(mt_safetensors_find(st, name) == i, "find('%s') is not %d", name, i);
        mt_clear_error();
        s = mt_safetensors_info(st, i, &info);
        check_status(s, "mt_safetensors_info");
        REQUIRE(s == MT_OK, "info of a listed tensor failed");
        REQUIRE(info.offset <= file_size && info.nbytes <= file_size - info.offset,
                "tensor '%s' at %llu + %llu is outside a file of %zu bytes", name, (unsigned long long)info.offset,
                (unsigned long long)info.nbytes, file_size);
        REQUIRE(info.dtype && info.dtype[0], "tensor '%s' has no dtype", name);
        mt_clear_error();
        s = mt_safetensors_get(st, name, &t);
        check_status(s, "mt_safetensors_get");
        REQUIRE((s == MT_OK) == (info.supported != 0) || s == MT_ERR_MEMORY,
                "get('%s') gave %s for a tensor whose supported flag is %d", name, mt_status_name(s), info.supported);
        if (s != MT_OK) {
            REQUIRE(t.data == NULL, "a failed get filled the tensor");
            all = 0;
            continue;
        }
        REQUIRE(t.dtype == info.dt && t.ndim == info.ndim, "get('%s'): dtype/ndim differ from info", name);
        REQUIRE(memcmp(t.shape, info.shape, (size_t)t.ndim * sizeof(int64_t)) == 0, "get('%s'): shape differs", name);
        REQUIRE((uint64_t)mt_numel(&t) * mt_dtype_size(t.dtype) == info.nbytes, "get('%s'): byte size differs", name);
        touch(&t);
        /* a preallocated tensor of the same shape receives a copy */
        if (mt_empty(&pre, t.dtype, t.ndim, t.shape) == MT_OK) {
            mt_clear_error();
            s = mt_safetensors_get(st, name, &pre);
            check_status(s, "mt_safetensors_get (preallocated)");
            REQUIRE(s == MT_OK, "get into a preallocated tensor of the right shape failed");
            REQUIRE(touch(&pre) == touch(&t), "the copy differs from the view");
        }
        mt_release(&pre);
        mt_clear_error();
        s = mt_to_dtype(&f, &t, MT_F32);
        check_status(s, "mt_to_dtype");
        mt_release(&f);
        if (*n_loaded < MAX_ROUND_TRIP) {
            names[*n_loaded] = name;
            loaded[(*n_loaded)++] = t;
        } else {
            mt_release(&t);
            all = 0;
        }
    }
    {
        int m = mt_safetensors_metadata_count(st);
        REQUIRE(m >= 0, "negative metadata count");
        for (i = 0; i < m; i++) {
            const char *k = mt_safetensors_metadata_key(st, i), *v = mt_safetensors_metadata_value(st, i);
            REQUIRE(k && v, "metadata %d has no key or value", i);
            REQUIRE(mt_safetensors_metadata(st, k) != NULL, "metadata '%s' not found by key", k);
        }
    }
    REQUIRE(mt_safetensors_find(st, "\x01no such tensor") < 0, "found a name that is not there");
    return all;
}

static void round_trip(mt_safetensors *st, mt_tensor *loaded, const char **names, int n) {
    const mt_tensor *ts[MAX_ROUND_TRIP];
    const char *meta[2 * 16];
    int m = mt_safetensors_metadata_count(st), i;
    mt_safetensors *back = NULL;
    mt_status s;
    if (m > 16) return;
    for (i = 0; i < n; i++) ts[i] = &loaded[i];
    for (i = 0; i < m; i++) {
        meta[2 * i] = mt_safetensors_metadata_key(st, i);
        meta[2 * i + 1] = mt_safetensors_metadata_value(st, i);
    }
    mt_clear_error();
    s = mt_safetensors_save(round_trip_path(), n, names, ts, m, m ? meta : NULL);
    check_status(s, "mt_safetensors_save");
    REQUIRE(s == MT_OK, "a file that was read cannot be written back");
    mt_clear_error();
    s = mt_safetensors_open(&back, round_trip_path());
    check_status(s, "mt_safetensors_open (written back)");
    REQUIRE(s == MT_OK, "a file written by mt_safetensors_save does not open");
    REQUIRE(mt_safetensors_count(back) == n, "%d tensors written, %d read back", n, mt_safetensors_count(back));
    for (i = 0; i < n; i++) {
        mt_tensor t = {MT_F32, 0, {0}, {0}, NULL, NULL};
        REQUIRE(mt_safetensors_get(back, names[i], &t) == MT_OK, "'%s' does not load back", names[i]);
        REQUIRE(t.dtype == loaded[i].dtype && t.ndim == loaded[i].ndim &&
                    memcmp(t.shape, loaded[i].shape, (size_t)t.ndim * sizeof(int64_t)) == 0,
                "'%s' comes back with another dtype or shape", names[i]);
        REQUIRE(touch(&t) == touch(&loaded[i]), "'%s' comes back with other bytes", names[i]);
        mt_release(&t);
    }
    for (i = 0; i < m; i++) {
        const char *v = mt_safetensors_metadata(back, meta[2 * i]);
        REQUIRE(v && strcmp(v, meta[2 * i + 1]) == 0, "metadata '%s' does not come back", meta[2 * i]);
    }
    mt_safetensors_close(back);
    unlink(round_trip_path());
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mt_safetensors *st = (mt_safetensors *)&st; /* not NULL: a failed open must set it to NULL */
    mt_tensor loaded[MAX_ROUND_TRIP];
    const char *names[MAX_ROUND_TRIP];
    int n = 0, i, all;
    long live0, allocs;
    mt_status s;
    af_disarm();
    live0 = af_live_now();
    mt_clear_error();
    s = mt_safetensors_open_memory(&st, data, size);
    check_status(s, "mt_safetensors_open_memory");
    allocs = __atomic_load_n(&af_count, __ATOMIC_RELAXED);
    if (s != MT_OK) {
        REQUIRE(st == NULL, "a failed open left *st set");
        REQUIRE(s == MT_ERR_FORMAT || s == MT_ERR_UNSUPPORTED || s == MT_ERR_ARGUMENT,
                "a bad file gave %s", mt_status_name(s));
        REQUIRE(af_live_now() == live0, "a failed open leaked %ld blocks", af_live_now() - live0);
        return 0;
    }
    all = read_all(st, size, loaded, names, &n);
    if (all && n > 0) round_trip(st, loaded, names, n);
    mt_safetensors_close(st);
    for (i = 0; i < n; i++) mt_release(&loaded[i]); /* views outlive the file */
    REQUIRE(af_live_now() == live0, "%ld blocks leaked", af_live_now() - live0);

    /* the same open with one allocation failing */
    if (allocs > 0) {
        uint64_t h = 0;
        size_t k;
        for (k = 0; k < size; k++) h = h * 31u + data[k];
        st = (mt_safetensors *)&st;
        af_arm(1 + (long)(h % (uint64_t)allocs), (int)(h >> 40) & 1);
        mt_clear_error();
        s = mt_safetensors_open_memory(&st, data, size);
        af_disarm();
        check_status(s, "mt_safetensors_open_memory (allocation failing)");
        REQUIRE(s == MT_OK || s == MT_ERR_MEMORY, "an allocation failure gave %s", mt_status_name(s));
        REQUIRE((s == MT_OK) == (st != NULL), "status and handle disagree");
        mt_safetensors_close(st);
        REQUIRE(af_live_now() == live0, "an open with a failing allocation leaked %ld blocks", af_live_now() - live0);
    }
    return 0;
}
