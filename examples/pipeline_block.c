/* pipeline_block.c - the C twin of the PipelineBlock guide (pipeline_block.md):
   a block made at run time with make_block, its doc, and one call that shows
   what a block may change in the pipeline state.

   Build and run from the repository root:
       cc -std=c99 -O2 -I. -o pipeline_block examples/pipeline_block.c -lm -lpthread && ./pipeline_block
*/
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"
#define MODULAR_IMPLEMENTATION
#include "modular.h"

/* A stand-in for a PIL image: the guide only ever prints it. */
typedef struct image {
    const char *mode;
    int width, height;
} image;

static int image_describe(const void *object, char *buf, size_t size) {
    const image *im = (const image *)object;
    return snprintf(buf, size, "<PIL.Image.Image image mode=%s size=%dx%d>", im->mode, im->width, im->height);
}

static const mod_type image_type = {"PIL.Image", NULL, image_describe};

static void print_text(const char *label, char *text) {
    printf("%s%s\n", label, text ? text : mod_last_error());
    mod_text_free(text);
}

/* def user_block_fn(block_state, pipeline_state) */
static mod_status user_block_fn(mod_block_state *bs) {
    mt_generator g;
    mt_tensor image = {0}, latents = {0};
    mod_value processed = {0};
    int64_t batch_size, i;
    mod_status s = MOD_OK;

    print_text("pipeline_state (before update): ", mod_state_repr(mod_block_state_pipeline(bs)));
    print_text("block_state (before update): ", mod_block_state_repr(bs));
    printf("\n");

    /* Simulate processing the image */
    mt_generator_seed(&g, 0);
    if (mt_randn(&image, &g, MT_SHAPE(1, 3, 512, 512)) != MT_OK || mt_randn(&latents, &g, MT_SHAPE(1, 4, 64, 64)) != MT_OK) {
        mt_release(&image); /* made when the second one fails */
        return mod_fail(bs, MOD_ERR_TENSOR, "%s", mt_last_error());
    }
    batch_size = mod_block_state_get(bs, "batch_size")->i * 2;
    if (mod_list_new(&processed, batch_size) != MOD_OK) s = MOD_ERR_MEMORY;
    for (i = 0; i < batch_size && s == MOD_OK; i++) s = mod_list_set(&processed, i, mod_tensor(&image));
    if (s == MOD_OK) s = mod_block_state_set(bs, "image", mod_tensor(&image));             /* an input */
    if (s == MOD_OK) s = mod_block_state_set(bs, "batch_size", mod_int(batch_size));       /* an intermediate */
    if (s == MOD_OK) s = mod_block_state_set(bs, "processed_image", processed);            /* undeclared */
    if (s == MOD_OK) s = mod_block_state_set(bs, "image_latents", mod_tensor(&latents));   /* an output */
    mod_value_release(&processed);
    mt_release(&image);
    mt_release(&latents);
    if (s != MOD_OK) return mod_fail(bs, s, "%s", mod_last_error());

    print_text("block_state (after update): ", mod_block_state_repr(bs));
    return MOD_OK;
}

int main(void) {
    const mod_input_param user_inputs[] = {
        {"image", "PIL.Image", {MOD_ABSENT, 0, 0, NULL, NULL, NULL}, 0, "raw input image to process", NULL},
        {NULL, NULL, {MOD_ABSENT, 0, 0, NULL, NULL, NULL}, 0, NULL, NULL}};
    const mod_input_param user_intermediate_inputs[] = {
        {"batch_size", "int", {MOD_ABSENT, 0, 0, NULL, NULL, NULL}, 0, NULL, NULL},
        {NULL, NULL, {MOD_ABSENT, 0, 0, NULL, NULL, NULL}, 0, NULL, NULL}};
    const mod_output_param user_intermediate_outputs[] = {
        {"image_latents", NULL, "latents representing the image", NULL}, {NULL, NULL, NULL, NULL}};
    mod_block_desc desc = {0};
    mod_block *block = NULL;
    mod_pipeline *pipe = NULL;
    mod_state *state = NULL;
    image squirrel = {"RGB", 512, 512};
    int rc = 1;

    desc.inputs = user_inputs;
    desc.intermediate_inputs = user_intermediate_inputs;
    desc.intermediate_outputs = user_intermediate_outputs;
    desc.fn = user_block_fn;

    /* block = make_block(...); pipe = block.init_pipeline() */
    if (mod_make_block(&block, &desc) != MOD_OK || mod_pipeline_new(&pipe, block) != MOD_OK) goto done;

    /* print(pipe.doc) */
    print_text("", mod_pipeline_doc(pipe));

    /* state = pipe(image=image, batch_size=2) */
    {
        const mod_arg args[] = {{"image", mod_ptr(&squirrel, &image_type)}, {"batch_size", mod_int(2)}, {NULL, {0}}};
        if (mod_pipeline_call(pipe, args, &state) != MOD_OK) goto done;
    }
    print_text("pipeline_state (after update): ", mod_state_repr(state));
    rc = 0;
done:
    if (rc) fprintf(stderr, "error: %s\n", mod_last_error());
    mod_state_free(state);
    mod_pipeline_free(pipe);
    mod_block_free(block);
    return rc;
}
