/* bench_shapes_model: the embedded shapes model's costs.

   - creation (rendering the fit images, fitting the VAE)
   - first use of a size (the set's latents, cached)
   - one denoiser call on a batch of 2 (a classifier-free guidance step) at
     64x64 and 256x256 images, at high, middle and low noise, 1 and 2
     threads, against a dense reference in the same run: the obvious
     posterior mean over the set's latents stored densely (distances and
     the weighted sum over every latent value of every item)
   - VAE encode and decode of one image

   Times are medians of repeated runs (each kind run back to back, warm
   caches); the ratio column is reference time / shapes model time (higher
   is better). The outputs are compared too (max |diff|). */
#define _POSIX_C_SOURCE 200809L
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"
#define MODULAR_IMPLEMENTATION
#include "modular.h"
#include "examples/df_components.h"
#define SHAPES_MODEL_IMPLEMENTATION
#include "examples/shapes_model.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* dense reference: eps for each batch item from latents [N][d] */
typedef struct dense_ctx {
    const float *lat, *x;
    const double *w;
    double s;
    int64_t d;
    double *dist, *x0;
    int n;
} dense_ctx;

static void dense_dist(void *vc, int64_t b, int64_t e) {
    dense_ctx *c = (dense_ctx *)vc;
    int64_t i, j;
    for (i = b; i < e; i++) {
        double acc = 0;
        const float *z = c->lat + i * c->d;
        for (j = 0; j < c->d; j++) {
            double t = (double)c->x[j] - c->s * z[j];
            acc += t * t;
        }
        c->dist[i] = acc;
    }
}

static void dense_mean(void *vc, int64_t b, int64_t e) {
    dense_ctx *c = (dense_ctx *)vc;
    int64_t i, j;
    for (j = b; j < e; j++) c->x0[j] = 0;
    for (i = 0; i < c->n; i++) {
        double wi = c->w[i];
        const float *z = c->lat + i * c->d;
        if (wi == 0) continue;
        for (j = b; j < e; j++) c->x0[j] += wi * z[j];
    }
}

static void dense_predict(const float *lat, int n, int64_t d, const float *x, int B, double abar, const double *prior,
                          float *out) {
    double *dist = (double *)malloc((size_t)n * sizeof(double)), *w = (double *)malloc((size_t)n * sizeof(double));
    double *x0 = (double *)malloc((size_t)d * sizeof(double)), s = sqrt(abar), sv = sqrt(1 - abar);
    dense_ctx c;
    int b, i;
    int64_t j;
    for (b = 0; b < B; b++) {
        double mx = -1e300, tot = 0;
        c.lat = lat;
        c.x = x + b * d;
        c.s = s;
        c.d = d;
        c.dist = dist;
        c.x0 = x0;
        c.n = n;
        c.w = w;
        mt_parallel_for(n, 16, dense_dist, &c);
        for (i = 0; i < n; i++) {
            w[i] = prior[b * n + i] - dist[i] / (2 * (1 - abar));
            if (w[i] > mx) mx = w[i];
        }
        for (i = 0; i < n; i++) tot += (w[i] = w[i] - mx < -36 ? 0 : exp(w[i] - mx));
        for (i = 0; i < n; i++) w[i] /= tot;
        mt_parallel_for(d, 256, dense_mean, &c);
        for (j = 0; j < d; j++) out[b * d + j] = (float)((x[b * d + j] - s * x0[j]) / sv);
    }
    free(dist);
    free(w);
    free(x0);
}

int main(int argc, char **argv) {
    mod_value tv, vv, uv;
    df_text_encoder *te;
    df_vae *vae;
    df_denoiser *unet;
    const char *prompts[2] = {"", "a red circle"};
    mt_tensor emb = {0};
    double t0, create_s;
    int sizes[2] = {64, 256}, si, reps = argc > 1 ? atoi(argv[1]) : 9;
    static const double ts[3] = {999, 500, 20};
    memset(&tv, 0, sizeof tv);
    memset(&vv, 0, sizeof vv);
    memset(&uv, 0, sizeof uv);
    if (reps < 1) reps = 1;

    t0 = now();
    if (shapes_vae_create("", &vv) != MOD_OK || shapes_unet_create("", &uv) != MOD_OK ||
        shapes_text_encoder_create("", &tv) != MOD_OK) {
        fprintf(stderr, "%s\n", mod_last_error());
        return 1;
    }
    create_s = now() - t0;
    te = (df_text_encoder *)mod_value_ptr(&tv, df_text_encoder_type.name);
    vae = (df_vae *)mod_value_ptr(&vv, df_vae_type.name);
    unet = (df_denoiser *)mod_value_ptr(&uv, df_denoiser_type.name);
    te->encode(te->self, prompts, 2, &emb, NULL, 0);
    printf("shapes model: %d items, created (fit of the VAE) in %.1f ms, %d threads available\n", shapes_set_count(),
           create_s * 1e3, mt_get_num_threads());

    for (si = 0; si < 2; si++) {
        int S = sizes[si], h = S / 4, n = shapes_set_count(), i, ti, th;
        int64_t d = 4 * (int64_t)h * h;
        float *lat = (float *)malloc((size_t)(n * d) * sizeof(float));
        double *prior = (double *)malloc((size_t)(2 * n) * sizeof(double));
        mt_tensor x = {0}, out = {0}, img = {0}, z = {0}, rec = {0};
        mt_generator g;
        float *ref = (float *)malloc((size_t)(2 * d) * sizeof(float));
        double tv_enc[64], tv_dec[64];
        if (!lat || !prior || !ref) return 1;
        mt_generator_seed(&g, 0);
        mt_randn(&x, &g, MT_SHAPE(2, 4, h, h));

        t0 = now();
        unet->predict(unet->self, &x, 500, &emb, &out);
        printf("\n%dx%d images (latents 4x%dx%d):\n  first call (builds the set's latents): %.1f ms\n", S, S, h, h,
               (now() - t0) * 1e3);
        /* dense reference latents and prior (not timed) */
        for (i = 0; i < n; i++) {
            shapes_item it;
            shapes_set_image(i, S, S, &img);
            vae->encode(vae->self, &img, &z);
            mt_mul_scalar(&z, &z, (float)vae->scaling_factor);
            memcpy(lat + i * d, mt_f32(&z), (size_t)d * sizeof(float));
            shapes_set_item(i, &it);
            prior[i] = 0;
            prior[n + i] = 12.0 * (double)d / 1024 * ((it.value[SHAPES_COLOR] == 0) + (it.value[SHAPES_SHAPE] == 0));
            mt_release(&img);
            mt_release(&z);
        }
        printf("  %-34s %10s %10s %8s\n", "denoiser call, batch 2", "shapes ms", "dense ms", "ratio");
        for (th = 1; th <= 2; th++) {
            mt_set_num_threads(th);
            for (ti = 0; ti < 3; ti++) {
                double a[64], b[64], abar, ma, mb, diff = 0;
                int r;
                int64_t j;
                shapes_unet_alpha_bar(unet, ts[ti], &abar);
                unet->predict(unet->self, &x, ts[ti], &emb, &out); /* warm-up */
                dense_predict(lat, n, d, mt_f32(&x), 2, abar, prior, ref);
                for (r = 0; r < reps && r < 64; r++) {
                    t0 = now();
                    unet->predict(unet->self, &x, ts[ti], &emb, &out);
                    a[r] = now() - t0;
                }
                for (r = 0; r < reps && r < 64; r++) {
                    t0 = now();
                    dense_predict(lat, n, d, mt_f32(&x), 2, abar, prior, ref);
                    b[r] = now() - t0;
                }
                for (j = 0; j < 2 * d; j++)
                    if (fabs(mt_f32(&out)[j] - ref[j]) > diff) diff = fabs(mt_f32(&out)[j] - ref[j]);
                ma = median(a, r);
                mb = median(b, r);
                printf("  t=%-4g %d thread%s %19s %10.2f %10.2f %8.1f   (max |diff| %.1e)\n", ts[ti], th,
                       th > 1 ? "s" : " ", "", ma * 1e3, mb * 1e3, mb / ma, diff);
            }
        }
        mt_set_num_threads(0);
        shapes_set_image(7, S, S, &img);
        for (i = 0; i < reps && i < 64; i++) {
            t0 = now();
            vae->encode(vae->self, &img, &z);
            tv_enc[i] = now() - t0;
            t0 = now();
            vae->decode(vae->self, &z, &rec);
            tv_dec[i] = now() - t0;
            mt_release(&z);
            mt_release(&rec);
        }
        printf("  vae encode %.2f ms, decode %.2f ms (one image)\n", median(tv_enc, i) * 1e3, median(tv_dec, i) * 1e3);
        mt_release(&img);
        mt_release(&x);
        mt_release(&out);
        free(lat);
        free(prior);
        free(ref);
    }
    mt_release(&emb);
    mod_value_release(&tv);
    mod_value_release(&vv);
    mod_value_release(&uv);
    return 0;
}
