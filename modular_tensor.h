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

/* safetensors (https://github.com/huggingface/safetensors, "Format"):
   8-byte little-endian header length N, N bytes of JSON
   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
    ..., "__metadata__": {"key": "value", ...}}, then the data bytes.

   Reading checks every rule of the format and refuses the file with
   MT_ERR_FORMAT and a message naming the rule, the tensor and the numbers:
   header length within the file and at most MT_SAFETENSORS_MAX_HEADER bytes,
   header valid UTF-8 and strict JSON (RFC 8259) beginning with '{', every
   entry an object with exactly "dtype" (a known safetensors dtype), "shape"
   (non-negative integers) and "data_offsets" ([begin, end] integers),
   byte size = elements x dtype size, offsets inside the data section,
   tensors neither overlapping nor leaving gaps and covering the data
   section exactly (no trailing bytes), names unique and free of NUL,
   "__metadata__" an object of strings. Dtypes outside F32/F16/BF16/I64
   (I32, U8, F64, ...) open fine and are refused only when loaded.

   The file is memory-mapped (POSIX; copy-on-write, so writing into a loaded
   tensor never changes the file; if the system refuses a writable private
   mapping, e.g. under strict overcommit, the mapping is read-only and such
   tensors must not be written). Tensors returned by mt_safetensors_get are
   zero-copy views of the mapping when their bytes are aligned for their
   dtype (always the case in files written by the reference writer and by
   mt_safetensors_save), copies otherwise; each view keeps the mapping alive,
   so they outlive mt_safetensors_close. Truncating the file while it is
   mapped is undefined (SIGBUS), as with any mmap reader. Define MT_NO_MMAP
   (automatic off POSIX) to read files into memory and write in place. */

#define MT_SAFETENSORS_MAX_HEADER 100000000 /* bytes, the reference's limit */

typedef struct mt_safetensors mt_safetensors; /* opaque open file */

typedef struct mt_safetensors_tensor_info {
    const char *name;      /* valid until mt_safetensors_close */
    const char *dtype;     /* the file's dtype string: "F32", "I32", ... */
    int supported;         /* 1 when mt_safetensors_get can load it */
    mt_dtype dt;           /* the tensor dtype when supported */
    int ndim;              /* may exceed MT_MAX_DIMS (then not supported) */
    int64_t shape[MT_MAX_DIMS];
    uint64_t offset;       /* bytes from the start of the file */
    uint64_t nbytes;
} mt_safetensors_tensor_info;

/* Opens and validates a file; *st is NULL on failure. */
MTDEF mt_status mt_safetensors_open(mt_safetensors **st, const char *path);
/* The same from bytes in memory (copied: the caller may free `data` after
   the call). Convenient for embedded files and for fuzzing. */
MTDEF mt_status mt_safetensors_open_memory(mt_safetensors **st, const void *data, size_t size);
MTDEF void mt_safetensors_close(mt_safetensors *st); /* NULL is fine */

/* Tensors in the order of the header. */
MTDEF int mt_safetensors_count(const mt_safetensors *st);
MTDEF const char *mt_safetensors_name(const mt_safetensors *st, int i); /* NULL when out of range */
MTDEF int mt_safetensors_find(const mt_safetensors *st, const char *name); /* index, or -1 */
MTDEF mt_status mt_safetensors_info(const mt_safetensors *st, int i, mt_safetensors_tensor_info *info);
/* Loads tensor `name` in its file dtype (convert with mt_to_dtype). An empty
   `out` becomes a view of the file (or a copy when misaligned); a
   preallocated `out` must match dtype and shape and receives a copy. */
MTDEF mt_status mt_safetensors_get(const mt_safetensors *st, const char *name, mt_tensor *out);

/* "__metadata__" entries, in file order; value lookup returns NULL when absent. */
MTDEF int mt_safetensors_metadata_count(const mt_safetensors *st);
MTDEF const char *mt_safetensors_metadata_key(const mt_safetensors *st, int i);
MTDEF const char *mt_safetensors_metadata_value(const mt_safetensors *st, int i);
MTDEF const char *mt_safetensors_metadata(const mt_safetensors *st, const char *key);

/* Writes n tensors (any layout; written row-major) and n_meta metadata
   pairs meta[2k] = key, meta[2k + 1] = value (NULL when n_meta = 0) as the
   reference writer does: entries sorted by dtype alignment (I64, F32, BF16,
   F16), then by name; data in that order without padding; "__metadata__"
   first when given; compact JSON padded with spaces to a multiple of 8.
   Names and metadata must be unique, valid UTF-8, and no name may be
   "__metadata__". The file is written beside `path` and renamed over it,
   so a mapped file of the same name stays intact. */
MTDEF mt_status mt_safetensors_save(const char *path, int n, const char *const *names,
                                    const mt_tensor *const *tensors, int n_meta, const char *const *meta);

/* Images through stb_image / stb_image_write. Pixel values map as
   MT_RANGE_UNIT:   [0, 1]  <-> 0..255
   MT_RANGE_SIGNED: [-1, 1] <-> 0..255 (diffusers: x / 2 + 0.5 on save,
                                        2 x - 1 on load)
   Saving clamps to the range and rounds x * 255 half to even, as diffusers'
   numpy_to_pil ((x * 255).round()); loading gives byte / 255 (as
   VaeImageProcessor), then 2 x - 1 for MT_RANGE_SIGNED.

   Untrusted images: only the PNG and JPEG decoders are compiled in, images
   over MT_IMAGE_MAX_PIXELS are refused before decoding, and the JPEG
   Huffman-table and PNG chunk-length defects of Debian's stb_image 2.27
   (fixed upstream in 2.28) are screened out before stb_image sees the
   bytes. stb_image 2.27 still has undefined integer shifts on damaged JPEG
   entropy data (garbage pixels on common targets; sanitizers report them):
   decode hostile files with a newer stb_image (MT_NO_STB_IMPLEMENTATION) or
   in a separate process. */
typedef enum mt_image_range { MT_RANGE_UNIT = 0, MT_RANGE_SIGNED = 1 } mt_image_range;

#ifndef MT_IMAGE_MAX_PIXELS
#define MT_IMAGE_MAX_PIXELS ((int64_t)1 << 26) /* width x height accepted by the loaders */
#endif

/* Writes image `index` of a float32 [N, C, H, W] tensor (or [C, H, W] with
   index 0), C = 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA), as an
   8-bit PNG. Refuses NaN/Inf (the message counts them) before touching the
   file. */
MTDEF mt_status mt_image_save_png(const char *path, const mt_tensor *images, int64_t index, mt_image_range range);
/* Reads a PNG or JPEG into a float32 [1, C, H, W] tensor; channels = 1..4
   converts (stb_image rules), 0 keeps the file's channel count. */
MTDEF mt_status mt_image_load(mt_tensor *out, const char *path, int channels, mt_image_range range);
MTDEF mt_status mt_image_load_memory(mt_tensor *out, const void *data, size_t size, int channels,
                                     mt_image_range range);

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

#include <errno.h>
#include <limits.h>

/* POSIX: memory-mapped reading and write-then-rename saving. Elsewhere (or
   with MT_NO_MMAP) files are read into memory and written in place. */
#if !defined(MT_NO_MMAP) && (defined(__unix__) || defined(__APPLE__))
#define MT__FILES_POSIX 1
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#else
#define MT__FILES_POSIX 0
#endif

static int mt__host_is_little_endian(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* ---- text helpers ---------------------------------------------------- */

/* Length of the valid UTF-8 sequence starting at s[0] (n bytes available),
   0 when invalid: overlong forms, UTF-16 surrogates and code points above
   U+10FFFF are invalid, as in RFC 3629. */
static size_t mt__utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if (c < 0xC2 || c > 0xF4) return 0;
    if (c < 0xE0) return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0)) return 0;
        return 3;
    }
    if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
    if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90)) return 0;
    return 4;
}

/* Offset of the first byte that is not valid UTF-8, or n. */
static size_t mt__utf8_check(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t k = mt__utf8_seq(s + i, n - i);
        if (!k) return i;
        i += k;
    }
    return n;
}

/* Writes s (len bytes) single-quoted into buf for an error message: control
   characters (C0, DEL, C1) and invalid UTF-8 escaped, cut to fit with "...". */
static const char *mt__quote(char *buf, size_t size, const char *str, size_t len) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, k = 0, limit = size - 6; /* room for "...'" and NUL */
    if (!str) {
        snprintf(buf, size, "(null)");
        return buf;
    }
    buf[k++] = '\'';
    while (i < len) {
        size_t q = mt__utf8_seq(s + i, len - i);
        unsigned c = s[i];
        int ctrl = c < 0x20 || c == 0x7f || (q == 2 && c == 0xC2 && s[i + 1] < 0xA0);
        if (!q || ctrl) {
            if (k + 4 > limit) break;
            snprintf(buf + k, 5, "\\x%02x", q == 2 ? (unsigned)s[i + 1] : c);
            k += 4;
            i += q == 2 ? 2 : 1;
        } else {
            if (k + q > limit) break;
            memcpy(buf + k, s + i, q);
            k += q;
            i += q;
        }
    }
    if (i < len) {
        memcpy(buf + k, "...", 3);
        k += 3;
    }
    buf[k++] = '\'';
    buf[k] = '\0';
    return buf;
}

#define MT__QUOTE(buf, s) mt__quote(buf, sizeof buf, (s), strlen(s))

/* A path quoted for messages; long paths keep their end (the file name). */
static const char *mt__quote_path(char *buf, size_t size, const char *path) {
    size_t len = strlen(path), keep = size > 40 ? size - 30 : size / 2;
    if (len <= keep) return mt__quote(buf, size, path, len);
    path += len - keep;
    while ((*(const unsigned char *)path & 0xC0) == 0x80) path++; /* a UTF-8 boundary */
    mt__quote(buf + 3, size - 3, path, strlen(path)); /* 'tail' */
    memcpy(buf, "'...", 4);                           /* -> '...tail' */
    return buf;
}

/* Reads a whole file into MT_MALLOC'd memory; more than `limit` bytes is
   refused. Works for pipes and reports directories (EISDIR). */
static mt_status mt__read_file(const char *func, const char *path, const char *label, size_t limit,
                               unsigned char **data, size_t *size) {
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    FILE *f = fopen(path, "rb");
    *data = NULL;
    *size = 0;
    if (!f) return mt__fail(MT_ERR_IO, func, "cannot open %s: %s", label, strerror(errno));
    for (;;) {
        size_t got;
        if (len == cap) {
            unsigned char *p;
            if (cap >= limit) {
                if (fgetc(f) == EOF) break; /* exactly `limit` bytes */
                fclose(f);
                MT_FREE(buf);
                return mt__fail(MT_ERR_UNSUPPORTED, func, "%s is over %llu bytes", label, (unsigned long long)limit);
            }
            cap = cap ? (cap > limit / 2 ? limit : 2 * cap) : 65536;
            p = (unsigned char *)MT_REALLOC(buf, cap);
            if (!p) {
                fclose(f);
                MT_FREE(buf);
                return mt__fail(MT_ERR_MEMORY, func, "cannot allocate %llu bytes to read %s", (unsigned long long)cap,
                                label);
            }
            buf = p;
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        int e = errno;
        fclose(f);
        MT_FREE(buf);
        return mt__fail(MT_ERR_IO, func, "cannot read %s: %s", label, e ? strerror(e) : "read error");
    }
    fclose(f);
    *data = buf;
    *size = len;
    return MT_OK;
}

#if !MT__FILES_POSIX
static void mt__free_ctx(void *ctx) { MT_FREE(ctx); }
#endif

/* ---- safetensors dtypes ---------------------------------------------- */

typedef struct mt__st_dtype {
    const char *name;
    int bits;
    int dt; /* mt_dtype, or -1 when the tensor type cannot hold it */
} mt__st_dtype;

/* every dtype of the safetensors format (safetensors/src/tensor.rs, Dtype) */
static const mt__st_dtype mt__st_dtypes[] = {
    {"F32", 32, (int)MT_F32},  {"F16", 16, (int)MT_F16},   {"BF16", 16, (int)MT_BF16},  {"I64", 64, (int)MT_I64},
    {"F64", 64, -1},           {"I32", 32, -1},            {"I16", 16, -1},             {"I8", 8, -1},
    {"U64", 64, -1},           {"U32", 32, -1},            {"U16", 16, -1},             {"U8", 8, -1},
    {"BOOL", 8, -1},           {"C64", 64, -1},            {"F8_E5M2", 8, -1},          {"F8_E4M3", 8, -1},
    {"F8_E8M0", 8, -1},        {"F8_E4M3FNUZ", 8, -1},     {"F8_E5M2FNUZ", 8, -1},      {"F6_E2M3", 6, -1},
    {"F6_E3M2", 6, -1},        {"F4", 4, -1},
};
#define MT__ST_NDTYPES ((int)(sizeof mt__st_dtypes / sizeof mt__st_dtypes[0]))

static int mt__st_dtype_find(const char *name) {
    int i;
    for (i = 0; i < MT__ST_NDTYPES; i++)
        if (strcmp(mt__st_dtypes[i].name, name) == 0) return i;
    return -1;
}

/* the dtype's name in a file */
static const char *mt__st_dtype_of(mt_dtype dt) {
    switch (dt) {
    case MT_F32: return "F32";
    case MT_F16: return "F16";
    case MT_BF16: return "BF16";
    case MT_I64: return "I64";
    default: return NULL;
    }
}

/* ---- JSON (RFC 8259), strict ------------------------------------------ */

typedef struct mt__json {
    const unsigned char *s;
    size_t n, pos;
    const char *why; /* reason of a syntax error, at pos */
} mt__json;

static void mt__json_ws(mt__json *j) {
    while (j->pos < j->n) {
        unsigned char c = j->s[j->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        j->pos++;
    }
}

static int mt__json_hex4(const unsigned char *p, size_t avail, unsigned *v) {
    unsigned r = 0;
    int i;
    if (avail < 4) return 0;
    for (i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return 0;
        r = r * 16 + d;
    }
    *v = r;
    return 1;
}

/* Scans the string starting at pos (a '"'); when dst is not NULL decodes it
   there (the decoded form plus a NUL never exceeds the quoted form) and
   stores its length in *len. The text is already known to be UTF-8. */
static int mt__json_string(mt__json *j, char *dst, size_t *len) {
    size_t k = 0;
    j->pos++;
    for (;;) {
        unsigned c;
        if (j->pos >= j->n) {
            j->why = "unterminated string";
            return 0;
        }
        c = j->s[j->pos];
        if (c == '"') {
            j->pos++;
            break;
        }
        if (c < 0x20) {
            j->why = "control character in a string (it must be escaped)";
            return 0;
        }
        if (c != '\\') {
            if (dst) dst[k] = (char)c;
            k++;
            j->pos++;
            continue;
        }
        if (j->pos + 1 >= j->n) {
            j->why = "unterminated string";
            return 0;
        }
        c = j->s[j->pos + 1];
        if (c == 'u') {
            unsigned cp, lo;
            if (!mt__json_hex4(j->s + j->pos + 2, j->n - j->pos - 2, &cp)) {
                j->why = "invalid \\u escape (four hex digits expected)";
                return 0;
            }
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                j->why = "unpaired UTF-16 surrogate in a \\u escape";
                return 0;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                size_t p = j->pos + 6;
                if (p + 1 >= j->n || j->s[p] != '\\' || j->s[p + 1] != 'u' ||
                    !mt__json_hex4(j->s + p + 2, j->n - p - 2, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                    j->why = "unpaired UTF-16 surrogate in a \\u escape";
                    return 0;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                j->pos += 6;
            }
            j->pos += 6;
            if (dst) {
                unsigned char *o = (unsigned char *)dst + k;
                if (cp < 0x80) {
                    o[0] = (unsigned char)cp;
                } else if (cp < 0x800) {
                    o[0] = (unsigned char)(0xC0 | (cp >> 6));
                    o[1] = (unsigned char)(0x80 | (cp & 0x3F));
                } else if (cp < 0x10000) {
                    o[0] = (unsigned char)(0xE0 | (cp >> 12));
                    o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                    o[2] = (unsigned char)(0x80 | (cp & 0x3F));
                } else {
                    o[0] = (unsigned char)(0xF0 | (cp >> 18));
                    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
                    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
                }
            }
            k += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
            continue;
        }
        switch (c) {
        case '"': case '\\': case '/': break;
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'n': c = '\n'; break;
        case 'r': c = '\r'; break;
        case 't': c = '\t'; break;
        default:
            j->why = "invalid escape in a string";
            return 0;
        }
        if (dst) dst[k] = (char)c;
        k++;
        j->pos += 2;
    }
    if (dst) dst[k] = '\0';
    if (len) *len = k;
    return 1;
}

static int mt__json_digit(const mt__json *j, size_t p) { return p < j->n && j->s[p] >= '0' && j->s[p] <= '9'; }

/* Scans a number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int mt__json_number(mt__json *j) {
    size_t p = j->pos;
    if (p < j->n && j->s[p] == '-') p++;
    if (!mt__json_digit(j, p)) goto bad;
    if (j->s[p] == '0') {
        p++;
        if (mt__json_digit(j, p)) {
            j->pos = p;
            j->why = "leading zero in a number";
            return 0;
        }
    } else {
        while (mt__json_digit(j, p)) p++;
    }
    if (p < j->n && j->s[p] == '.') {
        p++;
        if (!mt__json_digit(j, p)) goto bad;
        while (mt__json_digit(j, p)) p++;
    }
    if (p < j->n && (j->s[p] == 'e' || j->s[p] == 'E')) {
        p++;
        if (p < j->n && (j->s[p] == '+' || j->s[p] == '-')) p++;
        if (!mt__json_digit(j, p)) goto bad;
        while (mt__json_digit(j, p)) p++;
    }
    j->pos = p;
    return 1;
bad:
    j->pos = p;
    j->why = "malformed number";
    return 0;
}

static int mt__json_literal(mt__json *j) {
    static const char *const words[3] = {"true", "false", "null"};
    int i;
    for (i = 0; i < 3; i++) {
        size_t len = strlen(words[i]);
        if (j->n - j->pos >= len && memcmp(j->s + j->pos, words[i], len) == 0) {
            j->pos += len;
            return 1;
        }
    }
    j->why = "expected a value (string, number, object, array, true, false or null)";
    return 0;
}

#define MT__JSON_MAX_DEPTH 64

/* Checks that the whole text is one JSON value followed only by whitespace;
   counts the members of the outermost object. Iterative, depth-limited. */
static int mt__json_validate(mt__json *j, int *top_members) {
    unsigned char stack[MT__JSON_MAX_DEPTH]; /* '{' or '[' per level */
    int depth = 0, members = 0;
    enum { WANT_VALUE, WANT_KEY, AFTER_VALUE } state = WANT_VALUE;
    j->pos = 0;
    for (;;) {
        unsigned char c;
        mt__json_ws(j);
        if (state == AFTER_VALUE && depth == 0) {
            if (j->pos != j->n) {
                j->why = "unexpected text after the JSON object";
                return 0;
            }
            *top_members = members;
            return 1;
        }
        if (j->pos >= j->n) {
            j->why = "unexpected end of the header";
            return 0;
        }
        c = j->s[j->pos];
        if (state == WANT_KEY) {
            if (c != '"') {
                j->why = "expected a string key";
                return 0;
            }
            if (!mt__json_string(j, NULL, NULL)) return 0;
            mt__json_ws(j);
            if (j->pos >= j->n || j->s[j->pos] != ':') {
                j->why = "expected ':' after a key";
                return 0;
            }
            j->pos++;
            if (depth == 1) members++;
            state = WANT_VALUE;
        } else if (state == AFTER_VALUE) {
            unsigned char open = stack[depth - 1], close = open == '{' ? '}' : ']';
            if (c == ',') {
                j->pos++;
                state = open == '{' ? WANT_KEY : WANT_VALUE;
            } else if (c == close) {
                j->pos++;
                depth--;
            } else {
                j->why = open == '{' ? "expected ',' or '}'" : "expected ',' or ']'";
                return 0;
            }
        } else if (c == '{' || c == '[') {
            if (depth == MT__JSON_MAX_DEPTH) {
                j->why = "nesting deeper than 64 levels";
                return 0;
            }
            stack[depth++] = c;
            j->pos++;
            mt__json_ws(j);
            if (j->pos < j->n && j->s[j->pos] == (c == '{' ? '}' : ']')) {
                j->pos++;
                depth--;
                state = AFTER_VALUE;
            } else {
                state = c == '{' ? WANT_KEY : WANT_VALUE;
            }
        } else {
            int ok;
            if (c == '"') ok = mt__json_string(j, NULL, NULL);
            else if (c == '-' || (c >= '0' && c <= '9')) ok = mt__json_number(j);
            else ok = mt__json_literal(j);
            if (!ok) return 0;
            state = AFTER_VALUE;
        }
    }
}

/* "an object", "a string", ... for the value starting with c */
static const char *mt__json_kind(unsigned char c) {
    switch (c) {
    case '{': return "an object";
    case '[': return "an array";
    case '"': return "a string";
    case 't': case 'f': return "a boolean";
    case 'n': return "null";
    default: return "a number";
    }
}

/* ---- safetensors reading --------------------------------------------- */

typedef struct mt__st_entry {
    const char *name;
    int dtype;                  /* index into mt__st_dtypes */
    int ndim;                   /* all dims; only MT_MAX_DIMS are kept */
    int64_t shape[MT_MAX_DIMS];
    uint64_t begin, end;        /* in the data section */
    int order;                  /* position in the header */
} mt__st_entry;

struct mt_safetensors {
    mt_storage *storage;        /* the file's bytes; tensors hold references */
    const unsigned char *bytes;
    uint64_t size, data_start, data_size;
    int count, meta_count;
    mt__st_entry *entries;      /* header order */
    mt__st_entry **by_name;     /* sorted by name */
    const char **meta;          /* key, value, key, value, ... */
    char *arena;                /* decoded strings */
    char label[128];            /* quoted path for messages */
};

typedef struct mt__st_parse {
    mt_safetensors *st;
    mt__json j;
    size_t used;                /* bytes of the arena in use */
    int meta_cap;
    const char *func;
    mt__st_entry **by_offset;  /* scratch, freed by the caller */
} mt__st_parse;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static mt_status mt__st_fail(const char *func, const char *label, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mt__fail(MT_ERR_FORMAT, func, "%s: %s", label, msg);
}

/* A shape as text ("[2, 3]"), at most MT_MAX_DIMS dims shown. */
static void mt__st_shape_text(char *buf, size_t size, const mt__st_entry *e) {
    int n = mt__shape_fmt(buf, size, e->ndim < MT_MAX_DIMS ? e->ndim : MT_MAX_DIMS, e->shape);
    if (e->ndim > MT_MAX_DIMS && n > 0 && (size_t)n < size && size - (size_t)n > 8)
        snprintf(buf + n - 1, size - (size_t)n + 1, ", ...]");
}

/* Decodes the string at j.pos into the arena; returns it (NUL-terminated)
   or NULL when it holds a NUL character. `keep` = 0 reuses the space. */
static const char *mt__st_string(mt__st_parse *p, int keep) {
    char *dst = p->st->arena + p->used;
    size_t len = 0;
    if (!mt__json_string(&p->j, dst, &len)) return NULL; /* validated before */
    if (strlen(dst) != len) return NULL;
    if (keep) p->used += len + 1;
    return dst;
}

/* Describes the value at j.pos when it is not a non-negative integer
   below 2^63; reads it into *v otherwise (returns 1). */
static int mt__st_uint(mt__st_parse *p, uint64_t *v, char *what, size_t wsize) {
    mt__json *j = &p->j;
    size_t start = j->pos, i;
    uint64_t r = 0;
    unsigned char c = j->pos < j->n ? j->s[j->pos] : 0;
    if (c != '-' && !(c >= '0' && c <= '9')) {
        snprintf(what, wsize, "%s", mt__json_kind(c));
        return 0;
    }
    if (!mt__json_number(j)) {
        snprintf(what, wsize, "a malformed number");
        return 0;
    }
    for (i = start; i < j->pos; i++) {
        c = j->s[i];
        if (c < '0' || c > '9' || r > ((uint64_t)INT64_MAX - (c - '0')) / 10) {
            int len = (int)(j->pos - start);
            snprintf(what, wsize, "%.*s%s%s", len > 24 ? 24 : len, (const char *)j->s + start, len > 24 ? "..." : "",
                     c >= '0' && c <= '9' ? " (too large)" : "");
            return 0;
        }
        r = r * 10 + (c - '0');
    }
    *v = r;
    return 1;
}

/* Parses one tensor entry (an object at j.pos) into e; the JSON is valid. */
static mt_status mt__st_entry_parse(mt__st_parse *p, mt__st_entry *e) {
    static const char *const keys[3] = {"dtype", "shape", "data_offsets"};
    mt__json *j = &p->j;
    const char *lab = p->st->label, *fn = p->func;
    char q[96], what[64], sh[160];
    int have[3] = {0, 0, 0}, k, big = 0, zero = 0;
    uint64_t offs[2] = {0, 0}, numel = 1, bits, nbytes;
    const mt__st_dtype *d;
    MT__QUOTE(q, e->name);
    j->pos++; /* '{' */
    mt__json_ws(j);
    if (j->s[j->pos] == '}') j->pos++;
    else
        for (;;) {
            const char *key;
            mt__json_ws(j);
            key = mt__st_string(p, 0);
            for (k = 0; k < 3; k++)
                if (key && strcmp(key, keys[k]) == 0) break;
            if (k == 3) {
                char kq[64];
                return mt__st_fail(fn, lab, "tensor %s: unexpected key %s (allowed: dtype, shape, data_offsets)", q,
                                   key ? MT__QUOTE(kq, key) : "with a NUL character");
            }
            if (have[k]) return mt__st_fail(fn, lab, "tensor %s: duplicate key \"%s\"", q, keys[k]);
            have[k] = 1;
            mt__json_ws(j);
            j->pos++; /* ':' */
            mt__json_ws(j);
            if (k == 0) {
                const char *name;
                char dq[64];
                if (j->s[j->pos] != '"')
                    return mt__st_fail(fn, lab, "tensor %s: dtype is %s, expected a string such as \"F32\"", q,
                                       mt__json_kind(j->s[j->pos]));
                name = mt__st_string(p, 0);
                e->dtype = name ? mt__st_dtype_find(name) : -1;
                if (e->dtype < 0)
                    return mt__st_fail(fn, lab, "tensor %s: unknown dtype %s", q,
                                       name ? MT__QUOTE(dq, name) : "with a NUL character");
            } else {
                int count = 0;
                if (j->s[j->pos] != '[')
                    return mt__st_fail(fn, lab, "tensor %s: %s is %s, expected %s", q, keys[k],
                                       mt__json_kind(j->s[j->pos]), k == 1 ? "an array of integers" : "[begin, end]");
                j->pos++;
                mt__json_ws(j);
                if (j->s[j->pos] == ']') j->pos++;
                else
                    for (;;) {
                        uint64_t v;
                        mt__json_ws(j);
                        if (k == 2 && count == 2)
                            return mt__st_fail(fn, lab, "tensor %s: data_offsets has more than 2 entries, expected [begin, end]",
                                               q);
                        if (!mt__st_uint(p, &v, what, sizeof what))
                            return mt__st_fail(fn, lab, "tensor %s: %s[%d] is %s, expected a non-negative integer", q,
                                               keys[k], count, what);
                        if (k == 2) {
                            offs[count] = v;
                        } else {
                            if (count < MT_MAX_DIMS) e->shape[count] = (int64_t)v;
                            if (v == 0) zero = 1; /* a zero dim empties any shape */
                            else if (numel > (uint64_t)INT64_MAX / v) big = 1;
                            else numel *= v;
                        }
                        if (count == INT_MAX) return mt__st_fail(fn, lab, "tensor %s: too many dims", q);
                        count++;
                        mt__json_ws(j);
                        if (j->s[j->pos++] == ']') break;
                    }
                if (k == 1) e->ndim = count;
                else if (count != 2)
                    return mt__st_fail(fn, lab, "tensor %s: data_offsets has %d entr%s, expected [begin, end]", q, count,
                                       count == 1 ? "y" : "ies");
            }
            mt__json_ws(j);
            if (j->s[j->pos++] == '}') break;
        }
    for (k = 0; k < 3; k++)
        if (!have[k]) return mt__st_fail(fn, lab, "tensor %s: missing \"%s\"", q, keys[k]);
    e->begin = offs[0];
    e->end = offs[1];
    d = &mt__st_dtypes[e->dtype];
    mt__st_shape_text(sh, sizeof sh, e);
    if (zero) numel = 0;
    else if (big) return mt__st_fail(fn, lab, "tensor %s: shape %s has more than 2^63 elements", q, sh);
    bits = numel * (uint64_t)d->bits; /* < 2^63 * 64: fits */
    if (numel > UINT64_MAX / (uint64_t)d->bits) return mt__st_fail(fn, lab, "tensor %s: shape %s is too large", q, sh);
    if (bits % 8)
        return mt__st_fail(fn, lab, "tensor %s: %llu elements of %s (%d bits each) are not a whole number of bytes", q,
                           (unsigned long long)numel, d->name, d->bits);
    nbytes = bits / 8;
    if (e->end < e->begin)
        return mt__st_fail(fn, lab, "tensor %s: data_offsets [%llu, %llu] end before they begin", q,
                           (unsigned long long)e->begin, (unsigned long long)e->end);
    if (e->end > p->st->data_size)
        return mt__st_fail(fn, lab, "tensor %s: data_offsets [%llu, %llu] reach past the end of the data section (%llu bytes)",
                           q, (unsigned long long)e->begin, (unsigned long long)e->end,
                           (unsigned long long)p->st->data_size);
    if (e->end - e->begin != nbytes)
        return mt__st_fail(fn, lab, "tensor %s: dtype %s and shape %s need %llu bytes, but data_offsets [%llu, %llu] hold %llu",
                           q, d->name, sh, (unsigned long long)nbytes, (unsigned long long)e->begin,
                           (unsigned long long)e->end, (unsigned long long)(e->end - e->begin));
    return MT_OK;
}

/* Parses "__metadata__" (at j.pos). */
static mt_status mt__st_meta_parse(mt__st_parse *p) {
    mt__json *j = &p->j;
    mt_safetensors *st = p->st;
    const char *lab = st->label, *fn = p->func;
    if (j->s[j->pos] != '{')
        return mt__st_fail(fn, lab, "__metadata__ is %s, expected an object of strings", mt__json_kind(j->s[j->pos]));
    j->pos++;
    mt__json_ws(j);
    if (j->s[j->pos] == '}') {
        j->pos++;
        return MT_OK;
    }
    for (;;) {
        const char *key, *value;
        char q[96];
        mt__json_ws(j);
        key = mt__st_string(p, 1);
        if (!key) return mt__st_fail(fn, lab, "a __metadata__ key contains a NUL character");
        mt__json_ws(j);
        j->pos++; /* ':' */
        mt__json_ws(j);
        if (j->s[j->pos] != '"')
            return mt__st_fail(fn, lab, "__metadata__ %s: value is %s, expected a string", MT__QUOTE(q, key),
                               mt__json_kind(j->s[j->pos]));
        value = mt__st_string(p, 1);
        if (!value) return mt__st_fail(fn, lab, "__metadata__ %s: value contains a NUL character", MT__QUOTE(q, key));
        if (st->meta_count == p->meta_cap) {
            int cap = p->meta_cap ? 2 * p->meta_cap : 8;
            const char **m;
            if (cap > INT_MAX / 4) return mt__st_fail(fn, lab, "__metadata__ has too many entries");
            m = (const char **)MT_REALLOC((void *)st->meta, (size_t)cap * 2 * sizeof(char *));
            if (!m) return mt__fail(MT_ERR_MEMORY, fn, "%s: out of memory reading __metadata__", lab);
            st->meta = m;
            p->meta_cap = cap;
        }
        st->meta[2 * st->meta_count] = key;
        st->meta[2 * st->meta_count + 1] = value;
        st->meta_count++;
        mt__json_ws(j);
        if (j->s[j->pos++] == '}') return MT_OK;
    }
}

static int mt__st_cmp_name(const void *a, const void *b) {
    return strcmp((*(const mt__st_entry *const *)a)->name, (*(const mt__st_entry *const *)b)->name);
}

static int mt__st_cmp_offset(const void *a, const void *b) {
    const mt__st_entry *x = *(const mt__st_entry *const *)a, *y = *(const mt__st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->order - y->order;
}

static int mt__st_cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Everything after the header length: JSON, entries, layout. */
static mt_status mt__st_parse_header(mt__st_parse *p) {
    mt_safetensors *st = p->st;
    mt__json *j = &p->j;
    const char *lab = st->label, *fn = p->func;
    uint64_t n, size = st->size;
    size_t bad;
    int members = 0, seen_meta = 0, i;
    mt__st_entry **by_offset;
    mt_status s;
    if (size < 8)
        return mt__st_fail(fn, lab, "file is %llu bytes, too short for the 8-byte header length",
                           (unsigned long long)size);
    for (n = 0, i = 7; i >= 0; i--) n = (n << 8) | st->bytes[i];
    if (n > MT_SAFETENSORS_MAX_HEADER)
        return mt__st_fail(fn, lab, "header length %llu exceeds the limit of %d bytes", (unsigned long long)n,
                           MT_SAFETENSORS_MAX_HEADER);
    if (n > size - 8)
        return mt__st_fail(fn, lab, "header length %llu runs past the end of the file (%llu bytes after the length field)",
                           (unsigned long long)n, (unsigned long long)(size - 8));
    st->data_start = 8 + n;
    st->data_size = size - 8 - n;
    j->s = st->bytes + 8;
    j->n = (size_t)n;
    if (n == 0 || j->s[0] != '{') {
        if (n == 0) return mt__st_fail(fn, lab, "header is empty; it must be a JSON object beginning with '{'");
        return mt__st_fail(fn, lab, "header is not a JSON object: it must begin with '{', not 0x%02x", (unsigned)j->s[0]);
    }
    bad = mt__utf8_check(j->s, j->n);
    if (bad < j->n)
        return mt__st_fail(fn, lab, "header is not valid UTF-8 (byte 0x%02x at header offset %llu)", (unsigned)j->s[bad],
                           (unsigned long long)bad);
    if (!mt__json_validate(j, &members))
        return mt__st_fail(fn, lab, "header is not valid JSON: %s at header offset %llu", j->why,
                           (unsigned long long)j->pos);

    /* the decoded strings never exceed the text; +1 keeps n = 0 safe */
    st->arena = (char *)MT_MALLOC((size_t)n + 1);
    st->entries = (mt__st_entry *)MT_MALLOC(((size_t)members + 1) * sizeof(mt__st_entry));
    st->by_name = (mt__st_entry **)MT_MALLOC(((size_t)members + 1) * sizeof(mt__st_entry *));
    by_offset = p->by_offset = (mt__st_entry **)MT_MALLOC(((size_t)members + 1) * sizeof(mt__st_entry *));
    if (!st->arena || !st->entries || !st->by_name || !by_offset)
        return mt__fail(MT_ERR_MEMORY, fn, "%s: out of memory for a header of %llu bytes", lab, (unsigned long long)n);

    j->pos = 1;
    mt__json_ws(j);
    if (j->s[j->pos] == '}') j->pos++;
    else
        for (;;) {
            const char *name;
            mt__json_ws(j);
            name = mt__st_string(p, 1);
            if (!name) return mt__st_fail(fn, lab, "a tensor name contains a NUL character (\\u0000)");
            mt__json_ws(j);
            j->pos++; /* ':' */
            mt__json_ws(j);
            if (strcmp(name, "__metadata__") == 0) {
                if (seen_meta) {
                        return mt__st_fail(fn, lab, "duplicate key \"__metadata__\"");
                }
                seen_meta = 1;
                s = mt__st_meta_parse(p);
                if (s != MT_OK) return s;
            } else {
                mt__st_entry *e = &st->entries[st->count];
                char q[96];
                memset(e, 0, sizeof *e);
                e->name = name;
                e->order = st->count;
                if (j->s[j->pos] != '{') {
                        return mt__st_fail(fn, lab, "tensor %s: entry is %s, expected an object with dtype, shape and data_offsets",
                                       MT__QUOTE(q, name), mt__json_kind(j->s[j->pos]));
                }
                s = mt__st_entry_parse(p, e);
                if (s != MT_OK) return s;
                st->by_name[st->count] = e;
                by_offset[st->count] = e;
                st->count++;
            }
            mt__json_ws(j);
            if (j->s[j->pos++] == '}') break;
        }

    /* unique names and metadata keys */
    qsort(st->by_name, (size_t)st->count, sizeof *st->by_name, mt__st_cmp_name);
    for (i = 1; i < st->count; i++)
        if (strcmp(st->by_name[i - 1]->name, st->by_name[i]->name) == 0) {
            char q[96];
            return mt__st_fail(fn, lab, "duplicate tensor name %s", MT__QUOTE(q, st->by_name[i]->name));
        }
    if (st->meta_count > 1) {
        const char **keys = (const char **)MT_MALLOC((size_t)st->meta_count * sizeof(char *));
        if (!keys) {
            return mt__fail(MT_ERR_MEMORY, fn, "%s: out of memory", lab);
        }
        for (i = 0; i < st->meta_count; i++) keys[i] = st->meta[2 * i];
        qsort((void *)keys, (size_t)st->meta_count, sizeof *keys, mt__st_cmp_str);
        for (i = 1; i < st->meta_count; i++)
            if (strcmp(keys[i - 1], keys[i]) == 0) {
                char q[96];
                MT__QUOTE(q, keys[i]);
                MT_FREE((void *)keys);
                return mt__st_fail(fn, lab, "duplicate __metadata__ key %s", q);
            }
        MT_FREE((void *)keys);
    }

    /* the tensors tile the data section: sorted by offset, each begins
       where the previous ended, and the last ends with the file */
    qsort(by_offset, (size_t)st->count, sizeof *by_offset, mt__st_cmp_offset);
    {
        uint64_t at = 0;
        const mt__st_entry *prev = NULL;
        for (i = 0; i < st->count; i++) {
            const mt__st_entry *e = by_offset[i];
            char q1[96], q2[96];
            if (e->begin < at) {
                mt_status s = mt__st_fail(fn, lab, "tensors %s [%llu, %llu] and %s [%llu, %llu] overlap",
                                          MT__QUOTE(q1, prev->name), (unsigned long long)prev->begin,
                                          (unsigned long long)prev->end, MT__QUOTE(q2, e->name),
                                          (unsigned long long)e->begin, (unsigned long long)e->end);
                return s;
            }
            if (e->begin > at) {
                return mt__st_fail(fn, lab, "bytes [%llu, %llu) of the data section belong to no tensor (gap before %s)",
                                   (unsigned long long)at, (unsigned long long)e->begin, MT__QUOTE(q1, e->name));
            }
            at = e->end;
            prev = e;
        }
        if (at != st->data_size)
            return mt__st_fail(fn, lab, "bytes [%llu, %llu) of the data section belong to no tensor (trailing data after %s)",
                               (unsigned long long)at, (unsigned long long)st->data_size,
                               st->count ? "the last tensor" : "an empty header");
    }
    return MT_OK;
}

MTDEF void mt_safetensors_close(mt_safetensors *st) {
    if (!st) return;
    mt__storage_release(st->storage);
    MT_FREE(st->entries);
    MT_FREE(st->by_name);
    MT_FREE((void *)st->meta);
    MT_FREE(st->arena);
    MT_FREE(st);
}

/* Takes the reference to `storage` (the whole file) and validates it. */
static mt_status mt__st_load(mt_safetensors **out, mt_storage *storage, const char *label, const char *func) {
    mt__st_parse p;
    mt_status s;
    mt_safetensors *st = (mt_safetensors *)MT_MALLOC(sizeof(mt_safetensors));
    if (!st) {
        mt__storage_release(storage);
        return mt__fail(MT_ERR_MEMORY, func, "%s: out of memory", label);
    }
    memset(st, 0, sizeof *st);
    st->storage = storage;
    st->bytes = (const unsigned char *)storage->data;
    st->size = storage->nbytes;
    snprintf(st->label, sizeof st->label, "%s", label);
    memset(&p, 0, sizeof p);
    p.st = st;
    p.func = func;
    s = mt__st_parse_header(&p);
    MT_FREE(p.by_offset);
    if (s != MT_OK) {
        mt_safetensors_close(st);
        return s;
    }
    *out = st;
    return MT_OK;
}

MTDEF mt_status mt_safetensors_open_memory(mt_safetensors **st, const void *data, size_t size) {
    mt_storage *storage;
    if (!st) return MT__FAIL(MT_ERR_ARGUMENT, "st is NULL");
    *st = NULL;
    if (!data && size) return MT__FAIL(MT_ERR_ARGUMENT, "data is NULL");
    if (!mt__host_is_little_endian()) return MT__FAIL(MT_ERR_UNSUPPORTED, "big-endian hosts are not supported");
    storage = mt__storage_new(size);
    if (!storage) return MT__FAIL(MT_ERR_MEMORY, "cannot allocate %llu bytes", (unsigned long long)size);
    if (size) memcpy(storage->data, data, size);
    return mt__st_load(st, storage, "<memory>", "mt_safetensors_open_memory");
}

#if MT__FILES_POSIX
static void mt__st_unmap(void *ctx) {
    mt_storage *s = (mt_storage *)ctx;
    munmap(s->data, s->nbytes);
}
#endif

MTDEF mt_status mt_safetensors_open(mt_safetensors **st, const char *path) {
    char label[128];
    mt_storage *storage;
    if (!st) return MT__FAIL(MT_ERR_ARGUMENT, "st is NULL");
    *st = NULL;
    if (!path) return MT__FAIL(MT_ERR_ARGUMENT, "path is NULL");
    if (!mt__host_is_little_endian()) return MT__FAIL(MT_ERR_UNSUPPORTED, "big-endian hosts are not supported");
    mt__quote_path(label, sizeof label, path);
#if MT__FILES_POSIX
    {
        struct stat sb;
        void *base;
        int fd, flags = O_RDONLY;
        uint64_t size;
#ifdef O_CLOEXEC
        flags |= O_CLOEXEC;
#endif
        do fd = open(path, flags);
        while (fd < 0 && errno == EINTR);
        if (fd < 0) return MT__FAIL(MT_ERR_IO, "cannot open %s: %s", label, strerror(errno));
        if (fstat(fd, &sb) != 0) {
            int e = errno;
            close(fd);
            return MT__FAIL(MT_ERR_IO, "cannot stat %s: %s", label, strerror(e));
        }
        if (!S_ISREG(sb.st_mode)) {
            close(fd);
            return MT__FAIL(MT_ERR_IO, "%s is not a regular file", label);
        }
        size = (uint64_t)sb.st_size;
        if (size < 8) {
            close(fd);
            return mt__st_fail("mt_safetensors_open", label, "file is %llu bytes, too short for the 8-byte header length",
                               (unsigned long long)size);
        }
        if (size > (uint64_t)SIZE_MAX) {
            close(fd);
            return MT__FAIL(MT_ERR_UNSUPPORTED, "%s is too large to map on this system", label);
        }
        /* copy-on-write: writes into the tensors stay private */
        base = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        if (base == MAP_FAILED && errno == ENOMEM) /* no commit charge available: read-only */
            base = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (base == MAP_FAILED) {
            int e = errno;
            close(fd);
            return MT__FAIL(MT_ERR_IO, "cannot map %s: %s", label, strerror(e));
        }
        close(fd);
        storage = mt__storage_wrap(base, (size_t)size, mt__st_unmap, NULL);
        if (!storage) {
            munmap(base, (size_t)size);
            return MT__FAIL(MT_ERR_MEMORY, "out of memory");
        }
        storage->ctx = storage;
    }
#else
    {
        unsigned char *buf;
        size_t len;
        mt_status s = mt__read_file("mt_safetensors_open", path, label, (size_t)-1, &buf, &len);
        if (s != MT_OK) return s;
        storage = mt__storage_wrap(buf, len, mt__free_ctx, buf);
        if (!storage) {
            MT_FREE(buf);
            return MT__FAIL(MT_ERR_MEMORY, "out of memory");
        }
    }
#endif
    return mt__st_load(st, storage, label, "mt_safetensors_open");
}

MTDEF int mt_safetensors_count(const mt_safetensors *st) { return st ? st->count : 0; }

MTDEF const char *mt_safetensors_name(const mt_safetensors *st, int i) {
    return st && i >= 0 && i < st->count ? st->entries[i].name : NULL;
}

MTDEF int mt_safetensors_find(const mt_safetensors *st, const char *name) {
    int lo = 0, hi;
    if (!st || !name) return -1;
    hi = st->count - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(st->by_name[mid]->name, name);
        if (c == 0) return st->by_name[mid]->order;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

MTDEF mt_status mt_safetensors_info(const mt_safetensors *st, int i, mt_safetensors_tensor_info *info) {
    const mt__st_entry *e;
    const mt__st_dtype *d;
    int k;
    if (!st || !info) return MT__FAIL(MT_ERR_ARGUMENT, "st or info is NULL");
    if (i < 0 || i >= st->count)
        return MT__FAIL(MT_ERR_ARGUMENT, "index %d out of range for %d tensors in %s", i, st->count, st->label);
    e = &st->entries[i];
    d = &mt__st_dtypes[e->dtype];
    memset(info, 0, sizeof *info);
    info->name = e->name;
    info->dtype = d->name;
    info->supported = d->dt >= 0 && e->ndim <= MT_MAX_DIMS;
    info->dt = d->dt >= 0 ? (mt_dtype)d->dt : MT_F32;
    info->ndim = e->ndim;
    for (k = 0; k < MT_MAX_DIMS; k++) info->shape[k] = k < e->ndim ? e->shape[k] : 1;
    info->offset = st->data_start + e->begin;
    info->nbytes = e->end - e->begin;
    return MT_OK;
}

MTDEF mt_status mt_safetensors_get(const mt_safetensors *st, const char *name, mt_tensor *out) {
    const mt__st_entry *e;
    const mt__st_dtype *d;
    mt_tensor t;
    mt_dtype dt;
    unsigned char *src;
    char q[96];
    int i;
    mt_status s;
    if (!st || !name || !out) return MT__FAIL(MT_ERR_ARGUMENT, "st, name or out is NULL");
    i = mt_safetensors_find(st, name);
    if (i < 0) return MT__FAIL(MT_ERR_ARGUMENT, "%s: no tensor named %s", st->label, MT__QUOTE(q, name));
    e = &st->entries[i];
    d = &mt__st_dtypes[e->dtype];
    if (d->dt < 0)
        return MT__FAIL(MT_ERR_DTYPE, "%s: tensor %s has dtype %s; only F32, F16, BF16 and I64 can be loaded", st->label,
                        MT__QUOTE(q, name), d->name);
    if (e->ndim > MT_MAX_DIMS)
        return MT__FAIL(MT_ERR_UNSUPPORTED, "%s: tensor %s has %d dims, at most %d are supported", st->label,
                        MT__QUOTE(q, name), e->ndim, MT_MAX_DIMS);
    dt = (mt_dtype)d->dt;
    src = (unsigned char *)st->storage->data + st->data_start + e->begin;
    memset(&t, 0, sizeof t);
    if (((uintptr_t)src % mt_dtype_size(dt)) == 0) {
        /* a view of the file */
        t.dtype = dt;
        t.data = src;
        t.storage = st->storage;
        mt__storage_retain(st->storage);
        mt__set_contiguous(&t, e->ndim, e->shape);
    } else {
        /* misaligned for the dtype: copy */
        s = mt__prepare_out("mt_safetensors_get", &t, dt, e->ndim, e->shape);
        if (s != MT_OK) return s;
        memcpy(t.data, src, (size_t)(e->end - e->begin));
    }
    if (!out->data) {
        mt_move(out, &t);
        return MT_OK;
    }
    s = mt__prepare_out("mt_safetensors_get", out, dt, e->ndim, e->shape);
    if (s == MT_OK) s = mt_copy(out, &t);
    mt_release(&t);
    return s;
}

MTDEF int mt_safetensors_metadata_count(const mt_safetensors *st) { return st ? st->meta_count : 0; }

MTDEF const char *mt_safetensors_metadata_key(const mt_safetensors *st, int i) {
    return st && i >= 0 && i < st->meta_count ? st->meta[2 * i] : NULL;
}

MTDEF const char *mt_safetensors_metadata_value(const mt_safetensors *st, int i) {
    return st && i >= 0 && i < st->meta_count ? st->meta[2 * i + 1] : NULL;
}

MTDEF const char *mt_safetensors_metadata(const mt_safetensors *st, const char *key) {
    int i;
    if (!st || !key) return NULL;
    for (i = 0; i < st->meta_count; i++)
        if (strcmp(st->meta[2 * i], key) == 0) return st->meta[2 * i + 1];
    return NULL;
}

/* ---- safetensors writing --------------------------------------------- */

typedef struct mt__buf {
    char *p;
    size_t n, cap;
    int oom;
} mt__buf;

static void mt__buf_put(mt__buf *b, const char *s, size_t len) {
    if (b->oom) return;
    if (b->n + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;
        while (cap < b->n + len + 1) cap *= 2;
        p = (char *)MT_REALLOC(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

static void mt__buf_puts(mt__buf *b, const char *s) { mt__buf_put(b, s, strlen(s)); }

static void mt__buf_u64(mt__buf *b, uint64_t v) {
    char t[24];
    snprintf(t, sizeof t, "%llu", (unsigned long long)v);
    mt__buf_puts(b, t);
}

/* A JSON string as serde_json writes it: '"' and '\\' escaped, \b \f \n
   \r \t, other control characters as \u00xx, everything else verbatim. */
static void mt__buf_json_string(mt__buf *b, const char *s) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    mt__buf_put(b, "\"", 1);
    for (; *u; u++) {
        char e[7];
        const char *rep = NULL;
        switch (*u) {
        case '"': rep = "\\\""; break;
        case '\\': rep = "\\\\"; break;
        case '\b': rep = "\\b"; break;
        case '\f': rep = "\\f"; break;
        case '\n': rep = "\\n"; break;
        case '\r': rep = "\\r"; break;
        case '\t': rep = "\\t"; break;
        default:
            if (*u < 0x20) {
                memcpy(e, "\\u00", 4);
                e[4] = hex[*u >> 4];
                e[5] = hex[*u & 15];
                e[6] = '\0';
                rep = e;
            }
        }
        if (rep) mt__buf_puts(b, rep);
        else mt__buf_put(b, (const char *)u, 1);
    }
    mt__buf_put(b, "\"", 1);
}

typedef struct mt__st_item {
    const char *name;
    const mt_tensor *t;
    int rank; /* the reference writer's dtype order */
} mt__st_item;

static int mt__st_rank(mt_dtype dt) {
    switch (dt) {
    case MT_I64: return 3;
    case MT_F32: return 2;
    case MT_BF16: return 1;
    default: return 0; /* F16 */
    }
}

/* descending dtype alignment, then name (safetensors/src/tensor.rs, prepare) */
static int mt__st_cmp_item(const void *a, const void *b) {
    const mt__st_item *x = (const mt__st_item *)a, *y = (const mt__st_item *)b;
    if (x->rank != y->rank) return y->rank - x->rank;
    return strcmp(x->name, y->name);
}

#if MT__FILES_POSIX
static int mt__write_all(int fd, const void *data, size_t n) {
    const char *p = (const char *)data;
    while (n) {
        size_t chunk = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
        ssize_t w = write(fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            return 0;
        }
        p += w;
        n -= (size_t)w;
    }
    return 1;
}
typedef int mt__file;
#define MT__WRITE(f, p, n) mt__write_all(f, p, n)
#else
typedef FILE *mt__file;
#define MT__WRITE(f, p, n) (fwrite(p, 1, n, f) == (n))
#endif

static int mt__st_cmp_item_name(const void *a, const void *b) {
    return strcmp(((const mt__st_item *)a)->name, ((const mt__st_item *)b)->name);
}

/* Checks the arguments, orders the items and builds the padded header. */
static mt_status mt__st_prepare(int n, const char *const *names, const mt_tensor *const *tensors, int n_meta,
                                const char *const *meta, mt__st_item *items, mt__buf *h) {
    const char *fn = "mt_safetensors_save";
    char q[96];
    uint64_t offset = 0;
    int i;
    for (i = 0; i < n; i++) {
        const mt_tensor *t = tensors[i];
        if (!names[i]) return mt__fail(MT_ERR_ARGUMENT, fn, "names[%d] is NULL", i);
        MT__QUOTE(q, names[i]);
        if (mt__utf8_check((const unsigned char *)names[i], strlen(names[i])) != strlen(names[i]))
            return mt__fail(MT_ERR_ARGUMENT, fn, "name %s is not valid UTF-8", q);
        if (strcmp(names[i], "__metadata__") == 0)
            return mt__fail(MT_ERR_ARGUMENT, fn, "the name \"__metadata__\" is reserved for metadata");
        if (!t || !t->data) return mt__fail(MT_ERR_ARGUMENT, fn, "tensor %s (index %d) is empty", q, i);
        if (!mt__st_dtype_of(t->dtype))
            return mt__fail(MT_ERR_DTYPE, fn, "tensor %s has unknown dtype %d", q, (int)t->dtype);
        items[i].name = names[i];
        items[i].t = t;
        items[i].rank = mt__st_rank(t->dtype);
    }
    for (i = 0; i < 2 * n_meta; i++) {
        if (!meta[i]) return mt__fail(MT_ERR_ARGUMENT, fn, "meta[%d] is NULL", i);
        if (mt__utf8_check((const unsigned char *)meta[i], strlen(meta[i])) != strlen(meta[i]))
            return mt__fail(MT_ERR_ARGUMENT, fn, "metadata %s %s is not valid UTF-8", i % 2 ? "value" : "key",
                            MT__QUOTE(q, meta[i]));
    }
    /* unique names: sorted by name alone first */
    qsort(items, (size_t)n, sizeof *items, mt__st_cmp_item_name);
    for (i = 1; i < n; i++)
        if (strcmp(items[i - 1].name, items[i].name) == 0)
            return mt__fail(MT_ERR_ARGUMENT, fn, "duplicate tensor name %s", MT__QUOTE(q, items[i].name));
    qsort(items, (size_t)n, sizeof *items, mt__st_cmp_item);
    /* unique metadata keys (few: quadratic is fine) */
    for (i = 0; i < n_meta; i++) {
        int k;
        for (k = 0; k < i; k++)
            if (strcmp(meta[2 * k], meta[2 * i]) == 0)
                return mt__fail(MT_ERR_ARGUMENT, fn, "duplicate metadata key %s", MT__QUOTE(q, meta[2 * i]));
    }
    mt__buf_put(h, "        ", 8); /* the length, filled in below */
    mt__buf_put(h, "{", 1);
    if (n_meta > 0) {
        mt__buf_puts(h, "\"__metadata__\":{");
        for (i = 0; i < n_meta; i++) {
            if (i) mt__buf_put(h, ",", 1);
            mt__buf_json_string(h, meta[2 * i]);
            mt__buf_put(h, ":", 1);
            mt__buf_json_string(h, meta[2 * i + 1]);
        }
        mt__buf_put(h, "}", 1);
    }
    for (i = 0; i < n; i++) {
        const mt_tensor *t = items[i].t;
        uint64_t nbytes = (uint64_t)mt_numel(t) * mt_dtype_size(t->dtype);
        int d;
        if (i || n_meta > 0) mt__buf_put(h, ",", 1);
        mt__buf_json_string(h, items[i].name);
        mt__buf_puts(h, ":{\"dtype\":\"");
        mt__buf_puts(h, mt__st_dtype_of(t->dtype));
        mt__buf_puts(h, "\",\"shape\":[");
        for (d = 0; d < t->ndim; d++) {
            if (d) mt__buf_put(h, ",", 1);
            mt__buf_u64(h, (uint64_t)t->shape[d]);
        }
        mt__buf_puts(h, "],\"data_offsets\":[");
        mt__buf_u64(h, offset);
        mt__buf_put(h, ",", 1);
        mt__buf_u64(h, offset + nbytes);
        mt__buf_puts(h, "]}");
        offset += nbytes;
    }
    mt__buf_put(h, "}", 1);
    while (h->n % 8) mt__buf_put(h, " ", 1);
    if (h->oom) return mt__fail(MT_ERR_MEMORY, fn, "out of memory building the header");
    if (h->n - 8 > MT_SAFETENSORS_MAX_HEADER)
        return mt__fail(MT_ERR_ARGUMENT, fn, "header would be %llu bytes, over the limit of %d",
                        (unsigned long long)(h->n - 8), MT_SAFETENSORS_MAX_HEADER);
    {
        uint64_t len = (uint64_t)(h->n - 8);
        for (i = 0; i < 8; i++) h->p[i] = (char)((len >> (8 * i)) & 0xff);
    }
    return MT_OK;
}

MTDEF mt_status mt_safetensors_save(const char *path, int n, const char *const *names,
                                    const mt_tensor *const *tensors, int n_meta, const char *const *meta) {
    mt__st_item *items;
    mt__buf h;
    mt_status s;
    mt__file f;
    char label[128], tmp_path[4096];
    int i, err = 0;
    const char *fail_what = "write";
    if (!path) return MT__FAIL(MT_ERR_ARGUMENT, "path is NULL");
    if (n < 0 || n_meta < 0) return MT__FAIL(MT_ERR_ARGUMENT, "n = %d and n_meta = %d must not be negative", n, n_meta);
    if (n && (!names || !tensors)) return MT__FAIL(MT_ERR_ARGUMENT, "names or tensors is NULL");
    if (n_meta && !meta) return MT__FAIL(MT_ERR_ARGUMENT, "meta is NULL");
    if (!mt__host_is_little_endian()) return MT__FAIL(MT_ERR_UNSUPPORTED, "big-endian hosts are not supported");
    mt__quote_path(label, sizeof label, path);
    items = (mt__st_item *)MT_MALLOC(((size_t)n + 1) * sizeof(mt__st_item));
    if (!items) return MT__FAIL(MT_ERR_MEMORY, "out of memory");
    memset(&h, 0, sizeof h);
    s = mt__st_prepare(n, names, tensors, n_meta, meta, items, &h);
    if (s != MT_OK) {
        MT_FREE(items);
        MT_FREE(h.p);
        return s;
    }
#if MT__FILES_POSIX
    /* a new file beside the target, renamed over it at the end */
    {
        int attempt, flags = O_WRONLY | O_CREAT | O_EXCL;
#ifdef O_CLOEXEC
        flags |= O_CLOEXEC;
#endif
        f = -1;
        for (attempt = 0; attempt < 100 && f < 0; attempt++) {
            int w = snprintf(tmp_path, sizeof tmp_path, "%s.tmp-%ld-%d", path, (long)getpid(), attempt);
            if (w < 0 || (size_t)w >= sizeof tmp_path) {
                errno = ENAMETOOLONG;
                break;
            }
            do f = open(tmp_path, flags, 0666);
            while (f < 0 && errno == EINTR);
            if (f < 0 && errno != EEXIST) break;
        }
        if (f < 0) {
            int e = errno;
            MT_FREE(items);
            MT_FREE(h.p);
            return MT__FAIL(MT_ERR_IO, "cannot create %s: %s", label, strerror(e));
        }
    }
#else
    (void)tmp_path;
    f = fopen(path, "wb");
    if (!f) {
        int e = errno;
        MT_FREE(items);
        MT_FREE(h.p);
        return MT__FAIL(MT_ERR_IO, "cannot create %s: %s", label, strerror(e));
    }
#endif
    if (!MT__WRITE(f, h.p, h.n)) err = errno ? errno : EIO;
    for (i = 0; i < n && !err; i++) {
        const mt_tensor *t = items[i].t;
        size_t nbytes = (size_t)mt_numel(t) * mt_dtype_size(t->dtype);
        if (!nbytes) continue;
        if (mt_is_contiguous(t)) {
            if (!MT__WRITE(f, t->data, nbytes)) err = errno ? errno : EIO;
        } else {
            mt_tensor c;
            memset(&c, 0, sizeof c);
            s = mt_contiguous(&c, t);
            if (s != MT_OK) break;
            if (!MT__WRITE(f, c.data, nbytes)) err = errno ? errno : EIO;
            mt_release(&c);
        }
    }
#if MT__FILES_POSIX
    if (close(f) != 0 && !err && s == MT_OK) err = errno ? errno : EIO;
    if (!err && s == MT_OK && rename(tmp_path, path) != 0) {
        err = errno;
        fail_what = "rename a temporary file onto";
    }
    if (err || s != MT_OK) unlink(tmp_path);
#else
    if (fclose(f) != 0 && !err && s == MT_OK) err = errno ? errno : EIO;
    if (err || s != MT_OK) remove(path);
#endif
    MT_FREE(items);
    MT_FREE(h.p);
    if (s != MT_OK) return s;
    if (err) return MT__FAIL(MT_ERR_IO, "cannot %s %s: %s", fail_what, label, strerror(err));
    return MT_OK;
}

/* ---- images ---------------------------------------------------------- */

#ifndef MT_NO_STB_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
/* decoders: PNG and JPEG only (less code facing untrusted files) */
#define STBI_NO_BMP
#define STBI_NO_GIF
#define STBI_NO_HDR
#define STBI_NO_PIC
#define STBI_NO_PNM
#define STBI_NO_PSD
#define STBI_NO_TGA
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
/* stb_image 2.27 declares this name but defines stbi__unpremultiply_on_load_thread */
#define stbi_set_unpremultiply_on_load_thread stbi__unpremultiply_on_load_thread
#define STBI_MALLOC(sz) MT_MALLOC(sz)
#define STBI_REALLOC(p, sz) MT_REALLOC(p, sz)
#define STBI_FREE(p) MT_FREE(p)
#define STBIW_MALLOC(sz) MT_MALLOC(sz)
#define STBIW_REALLOC(p, sz) MT_REALLOC(p, sz)
#define STBIW_FREE(p) MT_FREE(p)
#endif
#if defined(__GNUC__)
#pragma GCC diagnostic push
#if defined(__clang__)
#pragma GCC diagnostic ignored "-Wunknown-warning-option"
#endif
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wtype-limits"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wcast-qual"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#pragma GCC diagnostic ignored "-Wpedantic"
#endif
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#undef stbi_set_unpremultiply_on_load_thread

static const char *mt__stbi_reason(void) {
    const char *r = stbi_failure_reason();
    return r ? r : "unknown error";
}

/* Debian's stb_image (2.27) trusts a JPEG's Huffman tables; upstream 2.28
   fixed it. A table of more than 256 codes overflows the decoder's arrays,
   and a scan may use a table never defined (uninitialized memory, then an
   out-of-bounds read or a failed STBI_ASSERT). This walk follows the marker
   parsing of stb_image (stray bytes skipped, segments by length, entropy-coded
   data up to the next marker that is not a restart) and refuses such files
   before stb_image sees them. NULL = nothing found. */
static const char *mt__jpeg_precheck(const unsigned char *p, size_t n) {
    size_t i = 1;
    unsigned defined = 0; /* bit tc * 4 + th */
    int progressive = 0;
    if (n < 2 || p[0] != 0xFF) return NULL;
    while (i < n && p[i] == 0xFF) i++; /* stb reads SOI after fill bytes */
    if (i >= n || p[i] != 0xD8) return NULL;
    i++;
    while (i < n) {
        unsigned m;
        size_t len;
        if (p[i] != 0xFF) {
            i++;
            continue;
        }
        while (i < n && p[i] == 0xFF) i++;
        if (i >= n) break;
        m = p[i++];
        if (m == 0xD9) break;                                              /* EOI */
        if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) continue; /* no length */
        if (i + 2 > n) break;
        len = ((size_t)p[i] << 8) | p[i + 1];
        if (m == 0xC4) { /* DHT: tables until the length is used up, as stb reads it */
            long left = (long)len - 2;
            size_t k = i + 2;
            while (left > 0) {
                unsigned q = k < n ? p[k] : 0, codes = 0, t;
                for (t = 0; t < 16; t++) codes += k + 1 + t < n ? p[k + 1 + t] : 0;
                if (codes > 256) return "a JPEG Huffman table has more than 256 codes";
                if ((q >> 4) <= 1 && (q & 15) <= 3) defined |= 1u << ((q >> 4) * 4 + (q & 15));
                k += 17 + codes;
                left -= 17 + (long)codes;
            }
        } else if (m == 0xC0 || m == 0xC1 || m == 0xC2) {
            progressive = m == 0xC2;
        } else if (m == 0xDA) { /* SOS: every table the scan decodes with must exist */
            size_t k = i + 2, ns = k < n ? p[k] : 0, c;
            unsigned ss = k + 1 + 2 * ns < n ? p[k + 1 + 2 * ns] : 0;
            unsigned ah = k + 3 + 2 * ns < n ? p[k + 3 + 2 * ns] >> 4 : 0;
            int need_dc = !progressive || (ss == 0 && ah == 0), need_ac = !progressive || ss != 0;
            for (c = 0; c < ns; c++) {
                unsigned q = k + 2 + 2 * c < n ? p[k + 2 + 2 * c] : 0, hd = q >> 4, ha = q & 15;
                if (need_dc && hd <= 3 && !(defined & (1u << hd))) return "a JPEG scan uses an undefined DC Huffman table";
                if (need_ac && ha <= 3 && !(defined & (1u << (4 + ha))))
                    return "a JPEG scan uses an undefined AC Huffman table";
            }
            i += len;
            while (i + 1 < n && !(p[i] == 0xFF && p[i + 1] != 0x00 && (p[i + 1] < 0xD0 || p[i + 1] > 0xD7))) i++;
            continue;
        }
        i += len;
    }
    return NULL;
}

/* A PNG chunk longer than the rest of the file makes stb_image 2.27
   allocate up to 2 GB before it notices; refused here. NULL = fine. */
static const char *mt__png_precheck(const unsigned char *p, size_t n) {
    size_t i = 8;
    if (n < 8 || memcmp(p, "\x89PNG\r\n\x1a\n", 8) != 0) return NULL;
    while (n - i >= 8) { /* a chunk header: length, type */
        uint32_t len = ((uint32_t)p[i] << 24) | ((uint32_t)p[i + 1] << 16) | ((uint32_t)p[i + 2] << 8) | p[i + 3];
        if (len > n - i - 8) return "a PNG chunk runs past the end of the file";
        if (memcmp(p + i + 4, "IEND", 4) == 0) break;
        i += 12 + (size_t)len;
        if (i > n) break;
    }
    return NULL;
}

static int mt__image_check_range(mt_image_range range) { return range == MT_RANGE_UNIT || range == MT_RANGE_SIGNED; }

/* x * 255 rounded half to even, as numpy's round on float32 */
static unsigned char mt__image_byte(float x, mt_image_range range) {
    float y = x, z, r;
    if (range == MT_RANGE_SIGNED) {
        y = x / 2;
        y = y + 0.5f;
    }
    if (y < 0.0f) y = 0.0f;
    if (y > 1.0f) y = 1.0f;
    z = y * 255.0f;
    r = (float)floor(z);
    if (z - r > 0.5f || (z - r == 0.5f && fmod(r, 2.0) != 0.0)) r += 1.0f;
    return (unsigned char)r;
}

typedef struct mt__png_sink {
    FILE *f;
    int err;
} mt__png_sink;

static void mt__png_write(void *ctx, void *data, int size) {
    mt__png_sink *s = (mt__png_sink *)ctx;
    if (!s->err && size > 0 && fwrite(data, 1, (size_t)size, s->f) != (size_t)size) s->err = errno ? errno : EIO;
}

MTDEF mt_status mt_image_save_png(const char *path, const mt_tensor *images, int64_t index, mt_image_range range) {
    int64_t n, c, h, w, sn, sc, sh, sw, y, x, k, bad = 0;
    const float *base;
    unsigned char *pix;
    char label[128], dims[160];
    mt__png_sink sink;
    int ok;
    if (!path || !images) return MT__FAIL(MT_ERR_ARGUMENT, "path or images is NULL");
    if (!images->data) return MT__FAIL(MT_ERR_ARGUMENT, "images tensor is empty");
    if (!mt__image_check_range(range)) return MT__FAIL(MT_ERR_ARGUMENT, "unknown range %d", (int)range);
    mt__quote_path(label, sizeof label, path);
    mt__shape_fmt(dims, sizeof dims, images->ndim, images->shape);
    if (images->dtype != MT_F32)
        return MT__FAIL(MT_ERR_DTYPE, "images are %s, expected float32 (convert with mt_to_dtype)",
                        mt_dtype_name(images->dtype));
    if (images->ndim == 4) {
        n = images->shape[0];
        sn = images->stride[0];
    } else if (images->ndim == 3) {
        n = 1;
        sn = 0;
    } else {
        return MT__FAIL(MT_ERR_SHAPE, "images are %s, expected [N, C, H, W] or [C, H, W]", dims);
    }
    c = images->shape[images->ndim - 3];
    h = images->shape[images->ndim - 2];
    w = images->shape[images->ndim - 1];
    sc = images->stride[images->ndim - 3];
    sh = images->stride[images->ndim - 2];
    sw = images->stride[images->ndim - 1];
    if (c < 1 || c > 4)
        return MT__FAIL(MT_ERR_SHAPE, "images %s have %lld channels, expected 1 (gray), 2 (gray, alpha), 3 (RGB) or 4 (RGBA)",
                        dims, (long long)c);
    if (index < 0 || index >= n)
        return MT__FAIL(MT_ERR_ARGUMENT, "index %lld out of range for %lld images", (long long)index, (long long)n);
    if (h < 1 || w < 1) return MT__FAIL(MT_ERR_SHAPE, "images %s are empty", dims);
    if (w > INT_MAX / 4 || h > INT_MAX / (w * c) / 4)
        return MT__FAIL(MT_ERR_SHAPE, "images %s are too large for PNG output", dims);
    base = (const float *)images->data + index * sn;
    for (y = 0; y < h; y++)
        for (x = 0; x < w; x++)
            for (k = 0; k < c; k++) {
                float v = base[k * sc + y * sh + x * sw];
                if (!isfinite(v)) bad++;
            }
    if (bad)
        return MT__FAIL(MT_ERR_ARGUMENT, "image %lld of %s has %lld non-finite values (NaN or Inf); nothing was written to %s",
                        (long long)index, dims, (long long)bad, label);
    pix = (unsigned char *)MT_MALLOC((size_t)(h * w * c));
    if (!pix) return MT__FAIL(MT_ERR_MEMORY, "cannot allocate %lld bytes", (long long)(h * w * c));
    for (y = 0; y < h; y++)
        for (x = 0; x < w; x++)
            for (k = 0; k < c; k++) pix[(y * w + x) * c + k] = mt__image_byte(base[k * sc + y * sh + x * sw], range);
    sink.f = fopen(path, "wb");
    if (!sink.f) {
        int e = errno;
        MT_FREE(pix);
        return MT__FAIL(MT_ERR_IO, "cannot open %s for writing: %s", label, strerror(e));
    }
    sink.err = 0;
    ok = stbi_write_png_to_func(mt__png_write, &sink, (int)w, (int)h, (int)c, pix, (int)(w * c));
    MT_FREE(pix);
    if (fclose(sink.f) != 0 && !sink.err) sink.err = errno ? errno : EIO;
    if (!ok || sink.err) {
        remove(path);
        if (!ok) return MT__FAIL(MT_ERR_MEMORY, "cannot encode %s: out of memory", label);
        return MT__FAIL(MT_ERR_IO, "cannot write %s: %s", label, strerror(sink.err));
    }
    return MT_OK;
}

static mt_status mt__image_decode(const char *func, const char *label, mt_tensor *out, const unsigned char *buf,
                                  size_t size, int channels, mt_image_range range) {
    int w, h, comp, c;
    int64_t shape[4], y, x, k;
    unsigned char *pix;
    mt_tensor t;
    float *dst;
    mt_status s;
    const char *bad;
    if (size > (size_t)INT_MAX) return mt__fail(MT_ERR_UNSUPPORTED, func, "%s is over 2 GB", label);
    bad = mt__jpeg_precheck(buf, size);
    if (!bad) bad = mt__png_precheck(buf, size);
    if (bad) return mt__fail(MT_ERR_FORMAT, func, "cannot decode %s: %s", label, bad);
    if (!stbi_info_from_memory(buf, (int)size, &w, &h, &comp))
        return mt__fail(MT_ERR_FORMAT, func, "cannot decode %s: not a PNG or JPEG image, or a damaged one (stb_image: %s)",
                        label, mt__stbi_reason());
    if ((int64_t)w * h > MT_IMAGE_MAX_PIXELS)
        return mt__fail(MT_ERR_UNSUPPORTED, func, "%s is %d x %d pixels, over the limit of %lld (MT_IMAGE_MAX_PIXELS)",
                        label, w, h, (long long)MT_IMAGE_MAX_PIXELS);
    c = channels ? channels : comp;
    pix = stbi_load_from_memory(buf, (int)size, &w, &h, &comp, c);
    if (!pix) return mt__fail(MT_ERR_FORMAT, func, "cannot decode %s: damaged or unsupported image (stb_image: %s)", label,
                              mt__stbi_reason());
    shape[0] = 1;
    shape[1] = c;
    shape[2] = h;
    shape[3] = w;
    memset(&t, 0, sizeof t);
    s = mt__prepare_out(func, &t, MT_F32, 4, shape);
    if (s != MT_OK) {
        stbi_image_free(pix);
        return s;
    }
    dst = (float *)t.data;
    for (k = 0; k < c; k++)
        for (y = 0; y < h; y++)
            for (x = 0; x < w; x++) {
                float v = (float)pix[(y * w + x) * c + k] / 255.0f;
                if (range == MT_RANGE_SIGNED) {
                    v = 2.0f * v;
                    v = v - 1.0f;
                }
                dst[(k * h + y) * w + x] = v;
            }
    stbi_image_free(pix);
    if (!out->data) {
        mt_move(out, &t);
        return MT_OK;
    }
    s = mt__prepare_out(func, out, MT_F32, 4, shape);
    if (s == MT_OK) s = mt_copy(out, &t);
    mt_release(&t);
    return s;
}

static mt_status mt__image_args(const char *func, const mt_tensor *out, int channels, mt_image_range range) {
    if (!out) return mt__fail(MT_ERR_ARGUMENT, func, "out is NULL");
    if (channels < 0 || channels > 4)
        return mt__fail(MT_ERR_ARGUMENT, func, "channels = %d, expected 0 (as stored), 1, 2, 3 or 4", channels);
    if (!mt__image_check_range(range)) return mt__fail(MT_ERR_ARGUMENT, func, "unknown range %d", (int)range);
    return MT_OK;
}

MTDEF mt_status mt_image_load_memory(mt_tensor *out, const void *data, size_t size, int channels, mt_image_range range) {
    mt_status s = mt__image_args("mt_image_load_memory", out, channels, range);
    if (s != MT_OK) return s;
    if (!data) return MT__FAIL(MT_ERR_ARGUMENT, "data is NULL");
    return mt__image_decode("mt_image_load_memory", "<memory>", out, (const unsigned char *)data, size, channels, range);
}

MTDEF mt_status mt_image_load(mt_tensor *out, const char *path, int channels, mt_image_range range) {
    char label[128];
    unsigned char *buf;
    size_t len;
    mt_status s = mt__image_args("mt_image_load", out, channels, range);
    if (s != MT_OK) return s;
    if (!path) return MT__FAIL(MT_ERR_ARGUMENT, "path is NULL");
    mt__quote_path(label, sizeof label, path);
    s = mt__read_file("mt_image_load", path, label, (size_t)INT_MAX, &buf, &len);
    if (s != MT_OK) return s;
    s = mt__image_decode("mt_image_load", label, out, buf, len, channels, range);
    MT_FREE(buf);
    return s;
}

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
