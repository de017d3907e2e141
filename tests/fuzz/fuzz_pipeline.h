/* tests/fuzz/fuzz_pipeline.h - the byte format fuzz_pipeline.c decodes, shared
   with the seed generator (make_seeds.c) so that seeds spell real programs.

   An input is read byte by byte; a byte past the end reads as 0, so every
   input is a valid program.

     header   3 bytes: mode, lo, hi. mode >= FZ_OOM_MODE injects an
              allocation failure at allocation 1 + (lo | hi << 8) % 4096,
              once (mode even) or from there on (mode odd).
     ops      up to FZ_MAX_OPS, each `op % FZ_OP_COUNT` then its operands.

   Operands (each one byte unless said otherwise):
     name     index into fz_names (FZ_NAME_DYNAMIC: a length byte, then that
              many raw bytes)
     value    kind (fz_value_kind, modulo FZ_V_COUNT) and payload
     block    index into the pool of blocks made so far (modulo its size;
              the pool keeps the last FZ_MAX_BLOCKS, oldest first)
     def      index into the harness's MOD_BLOCK / MOD_LOOP definitions

     FZ_OP_MAKE_BLOCK   class, description, counts1 (inputs | intermediates << 2 |
                        outputs << 4 | has_fn << 6 | user << 7), counts2
                        (components & 3 | configs << 2 & 3), then per input:
                        name, hint, flags (1 required, 2..3 kwargs group, 8
                        collector: no name), value (default), description;
                        per output: name, hint, kwargs; per component: name,
                        hint, create (0 none, 1 ok, 2 fails), config; per
                        config: name, value; then the block script: count
                        (% FZ_MAX_SCRIPT) and per step op, a, b
     FZ_OP_TYPED        def
     FZ_OP_SEQUENTIAL   class, count (% 5), entries (name, source: < 0x20 a def,
                        else block (source - 0x20), trigger: 0xFF in a sequence,
                        not a multiple of 4 in an auto block, names one),
                        workflows (% 3: name, count, trigger names)
     FZ_OP_AUTO         class, count (1 + % 4), entries
     FZ_OP_LOOP         def (the wrapper), count (% 4), entries
     FZ_OP_INSERT       parent, index (byte - 2), name, child
     FZ_OP_POP          root, path (see fz_path), keep
     FZ_OP_POP_AT       parent, index (byte - 1), keep
     FZ_OP_REPLACE      root, path, child
     FZ_OP_REPLACE_AT   parent, index (byte - 1), child
     FZ_OP_VALIDATE     block
     FZ_OP_VIEWS        block (repr, doc, mermaid, interface)
     FZ_OP_EXEC_BLOCKS  block, count (% 4) and names; workflow name
     FZ_OP_PIPELINE     block
     FZ_OP_CALL         pipeline, count (% 6) and per argument: source (< 0xC0 a
                        name of the pipeline's interface, else a name), value
     FZ_OP_CALL_OUTPUTS pipeline, arguments as for CALL, count (% 4) and names
     FZ_OP_BLOCK_RUN    block, arguments as for CALL
     FZ_OP_SET_COMPONENT pipeline, name source, value
     FZ_OP_SET_CONFIG   pipeline, name source, value
     FZ_OP_FREE_BLOCK   block
     FZ_OP_FREE_PIPELINE pipeline
     FZ_OP_VALUES       value, value, index (lists, dicts and their accessors)

   Block scripts (what a make_block block does when it runs), step op % 10:
     0 nothing, 1 get name a, 2 set name a to value kind b, 3 repr the block
     state, 4 repr the pipeline state, 5 fail with a message, 6 return status
     1 + b % 11 with no message, 7 mod_loop_step (must fail), 8 iteration,
     path and user data, 9 set name a to None. */
#ifndef FUZZ_PIPELINE_H
#define FUZZ_PIPELINE_H

#define FZ_MAX_OPS 48
#define FZ_MAX_SCRIPT 7
#define FZ_OOM_MODE 0xE0
#define FZ_NAME_DYNAMIC 0xFF

enum fz_op {
    FZ_OP_MAKE_BLOCK,
    FZ_OP_TYPED,
    FZ_OP_SEQUENTIAL,
    FZ_OP_AUTO,
    FZ_OP_LOOP,
    FZ_OP_INSERT,
    FZ_OP_POP,
    FZ_OP_POP_AT,
    FZ_OP_REPLACE,
    FZ_OP_REPLACE_AT,
    FZ_OP_VALIDATE,
    FZ_OP_VIEWS,
    FZ_OP_EXEC_BLOCKS,
    FZ_OP_PIPELINE,
    FZ_OP_CALL,
    FZ_OP_CALL_OUTPUTS,
    FZ_OP_BLOCK_RUN,
    FZ_OP_SET_COMPONENT,
    FZ_OP_SET_CONFIG,
    FZ_OP_FREE_BLOCK,
    FZ_OP_FREE_PIPELINE,
    FZ_OP_VALUES,
    FZ_OP_COUNT
};

enum fz_value_kind {
    FZ_V_ABSENT,
    FZ_V_NONE,
    FZ_V_BOOL,
    FZ_V_INT,
    FZ_V_FLOAT,
    FZ_V_STR,
    FZ_V_LIST,
    FZ_V_DICT,
    FZ_V_TENSOR,
    FZ_V_PTR,
    FZ_V_OWNED_PTR,
    FZ_V_COUNT
};

/* Names: the typed blocks' field names first, so that generic and typed
   blocks meet; then the seeds' names; then hostile ones. */
static const char *const fz_names[] = {
    "x", "n", "y", "acc", "s", "flag", "s_out", "tensor", "latents", "noise", "seed", "items", "dict", "any",
    "v", "fields", "tagged", "nfields", "counter", "offset", "scale", "total", "obj", "base", "num_steps",
    "loops", "last_i", "prompt", "image", "mask", "batch_size", "image_latents", "prompt_embeds", "t",
    "", "a.b", "x.y.z", "%s%n%s", "it's", "\"q\"", "new\nline", "\xc3\xa9t\xc3\xa9", "\xff\xfe",
    "a very long name that keeps going past the usual widths of a doc line, to wrap"};
#define FZ_NNAMES ((unsigned)(sizeof fz_names / sizeof fz_names[0]))

/* Indices of fz_defs in fuzz_pipeline.c (for seeds). */
enum fz_def_index {
    FZ_DEF_INTS,
    FZ_DEF_REQ,
    FZ_DEF_TENSOR,
    FZ_DEF_VALUES,
    FZ_DEF_KW,
    FZ_DEF_COMP,
    FZ_DEF_COMP_FAIL,
    FZ_DEF_PTR,
    FZ_DEF_BAD,
    FZ_DEF_LOOP,
    FZ_DEF_LOOP_SLOPPY,
    FZ_DEF_COUNT
};

#endif
