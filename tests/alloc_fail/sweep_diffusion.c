/* Allocation failure at every k over the diffusion pipeline
   (examples/df_blocks.h with the embedded shapes model): the pipeline is
   made, then called for text-to-image (64 x 64, 2 steps, written as PNG),
   image-to-image and inpainting from that image, and freed; see
   tests/alloc_fail.h (make alloc-fail). */
#define _POSIX_C_SOURCE 200809L
#include "tests/test.h"
#include "tests/alloc_fail.h"
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"
#define MODULAR_IMPLEMENTATION
#include "modular.h"
#include "examples/df_components.h"
#define SHAPES_MODEL_IMPLEMENTATION
#include "examples/shapes_model.h"
#include "examples/df_blocks.h"

static void print_image(const char *what, const mod_value *v) {
    const mt_tensor *t = mod_value_tensor(v);
    int64_t i, n = t ? mt_numel(t) : 0;
    double sum = 0.0;
    for (i = 0; i < n; i++) sum += mt_f32(t)[i];
    printf("%s: %lld values, sum %a\n", what, (long long)n, sum);
}

static int diffusion_main(void) {
    mod_pipeline *p = NULL;
    mod_value images, mask;
    const char *const names[] = {"images", NULL};
    int rc = 1;
    memset(&images, 0, sizeof images);
    memset(&mask, 0, sizeof mask);
    if (df_pipeline_new(&p) != MOD_OK) goto done;
    {
        mod_arg args[] = {{"prompt", {0}},       {"height", {0}},   {"width", {0}},        {"num_inference_steps", {0}},
                          {"generator", {0}},    {"output", {0}},   {"progress_bar", {0}}, {NULL, {0}}};
        args[0].value = mod_str("a red circle on a white background");
        args[1].value = mod_int(64);
        args[2].value = mod_int(64);
        args[3].value = mod_int(2);
        args[4].value = mod_int(7);
        args[5].value = mod_str("build/alloc-fail/sweep_diffusion.png");
        args[6].value = mod_bool(0);
        if (mod_pipeline_call_outputs(p, args, names, &images) != MOD_OK) goto done;
        print_image("text2image", &images);
    }
    {
        mt_tensor src = {MT_F32, 0, {0}, {0}, NULL, NULL}, m = src;
        mod_value out;
        mod_status s;
        mod_arg args[] = {{"prompt", {0}}, {"image", {0}}, {"strength", {0}}, {"num_inference_steps", {0}},
                          {"generator", {0}}, {"progress_bar", {0}}, {"mask_image", {0}}, {NULL, {0}}};
        int64_t i;
        memset(&out, 0, sizeof out);
        if (mt_clone(&src, mod_value_tensor(&images)) != MT_OK) goto done;
        args[0].value = mod_str("a blue circle");
        args[1].value = mod_tensor(&src);
        args[2].value = mod_float(0.6);
        args[3].value = mod_int(2);
        args[4].value = mod_int(8);
        args[5].value = mod_bool(0);
        args[6].name = NULL; /* image-to-image first */
        s = mod_pipeline_call_outputs(p, args, names, &out);
        if (s == MOD_OK) print_image("image2image", &out);
        mod_value_release(&out);
        if (s == MOD_OK && mt_zeros(&m, MT_F32, MT_SHAPE(1, 1, 64, 64)) == MT_OK) {
            for (i = 0; i < 64 * 32; i++) mt_f32(&m)[i] = 1.0f; /* the top half */
            args[6].name = "mask_image";
            args[6].value = mod_tensor(&m);
            s = mod_pipeline_call_outputs(p, args, names, &out);
            if (s == MOD_OK) print_image("inpainting", &out);
            mod_value_release(&out);
        } else if (s == MOD_OK) {
            s = MOD_ERR_MEMORY;
        }
        mt_release(&src);
        mt_release(&m);
        if (s != MOD_OK) goto done;
    }
    rc = 0;
done:
    if (rc) fprintf(stderr, "error: %s\n", mod_last_error());
    mod_value_release(&images);
    mod_value_release(&mask);
    mod_pipeline_free(p);
    return rc;
}

int main(void) {
    mod_value keep;
    memset(&keep, 0, sizeof keep);
    /* one VAE held for the whole sweep keeps the shapes model (fitted once,
       outside the counted allocator) alive between the runs */
    CHECK(shapes_vae_create("", &keep) == MOD_OK, "the shapes model: %s", mod_last_error());
    af_sweep("diffusion 64x64, 2 steps: text2image, image2image, inpainting", diffusion_main);
    mod_value_release(&keep);
    remove("build/alloc-fail/sweep_diffusion.png");
    return test_finish();
}
