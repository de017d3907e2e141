/* tests/fuzz/fuzz_image.c - libFuzzer harness for the image reader path of
   modular_tensor.h: PNG and JPEG bytes into a float32 tensor.

   The input is an image file; mt_image_load_memory decodes it as stored and
   converted to the channel count the input's size picks, in both ranges.
   A decoded image must be [1, C, H, W] with C in 1..4, within the pixel
   limit, every value finite and in its range; the preallocated-output path
   must give the same tensor and refuse a wrong shape; and an image of up
   to 4096 pixels must survive a round trip through mt_image_save_png and
   mt_image_load (PNG is lossless at 8 bits: the same floats come back).
   Finally the decode is repeated with one allocation failing (chosen by the
   input).

   The pixel limit is lowered (MT_IMAGE_MAX_PIXELS, an option of the header)
   so that a header announcing a huge image costs no time.

   Debian's stb_image 2.27 shifts negative values and shifts too far on
   damaged JPEG entropy data (modular_tensor.h documents it; stb_image 2.28
   fixed it): make fuzz runs this harness with those reports, inside
   stb_image only, suppressed (tests/fuzz/ubsan.supp). */
#define _POSIX_C_SOURCE 200809L
#include "tests/alloc_fail.h"
#define MT_IMAGE_MAX_PIXELS ((int64_t)1 << 16)
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond, ...)                                               \
    do {                                                                 \
        if (!(cond)) {                                                   \
            fprintf(stderr, "fuzz_image: check failed: %s\n  ", #cond); \
            fprintf(stderr, __VA_ARGS__);                                \
            fprintf(stderr, "\n  last error: %s\n", mt_last_error());    \
            abort();                                                     \
        }                                                                \
    } while (0)

static void check_status(mt_status s, const char *what) {
    REQUIRE((unsigned)s < MT_STATUS_COUNT, "%s returned status %d", what, (int)s);
    if (s != MT_OK) REQUIRE(mt_last_error()[0] != '\0', "%s failed with %s and no message", what, mt_status_name(s));
}

static char tmp_path[256];

static const char *png_path(void) {
    if (!tmp_path[0]) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(tmp_path, sizeof tmp_path, "%s/fuzz_image_%ld.png", dir, (long)getpid());
    }
    return tmp_path;
}

static void check_image(const mt_tensor *t, int channels, mt_image_range range) {
    const float *p = mt_f32(t);
    float lo = range == MT_RANGE_SIGNED ? -1.0f : 0.0f;
    int64_t n = mt_numel(t), i;
    REQUIRE(p != NULL && t->ndim == 4 && t->shape[0] == 1, "a decoded image is not [1, C, H, W] float32");
    REQUIRE(t->shape[1] >= 1 && t->shape[1] <= 4 && (channels == 0 || t->shape[1] == channels),
            "%lld channels decoded, %d asked", (long long)t->shape[1], channels);
    REQUIRE(t->shape[2] >= 1 && t->shape[3] >= 1 && t->shape[2] * t->shape[3] <= MT_IMAGE_MAX_PIXELS,
            "a decoded image of %lld x %lld", (long long)t->shape[3], (long long)t->shape[2]);
    for (i = 0; i < n; i++) REQUIRE(p[i] >= lo && p[i] <= 1.0f, "pixel %lld is %g", (long long)i, (double)p[i]);
}

static int same(const mt_tensor *a, const mt_tensor *b) {
    return mt_same_shape(a, b) && memcmp(a->data, b->data, (size_t)mt_numel(a) * sizeof(float)) == 0;
}

static int decoded; /* the clean decode of this input worked */

static void decode(const uint8_t *data, size_t size, int channels, mt_image_range range, int round_trip) {
    mt_tensor t = {MT_F32, 0, {0}, {0}, NULL, NULL}, pre = t, back = t, wrong = t;
    mt_status s;
    mt_clear_error();
    s = mt_image_load_memory(&t, data, size, channels, range);
    check_status(s, "mt_image_load_memory");
    if (s != MT_OK) {
        REQUIRE(t.data == NULL, "a failed decode filled the tensor");
        REQUIRE(s == MT_ERR_FORMAT || s == MT_ERR_UNSUPPORTED, "a bad image gave %s", mt_status_name(s));
        return;
    }
    check_image(&t, channels, range);
    decoded = 1;
    /* a preallocated output of the right shape gets the same values */
    if (mt_empty(&pre, MT_F32, 4, t.shape) == MT_OK) {
        mt_clear_error();
        s = mt_image_load_memory(&pre, data, size, channels, range);
        check_status(s, "mt_image_load_memory (preallocated)");
        REQUIRE(s == MT_OK && same(&pre, &t), "the preallocated decode differs");
    }
    /* ... and one of another shape is refused, untouched */
    if (mt_zeros(&wrong, MT_F32, MT_SHAPE(1, 1, 1, 1)) == MT_OK && (t.shape[1] != 1 || t.shape[2] * t.shape[3] != 1)) {
        mt_clear_error();
        s = mt_image_load_memory(&wrong, data, size, channels, range);
        check_status(s, "mt_image_load_memory (wrong shape)");
        REQUIRE(s == MT_ERR_SHAPE && mt_f32(&wrong)[0] == 0.0f, "a wrong preallocated shape gave %s", mt_status_name(s));
    }
    if (round_trip && t.shape[2] * t.shape[3] <= 4096) {
        mt_clear_error();
        s = mt_image_save_png(png_path(), &t, 0, range);
        check_status(s, "mt_image_save_png");
        REQUIRE(s == MT_OK, "a decoded image cannot be saved");
        mt_clear_error();
        s = mt_image_load(&back, png_path(), 0, range);
        check_status(s, "mt_image_load");
        REQUIRE(s == MT_OK && same(&back, &t), "the PNG written from a decoded image reads back differently");
        unlink(png_path());
    }
    mt_release(&t);
    mt_release(&pre);
    mt_release(&back);
    mt_release(&wrong);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    long live0, allocs;
    int channels = (int)(size % 5);
    af_disarm();
    live0 = af_live_now();
    decoded = 0;
    decode(data, size, 0, MT_RANGE_UNIT, 1);
    allocs = __atomic_load_n(&af_count, __ATOMIC_RELAXED);
    if (channels) decode(data, size, channels, MT_RANGE_SIGNED, 0);
    REQUIRE(af_live_now() == live0, "%ld blocks leaked", af_live_now() - live0);
    if (allocs > 0) {
        mt_tensor t = {MT_F32, 0, {0}, {0}, NULL, NULL};
        uint64_t h = 0;
        size_t k;
        mt_status s;
        for (k = 0; k < size; k++) h = h * 31u + data[k];
        af_arm(1 + (long)(h % (uint64_t)allocs), 0);
        mt_clear_error();
        s = mt_image_load_memory(&t, data, size, 0, MT_RANGE_UNIT);
        af_disarm();
        check_status(s, "mt_image_load_memory (allocation failing)");
        REQUIRE((s == MT_OK) == (t.data != NULL), "status and tensor disagree");
        /* An image that decodes may still give MT_ERR_FORMAT here: stb_image
           does not report every allocation it fails (its zlib buffer, its
           JPEG decoder while telling the format) */
        REQUIRE(!decoded || s == MT_OK || s == MT_ERR_MEMORY || s == MT_ERR_FORMAT,
                "an image that decodes gave %s when an allocation failed", mt_status_name(s));
        mt_release(&t);
        REQUIRE(af_live_now() == live0, "a decode with a failing allocation leaked %ld blocks", af_live_now() - live0);
    }
    return 0;
}
