/* modular_tensor.h - v0.1.0 - CPU tensors and kernels for diffusion in C

   A single-file library: float32 tensors with views and shared storage, a
   PyTorch-compatible random number generator, the kernels a diffusion model
   needs (elementwise, reductions, matmul, conv2d, norms, attention,
   resampling), scheduler numerics, safetensors files and PNG images.
   It stands alone; modular.h uses it when it is included first.

   USAGE

   In exactly one C or C++ file, before including this header:

       #define MODULAR_TENSOR_IMPLEMENTATION
       #include "modular_tensor.h"

   Other files include it without the define. Link with -lm -lpthread.
   Images go through stb_image / stb_image_write (Debian: libstb-dev,
   headers at <stb/...>); the implementation compiles them as static
   functions of this file unless MT_NO_STB_IMPLEMENTATION is defined, in
   which case you provide them (e.g. link -lstb).

   EXAMPLE

       mt_tensor a = {0}, b = {0}, c = {0};
       mt_generator g;
       mt_generator_seed(&g, 0);                       // torch.manual_seed(0)
       if (mt_randn(&a, &g, MT_SHAPE(4, 4)) != MT_OK)  // torch.randn(4, 4)
           fprintf(stderr, "%s\n", mt_last_error());
       mt_ones(&b, MT_F32, MT_SHAPE(4, 4));
       mt_add(&c, &a, &b);                              // c = a + b
       mt_print(stdout, &c);
       mt_release(&a); mt_release(&b); mt_release(&c);

   CONVENTIONS

   - Tensors are plain structs (mt_tensor) that hold a reference to shared,
     reference-counted storage. Start from a zeroed struct (= {0}), release
     with mt_release(). Views (reshape, slice, permute, expand, ...) share
     storage with their source; mt_share() makes another reference.
   - Every fallible call returns mt_status. On failure the output is left as
     it was and mt_last_error() returns a message naming what was wrong; the
     message is per thread and stays until the next failure on that thread.
   - Output tensors: when `out` is empty (data == NULL) the call allocates a
     new contiguous tensor; when it is already allocated it must have the
     result's shape and dtype and is written in place (no allocation), which
     lets loops reuse buffers. Element-wise kernels accept out == an input.
   - Compute is float32. float16 and bfloat16 are storage formats: convert
     with mt_to_dtype().
   - Heavy kernels run on a small thread pool (mt_set_num_threads); the
     result is bit-identical for every thread count.

   OPTIONS (define before the implementation)

       MT_MALLOC(sz) / MT_REALLOC(p, sz) / MT_FREE(p)   allocator (default libc)
       MT_ASSERT(x)      checks for API misuse only (default assert)
       MTDEF             linkage of the public functions (default extern;
                         define MT_STATIC to make them static)
       MT_NO_STB_IMPLEMENTATION   do not compile stb_image(_write) here

   LICENSE: MIT, see the end of the file.
*/
#ifndef MODULAR_TENSOR_H
#define MODULAR_TENSOR_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MT_VERSION_MAJOR 0
#define MT_VERSION_MINOR 1
#define MT_VERSION_PATCH 0

#ifndef MTDEF
#ifdef MT_STATIC
#define MTDEF static
#else
#define MTDEF extern
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
   Status and errors
   ------------------------------------------------------------------------ */

#define MT_STATUS_LIST(X)                                  \
    X(MT_OK, "ok")                                         \
    X(MT_ERR_ARGUMENT, "invalid argument")                 \
    X(MT_ERR_SHAPE, "shape mismatch")                      \
    X(MT_ERR_DTYPE, "unsupported dtype")                   \
    X(MT_ERR_MEMORY, "out of memory")                      \
    X(MT_ERR_IO, "input/output error")                     \
    X(MT_ERR_FORMAT, "malformed file")                     \
    X(MT_ERR_UNSUPPORTED, "unsupported operation")

#define MT__ENUM_ENTRY(name, text) name,
typedef enum mt_status { MT_STATUS_LIST(MT__ENUM_ENTRY) MT_STATUS_COUNT } mt_status;

MTDEF const char *mt_status_name(mt_status s);   /* "MT_ERR_SHAPE" */
MTDEF const char *mt_status_text(mt_status s);   /* "shape mismatch" */
/* Message of the last failed call on this thread ("" when none). */
MTDEF const char *mt_last_error(void);
MTDEF void mt_clear_error(void);

/* ------------------------------------------------------------------------
   Tensor
   ------------------------------------------------------------------------ */

#define MT_MAX_DIMS 8

#define MT_DTYPE_LIST(X)           \
    X(MT_F32, "float32", 4)        \
    X(MT_F16, "float16", 2)        \
    X(MT_BF16, "bfloat16", 2)      \
    X(MT_I64, "int64", 8)

#define MT__DTYPE_ENTRY(name, text, size) name,
typedef enum mt_dtype { MT_DTYPE_LIST(MT__DTYPE_ENTRY) MT_DTYPE_COUNT } mt_dtype;

typedef struct mt_storage mt_storage; /* opaque, reference counted */

typedef struct mt_tensor {
    mt_dtype dtype;
    int ndim;                         /* 0 for a scalar */
    int64_t shape[MT_MAX_DIMS];
    int64_t stride[MT_MAX_DIMS];      /* in elements, may be 0 (expand) */
    void *data;                       /* element [0, ..., 0]; NULL = empty */
    mt_storage *storage;              /* shared owner of the bytes */
} mt_tensor;

/* Shape literal for C callers: mt_zeros(&t, MT_F32, MT_SHAPE(1, 4, 64, 64)) */
#define MT_SHAPE(...) \
    (int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]){__VA_ARGS__}

MTDEF const char *mt_dtype_name(mt_dtype dt);    /* "float32" */
MTDEF size_t mt_dtype_size(mt_dtype dt);         /* bytes per element */

/* creation: out must be empty or preallocated with the same shape/dtype */
MTDEF mt_status mt_empty(mt_tensor *out, mt_dtype dt, int ndim, const int64_t *shape);
MTDEF mt_status mt_zeros(mt_tensor *out, mt_dtype dt, int ndim, const int64_t *shape);
MTDEF mt_status mt_ones(mt_tensor *out, mt_dtype dt, int ndim, const int64_t *shape);
MTDEF mt_status mt_full(mt_tensor *out, mt_dtype dt, int ndim, const int64_t *shape, double value);
/* 1-d float32 [start, end) by step, as torch.arange */
MTDEF mt_status mt_arange(mt_tensor *out, double start, double end, double step);
/* 1-d float32 of n points from start to end inclusive, as torch.linspace */
MTDEF mt_status mt_linspace(mt_tensor *out, double start, double end, int64_t n);
/* a new tensor holding a copy of `src` (contiguous, row-major) */
MTDEF mt_status mt_from_data(mt_tensor *out, mt_dtype dt, int ndim, const int64_t *shape, const void *src);
/* a tensor over the caller's buffer (not copied, not freed; it must outlive
   every view of the tensor) */
MTDEF mt_status mt_borrow(mt_tensor *out, mt_dtype dt, int ndim, const int64_t *shape, void *data);
/* a tensor over bytes owned elsewhere: `release(ctx)` runs when the last
   reference goes (used for memory-mapped files) */
MTDEF mt_status mt_adopt(mt_tensor *out, mt_dtype dt, int ndim, const int64_t *shape, void *data,
                         void (*release)(void *ctx), void *ctx);

/* references */
MTDEF void mt_release(mt_tensor *t);                          /* safe on an empty tensor */
MTDEF void mt_share(mt_tensor *dst, const mt_tensor *src);    /* dst = new reference to src */
MTDEF void mt_move(mt_tensor *dst, mt_tensor *src);           /* release dst, take src, empty src */

/* queries */
MTDEF int64_t mt_numel(const mt_tensor *t);
MTDEF int mt_is_contiguous(const mt_tensor *t);
MTDEF int mt_same_shape(const mt_tensor *a, const mt_tensor *b);
MTDEF float *mt_f32(const mt_tensor *t);   /* data as float*, NULL unless float32 */
/* "Tensor(dtype=float32, shape=[1, 4, 64, 64])"; returns chars written */
MTDEF int mt_describe(const mt_tensor *t, char *buf, size_t size);
/* "[1, 4, 64, 64]" */
MTDEF int mt_shape_string(const mt_tensor *t, char *buf, size_t size);

/* views (share storage; a negative dim counts from the end) */
MTDEF mt_status mt_view_reshape(mt_tensor *out, const mt_tensor *src, int ndim, const int64_t *shape); /* one -1 allowed */
MTDEF mt_status mt_view_slice(mt_tensor *out, const mt_tensor *src, int dim, int64_t start, int64_t end, int64_t step);
MTDEF mt_status mt_view_select(mt_tensor *out, const mt_tensor *src, int dim, int64_t index); /* drops dim */
MTDEF mt_status mt_view_permute(mt_tensor *out, const mt_tensor *src, const int *perm);
MTDEF mt_status mt_view_transpose(mt_tensor *out, const mt_tensor *src, int dim0, int dim1);
MTDEF mt_status mt_view_expand(mt_tensor *out, const mt_tensor *src, int ndim, const int64_t *shape); /* -1 keeps */
MTDEF mt_status mt_view_unsqueeze(mt_tensor *out, const mt_tensor *src, int dim);
MTDEF mt_status mt_view_squeeze(mt_tensor *out, const mt_tensor *src, int dim);

/* copies */
MTDEF mt_status mt_contiguous(mt_tensor *out, const mt_tensor *src); /* shares when already contiguous */
MTDEF mt_status mt_clone(mt_tensor *out, const mt_tensor *src);      /* always a new contiguous copy */
MTDEF mt_status mt_copy(mt_tensor *dst, const mt_tensor *src);       /* dst (allocated) = src, broadcast + dtype convert */
MTDEF mt_status mt_to_dtype(mt_tensor *out, const mt_tensor *src, mt_dtype dt);

/* scalar conversions (round to nearest even) and fast array forms */
MTDEF uint16_t mt_f32_to_f16(float f);
MTDEF float mt_f16_to_f32(uint16_t h);
MTDEF uint16_t mt_f32_to_bf16(float f);
MTDEF float mt_bf16_to_f32(uint16_t h);
MTDEF void mt_convert(void *dst, mt_dtype dst_dt, const void *src, mt_dtype src_dt, int64_t n);

/* ======================================================================
   SECTION threads: thread pool
   ====================================================================== */

/* Threads used by the heavy kernels: n <= 0 means one per core (the default).
   Results are identical for every thread count. */
MTDEF void mt_set_num_threads(int n);
MTDEF int mt_get_num_threads(void);
/* Runs fn(ctx, begin, end) over disjoint ranges covering [0, n), each at
   least `grain` items long (but the last), on the pool; returns when all are
   done. The split never changes what an item computes. */
typedef void (*mt_parallel_fn)(void *ctx, int64_t begin, int64_t end);
MTDEF void mt_parallel_for(int64_t n, int64_t grain, mt_parallel_fn fn, void *ctx);

/* ======================================================================
   SECTION random: PyTorch-compatible generator
   ====================================================================== */

/* ======================================================================
   SECTION ops: element-wise, reductions, softmax, printing
   ====================================================================== */

/* ======================================================================
   SECTION shape: concat, stack, split, pad, repeat, gather
   ====================================================================== */

/* Data movement, for every dtype. Inputs may be strided views; outputs
   follow the output convention above (empty -> allocated; preallocated ->
   same shape and dtype, written in place, may be a strided view or alias an
   input). A negative dim counts from the end. */

/* torch.cat(ts, dim): n >= 1 tensors of one dtype whose shapes agree except
   along `dim`. As in torch, 1-d empty tensors (shape [0]) are skipped.
       const mt_tensor *ts[2] = {&a, &b};   // NCHW skip connection
       mt_cat(&out, ts, 2, 1);                                              */
MTDEF mt_status mt_cat(mt_tensor *out, const mt_tensor *const *ts, int n, int dim);
/* torch.stack(ts, dim): n >= 1 tensors of one dtype and shape joined along a
   new dim at position dim (in [-(ndim + 1), ndim]). */
MTDEF mt_status mt_stack(mt_tensor *out, const mt_tensor *const *ts, int n, int dim);
/* torch.chunk(src, chunks, dim): views (sharing storage) into parts[0 ..
   *count). Every part has ceil(size / chunks) along dim but the last, which
   has the rest, so there can be fewer than `chunks` parts (a dim of size 0
   gives `chunks` empty parts). `parts` holds `chunks` tensors, zeroed or
   valid: each is released before being overwritten, unused ones are
   emptied. `count` may be NULL. */
MTDEF mt_status mt_chunk(mt_tensor *parts, int *count, const mt_tensor *src, int chunks, int dim);
/* torch.split(src, [sizes], dim): n views, part i has sizes[i] along dim;
   the sizes must add up to the size of dim. `parts` as for mt_chunk. */
MTDEF mt_status mt_split(mt_tensor *parts, const mt_tensor *src, int n, const int64_t *sizes, int dim);

typedef enum mt_pad_mode { MT_PAD_CONSTANT, MT_PAD_REFLECT, MT_PAD_REPLICATE } mt_pad_mode;
/* F.pad(a, pad, mode, value): `pad` holds npad (even) amounts, pairs
   (before, after) starting from the last dim and going backwards, as torch:
   mt_pad(&o, &x, MT_SHAPE(1, 1, 2, 2), MT_PAD_CONSTANT, 0) pads W by 1 and
   H by 2 on each side. Constant mode accepts negative amounts (they crop);
   reflect needs amounts smaller than the dim's size, replicate a non-empty
   dim. Reflect and replicate work on any number of trailing dims (torch
   limits them to 1-3). `value` is used by the constant mode only. */
MTDEF mt_status mt_pad(mt_tensor *out, const mt_tensor *a, int npad, const int64_t *pad, mt_pad_mode mode,
                       double value);
/* a.repeat(reps): nreps >= a->ndim entries (>= 0); extra leading entries
   add leading dims. mt_repeat(&o, &x, MT_SHAPE(2, 1, 3)) */
MTDEF mt_status mt_repeat(mt_tensor *out, const mt_tensor *a, int nreps, const int64_t *reps);
/* torch.index_select(a, dim, index): `index` is int64, 1-d (or 0-d), every
   value in [0, a.shape[dim]) (else MT_ERR_ARGUMENT, nothing written). */
MTDEF mt_status mt_index_select(mt_tensor *out, const mt_tensor *a, int dim, const mt_tensor *index);
/* torch.gather(a, dim, index): `index` is int64 with a's number of dims and
   index.shape[d] <= a.shape[d] for d != dim; out has index's shape and
   out[i][j][k] = a[i][index[i][j][k]][k] (dim = 1). Values are checked. */
MTDEF mt_status mt_gather(mt_tensor *out, const mt_tensor *a, int dim, const mt_tensor *index);
/* F.pixel_shuffle(x, r): (*, C*r*r, H, W) -> (*, C, H*r, W*r), and
   F.pixel_unshuffle(x, r): (*, C, H*r, W*r) -> (*, C*r*r, H, W). */
MTDEF mt_status mt_pixel_shuffle(mt_tensor *out, const mt_tensor *x, int r);
MTDEF mt_status mt_pixel_unshuffle(mt_tensor *out, const mt_tensor *x, int r);

/* ======================================================================
   SECTION layers: norms, resampling, pooling
   ====================================================================== */

/* float32. Inputs may be strided views; outputs follow the output
   convention (out may be x itself). Statistics are accumulated in double in
   a fixed order, so results are identical for every thread count; the
   variance is the biased one, as torch's norms use. `weight` and `bias` are
   optional (NULL or an empty tensor). */

/* F.group_norm(x, num_groups, weight, bias, eps): x is (N, C, *), C a
   multiple of num_groups; weight and bias have shape [C]. */
MTDEF mt_status mt_group_norm(mt_tensor *out, const mt_tensor *x, int num_groups, const mt_tensor *weight,
                              const mt_tensor *bias, double eps);
/* F.layer_norm(x, x.shape[-normalized_ndim:], weight, bias, eps): normalizes
   over the last normalized_ndim dims; weight and bias have their shape. */
MTDEF mt_status mt_layer_norm(mt_tensor *out, const mt_tensor *x, int normalized_ndim, const mt_tensor *weight,
                              const mt_tensor *bias, double eps);
/* RMS norm over the last dim, as diffusers' RMSNorm:
   x * rsqrt(mean(x^2, -1) + eps) * weight, weight of shape [x.shape[-1]]. */
MTDEF mt_status mt_rms_norm(mt_tensor *out, const mt_tensor *x, const mt_tensor *weight, double eps);

typedef enum mt_interp_mode {
    MT_INTERP_NEAREST,        /* torch 'nearest': src = floor(dst * in / out) */
    MT_INTERP_NEAREST_EXACT,  /* torch 'nearest-exact': src = floor((dst + 0.5) * in / out) */
    MT_INTERP_BILINEAR        /* torch 'bilinear' (align_corners 0 or 1) */
} mt_interp_mode;
/* F.interpolate(x, size=(out_h, out_w), mode=mode, align_corners=...) on
   (N, C, H, W), with torch's index and weight arithmetic. align_corners
   must be 0 for the nearest modes (torch refuses it too). */
MTDEF mt_status mt_interpolate(mt_tensor *out, const mt_tensor *x, int64_t out_h, int64_t out_w,
                               mt_interp_mode mode, int align_corners);
/* F.avg_pool2d / F.max_pool2d on (N, C, H, W) or (C, H, W): kernel > 0,
   stride 0 means the kernel size, 0 <= padding <= kernel / 2, floor output
   size (ceil_mode=False). Average pooling counts the padding
   (count_include_pad=True, torch's default); max pooling ignores it and
   propagates NaN. */
MTDEF mt_status mt_avg_pool2d(mt_tensor *out, const mt_tensor *x, int kernel_h, int kernel_w, int stride_h,
                              int stride_w, int pad_h, int pad_w);
MTDEF mt_status mt_max_pool2d(mt_tensor *out, const mt_tensor *x, int kernel_h, int kernel_w, int stride_h,
                              int stride_w, int pad_h, int pad_w);

/* ======================================================================
   SECTION nn: matmul, conv, attention
   ====================================================================== */

/* ======================================================================
   SECTION schedulers: timesteps, sigmas, step functions
   ====================================================================== */

/* ======================================================================
   SECTION files: safetensors and images
   ====================================================================== */

#ifdef __cplusplus
}
#endif

#endif /* MODULAR_TENSOR_H */

/* ************************************************************************
   IMPLEMENTATION
   ************************************************************************ */
#ifdef MODULAR_TENSOR_IMPLEMENTATION
#ifndef MODULAR_TENSOR_IMPLEMENTATION_DONE
#define MODULAR_TENSOR_IMPLEMENTATION_DONE

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#ifndef MT_MALLOC
#define MT_MALLOC(sz) malloc(sz)
#define MT_REALLOC(p, sz) realloc(p, sz)
#define MT_FREE(p) free(p)
#endif

#ifndef MT_ASSERT
#include <assert.h>
#define MT_ASSERT(x) assert(x)
#endif

#if defined(__cplusplus)
#define MT__THREAD_LOCAL thread_local
#elif defined(_MSC_VER)
#define MT__THREAD_LOCAL __declspec(thread)
#else
#define MT__THREAD_LOCAL __thread
#endif

#define MT__ALIGN 64

/* ---- errors ---------------------------------------------------------- */

static MT__THREAD_LOCAL char mt__error_buf[512];

MTDEF const char *mt_status_name(mt_status s) {
#define MT__NAME_ENTRY(name, text) #name,
    static const char *const names[] = {MT_STATUS_LIST(MT__NAME_ENTRY)};
#undef MT__NAME_ENTRY
    return (unsigned)s < MT_STATUS_COUNT ? names[s] : "MT_STATUS_UNKNOWN";
}

MTDEF const char *mt_status_text(mt_status s) {
#define MT__TEXT_ENTRY(name, text) text,
    static const char *const texts[] = {MT_STATUS_LIST(MT__TEXT_ENTRY)};
#undef MT__TEXT_ENTRY
    return (unsigned)s < MT_STATUS_COUNT ? texts[s] : "unknown status";
}

MTDEF const char *mt_last_error(void) { return mt__error_buf; }
MTDEF void mt_clear_error(void) { mt__error_buf[0] = '\0'; }

/* Records "<function>: <message>" for this thread and returns `s`. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static mt_status mt__fail(mt_status s, const char *func, const char *fmt, ...) {
    va_list ap;
    int n = snprintf(mt__error_buf, sizeof mt__error_buf, "%s: ", func);
    if (n < 0 || (size_t)n >= sizeof mt__error_buf) n = 0;
    va_start(ap, fmt);
    vsnprintf(mt__error_buf + n, sizeof mt__error_buf - (size_t)n, fmt, ap);
    va_end(ap);
    return s;
}
#define MT__FAIL(s, ...) mt__fail((s), __func__, __VA_ARGS__)

/* ---- dtypes ---------------------------------------------------------- */

MTDEF const char *mt_dtype_name(mt_dtype dt) {
#define MT__DT_NAME(name, text, size) text,
    static const char *const names[] = {MT_DTYPE_LIST(MT__DT_NAME)};
#undef MT__DT_NAME
    return (unsigned)dt < MT_DTYPE_COUNT ? names[dt] : "unknown";
}

MTDEF size_t mt_dtype_size(mt_dtype dt) {
#define MT__DT_SIZE(name, text, size) size,
    static const size_t sizes[] = {MT_DTYPE_LIST(MT__DT_SIZE)};
#undef MT__DT_SIZE
    return (unsigned)dt < MT_DTYPE_COUNT ? sizes[dt] : 0;
}

/* ---- storage --------------------------------------------------------- */

struct mt_storage {
    long refcount;                 /* atomic */
    void *data;
    size_t nbytes;
    void (*release)(void *ctx);    /* adopted bytes; NULL for owned/borrowed */
    void *ctx;
    int owned;                     /* data lives in this allocation */
};

static void mt__storage_retain(mt_storage *s) {
    if (s) __atomic_fetch_add(&s->refcount, 1, __ATOMIC_RELAXED);
}

static void mt__storage_release(mt_storage *s) {
    if (!s) return;
    if (__atomic_sub_fetch(&s->refcount, 1, __ATOMIC_ACQ_REL) != 0) return;
    if (s->release) s->release(s->ctx);
    MT_FREE(s);
}

/* One allocation: header, then the bytes aligned to MT__ALIGN. */
static mt_storage *mt__storage_new(size_t nbytes) {
    size_t head = (sizeof(mt_storage) + MT__ALIGN - 1) / MT__ALIGN * MT__ALIGN;
    unsigned char *p;
    mt_storage *s;
    if (nbytes > (size_t)-1 - head - MT__ALIGN) return NULL;
    p = (unsigned char *)MT_MALLOC(head + nbytes + MT__ALIGN);
    if (!p) return NULL;
    s = (mt_storage *)p;
    s->refcount = 1;
    s->data = (void *)(((uintptr_t)(p + head) + MT__ALIGN - 1) & ~(uintptr_t)(MT__ALIGN - 1));
    s->nbytes = nbytes;
    s->release = NULL;
    s->ctx = NULL;
    s->owned = 1;
    return s;
}

static mt_storage *mt__storage_wrap(void *data, size_t nbytes, void (*release)(void *), void *ctx) {
    mt_storage *s = (mt_storage *)MT_MALLOC(sizeof(mt_storage));
    if (!s) return NULL;
    s->refcount = 1;
    s->data = data;
    s->nbytes = nbytes;
    s->release = release;
    s->ctx = ctx;
    s->owned = 0;
    return s;
}

/* ---- shape helpers --------------------------------------------------- */

/* Checks a shape and returns its element count in *numel. */
static mt_status mt__check_shape(const char *func, int ndim, const int64_t *shape, int64_t *numel) {
    int64_t n = 1;
    int i;
    if (ndim < 0 || ndim > MT_MAX_DIMS)
        return mt__fail(MT_ERR_SHAPE, func, "ndim %d outside [0, %d]", ndim, MT_MAX_DIMS);
    if (ndim > 0 && !shape) return mt__fail(MT_ERR_ARGUMENT, func, "shape is NULL");
    for (i = 0; i < ndim; i++) {
        if (shape[i] < 0) return mt__fail(MT_ERR_SHAPE, func, "shape[%d] = %lld is negative", i, (long long)shape[i]);
        if (shape[i] > 0 && n > INT64_MAX / 64 / shape[i])
            return mt__fail(MT_ERR_SHAPE, func, "shape too large");
        n *= shape[i];
    }
    *numel = n;
    return MT_OK;
}

static void mt__set_contiguous(mt_tensor *t, int ndim, const int64_t *shape) {
    int64_t st = 1;
    int i;
    t->ndim = ndim;
    for (i = ndim - 1; i >= 0; i--) {
        t->shape[i] = shape[i];
        t->stride[i] = st;
        st *= shape[i];
    }
    for (i = ndim; i < MT_MAX_DIMS; i++) {
        t->shape[i] = 1;
        t->stride[i] = 0;
    }
}

static int mt__shape_equal(int na, const int64_t *a, int nb, const int64_t *b) {
    int i;
    if (na != nb) return 0;
    for (i = 0; i < na; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

static int mt__shape_fmt(char *buf, size_t size, int ndim, const int64_t *shape) {
    size_t n = 0;
    int i, w;
    w = snprintf(buf, size, "[");
    if (w > 0) n += (size_t)w;
    for (i = 0; i < ndim; i++) {
        w = snprintf(n < size ? buf + n : NULL, n < size ? size - n : 0, "%s%lld", i ? ", " : "",
                     (long long)shape[i]);
        if (w > 0) n += (size_t)w;
    }
    w = snprintf(n < size ? buf + n : NULL, n < size ? size - n : 0, "]");
    if (w > 0) n += (size_t)w;
    return (int)n;
}

/* Prepares `out` to receive a result of the given dtype and shape: allocates
   when empty, else checks it matches. `func` names the caller for errors. */
static mt_status mt__prepare_out(const char *func, mt_tensor *out, mt_dtype dt, int ndim, const int64_t *shape) {
    int64_t numel;
    mt_status s;
    mt_storage *st;
    if (!out) return mt__fail(MT_ERR_ARGUMENT, func, "output tensor is NULL");
    if ((unsigned)dt >= MT_DTYPE_COUNT) return mt__fail(MT_ERR_DTYPE, func, "unknown dtype %d", (int)dt);
    s = mt__check_shape(func, ndim, shape, &numel);
    if (s != MT_OK) return s;
    if (out->data) {
        char want[160], got[160];
        if (out->dtype == dt && mt__shape_equal(out->ndim, out->shape, ndim, shape)) return MT_OK;
        mt__shape_fmt(want, sizeof want, ndim, shape);
        mt__shape_fmt(got, sizeof got, out->ndim, out->shape);
        return mt__fail(MT_ERR_SHAPE, func, "preallocated output is %s %s, result is %s %s",
                        mt_dtype_name(out->dtype), got, mt_dtype_name(dt), want);
    }
    st = mt__storage_new((size_t)numel * mt_dtype_size(dt));
    if (!st) return mt__fail(MT_ERR_MEMORY, func, "cannot allocate %lld bytes",
                             (long long)numel * (long long)mt_dtype_size(dt));
    memset(out, 0, sizeof *out);
    out->dtype = dt;
    out->storage = st;
    out->data = st->data;
    mt__set_contiguous(out, ndim, shape);
    return MT_OK;
}

/* ---- n-d strided iteration ------------------------------------------- */

/* Visits an n-d index space as rows along its last dimension: row r of
   mt__rows_count() rows starts at element offset off[k] of operand k, and
   within a row operand k advances by rows->inner[k] elements, len times.
   Used by the generic (strided, broadcast) paths of copies and kernels. */
typedef struct mt__rows {
    int ndim, nops;
    int64_t len;                        /* length of a row (last dim) */
    int64_t count;                      /* number of rows */
    int64_t shape[MT_MAX_DIMS];
    int64_t stride[4][MT_MAX_DIMS];     /* element strides per operand */
    int64_t inner[4];                   /* stride along the row */
} mt__rows;

static void mt__rows_init(mt__rows *r, int ndim, const int64_t *shape, int nops, const int64_t *const *strides) {
    int i, k;
    r->ndim = ndim;
    r->nops = nops;
    r->len = ndim ? shape[ndim - 1] : 1;
    r->count = 1;
    for (i = 0; i < ndim; i++) {
        r->shape[i] = shape[i];
        if (i < ndim - 1) r->count *= shape[i];
        for (k = 0; k < nops; k++) r->stride[k][i] = strides[k][i];
    }
    for (k = 0; k < nops; k++) r->inner[k] = ndim ? strides[k][ndim - 1] : 0;
}

/* Element offsets of the start of row `row` for every operand. */
static void mt__rows_offsets(const mt__rows *r, int64_t row, int64_t *off) {
    int i, k;
    for (k = 0; k < r->nops; k++) off[k] = 0;
    for (i = r->ndim - 2; i >= 0; i--) {
        int64_t idx = row % r->shape[i];
        row /= r->shape[i];
        for (k = 0; k < r->nops; k++) off[k] += idx * r->stride[k][i];
    }
}

/* ---- float16 / bfloat16 ---------------------------------------------- */

static uint32_t mt__f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float mt__bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

MTDEF uint16_t mt_f32_to_f16(float f) {
    uint32_t x = mt__f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t exp = (x >> 23) & 0xffu;
    uint32_t man = x & 0x7fffffu;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0));
    {
        int e = (int)exp - 127 + 15;
        if (e >= 31) return (uint16_t)(sign | 0x7c00u);
        if (e <= 0) {
            /* subnormal half (or zero): shift the full mantissa into place */
            uint32_t m, shift, r, half;
            if (e < -10) return (uint16_t)sign;
            m = man | 0x800000u;
            shift = (uint32_t)(14 - e);
            r = m >> shift;
            half = 1u << (shift - 1);
            if ((m & ((1u << shift) - 1)) > half || ((m & ((1u << shift) - 1)) == half && (r & 1u))) r++;
            return (uint16_t)(sign | r);
        } else {
            uint32_t r = ((uint32_t)e << 10) | (man >> 13);
            uint32_t rest = man & 0x1fffu;
            if (rest > 0x1000u || (rest == 0x1000u && (r & 1u))) r++; /* may carry into exp: correct */
            return (uint16_t)(sign | r);
        }
    }
}

MTDEF float mt_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) return mt__bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        float v = (float)man * (1.0f / 16777216.0f); /* man * 2^-24 */
        return sign ? -v : v;
    }
    return mt__bits_f32(sign | ((exp - 15 + 127) << 23) | (man << 13));
}

MTDEF uint16_t mt_f32_to_bf16(float f) {
    uint32_t x = mt__f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

MTDEF float mt_bf16_to_f32(uint16_t h) { return mt__bits_f32((uint32_t)h << 16); }

static double mt__load(const void *p, mt_dtype dt) {
    switch (dt) {
    case MT_F32: return *(const float *)p;
    case MT_F16: return mt_f16_to_f32(*(const uint16_t *)p);
    case MT_BF16: return mt_bf16_to_f32(*(const uint16_t *)p);
    case MT_I64: return (double)*(const int64_t *)p;
    default: return 0.0;
    }
}

static void mt__store(void *p, mt_dtype dt, double v) {
    switch (dt) {
    case MT_F32: *(float *)p = (float)v; break;
    case MT_F16: *(uint16_t *)p = mt_f32_to_f16((float)v); break;
    case MT_BF16: *(uint16_t *)p = mt_f32_to_bf16((float)v); break;
    case MT_I64: *(int64_t *)p = (int64_t)v; break;
    default: break;
    }
}

MTDEF void mt_convert(void *dst, mt_dtype dst_dt, const void *src, mt_dtype src_dt, int64_t n) {
    int64_t i;
    size_t ds = mt_dtype_size(dst_dt), ss = mt_dtype_size(src_dt);
    if (dst_dt == src_dt) {
        memmove(dst, src, (size_t)n * ds);
        return;
    }
    if (src_dt == MT_F32 && dst_dt == MT_F16) {
        const float *s = (const float *)src;
        uint16_t *d = (uint16_t *)dst;
        for (i = 0; i < n; i++) d[i] = mt_f32_to_f16(s[i]);
    } else if (src_dt == MT_F16 && dst_dt == MT_F32) {
        const uint16_t *s = (const uint16_t *)src;
        float *d = (float *)dst;
        for (i = 0; i < n; i++) d[i] = mt_f16_to_f32(s[i]);
    } else if (src_dt == MT_F32 && dst_dt == MT_BF16) {
        const float *s = (const float *)src;
        uint16_t *d = (uint16_t *)dst;
        for (i = 0; i < n; i++) d[i] = mt_f32_to_bf16(s[i]);
    } else if (src_dt == MT_BF16 && dst_dt == MT_F32) {
        const uint16_t *s = (const uint16_t *)src;
        float *d = (float *)dst;
        for (i = 0; i < n; i++) d[i] = mt_bf16_to_f32(s[i]);
    } else {
        for (i = 0; i < n; i++) mt__store((char *)dst + i * ds, dst_dt, mt__load((const char *)src + i * ss, src_dt));
    }
}

/* ---- creation -------------------------------------------------------- */

MTDEF mt_status mt_empty(mt_tensor *out, mt_dtype dt, int ndim, const int64_t *shape) {
    return mt__prepare_out("mt_empty", out, dt, ndim, shape);
}

MTDEF mt_status mt_full(mt_tensor *out, mt_dtype dt, int ndim, const int64_t *shape, double value) {
    mt_status s = mt__prepare_out("mt_full", out, dt, ndim, shape);
    int64_t i, n;
    size_t es;
    unsigned char one[8];
    if (s != MT_OK) return s;
    n = mt_numel(out);
    es = mt_dtype_size(dt);
    mt__store(one, dt, value);
    if (dt == MT_F32) {
        float v = (float)value, *p = (float *)out->data;
        for (i = 0; i < n; i++) p[i] = v;
    } else {
        for (i = 0; i < n; i++) memcpy((char *)out->data + i * (int64_t)es, one, es);
    }
    return MT_OK;
}

MTDEF mt_status mt_zeros(mt_tensor *out, mt_dtype dt, int ndim, const int64_t *shape) {
    mt_status s = mt__prepare_out("mt_zeros", out, dt, ndim, shape);
    if (s != MT_OK) return s;
    memset(out->data, 0, (size_t)mt_numel(out) * mt_dtype_size(dt));
    return MT_OK;
}

MTDEF mt_status mt_ones(mt_tensor *out, mt_dtype dt, int ndim, const int64_t *shape) {
    return mt_full(out, dt, ndim, shape, 1.0);
}

MTDEF mt_status mt_arange(mt_tensor *out, double start, double end, double step) {
    int64_t n, i;
    mt_status s;
    float *p;
    if (step == 0 || isnan(start) || isnan(end) || isnan(step))
        return MT__FAIL(MT_ERR_ARGUMENT, "step must be non-zero and bounds finite (start=%g end=%g step=%g)",
                        start, end, step);
    if ((step > 0 && end < start) || (step < 0 && end > start))
        return MT__FAIL(MT_ERR_ARGUMENT, "end %g is not reachable from start %g by step %g", end, start, step);
    n = (int64_t)ceil((end - start) / step);
    s = mt__prepare_out("mt_arange", out, MT_F32, 1, &n);
    if (s != MT_OK) return s;
    p = (float *)out->data;
    for (i = 0; i < n; i++) p[i] = (float)(start + (double)i * step);
    return MT_OK;
}

MTDEF mt_status mt_linspace(mt_tensor *out, double start, double end, int64_t n) {
    int64_t i, half;
    mt_status s;
    float *p;
    if (n < 0) return MT__FAIL(MT_ERR_ARGUMENT, "number of points %lld is negative", (long long)n);
    s = mt__prepare_out("mt_linspace", out, MT_F32, 1, &n);
    if (s != MT_OK) return s;
    p = (float *)out->data;
    if (n == 1) {
        p[0] = (float)start;
        return MT_OK;
    }
    /* as torch.linspace for float32 (aten RangeFactoriesKernel): float
       arithmetic, the first half counted from start and the second half
       from end, so both end points are exact */
    {
        float fs = (float)start, fe = (float)end, fstep = (fe - fs) / (float)(n - 1);
        half = n / 2;
        for (i = 0; i < n; i++) p[i] = i < half ? fs + fstep * (float)i : fe - fstep * (float)(n - 1 - i);
    }
    return MT_OK;
}

MTDEF mt_status mt_from_data(mt_tensor *out, mt_dtype dt, int ndim, const int64_t *shape, const void *src) {
    mt_status s;
    if (!src) return MT__FAIL(MT_ERR_ARGUMENT, "source buffer is NULL");
    s = mt__prepare_out("mt_from_data", out, dt, ndim, shape);
    if (s != MT_OK) return s;
    memcpy(out->data, src, (size_t)mt_numel(out) * mt_dtype_size(dt));
    return MT_OK;
}

MTDEF mt_status mt_adopt(mt_tensor *out, mt_dtype dt, int ndim, const int64_t *shape, void *data,
                         void (*release)(void *ctx), void *ctx) {
    int64_t numel;
    mt_status s;
    mt_storage *st;
    if (!out) return MT__FAIL(MT_ERR_ARGUMENT, "output tensor is NULL");
    if (out->data) return MT__FAIL(MT_ERR_ARGUMENT, "output tensor must be empty");
    if (!data) return MT__FAIL(MT_ERR_ARGUMENT, "data is NULL");
    if ((unsigned)dt >= MT_DTYPE_COUNT) return MT__FAIL(MT_ERR_DTYPE, "unknown dtype %d", (int)dt);
    s = mt__check_shape("mt_adopt", ndim, shape, &numel);
    if (s != MT_OK) return s;
    st = mt__storage_wrap(data, (size_t)numel * mt_dtype_size(dt), release, ctx);
    if (!st) return MT__FAIL(MT_ERR_MEMORY, "cannot allocate storage header");
    memset(out, 0, sizeof *out);
    out->dtype = dt;
    out->storage = st;
    out->data = data;
    mt__set_contiguous(out, ndim, shape);
    return MT_OK;
}

MTDEF mt_status mt_borrow(mt_tensor *out, mt_dtype dt, int ndim, const int64_t *shape, void *data) {
    return mt_adopt(out, dt, ndim, shape, data, NULL, NULL);
}

/* ---- references and queries ------------------------------------------ */

MTDEF void mt_release(mt_tensor *t) {
    if (!t) return;
    mt__storage_release(t->storage);
    memset(t, 0, sizeof *t);
}

MTDEF void mt_share(mt_tensor *dst, const mt_tensor *src) {
    mt_tensor tmp = *src;
    mt__storage_retain(tmp.storage);
    mt_release(dst);
    *dst = tmp;
}

MTDEF void mt_move(mt_tensor *dst, mt_tensor *src) {
    mt_tensor tmp;
    if (dst == src) return;
    tmp = *src;
    memset(src, 0, sizeof *src);
    mt_release(dst);
    *dst = tmp;
}

MTDEF int64_t mt_numel(const mt_tensor *t) {
    int64_t n = 1;
    int i;
    if (!t->data) return 0;
    for (i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

MTDEF int mt_is_contiguous(const mt_tensor *t) {
    int64_t st = 1;
    int i;
    for (i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != st) return 0;
        st *= t->shape[i];
    }
    return 1;
}

MTDEF int mt_same_shape(const mt_tensor *a, const mt_tensor *b) {
    return mt__shape_equal(a->ndim, a->shape, b->ndim, b->shape);
}

MTDEF float *mt_f32(const mt_tensor *t) { return t && t->dtype == MT_F32 ? (float *)t->data : NULL; }

MTDEF int mt_shape_string(const mt_tensor *t, char *buf, size_t size) {
    return mt__shape_fmt(buf, size, t->ndim, t->shape);
}

MTDEF int mt_describe(const mt_tensor *t, char *buf, size_t size) {
    char shape[160];
    mt__shape_fmt(shape, sizeof shape, t->ndim, t->shape);
    return snprintf(buf, size, "Tensor(dtype=%s, shape=%s)", mt_dtype_name(t->dtype), shape);
}

/* ---- views ----------------------------------------------------------- */

static int mt__norm_dim(int dim, int ndim) { return dim < 0 ? dim + ndim : dim; }

/* Makes `out` a view of `src` with the given geometry. */
static void mt__make_view(mt_tensor *out, const mt_tensor *src, int ndim, const int64_t *shape,
                          const int64_t *stride, void *data) {
    mt_tensor v;
    int i;
    memset(&v, 0, sizeof v);
    v.dtype = src->dtype;
    v.ndim = ndim;
    for (i = 0; i < MT_MAX_DIMS; i++) {
        v.shape[i] = i < ndim ? shape[i] : 1;
        v.stride[i] = i < ndim ? stride[i] : 0;
    }
    v.data = data;
    v.storage = src->storage;
    mt__storage_retain(v.storage);
    mt_release(out);
    *out = v;
}

static mt_status mt__check_view_args(const char *func, const mt_tensor *out, const mt_tensor *src) {
    if (!out || !src) return mt__fail(MT_ERR_ARGUMENT, func, "tensor argument is NULL");
    if (!src->data) return mt__fail(MT_ERR_ARGUMENT, func, "source tensor is empty");
    return MT_OK;
}

MTDEF mt_status mt_view_reshape(mt_tensor *out, const mt_tensor *src, int ndim, const int64_t *shape) {
    int64_t newshape[MT_MAX_DIMS], newstride[MT_MAX_DIMS], known = 1, numel;
    int i, infer = -1;
    mt_status s = mt__check_view_args("mt_view_reshape", out, src);
    if (s != MT_OK) return s;
    if (ndim < 0 || ndim > MT_MAX_DIMS || (ndim && !shape))
        return MT__FAIL(MT_ERR_SHAPE, "ndim %d outside [0, %d]", ndim, MT_MAX_DIMS);
    numel = mt_numel(src);
    for (i = 0; i < ndim; i++) {
        if (shape[i] == -1) {
            if (infer >= 0) return MT__FAIL(MT_ERR_SHAPE, "only one dimension can be -1");
            infer = i;
        } else if (shape[i] < 0) {
            return MT__FAIL(MT_ERR_SHAPE, "shape[%d] = %lld is invalid", i, (long long)shape[i]);
        } else {
            known *= shape[i];
        }
        newshape[i] = shape[i];
    }
    if (infer >= 0) {
        if (known == 0 || numel % known)
            return MT__FAIL(MT_ERR_SHAPE, "cannot infer dimension %d: %lld elements over %lld", infer,
                            (long long)numel, (long long)known);
        newshape[infer] = numel / known;
        known *= newshape[infer];
    }
    if (known != numel) {
        char a[160], b[160];
        mt__shape_fmt(a, sizeof a, src->ndim, src->shape);
        mt__shape_fmt(b, sizeof b, ndim, newshape);
        return MT__FAIL(MT_ERR_SHAPE, "cannot reshape %s (%lld elements) to %s", a, (long long)numel, b);
    }
    if (!mt_is_contiguous(src))
        return MT__FAIL(MT_ERR_ARGUMENT, "source is not contiguous; call mt_contiguous first");
    {
        int64_t st = 1;
        for (i = ndim - 1; i >= 0; i--) {
            newstride[i] = st;
            st *= newshape[i];
        }
    }
    mt__make_view(out, src, ndim, newshape, newstride, src->data);
    return MT_OK;
}

MTDEF mt_status mt_view_slice(mt_tensor *out, const mt_tensor *src, int dim, int64_t start, int64_t end, int64_t step) {
    int64_t shape[MT_MAX_DIMS], stride[MT_MAX_DIMS], n, len;
    int d;
    mt_status s = mt__check_view_args("mt_view_slice", out, src);
    if (s != MT_OK) return s;
    d = mt__norm_dim(dim, src->ndim);
    if (d < 0 || d >= src->ndim) return MT__FAIL(MT_ERR_ARGUMENT, "dim %d out of range for %d dims", dim, src->ndim);
    if (step <= 0) return MT__FAIL(MT_ERR_ARGUMENT, "step %lld must be positive", (long long)step);
    n = src->shape[d];
    if (start < 0) start += n;
    if (end < 0) end += n;
    if (start < 0) start = 0;
    if (end > n) end = n;
    if (start > n) start = n;
    len = end > start ? (end - start + step - 1) / step : 0;
    memcpy(shape, src->shape, sizeof shape);
    memcpy(stride, src->stride, sizeof stride);
    shape[d] = len;
    stride[d] = src->stride[d] * step;
    mt__make_view(out, src, src->ndim, shape, stride,
                  (char *)src->data + start * src->stride[d] * (int64_t)mt_dtype_size(src->dtype));
    return MT_OK;
}

MTDEF mt_status mt_view_select(mt_tensor *out, const mt_tensor *src, int dim, int64_t index) {
    int64_t shape[MT_MAX_DIMS], stride[MT_MAX_DIMS];
    int d, i, k = 0;
    char *data;
    mt_status s = mt__check_view_args("mt_view_select", out, src);
    if (s != MT_OK) return s;
    d = mt__norm_dim(dim, src->ndim);
    if (d < 0 || d >= src->ndim) return MT__FAIL(MT_ERR_ARGUMENT, "dim %d out of range for %d dims", dim, src->ndim);
    if (index < 0) index += src->shape[d];
    if (index < 0 || index >= src->shape[d])
        return MT__FAIL(MT_ERR_ARGUMENT, "index %lld out of range for dim %d of size %lld", (long long)index, d,
                        (long long)src->shape[d]);
    for (i = 0; i < src->ndim; i++) {
        if (i == d) continue;
        shape[k] = src->shape[i];
        stride[k] = src->stride[i];
        k++;
    }
    data = (char *)src->data + index * src->stride[d] * (int64_t)mt_dtype_size(src->dtype);
    mt__make_view(out, src, src->ndim - 1, shape, stride, data);
    return MT_OK;
}

MTDEF mt_status mt_view_permute(mt_tensor *out, const mt_tensor *src, const int *perm) {
    int64_t shape[MT_MAX_DIMS], stride[MT_MAX_DIMS];
    int seen[MT_MAX_DIMS] = {0};
    int i;
    mt_status s = mt__check_view_args("mt_view_permute", out, src);
    if (s != MT_OK) return s;
    if (src->ndim && !perm) return MT__FAIL(MT_ERR_ARGUMENT, "perm is NULL");
    for (i = 0; i < src->ndim; i++) {
        int p = mt__norm_dim(perm[i], src->ndim);
        if (p < 0 || p >= src->ndim || seen[p])
            return MT__FAIL(MT_ERR_ARGUMENT, "perm is not a permutation of %d dims (entry %d = %d)", src->ndim, i, perm[i]);
        seen[p] = 1;
        shape[i] = src->shape[p];
        stride[i] = src->stride[p];
    }
    mt__make_view(out, src, src->ndim, shape, stride, src->data);
    return MT_OK;
}

MTDEF mt_status mt_view_transpose(mt_tensor *out, const mt_tensor *src, int dim0, int dim1) {
    int perm[MT_MAX_DIMS], i, a, b;
    mt_status s = mt__check_view_args("mt_view_transpose", out, src);
    if (s != MT_OK) return s;
    a = mt__norm_dim(dim0, src->ndim);
    b = mt__norm_dim(dim1, src->ndim);
    if (a < 0 || a >= src->ndim || b < 0 || b >= src->ndim)
        return MT__FAIL(MT_ERR_ARGUMENT, "dims (%d, %d) out of range for %d dims", dim0, dim1, src->ndim);
    for (i = 0; i < src->ndim; i++) perm[i] = i;
    perm[a] = b;
    perm[b] = a;
    return mt_view_permute(out, src, perm);
}

MTDEF mt_status mt_view_expand(mt_tensor *out, const mt_tensor *src, int ndim, const int64_t *shape) {
    int64_t nshape[MT_MAX_DIMS], nstride[MT_MAX_DIMS];
    int i, lead;
    mt_status s = mt__check_view_args("mt_view_expand", out, src);
    if (s != MT_OK) return s;
    if (ndim < src->ndim || ndim > MT_MAX_DIMS || (ndim && !shape))
        return MT__FAIL(MT_ERR_SHAPE, "cannot expand %d dims to %d dims", src->ndim, ndim);
    lead = ndim - src->ndim;
    for (i = 0; i < ndim; i++) {
        int64_t want = shape[i];
        if (i < lead) {
            if (want < 0) return MT__FAIL(MT_ERR_SHAPE, "new leading dim %d cannot be -1", i);
            nshape[i] = want;
            nstride[i] = 0;
        } else {
            int64_t have = src->shape[i - lead];
            if (want == -1 || want == have) {
                nshape[i] = have;
                nstride[i] = src->stride[i - lead];
            } else if (have == 1 && want >= 0) {
                nshape[i] = want;
                nstride[i] = 0;
            } else {
                return MT__FAIL(MT_ERR_SHAPE, "cannot expand dim %d of size %lld to %lld", i - lead, (long long)have,
                                (long long)want);
            }
        }
    }
    mt__make_view(out, src, ndim, nshape, nstride, src->data);
    return MT_OK;
}

MTDEF mt_status mt_view_unsqueeze(mt_tensor *out, const mt_tensor *src, int dim) {
    int64_t shape[MT_MAX_DIMS], stride[MT_MAX_DIMS];
    int d, i, k = 0;
    mt_status s = mt__check_view_args("mt_view_unsqueeze", out, src);
    if (s != MT_OK) return s;
    d = dim < 0 ? dim + src->ndim + 1 : dim;
    if (d < 0 || d > src->ndim || src->ndim >= MT_MAX_DIMS)
        return MT__FAIL(MT_ERR_ARGUMENT, "dim %d out of range for %d dims", dim, src->ndim);
    for (i = 0; i <= src->ndim; i++) {
        if (i == d) {
            shape[i] = 1;
            stride[i] = (d < src->ndim) ? src->shape[d] * src->stride[d] : 1;
        } else {
            shape[i] = src->shape[k];
            stride[i] = src->stride[k];
            k++;
        }
    }
    mt__make_view(out, src, src->ndim + 1, shape, stride, src->data);
    return MT_OK;
}

MTDEF mt_status mt_view_squeeze(mt_tensor *out, const mt_tensor *src, int dim) {
    int d;
    mt_status s = mt__check_view_args("mt_view_squeeze", out, src);
    if (s != MT_OK) return s;
    d = mt__norm_dim(dim, src->ndim);
    if (d < 0 || d >= src->ndim) return MT__FAIL(MT_ERR_ARGUMENT, "dim %d out of range for %d dims", dim, src->ndim);
    if (src->shape[d] != 1)
        return MT__FAIL(MT_ERR_SHAPE, "dim %d has size %lld, not 1", d, (long long)src->shape[d]);
    return mt_view_select(out, src, d, 0);
}

/* ---- copies ---------------------------------------------------------- */

/* Broadcast geometry of src onto a target shape: src strides aligned to the
   right, 0 where broadcast. Returns 0 when the shapes do not broadcast. */
static int mt__broadcast_strides(const mt_tensor *src, int ndim, const int64_t *shape, int64_t *stride) {
    int i, lead = ndim - src->ndim;
    if (lead < 0) return 0;
    for (i = 0; i < ndim; i++) {
        if (i < lead) {
            stride[i] = 0;
        } else if (src->shape[i - lead] == shape[i]) {
            stride[i] = src->stride[i - lead];
        } else if (src->shape[i - lead] == 1) {
            stride[i] = 0;
        } else {
            return 0;
        }
    }
    return 1;
}

MTDEF mt_status mt_copy(mt_tensor *dst, const mt_tensor *src) {
    int64_t sstride[MT_MAX_DIMS], ds, ss, r;
    mt__rows rows;
    const int64_t *strides[2];
    if (!dst || !src) return MT__FAIL(MT_ERR_ARGUMENT, "tensor argument is NULL");
    if (!dst->data || !src->data) return MT__FAIL(MT_ERR_ARGUMENT, "destination and source must be allocated");
    if (!mt__broadcast_strides(src, dst->ndim, dst->shape, sstride)) {
        char a[160], b[160];
        mt__shape_fmt(a, sizeof a, src->ndim, src->shape);
        mt__shape_fmt(b, sizeof b, dst->ndim, dst->shape);
        return MT__FAIL(MT_ERR_SHAPE, "source %s does not broadcast to destination %s", a, b);
    }
    if (mt_numel(dst) == 0) return MT_OK;
    if (dst->dtype == src->dtype && mt_is_contiguous(dst) && mt_is_contiguous(src) && mt_same_shape(dst, src)) {
        memmove(dst->data, src->data, (size_t)mt_numel(dst) * mt_dtype_size(dst->dtype));
        return MT_OK;
    }
    strides[0] = dst->stride;
    strides[1] = sstride;
    mt__rows_init(&rows, dst->ndim, dst->shape, 2, strides);
    ds = (int64_t)mt_dtype_size(dst->dtype);
    ss = (int64_t)mt_dtype_size(src->dtype);
    for (r = 0; r < rows.count; r++) {
        int64_t off[2], j;
        mt__rows_offsets(&rows, r, off);
        if (dst->dtype == MT_F32 && src->dtype == MT_F32) {
            float *d = (float *)dst->data + off[0];
            const float *sp = (const float *)src->data + off[1];
            for (j = 0; j < rows.len; j++) d[j * rows.inner[0]] = sp[j * rows.inner[1]];
        } else {
            char *d = (char *)dst->data + off[0] * ds;
            const char *sp = (const char *)src->data + off[1] * ss;
            for (j = 0; j < rows.len; j++)
                mt_convert(d + j * rows.inner[0] * ds, dst->dtype, sp + j * rows.inner[1] * ss, src->dtype, 1);
        }
    }
    return MT_OK;
}

MTDEF mt_status mt_clone(mt_tensor *out, const mt_tensor *src) {
    mt_tensor tmp = {MT_F32, 0, {0}, {0}, NULL, NULL};
    mt_status s;
    if (!src || !src->data) return MT__FAIL(MT_ERR_ARGUMENT, "source tensor is empty");
    s = mt__prepare_out("mt_clone", &tmp, src->dtype, src->ndim, src->shape);
    if (s != MT_OK) return s;
    s = mt_copy(&tmp, src);
    if (s != MT_OK) {
        mt_release(&tmp);
        return s;
    }
    if (out->data) {
        s = mt__prepare_out("mt_clone", out, src->dtype, src->ndim, src->shape);
        if (s == MT_OK) s = mt_copy(out, &tmp);
        mt_release(&tmp);
        return s;
    }
    mt_move(out, &tmp);
    return MT_OK;
}

MTDEF mt_status mt_contiguous(mt_tensor *out, const mt_tensor *src) {
    if (!out || !src || !src->data) return MT__FAIL(MT_ERR_ARGUMENT, "source tensor is empty");
    if (mt_is_contiguous(src) && !out->data) {
        mt_share(out, src);
        return MT_OK;
    }
    return mt_clone(out, src);
}

MTDEF mt_status mt_to_dtype(mt_tensor *out, const mt_tensor *src, mt_dtype dt) {
    mt_status s;
    if (!out || !src || !src->data) return MT__FAIL(MT_ERR_ARGUMENT, "source tensor is empty");
    if (out == src) return MT__FAIL(MT_ERR_ARGUMENT, "output must differ from source");
    s = mt__prepare_out("mt_to_dtype", out, dt, src->ndim, src->shape);
    if (s != MT_OK) return s;
    return mt_copy(out, src);
}

/* ======================================================================
   IMPLEMENTATION SECTION threads
   ====================================================================== */

/* Serial placeholder until the pool lands: same contract, one thread. */
static int mt__num_threads = 1;
MTDEF void mt_set_num_threads(int n) { mt__num_threads = n > 0 ? n : 1; }
MTDEF int mt_get_num_threads(void) { return mt__num_threads; }
MTDEF void mt_parallel_for(int64_t n, int64_t grain, mt_parallel_fn fn, void *ctx) {
    (void)grain;
    if (n > 0) fn(ctx, 0, n);
}

/* ======================================================================
   IMPLEMENTATION SECTION random
   ====================================================================== */

/* ======================================================================
   IMPLEMENTATION SECTION ops
   ====================================================================== */

/* ======================================================================
   IMPLEMENTATION SECTION shape
   ====================================================================== */

/* Where a result goes: `out` itself when it is allocated, contiguous and
   overlaps no input, else a new contiguous tensor that mt__shape_dst_end
   moves into an empty `out` or copies into a preallocated one. So `out` is
   untouched until the call is sure to succeed, and may alias an input. */
typedef struct mt__shape_dst {
    mt_tensor tmp;
    mt_tensor *t;
} mt__shape_dst;

/* Byte range [lo, hi) an allocated tensor with elements can touch. */
static void mt__shape_extent(const mt_tensor *t, uintptr_t *lo, uintptr_t *hi) {
    int64_t es = (int64_t)mt_dtype_size(t->dtype), neg = 0, pos = 0;
    int i;
    for (i = 0; i < t->ndim; i++) {
        int64_t span = (t->shape[i] - 1) * t->stride[i];
        if (span < 0)
            neg -= span;
        else
            pos += span;
    }
    *lo = (uintptr_t)t->data - (uintptr_t)(neg * es);
    *hi = (uintptr_t)t->data + (uintptr_t)((pos + 1) * es);
}

static int mt__shape_overlaps(const mt_tensor *a, const mt_tensor *b) {
    uintptr_t alo, ahi, blo, bhi;
    if (!a || !b || !a->data || !b->data || mt_numel(a) == 0 || mt_numel(b) == 0) return 0;
    mt__shape_extent(a, &alo, &ahi);
    mt__shape_extent(b, &blo, &bhi);
    return alo < bhi && blo < ahi;
}

static mt_status mt__shape_dst_begin(const char *func, mt__shape_dst *d, mt_tensor *out, mt_dtype dt, int ndim,
                                     const int64_t *shape, const mt_tensor *const *ins, int nin) {
    mt_status s;
    int i, direct;
    memset(&d->tmp, 0, sizeof d->tmp);
    d->t = NULL;
    if (!out) return mt__fail(MT_ERR_ARGUMENT, func, "output tensor is NULL");
    if (out->data) {
        s = mt__prepare_out(func, out, dt, ndim, shape);
        if (s != MT_OK) return s;
        direct = mt_is_contiguous(out);
        for (i = 0; i < nin && direct; i++)
            if (mt__shape_overlaps(out, ins[i])) direct = 0;
        if (direct) {
            d->t = out;
            return MT_OK;
        }
    }
    s = mt__prepare_out(func, &d->tmp, dt, ndim, shape);
    if (s != MT_OK) return s;
    d->t = &d->tmp;
    return MT_OK;
}

/* Finishes a result started by mt__shape_dst_begin; `s` is the status so far. */
static mt_status mt__shape_dst_end(mt__shape_dst *d, mt_tensor *out, mt_status s) {
    if (d->t != &d->tmp) return s;
    if (s == MT_OK) {
        if (!out->data) {
            mt_move(out, &d->tmp);
            return MT_OK;
        }
        s = mt_copy(out, &d->tmp);
    }
    mt_release(&d->tmp);
    return s;
}

/* n elements of `es` bytes from src to dst, steps in elements. */
static void mt__shape_move(char *dst, int64_t dinc, const char *src, int64_t sinc, int64_t n, size_t es) {
    int64_t j;
    if (dinc == 1 && sinc == 1) {
        memcpy(dst, src, (size_t)n * es);
        return;
    }
    switch (es) {
    case 2:
        for (j = 0; j < n; j++) memcpy(dst + j * dinc * 2, src + j * sinc * 2, 2);
        break;
    case 4:
        for (j = 0; j < n; j++) memcpy(dst + j * dinc * 4, src + j * sinc * 4, 4);
        break;
    case 8:
        for (j = 0; j < n; j++) memcpy(dst + j * dinc * 8, src + j * sinc * 8, 8);
        break;
    default:
        for (j = 0; j < n; j++) memcpy(dst + j * dinc * (int64_t)es, src + j * sinc * (int64_t)es, es);
        break;
    }
}

/* Copies an n-d block of `es`-byte elements between two strided layouts
   (strides in elements), merging dims that are contiguous in both. */
static void mt__shape_copy_geom(void *dst, const int64_t *dstride, const void *src, const int64_t *sstride,
                                int ndim, const int64_t *shape, size_t es) {
    int64_t sh[MT_MAX_DIMS], ds[MT_MAX_DIMS], ss[MT_MAX_DIMS], r, off[2];
    const int64_t *strides[2];
    mt__rows rows;
    int n = 0, i;
    for (i = 0; i < ndim; i++) {
        if (shape[i] == 0) return;
        if (shape[i] == 1) continue;
        if (n > 0 && ds[n - 1] == dstride[i] * shape[i] && ss[n - 1] == sstride[i] * shape[i]) {
            sh[n - 1] *= shape[i];
            ds[n - 1] = dstride[i];
            ss[n - 1] = sstride[i];
        } else {
            sh[n] = shape[i];
            ds[n] = dstride[i];
            ss[n] = sstride[i];
            n++;
        }
    }
    if (n == 0) {
        memcpy(dst, src, es);
        return;
    }
    if (n == 1) {
        mt__shape_move((char *)dst, ds[0], (const char *)src, ss[0], sh[0], es);
        return;
    }
    /* rows of the first n - 1 dims; each row walks its dim n - 2, moving a
       run of dim n - 1 per step (short last dims cost no row setup) */
    strides[0] = ds;
    strides[1] = ss;
    mt__rows_init(&rows, n - 1, sh, 2, strides);
    for (r = 0; r < rows.count; r++) {
        int64_t j;
        mt__rows_offsets(&rows, r, off);
        for (j = 0; j < rows.len; j++)
            mt__shape_move((char *)dst + (off[0] + j * rows.inner[0]) * (int64_t)es, ds[n - 1],
                           (const char *)src + (off[1] + j * rows.inner[1]) * (int64_t)es, ss[n - 1], sh[n - 1], es);
    }
}

static int mt__shape_cat_skipped(const mt_tensor *t) { return t->ndim == 1 && t->shape[0] == 0; }

MTDEF mt_status mt_cat(mt_tensor *out, const mt_tensor *const *ts, int n, int dim) {
    const mt_tensor *ref = NULL;
    int64_t shape[MT_MAX_DIMS], off = 0;
    size_t es;
    int i, k, d;
    mt__shape_dst dst;
    mt_status s;
    if (!out || !ts) return MT__FAIL(MT_ERR_ARGUMENT, "output or tensor list is NULL");
    if (n < 1) return MT__FAIL(MT_ERR_ARGUMENT, "needs at least one tensor, got %d", n);
    for (i = 0; i < n; i++) {
        if (!ts[i] || !ts[i]->data) return MT__FAIL(MT_ERR_ARGUMENT, "tensor %d is NULL or empty", i);
        if (!ref && !mt__shape_cat_skipped(ts[i])) ref = ts[i];
    }
    if (!ref) ref = ts[0]; /* all 1-d empty: the result is too */
    if (ref->ndim == 0) return MT__FAIL(MT_ERR_SHAPE, "zero-dimensional tensors cannot be concatenated");
    d = mt__norm_dim(dim, ref->ndim);
    if (d < 0 || d >= ref->ndim) return MT__FAIL(MT_ERR_ARGUMENT, "dim %d out of range for %d dims", dim, ref->ndim);
    memcpy(shape, ref->shape, sizeof shape);
    shape[d] = 0;
    for (i = 0; i < n; i++) {
        const mt_tensor *t = ts[i];
        if (mt__shape_cat_skipped(t) && t != ref) continue;
        if (t->dtype != ref->dtype)
            return MT__FAIL(MT_ERR_DTYPE, "tensor %d is %s, the others %s", i, mt_dtype_name(t->dtype),
                            mt_dtype_name(ref->dtype));
        for (k = 0; k < ref->ndim; k++)
            if (t->ndim != ref->ndim || (k != d && t->shape[k] != ref->shape[k])) {
                char a[160], b[160];
                mt__shape_fmt(a, sizeof a, t->ndim, t->shape);
                mt__shape_fmt(b, sizeof b, ref->ndim, ref->shape);
                return MT__FAIL(MT_ERR_SHAPE, "tensor %d has shape %s, expected %s except along dim %d", i, a, b, d);
            }
        shape[d] += t->shape[d];
    }
    s = mt__shape_dst_begin("mt_cat", &dst, out, ref->dtype, ref->ndim, shape, ts, n);
    if (s != MT_OK) return s;
    es = mt_dtype_size(ref->dtype);
    for (i = 0; i < n; i++) {
        const mt_tensor *t = ts[i];
        if (mt__shape_cat_skipped(t)) continue;
        mt__shape_copy_geom((char *)dst.t->data + off * dst.t->stride[d] * (int64_t)es, dst.t->stride, t->data,
                            t->stride, t->ndim, t->shape, es);
        off += t->shape[d];
    }
    return mt__shape_dst_end(&dst, out, MT_OK);
}

MTDEF mt_status mt_stack(mt_tensor *out, const mt_tensor *const *ts, int n, int dim) {
    const mt_tensor *ref;
    int64_t shape[MT_MAX_DIMS], dstride[MT_MAX_DIMS];
    size_t es;
    int i, k, d;
    mt__shape_dst dst;
    mt_status s;
    if (!out || !ts) return MT__FAIL(MT_ERR_ARGUMENT, "output or tensor list is NULL");
    if (n < 1) return MT__FAIL(MT_ERR_ARGUMENT, "needs at least one tensor, got %d", n);
    for (i = 0; i < n; i++)
        if (!ts[i] || !ts[i]->data) return MT__FAIL(MT_ERR_ARGUMENT, "tensor %d is NULL or empty", i);
    ref = ts[0];
    if (ref->ndim >= MT_MAX_DIMS)
        return MT__FAIL(MT_ERR_SHAPE, "stacking %d-dim tensors would exceed %d dims", ref->ndim, MT_MAX_DIMS);
    d = dim < 0 ? dim + ref->ndim + 1 : dim;
    if (d < 0 || d > ref->ndim)
        return MT__FAIL(MT_ERR_ARGUMENT, "dim %d out of range for stacking %d-dim tensors", dim, ref->ndim);
    for (i = 1; i < n; i++) {
        if (ts[i]->dtype != ref->dtype)
            return MT__FAIL(MT_ERR_DTYPE, "tensor %d is %s, tensor 0 is %s", i, mt_dtype_name(ts[i]->dtype),
                            mt_dtype_name(ref->dtype));
        if (!mt_same_shape(ts[i], ref)) {
            char a[160], b[160];
            mt__shape_fmt(a, sizeof a, ts[i]->ndim, ts[i]->shape);
            mt__shape_fmt(b, sizeof b, ref->ndim, ref->shape);
            return MT__FAIL(MT_ERR_SHAPE, "tensor %d has shape %s, tensor 0 has %s", i, a, b);
        }
    }
    for (k = 0, i = 0; i <= ref->ndim; i++) shape[i] = i == d ? n : ref->shape[k++];
    s = mt__shape_dst_begin("mt_stack", &dst, out, ref->dtype, ref->ndim + 1, shape, ts, n);
    if (s != MT_OK) return s;
    for (k = 0, i = 0; i <= ref->ndim; i++)
        if (i != d) dstride[k++] = dst.t->stride[i];
    es = mt_dtype_size(ref->dtype);
    for (i = 0; i < n; i++)
        mt__shape_copy_geom((char *)dst.t->data + i * dst.t->stride[d] * (int64_t)es, dstride, ts[i]->data,
                            ts[i]->stride, ref->ndim, ref->shape, es);
    return mt__shape_dst_end(&dst, out, MT_OK);
}

/* Views parts[i] of `src` along d: sizes[i] long each when `sizes` is
   given, else `csize` long but the last; parts past `nparts` (up to
   `nslots`) are emptied. The arguments are checked by the caller. */
static void mt__shape_parts(mt_tensor *parts, int nslots, int nparts, const mt_tensor *src, int d,
                            const int64_t *sizes, int64_t csize) {
    mt_tensor keep;
    int64_t start = 0, size = src->shape[d];
    int i;
    memset(&keep, 0, sizeof keep);
    mt_share(&keep, src); /* src may be one of the parts */
    for (i = 0; i < nslots; i++) {
        if (i < nparts) {
            int64_t len = sizes ? sizes[i] : (size - start < csize ? size - start : csize);
            mt_view_slice(&parts[i], &keep, d, start, start + len, 1);
            start += len;
        } else {
            mt_release(&parts[i]);
        }
    }
    mt_release(&keep);
}

MTDEF mt_status mt_chunk(mt_tensor *parts, int *count, const mt_tensor *src, int chunks, int dim) {
    int64_t size, csize;
    int d, np;
    if (!parts || !src || !src->data) return MT__FAIL(MT_ERR_ARGUMENT, "parts or source is NULL or empty");
    if (chunks < 1) return MT__FAIL(MT_ERR_ARGUMENT, "chunks = %d must be positive", chunks);
    if (src->ndim == 0) return MT__FAIL(MT_ERR_SHAPE, "cannot chunk a zero-dimensional tensor");
    d = mt__norm_dim(dim, src->ndim);
    if (d < 0 || d >= src->ndim) return MT__FAIL(MT_ERR_ARGUMENT, "dim %d out of range for %d dims", dim, src->ndim);
    size = src->shape[d];
    csize = size == 0 ? 0 : (size + chunks - 1) / chunks;
    np = size == 0 ? chunks : (int)((size + csize - 1) / csize);
    mt__shape_parts(parts, chunks, np, src, d, NULL, csize);
    if (count) *count = np;
    return MT_OK;
}

MTDEF mt_status mt_split(mt_tensor *parts, const mt_tensor *src, int n, const int64_t *sizes, int dim) {
    int64_t total = 0;
    int d, i;
    if (!parts || !src || !src->data || !sizes)
        return MT__FAIL(MT_ERR_ARGUMENT, "parts, sizes or source is NULL or empty");
    if (n < 1) return MT__FAIL(MT_ERR_ARGUMENT, "needs at least one size, got %d", n);
    if (src->ndim == 0) return MT__FAIL(MT_ERR_SHAPE, "cannot split a zero-dimensional tensor");
    d = mt__norm_dim(dim, src->ndim);
    if (d < 0 || d >= src->ndim) return MT__FAIL(MT_ERR_ARGUMENT, "dim %d out of range for %d dims", dim, src->ndim);
    for (i = 0; i < n; i++) {
        if (sizes[i] < 0) return MT__FAIL(MT_ERR_ARGUMENT, "sizes[%d] = %lld is negative", i, (long long)sizes[i]);
        total += sizes[i];
    }
    if (total != src->shape[d])
        return MT__FAIL(MT_ERR_SHAPE, "sizes add up to %lld but dim %d has size %lld", (long long)total, d,
                        (long long)src->shape[d]);
    mt__shape_parts(parts, n, n, src, d, sizes, 0);
    return MT_OK;
}

/* Row `row` of a contiguous n-d index space (rows along the last dim) as
   per-dim indices idx[0 .. ndim - 2]. */
static void mt__shape_row_index(int64_t row, int ndim, const int64_t *shape, int64_t *idx) {
    int i;
    for (i = ndim - 2; i >= 0; i--) {
        idx[i] = row % shape[i];
        row /= shape[i];
    }
}

MTDEF mt_status mt_pad(mt_tensor *out, const mt_tensor *a, int npad, const int64_t *pad, mt_pad_mode mode,
                       double value) {
    static const char *const mode_names[] = {"constant", "reflect", "replicate"};
    int64_t before[MT_MAX_DIMS], after[MT_MAX_DIMS], oshape[MT_MAX_DIMS], *maps[MT_MAX_DIMS], *buf, total = 0;
    int64_t rows, r, idx[MT_MAX_DIMS];
    unsigned char vbytes[8];
    size_t es;
    int nd, i, k;
    mt__shape_dst dst;
    mt_status s;
    if (!out || !a || !a->data) return MT__FAIL(MT_ERR_ARGUMENT, "output or input is NULL or empty");
    if ((unsigned)mode > (unsigned)MT_PAD_REPLICATE) return MT__FAIL(MT_ERR_ARGUMENT, "unknown pad mode %d", (int)mode);
    nd = a->ndim;
    if (npad < 0 || npad % 2 || npad / 2 > nd || (npad && !pad))
        return MT__FAIL(MT_ERR_ARGUMENT, "pad has %d entries; it needs an even number, at most 2 * ndim = %d", npad,
                        2 * nd);
    for (i = 0; i < nd; i++) before[i] = after[i] = 0;
    for (k = 0; k < npad / 2; k++) {
        before[nd - 1 - k] = pad[2 * k];
        after[nd - 1 - k] = pad[2 * k + 1];
    }
    for (i = 0; i < nd; i++) {
        int64_t sz = a->shape[i];
        oshape[i] = sz + before[i] + after[i];
        if (oshape[i] < 0)
            return MT__FAIL(MT_ERR_SHAPE, "padding (%lld, %lld) of dim %d of size %lld gives a negative size",
                            (long long)before[i], (long long)after[i], i, (long long)sz);
        if (mode == MT_PAD_CONSTANT || (before[i] == 0 && after[i] == 0)) continue;
        if (before[i] < 0 || after[i] < 0)
            return MT__FAIL(MT_ERR_ARGUMENT, "%s padding (%lld, %lld) of dim %d must not be negative",
                            mode_names[mode], (long long)before[i], (long long)after[i], i);
        if (mode == MT_PAD_REFLECT && (before[i] >= sz || after[i] >= sz))
            return MT__FAIL(MT_ERR_ARGUMENT, "reflect padding (%lld, %lld) of dim %d must be smaller than its size %lld",
                            (long long)before[i], (long long)after[i], i, (long long)sz);
        if (mode == MT_PAD_REPLICATE && sz == 0)
            return MT__FAIL(MT_ERR_ARGUMENT, "replicate padding of dim %d needs a non-empty dim", i);
    }
    for (i = 0; i < nd; i++) total += oshape[i];
    buf = (int64_t *)MT_MALLOC((size_t)(total ? total : 1) * sizeof(int64_t));
    if (!buf) return MT__FAIL(MT_ERR_MEMORY, "cannot allocate %lld index entries", (long long)total);
    s = mt__shape_dst_begin("mt_pad", &dst, out, a->dtype, nd, oshape, &a, 1);
    if (s != MT_OK) {
        MT_FREE(buf);
        return s;
    }
    /* maps[i][j]: source index of output index j along dim i, -1 for the value */
    for (total = 0, i = 0; i < nd; i++) {
        int64_t j, sz = a->shape[i];
        maps[i] = buf + total;
        total += oshape[i];
        for (j = 0; j < oshape[i]; j++) {
            int64_t m = j - before[i];
            if (mode == MT_PAD_CONSTANT) {
                if (m < 0 || m >= sz) m = -1;
            } else if (mode == MT_PAD_REFLECT) {
                if (m < 0) m = -m;
                if (m >= sz) m = 2 * (sz - 1) - m;
            } else {
                if (m < 0) m = 0;
                if (m >= sz) m = sz - 1;
            }
            maps[i][j] = m;
        }
    }
    es = mt_dtype_size(a->dtype);
    mt__store(vbytes, a->dtype, value);
    if (nd == 0) {
        memcpy(dst.t->data, a->data, es);
    } else if (mt_numel(dst.t) > 0) {
        int64_t len = oshape[nd - 1], inner = a->stride[nd - 1];
        const int64_t *lmap = maps[nd - 1];
        /* constant mode: output [lo, hi) of a row comes from consecutive input */
        int64_t lo = before[nd - 1] > 0 ? before[nd - 1] : 0;
        int64_t hi = before[nd - 1] + a->shape[nd - 1] < len ? before[nd - 1] + a->shape[nd - 1] : len;
        rows = mt_numel(dst.t) / len;
        for (r = 0; r < rows; r++) {
            char *d = (char *)dst.t->data + r * len * (int64_t)es;
            const char *src = (const char *)a->data;
            int64_t off = 0, j;
            int inside = 1;
            mt__shape_row_index(r, nd, oshape, idx);
            for (i = 0; i < nd - 1; i++) {
                int64_t m = maps[i][idx[i]];
                if (m < 0) {
                    inside = 0;
                    break;
                }
                off += m * a->stride[i];
            }
            if (mode == MT_PAD_CONSTANT && inside && lo < hi) {
                for (j = 0; j < lo; j++) memcpy(d + j * (int64_t)es, vbytes, es);
                mt__shape_move(d + lo * (int64_t)es, 1, src + (off + (lo - before[nd - 1]) * inner) * (int64_t)es,
                               inner, hi - lo, es);
                for (j = hi; j < len; j++) memcpy(d + j * (int64_t)es, vbytes, es);
                continue;
            }
            for (j = 0; j < len; j++) {
                int64_t m = inside ? lmap[j] : -1;
                if (m < 0)
                    memcpy(d + j * (int64_t)es, vbytes, es);
                else
                    memcpy(d + j * (int64_t)es, src + (off + m * inner) * (int64_t)es, es);
            }
        }
    }
    MT_FREE(buf);
    return mt__shape_dst_end(&dst, out, MT_OK);
}

MTDEF mt_status mt_repeat(mt_tensor *out, const mt_tensor *a, int nreps, const int64_t *reps) {
    int64_t ishape[MT_MAX_DIMS], istride[MT_MAX_DIMS], oshape[MT_MAX_DIMS], idx[MT_MAX_DIMS], rows, r;
    size_t es;
    int lead, i;
    mt__shape_dst dst;
    mt_status s;
    memset(oshape, 0, sizeof oshape);
    if (!out || !a || !a->data) return MT__FAIL(MT_ERR_ARGUMENT, "output or input is NULL or empty");
    if (nreps < a->ndim || nreps > MT_MAX_DIMS || (nreps && !reps))
        return MT__FAIL(MT_ERR_ARGUMENT, "%d repeat counts for a %d-dim tensor; need between %d and %d", nreps,
                        a->ndim, a->ndim, MT_MAX_DIMS);
    lead = nreps - a->ndim;
    for (i = 0; i < nreps; i++) {
        if (reps[i] < 0) return MT__FAIL(MT_ERR_ARGUMENT, "reps[%d] = %lld is negative", i, (long long)reps[i]);
        ishape[i] = i < lead ? 1 : a->shape[i - lead];
        istride[i] = i < lead ? 0 : a->stride[i - lead];
        oshape[i] = ishape[i] * reps[i];
    }
    s = mt__shape_dst_begin("mt_repeat", &dst, out, a->dtype, nreps, oshape, &a, 1);
    if (s != MT_OK) return s;
    es = mt_dtype_size(a->dtype);
    if (nreps == 0) {
        memcpy(dst.t->data, a->data, es);
    } else if (mt_numel(dst.t) > 0) {
        int64_t len = oshape[nreps - 1], ilen = ishape[nreps - 1];
        rows = mt_numel(dst.t) / len;
        for (r = 0; r < rows; r++) {
            char *d = (char *)dst.t->data + r * len * (int64_t)es;
            const char *src;
            int64_t off = 0, j;
            mt__shape_row_index(r, nreps, oshape, idx);
            for (i = 0; i < nreps - 1; i++) off += (idx[i] % ishape[i]) * istride[i];
            src = (const char *)a->data + off * (int64_t)es;
            for (j = 0; j < len; j += ilen)
                mt__shape_move(d + j * (int64_t)es, 1, src, istride[nreps - 1], ilen, es);
        }
    }
    return mt__shape_dst_end(&dst, out, MT_OK);
}

/* Checks an int64 index tensor's values are in [0, size); `func` names the caller. */
static mt_status mt__shape_check_index(const char *func, const mt_tensor *index, int64_t size, int dim) {
    const int64_t *strides[1];
    int64_t r, j, off;
    mt__rows rows;
    if (mt_numel(index) == 0) return MT_OK;
    strides[0] = index->stride;
    mt__rows_init(&rows, index->ndim, index->shape, 1, strides);
    for (r = 0; r < rows.count; r++) {
        const int64_t *p;
        mt__rows_offsets(&rows, r, &off);
        p = (const int64_t *)index->data + off;
        for (j = 0; j < rows.len; j++) {
            int64_t v = p[j * rows.inner[0]];
            if (v < 0 || v >= size)
                return mt__fail(MT_ERR_ARGUMENT, func, "index %lld out of range for dim %d of size %lld", (long long)v,
                                dim, (long long)size);
        }
    }
    return MT_OK;
}

MTDEF mt_status mt_index_select(mt_tensor *out, const mt_tensor *a, int dim, const mt_tensor *index) {
    int64_t shape[MT_MAX_DIMS], n, k, istep;
    const mt_tensor *ins[2];
    size_t es;
    int d;
    mt__shape_dst dst;
    mt_status s;
    if (!out || !a || !a->data || !index || !index->data)
        return MT__FAIL(MT_ERR_ARGUMENT, "output, input or index is NULL or empty");
    if (index->dtype != MT_I64)
        return MT__FAIL(MT_ERR_DTYPE, "index must be int64, got %s", mt_dtype_name(index->dtype));
    if (index->ndim > 1) return MT__FAIL(MT_ERR_SHAPE, "index must be 1-d, got %d dims", index->ndim);
    if (a->ndim == 0) return MT__FAIL(MT_ERR_SHAPE, "cannot index_select a zero-dimensional tensor");
    d = mt__norm_dim(dim, a->ndim);
    if (d < 0 || d >= a->ndim) return MT__FAIL(MT_ERR_ARGUMENT, "dim %d out of range for %d dims", dim, a->ndim);
    s = mt__shape_check_index("mt_index_select", index, a->shape[d], d);
    if (s != MT_OK) return s;
    n = mt_numel(index);
    istep = index->ndim ? index->stride[0] : 0;
    memcpy(shape, a->shape, sizeof shape);
    shape[d] = n;
    ins[0] = a;
    ins[1] = index;
    s = mt__shape_dst_begin("mt_index_select", &dst, out, a->dtype, a->ndim, shape, ins, 2);
    if (s != MT_OK) return s;
    es = mt_dtype_size(a->dtype);
    shape[d] = 1;
    for (k = 0; k < n; k++) {
        int64_t v = ((const int64_t *)index->data)[k * istep];
        mt__shape_copy_geom((char *)dst.t->data + k * dst.t->stride[d] * (int64_t)es, dst.t->stride,
                            (const char *)a->data + v * a->stride[d] * (int64_t)es, a->stride, a->ndim, shape, es);
    }
    return mt__shape_dst_end(&dst, out, MT_OK);
}

MTDEF mt_status mt_gather(mt_tensor *out, const mt_tensor *a, int dim, const mt_tensor *index) {
    int64_t astride[MT_MAX_DIMS], r, off[2], size, step;
    const int64_t *strides[2];
    const mt_tensor *ins[2];
    mt__rows rows;
    size_t es;
    int d, k;
    mt__shape_dst dst;
    mt_status s;
    if (!out || !a || !a->data || !index || !index->data)
        return MT__FAIL(MT_ERR_ARGUMENT, "output, input or index is NULL or empty");
    if (index->dtype != MT_I64)
        return MT__FAIL(MT_ERR_DTYPE, "index must be int64, got %s", mt_dtype_name(index->dtype));
    d = mt__norm_dim(dim, a->ndim ? a->ndim : 1); /* a 0-d tensor takes dim 0 or -1 */
    if (d < 0 || d >= (a->ndim ? a->ndim : 1))
        return MT__FAIL(MT_ERR_ARGUMENT, "dim %d out of range for %d dims", dim, a->ndim);
    if (index->ndim != a->ndim)
        return MT__FAIL(MT_ERR_SHAPE, "index has %d dims, input has %d; they must match", index->ndim, a->ndim);
    for (k = 0; k < a->ndim; k++)
        if (k != d && index->shape[k] > a->shape[k]) {
            char x[160], y[160];
            mt__shape_fmt(x, sizeof x, index->ndim, index->shape);
            mt__shape_fmt(y, sizeof y, a->ndim, a->shape);
            return MT__FAIL(MT_ERR_SHAPE, "index %s is larger than input %s in dim %d", x, y, k);
        }
    size = a->ndim ? a->shape[d] : 1;
    step = a->ndim ? a->stride[d] : 0;
    s = mt__shape_check_index("mt_gather", index, size, d);
    if (s != MT_OK) return s;
    ins[0] = a;
    ins[1] = index;
    s = mt__shape_dst_begin("mt_gather", &dst, out, a->dtype, index->ndim, index->shape, ins, 2);
    if (s != MT_OK) return s;
    es = mt_dtype_size(a->dtype);
    if (mt_numel(index) > 0) {
        for (k = 0; k < a->ndim; k++) astride[k] = k == d ? 0 : a->stride[k];
        strides[0] = index->stride;
        strides[1] = astride;
        mt__rows_init(&rows, index->ndim, index->shape, 2, strides);
        for (r = 0; r < rows.count; r++) {
            char *o = (char *)dst.t->data + r * rows.len * (int64_t)es;
            const int64_t *ip;
            const char *ap;
            int64_t j;
            mt__rows_offsets(&rows, r, off);
            ip = (const int64_t *)index->data + off[0];
            ap = (const char *)a->data + off[1] * (int64_t)es;
            for (j = 0; j < rows.len; j++)
                memcpy(o + j * (int64_t)es, ap + (j * rows.inner[1] + ip[j * rows.inner[0]] * step) * (int64_t)es, es);
        }
    }
    return mt__shape_dst_end(&dst, out, MT_OK);
}

/* Pixel (un)shuffle as one strided copy: the 6-d walk (B, C, ., ., ., .)
   over the contiguous output with matching input strides. */
static mt_status mt__shape_pixel(const char *func, mt_tensor *out, const mt_tensor *x, int r, int shuffle) {
    int64_t oshape[MT_MAX_DIMS], shape6[6], ost[6], ist[6], B = 1, sb = 0, C, H, W, sc, sh, sw, rr;
    mt_tensor xc;
    int nd, i;
    mt__shape_dst dst;
    mt_status s;
    const mt_tensor *src;
    if (!out || !x || !x->data) return mt__fail(MT_ERR_ARGUMENT, func, "output or input is NULL or empty");
    if (r < 1) return mt__fail(MT_ERR_ARGUMENT, func, "factor %d must be positive", r);
    nd = x->ndim;
    if (nd < 3) return mt__fail(MT_ERR_SHAPE, func, "input needs at least 3 dims (*, C, H, W), got %d", nd);
    rr = (int64_t)r * r;
    C = x->shape[nd - 3];
    H = x->shape[nd - 2];
    W = x->shape[nd - 1];
    memcpy(oshape, x->shape, sizeof oshape);
    if (shuffle) {
        if (C % rr)
            return mt__fail(MT_ERR_SHAPE, func, "channels %lld are not divisible by factor^2 = %lld", (long long)C,
                            (long long)rr);
        oshape[nd - 3] = C / rr;
        oshape[nd - 2] = H * r;
        oshape[nd - 1] = W * r;
    } else {
        if (H % r || W % r)
            return mt__fail(MT_ERR_SHAPE, func, "height %lld and width %lld must be divisible by factor %d",
                            (long long)H, (long long)W, r);
        oshape[nd - 3] = C * rr;
        oshape[nd - 2] = H / r;
        oshape[nd - 1] = W / r;
    }
    memset(&xc, 0, sizeof xc);
    if (nd > 4) { /* merge the batch dims */
        s = mt_contiguous(&xc, x);
        if (s != MT_OK) return s;
        src = &xc;
        for (i = 0; i < nd - 3; i++) B *= x->shape[i];
        sb = src->stride[nd - 4];
    } else {
        src = x;
        if (nd == 4) {
            B = x->shape[0];
            sb = x->stride[0];
        }
    }
    s = mt__shape_dst_begin(func, &dst, out, x->dtype, nd, oshape, &x, 1);
    if (s != MT_OK) {
        mt_release(&xc);
        return s;
    }
    sc = src->stride[nd - 3];
    sh = src->stride[nd - 2];
    sw = src->stride[nd - 1];
    if (shuffle) { /* out (B, C/rr, H, i, W, j) = x (b, c*rr + i*r + j, h, w) */
        int64_t c = C / rr;
        shape6[0] = B, shape6[1] = c, shape6[2] = H, shape6[3] = r, shape6[4] = W, shape6[5] = r;
        ist[0] = sb, ist[1] = rr * sc, ist[2] = sh, ist[3] = r * sc, ist[4] = sw, ist[5] = sc;
    } else { /* out (B, C, i, j, H/r, W/r) = x (b, c, h*r + i, w*r + j) */
        shape6[0] = B, shape6[1] = C, shape6[2] = r, shape6[3] = r, shape6[4] = H / r, shape6[5] = W / r;
        ist[0] = sb, ist[1] = sc, ist[2] = sh, ist[3] = sw, ist[4] = r * sh, ist[5] = r * sw;
    }
    ost[5] = 1;
    for (i = 4; i >= 0; i--) ost[i] = ost[i + 1] * shape6[i + 1];
    mt__shape_copy_geom(dst.t->data, ost, src->data, ist, 6, shape6, mt_dtype_size(x->dtype));
    mt_release(&xc);
    return mt__shape_dst_end(&dst, out, MT_OK);
}

MTDEF mt_status mt_pixel_shuffle(mt_tensor *out, const mt_tensor *x, int r) {
    return mt__shape_pixel("mt_pixel_shuffle", out, x, r, 1);
}

MTDEF mt_status mt_pixel_unshuffle(mt_tensor *out, const mt_tensor *x, int r) {
    return mt__shape_pixel("mt_pixel_unshuffle", out, x, r, 0);
}

/* ======================================================================
   IMPLEMENTATION SECTION layers
   ====================================================================== */

/* Sum of n floats (or of their squared distances to `center` when `sq`) in
   double: eight interleaved partial sums, which compilers turn into vector
   adds, combined in a fixed order. */
static double mt__layers_sum(const float *p, int64_t n, double center, int sq) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, t = 0;
    int64_t i;
    int l;
    if (sq) {
        for (i = 0; i + 8 <= n; i += 8)
            for (l = 0; l < 8; l++) {
                double d = (double)p[i + l] - center;
                acc[l] += d * d;
            }
        for (; i < n; i++) t += ((double)p[i] - center) * ((double)p[i] - center);
    } else {
        for (i = 0; i + 8 <= n; i += 8)
            for (l = 0; l < 8; l++) acc[l] += (double)p[i + l];
        for (; i < n; i++) t += (double)p[i];
    }
    return (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) + t;
}

/* Mean and 1 / sqrt(biased variance + eps) of n > 0 floats: two passes
   (mean, then squared distances to it), so a large mean costs no accuracy. */
static void mt__layers_moments(const float *p, int64_t n, double eps, double *mean, double *rstd) {
    double m = mt__layers_sum(p, n, 0, 0) / (double)n;
    *mean = m;
    *rstd = 1.0 / sqrt(mt__layers_sum(p, n, m, 1) / (double)n + eps);
}

/* y = ((x - m) * s) * w + b over n floats, w and b per-element arrays or
   NULL (for 1 and for `h`). Float arithmetic, but the mean is subtracted in
   two parts (its float value, then the rest), so x - m keeps its precision
   even when the mean is large next to the spread. Each block of 8 is loaded
   before it is stored, so compilers vectorize it without proving x and y
   apart. */
static void mt__layers_affine(float *y, const float *x, int64_t n, double m, double s, const float *w,
                              const float *b, double h) {
    float mh = (float)m, ml = (float)(m - (double)mh), sf = (float)s, hf = (float)h, t[8];
    int64_t i;
    int l;
    for (i = 0; i + 8 <= n; i += 8) {
        for (l = 0; l < 8; l++) t[l] = ((x[i + l] - mh) - ml) * sf;
        if (w)
            for (l = 0; l < 8; l++) t[l] *= w[i + l];
        if (b)
            for (l = 0; l < 8; l++) t[l] += b[i + l];
        else
            for (l = 0; l < 8; l++) t[l] += hf;
        for (l = 0; l < 8; l++) y[i + l] = t[l];
    }
    for (; i < n; i++) {
        float v = ((x[i] - mh) - ml) * sf;
        if (w) v *= w[i];
        y[i] = b ? v + b[i] : v + hf;
    }
}

/* Items per mt_parallel_for task so that a task does about `work` elements. */
static int64_t mt__layers_grain(int64_t per_item, int64_t work) {
    return per_item >= work ? 1 : work / (per_item > 0 ? per_item : 1);
}

static mt_status mt__layers_check_x(const char *func, const mt_tensor *out, const mt_tensor *x, int min_ndim) {
    if (!out || !x || !x->data) return mt__fail(MT_ERR_ARGUMENT, func, "output or input is NULL or empty");
    if (x->dtype != MT_F32)
        return mt__fail(MT_ERR_DTYPE, func, "input is %s; this kernel computes in float32 (convert with mt_to_dtype)",
                        mt_dtype_name(x->dtype));
    if (x->ndim < min_ndim) {
        char a[160];
        mt__shape_fmt(a, sizeof a, x->ndim, x->shape);
        return mt__fail(MT_ERR_SHAPE, func, "input %s needs at least %d dims", a, min_ndim);
    }
    return MT_OK;
}

/* An optional float32 parameter of the given shape, made contiguous in *pc. */
static mt_status mt__layers_param(const char *func, const char *name, const mt_tensor *p, int ndim,
                                  const int64_t *shape, mt_tensor *pc, const float **data) {
    *data = NULL;
    if (!p || !p->data) return MT_OK;
    if (p->dtype != MT_F32)
        return mt__fail(MT_ERR_DTYPE, func, "%s is %s, expected float32", name, mt_dtype_name(p->dtype));
    if (!mt__shape_equal(p->ndim, p->shape, ndim, shape)) {
        char a[160], b[160];
        mt__shape_fmt(a, sizeof a, p->ndim, p->shape);
        mt__shape_fmt(b, sizeof b, ndim, shape);
        return mt__fail(MT_ERR_SHAPE, func, "%s has shape %s, expected %s", name, a, b);
    }
    if (mt_contiguous(pc, p) != MT_OK) return mt__fail(MT_ERR_MEMORY, func, "cannot copy %s", name);
    *data = (const float *)pc->data;
    return MT_OK;
}

/* ---- norms ------------------------------------------------------------ */

typedef struct mt__layers_norm {
    const float *x, *w, *b;
    float *y;
    int64_t C, G, HW; /* group norm: channels, groups, elements per channel */
    int64_t D;        /* elements normalized together (group or row) */
    double eps;
} mt__layers_norm;

/* Group norm, items are (n, g) pairs; each group is contiguous. */
static void mt__layers_group_norm_run(void *ctx, int64_t begin, int64_t end) {
    const mt__layers_norm *k = (const mt__layers_norm *)ctx;
    int64_t t, cg = k->C / k->G;
    for (t = begin; t < end; t++) {
        int64_t g = t % k->G, base = t * k->D, c;
        double mean, rstd;
        mt__layers_moments(k->x + base, k->D, k->eps, &mean, &rstd);
        for (c = 0; c < cg; c++) {
            int64_t ch = g * cg + c;
            double scale = rstd * (k->w ? k->w[ch] : 1.0), shift = k->b ? k->b[ch] : 0.0;
            mt__layers_affine(k->y + base + c * k->HW, k->x + base + c * k->HW, k->HW, mean, scale, NULL, NULL, shift);
        }
    }
}

/* Layer norm, items are rows of D elements. */
static void mt__layers_layer_norm_run(void *ctx, int64_t begin, int64_t end) {
    const mt__layers_norm *k = (const mt__layers_norm *)ctx;
    int64_t r;
    for (r = begin; r < end; r++) {
        const float *xp = k->x + r * k->D;
        float *yp = k->y + r * k->D;
        double mean, rstd;
        mt__layers_moments(xp, k->D, k->eps, &mean, &rstd);
        mt__layers_affine(yp, xp, k->D, mean, rstd, k->w, k->b, 0.0);
    }
}

/* RMS norm, items are rows of D elements: y = (x * r) * w in float as
   diffusers computes it, r = 1 / sqrt(mean(x^2) + eps) from a double sum. */
static void mt__layers_rms_norm_run(void *ctx, int64_t begin, int64_t end) {
    const mt__layers_norm *k = (const mt__layers_norm *)ctx;
    int64_t r, j;
    for (r = begin; r < end; r++) {
        const float *xp = k->x + r * k->D;
        float *yp = k->y + r * k->D;
        float rs = (float)(1.0 / sqrt(mt__layers_sum(xp, k->D, 0, 1) / (double)k->D + k->eps));
        for (j = 0; j + 8 <= k->D; j += 8) { /* blocks of 8 as in mt__layers_affine */
            float t[8];
            int l;
            for (l = 0; l < 8; l++) t[l] = xp[j + l] * rs;
            if (k->w)
                for (l = 0; l < 8; l++) t[l] *= k->w[j + l];
            for (l = 0; l < 8; l++) yp[j + l] = t[l];
        }
        for (; j < k->D; j++) yp[j] = k->w ? (xp[j] * rs) * k->w[j] : xp[j] * rs;
    }
}

/* Shared driver of the three norms: x made contiguous, parameters checked,
   the result written through mt__shape_dst_begin / mt__shape_dst_end. */
static mt_status mt__layers_norm_apply(const char *func, mt_tensor *out, const mt_tensor *x, int pndim,
                                       const int64_t *pshape, const mt_tensor *weight, const mt_tensor *bias,
                                       mt__layers_norm *k, int64_t items, mt_parallel_fn run) {
    mt_tensor xc, wc, bc;
    const mt_tensor *ins[3];
    mt__shape_dst dst;
    mt_status s;
    memset(&xc, 0, sizeof xc);
    memset(&wc, 0, sizeof wc);
    memset(&bc, 0, sizeof bc);
    s = mt__layers_param(func, "weight", weight, pndim, pshape, &wc, &k->w);
    if (s == MT_OK) s = mt__layers_param(func, "bias", bias, pndim, pshape, &bc, &k->b);
    if (s == MT_OK && mt_contiguous(&xc, x) != MT_OK) s = mt__fail(MT_ERR_MEMORY, func, "cannot copy the input");
    if (s == MT_OK) {
        ins[0] = &xc;
        ins[1] = &wc;
        ins[2] = &bc;
        s = mt__shape_dst_begin(func, &dst, out, MT_F32, x->ndim, x->shape, ins, 3);
        if (s == MT_OK) {
            k->x = (const float *)xc.data;
            k->y = (float *)dst.t->data;
            if (items > 0 && k->D > 0) mt_parallel_for(items, mt__layers_grain(k->D, 32768), run, k);
            s = mt__shape_dst_end(&dst, out, MT_OK);
        }
    }
    mt_release(&xc);
    mt_release(&wc);
    mt_release(&bc);
    return s;
}

MTDEF mt_status mt_group_norm(mt_tensor *out, const mt_tensor *x, int num_groups, const mt_tensor *weight,
                              const mt_tensor *bias, double eps) {
    mt__layers_norm k;
    int64_t N, C, i;
    mt_status s = mt__layers_check_x("mt_group_norm", out, x, 2);
    if (s != MT_OK) return s;
    N = x->shape[0];
    C = x->shape[1];
    if (num_groups <= 0 || C % num_groups)
        return MT__FAIL(MT_ERR_SHAPE, "num_groups = %d must be positive and divide the %lld channels", num_groups,
                        (long long)C);
    if (!(eps >= 0)) return MT__FAIL(MT_ERR_ARGUMENT, "eps = %g must be >= 0", eps);
    memset(&k, 0, sizeof k);
    k.C = C;
    k.G = num_groups;
    k.HW = 1;
    for (i = 2; i < x->ndim; i++) k.HW *= x->shape[i];
    k.D = C / num_groups * k.HW;
    k.eps = eps;
    return mt__layers_norm_apply("mt_group_norm", out, x, 1, &x->shape[1], weight, bias, &k, N * num_groups,
                                 mt__layers_group_norm_run);
}

MTDEF mt_status mt_layer_norm(mt_tensor *out, const mt_tensor *x, int normalized_ndim, const mt_tensor *weight,
                              const mt_tensor *bias, double eps) {
    mt__layers_norm k;
    int64_t D = 1;
    int i;
    mt_status s = mt__layers_check_x("mt_layer_norm", out, x, 1);
    if (s != MT_OK) return s;
    if (normalized_ndim < 1 || normalized_ndim > x->ndim)
        return MT__FAIL(MT_ERR_ARGUMENT, "normalized_ndim = %d must be in [1, %d] for a %d-dim input",
                        normalized_ndim, x->ndim, x->ndim);
    if (!(eps >= 0)) return MT__FAIL(MT_ERR_ARGUMENT, "eps = %g must be >= 0", eps);
    for (i = x->ndim - normalized_ndim; i < x->ndim; i++) D *= x->shape[i];
    memset(&k, 0, sizeof k);
    k.D = D;
    k.eps = eps;
    return mt__layers_norm_apply("mt_layer_norm", out, x, normalized_ndim, &x->shape[x->ndim - normalized_ndim],
                                 weight, bias, &k, D ? mt_numel(x) / D : 0, mt__layers_layer_norm_run);
}

MTDEF mt_status mt_rms_norm(mt_tensor *out, const mt_tensor *x, const mt_tensor *weight, double eps) {
    mt__layers_norm k;
    mt_status s = mt__layers_check_x("mt_rms_norm", out, x, 1);
    if (s != MT_OK) return s;
    if (!(eps >= 0)) return MT__FAIL(MT_ERR_ARGUMENT, "eps = %g must be >= 0", eps);
    memset(&k, 0, sizeof k);
    k.D = x->shape[x->ndim - 1];
    k.eps = eps;
    return mt__layers_norm_apply("mt_rms_norm", out, x, 1, &x->shape[x->ndim - 1], weight, NULL, &k,
                                 k.D ? mt_numel(x) / k.D : 0, mt__layers_rms_norm_run);
}

/* ---- interpolation ---------------------------------------------------- */

/* Source indices (as element offsets, times `stride`) and weights along one
   axis, with torch 1.13's arithmetic (aten/native/UpSample.h): float
   scales, the bilinear source index in double, float weights. */
static void mt__layers_interp_axis(int64_t in, int64_t out, mt_interp_mode mode, int align, int64_t stride,
                                   int64_t *i0, int64_t *i1, float *l0, float *l1) {
    float scale = (float)in / (float)out;
    int64_t i, a, b;
    for (i = 0; i < out; i++) {
        float w1 = 0.0f;
        if (mode == MT_INTERP_NEAREST) {
            if (out == in)
                a = i;
            else if (out == 2 * in)
                a = i >> 1;
            else
                a = (int64_t)floorf((float)i * scale);
            if (a > in - 1) a = in - 1;
            b = a;
        } else if (mode == MT_INTERP_NEAREST_EXACT) {
            a = (int64_t)floorf((float)(((double)i + 0.5) * (double)scale));
            if (a > in - 1) a = in - 1;
            b = a;
        } else if (out == in) {
            a = b = i;
        } else {
            double src;
            if (align) {
                float s = out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
                src = (double)s * (double)i;
            } else {
                src = (double)scale * ((double)i + 0.5) - 0.5;
                if (src < 0) src = 0;
            }
            a = (int64_t)src;
            b = a + (a < in - 1 ? 1 : 0);
            w1 = (float)(src - (double)a);
        }
        i0[i] = a * stride;
        i1[i] = b * stride;
        l1[i] = w1;
        l0[i] = 1.0f - w1;
    }
}

typedef struct mt__layers_plane {
    const float *x;
    float *y;
    int64_t C, H, W, OH, OW;  /* channels, input and output plane sizes */
    int64_t sn, sc, sh, sw;   /* input strides */
    /* interpolation tables */
    const int64_t *h0, *h1, *w0, *w1;
    const float *lh0, *lh1, *lw0, *lw1;
    int bilinear;
    /* pooling */
    int kh, kw, dh, dw, ph, pw, max;
} mt__layers_plane;

static void mt__layers_interp_run(void *ctx, int64_t begin, int64_t end) {
    const mt__layers_plane *k = (const mt__layers_plane *)ctx;
    int64_t p, oh, ow;
    for (p = begin; p < end; p++) {
        const float *src = k->x + (p / k->C) * k->sn + (p % k->C) * k->sc;
        float *dst = k->y + p * k->OH * k->OW;
        for (oh = 0; oh < k->OH; oh++, dst += k->OW) {
            const float *r0 = src + k->h0[oh], *r1 = src + k->h1[oh];
            if (!k->bilinear) {
                for (ow = 0; ow < k->OW; ow++) dst[ow] = r0[k->w0[ow]];
            } else {
                float a = k->lh0[oh], b = k->lh1[oh];
                for (ow = 0; ow < k->OW; ow++) {
                    float t0 = r0[k->w0[ow]] * k->lw0[ow] + r0[k->w1[ow]] * k->lw1[ow];
                    float t1 = r1[k->w0[ow]] * k->lw0[ow] + r1[k->w1[ow]] * k->lw1[ow];
                    dst[ow] = t0 * a + t1 * b;
                }
            }
        }
    }
}

MTDEF mt_status mt_interpolate(mt_tensor *out, const mt_tensor *x, int64_t out_h, int64_t out_w,
                               mt_interp_mode mode, int align_corners) {
    static const char *const mode_names[] = {"nearest", "nearest-exact", "bilinear"};
    int64_t oshape[4], *ibuf;
    float *fbuf;
    mt__layers_plane k;
    mt__shape_dst dst;
    mt_status s = mt__layers_check_x("mt_interpolate", out, x, 4);
    if (s != MT_OK) return s;
    if (x->ndim != 4) {
        char a[160];
        mt__shape_fmt(a, sizeof a, x->ndim, x->shape);
        return MT__FAIL(MT_ERR_SHAPE, "input %s must be 4-d (N, C, H, W)", a);
    }
    if ((unsigned)mode > (unsigned)MT_INTERP_BILINEAR)
        return MT__FAIL(MT_ERR_ARGUMENT, "unknown interpolation mode %d", (int)mode);
    if (align_corners && mode != MT_INTERP_BILINEAR)
        return MT__FAIL(MT_ERR_ARGUMENT, "align_corners applies to bilinear only, not to %s", mode_names[mode]);
    if (out_h <= 0 || out_w <= 0 || x->shape[2] <= 0 || x->shape[3] <= 0)
        return MT__FAIL(MT_ERR_SHAPE, "input (%lld, %lld) and output (%lld, %lld) sizes must be positive",
                        (long long)x->shape[2], (long long)x->shape[3], (long long)out_h, (long long)out_w);
    memset(&k, 0, sizeof k);
    k.C = x->shape[1];
    k.H = x->shape[2];
    k.W = x->shape[3];
    k.OH = out_h;
    k.OW = out_w;
    k.sn = x->stride[0];
    k.sc = x->stride[1];
    k.sh = x->stride[2];
    k.sw = x->stride[3];
    k.bilinear = mode == MT_INTERP_BILINEAR;
    oshape[0] = x->shape[0];
    oshape[1] = k.C;
    oshape[2] = out_h;
    oshape[3] = out_w;
    if (out_h > (int64_t)1 << 40 || out_w > (int64_t)1 << 40)
        return MT__FAIL(MT_ERR_SHAPE, "output size (%lld, %lld) too large", (long long)out_h, (long long)out_w);
    ibuf = (int64_t *)MT_MALLOC((size_t)(out_h + out_w) * 2 * sizeof(int64_t));
    fbuf = (float *)MT_MALLOC((size_t)(out_h + out_w) * 2 * sizeof(float));
    if (!ibuf || !fbuf) {
        MT_FREE(ibuf);
        MT_FREE(fbuf);
        return MT__FAIL(MT_ERR_MEMORY, "cannot allocate index tables for (%lld, %lld)", (long long)out_h,
                        (long long)out_w);
    }
    s = mt__shape_dst_begin("mt_interpolate", &dst, out, MT_F32, 4, oshape, &x, 1);
    if (s == MT_OK) {
        mt__layers_interp_axis(k.H, out_h, mode, align_corners, k.sh, ibuf, ibuf + out_h, fbuf, fbuf + out_h);
        mt__layers_interp_axis(k.W, out_w, mode, align_corners, k.sw, ibuf + 2 * out_h, ibuf + 2 * out_h + out_w,
                               fbuf + 2 * out_h, fbuf + 2 * out_h + out_w);
        k.h0 = ibuf;
        k.h1 = ibuf + out_h;
        k.w0 = ibuf + 2 * out_h;
        k.w1 = ibuf + 2 * out_h + out_w;
        k.lh0 = fbuf;
        k.lh1 = fbuf + out_h;
        k.lw0 = fbuf + 2 * out_h;
        k.lw1 = fbuf + 2 * out_h + out_w;
        k.x = (const float *)x->data;
        k.y = (float *)dst.t->data;
        if (mt_numel(dst.t) > 0)
            mt_parallel_for(oshape[0] * k.C, mt__layers_grain(out_h * out_w * (k.bilinear ? 4 : 1), 32768),
                            mt__layers_interp_run, &k);
        s = mt__shape_dst_end(&dst, out, MT_OK);
    }
    MT_FREE(ibuf);
    MT_FREE(fbuf);
    return s;
}

/* ---- pooling ---------------------------------------------------------- */

/* As torch 1.13's CPU kernels: a float sum over the window in row order
   divided by the window size clipped to the padded input, or the maximum
   with NaN winning. The output row is the accumulator: for each input row
   and kernel column, one pass adds (or maxes) into every output of the row,
   so each output still sees its window in torch's order. */
static void mt__layers_pool_run(void *ctx, int64_t begin, int64_t end) {
    const mt__layers_plane *k = (const mt__layers_plane *)ctx;
    int64_t p, oh, ow, ih, j;
    for (p = begin; p < end; p++) {
        const float *src = k->x + (p / k->C) * k->sn + (p % k->C) * k->sc;
        for (oh = 0; oh < k->OH; oh++) {
            float *d = k->y + (p * k->OH + oh) * k->OW;
            int64_t h0 = oh * k->dh - k->ph, h1 = h0 + k->kh, a0, a1;
            if (h1 > k->H + k->ph) h1 = k->H + k->ph;
            a0 = h0 < 0 ? 0 : h0;
            a1 = h1 > k->H ? k->H : h1;
            for (ow = 0; ow < k->OW; ow++) d[ow] = k->max ? -INFINITY : 0.0f;
            for (ih = a0; ih < a1; ih++) {
                const float *row = src + ih * k->sh;
                for (j = 0; j < k->kw; j++) {
                    /* outputs [lo, hi) read input column ow * dw + off */
                    int64_t off = j - k->pw, lo = off >= 0 ? 0 : (-off + k->dw - 1) / k->dw;
                    int64_t hi = k->W - 1 - off >= 0 ? (k->W - 1 - off) / k->dw + 1 : 0;
                    const float *q = row + off * k->sw;
                    int64_t step = k->dw * k->sw;
                    if (hi > k->OW) hi = k->OW;
                    if (k->max) {
                        for (ow = lo; ow < hi; ow++) {
                            float v = q[ow * step];
                            d[ow] = v > d[ow] || v != v ? v : d[ow];
                        }
                    } else {
                        for (ow = lo; ow < hi; ow++) d[ow] += q[ow * step];
                    }
                }
            }
            if (!k->max)
                for (ow = 0; ow < k->OW; ow++) {
                    int64_t w0 = ow * k->dw - k->pw, w1 = w0 + k->kw;
                    if (w1 > k->W + k->pw) w1 = k->W + k->pw;
                    d[ow] = d[ow] / (float)((h1 - h0) * (w1 - w0));
                }
        }
    }
}

static mt_status mt__layers_pool(const char *func, mt_tensor *out, const mt_tensor *x, int kh, int kw, int sh,
                                 int sw, int ph, int pw, int max) {
    int64_t oshape[4];
    int nd, i;
    mt__layers_plane k;
    mt__shape_dst dst;
    mt_status s = mt__layers_check_x(func, out, x, 3);
    if (s != MT_OK) return s;
    nd = x->ndim;
    if (nd > 4) {
        char a[160];
        mt__shape_fmt(a, sizeof a, x->ndim, x->shape);
        return mt__fail(MT_ERR_SHAPE, func, "input %s must be (N, C, H, W) or (C, H, W)", a);
    }
    if (sh == 0) sh = kh;
    if (sw == 0) sw = kw;
    if (kh <= 0 || kw <= 0 || sh <= 0 || sw <= 0)
        return mt__fail(MT_ERR_ARGUMENT, func, "kernel (%d, %d) and stride (%d, %d) must be positive", kh, kw, sh, sw);
    if (ph < 0 || pw < 0 || ph > kh / 2 || pw > kw / 2)
        return mt__fail(MT_ERR_ARGUMENT, func, "padding (%d, %d) must be between 0 and half the kernel (%d, %d)", ph,
                        pw, kh, kw);
    memset(&k, 0, sizeof k);
    k.C = x->shape[nd - 3];
    k.H = x->shape[nd - 2];
    k.W = x->shape[nd - 1];
    if (k.H + 2 * ph < kh || k.W + 2 * pw < kw)
        return mt__fail(MT_ERR_SHAPE, func, "input %lldx%lld padded by (%d, %d) is smaller than the kernel %dx%d",
                        (long long)k.H, (long long)k.W, ph, pw, kh, kw);
    k.OH = (k.H + 2 * ph - kh) / sh + 1;
    k.OW = (k.W + 2 * pw - kw) / sw + 1;
    k.sn = nd == 4 ? x->stride[0] : 0;
    k.sc = x->stride[nd - 3];
    k.sh = x->stride[nd - 2];
    k.sw = x->stride[nd - 1];
    k.kh = kh;
    k.kw = kw;
    k.dh = sh;
    k.dw = sw;
    k.ph = ph;
    k.pw = pw;
    k.max = max;
    for (i = 0; i < nd - 2; i++) oshape[i] = x->shape[i];
    oshape[nd - 2] = k.OH;
    oshape[nd - 1] = k.OW;
    s = mt__shape_dst_begin(func, &dst, out, MT_F32, nd, oshape, &x, 1);
    if (s != MT_OK) return s;
    k.x = (const float *)x->data;
    k.y = (float *)dst.t->data;
    if (mt_numel(dst.t) > 0)
        mt_parallel_for(mt_numel(dst.t) / (k.OH * k.OW), mt__layers_grain(k.OH * k.OW * kh * kw, 65536),
                        mt__layers_pool_run, &k);
    return mt__shape_dst_end(&dst, out, MT_OK);
}

MTDEF mt_status mt_avg_pool2d(mt_tensor *out, const mt_tensor *x, int kernel_h, int kernel_w, int stride_h,
                              int stride_w, int pad_h, int pad_w) {
    return mt__layers_pool("mt_avg_pool2d", out, x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, 0);
}

MTDEF mt_status mt_max_pool2d(mt_tensor *out, const mt_tensor *x, int kernel_h, int kernel_w, int stride_h,
                              int stride_w, int pad_h, int pad_w) {
    return mt__layers_pool("mt_max_pool2d", out, x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, 1);
}

/* ======================================================================
   IMPLEMENTATION SECTION nn
   ====================================================================== */

/* ======================================================================
   IMPLEMENTATION SECTION schedulers
   ====================================================================== */

/* ======================================================================
   IMPLEMENTATION SECTION files
   ====================================================================== */

#endif /* MODULAR_TENSOR_IMPLEMENTATION_DONE */
#endif /* MODULAR_TENSOR_IMPLEMENTATION */

/*
------------------------------------------------------------------------------
MIT License
Copyright (c) 2026 the modular.h authors
Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:
The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
------------------------------------------------------------------------------
*/
