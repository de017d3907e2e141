/* The LoopSequentialPipelineBlocks guide (loop_sequential_pipeline_blocks.md)
   in C. The guide was written for a later API and does not run on the code
   of its time; as the README says, the body blocks share the loop's block
   state: x is read and written there, so after the loop the intermediates
   hold x0 + num_steps * (number of body blocks) and the inputs still x0. */
#define _POSIX_C_SOURCE 200809L /* dup, fileno: capturing stdout */
#define main loop_main
#include "examples/loop_blocks.c"
#undef main
#include "tests/test.h"

/* repr and doc of LoopWrapper.from_blocks_dict({"block1": LoopBlock(),
   "block2": LoopBlock}), then the states after x0 = 10, num_steps = 3 with
   one and with two body blocks */
static const char *const expected =
    "LoopWrapper(\n"
    "  Class: LoopSequentialPipelineBlocks\n"
    "\n"
    "  Description: I'm a loop!!\n"
    "\n"
    "\n"
    "  Sub-Blocks:\n"
    "    [0] block1 (LoopBlock)\n"
    "       Description: I'm a block used inside the `LoopWrapper` class\n"
    "\n"
    "    [1] block2 (LoopBlock)\n"
    "       Description: I'm a block used inside the `LoopWrapper` class\n"
    "\n"
    ")\n"
    "class LoopWrapper\n"
    "\n"
    "  I'm a loop!!\n"
    "\n"
    "  Inputs:\n"
    "\n"
    "      x (`None`, *optional*):\n"
    "\n"
    "      num_steps (`None`, *optional*):\n"
    "\n"
    "  Outputs:\n"
    "\n"
    "      x (`None`):\n"
    "PipelineState(\n"
    "  inputs={\n"
    "    x: 10\n"
    "    num_steps: 3\n"
    "  },\n"
    "  intermediates={\n"
    "    x: 13\n"
    "  },\n"
    ")\n"
    "PipelineState(\n"
    "  inputs={\n"
    "    x: 10\n"
    "    num_steps: 3\n"
    "  },\n"
    "  intermediates={\n"
    "    x: 16\n"
    "  },\n"
    ")\n";

static void check_loop_values(void) {
    const int64_t steps[] = {0, 1, 3, 7};
    int k, nb;
    for (nb = 1; nb <= 3; nb++) {
        mod_entry body[4] = {{NULL, NULL, NULL, NULL}, {NULL, NULL, NULL, NULL}, {NULL, NULL, NULL, NULL}, {NULL, NULL, NULL, NULL}};
        const char *names[3] = {"block1", "block2", "block3"};
        mod_block *loop = NULL;
        mod_pipeline *pipe = NULL;
        int i;
        for (i = 0; i < nb; i++) {
            body[i].name = names[i];
            body[i].def = &LoopBlock_def;
        }
        CHECK(mod_loop_new(&loop, &LoopWrapper_def, body) == MOD_OK && mod_pipeline_new(&pipe, loop) == MOD_OK,
              "loop with %d body blocks", nb);
        for (k = 0; k < 4; k++) {
            mod_state *st = NULL;
            const mod_arg args[] = {{"x", mod_int(5)}, {"num_steps", mod_int(steps[k])}, {NULL, {0}}};
            const mod_value *x_in, *x_mid;
            CHECK(mod_pipeline_call(pipe, args, &st) == MOD_OK, "run %lld steps", (long long)steps[k]);
            x_in = mod_state_input(st, "x");
            x_mid = mod_state_intermediate(st, "x");
            CHECK(x_in && x_in->i == 5, "inputs keep x0 = 5 (%d blocks, %lld steps)", nb, (long long)steps[k]);
            CHECK(x_mid && x_mid->i == 5 + steps[k] * nb, "intermediates hold x0 + %lld * %d", (long long)steps[k], nb);
            mod_state_free(st);
        }
        mod_pipeline_free(pipe);
        mod_block_free(loop);
    }
}

int main(void) {
    int rc = -1;
    char *got = test_capture(loop_main, &rc);
    CHECK(rc == 0, "the example runs");
    CHECK_STR(got, expected, "the example's repr, doc and states");
    free(got);
    check_loop_values();
    return test_finish();
}
