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

/* The heavy kernels run on one process-wide pool of worker threads (POSIX
   threads). It is the library's only mutable global state besides the SIMD
   choice of the nn section: it starts lazily on the first parallel call,
   holds mt_get_num_threads() - 1 workers (the calling thread is the last
   one), and is stopped by mt_threads_shutdown() or at process exit.

   Several user threads may call kernels at the same time: one of them gets
   the pool for its call, the others run their call on their own thread
   (serially, same results). A kernel called from inside a parallel region
   also runs inline. Results never depend on the thread count or on which
   thread ran what: work is split by output and every reduction has a fixed
   order. Define MT_NO_THREADS to build without threads (all calls serial). */

/* Threads used by the heavy kernels: n <= 0 means one per online core (the
   default). Takes effect at the next parallel call. */
MTDEF void mt_set_num_threads(int n);
MTDEF int mt_get_num_threads(void);
/* Runs fn(ctx, begin, end) over disjoint ranges covering [0, n), each at
   least `grain` items long (but the last), on the pool; returns when all are
   done. The split never changes what an item computes. */
typedef void (*mt_parallel_fn)(void *ctx, int64_t begin, int64_t end);
MTDEF void mt_parallel_for(int64_t n, int64_t grain, mt_parallel_fn fn, void *ctx);
/* Stops and joins the worker threads and frees the pool (waits for a call in
   progress). Safe to call at any time, also twice; the next parallel call
   starts the pool again. Runs automatically at exit (atexit). */
MTDEF void mt_threads_shutdown(void);

/* ======================================================================
   SECTION random: PyTorch-compatible generator
   ====================================================================== */

/* ======================================================================
   SECTION ops: element-wise, reductions, softmax, printing
   ====================================================================== */

/* ======================================================================
   SECTION shape: concat, stack, split, pad, repeat, gather
   ====================================================================== */

/* ======================================================================
   SECTION layers: norms, resampling, pooling
   ====================================================================== */

/* ======================================================================
   SECTION nn: matmul, conv, attention
   ====================================================================== */

/* All nn kernels take float32 tensors of any strides (views such as
   mt_view_transpose are read in place, without a copy) and follow the
   output convention above; `out` must not share storage with an input
   unless it is stated otherwise (the kernels then compute into a temporary).
   Results are bit-identical for every thread count; the SIMD paths (below)
   may differ from each other in the last bits. */

/* SIMD path used by the nn kernels. MT_SIMD_AUTO (the default) takes the
   best the CPU and the OS support, found once from CPUID and XGETBV; no
   compiler flag is needed (x86 paths are compiled with target attributes).
   Forcing a path the machine lacks returns MT_ERR_UNSUPPORTED. The choice is
   process-wide, like the thread pool; it exists for tests and benchmarks. */
typedef enum mt_simd { MT_SIMD_AUTO = 0, MT_SIMD_PORTABLE, MT_SIMD_AVX2, MT_SIMD_AVX512 } mt_simd;
MTDEF mt_status mt_set_simd(mt_simd s);
MTDEF mt_simd mt_get_simd(void);           /* the path in use, never AUTO */
MTDEF mt_simd mt_simd_best(void);          /* the best path this machine runs */
MTDEF const char *mt_simd_name(mt_simd s); /* "portable", "avx2", "avx512", "auto" */

/* Row-major SGEMM on raw buffers, as cblas_sgemm(CblasRowMajor, ...):
   C = alpha * op(A) * op(B) + beta * C, op(A) [m, k], op(B) [k, n], C [m, n].
   A is stored [m, lda] (or [k, lda] when ta == MT_TRANS), B [k, ldb] (or
   [n, ldb]), C [m, ldc]. With beta == 0, C is only written. C must not
   overlap A or B. */
typedef enum mt_trans { MT_NO_TRANS = 0, MT_TRANS = 1 } mt_trans;
MTDEF mt_status mt_gemm(mt_trans ta, mt_trans tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                        int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

/* torch.matmul: 1-d x 1-d is a dot product (0-d result), 2-d x 2-d a matrix
   product, 1-d operands get a dimension prepended (a) or appended (b) that
   is removed from the result, and leading (batch) dimensions broadcast:
   a [..., m, k] x b [..., k, n] -> [broadcast(...), m, n]. Transposes are
   views: mt_view_transpose(&bt, &b, -1, -2) then mt_matmul(&out, &a, &bt).
   `out` may share storage with an input. */
MTDEF mt_status mt_matmul(mt_tensor *out, const mt_tensor *a, const mt_tensor *b);

/* torch.nn.functional.linear: out = x @ weight^T + bias, x [..., in],
   weight [out_features, in], bias [out_features] or NULL; out [..., out_features]. */
MTDEF mt_status mt_linear(mt_tensor *out, const mt_tensor *x, const mt_tensor *weight, const mt_tensor *bias);

/* Convolution parameters; zero means the default (stride 1, padding 0,
   dilation 1, groups 1, output_padding 0), so `mt_conv2d_desc d = {0}` or a
   NULL pointer gives a plain convolution. Index 0 is height, 1 is width. */
typedef struct mt_conv2d_desc {
    int stride[2];
    int padding[2];
    int dilation[2];
    int groups;
    int output_padding[2]; /* mt_conv_transpose2d only */
} mt_conv2d_desc;

/* torch.nn.functional.conv2d: x [N, C_in, H, W], w [C_out, C_in / groups,
   kH, kW], bias [C_out] or NULL -> out [N, C_out, H_out, W_out],
   H_out = (H + 2 pad - dil (kH - 1) - 1) / stride + 1. Computed as an
   implicit GEMM: input patches are packed straight into the GEMM panels
   (no im2col buffer). */
MTDEF mt_status mt_conv2d(mt_tensor *out, const mt_tensor *x, const mt_tensor *w, const mt_tensor *bias,
                          const mt_conv2d_desc *d);

/* torch.nn.functional.conv_transpose2d: x [N, C_in, H, W], w [C_in,
   C_out / groups, kH, kW], bias [C_out] or NULL -> out [N, C_out, H_out,
   W_out], H_out = (H - 1) stride - 2 pad + dil (kH - 1) + output_padding + 1;
   output_padding must be smaller than the stride or the dilation. */
MTDEF mt_status mt_conv_transpose2d(mt_tensor *out, const mt_tensor *x, const mt_tensor *w, const mt_tensor *bias,
                                    const mt_conv2d_desc *d);

/* Scaled dot-product attention, as torch.nn.functional.
   scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale):
   out = softmax(q k^T * scale + mask) v with q [B, H, Sq, D],
   k [B, H, Sk, D], v [B, H, Sk, Dv] -> out [B, H, Sq, Dv]. `mask` is NULL or
   an additive float mask that broadcasts to [B, H, Sq, Sk] (use -INFINITY
   to hide a key; a row whose keys are all hidden gives NaN, as PyTorch).
   scale <= 0 means 1 / sqrt(D). Computed in tiles with an online softmax:
   memory is linear in the sequence length (no Sq x Sk buffer); threaded over
   batch, head and query tile. */
MTDEF mt_status mt_attention(mt_tensor *out, const mt_tensor *q, const mt_tensor *k, const mt_tensor *v,
                             const mt_tensor *mask, float scale);

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

/* The pool: `mt__pool_run` is held by the one thread that owns the pool for
   a call (others that find it taken run inline); `mt__pool_mu` guards the
   job slot, the generation counter and the worker list. A job is split into
   chunks claimed with an atomic counter, so the caller never waits for a
   sleeping worker to wake: it runs whatever is left itself, then waits only
   for the workers that actually joined the job. */

static int mt__threads_wanted;              /* atomic; <= 0 means one per core */
static MT__THREAD_LOCAL int mt__in_parallel; /* this thread runs a parallel region */

static int mt__cpu_count(void);

MTDEF void mt_set_num_threads(int n) { __atomic_store_n(&mt__threads_wanted, n > 0 ? n : 0, __ATOMIC_RELAXED); }

MTDEF int mt_get_num_threads(void) {
    int n = __atomic_load_n(&mt__threads_wanted, __ATOMIC_RELAXED);
    return n > 0 ? n : mt__cpu_count();
}

/* Runs [0, n) in chunks of `chunk` items, claiming chunk numbers from
   *next; returns how many chunks this thread ran. */
static int64_t mt__run_chunks(mt_parallel_fn fn, void *ctx, int64_t n, int64_t chunk, int64_t nchunks, int64_t *next) {
    int64_t mine = 0;
    for (;;) {
        int64_t c = __atomic_fetch_add(next, 1, __ATOMIC_RELAXED);
        int64_t b, e;
        if (c >= nchunks) break;
        b = c * chunk;
        e = b + chunk < n ? b + chunk : n;
        fn(ctx, b, e);
        mine++;
    }
    return mine;
}

#if defined(MT_NO_THREADS) || !(defined(__unix__) || defined(__APPLE__))

static int mt__cpu_count(void) { return 1; }
MTDEF void mt_parallel_for(int64_t n, int64_t grain, mt_parallel_fn fn, void *ctx) {
    (void)grain;
    if (n > 0) fn(ctx, 0, n);
}
MTDEF void mt_threads_shutdown(void) {}

#else

#include <pthread.h>
#include <unistd.h>

typedef struct mt__pool_job {
    mt_parallel_fn fn;
    void *ctx;
    int64_t n, chunk, nchunks;
    int64_t next;     /* atomic: next chunk to claim */
    int64_t done;     /* chunks finished (under mt__pool_mu) */
    int active;       /* workers inside the job (under mt__pool_mu) */
} mt__pool_job;

static pthread_mutex_t mt__pool_run = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t mt__pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mt__pool_wake = PTHREAD_COND_INITIALIZER;
static pthread_cond_t mt__pool_idle = PTHREAD_COND_INITIALIZER;
static pthread_t *mt__pool_threads;         /* under mt__pool_run */
static int mt__pool_nworkers;               /* under mt__pool_run */
static int mt__pool_atexit_set;             /* under mt__pool_run */
static int mt__pool_stop;                   /* under mt__pool_mu */
static unsigned long mt__pool_gen;          /* under mt__pool_mu: job number */
static mt__pool_job *mt__pool_job_slot;     /* under mt__pool_mu */

static int mt__cpu_count(void) {
    static int cached;
    int n = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c < 1 ? 1 : c > 1024 ? 1024 : (int)c;
        __atomic_store_n(&cached, n, __ATOMIC_RELAXED);
    }
    return n;
}

static void *mt__pool_worker(void *arg) {
    unsigned long seen = (unsigned long)(uintptr_t)arg;
    mt__in_parallel = 1;
    pthread_mutex_lock(&mt__pool_mu);
    for (;;) {
        mt__pool_job *job;
        int64_t mine;
        while (!mt__pool_stop && (!mt__pool_job_slot || mt__pool_gen == seen))
            pthread_cond_wait(&mt__pool_wake, &mt__pool_mu);
        if (mt__pool_stop) break;
        seen = mt__pool_gen;
        job = mt__pool_job_slot;
        job->active++;
        pthread_mutex_unlock(&mt__pool_mu);
        mine = mt__run_chunks(job->fn, job->ctx, job->n, job->chunk, job->nchunks, &job->next);
        pthread_mutex_lock(&mt__pool_mu);
        job->done += mine;
        if (--job->active == 0 && job->done == job->nchunks) pthread_cond_signal(&mt__pool_idle);
    }
    pthread_mutex_unlock(&mt__pool_mu);
    return NULL;
}

/* Stops every worker; the caller holds mt__pool_run. */
static void mt__pool_stop_workers(void) {
    int i;
    if (!mt__pool_nworkers) return;
    pthread_mutex_lock(&mt__pool_mu);
    mt__pool_stop = 1;
    pthread_cond_broadcast(&mt__pool_wake);
    pthread_mutex_unlock(&mt__pool_mu);
    for (i = 0; i < mt__pool_nworkers; i++) pthread_join(mt__pool_threads[i], NULL);
    MT_FREE(mt__pool_threads);
    mt__pool_threads = NULL;
    mt__pool_nworkers = 0;
    pthread_mutex_lock(&mt__pool_mu);
    mt__pool_stop = 0;
    pthread_mutex_unlock(&mt__pool_mu);
}

MTDEF void mt_threads_shutdown(void) {
    pthread_mutex_lock(&mt__pool_run);
    mt__pool_stop_workers();
    pthread_mutex_unlock(&mt__pool_run);
}

static void mt__pool_atexit(void) { mt_threads_shutdown(); }

/* Makes the pool hold `want` workers (fewer if threads cannot be created);
   the caller holds mt__pool_run. */
static void mt__pool_resize(int want) {
    unsigned long gen;
    int i;
    if (want == mt__pool_nworkers) return;
    mt__pool_stop_workers();
    if (want <= 0) return;
    mt__pool_threads = (pthread_t *)MT_MALLOC(sizeof(pthread_t) * (size_t)want);
    if (!mt__pool_threads) return;
    if (!mt__pool_atexit_set) mt__pool_atexit_set = atexit(mt__pool_atexit) == 0;
    pthread_mutex_lock(&mt__pool_mu);
    gen = mt__pool_gen;
    pthread_mutex_unlock(&mt__pool_mu);
    for (i = 0; i < want; i++) {
        if (pthread_create(&mt__pool_threads[i], NULL, mt__pool_worker, (void *)(uintptr_t)gen) != 0) break;
        mt__pool_nworkers++;
    }
    if (!mt__pool_nworkers) {
        MT_FREE(mt__pool_threads);
        mt__pool_threads = NULL;
    }
}

MTDEF void mt_parallel_for(int64_t n, int64_t grain, mt_parallel_fn fn, void *ctx) {
    mt__pool_job job;
    int64_t mine, nchunks;
    int threads;
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    threads = mt_get_num_threads();
    if (threads <= 1 || n <= grain || mt__in_parallel || pthread_mutex_trylock(&mt__pool_run) != 0) {
        fn(ctx, 0, n);
        return;
    }
    mt__pool_resize(threads - 1);
    if (!mt__pool_nworkers) {
        pthread_mutex_unlock(&mt__pool_run);
        fn(ctx, 0, n);
        return;
    }
    /* up to 4 chunks per thread, so a thread slowed by other load is helped */
    threads = mt__pool_nworkers + 1;
    nchunks = (n + grain - 1) / grain;
    if (nchunks > 4 * (int64_t)threads) nchunks = 4 * (int64_t)threads;
    job.fn = fn;
    job.ctx = ctx;
    job.n = n;
    job.chunk = (n + nchunks - 1) / nchunks;
    if (job.chunk < grain) job.chunk = grain;
    job.nchunks = (n + job.chunk - 1) / job.chunk;
    job.next = 0;
    job.done = 0;
    job.active = 0;
    mt__in_parallel = 1;
    pthread_mutex_lock(&mt__pool_mu);
    mt__pool_job_slot = &job;
    mt__pool_gen++;
    pthread_cond_broadcast(&mt__pool_wake);
    pthread_mutex_unlock(&mt__pool_mu);
    mine = mt__run_chunks(fn, ctx, n, job.chunk, job.nchunks, &job.next);
    pthread_mutex_lock(&mt__pool_mu);
    job.done += mine;
    while (job.active > 0 || job.done < job.nchunks) pthread_cond_wait(&mt__pool_idle, &mt__pool_mu);
    mt__pool_job_slot = NULL;
    pthread_mutex_unlock(&mt__pool_mu);
    mt__in_parallel = 0;
    pthread_mutex_unlock(&mt__pool_run);
}

#endif

/* ======================================================================
   IMPLEMENTATION SECTION random
   ====================================================================== */

/* ======================================================================
   IMPLEMENTATION SECTION ops
   ====================================================================== */

/* ======================================================================
   IMPLEMENTATION SECTION shape
   ====================================================================== */

/* ======================================================================
   IMPLEMENTATION SECTION layers
   ====================================================================== */

/* ======================================================================
   IMPLEMENTATION SECTION nn
   ====================================================================== */

/* Layout of this section:
   - SIMD choice (CPUID / XGETBV) and the per-path parameters (mt__arch);
   - packing: operands are copied into panels of `w` rows, k-major
     (panel[k * w + i]), zero-padded to w, so the micro-kernel reads both
     operands sequentially;
   - micro-kernels: C[mr x nr] (+)= A-panel x B-panel, one per path
     (AVX-512 14x32, AVX2 6x16, portable 4x16), each C element accumulated
     in k order by one FMA chain;
   - the GEMM driver: C is cut into tiles (by batch, rows, columns) that run
     in parallel; inside a tile the usual cache blocking (NC columns, KC
     depth, MC rows). K is always split at the same KC boundaries, so a C
     element's arithmetic does not depend on the tiling or the thread count;
   - matmul / linear / conv2d / conv_transpose2d / attention on top. */

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define MT__X86 1
#include <cpuid.h>
#include <immintrin.h>
#define MT__AVX2 __attribute__((target("avx2,fma")))
#define MT__AVX512 __attribute__((target("avx512f,avx2,fma")))
#endif

#if defined(__GNUC__)
#define MT__INLINE static inline __attribute__((always_inline))
#else
#define MT__INLINE static inline
#endif

/* ---- SIMD choice ------------------------------------------------------ */

static int mt__simd_best_cache = -1; /* atomic; -1 = not detected yet */
static int mt__simd_forced;          /* atomic; MT_SIMD_AUTO = use the best */

#if defined(MT__X86)
static unsigned long long mt__xgetbv0(void) {
    unsigned lo, hi;
    __asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif

/* The best path the CPU has and the OS saves the registers of. */
static mt_simd mt__simd_detect(void) {
#if defined(MT__X86)
    unsigned a, b, c, d;
    unsigned long long xcr0;
    int fma, avx2, avx512f;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return MT_SIMD_PORTABLE;
    fma = (c >> 12) & 1;
    if (!((c >> 27) & 1) || !((c >> 28) & 1)) return MT_SIMD_PORTABLE; /* OSXSAVE, AVX */
    xcr0 = mt__xgetbv0();
    if ((xcr0 & 6) != 6) return MT_SIMD_PORTABLE; /* XMM and YMM state */
    if (__get_cpuid_max(0, NULL) < 7) return MT_SIMD_PORTABLE;
    __cpuid_count(7, 0, a, b, c, d);
    avx2 = (b >> 5) & 1;
    avx512f = (b >> 16) & 1;
    if (!avx2 || !fma) return MT_SIMD_PORTABLE;
    if (avx512f && (xcr0 & 0xe6) == 0xe6) return MT_SIMD_AVX512; /* opmask, ZMM_Hi256, Hi16_ZMM */
    return MT_SIMD_AVX2;
#else
    return MT_SIMD_PORTABLE;
#endif
}

MTDEF mt_simd mt_simd_best(void) {
    int s = __atomic_load_n(&mt__simd_best_cache, __ATOMIC_RELAXED);
    if (s < 0) {
        s = (int)mt__simd_detect();
        __atomic_store_n(&mt__simd_best_cache, s, __ATOMIC_RELAXED);
    }
    return (mt_simd)s;
}

MTDEF mt_simd mt_get_simd(void) {
    int s = __atomic_load_n(&mt__simd_forced, __ATOMIC_RELAXED);
    return s == MT_SIMD_AUTO ? mt_simd_best() : (mt_simd)s;
}

MTDEF const char *mt_simd_name(mt_simd s) {
    switch (s) {
    case MT_SIMD_AUTO: return "auto";
    case MT_SIMD_PORTABLE: return "portable";
    case MT_SIMD_AVX2: return "avx2";
    case MT_SIMD_AVX512: return "avx512";
    default: return "unknown";
    }
}

MTDEF mt_status mt_set_simd(mt_simd s) {
    if ((int)s < (int)MT_SIMD_AUTO || (int)s > (int)MT_SIMD_AVX512)
        return MT__FAIL(MT_ERR_ARGUMENT, "unknown SIMD path %d", (int)s);
    if (s != MT_SIMD_AUTO && (int)s > (int)mt_simd_best())
        return MT__FAIL(MT_ERR_UNSUPPORTED, "%s is not available on this machine (best: %s)", mt_simd_name(s),
                        mt_simd_name(mt_simd_best()));
    __atomic_store_n(&mt__simd_forced, (int)s, __ATOMIC_RELAXED);
    return MT_OK;
}

/* ---- per-path parameters -------------------------------------------- */

/* C[m x n] = A-panel x B-panel (+ beta C), m <= mr, n <= nr. A panel:
   a[k * mr + i]; B panel: b[k * bs + j] (bs = nr when packed, the row
   stride of B when read in place). beta == 0: C is only written. With
   `betas` (n values), column j is scaled by betas[j] instead of beta. */
typedef void (*mt__ukernel_fn)(int64_t kc, const float *a, const float *b, int64_t bs, float *c, int64_t ldc, int m,
                               int n, float beta, const float *betas);
/* Packs rows [0, rows) x depth [0, kc) of src (element (r, k) at
   src[r * rs + k * cs]) into panels of w rows: dst[p * w * kc + k * w + i],
   times `scale`, zero-padded to a multiple of w rows. */
typedef void (*mt__pack_fn)(const float *src, int64_t rs, int64_t cs, int64_t rows, int64_t kc, int w, float scale,
                            float *dst);

typedef struct mt__conv_geom mt__conv_geom;
/* Packs the implicit im2col matrix of a convolution (see mt__conv_geom). */
typedef void (*mt__conv_pack_fn)(const mt__conv_geom *g, const float *x, int64_t j0, int64_t ncols, int64_t k0,
                                 int64_t kc, int w, float *dst);

typedef struct mt__arch {
    mt_simd simd;
    int mr, nr;          /* register block */
    int64_t mc, kc, nc;  /* cache blocks: mc a multiple of mr, nc of nr */
    mt__ukernel_fn kernel;
    mt__pack_fn pack;
    mt__conv_pack_fn conv_pack;
} mt__arch;

/* ---- packing, portable ---------------------------------------------- */

static void mt__pack_c(const float *src, int64_t rs, int64_t cs, int64_t rows, int64_t kc, int w, float scale,
                       float *dst) {
    int64_t r0, k;
    int i;
    if (rs == 1) {
        /* rows contiguous: walk the source row by row (depth outer) so it
           streams, scattering into the panels */
        for (k = 0; k < kc; k++) {
            const float *sk = src + k * cs;
            for (r0 = 0; r0 < rows; r0 += w) {
                int h = rows - r0 < w ? (int)(rows - r0) : w;
                float *d = dst + r0 * kc + k * w;
                for (i = 0; i < h; i++) d[i] = sk[r0 + i] * scale;
                for (; i < w; i++) d[i] = 0.0f;
            }
        }
        return;
    }
    for (r0 = 0; r0 < rows; r0 += w) {
        int h = rows - r0 < w ? (int)(rows - r0) : w;
        const float *s = src + r0 * rs;
        for (i = 0; i < h; i++) {
            const float *si = s + i * rs;
            if (cs == 1)
                for (k = 0; k < kc; k++) dst[k * w + i] = si[k] * scale;
            else
                for (k = 0; k < kc; k++) dst[k * w + i] = si[k * cs] * scale;
        }
        for (; i < w; i++)
            for (k = 0; k < kc; k++) dst[k * w + i] = 0.0f;
        dst += (int64_t)w * kc;
    }
}

/* ---- micro-kernel, portable (4 x 16) --------------------------------- */

#define MT__P_MR 4
#define MT__P_NR 16

static void mt__kernel_c(int64_t kc, const float *a, const float *b, int64_t bs, float *c, int64_t ldc, int m, int n,
                         float beta, const float *betas) {
    float acc[MT__P_MR][MT__P_NR];
    int64_t k;
    int i, j;
    for (i = 0; i < MT__P_MR; i++)
        for (j = 0; j < MT__P_NR; j++) acc[i][j] = 0.0f;
    for (k = 0; k < kc; k++) {
        const float *bk = b + k * bs, *ak = a + k * MT__P_MR;
        for (i = 0; i < MT__P_MR; i++) {
            float av = ak[i];
            for (j = 0; j < MT__P_NR; j++) acc[i][j] += av * bk[j];
        }
    }
    for (i = 0; i < m; i++) {
        float *ci = c + i * ldc;
        if (betas)
            for (j = 0; j < n; j++) ci[j] = acc[i][j] + betas[j] * ci[j];
        else if (beta == 0.0f)
            for (j = 0; j < n; j++) ci[j] = acc[i][j];
        else
            for (j = 0; j < n; j++) ci[j] = acc[i][j] + beta * ci[j];
    }
}

/* ---- x86 kernels ----------------------------------------------------- */

#if defined(MT__X86)

/* AVX2 + FMA: 6 rows x 16 columns (12 accumulators). */
#define MT__A2_MR 6
#define MT__A2_NR 16

static const int32_t mt__lane_mask_tab[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

MT__AVX2 MT__INLINE __m256i mt__avx2_mask(int count) {
    count = count < 0 ? 0 : count > 8 ? 8 : count;
    return _mm256_loadu_si256((const __m256i *)(const void *)(mt__lane_mask_tab + 8 - count));
}

MT__AVX2 MT__INLINE void mt__k256_body(int64_t kc, const float *a, const float *b, int64_t bs, float *c, int64_t ldc,
                                       int n, float beta, const float *betas, const int R, const int V) {
    __m256 c0[MT__A2_MR], c1[MT__A2_MR];
    int64_t k;
    int i;
#pragma GCC unroll 6
    for (i = 0; i < MT__A2_MR; i++) {
        c0[i] = _mm256_setzero_ps();
        c1[i] = _mm256_setzero_ps();
    }
    for (k = 0; k < kc; k++) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = V > 1 ? _mm256_loadu_ps(b + 8) : _mm256_setzero_ps();
#pragma GCC unroll 6
        for (i = 0; i < MT__A2_MR; i++) {
            if (i < R) {
                __m256 av = _mm256_broadcast_ss(a + i);
                c0[i] = _mm256_fmadd_ps(av, b0, c0[i]);
                if (V > 1) c1[i] = _mm256_fmadd_ps(av, b1, c1[i]);
            }
        }
        a += MT__A2_MR;
        b += bs;
    }
    {
        __m256i m0 = mt__avx2_mask(n), m1 = mt__avx2_mask(n - 8);
        __m256 bv0 = _mm256_set1_ps(beta), bv1 = bv0;
        int load_c = beta != 0.0f;
        if (betas) {
            bv0 = _mm256_maskload_ps(betas, m0);
            bv1 = _mm256_maskload_ps(betas + 8, m1);
            load_c = 1;
        }
        if (n >= 16) {
#pragma GCC unroll 6
            for (i = 0; i < MT__A2_MR; i++) {
                if (i < R) {
                    float *ci = c + i * ldc;
                    if (load_c) {
                        c0[i] = _mm256_fmadd_ps(bv0, _mm256_loadu_ps(ci), c0[i]);
                        c1[i] = _mm256_fmadd_ps(bv1, _mm256_loadu_ps(ci + 8), c1[i]);
                    }
                    _mm256_storeu_ps(ci, c0[i]);
                    _mm256_storeu_ps(ci + 8, c1[i]);
                }
            }
        } else {
#pragma GCC unroll 6
            for (i = 0; i < MT__A2_MR; i++) {
                if (i < R) {
                    float *ci = c + i * ldc;
                    if (load_c) {
                        c0[i] = _mm256_fmadd_ps(bv0, _mm256_maskload_ps(ci, m0), c0[i]);
                        if (V > 1) c1[i] = _mm256_fmadd_ps(bv1, _mm256_maskload_ps(ci + 8, m1), c1[i]);
                    }
                    _mm256_maskstore_ps(ci, m0, c0[i]);
                    if (V > 1) _mm256_maskstore_ps(ci + 8, m1, c1[i]);
                }
            }
        }
    }
}

#define MT__K256_CASE(R)                                                             \
    case R:                                                                          \
        if (n > 8)                                                                   \
            mt__k256_body(kc, a, b, bs, c, ldc, n, beta, betas, R, 2);               \
        else                                                                         \
            mt__k256_body(kc, a, b, bs, c, ldc, n, beta, betas, R, 1);               \
        break;

MT__AVX2 static void mt__kernel_avx2(int64_t kc, const float *a, const float *b, int64_t bs, float *c, int64_t ldc,
                                     int m, int n, float beta, const float *betas) {
    switch (m) {
        MT__K256_CASE(1)
        MT__K256_CASE(2)
        MT__K256_CASE(3)
        MT__K256_CASE(4)
        MT__K256_CASE(5)
        MT__K256_CASE(6)
    default: break;
    }
}

/* AVX-512: 14 rows x 32 columns (28 accumulators, 2 for B, A broadcast
   from memory). */
#define MT__A5_MR 14
#define MT__A5_NR 32

MT__AVX512 MT__INLINE void mt__k512_body(int64_t kc, const float *a, const float *b, int64_t bs, float *c,
                                         int64_t ldc, int n, float beta, const float *betas, const int R,
                                         const int V) {
    __m512 c0[MT__A5_MR], c1[MT__A5_MR];
    __mmask16 m0, m1;
    int64_t k;
    int i;
#pragma GCC unroll 14
    for (i = 0; i < MT__A5_MR; i++) {
        c0[i] = _mm512_setzero_ps();
        c1[i] = _mm512_setzero_ps();
        if (i < R) {
            /* C is read (or written) after the loop: start fetching it now */
            _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
            if (V > 1) _mm_prefetch((const char *)(c + i * ldc + 16), _MM_HINT_T0);
        }
    }
    for (k = 0; k < kc; k++) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = V > 1 ? _mm512_loadu_ps(b + 16) : _mm512_setzero_ps();
#pragma GCC unroll 14
        for (i = 0; i < MT__A5_MR; i++) {
            if (i < R) {
                __m512 av = _mm512_set1_ps(a[i]);
                c0[i] = _mm512_fmadd_ps(av, b0, c0[i]);
                if (V > 1) c1[i] = _mm512_fmadd_ps(av, b1, c1[i]);
            }
        }
        a += MT__A5_MR;
        b += bs;
    }
    m0 = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1u);
    m1 = (__mmask16)(n >= 32 ? 0xffff : n > 16 ? (1u << (n - 16)) - 1u : 0u);
    {
        __m512 bv0 = _mm512_set1_ps(beta), bv1 = bv0;
        int load_c = beta != 0.0f;
        if (betas) {
            bv0 = _mm512_maskz_loadu_ps(m0, betas);
            bv1 = _mm512_maskz_loadu_ps(m1, betas + 16);
            load_c = 1;
        }
#pragma GCC unroll 14
        for (i = 0; i < MT__A5_MR; i++) {
            if (i < R) {
                float *ci = c + i * ldc;
                if (load_c) {
                    c0[i] = _mm512_fmadd_ps(bv0, _mm512_maskz_loadu_ps(m0, ci), c0[i]);
                    if (V > 1) c1[i] = _mm512_fmadd_ps(bv1, _mm512_maskz_loadu_ps(m1, ci + 16), c1[i]);
                }
                _mm512_mask_storeu_ps(ci, m0, c0[i]);
                if (V > 1) _mm512_mask_storeu_ps(ci + 16, m1, c1[i]);
            }
        }
    }
}

#define MT__K512_CASE(R)                                                             \
    case R:                                                                          \
        if (n > 16)                                                                  \
            mt__k512_body(kc, a, b, bs, c, ldc, n, beta, betas, R, 2);               \
        else                                                                         \
            mt__k512_body(kc, a, b, bs, c, ldc, n, beta, betas, R, 1);               \
        break;

MT__AVX512 static void mt__kernel_avx512(int64_t kc, const float *a, const float *b, int64_t bs, float *c,
                                         int64_t ldc, int m, int n, float beta, const float *betas) {
    switch (m) {
        MT__K512_CASE(1)
        MT__K512_CASE(2)
        MT__K512_CASE(3)
        MT__K512_CASE(4)
        MT__K512_CASE(5)
        MT__K512_CASE(6)
        MT__K512_CASE(7)
        MT__K512_CASE(8)
        MT__K512_CASE(9)
        MT__K512_CASE(10)
        MT__K512_CASE(11)
        MT__K512_CASE(12)
        MT__K512_CASE(13)
        MT__K512_CASE(14)
    default: break;
    }
}

/* Lanes [lo, hi) of a 16-lane mask (clamped). */
MT__INLINE __mmask16 mt__mask_range(int64_t lo, int64_t hi) {
    unsigned a = lo <= 0 ? 0u : lo >= 16 ? 16u : (unsigned)lo, b = hi <= 0 ? 0u : hi >= 16 ? 16u : (unsigned)hi;
    unsigned ma = a >= 16 ? 0xffffu : (1u << a) - 1u, mb = b >= 16 ? 0xffffu : (1u << b) - 1u;
    return (__mmask16)(mb & ~ma);
}

/* 16 x 16 transpose in registers: r[i] lane j -> r[j] lane i. */
MT__AVX512 MT__INLINE void mt__tr16x16(__m512 *r) {
    __m512 t[16];
    int i, j;
#pragma GCC unroll 8
    for (i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 4
    for (i = 0; i < 4; i++) {
        __m512d a0 = _mm512_castps_pd(t[4 * i]), a1 = _mm512_castps_pd(t[4 * i + 1]);
        __m512d a2 = _mm512_castps_pd(t[4 * i + 2]), a3 = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
    }
#pragma GCC unroll 4
    for (j = 0; j < 4; j++) {
        __m512 u0 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88), u1 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
        __m512 u2 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xdd), u3 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xdd);
        t[j] = _mm512_shuffle_f32x4(u0, u1, 0x88);
        t[8 + j] = _mm512_shuffle_f32x4(u0, u1, 0xdd);
        t[4 + j] = _mm512_shuffle_f32x4(u2, u3, 0x88);
        t[12 + j] = _mm512_shuffle_f32x4(u2, u3, 0xdd);
    }
#pragma GCC unroll 16
    for (i = 0; i < 16; i++) r[i] = t[i];
}

/* Loads up to 16 rows x kk (<= 16) depth values starting at src (row
   stride rs, unit depth stride), transposes them and stores depth row j as
   `lanes` values at dst + j * w. */
MT__AVX512 MT__INLINE void mt__pack16_tr(const float *src, int64_t rs, int h, int kk, float scale, float *dst, int w,
                                         __mmask16 lanes) {
    __m512 r[16];
    __mmask16 km = (__mmask16)(kk >= 16 ? 0xffff : (1u << kk) - 1u);
    __m512 sv = _mm512_set1_ps(scale);
    int i;
#pragma GCC unroll 16
    for (i = 0; i < 16; i++) {
        r[i] = i < h ? _mm512_maskz_loadu_ps(km, src + i * rs) : _mm512_setzero_ps();
        if (scale != 1.0f) r[i] = _mm512_mul_ps(r[i], sv);
    }
    mt__tr16x16(r);
    for (i = 0; i < kk; i++) _mm512_mask_storeu_ps(dst + i * w, lanes, r[i]);
}

MT__AVX512 static void mt__pack_avx512(const float *src, int64_t rs, int64_t cs, int64_t rows, int64_t kc, int w,
                                       float scale, float *dst) {
    int64_t r0, k;
    if ((cs != 1 && rs != 1) || (w != 14 && w != 32 && w != 16)) {
        mt__pack_c(src, rs, cs, rows, kc, w, scale, dst);
        return;
    }
    if (rs == 1) {
        /* rows contiguous: depth outer, so the source streams row by row
           (row-major B with a long row stride would otherwise touch a new
           page at every step), one masked vector per 16 rows */
        __m512 sv = _mm512_set1_ps(scale);
        __mmask16 wm = (__mmask16)(w >= 16 ? 0xffff : (1u << w) - 1u);
        for (k = 0; k < kc; k++) {
            const float *sk = src + k * cs;
            float *dk = dst + k * w;
            for (r0 = 0; r0 < rows; r0 += w) {
                int64_t h = rows - r0 < w ? rows - r0 : w;
                float *d = dk + r0 * kc;
                __mmask16 h0 = mt__mask_range(0, h), h1 = mt__mask_range(0, h - 16);
                __m512 v0 = _mm512_maskz_loadu_ps(h0, sk + r0);
                if (scale != 1.0f) v0 = _mm512_mul_ps(v0, sv);
                if (w == 32) {
                    __m512 v1 = _mm512_maskz_loadu_ps(h1, sk + r0 + 16);
                    if (scale != 1.0f) v1 = _mm512_mul_ps(v1, sv);
                    _mm512_storeu_ps(d, v0);
                    _mm512_storeu_ps(d + 16, v1);
                } else {
                    _mm512_mask_storeu_ps(d, wm, v0);
                }
            }
        }
        return;
    }
    for (r0 = 0; r0 < rows; r0 += w) {
        int h = rows - r0 < w ? (int)(rows - r0) : w;
        const float *s = src + r0 * rs;
        /* depth contiguous: transpose 16 x 16 blocks */
        for (k = 0; k < kc; k += 16) {
            int kk = kc - k < 16 ? (int)(kc - k) : 16;
            if (w == 32) {
                mt__pack16_tr(s + k, rs, h < 16 ? h : 16, kk, scale, dst + k * 32, 32, 0xffff);
                if (h > 16) {
                    mt__pack16_tr(s + 16 * rs + k, rs, h - 16, kk, scale, dst + k * 32 + 16, 32, 0xffff);
                } else {
                    int j;
                    for (j = 0; j < kk; j++) _mm512_storeu_ps(dst + (k + j) * 32 + 16, _mm512_setzero_ps());
                }
            } else {
                mt__pack16_tr(s + k, rs, h, kk, scale, dst + k * w, w, (__mmask16)(w == 16 ? 0xffff : (1u << w) - 1u));
            }
        }
        dst += (int64_t)w * kc;
    }
}

#endif /* MT__X86 */
/* ---- implicit im2col (convolution as GEMM) --------------------------- */

/* One image and group of a convolution seen as the GEMM operand B[k, j]:
   k = (channel, kernel row, kernel column), j = output pixel. */
struct mt__conv_geom {
    int64_t c, h, w;         /* input channels (of the group), height, width */
    int64_t cs, hs, ws;      /* element strides of x along channel, row, column */
    int64_t kh, kw, sh, sw, ph, pw, dh, dw;
    int64_t ho, wo;
};

/* Splits output pixels [j, j + h) into runs that stay on one output row:
   run r covers panel lanes [at[r], at[r] + len[r]) = row oh[r] from column ow[r]. */
static int mt__conv_runs(const mt__conv_geom *g, int64_t j, int h, int *at, int *len, int64_t *oh, int64_t *ow) {
    int i = 0, n = 0;
    while (i < h) {
        int64_t r = j / g->wo, c = j % g->wo;
        int l = (int)(g->wo - c < h - i ? g->wo - c : h - i);
        at[n] = i;
        len[n] = l;
        oh[n] = r;
        ow[n] = c;
        n++;
        i += l;
        j += l;
    }
    return n;
}

static void mt__conv_pack_c(const mt__conv_geom *g, const float *x, int64_t j0, int64_t ncols, int64_t k0, int64_t kc,
                            int w, float *dst) {
    int at[64], len[64];
    int64_t oh[64], ow[64], p0;
    for (p0 = 0; p0 < ncols; p0 += w) {
        int h = ncols - p0 < w ? (int)(ncols - p0) : w;
        int nrun = mt__conv_runs(g, j0 + p0, h, at, len, oh, ow), r, i;
        int64_t kk, c = k0 / (g->kh * g->kw), u = (k0 / g->kw) % g->kh, v = k0 % g->kw;
        for (kk = 0; kk < kc; kk++) {
            float *d = dst + kk * w;
            for (r = 0; r < nrun; r++) {
                int64_t ih = oh[r] * g->sh - g->ph + u * g->dh;
                float *dr = d + at[r];
                if (ih < 0 || ih >= g->h) {
                    for (i = 0; i < len[r]; i++) dr[i] = 0.0f;
                } else {
                    const float *row = x + c * g->cs + ih * g->hs;
                    int64_t iw0 = ow[r] * g->sw - g->pw + v * g->dw;
                    for (i = 0; i < len[r]; i++) {
                        int64_t iw = iw0 + i * g->sw;
                        dr[i] = iw >= 0 && iw < g->w ? row[iw * g->ws] : 0.0f;
                    }
                }
            }
            for (i = h; i < w; i++) d[i] = 0.0f;
            if (++v == g->kw) {
                v = 0;
                if (++u == g->kh) {
                    u = 0;
                    c++;
                }
            }
        }
        dst += (int64_t)w * kc;
    }
}

#if defined(MT__X86)
/* Unit column stride: each run is a masked vector copy of one input row
   (masked lanes are the padding and are never read). The masks and offsets
   of a run depend on the kernel column only, so they are computed once per
   panel. */
MT__AVX512 static void mt__conv_pack_avx512(const mt__conv_geom *g, const float *x, int64_t j0, int64_t ncols,
                                            int64_t k0, int64_t kc, int w, float *dst) {
    int at[32], len[32];
    int64_t oh[32], ow[32], off[32][16], p0;
    __mmask16 vm[32][16][2], lanes[32][2];
    if (g->sw != 1 || g->ws != 1 || g->kw > 16 || w > 32) {
        mt__conv_pack_c(g, x, j0, ncols, k0, kc, w, dst);
        return;
    }
    for (p0 = 0; p0 < ncols; p0 += w) {
        int h = ncols - p0 < w ? (int)(ncols - p0) : w;
        int nrun = mt__conv_runs(g, j0 + p0, h, at, len, oh, ow), r, i;
        int64_t kk, c = k0 / (g->kh * g->kw), u = (k0 / g->kw) % g->kh, v = k0 % g->kw, vv;
        for (r = 0; r < nrun; r++) {
            lanes[r][0] = mt__mask_range(0, len[r]);
            lanes[r][1] = mt__mask_range(0, len[r] - 16);
            for (vv = 0; vv < g->kw; vv++) {
                /* lanes t valid when 0 <= iw0 + t < w */
                int64_t iw0 = ow[r] - g->pw + vv * g->dw;
                off[r][vv] = iw0;
                vm[r][vv][0] = (__mmask16)(mt__mask_range(-iw0, g->w - iw0) & lanes[r][0]);
                vm[r][vv][1] = (__mmask16)(mt__mask_range(-iw0 - 16, g->w - iw0 - 16) & lanes[r][1]);
            }
        }
        for (kk = 0; kk < kc; kk++) {
            float *d = dst + kk * w;
            const float *plane = x + c * g->cs;
            for (r = 0; r < nrun; r++) {
                int64_t ih = oh[r] * g->sh - g->ph + u * g->dh;
                float *dr = d + at[r];
                if (ih < 0 || ih >= g->h) {
                    _mm512_mask_storeu_ps(dr, lanes[r][0], _mm512_setzero_ps());
                    if (len[r] > 16) _mm512_mask_storeu_ps(dr + 16, lanes[r][1], _mm512_setzero_ps());
                } else {
                    const float *src =
                        (const float *)((uintptr_t)(plane + ih * g->hs) + (uintptr_t)(off[r][v] * (int64_t)sizeof(float)));
                    _mm512_mask_storeu_ps(dr, lanes[r][0], _mm512_maskz_loadu_ps(vm[r][v][0], src));
                    if (len[r] > 16)
                        _mm512_mask_storeu_ps(dr + 16, lanes[r][1],
                                              _mm512_maskz_loadu_ps(vm[r][v][1], (const float *)((uintptr_t)src + 64)));
                }
            }
            for (i = h; i < w; i++) d[i] = 0.0f;
            if (++v == g->kw) {
                v = 0;
                if (++u == g->kh) {
                    u = 0;
                    c++;
                }
            }
        }
        dst += (int64_t)w * kc;
    }
}
#endif

/* ---- per-path parameter tables --------------------------------------- */

#ifndef MT__ARCH_CONST
#define MT__ARCH_CONST const
#endif

/* Cache blocks: an A micro-panel (mr x kc, 28 KB for AVX-512) stays in L1
   while the B block (kc x nc, 1 MB) streams from L2 past it, micro-panel
   by micro-panel; mc only sets how much A is packed at a time. Measured on
   a Xeon with AVX-512 (48 KB L1d, 2 MB L2 per core); other CPUs are served
   reasonably by the same sizes. */
static MT__ARCH_CONST mt__arch mt__arch_portable = {MT_SIMD_PORTABLE, MT__P_MR, MT__P_NR, 64, 256, 512,
                                           mt__kernel_c, mt__pack_c, mt__conv_pack_c};
#if defined(MT__X86)
static MT__ARCH_CONST mt__arch mt__arch_avx2 = {MT_SIMD_AVX2, MT__A2_MR, MT__A2_NR, 72, 512, 512,
                                       mt__kernel_avx2, mt__pack_c, mt__conv_pack_c};
static MT__ARCH_CONST mt__arch mt__arch_avx512 = {MT_SIMD_AVX512, MT__A5_MR, MT__A5_NR, 84, 512, 512,
                                         mt__kernel_avx512, mt__pack_avx512, mt__conv_pack_avx512};
#endif

static const mt__arch *mt__arch_get(void) {
#if defined(MT__X86)
    switch (mt_get_simd()) {
    case MT_SIMD_AVX512: return &mt__arch_avx512;
    case MT_SIMD_AVX2: return &mt__arch_avx2;
    default: break;
    }
#endif
    return &mt__arch_portable;
}

/* ---- GEMM driver ----------------------------------------------------- */

#define MT__SLOTS 64

/* Workspace for parallel chunks: `n` buffers of `floats` each, allocated by
   the calling thread before the parallel region (so running out of memory
   is reported before anything is written); a chunk takes a free one. */
typedef struct mt__slots {
    float *mem[MT__SLOTS];
    int busy[MT__SLOTS];
    int n;
    size_t floats;
    void *raw;
    int failed; /* atomic: a chunk found no buffer */
} mt__slots;

static mt_status mt__slots_alloc(const char *func, mt__slots *s, int n, size_t floats) {
    int i;
    s->n = n < 1 ? 1 : n > MT__SLOTS ? MT__SLOTS : n;
    s->floats = (floats + 15) / 16 * 16;
    s->failed = 0;
    s->raw = MT_MALLOC(s->floats * sizeof(float) * (size_t)s->n + MT__ALIGN);
    if (!s->raw)
        return mt__fail(MT_ERR_MEMORY, func, "cannot allocate %lld bytes of workspace",
                        (long long)(s->floats * sizeof(float) * (size_t)s->n));
    for (i = 0; i < s->n; i++) {
        s->mem[i] = (float *)(((uintptr_t)s->raw + MT__ALIGN - 1) & ~(uintptr_t)(MT__ALIGN - 1)) + (size_t)i * s->floats;
        s->busy[i] = 0;
    }
    return MT_OK;
}

/* Takes a buffer: a free slot, or (more threads than slots, when the
   thread count changed meanwhile) a new allocation returned in *own. */
static float *mt__slots_take(mt__slots *s, int *slot, void **own) {
    int i;
    *own = NULL;
    for (i = 0; i < s->n; i++)
        if (!__atomic_exchange_n(&s->busy[i], 1, __ATOMIC_ACQUIRE)) {
            *slot = i;
            return s->mem[i];
        }
    *slot = -1;
    *own = MT_MALLOC(s->floats * sizeof(float) + MT__ALIGN);
    if (!*own) {
        __atomic_store_n(&s->failed, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    return (float *)(((uintptr_t)*own + MT__ALIGN - 1) & ~(uintptr_t)(MT__ALIGN - 1));
}

static void mt__slots_give(mt__slots *s, int slot, void *own) {
    if (slot >= 0)
        __atomic_store_n(&s->busy[slot], 0, __ATOMIC_RELEASE);
    else
        MT_FREE(own);
}

/* A batch of GEMMs with the same shape: for batch b,
   C_b[i, j] = alpha sum_k A_b[i, k] B_b[k, j] + beta C_b[i, j] with
   A_b[i, k] = a[a_off[b] + i a_rs + k a_cs] (offsets NULL = 0), likewise B
   (or the implicit im2col of `conv` at b + b_off[b]) and
   C_b[i, j] = c[c_off[b] + i c_rs + j]. */
typedef struct mt__gemm {
    const mt__arch *ar;
    int64_t m, n, k, nbatch;
    float alpha, beta;
    const float *a;
    int64_t a_rs, a_cs;
    const int64_t *a_off;
    const float *b;
    int64_t b_rs, b_cs;
    const int64_t *b_off;
    float *c;
    int64_t c_rs;
    const int64_t *c_off;
    const mt__conv_geom *conv;
    /* plan */
    int64_t tm, tn, tile_m, tile_n, mc, kc, nc;
    int cache_a;       /* pack a tile's A once for all its column blocks */
    int64_t a_floats;  /* workspace for packed A */
    mt__slots ws;
} mt__gemm;

#define MT__A_CACHE_FLOATS (1 << 20) /* 4 MB */

static int64_t mt__min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t mt__max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t mt__ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* One tile of one batch: rows [m0, m1), columns [n0, n1). */
static void mt__gemm_tile(const mt__gemm *g, int64_t bi, int64_t m0, int64_t m1, int64_t n0, int64_t n1, float *ws) {
    const mt__arch *ar = g->ar;
    const int mr = ar->mr, nr = ar->nr;
    const float *A = g->a + (g->a_off ? g->a_off[bi] : 0);
    const float *B = g->b + (g->b_off ? g->b_off[bi] : 0);
    float *C = g->c + (g->c_off ? g->c_off[bi] : 0);
    float *pa = ws, *pb = ws + g->a_floats;
    int64_t rows_pad = mt__ceil_div(m1 - m0, mr) * mr;
    /* few rows: read full B panels in place instead of packing them */
    int direct = !g->conv && g->b_cs == 1 && m1 - m0 <= 2 * mr;
    int64_t jc, pc, ic, jr, ir;
    for (jc = n0; jc < n1; jc += g->nc) {
        int64_t nc = mt__min64(g->nc, n1 - jc);
        int64_t nfull = direct ? nc / nr * nr : 0;
        for (pc = 0; pc < g->k; pc += g->kc) {
            int64_t kc = mt__min64(g->kc, g->k - pc);
            float beta = pc == 0 ? g->beta : 1.0f;
            if (nc > nfull) {
                if (g->conv)
                    ar->conv_pack(g->conv, B, jc + nfull, nc - nfull, pc, kc, nr, pb);
                else
                    ar->pack(B + pc * g->b_rs + (jc + nfull) * g->b_cs, g->b_cs, g->b_rs, nc - nfull, kc, nr, 1.0f, pb);
            }
            for (ic = m0; ic < m1; ic += g->mc) {
                int64_t mc = mt__min64(g->mc, m1 - ic);
                float *pab = g->cache_a ? pa + rows_pad * pc + (ic - m0) * kc : pa;
                if (!g->cache_a || jc == n0)
                    ar->pack(A + ic * g->a_rs + pc * g->a_cs, g->a_rs, g->a_cs, mc, kc, mr, g->alpha, pab);
                for (ir = 0; ir < mc; ir += mr)
                    for (jr = 0; jr < nc; jr += nr) {
                        const float *bp;
                        int64_t bs;
                        int nn = (int)mt__min64(nr, nc - jr);
                        if (jr < nfull) {
                            bp = B + pc * g->b_rs + jc + jr;
                            bs = g->b_rs;
                        } else {
                            bp = pb + (jr - nfull) * kc;
                            bs = nr;
                        }
                        ar->kernel(kc, pab + ir * kc, bp, bs, C + (ic + ir) * g->c_rs + jc + jr, g->c_rs,
                                   (int)mt__min64(mr, mc - ir), nn, beta, NULL);
                    }
            }
        }
    }
}

static void mt__gemm_chunk(void *ctx, int64_t t0, int64_t t1) {
    mt__gemm *g = (mt__gemm *)ctx;
    int64_t per = g->tm * g->tn, t;
    void *own;
    int slot;
    float *ws = mt__slots_take(&g->ws, &slot, &own);
    if (!ws) return;
    for (t = t0; t < t1; t++) {
        int64_t bi = t / per, r = t % per;
        int64_t m0 = r / g->tn * g->tile_m, n0 = r % g->tn * g->tile_n;
        mt__gemm_tile(g, bi, m0, mt__min64(m0 + g->tile_m, g->m), n0, mt__min64(n0 + g->tile_n, g->n), ws);
    }
    mt__slots_give(&g->ws, slot, own);
}

/* Chooses the tiles: enough of them to feed the threads, shaped to pack as
   little twice as possible (a tile re-packs its own A rows and B columns). */
static void mt__gemm_plan(mt__gemm *g, int threads) {
    const mt__arch *ar = g->ar;
    int64_t mp = mt__ceil_div(g->m, ar->mr), np = mt__ceil_div(g->n, ar->nr), want = 1, per, tm, best_tm = 1,
            best_tn = 1;
    double flops = 2.0 * (double)g->m * (double)g->n * (double)g->k * (double)g->nbatch, best = -1;
    if (threads > 1 && flops >= 2e6) want = flops >= 1e8 ? 2 * (int64_t)threads : threads;
    per = mt__ceil_div(want, g->nbatch);
    for (tm = 1; tm <= mt__min64(per, mp); tm++) {
        int64_t tn = mt__min64(mt__ceil_div(per, tm), np);
        double cost = (double)tm * (double)g->n + (double)tn * (double)g->m;
        if (tm * tn < per) cost += 1e30 * (double)(per - tm * tn);
        if (best < 0 || cost < best) {
            best = cost;
            best_tm = tm;
            best_tn = tn;
        }
    }
    g->tile_m = mt__ceil_div(mp, best_tm) * ar->mr;
    g->tile_n = mt__ceil_div(np, best_tn) * ar->nr;
    g->tm = mt__ceil_div(g->m, g->tile_m);
    g->tn = mt__ceil_div(g->n, g->tile_n);
    g->kc = mt__min64(ar->kc, g->k);
    g->mc = mt__min64(ar->mc, g->tile_m);
    g->nc = mt__min64(ar->nc, g->tile_n);
    /* a tile wider than nc would re-pack its A for each column block: keep
       the whole packed A instead when it is small enough */
    g->cache_a = g->tile_n > g->nc && g->tile_m * g->k <= MT__A_CACHE_FLOATS;
    g->a_floats = ((g->cache_a ? g->tile_m * g->k : g->mc * g->kc) + 15) / 16 * 16;
}

/* C = beta C over every batch (k == 0 or alpha == 0). */
static void mt__gemm_scale_c(const mt__gemm *g) {
    int64_t bi, i, j;
    for (bi = 0; bi < g->nbatch; bi++) {
        float *C = g->c + (g->c_off ? g->c_off[bi] : 0);
        for (i = 0; i < g->m; i++)
            for (j = 0; j < g->n; j++) C[i * g->c_rs + j] = g->beta == 0.0f ? 0.0f : g->beta * C[i * g->c_rs + j];
    }
}

/* Matrix-vector products (m == 1 or n == 1): one dot product per output,
   in k order. */
typedef struct mt__gemv {
    const mt__gemm *g;
    int64_t len;   /* outputs per batch */
} mt__gemv;

static void mt__gemv_run(void *ctx, int64_t o0, int64_t o1) {
    const mt__gemv *v = (const mt__gemv *)ctx;
    const mt__gemm *g = v->g;
    int64_t o, kk;
    for (o = o0; o < o1; o++) {
        int64_t bi = o / v->len, idx = o % v->len;
        int64_t i = g->m == 1 ? 0 : idx, j = g->m == 1 ? idx : 0;
        const float *A = g->a + (g->a_off ? g->a_off[bi] : 0) + i * g->a_rs;
        const float *B = g->b + (g->b_off ? g->b_off[bi] : 0) + j * g->b_cs;
        float *C = g->c + (g->c_off ? g->c_off[bi] : 0) + i * g->c_rs + j;
        float acc = 0.0f;
        if (g->a_cs == 1 && g->b_rs == 1) {
            /* eight partial sums in a fixed pattern (vectorisable) */
            float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            int q;
            for (kk = 0; kk + 8 <= g->k; kk += 8)
                for (q = 0; q < 8; q++) part[q] += A[kk + q] * B[kk + q];
            acc = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
            for (; kk < g->k; kk++) acc += A[kk] * B[kk];
        } else {
            for (kk = 0; kk < g->k; kk++) acc += A[kk * g->a_cs] * B[kk * g->b_rs];
        }
        acc *= g->alpha;
        *C = g->beta == 0.0f ? acc : acc + g->beta * *C;
    }
}

static mt_status mt__gemm_run(const char *func, mt__gemm *g) {
    int threads;
    int64_t ntasks;
    mt_status s;
    if (g->m == 0 || g->n == 0 || g->nbatch == 0) return MT_OK;
    if (g->k == 0 || g->alpha == 0.0f) {
        mt__gemm_scale_c(g);
        return MT_OK;
    }
    if ((g->m == 1 || g->n == 1) && !g->conv) {
        mt__gemv v;
        v.g = g;
        v.len = g->m == 1 ? g->n : g->m;
        mt_parallel_for(v.len * g->nbatch, mt__max64(1, 65536 / mt__max64(1, g->k)), mt__gemv_run, &v);
        return MT_OK;
    }
    g->ar = mt__arch_get();
    threads = mt_get_num_threads();
    mt__gemm_plan(g, threads);
    ntasks = g->nbatch * g->tm * g->tn;
    s = mt__slots_alloc(func, &g->ws, (int)mt__min64(threads, ntasks),
                        (size_t)(g->a_floats + g->kc * mt__ceil_div(g->nc, g->ar->nr) * g->ar->nr));
    if (s != MT_OK) return s;
    mt_parallel_for(ntasks, 1, mt__gemm_chunk, g);
    MT_FREE(g->ws.raw);
    if (g->ws.failed) return mt__fail(MT_ERR_MEMORY, func, "cannot allocate GEMM workspace");
    return MT_OK;
}

static void mt__gemm_init(mt__gemm *g) { memset(g, 0, sizeof *g); g->nbatch = 1; g->alpha = 1.0f; }

MTDEF mt_status mt_gemm(mt_trans ta, mt_trans tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                        int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    mt__gemm g;
    int64_t acols = ta ? m : k, bcols = tb ? k : n;
    if ((ta != MT_NO_TRANS && ta != MT_TRANS) || (tb != MT_NO_TRANS && tb != MT_TRANS))
        return MT__FAIL(MT_ERR_ARGUMENT, "transpose flags must be MT_NO_TRANS or MT_TRANS (got %d, %d)", (int)ta,
                        (int)tb);
    if (m < 0 || n < 0 || k < 0)
        return MT__FAIL(MT_ERR_SHAPE, "negative size m=%lld n=%lld k=%lld", (long long)m, (long long)n, (long long)k);
    if (lda < mt__max64(1, acols))
        return MT__FAIL(MT_ERR_ARGUMENT, "lda %lld < %lld (columns of A as stored)", (long long)lda, (long long)acols);
    if (ldb < mt__max64(1, bcols))
        return MT__FAIL(MT_ERR_ARGUMENT, "ldb %lld < %lld (columns of B as stored)", (long long)ldb, (long long)bcols);
    if (ldc < mt__max64(1, n)) return MT__FAIL(MT_ERR_ARGUMENT, "ldc %lld < n = %lld", (long long)ldc, (long long)n);
    if (m && n && !c) return MT__FAIL(MT_ERR_ARGUMENT, "C is NULL");
    if (m && n && k && alpha != 0.0f && (!a || !b)) return MT__FAIL(MT_ERR_ARGUMENT, "A or B is NULL");
    mt__gemm_init(&g);
    g.m = m;
    g.n = n;
    g.k = k;
    g.alpha = alpha;
    g.beta = beta;
    g.a = a;
    g.a_rs = ta ? 1 : lda;
    g.a_cs = ta ? lda : 1;
    g.b = b;
    g.b_rs = tb ? 1 : ldb;
    g.b_cs = tb ? ldb : 1;
    g.c = c;
    g.c_rs = ldc;
    return mt__gemm_run("mt_gemm", &g);
}

/* ---- tensor helpers -------------------------------------------------- */

static mt_status mt__need_f32(const char *func, const char *name, const mt_tensor *t) {
    if (!t || !t->data) return mt__fail(MT_ERR_ARGUMENT, func, "%s is empty", name);
    if (t->dtype != MT_F32)
        return mt__fail(MT_ERR_DTYPE, func, "%s is %s; the nn kernels compute in float32 (see mt_to_dtype)", name,
                        mt_dtype_name(t->dtype));
    return MT_OK;
}

/* True when `out` (allocated) cannot be written directly: it shares storage
   with an input or is not contiguous. */
static int mt__out_needs_temp(const mt_tensor *out, const mt_tensor *a, const mt_tensor *b, const mt_tensor *c,
                              const mt_tensor *d) {
    if (!out->data) return 0;
    if (!mt_is_contiguous(out)) return 1;
    return (a && a->storage == out->storage) || (b && b->storage == out->storage) ||
           (c && c->storage == out->storage) || (d && d->storage == out->storage);
}

/* Gives the caller a contiguous, unshared tensor to compute into: `out`
   itself, or a new temporary `*tmp` to be copied into `out` by
   mt__out_finish. */
static mt_status mt__out_begin(const char *func, mt_tensor *out, mt_tensor *tmp, int temp, int ndim,
                               const int64_t *shape, mt_tensor **dst) {
    mt_status s = mt__prepare_out(func, out, MT_F32, ndim, shape);
    if (s != MT_OK) return s;
    memset(tmp, 0, sizeof *tmp);
    if (!temp) {
        *dst = out;
        return MT_OK;
    }
    s = mt__prepare_out(func, tmp, MT_F32, ndim, shape);
    *dst = tmp;
    return s;
}

static mt_status mt__out_finish(mt_tensor *out, mt_tensor *tmp, mt_status s) {
    if (tmp->data) {
        if (s == MT_OK) s = mt_copy(out, tmp);
        mt_release(tmp);
    }
    return s;
}

/* ---- matmul ---------------------------------------------------------- */

MTDEF mt_status mt_matmul(mt_tensor *out, const mt_tensor *a, const mt_tensor *b) {
    int64_t m, k, kb, n, bshape[MT_MAX_DIMS], astr[MT_MAX_DIMS], bstr[MT_MAX_DIMS], oshape[MT_MAX_DIMS], nbatch = 1;
    int64_t *offs = NULL;
    int an, bn, nb, i, ond = 0;
    mt__gemm g;
    mt_tensor tmp, *dst;
    mt_status s;
    char sa[160], sb[160];
    if (!out) return MT__FAIL(MT_ERR_ARGUMENT, "output tensor is NULL");
    if ((s = mt__need_f32("mt_matmul", "a", a)) != MT_OK) return s;
    if ((s = mt__need_f32("mt_matmul", "b", b)) != MT_OK) return s;
    mt__shape_fmt(sa, sizeof sa, a->ndim, a->shape);
    mt__shape_fmt(sb, sizeof sb, b->ndim, b->shape);
    an = a->ndim;
    bn = b->ndim;
    if (an < 1 || bn < 1)
        return MT__FAIL(MT_ERR_SHAPE, "both operands need at least 1 dimension, got a %s and b %s", sa, sb);
    mt__gemm_init(&g);
    if (an == 1) {
        m = 1;
        k = a->shape[0];
        g.a_rs = 0;
        g.a_cs = a->stride[0];
    } else {
        m = a->shape[an - 2];
        k = a->shape[an - 1];
        g.a_rs = a->stride[an - 2];
        g.a_cs = a->stride[an - 1];
    }
    if (bn == 1) {
        kb = b->shape[0];
        n = 1;
        g.b_rs = b->stride[0];
        g.b_cs = 0;
    } else {
        kb = b->shape[bn - 2];
        n = b->shape[bn - 1];
        g.b_rs = b->stride[bn - 2];
        g.b_cs = b->stride[bn - 1];
    }
    if (k != kb)
        return MT__FAIL(MT_ERR_SHAPE, "a %s and b %s do not multiply: a has %lld columns, b has %lld rows", sa, sb,
                        (long long)k, (long long)kb);
    nb = mt__max64(an - 2, bn - 2) > 0 ? (int)mt__max64(an - 2, bn - 2) : 0;
    for (i = 0; i < nb; i++) {
        int ai = i - (nb - (an > 2 ? an - 2 : 0)), bj = i - (nb - (bn > 2 ? bn - 2 : 0));
        int64_t da = ai >= 0 ? a->shape[ai] : 1, db = bj >= 0 ? b->shape[bj] : 1;
        if (da != db && da != 1 && db != 1)
            return MT__FAIL(MT_ERR_SHAPE, "batch dimensions of a %s and b %s do not broadcast (dim %d: %lld vs %lld)",
                            sa, sb, i, (long long)da, (long long)db);
        bshape[i] = da == 1 ? db : da;
        astr[i] = ai >= 0 && da != 1 ? a->stride[ai] : 0;
        bstr[i] = bj >= 0 && db != 1 ? b->stride[bj] : 0;
        nbatch *= bshape[i];
        oshape[ond++] = bshape[i];
    }
    if (an > 1) oshape[ond++] = m;
    if (bn > 1) oshape[ond++] = n;
    s = mt__out_begin("mt_matmul", out, &tmp, mt__out_needs_temp(out, a, b, NULL, NULL), ond, oshape, &dst);
    if (s != MT_OK) return s;
    if (nbatch > 1) {
        int64_t bi;
        offs = (int64_t *)MT_MALLOC(sizeof(int64_t) * 3 * (size_t)nbatch);
        if (!offs) return mt__out_finish(out, &tmp, MT__FAIL(MT_ERR_MEMORY, "cannot allocate batch offsets"));
        for (bi = 0; bi < nbatch; bi++) {
            int64_t rem = bi, oa = 0, ob = 0;
            for (i = nb - 1; i >= 0; i--) {
                int64_t idx = rem % bshape[i];
                rem /= bshape[i];
                oa += idx * astr[i];
                ob += idx * bstr[i];
            }
            offs[bi] = oa;
            offs[nbatch + bi] = ob;
            offs[2 * nbatch + bi] = bi * m * n;
        }
        g.a_off = offs;
        g.b_off = offs + nbatch;
        g.c_off = offs + 2 * nbatch;
    }
    g.m = m;
    g.n = n;
    g.k = k;
    g.nbatch = nbatch;
    g.a = (const float *)a->data;
    g.b = (const float *)b->data;
    g.c = (float *)dst->data;
    g.c_rs = n;
    s = mt__gemm_run("mt_matmul", &g);
    MT_FREE(offs);
    return mt__out_finish(out, &tmp, s);
}

/* ---- linear ---------------------------------------------------------- */

/* Row stride when the leading dims of t (all but the last) enumerate rows
   at a constant stride; 0 when they do not (or when there is one row). */
static int mt__rows_uniform(const mt_tensor *t, int64_t *rs) {
    int64_t expect = -1;
    int d;
    *rs = 0;
    for (d = t->ndim - 2; d >= 0; d--) {
        if (t->shape[d] == 1) continue;
        if (expect < 0) {
            *rs = t->stride[d];
        } else if (t->stride[d] != expect) {
            return 0;
        }
        expect = t->stride[d] * t->shape[d];
    }
    return 1;
}

MTDEF mt_status mt_linear(mt_tensor *out, const mt_tensor *x, const mt_tensor *weight, const mt_tensor *bias) {
    int64_t oshape[MT_MAX_DIMS], in, of, m = 1, rs, i, j;
    mt_tensor xc, tmp, *dst;
    mt__gemm g;
    mt_status s;
    char sx[160], sw[160];
    int d;
    if (!out) return MT__FAIL(MT_ERR_ARGUMENT, "output tensor is NULL");
    if ((s = mt__need_f32("mt_linear", "x", x)) != MT_OK) return s;
    if ((s = mt__need_f32("mt_linear", "weight", weight)) != MT_OK) return s;
    mt__shape_fmt(sx, sizeof sx, x->ndim, x->shape);
    mt__shape_fmt(sw, sizeof sw, weight->ndim, weight->shape);
    if (x->ndim < 1) return MT__FAIL(MT_ERR_SHAPE, "x %s needs at least 1 dimension", sx);
    if (weight->ndim != 2) return MT__FAIL(MT_ERR_SHAPE, "weight %s must be 2-d [out_features, in_features]", sw);
    in = weight->shape[1];
    of = weight->shape[0];
    if (x->shape[x->ndim - 1] != in)
        return MT__FAIL(MT_ERR_SHAPE, "x %s has %lld features, weight %s expects %lld", sx,
                        (long long)x->shape[x->ndim - 1], sw, (long long)in);
    if (bias) {
        char sbias[160];
        if ((s = mt__need_f32("mt_linear", "bias", bias)) != MT_OK) return s;
        mt__shape_fmt(sbias, sizeof sbias, bias->ndim, bias->shape);
        if (bias->ndim != 1 || bias->shape[0] != of)
            return MT__FAIL(MT_ERR_SHAPE, "bias %s must be [%lld] to match weight %s", sbias, (long long)of, sw);
    }
    for (d = 0; d < x->ndim - 1; d++) {
        oshape[d] = x->shape[d];
        m *= x->shape[d];
    }
    oshape[x->ndim - 1] = of;
    s = mt__out_begin("mt_linear", out, &tmp, mt__out_needs_temp(out, x, weight, bias, NULL), x->ndim, oshape, &dst);
    if (s != MT_OK) return s;
    memset(&xc, 0, sizeof xc);
    if (!mt__rows_uniform(x, &rs)) {
        s = mt_contiguous(&xc, x);
        if (s != MT_OK) return mt__out_finish(out, &tmp, s);
        x = &xc;
        rs = in;
    }
    if (bias) {
        float *o = (float *)dst->data;
        const float *bp = (const float *)bias->data;
        for (i = 0; i < m; i++)
            for (j = 0; j < of; j++) o[i * of + j] = bp[j * bias->stride[0]];
    }
    mt__gemm_init(&g);
    g.m = m;
    g.n = of;
    g.k = in;
    g.beta = bias ? 1.0f : 0.0f;
    g.a = (const float *)x->data;
    g.a_rs = rs;
    g.a_cs = x->stride[x->ndim - 1];
    g.b = (const float *)weight->data;
    g.b_rs = weight->stride[1];
    g.b_cs = weight->stride[0];
    g.c = (float *)dst->data;
    g.c_rs = of;
    s = mt__gemm_run("mt_linear", &g);
    mt_release(&xc);
    return mt__out_finish(out, &tmp, s);
}

/* ---- conv2d ---------------------------------------------------------- */

typedef struct mt__conv_params {
    int64_t n, c, h, w;          /* input */
    int64_t co, cig, cog, kh, kw; /* channels out, in and out per group, kernel */
    int64_t sh, sw, ph, pw, dh, dw, oph, opw, groups;
    int64_t ho, wo;
} mt__conv_params;

/* Checks the operands and the descriptor shared by conv2d and
   conv_transpose2d and fills `p` (all but the output size). */
static mt_status mt__conv_check(const char *func, const mt_tensor *out, const mt_tensor *x, const mt_tensor *w,
                                const mt_tensor *bias, const mt_conv2d_desc *d, int transpose, mt__conv_params *p) {
    char sx[160], sw[160];
    mt_status s;
    int i;
    if (!out) return mt__fail(MT_ERR_ARGUMENT, func, "output tensor is NULL");
    if ((s = mt__need_f32(func, "x", x)) != MT_OK) return s;
    if ((s = mt__need_f32(func, "weight", w)) != MT_OK) return s;
    if (bias && (s = mt__need_f32(func, "bias", bias)) != MT_OK) return s;
    mt__shape_fmt(sx, sizeof sx, x->ndim, x->shape);
    mt__shape_fmt(sw, sizeof sw, w->ndim, w->shape);
    if (x->ndim != 4) return mt__fail(MT_ERR_SHAPE, func, "x %s must be 4-d [N, C, H, W]", sx);
    if (w->ndim != 4)
        return mt__fail(MT_ERR_SHAPE, func, "weight %s must be 4-d %s", sw,
                        transpose ? "[C_in, C_out / groups, kH, kW]" : "[C_out, C_in / groups, kH, kW]");
    if (d) {
        for (i = 0; i < 2; i++)
            if (d->stride[i] < 0 || d->padding[i] < 0 || d->dilation[i] < 0 || d->output_padding[i] < 0)
                return mt__fail(MT_ERR_ARGUMENT, func,
                                "stride (%d, %d), padding (%d, %d), dilation (%d, %d) and output_padding (%d, %d) "
                                "must not be negative",
                                d->stride[0], d->stride[1], d->padding[0], d->padding[1], d->dilation[0],
                                d->dilation[1], d->output_padding[0], d->output_padding[1]);
        if (d->groups < 0) return mt__fail(MT_ERR_ARGUMENT, func, "groups %d is negative", d->groups);
    }
    p->sh = d && d->stride[0] ? d->stride[0] : 1;
    p->sw = d && d->stride[1] ? d->stride[1] : 1;
    p->ph = d ? d->padding[0] : 0;
    p->pw = d ? d->padding[1] : 0;
    p->dh = d && d->dilation[0] ? d->dilation[0] : 1;
    p->dw = d && d->dilation[1] ? d->dilation[1] : 1;
    p->oph = d ? d->output_padding[0] : 0;
    p->opw = d ? d->output_padding[1] : 0;
    p->groups = d && d->groups ? d->groups : 1;
    p->n = x->shape[0];
    p->c = x->shape[1];
    p->h = x->shape[2];
    p->w = x->shape[3];
    p->kh = w->shape[2];
    p->kw = w->shape[3];
    if (p->c % p->groups)
        return mt__fail(MT_ERR_SHAPE, func, "x %s: %lld input channels do not split into %lld groups", sx,
                        (long long)p->c, (long long)p->groups);
    if (!transpose) {
        p->co = w->shape[0];
        p->cig = w->shape[1];
        if (p->co % p->groups)
            return mt__fail(MT_ERR_SHAPE, func, "weight %s: %lld output channels do not split into %lld groups", sw,
                            (long long)p->co, (long long)p->groups);
        if (p->cig * p->groups != p->c)
            return mt__fail(MT_ERR_SHAPE, func,
                            "weight %s expects %lld input channels per group, x %s has %lld channels in %lld groups",
                            sw, (long long)p->cig, sx, (long long)p->c, (long long)p->groups);
        p->cog = p->co / p->groups;
    } else {
        if (w->shape[0] != p->c)
            return mt__fail(MT_ERR_SHAPE, func, "weight %s expects %lld input channels, x %s has %lld", sw,
                            (long long)w->shape[0], sx, (long long)p->c);
        p->cig = p->c / p->groups;
        p->cog = w->shape[1];
        p->co = p->cog * p->groups;
        if ((p->oph >= p->sh && p->oph >= p->dh) || (p->opw >= p->sw && p->opw >= p->dw))
            return mt__fail(MT_ERR_ARGUMENT, func,
                            "output_padding (%lld, %lld) must be smaller than the stride (%lld, %lld) or the "
                            "dilation (%lld, %lld)",
                            (long long)p->oph, (long long)p->opw, (long long)p->sh, (long long)p->sw,
                            (long long)p->dh, (long long)p->dw);
    }
    if (bias && (bias->ndim != 1 || bias->shape[0] != p->co)) {
        char sb[160];
        mt__shape_fmt(sb, sizeof sb, bias->ndim, bias->shape);
        return mt__fail(MT_ERR_SHAPE, func, "bias %s must be [%lld] (output channels)", sb, (long long)p->co);
    }
    if (!transpose) {
        int64_t eh = p->h + 2 * p->ph - p->dh * (p->kh - 1) - 1, ew = p->w + 2 * p->pw - p->dw * (p->kw - 1) - 1;
        if (eh < 0 || ew < 0 || p->kh < 1 || p->kw < 1)
            return mt__fail(MT_ERR_SHAPE, func,
                            "kernel %lldx%lld (dilation %lld, %lld) is larger than the padded input %lldx%lld of x %s",
                            (long long)p->kh, (long long)p->kw, (long long)p->dh, (long long)p->dw,
                            (long long)(p->h + 2 * p->ph), (long long)(p->w + 2 * p->pw), sx);
        p->ho = eh / p->sh + 1;
        p->wo = ew / p->sw + 1;
    } else {
        p->ho = (p->h - 1) * p->sh - 2 * p->ph + p->dh * (p->kh - 1) + p->oph + 1;
        p->wo = (p->w - 1) * p->sw - 2 * p->pw + p->dw * (p->kw - 1) + p->opw + 1;
        if (p->ho < 1 || p->wo < 1 || p->kh < 1 || p->kw < 1 || p->h < 1 || p->w < 1)
            return mt__fail(MT_ERR_SHAPE, func, "output size %lldx%lld of x %s and weight %s is not positive",
                            (long long)p->ho, (long long)p->wo, sx, sw);
    }
    return MT_OK;
}

/* out[n, c, :, :] = bias[c] (or 0) for every image and channel. */
static void mt__fill_bias(float *o, const mt_tensor *bias, int64_t n, int64_t c, int64_t hw) {
    int64_t i, j, q;
    for (i = 0; i < n; i++)
        for (j = 0; j < c; j++) {
            float v = bias ? ((const float *)bias->data)[j * bias->stride[0]] : 0.0f;
            float *oc = o + (i * c + j) * hw;
            for (q = 0; q < hw; q++) oc[q] = v;
        }
}

/* A weight tensor whose last three dims are contiguous (one GEMM row per
   output channel); copies when they are not. */
static mt_status mt__weight_rows(const mt_tensor *w, mt_tensor *tmp, const mt_tensor **use) {
    *use = w;
    if (w->stride[3] == 1 && w->stride[2] == w->shape[3] && w->stride[1] == w->shape[2] * w->shape[3]) return MT_OK;
    *use = tmp;
    return mt_contiguous(tmp, w);
}

MTDEF mt_status mt_conv2d(mt_tensor *out, const mt_tensor *x, const mt_tensor *w, const mt_tensor *bias,
                          const mt_conv2d_desc *d) {
    mt__conv_params p;
    mt__conv_geom geom;
    mt__gemm g;
    mt_tensor tmp, wtmp, *dst;
    const mt_tensor *wu;
    int64_t oshape[4], *offs = NULL, nb, bi, kk;
    mt_status s = mt__conv_check("mt_conv2d", out, x, w, bias, d, 0, &p);
    if (s != MT_OK) return s;
    oshape[0] = p.n;
    oshape[1] = p.co;
    oshape[2] = p.ho;
    oshape[3] = p.wo;
    s = mt__out_begin("mt_conv2d", out, &tmp, mt__out_needs_temp(out, x, w, bias, NULL), 4, oshape, &dst);
    if (s != MT_OK) return s;
    if (mt_numel(dst) == 0) return mt__out_finish(out, &tmp, MT_OK);
    memset(&wtmp, 0, sizeof wtmp);
    if ((s = mt__weight_rows(w, &wtmp, &wu)) != MT_OK) return mt__out_finish(out, &tmp, s);
    mt__fill_bias((float *)dst->data, bias, p.n, p.co, p.ho * p.wo);
    kk = p.cig * p.kh * p.kw;
    nb = p.n * p.groups;
    offs = (int64_t *)MT_MALLOC(sizeof(int64_t) * 3 * (size_t)nb);
    if (!offs) {
        mt_release(&wtmp);
        return mt__out_finish(out, &tmp, MT__FAIL(MT_ERR_MEMORY, "cannot allocate batch offsets"));
    }
    for (bi = 0; bi < nb; bi++) {
        int64_t n = bi / p.groups, gi = bi % p.groups;
        offs[bi] = gi * p.cog * wu->stride[0];
        offs[nb + bi] = n * x->stride[0] + gi * p.cig * x->stride[1];
        offs[2 * nb + bi] = (n * p.co + gi * p.cog) * p.ho * p.wo;
    }
    mt__gemm_init(&g);
    g.m = p.cog;
    g.n = p.ho * p.wo;
    g.k = kk;
    g.nbatch = nb;
    g.beta = 1.0f;
    g.a = (const float *)wu->data;
    g.a_rs = wu->stride[0];
    g.a_cs = 1;
    g.a_off = offs;
    g.b = (const float *)x->data;
    g.b_off = offs + nb;
    g.c = (float *)dst->data;
    g.c_rs = p.ho * p.wo;
    g.c_off = offs + 2 * nb;
    if (p.kh == 1 && p.kw == 1 && p.sh == 1 && p.sw == 1 && p.ph == 0 && p.pw == 0 && x->stride[3] == 1 &&
        (x->stride[2] == p.w || p.h == 1)) {
        /* 1x1: B is the input itself, [C_in, H W] */
        g.b_rs = x->stride[1];
        g.b_cs = 1;
    } else {
        geom.c = p.cig;
        geom.h = p.h;
        geom.w = p.w;
        geom.cs = x->stride[1];
        geom.hs = x->stride[2];
        geom.ws = x->stride[3];
        geom.kh = p.kh;
        geom.kw = p.kw;
        geom.sh = p.sh;
        geom.sw = p.sw;
        geom.ph = p.ph;
        geom.pw = p.pw;
        geom.dh = p.dh;
        geom.dw = p.dw;
        geom.ho = p.ho;
        geom.wo = p.wo;
        g.conv = &geom;
    }
    s = mt__gemm_run("mt_conv2d", &g);
    MT_FREE(offs);
    mt_release(&wtmp);
    return mt__out_finish(out, &tmp, s);
}

/* ---- conv_transpose2d: GEMM into columns, then a gather ---------------- */

typedef struct mt__col2im {
    const mt__conv_params *p;
    const float *col;  /* [groups][C_out/g * kH * kW][H * W] of one image */
    float *out;        /* [C_out][H_out][W_out] of one image, holds the bias */
} mt__col2im;

/* Output rows (channel, oy): each output sums the columns that land on it,
   kernel taps in a fixed order. */
static void mt__col2im_rows(void *ctx, int64_t r0, int64_t r1) {
    const mt__col2im *c = (const mt__col2im *)ctx;
    const mt__conv_params *p = c->p;
    int64_t r, ox, u, v, hw = p->h * p->w;
    for (r = r0; r < r1; r++) {
        int64_t co = r / p->ho, oy = r % p->ho;
        const float *cc = c->col + co * p->kh * p->kw * hw; /* groups are consecutive channel blocks */
        float *o = c->out + r * p->wo;
        for (ox = 0; ox < p->wo; ox++) {
            float acc = o[ox];
            for (u = 0; u < p->kh; u++) {
                int64_t ty = oy + p->ph - u * p->dh, iy;
                if (ty < 0 || ty % p->sh) continue;
                iy = ty / p->sh;
                if (iy >= p->h) continue;
                for (v = 0; v < p->kw; v++) {
                    int64_t tx = ox + p->pw - v * p->dw, ix;
                    if (tx < 0 || tx % p->sw) continue;
                    ix = tx / p->sw;
                    if (ix >= p->w) continue;
                    acc += cc[(u * p->kw + v) * hw + iy * p->w + ix];
                }
            }
            o[ox] = acc;
        }
    }
}

MTDEF mt_status mt_conv_transpose2d(mt_tensor *out, const mt_tensor *x, const mt_tensor *w, const mt_tensor *bias,
                                    const mt_conv2d_desc *d) {
    mt__conv_params p;
    mt__gemm g;
    mt__col2im cj;
    mt_tensor tmp, wtmp, xtmp, *dst;
    const mt_tensor *wu, *xu = x;
    int64_t oshape[4], *offs = NULL, n, gi, kk, hw;
    float *col = NULL;
    mt_status s = mt__conv_check("mt_conv_transpose2d", out, x, w, bias, d, 1, &p);
    if (s != MT_OK) return s;
    oshape[0] = p.n;
    oshape[1] = p.co;
    oshape[2] = p.ho;
    oshape[3] = p.wo;
    s = mt__out_begin("mt_conv_transpose2d", out, &tmp, mt__out_needs_temp(out, x, w, bias, NULL), 4, oshape, &dst);
    if (s != MT_OK) return s;
    if (mt_numel(dst) == 0) return mt__out_finish(out, &tmp, MT_OK);
    memset(&wtmp, 0, sizeof wtmp);
    memset(&xtmp, 0, sizeof xtmp);
    if ((s = mt__weight_rows(w, &wtmp, &wu)) != MT_OK) return mt__out_finish(out, &tmp, s);
    if (!(x->stride[3] == 1 && (x->stride[2] == p.w || p.h == 1))) {
        if ((s = mt_contiguous(&xtmp, x)) != MT_OK) {
            mt_release(&wtmp);
            return mt__out_finish(out, &tmp, s);
        }
        xu = &xtmp;
    }
    mt__fill_bias((float *)dst->data, bias, p.n, p.co, p.ho * p.wo);
    kk = p.kh * p.kw;
    hw = p.h * p.w;
    col = (float *)MT_MALLOC(sizeof(float) * (size_t)(p.co * kk * hw));
    offs = (int64_t *)MT_MALLOC(sizeof(int64_t) * 3 * (size_t)p.groups);
    if (!col || !offs) {
        MT_FREE(col);
        MT_FREE(offs);
        mt_release(&wtmp);
        mt_release(&xtmp);
        return mt__out_finish(out, &tmp,
                              MT__FAIL(MT_ERR_MEMORY, "cannot allocate the %lld-float column buffer",
                                       (long long)(p.co * kk * hw)));
    }
    for (n = 0; n < p.n && s == MT_OK; n++) {
        /* col[g][(co, u, v), (iy, ix)] = sum_ci w[g C_in/g + ci][co][u][v] x[n][g C_in/g + ci][iy][ix] */
        for (gi = 0; gi < p.groups; gi++) {
            offs[gi] = gi * p.cig * wu->stride[0];
            offs[p.groups + gi] = n * xu->stride[0] + gi * p.cig * xu->stride[1];
            offs[2 * p.groups + gi] = gi * p.cog * kk * hw;
        }
        mt__gemm_init(&g);
        g.m = p.cog * kk;
        g.n = hw;
        g.k = p.cig;
        g.nbatch = p.groups;
        g.a = (const float *)wu->data;
        g.a_rs = 1;
        g.a_cs = wu->stride[0];
        g.a_off = offs;
        g.b = (const float *)xu->data;
        g.b_rs = xu->stride[1];
        g.b_cs = 1;
        g.b_off = offs + p.groups;
        g.c = col;
        g.c_rs = hw;
        g.c_off = offs + 2 * p.groups;
        s = mt__gemm_run("mt_conv_transpose2d", &g);
        if (s != MT_OK) break;
        cj.p = &p;
        cj.col = col;
        cj.out = (float *)dst->data + n * p.co * p.ho * p.wo;
        mt_parallel_for(p.co * p.ho, mt__max64(1, 4096 / mt__max64(1, p.wo * kk)), mt__col2im_rows, &cj);
    }
    MT_FREE(col);
    MT_FREE(offs);
    mt_release(&wtmp);
    mt_release(&xtmp);
    return mt__out_finish(out, &tmp, s);
}

/* ---- attention ------------------------------------------------------- */

/* A query tile is `w` queries (the B-panel width nr), held in vector lanes.
   Per key block of MT__ATT_BC keys:
     S^T [keys, w]  = K_block (packed as A panels) x (scale log2(e) Q_tile)^T
     S^T += mask log2(e), online softmax down the keys in base 2 (m, l and
     corr = 2^(m_old - m_new) per query lane)
     O^T [Dv, w]    = corr O^T + V_block^T (A panels) x S^T (read as a B panel)
   S^T is written by the micro-kernel in exactly the layout the second
   product reads, every reduction runs down the rows, lane-parallel, and the
   rescaling by corr is the micro-kernel's per-column beta.
   Memory per task: K and V of one head packed, plus O(w (Dv + MT__ATT_BC)). */

#define MT__ATT_BC 252 /* keys per block: a multiple of every path's mr (14, 6, 4) */
#define MT__LOG2E 1.44269504088896341f

/* s[j * w + i], j < rows (base-2 logits): m[i] = running max, l[i] =
   running sum; sets corr[i] = 2^(m_old - m_new) and s = 2^(s - m_new). A
   query whose keys so far are all -inf keeps m = -inf and contributes
   zeros. */
static void mt__softmax_block_c(float *s, int64_t rows, int w, float *m, float *l, float *corr) {
    float mx[64], ms[64], sum[64];
    int64_t j;
    int i;
    for (i = 0; i < w; i++) {
        mx[i] = m[i];
        sum[i] = 0.0f;
    }
    for (j = 0; j < rows; j++)
        for (i = 0; i < w; i++) mx[i] = s[j * w + i] > mx[i] ? s[j * w + i] : mx[i];
    for (i = 0; i < w; i++) {
        ms[i] = mx[i] == -INFINITY ? 0.0f : mx[i];
        corr[i] = exp2f(m[i] - ms[i]);
        m[i] = mx[i];
    }
    for (j = 0; j < rows; j++)
        for (i = 0; i < w; i++) {
            float e = exp2f(s[j * w + i] - ms[i]);
            s[j * w + i] = e;
            sum[i] += e;
        }
    for (i = 0; i < w; i++) l[i] = l[i] * corr[i] + sum[i];
}

#if defined(MT__X86)
/* 2^x within 2 ulp: x = n + f, |f| <= 1/2, 2^f by its degree-6 Taylor
   polynomial (relative error < 1.3e-7), 2^n by scalef; 2^-inf = 0, NaN
   stays NaN. */
MT__AVX512 MT__INLINE __m512 mt__exp2_512(__m512 x) {
    __m512 n, f, p;
    x = _mm512_min_ps(_mm512_set1_ps(130.0f), _mm512_max_ps(_mm512_set1_ps(-160.0f), x));
    n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    f = _mm512_sub_ps(x, n);
    p = _mm512_set1_ps(1.5403530393381606e-4f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291076284772e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504108664821580e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022650695910071e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718055994531e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* Two interleaved chains per vector (even and odd rows) so the max and the
   sum are not bound by the latency of one dependency chain; the pairing is
   fixed, so the result is too. */
MT__AVX512 static void mt__softmax_block_avx512(float *s, int64_t rows, int w, float *m, float *l, float *corr) {
    int v;
    int64_t j;
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    for (v = 0; v + 16 <= w; v += 16) {
        __m512 mold = _mm512_loadu_ps(m + v), mx = mold, mx2 = ninf, ms, c;
        __m512 sum = _mm512_setzero_ps(), sum2 = _mm512_setzero_ps();
        for (j = 0; j + 1 < rows; j += 2) {
            mx = _mm512_max_ps(mx, _mm512_loadu_ps(s + j * w + v));
            mx2 = _mm512_max_ps(mx2, _mm512_loadu_ps(s + (j + 1) * w + v));
        }
        if (j < rows) mx = _mm512_max_ps(mx, _mm512_loadu_ps(s + j * w + v));
        mx = _mm512_max_ps(mx, mx2);
        ms = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(mx, ninf, _CMP_EQ_OQ), mx, _mm512_setzero_ps());
        c = mt__exp2_512(_mm512_sub_ps(mold, ms));
        for (j = 0; j + 1 < rows; j += 2) {
            __m512 e = mt__exp2_512(_mm512_sub_ps(_mm512_loadu_ps(s + j * w + v), ms));
            __m512 e2 = mt__exp2_512(_mm512_sub_ps(_mm512_loadu_ps(s + (j + 1) * w + v), ms));
            _mm512_storeu_ps(s + j * w + v, e);
            _mm512_storeu_ps(s + (j + 1) * w + v, e2);
            sum = _mm512_add_ps(sum, e);
            sum2 = _mm512_add_ps(sum2, e2);
        }
        if (j < rows) {
            __m512 e = mt__exp2_512(_mm512_sub_ps(_mm512_loadu_ps(s + j * w + v), ms));
            _mm512_storeu_ps(s + j * w + v, e);
            sum = _mm512_add_ps(sum, e);
        }
        _mm512_storeu_ps(l + v, _mm512_fmadd_ps(_mm512_loadu_ps(l + v), c, _mm512_add_ps(sum, sum2)));
        _mm512_storeu_ps(m + v, mx);
        _mm512_storeu_ps(corr + v, c);
    }
}

/* 2^x as mt__exp2_512, with 2^n built in the exponent bits; below -126 the
   result is 0 and above 127 it saturates (softmax arguments are <= 0). */
MT__AVX2 MT__INLINE __m256 mt__exp2_256(__m256 x) {
    __m256 n, f, p, lo = _mm256_set1_ps(-126.0f), tiny = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    __m256i e;
    __m256 xc = _mm256_min_ps(_mm256_set1_ps(127.0f), _mm256_max_ps(lo, x));
    n = _mm256_round_ps(xc, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    f = _mm256_sub_ps(xc, n);
    p = _mm256_set1_ps(1.5403530393381606e-4f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.3333558146428443e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.6181291076284772e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.5504108664821580e-2f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.4022650695910071e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.9314718055994531e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    p = _mm256_andnot_ps(tiny, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
    /* NaN in, NaN out */
    return _mm256_blendv_ps(p, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

MT__AVX2 static void mt__softmax_block_avx2(float *s, int64_t rows, int w, float *m, float *l, float *corr) {
    int v;
    int64_t j;
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    for (v = 0; v + 8 <= w; v += 8) {
        __m256 mold = _mm256_loadu_ps(m + v), mx = mold, mx2 = ninf, ms, c;
        __m256 sum = _mm256_setzero_ps(), sum2 = _mm256_setzero_ps();
        for (j = 0; j + 1 < rows; j += 2) {
            mx = _mm256_max_ps(mx, _mm256_loadu_ps(s + j * w + v));
            mx2 = _mm256_max_ps(mx2, _mm256_loadu_ps(s + (j + 1) * w + v));
        }
        if (j < rows) mx = _mm256_max_ps(mx, _mm256_loadu_ps(s + j * w + v));
        mx = _mm256_max_ps(mx, mx2);
        ms = _mm256_blendv_ps(mx, _mm256_setzero_ps(), _mm256_cmp_ps(mx, ninf, _CMP_EQ_OQ));
        c = mt__exp2_256(_mm256_sub_ps(mold, ms));
        for (j = 0; j + 1 < rows; j += 2) {
            __m256 e = mt__exp2_256(_mm256_sub_ps(_mm256_loadu_ps(s + j * w + v), ms));
            __m256 e2 = mt__exp2_256(_mm256_sub_ps(_mm256_loadu_ps(s + (j + 1) * w + v), ms));
            _mm256_storeu_ps(s + j * w + v, e);
            _mm256_storeu_ps(s + (j + 1) * w + v, e2);
            sum = _mm256_add_ps(sum, e);
            sum2 = _mm256_add_ps(sum2, e2);
        }
        if (j < rows) {
            __m256 e = mt__exp2_256(_mm256_sub_ps(_mm256_loadu_ps(s + j * w + v), ms));
            _mm256_storeu_ps(s + j * w + v, e);
            sum = _mm256_add_ps(sum, e);
        }
        _mm256_storeu_ps(l + v, _mm256_fmadd_ps(_mm256_loadu_ps(l + v), c, _mm256_add_ps(sum, sum2)));
        _mm256_storeu_ps(m + v, mx);
        _mm256_storeu_ps(corr + v, c);
    }
}
#endif

typedef struct mt__attn {
    const mt__arch *ar;
    void (*softmax)(float *s, int64_t rows, int w, float *m, float *l, float *corr);
    int64_t b, h, sq, sk, d, dv;
    int64_t chunks, tiles;        /* query chunks per head, query tiles per chunk */
    float scale;
    const float *q, *k, *v, *mask;
    int64_t qs[4], ks[4], vs[4], ms[4]; /* strides; mask broadcast (0 where broadcast) */
    float *out;                   /* contiguous [B, H, Sq, Dv] */
    int64_t kp_floats, vp_floats; /* packed K and V of one head */
    mt__slots ws;
} mt__attn;

static void mt__attn_task(const mt__attn *at, int64_t task, float *ws) {
    const mt__arch *ar = at->ar;
    const int mr = ar->mr, w = ar->nr;
    int64_t bh = task / at->chunks, chunk = task % at->chunks, bi = bh / at->h, hi = bh % at->h;
    int64_t dvp = mt__ceil_div(at->dv, mr) * mr, t, t0 = chunk * at->tiles, t1, j0, i, dd, j;
    const float *q = at->q + bi * at->qs[0] + hi * at->qs[1];
    const float *k = at->k + bi * at->ks[0] + hi * at->ks[1];
    const float *v = at->v + bi * at->vs[0] + hi * at->vs[1];
    const float *mk = at->mask ? at->mask + bi * at->ms[0] + hi * at->ms[1] : NULL;
    float *kp = ws, *vp = kp + at->kp_floats, *qp = vp + at->vp_floats;
    float *st = qp + (at->d * w + 15) / 16 * 16, *ot = st + MT__ATT_BC * w, *m = ot + dvp * w, *l = m + w,
          *corr = l + w;
    t1 = mt__min64(t0 + at->tiles, mt__ceil_div(at->sq, w));
    if (t0 >= t1) return;
    /* K as A panels (keys x D) and V^T as A panels (Dv x keys) */
    ar->pack(k, at->ks[2], at->ks[3], at->sk, at->d, mr, 1.0f, kp);
    ar->pack(v, at->vs[3], at->vs[2], at->dv, at->sk, mr, 1.0f, vp);
    for (t = t0; t < t1; t++) {
        int64_t q0 = t * w, qn = mt__min64(w, at->sq - q0);
        ar->pack(q + q0 * at->qs[2], at->qs[2], at->qs[3], qn, at->d, w, at->scale, qp);
        for (i = 0; i < w; i++) {
            m[i] = -INFINITY;
            l[i] = 0.0f;
        }
        memset(ot, 0, sizeof(float) * (size_t)(dvp * w));
        for (j0 = 0; j0 < at->sk; j0 += MT__ATT_BC) {
            int64_t bc = mt__min64(MT__ATT_BC, at->sk - j0), r;
            for (r = 0; r < bc; r += mr)
                ar->kernel(at->d, kp + (j0 + r) * at->d, qp, w, st + r * w, w, (int)mt__min64(mr, bc - r), w, 0.0f,
                           NULL);
            if (mk)
                for (j = 0; j < bc; j++)
                    for (i = 0; i < qn; i++)
                        st[j * w + i] += MT__LOG2E * mk[(q0 + i) * at->ms[2] + (j0 + j) * at->ms[3]];
            at->softmax(st, bc, w, m, l, corr);
            for (r = 0; r < at->dv; r += mr)
                ar->kernel(bc, vp + r * at->sk + j0 * mr, st, w, ot + r * w, w, (int)mt__min64(mr, at->dv - r), w,
                           1.0f, corr);
        }
        {
            float *o = at->out + (bh * at->sq + q0) * at->dv;
            for (i = 0; i < qn; i++)
                for (dd = 0; dd < at->dv; dd++) o[i * at->dv + dd] = ot[dd * w + i] / l[i];
        }
    }
}

static void mt__attn_chunk(void *ctx, int64_t t0, int64_t t1) {
    mt__attn *at = (mt__attn *)ctx;
    void *own;
    int slot;
    int64_t t;
    float *ws = mt__slots_take(&at->ws, &slot, &own);
    if (!ws) return;
    for (t = t0; t < t1; t++) mt__attn_task(at, t, ws);
    mt__slots_give(&at->ws, slot, own);
}

MTDEF mt_status mt_attention(mt_tensor *out, const mt_tensor *q, const mt_tensor *k, const mt_tensor *v,
                             const mt_tensor *mask, float scale) {
    mt__attn at;
    mt_tensor tmp, *dst;
    int64_t oshape[4], tiles, ntasks, want, dvp;
    int threads, i;
    mt_status s;
    char sq[160], sk[160], sv[160];
    if (!out) return MT__FAIL(MT_ERR_ARGUMENT, "output tensor is NULL");
    if ((s = mt__need_f32("mt_attention", "q", q)) != MT_OK) return s;
    if ((s = mt__need_f32("mt_attention", "k", k)) != MT_OK) return s;
    if ((s = mt__need_f32("mt_attention", "v", v)) != MT_OK) return s;
    if (mask && (s = mt__need_f32("mt_attention", "mask", mask)) != MT_OK) return s;
    mt__shape_fmt(sq, sizeof sq, q->ndim, q->shape);
    mt__shape_fmt(sk, sizeof sk, k->ndim, k->shape);
    mt__shape_fmt(sv, sizeof sv, v->ndim, v->shape);
    if (q->ndim != 4 || k->ndim != 4 || v->ndim != 4)
        return MT__FAIL(MT_ERR_SHAPE, "q %s, k %s and v %s must be 4-d [B, H, S, D]", sq, sk, sv);
    if (k->shape[0] != q->shape[0] || v->shape[0] != q->shape[0] || k->shape[1] != q->shape[1] ||
        v->shape[1] != q->shape[1])
        return MT__FAIL(MT_ERR_SHAPE, "q %s, k %s and v %s must have the same batch and heads", sq, sk, sv);
    if (k->shape[3] != q->shape[3])
        return MT__FAIL(MT_ERR_SHAPE, "q %s and k %s must have the same head dim", sq, sk);
    if (v->shape[2] != k->shape[2])
        return MT__FAIL(MT_ERR_SHAPE, "k %s and v %s must have the same number of keys", sk, sv);
    memset(&at, 0, sizeof at);
    at.b = q->shape[0];
    at.h = q->shape[1];
    at.sq = q->shape[2];
    at.d = q->shape[3];
    at.sk = k->shape[2];
    at.dv = v->shape[3];
    for (i = 0; i < 4; i++) {
        at.qs[i] = q->stride[i];
        at.ks[i] = k->stride[i];
        at.vs[i] = v->stride[i];
    }
    if (mask) {
        int64_t full[4];
        full[0] = at.b;
        full[1] = at.h;
        full[2] = at.sq;
        full[3] = at.sk;
        if (!mt__broadcast_strides(mask, 4, full, at.ms)) {
            char sm[160], sf[160];
            mt__shape_fmt(sm, sizeof sm, mask->ndim, mask->shape);
            mt__shape_fmt(sf, sizeof sf, 4, full);
            return MT__FAIL(MT_ERR_SHAPE, "mask %s does not broadcast to [B, H, Sq, Sk] = %s", sm, sf);
        }
        at.mask = (const float *)mask->data;
    }
    oshape[0] = at.b;
    oshape[1] = at.h;
    oshape[2] = at.sq;
    oshape[3] = at.dv;
    s = mt__out_begin("mt_attention", out, &tmp, mt__out_needs_temp(out, q, k, v, mask), 4, oshape, &dst);
    if (s != MT_OK) return s;
    if (mt_numel(dst) == 0) return mt__out_finish(out, &tmp, MT_OK);
    if (at.sk == 0) {
        /* softmax over no keys weighs nothing: zeros, as PyTorch */
        memset(dst->data, 0, sizeof(float) * (size_t)mt_numel(dst));
        return mt__out_finish(out, &tmp, MT_OK);
    }
    at.ar = mt__arch_get();
    at.softmax = mt__softmax_block_c;
#if defined(MT__X86)
    if (at.ar->simd == MT_SIMD_AVX512) at.softmax = mt__softmax_block_avx512;
    if (at.ar->simd == MT_SIMD_AVX2) at.softmax = mt__softmax_block_avx2;
#endif
    at.scale = (scale > 0 ? scale : at.d > 0 ? (float)(1.0 / sqrt((double)at.d)) : 1.0f) * MT__LOG2E;
    at.q = (const float *)q->data;
    at.k = (const float *)k->data;
    at.v = (const float *)v->data;
    at.out = (float *)dst->data;
    /* tasks: (batch, head, chunk of query tiles), at least two per thread */
    threads = mt_get_num_threads();
    tiles = mt__ceil_div(at.sq, at.ar->nr);
    want = mt__ceil_div(2 * (int64_t)threads, at.b * at.h);
    at.chunks = mt__min64(tiles, mt__max64(1, threads > 1 ? want : 1));
    at.tiles = mt__ceil_div(tiles, at.chunks);
    at.chunks = mt__ceil_div(tiles, at.tiles);
    ntasks = at.b * at.h * at.chunks;
    dvp = mt__ceil_div(at.dv, at.ar->mr) * at.ar->mr;
    at.kp_floats = (mt__ceil_div(at.sk, at.ar->mr) * at.ar->mr * at.d + 15) / 16 * 16;
    at.vp_floats = (dvp * at.sk + 15) / 16 * 16;
    s = mt__slots_alloc("mt_attention", &at.ws, (int)mt__min64(threads, ntasks),
                        (size_t)(at.kp_floats + at.vp_floats + (at.d * at.ar->nr + 15) / 16 * 16 +
                                 (MT__ATT_BC + dvp + 3) * at.ar->nr));
    if (s != MT_OK) return mt__out_finish(out, &tmp, s);
    mt_parallel_for(ntasks, 1, mt__attn_chunk, &at);
    MT_FREE(at.ws.raw);
    if (at.ws.failed) s = MT__FAIL(MT_ERR_MEMORY, "cannot allocate attention workspace");
    return mt__out_finish(out, &tmp, s);
}

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
