/* The SequentialPipelineBlocks guide (sequential_pipeline_blocks.md) in C:
   examples/sequential_blocks.c prints repr(blocks) exactly as the guide does,
   and blocks.doc as the original code prints it (with the declared type
   hints and descriptions; the guide's sample is stale there, see the
   README), then the data-flow chart and the state after a run. */
#define _POSIX_C_SOURCE 200809L /* dup, fileno: capturing stdout */
#define main sequential_main
#include "examples/sequential_blocks.c"
#undef main
#include "tests/test.h"

/* >>> blocks (verbatim from the guide) */
static const char *const expected_repr =
    "SequentialPipelineBlocks(\n"
    "  Class: ModularPipelineBlocks\n"
    "\n"
    "  Description: \n"
    "\n"
    "\n"
    "  Sub-Blocks:\n"
    "    [0] input (TestBlock)\n"
    "       Description: A block that determines batch_size based on the number of prompts and num_images_per_prompt argument.\n"
    "\n"
    "    [1] image_encoder (TestBlock)\n"
    "       Description: Encode raw image into its latent presentation\n"
    "\n"
    ")\n";

/* >>> print(blocks.doc): the guide's text with `list`/`int` hints and the
   descriptions the original prints */
static const char *const expected_doc =
    "class SequentialPipelineBlocks\n"
    "\n"
    "  Inputs:\n"
    "\n"
    "      prompt (`list`, *optional*):\n"
    "          list of text prompts\n"
    "\n"
    "      num_images_per_prompt (`int`, *optional*):\n"
    "          number of images per prompt\n"
    "\n"
    "      image (`PIL.Image`, *optional*):\n"
    "          raw input image to process\n"
    "\n"
    "  Outputs:\n"
    "\n"
    "      batch_size (`None`):\n"
    "          calculated batch size\n"
    "\n"
    "      image_latents (`None`):\n"
    "          latents representing the image\n";

static const char *const expected_chart =
    "flowchart TD\n"
    "    inputs([\"inputs\"])\n"
    "    b2[\"input<br/>TestBlock\"]\n"
    "    b3[\"image_encoder<br/>TestBlock\"]\n"
    "    outputs([\"outputs\"])\n"
    "    inputs -->|prompt, num_images_per_prompt| b2\n"
    "    inputs -->|image| b3\n"
    "    b2 -->|batch_size| b3\n"
    "    b2 -->|batch_size| outputs\n"
    "    b3 -->|image_latents| outputs\n";

/* batch_size = len(prompt) * num_images_per_prompt = 4, doubled by the
   image encoder (an intermediate input it changes) */
static const char *const expected_state =
    "PipelineState(\n"
    "  inputs={\n"
    "    prompt: ['a cat', 'a dog']\n"
    "    num_images_per_prompt: 2\n"
    "    image: 'image'\n"
    "  },\n"
    "  intermediates={\n"
    "    batch_size: 8\n"
    "    image_latents: Tensor(dtype=float32, shape=[1, 4, 64, 64])\n"
    "  },\n"
    ")\n";

int main(void) {
    int rc = -1;
    char *got = test_capture(sequential_main, &rc);
    size_t a = strlen(expected_repr), b = strlen(expected_doc), c = strlen(expected_chart);
    CHECK(rc == 0, "the example runs");
    CHECK(got && strncmp(got, expected_repr, a) == 0, "repr(blocks) matches the guide");
    CHECK(got && strlen(got) >= a + b && strncmp(got + a, expected_doc, b) == 0, "blocks.doc matches the original's");
    CHECK(got && strlen(got) >= a + b + c && strncmp(got + a + b, expected_chart, c) == 0, "the data-flow chart");
    CHECK_STR(got && strlen(got) >= a + b + c ? got + a + b + c : "", expected_state, "the state after a run");
    free(got);
    return test_finish();
}
