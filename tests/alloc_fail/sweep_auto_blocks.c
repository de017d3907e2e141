/* Allocation failure at every k over the program of examples/auto_blocks.c:
   see tests/alloc_fail.h (make alloc-fail). */
#define _POSIX_C_SOURCE 200809L
#include "tests/test.h"
#include "tests/alloc_fail.h"
#define main auto_blocks_main
#include "examples/auto_blocks.c"
#undef main

int main(void) {
    af_sweep("auto_blocks", auto_blocks_main);
    return test_finish();
}
