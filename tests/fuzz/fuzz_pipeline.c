/* tests/fuzz/fuzz_pipeline.c - libFuzzer harness for the block system.

   Decodes its input (format: fuzz_pipeline.h) into a program over the public
   API of modular.h: make_block blocks with random params, roles, defaults,
   required flags, kwargs groups, components and configs, and a script of
   what they do when run; MOD_BLOCK and MOD_LOOP blocks; sequential, auto and
   loop compositions; insert / pop / replace edits; validation; pipelines;
   calls with named values of every kind; repr, doc, mermaid and state
   views. An allocation failure may be injected (once, or from some point on).

   What it checks, beyond the sanitizers: every call returns a known status;
   a failure always leaves a non-empty message (the harness clears the
   message before each call) and its outputs untouched; MOD_ERR_MEMORY and
   NULL texts only happen when an allocation failed; no block's memory
   outlives the input (all counted allocations are freed at the end).

   Build: make fuzz (clang -fsanitize=fuzzer,address,undefined). */
#include "tests/alloc_fail.h"
#include "modular_tensor.h"
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"
#define MODULAR_IMPLEMENTATION
#include "modular.h"
#include "tests/fuzz/fuzz_pipeline.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_MAX_BLOCKS 16
#define FZ_MAX_PIPES 4
#define FZ_MAX_TREE 48   /* nodes of an expanded block tree */
#define FZ_NTENSORS 7
#define FZ_BUDGET 600    /* block runs per input */

#define REQUIRE(cond, ...)                                          \
    do {                                                            \
        if (!(cond)) {                                              \
            fprintf(stderr, "fuzz_pipeline: check failed: %s\n  ", #cond); \
            fprintf(stderr, __VA_ARGS__);                           \
            fprintf(stderr, "\n  last error: %s\n", mod_last_error()); \
            abort();                                                \
        }                                                           \
    } while (0)

/* ---- the run's context ------------------------------------------------ */

typedef struct fz_script {
    int n;
    unsigned char op[FZ_MAX_SCRIPT], a[FZ_MAX_SCRIPT], b[FZ_MAX_SCRIPT];
} fz_script;

typedef struct fz_ctx {
    const uint8_t *p;
    size_t n, i;
    mod_block *blocks[FZ_MAX_BLOCKS];
    int nblocks;
    mod_pipeline *pipes[FZ_MAX_PIPES];
    int npipes;
    mt_tensor tensors[FZ_NTENSORS];
    mt_tensor snapshots[FZ_NTENSORS]; /* contiguous copies, to see that nothing wrote into them */
    void **mem; /* the harness's own allocations (strings, scripts), freed at the end */
    int nmem, memcap;
    mod_value *owned; /* owned values made by the harness, released at the end */
    int nowned, ownedcap;
    int budget;
} fz_ctx;

static fz_ctx *G;

static unsigned rd(void) { return G->i < G->n ? G->p[G->i++] : 0u; }
static unsigned rd_below(unsigned n) { return n ? rd() % n : 0u; }

static void *fz_keep(void *p) {
    if (!p) abort();
    if (G->nmem == G->memcap) {
        G->memcap = G->memcap ? 2 * G->memcap : 64;
        G->mem = (void **)realloc(G->mem, (size_t)G->memcap * sizeof(void *));
        if (!G->mem) abort();
    }
    G->mem[G->nmem++] = p;
    return p;
}

static mod_value fz_own(mod_value v) {
    if (!v.box) return v;
    if (G->nowned == G->ownedcap) {
        G->ownedcap = G->ownedcap ? 2 * G->ownedcap : 64;
        G->owned = (mod_value *)realloc(G->owned, (size_t)G->ownedcap * sizeof(mod_value));
        if (!G->owned) abort();
    }
    G->owned[G->nowned++] = v;
    return v;
}

/* ---- checks ----------------------------------------------------------- */

static void clear_error(void) { mod_fail(NULL, MOD_ERR_ARGUMENT, "%s", ""); }

static int oom_seen(void) { return __atomic_load_n(&af_failures, __ATOMIC_RELAXED) > 0; }

static void check_status(mod_status s, const char *what) {
#ifdef FZ_TRACE /* -DFZ_TRACE: print what each input does */
    fprintf(stderr, "%-28s %-18s %s\n", what, mod_status_name(s), s ? mod_last_error() : "");
#endif
    REQUIRE((unsigned)s < MOD_STATUS_COUNT, "%s returned status %d", what, (int)s);
    if (s != MOD_OK) {
        REQUIRE(mod_last_error()[0] != '\0', "%s failed with %s and left no message", what, mod_status_name(s));
        REQUIRE(s != MOD_ERR_MEMORY || oom_seen(), "%s reported MOD_ERR_MEMORY with no allocation failure", what);
    }
}

static void check_text(char *t, const char *what) {
    if (!t) {
        REQUIRE(oom_seen(), "%s returned NULL with no allocation failure", what);
        REQUIRE(mod_last_error()[0] != '\0', "%s returned NULL and left no message", what);
    }
    mod_text_free(t);
}

/* ---- names and values --------------------------------------------------- */

static const char *rd_name(void) {
    unsigned k = rd();
    if (k == FZ_NAME_DYNAMIC) {
        unsigned len = rd_below(8), i;
        char *s = (char *)fz_keep(malloc(len + 1));
        for (i = 0; i < len; i++) s[i] = (char)rd();
        s[len] = '\0';
        return s;
    }
    return fz_names[k % FZ_NNAMES];
}

static const char *const fz_hints[] = {NULL, "", "int", "str", "Counter", "Tensor", "float", "PIL.Image", "%s%s"};
static const char *const fz_texts[] = {
    NULL, "", "A block.", "%s%n%x", "line one\nline two\n  indented\n",
    "words words words words words words words words words words words words words words words words words words "
    "words words words words words words words words words words words words",
    "trailing spaces   \n\n", "\xe2\x80\xa2 bullet"};
static const char *const fz_classes[] = {NULL, "TestBlock", "MyBlocks", "", "Class %s", "Auto"};
static const char *const fz_groups[] = {NULL, "grp", "guider_inputs", ""};

#define PICK(table) (table)[rd() % (sizeof(table) / sizeof((table)[0]))]

typedef struct counter {
    int base;
} counter;

static int counter_describe(const void *object, char *buf, size_t size) {
    return snprintf(buf, size, "<Counter base=%d>", object ? ((const counter *)object)->base : -1);
}
static void counter_destroy(void *object) { free(object); }
static const mod_type counter_type = {"Counter", counter_destroy, counter_describe};
static const mod_type counter_borrowed_type = {"Counter", NULL, counter_describe};
static const mod_type other_type = {"Other", NULL, NULL};
static counter fz_counters[2] = {{40}, {-7}};

static mod_value make_value_at(unsigned kind, unsigned payload, int depth);

static mod_value make_list(unsigned payload, int depth) {
    mod_value l;
    int64_t n = (int64_t)(payload % 4), i;
    memset(&l, 0, sizeof l);
    if (mod_list_new(&l, n) != MOD_OK) return mod_none();
    for (i = 0; i < n; i++) {
        mod_value item = make_value_at((payload >> 2) + (unsigned)i * 3, payload + (unsigned)i, depth + 1);
        check_status(mod_list_set(&l, i, item), "mod_list_set");
    }
    return fz_own(l);
}

static mod_value make_dict(unsigned payload, int depth) {
    mod_value d;
    unsigned n = payload % 4, i;
    memset(&d, 0, sizeof d);
    if (mod_dict_new(&d) != MOD_OK) return mod_none();
    for (i = 0; i < n; i++) {
        mod_value item = make_value_at(payload + i * 3, payload * 7 + i, depth + 1);
        check_status(mod_dict_set(&d, fz_names[(payload + i * 5) % FZ_NNAMES], item), "mod_dict_set");
    }
    return fz_own(d);
}

static mod_value make_value_at(unsigned kind, unsigned payload, int depth) {
    static const double floats[] = {0.0, 0.5, -1.25, 7.0, 1e300, -0.0, 1e-7, 123456789.125};
    static const int64_t ints[] = {0, 1, 2, 3, -1, 13, 14, 15, 7, 1000000, INT64_MAX, INT64_MIN};
    static const char *const strs[] = {"a cat", "", "it's", "\"quoted\" and 'single'", "tab\there", "\x01\x7f",
                                       "%s%n", "\xc3\xa9", "x"};
    mod_value v;
    memset(&v, 0, sizeof v);
    kind %= FZ_V_COUNT;
    if (depth > 1 && (kind == FZ_V_LIST || kind == FZ_V_DICT)) kind = FZ_V_INT; /* two levels at most */
    switch (kind) {
    case FZ_V_ABSENT: return v;
    case FZ_V_NONE: return mod_none();
    case FZ_V_BOOL: return mod_bool((int)(payload & 1));
    case FZ_V_INT: return mod_int(ints[payload % (sizeof ints / sizeof ints[0])]);
    case FZ_V_FLOAT:
        if (payload % 11 == 9) return mod_float(NAN);
        if (payload % 11 == 10) return mod_float(payload & 16 ? INFINITY : -INFINITY);
        return mod_float(floats[payload % (sizeof floats / sizeof floats[0])]);
    case FZ_V_STR: return mod_str(strs[payload % (sizeof strs / sizeof strs[0])]);
    case FZ_V_LIST: return make_list(payload, depth);
    case FZ_V_DICT: return make_dict(payload, depth);
    case FZ_V_TENSOR: return mod_tensor(&G->tensors[payload % FZ_NTENSORS]);
    case FZ_V_PTR:
        if (payload % 3 == 2) return mod_ptr(&fz_counters[1], &other_type);
        return mod_ptr(&fz_counters[payload % 2], &counter_borrowed_type);
    default: {
        counter *c = (counter *)malloc(sizeof *c);
        mod_value o;
        memset(&o, 0, sizeof o);
        if (!c) abort();
        c->base = (int)payload;
        if (mod_value_own_ptr(&o, c, &counter_type) != MOD_OK) {
            free(c);
            return mod_none();
        }
        return fz_own(o);
    }
    }
}

static mod_value make_value(unsigned kind, unsigned payload) { return make_value_at(kind, payload, 0); }

static mod_value rd_value(void) {
    unsigned k = rd();
    return make_value(k, rd());
}

/* ---- the tensors values point at ---------------------------------------- */

static void make_tensors(void) {
    mt_generator g;
    mt_tensor base = {MT_F32, 0, {0}, {0}, NULL, NULL};
    float *f;
    int i;
    mt_generator_seed(&g, 1);
    mt_ones(&G->tensors[0], MT_F32, MT_SHAPE(2, 2));
    mt_randn(&G->tensors[1], &g, MT_SHAPE(1, 4, 2, 2));
    mt_zeros(&G->tensors[2], MT_F32, MT_SHAPE(3));
    f = mt_f32(&G->tensors[2]);
    if (f) {
        f[0] = NAN;
        f[1] = INFINITY;
    }
    mt_full(&G->tensors[3], MT_F32, 0, NULL, 2.5);
    mt_randn(&base, &g, MT_SHAPE(2, 3));
    mt_view_transpose(&G->tensors[4], &base, 0, 1); /* a strided view */
    mt_release(&base);
    mt_zeros(&G->tensors[5], MT_F16, MT_SHAPE(2));
    mt_zeros(&G->tensors[6], MT_F32, MT_SHAPE(1, 0));
    for (i = 0; i < FZ_NTENSORS; i++) mt_clone(&G->snapshots[i], &G->tensors[i]);
}

static void check_tensors(void) {
    int i;
    for (i = 0; i < FZ_NTENSORS; i++) {
        mt_tensor now = {MT_F32, 0, {0}, {0}, NULL, NULL};
        size_t bytes = (size_t)mt_numel(&G->tensors[i]) * mt_dtype_size(G->tensors[i].dtype);
        if (mt_clone(&now, &G->tensors[i]) != MT_OK) abort();
        REQUIRE(bytes == 0 || memcmp(now.data, G->snapshots[i].data, bytes) == 0,
                "the caller's tensor %d was written into", i);
        mt_release(&now);
        mt_release(&G->snapshots[i]);
    }
}

/* ---- typed blocks ------------------------------------------------------- */

static int spend(void) { return G->budget-- > 0; }

#define fz_ints_PARAMS(X, S)                                           \
    X(S, INPUT, INT, x, "int", DEF(1), "an input with a default")      \
    X(S, INTERMEDIATE, INT, n, "int", NONE, "an intermediate")         \
    X(S, OUTPUT, INT, y, "int", NONE, "x + n")                         \
    X(S, MODIFIED, FLOAT, acc, "float", NONE, "a running sum")         \
    X(S, OUTPUT, INT, last_i, "int", NONE, "the iteration seen")
MOD_BLOCK(fz_ints, "Integers: y = x + n, acc += 1.") {
    const mod_iter *it = mod_block_state_iter(s->mod);
    if (!spend()) return mod_fail(s->mod, MOD_ERR_BLOCK, "out of budget");
    if (s->x == 13) return mod_fail(s->mod, MOD_ERR_BLOCK, "x is %lld", (long long)s->x);
    if (s->x == 14) return MOD_ERR_BLOCK; /* no message: the library must supply one */
    if (s->x == 15) {
        mod_status st = mod_loop_step(s->mod, NULL);
        REQUIRE(st != MOD_OK, "mod_loop_step outside a loop wrapper succeeded");
        return st;
    }
    s->y = (int64_t)((uint64_t)s->x + (uint64_t)s->n);
    s->acc += 1.0;
    s->last_i = it ? it->i : -1;
    if (s->n == 7) MOD_SET_NONE(s, acc);
    return MOD_OK;
}

#define fz_req_PARAMS(X, S)                                            \
    X(S, INPUT_REQUIRED, STR, s, "str", NONE, "required")              \
    X(S, INTERMEDIATE_REQUIRED, BOOL, flag, "bool", NONE, "required")  \
    X(S, OUTPUT, STR, s_out, "str", NONE, "s when flag")
MOD_BLOCK(fz_req, "Required params; leaves its output unset unless flag.") {
    char *t;
    if (!spend()) return mod_fail(s->mod, MOD_ERR_BLOCK, "out of budget");
    t = mod_block_state_repr(s->mod);
    check_text(t, "mod_block_state_repr (typed)");
    if (s->flag) s->s_out = s->s;
    return MOD_OK;
}

#define fz_tensor_PARAMS(X, S)                                          \
    X(S, INPUT, TENSOR, tensor, "Tensor", NONE, "an input tensor")      \
    X(S, MODIFIED, TENSOR, latents, "Tensor", NONE, "latents + noise")  \
    X(S, OUTPUT, TENSOR, noise, "Tensor", NONE, "randn like tensor")    \
    X(S, INPUT, INT, seed, "int", DEF(0), "")
MOD_BLOCK(fz_tensor, "Tensors: noise = randn_like(tensor); latents += noise.") {
    mt_generator g;
    if (!spend()) return mod_fail(s->mod, MOD_ERR_BLOCK, "out of budget");
    mt_generator_seed(&g, (uint64_t)s->seed);
    if (s->tensor.data) {
        float *p = mt_f32(&s->tensor);
        if (p && mt_numel(&s->tensor) > 0 && mt_is_contiguous(&s->tensor)) p[0] = -1000.0f; /* on the block's copy */
        MOD_TRY_MT(s->mod, mt_randn(&s->noise, &g, s->tensor.ndim, s->tensor.shape));
    }
    if (s->latents.data && s->noise.data) {
        mt_tensor sum = {MT_F32, 0, {0}, {0}, NULL, NULL};
        MOD_TRY_MT(s->mod, mt_add(&sum, &s->latents, &s->noise));
        mt_release(&s->latents);
        s->latents = sum;
    }
    if (!s->noise.data) MOD_TRY_MT(s->mod, mt_zeros(&s->noise, MT_F32, MT_SHAPE(1)));
    return MOD_OK;
}

#define fz_values_PARAMS(X, S)                                       \
    X(S, INPUT_OUTPUT, LIST, items, "list", NONE, "")                \
    X(S, MODIFIED, DICT, dict, "dict", NONE, "")                     \
    X(S, OUTPUT, VALUE, any, "Any", NONE, "")                        \
    X(S, INPUT, VALUE, v, "Any", NONE, "")
MOD_BLOCK(fz_values, "Lists, dicts and values.") {
    char buf[64];
    if (!spend()) return mod_fail(s->mod, MOD_ERR_BLOCK, "out of budget");
    mod_value_repr(&s->v, buf, sizeof buf);
    if (s->items.kind == MOD_LIST) {
        const mod_value *first = mod_list_at(&s->items, 0);
        if (first) mod_value_repr(first, buf, 3);
        MOD_TRY(mod_value_set(&s->any, s->items));
        if (mod_list_len(&s->items) > 0) MOD_TRY(mod_list_set(&s->items, 0, mod_str("changed by the block")));
    } else {
        MOD_TRY(mod_value_set(&s->any, mod_str("no items")));
    }
    if (s->dict.kind == MOD_DICT) {
        mod_status st = mod_dict_set(&s->dict, "seen", mod_int(mod_dict_len(&s->dict)));
        if (st != MOD_OK) return st;
        (void)mod_dict_get(&s->dict, "x");
    }
    return MOD_OK;
}

#define fz_kw_PARAMS(X, S)                                                    \
    X(S, KW(INTERMEDIATE, grp), KWARGS, fields, "", NONE, "every grp value")  \
    X(S, KW(OUTPUT, grp), INT, tagged, "int", NONE, "")                       \
    X(S, OUTPUT, INT, nfields, "int", NONE, "")
MOD_BLOCK(fz_kw, "Collects the grp kwargs group.") {
    if (!spend()) return mod_fail(s->mod, MOD_ERR_BLOCK, "out of budget");
    s->nfields = mod_dict_len(&s->fields);
    s->tagged = s->nfields + 1;
    if (s->fields.kind == MOD_DICT && mod_dict_len(&s->fields) > 0) {
        mod_status st = mod_dict_set(&s->fields, mod_dict_name_at(&s->fields, 0), mod_int(99));
        if (st != MOD_OK) return st;
    }
    return MOD_OK;
}

static mod_status counter_create(const char *config, mod_value *out) {
    counter *c = (counter *)malloc(sizeof *c);
    mod_status s;
    if (!c) return MOD_ERR_MEMORY;
    c->base = atoi(config);
    s = mod_value_own_ptr(out, c, &counter_type);
    if (s != MOD_OK) free(c);
    return s;
}

static mod_status counter_create_fail(const char *config, mod_value *out) {
    (void)out;
    return mod_fail(NULL, MOD_ERR_ARGUMENT, "cannot make a counter from '%s'", config);
}

#define fz_comp_PARAMS(X, S)                                                              \
    X(S, COMPONENT, PTR, counter, "Counter", CREATE(counter_create, "40"), "a counter")    \
    X(S, CONFIG, INT, offset, "", NONE, "no default")                                   \
    X(S, CONFIG, FLOAT, scale, "", DEF(0.5), "")                                        \
    X(S, OUTPUT, INT, total, "int", NONE, "counter + offset")
MOD_BLOCK(fz_comp, "Reads a component and configs.") {
    if (!spend()) return mod_fail(s->mod, MOD_ERR_BLOCK, "out of budget");
    s->total = (int64_t)((uint64_t)(s->counter ? ((counter *)s->counter)->base : 0) + (uint64_t)s->offset);
    if (s->scale == s->scale && s->scale > -1e9 && s->scale < 1e9) s->total += (int64_t)s->scale;
    return MOD_OK;
}

#define fz_comp_fail_PARAMS(X, S)                                                           \
    X(S, COMPONENT, PTR, broken, "Counter", CREATE(counter_create_fail, "x"), "never made") \
    X(S, OUTPUT, INT, total, "int", NONE, "")
MOD_BLOCK(fz_comp_fail, "A component that cannot be created.") {
    s->total = 0;
    return MOD_OK;
}

#define fz_ptr_PARAMS(X, S)                                    \
    X(S, INPUT, PTR, obj, "Counter", NONE, "a user object")    \
    X(S, OUTPUT, INT, base, "int", NONE, "")
MOD_BLOCK(fz_ptr, "Reads a user object.") {
    if (!spend()) return mod_fail(s->mod, MOD_ERR_BLOCK, "out of budget");
    s->base = s->obj ? ((counter *)s->obj)->base : -1;
    return MOD_OK;
}

#define fz_bad_PARAMS(X, S) X(S, INPUT_REQUIRED, INT, x, "int", DEF(1), "required and defaulted")
MOD_BLOCK(fz_bad, "Refused at definition.") {
    (void)s;
    return MOD_OK;
}

#define fz_loop_PARAMS(X, S)                                    \
    X(S, INPUT, INT, num_steps, "int", DEF(2), "")              \
    X(S, INTERMEDIATE, FLOAT, acc, "float", NONE, "")           \
    X(S, OUTPUT, INT, loops, "int", NONE, "")
MOD_LOOP(fz_loop, "Runs its body up to three times.") {
    int64_t i, n = s->num_steps < 0 ? 0 : s->num_steps > 3 ? 3 : s->num_steps;
    for (i = 0; i < n && spend(); i++) {
        mod_iter it = {0, 0.0, NULL};
        it.i = i;
        it.t = 1000.0 - 10.0 * (double)i;
        MOD_TRY(mod_loop_step(s->mod, &it));
    }
    s->loops = n;
    return MOD_OK;
}

/* Ignores the body's errors and keeps going (bad style, must stay safe). */
#define fz_loop_sloppy_PARAMS(X, S)                      \
    X(S, INPUT, INT, num_steps, "int", DEF(1), "")       \
    X(S, MODIFIED, INT, x, "int", NONE, "")
MOD_LOOP(fz_loop_sloppy, "Ignores errors of its body.") {
    int64_t i, n = s->num_steps < 0 ? 0 : s->num_steps > 3 ? 3 : s->num_steps;
    for (i = 0; i < n && spend(); i++) {
        mod_status st = mod_loop_step(s->mod, (i & 1) ? NULL : mod_block_state_iter(s->mod));
        REQUIRE((unsigned)st < MOD_STATUS_COUNT, "mod_loop_step status %d", (int)st);
        s->x = (int64_t)((uint64_t)s->x + 1u);
    }
    return MOD_OK;
}

static const mod_block_def *const fz_defs[FZ_DEF_COUNT] = {
    &fz_ints_def, &fz_req_def,      &fz_tensor_def, &fz_values_def, &fz_kw_def,           &fz_comp_def,
    &fz_comp_fail_def, &fz_ptr_def, &fz_bad_def,    &fz_loop_def,   &fz_loop_sloppy_def};

/* ---- make_block blocks and their scripts ---------------------------------- */

static mod_status script_fn(mod_block_state *bs) {
    const fz_script *sc = (const fz_script *)mod_block_state_user(bs);
    int k;
    if (!spend()) return mod_fail(bs, MOD_ERR_BLOCK, "out of budget");
    REQUIRE(mod_block_state_path(bs) != NULL, "a running block has no path");
    for (k = 0; sc && k < sc->n; k++) {
        const char *name = fz_names[sc->a[k] % FZ_NNAMES];
        switch (sc->op[k] % 10) {
        case 1: {
            const mod_value *v = mod_block_state_get(bs, name);
            char buf[32];
            if (v) mod_value_repr(v, buf, sizeof buf);
            break;
        }
        case 2: {
            mod_status s;
            clear_error();
            s = mod_block_state_set(bs, name, make_value(sc->b[k], sc->a[k]));
            check_status(s, "mod_block_state_set");
            break;
        }
        case 3: clear_error(); check_text(mod_block_state_repr(bs), "mod_block_state_repr"); break;
        case 4: {
            const mod_state *st = mod_block_state_pipeline(bs);
            REQUIRE(st != NULL, "a running block sees no pipeline state");
            clear_error();
            check_text(mod_state_repr(st), "mod_state_repr (running)");
            (void)mod_state_input(st, name);
            (void)mod_state_intermediate(st, name);
            break;
        }
        case 5: return mod_fail(bs, MOD_ERR_BLOCK, "script step %d fails on '%s'", k, name);
        case 6: { /* an error status without a message (not MOD_ERR_MEMORY: no allocation failed) */
            mod_status st = (mod_status)(1 + sc->b[k] % (MOD_STATUS_COUNT - 1));
            return st == MOD_ERR_MEMORY ? MOD_ERR_BLOCK : st;
        }
        case 7: {
            mod_status s = mod_loop_step(bs, NULL);
            REQUIRE(s != MOD_OK, "mod_loop_step in a make_block block succeeded");
            return s;
        }
        case 8: {
            const mod_iter *it = mod_block_state_iter(bs);
            if (it) (void)(it->i + (int64_t)it->t);
            (void)mod_block_state_path(bs);
            break;
        }
        case 9: clear_error(); check_status(mod_block_state_set(bs, name, mod_none()), "mod_block_state_set(None)"); break;
        default: break;
        }
    }
    return MOD_OK;
}

static void pool_add(mod_block *b) {
    if (!b) return;
    if (G->nblocks == FZ_MAX_BLOCKS) {
        mod_block_free(G->blocks[0]);
        memmove(G->blocks, G->blocks + 1, (FZ_MAX_BLOCKS - 1) * sizeof(mod_block *));
        G->nblocks--;
    }
    G->blocks[G->nblocks++] = b;
}

static mod_block *pool_pick(void) { return G->nblocks ? G->blocks[rd_below((unsigned)G->nblocks)] : NULL; }

/* Nodes of the expanded tree, counting shared children each time (stops early). */
static int tree_size(const mod_block *b, int cap) {
    int n = 1, i;
    for (i = 0; i < mod_block_count(b) && n <= cap; i++) n += tree_size(mod_block_child_at(b, i), cap - n + 1);
    return n;
}

/* After an edit a shared child may have grown every tree it is in: drop the
   ones that got too big for the run to stay fast. */
static void pool_trim(void) {
    int i = 0;
    while (i < G->nblocks) {
        if (tree_size(G->blocks[i], FZ_MAX_TREE) > FZ_MAX_TREE) {
            mod_block_free(G->blocks[i]);
            memmove(G->blocks + i, G->blocks + i + 1, (size_t)(G->nblocks - i - 1) * sizeof(mod_block *));
            G->nblocks--;
        } else {
            i++;
        }
    }
}

static void op_make_block(void) {
    mod_input_param ins[4], inters[4];
    mod_output_param outs[4];
    mod_component_spec comps[4];
    mod_config_spec confs[4];
    mod_block_desc d;
    unsigned c1, c2;
    int ni, nm, no, nc, nf, i, k;
    mod_block *b = NULL;
    mod_status s;
    memset(&d, 0, sizeof d);
    memset(ins, 0, sizeof ins);
    memset(inters, 0, sizeof inters);
    memset(outs, 0, sizeof outs);
    memset(comps, 0, sizeof comps);
    memset(confs, 0, sizeof confs);
    d.class_name = PICK(fz_classes);
    d.description = PICK(fz_texts);
    c1 = rd();
    c2 = rd();
    ni = (int)(c1 & 3);
    nm = (int)((c1 >> 2) & 3);
    no = (int)((c1 >> 4) & 3);
    nc = (int)(c2 & 3) % 3;
    nf = (int)((c2 >> 2) & 3) % 3;
    for (k = 0; k < 2; k++) {
        mod_input_param *ps = k ? inters : ins;
        for (i = 0; i < (k ? nm : ni); i++) {
            unsigned flags;
            ps[i].name = rd_name();
            ps[i].type_hint = PICK(fz_hints);
            flags = rd();
            ps[i].required = (int)(flags & 1);
            ps[i].kwargs_type = fz_groups[(flags >> 1) & 3];
            if ((flags & 8) && ps[i].kwargs_type) ps[i].name = NULL; /* a kwargs collector */
            ps[i].default_value = rd_value();
            ps[i].description = PICK(fz_texts);
        }
    }
    for (i = 0; i < no; i++) {
        outs[i].name = rd_name();
        outs[i].type_hint = PICK(fz_hints);
        outs[i].kwargs_type = PICK(fz_groups);
    }
    for (i = 0; i < nc; i++) {
        unsigned how;
        comps[i].name = rd_name();
        comps[i].type_hint = PICK(fz_hints);
        how = rd() % 3;
        comps[i].create = how == 1 ? counter_create : how == 2 ? counter_create_fail : NULL;
        comps[i].config = how ? "12" : NULL;
        comps[i].description = "a component";
    }
    for (i = 0; i < nf; i++) {
        confs[i].name = rd_name();
        confs[i].default_value = rd_value();
        confs[i].description = "a config";
    }
    d.inputs = ins;
    d.intermediate_inputs = inters;
    d.intermediate_outputs = outs;
    d.components = comps;
    d.configs = confs;
    if (c1 & 0x40) {
        fz_script *sc = (fz_script *)fz_keep(calloc(1, sizeof(fz_script)));
        sc->n = (int)rd_below(FZ_MAX_SCRIPT + 1);
        for (i = 0; i < sc->n; i++) {
            sc->op[i] = (unsigned char)rd();
            sc->a[i] = (unsigned char)rd();
            sc->b[i] = (unsigned char)rd();
        }
        d.fn = script_fn;
        d.user = sc;
    }
    clear_error();
    s = mod_make_block(&b, &d);
    check_status(s, "mod_make_block");
    REQUIRE((s == MOD_OK) == (b != NULL), "mod_make_block: status %s with block %p", mod_status_name(s), (void *)b);
    pool_add(b);
}

static void op_typed(void) {
    mod_block *b = NULL;
    mod_status s;
    unsigned k = rd_below(FZ_DEF_COUNT);
    clear_error();
    s = mod_block_new(&b, fz_defs[k]);
    check_status(s, "mod_block_new");
    REQUIRE(k != FZ_DEF_BAD || s == MOD_ERR_DEFINITION || s == MOD_ERR_MEMORY, "a required param with a default was accepted");
    pool_add(b);
}

/* Entries of a composition; returns how many (their blocks are borrowed). */
static int rd_entries(mod_entry *e, int n, int triggers, int *size) {
    int i;
    *size = 1;
    for (i = 0; i < n; i++) {
        unsigned src;
        memset(&e[i], 0, sizeof e[i]);
        e[i].name = rd_name();
        src = rd();
        if (src < 0x20 || !G->nblocks) {
            e[i].def = fz_defs[src % FZ_DEF_COUNT];
            *size += 1;
        } else {
            e[i].block = G->blocks[(src - 0x20) % (unsigned)G->nblocks];
            *size += tree_size(e[i].block, FZ_MAX_TREE);
        }
        {
            unsigned t = rd();
            if (triggers ? t % 4 != 0 : t == 0xFF) e[i].trigger = fz_names[t % FZ_NNAMES];
        }
    }
    memset(&e[n], 0, sizeof e[n]);
    return n;
}

static void op_sequential(void) {
    mod_entry e[6];
    mod_workflow wf[3];
    const char *trig[3][4];
    mod_sequential_desc d;
    mod_block *b = NULL;
    mod_status s;
    int n, nw, i, size;
    memset(&d, 0, sizeof d);
    memset(wf, 0, sizeof wf);
    d.class_name = PICK(fz_classes);
    d.description = PICK(fz_texts);
    n = (int)rd_below(5);
    rd_entries(e, n, 0, &size);
    nw = (int)rd_below(3);
    for (i = 0; i < nw; i++) {
        int nt, k;
        wf[i].name = rd_name();
        nt = (int)rd_below(3);
        for (k = 0; k < nt; k++) trig[i][k] = rd_name();
        trig[i][nt] = NULL;
        wf[i].triggers = trig[i];
    }
    d.blocks = e;
    d.workflows = nw ? wf : NULL;
    if (size > FZ_MAX_TREE) return;
    clear_error();
    s = mod_sequential_new(&b, &d);
    check_status(s, "mod_sequential_new");
    REQUIRE((s == MOD_OK) == (b != NULL), "mod_sequential_new: status and block disagree");
    pool_add(b);
}

static void op_auto(void) {
    mod_entry e[6];
    mod_auto_desc d;
    mod_block *b = NULL;
    mod_status s;
    int size;
    memset(&d, 0, sizeof d);
    d.class_name = PICK(fz_classes);
    d.description = PICK(fz_texts);
    rd_entries(e, 1 + (int)rd_below(4), 1, &size);
    d.blocks = e;
    if (size > FZ_MAX_TREE) return;
    clear_error();
    s = mod_auto_new(&b, &d);
    check_status(s, "mod_auto_new");
    REQUIRE((s == MOD_OK) == (b != NULL), "mod_auto_new: status and block disagree");
    pool_add(b);
}

static void op_loop(void) {
    mod_entry e[6];
    mod_block *b = NULL;
    mod_status s;
    const mod_block_def *w = fz_defs[rd_below(FZ_DEF_COUNT)];
    int size;
    rd_entries(e, (int)rd_below(4), 0, &size);
    if (size > FZ_MAX_TREE) return;
    clear_error();
    s = mod_loop_new(&b, w, e);
    check_status(s, "mod_loop_new");
    REQUIRE((s == MOD_OK) == (b != NULL), "mod_loop_new: status and block disagree");
    REQUIRE(w->is_loop || s != MOD_OK, "mod_loop_new accepted a wrapper that is not a MOD_LOOP");
    pool_add(b);
}

/* A path: a name, or a walk down real children joined with dots. */
static const char *rd_path(mod_block *root) {
    unsigned mode = rd();
    char *buf;
    size_t len = 0;
    const mod_block *cur = root;
    int depth = (int)(mode % 4), k;
    if (mode >= 0xC0 || !root || mod_block_count(root) == 0) return rd_name();
    buf = (char *)fz_keep(malloc(512));
    buf[0] = '\0';
    for (k = 0; k <= depth && cur && mod_block_count(cur) > 0; k++) {
        int i = (int)rd_below((unsigned)mod_block_count(cur));
        const char *nm = mod_block_child_name(cur, i);
        size_t nl = nm ? strlen(nm) : 0;
        if (len + nl + 2 >= 512) break;
        if (len) buf[len++] = '.';
        memcpy(buf + len, nm, nl);
        len += nl;
        buf[len] = '\0';
        cur = mod_block_child_at(cur, i);
    }
    return buf;
}

static void op_insert(void) {
    mod_block *parent = pool_pick(), *child;
    int index = (int)rd() - 2, before = mod_block_count(parent);
    const char *name = rd_name();
    mod_status s;
    child = pool_pick();
    if (!parent || !child) return;
    clear_error();
    s = mod_block_insert(parent, index, name, child);
    check_status(s, "mod_block_insert");
    if (s != MOD_OK && s != MOD_ERR_MEMORY)
        REQUIRE(mod_block_count(parent) == before, "a refused insert changed the block (%d -> %d children)", before,
                mod_block_count(parent));
    pool_trim();
}

static void op_pop(void) {
    mod_block *root = pool_pick(), *out = NULL;
    const char *path;
    int keep;
    mod_status s;
    if (!root) return;
    path = rd_path(root);
    keep = (int)(rd() & 1);
    clear_error();
    s = mod_block_pop(root, path, keep ? &out : NULL);
    check_status(s, "mod_block_pop");
    REQUIRE(s == MOD_OK || out == NULL, "a failed pop gave a block");
    REQUIRE(!(keep && s == MOD_OK) || out != NULL, "a pop gave no block");
    pool_add(out);
}

static void op_pop_at(void) {
    mod_block *parent = pool_pick(), *out = NULL;
    int index = (int)rd() - 1, keep = (int)(rd() & 1);
    mod_status s;
    if (!parent) return;
    clear_error();
    s = mod_block_pop_at(parent, index, keep ? &out : NULL);
    check_status(s, "mod_block_pop_at");
    REQUIRE(s == MOD_OK || out == NULL, "a failed pop_at gave a block");
    pool_add(out);
}

static void op_replace(void) {
    mod_block *root = pool_pick(), *child;
    const char *path;
    mod_status s;
    if (!root) return;
    path = rd_path(root);
    child = pool_pick();
    clear_error();
    s = mod_block_replace(root, path, child);
    check_status(s, "mod_block_replace");
    pool_trim();
}

static void op_replace_at(void) {
    mod_block *parent = pool_pick(), *child;
    int index = (int)rd() - 1;
    mod_status s;
    child = pool_pick();
    if (!parent) return;
    clear_error();
    s = mod_block_replace_at(parent, index, child);
    check_status(s, "mod_block_replace_at");
    pool_trim();
}

static void op_validate(void) {
    mod_block *b = pool_pick();
    if (!b) return;
    clear_error();
    check_status(mod_block_validate(b), "mod_block_validate");
}

static void op_views(void) {
    mod_block *b = pool_pick();
    mod_interface *iface = NULL;
    mod_status s;
    int i;
    if (!b) return;
    clear_error();
    check_text(mod_block_repr(b), "mod_block_repr");
    clear_error();
    check_text(mod_block_doc(b), "mod_block_doc");
    clear_error();
    check_text(mod_block_mermaid(b), "mod_block_mermaid");
    (void)mod_block_class_name(b);
    (void)mod_block_description(b);
    (void)mod_block_find(b, rd_path(b));
    clear_error();
    s = mod_block_interface(b, &iface);
    check_status(s, "mod_block_interface");
    if (s == MOD_OK) {
        for (i = 0; i < iface->n_inputs; i++) REQUIRE(iface->inputs[i].name || iface->inputs[i].kwargs_type, "input without a name");
        for (i = 0; i < iface->n_outputs; i++) REQUIRE(iface->outputs[i].name != NULL, "output without a name");
        REQUIRE(iface->inputs[iface->n_inputs].name == NULL && iface->outputs[iface->n_outputs].name == NULL,
                "interface lists are not terminated");
    }
    mod_interface_free(iface);
}

static void op_exec_blocks(void) {
    mod_block *b = pool_pick(), *out = NULL;
    const char *inputs[5];
    int n = (int)rd_below(4), i;
    mod_status s;
    for (i = 0; i < n; i++) inputs[i] = rd_name();
    inputs[n] = NULL;
    if (!b) return;
    mod_block_retain(b); /* adding to the pool may drop the pool's reference */
    clear_error();
    s = mod_block_execution_blocks(b, inputs, &out);
    check_status(s, "mod_block_execution_blocks");
    REQUIRE((s == MOD_OK) == (out != NULL), "mod_block_execution_blocks: status and block disagree");
    if (out) {
        clear_error();
        check_text(mod_block_repr(out), "mod_block_repr (execution blocks)");
        pool_add(out);
        out = NULL;
    }
    {
        int nw = mod_block_workflow_count(b);
        unsigned k = rd();
        const char *name = nw && k < 0xC0 ? mod_block_workflow_name(b, (int)(k % (unsigned)nw)) : rd_name();
        clear_error();
        s = mod_block_get_workflow(b, name, &out);
        check_status(s, "mod_block_get_workflow");
        if (out) pool_add(out);
    }
    mod_block_free(b);
}

static void op_pipeline(void) {
    mod_block *b = pool_pick();
    mod_pipeline *p = NULL;
    mod_status s;
    int i;
    if (!b) return;
    clear_error();
    s = mod_pipeline_new(&p, b);
    check_status(s, "mod_pipeline_new");
    REQUIRE((s == MOD_OK) == (p != NULL), "mod_pipeline_new: status and pipeline disagree");
    if (!p) return;
    REQUIRE(mod_pipeline_blocks(p) != NULL, "a pipeline without blocks");
    clear_error();
    check_text(mod_pipeline_doc(p), "mod_pipeline_doc");
    for (i = 0; i < mod_pipeline_component_count(p); i++) {
        const char *name = mod_pipeline_component_name(p, i);
        REQUIRE(name && mod_pipeline_component(p, name), "component %d has no name or slot", i);
    }
    if (G->npipes == FZ_MAX_PIPES) {
        mod_pipeline_free(G->pipes[0]);
        memmove(G->pipes, G->pipes + 1, (FZ_MAX_PIPES - 1) * sizeof(mod_pipeline *));
        G->npipes--;
    }
    G->pipes[G->npipes++] = p;
}

static mod_pipeline *pipe_pick(void) { return G->npipes ? G->pipes[rd_below((unsigned)G->npipes)] : NULL; }

/* A name for an argument: mostly one the blocks take. */
static const char *rd_arg_name(const mod_interface *iface) {
    unsigned k = rd();
    if (iface && k < 0xC0) {
        int total = iface->n_inputs + iface->n_intermediate_inputs + iface->n_components + iface->n_configs;
        if (total > 0) {
            int i = (int)(k % (unsigned)total);
            const char *nm;
            if (i < iface->n_inputs) nm = iface->inputs[i].name;
            else if ((i -= iface->n_inputs) < iface->n_intermediate_inputs) nm = iface->intermediate_inputs[i].name;
            else if ((i -= iface->n_intermediate_inputs) < iface->n_components) nm = iface->components[i].name;
            else nm = iface->configs[i - iface->n_components].name;
            if (nm) return nm;
        }
    }
    return rd_name();
}

static int rd_args(mod_arg *args, int max, const mod_interface *iface) {
    int n = (int)rd_below((unsigned)max), i;
    for (i = 0; i < n; i++) {
        args[i].name = rd_arg_name(iface);
        args[i].value = rd_value();
    }
    args[n].name = NULL;
    memset(&args[n].value, 0, sizeof args[n].value);
    return n;
}

/* The caller's values never change: an argument that reaches blocks only as
   an input (not as an intermediate input) prints the same after the call. */
typedef struct arg_snap {
    char text[8][160];
} arg_snap;

static int is_intermediate(const mod_interface *iface, const char *name) {
    int i;
    for (i = 0; i < iface->n_intermediate_inputs; i++)
        if (iface->intermediate_inputs[i].name && strcmp(iface->intermediate_inputs[i].name, name) == 0) return 1;
    return 0;
}

static void args_snapshot(const mod_arg *args, arg_snap *snap) {
    int i;
    for (i = 0; args[i].name && i < 8; i++) mod_value_repr(&args[i].value, snap->text[i], sizeof snap->text[i]);
}

static void args_check(const mod_arg *args, const mod_interface *iface, const arg_snap *snap, const char *what) {
    int i;
    if (!iface) return;
    for (i = 0; args[i].name && i < 8; i++) {
        char now[160];
        if (is_intermediate(iface, args[i].name) || !snap->text[i][0]) continue;
        mod_value_repr(&args[i].value, now, sizeof now);
        if (!now[0]) continue; /* out of memory */
        REQUIRE(strcmp(now, snap->text[i]) == 0, "%s changed the caller's argument '%s': %s -> %s", what, args[i].name,
                snap->text[i], now);
    }
}

static mod_interface *pipe_iface(mod_pipeline *p) {
    mod_interface *iface = NULL;
    if (mod_block_interface(mod_pipeline_blocks(p), &iface) != MOD_OK) return NULL;
    return iface;
}

static void check_state(mod_state *st, const mod_interface *iface) {
    int i;
    clear_error();
    check_text(mod_state_repr(st), "mod_state_repr");
    for (i = 0; iface && i < iface->n_outputs; i++) {
        const mod_value *v = mod_state_intermediate(st, iface->outputs[i].name);
        char buf[48];
        if (v) {
            REQUIRE(v->kind != MOD_ABSENT, "an intermediate is present but absent");
            mod_value_repr(v, buf, sizeof buf);
        }
    }
    (void)mod_state_input(st, "x");
}

static void op_call(void) {
    mod_pipeline *p = pipe_pick();
    mod_interface *iface;
    mod_arg args[8];
    mod_state *st = NULL;
    mod_status s;
    if (!p) return;
    iface = pipe_iface(p);
    arg_snap snap;
    rd_args(args, 6, iface);
    args_snapshot(args, &snap);
    clear_error();
    s = mod_pipeline_call(p, args, &st);
    check_status(s, "mod_pipeline_call");
    args_check(args, iface, &snap, "mod_pipeline_call");
    REQUIRE((s == MOD_OK) == (st != NULL), "mod_pipeline_call: status %s and state %p disagree", mod_status_name(s),
            (void *)st);
    if (st) check_state(st, iface);
    mod_state_free(st);
    mod_interface_free(iface);
}

static void op_call_outputs(void) {
    mod_pipeline *p = pipe_pick();
    mod_interface *iface;
    mod_arg args[8];
    const char *names[5];
    mod_value outs[4];
    mod_status s;
    int n, i;
    if (!p) return;
    iface = pipe_iface(p);
    rd_args(args, 6, iface);
    n = (int)rd_below(4);
    for (i = 0; i < n; i++) {
        unsigned k = rd();
        names[i] = iface && iface->n_outputs && k < 0xC0 ? iface->outputs[k % (unsigned)iface->n_outputs].name : rd_name();
    }
    names[n] = NULL;
    memset(outs, 0, sizeof outs);
    clear_error();
    s = mod_pipeline_call_outputs(p, args, names, outs);
    check_status(s, "mod_pipeline_call_outputs");
    for (i = 0; i < n; i++) {
        if (s != MOD_OK) REQUIRE(outs[i].kind == MOD_ABSENT, "a failed call_outputs wrote outs[%d]", i);
        mod_value_release(&outs[i]);
    }
    mod_interface_free(iface);
}

static void op_block_run(void) {
    mod_block *b = pool_pick();
    mod_interface *iface = NULL;
    mod_arg args[8];
    mod_state *st = NULL;
    mod_status s;
    if (!b) return;
    if (mod_block_interface(b, &iface) != MOD_OK) iface = NULL;
    arg_snap snap;
    rd_args(args, 6, iface);
    args_snapshot(args, &snap);
    clear_error();
    s = mod_block_run(b, args, &st);
    check_status(s, "mod_block_run");
    args_check(args, iface, &snap, "mod_block_run");
    REQUIRE((s == MOD_OK) == (st != NULL), "mod_block_run: status and state disagree");
    if (st) check_state(st, iface);
    mod_state_free(st);
    mod_interface_free(iface);
}

static void op_set_named(int component) {
    mod_pipeline *p = pipe_pick();
    mod_interface *iface;
    const char *name;
    mod_value v;
    mod_status s;
    if (!p) return;
    iface = pipe_iface(p);
    name = rd_arg_name(iface);
    v = rd_value();
    clear_error();
    s = component ? mod_pipeline_set_component(p, name, v) : mod_pipeline_set_config(p, name, v);
    check_status(s, component ? "mod_pipeline_set_component" : "mod_pipeline_set_config");
    if (s == MOD_OK) {
        const mod_value *now = component ? mod_pipeline_component(p, name) : mod_pipeline_config(p, name);
        REQUIRE(now && now->kind == v.kind, "the value set is not the value read back");
    }
    mod_interface_free(iface);
}

static void op_values(void) {
    mod_value a = rd_value(), b = rd_value(), copy;
    int64_t index = (int64_t)rd() - 2;
    char buf[40];
    mod_status s;
    memset(&copy, 0, sizeof copy);
    clear_error();
    s = mod_value_set(&copy, a);
    check_status(s, "mod_value_set");
    mod_value_repr(&copy, buf, (size_t)(index & 31));
    mod_value_repr(&copy, NULL, 0);
    if (copy.kind == MOD_LIST) {
        clear_error();
        s = mod_list_set(&copy, index, b);
        check_status(s, "mod_list_set");
        (void)mod_list_at(&copy, index);
        (void)mod_list_len(&copy);
    } else if (copy.kind == MOD_DICT) {
        clear_error();
        s = mod_dict_set(&copy, fz_names[(uint64_t)index % FZ_NNAMES], b);
        check_status(s, "mod_dict_set");
        (void)mod_dict_at(&copy, index);
        (void)mod_dict_name_at(&copy, index);
        (void)mod_dict_get(&copy, "x");
    } else {
        clear_error();
        s = mod_list_set(&copy, 0, b);
        REQUIRE(s == MOD_ERR_KIND, "mod_list_set on a %d value", (int)copy.kind);
        s = mod_dict_set(&copy, "x", b);
        REQUIRE(s == MOD_ERR_KIND, "mod_dict_set on a %d value", (int)copy.kind);
    }
    (void)mod_value_is_set(&copy);
    (void)mod_value_ptr(&copy, "Counter");
    (void)mod_value_tensor(&copy);
    mod_value_release(&copy);
}

static void free_block(void) {
    int i;
    if (!G->nblocks) return;
    i = (int)rd_below((unsigned)G->nblocks);
    mod_block_free(G->blocks[i]);
    memmove(G->blocks + i, G->blocks + i + 1, (size_t)(G->nblocks - i - 1) * sizeof(mod_block *));
    G->nblocks--;
}

static void free_pipeline(void) {
    int i;
    if (!G->npipes) return;
    i = (int)rd_below((unsigned)G->npipes);
    mod_pipeline_free(G->pipes[i]);
    memmove(G->pipes + i, G->pipes + i + 1, (size_t)(G->npipes - i - 1) * sizeof(mod_pipeline *));
    G->npipes--;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_ctx ctx;
    long live0;
    unsigned mode, lo, hi;
    int ops, i;
    memset(&ctx, 0, sizeof ctx);
    ctx.p = data;
    ctx.n = size;
    ctx.budget = FZ_BUDGET;
    G = &ctx;
    af_disarm();
    live0 = af_live_now();
    make_tensors();
    mode = rd();
    lo = rd();
    hi = rd();
    if (mode >= FZ_OOM_MODE) af_arm(1 + (long)((lo | hi << 8) % 4096), (int)(mode & 1));
    for (ops = 0; ops < FZ_MAX_OPS && ctx.i < ctx.n; ops++) {
        switch (rd() % FZ_OP_COUNT) {
        case FZ_OP_MAKE_BLOCK: op_make_block(); break;
        case FZ_OP_TYPED: op_typed(); break;
        case FZ_OP_SEQUENTIAL: op_sequential(); break;
        case FZ_OP_AUTO: op_auto(); break;
        case FZ_OP_LOOP: op_loop(); break;
        case FZ_OP_INSERT: op_insert(); break;
        case FZ_OP_POP: op_pop(); break;
        case FZ_OP_POP_AT: op_pop_at(); break;
        case FZ_OP_REPLACE: op_replace(); break;
        case FZ_OP_REPLACE_AT: op_replace_at(); break;
        case FZ_OP_VALIDATE: op_validate(); break;
        case FZ_OP_VIEWS: op_views(); break;
        case FZ_OP_EXEC_BLOCKS: op_exec_blocks(); break;
        case FZ_OP_PIPELINE: op_pipeline(); break;
        case FZ_OP_CALL: op_call(); break;
        case FZ_OP_CALL_OUTPUTS: op_call_outputs(); break;
        case FZ_OP_BLOCK_RUN: op_block_run(); break;
        case FZ_OP_SET_COMPONENT: op_set_named(1); break;
        case FZ_OP_SET_CONFIG: op_set_named(0); break;
        case FZ_OP_FREE_BLOCK: free_block(); break;
        case FZ_OP_FREE_PIPELINE: free_pipeline(); break;
        default: op_values(); break;
        }
    }
    af_disarm();
    for (i = 0; i < ctx.npipes; i++) mod_pipeline_free(ctx.pipes[i]);
    for (i = 0; i < ctx.nblocks; i++) mod_block_free(ctx.blocks[i]);
    for (i = 0; i < ctx.nowned; i++) mod_value_release(&ctx.owned[i]);
    check_tensors();
    for (i = 0; i < FZ_NTENSORS; i++) mt_release(&ctx.tensors[i]);
    for (i = 0; i < ctx.nmem; i++) free(ctx.mem[i]);
    free(ctx.mem);
    free(ctx.owned);
    REQUIRE(af_live_now() == live0, "%ld blocks allocated by the libraries were not freed", af_live_now() - live0);
    G = NULL;
    return 0;
}
