/* auto_blocks.c - the C twin of diffusers' AutoPipelineBlocks guide: blocks
   chosen at run time by which inputs are given, nested in a sequence, and
   get_execution_blocks to see which would run.

   Build and run from the repository root:
       cc -std=c99 -O2 -I. -o auto_blocks examples/auto_blocks.c -lm -lpthread && ./auto_blocks
*/
#define MODULAR_IMPLEMENTATION
#include "modular.h"

#define NO_DEFAULT {MOD_ABSENT, 0, 0, NULL, NULL, NULL}
#define PARAM(name) {name, NULL, NO_DEFAULT, 0, NULL, NULL}
#define END_PARAMS {NULL, NULL, NO_DEFAULT, 0, NULL, NULL}

static void print_text(const char *label, char *text) {
    printf("%s%s\n", label, text ? text : mod_last_error());
    mod_text_free(text);
}

/* block_fn prints which workflow is running */
static mod_status say(mod_block_state *bs) {
    printf("running the %s workflow\n", (const char *)mod_block_state_user(bs));
    return MOD_OK;
}

static mod_block *make(const mod_input_param *inputs, const char *workflow, const char *description) {
    mod_block *b = NULL;
    mod_block_desc d = {0};
    d.inputs = inputs;
    d.fn = say;
    d.user = (void *)workflow;
    d.description = description;
    return mod_make_block(&b, &d) == MOD_OK ? b : NULL;
}

/* pipeline(**args) with a one-line echo of the inputs */
static int call(mod_pipeline *pipe, const char *shown, const mod_arg *args) {
    mod_state *state = NULL;
    printf(">>> _ = pipeline(%s)\n", shown);
    if (mod_pipeline_call(pipe, args, &state) != MOD_OK) return 0;
    mod_state_free(state);
    return 1;
}

static int show_execution_blocks(const mod_block *blocks, const char *const *inputs, const char *shown) {
    mod_block *selected = NULL;
    if (mod_block_execution_blocks(blocks, inputs, &selected) != MOD_OK) return 0;
    printf(">>> get_execution_blocks(%s)\n", shown);
    print_text("", mod_block_repr(selected));
    mod_block_free(selected);
    return 1;
}

int main(void) {
    const mod_input_param t2i_inputs[] = {PARAM("prompt"), END_PARAMS};
    const mod_input_param i2i_inputs[] = {PARAM("prompt"), PARAM("image"), END_PARAMS};
    const mod_input_param inpaint_inputs[] = {PARAM("prompt"), PARAM("image"), PARAM("mask"), END_PARAMS};
    const mod_input_param ipa_inputs[] = {PARAM("ip_adapter_image"), END_PARAMS};
    mod_block *t2i = make(t2i_inputs, "text-to-image", "I'm a text-to-image workflow!");
    mod_block *i2i = make(i2i_inputs, "image-to-image", "I'm a image-to-image workflow!");
    mod_block *inpaint = make(inpaint_inputs, "inpaint", "I'm a inpaint workflow!");
    mod_block *ipa = make(ipa_inputs, "ip-adapter", "I'm a IP-adapter workflow!");
    mod_block *auto_blocks = NULL, *auto_ipa = NULL, *all_blocks = NULL;
    mod_pipeline *auto_pipeline = NULL, *pipeline = NULL;
    int rc = 1;
    if (!t2i || !i2i || !inpaint || !ipa) goto done;

    /* class AutoImageBlocks(AutoPipelineBlocks):
         block_classes = [inpaint, img2img, text2img]; block_trigger_inputs = ["mask", "image", None] */
    {
        mod_auto_desc d = {0};
        const mod_entry entries[] = {{"inpaint", NULL, inpaint, "mask"},
                                     {"img2img", NULL, i2i, "image"},
                                     {"text2img", NULL, t2i, NULL},
                                     {NULL, NULL, NULL, NULL}};
        d.class_name = "AutoImageBlocks";
        d.description = "Pipeline generates images given different types of conditions!\n"
                        "This is an auto pipeline block that works for text2img, img2img and inpainting tasks.\n"
                        " - inpaint workflow is run when `mask` is provided.\n"
                        " - img2img workflow is run when `image` is provided (but only when `mask` is not provided).\n"
                        " - text2img workflow is run when neither `image` nor `mask` is provided.\n";
        d.blocks = entries;
        if (mod_auto_new(&auto_blocks, &d) != MOD_OK || mod_pipeline_new(&auto_pipeline, auto_blocks) != MOD_OK)
            goto done;
    }
    print_text("", mod_block_repr(auto_blocks));
    print_text("", mod_pipeline_doc(auto_pipeline));
    {
        const mod_arg a1[] = {{"image", mod_str("image")}, {"mask", mod_str("mask")}, {NULL, {0}}};
        const mod_arg a2[] = {{"image", mod_str("image")}, {NULL, {0}}};
        const mod_arg a3[] = {{"prompt", mod_str("prompt")}, {NULL, {0}}};
        const mod_arg a4[] = {{"image", mod_str("prompt")}, {"mask", mod_str("mask")}, {NULL, {0}}};
        if (!call(auto_pipeline, "image=\"image\", mask=\"mask\"", a1) || !call(auto_pipeline, "image=\"image\"", a2) ||
            !call(auto_pipeline, "prompt=\"prompt\"", a3) || !call(auto_pipeline, "image=\"prompt\", mask=\"mask\"", a4))
            goto done;
    }

    /* class AutoIPAdapter(AutoPipelineBlocks): no default, so it may be skipped */
    {
        mod_auto_desc d = {0};
        const mod_entry entries[] = {{"ip-adapter", NULL, ipa, "ip_adapter_image"}, {NULL, NULL, NULL, NULL}};
        d.class_name = "AutoIPAdapter";
        d.description = "Run IP Adapter step if `ip_adapter_image` is provided.";
        d.blocks = entries;
        if (mod_auto_new(&auto_ipa, &d) != MOD_OK) goto done;
    }
    /* all_blocks = SequentialPipelineBlocks.from_blocks_dict({"ip-adapter": ..., "image-generation": ...}) */
    {
        mod_sequential_desc d = {0};
        const mod_entry entries[] = {{"ip-adapter", NULL, auto_ipa, NULL},
                                     {"image-generation", NULL, auto_blocks, NULL},
                                     {NULL, NULL, NULL, NULL}};
        d.blocks = entries;
        if (mod_sequential_new(&all_blocks, &d) != MOD_OK || mod_pipeline_new(&pipeline, all_blocks) != MOD_OK) goto done;
    }
    print_text("", mod_block_repr(all_blocks));
    {
        const char *const mask[] = {"mask", NULL};
        const char *const ipa_image[] = {"ip_adapter_image", NULL};
        const char *const image[] = {"image", NULL};
        const char *const prompt[] = {"prompt", NULL};
        const char *const mask_ipa[] = {"mask", "ip_adapter_image", NULL};
        const mod_arg a1[] = {{"mask", mod_str("mask")}, {NULL, {0}}};
        const mod_arg a2[] = {{"ip_adapter_image", mod_str("ip_adapter_image")}, {"prompt", mod_str("prompt")}, {NULL, {0}}};
        const mod_arg a3[] = {{"image", mod_str("image")}, {"prompt", mod_str("prompt")}, {NULL, {0}}};
        const mod_arg a4[] = {{"prompt", mod_str("prompt")}, {NULL, {0}}};
        const mod_arg a5[] = {{"mask", mod_str("mask")}, {"ip_adapter_image", mod_str("ip_adapter_image")}, {NULL, {0}}};
        if (!show_execution_blocks(all_blocks, mask, "'mask'") || !call(pipeline, "mask=\"mask\"", a1) ||
            !show_execution_blocks(all_blocks, ipa_image, "'ip_adapter_image'") ||
            !call(pipeline, "ip_adapter_image=\"ip_adapter_image\", prompt=\"prompt\"", a2) ||
            !show_execution_blocks(all_blocks, image, "'image'") || !call(pipeline, "image=\"image\", prompt=\"prompt\"", a3) ||
            !show_execution_blocks(all_blocks, prompt, "'prompt'") || !call(pipeline, "prompt=\"prompt\"", a4) ||
            !show_execution_blocks(all_blocks, mask_ipa, "'mask', 'ip_adapter_image'") ||
            !call(pipeline, "mask=\"mask\", ip_adapter_image=\"ip_adapter_image\"", a5))
            goto done;
    }
    rc = 0;
done:
    if (rc) fprintf(stderr, "error: %s\n", mod_last_error());
    mod_pipeline_free(auto_pipeline);
    mod_pipeline_free(pipeline);
    mod_block_free(all_blocks);
    mod_block_free(auto_ipa);
    mod_block_free(auto_blocks);
    mod_block_free(t2i);
    mod_block_free(i2i);
    mod_block_free(inpaint);
    mod_block_free(ipa);
    return rc;
}
