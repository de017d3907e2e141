/* Regression tests for bugs found by the fuzz harnesses (tests/fuzz/) and
   by the hardening review; each names the input that broke it. */
#include "tests/alloc_fail.h" /* counts allocations; fails them only when armed */
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"
#define MODULAR_IMPLEMENTATION
#include "modular.h"
#include "tests/test.h"

/* ---- inputs are copies: a block changing a list or dict input in place --
   Found by fuzz_pipeline (the caller's argument check): a MOD_BLOCK with an
   INPUT LIST row that called mod_list_set on its field changed the caller's
   list and the state's inputs, which the seeds say never change. */

#define edits_PARAMS(X, S)                                     \
    X(S, INPUT, LIST, items, "list", NONE, "")                 \
    X(S, INPUT, DICT, opts, "dict", NONE, "")                  \
    X(S, INPUT, VALUE, any, "Any", NONE, "")                   \
    X(S, OUTPUT, INT, done, "int", NONE, "")
MOD_BLOCK(edits, "Edits its inputs in place.") {
    const mod_value *inner;
    MOD_TRY(mod_list_set(&s->items, 0, mod_str("changed")));
    inner = mod_list_at(&s->items, 1);
    if (inner && inner->kind == MOD_LIST) MOD_TRY(mod_list_set((mod_value *)inner, 0, mod_int(-1)));
    MOD_TRY(mod_dict_set(&s->opts, "k", mod_int(99)));
    if (mod_value_tensor(&s->any)) mt_f32(mod_value_tensor(&s->any))[0] = -1000.0f;
    s->done = 1;
    return MOD_OK;
}

#define edits_loop_PARAMS(X, S) X(S, INPUT, INT, num_steps, "int", DEF(2), "")
MOD_LOOP(edits_loop, "Runs the editing block twice.") {
    int64_t i;
    for (i = 0; i < s->num_steps; i++) MOD_TRY(mod_loop_step(s->mod, NULL));
    return MOD_OK;
}

static void repr_of(const mod_value *v, char *buf, size_t size) { mod_value_repr(v, buf, size); }

static void check_inputs_untouched(const mod_block *b, const char *what) {
    mod_value items, inner, opts;
    mt_tensor t = {MT_F32, 0, {0}, {0}, NULL, NULL};
    mod_pipeline *p = NULL;
    mod_state *st = NULL;
    mod_arg args[4];
    char before[128], after[128];
    memset(&items, 0, sizeof items);
    memset(&inner, 0, sizeof inner);
    memset(&opts, 0, sizeof opts);
    mod_list_new(&inner, 1);
    mod_list_set(&inner, 0, mod_int(5));
    mod_list_new(&items, 2);
    mod_list_set(&items, 0, mod_str("original"));
    mod_list_set(&items, 1, inner);
    mod_dict_new(&opts);
    mod_dict_set(&opts, "k", mod_int(1));
    mt_ones(&t, MT_F32, MT_SHAPE(2));
    args[0].name = "items";
    args[0].value = items;
    args[1].name = "opts";
    args[1].value = opts;
    args[2].name = "any";
    args[2].value = mod_tensor(&t);
    args[3].name = NULL;
    repr_of(&items, before, sizeof before);
    CHECK(mod_pipeline_new(&p, b) == MOD_OK && mod_pipeline_call(p, args, &st) == MOD_OK, "%s: runs: %s", what,
          mod_last_error());
    repr_of(&items, after, sizeof after);
    CHECK_STR(after, before, "%s: the caller's list (and the list inside it) is unchanged", what);
    CHECK(mod_dict_get(&opts, "k") && mod_dict_get(&opts, "k")->i == 1, "%s: the caller's dict is unchanged", what);
    CHECK(mt_f32(&t)[0] == 1.0f, "%s: a tensor passed through a VALUE input is unchanged", what);
    if (st) {
        repr_of(mod_state_input(st, "items"), after, sizeof after);
        CHECK_STR(after, before, "%s: the state's inputs are unchanged", what);
        CHECK(mod_dict_get(mod_state_input(st, "opts"), "k")->i == 1, "%s: the state's dict input is unchanged", what);
    }
    mod_state_free(st);
    mod_pipeline_free(p);
    mod_value_release(&items);
    mod_value_release(&inner);
    mod_value_release(&opts);
    mt_release(&t);
}

static void test_inputs_are_copies(void) {
    mod_block *b = NULL, *loop = NULL;
    const mod_entry body[] = {{"edit", &edits_def, NULL, NULL}, {NULL, NULL, NULL, NULL}};
    CHECK(mod_block_new(&b, &edits_def) == MOD_OK, "block");
    check_inputs_untouched(b, "a block");
    CHECK(mod_loop_new(&loop, &edits_loop_def, body) == MOD_OK, "loop");
    check_inputs_untouched(loop, "a loop body");
    mod_block_free(b);
    mod_block_free(loop);
}

/* ---- a scalar config without a default --------------------------------
   Found by the review for the fuzz harness: a MOD_BLOCK row
   X(S, CONFIG, INT, offset, "", NONE, "") never saw the value given with
   mod_pipeline_set_config (the fast path for scalars took it for an output
   and left the field 0). */

#define configured_PARAMS(X, S)                                 \
    X(S, CONFIG, INT, offset, "", NONE, "no default")           \
    X(S, CONFIG, FLOAT, scale, "", NONE, "no default")          \
    X(S, CONFIG, BOOL, on, "", NONE, "no default")              \
    X(S, OUTPUT, INT, seen, "int", NONE, "")                    \
    X(S, OUTPUT, FLOAT, seen_scale, "float", NONE, "")          \
    X(S, OUTPUT, BOOL, seen_on, "bool", NONE, "")
MOD_BLOCK(configured, "Reads configs that have no default.") {
    s->seen = s->offset;
    s->seen_scale = s->scale;
    s->seen_on = s->on;
    return MOD_OK;
}

static void test_config_without_default(void) {
    mod_block *b = NULL;
    mod_pipeline *p = NULL;
    mod_state *st = NULL;
    CHECK(mod_block_new(&b, &configured_def) == MOD_OK && mod_pipeline_new(&p, b) == MOD_OK, "pipeline");
    CHECK(mod_pipeline_set_config(p, "offset", mod_int(5)) == MOD_OK &&
              mod_pipeline_set_config(p, "scale", mod_float(0.25)) == MOD_OK &&
              mod_pipeline_set_config(p, "on", mod_bool(1)) == MOD_OK,
          "set the configs");
    CHECK(mod_pipeline_call(p, NULL, &st) == MOD_OK, "call: %s", mod_last_error());
    CHECK(st && mod_state_intermediate(st, "seen")->i == 5, "the block sees the int config it was given");
    CHECK(st && mod_state_intermediate(st, "seen_scale")->f == 0.25, "... the float config");
    CHECK(st && mod_state_intermediate(st, "seen_on")->i == 1, "... the bool config");
    mod_state_free(st);
    mod_pipeline_free(p);
    mod_block_free(b);
}

/* ---- out of memory must never pass silently ------------------------------
   Found by tests/test_alloc_fail.c: validating an auto block with triggers
   returned MOD_OK when the text naming the trigger combination could not be
   allocated; mod_value_repr returned an empty text without a message. Each
   allocation of the call is made to fail in turn. */

#define pick_a_PARAMS(X, S) X(S, INPUT_REQUIRED, INT, image, "int", NONE, "") X(S, OUTPUT, INT, out, "int", NONE, "")
MOD_BLOCK(pick_a, "Branch a.") {
    s->out = s->image;
    return MOD_OK;
}
#define pick_b_PARAMS(X, S) X(S, INPUT, INT, mask, "int", NONE, "") X(S, OUTPUT, INT, out, "int", NONE, "")
MOD_BLOCK(pick_b, "Branch b.") {
    s->out = s->mask;
    return MOD_OK;
}

static void test_validation_out_of_memory(void) {
    mod_block *a = NULL, *b = NULL, *au = NULL;
    mod_auto_desc d;
    mod_entry e[3] = {{"a", NULL, NULL, "image"}, {"b", NULL, NULL, "mask"}, {NULL, NULL, NULL, NULL}};
    long k, silent = 0;
    memset(&d, 0, sizeof d);
    mod_block_new(&a, &pick_a_def);
    mod_block_new(&b, &pick_b_def);
    e[0].block = a;
    e[1].block = b;
    d.blocks = e;
    CHECK(mod_auto_new(&au, &d) == MOD_OK, "an auto block with two triggers");
    for (k = 1; k < 200; k++) {
        mod_status s;
        af_arm(k, 0);
        s = mod_block_validate(au);
        if (s == MOD_OK && af_failures) silent++;
        af_disarm();
    }
    CHECK(silent == 0, "validation never succeeds after one of its allocations failed (%ld did)", silent);
    mod_block_free(au);
    mod_block_free(a);
    mod_block_free(b);
}

static void test_repr_out_of_memory(void) {
    mod_value list;
    long k, unreported = 0;
    memset(&list, 0, sizeof list);
    mod_list_new(&list, 2);
    mod_list_set(&list, 0, mod_str("a long enough string to need the heap"));
    mod_list_set(&list, 1, mod_float(0.1));
    for (k = 1; k < 20; k++) {
        char buf[128];
        int n;
        mod_fail(NULL, MOD_ERR_ARGUMENT, "%s", "");
        af_arm(k, 0);
        n = mod_value_repr(&list, buf, sizeof buf);
        af_disarm();
        if (n == 0 && strcmp(mod_last_error(), "out of memory") != 0) unreported++;
    }
    CHECK(unreported == 0, "mod_value_repr out of memory says so (%ld did not)", unreported);
    mod_value_release(&list);
}

/* ---- a failed insert of an existing name lost the child ------------------
   Found by tests/test_alloc_fail.c: mod_block_insert of a name the block
   already has (a move, as InsertableDict.insert) removed the child, then
   re-inserted it; when every allocation from then on failed, the "best
   effort" restore failed too and the child was gone. */

static void test_insert_existing_name(void) {
    mod_block *a = NULL, *b = NULL, *c = NULL, *seq = NULL;
    mod_sequential_desc d;
    mod_entry e[4] = {{"a", NULL, NULL, NULL}, {"b", NULL, NULL, NULL}, {"c", NULL, NULL, NULL}, {NULL, NULL, NULL, NULL}};
    int k, ok = 1;
    memset(&d, 0, sizeof d);
    mod_block_new(&a, &pick_b_def);
    mod_block_new(&b, &pick_b_def);
    mod_block_new(&c, &pick_b_def);
    e[0].block = a;
    e[1].block = b;
    e[2].block = c;
    d.blocks = e;
    CHECK(mod_sequential_new(&seq, &d) == MOD_OK, "a sequence a, b, c");
    for (k = 0; k < 3; k++) {
        int to = (k + 2) % 3;
        af_arm(1, 1); /* every allocation fails */
        if (mod_block_insert(seq, to, "b", b) != MOD_OK) ok = 0;
        af_disarm();
        if (mod_block_count(seq) != 3 || mod_block_child_at(seq, to) != b ||
            strcmp(mod_block_child_name(seq, to), "b") != 0)
            ok = 0;
    }
    CHECK(ok, "moving an existing name needs no allocation and keeps every child");
    CHECK(mod_block_find(seq, "a") == a && mod_block_find(seq, "c") == c, "the other children are still there");
    mod_block_free(seq);
    mod_block_free(a);
    mod_block_free(b);
    mod_block_free(c);
}

/* ---- a palette index past the palette -------------------------------------
   Found by fuzz_image (two decodes of one file differed): stb_image reads
   the palette entry of every index byte from a 256-entry stack array
   without checking the index against the PLTE length, so a PNG whose
   pixels use indices past its palette decoded to bytes of the process's
   stack. Such pixels now decode as black. */

static uint32_t png_crc(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
    size_t i;
    int k;
    for (i = 0; i < n; i++) {
        c ^= p[i];
        for (k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

static size_t png_chunk(unsigned char *o, const char *type, const unsigned char *data, uint32_t len) {
    uint32_t crc;
    o[0] = (unsigned char)(len >> 24);
    o[1] = (unsigned char)(len >> 16);
    o[2] = (unsigned char)(len >> 8);
    o[3] = (unsigned char)len;
    memcpy(o + 4, type, 4);
    if (len) memcpy(o + 8, data, len);
    crc = png_crc(o + 4, len + 4);
    o[8 + len] = (unsigned char)(crc >> 24);
    o[9 + len] = (unsigned char)(crc >> 16);
    o[10 + len] = (unsigned char)(crc >> 8);
    o[11 + len] = (unsigned char)crc;
    return 12 + len;
}

static void dirty_stack(void) {
    volatile unsigned char junk[1 << 16];
    size_t i;
    for (i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)(0xA5 ^ i);
}

static void test_palette_index_past_palette(void) {
    /* 4 x 1 pixels, 8-bit palette of two entries (red, green), indices
       0, 1, 7, 200 */
    static const unsigned char ihdr[13] = {0, 0, 0, 4, 0, 0, 0, 1, 8, 3, 0, 0, 0};
    static const unsigned char plte[6] = {255, 0, 0, 0, 255, 0};
    unsigned char raw[5] = {0, 0, 1, 7, 200}, png[256], *z;
    size_t n = 8;
    int zlen = 0, k, bad = 0;
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    n += png_chunk(png + n, "IHDR", ihdr, 13);
    n += png_chunk(png + n, "PLTE", plte, 6);
    z = stbi_zlib_compress(raw, 5, &zlen, 8);
    n += png_chunk(png + n, "IDAT", z, (uint32_t)zlen);
    STBIW_FREE(z);
    n += png_chunk(png + n, "IEND", NULL, 0);
    for (k = 0; k < 2; k++) {
        mt_tensor t = {MT_F32, 0, {0}, {0}, NULL, NULL};
        const float *p;
        dirty_stack();
        CHECK(mt_image_load_memory(&t, png, n, 0, MT_RANGE_UNIT) == MT_OK, "a PNG with indices past its palette decodes: %s",
              mt_last_error());
        p = mt_f32(&t);
        if (!p || t.shape[1] != 3 || t.shape[3] != 4) {
            bad = 1;
        } else {
            /* channel c of pixel x is p[c * 4 + x] */
            if (p[0] != 1.0f || p[4] != 0.0f || p[1] != 0.0f || p[5] != 1.0f) bad = 1;    /* red, green */
            if (p[2] || p[6] || p[10] || p[3] || p[7] || p[11]) bad = 1;                  /* black */
        }
        mt_release(&t);
    }
    CHECK(!bad, "pixels whose index is past the palette are black, not stack bytes");
}

/* ---- a JPEG without its quantization tables ---------------------------------
   Found by fuzz_image (two decodes of one file differed; MemorySanitizer
   traced it to stb_image's dequantization table): a frame component naming
   a quantization table no DQT segment defined was decoded with
   uninitialized heap memory. Such files are refused now. */

/* An 8 x 8 RGB baseline JPEG (quality 90), written once by stb_image_write
   (whose JPEG writer is not used at run time: it shifts signed ints). */
static const unsigned char small_jpeg[693] = {
    0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01,
    0x00, 0x01, 0x00, 0x00, 0xff, 0xdb, 0x00, 0x84, 0x00, 0x03, 0x02, 0x02, 0x03, 0x02, 0x02, 0x03,
    0x03, 0x03, 0x03, 0x04, 0x03, 0x03, 0x04, 0x05, 0x08, 0x05, 0x05, 0x04, 0x04, 0x05, 0x0a, 0x07,
    0x07, 0x06, 0x08, 0x0c, 0x0a, 0x0c, 0x0c, 0x0b, 0x0a, 0x0b, 0x0b, 0x0d, 0x0e, 0x12, 0x10, 0x0d,
    0x0e, 0x11, 0x0e, 0x0b, 0x0b, 0x10, 0x16, 0x10, 0x11, 0x13, 0x14, 0x15, 0x15, 0x15, 0x0c, 0x0f,
    0x17, 0x18, 0x16, 0x14, 0x18, 0x12, 0x14, 0x15, 0x14, 0x01, 0x03, 0x04, 0x04, 0x05, 0x04, 0x05,
    0x09, 0x05, 0x05, 0x09, 0x14, 0x0d, 0x0b, 0x0d, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14,
    0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14,
    0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14,
    0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0xff, 0xc0, 0x00, 0x11, 0x08, 0x00,
    0x08, 0x00, 0x08, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01, 0xff, 0xc4, 0x01,
    0xa2, 0x00, 0x00, 0x01, 0x05, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x10, 0x00,
    0x02, 0x01, 0x03, 0x03, 0x02, 0x04, 0x03, 0x05, 0x05, 0x04, 0x04, 0x00, 0x00, 0x01, 0x7d, 0x01,
    0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22,
    0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0, 0x24,
    0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28, 0x29,
    0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a,
    0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a,
    0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a,
    0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8,
    0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6,
    0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2, 0xe3,
    0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9,
    0xfa, 0x01, 0x00, 0x03, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x11, 0x00,
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
    0xfa, 0xff, 0xda, 0x00, 0x0c, 0x03, 0x01, 0x00, 0x02, 0x11, 0x03, 0x11, 0x00, 0x3f, 0x00, 0xca,
    0xb6, 0xd0, 0xb4, 0xbf, 0x04, 0x7c, 0x41, 0xf2, 0xf4, 0x2d, 0x2b, 0x4d, 0xb8, 0xd1, 0x2f, 0x55,
    0x6e, 0x6d, 0x63, 0xd3, 0x34, 0xeb, 0x3b, 0x94, 0x80, 0x1e, 0x0c, 0x78, 0xb6, 0xd3, 0xef, 0xf6,
    0x05, 0x20, 0x80, 0x24, 0xb8, 0x67, 0x23, 0x04, 0xf5, 0xaf, 0x43, 0xfe, 0xdb, 0xff, 0x00, 0xa8,
    0x07, 0xfe, 0x5b, 0xff, 0x00, 0xfe, 0x0f, 0x57, 0x27, 0xfb, 0x3b, 0x7f, 0xcb, 0xaf, 0xe1, 0x5f,
    0x46, 0x57, 0x42, 0x56, 0x56, 0x33, 0xa9, 0x25, 0x39, 0x73, 0x25, 0x6f, 0xeb, 0x5f, 0xbd, 0xeb,
    0x6e, 0x9b, 0x1f, 0xff, 0xd9};

static void test_jpeg_without_quantization_tables(void) {
    unsigned char j[sizeof small_jpeg];
    size_t i, at = 0, len, n = sizeof small_jpeg;
    mt_tensor t = {MT_F32, 0, {0}, {0}, NULL, NULL};
    mt_status s;
    memcpy(j, small_jpeg, n);
    CHECK(mt_image_load_memory(&t, j, n, 0, MT_RANGE_UNIT) == MT_OK, "a JPEG decodes");
    mt_release(&t);
    for (i = 2; i + 3 < n; i++)
        if (j[i] == 0xFF && j[i + 1] == 0xDB) {
            at = i;
            break;
        }
    CHECK(at > 0, "it has a DQT segment");
    if (!at) return;
    len = 2 + (((size_t)j[at + 2] << 8) | j[at + 3]);
    memmove(j + at, j + at + len, n - at - len); /* without it */
    n -= len;
    s = mt_image_load_memory(&t, j, n, 0, MT_RANGE_UNIT);
    CHECK(s == MT_ERR_FORMAT && t.data == NULL, "without its DQT segment it is refused (%s)", mt_status_name(s));
    CHECK(strstr(mt_last_error(), "a JPEG frame uses an undefined quantization table") != NULL, "message: %s",
          mt_last_error());
    mt_release(&t);
}

/* ---- a JPEG whose scans do not cover the frame ------------------------------
   Found by fuzz_image (two decodes of one file differed; MemorySanitizer
   traced it to stb_image's component buffers): a JPEG with a frame header
   and no scan decoded "successfully" to whatever the heap held. stb_image's
   allocations are zeroed now. */

static void dirty_heap(unsigned char fill) {
    void *blocks[64];
    size_t i;
    for (i = 0; i < 64; i++) {
        size_t n = 32 + 97 * i;
        blocks[i] = malloc(n);
        if (blocks[i]) memset(blocks[i], fill, n);
    }
    for (i = 0; i < 64; i++) free(blocks[i]);
}

static void test_jpeg_without_scans(void) {
    unsigned char j[sizeof small_jpeg];
    size_t i, sos = 0, n;
    mt_tensor a = {MT_F32, 0, {0}, {0}, NULL, NULL}, b = a;
    memcpy(j, small_jpeg, sizeof j);
    for (i = 2; i + 1 < sizeof j; i++)
        if (j[i] == 0xFF && j[i + 1] == 0xDA) {
            sos = i;
            break;
        }
    CHECK(sos > 0, "the JPEG has a scan");
    if (!sos) return;
    j[sos + 1] = 0xD9; /* EOI where the scan began: a frame and no scan */
    n = sos + 2;
    dirty_heap(0xA5);
    mt_image_load_memory(&a, j, n, 0, MT_RANGE_UNIT);
    dirty_heap(0x5A);
    mt_image_load_memory(&b, j, n, 0, MT_RANGE_UNIT);
    CHECK(a.data && b.data && mt_same_shape(&a, &b) &&
              memcmp(a.data, b.data, (size_t)mt_numel(&a) * sizeof(float)) == 0,
          "a JPEG without scans decodes the same whatever the heap held before");
    mt_release(&a);
    mt_release(&b);
}

/* ---- a 16-bit PNG and an allocation failure ---------------------------------
   Found by fuzz_image (a decode with a failing allocation leaked): stb_image
   turns 16-bit samples into 8-bit ones in a step that, when its allocation
   fails, loses the 16-bit image. The high byte is now kept by
   mt__image_decode itself, with the same values. */

static void test_png16_out_of_memory(void) {
    /* 2 x 2 RGB, 16 bits per sample, filter 0 on each row */
    static const unsigned char ihdr[13] = {0, 0, 0, 2, 0, 0, 0, 2, 16, 2, 0, 0, 0};
    unsigned char raw[2 * (1 + 2 * 6)], png[512], *z;
    size_t n = 8, i;
    int zlen = 0, ok = 1;
    long k, leaks = 0, live0;
    mt_tensor t = {MT_F32, 0, {0}, {0}, NULL, NULL};
    for (i = 0; i < sizeof raw; i++) raw[i] = (unsigned char)(i % 13 == 0 ? 0 : i * 37 + 11);
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    n += png_chunk(png + n, "IHDR", ihdr, 13);
    z = stbi_zlib_compress(raw, (int)sizeof raw, &zlen, 8);
    n += png_chunk(png + n, "IDAT", z, (uint32_t)zlen);
    STBIW_FREE(z);
    n += png_chunk(png + n, "IEND", NULL, 0);
    mt_clear_error();
    CHECK(mt_image_load_memory(&t, png, n, 0, MT_RANGE_UNIT) == MT_OK && t.shape[1] == 3, "a 16-bit PNG decodes%s",
          mt_last_error());
    if (t.data) {
        int y, x, c;
        for (y = 0; y < 2; y++)
            for (x = 0; x < 2; x++)
                for (c = 0; c < 3; c++) /* the high byte of each big-endian sample, / 255 */
                    if (mt_f32(&t)[(c * 2 + y) * 2 + x] != (float)raw[y * 13 + 1 + (x * 3 + c) * 2] / 255.0f) ok = 0;
    }
    CHECK(ok, "each sample is its high byte / 255");
    mt_release(&t);
    live0 = af_live_now();
    for (k = 1; k < 40; k++) {
        af_arm(k, 0);
        mt_image_load_memory(&t, png, n, 0, MT_RANGE_UNIT);
        af_disarm();
        mt_release(&t);
        if (af_live_now() != live0) leaks++;
        live0 = af_live_now();
    }
    CHECK(leaks == 0, "no allocation failure leaks the image (%ld did)", leaks);
}

/* ---- an allocation failure inside stb_image --------------------------------
   Found by fuzz_image: an image that decodes gave MT_ERR_FORMAT ("damaged or
   unsupported image (stb_image: outofmem)", or "unknown image type" when
   stb_image's JPEG decoder could not be allocated) when an allocation
   failed while decoding; it is MT_ERR_MEMORY now. (Reading the header
   first, stb_image cannot tell that case from a damaged JPEG header: a
   failure there stays MT_ERR_FORMAT, "not a PNG or JPEG image".) */

static void test_decode_out_of_memory_status(void) {
    long k, wrong = 0, failures = 0;
    for (k = 1; k < 60; k++) {
        mt_tensor t = {MT_F32, 0, {0}, {0}, NULL, NULL};
        mt_status s;
        af_arm(k, 0);
        s = mt_image_load_memory(&t, small_jpeg, sizeof small_jpeg, 0, MT_RANGE_UNIT);
        af_disarm();
        if (s != MT_OK) {
            failures++;
            if (s != MT_ERR_MEMORY && !strstr(mt_last_error(), "not a PNG or JPEG image")) wrong++;
        }
        mt_release(&t);
    }
    CHECK(failures > 0 && wrong == 0, "a decode whose allocation fails is MT_ERR_MEMORY (%ld of %ld were not)", wrong,
          failures);
}

/* Found by fuzz_image: an empty first IDAT chunk made stb_image 2.27 add 0
   to its still-NULL data pointer (undefined behaviour, UBSan's "applying
   zero offset to null pointer"). The file (the fuzzer's, 97 bytes) is
   refused before stb_image sees it. */
static void test_png_empty_first_idat(void) {
    static const unsigned char png[] = {
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00,
        0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x02, 0x02, 0x03, 0x00, 0x00, 0x00, 0xf7, 0x38, 0x1e, 0x40, 0x00,
        0x00, 0x00, 0x0c, 0x50, 0x4c, 0x54, 0x45, 0x00, 0x1d, 0x3a, 0x57, 0x74, 0x91, 0xae, 0xcb, 0xe8, 0x05,
        0x22, 0x3f, 0xe1, 0xcb, 0x0b, 0x83, 0x00, 0x00, 0x00, 0x10, 0xff, 0xd8, 0xbc, 0xff, 0xe0, 0x00, 0x10,
        0xff, 0x96, 0x66, 0x60, 0x3c, 0x76, 0xec, 0x00, 0x00, 0xfa, 0xf7, 0x04, 0x84, 0x5f, 0x78, 0x8a, 0xe1,
        0x00, 0x00, 0x00, 0x00, 0x49, 0x44, 0x41, 0x54, 0xae, 0x42, 0x60, 0x82};
    mt_tensor t = {MT_F32, 0, {0}, {0}, NULL, NULL};
    CHECK(sizeof png == 97, "the fuzzer's file");
    CHECK(mt_image_load_memory(&t, png, sizeof png, 0, MT_RANGE_UNIT) == MT_ERR_FORMAT && !t.data &&
              strstr(mt_last_error(), "the first IDAT chunk is empty"),
          "an empty first IDAT chunk is refused: %s", mt_last_error());
}

/* Found by fuzz_pipeline: a make_block function setting a name that is not
   one of its params, when the second of the three arrays holding such names
   could not grow, lost the first one (the block state freed them only when
   all three had grown). */
static mod_status set_extra_fn(mod_block_state *bs) {
    mod_status s;
    af_arm(2, 0); /* the names grow, the values do not */
    s = mod_block_state_set(bs, "scratch", mod_int(1));
    af_disarm();
    return s;
}

static void test_extra_names_out_of_memory(void) {
    mod_block_desc d;
    mod_block *b = NULL;
    mod_state *st = NULL;
    const mod_arg args[] = {{NULL, {0}}};
    long live0 = af_live_now();
    mod_status s;
    memset(&d, 0, sizeof d);
    d.fn = set_extra_fn;
    CHECK(mod_make_block(&b, &d) == MOD_OK, "a make_block block");
    s = mod_block_run(b, args, &st);
    CHECK(s == MOD_ERR_MEMORY && st == NULL && strcmp(mod_last_error(), "out of memory (block TestBlock)") == 0,
          "setting an extra name fails with out of memory: %s", mod_last_error());
    mod_state_free(st);
    mod_block_free(b);
    CHECK(af_live_now() == live0, "nothing is left allocated (%ld blocks)", af_live_now() - live0);
}

int main(void) {
    test_inputs_are_copies();
    test_config_without_default();
    test_validation_out_of_memory();
    test_repr_out_of_memory();
    test_insert_existing_name();
    test_palette_index_past_palette();
    test_jpeg_without_quantization_tables();
    test_jpeg_without_scans();
    test_png16_out_of_memory();
    test_decode_out_of_memory_status();
    test_png_empty_first_idat();
    test_extra_names_out_of_memory();
    return test_finish();
}
