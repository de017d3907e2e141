/* The bad-input catalogue of the README ("Bad input"): every class of bad
   input the libraries meet, with the status and the exact message each
   gives. Every row of the README's table is checked here, word for word. */
#define _POSIX_C_SOURCE 200809L
#include "tests/test.h"
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"
#define MODULAR_IMPLEMENTATION
#include "modular.h"

/* A call, its status and its whole message. */
#define EXPECT_MOD(call, status, message)                                                                    \
    do {                                                                                                     \
        mod_status s_ = (call);                                                                              \
        CHECK(s_ == (status), "%s gives %s (got %s)", #call, mod_status_name(status), mod_status_name(s_));  \
        CHECK_STR(mod_last_error(), message, "%s: the message", #call);                                     \
    } while (0)

#define EXPECT_MT(call, status, message)                                                                     \
    do {                                                                                                     \
        mt_status s_ = (call);                                                                               \
        CHECK(s_ == (status), "%s gives %s (got %s)", #call, mt_status_name(status), mt_status_name(s_));    \
        CHECK_STR(mt_last_error(), message, "%s: the message", #call);                                      \
    } while (0)

/* ---- the blocks ------------------------------------------------------------ */

typedef struct counter {
    int base;
} counter;
static const mod_type counter_type = {"Counter", NULL, NULL};
static const mod_type other_type = {"Other", NULL, NULL};

#define needs_PARAMS(X, S)                                                        \
    X(S, INPUT_REQUIRED, STR, prompt, "str", NONE, "required")                    \
    X(S, INTERMEDIATE_REQUIRED, INT, batch, "int", NONE, "required too")          \
    X(S, INPUT, FLOAT, strength, "float", DEF(0.5), "")                           \
    X(S, COMPONENT, PTR, counter, "Counter", NONE, "set by the caller")           \
    X(S, CONFIG, INT, offset, "", DEF(1), "")                                     \
    X(S, OUTPUT, INT, ran, "int", NONE, "")
MOD_BLOCK(needs, "Needs a prompt, a batch and a counter.") {
    s->ran = 1;
    return MOD_OK;
}

#define make_batch_PARAMS(X, S) X(S, OUTPUT, INT, batch, "int", NONE, "")
MOD_BLOCK(make_batch, "Makes a batch.") {
    s->batch = 2;
    return MOD_OK;
}

#define make_tensor_batch_PARAMS(X, S) X(S, OUTPUT, TENSOR, batch, "Tensor", NONE, "")
MOD_BLOCK(make_tensor_batch, "Makes a tensor named batch.") {
    return mt_zeros(&s->batch, MT_F32, MT_SHAPE(1)) == MT_OK ? MOD_OK : MOD_ERR_TENSOR;
}

#define fails_PARAMS(X, S) X(S, INPUT, INT, code, "int", DEF(0), "")
MOD_BLOCK(fails, "Fails on request.") {
    if (s->code == 1) return mod_fail(s->mod, MOD_ERR_BLOCK, "asked to fail with code %lld", (long long)s->code);
    if (s->code == 2) return MOD_ERR_BLOCK; /* no message */
    return MOD_OK;
}

#define bad_default_PARAMS(X, S) X(S, INPUT_REQUIRED, INT, x, "int", DEF(1), "")
MOD_BLOCK(bad_default, "Required and defaulted.") {
    (void)s;
    return MOD_OK;
}

#define bad_ptr_PARAMS(X, S) X(S, OUTPUT, PTR, obj, "Counter", NONE, "")
MOD_BLOCK(bad_ptr, "A PTR output.") {
    (void)s;
    return MOD_OK;
}

#define reads_batch_PARAMS(X, S) X(S, INTERMEDIATE, INT, batch, "int", NONE, "") X(S, OUTPUT, INT, twice, "int", NONE, "")
MOD_BLOCK(reads_batch, "Reads batch as an int.") {
    s->twice = 2 * s->batch;
    return MOD_OK;
}

static mod_status sets_batch_to_text(mod_block_state *bs) { return mod_block_state_set(bs, "batch", mod_str("two")); }

static mod_status forgets_output(mod_block_state *bs) {
    (void)bs;
    return MOD_OK;
}

static mod_block *leaf(const mod_block_def *def) {
    mod_block *b = NULL;
    return mod_block_new(&b, def) == MOD_OK ? b : NULL;
}

static mod_block *seq(const char *n1, mod_block *b1, const char *n2, mod_block *b2) {
    mod_block *s = NULL;
    mod_sequential_desc d;
    mod_entry e[3] = {{NULL, NULL, NULL, NULL}, {NULL, NULL, NULL, NULL}, {NULL, NULL, NULL, NULL}};
    memset(&d, 0, sizeof d);
    e[0].name = n1;
    e[0].block = b1;
    e[1].name = n2;
    e[1].block = b2;
    d.blocks = e;
    return mod_sequential_new(&s, &d) == MOD_OK ? s : NULL;
}

/* ---- missing values ---------------------------------------------------- */

static void missing(void) {
    mod_block *b = leaf(&needs_def);
    mod_pipeline *p = NULL;
    mod_state *st = NULL;
    counter c = {1};
    mod_pipeline_new(&p, b);
    {
        const mod_arg args[] = {{"batch", mod_int(1)}, {NULL, {0}}};
        EXPECT_MOD(mod_pipeline_call(p, args, &st), MOD_ERR_MISSING, "Required input 'prompt' is missing (block needs)");
    }
    {
        const mod_arg args[] = {{"prompt", mod_none()}, {"batch", mod_int(1)}, {NULL, {0}}};
        EXPECT_MOD(mod_pipeline_call(p, args, &st), MOD_ERR_MISSING, "Required input 'prompt' is missing (block needs)");
    }
    {
        const mod_arg args[] = {{"prompt", mod_str("a cat")}, {NULL, {0}}};
        EXPECT_MOD(mod_pipeline_call(p, args, &st), MOD_ERR_MISSING,
                   "Required intermediate input 'batch' is missing (block needs)");
    }
    {
        const mod_arg args[] = {{"prompt", mod_str("a cat")}, {"batch", mod_int(1)}, {NULL, {0}}};
        EXPECT_MOD(mod_pipeline_call(p, args, &st), MOD_ERR_MISSING,
                   "Component 'counter' is not set; give it with mod_pipeline_set_component (block needs)");
        CHECK(st == NULL, "a failed call gives no state");
        mod_pipeline_set_component(p, "counter", mod_ptr(&c, &counter_type));
        CHECK(mod_pipeline_call(p, args, &st) == MOD_OK, "with everything given the call works");
        mod_state_free(st);
        st = NULL;
    }
    mod_pipeline_free(p);
    mod_block_free(b);
    {
        const mod_output_param outs[] = {{"made", NULL, NULL, NULL}, {NULL, NULL, NULL, NULL}};
        mod_block_desc d;
        memset(&d, 0, sizeof d);
        d.intermediate_outputs = outs;
        d.fn = forgets_output;
        b = NULL;
        mod_make_block(&b, &d);
        mod_pipeline_new(&p, b);
        EXPECT_MOD(mod_pipeline_call(p, NULL, &st), MOD_ERR_MISSING,
                   "Intermediate output 'made' is missing in block state (block TestBlock)");
        mod_pipeline_free(p);
        mod_block_free(b);
    }
    {
        mod_pipeline *none = NULL;
        EXPECT_MOD(mod_pipeline_new(&none, NULL), MOD_ERR_ARGUMENT, "mod_pipeline_new: out and blocks are required");
        EXPECT_MOD(mod_pipeline_call(NULL, NULL, &st), MOD_ERR_ARGUMENT, "mod_pipeline_call: pipeline and out are required");
    }
}

/* ---- values of the wrong kind ------------------------------------------- */

static void wrong_kind(void) {
    mod_block *b = leaf(&needs_def), *mk = NULL, *rd = leaf(&reads_batch_def), *sq;
    mod_pipeline *p = NULL;
    mod_state *st = NULL;
    counter c = {1};
    mod_pipeline_new(&p, b);
    {
        const mod_arg args[] = {{"prompt", mod_int(3)}, {"batch", mod_int(1)}, {NULL, {0}}};
        EXPECT_MOD(mod_pipeline_call(p, args, &st), MOD_ERR_KIND, "argument 'prompt' must be str, got int (block needs)");
    }
    {
        const mod_arg args[] = {{"prompt", mod_str("a")}, {"batch", mod_float(1.5)}, {NULL, {0}}};
        EXPECT_MOD(mod_pipeline_call(p, args, &st), MOD_ERR_KIND, "argument 'batch' must be int, got float (block needs)");
    }
    EXPECT_MOD(mod_pipeline_set_component(p, "counter", mod_int(3)), MOD_ERR_KIND,
               "component 'counter' must be object, got int");
    EXPECT_MOD(mod_pipeline_set_component(p, "counter", mod_ptr(&c, &other_type)), MOD_ERR_KIND,
               "component 'counter' must be a Counter, got a Other");
    EXPECT_MOD(mod_pipeline_set_config(p, "offset", mod_str("1")), MOD_ERR_KIND, "config 'offset' must be int, got str");
    mod_pipeline_free(p);
    /* a value a block makes at run time, of a kind the next block cannot read */
    {
        const mod_output_param outs[] = {{"batch", NULL, NULL, NULL}, {NULL, NULL, NULL, NULL}};
        mod_block_desc d;
        memset(&d, 0, sizeof d);
        d.intermediate_outputs = outs;
        d.fn = sets_batch_to_text;
        mod_make_block(&mk, &d);
        sq = seq("make", mk, "read", rd);
        mod_pipeline_new(&p, sq);
        EXPECT_MOD(mod_pipeline_call(p, NULL, &st), MOD_ERR_KIND, "'batch' must be int, got str (block read)");
        mod_pipeline_free(p);
        mod_block_free(sq);
    }
    mod_block_free(mk);
    mod_block_free(rd);
    mod_block_free(b);
}

/* ---- unknown names and duplicates ----------------------------------------- */

static void unknown_names(void) {
    mod_block *b = leaf(&needs_def), *mk = leaf(&make_batch_def), *f = leaf(&fails_def), *sq = seq("make", mk, "use", b);
    mod_block *out = NULL;
    mod_pipeline *p = NULL;
    mod_state *st = NULL;
    mod_value outs[1];
    const char *const bad_out[] = {"nope", NULL};
    mod_pipeline_new(&p, b);
    {
        const mod_arg args[] = {{"prompt", mod_str("x")}, {"batch", mod_int(1)}, {"promt", mod_str("typo")}, {NULL, {0}}};
        EXPECT_MOD(mod_pipeline_call(p, args, &st), MOD_ERR_UNKNOWN,
                   "unknown argument 'promt'; this pipeline takes: prompt, strength, batch");
    }
    {
        const mod_arg args[] = {{"prompt", mod_str("x")}, {"prompt", mod_str("y")}, {NULL, {0}}};
        EXPECT_MOD(mod_pipeline_call(p, args, &st), MOD_ERR_DUPLICATE, "argument 'prompt' is given twice");
    }
    EXPECT_MOD(mod_pipeline_set_component(p, "unet", mod_int(1)), MOD_ERR_UNKNOWN,
               "unknown component 'unet'; this pipeline has: counter");
    EXPECT_MOD(mod_pipeline_set_config(p, "steps", mod_int(1)), MOD_ERR_UNKNOWN,
               "unknown config 'steps'; this pipeline has: offset");
    EXPECT_MOD(mod_pipeline_call_outputs(p, NULL, bad_out, outs), MOD_ERR_UNKNOWN,
               "unknown output 'nope': no block of this pipeline uses that name");
    mod_pipeline_free(p);
    mod_pipeline_new(&p, sq);
    {
        const mod_arg args[] = {{"prompt", mod_str("x")}, {"batch", mod_int(1)}, {NULL, {0}}};
        EXPECT_MOD(mod_pipeline_call(p, args, &st), MOD_ERR_UNKNOWN,
                   "argument 'batch' is made by block 'make' and is not an input of this pipeline");
    }
    mod_pipeline_free(p);
    EXPECT_MOD(mod_block_pop(sq, "missing", &out), MOD_ERR_UNKNOWN,
               "SequentialPipelineBlocks has no sub-block 'missing' (path 'missing')");
    EXPECT_MOD(mod_block_replace(sq, "use.deeper", f), MOD_ERR_UNKNOWN,
               "needs has no sub-block 'deeper' (path 'use.deeper')");
    EXPECT_MOD(mod_block_get_workflow(sq, "text2image", &out), MOD_ERR_UNKNOWN,
               "SequentialPipelineBlocks declares no workflows");
    CHECK(out == NULL && mod_block_find(sq, "nope") == NULL, "nothing is found, nothing is given");
    mod_block_free(sq);
    mod_block_free(mk);
    mod_block_free(f);
    mod_block_free(b);
}

/* ---- indices, definitions, validation ----------------------------------- */

static void bad_structure(void) {
    mod_block *mk = leaf(&make_batch_def), *n = leaf(&needs_def), *f = leaf(&fails_def), *b = NULL, *sq = seq("make", mk, "use", n);
    mod_block *mt = leaf(&make_tensor_batch_def), *rd = leaf(&reads_batch_def);
    mod_pipeline *p = NULL;
    EXPECT_MOD(mod_block_insert(sq, 5, "late", f), MOD_ERR_INDEX,
               "mod_block_insert: index 5 out of range [0, 2] for SequentialPipelineBlocks");
    EXPECT_MOD(mod_block_pop_at(sq, -1, NULL), MOD_ERR_INDEX,
               "mod_block_pop_at: index -1 out of range for SequentialPipelineBlocks with 2 sub-blocks");
    EXPECT_MOD(mod_block_replace_at(sq, 2, f), MOD_ERR_INDEX,
               "mod_block_replace_at: index 2 out of range for SequentialPipelineBlocks with 2 sub-blocks");
    EXPECT_MOD(mod_block_insert(sq, 0, "self", sq), MOD_ERR_ARGUMENT, "mod_block_insert: 'self' would contain itself");
    EXPECT_MOD(mod_block_new(&b, &bad_default_def), MOD_ERR_DEFINITION,
               "block bad_default: param 'x' is both required and has a default");
    EXPECT_MOD(mod_block_new(&b, &bad_ptr_def), MOD_ERR_DEFINITION,
               "block bad_ptr: PTR param 'obj' can only be an input or a component (use VALUE)");
    {
        mod_sequential_desc d;
        mod_entry e[3] = {{"a", NULL, NULL, NULL}, {"a", NULL, NULL, NULL}, {NULL, NULL, NULL, NULL}};
        memset(&d, 0, sizeof d);
        e[0].block = mk;
        e[1].block = f;
        d.blocks = e;
        EXPECT_MOD(mod_sequential_new(&b, &d), MOD_ERR_DUPLICATE, "SequentialPipelineBlocks: two sub-blocks are named 'a'");
    }
    {
        mod_auto_desc d;
        mod_entry e[3] = {{"a", NULL, NULL, NULL}, {"b", NULL, NULL, NULL}, {NULL, NULL, NULL, NULL}};
        memset(&d, 0, sizeof d);
        e[0].block = mk;
        e[1].block = f;
        d.blocks = e;
        EXPECT_MOD(mod_auto_new(&b, &d), MOD_ERR_DEFINITION,
                   "AutoPipelineBlocks: two default sub-blocks ('b' and another); at most one may have no trigger");
        e[0].trigger = "image";
        e[1].trigger = "image";
        EXPECT_MOD(mod_auto_new(&b, &d), MOD_ERR_DUPLICATE, "AutoPipelineBlocks: trigger 'image' selects both 'a' and 'b'");
        e[1].trigger = NULL;
        CHECK(mod_auto_new(&b, &d) == MOD_OK, "an auto block with a trigger nobody passes");
        EXPECT_MOD(mod_pipeline_new(&p, b), MOD_ERR_VALIDATION,
                   "AutoPipelineBlocks: trigger 'image' is neither an input of the pipeline nor made by any block");
        mod_block_free(b);
        b = NULL;
    }
    {
        mod_entry body[2] = {{"body", NULL, NULL, NULL}, {NULL, NULL, NULL, NULL}};
        body[0].block = f;
        EXPECT_MOD(mod_loop_new(&b, &fails_def, body), MOD_ERR_DEFINITION,
                   "mod_loop_new: fails is not a MOD_LOOP definition");
    }
    {
        mod_auto_desc d;
        mod_entry e[3] = {{"with_batch", NULL, NULL, "image"}, {"plain", NULL, NULL, NULL}, {NULL, NULL, NULL, NULL}};
        mod_block *au = NULL;
        memset(&d, 0, sizeof d);
        e[0].block = mk;
        e[1].block = f;
        d.blocks = e;
        mod_auto_new(&au, &d);
        CHECK(seq("maybe", au, "use", n) == NULL, "a workflow that misses a required value is refused");
        CHECK_STR(mod_last_error(),
                  "SequentialPipelineBlocks: block 'use' requires intermediate 'batch', which no earlier block makes when "
                  "the inputs are [] and which is not an input of the pipeline",
                  "the message names the block, the value and the workflow");
        mod_block_free(au);
    }
    CHECK(seq("make", mt, "read", rd) == NULL, "a reader that cannot hold what its producer makes is refused");
    CHECK_STR(mod_last_error(), "SequentialPipelineBlocks: block 'read' reads 'batch' as int, but block 'make' makes it as Tensor",
              "the message names both blocks and both kinds");
    mod_block_free(sq);
    mod_block_free(mk);
    mod_block_free(n);
    mod_block_free(f);
    mod_block_free(mt);
    mod_block_free(rd);
}

static void block_failures(void) {
    mod_block *f = leaf(&fails_def), *mk = leaf(&make_batch_def), *inner = seq("make", mk, "step", f);
    mod_block *outer = seq("prepare", mk, "denoise", inner);
    mod_pipeline *p = NULL;
    mod_state *st = NULL;
    mod_pipeline_new(&p, outer);
    {
        const mod_arg args[] = {{"code", mod_int(1)}, {NULL, {0}}};
        EXPECT_MOD(mod_pipeline_call(p, args, &st), MOD_ERR_BLOCK, "asked to fail with code 1 (block denoise.step)");
    }
    {
        const mod_arg args[] = {{"code", mod_int(2)}, {NULL, {0}}};
        EXPECT_MOD(mod_pipeline_call(p, args, &st), MOD_ERR_BLOCK,
                   "block returned MOD_ERR_BLOCK without a message (block denoise.step)");
    }
    mod_pipeline_free(p);
    mod_block_free(outer);
    mod_block_free(inner);
    mod_block_free(mk);
    mod_block_free(f);
}

/* ---- tensors: shapes, dtypes, NaN and Inf -------------------------------- */

static void tensors(void) {
    mt_tensor a = {MT_F32, 0, {0}, {0}, NULL, NULL}, b = a, c = a, h = a, o = a, img = a;
    float *f;
    mt_ones(&a, MT_F32, MT_SHAPE(2, 3));
    mt_ones(&b, MT_F32, MT_SHAPE(4));
    mt_zeros(&h, MT_F16, MT_SHAPE(2, 3));
    mt_zeros(&o, MT_F32, MT_SHAPE(3, 3));
    EXPECT_MT(mt_add(&c, &a, &b), MT_ERR_SHAPE,
              "mt_add: shapes do not broadcast: a [2, 3] and b [4] (dim -1 of the result: 3 vs 4)");
    EXPECT_MT(mt_add(&o, &a, &a), MT_ERR_SHAPE, "mt_add: preallocated output is float32 [3, 3], result is float32 [2, 3]");
    EXPECT_MT(mt_add(&c, &a, &h), MT_ERR_DTYPE,
              "mt_add: b is float16; this kernel computes in float32 (convert with mt_to_dtype)");
    EXPECT_MT(mt_view_reshape(&c, &a, MT_SHAPE(4, 2)), MT_ERR_SHAPE, "mt_view_reshape: cannot reshape [2, 3] (6 elements) to [4, 2]");
    EXPECT_MT(mt_zeros(&c, MT_F32, MT_SHAPE(-1, 2)), MT_ERR_SHAPE, "mt_zeros: shape[0] = -1 is negative");
    CHECK(c.data == NULL, "a failed call leaves its output as it was");
    /* NaN and Inf: kernels carry them as PyTorch does; writing an image refuses them */
    mt_zeros(&img, MT_F32, MT_SHAPE(1, 3, 4, 4));
    f = mt_f32(&img);
    f[0] = NAN;
    f[5] = INFINITY;
    CHECK(mt_add(&c, &img, &img) == MT_OK && mt_f32(&c)[0] != mt_f32(&c)[0] && mt_f32(&c)[5] == INFINITY,
          "kernels propagate NaN and Inf");
    EXPECT_MT(mt_image_save_png("build/bad_inputs_nan.png", &img, 0, MT_RANGE_SIGNED), MT_ERR_ARGUMENT,
              "mt_image_save_png: image 0 of [1, 3, 4, 4] has 2 non-finite values (NaN or Inf); nothing was written to "
              "'build/bad_inputs_nan.png'");
    mt_release(&a);
    mt_release(&b);
    mt_release(&c);
    mt_release(&h);
    mt_release(&o);
    mt_release(&img);
}

/* ---- images: sizes, channels, paths, malformed files ---------------------- */

static void images(void) {
    static const unsigned char huge_png[33] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                                               0, 0, 0x27, 0x10, 0, 0, 0x27, 0x10, 8, 2, 0, 0, 0, 0, 0, 0, 0};
    mt_tensor t = {MT_F32, 0, {0}, {0}, NULL, NULL}, img = t, pre = t;
    mt_zeros(&img, MT_F32, MT_SHAPE(1, 3, 4, 4));
    EXPECT_MT(mt_image_load_memory(&t, huge_png, sizeof huge_png, 0, MT_RANGE_UNIT), MT_ERR_UNSUPPORTED,
              "mt_image_load_memory: <memory> is 10000 x 10000 pixels, over the limit of 67108864 (MT_IMAGE_MAX_PIXELS)");
    EXPECT_MT(mt_image_load_memory(&t, huge_png, 20, 0, MT_RANGE_UNIT), MT_ERR_FORMAT,
              "mt_image_load_memory: cannot decode <memory>: a PNG chunk runs past the end of the file");
    EXPECT_MT(mt_image_load_memory(&t, "GIF89a....", 10, 0, MT_RANGE_UNIT), MT_ERR_FORMAT,
              "mt_image_load_memory: cannot decode <memory>: not a PNG or JPEG image, or a damaged one (stb_image: "
              "unknown image type)");
    EXPECT_MT(mt_image_load_memory(&t, huge_png, sizeof huge_png, 7, MT_RANGE_UNIT), MT_ERR_ARGUMENT,
              "mt_image_load_memory: channels = 7, expected 0 (as stored), 1, 2, 3 or 4");
    EXPECT_MT(mt_image_load(&t, "build/no_such_image.png", 0, MT_RANGE_UNIT), MT_ERR_IO,
              "mt_image_load: cannot open 'build/no_such_image.png': No such file or directory");
    EXPECT_MT(mt_image_save_png("build/no_such_dir/x.png", &img, 0, MT_RANGE_SIGNED), MT_ERR_IO,
              "mt_image_save_png: cannot open 'build/no_such_dir/x.png' for writing: No such file or directory");
    EXPECT_MT(mt_image_save_png("build/bad_inputs.png", &img, 3, MT_RANGE_SIGNED), MT_ERR_ARGUMENT,
              "mt_image_save_png: index 3 out of range for 1 images");
    /* an image of another size than a preallocated output */
    CHECK(mt_image_save_png("build/bad_inputs.png", &img, 0, MT_RANGE_SIGNED) == MT_OK, "a 4 x 4 image is written");
    mt_zeros(&pre, MT_F32, MT_SHAPE(1, 3, 8, 8));
    EXPECT_MT(mt_image_load(&pre, "build/bad_inputs.png", 3, MT_RANGE_SIGNED), MT_ERR_SHAPE,
              "mt_image_load: preallocated output is float32 [1, 3, 8, 8], result is float32 [1, 3, 4, 4]");
    remove("build/bad_inputs.png");
    CHECK(t.data == NULL, "no failed load gave a tensor");
    mt_release(&img);
    mt_release(&pre);
}

/* ---- safetensors ------------------------------------------------------------ */

/* a file from its header text and data bytes */
static size_t st_file(unsigned char *buf, const char *header, const char *data, size_t data_n) {
    size_t h = strlen(header), i;
    for (i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, header, h);
    memcpy(buf + 8 + h, data, data_n);
    return 8 + h + data_n;
}

static void safetensors(void) {
    unsigned char f[512];
    size_t n;
    mt_safetensors *st = (mt_safetensors *)&st;
    mt_tensor t = {MT_F32, 0, {0}, {0}, NULL, NULL}, pre = t, a = t;
    const char *names[1] = {"x"};
    const mt_tensor *ts[1];
    EXPECT_MT(mt_safetensors_open(&st, "build/no_such_file.safetensors"), MT_ERR_IO,
              "mt_safetensors_open: cannot open 'build/no_such_file.safetensors': No such file or directory");
    CHECK(st == NULL, "a failed open sets the handle to NULL");
    EXPECT_MT(mt_safetensors_open_memory(&st, "\x02\0\0", 3), MT_ERR_FORMAT,
              "mt_safetensors_open_memory: <memory>: file is 3 bytes, too short for the 8-byte header length");
    EXPECT_MT(mt_safetensors_open_memory(&st, "\xff\xff\xff\xff\xff\xff\xff\xff{}", 10), MT_ERR_FORMAT,
              "mt_safetensors_open_memory: <memory>: header length 18446744073709551615 exceeds the limit of 100000000 bytes");
    EXPECT_MT(mt_safetensors_open_memory(&st, "\x10\0\0\0\0\0\0\0{}", 10), MT_ERR_FORMAT,
              "mt_safetensors_open_memory: <memory>: header length 16 runs past the end of the file (2 bytes after the "
              "length field)");
    n = st_file(f, "[]", "", 0);
    EXPECT_MT(mt_safetensors_open_memory(&st, f, n), MT_ERR_FORMAT,
              "mt_safetensors_open_memory: <memory>: header is not a JSON object: it must begin with '{', not 0x5b");
    n = st_file(f, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", "", 0);
    EXPECT_MT(mt_safetensors_open_memory(&st, f, n), MT_ERR_FORMAT,
              "mt_safetensors_open_memory: <memory>: header is not valid JSON: unexpected end of the header at header offset 53");
    n = st_file(f, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "abcd", 4);
    EXPECT_MT(mt_safetensors_open_memory(&st, f, n), MT_ERR_FORMAT,
              "mt_safetensors_open_memory: <memory>: tensor 'a': data_offsets [0, 8] reach past the end of the data section "
              "(4 bytes)");
    n = st_file(f, "{}", "x", 1);
    EXPECT_MT(mt_safetensors_open_memory(&st, f, n), MT_ERR_FORMAT,
              "mt_safetensors_open_memory: <memory>: bytes [0, 1) of the data section belong to no tensor (trailing data "
              "after an empty header)");
    n = st_file(f, "{\"a\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "abcd", 4);
    CHECK(mt_safetensors_open_memory(&st, f, n) == MT_OK, "a file with an I32 tensor opens");
    EXPECT_MT(mt_safetensors_get(st, "a", &t), MT_ERR_DTYPE,
              "mt_safetensors_get: <memory>: tensor 'a' has dtype I32; only F32, F16, BF16 and I64 can be loaded");
    EXPECT_MT(mt_safetensors_get(st, "b", &t), MT_ERR_ARGUMENT, "mt_safetensors_get: <memory>: no tensor named 'b'");
    mt_safetensors_close(st);
    n = st_file(f, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "abcd", 4);
    mt_safetensors_open_memory(&st, f, n);
    mt_zeros(&pre, MT_F32, MT_SHAPE(2));
    EXPECT_MT(mt_safetensors_get(st, "a", &pre), MT_ERR_SHAPE,
              "mt_safetensors_get: preallocated output is float32 [2], result is float32 [1]");
    mt_safetensors_close(st);
    mt_ones(&a, MT_F32, MT_SHAPE(2));
    ts[0] = &a;
    EXPECT_MT(mt_safetensors_save("build/no_such_dir/m.safetensors", 1, names, ts, 0, NULL), MT_ERR_IO,
              "mt_safetensors_save: cannot create 'build/no_such_dir/m.safetensors': No such file or directory");
    CHECK(t.data == NULL, "no failed get gave a tensor");
    mt_release(&pre);
    mt_release(&a);
}

/* ---- schedulers ------------------------------------------------------------- */

static void schedulers(void) {
    mt_scheduler_config cfg;
    mt_scheduler s;
    int t0 = -1, count = -1;
    memset(&cfg, 0, sizeof cfg);
    EXPECT_MT(mt_scheduler_init(&s, &cfg), MT_ERR_ARGUMENT,
              "mt_scheduler_init: config.kind 0 is not a scheduler (set MT_SCHEDULER_EULER, ...)");
    cfg.kind = MT_SCHEDULER_DDIM;
    cfg.num_train_timesteps = -5;
    EXPECT_MT(mt_scheduler_init(&s, &cfg), MT_ERR_ARGUMENT, "mt_scheduler_init: num_train_timesteps -5 outside [2, 1000000]");
    cfg.num_train_timesteps = 0;
    cfg.beta_start = NAN;
    EXPECT_MT(mt_scheduler_init(&s, &cfg), MT_ERR_ARGUMENT,
              "mt_scheduler_init: beta_start nan and beta_end 0.02 must lie in (0, 1)");
    cfg.beta_start = 0;
    cfg.beta_schedule = "cubic";
    EXPECT_MT(mt_scheduler_init(&s, &cfg), MT_ERR_ARGUMENT,
              "mt_scheduler_init: unknown beta_schedule \"cubic\" (expected \"linear\", \"scaled_linear\" or "
              "\"squaredcos_cap_v2\")");
    cfg.beta_schedule = NULL;
    cfg.prediction_type = "x0";
    EXPECT_MT(mt_scheduler_init(&s, &cfg), MT_ERR_ARGUMENT,
              "mt_scheduler_init: unknown prediction_type \"x0\" (expected \"epsilon\", \"v_prediction\" or \"sample\")");
    cfg.prediction_type = NULL;
    CHECK(mt_scheduler_init(&s, &cfg) == MT_OK, "a DDIM scheduler with the defaults");
    EXPECT_MT(mt_scheduler_set_timesteps(&s, 0), MT_ERR_ARGUMENT,
              "mt_scheduler_set_timesteps: num_inference_steps 0 outside [1, num_train_timesteps = 1000]");
    EXPECT_MT(mt_scheduler_set_timesteps(&s, 2000), MT_ERR_ARGUMENT,
              "mt_scheduler_set_timesteps: num_inference_steps 2000 outside [1, num_train_timesteps = 1000]");
    CHECK(mt_scheduler_set_timesteps(&s, 10) == MT_OK, "ten steps");
    EXPECT_MT(mt_scheduler_img2img_timesteps(&s, 1.5, &t0, &count), MT_ERR_ARGUMENT,
              "mt_scheduler_img2img_timesteps: strength 1.5 outside [0, 1]");
    EXPECT_MT(mt_scheduler_img2img_timesteps(&s, -0.1, &t0, &count), MT_ERR_ARGUMENT,
              "mt_scheduler_img2img_timesteps: strength -0.1 outside [0, 1]");
    EXPECT_MT(mt_scheduler_img2img_timesteps(&s, NAN, &t0, &count), MT_ERR_ARGUMENT,
              "mt_scheduler_img2img_timesteps: strength nan outside [0, 1]");
    CHECK(t0 == -1 && count == -1, "a refused strength writes nothing");
    mt_scheduler_free(&s);
}

int main(void) {
    missing();
    wrong_kind();
    unknown_names();
    bad_structure();
    block_failures();
    tensors();
    images();
    safetensors();
    schedulers();
    return test_finish();
}
