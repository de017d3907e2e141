/* Files: safetensors reading and writing, PNG/JPEG images.

   The safetensors layout follows the format description in the README of
   huggingface/safetensors ("Format": 8-byte little-endian header length,
   JSON header, byte buffer) and the reference writer's choices in
   safetensors/src/tensor.rs (`prepare`: entries sorted by dtype alignment,
   largest first, then by name; "__metadata__" first; the JSON padded with
   spaces to a multiple of 8; data in entry order, no padding). Temporary
   files go to a fresh directory under $TMPDIR (or /tmp), removed at the end. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, opendir: the test's own use */
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"
#include "tests/test.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

/* a check whose failure also prints the library's last message */
#define CHECKE(cond, ...)                                                     \
    do {                                                                      \
        if (!CHECK(cond, __VA_ARGS__)) printf("     last error: %s\n", mt_last_error()); \
    } while (0)

static char tmpdir[512];

static const char *tmp_path(const char *name) {
    static char buf[4][640];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static int write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f) return 0;
    ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* whole file into a malloc'd buffer (NULL when missing) */
static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    unsigned char *p = NULL;
    long len;
    *n = 0;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        p = (unsigned char *)malloc((size_t)len + 1);
        if (p && fread(p, 1, (size_t)len, f) == (size_t)len) *n = (size_t)len;
    }
    fclose(f);
    return p;
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static int count_dir_entries(void) {
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    int n = 0;
    if (!d) return -1;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void remove_tmpdir(void) {
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    if (!d) return;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(tmp_path(e->d_name));
    closedir(d);
    rmdir(tmpdir);
}

/* A safetensors file: the length field says strlen(json), then json, then
   `ndata` bytes of data (0, 1, 2, ... mod 256). */
static unsigned char *make_file(const char *json, size_t ndata, size_t *n) {
    size_t len = strlen(json), i;
    unsigned char *p = (unsigned char *)malloc(8 + len + ndata + 1);
    for (i = 0; i < 8; i++) p[i] = (unsigned char)(((uint64_t)len >> (8 * i)) & 0xff);
    memcpy(p + 8, json, len);
    for (i = 0; i < ndata; i++) p[8 + len + i] = (unsigned char)i;
    *n = 8 + len + ndata;
    return p;
}

/* ---- the hand-built reference file ------------------------------------ */

/* Tensors: ids I64 [1] = {-3}; bias F32 [2] = {1, -2}; weight F32 [2, 2] =
   {0.5, 0.25, -0.125, 3}; z BF16 [2] = {1, -0.5}; h F16 [3] = {1, -2, 0.5};
   metadata {"format": "pt"}. The reference writer orders them I64, F32
   (bias, weight), BF16, F16. The header is 317 bytes of JSON + 3 spaces =
   320 = 0x140; the data 42 bytes, little-endian. */
static const char ref_json[] =
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"ids\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]},"
    "\"bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
    "\"weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[16,32]},"
    "\"z\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[32,36]},"
    "\"h\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[36,42]}}"
    "   ";
static const unsigned char ref_len[8] = {0x40, 0x01, 0, 0, 0, 0, 0, 0};
static const unsigned char ref_data[42] = {
    0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* ids: int64 -3 */
    0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, /* bias: 1.0f, -2.0f */
    0x00, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x80, 0x3e, /* weight: 0.5f, 0.25f */
    0x00, 0x00, 0x00, 0xbe, 0x00, 0x00, 0x40, 0x40, /*         -0.125f, 3.0f */
    0x80, 0x3f, 0x00, 0xbf,                         /* z: bf16 0x3f80, 0xbf00 */
    0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38,             /* h: f16 0x3c00, 0xc000, 0x3800 */
};

static unsigned char *ref_file(size_t *n) {
    unsigned char *p = (unsigned char *)malloc(8 + 320 + 42);
    memcpy(p, ref_len, 8);
    memcpy(p + 8, ref_json, 320);
    memcpy(p + 328, ref_data, 42);
    *n = 8 + 320 + 42;
    return p;
}

static void test_reference_bytes(void) {
    mt_tensor ids = {0}, bias = {0}, wbase = {0}, weight = {0}, z = {0}, h = {0}, t = {0};
    const int64_t ids_v[1] = {-3};
    const float bias_v[2] = {1.0f, -2.0f};
    const float wbase_v[4] = {0.5f, -0.125f, 0.25f, 3.0f}; /* transposed below */
    const uint16_t z_v[2] = {0x3f80, 0xbf00}, h_v[3] = {0x3c00, 0xc000, 0x3800};
    const char *names[5] = {"weight", "h", "bias", "z", "ids"};
    const mt_tensor *tensors[5];
    const char *meta[2] = {"format", "pt"};
    unsigned char *want, *got;
    size_t nwant, ngot;
    mt_safetensors *st = NULL;
    const char *path = tmp_path("ref.safetensors");

    CHECK(strlen(ref_json) == 320, "reference header is 320 bytes");
    mt_from_data(&ids, MT_I64, MT_SHAPE(1), ids_v);
    mt_from_data(&bias, MT_F32, MT_SHAPE(2), bias_v);
    mt_from_data(&wbase, MT_F32, MT_SHAPE(2, 2), wbase_v);
    mt_view_transpose(&weight, &wbase, 0, 1); /* non-contiguous: written row-major */
    mt_from_data(&z, MT_BF16, MT_SHAPE(2), z_v);
    mt_from_data(&h, MT_F16, MT_SHAPE(3), h_v);
    tensors[0] = &weight;
    tensors[1] = &h;
    tensors[2] = &bias;
    tensors[3] = &z;
    tensors[4] = &ids;
    CHECKE(mt_safetensors_save(path, 5, names, tensors, 1, meta) == MT_OK, "save the reference tensors");
    want = ref_file(&nwant);
    got = read_bytes(path, &ngot);
    CHECK(got && ngot == nwant && memcmp(got, want, nwant) == 0,
          "writer output equals the hand-built reference bytes (%zu vs %zu bytes)", ngot, nwant);
    if (got && ngot == nwant && memcmp(got, want, nwant) != 0) {
        size_t i = 0;
        while (got[i] == want[i]) i++;
        printf("     first difference at byte %zu: got 0x%02x, want 0x%02x\n", i, got[i], want[i]);
    }
    free(got);

    /* the reader parses the reference bytes */
    CHECKE(mt_safetensors_open_memory(&st, want, nwant) == MT_OK, "open the reference bytes");
    free(want); /* copied by open_memory */
    if (st) {
        mt_safetensors_tensor_info info;
        CHECK(mt_safetensors_count(st) == 5, "5 tensors");
        CHECK_STR(mt_safetensors_name(st, 0), "ids", "header order: ids first");
        CHECK_STR(mt_safetensors_name(st, 4), "h", "header order: h last");
        CHECK(mt_safetensors_name(st, 5) == NULL && mt_safetensors_name(st, -1) == NULL, "name out of range is NULL");
        CHECK(mt_safetensors_find(st, "weight") == 2 && mt_safetensors_find(st, "nope") == -1, "find");
        CHECK(mt_safetensors_metadata_count(st) == 1, "one metadata entry");
        CHECK_STR(mt_safetensors_metadata(st, "format"), "pt", "metadata lookup");
        CHECK(mt_safetensors_metadata(st, "missing") == NULL, "missing metadata key is NULL");
        CHECK_STR(mt_safetensors_metadata_key(st, 0), "format", "metadata key 0");
        CHECK_STR(mt_safetensors_metadata_value(st, 0), "pt", "metadata value 0");
        CHECK(mt_safetensors_info(st, 2, &info) == MT_OK && strcmp(info.dtype, "F32") == 0 && info.supported &&
                  info.dt == MT_F32 && info.ndim == 2 && info.shape[0] == 2 && info.shape[1] == 2 &&
                  info.offset == 8 + 320 + 16 && info.nbytes == 16,
              "info of weight");
        CHECK(mt_safetensors_info(st, 9, &info) == MT_ERR_ARGUMENT, "info out of range refused");

        CHECK(mt_safetensors_get(st, "weight", &t) == MT_OK && t.dtype == MT_F32 && t.ndim == 2 &&
                  mt_f32(&t)[0] == 0.5f && mt_f32(&t)[1] == 0.25f && mt_f32(&t)[2] == -0.125f && mt_f32(&t)[3] == 3.0f,
              "weight values");
        mt_release(&t);
        CHECK(mt_safetensors_get(st, "ids", &t) == MT_OK && t.dtype == MT_I64 && ((int64_t *)t.data)[0] == -3,
              "ids values");
        mt_release(&t);
        CHECK(mt_safetensors_get(st, "z", &t) == MT_OK && t.dtype == MT_BF16 && ((uint16_t *)t.data)[1] == 0xbf00,
              "z stays bfloat16");
        mt_release(&t);
        CHECK(mt_safetensors_get(st, "h", &t) == MT_OK && t.dtype == MT_F16 && ((uint16_t *)t.data)[2] == 0x3800,
              "h stays float16");
        {
            mt_tensor f = {0};
            CHECK(mt_to_dtype(&f, &t, MT_F32) == MT_OK && mt_f32(&f)[1] == -2.0f, "float16 converts with mt_to_dtype");
            mt_release(&f);
        }
        mt_release(&t);
        mt_safetensors_close(st);
    }
    mt_release(&ids);
    mt_release(&bias);
    mt_release(&wbase);
    mt_release(&weight);
    mt_release(&z);
    mt_release(&h);
}

/* ---- round trips ----------------------------------------------------- */

static uint32_t lcg(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

static void test_round_trip(void) {
    mt_tensor a = {0}, b = {0}, c = {0}, d = {0}, s0 = {0}, e0 = {0}, t = {0}, u = {0};
    const char *names[6] = {"unet.conv_in.weight", "f16", "bf16", "steps", "scalar", "empty"};
    const mt_tensor *ts[6];
    const char *meta[6] = {"format", "pt", "note", "line\nbreak \"quoted\" \xc3\xa9", "empty", ""};
    const char *path = tmp_path("round.safetensors");
    mt_safetensors *st = NULL;
    uint32_t seed = 7;
    int64_t i;
    int ok;

    mt_empty(&a, MT_F32, MT_SHAPE(3, 7, 17));
    for (i = 0; i < mt_numel(&a); i++) mt_f32(&a)[i] = (float)lcg(&seed) / 65536.0f - 128.0f;
    mt_empty(&b, MT_F16, MT_SHAPE(63));
    for (i = 0; i < 63; i++) ((uint16_t *)b.data)[i] = (uint16_t)lcg(&seed);
    mt_empty(&c, MT_BF16, MT_SHAPE(1, 17));
    for (i = 0; i < 17; i++) ((uint16_t *)c.data)[i] = (uint16_t)lcg(&seed);
    mt_empty(&d, MT_I64, MT_SHAPE(5));
    for (i = 0; i < 5; i++) ((int64_t *)d.data)[i] = (int64_t)lcg(&seed) * (i % 2 ? -1 : 1) * 1000003;
    mt_full(&s0, MT_F32, 0, NULL, 42.5);
    mt_empty(&e0, MT_F32, MT_SHAPE(0, 3));
    ts[0] = &a;
    ts[1] = &b;
    ts[2] = &c;
    ts[3] = &d;
    ts[4] = &s0;
    ts[5] = &e0;
    CHECKE(mt_safetensors_save(path, 6, names, ts, 3, meta) == MT_OK, "save F32/F16/BF16/I64/scalar/empty");
    CHECKE(mt_safetensors_open(&st, path) == MT_OK, "open the saved file");
    if (!st) goto done;
    CHECK(mt_safetensors_count(st) == 6, "6 tensors");
    ok = 1;
    for (i = 0; i < 6; i++) {
        const mt_tensor *want = ts[i];
        if (mt_safetensors_get(st, names[i], &t) != MT_OK) {
            ok = 0;
            continue;
        }
        ok &= t.dtype == want->dtype && mt_same_shape(&t, want) &&
              memcmp(t.data, want->data, (size_t)mt_numel(want) * mt_dtype_size(want->dtype)) == 0;
        ok &= ((uintptr_t)t.data % mt_dtype_size(t.dtype)) == 0;
        mt_release(&t);
    }
    CHECK(ok, "every tensor comes back with its dtype, shape and exact bytes, aligned");
    CHECK_STR(mt_safetensors_metadata(st, "note"), "line\nbreak \"quoted\" \xc3\xa9", "escaped metadata value");
    CHECK_STR(mt_safetensors_metadata(st, "empty"), "", "empty metadata value");
    CHECK(mt_safetensors_metadata_count(st) == 3, "3 metadata entries");

    /* zero-copy: two loads share the mapped bytes; views outlive close */
    CHECK(mt_safetensors_get(st, names[0], &t) == MT_OK && mt_safetensors_get(st, names[0], &u) == MT_OK &&
              t.data == u.data && t.storage == u.storage,
          "float32 loads are views of one mapping");
    mt_release(&u);
    {
        mt_tensor pre = {0}, bad = {0};
        mt_empty(&pre, MT_F32, MT_SHAPE(3, 7, 17));
        CHECK(mt_safetensors_get(st, names[0], &pre) == MT_OK && pre.data != t.data &&
                  memcmp(pre.data, a.data, (size_t)mt_numel(&a) * 4) == 0,
              "a preallocated output receives a copy");
        mt_empty(&bad, MT_F32, MT_SHAPE(3, 7, 16));
        CHECK(mt_safetensors_get(st, names[0], &bad) == MT_ERR_SHAPE && strstr(mt_last_error(), "[3, 7, 17]"),
              "a mismatched preallocated output is refused: %s", mt_last_error());
        mt_release(&pre);
        mt_release(&bad);
    }
    CHECK(mt_safetensors_get(st, "missing", &u) == MT_ERR_ARGUMENT && strstr(mt_last_error(), "no tensor named 'missing'"),
          "unknown name refused: %s", mt_last_error());
    mt_safetensors_close(st);
    st = NULL;
    CHECK(mt_f32(&t)[5] == mt_f32(&a)[5], "a view stays valid after close");
    /* copy-on-write: writing into a view never reaches the file */
    mt_f32(&t)[0] = 12345.0f;
    mt_release(&t);
    CHECK(mt_safetensors_open(&st, path) == MT_OK && mt_safetensors_get(st, names[0], &t) == MT_OK &&
              mt_f32(&t)[0] == mt_f32(&a)[0],
          "writes into a loaded tensor do not change the file");
    /* saving over the open file: the old mapping keeps the old bytes */
    {
        const char *n1[1] = {"unet.conv_in.weight"};
        const mt_tensor *t1[1];
        mt_safetensors *st2 = NULL;
        mt_full(&u, MT_F32, MT_SHAPE(2), -1.0);
        t1[0] = &u;
        CHECK(mt_safetensors_save(path, 1, n1, t1, 0, NULL) == MT_OK, "save over a mapped file");
        CHECK(mt_f32(&t)[1] == mt_f32(&a)[1], "tensors of the old file keep their values");
        mt_release(&u);
        CHECK(mt_safetensors_open(&st2, path) == MT_OK && mt_safetensors_get(st2, n1[0], &u) == MT_OK &&
                  mt_numel(&u) == 2 && mt_f32(&u)[0] == -1.0f,
              "reopening reads the new file");
        CHECK(mt_safetensors_metadata_count(st2) == 0, "no metadata when none was given");
        mt_release(&u);
        mt_safetensors_close(st2);
    }
    mt_release(&t);
    mt_safetensors_close(st);
done:
    mt_release(&a);
    mt_release(&b);
    mt_release(&c);
    mt_release(&d);
    mt_release(&s0);
    mt_release(&e0);
}

/* names with characters JSON must escape, written as serde_json does */
static void test_escapes(void) {
    const char *name = "a\"b\\c\nd\x01\xc3\xa9\t/";
    const char *want = "\"a\\\"b\\\\c\\nd\\u0001\xc3\xa9\\t/\"";
    const char *names[1];
    const mt_tensor *ts[1];
    mt_tensor t = {0}, u = {0};
    mt_safetensors *st = NULL;
    unsigned char *bytes;
    size_t n;
    const char *path = tmp_path("esc.safetensors");
    names[0] = name;
    ts[0] = &t;
    mt_zeros(&t, MT_F32, MT_SHAPE(1));
    CHECK(mt_safetensors_save(path, 1, names, ts, 0, NULL) == MT_OK, "save an escaped name");
    bytes = read_bytes(path, &n);
    {
        int found = 0;
        size_t i, wl = strlen(want);
        for (i = 0; bytes && i + wl <= n; i++)
            if (memcmp(bytes + i, want, wl) == 0) found = 1;
        CHECK(found, "header holds the serde_json escaping %s", want);
    }
    free(bytes);
    CHECK(mt_safetensors_open(&st, path) == MT_OK && mt_safetensors_find(st, name) == 0 &&
              mt_safetensors_get(st, name, &u) == MT_OK,
          "the name reads back unchanged");
    mt_release(&u);
    mt_safetensors_close(st);
    mt_release(&t);

    /* the reader decodes every JSON escape, surrogate pairs included */
    {
        const char *json = "{\"\\u00e9\\/\\ud83d\\ude00\\b\\f\\r\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}";
        unsigned char *f = make_file(json, 4, &n);
        st = NULL;
        CHECKE(mt_safetensors_open_memory(&st, f, n) == MT_OK, "escapes decode");
        CHECK_STR(mt_safetensors_name(st, 0), "\xc3\xa9/\xf0\x9f\x98\x80\b\f\r", "decoded name");
        mt_safetensors_close(st);
        free(f);
    }
}

/* data placed so a float32 tensor is misaligned: it is copied, not viewed */
static void test_misaligned_and_unsupported(void) {
    const char *json = "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                       "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]},"
                       "\"x\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[9,13]},"
                       "\"q\":{\"dtype\":\"F4\",\"shape\":[4],\"data_offsets\":[13,15]}}";
    size_t n;
    unsigned char *f = make_file(json, 15, &n);
    mt_safetensors *st = NULL;
    mt_tensor t = {0};
    mt_safetensors_tensor_info info;
    float want[2];
    memcpy(want, f + n - 15 + 1, 8);
    CHECKE(mt_safetensors_open_memory(&st, f, n) == MT_OK, "open a file with misaligned data");
    free(f);
    if (!st) return;
    CHECK(mt_safetensors_get(st, "w", &t) == MT_OK && ((uintptr_t)t.data % 4) == 0 && mt_f32(&t)[0] == want[0] &&
              mt_f32(&t)[1] == want[1],
          "misaligned float32 is copied to aligned memory");
    mt_release(&t);
    CHECK(mt_safetensors_info(st, 0, &info) == MT_OK && !info.supported && strcmp(info.dtype, "U8") == 0,
          "U8 is listed as unsupported");
    CHECK(mt_safetensors_get(st, "a", &t) == MT_ERR_DTYPE && strstr(mt_last_error(), "U8") && t.data == NULL,
          "loading U8 is refused: %s", mt_last_error());
    CHECK(mt_safetensors_info(st, 2, &info) == MT_OK && info.ndim == 9 && !info.supported, "9 dims listed");
    CHECK(mt_safetensors_get(st, "x", &t) == MT_ERR_UNSUPPORTED && strstr(mt_last_error(), "9 dims"),
          "9 dims refused: %s", mt_last_error());
    CHECK(mt_safetensors_get(st, "q", &t) == MT_ERR_DTYPE && strstr(mt_last_error(), "F4"), "F4 refused");
    mt_safetensors_close(st);
}

/* ---- malformed files ------------------------------------------------- */

static void expect_bad_bytes(const char *what, const unsigned char *p, size_t n, const char *fragment) {
    mt_safetensors *st = (mt_safetensors *)&st; /* must be reset to NULL */
    mt_status s = mt_safetensors_open_memory(&st, p, n);
    CHECK(s == MT_ERR_FORMAT && st == NULL && strstr(mt_last_error(), fragment) != NULL, "%s: %s", what,
          mt_last_error());
    if (s == MT_OK) mt_safetensors_close(st);
}

static void expect_bad(const char *what, const char *json, size_t ndata, const char *fragment) {
    size_t n;
    unsigned char *p = make_file(json, ndata, &n);
    expect_bad_bytes(what, p, n, fragment);
    free(p);
}

#define T(name, shape, offs) "\"" name "\":{\"dtype\":\"F32\",\"shape\":" shape ",\"data_offsets\":" offs "}"

static void test_malformed(void) {
    unsigned char b[64] = {0};
    size_t i;

    /* the length field */
    expect_bad_bytes("empty file", b, 0, "too short for the 8-byte header length");
    memset(b, 0, sizeof b);
    expect_bad_bytes("truncated header length (5 bytes)", b, 5, "file is 5 bytes, too short");
    b[0] = 100; /* says 100, has 20 */
    memcpy(b + 8, "{\"a\":{\"dtype\":\"F", 12);
    expect_bad_bytes("truncated header", b, 20, "header length 100 runs past the end of the file (12 bytes");
    memset(b, 0xff, 8);
    b[7] = 0x7f;
    expect_bad_bytes("huge header length 2^63 - 1", b, 20, "exceeds the limit of 100000000 bytes");
    memset(b, 0, 8);
    b[0] = 0x01;
    b[1] = 0xe1;
    b[2] = 0xf5;
    b[3] = 0x05; /* 100000001 */
    expect_bad_bytes("header length one over the limit", b, 20, "header length 100000001 exceeds the limit");
    memset(b, 0, 8);
    expect_bad_bytes("header length 0", b, 8, "header is empty");

    /* JSON */
    expect_bad("non-JSON text", "hello", 0, "not a JSON object: it must begin with '{'");
    expect_bad("JSON array, not an object", "[1, 2]", 0, "not a JSON object");
    expect_bad("leading space before '{'", " {}", 0, "must begin with '{', not 0x20");
    expect_bad("bare word in an object", "{hello}", 0, "not valid JSON: expected a string key at header offset 1");
    expect_bad("truncated JSON", "{\"a\":{\"dtype\":", 0, "unexpected end of the header");
    expect_bad("missing comma", "{\"a\":1 \"b\":2}", 0, "expected ',' or '}' at header offset 7");
    expect_bad("trailing comma", "{\"a\":{},}", 0, "expected a string key");
    expect_bad("trailing comma in an array", "{\"a\":[1,]}", 0, "expected a value");
    expect_bad("leading zero", "{\"a\":01}", 0, "leading zero in a number");
    expect_bad("malformed number 1.", "{\"a\":1.}", 0, "malformed number");
    expect_bad("malformed number --1", "{\"a\":--1}", 0, "malformed number");
    expect_bad("malformed number 1e", "{\"a\":1e}", 0, "malformed number");
    expect_bad("bad literal", "{\"a\":tru}", 0, "expected a value");
    expect_bad("colon in an array", "{\"a\":[1:2]}", 0, "expected ',' or ']'");
    expect_bad("missing colon", "{\"a\" 1}", 0, "expected ':' after a key");
    expect_bad("unescaped control character", "{\"a\tb\":1}", 0, "control character in a string");
    expect_bad("invalid escape", "{\"\\x\":1}", 0, "invalid escape");
    expect_bad("short \\u escape", "{\"\\u12\":1}", 0, "invalid \\u escape");
    expect_bad("lone high surrogate", "{\"\\ud800\":1}", 0, "unpaired UTF-16 surrogate");
    expect_bad("lone low surrogate", "{\"\\udc00x\":1}", 0, "unpaired UTF-16 surrogate");
    expect_bad("text after the object", "{} x", 0, "unexpected text after the JSON object");
    expect_bad("two objects", "{}{}", 0, "unexpected text after the JSON object");
    expect_bad("invalid UTF-8", "{\"\xff\":1}", 0, "not valid UTF-8 (byte 0xff at header offset 2)");
    expect_bad("overlong UTF-8", "{\"\xc0\xaf\":1}", 0, "not valid UTF-8");
    expect_bad("UTF-8 surrogate", "{\"\xed\xa0\x80\":1}", 0, "not valid UTF-8");
    {
        char deep[200];
        for (i = 0; i < 70; i++) deep[i] = '[';
        memcpy(deep, "{\"a\":", 5);
        deep[70] = '\0';
        expect_bad("nesting 66 levels", deep, 0, "nesting deeper than 64 levels");
    }

    /* entries */
    expect_bad("entry is a number", "{\"a\":1}", 0, "tensor 'a': entry is a number, expected an object");
    expect_bad("entry is an array", "{\"a\":[]}", 0, "tensor 'a': entry is an array");
    expect_bad("missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor 'a': missing \"dtype\"");
    expect_bad("missing shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "tensor 'a': missing \"shape\"");
    expect_bad("missing data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4,
               "tensor 'a': missing \"data_offsets\"");
    expect_bad("empty entry", "{\"a\":{}}", 0, "tensor 'a': missing \"dtype\"");
    expect_bad("dtype not a string", "{\"a\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
               "tensor 'a': dtype is a number, expected a string");
    expect_bad("unknown dtype", "{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
               "tensor 'a': unknown dtype 'F33'");
    expect_bad("lower-case dtype", "{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
               "unknown dtype 'f32'");
    expect_bad("unexpected key", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4,
               "tensor 'a': unexpected key 'x'");
    expect_bad("duplicate key in an entry", "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
               4, "tensor 'a': duplicate key \"dtype\"");
    expect_bad("shape not an array", "{" T("a", "\"1\"", "[0,4]") "}", 4, "tensor 'a': shape is a string, expected an array");
    expect_bad("negative shape", "{" T("a", "[2,-2]", "[0,4]") "}", 4, "tensor 'a': shape[1] is -2, expected a non-negative integer");
    expect_bad("fractional shape", "{" T("a", "[2.5]", "[0,4]") "}", 4, "shape[0] is 2.5");
    expect_bad("exponent shape", "{" T("a", "[1e0]", "[0,4]") "}", 4, "shape[0] is 1e0");
    expect_bad("string in shape", "{" T("a", "[\"1\"]", "[0,4]") "}", 4, "shape[0] is a string");
    expect_bad("null in shape", "{" T("a", "[null]", "[0,4]") "}", 4, "shape[0] is null");
    expect_bad("shape entry over 2^63", "{" T("a", "[99999999999999999999]", "[0,4]") "}", 4, "(too large)");
    expect_bad("shape product over 2^63", "{" T("a", "[4294967296,4294967296]", "[0,4]") "}", 4,
               "more than 2^63 elements");
    expect_bad("a zero dim empties a huge shape", "{" T("a", "[4294967296,4294967296,0]", "[0,4]") "}", 4,
               "need 0 bytes, but data_offsets [0, 4] hold 4");
    expect_bad("data_offsets not an array", "{" T("a", "[1]", "{}") "}", 4, "data_offsets is an object, expected [begin, end]");
    expect_bad("one offset", "{" T("a", "[1]", "[4]") "}", 4, "data_offsets has 1 entry, expected [begin, end]");
    expect_bad("three offsets", "{" T("a", "[1]", "[0,4,8]") "}", 4, "data_offsets has more than 2 entries");
    expect_bad("negative offset", "{" T("a", "[1]", "[-4,0]") "}", 4, "data_offsets[0] is -4");
    expect_bad("offsets end before begin", "{" T("a", "[0]", "[4,0]") "}", 4, "data_offsets [4, 0] end before they begin");
    expect_bad("offsets beyond the data", "{" T("a", "[4]", "[0,16]") "}", 8,
               "data_offsets [0, 16] reach past the end of the data section (8 bytes)");
    expect_bad("huge offsets", "{" T("a", "[1]", "[9223372036854775800,9223372036854775804]") "}", 4,
               "reach past the end of the data section");
    expect_bad("size mismatch", "{" T("a", "[2,3]", "[0,20]") "}", 20,
               "dtype F32 and shape [2, 3] need 24 bytes, but data_offsets [0, 20] hold 20");
    expect_bad("sub-byte dtype not whole bytes", "{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", 2,
               "3 elements of F4 (4 bits each) are not a whole number of bytes");

    /* layout */
    expect_bad("overlapping tensors", "{" T("a", "[4]", "[0,16]") "," T("b", "[4]", "[8,24]") "}", 24,
               "tensors 'a' [0, 16] and 'b' [8, 24] overlap");
    expect_bad("identical offsets", "{" T("a", "[2]", "[0,8]") "," T("b", "[2]", "[0,8]") "}", 8, "overlap");
    expect_bad("empty tensor inside another", "{" T("a", "[4]", "[0,16]") "," T("b", "[0]", "[8,8]") "}", 16,
               "overlap");
    expect_bad("gap between tensors", "{" T("a", "[2]", "[0,8]") "," T("b", "[2]", "[16,24]") "}", 24,
               "bytes [8, 16) of the data section belong to no tensor (gap before 'b')");
    expect_bad("gap at the start", "{" T("a", "[2]", "[8,16]") "}", 16, "bytes [0, 8) of the data section belong to no tensor");
    expect_bad("trailing bytes after the last tensor", "{" T("a", "[2]", "[0,8]") "}", 12,
               "bytes [8, 12) of the data section belong to no tensor (trailing data after the last tensor)");
    expect_bad("data but no tensors", "{}", 4, "trailing data after an empty header");

    /* names and metadata */
    expect_bad("duplicate names", "{" T("a", "[1]", "[0,4]") "," T("a", "[1]", "[4,8]") "}", 8, "duplicate tensor name 'a'");
    expect_bad("duplicate names through an escape", "{" T("a", "[1]", "[0,4]") "," T("\\u0061", "[1]", "[4,8]") "}", 8,
               "duplicate tensor name 'a'");
    expect_bad("NUL in a name", "{" T("a\\u0000b", "[1]", "[0,4]") "}", 4, "tensor name contains a NUL character");
    expect_bad("metadata not an object", "{\"__metadata__\":[]}", 0, "__metadata__ is an array, expected an object of strings");
    expect_bad("metadata null", "{\"__metadata__\":null}", 0, "__metadata__ is null");
    expect_bad("metadata value not a string", "{\"__metadata__\":{\"k\":1}}", 0, "__metadata__ 'k': value is a number");
    expect_bad("nested metadata", "{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0, "__metadata__ 'k': value is an object");
    expect_bad("duplicate metadata key", "{\"__metadata__\":{\"k\":\"1\",\"j\":\"2\",\"k\":\"3\"}}", 0,
               "duplicate __metadata__ key 'k'");
    expect_bad("two __metadata__", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate key \"__metadata__\"");
    expect_bad("NUL in metadata", "{\"__metadata__\":{\"k\":\"a\\u0000\"}}", 0, "value contains a NUL character");
    expect_bad("control characters in names are escaped in messages", "{\"\\u001b[31m\":1}", 0,
               "tensor '\\x1b[31m': entry is a number");
}

/* Accepted: padding with whitespace, empty files, empty tensors anywhere
   on the boundary, any key order, and entries in any order. */
static void test_accepted_variants(void) {
    static const struct {
        const char *what, *json;
        size_t ndata;
        int count;
    } ok[] = {
        {"empty header", "{}", 0, 0},
        {"empty header padded with spaces", "{}      ", 0, 0},
        {"whitespace everywhere", "{ \"a\" : { \"shape\" : [ 1 ] , \"data_offsets\" : [ 0 , 4 ] , \"dtype\" : \"F32\" } }\n\t\r ", 4, 1},
        {"entries out of data order", "{" T("b", "[1]", "[4,8]") "," T("a", "[1]", "[0,4]") "}", 8, 2},
        {"empty tensors at the edges", "{" T("e", "[0]", "[0,0]") "," T("a", "[1]", "[0,4]") "," T("z", "[2,0]", "[4,4]") "}", 4, 3},
        {"scalar", "{" T("s", "[]", "[0,4]") "}", 4, 1},
        {"empty metadata", "{\"__metadata__\":{}," T("a", "[1]", "[0,4]") "}", 4, 1},
        {"every known dtype opens",
         "{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[8,12]},"
         "\"c\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[12,13]},\"d\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[13,14]},"
         "\"e\":{\"dtype\":\"F6_E2M3\",\"shape\":[4],\"data_offsets\":[14,17]},\"f\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[17,25]}}",
         25, 6},
    };
    size_t i;
    for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        size_t n;
        unsigned char *p = make_file(ok[i].json, ok[i].ndata, &n);
        mt_safetensors *st = NULL;
        CHECKE(mt_safetensors_open_memory(&st, p, n) == MT_OK && mt_safetensors_count(st) == ok[i].count, "accepted: %s",
              ok[i].what);
        mt_safetensors_close(st);
        free(p);
    }
}

/* Every truncation of a valid file is refused; single-byte corruptions
   are refused or, when still valid, load cleanly (under the sanitizers
   and valgrind this is a small deterministic fuzz). */
static void test_corruptions(void) {
    size_t n, i, k;
    unsigned char *ref = ref_file(&n);
    static const unsigned char vals[] = {0x00, 0xff, '"', '}', ']', ',', '9', '-', ' ', '\\', 0x80};
    int trunc_ok = 1, crash_free = 1, accepted = 0, tried = 0;
    for (i = 0; i < n; i++) {
        mt_safetensors *st = NULL;
        if (mt_safetensors_open_memory(&st, ref, i) != MT_ERR_FORMAT || st) trunc_ok = 0;
        mt_safetensors_close(st);
    }
    CHECK(trunc_ok, "all %zu truncations of the reference file are refused", n);
    for (i = 0; i < 8 + 320; i++) {
        for (k = 0; k < sizeof vals; k++) {
            unsigned char *p;
            mt_safetensors *st = NULL;
            mt_status s;
            if (ref[i] == vals[k]) continue;
            p = (unsigned char *)malloc(n);
            memcpy(p, ref, n);
            p[i] = vals[k];
            s = mt_safetensors_open_memory(&st, p, n);
            tried++;
            if (s == MT_OK) {
                int j;
                accepted++;
                for (j = 0; j < mt_safetensors_count(st); j++) {
                    mt_tensor t = {0};
                    mt_status g = mt_safetensors_get(st, mt_safetensors_name(st, j), &t);
                    if (g != MT_OK && g != MT_ERR_DTYPE && g != MT_ERR_UNSUPPORTED) crash_free = 0;
                    mt_release(&t);
                }
            } else if (s != MT_ERR_FORMAT || st || !mt_last_error()[0]) {
                crash_free = 0;
            }
            mt_safetensors_close(st);
            free(p);
        }
    }
    CHECK(crash_free, "%d corrupted headers: each refused with a message or loaded cleanly (%d still valid)", tried,
          accepted);
    free(ref);
}

static void test_file_errors(void) {
    mt_safetensors *st = NULL;
    unsigned char *bad;
    size_t n;
    CHECK(mt_safetensors_open(&st, tmp_path("does-not-exist.safetensors")) == MT_ERR_IO && st == NULL &&
              strstr(mt_last_error(), "No such file or directory"),
          "missing file: %s", mt_last_error());
    CHECK(mt_safetensors_open(&st, tmpdir) == MT_ERR_IO &&
              (strstr(mt_last_error(), "is not a regular file") || strstr(mt_last_error(), "Is a directory")),
          "directory: %s", mt_last_error());
    CHECK(write_bytes(tmp_path("empty.safetensors"), "", 0), "write an empty file");
    CHECK(mt_safetensors_open(&st, tmp_path("empty.safetensors")) == MT_ERR_FORMAT &&
              strstr(mt_last_error(), "file is 0 bytes, too short"),
          "empty file: %s", mt_last_error());
    bad = make_file("{" T("a", "[2]", "[0,8]") "}", 12, &n);
    CHECK(write_bytes(tmp_path("trailing.safetensors"), bad, n), "write a file with trailing bytes");
    free(bad);
    CHECK(mt_safetensors_open(&st, tmp_path("trailing.safetensors")) == MT_ERR_FORMAT && st == NULL &&
              strstr(mt_last_error(), "trailing.safetensors") && strstr(mt_last_error(), "trailing data"),
          "mapped file with trailing bytes refused, message names the file: %s", mt_last_error());
    {
        char longname[300];
        memset(longname, 'd', sizeof longname);
        memcpy(longname + 290 - 14, "/the-end.bin", 13);
        longname[0] = '/';
        CHECK(mt_safetensors_open(&st, longname) == MT_ERR_IO && strstr(mt_last_error(), "'...ddd") &&
                  strstr(mt_last_error(), "ddd/the-end.bin'"),
              "a long path keeps its end in messages: %s", mt_last_error());
    }
    CHECK(mt_safetensors_open(NULL, "x") == MT_ERR_ARGUMENT, "NULL handle refused");
    CHECK(mt_safetensors_open(&st, NULL) == MT_ERR_ARGUMENT, "NULL path refused");
    CHECK(mt_safetensors_open_memory(&st, NULL, 4) == MT_ERR_ARGUMENT, "NULL buffer refused");
    mt_safetensors_close(NULL);
    CHECK(mt_safetensors_count(NULL) == 0 && mt_safetensors_find(NULL, "a") == -1, "NULL handle queries are harmless");
}

static void test_save_errors(void) {
    mt_tensor a = {0}, b = {0}, empty = {0};
    const mt_tensor *ts[2];
    const char *names[2];
    const char *meta[4] = {"k", "1", "k", "2"};
    int before;
    mt_ones(&a, MT_F32, MT_SHAPE(2));
    mt_ones(&b, MT_F16, MT_SHAPE(2));
    ts[0] = &a;
    ts[1] = &b;
    before = count_dir_entries();
    names[0] = "x";
    names[1] = "x";
    CHECK(mt_safetensors_save(tmp_path("e.safetensors"), 2, names, ts, 0, NULL) == MT_ERR_ARGUMENT &&
              strstr(mt_last_error(), "duplicate tensor name 'x'"),
          "duplicate names (different dtypes) refused: %s", mt_last_error());
    ts[1] = &a;
    CHECK(mt_safetensors_save(tmp_path("e.safetensors"), 2, names, ts, 0, NULL) == MT_ERR_ARGUMENT,
          "duplicate names (same dtype) refused");
    names[1] = "__metadata__";
    CHECK(mt_safetensors_save(tmp_path("e.safetensors"), 2, names, ts, 0, NULL) == MT_ERR_ARGUMENT &&
              strstr(mt_last_error(), "reserved"),
          "the name __metadata__ refused: %s", mt_last_error());
    names[1] = "bad\xff";
    CHECK(mt_safetensors_save(tmp_path("e.safetensors"), 2, names, ts, 0, NULL) == MT_ERR_ARGUMENT &&
              strstr(mt_last_error(), "'bad\\xff' is not valid UTF-8"),
          "invalid UTF-8 name refused: %s", mt_last_error());
    names[1] = "y";
    ts[1] = &empty;
    CHECK(mt_safetensors_save(tmp_path("e.safetensors"), 2, names, ts, 0, NULL) == MT_ERR_ARGUMENT &&
              strstr(mt_last_error(), "tensor 'y' (index 1) is empty"),
          "an empty tensor refused: %s", mt_last_error());
    ts[1] = &b;
    CHECK(mt_safetensors_save(tmp_path("e.safetensors"), 2, names, ts, 2, meta) == MT_ERR_ARGUMENT &&
              strstr(mt_last_error(), "duplicate metadata key 'k'"),
          "duplicate metadata key refused: %s", mt_last_error());
    CHECK(mt_safetensors_save(tmp_path("no/such/dir/e.safetensors"), 2, names, ts, 0, NULL) == MT_ERR_IO &&
              strstr(mt_last_error(), "No such file or directory") && strstr(mt_last_error(), "no/such/dir/e.safetensors"),
          "missing directory: %s", mt_last_error());
    CHECK(mt_safetensors_save(NULL, 0, NULL, NULL, 0, NULL) == MT_ERR_ARGUMENT, "NULL path refused");
    CHECK(mt_safetensors_save(tmp_path("e.safetensors"), -1, names, ts, 0, NULL) == MT_ERR_ARGUMENT, "negative n refused");
    CHECK(count_dir_entries() == before, "failed saves leave no file behind");
    CHECK(mt_safetensors_save(tmp_path("e.safetensors"), 2, names, ts, 1, meta) == MT_OK &&
              count_dir_entries() == before + 1,
          "a successful save leaves exactly the target file");
    CHECK(mt_safetensors_save(tmp_path("zero.safetensors"), 0, NULL, NULL, 0, NULL) == MT_OK, "a file of no tensors");
    {
        size_t n;
        unsigned char *p = read_bytes(tmp_path("zero.safetensors"), &n);
        CHECK(p && n == 16 && memcmp(p, "\x08\0\0\0\0\0\0\0{}      ", 16) == 0, "is {} padded to 8");
        free(p);
    }
    mt_release(&a);
    mt_release(&b);
}

/* ---- images ---------------------------------------------------------- */

/* the value of channel c at (y, x) of the test gradient: every byte value */
static int grad_byte(int64_t c, int64_t y, int64_t x, int64_t w) { return (int)(((y * w + x) * 3 + c * 85) % 256); }

static void test_image_round_trip(void) {
    const int64_t H = 7, W = 13;
    mt_tensor img = {0}, back = {0};
    int64_t c, y, x;
    int exact;
    const char *path = tmp_path("grad.png");
    int r;
    for (r = 0; r < 2; r++) {
        mt_image_range range = r ? MT_RANGE_SIGNED : MT_RANGE_UNIT;
        mt_empty(&img, MT_F32, MT_SHAPE(1, 3, H, W));
        for (c = 0; c < 3; c++)
            for (y = 0; y < H; y++)
                for (x = 0; x < W; x++) {
                    float v = (float)grad_byte(c, y, x, W) / 255.0f;
                    if (r) v = 2.0f * v - 1.0f;
                    mt_f32(&img)[(c * H + y) * W + x] = v;
                }
        CHECKE(mt_image_save_png(path, &img, 0, range) == MT_OK, "save a %s gradient", r ? "[-1, 1]" : "[0, 1]");
        CHECK(mt_image_load(&back, path, 3, range) == MT_OK && back.ndim == 4 && back.shape[0] == 1 &&
                  back.shape[1] == 3 && back.shape[2] == H && back.shape[3] == W,
              "load it as [1, 3, 7, 13]");
        exact = back.data && memcmp(back.data, img.data, (size_t)(3 * H * W) * 4) == 0;
        CHECK(exact, "the %s gradient reads back exactly", r ? "[-1, 1]" : "[0, 1]");
        mt_release(&back);
        mt_release(&img);
    }
    /* channels = 0 keeps RGB; 1 converts to gray; a preallocated output */
    CHECK(mt_image_load(&back, path, 0, MT_RANGE_UNIT) == MT_OK && back.shape[1] == 3, "channels 0 keeps 3");
    mt_release(&back);
    CHECK(mt_image_load(&back, path, 1, MT_RANGE_UNIT) == MT_OK && back.shape[1] == 1, "channels 1 gives gray");
    {
        mt_tensor pre = {0};
        mt_empty(&pre, MT_F32, MT_SHAPE(1, 1, H, W));
        CHECK(mt_image_load(&pre, path, 1, MT_RANGE_UNIT) == MT_OK && memcmp(pre.data, back.data, (size_t)(H * W) * 4) == 0,
              "a preallocated output is filled");
        mt_release(&pre);
        mt_empty(&pre, MT_F32, MT_SHAPE(1, 3, W, H));
        CHECK(mt_image_load(&pre, path, 3, MT_RANGE_UNIT) == MT_ERR_SHAPE, "a mismatched preallocated output is refused");
        mt_release(&pre);
    }
    mt_release(&back);
}

static void test_image_layouts(void) {
    /* batch of 2 RGBA images stored NHWC, saved through an NCHW view */
    const int64_t N = 2, H = 5, W = 4, C = 4;
    mt_tensor nhwc = {0}, nchw = {0}, back = {0}, gray = {0}, chw = {0};
    int perm[4] = {0, 3, 1, 2};
    int64_t n, y, x, c;
    int ok = 1;
    const char *path = tmp_path("rgba.png");
    mt_empty(&nhwc, MT_F32, MT_SHAPE(N, H, W, C));
    for (n = 0; n < N; n++)
        for (y = 0; y < H; y++)
            for (x = 0; x < W; x++)
                for (c = 0; c < C; c++)
                    mt_f32(&nhwc)[((n * H + y) * W + x) * C + c] = (float)((n * 97 + y * 31 + x * 7 + c * 50) % 256) / 255.0f;
    mt_view_permute(&nchw, &nhwc, perm);
    CHECK(!mt_is_contiguous(&nchw), "the NCHW view is strided");
    CHECKE(mt_image_save_png(path, &nchw, 1, MT_RANGE_UNIT) == MT_OK, "save image 1 of a strided RGBA batch");
    CHECK(mt_image_load(&back, path, 4, MT_RANGE_UNIT) == MT_OK && back.shape[1] == 4, "load RGBA");
    for (y = 0; y < H && back.data; y++)
        for (x = 0; x < W; x++)
            for (c = 0; c < C; c++) ok &= mt_f32(&back)[(c * H + y) * W + x] == mt_f32(&nhwc)[((1 * H + y) * W + x) * C + c];
    CHECK(ok && back.data, "image 1 reads back exactly, alpha included");
    mt_release(&back);

    /* gray [C, H, W] */
    mt_empty(&gray, MT_F32, MT_SHAPE(1, 3, 2));
    for (n = 0; n < 6; n++) mt_f32(&gray)[n] = (float)(n * 51) / 255.0f;
    CHECK(mt_image_save_png(tmp_path("gray.png"), &gray, 0, MT_RANGE_UNIT) == MT_OK, "save a [1, 3, 2] gray image");
    CHECK(mt_image_load(&back, tmp_path("gray.png"), 0, MT_RANGE_UNIT) == MT_OK && back.shape[1] == 1 &&
              memcmp(back.data, gray.data, 24) == 0,
          "gray reads back exactly with its own channel count");
    mt_release(&back);
    CHECK(mt_image_save_png(tmp_path("gray.png"), &gray, 1, MT_RANGE_UNIT) == MT_ERR_ARGUMENT, "index 1 of [C, H, W] refused");
    mt_release(&gray);
    mt_release(&chw);
    mt_release(&nchw);
    mt_release(&nhwc);
}

/* rounding and clamping against diffusers' postprocess, values from
   tests/golden/files_image_rounding.py (torch 1.13, numpy 1.24) */
static void test_image_rounding(void) {
    static const float signed_in[14] = {-2.0f, -1.0f, -0.999000013f, -0.5f, -0.200000003f, 0.0f, 0.00100000005f,
                                        0.100000001f, 0.300000012f, 0.5f, 0.699999988f, 0.999000013f, 1.0f, 1.5f};
    static const int signed_bytes[14] = {0, 0, 0, 64, 102, 128, 128, 140, 166, 191, 217, 255, 255, 255};
    /* the last four are ties: x * 255 = 0.5, 2.5, 1.5, 3.5 exactly in float32 */
    static const float unit_in[10] = {0.0f, 0.00100000005f, 0.25f, 0.5f, 0.75f, 1.0f,
                                      0.00196078443f, 0.00980392192f, 0.00588235306f, 0.0137254903f};
    static const int unit_bytes[10] = {0, 0, 64, 128, 191, 255, 0, 2, 2, 4};
    mt_tensor t = {0}, back = {0};
    int i, ok;
    mt_from_data(&t, MT_F32, MT_SHAPE(1, 1, 1, 14), signed_in);
    CHECK(mt_image_save_png(tmp_path("r.png"), &t, 0, MT_RANGE_SIGNED) == MT_OK, "save signed values");
    ok = mt_image_load(&back, tmp_path("r.png"), 1, MT_RANGE_UNIT) == MT_OK;
    for (i = 0; ok && i < 14; i++) ok &= (int)lrintf(mt_f32(&back)[i] * 255.0f) == signed_bytes[i];
    CHECK(ok, "[-1, 1] -> bytes as diffusers (x / 2 + 0.5, clamp, x * 255 rounded half to even)");
    mt_release(&back);
    mt_release(&t);
    mt_from_data(&t, MT_F32, MT_SHAPE(1, 10, 1), unit_in);
    CHECK(mt_image_save_png(tmp_path("r.png"), &t, 0, MT_RANGE_UNIT) == MT_OK, "save unit values");
    ok = mt_image_load(&back, tmp_path("r.png"), 1, MT_RANGE_UNIT) == MT_OK;
    for (i = 0; ok && i < 10; i++) ok &= (int)lrintf(mt_f32(&back)[i] * 255.0f) == unit_bytes[i];
    CHECK(ok, "[0, 1] -> bytes, ties to even (0.5 -> 0, 1.5 -> 2, 2.5 -> 2, 3.5 -> 4)");
    mt_release(&back);
    mt_release(&t);
    /* load in [-1, 1]: 2 (b / 255) - 1, as VaeImageProcessor.normalize */
    {
        float px[4] = {0.0f, 1.0f / 255.0f, 128.0f / 255.0f, 1.0f};
        mt_from_data(&t, MT_F32, MT_SHAPE(1, 1, 4), px);
        mt_image_save_png(tmp_path("s.png"), &t, 0, MT_RANGE_UNIT);
        CHECK(mt_image_load(&back, tmp_path("s.png"), 1, MT_RANGE_SIGNED) == MT_OK && mt_f32(&back)[0] == -1.0f &&
                  mt_f32(&back)[1] == 2.0f * (1.0f / 255.0f) - 1.0f && mt_f32(&back)[2] == 2.0f * (128.0f / 255.0f) - 1.0f &&
                  mt_f32(&back)[3] == 1.0f,
              "[-1, 1] load maps 0 -> -1, 255 -> 1");
        mt_release(&back);
        mt_release(&t);
    }
}

/* A 16 x 16 JPEG (baseline, quality 95, 4:2:0) of the color (200, 100, 50)
   with a white 4 x 4 square at rows 4..7, columns 8..11, written by Pillow
   9.4: tests/golden/files_jpeg.py, which also prints what libjpeg decodes
   (jpeg_want below: row, column, R, G, B). stb_image's IDCT may differ from
   libjpeg's by a unit or two, hence the tolerance. */
static const unsigned char flat_jpeg[] = {
    0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01,
    0x00, 0x01, 0x00, 0x00, 0xff, 0xdb, 0x00, 0x43, 0x00, 0x02, 0x01, 0x01, 0x01, 0x01, 0x01, 0x02,
    0x01, 0x01, 0x01, 0x02, 0x02, 0x02, 0x02, 0x02, 0x04, 0x03, 0x02, 0x02, 0x02, 0x02, 0x05, 0x04,
    0x04, 0x03, 0x04, 0x06, 0x05, 0x06, 0x06, 0x06, 0x05, 0x06, 0x06, 0x06, 0x07, 0x09, 0x08, 0x06,
    0x07, 0x09, 0x07, 0x06, 0x06, 0x08, 0x0b, 0x08, 0x09, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x06, 0x08,
    0x0b, 0x0c, 0x0b, 0x0a, 0x0c, 0x09, 0x0a, 0x0a, 0x0a, 0xff, 0xdb, 0x00, 0x43, 0x01, 0x02, 0x02,
    0x02, 0x02, 0x02, 0x02, 0x05, 0x03, 0x03, 0x05, 0x0a, 0x07, 0x06, 0x07, 0x0a, 0x0a, 0x0a, 0x0a,
    0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
    0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
    0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0xff, 0xc0,
    0x00, 0x11, 0x08, 0x00, 0x10, 0x00, 0x10, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11,
    0x01, 0xff, 0xc4, 0x00, 0x1f, 0x00, 0x00, 0x01, 0x05, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
    0x0a, 0x0b, 0xff, 0xc4, 0x00, 0xb5, 0x10, 0x00, 0x02, 0x01, 0x03, 0x03, 0x02, 0x04, 0x03, 0x05,
    0x05, 0x04, 0x04, 0x00, 0x00, 0x01, 0x7d, 0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21,
    0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23,
    0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17,
    0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a,
    0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a,
    0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a,
    0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
    0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7,
    0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5,
    0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1,
    0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xff, 0xc4, 0x00, 0x1f, 0x01, 0x00, 0x03,
    0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0xff, 0xc4, 0x00, 0xb5, 0x11, 0x00,
    0x02, 0x01, 0x02, 0x04, 0x04, 0x03, 0x04, 0x07, 0x05, 0x04, 0x04, 0x00, 0x01, 0x02, 0x77, 0x00,
    0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71, 0x13,
    0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0, 0x15,
    0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26, 0x27,
    0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88,
    0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6,
    0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4,
    0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe2,
    0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9,
    0xfa, 0xff, 0xda, 0x00, 0x0c, 0x03, 0x01, 0x00, 0x02, 0x11, 0x03, 0x11, 0x00, 0x3f, 0x00, 0xcf,
    0xaf, 0xa0, 0xff, 0x00, 0x6e, 0xdf, 0xd8, 0x4b, 0xfe, 0x18, 0xa3, 0xfe, 0x11, 0x5f, 0xf8, 0xba,
    0x7f, 0xf0, 0x93, 0x7f, 0xc2, 0x4d, 0xf6, 0xef, 0xf9, 0x81, 0xfd, 0x8b, 0xec, 0xdf, 0x67, 0xfb,
    0x3f, 0xfd, 0x37, 0x97, 0x7e, 0xef, 0x3f, 0xfd, 0x9c, 0x6c, 0xef, 0x9e, 0x3e, 0x7c, 0xa2, 0xbf,
    0x98, 0x68, 0xd6, 0xc2, 0xc3, 0x0b, 0x56, 0x13, 0xa5, 0xcd, 0x39, 0x72, 0xf2, 0xcb, 0x99, 0xae,
    0x5b, 0x3d, 0x74, 0xda, 0x5c, 0xcb, 0x4d, 0x76, 0xdd, 0x1f, 0xd9, 0x75, 0xe8, 0x63, 0x6a, 0x63,
    0x68, 0xd4, 0xa7, 0x5b, 0x96, 0x9c, 0x79, 0xb9, 0xe1, 0xca, 0x9f, 0x3d, 0xd5, 0xa3, 0xef, 0x3d,
    0x63, 0xca, 0xf5, 0xd3, 0x7d, 0x99, 0xff, 0xd9,
};

static void test_image_jpeg(void) {
    static const int jpeg_want[5][5] = {
        {0, 0, 201, 99, 51}, {0, 15, 197, 102, 48}, {15, 0, 204, 99, 42}, {15, 15, 201, 99, 51}, {5, 9, 255, 254, 255}};
    mt_tensor t = {0}, u = {0};
    const char *jp = tmp_path("flat.jpg");
    int i, c, ok = 1;
    CHECKE(mt_image_load_memory(&t, flat_jpeg, sizeof flat_jpeg, 3, MT_RANGE_UNIT) == MT_OK && t.shape[1] == 3 &&
               t.shape[2] == 16 && t.shape[3] == 16,
           "decode a 16 x 16 JPEG from memory");
    for (i = 0; t.data && i < 5; i++)
        for (c = 0; c < 3; c++) {
            float got = mt_f32(&t)[c * 256 + jpeg_want[i][0] * 16 + jpeg_want[i][1]] * 255.0f;
            if (fabsf(got - (float)jpeg_want[i][2 + c]) > 2.0f) {
                printf("     pixel (%d, %d) channel %d: got %g, libjpeg %d\n", jpeg_want[i][0], jpeg_want[i][1], c, got,
                       jpeg_want[i][2 + c]);
                ok = 0;
            }
        }
    CHECK(ok && t.data, "pixels within 2/255 of libjpeg's decoding");
    CHECK(write_bytes(jp, flat_jpeg, sizeof flat_jpeg), "write the JPEG to a file");
    CHECK(mt_image_load(&u, jp, 3, MT_RANGE_UNIT) == MT_OK && t.data && memcmp(u.data, t.data, 3 * 256 * 4) == 0,
          "mt_image_load reads the .jpg file the same");
    mt_release(&u);
    CHECK(mt_image_load(&u, jp, 1, MT_RANGE_SIGNED) == MT_OK && u.shape[1] == 1 && mt_f32(&u)[0] < 0.0f &&
              mt_f32(&u)[5 * 16 + 9] > 0.95f,
          "JPEG as gray in [-1, 1]");
    mt_release(&u);
    mt_release(&t);
}

static void test_image_errors(void) {
    mt_tensor img = {0}, t = {0}, f16 = {0};
    unsigned char *png;
    size_t n;
    const char *path = tmp_path("e.png");
    mt_zeros(&img, MT_F32, MT_SHAPE(2, 3, 8, 8));
    CHECK(mt_image_save_png(tmp_path("missing/dir/x.png"), &img, 0, MT_RANGE_UNIT) == MT_ERR_IO &&
              strstr(mt_last_error(), "No such file or directory") && strstr(mt_last_error(), "missing/dir/x.png"),
          "unwritable path: %s", mt_last_error());
    CHECK(mt_image_save_png(path, &img, 2, MT_RANGE_UNIT) == MT_ERR_ARGUMENT && strstr(mt_last_error(), "index 2"),
          "index out of range: %s", mt_last_error());
    CHECK(mt_image_save_png(path, &img, 0, (mt_image_range)7) == MT_ERR_ARGUMENT, "unknown range refused");
    mt_f32(&img)[3 * 64 + 5] = NAN;
    mt_f32(&img)[3 * 64 + 6] = INFINITY;
    mt_f32(&img)[3 * 64 + 64 + 9] = -INFINITY;
    mt_f32(&img)[7] = NAN; /* image 0: not counted for image 1 */
    CHECK(mt_image_save_png(path, &img, 1, MT_RANGE_SIGNED) == MT_ERR_ARGUMENT &&
              strstr(mt_last_error(), "3 non-finite values") && !file_exists(path),
          "NaN/Inf counted, nothing written: %s", mt_last_error());
    mt_release(&img);
    mt_zeros(&img, MT_F32, MT_SHAPE(1, 5, 4, 4));
    CHECK(mt_image_save_png(path, &img, 0, MT_RANGE_UNIT) == MT_ERR_SHAPE && strstr(mt_last_error(), "5 channels"),
          "5 channels refused: %s", mt_last_error());
    mt_release(&img);
    mt_zeros(&img, MT_F32, MT_SHAPE(4, 4));
    CHECK(mt_image_save_png(path, &img, 0, MT_RANGE_UNIT) == MT_ERR_SHAPE, "2-d tensor refused");
    mt_release(&img);
    mt_zeros(&img, MT_F32, MT_SHAPE(1, 3, 0, 4));
    CHECK(mt_image_save_png(path, &img, 0, MT_RANGE_UNIT) == MT_ERR_SHAPE, "empty image refused");
    mt_release(&img);
    mt_zeros(&f16, MT_F16, MT_SHAPE(1, 3, 4, 4));
    CHECK(mt_image_save_png(path, &f16, 0, MT_RANGE_UNIT) == MT_ERR_DTYPE && strstr(mt_last_error(), "float16"),
          "float16 refused: %s", mt_last_error());
    mt_release(&f16);
    CHECK(!file_exists(path), "no file after refused saves");

    CHECK(mt_image_load(&t, tmp_path("nope.png"), 3, MT_RANGE_UNIT) == MT_ERR_IO &&
              strstr(mt_last_error(), "No such file or directory"),
          "missing image: %s", mt_last_error());
    CHECK(mt_image_load(&t, tmp_path("nope.png"), 7, MT_RANGE_UNIT) == MT_ERR_ARGUMENT &&
              strstr(mt_last_error(), "channels = 7"),
          "channels 7 refused: %s", mt_last_error());
    CHECK(mt_image_load(&t, tmpdir, 3, MT_RANGE_UNIT) == MT_ERR_IO, "a directory refused: %s", mt_last_error());
    CHECK(mt_image_load_memory(&t, "not an image at all", 19, 3, MT_RANGE_UNIT) == MT_ERR_FORMAT &&
              strstr(mt_last_error(), "cannot decode <memory>"),
          "not an image: %s", mt_last_error());
    {
        /* "BM": a BMP signature; only PNG and JPEG are compiled in */
        unsigned char bmp[64] = {'B', 'M'};
        CHECK(mt_image_load_memory(&t, bmp, sizeof bmp, 3, MT_RANGE_UNIT) == MT_ERR_FORMAT, "BMP refused: %s",
              mt_last_error());
    }

    /* JPEG structures that Debian's stb_image 2.27 mishandles (fixed in
       upstream 2.28), refused before decoding: a Huffman table of 300
       codes (overflows the decoder's arrays), also behind fill bytes
       (stb reads FF FF D8 as SOI); a scan using an undefined table */
    {
        unsigned char dht[24] = {0xFF, 0xD8, 0xFF, 0xC4, 0x00, 0x13, 0x00};
        unsigned char dht2[25] = {0xFF, 0xFF, 0xD8, 0xFF, 0xC4, 0x00, 0x13, 0x00};
        unsigned char *jp = (unsigned char *)malloc(sizeof flat_jpeg);
        size_t i, sos = 0;
        dht[7 + 14] = 45;
        dht[7 + 15] = 255;
        dht2[8 + 14] = 45;
        dht2[8 + 15] = 255;
        CHECK(mt_image_load_memory(&t, dht, sizeof dht, 3, MT_RANGE_UNIT) == MT_ERR_FORMAT &&
                  strstr(mt_last_error(), "more than 256 codes"),
              "JPEG Huffman table of 300 codes: %s", mt_last_error());
        CHECK(mt_image_load_memory(&t, dht2, sizeof dht2, 3, MT_RANGE_UNIT) == MT_ERR_FORMAT &&
                  strstr(mt_last_error(), "more than 256 codes"),
              "the same after a fill byte: %s", mt_last_error());
        memcpy(jp, flat_jpeg, sizeof flat_jpeg);
        for (i = 2; i + 1 < sizeof flat_jpeg; i++)
            if (jp[i] == 0xFF && jp[i + 1] == 0xDA) {
                sos = i;
                break;
            }
        CHECK(sos > 0, "the test JPEG has a scan");
        if (sos) {
            jp[sos + 6] = 0x33; /* first component: DC and AC table 3, never defined */
            CHECK(mt_image_load_memory(&t, jp, sizeof flat_jpeg, 3, MT_RANGE_UNIT) == MT_ERR_FORMAT &&
                      strstr(mt_last_error(), "undefined DC Huffman table"),
                  "JPEG scan with an undefined table: %s", mt_last_error());
        }
        free(jp);
    }

    /* a real PNG, then damaged copies */
    mt_zeros(&img, MT_F32, MT_SHAPE(1, 3, 32, 32));
    {
        int64_t i;
        for (i = 0; i < 3 * 32 * 32; i++) mt_f32(&img)[i] = (float)((i * 37) % 256) / 255.0f;
    }
    mt_image_save_png(path, &img, 0, MT_RANGE_UNIT);
    mt_release(&img);
    png = read_bytes(path, &n);
    CHECK(png && n > 100, "a PNG to damage (%zu bytes)", n);
    if (png && n > 100) {
        unsigned char *bad = (unsigned char *)malloc(n);
        size_t i;
        memcpy(bad, png, n);
        for (i = 60; i < n - 20; i++) bad[i] = (unsigned char)(bad[i] * 13 + 7);
        write_bytes(tmp_path("corrupt.png"), bad, n);
        CHECK(mt_image_load(&t, tmp_path("corrupt.png"), 3, MT_RANGE_UNIT) == MT_ERR_FORMAT &&
                  strstr(mt_last_error(), "cannot decode") && strstr(mt_last_error(), "corrupt.png"),
              "corrupt PNG data: %s", mt_last_error());
        CHECK(mt_image_load_memory(&t, png, 40, 3, MT_RANGE_UNIT) == MT_ERR_FORMAT, "truncated PNG: %s", mt_last_error());
        memcpy(bad, png, n);
        bad[33] = 0x7f; /* the first chunk after IHDR claims 2 GB */
        CHECK(mt_image_load_memory(&t, bad, n, 3, MT_RANGE_UNIT) == MT_ERR_FORMAT &&
                  strstr(mt_last_error(), "PNG chunk runs past the end of the file"),
              "PNG chunk longer than the file: %s", mt_last_error());
        memcpy(bad, png, n);
        /* IHDR width and height (big-endian) at bytes 16 and 20: 10000 x
           10000, within stb_image's own limits, over MT_IMAGE_MAX_PIXELS */
        bad[16] = bad[20] = 0;
        bad[17] = bad[21] = 0;
        bad[18] = bad[22] = 0x27;
        bad[19] = bad[23] = 0x10;
        CHECK(mt_image_load_memory(&t, bad, n, 3, MT_RANGE_UNIT) == MT_ERR_UNSUPPORTED &&
                  strstr(mt_last_error(), "10000 x 10000 pixels, over the limit"),
              "oversized PNG refused before decoding: %s", mt_last_error());
        free(bad);
    }
    free(png);
    CHECK(t.data == NULL, "failed loads leave the output empty");
}

/* ---- the PNG writer's DEFLATE stream -------------------------------------

   PNG data is compressed by the header's own encoder (stb_image_write's
   fails unsafely when an allocation fails). Each image below is saved,
   read back exactly through stb_image, and its IDAT stream is checked
   against RFC 1950 by hand: header check bits, and the Adler-32 of the
   inflated data computed here. */

static uint32_t adler32(const unsigned char *p, size_t n) {
    uint32_t a = 1, b = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        a = (a + p[i]) % 65521u;
        b = (b + a) % 65521u;
    }
    return b << 16 | a;
}

static uint32_t be32(const unsigned char *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* Saves a [1, C, H, W] image of bytes px, reads it back, checks the zlib
   stream; returns the file's size (0 on failure). */
static long png_check(const char *what, const unsigned char *px, int64_t C, int64_t H, int64_t W) {
    mt_tensor img = {0}, back = {0};
    const char *path = tmp_path("deflate.png");
    unsigned char *file = NULL, *raw = NULL;
    long size = 0, pos;
    int64_t i, n = C * H * W;
    int ok = 1, rawlen = 0;
    FILE *f;
    mt_empty(&img, MT_F32, MT_SHAPE(1, C, H, W));
    for (i = 0; i < n; i++) mt_f32(&img)[i] = (float)px[i] / 255.0f;
    CHECKE(mt_image_save_png(path, &img, 0, MT_RANGE_UNIT) == MT_OK, "%s: saved", what);
    CHECK(mt_image_load(&back, path, (int)C, MT_RANGE_UNIT) == MT_OK && back.data &&
              memcmp(back.data, img.data, (size_t)n * 4) == 0,
          "%s: reads back exactly", what);
    f = fopen(path, "rb");
    if (f && fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
        file = (unsigned char *)malloc((size_t)size);
        if (!file || fread(file, 1, (size_t)size, f) != (size_t)size) size = 0;
    }
    if (f) fclose(f);
    for (pos = 8; size && pos + 12 <= size; pos += 12 + (long)be32(file + pos)) { /* the one IDAT chunk */
        uint32_t len = be32(file + pos), want;
        const unsigned char *z = file + pos + 8;
        if (memcmp(file + pos + 4, "IDAT", 4) != 0) continue;
        CHECK(len >= 6 && (z[0] * 256 + z[1]) % 31 == 0 && (z[0] & 15) == 8, "%s: a zlib header (deflate, check bits)", what);
        raw = (unsigned char *)stbi_zlib_decode_malloc((const char *)z, (int)len, &rawlen);
        want = be32(z + len - 4);
        ok = raw && rawlen == (int)(H * (W * C + 1)) && adler32(raw, (size_t)rawlen) == want;
        CHECK(ok, "%s: inflates to H * (W * C + 1) = %lld bytes with the Adler-32 of its trailer", what,
              (long long)(H * (W * C + 1)));
    }
    CHECK(raw != NULL, "%s: the IDAT stream inflates", what);
    free(raw);
    free(file);
    mt_release(&img);
    mt_release(&back);
    return size;
}

static void test_png_deflate(void) {
    const int64_t H = 160, W = 160;
    unsigned char *px = (unsigned char *)malloc((size_t)(3 * H * W));
    uint32_t state = 12345;
    int64_t c, y, x;
    long size;
    if (!px) return;
    /* a disc on a flat background: long matches, distances up to a row */
    for (c = 0; c < 3; c++)
        for (y = 0; y < H; y++)
            for (x = 0; x < W; x++)
                px[(c * H + y) * W + x] = (unsigned char)((x - 80) * (x - 80) + (y - 70) * (y - 70) < 900 ? 40 * c + 20 : 250 - c);
    size = png_check("a disc", px, 3, H, W);
    CHECK(size > 0 && size < 3 * H * W / 20, "a disc compresses at least 20x (%ld bytes)", size);
    /* noise: stored blocks (more than 65535 bytes: two of them) */
    for (x = 0; x < 3 * H * W; x++) {
        state = state * 1664525u + 1013904223u;
        px[x] = (unsigned char)(state >> 24);
    }
    size = png_check("noise", px, 3, H, W);
    CHECK(size > 0 && size < 3 * H * W + H + 200, "noise is stored, not expanded (%ld bytes)", size);
    /* noise rows repeated 9 rows apart: matches 4 KiB back, all lengths */
    for (y = 9; y < H; y++)
        for (c = 0; c < 3; c++) memcpy(px + (c * H + y) * W, px + (c * H + y - 9) * W, (size_t)W);
    size = png_check("repeated noise", px, 3, H, W);
    CHECK(size > 0 && size < 3 * H * W / 4, "repeated noise compresses at least 4x (%ld bytes)", size);
    /* gray, 1 x 1 and 1 x 300: the shortest streams */
    size = png_check("one pixel", px, 1, 1, 1);
    CHECK(size > 0, "one pixel");
    size = png_check("a gray line", px, 1, 1, 300);
    CHECK(size > 0, "a gray line");
    free(px);
}

int main(void) {
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/mt_files_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_reference_bytes();
    test_round_trip();
    test_escapes();
    test_misaligned_and_unsupported();
    test_malformed();
    test_accepted_variants();
    test_corruptions();
    test_file_errors();
    test_save_errors();
    test_image_round_trip();
    test_image_layouts();
    test_image_rounding();
    test_image_jpeg();
    test_image_errors();
    test_png_deflate();
    remove_tmpdir();
    return test_finish();
}
