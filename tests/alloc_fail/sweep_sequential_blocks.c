/* Allocation failure at every k over the program of examples/sequential_blocks.c:
   see tests/alloc_fail.h (make alloc-fail). */
#define _POSIX_C_SOURCE 200809L
#include "tests/test.h"
#include "tests/alloc_fail.h"
#define main sequential_blocks_main
#include "examples/sequential_blocks.c"
#undef main

int main(void) {
    af_sweep("sequential_blocks", sequential_blocks_main);
    return test_finish();
}
