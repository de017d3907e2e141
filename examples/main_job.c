/* main_job.c - the main job of `make run`: one pipeline, built from the
   standard diffusion blocks (df_blocks.h) with the embedded shapes model
   (shapes_model.h) as its components, prints its block tree and its doc,
   then generates into out/:

       text-to-image   three prompts, 128x128             out/t2i_<n>.png
       image-to-image  the first made a ring, strength 0.6 out/i2i.png
       inpainting      the second, its centre repainted   out/inpaint.png
                                                          (mask: out/inpaint_mask.png)

   The auto blocks choose the workflow from the inputs given: `image`
   selects image-to-image, `image` with `mask_image` inpainting.

   Build and run from the repository root (needs libstb-dev):
       cc -std=c99 -O2 -I. -o main_job examples/main_job.c -lm -lpthread && ./main_job
*/
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"
#define MODULAR_IMPLEMENTATION
#include "modular.h"
#include "df_components.h"
#define SHAPES_MODEL_IMPLEMENTATION
#include "shapes_model.h"
#include "df_blocks.h"

#define STEPS 30
#define SIZE 128

static void print_text(const char *title, char *text) {
    printf("==== %s\n%s\n", title, text ? text : mod_last_error());
    mod_text_free(text);
}

/* One call: prints what ran and where the image went; keeps the images. */
static int run(mod_pipeline *pipe, const char *what, const mod_arg *args, mt_tensor *images) {
    const char *const names[] = {"images", "image_paths", "unknown_words", NULL};
    mod_value outs[3];
    double t0 = df_now();
    int ok;
    memset(outs, 0, sizeof outs);
    ok = mod_pipeline_call_outputs(pipe, args, names, outs) == MOD_OK;
    if (!ok) {
        fprintf(stderr, "%s: %s\n", what, mod_last_error());
        return 0;
    }
    printf("%-15s %-44s -> %s (%.2f s)\n", what, (const char *)args[0].value.p,
           (const char *)mod_list_at(&outs[1], 0)->p, df_now() - t0);
    if (outs[2].kind == MOD_STR && *(const char *)outs[2].p)
        printf("%15s (words the model does not know: %s)\n", "", (const char *)outs[2].p);
    if (images) mt_clone(images, mod_value_tensor(&outs[0]));
    mod_value_release(&outs[0]);
    mod_value_release(&outs[1]);
    mod_value_release(&outs[2]);
    return 1;
}

int main(void) {
    static const char *const prompts[3] = {"a red circle", "a blue square on a white background",
                                           "a small yellow star at the top on a black background"};
    mod_pipeline *pipe = NULL;
    mt_tensor first = {MT_F32, 0, {0}, {0}, NULL, NULL}, second = {MT_F32, 0, {0}, {0}, NULL, NULL};
    mt_tensor mask = {MT_F32, 0, {0}, {0}, NULL, NULL};
    double t0 = df_now();
    int i, rc = 1;

    /* init_pipeline: the blocks, and the default components created from
       their ComponentSpecs (the embedded model, Euler, CFG) */
    if (df_pipeline_new(&pipe) != MOD_OK) {
        fprintf(stderr, "main_job: %s\n", mod_last_error());
        return 1;
    }
    printf("pipeline ready in %.2f s\n\n", df_now() - t0);
    print_text("repr(blocks)", mod_block_repr(mod_pipeline_blocks(pipe)));
    print_text("pipe.doc", mod_pipeline_doc(pipe));

    printf("==== generating (%d steps, %dx%d) into out/\n", STEPS, SIZE, SIZE);
    for (i = 0; i < 3; i++) {
        char path[64];
        mod_arg args[] = {{"prompt", {0}}, {"generator", {0}}, {"num_inference_steps", {0}}, {"height", {0}},
                          {"width", {0}}, {"output", {0}}, {NULL, {0}}};
        snprintf(path, sizeof path, "out/t2i_%d.png", i);
        args[0].value = mod_str(prompts[i]);
        args[1].value = mod_int(i);
        args[2].value = mod_int(STEPS);
        args[3].value = mod_int(SIZE);
        args[4].value = mod_int(SIZE);
        args[5].value = mod_str(path);
        if (!run(pipe, "text-to-image", args, i == 0 ? &first : i == 1 ? &second : NULL)) goto done;
    }
    {
        /* image-to-image: the first image (a red circle) made a ring at
           strength 0.6: colour, place and background stay */
        mod_arg args[] = {{"prompt", {0}}, {"image", {0}}, {"strength", {0}}, {"generator", {0}},
                          {"num_inference_steps", {0}}, {"output", {0}}, {NULL, {0}}};
        args[0].value = mod_str("a red ring");
        args[1].value = mod_tensor(&first);
        args[2].value = mod_float(0.6);
        args[3].value = mod_int(1);
        args[4].value = mod_int(STEPS);
        args[5].value = mod_str("out/i2i.png");
        if (!run(pipe, "image-to-image", args, NULL)) goto done;
    }
    {
        /* inpainting: the second image with its centre repainted (white in
           the mask), the rest kept */
        mod_arg args[] = {{"prompt", {0}}, {"image", {0}}, {"mask_image", {0}}, {"strength", {0}},
                          {"generator", {0}}, {"num_inference_steps", {0}}, {"output", {0}}, {NULL, {0}}};
        int64_t y, x, h = second.shape[2], w = second.shape[3], shape[4];
        shape[0] = 1;
        shape[1] = 1;
        shape[2] = h;
        shape[3] = w;
        if (mt_zeros(&mask, MT_F32, 4, shape) != MT_OK) goto done;
        for (y = h / 4; y < 3 * h / 4; y++)
            for (x = w / 4; x < 3 * w / 4; x++) mt_f32(&mask)[y * w + x] = 1.0f;
#ifdef MT_IMAGE_MAX_PIXELS
        if (mt_image_save_png("out/inpaint_mask.png", &mask, 0, MT_RANGE_UNIT) != MT_OK) {
            fprintf(stderr, "main_job: %s\n", mt_last_error());
            goto done;
        }
#endif
        args[0].value = mod_str("a green circle in the center on a white background");
        args[1].value = mod_tensor(&second);
        args[2].value = mod_tensor(&mask);
        args[3].value = mod_float(1.0);
        args[4].value = mod_int(20);
        args[5].value = mod_int(STEPS);
        args[6].value = mod_str("out/inpaint.png");
        if (!run(pipe, "inpainting", args, NULL)) goto done;
    }
    printf("done in %.2f s\n", df_now() - t0);
    rc = 0;
done:
    mt_release(&first);
    mt_release(&second);
    mt_release(&mask);
    mod_pipeline_free(pipe);
    return rc;
}
