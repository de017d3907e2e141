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
