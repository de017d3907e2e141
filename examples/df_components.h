/* df_components.h - the component interfaces of the diffusion example.

   The diffusion blocks (df_blocks.h) never call a model directly: they take
   components from the pipeline by ComponentSpec name and call them through
   these plain structs of function pointers. Any implementation plugs in: the
   embedded shapes model (shapes_model.h), or your own UNet / VAE / text
   encoder, set with mod_pipeline_set_component(pipe, "unet",
   mod_ptr(&my_unet, &df_denoiser_type)).

   Every function returns MOD_OK or an error status after recording a message
   with mod_fail(NULL, status, ...), which the calling block reports with its
   path. Implementations must be safe to call from several threads at once
   (one pipeline serves concurrent calls); keep per-call data on the stack or
   in the output tensors.

   Needs modular_tensor.h and modular.h included first. */
#ifndef DF_COMPONENTS_H
#define DF_COMPONENTS_H

/* "text_encoder": prompts to embeddings. */
typedef struct df_text_encoder {
    int seq_len; /* tokens per prompt */
    int dim;     /* embedding width */
    /* embeds [n, seq_len, dim]. Words the encoder does not know are listed,
       comma separated, in `unknown` (may be NULL); they are not an error. */
    mod_status (*encode)(void *self, const char *const *prompts, int n, mt_tensor *embeds, char *unknown,
                         size_t unknown_size);
    void *self;
} df_text_encoder;

/* "vae": images in [-1, 1] (NCHW, 3 channels) to latents and back. */
typedef struct df_vae {
    int latent_channels;    /* 4 */
    int downscale;          /* H / latent height: 4 or 8 */
    double scaling_factor;  /* latents are multiplied by it after encoding (vae.config.scaling_factor) */
    mod_status (*encode)(void *self, const mt_tensor *images, mt_tensor *latents);
    mod_status (*decode)(void *self, const mt_tensor *latents, mt_tensor *images);
    void *self;
} df_vae;

/* "unet": the denoiser. `sample` is the scheduler-scaled model input
   [B, C, h, w], `timestep` the scheduler's (possibly fractional) timestep,
   `embeds` [B, seq_len, dim]. Writes the prediction the scheduler expects
   (epsilon or v, per the scheduler config's prediction_type the model was
   made for) into `out` (same shape as sample). */
typedef struct df_denoiser {
    int in_channels;
    const char *prediction_type; /* "epsilon" or "v_prediction" */
    mod_status (*predict)(void *self, const mt_tensor *sample, double timestep, const mt_tensor *embeds,
                          mt_tensor *out);
    void *self;
} df_denoiser;

/* "guider": classifier-free guidance as diffusers' ClassifierFreeGuidance:
   pred = uncond + scale * (cond - uncond), then the optional rescale of
   arXiv:2305.08891; off (one model call per step) when scale <= 1. */
typedef struct df_guider {
    double guidance_scale;   /* 7.5 in diffusers */
    double guidance_rescale; /* 0: off */
} df_guider;

/* "scheduler": an mt_scheduler_config (any kind); each call makes its own
   mt_scheduler run state from it. */

/* The value types: a component value is mod_ptr(&interface, &df_*_type)
   (or an owned one, mod_value_own_ptr, with a type of the same name and a
   destroy function); the names are the ComponentSpec type hints the blocks
   check. */
static const mod_type df_text_encoder_type = {"CLIPTextModel", NULL, NULL};
static const mod_type df_vae_type = {"AutoencoderKL", NULL, NULL};
static const mod_type df_denoiser_type = {"UNet2DConditionModel", NULL, NULL};
static const mod_type df_guider_type = {"ClassifierFreeGuidance", NULL, NULL};
static const mod_type df_scheduler_type = {"SchedulerMixin", NULL, NULL};

#endif
