/* loop_blocks.c - the C twin of the LoopSequentialPipelineBlocks guide
   (loop_sequential_pipeline_blocks.md): a loop wrapper that runs its body
   blocks num_steps times over one shared block state.

   Build and run from the repository root:
       cc -std=c99 -O2 -I. -o loop_blocks examples/loop_blocks.c -lm -lpthread && ./loop_blocks
*/
#define MODULAR_IMPLEMENTATION
#include "modular.h"

/* class LoopWrapper(LoopSequentialPipelineBlocks): loop_inputs = [num_steps] */
#define LoopWrapper_PARAMS(X, S) X(S, INPUT, INT, num_steps, NULL, NONE, "")

MOD_LOOP(LoopWrapper, "I'm a loop!!") {
    int64_t i;
    for (i = 0; i < s->num_steps; i++) {
        mod_iter it = {0, 0, NULL};
        it.i = i;
        MOD_TRY(mod_loop_step(s->mod, &it)); /* loop_step runs every body block */
    }
    return MOD_OK;
}

/* class LoopBlock: inputs = [x], intermediate_outputs = [x] */
#define LoopBlock_PARAMS(X, S) X(S, INPUT_OUTPUT, INT, x, NULL, NONE, "")

MOD_BLOCK(LoopBlock, "I'm a block used inside the `LoopWrapper` class") {
    s->x += 1;
    return MOD_OK;
}

static void print_text(const char *label, char *text) {
    printf("%s%s\n", label, text ? text : mod_last_error());
    mod_text_free(text);
}

/* pipeline(x=x0, num_steps=n), printing the final state */
static int run(const mod_block *loop, int64_t x0, int64_t num_steps) {
    mod_pipeline *pipe = NULL;
    mod_state *state = NULL;
    const mod_arg args[] = {{"x", mod_int(x0)}, {"num_steps", mod_int(num_steps)}, {NULL, {0}}};
    int ok = mod_pipeline_new(&pipe, loop) == MOD_OK && mod_pipeline_call(pipe, args, &state) == MOD_OK;
    if (ok) print_text("", mod_state_repr(state));
    mod_state_free(state);
    mod_pipeline_free(pipe);
    return ok;
}

int main(void) {
    mod_block *loop = NULL, *loop2 = NULL, *block = NULL;
    int rc = 1;

    /* loop = LoopWrapper.from_blocks_dict({"block1": LoopBlock}) */
    {
        const mod_entry body[] = {{"block1", &LoopBlock_def, NULL, NULL}, {NULL, NULL, NULL, NULL}};
        if (mod_loop_new(&loop, &LoopWrapper_def, body) != MOD_OK) goto done;
    }
    /* loop = LoopWrapper.from_blocks_dict({"block1": LoopBlock(), "block2": LoopBlock}) */
    if (mod_block_new(&block, &LoopBlock_def) != MOD_OK) goto done;
    {
        const mod_entry body[] = {{"block1", NULL, block, NULL}, {"block2", &LoopBlock_def, NULL, NULL}, {NULL, NULL, NULL, NULL}};
        if (mod_loop_new(&loop2, &LoopWrapper_def, body) != MOD_OK) goto done;
    }
    print_text("", mod_block_repr(loop2));
    print_text("", mod_block_doc(loop2));
    /* x0 = 10, three steps of two body blocks: intermediates hold x = 16 */
    if (!run(loop, 10, 3) || !run(loop2, 10, 3)) goto done;
    rc = 0;
done:
    if (rc) fprintf(stderr, "error: %s\n", mod_last_error());
    mod_block_free(loop);
    mod_block_free(loop2);
    mod_block_free(block);
    return rc;
}
