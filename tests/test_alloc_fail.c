/* Allocation failure at every k: a composite pipeline (sequential, auto with
   triggers, loop; typed and make_block blocks; tensors, lists, kwargs,
   components and configs) through its whole life, with allocation k of the
   libraries failing (once, and from k on), for every k up to the number a
   clean run makes.

   Every library call of the scenario goes through STEP: when it fails, a
   failure must have been injected, the call must have left a message and
   its outputs untouched; the allocator is then disarmed and the same call
   is made again on the same objects, and must succeed ("the next call
   works"). So every run ends like the clean run: its text (reprs, docs,
   states) must equal the clean run's, and every block the libraries
   allocated must be freed (the counting allocator of tests/alloc_fail.h;
   make sanitize adds LeakSanitizer, make valgrind memcheck). The seeds'
   programs and the diffusion example get the same sweep, as whole
   programs, in make alloc-fail (tests/alloc_fail/). */
#define _POSIX_C_SOURCE 200809L
#include "tests/test.h"
#include "tests/alloc_fail.h"
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"
#define MODULAR_IMPLEMENTATION
#include "modular.h"

/* ---- the scenario's text (plain malloc, not counted) ---------------------- */

typedef struct text {
    char *s;
    size_t n, cap;
} text;

static void text_add(text *t, const char *s) {
    size_t k = strlen(s);
    if (t->n + k + 2 > t->cap) {
        t->cap = (t->n + k + 2) * 2;
        t->s = (char *)realloc(t->s, t->cap);
        if (!t->s) abort();
    }
    memcpy(t->s + t->n, s, k);
    t->n += k;
    t->s[t->n++] = '\n';
    t->s[t->n] = '\0';
}

/* ---- STEP: a call that may fail only by an injected failure, and then works
   when made again ------------------------------------------------------------ */

static long steps, retried, unexpected, bad_messages;
static char first_problem[512];

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static void problem(const char *fmt, ...) {
    va_list ap;
    if (first_problem[0]) return;
    va_start(ap, fmt);
    vsnprintf(first_problem, sizeof first_problem, fmt, ap);
    va_end(ap);
}

static int step_failed(const char *what, int failed) {
    steps++;
    if (!failed) return 0;
    if (!__atomic_load_n(&af_failures, __ATOMIC_RELAXED)) {
        unexpected++;
        problem("%s failed with no allocation failure: %s", what, mod_last_error());
    } else if (!mod_last_error()[0] && !mt_last_error()[0]) {
        bad_messages++;
        problem("%s failed without a message", what);
    }
    af_disarm();
    retried++;
    return 1;
}

static void clear_errors(void) {
    mod_fail(NULL, MOD_ERR_ARGUMENT, "%s", "");
    mt_clear_error();
}

/* expr returns a status; out-pointers must be untouched on failure */
#define STEP(expr)                                                                  \
    do {                                                                            \
        clear_errors();                                                             \
        if (step_failed(#expr, (expr) != 0)) {                                      \
            if ((expr) != 0) {                                                      \
                problem("%s failed again with no allocation failure: %s", #expr, mod_last_error()); \
                unexpected++;                                                       \
                goto done;                                                          \
            }                                                                       \
        }                                                                           \
    } while (0)

/* a text view (NULL on failure) appended to the scenario's text */
#define VIEW(t, expr)                                                               \
    do {                                                                            \
        char *v_;                                                                   \
        clear_errors();                                                             \
        v_ = (expr);                                                                \
        if (step_failed(#expr, v_ == NULL)) v_ = (expr);                            \
        if (!v_) {                                                                  \
            problem("%s failed again", #expr);                                \
            unexpected++;                                                           \
            goto done;                                                              \
        }                                                                           \
        text_add(t, v_);                                                            \
        mod_text_free(v_);                                                          \
    } while (0)

/* ---- the blocks ------------------------------------------------------------- */

typedef struct counter {
    int base;
} counter;
static void counter_destroy(void *p) { free(p); }
static const mod_type counter_type = {"Counter", counter_destroy, NULL};
static mod_status counter_create(const char *config, mod_value *out) {
    counter *c = (counter *)malloc(sizeof *c);
    mod_status s;
    if (!c) return MOD_ERR_MEMORY;
    c->base = atoi(config);
    s = mod_value_own_ptr(out, c, &counter_type);
    if (s != MOD_OK) free(c);
    return s;
}

#define prepare_PARAMS(X, S)                                                       \
    X(S, INPUT_REQUIRED, STR, prompt, "str", NONE, "what to draw")                 \
    X(S, INPUT, INT, seed, "int", DEF(0), "the generator's seed")                  \
    X(S, INPUT, LIST, sizes, "list", NONE, "")                                     \
    X(S, COMPONENT, PTR, counter, "Counter", CREATE(counter_create, "40"), "")     \
    X(S, CONFIG, INT, channels, "", DEF(2), "")                                    \
    X(S, OUTPUT, TENSOR, latents, "Tensor", NONE, "starting noise")                \
    X(S, KW(OUTPUT, guider), TENSOR, cond, "Tensor", NONE, "")                     \
    X(S, KW(OUTPUT, guider), INT, cond_len, "int", NONE, "")                       \
    X(S, OUTPUT, LIST, words, "list", NONE, "")
MOD_BLOCK(prepare, "Makes the starting latents and the conditioning.") {
    mt_generator g;
    int64_t n = (int64_t)strlen(s->prompt) % 3 + 1;
    mt_generator_seed(&g, (uint64_t)s->seed);
    MOD_TRY_MT(s->mod, mt_randn(&s->latents, &g, MT_SHAPE(1, s->channels, 4, 4)));
    MOD_TRY_MT(s->mod, mt_randn(&s->cond, &g, MT_SHAPE(1, 3, 8)));
    s->cond_len = ((counter *)s->counter)->base + n;
    MOD_TRY(mod_list_new(&s->words, 2));
    MOD_TRY(mod_list_set(&s->words, 0, mod_str(s->prompt)));
    MOD_TRY(mod_list_set(&s->words, 1, mod_tensor(&s->cond)));
    if (s->sizes.kind == MOD_LIST) MOD_TRY(mod_list_set(&s->sizes, 0, mod_int(-1))); /* a local copy */
    return MOD_OK;
}

/* img2img branch: mixes the image into the latents */
#define img2img_PARAMS(X, S)                                                   \
    X(S, INPUT_REQUIRED, TENSOR, image, "Tensor", NONE, "")                    \
    X(S, INPUT, FLOAT, strength, "float", DEF(0.75), "")                       \
    X(S, MODIFIED_REQUIRED, TENSOR, latents, "Tensor", NONE, "")
MOD_BLOCK(img2img, "Starts from an image.") {
    mt_tensor mixed = {MT_F32, 0, {0}, {0}, NULL, NULL};
    MOD_TRY_MT(s->mod, mt_axpby(&mixed, (float)s->strength, &s->latents, (float)(1.0 - s->strength), &s->image));
    mt_release(&s->latents);
    s->latents = mixed;
    return MOD_OK;
}

#define denoise_PARAMS(X, S)                                                   \
    X(S, INPUT, INT, num_steps, "int", DEF(3), "")                             \
    X(S, OUTPUT, INT, steps_done, "int", NONE, "")
MOD_LOOP(denoise, "The denoising loop.") {
    int64_t i;
    for (i = 0; i < s->num_steps; i++) {
        mod_iter it = {0, 0.0, NULL};
        it.i = i;
        it.t = 999.0 - 333.0 * (double)i;
        MOD_TRY(mod_loop_step(s->mod, &it));
    }
    s->steps_done = s->num_steps;
    return MOD_OK;
}

#define step_PARAMS(X, S)                                                      \
    X(S, KW(INTERMEDIATE, guider), KWARGS, guider_inputs, "", NONE, "")        \
    X(S, MODIFIED_REQUIRED, TENSOR, latents, "Tensor", NONE, "")               \
    X(S, MODIFIED, FLOAT, total_t, "float", NONE, "")
MOD_BLOCK(step, "One step: latents = 0.9 latents + 0.1 softmax(latents).") {
    const mod_iter *it = mod_block_state_iter(s->mod);
    mt_tensor sm = {MT_F32, 0, {0}, {0}, NULL, NULL}, next = {MT_F32, 0, {0}, {0}, NULL, NULL};
    mod_status st = MOD_OK;
    if (mt_softmax(&sm, &s->latents, -1) != MT_OK || mt_axpby(&next, 0.9f, &s->latents, 0.1f, &sm) != MT_OK)
        st = mod_fail(s->mod, MOD_ERR_TENSOR, "%s", mt_last_error());
    mt_release(&sm);
    if (st != MOD_OK) return st;
    mt_release(&s->latents);
    s->latents = next;
    s->total_t += it ? it->t + (double)mod_dict_len(&s->guider_inputs) : 0.0;
    return MOD_OK;
}

/* a make_block body block that records each step in a list */
static mod_status record_fn(mod_block_state *bs) {
    const mod_value *log = mod_block_state_get(bs, "log");
    const mod_iter *it = mod_block_state_iter(bs);
    mod_value next;
    int64_t n = mod_list_len(log), i;
    mod_status s;
    char *r;
    memset(&next, 0, sizeof next);
    s = mod_list_new(&next, n + 1);
    for (i = 0; s == MOD_OK && i < n; i++) s = mod_list_set(&next, i, *mod_list_at(log, i));
    if (s == MOD_OK) s = mod_list_set(&next, n, mod_int(it ? it->i : -1));
    if (s == MOD_OK) s = mod_block_state_set(bs, "log", next);
    mod_value_release(&next);
    if (s != MOD_OK) return mod_fail(bs, s, "%s", mod_last_error());
    r = mod_block_state_repr(bs);
    if (!r) return mod_fail(bs, MOD_ERR_MEMORY, "%s", mod_last_error());
    mod_text_free(r);
    return MOD_OK;
}

#define decode_PARAMS(X, S)                                                    \
    X(S, INTERMEDIATE_REQUIRED, TENSOR, latents, "Tensor", NONE, "")           \
    X(S, OUTPUT, TENSOR, image, "Tensor", NONE, "the decoded image")           \
    X(S, OUTPUT, FLOAT, mean, "float", NONE, "")
MOD_BLOCK(decode, "Decodes: image = tanh(latents), and its mean.") {
    mt_tensor m = {MT_F32, 0, {0}, {0}, NULL, NULL};
    MOD_TRY_MT(s->mod, mt_tanh(&s->image, &s->latents));
    MOD_TRY_MT(s->mod, mt_mean(&m, &s->image, MT_DIM_ALL, 0));
    s->mean = mt_f32(&m)[0];
    mt_release(&m);
    return MOD_OK;
}

/* ---- the scenario --------------------------------------------------------- */

/* mod_value_repr returns 0 (an empty text) when it runs out of memory */
static void repr_value(text *t, const mod_value *v) {
    char buf[256];
    clear_errors();
    if (step_failed("mod_value_repr", mod_value_repr(v, buf, sizeof buf) == 0) && mod_value_repr(v, buf, sizeof buf) == 0) {
        unexpected++;
        problem("mod_value_repr failed again");
    }
    text_add(t, buf);
}

static void add_state(text *t, const mod_state *st, const char *name) {
    const mod_value *v = mod_state_intermediate(st, name);
    char buf[256];
    if (v && v->kind == MOD_TENSOR) {
        /* the values, not just the shape: printed with %a */
        const mt_tensor *x = mod_value_tensor(v);
        int64_t i, n = mt_numel(x);
        for (i = 0; i < n && i < 8; i++) {
            snprintf(buf, sizeof buf, "%s[%lld] = %a", name, (long long)i, (double)mt_f32(x)[i]);
            text_add(t, buf);
        }
    } else if (v) {
        repr_value(t, v);
    }
}

static int scenario(text *t) {
    const mod_input_param log_in[] = {{"log", "list", {MOD_ABSENT, 0, 0, NULL, NULL, NULL}, 0, "", NULL},
                                      {NULL, NULL, {MOD_ABSENT, 0, 0, NULL, NULL, NULL}, 0, NULL, NULL}};
    const mod_output_param log_out[] = {{"log", "list", "every step", NULL}, {NULL, NULL, NULL, NULL}};
    const char *const i2i_triggers[] = {"image", NULL};
    const mod_workflow workflows[] = {{"image2image", i2i_triggers}, {"text2image", NULL}, {NULL, NULL}};
    mod_block *prep = NULL, *i2i = NULL, *choose = NULL, *rec = NULL, *loop = NULL, *dec = NULL, *seq = NULL;
    mod_block *extra = NULL, *popped = NULL, *exec = NULL, *wf = NULL, *run_alone = NULL;
    mod_pipeline *p = NULL;
    mod_state *st = NULL;
    mod_value sizes, outs[2], owned;
    mt_tensor image = {MT_F32, 0, {0}, {0}, NULL, NULL};
    mod_interface *iface = NULL;
    int ok = 0, i;
    memset(&sizes, 0, sizeof sizes);
    memset(outs, 0, sizeof outs);
    memset(&owned, 0, sizeof owned);

    STEP(mt_full(&image, MT_F32, MT_SHAPE(1, 2, 4, 4), 0.5));
    STEP(mod_list_new(&sizes, 2));
    STEP(mod_list_set(&sizes, 0, mod_int(64)));
    STEP(mod_list_set(&sizes, 1, mod_str("64")));

    /* blocks and compositions */
    STEP(mod_block_new(&prep, &prepare_def));
    STEP(mod_block_new(&i2i, &img2img_def));
    {
        const mod_entry e[] = {{"img2img", NULL, i2i, "image"}, {NULL, NULL, NULL, NULL}};
        mod_auto_desc d;
        memset(&d, 0, sizeof d);
        d.class_name = "AutoImage";
        d.description = "img2img when an image is given, else nothing";
        d.blocks = e;
        STEP(mod_auto_new(&choose, &d));
    }
    {
        mod_block_desc d;
        memset(&d, 0, sizeof d);
        d.inputs = log_in;
        d.intermediate_outputs = log_out;
        d.fn = record_fn;
        d.description = "Records the step.";
        STEP(mod_make_block(&rec, &d));
    }
    {
        const mod_entry body[] = {{"step", &step_def, NULL, NULL}, {"record", NULL, rec, NULL}, {NULL, NULL, NULL, NULL}};
        STEP(mod_loop_new(&loop, &denoise_def, body));
    }
    STEP(mod_block_new(&dec, &decode_def));
    {
        const mod_entry e[] = {{"prepare", NULL, prep, NULL}, {"image", NULL, choose, NULL}, {"denoise", NULL, loop, NULL},
                               {NULL, NULL, NULL, NULL}};
        mod_sequential_desc d;
        memset(&d, 0, sizeof d);
        d.class_name = "TinyDiffusion";
        d.description = "A small pipeline with every kind of block.";
        d.blocks = e;
        d.workflows = workflows;
        STEP(mod_sequential_new(&seq, &d));
    }

    /* edits: insert the decoder, insert a spare, pop it, replace */
    STEP(mod_block_insert(seq, 3, "decode", dec));
    STEP(mod_block_new(&extra, &decode_def));
    STEP(mod_block_insert(seq, 4, "spare", extra));
    STEP(mod_block_pop(seq, "spare", &popped));
    STEP(mod_block_replace(seq, "denoise.record", rec));
    STEP(mod_block_replace_at(seq, 3, dec));
    STEP(mod_block_validate(seq));
    /* inserting a name that exists moves it (here: to where it is); a failed
       move leaves the block as it was */
    clear_errors();
    if (step_failed("mod_block_insert (move)", mod_block_insert(seq, 1, "image", choose) != MOD_OK)) {
        if (mod_block_count(seq) != 4 || mod_block_find(seq, "image") != choose) {
            unexpected++;
            problem("a failed mod_block_insert of an existing name changed the block (%d children)", mod_block_count(seq));
            goto done;
        }
        STEP(mod_block_insert(seq, 1, "image", choose));
    }

    /* views */
    VIEW(t, mod_block_repr(seq));
    VIEW(t, mod_block_doc(seq));
    VIEW(t, mod_block_mermaid(seq));
    VIEW(t, mod_block_repr(loop));
    STEP(mod_block_interface(seq, &iface));
    {
        char buf[64];
        snprintf(buf, sizeof buf, "%d inputs, %d outputs", iface->n_inputs, iface->n_outputs);
        text_add(t, buf);
    }
    STEP(mod_block_execution_blocks(seq, i2i_triggers, &exec));
    VIEW(t, mod_block_repr(exec));
    STEP(mod_block_get_workflow(seq, "text2image", &wf));
    VIEW(t, mod_block_repr(wf));

    /* the pipeline and its calls */
    STEP(mod_pipeline_new(&p, seq));
    VIEW(t, mod_pipeline_doc(p));
    STEP(mod_pipeline_set_config(p, "channels", mod_int(2)));
    {
        counter *c = (counter *)malloc(sizeof *c);
        if (!c) abort();
        c->base = 7;
        if (mod_value_own_ptr(&owned, c, &counter_type) != MOD_OK) {
            step_failed("mod_value_own_ptr", 1);
            if (mod_value_own_ptr(&owned, c, &counter_type) != MOD_OK) {
                free(c);
                goto done;
            }
        }
    }
    STEP(mod_pipeline_set_component(p, "counter", owned));
    {
        mod_arg args[5];
        args[0].name = "prompt";
        args[0].value = mod_str("a red circle");
        args[1].name = "num_steps";
        args[1].value = mod_int(3);
        args[2].name = "sizes";
        args[2].value = sizes;
        args[3].name = "log";
        args[3].value = mod_none();
        args[4].name = NULL;
        memset(&args[4].value, 0, sizeof args[4].value);
        STEP(mod_pipeline_call(p, args, &st)); /* text2image */
        VIEW(t, mod_state_repr(st));
        add_state(t, st, "image");
        add_state(t, st, "mean");
        add_state(t, st, "log");
        mod_state_free(st);
        st = NULL;
        args[3].name = "image";
        args[3].value = mod_tensor(&image);
        STEP(mod_pipeline_call(p, args, &st)); /* image2image */
        VIEW(t, mod_state_repr(st));
        add_state(t, st, "image");
        add_state(t, st, "total_t");
        mod_state_free(st);
        st = NULL;
        {
            const char *const names[] = {"mean", "steps_done", NULL};
            STEP(mod_pipeline_call_outputs(p, args, names, outs));
            for (i = 0; i < 2; i++) {
                repr_value(t, &outs[i]);
                mod_value_release(&outs[i]);
            }
        }
        /* a call that fails by itself: the message, whatever the allocator does */
        args[0].name = "prompt";
        args[0].value = mod_none();
        clear_errors();
        if (mod_pipeline_call(p, args, &st) == MOD_ERR_MEMORY) {
            step_failed("mod_pipeline_call without a prompt", 1);
            clear_errors();
            if (mod_pipeline_call(p, args, &st) != MOD_ERR_MISSING) {
                unexpected++;
                problem("a call without its required prompt did not fail as missing: %s", mod_last_error());
            }
        }
        if (!strstr(mod_last_error(), "Required input 'prompt' is missing (block prepare)")) {
            unexpected++;
            problem("a call without its required prompt says: %s", mod_last_error());
        }
        if (st) {
            unexpected++;
            problem("a failed call gave a state");
            mod_state_free(st);
            st = NULL;
        }
        text_add(t, "(a call without a prompt fails)");
    }
    {
        mod_arg args[3];
        args[0].name = "latents";
        args[0].value = mod_tensor(&image);
        args[1].name = NULL;
        memset(&args[1].value, 0, sizeof args[1].value);
        STEP(mod_block_run(dec, args, &st));
        add_state(t, st, "mean");
        mod_state_free(st);
        st = NULL;
    }
    (void)run_alone;
    ok = 1;
done:
    mod_state_free(st);
    mod_interface_free(iface);
    mod_pipeline_free(p);
    mod_block_free(wf);
    mod_block_free(exec);
    mod_block_free(popped);
    mod_block_free(extra);
    mod_block_free(seq);
    mod_block_free(dec);
    mod_block_free(loop);
    mod_block_free(rec);
    mod_block_free(choose);
    mod_block_free(i2i);
    mod_block_free(prep);
    mod_value_release(&owned);
    mod_value_release(&sizes);
    mt_release(&image);
    return ok;
}

/* Runs `fn` for every k (once and from k on); returns the allocations of a
   clean run. */
static long sweep(const char *name, int (*fn)(text *)) {
    text ref = {NULL, 0, 0}, got = {NULL, 0, 0};
    long n, k, live0, stride = af_stride(), leaks = 0, differs = 0, failed = 0, first_leak = 0, first_diff = 0;
    long total_retried = 0, silent = 0, first_silent = 0;
    int mode;
    af_disarm();
    fn(&ref); /* a first run may set up lasting things (the thread pool) */
    free(ref.s);
    memset(&ref, 0, sizeof ref);
    live0 = af_live_now();
    af_disarm();
    CHECK(fn(&ref) && af_live_now() == live0, "%s: a clean run works and frees everything: %s", name, first_problem);
    n = __atomic_load_n(&af_count, __ATOMIC_RELAXED);
    for (mode = 0; mode < 2; mode++) {
        for (k = 1; k <= n; k += stride) {
            retried = 0;
            af_arm(k, mode);
            got.n = 0;
            if (!fn(&got)) failed++;
            af_disarm();
            total_retried += retried;
            if (!retried) { /* allocation k happened (the run is the clean run's) but no call failed */
                if (!silent++) first_silent = k;
                if (getenv("AF_VERBOSE")) printf("  %s: k = %ld%s fails silently\n", name, k, mode ? "+" : "");
            }
            if (af_live_now() != live0) {
                if (!leaks++) first_leak = k;
                if (getenv("AF_VERBOSE")) printf("  %s: k = %ld%s leaks %ld\n", name, k, mode ? "+" : "", af_live_now() - live0);
                live0 = af_live_now();
            }
            if (!got.s || strcmp(got.s, ref.s) != 0) {
                if (!differs++) first_diff = k;
                if (getenv("AF_VERBOSE")) printf("  %s: k = %ld%s ends differently\n", name, k, mode ? "+" : "");
            }
        }
    }
    CHECK(failed == 0 && unexpected == 0 && bad_messages == 0,
          "%s: every failed call was an injected failure, with a message, and worked when made again (%ld steps): %s",
          name, steps, first_problem[0] ? first_problem : "yes");
    CHECK(leaks == 0, "%s: every block is freed, whichever allocation fails (first leak at k = %ld, %ld runs)", name,
          first_leak, leaks);
    CHECK(differs == 0, "%s: every run ends as the clean run does (first difference at k = %ld, %ld runs)", name,
          first_diff, differs);
    CHECK(silent == 0, "%s: every injected failure made a call fail (first silent at k = %ld, %ld runs)", name,
          first_silent, silent);
    printf("%s: %ld allocations in a clean run, %ld runs with a failing allocation, %ld calls made again%s\n", name,
           n, 2 * ((n + stride - 1) / stride), total_retried, stride > 1 ? " (every 7th k under valgrind)" : "");
    free(ref.s);
    free(got.s);
    return n;
}

int main(void) {
    sweep("composite pipeline", scenario);
    return test_finish();
}
