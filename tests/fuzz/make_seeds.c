/* tests/fuzz/make_seeds.c - writes the seed corpora of the fuzz harnesses.

       make_seeds DIR    writes the seeds of each harness into DIR/<harness>/
                         (fuzz_pipeline, fuzz_safetensors, fuzz_image; the
                         directories must exist)

   The seeds are made by the project itself: programs in fuzz_pipeline's byte
   format (fuzz_pipeline.h) that build the seeds' pipelines, and files
   written by the library's own writers. `make fuzz` runs it. */
#define _POSIX_C_SOURCE 200809L
#include "modular_tensor.h"
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"
#include "tests/fuzz/fuzz_pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *out_dir;

static int write_seed(const char *harness, const char *name, const void *data, size_t size) {
    char path[1024];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, harness, name);
    f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size) {
        fprintf(stderr, "make_seeds: cannot write %s\n", path);
        if (f) fclose(f);
        return 0;
    }
    return fclose(f) == 0;
}

/* ---- fuzz_pipeline programs ---------------------------------------------- */

typedef struct prog {
    unsigned char b[1024];
    size_t n;
} prog;

static void put(prog *p, unsigned v) {
    if (p->n < sizeof p->b) p->b[p->n++] = (unsigned char)v;
}

static unsigned nm(const char *name) {
    unsigned i;
    for (i = 0; i < FZ_NNAMES; i++)
        if (strcmp(fz_names[i], name) == 0) return i;
    fprintf(stderr, "make_seeds: no name '%s' in fz_names\n", name);
    exit(1);
}

static void header(prog *p, unsigned mode, unsigned fail_at) {
    p->n = 0;
    put(p, mode);
    put(p, fail_at & 0xFF);
    put(p, (fail_at >> 8) & 0xFF);
}

static void typed(prog *p, unsigned def) {
    put(p, FZ_OP_TYPED);
    put(p, def);
}

/* an entry of a composition: a definition (def < 0x20) or pool block */
static void entry_def(prog *p, const char *name, unsigned def, unsigned trigger) {
    put(p, nm(name));
    put(p, def);
    put(p, trigger);
}
static void entry_block(prog *p, const char *name, unsigned block, unsigned trigger) {
    put(p, nm(name));
    put(p, 0x20 + block);
    put(p, trigger);
}

/* a trigger byte for an auto entry that names `name` (t % 4 != 0 and
   t % FZ_NNAMES == index) */
static unsigned trig(const char *name) {
    unsigned i = nm(name), t;
    for (t = i; t < 256; t += FZ_NNAMES)
        if (t % 4) return t;
    return 1;
}

/* call args: (source < 0xC0 picks the interface's names, else a name) */
static void arg(prog *p, const char *name, unsigned kind, unsigned payload) {
    put(p, 0xC0 + 0); /* a name from fz_names follows */
    put(p, nm(name));
    put(p, kind);
    put(p, payload);
}

static int save(prog *p, const char *name) { return write_seed("fuzz_pipeline", name, p->b, p->n); }

static int pipeline_seeds(void) {
    prog p;
    int ok = 1;

    /* sequence of typed blocks, a pipeline, calls with every kind */
    header(&p, 0, 0);
    typed(&p, FZ_DEF_INTS);
    typed(&p, FZ_DEF_TENSOR);
    put(&p, FZ_OP_SEQUENTIAL);
    put(&p, 0); /* class */
    put(&p, 2); /* description */
    put(&p, 2);
    entry_block(&p, "x", 0, 0);
    entry_block(&p, "y", 1, 0);
    put(&p, 0); /* workflows */
    put(&p, FZ_OP_PIPELINE);
    put(&p, 2);
    put(&p, FZ_OP_CALL);
    put(&p, 0);
    put(&p, 3);
    arg(&p, "x", FZ_V_INT, 1);
    arg(&p, "n", FZ_V_INT, 2);
    arg(&p, "tensor", FZ_V_TENSOR, 1);
    put(&p, FZ_OP_VIEWS);
    put(&p, 2);
    put(&p, 0);
    ok &= save(&p, "sequence_typed");

    /* the loop guide: a loop wrapper over two body blocks */
    header(&p, 0, 0);
    put(&p, FZ_OP_LOOP);
    put(&p, FZ_DEF_LOOP);
    put(&p, 2);
    entry_def(&p, "x", FZ_DEF_INTS, 0);
    entry_def(&p, "y", FZ_DEF_VALUES, 0);
    put(&p, FZ_OP_PIPELINE);
    put(&p, 0);
    put(&p, FZ_OP_CALL);
    put(&p, 0);
    put(&p, 3);
    arg(&p, "num_steps", FZ_V_INT, 3);
    arg(&p, "items", FZ_V_LIST, 3);
    arg(&p, "dict", FZ_V_DICT, 2);
    put(&p, FZ_OP_VIEWS);
    put(&p, 0);
    put(&p, 0);
    ok &= save(&p, "loop");

    /* the auto guide: make_block branches chosen by triggers, in a sequence */
    header(&p, 0, 0);
    put(&p, FZ_OP_MAKE_BLOCK);
    put(&p, 1);                 /* class TestBlock */
    put(&p, 2);                 /* description */
    put(&p, 2 | 1 << 4 | 1 << 6); /* 2 inputs, 1 output, a script */
    put(&p, 0);
    put(&p, nm("prompt")); put(&p, 3); put(&p, 1); put(&p, FZ_V_ABSENT); put(&p, 0); put(&p, 2);
    put(&p, nm("image")); put(&p, 7); put(&p, 0); put(&p, FZ_V_ABSENT); put(&p, 0); put(&p, 2);
    put(&p, nm("image_latents")); put(&p, 5); put(&p, 0);
    put(&p, 3);                 /* script: set image_latents to a tensor, repr both states */
    put(&p, 2); put(&p, nm("image_latents")); put(&p, FZ_V_TENSOR);
    put(&p, 3); put(&p, 0); put(&p, 0);
    put(&p, 4); put(&p, 0); put(&p, 0);
    typed(&p, FZ_DEF_INTS);
    put(&p, FZ_OP_AUTO);
    put(&p, 5);
    put(&p, 0);
    put(&p, 1);                 /* 1 + 1 entries */
    entry_block(&p, "image", 0, trig("image"));
    entry_block(&p, "t", 1, 0);
    put(&p, FZ_OP_PIPELINE);
    put(&p, 2);
    put(&p, FZ_OP_CALL);
    put(&p, 0);
    put(&p, 2);
    arg(&p, "image", FZ_V_STR, 0);
    arg(&p, "prompt", FZ_V_STR, 1);
    put(&p, FZ_OP_EXEC_BLOCKS);
    put(&p, 2);
    put(&p, 1);
    put(&p, nm("image"));
    put(&p, 0xFF);
    put(&p, nm("x"));
    ok &= save(&p, "auto");

    /* components, configs and kwargs */
    header(&p, 0, 0);
    typed(&p, FZ_DEF_COMP);
    typed(&p, FZ_DEF_KW);
    typed(&p, FZ_DEF_PTR);
    put(&p, FZ_OP_SEQUENTIAL);
    put(&p, 2);
    put(&p, 0);
    put(&p, 3);
    entry_block(&p, "counter", 0, 0);
    entry_block(&p, "fields", 1, 0);
    entry_block(&p, "obj", 2, 0);
    put(&p, 1);                 /* a workflow */
    put(&p, nm("t"));
    put(&p, 1);
    put(&p, nm("obj"));
    put(&p, FZ_OP_PIPELINE);
    put(&p, 3);
    put(&p, FZ_OP_SET_CONFIG);
    put(&p, 0);
    put(&p, 0xC0);
    put(&p, nm("offset"));
    put(&p, FZ_V_INT);
    put(&p, 2);
    put(&p, FZ_OP_SET_COMPONENT);
    put(&p, 0);
    put(&p, 0xC0);
    put(&p, nm("counter"));
    put(&p, FZ_V_PTR);
    put(&p, 1);
    put(&p, FZ_OP_CALL_OUTPUTS);
    put(&p, 0);
    put(&p, 1);
    arg(&p, "obj", FZ_V_PTR, 0);
    put(&p, 2);
    put(&p, 0);
    put(&p, 1);
    ok &= save(&p, "components");

    /* editing a sequence, then running it */
    header(&p, 0, 0);
    put(&p, FZ_OP_SEQUENTIAL);
    put(&p, 0);
    put(&p, 0);
    put(&p, 3);
    entry_def(&p, "x", FZ_DEF_INTS, 0);
    entry_def(&p, "s", FZ_DEF_REQ, 0);
    entry_def(&p, "t", FZ_DEF_TENSOR, 0);
    put(&p, 0);
    typed(&p, FZ_DEF_VALUES);
    put(&p, FZ_OP_INSERT); put(&p, 0); put(&p, 3); put(&p, nm("items")); put(&p, 1);
    put(&p, FZ_OP_POP); put(&p, 0); put(&p, 0); put(&p, 1); put(&p, 1);
    put(&p, FZ_OP_REPLACE_AT); put(&p, 0); put(&p, 1); put(&p, 1);
    put(&p, FZ_OP_VALIDATE); put(&p, 0);
    put(&p, FZ_OP_BLOCK_RUN); put(&p, 0); put(&p, 2);
    arg(&p, "s", FZ_V_STR, 0);
    arg(&p, "flag", FZ_V_BOOL, 1);
    ok &= save(&p, "edits");

    /* the sequence program again, with an allocation failing at 40, and
       every allocation failing from 200 on */
    header(&p, FZ_OOM_MODE, 40);
    typed(&p, FZ_DEF_INTS);
    typed(&p, FZ_DEF_LOOP);
    put(&p, FZ_OP_LOOP);
    put(&p, FZ_DEF_LOOP_SLOPPY);
    put(&p, 2);
    entry_block(&p, "x", 0, 0);
    entry_def(&p, "y", FZ_DEF_TENSOR, 0);
    put(&p, FZ_OP_PIPELINE);
    put(&p, 2);
    put(&p, FZ_OP_CALL);
    put(&p, 0);
    put(&p, 2);
    arg(&p, "num_steps", FZ_V_INT, 3);
    arg(&p, "latents", FZ_V_TENSOR, 1);
    ok &= save(&p, "oom_once");
    p.b[0] = FZ_OOM_MODE + 1;
    p.b[1] = 200;
    ok &= save(&p, "oom_from");
    return ok;
}

/* ---- fuzz_safetensors files ------------------------------------------------ */

static int file_seed(const char *harness, const char *name, const char *path) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long n;
    int ok;
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    buf = (unsigned char *)malloc((size_t)n + 1);
    ok = buf && fread(buf, 1, (size_t)n, f) == (size_t)n;
    fclose(f);
    if (ok) ok = write_seed(harness, name, buf, (size_t)n);
    free(buf);
    remove(path);
    return ok;
}

/* a file from a header text and data bytes, as the format lays it out */
static int raw_safetensors(const char *name, const char *header_json, const void *body, size_t body_size) {
    unsigned char buf[4096];
    size_t h = strlen(header_json), i;
    if (8 + h + body_size > sizeof buf) return 0;
    for (i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, header_json, h);
    memcpy(buf + 8 + h, body, body_size);
    return write_seed("fuzz_safetensors", name, buf, 8 + h + body_size);
}

static int safetensors_seeds(void) {
    char path[1024];
    mt_tensor a = {MT_F32, 0, {0}, {0}, NULL, NULL}, b = a, c = a, d = a, e = a, s = a;
    mt_generator g;
    int ok = 1;
    snprintf(path, sizeof path, "%s/fuzz_safetensors/.tmp", out_dir);
    mt_generator_seed(&g, 0);
    ok &= mt_randn(&a, &g, MT_SHAPE(2, 3)) == MT_OK;
    ok &= mt_to_dtype(&b, &a, MT_F16) == MT_OK;
    ok &= mt_to_dtype(&c, &a, MT_BF16) == MT_OK;
    ok &= mt_zeros(&d, MT_I64, MT_SHAPE(4)) == MT_OK;
    ok &= mt_zeros(&e, MT_F32, MT_SHAPE(0, 3)) == MT_OK;
    ok &= mt_full(&s, MT_F32, 0, NULL, 1.5) == MT_OK;
    if (!ok) return 0;
    {
        const char *names[] = {"weight", "weight.f16", "weight.bf16", "index", "empty", "scalar"};
        const mt_tensor *ts[] = {&a, &b, &c, &d, &e, &s};
        const char *meta[] = {"format", "pt", "note", "caf\u00e9 \"quoted\""};
        ok &= mt_safetensors_save(path, 6, names, ts, 2, meta) == MT_OK && file_seed("fuzz_safetensors", "all_dtypes", path);
        ok &= mt_safetensors_save(path, 1, names, ts, 0, NULL) == MT_OK && file_seed("fuzz_safetensors", "one", path);
        ok &= mt_safetensors_save(path, 0, names, ts, 0, NULL) == MT_OK && file_seed("fuzz_safetensors", "none", path);
    }
    mt_release(&a);
    mt_release(&b);
    mt_release(&c);
    mt_release(&d);
    mt_release(&e);
    mt_release(&s);
    {
        /* dtypes the reader lists but does not load, misaligned data, nested
           metadata keys, escapes */
        static const unsigned char bytes[24] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24};
        ok &= raw_safetensors("other_dtypes",
                              "{\"i32\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                              "\"u8\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[8,11]},"
                              "\"f64\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[11,19]},"
                              "\"b\":{\"dtype\":\"BOOL\",\"shape\":[5],\"data_offsets\":[19,24]}}",
                              bytes, 24);
        ok &= raw_safetensors("misaligned",
                              "{\"__metadata__\":{\"k\":\"v\"},\"x\":{\"dtype\":\"U8\",\"shape\":[1],"
                              "\"data_offsets\":[0,1]},\"y\":{\"dtype\":\"F32\",\"shape\":[1,1],\"data_offsets\":[1,5]},"
                              "\"\\u00e9\\ud83d\\ude00\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[5,9]}}  ",
                              bytes, 9);
    }
    return ok;
}

/* ---- fuzz_image files --------------------------------------------------------- */

typedef struct bytes {
    unsigned char b[65536];
    size_t n;
} bytes;

static bytes img;

static void put_bytes(bytes *o, const void *p, size_t n) {
    if (o->n + n > sizeof o->b) return;
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

static void put_be32(bytes *o, unsigned v) {
    unsigned char b[4];
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
    put_bytes(o, b, 4);
}

static void jpg_sink(void *ctx, void *data, int size) { put_bytes((bytes *)ctx, data, (size_t)size); }

/* a PNG chunk: length, type, data, CRC of type and data */
static void png_chunk(bytes *o, const char *type, const unsigned char *data, unsigned len) {
    unsigned char buf[4096 + 4];
    put_be32(o, len);
    if (len > 4096) return;
    memcpy(buf, type, 4);
    if (len) memcpy(buf + 4, data, len);
    put_bytes(o, buf, len + 4);
    put_be32(o, stbiw__crc32(buf, (int)len + 4));
}

/* A PNG of w x h pixels in any color type and depth, optionally Adam7
   interlaced, pixel values from a fixed pattern; `plte` entries for color
   type 3, `trns` bytes of transparency. */
static int crafted_png(const char *name, int w, int h, int depth, int color, int interlace, int plte, int trns) {
    static const int chans[7] = {1, 0, 3, 1, 2, 0, 4};
    static const int x0[7] = {0, 4, 0, 2, 0, 1, 0}, y0[7] = {0, 0, 4, 0, 2, 0, 1};
    static const int dx[7] = {8, 8, 4, 4, 2, 2, 1}, dy[7] = {8, 8, 8, 4, 4, 2, 2};
    unsigned char raw[16384], ihdr[13], pal[768];
    size_t nraw = 0;
    int bpp = chans[color] * depth, pass, npass = interlace ? 7 : 1, ok, zlen = 0, i;
    unsigned char *z;
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
    for (pass = 0; pass < npass; pass++) {
        int px0 = interlace ? x0[pass] : 0, py0 = interlace ? y0[pass] : 0;
        int pdx = interlace ? dx[pass] : 1, pdy = interlace ? dy[pass] : 1, x, y;
        int pw = (w - px0 + pdx - 1) / pdx, ph = (h - py0 + pdy - 1) / pdy;
        if (pw <= 0 || ph <= 0) continue;
        for (y = 0; y < ph; y++) {
            size_t row_bytes = ((size_t)pw * (size_t)bpp + 7) / 8;
            if (nraw + 1 + row_bytes > sizeof raw) return 0;
            raw[nraw++] = (unsigned char)(y % 5); /* every filter type */
            memset(raw + nraw, 0, row_bytes);
            for (x = 0; x < pw * bpp / (depth < 8 ? depth : 8); x++) {
                unsigned v = (unsigned)(x * 37 + y * 11 + pass * 5);
                if (depth < 8) {
                    int per = 8 / depth, k = x % per;
                    unsigned mask = (1u << depth) - 1;
                    if (color == 3) v %= (unsigned)plte;
                    raw[nraw + (size_t)x / per] |= (unsigned char)((v & mask) << (8 - depth * (k + 1)));
                } else {
                    raw[nraw + (size_t)x] = (unsigned char)(color == 3 ? v % (unsigned)plte : v);
                }
            }
            nraw += row_bytes;
        }
    }
    img.n = 0;
    put_bytes(&img, sig, 8);
    ihdr[0] = (unsigned char)(w >> 24); ihdr[1] = (unsigned char)(w >> 16); ihdr[2] = (unsigned char)(w >> 8); ihdr[3] = (unsigned char)w;
    ihdr[4] = (unsigned char)(h >> 24); ihdr[5] = (unsigned char)(h >> 16); ihdr[6] = (unsigned char)(h >> 8); ihdr[7] = (unsigned char)h;
    ihdr[8] = (unsigned char)depth;
    ihdr[9] = (unsigned char)color;
    ihdr[10] = 0;
    ihdr[11] = 0;
    ihdr[12] = (unsigned char)interlace;
    png_chunk(&img, "IHDR", ihdr, 13);
    if (plte) {
        for (i = 0; i < 3 * plte; i++) pal[i] = (unsigned char)(i * 29);
        png_chunk(&img, "PLTE", pal, (unsigned)(3 * plte));
    }
    if (trns) {
        for (i = 0; i < trns; i++) pal[i] = (unsigned char)(255 - i * 40);
        png_chunk(&img, "tRNS", pal, (unsigned)trns);
    }
    z = stbi_zlib_compress(raw, (int)nraw, &zlen, 8);
    if (!z) return 0;
    png_chunk(&img, "IDAT", z, (unsigned)zlen);
    STBIW_FREE(z);
    png_chunk(&img, "IEND", NULL, 0);
    ok = write_seed("fuzz_image", name, img.b, img.n);
    return ok;
}

static int image_seeds(void) {
    char path[1024];
    mt_generator g;
    mt_tensor t = {MT_F32, 0, {0}, {0}, NULL, NULL};
    unsigned char pix[16 * 16 * 3];
    int ok = 1, c, i;
    static const int sizes[5][2] = {{1, 1}, {3, 2}, {7, 5}, {4, 4}, {16, 9}};
    snprintf(path, sizeof path, "%s/fuzz_image/.tmp.png", out_dir);
    mt_generator_seed(&g, 0);
    for (c = 1; c <= 4; c++) {
        char name[32];
        ok &= mt_rand(&t, &g, MT_SHAPE(1, c, sizes[c][1], sizes[c][0])) == MT_OK;
        snprintf(name, sizeof name, "png_%dch", c);
        ok &= mt_image_save_png(path, &t, 0, MT_RANGE_UNIT) == MT_OK && file_seed("fuzz_image", name, path);
        mt_release(&t);
    }
    for (i = 0; i < (int)sizeof pix; i++) pix[i] = (unsigned char)(i * 7 + (i / 48) * 13);
    for (c = 1; c <= 3; c += 2) {
        static const int q[2] = {50, 95};
        int k;
        for (k = 0; k < 2; k++) {
            char name[32];
            img.n = 0;
            ok &= stbi_write_jpg_to_func(jpg_sink, &img, 16, 9 + k, c, pix, q[k]) != 0;
            snprintf(name, sizeof name, "jpeg_%dch_q%d", c, q[k]);
            ok &= write_seed("fuzz_image", name, img.b, img.n);
        }
    }
    ok &= crafted_png("png_palette_trns", 5, 3, 8, 3, 0, 6, 4);
    ok &= crafted_png("png_palette_2bit", 9, 2, 2, 3, 0, 4, 0);
    ok &= crafted_png("png_gray_1bit", 13, 3, 1, 0, 0, 0, 0);
    ok &= crafted_png("png_rgb_16bit", 3, 3, 16, 2, 0, 0, 0);
    ok &= crafted_png("png_rgba_16bit", 2, 2, 16, 6, 0, 0, 0);
    ok &= crafted_png("png_interlaced", 9, 10, 8, 2, 1, 0, 0);
    ok &= crafted_png("png_interlaced_gray4", 11, 7, 4, 0, 1, 0, 0);
    return ok;
}

int main(int argc, char **argv) {
    int ok = 1;
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds DIR\n");
        return 2;
    }
    out_dir = argv[1];
    ok &= pipeline_seeds();
    ok &= safetensors_seeds();
    ok &= image_seeds();
    return ok ? 0 : 1;
}
