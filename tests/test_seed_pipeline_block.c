/* The PipelineBlock guide (pipeline_block.md) in C: examples/pipeline_block.c
   prints exactly the guide's text in the C form the README documents:
   tensors as Tensor(dtype=float32, shape=[...]) instead of
   Tensor(dtype=torch.float32, shape=torch.Size([...])), and the stand-in PIL
   image without the memory address Python shows. */
#define _POSIX_C_SOURCE 200809L /* dup, fileno: capturing stdout */
#define main pipeline_block_main
#include "examples/pipeline_block.c"
#undef main
#include "tests/test.h"

/* print(pipe.doc) and the ```out block of the guide, mapped as above */
static const char *const expected =
    "class TestBlock\n"
    "\n"
    "  Inputs:\n"
    "\n"
    "      image (`PIL.Image`, *optional*):\n"
    "          raw input image to process\n"
    "\n"
    "      batch_size (`int`, *optional*):\n"
    "\n"
    "  Outputs:\n"
    "\n"
    "      image_latents (`None`):\n"
    "          latents representing the image\n"
    "pipeline_state (before update): PipelineState(\n"
    "  inputs={\n"
    "    image: <PIL.Image.Image image mode=RGB size=512x512>\n"
    "  },\n"
    "  intermediates={\n"
    "    batch_size: 2\n"
    "  },\n"
    ")\n"
    "block_state (before update): BlockState(\n"
    "    image: <PIL.Image.Image image mode=RGB size=512x512>\n"
    "    batch_size: 2\n"
    ")\n"
    "\n"
    "block_state (after update): BlockState(\n"
    "    image: Tensor(dtype=float32, shape=[1, 3, 512, 512])\n"
    "    batch_size: 4\n"
    "    processed_image: List[4] of Tensors with shapes [[1, 3, 512, 512], [1, 3, 512, 512], [1, 3, 512, 512], [1, 3, 512, 512]]\n"
    "    image_latents: Tensor(dtype=float32, shape=[1, 4, 64, 64])\n"
    ")\n"
    "pipeline_state (after update): PipelineState(\n"
    "  inputs={\n"
    "    image: <PIL.Image.Image image mode=RGB size=512x512>\n"
    "  },\n"
    "  intermediates={\n"
    "    batch_size: 4\n"
    "    image_latents: Tensor(dtype=float32, shape=[1, 4, 64, 64])\n"
    "  },\n"
    ")\n";

int main(void) {
    int rc = -1;
    char *got = test_capture(pipeline_block_main, &rc);
    CHECK(rc == 0, "the example runs");
    CHECK_STR(got, expected, "the example prints the guide's doc and states");
    free(got);
    return test_finish();
}
