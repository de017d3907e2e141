/* sequential_blocks.c - the C twin of the SequentialPipelineBlocks guide
   (sequential_pipeline_blocks.md): two blocks joined by the value one makes
   and the other reads; the composite derives what it asks of the user.

   Build and run from the repository root:
       cc -std=c99 -O2 -I. -o sequential_blocks examples/sequential_blocks.c -lm -lpthread && ./sequential_blocks
*/
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"
#define MODULAR_IMPLEMENTATION
#include "modular.h"

#define NO_DEFAULT {MOD_ABSENT, 0, 0, NULL, NULL, NULL}

static void print_text(const char *label, char *text) {
    printf("%s%s\n", label, text ? text : mod_last_error());
    mod_text_free(text);
}

/* batch_size = len(prompt) * num_images_per_prompt */
static mod_status input_block_fn(mod_block_state *bs) {
    const mod_value *prompt = mod_block_state_get(bs, "prompt");
    const mod_value *n = mod_block_state_get(bs, "num_images_per_prompt");
    return mod_block_state_set(bs, "batch_size", mod_int(mod_list_len(prompt) * n->i));
}

/* Simulate processing the image */
static mod_status image_encoder_block_fn(mod_block_state *bs) {
    mt_generator g;
    mt_tensor image = {0}, latents = {0};
    mod_status s;
    mt_generator_seed(&g, 0);
    if (mt_randn(&image, &g, MT_SHAPE(1, 3, 512, 512)) != MT_OK || mt_randn(&latents, &g, MT_SHAPE(1, 4, 64, 64)) != MT_OK) {
        mt_release(&image); /* made when the second one fails */
        return mod_fail(bs, MOD_ERR_TENSOR, "%s", mt_last_error());
    }
    s = mod_block_state_set(bs, "image", mod_tensor(&image));
    if (s == MOD_OK)
        s = mod_block_state_set(bs, "batch_size", mod_int(mod_block_state_get(bs, "batch_size")->i * 2));
    if (s == MOD_OK) s = mod_block_state_set(bs, "image_latents", mod_tensor(&latents));
    mt_release(&image);
    mt_release(&latents);
    return s;
}

int main(void) {
    const mod_input_param input_inputs[] = {
        {"prompt", "list", NO_DEFAULT, 0, "list of text prompts", NULL},
        {"num_images_per_prompt", "int", NO_DEFAULT, 0, "number of images per prompt", NULL},
        {NULL, NULL, NO_DEFAULT, 0, NULL, NULL}};
    const mod_output_param input_outputs[] = {{"batch_size", NULL, "calculated batch size", NULL}, {NULL, NULL, NULL, NULL}};
    const mod_input_param encoder_inputs[] = {{"image", "PIL.Image", NO_DEFAULT, 0, "raw input image to process", NULL},
                                              {NULL, NULL, NO_DEFAULT, 0, NULL, NULL}};
    const mod_input_param encoder_intermediates[] = {{"batch_size", "int", NO_DEFAULT, 0, NULL, NULL},
                                                     {NULL, NULL, NO_DEFAULT, 0, NULL, NULL}};
    const mod_output_param encoder_outputs[] = {{"image_latents", NULL, "latents representing the image", NULL},
                                                {NULL, NULL, NULL, NULL}};
    mod_block_desc input_desc = {0}, encoder_desc = {0};
    mod_block *input_block = NULL, *image_encoder_block = NULL, *blocks = NULL;
    mod_pipeline *pipe = NULL;
    mod_state *state = NULL;
    mod_value prompt = {0};
    int rc = 1;

    input_desc.inputs = input_inputs;
    input_desc.intermediate_outputs = input_outputs;
    input_desc.fn = input_block_fn;
    input_desc.description =
        "A block that determines batch_size based on the number of prompts and num_images_per_prompt argument.";
    encoder_desc.inputs = encoder_inputs;
    encoder_desc.intermediate_inputs = encoder_intermediates;
    encoder_desc.intermediate_outputs = encoder_outputs;
    encoder_desc.fn = image_encoder_block_fn;
    encoder_desc.description = "Encode raw image into its latent presentation";
    if (mod_make_block(&input_block, &input_desc) != MOD_OK ||
        mod_make_block(&image_encoder_block, &encoder_desc) != MOD_OK)
        goto done;

    /* blocks_dict["input"] = input_block; blocks_dict["image_encoder"] = image_encoder_block
       blocks = SequentialPipelineBlocks.from_blocks_dict(blocks_dict) */
    {
        mod_sequential_desc seq = {0};
        const mod_entry entries[] = {{"input", NULL, input_block, NULL},
                                     {"image_encoder", NULL, image_encoder_block, NULL},
                                     {NULL, NULL, NULL, NULL}};
        seq.blocks = entries;
        if (mod_sequential_new(&blocks, &seq) != MOD_OK) goto done;
    }

    print_text("", mod_block_repr(blocks));    /* >>> blocks */
    print_text("", mod_block_doc(blocks));     /* >>> print(blocks.doc) */
    print_text("", mod_block_mermaid(blocks)); /* the data-flow diagram */

    /* run it: the first block's batch_size feeds the second */
    if (mod_pipeline_new(&pipe, blocks) != MOD_OK) goto done;
    if (mod_list_new(&prompt, 2) != MOD_OK || mod_list_set(&prompt, 0, mod_str("a cat")) != MOD_OK ||
        mod_list_set(&prompt, 1, mod_str("a dog")) != MOD_OK)
        goto done;
    {
        const mod_arg args[] = {{"prompt", prompt}, {"num_images_per_prompt", mod_int(2)}, {"image", mod_str("image")}, {NULL, {0}}};
        if (mod_pipeline_call(pipe, args, &state) != MOD_OK) goto done;
    }
    print_text("", mod_state_repr(state));
    rc = 0;
done:
    if (rc) fprintf(stderr, "error: %s\n", mod_last_error());
    mod_value_release(&prompt);
    mod_state_free(state);
    mod_pipeline_free(pipe);
    mod_block_free(blocks);
    mod_block_free(input_block);
    mod_block_free(image_encoder_block);
    return rc;
}
