/* The block system: the seeds' write-back rules, the three states of a slot,
   composition, editing, validation, errors, threads. */
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"
#define MODULAR_IMPLEMENTATION
#include "modular.h"
#include "tests/test.h"

#include <pthread.h>

#define NO_DEFAULT {MOD_ABSENT, 0, 0, NULL, NULL, NULL}
#define IN(name) {name, NULL, NO_DEFAULT, 0, NULL, NULL}
#define IN_END {NULL, NULL, NO_DEFAULT, 0, NULL, NULL}
#define OUT(name) {name, NULL, NULL, NULL}
#define OUT_END {NULL, NULL, NULL, NULL}
#define ENTRY_END {NULL, NULL, NULL, NULL}

static int contains(const char *hay, const char *needle) { return hay && needle && strstr(hay, needle) != NULL; }

/* ---- typed blocks ---------------------------------------------------- */

/* Changes everything it can: an input, an intermediate, an output. */
#define rules_PARAMS(X, S)                                                     \
    X(S, INPUT, INT, seed, "int", NONE, "an input")                            \
    X(S, INPUT, TENSOR, image, "Tensor", NONE, "an input tensor")              \
    X(S, INTERMEDIATE, INT, count, "int", NONE, "an intermediate input")       \
    X(S, INTERMEDIATE, INT, untouched, "int", NONE, "read, not changed")       \
    X(S, OUTPUT, INT, made, "int", NONE, "an intermediate output")

MOD_BLOCK(rules, "Exercises the write-back rules.") {
    s->seed = 999;
    if (s->image.data) {
        float *p = mt_f32(&s->image);
        p[0] = -1000.0f; /* in place, on the block's copy */
    }
    s->count += 10;
    s->made = s->seed + s->count;
    return MOD_OK;
}

/* Three states and defaults. */
#define states_PARAMS(X, S)                                                         \
    X(S, INPUT, INT, steps, "int", DEF(50), "has a default")                        \
    X(S, INPUT, STR, name, "str", DEF("anon"), "a string with a default")           \
    X(S, OUTPUT, INT, steps_seen, "int", NONE, "")                                  \
    X(S, OUTPUT, INT, steps_set, "int", NONE, "1 when steps is set")                \
    X(S, OUTPUT, STR, name_seen, "str", NONE, "")

MOD_BLOCK(states, "Reports what it sees.") {
    s->steps_seen = s->steps;
    s->steps_set = MOD_IS_SET(s, steps);
    s->name_seen = s->name ? s->name : "(none)";
    return MOD_OK;
}

#define needs_PARAMS(X, S)                                                    \
    X(S, INPUT_REQUIRED, STR, prompt, "str", NONE, "required")                \
    X(S, INTERMEDIATE_REQUIRED, INT, batch, "int", NONE, "required too")      \
    X(S, OUTPUT, INT, ran, "int", NONE, "")

static int needs_runs;
MOD_BLOCK(needs, "Needs a prompt and a batch.") {
    needs_runs++;
    s->ran = 1;
    return MOD_OK;
}

#define make_batch_PARAMS(X, S) X(S, OUTPUT, INT, batch, "int", NONE, "")
MOD_BLOCK(make_batch, "Makes a batch.") {
    s->batch = 3;
    return MOD_OK;
}

#define make_tensor_batch_PARAMS(X, S) X(S, OUTPUT, TENSOR, batch, "Tensor", NONE, "")
MOD_BLOCK(make_tensor_batch, "Makes a tensor named batch.") {
    return mt_zeros(&s->batch, MT_F32, MT_SHAPE(1)) == MT_OK ? MOD_OK : MOD_ERR_TENSOR;
}

#define fails_PARAMS(X, S) X(S, INPUT, INT, code, "int", DEF(0), "")
static int fails_runs;
MOD_BLOCK(fails, "Fails on request.") {
    fails_runs++;
    if (s->code) return mod_fail(s->mod, MOD_ERR_BLOCK, "asked to fail with code %lld", (long long)s->code);
    return MOD_OK;
}

#define bad_default_PARAMS(X, S) X(S, INPUT_REQUIRED, INT, x, "int", DEF(1), "required and defaulted")
MOD_BLOCK(bad_default, "Required with a default.") {
    (void)s;
    return MOD_OK;
}


/* ---- more definitions ------------------------------------------------ */

/* Two branches declaring `frames` with different defaults (diffusers #14132). */
#define branch_a_PARAMS(X, S)                                        \
    X(S, INPUT, INT, frames, "int", DEF(189), "")                    \
    X(S, INPUT_REQUIRED, STR, action, "str", NONE, "selects a")       \
    X(S, OUTPUT, INT, frames_a, "int", NONE, "")
MOD_BLOCK(branch_a, "Uses 189 frames by default.") {
    s->frames_a = s->frames;
    return MOD_OK;
}
#define branch_b_PARAMS(X, S)                                        \
    X(S, INPUT, INT, frames, "int", NONE, "")                        \
    X(S, INPUT_REQUIRED, STR, action2, "str", NONE, "")               \
    X(S, OUTPUT, INT, frames_b, "int", NONE, "")                     \
    X(S, OUTPUT, INT, frames_b_set, "int", NONE, "")
MOD_BLOCK(branch_b, "No default for frames.") {
    s->frames_b = s->frames;
    s->frames_b_set = MOD_IS_SET(s, frames);
    return MOD_OK;
}

/* Components and configs as rows. */
typedef struct counter {
    int base;
} counter;
static int counters_alive;
static void counter_destroy(void *p) {
    counters_alive--;
    free(p);
}
static const mod_type counter_type = {"Counter", counter_destroy, NULL};
static mod_status counter_create(const char *config, mod_value *out) {
    counter *c = (counter *)malloc(sizeof *c);
    if (!c) return MOD_ERR_MEMORY;
    c->base = atoi(config);
    counters_alive++;
    return mod_value_own_ptr(out, c, &counter_type);
}
#define use_counter_PARAMS(X, S)                                                       \
    X(S, COMPONENT, PTR, counter, "Counter", CREATE(counter_create, "40"), "counts")   \
    X(S, CONFIG, INT, offset, "", DEF(2), "added")                                     \
    X(S, OUTPUT, INT, total, "int", NONE, "")
MOD_BLOCK(use_counter, "Reads a component and a config.") {
    s->total = ((counter *)s->counter)->base + s->offset;
    return MOD_OK;
}

/* A typed loop whose body reads the iteration variables. */
#define steps_loop_PARAMS(X, S)                                   \
    X(S, INPUT_REQUIRED, INT, num_steps, "int", NONE, "")          \
    X(S, OUTPUT, INT, loops_done, "int", NONE, "")
MOD_LOOP(steps_loop, "Counts down timesteps.") {
    int64_t i;
    for (i = 0; i < s->num_steps; i++) {
        mod_iter it = {0, 0.0, NULL};
        it.i = i;
        it.t = 1000.0 - 100.0 * (double)i;
        MOD_TRY(mod_loop_step(s->mod, &it));
    }
    s->loops_done = s->num_steps;
    return MOD_OK;
}
#define accumulate_PARAMS(X, S)                                       \
    X(S, MODIFIED, FLOAT, acc, "float", NONE, "sum of i * t")         \
    X(S, OUTPUT, INT, last_i, "int", NONE, "")
MOD_BLOCK(accumulate, "acc += i * t") {
    const mod_iter *it = mod_block_state_iter(s->mod);
    s->acc += (double)it->i * it->t;
    s->last_i = it->i;
    return MOD_OK;
}

/* kwargs groups */
#define tagger_PARAMS(X, S)                                                       \
    X(S, KW(OUTPUT, guider_inputs), INT, cond, "int", NONE, "")                   \
    X(S, KW(OUTPUT, guider_inputs), INT, uncond, "int", NONE, "")                 \
    X(S, OUTPUT, INT, other, "int", NONE, "")
MOD_BLOCK(tagger, "Tags two outputs.") {
    s->cond = 1;
    s->uncond = 2;
    s->other = 3;
    return MOD_OK;
}
#define collector_PARAMS(X, S)                                                    \
    X(S, KW(INTERMEDIATE, guider_inputs), KWARGS, fields, "", NONE, "every guider input") \
    X(S, OUTPUT, INT, n_fields, "int", NONE, "")                                  \
    X(S, OUTPUT, INT, sum_fields, "int", NONE, "")
MOD_BLOCK(collector, "Collects a kwargs group.") {
    int64_t i;
    s->n_fields = mod_dict_len(&s->fields);
    s->sum_fields = 0;
    for (i = 0; i < s->n_fields; i++) s->sum_fields += mod_dict_at(&s->fields, i)->i;
    return mod_dict_set(&s->fields, "cond", mod_int(100));
}

/* ---- helpers --------------------------------------------------------- */

static mod_block *leaf(const mod_block_def *def) {
    mod_block *b = NULL;
    return mod_block_new(&b, def) == MOD_OK ? b : NULL;
}

static mod_block *seq2(const char *n1, mod_block *b1, const char *n2, mod_block *b2) {
    mod_block *s = NULL;
    mod_sequential_desc d = {0};
    mod_entry e[3] = {ENTRY_END, ENTRY_END, ENTRY_END};
    e[0].name = n1;
    e[0].block = b1;
    e[1].name = n2;
    e[1].block = b2;
    d.blocks = e;
    return mod_sequential_new(&s, &d) == MOD_OK ? s : NULL;
}

static mod_state *run(const mod_block *b, const mod_arg *args) {
    mod_pipeline *p = NULL;
    mod_state *st = NULL;
    if (mod_pipeline_new(&p, b) == MOD_OK) mod_pipeline_call(p, args, &st);
    mod_pipeline_free(p);
    return st;
}

static int64_t inter_int(const mod_state *st, const char *name) {
    const mod_value *v = mod_state_intermediate(st, name);
    return v && v->kind == MOD_INT ? v->i : -12345;
}

/* ---- the four Key Observations --------------------------------------- */

static void test_key_observations_typed(void) {
    mod_block *b = leaf(&rules_def);
    mod_state *st;
    mt_tensor img = {0};
    mod_arg args[4];
    mt_ones(&img, MT_F32, MT_SHAPE(2, 2));
    args[0].name = "seed";
    args[0].value = mod_int(7);
    args[1].name = "image";
    args[1].value = mod_tensor(&img);
    args[2].name = "count";
    args[2].value = mod_int(1);
    args[3].name = NULL;
    st = run(b, args);
    CHECK(st != NULL, "typed block runs: %s", mod_last_error());
    if (st) {
        const mod_value *seed = mod_state_input(st, "seed");
        const mod_value *image = mod_state_input(st, "image");
        CHECK(seed && seed->i == 7, "1. a changed input stays local: inputs still hold seed = 7");
        CHECK(mod_state_intermediate(st, "seed") == NULL, "1. ... and it is not added to the intermediates");
        CHECK(image && mt_f32(mod_value_tensor(image))[0] == 1.0f, "1. an input tensor changed in place stays local");
        CHECK(mt_f32(&img)[0] == 1.0f, "1. the caller's tensor is untouched");
        CHECK(inter_int(st, "count") == 11, "2. a changed intermediate input is written back (1 + 10)");
        CHECK(inter_int(st, "made") == 999 + 11, "3. a declared intermediate output is added");
        CHECK(mod_state_intermediate(st, "untouched") == NULL, "an absent intermediate nobody set stays absent");
    }
    mod_state_free(st);
    mt_release(&img);
    mod_block_free(b);
}

static mod_status generic_rules_fn(mod_block_state *bs) {
    const mod_value *count = mod_block_state_get(bs, "count");
    mod_status s = mod_block_state_set(bs, "seed", mod_int(999));
    if (s == MOD_OK) s = mod_block_state_set(bs, "count", mod_int(count->i + 10));
    if (s == MOD_OK) s = mod_block_state_set(bs, "made", mod_int(1));
    if (s == MOD_OK) s = mod_block_state_set(bs, "scratch", mod_str("not declared"));
    return s;
}

static void test_key_observations_generic(void) {
    const mod_input_param inputs[] = {IN("seed"), IN_END};
    const mod_input_param inters[] = {IN("count"), IN_END};
    const mod_output_param outputs[] = {OUT("made"), OUT_END};
    mod_block_desc d = {0};
    mod_block *b = NULL;
    mod_state *st;
    const mod_arg args[] = {{"seed", mod_int(7)}, {"count", mod_int(1)}, {NULL, {0}}};
    d.inputs = inputs;
    d.intermediate_inputs = inters;
    d.intermediate_outputs = outputs;
    d.fn = generic_rules_fn;
    CHECK(mod_make_block(&b, &d) == MOD_OK, "make_block");
    st = run(b, args);
    CHECK(st != NULL, "generic block runs: %s", mod_last_error());
    if (st) {
        CHECK(mod_state_input(st, "seed")->i == 7 && !mod_state_intermediate(st, "seed"), "1. input change is local");
        CHECK(inter_int(st, "count") == 11, "2. intermediate change is written back");
        CHECK(inter_int(st, "made") == 1, "3. declared output is added");
        CHECK(mod_state_intermediate(st, "scratch") == NULL && mod_state_input(st, "scratch") == NULL,
              "4. an undeclared value is not added");
    }
    mod_state_free(st);
    mod_block_free(b);
}

static mod_status forgets_output_fn(mod_block_state *bs) {
    (void)bs;
    return MOD_OK;
}

static void test_missing_output(void) {
    const mod_output_param outputs[] = {OUT("made"), OUT_END};
    mod_block_desc d = {0};
    mod_block *b = NULL;
    mod_pipeline *p = NULL;
    mod_state *st = NULL;
    d.intermediate_outputs = outputs;
    d.fn = forgets_output_fn;
    mod_make_block(&b, &d);
    mod_pipeline_new(&p, b);
    CHECK(mod_pipeline_call(p, NULL, &st) == MOD_ERR_MISSING && st == NULL, "an output the block never sets is an error");
    CHECK(contains(mod_last_error(), "Intermediate output 'made' is missing in block state (block TestBlock)"),
          "the original's wording with the block: %s", mod_last_error());
    mod_pipeline_free(p);
    mod_block_free(b);
}

/* ---- three states ---------------------------------------------------- */

static void test_three_states(void) {
    mod_block *b = leaf(&states_def);
    mod_state *st;
    {
        const mod_arg args[] = {{NULL, {0}}};
        st = run(b, args);
        CHECK(st && inter_int(st, "steps_seen") == 50 && inter_int(st, "steps_set") == 1,
              "absent: the default applies");
        CHECK(st && strcmp((const char *)mod_state_intermediate(st, "name_seen")->p, "anon") == 0, "string default");
        CHECK(st && mod_state_input(st, "steps") == NULL, "the default is not written into the inputs");
        mod_state_free(st);
    }
    {
        const mod_arg args[] = {{"steps", mod_none()}, {"name", mod_none()}, {NULL, {0}}};
        st = run(b, args);
        CHECK(st && inter_int(st, "steps_seen") == 0 && inter_int(st, "steps_set") == 0,
              "explicit None: the default does not override it");
        CHECK(st && strcmp((const char *)mod_state_intermediate(st, "name_seen")->p, "(none)") == 0, "None string");
        CHECK(st && mod_state_input(st, "steps") && mod_state_input(st, "steps")->kind == MOD_NONE, "None is kept");
        mod_state_free(st);
    }
    {
        const mod_arg args[] = {{"steps", mod_int(4)}, {NULL, {0}}};
        st = run(b, args);
        CHECK(st && inter_int(st, "steps_seen") == 4 && inter_int(st, "steps_set") == 1, "set: the value");
        mod_state_free(st);
    }
    mod_block_free(b);
}

/* ---- bad use --------------------------------------------------------- */

static void test_bad_calls(void) {
    mod_block *b = leaf(&needs_def);
    mod_pipeline *p = NULL;
    mod_state *st = NULL;
    mod_status s;
    CHECK(mod_pipeline_new(&p, b) == MOD_OK, "pipeline of one block");
    needs_runs = 0;
    {
        const mod_arg args[] = {{"batch", mod_int(1)}, {NULL, {0}}};
        s = mod_pipeline_call(p, args, &st);
        CHECK(s == MOD_ERR_MISSING && st == NULL, "missing required input");
        CHECK_STR(mod_last_error(), "Required input 'prompt' is missing (block needs)", "message");
    }
    {
        const mod_arg args[] = {{"prompt", mod_none()}, {"batch", mod_int(1)}, {NULL, {0}}};
        CHECK(mod_pipeline_call(p, args, &st) == MOD_ERR_MISSING, "an explicit None does not satisfy required");
    }
    {
        const mod_arg args[] = {{"prompt", mod_str("a cat")}, {NULL, {0}}};
        CHECK(mod_pipeline_call(p, args, &st) == MOD_ERR_MISSING, "missing required intermediate input");
        CHECK_STR(mod_last_error(), "Required intermediate input 'batch' is missing (block needs)", "message");
    }
    {
        const mod_arg args[] = {{"prompt", mod_int(3)}, {"batch", mod_int(1)}, {NULL, {0}}};
        CHECK(mod_pipeline_call(p, args, &st) == MOD_ERR_KIND, "value of the wrong kind");
        CHECK_STR(mod_last_error(), "argument 'prompt' must be str, got int (block needs)", "message");
    }
    {
        const mod_arg args[] = {{"prompt", mod_str("x")}, {"batch", mod_int(1)}, {"promt", mod_str("typo")}, {NULL, {0}}};
        CHECK(mod_pipeline_call(p, args, &st) == MOD_ERR_UNKNOWN, "unknown argument");
        CHECK(contains(mod_last_error(), "unknown argument 'promt'") && contains(mod_last_error(), "prompt, batch"),
              "names the argument and what the pipeline takes: %s", mod_last_error());
    }
    {
        const mod_arg args[] = {{"prompt", mod_str("x")}, {"prompt", mod_str("y")}, {"batch", mod_int(1)}, {NULL, {0}}};
        CHECK(mod_pipeline_call(p, args, &st) == MOD_ERR_DUPLICATE, "an argument given twice");
    }
    CHECK(needs_runs == 0, "no failed call ran the block");
    {
        const mod_arg args[] = {{"prompt", mod_str("x")}, {"batch", mod_int(1)}, {NULL, {0}}};
        CHECK(mod_pipeline_call(p, args, &st) == MOD_OK && inter_int(st, "ran") == 1, "the next call works");
        mod_state_free(st);
        st = NULL;
    }
    CHECK(mod_pipeline_set_component(p, "unet", mod_int(1)) == MOD_ERR_UNKNOWN, "unknown component");
    CHECK(contains(mod_last_error(), "unknown component 'unet'"), "message: %s", mod_last_error());
    CHECK(mod_pipeline_set_config(p, "nope", mod_int(1)) == MOD_ERR_UNKNOWN, "unknown config");
    mod_pipeline_free(p);
    mod_block_free(b);

    /* a value an earlier block always makes is not an argument */
    {
        mod_block *mk = leaf(&make_batch_def), *nd = leaf(&needs_def), *sq = seq2("make", mk, "use", nd);
        const mod_arg args[] = {{"prompt", mod_str("x")}, {"batch", mod_int(1)}, {NULL, {0}}};
        CHECK(sq && mod_pipeline_new(&p, sq) == MOD_OK, "sequence make -> use");
        CHECK(mod_pipeline_call(p, args, &st) == MOD_ERR_UNKNOWN, "passing a value a block always makes");
        CHECK(contains(mod_last_error(), "argument 'batch' is made by block 'make'"), "message: %s", mod_last_error());
        mod_pipeline_free(p);
        mod_block_free(sq);
        mod_block_free(mk);
        mod_block_free(nd);
    }
}

static void test_definition_errors(void) {
    mod_block *b = NULL, *x = leaf(&make_batch_def), *y = leaf(&needs_def);
    CHECK(mod_block_new(&b, &bad_default_def) == MOD_ERR_DEFINITION && b == NULL,
          "required with a default is refused at definition (diffusers #14388)");
    CHECK(contains(mod_last_error(), "'x' is both required and has a default"), "message: %s", mod_last_error());
    {
        mod_input_param in[2] = {IN("x"), IN_END};
        mod_block_desc d = {0};
        in[0].required = 1;
        in[0].default_value = mod_int(1);
        d.inputs = in;
        CHECK(mod_make_block(&b, &d) == MOD_ERR_DEFINITION, "same for make_block");
    }
    {
        mod_sequential_desc d = {0};
        mod_entry e[3] = {ENTRY_END, ENTRY_END, ENTRY_END};
        e[0].name = "a";
        e[0].block = x;
        e[1].name = "a";
        e[1].block = y;
        d.blocks = e;
        CHECK(mod_sequential_new(&b, &d) == MOD_ERR_DUPLICATE, "duplicate child names");
        CHECK(contains(mod_last_error(), "two sub-blocks are named 'a'"), "message: %s", mod_last_error());
    }
    {
        mod_auto_desc d = {0};
        mod_entry e[3] = {ENTRY_END, ENTRY_END, ENTRY_END};
        e[0].name = "a";
        e[0].block = x;
        e[1].name = "b";
        e[1].block = y;
        d.blocks = e;
        CHECK(mod_auto_new(&b, &d) == MOD_ERR_DEFINITION, "an auto block with two defaults");
        CHECK(contains(mod_last_error(), "two default sub-blocks"), "message: %s", mod_last_error());
        e[0].trigger = "image";
        e[1].trigger = "image";
        CHECK(mod_auto_new(&b, &d) == MOD_ERR_DUPLICATE, "one trigger for two blocks");
    }
    {
        mod_entry e[2] = {ENTRY_END, ENTRY_END};
        e[0].name = "body";
        e[0].block = x;
        CHECK(mod_loop_new(&b, &rules_def, e) == MOD_ERR_DEFINITION, "a loop needs a MOD_LOOP definition");
    }
    mod_block_free(x);
    mod_block_free(y);
}

/* ---- editing --------------------------------------------------------- */

static void test_editing(void) {
    mod_block *a = leaf(&make_batch_def), *n = leaf(&needs_def), *f = leaf(&fails_def), *out = NULL;
    mod_block *sq = seq2("make", a, "use", n);
    char *doc;
    CHECK(sq != NULL, "sequence");
    CHECK(mod_block_insert(sq, 5, "late", f) == MOD_ERR_INDEX, "inserting at a bad index");
    CHECK(contains(mod_last_error(), "index 5 out of range [0, 2]"), "message: %s", mod_last_error());
    CHECK(mod_block_insert(sq, -1, "late", f) == MOD_ERR_INDEX, "negative index");
    CHECK(mod_block_insert(sq, 1, "check", f) == MOD_OK && mod_block_count(sq) == 3 &&
              strcmp(mod_block_child_name(sq, 1), "check") == 0,
          "insert in the middle");
    CHECK(mod_block_insert(sq, 0, "check", f) == MOD_OK && mod_block_count(sq) == 3 &&
              strcmp(mod_block_child_name(sq, 0), "check") == 0,
          "inserting an existing name moves it (InsertableDict.insert)");
    CHECK(mod_block_pop(sq, "missing", &out) == MOD_ERR_UNKNOWN && out == NULL, "popping a missing child");
    CHECK(contains(mod_last_error(), "no sub-block 'missing'"), "message: %s", mod_last_error());
    CHECK(mod_block_pop(sq, "check", &out) == MOD_OK && out == f && mod_block_count(sq) == 2, "pop by name");
    mod_block_free(out);
    out = NULL;
    CHECK(mod_block_pop_at(sq, 7, &out) == MOD_ERR_INDEX, "pop at a bad index");
    CHECK(mod_block_replace(sq, "use", f) == MOD_OK && mod_block_find(sq, "use") == f, "replace by name");
    CHECK(mod_block_replace_at(sq, 1, n) == MOD_OK && mod_block_find(sq, "use") == n, "replace by index");
    CHECK(mod_block_replace(sq, "nope", f) == MOD_ERR_UNKNOWN, "replacing a missing child");
    CHECK(mod_block_insert(sq, 0, "self", sq) == MOD_ERR_ARGUMENT, "a block cannot contain itself");
    doc = mod_block_doc(sq);
    CHECK(contains(doc, "prompt (`str`)") && !contains(doc, "batch (`int`)\n") && contains(doc, "ran (`int`)"),
          "the derived interface follows the edits");
    mod_text_free(doc);
    {
        mod_block *nested = seq2("inner", sq, "tail", f);
        CHECK(mod_block_find(nested, "inner.use") == n, "dotted paths reach nested children");
        CHECK(mod_block_replace(nested, "inner.use", f) == MOD_OK && mod_block_find(sq, "use") == f,
              "replace through a dotted path");
        CHECK(mod_block_pop(nested, "inner.make", &out) == MOD_OK && out == a, "pop through a dotted path");
        mod_block_free(out);
        mod_block_free(nested);
    }
    {
        mod_auto_desc d = {0};
        mod_entry e[2] = {ENTRY_END, ENTRY_END};
        mod_block *au = NULL;
        e[0].name = "x";
        e[0].block = f;
        d.blocks = e;
        mod_auto_new(&au, &d);
        CHECK(mod_block_insert(au, 0, "y", n) == MOD_ERR_ARGUMENT, "auto blocks are not edited in place");
        mod_block_free(au);
    }
    mod_block_free(sq);
    mod_block_free(a);
    mod_block_free(n);
    mod_block_free(f);
}

/* A pipeline keeps its own copy: later edits of the definition do not reach it. */
static void test_pipeline_is_a_snapshot(void) {
    mod_block *a = leaf(&make_batch_def), *f = leaf(&fails_def);
    mod_block *sq = seq2("make", a, "maybe_fail", f);
    mod_pipeline *p = NULL;
    mod_state *st = NULL;
    const mod_arg args[] = {{"code", mod_int(0)}, {NULL, {0}}};
    mod_pipeline_new(&p, sq);
    mod_block_pop(sq, "make", NULL);
    mod_block_free(a);
    CHECK(mod_pipeline_call(p, args, &st) == MOD_OK && inter_int(st, "batch") == 3,
          "the pipeline still runs the block popped from its definition");
    mod_state_free(st);
    mod_pipeline_free(p);
    mod_block_free(sq);
    mod_block_free(f);
}


/* ---- auto blocks ------------------------------------------------------ */

static mod_block *auto2(const char *n1, mod_block *b1, const char *t1, const char *n2, mod_block *b2, const char *t2) {
    mod_block *a = NULL;
    mod_auto_desc d = {0};
    mod_entry e[3] = {ENTRY_END, ENTRY_END, ENTRY_END};
    e[0].name = n1;
    e[0].block = b1;
    e[0].trigger = t1;
    e[1].name = n2;
    e[1].block = b2;
    e[1].trigger = t2;
    d.blocks = e;
    return mod_auto_new(&a, &d) == MOD_OK ? a : NULL;
}

static void test_auto_defaults_do_not_leak(void) {
    mod_block *a = leaf(&branch_a_def), *b = leaf(&branch_b_def), *au = auto2("a", a, "action", "b", b, NULL);
    mod_interface *iface = NULL;
    mod_state *st;
    int i, found = 0;
    CHECK(au != NULL, "auto block of two branches");
    {
        const mod_arg args[] = {{"action2", mod_str("go")}, {NULL, {0}}};
        st = run(au, args);
        CHECK(st && inter_int(st, "frames_b") == 0 && inter_int(st, "frames_b_set") == 0,
              "branch b does not see branch a's default (diffusers #14132)");
        CHECK(st && mod_state_input(st, "frames") == NULL, "no default is materialised in the state");
        mod_state_free(st);
    }
    {
        const mod_arg args[] = {{"action", mod_str("go")}, {NULL, {0}}};
        st = run(au, args);
        CHECK(st && inter_int(st, "frames_a") == 189, "branch a keeps its own default");
        mod_state_free(st);
    }
    CHECK(mod_block_interface(au, &iface) == MOD_OK, "interface");
    for (i = 0; iface && i < iface->n_inputs; i++) {
        if (strcmp(iface->inputs[i].name, "frames") == 0)
            found = iface->inputs[i].default_value.kind == MOD_ABSENT && !iface->inputs[i].required;
        if (strcmp(iface->inputs[i].name, "action") == 0)
            CHECK(!iface->inputs[i].required, "required by one branch only: optional for the auto block");
    }
    CHECK(found, "the auto block shows no default where its branches disagree");
    mod_interface_free(iface);
    mod_block_free(au);
    mod_block_free(a);
    mod_block_free(b);
}

static void test_validation(void) {
    /* an auto block with a default makes `batch` only in one branch; a later
       block requires it: the other branch would fail halfway */
    mod_block *mk = leaf(&make_batch_def), *st = leaf(&states_def), *nd = leaf(&needs_def);
    mod_block *au = auto2("with_batch", mk, "image", "without", st, NULL), *sq = NULL, *mt = NULL, *sq2 = NULL;
    sq = seq2("maybe", au, "use", nd);
    CHECK(sq == NULL, "validation refuses a workflow that misses a required value");
    CHECK(contains(mod_last_error(), "block 'use' requires intermediate 'batch'") && contains(mod_last_error(), "inputs are []"),
          "the message names the block, the value and the workflow: %s", mod_last_error());
    /* a consumer whose kind cannot hold what its producer makes */
    mt = leaf(&make_tensor_batch_def);
    sq2 = seq2("make", mt, "use", nd);
    CHECK(sq2 == NULL && contains(mod_last_error(), "reads 'batch' as int, but block 'make' makes it as Tensor"),
          "kind mismatch between producer and consumer: %s", mod_last_error());
    /* triggers must be known names in a pipeline */
    {
        mod_pipeline *p = NULL;
        mod_block *a2 = auto2("x", mk, "no_such_input", "y", st, NULL);
        CHECK(a2 && mod_pipeline_new(&p, a2) == MOD_ERR_VALIDATION && contains(mod_last_error(), "trigger 'no_such_input'"),
              "a trigger nobody passes or makes: %s", mod_last_error());
        mod_block_free(a2);
    }
    mod_block_free(au);
    mod_block_free(mk);
    mod_block_free(st);
    mod_block_free(nd);
    mod_block_free(mt);
}

/* A trigger made by an earlier block selects at run time and in
   get_execution_blocks; nested autos resolve. */
static void test_execution_blocks(void) {
    mod_block *mk = leaf(&make_batch_def), *n1 = leaf(&needs_def), *st = leaf(&states_def), *f = leaf(&fails_def);
    mod_block *inner = auto2("needs_batch", n1, "batch", "plain", st, NULL);
    mod_block *outer = auto2("nested", inner, "prompt", "fallback", f, NULL);
    mod_block *sq = seq2("make", mk, "choose", outer), *ex = NULL;
    char *r;
    const char *const with_prompt[] = {"prompt", NULL};
    CHECK(sq != NULL, "sequence with nested auto blocks: %s", mod_last_error());
    CHECK(mod_block_execution_blocks(sq, with_prompt, &ex) == MOD_OK && mod_block_count(ex) == 2, "two blocks run");
    CHECK(ex && mod_block_child_at(ex, 1) == n1 && strcmp(mod_block_child_name(ex, 1), "choose") == 0,
          "batch (made by 'make') selects the inner branch, named by the auto block as in the original");
    r = mod_block_repr(ex);
    CHECK(contains(r, "[1] choose (needs)"), "repr of the execution blocks");
    mod_text_free(r);
    mod_block_free(ex);
    CHECK(mod_block_execution_blocks(sq, NULL, &ex) == MOD_OK && mod_block_count(ex) == 2 &&
              strcmp(mod_block_child_name(ex, 1), "choose") == 0 && mod_block_child_at(ex, 1) == f,
          "no inputs: the default branch");
    mod_block_free(ex);
    {
        mod_state *s2;
        const mod_arg args[] = {{"prompt", mod_str("hi")}, {NULL, {0}}};
        needs_runs = 0;
        s2 = run(sq, args);
        CHECK(s2 && needs_runs == 1 && inter_int(s2, "ran") == 1, "the run takes the same path");
        mod_state_free(s2);
    }
    r = mod_block_repr(sq);
    CHECK(contains(r, "Trigger Inputs: ['prompt', 'batch']"), "trigger inputs in declaration order:\n%s", r ? r : "(null)");
    mod_text_free(r);
    mod_block_free(sq);
    mod_block_free(outer);
    mod_block_free(inner);
    mod_block_free(mk);
    mod_block_free(n1);
    mod_block_free(st);
    mod_block_free(f);
}

static void test_workflows(void) {
    mod_block *mk = leaf(&make_batch_def), *n1 = leaf(&needs_def), *st = leaf(&states_def), *sq = NULL, *w = NULL;
    mod_block *au = auto2("with_prompt", n1, "prompt", "plain", st, NULL);
    const char *const t2i[] = {"prompt", NULL};
    const char *const none[] = {NULL};
    const mod_workflow wfs[] = {{"text", t2i}, {"bare", none}, {NULL, NULL}};
    mod_sequential_desc d = {0};
    mod_entry e[3] = {ENTRY_END, ENTRY_END, ENTRY_END};
    char *doc;
    e[0].name = "make";
    e[0].block = mk;
    e[1].name = "pick";
    e[1].block = au;
    d.class_name = "MyBlocks";
    d.description = "Two ways.";
    d.blocks = e;
    d.workflows = wfs;
    CHECK(mod_sequential_new(&sq, &d) == MOD_OK, "a sequence with workflows");
    CHECK(mod_block_workflow_count(sq) == 2 && strcmp(mod_block_workflow_name(sq, 1), "bare") == 0, "listed");
    doc = mod_block_doc(sq);
    CHECK(contains(doc, "  Two ways.\n  \n  Supported workflows:\n    - `text`: requires `prompt`\n"
                        "    - `bare`: default (no additional inputs required)\n"),
          "printed in the description:\n%s", doc ? doc : "(null)");
    mod_text_free(doc);
    doc = mod_block_repr(sq);
    CHECK(contains(doc, "MyBlocks(\n  Class: SequentialPipelineBlocks\n"), "custom class name and base");
    mod_text_free(doc);
    CHECK(mod_block_get_workflow(sq, "text", &w) == MOD_OK && mod_block_count(w) == 2 &&
              mod_block_child_at(w, 1) == n1 && strcmp(mod_block_class_name(w), "SequentialPipelineBlocks") == 0,
          "get_workflow prunes to a plain sequence");
    mod_block_free(w);
    CHECK(mod_block_get_workflow(sq, "video", &w) == MOD_ERR_UNKNOWN && contains(mod_last_error(), "text, bare"),
          "an unknown workflow lists the available ones");
    mod_block_free(sq);
    mod_block_free(au);
    mod_block_free(mk);
    mod_block_free(n1);
    mod_block_free(st);
}

static void test_errors_carry_the_path_once(void) {
    mod_block *f = leaf(&fails_def), *mk = leaf(&make_batch_def);
    mod_block *inner = seq2("make", mk, "step", f), *outer = seq2("prepare", mk, "denoise", inner);
    mod_pipeline *p = NULL;
    mod_state *st = NULL;
    const mod_arg args[] = {{"code", mod_int(3)}, {NULL, {0}}};
    const char *m;
    CHECK(outer && mod_pipeline_new(&p, outer) == MOD_OK, "nested pipeline");
    CHECK(mod_pipeline_call(p, args, &st) == MOD_ERR_BLOCK && st == NULL, "the block's error comes back");
    m = mod_last_error();
    CHECK_STR(m, "asked to fail with code 3 (block denoise.step)", "message with the block path, once");
    mod_pipeline_free(p);
    mod_block_free(outer);
    mod_block_free(inner);
    mod_block_free(mk);
    mod_block_free(f);
}

static void test_block_alone(void) {
    mod_block *n = leaf(&needs_def);
    mod_state *st = NULL;
    const mod_arg args[] = {{"prompt", mod_str("x")}, {"batch", mod_int(1)}, {NULL, {0}}};
    CHECK(mod_block_run(n, args, &st) == MOD_OK && inter_int(st, "ran") == 1,
          "a block runs on its own (diffusers #13505)");
    mod_state_free(st);
    mod_block_free(n);
}

static void test_components_and_configs(void) {
    mod_block *b = leaf(&use_counter_def);
    mod_pipeline *p = NULL;
    mod_state *st = NULL;
    counter mine = {100};
    char *doc;
    CHECK(mod_pipeline_new(&p, b) == MOD_OK && counters_alive == 1, "the from_config component is created");
    CHECK(mod_pipeline_component_count(p) == 1 && strcmp(mod_pipeline_component_name(p, 0), "counter") == 0, "listed");
    CHECK(mod_pipeline_call(p, NULL, &st) == MOD_OK && inter_int(st, "total") == 42, "block reads it: 40 + 2");
    mod_state_free(st);
    CHECK(mod_pipeline_set_config(p, "offset", mod_int(5)) == MOD_OK, "set a config");
    CHECK(mod_pipeline_set_component(p, "counter", mod_ptr(&mine, &counter_type)) == MOD_OK && counters_alive == 0,
          "replace the component; the created one is destroyed");
    CHECK(mod_pipeline_call(p, NULL, &st) == MOD_OK && inter_int(st, "total") == 105, "the block sees both");
    mod_state_free(st);
    CHECK(mod_pipeline_set_component(p, "counter", mod_int(3)) == MOD_ERR_KIND, "a component of the wrong kind");
    {
        static const mod_type other = {"Other", NULL, NULL};
        CHECK(mod_pipeline_set_component(p, "counter", mod_ptr(&mine, &other)) == MOD_ERR_KIND &&
                  contains(mod_last_error(), "must be a Counter, got a Other"),
              "a component of another type: %s", mod_last_error());
    }
    CHECK(mod_pipeline_set_component(p, "counter", mod_none()) == MOD_OK, "unset it");
    CHECK(mod_pipeline_call(p, NULL, &st) == MOD_ERR_MISSING && contains(mod_last_error(), "Component 'counter' is not set"),
          "a missing component is found before the run: %s", mod_last_error());
    doc = mod_pipeline_doc(p);
    CHECK(contains(doc, "  Components:\n\n      counter (`Counter`): counts\n\n  Configs:\n\n      offset (default: 2): added"),
          "components and configs in the doc:\n%s", doc ? doc : "(null)");
    mod_text_free(doc);
    mod_pipeline_free(p);
    mod_block_free(b);
}

static void test_typed_loop(void) {
    mod_block *loop = NULL;
    mod_entry body[2] = {ENTRY_END, ENTRY_END};
    mod_state *st;
    body[0].name = "acc";
    body[0].def = &accumulate_def;
    CHECK(mod_loop_new(&loop, &steps_loop_def, body) == MOD_OK, "typed loop");
    {
        const mod_arg args[] = {{"num_steps", mod_int(4)}, {"acc", mod_float(0.5)}, {NULL, {0}}};
        const mod_value *acc;
        st = run(loop, args);
        acc = st ? mod_state_intermediate(st, "acc") : NULL;
        /* sum of i * (1000 - 100 i) for i < 4 = 0 + 900 + 1600 + 2100 */
        CHECK(acc && acc->kind == MOD_FLOAT && acc->f == 0.5 + 4600.0, "the body sees i and t each step");
        CHECK(st && inter_int(st, "last_i") == 3 && inter_int(st, "loops_done") == 4, "loop and body outputs");
        mod_state_free(st);
    }
    {
        const mod_arg args[] = {{"acc", mod_float(0.5)}, {NULL, {0}}};
        mod_pipeline *p = NULL;
        mod_pipeline_new(&p, loop);
        CHECK(mod_pipeline_call(p, args, &st) == MOD_ERR_MISSING &&
                  contains(mod_last_error(), "Required input 'num_steps' is missing (block steps_loop)"),
              "the loop's own required input: %s", mod_last_error());
        mod_pipeline_free(p);
    }
    mod_block_free(loop);
}

static void test_kwargs(void) {
    mod_block *t = leaf(&tagger_def), *c = leaf(&collector_def), *sq = seq2("tag", t, "collect", c);
    mod_state *st = run(sq, NULL);
    char *r = st ? mod_state_repr(st) : NULL;
    CHECK(st && inter_int(st, "n_fields") == 2 && inter_int(st, "sum_fields") == 3,
          "a kwargs collector gets every value tagged with its group");
    CHECK(st && inter_int(st, "cond") == 100, "a member the collector changes is written back");
    CHECK(contains(r, "  intermediate_kwargs={\n    guider_inputs: ['cond', 'uncond']\n  },\n"),
          "the state prints the groups:\n%s", r ? r : "(null)");
    mod_text_free(r);
    r = mod_block_doc(c);
    CHECK(contains(r, "      **guider_inputs (`None`, *optional*):\n          every guider input"), "collector doc:\n%s", r ? r : "(null)");
    mod_text_free(r);
    mod_state_free(st);
    mod_block_free(sq);
    mod_block_free(t);
    mod_block_free(c);
}

/* A body block of a loop that collects a kwargs group sees the group's
   values made before the loop. */
#define kw_loop_PARAMS(X, S) X(S, INPUT, INT, n, "int", DEF(1), "")
MOD_LOOP(kw_loop, "Runs its body n times.") {
    int64_t i;
    for (i = 0; i < s->n; i++) {
        mod_iter it = {0, 0.0, NULL};
        it.i = i;
        MOD_TRY(mod_loop_step(s->mod, &it));
    }
    return MOD_OK;
}

static void test_kwargs_in_loops(void) {
    mod_block *t = leaf(&tagger_def), *loop = NULL, *sq;
    mod_entry body[2] = {ENTRY_END, ENTRY_END};
    mod_state *st;
    body[0].name = "collect";
    body[0].def = &collector_def;
    CHECK(mod_loop_new(&loop, &kw_loop_def, body) == MOD_OK, "a loop whose body collects a group");
    sq = seq2("tag", t, "loop", loop);
    st = run(sq, NULL);
    CHECK(st && inter_int(st, "n_fields") == 2 && inter_int(st, "sum_fields") == 3,
          "the body sees the group's values made before the loop");
    mod_state_free(st);
    mod_block_free(sq);
    mod_block_free(loop);
    mod_block_free(t);
}

#define who_PARAMS(X, S) X(S, OUTPUT, STR, who, "str", NONE, "")
MOD_BLOCK(who, "Says whose it is.") {
    s->who = (const char *)mod_block_state_user(s->mod);
    return MOD_OK;
}

static void test_user_pointer(void) {
    mod_block *b = leaf(&who_def);
    mod_state *st;
    mod_block_set_user(b, (void *)"mine");
    st = run(b, NULL);
    CHECK(st && strcmp((const char *)mod_state_intermediate(st, "who")->p, "mine") == 0,
          "a MOD_BLOCK instance carries a user pointer");
    mod_state_free(st);
    mod_block_free(b);
}

static void test_empty_sequence(void) {
    mod_block *sq = NULL;
    mod_sequential_desc d = {0};
    mod_state *st;
    char *r;
    CHECK(mod_sequential_new(&sq, &d) == MOD_OK, "an empty sequential block is valid");
    r = mod_block_repr(sq);
    CHECK_STR(r, "SequentialPipelineBlocks(\n  Class: ModularPipelineBlocks\n\n  Description: \n\n\n  Sub-Blocks:\n)",
              "its repr shows an empty Sub-Blocks section");
    mod_text_free(r);
    st = run(sq, NULL);
    r = st ? mod_state_repr(st) : NULL;
    CHECK_STR(r, "PipelineState(\n  inputs={\n\n  },\n  intermediates={\n\n  },\n)", "running it does nothing");
    mod_text_free(r);
    mod_state_free(st);
    mod_block_free(sq);
}

static void test_outputs_call(void) {
    mod_block *n = leaf(&needs_def);
    mod_pipeline *p = NULL;
    mod_value outs[2];
    const char *const names[] = {"ran", "batch", NULL};
    const char *const bad[] = {"nope", NULL};
    const mod_arg args[] = {{"prompt", mod_str("x")}, {"batch", mod_int(6)}, {NULL, {0}}};
    mod_pipeline_new(&p, n);
    CHECK(mod_pipeline_call_outputs(p, args, names, outs) == MOD_OK && outs[0].i == 1 && outs[1].i == 6,
          "output=[...] returns the named intermediates");
    mod_value_release(&outs[0]);
    mod_value_release(&outs[1]);
    CHECK(mod_pipeline_call_outputs(p, args, bad, outs) == MOD_ERR_UNKNOWN, "an unknown output name");
    mod_pipeline_free(p);
    mod_block_free(n);
}

/* One pipeline, eight threads, each call with its own state. */
typedef struct thread_job {
    mod_pipeline *p;
    int64_t code, got;
    int ok;
} thread_job;

#define square_PARAMS(X, S)                                  \
    X(S, INPUT_REQUIRED, INT, n, "int", NONE, "")            \
    X(S, OUTPUT, INT, sq, "int", NONE, "")
MOD_BLOCK(square, "n * n") {
    s->sq = s->n * s->n;
    return MOD_OK;
}

static void *thread_main(void *arg) {
    thread_job *j = (thread_job *)arg;
    int k;
    j->ok = 1;
    for (k = 0; k < 200; k++) {
        mod_state *st = NULL;
        mod_arg args[2];
        args[0].name = "n";
        args[0].value = mod_int(j->code + k);
        args[1].name = NULL;
        if (mod_pipeline_call(j->p, args, &st) != MOD_OK || inter_int(st, "sq") != (j->code + k) * (j->code + k)) j->ok = 0;
        mod_state_free(st);
    }
    return NULL;
}

static void test_threads(void) {
    mod_block *b = leaf(&square_def), *sq = seq2("a", b, "b", b);
    mod_pipeline *p = NULL;
    pthread_t th[8];
    thread_job jobs[8];
    int i, ok = 1;
    CHECK(sq != NULL, "one instance may appear twice in a sequence: %s", sq ? "" : mod_last_error());
    mod_block_free(sq);
    mod_pipeline_new(&p, b);
    for (i = 0; i < 8; i++) {
        jobs[i].p = p;
        jobs[i].code = 1000 * i;
        pthread_create(&th[i], NULL, thread_main, &jobs[i]);
    }
    for (i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        ok &= jobs[i].ok;
    }
    CHECK(ok, "8 threads x 200 calls on one pipeline, each with its own state");
    mod_pipeline_free(p);
    mod_block_free(b);
}

static void test_text_views(void) {
    mod_block *mk = leaf(&make_batch_def), *st = leaf(&states_def), *au = auto2("with_batch", mk, "image", "plain", st, NULL);
    mod_block *loop = NULL;
    mod_entry body[2] = {ENTRY_END, ENTRY_END};
    char *r;
    r = mod_block_repr(st);
    CHECK_STR(r,
              "states(\n  Class: PipelineBlock\n  Description: Reports what it sees.\n  \n  \n  Inputs:\n"
              "    steps=50, name=anon\n  Intermediates:\n    - outputs: steps_seen, steps_set, name_seen\n)",
              "leaf repr in the original's format");
    mod_text_free(r);
    r = mod_block_mermaid(au);
    CHECK(contains(r, "subgraph") && contains(r, "with_batch [image]") && contains(r, "-->|steps, name|"),
          "an auto block's chart:\n%s", r ? r : "(null)");
    mod_text_free(r);
    body[0].name = "acc";
    body[0].def = &accumulate_def;
    mod_loop_new(&loop, &steps_loop_def, body);
    r = mod_block_mermaid(loop);
    CHECK(contains(r, "-.->|acc|"), "a loop-carried value is a dashed edge:\n%s", r ? r : "(null)");
    mod_text_free(r);
    r = mod_block_doc(loop);
    CHECK(contains(r, "  Outputs:\n\n      acc (`float`):\n          sum of i * t\n\n      last_i (`int`):\n\n      loops_done (`int`):"),
          "a loop's outputs: every body output and its own:\n%s", r ? r : "(null)");
    mod_text_free(r);
    mod_block_free(loop);
    mod_block_free(au);
    mod_block_free(mk);
    mod_block_free(st);
}

int main(void) {
    test_key_observations_typed();
    test_key_observations_generic();
    test_missing_output();
    test_three_states();
    test_bad_calls();
    test_definition_errors();
    test_editing();
    test_pipeline_is_a_snapshot();
    test_auto_defaults_do_not_leak();
    test_validation();
    test_execution_blocks();
    test_workflows();
    test_errors_carry_the_path_once();
    test_block_alone();
    test_components_and_configs();
    test_typed_loop();
    test_kwargs();
    test_kwargs_in_loops();
    test_user_pointer();
    test_empty_sequence();
    test_outputs_call();
    test_threads();
    test_text_views();
    return test_finish();
}
