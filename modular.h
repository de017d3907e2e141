/* modular.h - v0.1.0 - Modular Diffusers blocks in C

   Build diffusion workflows from blocks: leaf blocks that read and write a
   pipeline state through declared params, composed into sequential, loop
   and auto (input-selected) blocks, turned into a pipeline you call with
   named arguments. The C twin of Hugging Face's `diffusers.modular_pipelines`.

   USAGE

   In exactly one C or C++ file:

       #include "modular_tensor.h"   // optional, first: makes tensors a value kind
       #define MODULAR_IMPLEMENTATION
       #include "modular.h"

   Other files include it without the define. Link with -lm -lpthread.
   Tensor support needs modular_tensor.h included before modular.h in the
   implementation file too.

   EXAMPLE: a block, a pipeline, a call

       // one row per param: role, C type, name, type hint, default, description
       #define scale_PARAMS(X, S)                                                    \
           X(S, INPUT_REQUIRED, FLOAT, factor, "float", NONE, "how much to scale")     \
           X(S, INTERMEDIATE, INT, count, "int", DEF(1), "a running count")            \
           X(S, OUTPUT, INT, scaled, "int", NONE, "count times factor")

       MOD_BLOCK(scale, "Scales a count.") {         // s is a scale_state *
           s->scaled = (int64_t)(s->count * s->factor);
           s->count += 1;                             // written back: intermediate
           return MOD_OK;
       }

       mod_block *b = NULL;
       mod_pipeline *pipe = NULL;
       mod_state *st = NULL;
       if (mod_block_new(&b, &scale_def) || mod_pipeline_new(&pipe, b) ||
           mod_pipeline_call(pipe, (const mod_arg[]){{"factor", mod_float(2)}, {NULL}}, &st))
           fprintf(stderr, "%s\n", mod_last_error());
       char *text = mod_state_repr(st);               // PipelineState(...)
       puts(text);
       mod_text_free(text);
       mod_state_free(st); mod_pipeline_free(pipe); mod_block_free(b);

   CONCEPTS (seed name -> C name)

       PipelineState                 mod_state (inputs, intermediates)
       BlockState                    mod_block_state, and the typed struct
                                     <name>_state that MOD_BLOCK generates
       InputParam / OutputParam      mod_input_param / mod_output_param, or a
                                     row of a MOD_BLOCK param list
       ComponentSpec / ConfigSpec    mod_component_spec / mod_config_spec, or
                                     COMPONENT / CONFIG rows
       PipelineBlock                 MOD_BLOCK(...) + mod_block_new, or
                                     mod_make_block (the seeds' make_block)
       SequentialPipelineBlocks      mod_sequential_new (from_blocks_dict),
                                     mod_block_insert / _pop / _replace
       LoopSequentialPipelineBlocks  MOD_LOOP(...) + mod_loop_new; the loop
                                     body calls mod_loop_step (loop_step)
       AutoPipelineBlocks            mod_auto_new (block_names, blocks,
                                     block_trigger_inputs)
       get_execution_blocks          mod_block_execution_blocks
       _workflow_map / get_workflow  mod_sequential_desc.workflows,
                                     mod_block_get_workflow
       init_pipeline()               mod_pipeline_new
       ModularPipeline.__call__      mod_pipeline_call (output=:
                                     mod_pipeline_call_outputs)
       repr(blocks) / blocks.doc     mod_block_repr / mod_block_doc
       pipe.doc                      mod_pipeline_doc

   PARAM ROWS (MOD_BLOCK and MOD_LOOP)

       #define <name>_PARAMS(X, S) X(S, ROLE, TYPE, field, "hint", DEFAULT, "description") ...

       ROLE     INPUT, INPUT_REQUIRED           user input (read only; changes stay local)
                INTERMEDIATE, INTERMEDIATE_REQUIRED   intermediate input (changes written back)
                OUTPUT                          intermediate output (added to the state)
                MODIFIED                        intermediate input that is also an output
                MODIFIED_REQUIRED               the same, required
                INPUT_OUTPUT                    user input that is also an output
                COMPONENT                       a pipeline component (ComponentSpec)
                CONFIG                          a pipeline config (ConfigSpec)
                KW(role, group)                 the role, tagged with kwargs_type `group`;
                                                with TYPE KWARGS on an input role the field
                                                collects every state value tagged `group`
       TYPE     BOOL (int), INT (int64_t), FLOAT (double), STR (const char *),
                TENSOR (mt_tensor), LIST / DICT / VALUE (mod_value),
                KWARGS (mod_value holding a dict), PTR (void *, inputs and
                components only; the value's mod_type name must equal the hint)
       DEFAULT  NONE, DEF(value) (BOOL/INT/FLOAT/STR), CREATE(fn, "config")
                (COMPONENT: created by fn(config) at mod_pipeline_new)

   STATES OF A SLOT

       absent (never set), none (explicitly None), set. Triggers and required
       checks need "set"; a default applies only to an absent slot.

   ERRORS

       Every fallible call returns mod_status; mod_last_error() returns the
       message of the last failure on this thread, naming the block path and
       the param (e.g. "Required input 'prompt' is missing (block text_encoder)").
       A failed call frees what it allocated and leaves its outputs untouched.

   OPTIONS (define before the implementation)

       MOD_MALLOC(sz) / MOD_REALLOC(p, sz) / MOD_FREE(p)   allocator
       MODDEF            linkage of the public functions (default extern;
                         define MOD_STATIC for static)

   LICENSE: MIT, see the end of the file.
*/
#ifndef MODULAR_H
#define MODULAR_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MOD_VERSION_MAJOR 0
#define MOD_VERSION_MINOR 1
#define MOD_VERSION_PATCH 0

#ifndef MODDEF
#ifdef MOD_STATIC
#define MODDEF static
#else
#define MODDEF extern
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
   Status
   ------------------------------------------------------------------------ */

#define MOD_STATUS_LIST(X)                                           \
    X(MOD_OK, "ok")                                                  \
    X(MOD_ERR_ARGUMENT, "invalid argument")                          \
    X(MOD_ERR_MISSING, "required value missing")                     \
    X(MOD_ERR_KIND, "value of the wrong kind")                       \
    X(MOD_ERR_UNKNOWN, "unknown name")                               \
    X(MOD_ERR_DUPLICATE, "duplicate name")                           \
    X(MOD_ERR_INDEX, "index out of range")                           \
    X(MOD_ERR_DEFINITION, "invalid block definition")                \
    X(MOD_ERR_VALIDATION, "blocks do not fit together")              \
    X(MOD_ERR_MEMORY, "out of memory")                               \
    X(MOD_ERR_TENSOR, "tensor operation failed")                     \
    X(MOD_ERR_BLOCK, "block failed")

#define MOD__ENUM_ENTRY(name, text) name,
typedef enum mod_status { MOD_STATUS_LIST(MOD__ENUM_ENTRY) MOD_STATUS_COUNT } mod_status;

MODDEF const char *mod_status_name(mod_status s); /* "MOD_ERR_MISSING" */
MODDEF const char *mod_status_text(mod_status s); /* "required value missing" */
MODDEF const char *mod_last_error(void);          /* this thread's last message */

/* ------------------------------------------------------------------------
   Values
   ------------------------------------------------------------------------ */

typedef enum mod_kind {
    MOD_ABSENT = 0, /* no value at all (a zeroed mod_value) */
    MOD_NONE,       /* explicitly None */
    MOD_BOOL,
    MOD_INT,
    MOD_FLOAT,
    MOD_STR,
    MOD_LIST,
    MOD_DICT,
    MOD_TENSOR, /* needs modular_tensor.h */
    MOD_PTR     /* a user object described by a mod_type */
} mod_kind;

/* A user payload type: its name (shown in docs, checked against PTR hints),
   how to destroy an owned object and how to print it. */
typedef struct mod_type {
    const char *name;
    void (*destroy)(void *object);                                /* may be NULL */
    int (*describe)(const void *object, char *buf, size_t size); /* may be NULL */
} mod_type;

typedef struct mod_box mod_box; /* reference-counted owner of a payload */

/* A value. Constructors make borrowed values (no allocation; the payload
   belongs to the caller). The library keeps owned copies: whatever it
   stores, it copies (strings) or references (tensors, lists, boxes). */
typedef struct mod_value {
    mod_kind kind;
    int64_t i;            /* BOOL, INT */
    double f;             /* FLOAT */
    const void *p;        /* STR (const char *), TENSOR (const mt_tensor *), PTR, LIST, DICT */
    const mod_type *type; /* PTR */
    mod_box *box;         /* owner of p; NULL when borrowed */
} mod_value;

MODDEF mod_value mod_none(void);
MODDEF mod_value mod_bool(int b);
MODDEF mod_value mod_int(int64_t i);
MODDEF mod_value mod_float(double f);
MODDEF mod_value mod_str(const char *s);                       /* borrowed */
MODDEF mod_value mod_ptr(const void *object, const mod_type *type); /* borrowed */

/* dst = an owned copy of src (dst released first). Borrowed strings and
   tensors are copied/referenced; borrowed PTR objects stay borrowed. */
MODDEF mod_status mod_value_set(mod_value *dst, mod_value src);
/* an owned PTR value: type->destroy(object) runs with the last reference */
MODDEF mod_status mod_value_own_ptr(mod_value *dst, void *object, const mod_type *type);
MODDEF void mod_value_release(mod_value *v); /* back to absent; safe on any value */
MODDEF int mod_value_is_set(const mod_value *v); /* not absent and not none */
/* Python repr of the value ("'a cat'", "7.0", "Tensor(dtype=float32, shape=[1, 4])") */
MODDEF int mod_value_repr(const mod_value *v, char *buf, size_t size);
/* the object of a PTR value whose type name is `type_name` (NULL otherwise) */
MODDEF void *mod_value_ptr(const mod_value *v, const char *type_name);

/* lists: owned, items are owned copies */
MODDEF mod_status mod_list_new(mod_value *out, int64_t n); /* n absent items */
MODDEF mod_status mod_list_set(mod_value *list, int64_t index, mod_value item);
MODDEF int64_t mod_list_len(const mod_value *list);
MODDEF const mod_value *mod_list_at(const mod_value *list, int64_t index);

/* dicts (kwargs groups): insertion-ordered name -> value */
MODDEF mod_status mod_dict_new(mod_value *out);
MODDEF mod_status mod_dict_set(mod_value *dict, const char *name, mod_value item);
MODDEF int64_t mod_dict_len(const mod_value *dict);
MODDEF const char *mod_dict_name_at(const mod_value *dict, int64_t index);
MODDEF const mod_value *mod_dict_at(const mod_value *dict, int64_t index);
MODDEF const mod_value *mod_dict_get(const mod_value *dict, const char *name);

/* Text returned by the library (repr, doc, ...) is freed with this. */
MODDEF void mod_text_free(char *text);

/* ------------------------------------------------------------------------
   Params and specs (the seeds' InputParam, OutputParam, ComponentSpec,
   ConfigSpec). Arrays of them end with an entry whose name is NULL (and,
   for input params, whose kwargs_type is NULL too).
   ------------------------------------------------------------------------ */

typedef struct mod_input_param {
    const char *name;        /* NULL with kwargs_type set: collects a kwargs group */
    const char *type_hint;   /* doc text, e.g. "PIL.Image"; NULL shows `None` */
    mod_value default_value; /* MOD_ABSENT: no default */
    int required;
    const char *description;
    const char *kwargs_type;
} mod_input_param;

typedef struct mod_output_param {
    const char *name;
    const char *type_hint;
    const char *description;
    const char *kwargs_type; /* tags the value in the state */
} mod_output_param;

typedef mod_status (*mod_component_create)(const char *config, mod_value *out);

typedef struct mod_component_spec {
    const char *name;
    const char *type_hint;   /* the mod_type name of the component object */
    const char *description;
    const char *config;      /* passed to create */
    mod_component_create create; /* non-NULL: made by mod_pipeline_new
                                    ("from_config"); NULL: set it with
                                    mod_pipeline_set_component */
} mod_component_spec;

typedef struct mod_config_spec {
    const char *name;
    mod_value default_value;
    const char *description;
} mod_config_spec;

/* ------------------------------------------------------------------------
   Blocks
   ------------------------------------------------------------------------ */

typedef struct mod_block mod_block;             /* a block definition (ref counted) */
typedef struct mod_block_state mod_block_state; /* a block's view while it runs */
typedef struct mod_state mod_state;             /* PipelineState */
typedef struct mod_pipeline mod_pipeline;       /* ModularPipeline */

/* Field types of MOD_BLOCK rows. */
typedef enum mod_field_type {
    MOD_FIELD_BOOL = 1,
    MOD_FIELD_INT,
    MOD_FIELD_FLOAT,
    MOD_FIELD_STR,
    MOD_FIELD_TENSOR,
    MOD_FIELD_LIST,
    MOD_FIELD_DICT,
    MOD_FIELD_VALUE,
    MOD_FIELD_KWARGS,
    MOD_FIELD_PTR
} mod_field_type;

/* Param roles (flags). */
#define MOD_PARAM_INPUT 0x01u
#define MOD_PARAM_INTERMEDIATE 0x02u
#define MOD_PARAM_OUTPUT 0x04u
#define MOD_PARAM_REQUIRED 0x08u
#define MOD_PARAM_COMPONENT 0x10u
#define MOD_PARAM_CONFIG 0x20u

/* A default as plain data (MOD_BLOCK tables are static). */
typedef struct mod_default {
    mod_kind kind; /* MOD_ABSENT: none */
    int64_t i;
    double f;
    const char *s;
    mod_component_create create; /* COMPONENT rows */
} mod_default;

/* One row of a MOD_BLOCK table (generated; the table ends with name NULL). */
typedef struct mod_field {
    const char *name;
    const char *type_hint;
    const char *description;
    const char *kwargs_type;
    unsigned flags;
    mod_field_type type;
    mod_default def;
    size_t offset; /* of the field in the <name>_state struct */
} mod_field;

/* What MOD_BLOCK / MOD_LOOP generate: the class of a block. */
typedef struct mod_block_def {
    const char *class_name;
    const char *description;
    const mod_field *fields;
    size_t state_size;
    mod_status (*run)(void *state); /* the thunk calling the user function */
    int is_loop;                    /* MOD_LOOP: a loop wrapper */
} mod_block_def;

/* A block instance of a definition (a PipelineBlock, or a loop wrapper with
   no body; give it a body with mod_loop_new). */
MODDEF mod_status mod_block_new(mod_block **out, const mod_block_def *def);

/* The seeds' make_block: a leaf from run-time lists. `fn` sees the generic
   block state (get/set by name). */
typedef mod_status (*mod_block_fn)(mod_block_state *state);
typedef struct mod_block_desc {
    const char *class_name;  /* default "TestBlock" like the seeds' helper */
    const char *description;
    const mod_input_param *inputs;
    const mod_input_param *intermediate_inputs;
    const mod_output_param *intermediate_outputs;
    const mod_component_spec *components;
    const mod_config_spec *configs;
    mod_block_fn fn;         /* may be NULL: the block then changes nothing */
    void *user;              /* mod_block_state_user() */
} mod_block_desc;
MODDEF mod_status mod_make_block(mod_block **out, const mod_block_desc *desc);

/* from_blocks_dict entries: give a definition (a class: a new instance is
   made) or a block (an instance: it is shared, with a new reference). */
typedef struct mod_entry {
    const char *name;
    const mod_block_def *def;
    mod_block *block;
    const char *trigger; /* auto blocks: the input that selects it, NULL = default */
} mod_entry;

typedef struct mod_workflow {
    const char *name;              /* e.g. "image2image" */
    const char *const *triggers;   /* NULL-terminated input names, e.g. {"image", "prompt", NULL} */
} mod_workflow;

typedef struct mod_sequential_desc {
    const char *class_name;        /* default "SequentialPipelineBlocks" */
    const char *description;
    const mod_entry *blocks;       /* ends with name NULL */
    const mod_workflow *workflows; /* optional, ends with name NULL */
} mod_sequential_desc;
MODDEF mod_status mod_sequential_new(mod_block **out, const mod_sequential_desc *desc);

typedef struct mod_auto_desc {
    const char *class_name;  /* default "AutoPipelineBlocks" */
    const char *description;
    const mod_entry *blocks; /* block_names, blocks and block_trigger_inputs, in order */
} mod_auto_desc;
MODDEF mod_status mod_auto_new(mod_block **out, const mod_auto_desc *desc);

/* LoopWrapper.from_blocks_dict: a MOD_LOOP definition with body blocks. */
MODDEF mod_status mod_loop_new(mod_block **out, const mod_block_def *wrapper, const mod_entry *body);

MODDEF mod_block *mod_block_retain(mod_block *b);
/* A pointer the block's function reads with mod_block_state_user (for
   MOD_BLOCK instances; make_block takes it in its desc). */
MODDEF void mod_block_set_user(mod_block *b, void *user);
MODDEF void mod_block_free(mod_block *b); /* drops one reference; NULL is fine */

/* Editing a sequential block or a loop body (InsertableDict). `path` may be
   dotted ("denoise.after_denoiser") to reach a nested child. The parent
   keeps its own reference to an inserted child. Replace also swaps a branch
   of an auto block, which keeps its trigger. */
MODDEF mod_status mod_block_insert(mod_block *parent, int index, const char *name, mod_block *child);
MODDEF mod_status mod_block_pop(mod_block *root, const char *path, mod_block **out); /* out may be NULL */
MODDEF mod_status mod_block_pop_at(mod_block *parent, int index, mod_block **out);
MODDEF mod_status mod_block_replace(mod_block *root, const char *path, mod_block *child);
MODDEF mod_status mod_block_replace_at(mod_block *parent, int index, mod_block *child);
/* Data-flow check of a (possibly edited) block; composition and
   mod_pipeline_new run it too. */
MODDEF mod_status mod_block_validate(const mod_block *b);

/* Inspection */
MODDEF const char *mod_block_class_name(const mod_block *b);
MODDEF const char *mod_block_description(const mod_block *b);
MODDEF int mod_block_count(const mod_block *b); /* children */
MODDEF mod_block *mod_block_child_at(const mod_block *b, int index);
MODDEF const char *mod_block_child_name(const mod_block *b, int index);
MODDEF mod_block *mod_block_find(const mod_block *root, const char *path);

/* The derived interface of any block (a composite derives its own). */
typedef struct mod_interface {
    mod_input_param *inputs;               int n_inputs;
    mod_input_param *intermediate_inputs;  int n_intermediate_inputs;
    mod_output_param *outputs;             int n_outputs;
    mod_component_spec *components;        int n_components;
    mod_config_spec *configs;              int n_configs;
} mod_interface;
MODDEF mod_status mod_block_interface(const mod_block *b, mod_interface **out);
MODDEF void mod_interface_free(mod_interface *iface);

/* get_execution_blocks: the blocks that run when the NULL-terminated
   `inputs` are given, as a plain sequential block (loops stay whole). */
MODDEF mod_status mod_block_execution_blocks(const mod_block *b, const char *const *inputs, mod_block **out);
MODDEF int mod_block_workflow_count(const mod_block *b);
MODDEF const char *mod_block_workflow_name(const mod_block *b, int index);
MODDEF mod_status mod_block_get_workflow(const mod_block *b, const char *name, mod_block **out);

/* Text views (free with mod_text_free; NULL when out of memory). */
MODDEF char *mod_block_repr(const mod_block *b);    /* repr(blocks) */
MODDEF char *mod_block_doc(const mod_block *b);     /* blocks.doc */
MODDEF char *mod_block_mermaid(const mod_block *b); /* data-flow chart */

/* ------------------------------------------------------------------------
   Inside a block: the block state
   ------------------------------------------------------------------------ */

/* Loop iteration variables passed by the loop wrapper to its body. */
typedef struct mod_iter {
    int64_t i;        /* iteration index */
    double t;         /* e.g. the timestep */
    const void *user; /* anything else */
} mod_iter;

/* access by name for make_block blocks (MOD_BLOCK blocks use their typed fields;
   for them get returns NULL and set fails); repr works for both */
MODDEF const mod_value *mod_block_state_get(mod_block_state *bs, const char *name); /* NULL when absent */
MODDEF mod_status mod_block_state_set(mod_block_state *bs, const char *name, mod_value v);
MODDEF char *mod_block_state_repr(mod_block_state *bs); /* BlockState(...) */
MODDEF const mod_state *mod_block_state_pipeline(const mod_block_state *bs); /* PipelineState */
MODDEF const mod_iter *mod_block_state_iter(const mod_block_state *bs);      /* NULL outside loops */
MODDEF void *mod_block_state_user(const mod_block_state *bs);
MODDEF const char *mod_block_state_path(const mod_block_state *bs); /* "denoise.step" */
MODDEF int mod_block_state_is_set(const mod_block_state *bs, size_t offset);
MODDEF void mod_block_state_set_none(mod_block_state *bs, size_t offset);
/* Records an error for this block ("<message> (block <path>)") and returns s. */
MODDEF mod_status mod_fail(mod_block_state *bs, mod_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* LoopSequentialPipelineBlocks.loop_step: runs the body once. */
MODDEF mod_status mod_loop_step(mod_block_state *loop_state, const mod_iter *it);

#define MOD_IS_SET(s, field) mod_block_state_is_set((s)->mod, (size_t)((const char *)&(s)->field - (const char *)(s)))
#define MOD_SET_NONE(s, field) mod_block_state_set_none((s)->mod, (size_t)((const char *)&(s)->field - (const char *)(s)))
#define MOD_TRY(expr)                     \
    do {                                  \
        mod_status mod__try_s = (expr);   \
        if (mod__try_s != MOD_OK) return mod__try_s; \
    } while (0)

/* ------------------------------------------------------------------------
   Pipeline and state
   ------------------------------------------------------------------------ */

typedef struct mod_arg {
    const char *name;
    mod_value value;
} mod_arg; /* argument lists end with name NULL */

/* init_pipeline: validates, compiles the blocks into an immutable plan and
   creates the "from_config" components. Later edits of `blocks` do not
   affect the pipeline. */
MODDEF mod_status mod_pipeline_new(mod_pipeline **out, const mod_block *blocks);
MODDEF void mod_pipeline_free(mod_pipeline *p);
MODDEF char *mod_pipeline_doc(const mod_pipeline *p);
MODDEF const mod_block *mod_pipeline_blocks(const mod_pipeline *p);

/* Replaces the component `name` (the pipeline keeps an owned copy and drops
   the one it had: take your own reference first to wrap the old one). */
MODDEF mod_status mod_pipeline_set_component(mod_pipeline *p, const char *name, mod_value v);
MODDEF const mod_value *mod_pipeline_component(const mod_pipeline *p, const char *name);
MODDEF int mod_pipeline_component_count(const mod_pipeline *p);
MODDEF const char *mod_pipeline_component_name(const mod_pipeline *p, int index);
MODDEF mod_status mod_pipeline_set_config(mod_pipeline *p, const char *name, mod_value v);
MODDEF const mod_value *mod_pipeline_config(const mod_pipeline *p, const char *name);

/* Runs the pipeline; *out receives the final state (free it). Thread safe:
   any number of calls may run at once, each with its own state. */
MODDEF mod_status mod_pipeline_call(mod_pipeline *p, const mod_arg *args, mod_state **out);
/* output=[...]: owned copies of the named intermediates (absent if never
   set) into outs[0..n-1]; `names` ends with NULL. */
MODDEF mod_status mod_pipeline_call_outputs(mod_pipeline *p, const mod_arg *args, const char *const *names,
                                            mod_value *outs);
/* Runs one block on its own (diffusers #13505): builds and drops a
   pipeline; args may also name components. */
MODDEF mod_status mod_block_run(const mod_block *b, const mod_arg *args, mod_state **out);

MODDEF const mod_value *mod_state_input(const mod_state *st, const char *name);        /* NULL if absent */
MODDEF const mod_value *mod_state_intermediate(const mod_state *st, const char *name); /* NULL if absent */
MODDEF char *mod_state_repr(const mod_state *st); /* PipelineState(...) */
MODDEF void mod_state_free(mod_state *st);

/* ------------------------------------------------------------------------
   Tensors as values (when modular_tensor.h is included first)
   ------------------------------------------------------------------------ */
#ifdef MODULAR_TENSOR_H
MODDEF mod_value mod_tensor(const mt_tensor *t);          /* borrowed */
MODDEF const mt_tensor *mod_value_tensor(const mod_value *v); /* NULL unless a tensor */
/* A failed tensor call inside a block: record mt_last_error() and return. */
#define MOD_TRY_MT(bs, expr)                                                            \
    do {                                                                                \
        if ((expr) != MT_OK) return mod_fail((bs), MOD_ERR_TENSOR, "%s", mt_last_error()); \
    } while (0)
#define MOD__CTYPE_TENSOR mt_tensor
#endif

/* ------------------------------------------------------------------------
   MOD_BLOCK / MOD_LOOP: a block from a param list
   ------------------------------------------------------------------------ */

/* MOD_BLOCK(name, "description") { body }
   needs `#define name_PARAMS(X, S) X(S, ...) ...` first and generates:
     typedef struct name_state { mod_block_state *mod; <one field per row> } name_state;
     static const mod_block_def name_def;   (class name "name")
     static mod_status name_fn(name_state *s) { body }
   MOD_LOOP is the same for a loop wrapper: its rows are loop_inputs,
   loop_intermediate_inputs and loop_intermediate_outputs, and its body
   calls mod_loop_step(s->mod, &it) once per iteration. */
#define MOD_BLOCK(name, description) MOD__BLOCK(name, description, 0)
#define MOD_LOOP(name, description) MOD__BLOCK(name, description, 1)

#define MOD__BLOCK(name, description, is_loop)                                      \
    typedef struct name##_state {                                                   \
        mod_block_state *mod;                                                       \
        name##_PARAMS(MOD__FIELD_DECL, name)                                        \
    } name##_state;                                                                 \
    static mod_status name##_fn(name##_state *s);                                   \
    static mod_status name##__thunk(void *s) { return name##_fn((name##_state *)s); } \
    static const mod_field name##__fields[] = {name##_PARAMS(MOD__FIELD_ROW, name)  \
                                                   MOD__FIELD_END};                 \
    static const mod_block_def name##_def = {#name, description, name##__fields,   \
                                             sizeof(name##_state), name##__thunk, is_loop}; \
    static mod_status name##_fn(name##_state *s)

/* C types of the TYPE tags */
#define MOD__CTYPE_BOOL int
#define MOD__CTYPE_INT int64_t
#define MOD__CTYPE_FLOAT double
#define MOD__CTYPE_STR const char *
#define MOD__CTYPE_LIST mod_value
#define MOD__CTYPE_DICT mod_value
#define MOD__CTYPE_VALUE mod_value
#define MOD__CTYPE_KWARGS mod_value
#define MOD__CTYPE_PTR void *

#define MOD__FIELD_DECL(S, role, type, field, hint, dflt, desc) MOD__CTYPE_##type field;
#define MOD__FIELD_ROW(S, role, type, field, hint, dflt, desc)                            \
    {#field, hint, desc, MOD__ROLE_KWARGS(MOD__ROLE_##role), MOD__ROLE_FLAGS(MOD__ROLE_##role), \
     MOD_FIELD_##type, MOD__APPLY(MOD__DEFAULT_##type, MOD__DFLT_##dflt), offsetof(S##_state, field)},
#define MOD__FIELD_END {NULL, NULL, NULL, NULL, 0u, (mod_field_type)0, {MOD_ABSENT, 0, 0.0, NULL, NULL}, 0}

/* roles: (flags, kwargs_type) */
#define MOD__ROLE_INPUT (MOD_PARAM_INPUT, NULL)
#define MOD__ROLE_INPUT_REQUIRED (MOD_PARAM_INPUT | MOD_PARAM_REQUIRED, NULL)
#define MOD__ROLE_INTERMEDIATE (MOD_PARAM_INTERMEDIATE, NULL)
#define MOD__ROLE_INTERMEDIATE_REQUIRED (MOD_PARAM_INTERMEDIATE | MOD_PARAM_REQUIRED, NULL)
#define MOD__ROLE_OUTPUT (MOD_PARAM_OUTPUT, NULL)
#define MOD__ROLE_MODIFIED (MOD_PARAM_INTERMEDIATE | MOD_PARAM_OUTPUT, NULL)
#define MOD__ROLE_MODIFIED_REQUIRED (MOD_PARAM_INTERMEDIATE | MOD_PARAM_OUTPUT | MOD_PARAM_REQUIRED, NULL)
#define MOD__ROLE_INPUT_OUTPUT (MOD_PARAM_INPUT | MOD_PARAM_OUTPUT, NULL)
#define MOD__ROLE_COMPONENT (MOD_PARAM_COMPONENT, NULL)
#define MOD__ROLE_CONFIG (MOD_PARAM_CONFIG, NULL)
#define MOD__ROLE_KW(role, group) (MOD__ROLE_FLAGS(MOD__ROLE_##role), #group)
#define MOD__ROLE_FLAGS(pair) MOD__FIRST pair
#define MOD__ROLE_KWARGS(pair) MOD__SECOND pair
#define MOD__FIRST(a, b) a
#define MOD__SECOND(a, b) b
#define MOD__APPLY(m, args) m args

/* defaults: (has, value, extra) -> mod_default */
#define MOD__DFLT_NONE (0, 0, 0)
#define MOD__DFLT_DEF(v) (1, v, 0)
#define MOD__DFLT_CREATE(fn, config) (2, fn, config)
#define MOD__NO_DEFAULT(has) (mod_kind)(MOD_ABSENT + 0 * (int)sizeof(char[1 - 2 * ((has) == 1)]))
#define MOD__DEFAULT_BOOL(has, v, x) {(has) ? MOD_BOOL : MOD_ABSENT, (int64_t)((v) ? 1 : 0), 0.0, NULL, NULL}
#define MOD__DEFAULT_INT(has, v, x) {(has) ? MOD_INT : MOD_ABSENT, (int64_t)(v), 0.0, NULL, NULL}
#define MOD__DEFAULT_FLOAT(has, v, x) {(has) ? MOD_FLOAT : MOD_ABSENT, 0, (double)(v), NULL, NULL}
#define MOD__DEFAULT_STR(has, v, x) {(has) ? MOD_STR : MOD_ABSENT, 0, 0.0, (has) ? (const char *)(v) : (const char *)NULL, NULL}
#define MOD__DEFAULT_TENSOR(has, v, x) {MOD__NO_DEFAULT(has), 0, 0.0, NULL, NULL}
#define MOD__DEFAULT_LIST(has, v, x) {MOD__NO_DEFAULT(has), 0, 0.0, NULL, NULL}
#define MOD__DEFAULT_DICT(has, v, x) {MOD__NO_DEFAULT(has), 0, 0.0, NULL, NULL}
#define MOD__DEFAULT_VALUE(has, v, x) {MOD__NO_DEFAULT(has), 0, 0.0, NULL, NULL}
#define MOD__DEFAULT_KWARGS(has, v, x) {MOD__NO_DEFAULT(has), 0, 0.0, NULL, NULL}
#define MOD__DEFAULT_PTR(has, v, x) \
    {MOD__NO_DEFAULT(has), 0, 0.0, (has) == 2 ? (const char *)(x) : NULL, (has) == 2 ? (mod_component_create)(v) : NULL}

#ifdef __cplusplus
}
#endif

#endif /* MODULAR_H */

/* ************************************************************************
   IMPLEMENTATION
   ************************************************************************ */
#ifdef MODULAR_IMPLEMENTATION
#ifndef MODULAR_IMPLEMENTATION_DONE
#define MODULAR_IMPLEMENTATION_DONE

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#ifndef MOD_MALLOC
#define MOD_MALLOC(sz) malloc(sz)
#define MOD_REALLOC(p, sz) realloc(p, sz)
#define MOD_FREE(p) free(p)
#endif

#if defined(__cplusplus)
#define MOD__THREAD_LOCAL thread_local
#elif defined(_MSC_VER)
#define MOD__THREAD_LOCAL __declspec(thread)
#else
#define MOD__THREAD_LOCAL __thread
#endif

#if defined(__cplusplus) || !defined(__STDC_VERSION__) || __STDC_VERSION__ < 199901L
#define MOD__RESTRICT __restrict
#else
#define MOD__RESTRICT restrict
#endif

#define MOD__INC(p) __atomic_add_fetch((p), 1, __ATOMIC_RELAXED)
#define MOD__DEC(p) __atomic_sub_fetch((p), 1, __ATOMIC_ACQ_REL)

/* ---- errors ---------------------------------------------------------- */

static MOD__THREAD_LOCAL char mod__error_buf[1024];

MODDEF const char *mod_status_name(mod_status s) {
#define MOD__NAME_ENTRY(name, text) #name,
    static const char *const names[] = {MOD_STATUS_LIST(MOD__NAME_ENTRY)};
#undef MOD__NAME_ENTRY
    return (unsigned)s < MOD_STATUS_COUNT ? names[s] : "MOD_STATUS_UNKNOWN";
}

MODDEF const char *mod_status_text(mod_status s) {
#define MOD__TEXT_ENTRY(name, text) text,
    static const char *const texts[] = {MOD_STATUS_LIST(MOD__TEXT_ENTRY)};
#undef MOD__TEXT_ENTRY
    return (unsigned)s < MOD_STATUS_COUNT ? texts[s] : "unknown status";
}

MODDEF const char *mod_last_error(void) { return mod__error_buf; }

static mod_status mod__vfail(mod_status s, const char *fmt, va_list ap) {
    vsnprintf(mod__error_buf, sizeof mod__error_buf, fmt, ap);
    return s;
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static mod_status mod__fail(mod_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    mod__vfail(s, fmt, ap);
    va_end(ap);
    return s;
}

static mod_status mod__oom(void) { return mod__fail(MOD_ERR_MEMORY, "out of memory"); }

/* ---- small helpers --------------------------------------------------- */

static void *mod__alloc(size_t n) { return MOD_MALLOC(n ? n : 1); }

static void *mod__calloc(size_t count, size_t size) {
    void *p;
    if (size && count > (size_t)-1 / size) return NULL;
    p = mod__alloc(count * size);
    if (p) memset(p, 0, count * size > 0 ? count * size : 1);
    return p;
}

/* Grows *items (of `size` bytes each) so that `need` fit; 0 on failure. */
static int mod__reserve(void **items, int *cap, int need, size_t size) {
    int ncap;
    void *p;
    if (need <= *cap) return 1;
    ncap = *cap ? *cap * 2 : 8;
    while (ncap < need) ncap *= 2;
    p = MOD_REALLOC(*items, (size_t)ncap * size);
    if (!p) return 0;
    *items = p;
    *cap = ncap;
    return 1;
}

static char *mod__strdup(const char *s) {
    size_t n;
    char *d;
    if (!s) return NULL;
    n = strlen(s) + 1;
    d = (char *)mod__alloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static int mod__streq(const char *a, const char *b) {
    if (!a || !b) return a == b;
    return strcmp(a, b) == 0;
}

static const char *mod__or(const char *s, const char *fallback) { return s ? s : fallback; }

MODDEF void mod_text_free(char *text) { MOD_FREE(text); }

/* ---- string builder -------------------------------------------------- */

typedef struct mod__sb {
    char *buf;
    size_t len, cap;
    int failed;
} mod__sb;

static void mod__sb_put(mod__sb *sb, const char *s, size_t n) {
    if (sb->failed) return;
    if (sb->len + n + 1 > sb->cap) {
        size_t ncap = sb->cap ? sb->cap * 2 : 256;
        char *p;
        while (ncap < sb->len + n + 1) ncap *= 2;
        p = (char *)MOD_REALLOC(sb->buf, ncap);
        if (!p) {
            sb->failed = 1;
            return;
        }
        sb->buf = p;
        sb->cap = ncap;
    }
    memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
    sb->buf[sb->len] = '\0';
}

static void mod__sb_puts(mod__sb *sb, const char *s) { mod__sb_put(sb, s, strlen(s)); }

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void mod__sb_printf(mod__sb *sb, const char *fmt, ...) {
    char small[256];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        mod__sb_put(sb, small, (size_t)n);
    } else {
        char *big = (char *)mod__alloc((size_t)n + 1);
        if (!big) {
            sb->failed = 1;
            return;
        }
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        mod__sb_put(sb, big, (size_t)n);
        MOD_FREE(big);
    }
}

static void mod__sb_repeat(mod__sb *sb, char c, int n) {
    while (n-- > 0) mod__sb_put(sb, &c, 1);
}

/* Returns the text (owned by the caller) or NULL after a failure. */
static char *mod__sb_finish(mod__sb *sb) {
    if (sb->failed) {
        MOD_FREE(sb->buf);
        mod__oom();
        return NULL;
    }
    if (!sb->buf) return mod__strdup("");
    return sb->buf;
}

/* ---- values ---------------------------------------------------------- */

typedef struct mod__list {
    int64_t n;
    mod_value *items;
} mod__list;

typedef struct mod__dict {
    int64_t n;
    int cap;
    char **names;
    mod_value *items;
} mod__dict;

struct mod_box {
    long refcount;
    mod_kind kind;
    const mod_type *type; /* PTR */
    void *object;         /* PTR: the owned object; others: the payload */
};

static mod_box *mod__box_new(mod_kind kind, size_t payload) {
    size_t head = (sizeof(mod_box) + 15) / 16 * 16;
    mod_box *b = (mod_box *)mod__alloc(head + payload);
    if (!b) return NULL;
    b->refcount = 1;
    b->kind = kind;
    b->type = NULL;
    b->object = payload ? (char *)b + head : NULL;
    return b;
}

static void mod__box_retain(mod_box *b) {
    if (b) MOD__INC(&b->refcount);
}

static void mod__box_release(mod_box *b);

static void mod__list_clear(mod__list *l) {
    int64_t i;
    for (i = 0; i < l->n; i++) mod_value_release(&l->items[i]);
    MOD_FREE(l->items);
}

static void mod__dict_clear(mod__dict *d) {
    int64_t i;
    for (i = 0; i < d->n; i++) {
        mod_value_release(&d->items[i]);
        MOD_FREE(d->names[i]);
    }
    MOD_FREE(d->items);
    MOD_FREE(d->names);
}

#ifdef MODULAR_TENSOR_H
static void mod__tensor_box_release(void *t) { mt_release((mt_tensor *)t); }
#endif

static void mod__box_release(mod_box *b) {
    if (!b || MOD__DEC(&b->refcount) != 0) return;
    switch (b->kind) {
    case MOD_LIST: mod__list_clear((mod__list *)b->object); break;
    case MOD_DICT: mod__dict_clear((mod__dict *)b->object); break;
#ifdef MODULAR_TENSOR_H
    case MOD_TENSOR: mod__tensor_box_release(b->object); break;
#endif
    case MOD_PTR:
        if (b->type && b->type->destroy) b->type->destroy(b->object);
        break;
    default: break;
    }
    MOD_FREE(b);
}

static mod_value mod__value(mod_kind kind) {
    mod_value v;
    memset(&v, 0, sizeof v);
    v.kind = kind;
    return v;
}

MODDEF mod_value mod_none(void) { return mod__value(MOD_NONE); }

MODDEF mod_value mod_bool(int b) {
    mod_value v = mod__value(MOD_BOOL);
    v.i = b ? 1 : 0;
    return v;
}

MODDEF mod_value mod_int(int64_t i) {
    mod_value v = mod__value(MOD_INT);
    v.i = i;
    return v;
}

MODDEF mod_value mod_float(double f) {
    mod_value v = mod__value(MOD_FLOAT);
    v.f = f;
    return v;
}

MODDEF mod_value mod_str(const char *s) {
    mod_value v = mod__value(s ? MOD_STR : MOD_NONE);
    v.p = s;
    return v;
}

MODDEF mod_value mod_ptr(const void *object, const mod_type *type) {
    mod_value v = mod__value(MOD_PTR);
    v.p = object;
    v.type = type;
    return v;
}

MODDEF int mod_value_is_set(const mod_value *v) { return v && v->kind != MOD_ABSENT && v->kind != MOD_NONE; }

MODDEF void mod_value_release(mod_value *v) {
    if (!v) return;
    mod__box_release(v->box);
    memset(v, 0, sizeof *v);
}

/* An owned copy of src in *out (out is overwritten, not released). */
static mod_status mod__value_own(mod_value *out, const mod_value *src) {
    mod_value v = *src;
    if (v.box) {
        mod__box_retain(v.box);
        *out = v;
        return MOD_OK;
    }
    switch (v.kind) {
    case MOD_STR: {
        size_t n = strlen((const char *)v.p) + 1;
        mod_box *b = mod__box_new(MOD_STR, n);
        if (!b) return mod__oom();
        memcpy(b->object, v.p, n);
        v.p = b->object;
        v.box = b;
        break;
    }
    case MOD_TENSOR: {
#ifdef MODULAR_TENSOR_H
        mod_box *b = mod__box_new(MOD_TENSOR, sizeof(mt_tensor));
        if (!b) return mod__oom();
        memset(b->object, 0, sizeof(mt_tensor));
        mt_share((mt_tensor *)b->object, (const mt_tensor *)v.p);
        v.p = b->object;
        v.box = b;
        break;
#else
        return mod__fail(MOD_ERR_KIND, "tensor values need modular_tensor.h included before the implementation");
#endif
    }
    case MOD_LIST:
    case MOD_DICT:
        return mod__fail(MOD_ERR_ARGUMENT, "a list or dict value must be made with mod_list_new / mod_dict_new");
    default: break;
    }
    *out = v;
    return MOD_OK;
}

MODDEF mod_status mod_value_set(mod_value *dst, mod_value src) {
    mod_value tmp;
    mod_status s;
    if (!dst) return mod__fail(MOD_ERR_ARGUMENT, "mod_value_set: destination is NULL");
    s = mod__value_own(&tmp, &src);
    if (s != MOD_OK) return s;
    mod_value_release(dst);
    *dst = tmp;
    return MOD_OK;
}

MODDEF mod_status mod_value_own_ptr(mod_value *dst, void *object, const mod_type *type) {
    mod_box *b;
    if (!dst || !type) return mod__fail(MOD_ERR_ARGUMENT, "mod_value_own_ptr: destination and type are required");
    b = mod__box_new(MOD_PTR, 0);
    if (!b) return mod__oom();
    b->type = type;
    b->object = object;
    mod_value_release(dst);
    *dst = mod__value(MOD_PTR);
    dst->p = object;
    dst->type = type;
    dst->box = b;
    return MOD_OK;
}

MODDEF void *mod_value_ptr(const mod_value *v, const char *type_name) {
    if (!v || v->kind != MOD_PTR) return NULL;
    if (type_name && (!v->type || !mod__streq(v->type->name, type_name))) return NULL;
    return (void *)v->p;
}

MODDEF mod_status mod_list_new(mod_value *out, int64_t n) {
    mod_box *b;
    mod__list *l;
    if (!out || n < 0) return mod__fail(MOD_ERR_ARGUMENT, "mod_list_new: bad arguments");
    b = mod__box_new(MOD_LIST, sizeof(mod__list));
    if (!b) return mod__oom();
    l = (mod__list *)b->object;
    l->n = n;
    l->items = (mod_value *)mod__calloc((size_t)n, sizeof(mod_value));
    if (!l->items) {
        MOD_FREE(b);
        return mod__oom();
    }
    mod_value_release(out);
    *out = mod__value(MOD_LIST);
    out->p = l;
    out->box = b;
    return MOD_OK;
}

MODDEF int64_t mod_list_len(const mod_value *list) {
    return list && list->kind == MOD_LIST ? ((const mod__list *)list->p)->n : 0;
}

MODDEF const mod_value *mod_list_at(const mod_value *list, int64_t index) {
    const mod__list *l;
    if (!list || list->kind != MOD_LIST) return NULL;
    l = (const mod__list *)list->p;
    return index >= 0 && index < l->n ? &l->items[index] : NULL;
}

MODDEF mod_status mod_list_set(mod_value *list, int64_t index, mod_value item) {
    mod__list *l;
    if (!list || list->kind != MOD_LIST) return mod__fail(MOD_ERR_KIND, "mod_list_set: not a list");
    l = (mod__list *)list->p;
    if (index < 0 || index >= l->n)
        return mod__fail(MOD_ERR_INDEX, "mod_list_set: index %lld out of range for a list of %lld", (long long)index,
                         (long long)l->n);
    return mod_value_set(&l->items[index], item);
}

MODDEF mod_status mod_dict_new(mod_value *out) {
    mod_box *b;
    if (!out) return mod__fail(MOD_ERR_ARGUMENT, "mod_dict_new: out is NULL");
    b = mod__box_new(MOD_DICT, sizeof(mod__dict));
    if (!b) return mod__oom();
    memset(b->object, 0, sizeof(mod__dict));
    mod_value_release(out);
    *out = mod__value(MOD_DICT);
    out->p = b->object;
    out->box = b;
    return MOD_OK;
}

MODDEF int64_t mod_dict_len(const mod_value *dict) {
    return dict && dict->kind == MOD_DICT ? ((const mod__dict *)dict->p)->n : 0;
}

MODDEF const char *mod_dict_name_at(const mod_value *dict, int64_t index) {
    const mod__dict *d;
    if (!dict || dict->kind != MOD_DICT) return NULL;
    d = (const mod__dict *)dict->p;
    return index >= 0 && index < d->n ? d->names[index] : NULL;
}

MODDEF const mod_value *mod_dict_at(const mod_value *dict, int64_t index) {
    const mod__dict *d;
    if (!dict || dict->kind != MOD_DICT) return NULL;
    d = (const mod__dict *)dict->p;
    return index >= 0 && index < d->n ? &d->items[index] : NULL;
}

MODDEF const mod_value *mod_dict_get(const mod_value *dict, const char *name) {
    const mod__dict *d;
    int64_t i;
    if (!dict || dict->kind != MOD_DICT || !name) return NULL;
    d = (const mod__dict *)dict->p;
    for (i = 0; i < d->n; i++)
        if (strcmp(d->names[i], name) == 0) return &d->items[i];
    return NULL;
}

MODDEF mod_status mod_dict_set(mod_value *dict, const char *name, mod_value item) {
    mod__dict *d;
    int64_t i;
    mod_value owned;
    char *key;
    mod_status s;
    if (!dict || dict->kind != MOD_DICT || !name) return mod__fail(MOD_ERR_KIND, "mod_dict_set: not a dict");
    d = (mod__dict *)dict->p;
    for (i = 0; i < d->n; i++)
        if (strcmp(d->names[i], name) == 0) return mod_value_set(&d->items[i], item);
    s = mod__value_own(&owned, &item);
    if (s != MOD_OK) return s;
    key = mod__strdup(name);
    if (!key) goto oom;
    if (d->n >= d->cap) {
        int ncap = d->cap ? d->cap * 2 : 8;
        char **names = (char **)MOD_REALLOC(d->names, (size_t)ncap * sizeof(char *));
        mod_value *items;
        if (!names) goto oom;
        d->names = names;
        items = (mod_value *)MOD_REALLOC(d->items, (size_t)ncap * sizeof(mod_value));
        if (!items) goto oom;
        d->items = items;
        d->cap = ncap;
    }
    d->names[d->n] = key;
    d->items[d->n] = owned;
    d->n++;
    return MOD_OK;
oom:
    MOD_FREE(key);
    mod_value_release(&owned);
    return mod__oom();
}

#ifdef MODULAR_TENSOR_H
MODDEF mod_value mod_tensor(const mt_tensor *t) {
    mod_value v = mod__value(t && t->data ? MOD_TENSOR : MOD_NONE);
    v.p = t;
    return v;
}

MODDEF const mt_tensor *mod_value_tensor(const mod_value *v) {
    return v && v->kind == MOD_TENSOR ? (const mt_tensor *)v->p : NULL;
}
#endif

/* ---- Python-style text of values ------------------------------------- */

/* repr() of a float: the shortest digits that round-trip, fixed notation
   for exponents in [-4, 16), scientific otherwise, always with a '.' or 'e'. */
static void mod__float_repr(mod__sb *sb, double f) {
    char buf[40], digits[24];
    int prec, exp10, nd = 0, k;
    const char *p;
    if (f != f) {
        mod__sb_puts(sb, "nan");
        return;
    }
    if (f == HUGE_VAL || f == -HUGE_VAL) {
        mod__sb_puts(sb, f > 0 ? "inf" : "-inf");
        return;
    }
    for (prec = 0; prec < 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec, f);
        if (strtod(buf, NULL) == f) break;
    }
    p = buf;
    if (*p == '-') {
        mod__sb_puts(sb, "-");
        p++;
    }
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9') digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = '\0';
    exp10 = atoi(p + 1);
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 >= 0) {
            for (k = 0; k <= exp10; k++) mod__sb_put(sb, k < nd ? &digits[k] : "0", 1);
            mod__sb_puts(sb, ".");
            if (nd > exp10 + 1)
                mod__sb_puts(sb, digits + exp10 + 1);
            else
                mod__sb_puts(sb, "0");
        } else {
            mod__sb_puts(sb, "0.");
            mod__sb_repeat(sb, '0', -exp10 - 1);
            mod__sb_puts(sb, digits);
        }
    } else {
        mod__sb_put(sb, digits, 1);
        if (nd > 1) {
            mod__sb_puts(sb, ".");
            mod__sb_puts(sb, digits + 1);
        }
        mod__sb_printf(sb, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    }
}

static void mod__str_repr(mod__sb *sb, const char *s) {
    char q = (strchr(s, '\'') && !strchr(s, '"')) ? '"' : '\'';
    mod__sb_put(sb, &q, 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\\' || c == (unsigned char)q) {
            mod__sb_put(sb, "\\", 1);
            mod__sb_put(sb, s, 1);
        } else if (c == '\n') {
            mod__sb_puts(sb, "\\n");
        } else if (c == '\r') {
            mod__sb_puts(sb, "\\r");
        } else if (c == '\t') {
            mod__sb_puts(sb, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            mod__sb_printf(sb, "\\x%02x", c);
        } else {
            mod__sb_put(sb, s, 1);
        }
    }
    mod__sb_put(sb, &q, 1);
}

static void mod__tensor_shape(mod__sb *sb, const void *t) {
#ifdef MODULAR_TENSOR_H
    char buf[200];
    mt_shape_string((const mt_tensor *)t, buf, sizeof buf);
    mod__sb_puts(sb, buf);
#else
    (void)t;
    mod__sb_puts(sb, "[?]");
#endif
}

static void mod__value_text(mod__sb *sb, const mod_value *v, int as_str);

static void mod__value_text(mod__sb *sb, const mod_value *v, int as_str) {
    switch (v->kind) {
    case MOD_ABSENT:
    case MOD_NONE: mod__sb_puts(sb, "None"); break;
    case MOD_BOOL: mod__sb_puts(sb, v->i ? "True" : "False"); break;
    case MOD_INT: mod__sb_printf(sb, "%lld", (long long)v->i); break;
    case MOD_FLOAT: mod__float_repr(sb, v->f); break;
    case MOD_STR:
        if (as_str)
            mod__sb_puts(sb, (const char *)v->p);
        else
            mod__str_repr(sb, (const char *)v->p);
        break;
    case MOD_LIST: {
        const mod__list *l = (const mod__list *)v->p;
        int64_t i, tensors = l->n > 0;
        for (i = 0; i < l->n; i++)
            if (l->items[i].kind != MOD_TENSOR) tensors = 0;
        if (tensors) {
            mod__sb_printf(sb, "List[%lld] of Tensors with shapes [", (long long)l->n);
            for (i = 0; i < l->n; i++) {
                if (i) mod__sb_puts(sb, ", ");
                mod__tensor_shape(sb, l->items[i].p);
            }
            mod__sb_puts(sb, "]");
        } else {
            mod__sb_puts(sb, "[");
            for (i = 0; i < l->n; i++) {
                if (i) mod__sb_puts(sb, ", ");
                mod__value_text(sb, &l->items[i], 0);
            }
            mod__sb_puts(sb, "]");
        }
        break;
    }
    case MOD_DICT: {
        const mod__dict *d = (const mod__dict *)v->p;
        int64_t i;
        mod__sb_puts(sb, "{");
        for (i = 0; i < d->n; i++) {
            if (i) mod__sb_puts(sb, ", ");
            mod__str_repr(sb, d->names[i]);
            mod__sb_puts(sb, ": ");
            mod__value_text(sb, &d->items[i], 0);
        }
        mod__sb_puts(sb, "}");
        break;
    }
    case MOD_TENSOR: {
#ifdef MODULAR_TENSOR_H
        char buf[256];
        mt_describe((const mt_tensor *)v->p, buf, sizeof buf);
        mod__sb_puts(sb, buf);
#else
        mod__sb_puts(sb, "Tensor(...)");
#endif
        break;
    }
    case MOD_PTR:
        if (v->type && v->type->describe) {
            char buf[512];
            v->type->describe(v->p, buf, sizeof buf);
            mod__sb_puts(sb, buf);
        } else {
            mod__sb_printf(sb, "<%s object>", v->type && v->type->name ? v->type->name : "object");
        }
        break;
    }
}

MODDEF int mod_value_repr(const mod_value *v, char *buf, size_t size) {
    mod__sb sb = {NULL, 0, 0, 0};
    int n;
    if (!v) return 0;
    mod__value_text(&sb, v, 0);
    if (sb.failed) {
        MOD_FREE(sb.buf);
        if (size) buf[0] = '\0';
        mod__oom();
        return 0;
    }
    n = snprintf(buf, size, "%s", sb.buf ? sb.buf : "");
    MOD_FREE(sb.buf);
    return n;
}

static const char *mod__kind_name(mod_kind k) {
    static const char *const names[] = {"absent", "None", "bool", "int", "float", "str", "list", "dict", "Tensor", "object"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

static const char *mod__field_type_name(mod_field_type t) {
    switch (t) {
    case MOD_FIELD_BOOL: return "bool";
    case MOD_FIELD_INT: return "int";
    case MOD_FIELD_FLOAT: return "float";
    case MOD_FIELD_STR: return "str";
    case MOD_FIELD_TENSOR: return "Tensor";
    case MOD_FIELD_LIST: return "list";
    case MOD_FIELD_DICT:
    case MOD_FIELD_KWARGS: return "dict";
    case MOD_FIELD_PTR: return "object";
    default: return "any";
    }
}

/* Can a value of kind k sit in a field of type t? */
static int mod__field_accepts(mod_field_type t, mod_kind k) {
    switch (t) {
    case MOD_FIELD_BOOL: return k == MOD_BOOL;
    case MOD_FIELD_INT: return k == MOD_INT;
    case MOD_FIELD_FLOAT: return k == MOD_FLOAT || k == MOD_INT;
    case MOD_FIELD_STR: return k == MOD_STR;
    case MOD_FIELD_TENSOR: return k == MOD_TENSOR;
    case MOD_FIELD_LIST: return k == MOD_LIST;
    case MOD_FIELD_DICT:
    case MOD_FIELD_KWARGS: return k == MOD_DICT;
    case MOD_FIELD_PTR: return k == MOD_PTR;
    default: return 1;
    }
}

/* Can a consumer field of type c take what a producer field of type p makes? */
static int mod__fields_compatible(mod_field_type c, mod_field_type p) {
    if (c == MOD_FIELD_VALUE || p == MOD_FIELD_VALUE || c == p) return 1;
    if (c == MOD_FIELD_FLOAT && p == MOD_FIELD_INT) return 1;
    if ((c == MOD_FIELD_DICT || c == MOD_FIELD_KWARGS) && (p == MOD_FIELD_DICT || p == MOD_FIELD_KWARGS)) return 1;
    return 0;
}

/* Same object (Python `is`) for the purpose of write-back. */
static int mod__value_same(const mod_value *a, const mod_value *b) {
    if (a->kind != b->kind) return 0;
    switch (a->kind) {
    case MOD_ABSENT:
    case MOD_NONE: return 1;
    case MOD_BOOL:
    case MOD_INT: return a->i == b->i;
    case MOD_FLOAT: return a->f == b->f || (a->f != a->f && b->f != b->f);
    default: return a->p == b->p && a->type == b->type;
    }
}

/* ---- blocks ---------------------------------------------------------- */

typedef struct mod__param {
    char *name; /* NULL: a kwargs collector */
    char *hint;
    char *desc;
    char *kwargs;
    char *config;
    unsigned flags;
    mod_field_type type;
    mod_value dflt;
    size_t offset;
    mod_component_create create;
} mod__param;

enum { MOD__LEAF = 1, MOD__SEQUENTIAL, MOD__LOOP, MOD__AUTO };

struct mod_block {
    long refcount;
    int kind;
    int custom_class;
    char *class_name;
    char *description;
    const mod_block_def *def; /* MOD_BLOCK / MOD_LOOP */
    mod_block_fn fn;          /* make_block */
    void *user;
    mod__param *params;       /* leaf params, or the loop wrapper's own */
    int nparams;
    int n, cap;               /* children */
    char **names;
    mod_block **children;
    char **triggers;          /* auto: per child; NULL = default */
    int nworkflows;
    char **wf_names;
    char ***wf_triggers;      /* NULL-terminated */
};

#define MOD__IS_COLLECTOR(p) ((p)->type == MOD_FIELD_KWARGS)
#define MOD__IO_FLAGS (MOD_PARAM_INPUT | MOD_PARAM_INTERMEDIATE | MOD_PARAM_OUTPUT)

static void mod__param_clear(mod__param *p) {
    MOD_FREE(p->name);
    MOD_FREE(p->hint);
    MOD_FREE(p->desc);
    MOD_FREE(p->kwargs);
    MOD_FREE(p->config);
    mod_value_release(&p->dflt);
}

static void mod__block_destroy(mod_block *b) {
    int i;
    for (i = 0; i < b->nparams; i++) mod__param_clear(&b->params[i]);
    MOD_FREE(b->params);
    for (i = 0; i < b->n; i++) {
        MOD_FREE(b->names[i]);
        if (b->triggers) MOD_FREE(b->triggers[i]);
        mod_block_free(b->children[i]);
    }
    MOD_FREE(b->names);
    MOD_FREE(b->children);
    MOD_FREE(b->triggers);
    for (i = 0; i < b->nworkflows; i++) {
        char **t = b->wf_triggers ? b->wf_triggers[i] : NULL;
        int k;
        for (k = 0; t && t[k]; k++) MOD_FREE(t[k]);
        MOD_FREE(t);
        MOD_FREE(b->wf_names[i]);
    }
    MOD_FREE(b->wf_names);
    MOD_FREE(b->wf_triggers);
    MOD_FREE(b->class_name);
    MOD_FREE(b->description);
    MOD_FREE(b);
}

MODDEF mod_block *mod_block_retain(mod_block *b) {
    if (b) MOD__INC(&b->refcount);
    return b;
}

MODDEF void mod_block_set_user(mod_block *b, void *user) {
    if (b) b->user = user;
}

MODDEF void mod_block_free(mod_block *b) {
    if (b && MOD__DEC(&b->refcount) == 0) mod__block_destroy(b);
}

static mod_block *mod__block_alloc(int kind, const char *class_name, const char *description) {
    mod_block *b = (mod_block *)mod__calloc(1, sizeof(mod_block));
    if (!b) return NULL;
    b->refcount = 1;
    b->kind = kind;
    b->class_name = mod__strdup(class_name);
    b->description = mod__strdup(description ? description : "");
    if (!b->class_name || !b->description) {
        mod__block_destroy(b);
        return NULL;
    }
    return b;
}

static const char *mod__base_class(const mod_block *b) {
    switch (b->kind) {
    case MOD__LEAF: return "PipelineBlock";
    case MOD__LOOP: return "LoopSequentialPipelineBlocks";
    case MOD__SEQUENTIAL: return b->custom_class ? "SequentialPipelineBlocks" : "ModularPipelineBlocks";
    default: return b->custom_class ? "AutoPipelineBlocks" : "ModularPipelineBlocks";
    }
}

/* Checks one block's own params; `who` names it in messages. */
static mod_status mod__check_params(const char *who, const mod__param *ps, int n) {
    int i, k;
    for (i = 0; i < n; i++) {
        const mod__param *p = &ps[i];
        unsigned io = p->flags & MOD__IO_FLAGS;
        unsigned role = p->flags & (MOD__IO_FLAGS | MOD_PARAM_COMPONENT | MOD_PARAM_CONFIG);
        const char *name = p->name ? p->name : (p->kwargs ? p->kwargs : "?");
        if (!p->name && !(p->kwargs && p->type == MOD_FIELD_KWARGS && (io == MOD_PARAM_INPUT || io == MOD_PARAM_INTERMEDIATE)))
            return mod__fail(MOD_ERR_DEFINITION, "block %s: a param without a name must collect a kwargs group", who);
        if (role != MOD_PARAM_INPUT && role != MOD_PARAM_INTERMEDIATE && role != MOD_PARAM_OUTPUT &&
            role != (MOD_PARAM_INPUT | MOD_PARAM_OUTPUT) && role != (MOD_PARAM_INTERMEDIATE | MOD_PARAM_OUTPUT) &&
            role != MOD_PARAM_COMPONENT && role != MOD_PARAM_CONFIG)
            return mod__fail(MOD_ERR_DEFINITION, "block %s: param '%s' has an invalid role", who, name);
        if ((p->flags & MOD_PARAM_REQUIRED) && !(io & (MOD_PARAM_INPUT | MOD_PARAM_INTERMEDIATE)))
            return mod__fail(MOD_ERR_DEFINITION, "block %s: only inputs can be required ('%s')", who, name);
        /* diffusers #14388: a required param with a default is a contradiction */
        if ((p->flags & MOD_PARAM_REQUIRED) && p->dflt.kind != MOD_ABSENT)
            return mod__fail(MOD_ERR_DEFINITION, "block %s: param '%s' is both required and has a default", who, name);
        if (p->type == MOD_FIELD_PTR && !(role == MOD_PARAM_INPUT || role == MOD_PARAM_COMPONENT))
            return mod__fail(MOD_ERR_DEFINITION,
                             "block %s: PTR param '%s' can only be an input or a component (use VALUE)", who, name);
        if (p->type == MOD_FIELD_KWARGS && p->name && !p->kwargs)
            return mod__fail(MOD_ERR_DEFINITION, "block %s: KWARGS param '%s' needs KW(role, group)", who, name);
        if (p->type == MOD_FIELD_KWARGS && (p->flags & MOD_PARAM_OUTPUT))
            return mod__fail(MOD_ERR_DEFINITION, "block %s: kwargs collector '%s' cannot be an output", who, name);
        if ((role == MOD_PARAM_COMPONENT) && p->type != MOD_FIELD_PTR && p->type != MOD_FIELD_VALUE)
            return mod__fail(MOD_ERR_DEFINITION, "block %s: component '%s' must be PTR or VALUE", who, name);
        if (p->dflt.kind != MOD_ABSENT && p->dflt.kind != MOD_NONE && !mod__field_accepts(p->type, p->dflt.kind))
            return mod__fail(MOD_ERR_DEFINITION, "block %s: default of '%s' is %s, the param is %s", who, name,
                             mod__kind_name(p->dflt.kind), mod__field_type_name(p->type));
        for (k = 0; k < i; k++) {
            const mod__param *q = &ps[k];
            if ((p->name && q->name && strcmp(p->name, q->name) == 0) ||
                (MOD__IS_COLLECTOR(p) && MOD__IS_COLLECTOR(q) && mod__streq(p->kwargs, q->kwargs)))
                return mod__fail(MOD_ERR_DUPLICATE, "block %s: param '%s' is declared twice", who, name);
        }
    }
    return MOD_OK;
}

/* Copies strings of a param (the caller filled flags/type/offset). */
static int mod__param_fill(mod__param *p, const char *name, const char *hint, const char *desc, const char *kwargs,
                           const char *config) {
    p->name = mod__strdup(name);
    p->hint = mod__strdup(hint);
    p->desc = mod__strdup(desc ? desc : "");
    p->kwargs = mod__strdup(kwargs);
    p->config = mod__strdup(config);
    return (!name || p->name) && (!hint || p->hint) && p->desc && (!kwargs || p->kwargs) && (!config || p->config);
}

MODDEF mod_status mod_block_new(mod_block **out, const mod_block_def *def) {
    mod_block *b;
    int n = 0, i;
    mod_status s;
    if (!out || !def || !def->class_name || !def->fields || !def->run)
        return mod__fail(MOD_ERR_ARGUMENT, "mod_block_new: a complete definition is required");
    while (def->fields[n].name || def->fields[n].kwargs_type) n++;
    b = mod__block_alloc(def->is_loop ? MOD__LOOP : MOD__LEAF, def->class_name, def->description);
    if (!b) return mod__oom();
    b->def = def;
    b->params = (mod__param *)mod__calloc((size_t)n, sizeof(mod__param));
    if (!b->params) goto oom;
    for (i = 0; i < n; i++) {
        const mod_field *f = &def->fields[i];
        mod__param *p = &b->params[i];
        b->nparams = i + 1;
        p->flags = f->flags;
        p->type = f->type;
        p->offset = f->offset;
        p->create = f->def.create;
        if (!mod__param_fill(p, f->name, f->type_hint, f->description, f->kwargs_type, f->def.create ? f->def.s : NULL))
            goto oom;
        if (f->def.kind != MOD_ABSENT) {
            mod_value d = mod__value(f->def.kind);
            d.i = f->def.i;
            d.f = f->def.f;
            d.p = f->def.s;
            if (mod__value_own(&p->dflt, &d) != MOD_OK) goto oom;
        }
    }
    s = mod__check_params(def->class_name, b->params, b->nparams);
    if (s != MOD_OK) {
        mod__block_destroy(b);
        return s;
    }
    *out = b;
    return MOD_OK;
oom:
    mod__block_destroy(b);
    return mod__oom();
}

static int mod__count_inputs(const mod_input_param *ps) {
    int n = 0;
    while (ps && (ps[n].name || ps[n].kwargs_type)) n++;
    return n;
}

static int mod__count_outputs(const mod_output_param *ps) {
    int n = 0;
    while (ps && ps[n].name) n++;
    return n;
}

/* Adds a make_block param, merging an output into an earlier input of the
   same name (InputParam x + OutputParam x = an input that is also an output). */
static mod_status mod__add_generic_param(mod_block *b, unsigned flags, const char *name, const char *hint,
                                         const char *desc, const char *kwargs, const mod_value *dflt) {
    mod__param *p;
    int i;
    if (flags == MOD_PARAM_OUTPUT) {
        for (i = 0; i < b->nparams; i++) {
            mod__param *q = &b->params[i];
            if (q->name && name && strcmp(q->name, name) == 0 && (q->flags & MOD__IO_FLAGS) &&
                !(q->flags & MOD_PARAM_OUTPUT)) {
                q->flags |= MOD_PARAM_OUTPUT;
                if (kwargs && !q->kwargs && !(q->kwargs = mod__strdup(kwargs))) return mod__oom();
                return MOD_OK;
            }
        }
    }
    p = &b->params[b->nparams++];
    p->flags = flags;
    p->type = (!name && kwargs) ? MOD_FIELD_KWARGS : MOD_FIELD_VALUE;
    if (!mod__param_fill(p, name, hint, desc, kwargs, NULL)) return mod__oom();
    if (dflt && dflt->kind != MOD_ABSENT && mod__value_own(&p->dflt, dflt) != MOD_OK) return mod__oom();
    return MOD_OK;
}

MODDEF mod_status mod_make_block(mod_block **out, const mod_block_desc *desc) {
    mod_block *b;
    int ni, nm, no, nc = 0, nf = 0, i;
    mod_status s = MOD_OK;
    if (!out || !desc) return mod__fail(MOD_ERR_ARGUMENT, "mod_make_block: out and desc are required");
    ni = mod__count_inputs(desc->inputs);
    nm = mod__count_inputs(desc->intermediate_inputs);
    no = mod__count_outputs(desc->intermediate_outputs);
    while (desc->components && desc->components[nc].name) nc++;
    while (desc->configs && desc->configs[nf].name) nf++;
    b = mod__block_alloc(MOD__LEAF, desc->class_name ? desc->class_name : "TestBlock", desc->description);
    if (!b) return mod__oom();
    b->fn = desc->fn;
    b->user = desc->user;
    b->params = (mod__param *)mod__calloc((size_t)(ni + nm + no + nc + nf), sizeof(mod__param));
    if (!b->params) {
        mod__block_destroy(b);
        return mod__oom();
    }
    for (i = 0; i < ni && s == MOD_OK; i++) {
        const mod_input_param *p = &desc->inputs[i];
        s = mod__add_generic_param(b, MOD_PARAM_INPUT | (p->required ? MOD_PARAM_REQUIRED : 0u), p->name, p->type_hint,
                                   p->description, p->kwargs_type, &p->default_value);
    }
    for (i = 0; i < nm && s == MOD_OK; i++) {
        const mod_input_param *p = &desc->intermediate_inputs[i];
        s = mod__add_generic_param(b, MOD_PARAM_INTERMEDIATE | (p->required ? MOD_PARAM_REQUIRED : 0u), p->name,
                                   p->type_hint, p->description, p->kwargs_type, &p->default_value);
    }
    for (i = 0; i < no && s == MOD_OK; i++) {
        const mod_output_param *p = &desc->intermediate_outputs[i];
        s = mod__add_generic_param(b, MOD_PARAM_OUTPUT, p->name, p->type_hint, p->description, p->kwargs_type, NULL);
    }
    for (i = 0; i < nc && s == MOD_OK; i++) {
        const mod_component_spec *c = &desc->components[i];
        mod__param *p = &b->params[b->nparams++];
        p->flags = MOD_PARAM_COMPONENT;
        p->type = MOD_FIELD_VALUE;
        p->create = c->create;
        if (!mod__param_fill(p, c->name, c->type_hint, c->description, NULL, c->config)) s = mod__oom();
    }
    for (i = 0; i < nf && s == MOD_OK; i++) {
        const mod_config_spec *c = &desc->configs[i];
        mod__param *p = &b->params[b->nparams++];
        p->flags = MOD_PARAM_CONFIG;
        p->type = MOD_FIELD_VALUE;
        if (!mod__param_fill(p, c->name, NULL, c->description, NULL, NULL)) s = mod__oom();
        if (s == MOD_OK && c->default_value.kind != MOD_ABSENT) s = mod__value_own(&p->dflt, &c->default_value);
    }
    if (s == MOD_OK) s = mod__check_params(b->class_name, b->params, b->nparams);
    if (s != MOD_OK) {
        mod__block_destroy(b);
        return s;
    }
    *out = b;
    return MOD_OK;
}

/* ---- composites ------------------------------------------------------ */

static mod_status mod__validate(const mod_block *b, int pipeline);

static int mod__find_child(const mod_block *b, const char *name) {
    int i;
    for (i = 0; i < b->n; i++)
        if (strcmp(b->names[i], name) == 0) return i;
    return -1;
}

static int mod__contains(const mod_block *tree, const mod_block *b) {
    int i;
    if (tree == b) return 1;
    for (i = 0; i < tree->n; i++)
        if (mod__contains(tree->children[i], b)) return 1;
    return 0;
}

/* Inserts child (a new reference is taken) at index; no checks. */
static mod_status mod__child_insert(mod_block *b, int index, const char *name, mod_block *child, const char *trigger) {
    char *nm = mod__strdup(name), *tg = trigger ? mod__strdup(trigger) : NULL;
    int cap = b->cap;
    if (!nm || (trigger && !tg)) goto oom;
    if (b->n >= b->cap) {
        int ncap = b->cap ? b->cap * 2 : 8;
        char **names = (char **)MOD_REALLOC(b->names, (size_t)ncap * sizeof(char *));
        mod_block **children;
        char **triggers;
        if (!names) goto oom;
        b->names = names;
        children = (mod_block **)MOD_REALLOC(b->children, (size_t)ncap * sizeof(mod_block *));
        if (!children) goto oom;
        b->children = children;
        triggers = (char **)MOD_REALLOC(b->triggers, (size_t)ncap * sizeof(char *));
        if (!triggers) goto oom;
        b->triggers = triggers;
        cap = ncap;
    }
    b->cap = cap;
    memmove(b->names + index + 1, b->names + index, (size_t)(b->n - index) * sizeof(char *));
    memmove(b->children + index + 1, b->children + index, (size_t)(b->n - index) * sizeof(mod_block *));
    memmove(b->triggers + index + 1, b->triggers + index, (size_t)(b->n - index) * sizeof(char *));
    b->names[index] = nm;
    b->children[index] = mod_block_retain(child);
    b->triggers[index] = tg;
    b->n++;
    return MOD_OK;
oom:
    MOD_FREE(nm);
    MOD_FREE(tg);
    return mod__oom();
}

/* Removes child `index`, handing its reference to *out (or dropping it). */
static void mod__child_remove(mod_block *b, int index, mod_block **out) {
    mod_block *child = b->children[index];
    MOD_FREE(b->names[index]);
    MOD_FREE(b->triggers[index]);
    memmove(b->names + index, b->names + index + 1, (size_t)(b->n - index - 1) * sizeof(char *));
    memmove(b->children + index, b->children + index + 1, (size_t)(b->n - index - 1) * sizeof(mod_block *));
    memmove(b->triggers + index, b->triggers + index + 1, (size_t)(b->n - index - 1) * sizeof(char *));
    b->n--;
    if (out)
        *out = child;
    else
        mod_block_free(child);
}

/* Adds the entries (from_blocks_dict). */
static mod_status mod__add_entries(mod_block *b, const mod_entry *entries, int allow_triggers) {
    int i;
    for (i = 0; entries && entries[i].name; i++) {
        const mod_entry *e = &entries[i];
        mod_block *child = NULL;
        mod_status s;
        if (mod__find_child(b, e->name) >= 0)
            return mod__fail(MOD_ERR_DUPLICATE, "%s: two sub-blocks are named '%s'", b->class_name, e->name);
        if (!allow_triggers && e->trigger)
            return mod__fail(MOD_ERR_DEFINITION, "%s: sub-block '%s' has a trigger, but only auto blocks select by trigger",
                             b->class_name, e->name);
        if ((e->def != NULL) == (e->block != NULL))
            return mod__fail(MOD_ERR_ARGUMENT, "%s: sub-block '%s' needs exactly one of a definition or a block",
                             b->class_name, e->name);
        if (e->block) {
            if (mod__contains(e->block, b))
                return mod__fail(MOD_ERR_ARGUMENT, "%s: sub-block '%s' would contain itself", b->class_name, e->name);
            child = mod_block_retain(e->block);
        } else if ((s = mod_block_new(&child, e->def)) != MOD_OK) {
            return s;
        }
        s = mod__child_insert(b, b->n, e->name, child, e->trigger);
        mod_block_free(child);
        if (s != MOD_OK) return s;
    }
    return MOD_OK;
}

MODDEF mod_status mod_sequential_new(mod_block **out, const mod_sequential_desc *desc) {
    mod_block *b;
    mod_status s;
    int i, n = 0;
    if (!out || !desc) return mod__fail(MOD_ERR_ARGUMENT, "mod_sequential_new: out and desc are required");
    b = mod__block_alloc(MOD__SEQUENTIAL, desc->class_name ? desc->class_name : "SequentialPipelineBlocks",
                         desc->description);
    if (!b) return mod__oom();
    b->custom_class = desc->class_name != NULL;
    s = mod__add_entries(b, desc->blocks, 0);
    while (s == MOD_OK && desc->workflows && desc->workflows[n].name) n++;
    if (s == MOD_OK && n) {
        b->wf_names = (char **)mod__calloc((size_t)n, sizeof(char *));
        b->wf_triggers = (char ***)mod__calloc((size_t)n, sizeof(char **));
        if (!b->wf_names || !b->wf_triggers) s = mod__oom();
        for (i = 0; s == MOD_OK && i < n; i++) {
            const mod_workflow *w = &desc->workflows[i];
            int k, nt = 0;
            while (w->triggers && w->triggers[nt]) nt++;
            b->nworkflows = i + 1;
            b->wf_names[i] = mod__strdup(w->name);
            b->wf_triggers[i] = (char **)mod__calloc((size_t)nt + 1, sizeof(char *));
            if (!b->wf_names[i] || !b->wf_triggers[i]) s = mod__oom();
            for (k = 0; s == MOD_OK && k < nt; k++)
                if (!(b->wf_triggers[i][k] = mod__strdup(w->triggers[k]))) s = mod__oom();
            for (k = 0; s == MOD_OK && k < i; k++)
                if (strcmp(b->wf_names[k], w->name) == 0)
                    s = mod__fail(MOD_ERR_DUPLICATE, "%s: two workflows are named '%s'", b->class_name, w->name);
        }
    }
    if (s == MOD_OK) s = mod__validate(b, 0);
    if (s != MOD_OK) {
        mod__block_destroy(b);
        return s;
    }
    *out = b;
    return MOD_OK;
}

MODDEF mod_status mod_auto_new(mod_block **out, const mod_auto_desc *desc) {
    mod_block *b;
    mod_status s;
    int i, k, defaults = 0;
    if (!out || !desc) return mod__fail(MOD_ERR_ARGUMENT, "mod_auto_new: out and desc are required");
    b = mod__block_alloc(MOD__AUTO, desc->class_name ? desc->class_name : "AutoPipelineBlocks", desc->description);
    if (!b) return mod__oom();
    b->custom_class = desc->class_name != NULL;
    s = mod__add_entries(b, desc->blocks, 1);
    if (s == MOD_OK && b->n == 0) s = mod__fail(MOD_ERR_DEFINITION, "%s: an auto block needs at least one sub-block", b->class_name);
    for (i = 0; s == MOD_OK && i < b->n; i++) {
        if (!b->triggers[i] && ++defaults > 1)
            s = mod__fail(MOD_ERR_DEFINITION, "%s: two default sub-blocks ('%s' and another); at most one may have no trigger",
                          b->class_name, b->names[i]);
        for (k = 0; s == MOD_OK && b->triggers[i] && k < i; k++)
            if (b->triggers[k] && strcmp(b->triggers[k], b->triggers[i]) == 0)
                s = mod__fail(MOD_ERR_DUPLICATE, "%s: trigger '%s' selects both '%s' and '%s'", b->class_name,
                              b->triggers[i], b->names[k], b->names[i]);
    }
    if (s == MOD_OK) s = mod__validate(b, 0);
    if (s != MOD_OK) {
        mod__block_destroy(b);
        return s;
    }
    *out = b;
    return MOD_OK;
}

MODDEF mod_status mod_loop_new(mod_block **out, const mod_block_def *wrapper, const mod_entry *body) {
    mod_block *b = NULL;
    mod_status s;
    if (!out || !wrapper) return mod__fail(MOD_ERR_ARGUMENT, "mod_loop_new: out and wrapper are required");
    if (!wrapper->is_loop)
        return mod__fail(MOD_ERR_DEFINITION, "mod_loop_new: %s is not a MOD_LOOP definition", mod__or(wrapper->class_name, "?"));
    s = mod_block_new(&b, wrapper);
    if (s != MOD_OK) return s;
    s = mod__add_entries(b, body, 0);
    if (s == MOD_OK) s = mod__validate(b, 0);
    if (s != MOD_OK) {
        mod_block_free(b);
        return s;
    }
    *out = b;
    return MOD_OK;
}

/* ---- editing --------------------------------------------------------- */

/* Finds the parent of a dotted path and the index of its last part. */
static mod_status mod__resolve(mod_block *root, const char *path, mod_block **parent, int *index) {
    mod_block *cur = root;
    const char *p = path;
    if (!root || !path || !*path) return mod__fail(MOD_ERR_ARGUMENT, "a block and a path are required");
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        int i, found = -1;
        for (i = 0; i < cur->n; i++)
            if (strlen(cur->names[i]) == len && strncmp(cur->names[i], p, len) == 0) found = i;
        if (found < 0)
            return mod__fail(MOD_ERR_UNKNOWN, "%s has no sub-block '%.*s' (path '%s')", cur->class_name, (int)len, p, path);
        if (!dot) {
            *parent = cur;
            *index = found;
            return MOD_OK;
        }
        cur = cur->children[found];
        p = dot + 1;
    }
}

static mod_status mod__check_editable(const mod_block *b) {
    if (!b) return mod__fail(MOD_ERR_ARGUMENT, "block is NULL");
    if (b->kind != MOD__SEQUENTIAL && b->kind != MOD__LOOP)
        return mod__fail(MOD_ERR_ARGUMENT, "%s: only sequential blocks and loop bodies can be edited (this is %s)",
                         b->class_name, mod__base_class(b));
    return MOD_OK;
}

MODDEF mod_status mod_block_insert(mod_block *parent, int index, const char *name, mod_block *child) {
    mod_status s = mod__check_editable(parent);
    int old;
    if (s != MOD_OK) return s;
    if (!name || !*name || !child) return mod__fail(MOD_ERR_ARGUMENT, "mod_block_insert: a name and a block are required");
    if (mod__contains(child, parent))
        return mod__fail(MOD_ERR_ARGUMENT, "mod_block_insert: '%s' would contain itself", name);
    old = mod__find_child(parent, name);
    if (index < 0 || index > parent->n - (old >= 0))
        return mod__fail(MOD_ERR_INDEX, "mod_block_insert: index %d out of range [0, %d] for %s", index,
                         parent->n - (old >= 0), parent->class_name);
    if (old >= 0) { /* InsertableDict.insert replaces the key: move it, allocating nothing */
        char *nm = parent->names[old], *tg = parent->triggers[old];
        mod_block *prev = parent->children[old];
        int from = old < index ? old + 1 : index, to = old < index ? old : index + 1;
        size_t count = (size_t)(old < index ? index - old : old - index);
        memmove(parent->names + to, parent->names + from, count * sizeof(char *));
        memmove(parent->children + to, parent->children + from, count * sizeof(mod_block *));
        memmove(parent->triggers + to, parent->triggers + from, count * sizeof(char *));
        parent->names[index] = nm;
        parent->triggers[index] = tg;
        parent->children[index] = mod_block_retain(child);
        mod_block_free(prev);
        return MOD_OK;
    }
    return mod__child_insert(parent, index, name, child, NULL);
}

MODDEF mod_status mod_block_pop(mod_block *root, const char *path, mod_block **out) {
    mod_block *parent;
    int index;
    mod_status s = mod__resolve(root, path, &parent, &index);
    if (s != MOD_OK) return s;
    s = mod__check_editable(parent);
    if (s != MOD_OK) return s;
    mod__child_remove(parent, index, out);
    return MOD_OK;
}

MODDEF mod_status mod_block_pop_at(mod_block *parent, int index, mod_block **out) {
    mod_status s = mod__check_editable(parent);
    if (s != MOD_OK) return s;
    if (index < 0 || index >= parent->n)
        return mod__fail(MOD_ERR_INDEX, "mod_block_pop_at: index %d out of range for %s with %d sub-blocks", index,
                         parent->class_name, parent->n);
    mod__child_remove(parent, index, out);
    return MOD_OK;
}

static mod_status mod__replace(mod_block *parent, int index, mod_block *child) {
    /* an auto block's branch may be swapped too (its trigger stays) */
    mod_status s = parent && parent->kind == MOD__AUTO ? MOD_OK : mod__check_editable(parent);
    if (s != MOD_OK) return s;
    if (!child) return mod__fail(MOD_ERR_ARGUMENT, "replacement block is NULL");
    if (mod__contains(child, parent))
        return mod__fail(MOD_ERR_ARGUMENT, "replacing '%s' would make %s contain itself", parent->names[index],
                         parent->class_name);
    mod_block_retain(child);
    mod_block_free(parent->children[index]);
    parent->children[index] = child;
    return MOD_OK;
}

MODDEF mod_status mod_block_replace(mod_block *root, const char *path, mod_block *child) {
    mod_block *parent;
    int index;
    mod_status s = mod__resolve(root, path, &parent, &index);
    if (s != MOD_OK) return s;
    return mod__replace(parent, index, child);
}

MODDEF mod_status mod_block_replace_at(mod_block *parent, int index, mod_block *child) {
    if (parent && (index < 0 || index >= parent->n))
        return mod__fail(MOD_ERR_INDEX, "mod_block_replace_at: index %d out of range for %s with %d sub-blocks", index,
                         parent->class_name, parent->n);
    return mod__replace(parent, index, child);
}

MODDEF const char *mod_block_class_name(const mod_block *b) { return b ? b->class_name : NULL; }
MODDEF const char *mod_block_description(const mod_block *b) { return b ? b->description : NULL; }
MODDEF int mod_block_count(const mod_block *b) { return b ? b->n : 0; }
MODDEF mod_block *mod_block_child_at(const mod_block *b, int index) {
    return b && index >= 0 && index < b->n ? b->children[index] : NULL;
}
MODDEF const char *mod_block_child_name(const mod_block *b, int index) {
    return b && index >= 0 && index < b->n ? b->names[index] : NULL;
}

MODDEF mod_block *mod_block_find(const mod_block *root, const char *path) {
    mod_block *parent;
    int index;
    char saved[sizeof mod__error_buf];
    mod_block *found = NULL;
    memcpy(saved, mod__error_buf, sizeof saved);
    if (mod__resolve((mod_block *)root, path, &parent, &index) == MOD_OK) found = parent->children[index];
    memcpy(mod__error_buf, saved, sizeof saved);
    return found;
}

/* ---- derived interfaces ---------------------------------------------- */

typedef struct mod__dp {
    const mod__param *p;
    int required;
    const mod_value *dflt; /* NULL: no default */
    const mod_block *owner; /* the block that declares the param */
} mod__dp;

typedef struct mod__dlist {
    mod__dp *v;
    int n, cap;
} mod__dlist;

typedef struct mod__iface {
    mod__dlist in, inter, out, comp, conf;
} mod__iface;

static const char *mod__key(const mod__param *p) { return MOD__IS_COLLECTOR(p) ? p->kwargs : p->name; }

static int mod__key_eq(const mod__param *a, const mod__param *b) {
    if (MOD__IS_COLLECTOR(a) || MOD__IS_COLLECTOR(b))
        return MOD__IS_COLLECTOR(a) && MOD__IS_COLLECTOR(b) && mod__streq(a->kwargs, b->kwargs);
    return strcmp(a->name, b->name) == 0;
}

static int mod__dl_find(const mod__dlist *l, const mod__param *p) {
    int i;
    for (i = 0; i < l->n; i++)
        if (mod__key_eq(l->v[i].p, p)) return i;
    return -1;
}

static int mod__dl_find_name(const mod__dlist *l, const char *name) {
    int i;
    for (i = 0; i < l->n; i++)
        if (strcmp(mod__key(l->v[i].p), name) == 0) return i;
    return -1;
}

static int mod__dl_push(mod__dlist *l, mod__dp dp) {
    if (!mod__reserve((void **)&l->v, &l->cap, l->n + 1, sizeof(mod__dp))) return 0;
    l->v[l->n++] = dp;
    return 1;
}

static void mod__iface_free(mod__iface *f) {
    MOD_FREE(f->in.v);
    MOD_FREE(f->inter.v);
    MOD_FREE(f->out.v);
    MOD_FREE(f->comp.v);
    MOD_FREE(f->conf.v);
    memset(f, 0, sizeof *f);
}

static int mod__value_equal(const mod_value *a, const mod_value *b) {
    if (a->kind != b->kind) return 0;
    if (a->kind == MOD_STR) return strcmp((const char *)a->p, (const char *)b->p) == 0;
    return mod__value_same(a, b);
}

static int mod__has_default_branch(const mod_block *b) {
    int i;
    for (i = 0; i < b->n; i++)
        if (!b->triggers[i]) return 1;
    return 0;
}

/* The params a block declares itself (a leaf's, or a loop wrapper's own). */
static int mod__own_iface(const mod_block *b, mod__iface *f) {
    int i, ok = 1;
    for (i = 0; i < b->nparams && ok; i++) {
        const mod__param *p = &b->params[i];
        mod__dp dp;
        dp.p = p;
        dp.required = (p->flags & MOD_PARAM_REQUIRED) != 0;
        dp.dflt = p->dflt.kind != MOD_ABSENT ? &p->dflt : NULL;
        dp.owner = b;
        if (p->flags & MOD_PARAM_INPUT) ok = ok && mod__dl_push(&f->in, dp);
        if (p->flags & MOD_PARAM_INTERMEDIATE) ok = ok && mod__dl_push(&f->inter, dp);
        if (p->flags & MOD_PARAM_OUTPUT) ok = ok && mod__dl_push(&f->out, dp);
        if (p->flags & MOD_PARAM_COMPONENT) ok = ok && mod__dl_push(&f->comp, dp);
        if (p->flags & MOD_PARAM_CONFIG) ok = ok && mod__dl_push(&f->conf, dp);
    }
    return ok;
}

/* combine_inputs: first occurrence wins, except that a later default fills
   an empty one; `required` is or-ed (a sequence needs it if any child does). */
static int mod__combine_any(mod__dlist *dst, const mod__dlist *src) {
    int i;
    for (i = 0; i < src->n; i++) {
        int k = mod__dl_find(dst, src->v[i].p);
        if (k < 0) {
            if (!mod__dl_push(dst, src->v[i])) return 0;
        } else {
            if (!dst->v[k].dflt && src->v[i].dflt) {
                int req = dst->v[k].required;
                dst->v[k] = src->v[i];
                dst->v[k].required = req;
            }
            dst->v[k].required |= src->v[i].required;
        }
    }
    return 1;
}

/* combine_outputs: first occurrence, unless a later one carries a kwargs tag. */
static int mod__combine_outputs(mod__dlist *dst, const mod__dlist *src) {
    int i;
    for (i = 0; i < src->n; i++) {
        int k = mod__dl_find(dst, src->v[i].p);
        if (k < 0) {
            if (!mod__dl_push(dst, src->v[i])) return 0;
        } else if (!dst->v[k].p->kwargs && src->v[i].p->kwargs) {
            dst->v[k] = src->v[i];
        }
    }
    return 1;
}

static int mod__combine_unique(mod__dlist *dst, const mod__dlist *src) {
    int i;
    for (i = 0; i < src->n; i++)
        if (mod__dl_find_name(dst, src->v[i].p->name) < 0 && !mod__dl_push(dst, src->v[i])) return 0;
    return 1;
}

static mod_status mod__derive(const mod_block *b, mod__iface *f);

/* Sequential derivation over children: an intermediate input produced by an
   earlier child that always runs is not asked for (each name once). */
static mod_status mod__derive_children(const mod_block *b, mod__iface *f) {
    mod__dlist produced;
    int i, k, ok = 1;
    mod_status s = MOD_OK;
    memset(&produced, 0, sizeof produced);
    for (i = 0; i < b->n && ok && s == MOD_OK; i++) {
        mod__iface c;
        memset(&c, 0, sizeof c);
        s = mod__derive(b->children[i], &c);
        if (s == MOD_OK) {
            ok = mod__combine_any(&f->in, &c.in);
            for (k = 0; ok && k < c.inter.n; k++)
                if (mod__dl_find(&produced, c.inter.v[k].p) < 0 && mod__dl_find(&f->inter, c.inter.v[k].p) < 0)
                    ok = mod__dl_push(&f->inter, c.inter.v[k]);
            /* an auto block without a default may be skipped: its outputs
               are not guaranteed */
            if (!(b->children[i]->kind == MOD__AUTO && !mod__has_default_branch(b->children[i])))
                for (k = 0; ok && k < c.out.n; k++) ok = mod__dl_push(&produced, c.out.v[k]);
            ok = ok && mod__combine_outputs(&f->out, &c.out) && mod__combine_unique(&f->comp, &c.comp) &&
                 mod__combine_unique(&f->conf, &c.conf);
        }
        mod__iface_free(&c);
    }
    MOD_FREE(produced.v);
    if (s == MOD_OK && !ok) s = mod__oom();
    return s;
}

/* Auto derivation: a param is required only when every branch requires it
   (and a default branch exists, else the block may not run); a default is
   shown only when every branch that declares the param agrees on it. No
   branch's default reaches its siblings (diffusers #14132). */
static mod_status mod__auto_merge(mod__dlist *dst, const mod__iface *branches, int nb, int which, int has_default) {
    int i, k, j;
    for (i = 0; i < nb; i++) {
        const mod__dlist *src = which ? &branches[i].inter : &branches[i].in;
        for (k = 0; k < src->n; k++) {
            mod__dp dp = src->v[k];
            int required = has_default, agree = 1;
            const mod_value *dflt = NULL;
            if (mod__dl_find(dst, dp.p) >= 0) continue;
            for (j = 0; j < nb; j++) {
                const mod__dlist *other = which ? &branches[j].inter : &branches[j].in;
                int at = mod__dl_find(other, dp.p);
                if (at < 0 || !other->v[at].required) required = 0;
                if (at >= 0) {
                    const mod_value *d = other->v[at].dflt;
                    if (!dflt && d && agree && j == i) dflt = d;
                    if (j != i && !((d == NULL && dp.dflt == NULL) || (d && dp.dflt && mod__value_equal(d, dp.dflt))))
                        agree = 0;
                }
            }
            dp.required = required;
            dp.dflt = agree ? dp.dflt : NULL;
            if (!mod__dl_push(dst, dp)) return mod__oom();
        }
    }
    return MOD_OK;
}

static mod_status mod__derive(const mod_block *b, mod__iface *f) {
    mod_status s = MOD_OK;
    int i;
    memset(f, 0, sizeof *f);
    if (b->kind == MOD__LEAF) {
        if (!mod__own_iface(b, f)) s = mod__oom();
    } else if (b->kind == MOD__SEQUENTIAL) {
        s = mod__derive_children(b, f);
    } else if (b->kind == MOD__LOOP) {
        mod__iface own;
        memset(&own, 0, sizeof own);
        s = mod__derive_children(b, f);
        if (s == MOD_OK && !mod__own_iface(b, &own)) s = mod__oom();
        if (s == MOD_OK) {
            int ok = mod__combine_any(&f->in, &own.in) && mod__combine_unique(&f->comp, &own.comp) &&
                     mod__combine_unique(&f->conf, &own.conf);
            for (i = 0; ok && i < own.inter.n; i++)
                if (mod__dl_find(&f->inter, own.inter.v[i].p) < 0) ok = mod__dl_push(&f->inter, own.inter.v[i]);
            for (i = 0; ok && i < own.out.n; i++)
                if (mod__dl_find(&f->out, own.out.v[i].p) < 0) ok = mod__dl_push(&f->out, own.out.v[i]);
            if (!ok) s = mod__oom();
        }
        mod__iface_free(&own);
    } else {
        mod__iface *br = (mod__iface *)mod__calloc((size_t)b->n, sizeof(mod__iface));
        int has_default = mod__has_default_branch(b), ok = 1;
        if (!br) return mod__oom();
        for (i = 0; i < b->n && s == MOD_OK; i++) s = mod__derive(b->children[i], &br[i]);
        if (s == MOD_OK) s = mod__auto_merge(&f->in, br, b->n, 0, has_default);
        if (s == MOD_OK) s = mod__auto_merge(&f->inter, br, b->n, 1, has_default);
        for (i = 0; s == MOD_OK && ok && i < b->n; i++)
            ok = mod__combine_outputs(&f->out, &br[i].out) && mod__combine_unique(&f->comp, &br[i].comp) &&
                 mod__combine_unique(&f->conf, &br[i].conf);
        if (s == MOD_OK && !ok) s = mod__oom();
        for (i = 0; i < b->n; i++) mod__iface_free(&br[i]);
        MOD_FREE(br);
    }
    if (s != MOD_OK) mod__iface_free(f);
    return s;
}

MODDEF mod_status mod_block_interface(const mod_block *b, mod_interface **out) {
    mod__iface f;
    mod_interface *r;
    mod_status s;
    int i;
    if (!b || !out) return mod__fail(MOD_ERR_ARGUMENT, "mod_block_interface: block and out are required");
    s = mod__derive(b, &f);
    if (s != MOD_OK) return s;
    r = (mod_interface *)mod__calloc(1, sizeof *r);
    if (r) {
        r->inputs = (mod_input_param *)mod__calloc((size_t)f.in.n + 1, sizeof(mod_input_param));
        r->intermediate_inputs = (mod_input_param *)mod__calloc((size_t)f.inter.n + 1, sizeof(mod_input_param));
        r->outputs = (mod_output_param *)mod__calloc((size_t)f.out.n + 1, sizeof(mod_output_param));
        r->components = (mod_component_spec *)mod__calloc((size_t)f.comp.n + 1, sizeof(mod_component_spec));
        r->configs = (mod_config_spec *)mod__calloc((size_t)f.conf.n + 1, sizeof(mod_config_spec));
    }
    if (!r || !r->inputs || !r->intermediate_inputs || !r->outputs || !r->components || !r->configs) {
        mod_interface_free(r);
        mod__iface_free(&f);
        return mod__oom();
    }
    for (i = 0; i < 2; i++) {
        const mod__dlist *l = i ? &f.inter : &f.in;
        mod_input_param *dst = i ? r->intermediate_inputs : r->inputs;
        int k;
        for (k = 0; k < l->n; k++) {
            const mod__param *p = l->v[k].p;
            dst[k].name = MOD__IS_COLLECTOR(p) ? NULL : p->name;
            dst[k].type_hint = p->hint;
            if (l->v[k].dflt) dst[k].default_value = *l->v[k].dflt;
            dst[k].required = l->v[k].required;
            dst[k].description = p->desc;
            dst[k].kwargs_type = p->kwargs;
        }
        if (i)
            r->n_intermediate_inputs = l->n;
        else
            r->n_inputs = l->n;
    }
    for (i = 0; i < f.out.n; i++) {
        const mod__param *p = f.out.v[i].p;
        r->outputs[i].name = p->name;
        r->outputs[i].type_hint = p->hint;
        r->outputs[i].description = p->desc;
        r->outputs[i].kwargs_type = p->kwargs;
    }
    r->n_outputs = f.out.n;
    for (i = 0; i < f.comp.n; i++) {
        const mod__param *p = f.comp.v[i].p;
        r->components[i].name = p->name;
        r->components[i].type_hint = p->hint;
        r->components[i].description = p->desc;
        r->components[i].config = p->config;
        r->components[i].create = p->create;
    }
    r->n_components = f.comp.n;
    for (i = 0; i < f.conf.n; i++) {
        const mod__param *p = f.conf.v[i].p;
        r->configs[i].name = p->name;
        r->configs[i].default_value = p->dflt;
        r->configs[i].description = p->desc;
    }
    r->n_configs = f.conf.n;
    mod__iface_free(&f);
    *out = r;
    return MOD_OK;
}

MODDEF void mod_interface_free(mod_interface *iface) {
    if (!iface) return;
    MOD_FREE(iface->inputs);
    MOD_FREE(iface->intermediate_inputs);
    MOD_FREE(iface->outputs);
    MOD_FREE(iface->components);
    MOD_FREE(iface->configs);
    MOD_FREE(iface);
}

/* ---- text views ------------------------------------------------------ */

static const char *mod__hint(const mod__param *p) { return p->hint && *p->hint ? p->hint : "None"; }

/* wrap_text of the original: words joined by spaces, a new line (with
   `indent`) before a word that would pass max_len characters. */
static void mod__wrap(mod__sb *sb, const char *text, const char *indent, size_t max_len) {
    size_t cur = 0;
    int first = 1;
    const char *p = text;
    for (;;) {
        const char *w;
        size_t len;
        while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
        if (!*p) break;
        w = p;
        while (*p && *p != ' ' && *p != '\n' && *p != '\t' && *p != '\r') p++;
        len = (size_t)(p - w);
        if (!first && cur + len + 1 > max_len) {
            mod__sb_puts(sb, "\n");
            mod__sb_puts(sb, indent);
            cur = 0;
            first = 1;
        }
        if (!first) {
            mod__sb_puts(sb, " ");
            cur++;
        }
        mod__sb_put(sb, w, len);
        cur += len;
        first = 0;
    }
}

/* format_params (indent 2): "  Inputs:" then each param. */
static void mod__format_params(mod__sb *sb, const mod__dlist *a, const mod__dlist *b, const char *header, int inputs) {
    int i, k, total = a->n + (b ? b->n : 0);
    if (!total) return;
    mod__sb_printf(sb, "  %s:", header);
    for (k = 0; k < 2; k++) {
        const mod__dlist *l = k ? b : a;
        for (i = 0; l && i < l->n; i++) {
            const mod__dp *dp = &l->v[i];
            if (k && mod__dl_find(a, dp->p) >= 0) continue; /* each name once */
            if (MOD__IS_COLLECTOR(dp->p))
                mod__sb_printf(sb, "\n\n      **%s (`%s`", dp->p->kwargs, mod__hint(dp->p));
            else
                mod__sb_printf(sb, "\n\n      %s (`%s`", dp->p->name, mod__hint(dp->p));
            if (inputs && !dp->required) {
                mod__sb_puts(sb, ", *optional*");
                if (dp->dflt && dp->dflt->kind != MOD_NONE) {
                    mod__sb_puts(sb, ", defaults to ");
                    mod__value_text(sb, dp->dflt, 1);
                }
            }
            mod__sb_puts(sb, "):");
            if (dp->p->desc && *dp->p->desc) {
                mod__sb_puts(sb, "\n          ");
                mod__wrap(sb, dp->p->desc, "          ", 115);
            }
        }
    }
}

static void mod__format_components(mod__sb *sb, const mod__dlist *l, const char *indent, int empty_lines) {
    int i;
    if (!l->n) return;
    mod__sb_printf(sb, "%s  Components:", indent);
    if (empty_lines) mod__sb_puts(sb, "\n");
    for (i = 0; i < l->n; i++) {
        const mod__param *p = l->v[i].p;
        mod__sb_printf(sb, "\n%s      %s (`%s`)", indent, p->name, mod__hint(p));
        if (p->desc && *p->desc) mod__sb_printf(sb, ": %s", p->desc);
        if (empty_lines && i + 1 < l->n) mod__sb_puts(sb, "\n");
    }
}

static void mod__format_configs(mod__sb *sb, const mod__dlist *l, const char *indent, int empty_lines) {
    int i;
    if (!l->n) return;
    mod__sb_printf(sb, "%s  Configs:", indent);
    if (empty_lines) mod__sb_puts(sb, "\n");
    for (i = 0; i < l->n; i++) {
        const mod__param *p = l->v[i].p;
        mod__sb_printf(sb, "\n%s      %s (default: ", indent, p->name);
        mod__value_text(sb, &p->dflt, 1);
        mod__sb_puts(sb, ")");
        if (p->desc && *p->desc) mod__sb_printf(sb, ": %s", p->desc);
        if (empty_lines && i + 1 < l->n) mod__sb_puts(sb, "\n");
    }
}

/* The description, plus the workflows of a sequential block (format_workflow). */
static void mod__full_description(mod__sb *sb, const mod_block *b) {
    int i, k;
    mod__sb_puts(sb, b->description);
    if (!b->nworkflows) return;
    mod__sb_puts(sb, "\n\nSupported workflows:");
    for (i = 0; i < b->nworkflows; i++) {
        mod__sb_printf(sb, "\n  - `%s`: ", b->wf_names[i]);
        if (!b->wf_triggers[i][0]) mod__sb_puts(sb, "default (no additional inputs required)");
        for (k = 0; b->wf_triggers[i][k]; k++)
            mod__sb_printf(sb, "%s`%s`", k ? ", " : "requires ", b->wf_triggers[i][k]);
    }
}

MODDEF char *mod_block_doc(const mod_block *b) {
    mod__sb sb = {NULL, 0, 0, 0}, desc = {NULL, 0, 0, 0};
    mod__iface f;
    if (!b) return NULL;
    if (mod__derive(b, &f) != MOD_OK) return NULL;
    mod__sb_printf(&sb, "class %s\n\n", b->class_name);
    mod__full_description(&desc, b);
    if (desc.buf && desc.len) {
        /* description.strip().split("\n"), each line indented by two */
        const char *s = desc.buf, *e = desc.buf + desc.len;
        while (s < e && (*s == ' ' || *s == '\n' || *s == '\t')) s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\t')) e--;
        mod__sb_puts(&sb, "  ");
        for (; s < e; s++) {
            mod__sb_put(&sb, s, 1);
            if (*s == '\n') mod__sb_puts(&sb, "  ");
        }
        mod__sb_puts(&sb, "\n\n");
    }
    MOD_FREE(desc.buf);
    if (desc.failed) sb.failed = 1;
    if (f.comp.n) {
        mod__format_components(&sb, &f.comp, "", 1);
        mod__sb_puts(&sb, "\n\n");
    }
    if (f.conf.n) {
        mod__format_configs(&sb, &f.conf, "", 1);
        mod__sb_puts(&sb, "\n\n");
    }
    mod__format_params(&sb, &f.in, &f.inter, "Inputs", 1);
    mod__sb_puts(&sb, "\n\n");
    mod__format_params(&sb, &f.out, NULL, "Outputs", 0);
    mod__iface_free(&f);
    return mod__sb_finish(&sb);
}

/* "  Description: first line" then the other lines indented by six. */
static void mod__repr_description(mod__sb *sb, const mod_block *b) {
    mod__sb d = {NULL, 0, 0, 0};
    const char *s;
    mod__full_description(&d, b);
    mod__sb_puts(sb, "  Description: ");
    for (s = d.buf ? d.buf : ""; *s; s++) {
        mod__sb_put(sb, s, 1);
        if (*s == '\n') mod__sb_puts(sb, "      ");
    }
    mod__sb_puts(sb, "\n");
    if (d.failed) sb->failed = 1;
    MOD_FREE(d.buf);
}

/* Trigger inputs of a tree in declaration order, each once. */
static int mod__collect_triggers(const mod_block *b, const char ***names, int *n, int *cap) {
    int i, k;
    for (i = 0; i < b->n; i++) {
        if (b->kind == MOD__AUTO && b->triggers[i]) {
            int seen = 0;
            for (k = 0; k < *n; k++)
                if (strcmp((*names)[k], b->triggers[i]) == 0) seen = 1;
            if (!seen) {
                if (!mod__reserve((void **)names, cap, *n + 1, sizeof(char *))) return 0;
                (*names)[(*n)++] = b->triggers[i];
            }
        }
        if (!mod__collect_triggers(b->children[i], names, n, cap)) return 0;
    }
    return 1;
}

static void mod__repr_leaf(mod__sb *sb, const mod_block *b, const mod__iface *f) {
    int i, first = 1, any = 0;
    mod__sb_printf(sb, "%s(\n  Class: %s\n", b->class_name, mod__base_class(b));
    mod__repr_description(sb, b);
    mod__sb_puts(sb, "  ");
    mod__format_components(sb, &f->comp, "  ", 0);
    mod__sb_puts(sb, "\n  ");
    mod__format_configs(sb, &f->conf, "  ", 0);
    /* format_inputs_short: required names, then name=default */
    mod__sb_puts(sb, "\n  Inputs:\n    ");
    for (i = 0; i < f->in.n; i++)
        if (f->in.v[i].required) {
            mod__sb_printf(sb, "%s%s", first ? "" : ", ", mod__key(f->in.v[i].p));
            first = 0;
        }
    for (i = 0; i < f->in.n; i++)
        if (!f->in.v[i].required) {
            mod__sb_printf(sb, "%s%s=", first ? "" : ", ", mod__key(f->in.v[i].p));
            if (f->in.v[i].dflt)
                mod__value_text(sb, f->in.v[i].dflt, 1);
            else
                mod__sb_puts(sb, "None");
            first = 0;
        }
    /* format_intermediates_short */
    mod__sb_puts(sb, "\n  Intermediates:");
    if (f->inter.n) {
        mod__sb_puts(sb, "\n    - inputs: ");
        for (i = 0; i < f->inter.n; i++) {
            const mod__param *p = f->inter.v[i].p;
            if (i) mod__sb_puts(sb, ", ");
            if (f->inter.v[i].required)
                mod__sb_printf(sb, "Required(%s)", mod__key(p));
            else if (MOD__IS_COLLECTOR(p))
                mod__sb_printf(sb, "*_%s", p->kwargs);
            else
                mod__sb_puts(sb, p->name);
        }
        any = 1;
    }
    for (first = 1, i = 0; i < f->out.n; i++)
        if (mod__dl_find(&f->inter, f->out.v[i].p) >= 0) {
            mod__sb_printf(sb, "%s%s", first ? "\n    - modified: " : ", ", f->out.v[i].p->name);
            first = 0;
            any = 1;
        }
    for (first = 1, i = 0; i < f->out.n; i++)
        if (mod__dl_find(&f->inter, f->out.v[i].p) < 0) {
            mod__sb_printf(sb, "%s%s", first ? "\n    - outputs: " : ", ", f->out.v[i].p->name);
            first = 0;
            any = 1;
        }
    if (!any) mod__sb_puts(sb, "\n    (none)");
    mod__sb_puts(sb, "\n)");
}

static void mod__repr_composite(mod__sb *sb, const mod_block *b, const mod__iface *f) {
    int i;
    const char **trig = NULL;
    int nt = 0, ct = 0;
    mod__sb_printf(sb, "%s(\n  Class: %s\n", b->class_name, mod__base_class(b));
    if (b->kind != MOD__LOOP && !b->nworkflows) {
        if (!mod__collect_triggers(b, &trig, &nt, &ct)) sb->failed = 1;
        if (nt) {
            mod__sb_puts(sb, "\n  ");
            mod__sb_repeat(sb, '=', 100);
            mod__sb_puts(sb, "\n  This pipeline contains blocks that are selected at runtime based on inputs.\n");
            mod__sb_puts(sb, "  Trigger Inputs: [");
            for (i = 0; i < nt; i++) {
                if (i) mod__sb_puts(sb, ", ");
                mod__str_repr(sb, trig[i]);
            }
            mod__sb_puts(sb, "]\n");
            if (b->kind == MOD__SEQUENTIAL)
                mod__sb_printf(sb,
                               "  Use mod_block_execution_blocks() with input names to see selected blocks "
                               "(e.g. {\"%s\", NULL}).\n",
                               trig[0]);
            mod__sb_puts(sb, "  ");
            mod__sb_repeat(sb, '=', 100);
            mod__sb_puts(sb, "\n\n");
        }
        MOD_FREE(trig);
    }
    mod__sb_puts(sb, "\n");
    mod__repr_description(sb, b);
    if (f->comp.n) {
        mod__sb_puts(sb, "\n\n");
        mod__format_components(sb, &f->comp, "", 0);
    }
    if (f->conf.n) {
        mod__sb_puts(sb, "\n\n");
        mod__format_configs(sb, &f->conf, "", 0);
    }
    mod__sb_puts(sb, "\n\n  Sub-Blocks:\n");
    for (i = 0; i < b->n; i++) {
        const mod_block *c = b->children[i];
        const char *s;
        if (b->kind == MOD__AUTO) {
            if (b->triggers[i])
                mod__sb_printf(sb, "    \xe2\x80\xa2 %s [trigger: %s] (%s)\n", b->names[i], b->triggers[i], c->class_name);
            else
                mod__sb_printf(sb, "    \xe2\x80\xa2 %s [default] (%s)\n", b->names[i], c->class_name);
        } else {
            mod__sb_printf(sb, "    [%d] %s (%s)\n", i, b->names[i], c->class_name);
        }
        mod__sb_puts(sb, "       Description: ");
        for (s = c->description; *s; s++) {
            mod__sb_put(sb, s, 1);
            if (*s == '\n') mod__sb_repeat(sb, ' ', 19);
        }
        mod__sb_puts(sb, "\n\n");
    }
    mod__sb_puts(sb, ")");
}

MODDEF char *mod_block_repr(const mod_block *b) {
    mod__sb sb = {NULL, 0, 0, 0};
    mod__iface f;
    if (!b) return NULL;
    if (mod__derive(b, &f) != MOD_OK) return NULL;
    if (b->kind == MOD__LEAF)
        mod__repr_leaf(&sb, b, &f);
    else
        mod__repr_composite(&sb, b, &f);
    mod__iface_free(&f);
    return mod__sb_finish(&sb);
}

/* ---- execution blocks, workflows, validation ------------------------- */

typedef struct mod__names {
    const char **v;
    int n, cap;
} mod__names;

static int mod__names_has(const mod__names *s, const char *name) {
    int i;
    for (i = 0; i < s->n; i++)
        if (strcmp(s->v[i], name) == 0) return 1;
    return 0;
}

static int mod__names_add(mod__names *s, const char *name) {
    if (mod__names_has(s, name)) return 1;
    if (!mod__reserve((void **)&s->v, &s->cap, s->n + 1, sizeof(char *))) return 0;
    s->v[s->n++] = name;
    return 1;
}

/* A block that runs as one unit in an execution list (a leaf or a whole loop). */
typedef struct mod__unit {
    char *path;
    const mod_block *block;
} mod__unit;

typedef struct mod__units {
    mod__unit *v;
    int n, cap;
} mod__units;

static void mod__units_free(mod__units *u) {
    int i;
    for (i = 0; i < u->n; i++) MOD_FREE(u->v[i].path);
    MOD_FREE(u->v);
    memset(u, 0, sizeof *u);
}

static char *mod__join_path(const char *prefix, const char *name) {
    size_t a, b;
    char *p;
    if (!prefix || !*prefix) return mod__strdup(name);
    a = strlen(prefix);
    b = strlen(name);
    p = (char *)mod__alloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, prefix, a);
    p[a] = '.';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* The branch of an auto block that runs when `active` names are present
   (-1: none runs). */
static int mod__select_branch(const mod_block *b, const mod__names *active) {
    int i;
    for (i = 0; i < b->n; i++)
        if (b->triggers[i] && mod__names_has(active, b->triggers[i])) return i;
    for (i = 0; i < b->n; i++)
        if (!b->triggers[i]) return i;
    return -1;
}

/* get_execution_blocks: walks the tree as a run would, adding the outputs of
   each unit to the active names so later triggers see them. */
static mod_status mod__traverse(const mod_block *b, const char *path, mod__names *active, mod__units *out) {
    int i;
    mod_status s = MOD_OK;
    if (b->kind == MOD__AUTO) {
        int k = mod__select_branch(b, active);
        if (k < 0) return MOD_OK;
        b = b->children[k];
        if (b->kind == MOD__AUTO) return mod__traverse(b, path, active, out);
    }
    if (b->kind == MOD__SEQUENTIAL) {
        for (i = 0; i < b->n && s == MOD_OK; i++) {
            char *p = mod__join_path(path, b->names[i]);
            if (!p) return mod__oom();
            s = mod__traverse(b->children[i], p, active, out);
            MOD_FREE(p);
        }
        return s;
    }
    {
        mod__iface f;
        char *p = mod__strdup(path && *path ? path : b->class_name);
        if (!p || !mod__reserve((void **)&out->v, &out->cap, out->n + 1, sizeof(mod__unit))) {
            MOD_FREE(p);
            return mod__oom();
        }
        out->v[out->n].path = p;
        out->v[out->n].block = b;
        out->n++;
        s = mod__derive(b, &f);
        for (i = 0; s == MOD_OK && i < f.out.n; i++)
            if (!mod__names_add(active, f.out.v[i].p->name)) s = mod__oom();
        mod__iface_free(&f);
    }
    return s;
}

static mod_status mod__units_for(const mod_block *b, const char *const *inputs, mod__units *out) {
    mod__names active;
    mod_status s = MOD_OK;
    int i;
    memset(&active, 0, sizeof active);
    memset(out, 0, sizeof *out);
    for (i = 0; inputs && inputs[i] && s == MOD_OK; i++)
        if (!mod__names_add(&active, inputs[i])) s = mod__oom();
    if (s == MOD_OK) s = mod__traverse(b, "", &active, out);
    MOD_FREE(active.v);
    if (s != MOD_OK) mod__units_free(out);
    return s;
}

MODDEF mod_status mod_block_execution_blocks(const mod_block *b, const char *const *inputs, mod_block **out) {
    mod__units u;
    mod_block *seq;
    mod_status s;
    int i;
    if (!b || !out) return mod__fail(MOD_ERR_ARGUMENT, "mod_block_execution_blocks: block and out are required");
    s = mod__units_for(b, inputs, &u);
    if (s != MOD_OK) return s;
    seq = mod__block_alloc(MOD__SEQUENTIAL, "SequentialPipelineBlocks", "");
    if (!seq) s = mod__oom();
    for (i = 0; s == MOD_OK && i < u.n; i++) s = mod__child_insert(seq, seq->n, u.v[i].path, (mod_block *)u.v[i].block, NULL);
    mod__units_free(&u);
    if (s != MOD_OK) {
        if (seq) mod__block_destroy(seq);
        return s;
    }
    *out = seq;
    return MOD_OK;
}

MODDEF int mod_block_workflow_count(const mod_block *b) { return b ? b->nworkflows : 0; }

MODDEF const char *mod_block_workflow_name(const mod_block *b, int index) {
    return b && index >= 0 && index < b->nworkflows ? b->wf_names[index] : NULL;
}

MODDEF mod_status mod_block_get_workflow(const mod_block *b, const char *name, mod_block **out) {
    int i;
    if (!b || !name || !out) return mod__fail(MOD_ERR_ARGUMENT, "mod_block_get_workflow: block, name and out are required");
    if (!b->nworkflows) return mod__fail(MOD_ERR_UNKNOWN, "%s declares no workflows", b->class_name);
    for (i = 0; i < b->nworkflows; i++)
        if (strcmp(b->wf_names[i], name) == 0)
            return mod_block_execution_blocks(b, (const char *const *)b->wf_triggers[i], out);
    {
        mod__sb sb = {NULL, 0, 0, 0};
        for (i = 0; i < b->nworkflows; i++) mod__sb_printf(&sb, "%s%s", i ? ", " : "", b->wf_names[i]);
        mod__fail(MOD_ERR_UNKNOWN, "workflow '%s' not found in %s; available workflows: %s", name, b->class_name,
                  sb.buf ? sb.buf : "");
        MOD_FREE(sb.buf);
    }
    return MOD_ERR_UNKNOWN;
}

/* Who made a name earlier in an execution list. */
typedef struct mod__producer {
    const char *name;
    const mod__param *p;
    const char *path;
} mod__producer;

/* Checks one execution list: every required intermediate input is a
   pipeline argument or made earlier, and what a block reads can hold what
   its producer makes. */
static mod_status mod__check_units(const mod_block *root, const mod__units *u, const mod__names *args,
                                   const char *scenario) {
    mod__producer *prod = NULL;
    int np = 0, cap = 0, i, k, j;
    mod_status s = MOD_OK;
    for (i = 0; i < u->n && s == MOD_OK; i++) {
        mod__iface f;
        s = mod__derive(u->v[i].block, &f);
        for (k = 0; s == MOD_OK && k < f.inter.n; k++) {
            const mod__param *p = f.inter.v[k].p;
            int found = -1;
            if (MOD__IS_COLLECTOR(p)) continue;
            for (j = 0; j < np; j++)
                if (strcmp(prod[j].name, p->name) == 0) found = j;
            if (found < 0 && f.inter.v[k].required && !mod__names_has(args, p->name))
                s = mod__fail(MOD_ERR_VALIDATION,
                              "%s: block '%s' requires intermediate '%s', which no earlier block makes when the inputs "
                              "are [%s] and which is not an input of the pipeline",
                              root->class_name, u->v[i].path, p->name, scenario);
            else if (found >= 0 && !mod__fields_compatible(p->type, prod[found].p->type))
                s = mod__fail(MOD_ERR_VALIDATION, "%s: block '%s' reads '%s' as %s, but block '%s' makes it as %s",
                              root->class_name, u->v[i].path, p->name, mod__field_type_name(p->type), prod[found].path,
                              mod__field_type_name(prod[found].p->type));
        }
        for (k = 0; s == MOD_OK && k < f.out.n; k++) {
            if (!mod__reserve((void **)&prod, &cap, np + 1, sizeof(mod__producer))) {
                s = mod__oom();
                break;
            }
            prod[np].name = f.out.v[k].p->name;
            prod[np].p = f.out.v[k].p;
            prod[np].path = u->v[i].path;
            np++;
        }
        mod__iface_free(&f);
    }
    MOD_FREE(prod);
    return s;
}

/* Validates a block for every combination of its trigger inputs (all of
   them up to 10 triggers; otherwise none, each alone, and all). With
   `pipeline`, trigger names must also be known names. Requested in diffusers
   PR #9672: a run should never find a missing input halfway through. */
static mod_status mod__validate(const mod_block *b, int pipeline) {
    mod__iface f;
    mod__names args, trig;
    mod_status s;
    int i, nt, ct = 0;
    const char **tv = NULL;
    long combos, c;
    memset(&args, 0, sizeof args);
    memset(&trig, 0, sizeof trig);
    s = mod__derive(b, &f);
    if (s != MOD_OK) return s;
    for (i = 0; i < f.in.n && s == MOD_OK; i++)
        if (!MOD__IS_COLLECTOR(f.in.v[i].p) && !mod__names_add(&args, f.in.v[i].p->name)) s = mod__oom();
    for (i = 0; i < f.inter.n && s == MOD_OK; i++)
        if (!MOD__IS_COLLECTOR(f.inter.v[i].p) && !mod__names_add(&args, f.inter.v[i].p->name)) s = mod__oom();
    nt = 0;
    if (s == MOD_OK && (!mod__collect_triggers(b, &tv, &nt, &ct) || !mod__reserve((void **)&tv, &ct, nt + 1, sizeof(char *))))
        s = mod__oom();
    if (s == MOD_OK) tv[nt] = NULL; /* the list is passed as NULL-terminated inputs */
    if (s == MOD_OK && pipeline) {
        /* every trigger must be something a user passes or a block makes */
        mod__units all;
        for (i = 0; i < nt && s == MOD_OK; i++) {
            int known = mod__names_has(&args, tv[i]);
            if (!known) {
                int k;
                s = mod__units_for(b, (const char *const *)tv, &all);
                for (k = 0; s == MOD_OK && k < all.n && !known; k++) {
                    mod__iface uf;
                    int j;
                    s = mod__derive(all.v[k].block, &uf);
                    for (j = 0; s == MOD_OK && j < uf.out.n; j++)
                        if (strcmp(uf.out.v[j].p->name, tv[i]) == 0) known = 1;
                    mod__iface_free(&uf);
                }
                mod__units_free(&all);
                if (s == MOD_OK && !known)
                    s = mod__fail(MOD_ERR_VALIDATION,
                                  "%s: trigger '%s' is neither an input of the pipeline nor made by any block",
                                  b->class_name, tv[i]);
            }
        }
    }
    combos = nt <= 10 ? (1L << nt) : (long)nt + 2;
    for (c = 0; c < combos && s == MOD_OK; c++) {
        mod__units u;
        mod__sb scen = {NULL, 0, 0, 0};
        trig.n = 0;
        for (i = 0; i < nt; i++) {
            int on = nt <= 10 ? (int)((c >> i) & 1) : (c == (long)nt + 1 || c == (long)i + 1);
            if (on) {
                if (!mod__names_add(&trig, tv[i])) s = mod__oom();
                mod__sb_printf(&scen, "%s%s", trig.n > 1 ? ", " : "", tv[i]);
            }
        }
        if (s == MOD_OK && scen.failed) s = mod__oom();
        if (s == MOD_OK && mod__reserve((void **)&trig.v, &trig.cap, trig.n + 1, sizeof(char *))) {
            trig.v[trig.n] = NULL;
            s = mod__units_for(b, trig.v, &u);
            if (s == MOD_OK) {
                s = mod__check_units(b, &u, &args, scen.buf ? scen.buf : "");
                mod__units_free(&u);
            }
        } else if (s == MOD_OK) {
            s = mod__oom();
        }
        MOD_FREE(scen.buf);
    }
    MOD_FREE(tv);
    MOD_FREE(args.v);
    MOD_FREE(trig.v);
    mod__iface_free(&f);
    return s;
}

MODDEF mod_status mod_block_validate(const mod_block *b) {
    if (!b) return mod__fail(MOD_ERR_ARGUMENT, "mod_block_validate: block is NULL");
    return mod__validate(b, 0);
}

/* ---- Mermaid data-flow chart ----------------------------------------- */

typedef struct mod__mm_edge {
    int from, to;     /* node ids; 0 = inputs, 1 = outputs */
    int dashed;       /* carried to the next loop iteration */
    mod__sb names;
} mod__mm_edge;

typedef struct mod__mm_src {
    const char *name;
    int node;
} mod__mm_src;

typedef struct mod__mm {
    mod__sb out;
    mod__mm_edge *edges;
    int ne, ecap;
    mod__mm_src *src; /* current producers */
    int ns, scap;
    mod__mm_src *events; /* reads: (name, reading node) */
    int nev, evcap;
    int next_node;
    const mod__names *args;
    int failed;
} mod__mm;

static void mod__mm_edge_add(mod__mm *m, int from, int to, const char *name, int dashed) {
    int i;
    for (i = 0; i < m->ne; i++)
        if (m->edges[i].from == from && m->edges[i].to == to && m->edges[i].dashed == dashed) {
            mod__sb_printf(&m->edges[i].names, ", %s", name);
            return;
        }
    if (!mod__reserve((void **)&m->edges, &m->ecap, m->ne + 1, sizeof(mod__mm_edge))) {
        m->failed = 1;
        return;
    }
    memset(&m->edges[m->ne], 0, sizeof(mod__mm_edge));
    m->edges[m->ne].from = from;
    m->edges[m->ne].to = to;
    m->edges[m->ne].dashed = dashed;
    mod__sb_puts(&m->edges[m->ne].names, name);
    m->ne++;
}

static void mod__mm_set_src(mod__mm *m, const char *name, int node, int keep_old) {
    int i;
    if (!keep_old)
        for (i = 0; i < m->ns; i++)
            if (strcmp(m->src[i].name, name) == 0) m->src[i].node = -1;
    if (!mod__reserve((void **)&m->src, &m->scap, m->ns + 1, sizeof(mod__mm_src))) {
        m->failed = 1;
        return;
    }
    m->src[m->ns].name = name;
    m->src[m->ns].node = node;
    m->ns++;
}

static void mod__mm_consume(mod__mm *m, const char *name, int node) {
    int i, any = 0;
    if (mod__reserve((void **)&m->events, &m->evcap, m->nev + 1, sizeof(mod__mm_src))) {
        m->events[m->nev].name = name;
        m->events[m->nev].node = node;
        m->nev++;
    } else {
        m->failed = 1;
    }
    for (i = 0; i < m->ns; i++)
        if (m->src[i].node >= 0 && strcmp(m->src[i].name, name) == 0) {
            mod__mm_edge_add(m, m->src[i].node, node, name, 0);
            any = 1;
        }
    if (!any && mod__names_has(m->args, name)) mod__mm_edge_add(m, 0, node, name, 0);
}

static void mod__mm_id(mod__sb *sb, int node) {
    if (node == 0)
        mod__sb_puts(sb, "inputs");
    else if (node == 1)
        mod__sb_puts(sb, "outputs");
    else
        mod__sb_printf(sb, "b%d", node);
}

static void mod__mm_walk(mod__mm *m, const mod_block *b, const char *label, int depth);

static void mod__mm_leaf(mod__mm *m, const mod_block *b, const char *label, int depth) {
    mod__iface f;
    int node = m->next_node++, i;
    if (mod__derive(b, &f) != MOD_OK) {
        m->failed = 1;
        return;
    }
    mod__sb_repeat(&m->out, ' ', 4 * depth);
    mod__sb_printf(&m->out, "b%d[\"%s<br/>%s\"]\n", node, label, b->class_name);
    for (i = 0; i < f.in.n; i++)
        if (!MOD__IS_COLLECTOR(f.in.v[i].p) && mod__names_has(m->args, f.in.v[i].p->name))
            mod__mm_edge_add(m, 0, node, f.in.v[i].p->name, 0);
    for (i = 0; i < f.inter.n; i++)
        if (!MOD__IS_COLLECTOR(f.inter.v[i].p)) mod__mm_consume(m, f.inter.v[i].p->name, node);
    for (i = 0; i < f.out.n; i++) mod__mm_set_src(m, f.out.v[i].p->name, node, 0);
    mod__iface_free(&f);
}

static void mod__mm_walk(mod__mm *m, const mod_block *b, const char *label, int depth) {
    int i;
    if (b->kind == MOD__LEAF) {
        mod__mm_leaf(m, b, label, depth);
        return;
    }
    mod__sb_repeat(&m->out, ' ', 4 * depth);
    mod__sb_printf(&m->out, "subgraph g%d[\"%s (%s)\"]\n", m->next_node++, label, b->class_name);
    if (b->kind == MOD__SEQUENTIAL) {
        for (i = 0; i < b->n; i++) mod__mm_walk(m, b->children[i], b->names[i], depth + 1);
    } else if (b->kind == MOD__LOOP) {
        int first_event = m->nev, first_node = m->next_node, k, e;
        for (i = 0; i < b->n; i++) mod__mm_walk(m, b->children[i], b->names[i], depth + 1);
        /* a value read in the body before the body makes it comes from the
           previous iteration */
        for (e = first_event; e < m->nev; e++)
            for (k = 0; k < m->ns; k++)
                if (m->src[k].node >= first_node && m->src[k].node >= m->events[e].node &&
                    strcmp(m->src[k].name, m->events[e].name) == 0)
                    mod__mm_edge_add(m, m->src[k].node, m->events[e].node, m->events[e].name, 1);
    } else {
        int saved = m->ns, k, after;
        mod__mm_src *base = NULL;
        int has_default = mod__has_default_branch(b);
        if (saved && !(base = (mod__mm_src *)mod__alloc((size_t)saved * sizeof(mod__mm_src)))) {
            m->failed = 1;
            return;
        }
        if (saved) memcpy(base, m->src, (size_t)saved * sizeof(mod__mm_src));
        after = saved;
        for (i = 0; i < b->n; i++) {
            char lbl[256];
            int from = m->ns;
            snprintf(lbl, sizeof lbl, "%s [%s]", b->names[i], b->triggers[i] ? b->triggers[i] : "default");
            if (saved) memcpy(m->src, base, (size_t)saved * sizeof(mod__mm_src));
            mod__mm_walk(m, b->children[i], lbl, depth + 1);
            for (k = from; k < m->ns; k++) {
                if (after != k) m->src[after] = m->src[k];
                after++;
            }
            m->ns = after;
        }
        /* every branch's outputs are possible sources afterwards */
        if (saved) memcpy(m->src, base, (size_t)saved * sizeof(mod__mm_src));
        for (k = saved; k < m->ns; k++)
            for (i = 0; i < saved; i++)
                if (has_default && m->src[i].node >= 0 && strcmp(m->src[i].name, m->src[k].name) == 0) m->src[i].node = -1;
        MOD_FREE(base);
    }
    mod__sb_repeat(&m->out, ' ', 4 * depth);
    mod__sb_puts(&m->out, "end\n");
}

MODDEF char *mod_block_mermaid(const mod_block *b) {
    mod__mm m;
    mod__iface f;
    mod__names args;
    int i;
    if (!b) return NULL;
    memset(&m, 0, sizeof m);
    memset(&args, 0, sizeof args);
    if (mod__derive(b, &f) != MOD_OK) return NULL;
    for (i = 0; i < f.in.n; i++)
        if (!MOD__IS_COLLECTOR(f.in.v[i].p) && !mod__names_add(&args, f.in.v[i].p->name)) m.failed = 1;
    for (i = 0; i < f.inter.n; i++)
        if (!MOD__IS_COLLECTOR(f.inter.v[i].p) && !mod__names_add(&args, f.inter.v[i].p->name)) m.failed = 1;
    m.args = &args;
    m.next_node = 2;
    mod__sb_puts(&m.out, "flowchart TD\n    inputs([\"inputs\"])\n");
    if (b->kind == MOD__SEQUENTIAL) {
        for (i = 0; i < b->n; i++) mod__mm_walk(&m, b->children[i], b->names[i], 1);
    } else {
        mod__mm_walk(&m, b, b->class_name, 1);
    }
    mod__sb_puts(&m.out, "    outputs([\"outputs\"])");
    for (i = 0; i < f.out.n; i++) {
        int k;
        for (k = 0; k < m.ns; k++)
            if (m.src[k].node >= 0 && strcmp(m.src[k].name, f.out.v[i].p->name) == 0)
                mod__mm_edge_add(&m, m.src[k].node, 1, m.src[k].name, 0);
    }
    for (i = 0; i < m.ne; i++) {
        mod__sb_puts(&m.out, "\n    ");
        mod__mm_id(&m.out, m.edges[i].from);
        mod__sb_printf(&m.out, " %s|%s| ", m.edges[i].dashed ? "-.->" : "-->", m.edges[i].names.buf ? m.edges[i].names.buf : "");
        mod__mm_id(&m.out, m.edges[i].to);
        if (m.edges[i].names.failed) m.failed = 1;
        MOD_FREE(m.edges[i].names.buf);
    }
    MOD_FREE(m.edges);
    MOD_FREE(m.src);
    MOD_FREE(m.events);
    MOD_FREE(args.v);
    mod__iface_free(&f);
    if (m.failed) m.out.failed = 1;
    return mod__sb_finish(&m.out);
}

/* ---- the compiled plan ----------------------------------------------- */

enum { MOD__OP_LEAF = 1, MOD__OP_AUTO, MOD__OP_JUMP, MOD__OP_LOOP };

typedef struct mod__row {
    const mod__param *p;
    int slot;           /* scope slot; component / config index for those rows */
    int group;          /* kwargs group id (0: none) */
    unsigned char src;  /* where the row reads from: MOD__SRC_* */
    unsigned char fast; /* a value of this kind loads with one store (0: none) */
    unsigned char wb;   /* how it is written back: MOD__WB_* */
    unsigned char empty_start; /* an output with no default: starts empty, reads nothing */
    unsigned char is_output;
    size_t offset;      /* of the typed field */
} mod__row;

enum { MOD__SRC_NONE = 0, MOD__SRC_IN, MOD__SRC_INTER, MOD__SRC_COMPONENT, MOD__SRC_CONFIG };

/* Write-back classes (the seeds' Key Observations, decided at compile time):
   SKIP an input (stays local), a component, a config; CHANGED an
   intermediate input, or anything in a loop's shared state: written when
   changed; MODIFIED an intermediate input that is also an output; INOUT an
   input that is also an output; OUTPUT an output; COLLECT a kwargs group. */
enum { MOD__WB_SKIP = 0, MOD__WB_CHANGED, MOD__WB_MODIFIED, MOD__WB_INOUT, MOD__WB_OUTPUT, MOD__WB_COLLECT };

typedef struct mod__leaf {
    const mod_block *block;
    char *path;
    int scope;  /* -1: the pipeline state; else the loop whose state it shares */
    int loop;   /* a loop wrapper: its loop index; else -1 */
    mod__row *rows;
    int nrows;
    int owns;   /* some typed field holds references (tensors, values) */
    int *checks; /* rows the pre-run check looks at (required, components) */
    int nchecks;
    int *outs;   /* slots of its outputs */
    int nouts;
    size_t off; /* its scratch memory in the call arena */
} mod__leaf;

typedef struct mod__xfer {
    const mod__param *p;
    int local, slot, group, required;
    unsigned from; /* MOD_PARAM_INPUT or MOD_PARAM_INTERMEDIATE */
} mod__xfer;

typedef struct mod__loop {
    int leaf;  /* the wrapper's own rows */
    int scope; /* enclosing scope */
    const char **names;
    int nlocal, cap;
    mod__xfer *gather, *outs, *back;
    int ngather, nouts, nback;
    int body_begin, body_end;
    size_t sim_off; /* presence scratch for the pre-run check */
} mod__loop;

typedef struct mod__auto {
    int scope;
    int n;
    int *slot;  /* trigger slot per branch, -1 = default */
    int *start; /* first op of each branch */
    int end;
} mod__auto;

typedef struct mod__op {
    int kind, a;
} mod__op;

typedef struct mod__plan {
    long refcount;
    mod_block *root; /* a private copy of the definition */
    const char **names;
    int nslots, slot_cap;
    int *hash;
    int hcap;
    const char **groups; /* group id g is groups[g - 1] */
    int ngroups, group_cap;
    /* arguments */
    unsigned char *arg_in, *arg_inter;
    int *arg_group;
    mod_field_type *arg_type;
    int *arg_consumer; /* leaf of the first typed reader, for messages */
    int *producer;     /* first leaf that makes the slot, -1 */
    /* program */
    mod__leaf *leaves;
    int nleaves, leaf_cap;
    mod__loop *loops;
    int nloops, loop_cap;
    mod__auto *autos;
    int nautos, auto_cap;
    mod__op *ops;
    int nops, op_cap;
    size_t arena;
    size_t sim_in, sim_inter; /* presence scratch for the pipeline scope */
    /* components and configs */
    const mod__param **comps;
    int ncomps;
    const mod__param **confs;
    int nconfs;
} mod__plan;

static unsigned mod__hash_str(const char *s) {
    unsigned h = 2166136261u;
    while (*s) h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

static int mod__plan_lookup(const mod__plan *pl, const char *name) {
    unsigned i;
    if (!pl->hcap || !name) return -1;
    for (i = mod__hash_str(name) & (unsigned)(pl->hcap - 1);; i = (i + 1) & (unsigned)(pl->hcap - 1)) {
        int s = pl->hash[i];
        if (s < 0) return -1;
        if (strcmp(pl->names[s], name) == 0) return s;
    }
}

static int mod__plan_build_hash(mod__plan *pl) {
    int i, cap = 16;
    while (cap < pl->nslots * 2) cap *= 2;
    pl->hash = (int *)mod__alloc((size_t)cap * sizeof(int));
    if (!pl->hash) return 0;
    pl->hcap = cap;
    for (i = 0; i < cap; i++) pl->hash[i] = -1;
    for (i = 0; i < pl->nslots; i++) {
        unsigned h = mod__hash_str(pl->names[i]) & (unsigned)(cap - 1);
        while (pl->hash[h] >= 0) h = (h + 1) & (unsigned)(cap - 1);
        pl->hash[h] = i;
    }
    return 1;
}

static void mod__plan_release(mod__plan *pl) {
    int i;
    if (!pl || MOD__DEC(&pl->refcount) != 0) return;
    for (i = 0; i < pl->nleaves; i++) {
        MOD_FREE(pl->leaves[i].path);
        MOD_FREE(pl->leaves[i].rows);
        MOD_FREE(pl->leaves[i].checks);
        MOD_FREE(pl->leaves[i].outs);
        mod_block_free((mod_block *)pl->leaves[i].block);
    }
    for (i = 0; i < pl->nloops; i++) {
        MOD_FREE(pl->loops[i].names);
        MOD_FREE(pl->loops[i].gather);
        MOD_FREE(pl->loops[i].outs);
        MOD_FREE(pl->loops[i].back);
    }
    for (i = 0; i < pl->nautos; i++) {
        MOD_FREE(pl->autos[i].slot);
        MOD_FREE(pl->autos[i].start);
    }
    MOD_FREE(pl->leaves);
    MOD_FREE(pl->loops);
    MOD_FREE(pl->autos);
    MOD_FREE(pl->ops);
    MOD_FREE(pl->names);
    MOD_FREE(pl->hash);
    MOD_FREE(pl->groups);
    MOD_FREE(pl->arg_in);
    MOD_FREE(pl->arg_inter);
    MOD_FREE(pl->arg_group);
    MOD_FREE(pl->arg_type);
    MOD_FREE(pl->arg_consumer);
    MOD_FREE(pl->producer);
    MOD_FREE(pl->comps);
    MOD_FREE(pl->confs);
    mod_block_free(pl->root);
    MOD_FREE(pl);
}

/* A copy of a definition tree: composites are new objects, leaves shared. */
static mod_block *mod__clone_tree(const mod_block *b) {
    mod_block *c;
    int i, k;
    if (b->kind == MOD__LEAF) return mod_block_retain((mod_block *)b);
    if (b->kind == MOD__LOOP) {
        if (mod_block_new(&c, b->def) != MOD_OK) return NULL;
    } else {
        c = mod__block_alloc(b->kind, b->class_name, b->description);
        if (!c) return NULL;
        c->custom_class = b->custom_class;
    }
    for (i = 0; i < b->n; i++) {
        mod_block *child = mod__clone_tree(b->children[i]);
        mod_status s = child ? mod__child_insert(c, c->n, b->names[i], child, b->triggers[i]) : MOD_ERR_MEMORY;
        mod_block_free(child);
        if (s != MOD_OK) goto fail;
    }
    if (b->nworkflows) {
        c->wf_names = (char **)mod__calloc((size_t)b->nworkflows, sizeof(char *));
        c->wf_triggers = (char ***)mod__calloc((size_t)b->nworkflows, sizeof(char **));
        if (!c->wf_names || !c->wf_triggers) goto fail;
        for (i = 0; i < b->nworkflows; i++) {
            int nt = 0;
            while (b->wf_triggers[i][nt]) nt++;
            c->nworkflows = i + 1;
            c->wf_names[i] = mod__strdup(b->wf_names[i]);
            c->wf_triggers[i] = (char **)mod__calloc((size_t)nt + 1, sizeof(char *));
            if (!c->wf_names[i] || !c->wf_triggers[i]) goto fail;
            for (k = 0; k < nt; k++)
                if (!(c->wf_triggers[i][k] = mod__strdup(b->wf_triggers[i][k]))) goto fail;
        }
    }
    return c;
fail:
    mod__block_destroy(c);
    return NULL;
}

/* Slot of `name` in a scope, added when new (-1 on failure). */
static int mod__intern(mod__plan *pl, int scope, const char *name) {
    const char ***names;
    int *n, *cap, i;
    if (scope < 0) {
        names = &pl->names;
        n = &pl->nslots;
        cap = &pl->slot_cap;
    } else {
        names = &pl->loops[scope].names;
        n = &pl->loops[scope].nlocal;
        cap = &pl->loops[scope].cap;
    }
    for (i = 0; i < *n; i++)
        if (strcmp((*names)[i], name) == 0) return i;
    if (!mod__reserve((void **)names, cap, *n + 1, sizeof(char *))) return -1;
    (*names)[*n] = name;
    return (*n)++;
}

static int mod__group(mod__plan *pl, const char *kwargs) {
    int i;
    if (!kwargs) return 0;
    for (i = 0; i < pl->ngroups; i++)
        if (strcmp(pl->groups[i], kwargs) == 0) return i + 1;
    if (!mod__reserve((void **)&pl->groups, &pl->group_cap, pl->ngroups + 1, sizeof(char *))) return -1;
    pl->groups[pl->ngroups++] = kwargs;
    return pl->ngroups;
}

static int mod__emit(mod__plan *pl, int kind, int a) {
    if (!mod__reserve((void **)&pl->ops, &pl->op_cap, pl->nops + 1, sizeof(mod__op))) return -1;
    pl->ops[pl->nops].kind = kind;
    pl->ops[pl->nops].a = a;
    return pl->nops++;
}

static int mod__find_param(const mod__param **list, int n, const char *name) {
    int i;
    for (i = 0; i < n; i++)
        if (strcmp(list[i]->name, name) == 0) return i;
    return -1;
}

static size_t mod__align16(size_t n) { return (n + 15) / 16 * 16; }

/* A leaf (or a loop wrapper's own rows) in `scope`. */
static mod_status mod__compile_leaf(mod__plan *pl, const mod_block *b, const char *path, int scope, int loop, int *out) {
    mod__leaf *L;
    int i;
    if (!mod__reserve((void **)&pl->leaves, &pl->leaf_cap, pl->nleaves + 1, sizeof(mod__leaf))) return mod__oom();
    L = &pl->leaves[pl->nleaves];
    memset(L, 0, sizeof *L);
    L->path = mod__strdup(path && *path ? path : b->class_name);
    L->rows = (mod__row *)mod__calloc((size_t)b->nparams, sizeof(mod__row));
    if (!L->path || !L->rows) {
        MOD_FREE(L->path);
        MOD_FREE(L->rows);
        return mod__oom();
    }
    L->block = mod_block_retain((mod_block *)b);
    L->scope = scope;
    L->loop = loop;
    L->nrows = b->nparams;
    *out = pl->nleaves++;
    for (i = 0; i < b->nparams; i++) {
        const mod__param *p = &b->params[i];
        mod__row *r = &pl->leaves[*out].rows[i];
        r->p = p;
        r->slot = -1;
        if (p->flags & MOD_PARAM_COMPONENT)
            r->slot = mod__find_param(pl->comps, pl->ncomps, p->name);
        else if (p->flags & MOD_PARAM_CONFIG)
            r->slot = mod__find_param(pl->confs, pl->nconfs, p->name);
        else if (!MOD__IS_COLLECTOR(p) && (r->slot = mod__intern(pl, scope, p->name)) < 0)
            return mod__oom();
        if ((r->group = mod__group(pl, p->kwargs)) < 0) return mod__oom();
        if (p->flags & MOD_PARAM_COMPONENT)
            r->src = MOD__SRC_COMPONENT;
        else if (p->flags & MOD_PARAM_CONFIG)
            r->src = MOD__SRC_CONFIG;
        else if (r->slot < 0)
            r->src = MOD__SRC_NONE;
        else if (scope >= 0 || (p->flags & MOD_PARAM_INTERMEDIATE))
            r->src = MOD__SRC_INTER;
        else if (p->flags & MOD_PARAM_INPUT)
            r->src = MOD__SRC_IN;
        r->offset = p->offset;
        r->is_output = (p->flags & MOD_PARAM_OUTPUT) != 0;
        r->empty_start = r->src == MOD__SRC_NONE && p->dflt.kind == MOD_ABSENT && !(p->flags & MOD_PARAM_REQUIRED) &&
                         !MOD__IS_COLLECTOR(p);
        r->fast = (unsigned char)(p->type == MOD_FIELD_INT ? MOD_INT : p->type == MOD_FIELD_FLOAT ? MOD_FLOAT
                                  : p->type == MOD_FIELD_BOOL ? MOD_BOOL : 0);
        if (p->flags & (MOD_PARAM_COMPONENT | MOD_PARAM_CONFIG))
            r->wb = MOD__WB_SKIP;
        else if (MOD__IS_COLLECTOR(p))
            r->wb = MOD__WB_COLLECT;
        else if (scope >= 0)
            r->wb = MOD__WB_CHANGED;
        else if ((p->flags & MOD__IO_FLAGS) == (MOD_PARAM_INTERMEDIATE | MOD_PARAM_OUTPUT))
            r->wb = MOD__WB_MODIFIED;
        else if ((p->flags & MOD__IO_FLAGS) == (MOD_PARAM_INPUT | MOD_PARAM_OUTPUT))
            r->wb = MOD__WB_INOUT;
        else if (p->flags & MOD_PARAM_OUTPUT)
            r->wb = MOD__WB_OUTPUT;
        else if (p->flags & MOD_PARAM_INTERMEDIATE)
            r->wb = MOD__WB_CHANGED;
        else
            r->wb = MOD__WB_SKIP;
    }
    {
        mod__leaf *l = &pl->leaves[*out];
        l->checks = (int *)mod__calloc((size_t)b->nparams + 1, sizeof(int));
        l->outs = (int *)mod__calloc((size_t)b->nparams + 1, sizeof(int));
        if (!l->checks || !l->outs) return mod__oom();
        for (i = 0; i < b->nparams; i++) {
            const mod__row *r = &l->rows[i];
            if ((r->p->flags & MOD_PARAM_COMPONENT) || ((r->p->flags & MOD_PARAM_REQUIRED) && !MOD__IS_COLLECTOR(r->p)))
                l->checks[l->nchecks++] = i;
            if ((r->p->flags & MOD_PARAM_OUTPUT) && r->slot >= 0) l->outs[l->nouts++] = r->slot;
            if (b->def && (r->p->type == MOD_FIELD_TENSOR || r->p->type == MOD_FIELD_LIST || r->p->type == MOD_FIELD_DICT ||
                           r->p->type == MOD_FIELD_VALUE || r->p->type == MOD_FIELD_KWARGS))
                l->owns = 1;
        }
    }
    {
        const mod__leaf *l = &pl->leaves[*out];
        size_t per = b->def ? 2 * mod__align16(b->def->state_size) : 4 * mod__align16((size_t)b->nparams * sizeof(mod_value));
        pl->leaves[*out].off = pl->arena;
        pl->arena += per + mod__align16((size_t)l->nrows) + mod__align16((size_t)l->nrows * sizeof(int) * 2);
    }
    return MOD_OK;
}

static mod_status mod__compile(mod__plan *pl, const mod_block *b, const char *path, int scope);

/* Names some block of `tree` tags with kwargs group `group`: outputs go to
   `inter`, inputs to `in`. */
static int mod__tagged_names(const mod_block *tree, const char *group, mod__names *in, mod__names *inter) {
    int i;
    for (i = 0; i < tree->nparams; i++) {
        const mod__param *p = &tree->params[i];
        if (MOD__IS_COLLECTOR(p) || !mod__streq(p->kwargs, group)) continue;
        if ((p->flags & MOD_PARAM_OUTPUT) && !mod__names_add(inter, p->name)) return 0;
        if ((p->flags & MOD_PARAM_INPUT) && !mod__names_add(in, p->name)) return 0;
    }
    for (i = 0; i < tree->n; i++)
        if (!mod__tagged_names(tree->children[i], group, in, inter)) return 0;
    return 1;
}

static mod_status mod__compile_loop(mod__plan *pl, const mod_block *b, const char *path, int scope) {
    mod__iface f;
    mod__loop *lp;
    int li, i, leaf, op, extra;
    mod__names tag_in, tag_inter;
    mod_status s;
    if (!mod__reserve((void **)&pl->loops, &pl->loop_cap, pl->nloops + 1, sizeof(mod__loop))) return mod__oom();
    li = pl->nloops++;
    lp = &pl->loops[li];
    memset(lp, 0, sizeof *lp);
    lp->scope = scope;
    s = mod__derive(b, &f);
    if (s != MOD_OK) return s;
    /* a body block collecting a kwargs group sees every value of the group
       the pipeline has, so the loop brings them in too */
    memset(&tag_in, 0, sizeof tag_in);
    memset(&tag_inter, 0, sizeof tag_inter);
    for (i = 0; s == MOD_OK && i < f.in.n + f.inter.n; i++) {
        const mod__dp *dp = i < f.in.n ? &f.in.v[i] : &f.inter.v[i - f.in.n];
        if (MOD__IS_COLLECTOR(dp->p) && !mod__tagged_names(pl->root, dp->p->kwargs, &tag_in, &tag_inter)) s = mod__oom();
    }
    extra = tag_in.n + tag_inter.n;
    lp = &pl->loops[li];
    lp->gather = (mod__xfer *)mod__calloc((size_t)(f.in.n + f.inter.n + extra), sizeof(mod__xfer));
    lp->outs = (mod__xfer *)mod__calloc((size_t)f.out.n, sizeof(mod__xfer));
    lp->back = (mod__xfer *)mod__calloc((size_t)f.inter.n, sizeof(mod__xfer));
    if (!lp->gather || !lp->outs || !lp->back) s = mod__oom();
    for (i = 0; s == MOD_OK && i < f.in.n + f.inter.n; i++) {
        const mod__dp *dp = i < f.in.n ? &f.in.v[i] : &f.inter.v[i - f.in.n];
        mod__xfer x;
        if (MOD__IS_COLLECTOR(dp->p)) continue;
        x.p = dp->p;
        x.from = i < f.in.n ? MOD_PARAM_INPUT : MOD_PARAM_INTERMEDIATE;
        x.required = dp->required;
        x.local = mod__intern(pl, li, dp->p->name);
        x.slot = mod__intern(pl, scope, dp->p->name);
        x.group = 0;
        lp = &pl->loops[li];
        if (x.local < 0 || x.slot < 0) {
            s = mod__oom();
            break;
        }
        lp->gather[lp->ngather++] = x;
        if (x.from == MOD_PARAM_INTERMEDIATE) lp->back[lp->nback++] = x;
    }
    for (i = 0; s == MOD_OK && i < extra; i++) {
        const char *name = i < tag_in.n ? tag_in.v[i] : tag_inter.v[i - tag_in.n];
        unsigned from = i < tag_in.n ? MOD_PARAM_INPUT : MOD_PARAM_INTERMEDIATE;
        mod__xfer x;
        int k, dup = 0;
        x.local = mod__intern(pl, li, name);
        x.slot = mod__intern(pl, scope, name);
        lp = &pl->loops[li];
        if (x.local < 0 || x.slot < 0) {
            s = mod__oom();
            break;
        }
        for (k = 0; k < lp->ngather; k++)
            if (lp->gather[k].local == x.local && lp->gather[k].from == from) dup = 1;
        if (dup) continue;
        x.p = NULL;
        x.from = from;
        x.required = 0;
        x.group = 0;
        lp->gather[lp->ngather++] = x;
    }
    MOD_FREE(tag_in.v);
    MOD_FREE(tag_inter.v);
    for (i = 0; s == MOD_OK && i < f.out.n; i++) {
        mod__xfer x;
        x.p = f.out.v[i].p;
        x.from = MOD_PARAM_OUTPUT;
        x.required = 0;
        x.local = mod__intern(pl, li, x.p->name);
        x.slot = mod__intern(pl, scope, x.p->name);
        x.group = mod__group(pl, x.p->kwargs);
        lp = &pl->loops[li];
        if (x.local < 0 || x.slot < 0 || x.group < 0) {
            s = mod__oom();
            break;
        }
        lp->outs[lp->nouts++] = x;
    }
    mod__iface_free(&f);
    if (s != MOD_OK) return s;
    s = mod__compile_leaf(pl, b, path, li, li, &leaf);
    if (s != MOD_OK) return s;
    pl->loops[li].leaf = leaf;
    if ((op = mod__emit(pl, MOD__OP_LOOP, li)) < 0) return mod__oom();
    pl->loops[li].body_begin = pl->nops;
    for (i = 0; i < b->n && s == MOD_OK; i++) {
        char *p = mod__join_path(path, b->names[i]);
        if (!p) return mod__oom();
        s = mod__compile(pl, b->children[i], p, li);
        MOD_FREE(p);
    }
    pl->loops[li].body_end = pl->nops;
    pl->loops[li].sim_off = pl->arena;
    pl->arena += mod__align16((size_t)pl->loops[li].nlocal + 1);
    return s;
}

static mod_status mod__compile(mod__plan *pl, const mod_block *b, const char *path, int scope) {
    int i, idx;
    mod_status s = MOD_OK;
    if (b->kind == MOD__LEAF) {
        s = mod__compile_leaf(pl, b, path, scope, -1, &idx);
        if (s == MOD_OK && mod__emit(pl, MOD__OP_LEAF, idx) < 0) s = mod__oom();
        return s;
    }
    if (b->kind == MOD__LOOP) return mod__compile_loop(pl, b, path, scope);
    if (b->kind == MOD__SEQUENTIAL) {
        for (i = 0; i < b->n && s == MOD_OK; i++) {
            char *p = mod__join_path(path, b->names[i]);
            if (!p) return mod__oom();
            s = mod__compile(pl, b->children[i], p, scope);
            MOD_FREE(p);
        }
        return s;
    }
    {
        mod__auto *a;
        int ai, op, *jumps;
        if (!mod__reserve((void **)&pl->autos, &pl->auto_cap, pl->nautos + 1, sizeof(mod__auto))) return mod__oom();
        ai = pl->nautos++;
        a = &pl->autos[ai];
        memset(a, 0, sizeof *a);
        a->scope = scope;
        a->n = b->n;
        a->slot = (int *)mod__calloc((size_t)b->n, sizeof(int));
        a->start = (int *)mod__calloc((size_t)b->n, sizeof(int));
        jumps = (int *)mod__calloc((size_t)b->n, sizeof(int));
        if (!a->slot || !a->start || !jumps) {
            MOD_FREE(jumps);
            return mod__oom();
        }
        for (i = 0; i < b->n; i++) {
            int slot = b->triggers[i] ? mod__intern(pl, scope, b->triggers[i]) : -1;
            if (b->triggers[i] && slot < 0) s = mod__oom();
            pl->autos[ai].slot[i] = slot;
        }
        if (s == MOD_OK && (op = mod__emit(pl, MOD__OP_AUTO, ai)) < 0) s = mod__oom();
        for (i = 0; i < b->n && s == MOD_OK; i++) {
            char *p = mod__join_path(path, b->names[i]);
            if (!p) {
                s = mod__oom();
                break;
            }
            pl->autos[ai].start[i] = pl->nops;
            s = mod__compile(pl, b->children[i], p, scope);
            MOD_FREE(p);
            if (s == MOD_OK && (jumps[i] = mod__emit(pl, MOD__OP_JUMP, 0)) < 0) s = mod__oom();
        }
        if (s == MOD_OK) {
            pl->autos[ai].end = pl->nops;
            for (i = 0; i < b->n; i++) pl->ops[jumps[i]].a = pl->nops;
        }
        MOD_FREE(jumps);
        return s;
    }
}

/* Argument tables: which names a call takes, and where they go. */
static mod_status mod__compile_args(mod__plan *pl, const mod__iface *f) {
    int i, k, n = pl->nslots;
    pl->arg_in = (unsigned char *)mod__calloc((size_t)n + 1, 1);
    pl->arg_inter = (unsigned char *)mod__calloc((size_t)n + 1, 1);
    pl->arg_group = (int *)mod__calloc((size_t)n + 1, sizeof(int));
    pl->arg_type = (mod_field_type *)mod__calloc((size_t)n + 1, sizeof(mod_field_type));
    pl->arg_consumer = (int *)mod__calloc((size_t)n + 1, sizeof(int));
    pl->producer = (int *)mod__calloc((size_t)n + 1, sizeof(int));
    if (!pl->arg_in || !pl->arg_inter || !pl->arg_group || !pl->arg_type || !pl->arg_consumer || !pl->producer)
        return mod__oom();
    for (i = 0; i < n; i++) {
        pl->arg_type[i] = MOD_FIELD_VALUE;
        pl->arg_consumer[i] = -1;
        pl->producer[i] = -1;
    }
    for (k = 0; k < 2; k++) {
        const mod__dlist *l = k ? &f->inter : &f->in;
        for (i = 0; i < l->n; i++) {
            int slot;
            if (MOD__IS_COLLECTOR(l->v[i].p)) continue;
            slot = mod__plan_lookup(pl, l->v[i].p->name);
            if (slot < 0) continue;
            if (k)
                pl->arg_inter[slot] = 1;
            else
                pl->arg_in[slot] = 1;
            if (!pl->arg_group[slot]) pl->arg_group[slot] = mod__group(pl, l->v[i].p->kwargs);
            if (pl->arg_group[slot] < 0) return mod__oom();
        }
    }
    for (i = 0; i < pl->nleaves; i++) {
        const mod__leaf *L = &pl->leaves[i];
        if (L->scope >= 0) continue;
        for (k = 0; k < L->nrows; k++) {
            const mod__row *r = &L->rows[k];
            if (r->slot < 0 || (r->p->flags & (MOD_PARAM_COMPONENT | MOD_PARAM_CONFIG))) continue;
            if ((r->p->flags & (MOD_PARAM_INPUT | MOD_PARAM_INTERMEDIATE)) && r->p->type != MOD_FIELD_VALUE &&
                pl->arg_consumer[r->slot] < 0) {
                pl->arg_type[r->slot] = r->p->type;
                pl->arg_consumer[r->slot] = i;
            }
            if ((r->p->flags & MOD_PARAM_OUTPUT) && pl->producer[r->slot] < 0) pl->producer[r->slot] = i;
        }
    }
    for (i = 0; i < pl->nloops; i++)
        if (pl->loops[i].scope < 0)
            for (k = 0; k < pl->loops[i].nouts; k++)
                if (pl->producer[pl->loops[i].outs[k].slot] < 0) pl->producer[pl->loops[i].outs[k].slot] = pl->loops[i].leaf;
    return MOD_OK;
}

static mod_status mod__plan_new(mod__plan **out, const mod_block *blocks) {
    mod__plan *pl = (mod__plan *)mod__calloc(1, sizeof(mod__plan));
    mod__iface f;
    mod_status s;
    int i;
    memset(&f, 0, sizeof f);
    if (!pl) return mod__oom();
    pl->refcount = 1;
    pl->root = mod__clone_tree(blocks);
    if (!pl->root) {
        MOD_FREE(pl);
        return mod__oom();
    }
    s = mod__derive(pl->root, &f);
    if (s == MOD_OK) {
        pl->comps = (const mod__param **)mod__calloc((size_t)f.comp.n + 1, sizeof(mod__param *));
        pl->confs = (const mod__param **)mod__calloc((size_t)f.conf.n + 1, sizeof(mod__param *));
        if (!pl->comps || !pl->confs) s = mod__oom();
        for (i = 0; s == MOD_OK && i < f.comp.n; i++) pl->comps[pl->ncomps++] = f.comp.v[i].p;
        for (i = 0; s == MOD_OK && i < f.conf.n; i++) pl->confs[pl->nconfs++] = f.conf.v[i].p;
    }
    /* names the call may take exist as slots even when no leaf reads them */
    for (i = 0; s == MOD_OK && i < f.in.n + f.inter.n; i++) {
        const mod__param *p = i < f.in.n ? f.in.v[i].p : f.inter.v[i - f.in.n].p;
        if (!MOD__IS_COLLECTOR(p) && mod__intern(pl, -1, p->name) < 0) s = mod__oom();
    }
    if (s == MOD_OK) s = mod__compile(pl, pl->root, "", -1);
    if (s == MOD_OK && !mod__plan_build_hash(pl)) s = mod__oom();
    if (s == MOD_OK) s = mod__compile_args(pl, &f);
    if (s == MOD_OK) {
        pl->sim_in = pl->arena;
        pl->arena += mod__align16((size_t)pl->nslots + 1);
        pl->sim_inter = pl->arena;
        pl->arena += mod__align16((size_t)pl->nslots + 1);
    }
    mod__iface_free(&f);
    if (s != MOD_OK) {
        mod__plan_release(pl);
        return s;
    }
    *out = pl;
    return MOD_OK;
}

/* ---- state ----------------------------------------------------------- */

struct mod_state {
    mod__plan *plan; /* names and groups (NULL for a loop's own state) */
    const char *const *names;
    int n;
    int shared; /* a loop's block state: inputs and intermediates are one map */
    mod_value *in, *inter;
    int *in_tag, *inter_tag;
    int *in_order, *inter_order;
    int n_in, n_inter;
};

static mod_state *mod__state_new(mod__plan *pl, const char *const *names, int n, int shared) {
    size_t vals = (size_t)n * sizeof(mod_value), ints = (size_t)n * sizeof(int);
    size_t total = sizeof(mod_state) + (shared ? 1 : 2) * (vals + 2 * ints) + 64;
    mod_state *st = (mod_state *)mod__calloc(1, total);
    char *p;
    if (!st) return NULL;
    p = (char *)(st + 1);
    p = (char *)(((uintptr_t)p + 15) & ~(uintptr_t)15);
    st->plan = pl;
    st->names = names;
    st->n = n;
    st->shared = shared;
    st->inter = (mod_value *)p;
    p += vals;
    st->inter_tag = (int *)p;
    p += ints;
    st->inter_order = (int *)p;
    p += ints;
    if (shared) {
        st->in = st->inter;
        st->in_tag = st->inter_tag;
        st->in_order = st->inter_order;
    } else {
        st->in = (mod_value *)p;
        p += vals;
        st->in_tag = (int *)p;
        p += ints;
        st->in_order = (int *)p;
    }
    if (pl) MOD__INC(&pl->refcount);
    return st;
}

MODDEF void mod_state_free(mod_state *st) {
    int i;
    if (!st) return;
    for (i = 0; i < st->n; i++) {
        mod_value_release(&st->inter[i]);
        if (!st->shared) mod_value_release(&st->in[i]);
    }
    mod__plan_release(st->plan);
    MOD_FREE(st);
}

/* Stores an owned value (moved in) in the inputs (which = 0) or the
   intermediates (1), remembering first-set order and the kwargs tag. */
static void mod__state_put(mod_state *st, int which, int slot, mod_value *owned, int group) {
    mod_value *v = which ? &st->inter[slot] : &st->in[slot];
    int *tag = which ? &st->inter_tag[slot] : &st->in_tag[slot];
    if (v->kind == MOD_ABSENT) {
        if (which || st->shared)
            st->inter_order[st->n_inter++] = slot;
        else
            st->in_order[st->n_in++] = slot;
    }
    mod_value_release(v);
    *v = *owned;
    memset(owned, 0, sizeof *owned);
    if (group) *tag = group;
}

static int mod__state_slot(const mod_state *st, const char *name) {
    int i;
    if (st->plan && !st->shared) return mod__plan_lookup(st->plan, name);
    for (i = 0; i < st->n; i++)
        if (strcmp(st->names[i], name) == 0) return i;
    return -1;
}

MODDEF const mod_value *mod_state_input(const mod_state *st, const char *name) {
    int s;
    if (!st || !name) return NULL;
    s = mod__state_slot(st, name);
    return s >= 0 && st->in[s].kind != MOD_ABSENT ? &st->in[s] : NULL;
}

MODDEF const mod_value *mod_state_intermediate(const mod_state *st, const char *name) {
    int s;
    if (!st || !name) return NULL;
    s = mod__state_slot(st, name);
    return s >= 0 && st->inter[s].kind != MOD_ABSENT ? &st->inter[s] : NULL;
}

static const char *mod__group_name(const mod_state *st, int g) {
    return st->plan && g > 0 && g <= st->plan->ngroups ? st->plan->groups[g - 1] : "?";
}

static void mod__repr_map(mod__sb *sb, const mod_state *st, const mod_value *vals, const int *order, int n) {
    int i;
    for (i = 0; i < n; i++) {
        mod__sb_printf(sb, "%s    %s: ", i ? "\n" : "", st->names[order[i]]);
        mod__value_text(sb, &vals[order[i]], 0);
    }
}

static void mod__repr_kwargs(mod__sb *sb, const mod_state *st, const int *tags, const int *order, int n) {
    int g, i, first_line = 1;
    if (!st->plan) return;
    for (g = 1; g <= st->plan->ngroups; g++) {
        int any = 0;
        for (i = 0; i < n; i++)
            if (tags[order[i]] == g) {
                if (!any) mod__sb_printf(sb, "%s    %s: [", first_line ? "" : "\n", mod__group_name(st, g));
                else
                    mod__sb_puts(sb, ", ");
                mod__str_repr(sb, st->names[order[i]]);
                any = 1;
                first_line = 0;
            }
        if (any) mod__sb_puts(sb, "]");
    }
}

MODDEF char *mod_state_repr(const mod_state *st) {
    mod__sb sb = {NULL, 0, 0, 0};
    int i, tagged = 0;
    if (!st) return NULL;
    mod__sb_puts(&sb, "PipelineState(\n  inputs={\n");
    mod__repr_map(&sb, st, st->in, st->in_order, st->n_in);
    mod__sb_puts(&sb, "\n  },\n  intermediates={\n");
    mod__repr_map(&sb, st, st->inter, st->inter_order, st->n_inter);
    mod__sb_puts(&sb, "\n  },\n");
    for (i = 0; i < st->n; i++)
        if (st->in_tag[i] || st->inter_tag[i]) tagged = 1;
    if (tagged) {
        mod__sb_puts(&sb, "  input_kwargs={\n");
        mod__repr_kwargs(&sb, st, st->in_tag, st->in_order, st->n_in);
        mod__sb_puts(&sb, "\n  },\n  intermediate_kwargs={\n");
        mod__repr_kwargs(&sb, st, st->inter_tag, st->inter_order, st->n_inter);
        mod__sb_puts(&sb, "\n  },\n");
    }
    mod__sb_puts(&sb, ")");
    return mod__sb_finish(&sb);
}

/* ---- running ---------------------------------------------------------- */

typedef struct mod__call {
    const mod__plan *plan;
    mod_state *root;
    const mod_value *components;
    const mod_value *configs;
    unsigned char *arena;
    int failed;
    mod_status status;
    char msg[sizeof mod__error_buf];
} mod__call;

struct mod_block_state {
    mod__call *call;
    const mod__leaf *leaf;
    mod_state *scope;
    const mod_iter *iter;
    const mod__loop *loop; /* this block is a loop wrapper */
    unsigned char *typed;    /* MOD_BLOCK struct */
    unsigned char *snapshot; /* the struct as gathered */
    unsigned char *presence; /* per row: 0 absent, 1 none, 2 set, 3 set to none */
    mod_value *vals, *snap;  /* make_block rows */
    int *seq;                /* make_block: when a row was first shown (0: not) */
    int next_seq;
    char **xnames; /* make_block: names that are not params (never written back) */
    mod_value *xvals;
    int *xseq;
    int nx, xcap;
};

/* Records the first error of a call ("<message> (block <path>)"). */
static mod_status mod__call_vfail(mod__call *c, const mod__leaf *L, mod_status s, const char *fmt, va_list ap) {
    if (!c->failed) {
        int n = vsnprintf(c->msg, sizeof c->msg, fmt, ap);
        if (L && n >= 0 && (size_t)n < sizeof c->msg)
            snprintf(c->msg + n, sizeof c->msg - (size_t)n, " (block %s)", L->path);
        c->failed = 1;
        c->status = s;
    }
    return s;
}

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static mod_status mod__call_fail(mod__call *c, const mod__leaf *L, mod_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    mod__call_vfail(c, L, s, fmt, ap);
    va_end(ap);
    return s;
}

MODDEF mod_status mod_fail(mod_block_state *bs, mod_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (bs && bs->call)
        mod__call_vfail(bs->call, bs->leaf, s, fmt, ap);
    else
        mod__vfail(s, fmt, ap);
    va_end(ap);
    return s;
}

static size_t mod__field_size(mod_field_type t) {
    switch (t) {
    case MOD_FIELD_BOOL: return sizeof(int);
    case MOD_FIELD_INT: return sizeof(int64_t);
    case MOD_FIELD_FLOAT: return sizeof(double);
    case MOD_FIELD_STR: return sizeof(const char *);
    case MOD_FIELD_PTR: return sizeof(void *);
#ifdef MODULAR_TENSOR_H
    case MOD_FIELD_TENSOR: return sizeof(mt_tensor);
#endif
    default: return sizeof(mod_value);
    }
}

static const char *mod__role_text(unsigned flags) {
    return (flags & MOD_PARAM_INPUT) ? "input" : "intermediate input";
}

/* Where a row reads from (NULL: nothing, e.g. an output). */
static const mod_value *mod__row_source(const mod_block_state *bs, const mod__row *r) {
    switch (r->src) {
    case MOD__SRC_IN: return &bs->scope->in[r->slot];
    case MOD__SRC_INTER: return &bs->scope->inter[r->slot];
    case MOD__SRC_COMPONENT: return r->slot >= 0 ? &bs->call->components[r->slot] : NULL;
    case MOD__SRC_CONFIG: return r->slot >= 0 ? &bs->call->configs[r->slot] : NULL;
    default: return NULL;
    }
}

/* A kwargs collector: every set value of the scope tagged with its group. */
static mod_status mod__collect(mod_block_state *bs, const mod__row *r, mod_value *out) {
    const mod_state *st = bs->scope;
    int use_in = (r->p->flags & MOD_PARAM_INPUT) && !st->shared;
    const mod_value *vals = use_in ? st->in : st->inter;
    const int *tags = use_in ? st->in_tag : st->inter_tag;
    const int *order = use_in ? st->in_order : st->inter_order;
    int n = use_in ? st->n_in : st->n_inter, i;
    if (mod_dict_new(out) != MOD_OK) return MOD_ERR_MEMORY;
    for (i = 0; i < n; i++) {
        int slot = order[i];
        if (tags[slot] == r->group && mod_value_is_set(&vals[slot]) &&
            mod_dict_set(out, st->names[slot], vals[slot]) != MOD_OK)
            return MOD_ERR_MEMORY;
    }
    return MOD_OK;
}

/* The value a row starts with, following the three states: an absent slot
   takes the default, an explicit none stays none. */
static mod_status mod__row_value(mod_block_state *bs, int i, mod_value *tmp, const mod_value **out, unsigned char *presence) {
    const mod__row *r = &bs->leaf->rows[i];
    const mod_value *v;
    if (MOD__IS_COLLECTOR(r->p)) {
        if (mod__collect(bs, r, tmp) != MOD_OK) {
            mod_value_release(tmp);
            return mod__call_fail(bs->call, bs->leaf, MOD_ERR_MEMORY, "out of memory");
        }
        *out = tmp;
        *presence = 2;
        return MOD_OK;
    }
    v = mod__row_source(bs, r);
    if ((!v || v->kind == MOD_ABSENT) && r->p->dflt.kind != MOD_ABSENT) v = &r->p->dflt;
    *presence = (unsigned char)(!v || v->kind == MOD_ABSENT ? 0 : v->kind == MOD_NONE ? 1 : 2);
    if ((r->p->flags & MOD_PARAM_REQUIRED) && *presence != 2)
        return mod__call_fail(bs->call, bs->leaf, MOD_ERR_MISSING, "Required %s '%s' is missing",
                              mod__role_text(r->p->flags), r->p->name);
    if (*presence == 2 && !mod__field_accepts(r->p->type, v->kind))
        return mod__call_fail(bs->call, bs->leaf, MOD_ERR_KIND, "'%s' must be %s, got %s", mod__key(r->p),
                              mod__field_type_name(r->p->type), mod__kind_name(v->kind));
    if (*presence == 2 && r->p->type == MOD_FIELD_PTR && r->p->hint && *r->p->hint &&
        !(v->type && mod__streq(v->type->name, r->p->hint)))
        return mod__call_fail(bs->call, bs->leaf, MOD_ERR_KIND, "'%s' must be a %s, got a %s", r->p->name, r->p->hint,
                              v->type && v->type->name ? v->type->name : "untyped object");
    *out = v;
    return MOD_OK;
}

/* A deep copy (lists and dicts item by item, tensors cloned) of an input a
   block receives, as the original deep-copies inputs: whatever the block
   does to it in place, the state's inputs and the caller's value stay. */
static mod_status mod__value_copy(mod_value *out, const mod_value *src) {
    mod_status s = MOD_OK;
    int64_t i;
    memset(out, 0, sizeof *out);
    if (src->kind == MOD_LIST) {
        const mod__list *l = (const mod__list *)src->p;
        s = mod_list_new(out, l->n);
        for (i = 0; s == MOD_OK && i < l->n; i++)
            s = mod__value_copy(&((mod__list *)out->p)->items[i], &l->items[i]);
    } else if (src->kind == MOD_DICT) {
        const mod__dict *d = (const mod__dict *)src->p;
        s = mod_dict_new(out);
        for (i = 0; s == MOD_OK && i < d->n; i++) {
            mod_value item;
            s = mod__value_copy(&item, &d->items[i]);
            if (s == MOD_OK) s = mod_dict_set(out, d->names[i], item);
            mod_value_release(&item);
        }
#ifdef MODULAR_TENSOR_H
    } else if (src->kind == MOD_TENSOR) {
        mt_tensor copy = {MT_F32, 0, {0}, {0}, NULL, NULL};
        mod_value tv;
        if (mt_clone(&copy, (const mt_tensor *)src->p) != MT_OK) return mod__fail(MOD_ERR_TENSOR, "%s", mt_last_error());
        tv = mod_tensor(&copy);
        s = mod__value_own(out, &tv);
        mt_release(&copy);
        return s;
#endif
    } else {
        return mod__value_own(out, src);
    }
    if (s != MOD_OK) mod_value_release(out);
    return s;
}

/* Copies a value into a typed field (the field owns what it holds). Inputs
   reach the block as copies (the original deep-copies them), so a block can
   never change what the user passed. */
static mod_status mod__field_load(mod_block_state *bs, const mod__row *r, const mod_value *v, unsigned char *field) {
    int clone = (r->p->flags & MOD_PARAM_INPUT) && !bs->scope->shared;
    switch (r->p->type) {
    case MOD_FIELD_BOOL: *(int *)field = (int)v->i; break;
    case MOD_FIELD_INT: *(int64_t *)field = v->i; break;
    case MOD_FIELD_FLOAT: *(double *)field = v->kind == MOD_INT ? (double)v->i : v->f; break;
    case MOD_FIELD_STR: *(const char **)field = (const char *)v->p; break;
    case MOD_FIELD_PTR: *(void **)field = (void *)v->p; break;
#ifdef MODULAR_TENSOR_H
    case MOD_FIELD_TENSOR:
        if (clone) {
            if (mt_clone((mt_tensor *)field, (const mt_tensor *)v->p) != MT_OK)
                return mod__call_fail(bs->call, bs->leaf, MOD_ERR_TENSOR, "copying input '%s': %s", r->p->name,
                                      mt_last_error());
        } else {
            mt_share((mt_tensor *)field, (const mt_tensor *)v->p);
        }
        break;
#endif
    default:
        if ((clone ? mod__value_copy((mod_value *)field, v) : mod__value_own((mod_value *)field, v)) != MOD_OK)
            return mod__call_fail(bs->call, bs->leaf, MOD_ERR_MEMORY, "%s", mod__error_buf);
        break;
    }
    return MOD_OK;
}

/* A typed field as a value (not an extra reference: the field keeps its
   own; a value-typed field keeps its owner box, so writing it back shares
   what the block made, e.g. a list or an owned PTR); `empty` tells whether
   it holds nothing. */
static mod_value mod__field_value(const mod__row *r, const unsigned char *field, int *empty) {
    mod_value v;
    *empty = 0;
    switch (r->p->type) {
    case MOD_FIELD_BOOL: return mod_bool(*(const int *)field);
    case MOD_FIELD_INT: return mod_int(*(const int64_t *)field);
    case MOD_FIELD_FLOAT: return mod_float(*(const double *)field);
    case MOD_FIELD_STR:
        *empty = *(const char *const *)field == NULL;
        return mod_str(*(const char *const *)field);
    case MOD_FIELD_PTR:
        *empty = 1;
        return mod_none();
#ifdef MODULAR_TENSOR_H
    case MOD_FIELD_TENSOR:
        *empty = ((const mt_tensor *)field)->data == NULL;
        return mod_tensor((const mt_tensor *)field);
#endif
    default:
        v = *(const mod_value *)field;
        *empty = v.kind == MOD_ABSENT;
        return v;
    }
}

static void mod__field_release(const mod__row *r, unsigned char *field) {
    switch (r->p->type) {
#ifdef MODULAR_TENSOR_H
    case MOD_FIELD_TENSOR: mt_release((mt_tensor *)field); break;
#endif
    case MOD_FIELD_LIST:
    case MOD_FIELD_DICT:
    case MOD_FIELD_VALUE:
    case MOD_FIELD_KWARGS: mod_value_release((mod_value *)field); break;
    default: break;
    }
}

static int mod__generic(const mod_block_state *bs) { return bs->typed == NULL; }

/* Block-state structs are small: copy and clear them word by word (their
   size is a multiple of the pointer they start with). */
static void mod__words_copy(unsigned char *dst, const unsigned char *src, size_t size) {
    size_t i;
    for (i = 0; i + sizeof(uint64_t) <= size; i += sizeof(uint64_t)) memcpy(dst + i, src + i, sizeof(uint64_t));
    for (; i < size; i++) dst[i] = src[i];
}

static void mod__words_clear(unsigned char *dst, size_t size) {
    size_t i;
    uint64_t zero = 0;
    for (i = 0; i + sizeof(uint64_t) <= size; i += sizeof(uint64_t)) memcpy(dst + i, &zero, sizeof(uint64_t));
    for (; i < size; i++) dst[i] = 0;
}

static void mod__show_row(mod_block_state *bs, int i) {
    if (!mod__generic(bs) || bs->seq[i]) return;
    bs->seq[i] = ++bs->next_seq;
}

/* One row the general way: defaults, None, checks, conversions, copies. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static mod_status mod__gather_row(mod_block_state *bs, int i) {
    const mod__row *r = &bs->leaf->rows[i];
    mod_value tmp;
    const mod_value *v = NULL;
    mod_status s;
    memset(&tmp, 0, sizeof tmp);
    s = mod__row_value(bs, i, &tmp, &v, &bs->presence[i]);
    if (s != MOD_OK) return s;
    if (mod__generic(bs)) {
        if (bs->presence[i] || (r->p->flags & (MOD_PARAM_INPUT | MOD_PARAM_INTERMEDIATE))) {
            if (v && mod__value_own(&bs->vals[i], v) != MOD_OK)
                s = mod__call_fail(bs->call, bs->leaf, MOD_ERR_MEMORY, "out of memory");
            if (!v) bs->vals[i] = mod_none();
            if (r->p->flags & (MOD_PARAM_INPUT | MOD_PARAM_INTERMEDIATE | MOD_PARAM_OUTPUT)) mod__show_row(bs, i);
        }
        bs->snap[i] = bs->vals[i];
    } else if (bs->presence[i] == 2) {
        s = mod__field_load(bs, r, v, bs->typed + r->p->offset);
    }
    mod_value_release(&tmp);
    return s;
}

static mod_status mod__gather(mod_block_state *bs) {
    const mod__leaf *L = bs->leaf;
    const mod__row *rows = L->rows;
    unsigned char *MOD__RESTRICT typed = bs->typed;
    unsigned char *MOD__RESTRICT presence = bs->presence;
    const mod_value *base[5];
    int i, n = L->nrows;
    base[MOD__SRC_NONE] = NULL;
    base[MOD__SRC_IN] = bs->scope->in;
    base[MOD__SRC_INTER] = bs->scope->inter;
    base[MOD__SRC_COMPONENT] = bs->call->components;
    base[MOD__SRC_CONFIG] = bs->call->configs;
    for (i = 0; i < n; i++) {
        const mod__row *r = &rows[i];
        mod_status s;
        if (typed && r->fast) {
            /* the common case: a scalar that is there, of the right kind */
            const mod_value *src;
            if (r->empty_start) {
                presence[i] = 0; /* an output: starts empty */
                continue;
            }
            src = r->src && r->slot >= 0 ? base[r->src] + r->slot : NULL;
            if (src && src->kind == (mod_kind)r->fast) {
                unsigned char *field = typed + r->offset;
                if (r->fast == MOD_FLOAT)
                    memcpy(field, &src->f, sizeof(double));
                else if (r->fast == MOD_INT)
                    memcpy(field, &src->i, sizeof(int64_t));
                else
                    *(int *)field = (int)src->i;
                presence[i] = 2;
                continue;
            }
        }
        s = mod__gather_row(bs, i);
        if (s != MOD_OK) return s;
    }
    if (typed) mod__words_copy(bs->snapshot, typed, L->block->def->state_size);
    return MOD_OK;
}

static void mod__release_rows(mod_block_state *bs) {
    const mod__leaf *L = bs->leaf;
    int i;
    if (!mod__generic(bs) && !L->owns) {
        mod__words_clear(bs->typed + sizeof(mod_block_state *), bs->leaf->block->def->state_size - sizeof(mod_block_state *));
        return;
    }
    for (i = 0; i < L->nrows; i++) {
        if (mod__generic(bs)) {
            mod_value_release(&bs->vals[i]);
            memset(&bs->snap[i], 0, sizeof(mod_value));
            bs->seq[i] = 0;
        } else {
            mod__field_release(&L->rows[i], bs->typed + L->rows[i].p->offset);
        }
    }
    if (!mod__generic(bs)) memset(bs->typed + sizeof(mod_block_state *), 0,
                                  bs->leaf->block->def->state_size - sizeof(mod_block_state *));
    bs->next_seq = 0;
}

/* Writes a value (borrowed) into the scope's intermediates. */
static mod_status mod__write(mod_block_state *bs, int slot, const mod_value *v, int group) {
    mod_value owned;
    if (mod__value_own(&owned, v) != MOD_OK) return mod__call_fail(bs->call, bs->leaf, MOD_ERR_MEMORY, "out of memory");
    mod__state_put(bs->scope, 1, slot, &owned, group);
    return MOD_OK;
}

/* Kwargs collectors: members the block changed go back, keeping the tag. */
static mod_status mod__scatter_collector(mod_block_state *bs, const mod__row *r, const mod_value *dict) {
    int64_t i;
    for (i = 0; i < mod_dict_len(dict); i++) {
        int slot = mod__state_slot(bs->scope, mod_dict_name_at(dict, i));
        const mod_value *v = mod_dict_at(dict, i);
        mod_status s;
        if (slot < 0 || mod__value_same(&bs->scope->inter[slot], v)) continue;
        s = mod__write(bs, slot, v, r->group);
        if (s != MOD_OK) return s;
    }
    return MOD_OK;
}

/* The write-back rules of the seeds' "Key Observations": a changed input
   stays local; a changed intermediate input is written back; a declared
   intermediate output is added; anything else is not. Inside a loop the
   body shares one block state, so every change is kept there. */
static int mod__field_changed(mod_field_type t, const unsigned char *a, const unsigned char *b) {
    size_t n = mod__field_size(t);
    if (n == sizeof(int64_t)) {
        int64_t x, y;
        memcpy(&x, a, sizeof x);
        memcpy(&y, b, sizeof y);
        return x != y;
    }
    if (n == sizeof(int)) {
        int x, y;
        memcpy(&x, a, sizeof x);
        memcpy(&y, b, sizeof y);
        return x != y;
    }
    return memcmp(a, b, n) != 0;
}

/* Writes a scalar into the scope's intermediates without a box. */
static void mod__put_scalar(mod_state *st, int slot, mod_kind kind, int64_t i, double f, int group) {
    mod_value *v = &st->inter[slot];
    if (v->kind == kind && !v->box && !group) { /* the usual case: a new number in place */
        v->i = i;
        v->f = f;
        return;
    }
    if (v->kind == MOD_ABSENT)
        st->inter_order[st->n_inter++] = slot;
    else if (v->box)
        mod__box_release(v->box);
    v->kind = kind;
    v->i = i;
    v->f = f;
    v->p = NULL;
    v->type = NULL;
    v->box = NULL;
    if (group) st->inter_tag[slot] = group;
}

/* The write-back rules of the seeds' "Key Observations": a changed input
   stays local; a changed intermediate input is written back; a declared
   intermediate output is added; anything else is not. Inside a loop the
   body shares one block state, so every change is kept there. */
/* Writes back a non-scalar row (or any row of a make_block block). */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static mod_status mod__scatter_value(mod_block_state *bs, int i) {
    const mod__row *r = &bs->leaf->rows[i];
    int empty;
    mod_value v;
    if (mod__generic(bs)) {
        v = bs->vals[i];
        empty = v.kind == MOD_ABSENT;
    } else {
        v = mod__field_value(r, bs->typed + r->p->offset, &empty);
    }
    if (empty && r->wb == MOD__WB_OUTPUT)
        return mod__call_fail(bs->call, bs->leaf, MOD_ERR_MISSING, "Intermediate output '%s' is missing in block state",
                              r->p->name);
    if (empty) v = mod_none();
    return mod__write(bs, r->slot, &v, r->group);
}

/* One row, every case. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static mod_status mod__scatter_row(mod_block_state *bs, int i) {
    const mod__row *r = &bs->leaf->rows[i];
    const mod__param *p = r->p;
    int generic = mod__generic(bs), changed, none = 0;
    unsigned char *field = generic ? NULL : bs->typed + p->offset;
    mod_value v;
    if (r->wb == MOD__WB_SKIP) return MOD_OK;
    if (r->wb == MOD__WB_COLLECT)
        return mod__scatter_collector(bs, r, generic ? &bs->vals[i] : (const mod_value *)field);
    changed = generic ? !mod__value_same(&bs->vals[i], &bs->snap[i])
                      : mod__field_changed(p->type, field, bs->snapshot + p->offset);
    if (bs->presence[i] == 3) {
        none = 1;
    } else if (!changed) {
        /* in a loop's shared state everything is CHANGED; a typed scalar
           output that was absent is new even when it equals the zeroed
           field it started from (n = 0 on the first iteration) */
        if (r->wb == MOD__WB_CHANGED && !(!generic && r->fast && bs->presence[i] == 0 && r->is_output)) return MOD_OK;
        if (r->wb == MOD__WB_MODIFIED && bs->presence[i] == 2) return MOD_OK; /* already in place */
        if ((r->wb == MOD__WB_MODIFIED || r->wb == MOD__WB_INOUT) && bs->presence[i] < 2)
            none = 1; /* the block left it without a value */
    }
    if (none) {
        v = mod_none();
        return mod__write(bs, r->slot, &v, r->group);
    }
    if (!generic && r->fast) {
        if (r->fast == MOD_FLOAT)
            mod__put_scalar(bs->scope, r->slot, MOD_FLOAT, 0, *(const double *)field, r->group);
        else if (r->fast == MOD_INT)
            mod__put_scalar(bs->scope, r->slot, MOD_INT, *(const int64_t *)field, 0.0, r->group);
        else
            mod__put_scalar(bs->scope, r->slot, MOD_BOOL, *(const int *)field ? 1 : 0, 0.0, r->group);
        return MOD_OK;
    }
    return mod__scatter_value(bs, i);
}

/* The write-back loop: ints and floats in place take a short path, every
   other row goes through mod__scatter_row. */
static mod_status mod__scatter(mod_block_state *bs) {
    const mod__leaf *L = bs->leaf;
    const mod__row *rows = L->rows;
    const unsigned char *typed = bs->typed, *snapshot = bs->snapshot, *presence = bs->presence;
    mod_value *inter = bs->scope->inter;
    int i, n = L->nrows;
    for (i = 0; i < n; i++) {
        const mod__row *r = &rows[i];
        mod_status s;
        if (r->wb == MOD__WB_SKIP) continue;
        if (typed && (r->fast == MOD_INT || r->fast == MOD_FLOAT) &&
            (presence[i] == 2 || (presence[i] == 0 && r->wb == MOD__WB_OUTPUT))) {
            int64_t now, before;
            mod_value *dst = inter + r->slot;
            memcpy(&now, typed + r->offset, sizeof now);
            memcpy(&before, snapshot + r->offset, sizeof before);
            if (now == before && (r->wb == MOD__WB_CHANGED || r->wb == MOD__WB_MODIFIED)) continue;
            if (dst->kind == (mod_kind)r->fast && !dst->box && !r->group) {
                if (r->fast == MOD_INT)
                    dst->i = now;
                else
                    memcpy(&dst->f, &now, sizeof dst->f);
                continue;
            }
        }
        s = mod__scatter_row(bs, i);
        if (s != MOD_OK) return s;
    }
    return MOD_OK;
}

static mod_status mod__run_ops(mod__call *c, mod_state *scope, const mod_iter *it, int begin, int end);

static void mod__extras_free(mod_block_state *bs) {
    int i;
    for (i = 0; i < bs->nx; i++) {
        MOD_FREE(bs->xnames[i]);
        mod_value_release(&bs->xvals[i]);
    }
    MOD_FREE(bs->xnames);
    MOD_FREE(bs->xvals);
    MOD_FREE(bs->xseq);
}

static mod_status mod__run_leaf(mod__call *c, const mod__leaf *L, mod_state *scope, const mod_iter *it,
                                const mod__loop *loop) {
    mod_block_state bs;
    const mod_block *b = L->block;
    unsigned char *mem = c->arena + L->off;
    mod_status s;
    bs.call = c;
    bs.leaf = L;
    bs.scope = scope;
    bs.iter = it;
    bs.loop = loop;
    bs.typed = bs.snapshot = bs.presence = NULL;
    bs.vals = bs.snap = NULL;
    bs.seq = NULL;
    bs.next_seq = 0;
    bs.xnames = NULL;
    bs.xvals = NULL;
    bs.xseq = NULL;
    bs.nx = bs.xcap = 0;
    if (b->def) {
        size_t sz = mod__align16(b->def->state_size);
        bs.typed = mem;
        bs.snapshot = mem + sz;
        bs.presence = mem + 2 * sz;
        mod__words_clear(bs.typed, b->def->state_size);
        *(mod_block_state **)bs.typed = &bs;
    } else {
        size_t vsz = mod__align16((size_t)L->nrows * sizeof(mod_value));
        bs.vals = (mod_value *)mem;
        bs.snap = (mod_value *)(mem + vsz);
        bs.presence = mem + 4 * vsz;
        bs.seq = (int *)(mem + 4 * vsz + mod__align16((size_t)L->nrows));
        memset(bs.vals, 0, 2 * vsz);
        memset(bs.seq, 0, (size_t)L->nrows * sizeof(int));
    }
    s = mod__gather(&bs);
    if (s == MOD_OK) {
        if (b->def)
            s = b->def->run(bs.typed);
        else if (b->fn)
            s = b->fn(&bs);
        if (s == MOD_ERR_MEMORY && !c->failed)
            mod__call_fail(c, L, s, "out of memory");
        else if (s != MOD_OK && !c->failed)
            mod__call_fail(c, L, s, "block returned %s without a message", mod_status_name(s));
        if (s == MOD_OK) s = mod__scatter(&bs);
    }
    if (!b->def || L->owns) mod__release_rows(&bs); /* scalar fields hold nothing to release */
    if (bs.xnames || bs.xvals || bs.xseq) mod__extras_free(&bs); /* grown, even partly */
    return s;
}

MODDEF mod_status mod_loop_step(mod_block_state *bs, const mod_iter *it) {
    const mod__loop *lp;
    mod_status s;
    mod_iter none;
    if (!bs || !bs->loop)
        return mod_fail(bs, MOD_ERR_ARGUMENT, "mod_loop_step is for the body of a MOD_LOOP block");
    lp = bs->loop;
    if (!it) {
        memset(&none, 0, sizeof none);
        it = &none;
    }
    /* the wrapper's own fields join the shared state, the body runs, then
       the wrapper sees what the body left */
    s = mod__scatter(bs);
    if (s != MOD_OK) return s;
    mod__release_rows(bs);
    s = mod__run_ops(bs->call, bs->scope, it, lp->body_begin, lp->body_end);
    if (s != MOD_OK) return s;
    return mod__gather(bs);
}

static mod_status mod__run_loop(mod__call *c, const mod__loop *lp, mod_state *parent, const mod_iter *it) {
    const mod__plan *pl = c->plan;
    const mod__leaf *W = &pl->leaves[lp->leaf];
    mod_state *local = mod__state_new(NULL, lp->names, lp->nlocal, 1);
    mod_status s = MOD_OK;
    int i;
    if (!local) return mod__call_fail(c, W, MOD_ERR_MEMORY, "out of memory");
    for (i = 0; i < lp->ngather && s == MOD_OK; i++) {
        const mod__xfer *x = &lp->gather[i];
        const mod_value *v = x->from == MOD_PARAM_INPUT ? &parent->in[x->slot] : &parent->inter[x->slot];
        mod_value owned;
        if (x->required && !mod_value_is_set(v)) {
            s = mod__call_fail(c, W, MOD_ERR_MISSING, "Required %s '%s' is missing", mod__role_text(x->from), x->p->name);
            break;
        }
        if (v->kind == MOD_ABSENT || local->inter[x->local].kind != MOD_ABSENT) continue;
        if (x->from == MOD_PARAM_INPUT && !parent->shared)
            s = mod__value_copy(&owned, v);
        else
            s = mod__value_own(&owned, v);
        if (s != MOD_OK) {
            s = mod__call_fail(c, W, s, "copying input '%s': %s", lp->names[x->local], mod__error_buf);
            break;
        }
        mod__state_put(local, 1, x->local, &owned,
                       x->from == MOD_PARAM_INPUT ? parent->in_tag[x->slot] : parent->inter_tag[x->slot]);
    }
    if (s == MOD_OK) s = mod__run_leaf(c, W, local, it, lp);
    for (i = 0; i < lp->nouts && s == MOD_OK; i++) {
        const mod__xfer *x = &lp->outs[i];
        mod_value owned;
        /* every block that ran had its outputs checked when it finished; an
           output still absent comes from a body that never ran (a loop of
           zero iterations) and is not written */
        if (local->inter[x->local].kind == MOD_ABSENT) continue;
        if (mod__value_own(&owned, &local->inter[x->local]) != MOD_OK) {
            s = mod__call_fail(c, W, MOD_ERR_MEMORY, "out of memory");
            break;
        }
        mod__state_put(parent, 1, x->slot, &owned, x->group);
    }
    for (i = 0; i < lp->nback && s == MOD_OK; i++) {
        const mod__xfer *x = &lp->back[i];
        mod_value owned;
        if (local->inter[x->local].kind == MOD_ABSENT || mod__value_same(&local->inter[x->local], &parent->inter[x->slot]))
            continue;
        if (mod__value_own(&owned, &local->inter[x->local]) != MOD_OK) {
            s = mod__call_fail(c, W, MOD_ERR_MEMORY, "out of memory");
            break;
        }
        mod__state_put(parent, 1, x->slot, &owned, 0);
    }
    mod_state_free(local);
    return s;
}

static int mod__present(const mod_state *st, int slot) {
    return mod_value_is_set(&st->in[slot]) || mod_value_is_set(&st->inter[slot]);
}

static mod_status mod__run_ops(mod__call *c, mod_state *scope, const mod_iter *it, int begin, int end) {
    const mod__plan *pl = c->plan;
    int pc = begin;
    while (pc < end) {
        const mod__op *op = &pl->ops[pc];
        mod_status s;
        switch (op->kind) {
        case MOD__OP_LEAF:
            s = mod__run_leaf(c, &pl->leaves[op->a], scope, it, NULL);
            if (s != MOD_OK) return s;
            pc++;
            break;
        case MOD__OP_AUTO: {
            const mod__auto *a = &pl->autos[op->a];
            int i, next = -1, dflt = -1;
            for (i = 0; i < a->n && next < 0; i++) {
                if (a->slot[i] < 0) {
                    if (dflt < 0) dflt = a->start[i];
                } else if (mod__present(scope, a->slot[i])) {
                    next = a->start[i];
                }
            }
            if (next < 0)
                for (i = 0; i < a->n && dflt < 0; i++)
                    if (a->slot[i] < 0) dflt = a->start[i];
            pc = next >= 0 ? next : dflt >= 0 ? dflt : a->end;
            break;
        }
        case MOD__OP_JUMP: pc = op->a; break;
        default: {
            const mod__loop *lp = &pl->loops[op->a];
            s = mod__run_loop(c, lp, scope, it);
            if (s != MOD_OK) return s;
            pc = lp->body_end;
            break;
        }
        }
    }
    return MOD_OK;
}

/* ---- checks before a run --------------------------------------------- */

static mod_status mod__precheck_leaf(mod__call *c, const mod__leaf *L, unsigned char *pin, unsigned char *pinter, int shared) {
    int k;
    for (k = 0; k < L->nchecks; k++) {
        const mod__row *r = &L->rows[L->checks[k]];
        unsigned f = r->p->flags;
        if (f & MOD_PARAM_COMPONENT) {
            if (r->slot < 0 || !mod_value_is_set(&c->components[r->slot]))
                return mod__call_fail(c, L, MOD_ERR_MISSING,
                                      "Component '%s' is not set; give it with mod_pipeline_set_component", r->p->name);
        } else if (!(((f & MOD_PARAM_INPUT) && !shared) ? pin[r->slot] : pinter[r->slot])) {
            return mod__call_fail(c, L, MOD_ERR_MISSING, "Required %s '%s' is missing", mod__role_text(f), r->p->name);
        }
    }
    for (k = 0; k < L->nouts; k++) pinter[L->outs[k]] = 1;
    return MOD_OK;
}

/* Walks the program as a run would, on presence flags only: a required
   value or component missing anywhere is reported before anything runs. */
static mod_status mod__precheck(mod__call *c, unsigned char *pin, unsigned char *pinter, int shared, int begin, int end) {
    const mod__plan *pl = c->plan;
    int pc = begin;
    while (pc < end) {
        const mod__op *op = &pl->ops[pc];
        mod_status s;
        if (op->kind == MOD__OP_LEAF) {
            s = mod__precheck_leaf(c, &pl->leaves[op->a], pin, pinter, shared);
            if (s != MOD_OK) return s;
            pc++;
        } else if (op->kind == MOD__OP_AUTO) {
            const mod__auto *a = &pl->autos[op->a];
            int i, next = -1, dflt = -1;
            for (i = 0; i < a->n; i++) {
                if (a->slot[i] < 0) {
                    if (dflt < 0) dflt = a->start[i];
                } else if (next < 0 && (pin[a->slot[i]] || pinter[a->slot[i]])) {
                    next = a->start[i];
                }
            }
            pc = next >= 0 ? next : dflt >= 0 ? dflt : a->end;
        } else if (op->kind == MOD__OP_JUMP) {
            pc = op->a;
        } else {
            const mod__loop *lp = &pl->loops[op->a];
            const mod__leaf *W = &pl->leaves[lp->leaf];
            unsigned char *local = c->arena + lp->sim_off;
            int i;
            memset(local, 0, (size_t)lp->nlocal + 1);
            for (i = 0; i < lp->ngather; i++) {
                const mod__xfer *x = &lp->gather[i];
                int present = (x->from == MOD_PARAM_INPUT && !shared) ? pin[x->slot] : pinter[x->slot];
                if (x->required && !present)
                    return mod__call_fail(c, W, MOD_ERR_MISSING, "Required %s '%s' is missing", mod__role_text(x->from),
                                          x->p->name);
                local[x->local] = (unsigned char)present;
            }
            s = mod__precheck_leaf(c, W, local, local, 1);
            if (s == MOD_OK) s = mod__precheck(c, local, local, 1, lp->body_begin, lp->body_end);
            if (s != MOD_OK) return s;
            for (i = 0; i < lp->nouts; i++) pinter[lp->outs[i].slot] = 1;
            pc = lp->body_end;
        }
    }
    return MOD_OK;
}

/* ---- pipeline -------------------------------------------------------- */

struct mod_pipeline {
    mod__plan *plan;
    mod_value *components;
    mod_value *configs;
};

MODDEF void mod_pipeline_free(mod_pipeline *p) {
    int i;
    if (!p) return;
    if (p->plan) {
        for (i = 0; p->components && i < p->plan->ncomps; i++) mod_value_release(&p->components[i]);
        for (i = 0; p->configs && i < p->plan->nconfs; i++) mod_value_release(&p->configs[i]);
    }
    MOD_FREE(p->components);
    MOD_FREE(p->configs);
    mod__plan_release(p->plan);
    MOD_FREE(p);
}

MODDEF mod_status mod_pipeline_new(mod_pipeline **out, const mod_block *blocks) {
    mod_pipeline *p;
    mod_status s;
    int i;
    if (!out || !blocks) return mod__fail(MOD_ERR_ARGUMENT, "mod_pipeline_new: out and blocks are required");
    s = mod__validate(blocks, 1);
    if (s != MOD_OK) return s;
    p = (mod_pipeline *)mod__calloc(1, sizeof *p);
    if (!p) return mod__oom();
    s = mod__plan_new(&p->plan, blocks);
    if (s == MOD_OK) {
        p->components = (mod_value *)mod__calloc((size_t)p->plan->ncomps + 1, sizeof(mod_value));
        p->configs = (mod_value *)mod__calloc((size_t)p->plan->nconfs + 1, sizeof(mod_value));
        if (!p->components || !p->configs) s = mod__oom();
    }
    for (i = 0; s == MOD_OK && i < p->plan->nconfs; i++) s = mod_value_set(&p->configs[i], p->plan->confs[i]->dflt);
    for (i = 0; s == MOD_OK && i < p->plan->ncomps; i++) {
        const mod__param *c = p->plan->comps[i];
        if (c->create) {
            mod_value v;
            memset(&v, 0, sizeof v);
            s = c->create(c->config, &v);
            if (s != MOD_OK) {
                char msg[sizeof mod__error_buf];
                snprintf(msg, sizeof msg, "%s", mod__error_buf);
                s = mod__fail(s, "creating component '%s': %s", c->name, msg);
            } else {
                p->components[i] = v;
            }
        }
    }
    if (s != MOD_OK) {
        mod_pipeline_free(p);
        return s;
    }
    *out = p;
    return MOD_OK;
}

MODDEF char *mod_pipeline_doc(const mod_pipeline *p) { return p ? mod_block_doc(p->plan->root) : NULL; }
MODDEF const mod_block *mod_pipeline_blocks(const mod_pipeline *p) { return p ? p->plan->root : NULL; }

static void mod__list_names(mod__sb *sb, const mod__param *const *ps, int n) {
    int i;
    for (i = 0; i < n; i++) mod__sb_printf(sb, "%s%s", i ? ", " : "", ps[i]->name);
    if (!n) mod__sb_puts(sb, "(none)");
}

static mod_status mod__set_named(const mod__param **ps, int n, mod_value *vals, const char *what, const char *name,
                                 mod_value v) {
    int i = name ? mod__find_param(ps, n, name) : -1;
    if (i < 0) {
        mod__sb sb = {NULL, 0, 0, 0};
        mod__list_names(&sb, ps, n);
        mod__fail(MOD_ERR_UNKNOWN, "unknown %s '%s'; this pipeline has: %s", what, name ? name : "(null)", sb.buf ? sb.buf : "");
        MOD_FREE(sb.buf);
        return MOD_ERR_UNKNOWN;
    }
    if (mod_value_is_set(&v) && !mod__field_accepts(ps[i]->type, v.kind))
        return mod__fail(MOD_ERR_KIND, "%s '%s' must be %s, got %s", what, name, mod__field_type_name(ps[i]->type),
                         mod__kind_name(v.kind));
    if (mod_value_is_set(&v) && ps[i]->type == MOD_FIELD_PTR && ps[i]->hint && *ps[i]->hint &&
        !(v.type && mod__streq(v.type->name, ps[i]->hint)))
        return mod__fail(MOD_ERR_KIND, "%s '%s' must be a %s, got a %s", what, name, ps[i]->hint,
                         v.type && v.type->name ? v.type->name : "untyped object");
    return mod_value_set(&vals[i], v);
}

MODDEF mod_status mod_pipeline_set_component(mod_pipeline *p, const char *name, mod_value v) {
    if (!p) return mod__fail(MOD_ERR_ARGUMENT, "mod_pipeline_set_component: pipeline is NULL");
    return mod__set_named(p->plan->comps, p->plan->ncomps, p->components, "component", name, v);
}

MODDEF mod_status mod_pipeline_set_config(mod_pipeline *p, const char *name, mod_value v) {
    if (!p) return mod__fail(MOD_ERR_ARGUMENT, "mod_pipeline_set_config: pipeline is NULL");
    return mod__set_named(p->plan->confs, p->plan->nconfs, p->configs, "config", name, v);
}

MODDEF const mod_value *mod_pipeline_component(const mod_pipeline *p, const char *name) {
    int i = p && name ? mod__find_param(p->plan->comps, p->plan->ncomps, name) : -1;
    return i >= 0 ? &p->components[i] : NULL;
}

MODDEF const mod_value *mod_pipeline_config(const mod_pipeline *p, const char *name) {
    int i = p && name ? mod__find_param(p->plan->confs, p->plan->nconfs, name) : -1;
    return i >= 0 ? &p->configs[i] : NULL;
}

MODDEF int mod_pipeline_component_count(const mod_pipeline *p) { return p ? p->plan->ncomps : 0; }

MODDEF const char *mod_pipeline_component_name(const mod_pipeline *p, int index) {
    return p && index >= 0 && index < p->plan->ncomps ? p->plan->comps[index]->name : NULL;
}

/* Puts the arguments in the state: names of the pipeline's inputs go to
   `inputs`, of its intermediate inputs to `intermediates`. */
static mod_status mod__route_args(mod__call *c, mod_state *st, const mod_arg *args, unsigned char *pin, unsigned char *pinter) {
    const mod__plan *pl = c->plan;
    int i, k;
    for (i = 0; args && args[i].name; i++) {
        const mod_arg *a = &args[i];
        int slot = mod__plan_lookup(pl, a->name);
        const mod__leaf *consumer;
        mod_value owned;
        if (slot < 0 || !(pl->arg_in[slot] || pl->arg_inter[slot])) {
            mod__sb sb = {NULL, 0, 0, 0};
            if (slot >= 0 && pl->producer[slot] >= 0)
                return mod__call_fail(c, NULL, MOD_ERR_UNKNOWN,
                                      "argument '%s' is made by block '%s' and is not an input of this pipeline", a->name,
                                      pl->leaves[pl->producer[slot]].path);
            for (k = 0; k < pl->nslots; k++)
                if (pl->arg_in[k] || pl->arg_inter[k]) mod__sb_printf(&sb, "%s%s", sb.len ? ", " : "", pl->names[k]);
            mod__call_fail(c, NULL, MOD_ERR_UNKNOWN, "unknown argument '%s'; this pipeline takes: %s", a->name,
                           sb.buf ? sb.buf : "(nothing)");
            MOD_FREE(sb.buf);
            return MOD_ERR_UNKNOWN;
        }
        for (k = 0; k < i; k++)
            if (strcmp(args[k].name, a->name) == 0)
                return mod__call_fail(c, NULL, MOD_ERR_DUPLICATE, "argument '%s' is given twice", a->name);
        if (a->value.kind == MOD_ABSENT) continue;
        consumer = pl->arg_consumer[slot] >= 0 ? &pl->leaves[pl->arg_consumer[slot]] : NULL;
        if (mod_value_is_set(&a->value) && !mod__field_accepts(pl->arg_type[slot], a->value.kind))
            return mod__call_fail(c, consumer, MOD_ERR_KIND, "argument '%s' must be %s, got %s", a->name,
                                  mod__field_type_name(pl->arg_type[slot]), mod__kind_name(a->value.kind));
        for (k = 0; k < 2; k++) {
            if (!(k ? pl->arg_inter[slot] : pl->arg_in[slot])) continue;
            if (mod__value_own(&owned, &a->value) != MOD_OK) return mod__call_fail(c, NULL, MOD_ERR_MEMORY, "%s", mod__error_buf);
            mod__state_put(st, k, slot, &owned, pl->arg_group[slot]);
            (k ? pinter : pin)[slot] = (unsigned char)mod_value_is_set(&a->value);
        }
    }
    return MOD_OK;
}

static mod_status mod__call_run(mod_pipeline *p, const mod_arg *args, mod_state **out) {
    mod__call c;
    mod_state *st;
    mod_status s;
    memset(&c, 0, sizeof c);
    if (!p || !out) return mod__fail(MOD_ERR_ARGUMENT, "mod_pipeline_call: pipeline and out are required");
    c.plan = p->plan;
    c.components = p->components;
    c.configs = p->configs;
    st = mod__state_new(p->plan, p->plan->names, p->plan->nslots, 0);
    c.arena = (unsigned char *)mod__alloc(p->plan->arena + 16);
    if (c.arena) memset(c.arena + p->plan->sim_in, 0, p->plan->arena - p->plan->sim_in);
    if (!st || !c.arena) {
        mod_state_free(st);
        MOD_FREE(c.arena);
        return mod__oom();
    }
    c.root = st;
    s = mod__route_args(&c, st, args, c.arena + p->plan->sim_in, c.arena + p->plan->sim_inter);
    if (s == MOD_OK) s = mod__precheck(&c, c.arena + p->plan->sim_in, c.arena + p->plan->sim_inter, 0, 0, p->plan->nops);
    if (s == MOD_OK) s = mod__run_ops(&c, st, NULL, 0, p->plan->nops);
    MOD_FREE(c.arena);
    if (s != MOD_OK) {
        mod__fail(s, "%s", c.failed ? c.msg : mod_status_text(s));
        mod_state_free(st);
        return s;
    }
    *out = st;
    return MOD_OK;
}

MODDEF mod_status mod_pipeline_call(mod_pipeline *p, const mod_arg *args, mod_state **out) {
    return mod__call_run(p, args, out);
}

MODDEF mod_status mod_pipeline_call_outputs(mod_pipeline *p, const mod_arg *args, const char *const *names, mod_value *outs) {
    mod_state *st = NULL;
    mod_status s;
    int i, n = 0;
    if (!p || !names || !outs) return mod__fail(MOD_ERR_ARGUMENT, "mod_pipeline_call_outputs: pipeline, names and outs are required");
    for (n = 0; names[n]; n++)
        if (mod__plan_lookup(p->plan, names[n]) < 0)
            return mod__fail(MOD_ERR_UNKNOWN, "unknown output '%s': no block of this pipeline uses that name", names[n]);
    s = mod__call_run(p, args, &st);
    if (s != MOD_OK) return s;
    for (i = 0; i < n; i++) {
        int slot = mod__plan_lookup(p->plan, names[i]);
        memset(&outs[i], 0, sizeof outs[i]);
        if (mod__value_own(&outs[i], &st->inter[slot]) != MOD_OK) {
            while (i-- > 0) mod_value_release(&outs[i]);
            mod_state_free(st);
            return mod__oom();
        }
    }
    mod_state_free(st);
    return MOD_OK;
}

MODDEF mod_status mod_block_run(const mod_block *b, const mod_arg *args, mod_state **out) {
    mod_pipeline *p = NULL;
    mod_arg *rest;
    int n = 0, k = 0, i;
    mod_status s;
    if (!b || !out) return mod__fail(MOD_ERR_ARGUMENT, "mod_block_run: block and out are required");
    s = mod_pipeline_new(&p, b);
    if (s != MOD_OK) return s;
    while (args && args[n].name) n++;
    rest = (mod_arg *)mod__calloc((size_t)n + 1, sizeof(mod_arg));
    if (!rest) {
        mod_pipeline_free(p);
        return mod__oom();
    }
    for (i = 0; i < n && s == MOD_OK; i++) {
        if (mod__find_param(p->plan->comps, p->plan->ncomps, args[i].name) >= 0)
            s = mod_pipeline_set_component(p, args[i].name, args[i].value);
        else
            rest[k++] = args[i];
    }
    if (s == MOD_OK) s = mod_pipeline_call(p, rest, out);
    MOD_FREE(rest);
    mod_pipeline_free(p);
    return s;
}

/* ---- the block state seen by block functions ------------------------- */

static int mod__bs_row(const mod_block_state *bs, const char *name) {
    int i;
    for (i = 0; i < bs->leaf->nrows; i++) {
        const mod__param *p = bs->leaf->rows[i].p;
        if (!(p->flags & (MOD_PARAM_COMPONENT | MOD_PARAM_CONFIG)) && strcmp(mod__key(p), name) == 0) return i;
    }
    return -1;
}

MODDEF const mod_value *mod_block_state_get(mod_block_state *bs, const char *name) {
    int i;
    if (!bs || !name || !mod__generic(bs)) return NULL;
    i = mod__bs_row(bs, name);
    if (i >= 0) return bs->vals[i].kind != MOD_ABSENT ? &bs->vals[i] : NULL;
    for (i = 0; i < bs->nx; i++)
        if (strcmp(bs->xnames[i], name) == 0) return &bs->xvals[i];
    return NULL;
}

MODDEF mod_status mod_block_state_set(mod_block_state *bs, const char *name, mod_value v) {
    int i;
    mod_status s;
    if (!bs || !name) return mod__fail(MOD_ERR_ARGUMENT, "mod_block_state_set: block state and name are required");
    if (!mod__generic(bs))
        return mod_fail(bs, MOD_ERR_ARGUMENT, "mod_block_state_set('%s'): MOD_BLOCK blocks set their typed fields", name);
    i = mod__bs_row(bs, name);
    if (i >= 0) {
        s = mod_value_set(&bs->vals[i], v);
        if (s == MOD_OK) mod__show_row(bs, i);
        return s;
    }
    for (i = 0; i < bs->nx; i++)
        if (strcmp(bs->xnames[i], name) == 0) return mod_value_set(&bs->xvals[i], v);
    if (bs->nx >= bs->xcap) {
        int ncap = bs->xcap ? bs->xcap * 2 : 4;
        char **names = (char **)MOD_REALLOC(bs->xnames, (size_t)ncap * sizeof(char *));
        mod_value *vals;
        int *seq;
        if (!names) return mod__oom();
        bs->xnames = names;
        vals = (mod_value *)MOD_REALLOC(bs->xvals, (size_t)ncap * sizeof(mod_value));
        if (!vals) return mod__oom();
        bs->xvals = vals;
        seq = (int *)MOD_REALLOC(bs->xseq, (size_t)ncap * sizeof(int));
        if (!seq) return mod__oom();
        bs->xseq = seq;
        bs->xcap = ncap;
    }
    memset(&bs->xvals[bs->nx], 0, sizeof(mod_value));
    if (!(bs->xnames[bs->nx] = mod__strdup(name))) return mod__oom();
    s = mod_value_set(&bs->xvals[bs->nx], v);
    if (s != MOD_OK) {
        MOD_FREE(bs->xnames[bs->nx]);
        return s;
    }
    bs->xseq[bs->nx] = ++bs->next_seq;
    bs->nx++;
    return MOD_OK;
}

MODDEF char *mod_block_state_repr(mod_block_state *bs) {
    mod__sb sb = {NULL, 0, 0, 0};
    int i, k, first = 1;
    if (!bs) return NULL;
    mod__sb_puts(&sb, "BlockState(\n");
    if (mod__generic(bs)) {
        /* in the order names were first shown */
        for (k = 1; k <= bs->next_seq; k++) {
            for (i = 0; i < bs->leaf->nrows; i++)
                if (bs->seq[i] == k) {
                    mod__sb_printf(&sb, "%s    %s: ", first ? "" : "\n", mod__key(bs->leaf->rows[i].p));
                    mod__value_text(&sb, &bs->vals[i], 0);
                    first = 0;
                }
            for (i = 0; i < bs->nx; i++)
                if (bs->xseq[i] == k) {
                    mod__sb_printf(&sb, "%s    %s: ", first ? "" : "\n", bs->xnames[i]);
                    mod__value_text(&sb, &bs->xvals[i], 0);
                    first = 0;
                }
        }
    } else {
        for (i = 0; i < bs->leaf->nrows; i++) {
            const mod__row *r = &bs->leaf->rows[i];
            int empty;
            mod_value v;
            if (r->p->flags & (MOD_PARAM_COMPONENT | MOD_PARAM_CONFIG)) continue;
            v = mod__field_value(r, bs->typed + r->p->offset, &empty);
            if (!(r->p->flags & (MOD_PARAM_INPUT | MOD_PARAM_INTERMEDIATE)) && empty) continue;
            if (bs->presence[i] < 2 && !memcmp(bs->typed + r->p->offset, bs->snapshot + r->p->offset, mod__field_size(r->p->type)))
                v = mod_none();
            if (r->p->type == MOD_FIELD_PTR && !empty) v = mod_none();
            mod__sb_printf(&sb, "%s    %s: ", first ? "" : "\n", r->p->name);
            if (r->p->type == MOD_FIELD_PTR && bs->presence[i] == 2) {
                const mod_value *src = mod__row_source(bs, r);
                mod__value_text(&sb, src ? src : &v, 0);
            } else {
                mod__value_text(&sb, &v, 0);
            }
            first = 0;
        }
    }
    mod__sb_puts(&sb, "\n)");
    return mod__sb_finish(&sb);
}

MODDEF const mod_state *mod_block_state_pipeline(const mod_block_state *bs) { return bs && bs->call ? bs->call->root : NULL; }
MODDEF const mod_iter *mod_block_state_iter(const mod_block_state *bs) { return bs ? bs->iter : NULL; }
MODDEF void *mod_block_state_user(const mod_block_state *bs) { return bs ? bs->leaf->block->user : NULL; }
MODDEF const char *mod_block_state_path(const mod_block_state *bs) { return bs ? bs->leaf->path : NULL; }

static int mod__bs_row_at(const mod_block_state *bs, size_t offset) {
    int i;
    if (!bs || mod__generic(bs)) return -1;
    for (i = 0; i < bs->leaf->nrows; i++)
        if (bs->leaf->rows[i].p->offset == offset && !(bs->leaf->rows[i].p->flags & (MOD_PARAM_COMPONENT | MOD_PARAM_CONFIG)))
            return i;
    for (i = 0; i < bs->leaf->nrows; i++)
        if (bs->leaf->rows[i].p->offset == offset) return i;
    return -1;
}

MODDEF int mod_block_state_is_set(const mod_block_state *bs, size_t offset) {
    int i = mod__bs_row_at(bs, offset);
    return i >= 0 && bs->presence[i] == 2;
}

MODDEF void mod_block_state_set_none(mod_block_state *bs, size_t offset) {
    int i = mod__bs_row_at(bs, offset);
    if (i >= 0) bs->presence[i] = 3;
}

#endif /* MODULAR_IMPLEMENTATION_DONE */
#endif /* MODULAR_IMPLEMENTATION */

/*
------------------------------------------------------------------------------
MIT License
Copyright (c) 2026 the modular.h authors
Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:
The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
------------------------------------------------------------------------------
*/
