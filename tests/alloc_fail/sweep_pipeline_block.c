/* Allocation failure at every k over the program of examples/pipeline_block.c:
   see tests/alloc_fail.h (make alloc-fail). */
#define _POSIX_C_SOURCE 200809L
#include "tests/test.h"
#include "tests/alloc_fail.h"
#define main pipeline_block_main
#include "examples/pipeline_block.c"
#undef main

int main(void) {
    af_sweep("pipeline_block", pipeline_block_main);
    return test_finish();
}
