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
       MT_NO_MMAP        read safetensors files instead of mapping them
       MT_IMAGE_MAX_PIXELS        largest image mt_image_load decodes (2^26)
       MT_SAFETENSORS_MAX_HEADER  largest safetensors header (100 MB)

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
   order. After a call the workers spin for about a millisecond before they
   sleep, so that consecutive calls (the layers of a network) start at once.
   Define MT_NO_THREADS to build without threads (all calls serial). */

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
   progress). Safe to call at any time but from inside a parallel region,
   also twice; the next parallel call starts the pool again. Runs
   automatically at exit (atexit). */
MTDEF void mt_threads_shutdown(void);

/* ======================================================================
   SECTION random: PyTorch-compatible generator
   ====================================================================== */

/* A generator that reproduces PyTorch's CPU generator (torch.Generator()):
   the same mt19937 state, the same transformations from 32-bit words to
   floats, and the same cached second Box-Muller sample, so that for the same
   seed, shapes and call order mt_randn / mt_rand / mt_randint give what
   torch.randn / torch.rand / torch.randint give on the CPU in float32.

   - Exact (bit-equal) for tensors of fewer than 16 elements: PyTorch draws
     those one double-precision normal at a time (two 64-bit uniforms per
     Box-Muller pair, the second sample cached for the next call).
   - From 16 elements on, PyTorch fills the tensor with float uniforms and
     transforms them 16 at a time (Box-Muller on pairs i, i+8; when the size
     is not a multiple of 16 the last 16 values are drawn again). PyTorch's
     x86 kernel for this (AVX2) evaluates log/sin/cos with single-precision
     Cephes polynomials and fused multiply-adds; the same float operations
     are evaluated here in scalar C with fmaf, so the values are bit-equal
     to that kernel, and within 2e-6 of PyTorch builds without it.

   The struct is plain data: copy it to fork a stream, zero-initialise and
   seed it before use. A generator is not locked: use one per thread (or
   per image, as diffusers does with a list of generators). */
#define MT_MT19937_N 624

typedef struct mt_generator {
    uint64_t seed;                 /* the seed given to mt_generator_seed */
    int left;                      /* mt19937: words left until the next twist (+1) */
    int seeded;                    /* 1 once seeded */
    uint32_t next;                 /* mt19937: index of the next state word */
    uint32_t state[MT_MT19937_N];  /* mt19937 state words */
    int has_next_double_normal;    /* cached second sample of the double Box-Muller */
    double next_double_normal;
    int has_next_float_normal;     /* cached float sample (kept for parity with torch; */
    float next_float_normal;       /* no float32 CPU kernel of these calls uses it) */
} mt_generator;

/* torch.Generator().manual_seed(seed) / torch.manual_seed(seed): resets the
   mt19937 state (only the low 32 bits seed the state, as in PyTorch) and
   drops both cached normal samples. */
MTDEF void mt_generator_seed(mt_generator *g, uint64_t seed);
/* One raw 32-bit word (CPUGeneratorImpl::random) and one 64-bit word made of
   two of them, the first as the high half (CPUGeneratorImpl::random64). */
MTDEF uint32_t mt_generator_random(mt_generator *g);
MTDEF uint64_t mt_generator_random64(mt_generator *g);

/* Float32 tensors in row-major order (a preallocated `out` may be strided:
   values go to it in logical order). */
/* torch.randn(*shape, generator=g) */
MTDEF mt_status mt_randn(mt_tensor *out, mt_generator *g, int ndim, const int64_t *shape);
/* torch.normal(mean, std, shape, generator=g); std >= 0 */
MTDEF mt_status mt_normal(mt_tensor *out, mt_generator *g, double mean, double std, int ndim, const int64_t *shape);
/* torch.rand(*shape, generator=g): uniform on [0, 1) with 24 random bits */
MTDEF mt_status mt_rand(mt_tensor *out, mt_generator *g, int ndim, const int64_t *shape);
/* torch.empty(shape).uniform_(from, to, generator=g); from <= to */
MTDEF mt_status mt_uniform(mt_tensor *out, mt_generator *g, double from, double to, int ndim, const int64_t *shape);
/* torch.randint(low, high, shape, generator=g, dtype=torch.float32):
   integers in [low, high); low < high, both within +-2^24 so that every
   value is exact in float32 */
MTDEF mt_status mt_randint(mt_tensor *out, mt_generator *g, int64_t low, int64_t high, int ndim, const int64_t *shape);
/* diffusers' randn_tensor(shape, generator=[g0, g1, ...]): batch item i
   (slice i of dim 0) is torch.randn((1,) + shape[1:], generator=gens[i]),
   and the slices are concatenated. n_gens must equal shape[0]. */
MTDEF mt_status mt_randn_batch(mt_tensor *out, mt_generator *gens, int n_gens, int ndim, const int64_t *shape);

/* ======================================================================
   SECTION ops: element-wise, reductions, softmax, printing
   ====================================================================== */

/* Element-wise kernels. Inputs are float32 (convert float16/bfloat16 with
   mt_to_dtype first). Shapes broadcast as in NumPy and PyTorch: aligned on
   the right, a dim of size 1 (or a missing leading dim) stretches. The result
   follows the output convention; `out` may be one of the inputs when that
   input has the result's shape (in place), and an input that overlaps a
   preallocated `out` in any other way is copied first. Any strides are
   accepted for inputs and for a preallocated `out` (but not an expanded
   `out`). Large tensors are split over the thread pool; the split never
   changes a value. */
MTDEF mt_status mt_add(mt_tensor *out, const mt_tensor *a, const mt_tensor *b); /* a + b */
MTDEF mt_status mt_sub(mt_tensor *out, const mt_tensor *a, const mt_tensor *b); /* a - b */
MTDEF mt_status mt_mul(mt_tensor *out, const mt_tensor *a, const mt_tensor *b); /* a * b */
MTDEF mt_status mt_div(mt_tensor *out, const mt_tensor *a, const mt_tensor *b); /* a / b */
MTDEF mt_status mt_add_scalar(mt_tensor *out, const mt_tensor *a, float s);    /* a + s (a - s: pass -s) */
MTDEF mt_status mt_mul_scalar(mt_tensor *out, const mt_tensor *a, float s);    /* a * s */
MTDEF mt_status mt_div_scalar(mt_tensor *out, const mt_tensor *a, float s);    /* a / s (a true division) */
/* alpha * a + beta * b, broadcasting, each product rounded to float32 as in
   torch's `alpha * a + beta * b` */
MTDEF mt_status mt_axpby(mt_tensor *out, float alpha, const mt_tensor *a, float beta, const mt_tensor *b);
/* torch.clamp(a, lo, hi) = min(max(a, lo), hi); NaN stays NaN; pass
   -INFINITY or INFINITY for a one-sided bound */
MTDEF mt_status mt_clamp(mt_tensor *out, const mt_tensor *a, float lo, float hi);
/* torch.where(cond, a, b): a where cond is nonzero, else b; cond is float32
   or int64; all three broadcast together */
MTDEF mt_status mt_where(mt_tensor *out, const mt_tensor *cond, const mt_tensor *a, const mt_tensor *b);
/* torch.lerp(a, b, w) = a + w * (b - a), computed as PyTorch's CPU kernel:
   |w| < 0.5 ? fma(w, b - a, a) : fma(w - 1, b - a, b) (one rounding) */
MTDEF mt_status mt_lerp(mt_tensor *out, const mt_tensor *a, const mt_tensor *b, float w);
MTDEF mt_status mt_lerp_tensor(mt_tensor *out, const mt_tensor *a, const mt_tensor *b, const mt_tensor *w);

/* Unary kernels, float32, the result has the input's shape. Per element with
   libm's float functions, with torch's formulas:
     rsqrt = 1 / sqrt(x)            sigmoid = 1 / (1 + exp(-x))
     silu = x / (1 + exp(-x))       gelu = x * 0.5 * (1 + erf(x / sqrt(2)))
     gelu_tanh = 0.5 * x * (1 + tanh(k)), k = sqrt(2/pi) * (x + 0.044715 x^3),
                 evaluated as x / (1 + exp(-2k)) (the same function, cheaper
                 and without cancellation for negative x) */
MTDEF mt_status mt_neg(mt_tensor *out, const mt_tensor *a);
MTDEF mt_status mt_abs(mt_tensor *out, const mt_tensor *a);
MTDEF mt_status mt_square(mt_tensor *out, const mt_tensor *a);
MTDEF mt_status mt_exp(mt_tensor *out, const mt_tensor *a);
MTDEF mt_status mt_log(mt_tensor *out, const mt_tensor *a);
MTDEF mt_status mt_sqrt(mt_tensor *out, const mt_tensor *a);
MTDEF mt_status mt_rsqrt(mt_tensor *out, const mt_tensor *a);
MTDEF mt_status mt_sin(mt_tensor *out, const mt_tensor *a);
MTDEF mt_status mt_cos(mt_tensor *out, const mt_tensor *a);
MTDEF mt_status mt_tanh(mt_tensor *out, const mt_tensor *a);
MTDEF mt_status mt_sigmoid(mt_tensor *out, const mt_tensor *a);
MTDEF mt_status mt_silu(mt_tensor *out, const mt_tensor *a);
MTDEF mt_status mt_gelu(mt_tensor *out, const mt_tensor *a);      /* exact (erf) form */
MTDEF mt_status mt_gelu_tanh(mt_tensor *out, const mt_tensor *a); /* approximate='tanh' */

/* Reductions over one dim (negative counts from the end), or over the whole
   tensor with dim = MT_DIM_ALL. keepdim = 1 keeps the reduced dim with size
   1 (all dims for MT_DIM_ALL); keepdim = 0 drops it (MT_DIM_ALL gives a 0-dim
   scalar). Input float32, any strides; output float32 (int64 for argmax and
   argmin, whose whole-tensor index counts in row-major order).
   Summation: every output adds its n inputs in double, in fixed blocks of
   4096 consecutive elements along the reduced dim, each block in 8
   interleaved partial sums (element k goes to sum k % 8) combined pairwise,
   then the blocks in order. The order depends only on n: not on strides,
   layout or thread count, so results are bit-identical across them.
   mean = sum / n; var and std are two-pass (mean, then the sum of squared
   deviations in the same order) divided by max(n - correction, 0) as torch
   (correction = 1: unbiased, 0: population; n <= correction gives nan or
   inf). Sum over 0 elements is 0, mean and var nan; max, min, argmax and
   argmin of 0 elements fail. max/min propagate NaN; argmax/argmin return the
   first index of the extreme (of the first NaN if any), as torch. */
#define MT_DIM_ALL (-0x7fffffff - 1)
MTDEF mt_status mt_sum(mt_tensor *out, const mt_tensor *a, int dim, int keepdim);
MTDEF mt_status mt_mean(mt_tensor *out, const mt_tensor *a, int dim, int keepdim);
MTDEF mt_status mt_var(mt_tensor *out, const mt_tensor *a, int dim, int correction, int keepdim);
MTDEF mt_status mt_std(mt_tensor *out, const mt_tensor *a, int dim, int correction, int keepdim);
MTDEF mt_status mt_max(mt_tensor *out, const mt_tensor *a, int dim, int keepdim);
MTDEF mt_status mt_min(mt_tensor *out, const mt_tensor *a, int dim, int keepdim);
MTDEF mt_status mt_argmax(mt_tensor *out, const mt_tensor *a, int dim, int keepdim);
MTDEF mt_status mt_argmin(mt_tensor *out, const mt_tensor *a, int dim, int keepdim);

/* softmax and log-softmax along `dim`, numerically stable (the maximum of the
   line is subtracted first; the sum of exponentials accumulates in double in
   index order). The result has the input's shape; `out` may be the input. */
MTDEF mt_status mt_softmax(mt_tensor *out, const mt_tensor *a, int dim);
MTDEF mt_status mt_log_softmax(mt_tensor *out, const mt_tensor *a, int dim);

/* Printing as PyTorch's repr with its default options (4 decimals, fixed or
   scientific notation chosen as torch does, 80 columns, more than 1000
   elements summarised with "..." keeping 3 items at each edge, a dtype
   suffix for float16 / bfloat16):
       tensor([[-1.1258, -1.1524],
               [ 0.8487,  0.6920]])
   mt_print writes the text and a newline to `f`; mt_format writes it into
   buf (always NUL-terminated when size > 0) and returns the length of the
   whole text, as snprintf does. The one-line summary is mt_describe. */
MTDEF mt_status mt_print(FILE *f, const mt_tensor *t);
MTDEF int mt_format(const mt_tensor *t, char *buf, size_t size);

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

/* Numerics of diffusers' schedulers (src/diffusers/schedulers/): Euler
   discrete, Euler ancestral, DDIM and DPM-Solver multistep, with diffusers'
   config names and arithmetic (float64 where diffusers uses numpy, float32
   where it uses torch tensors), so timesteps and sigmas match to float32
   precision and a loop gives diffusers' numbers.

   Two objects keep immutable configuration apart from run state, so several
   threads can run one pipeline, each with its own mt_scheduler made from a
   shared config:

       mt_scheduler_config cfg = {0};          // zero = diffusers' defaults
       cfg.kind = MT_SCHEDULER_EULER;
       cfg.beta_schedule = "scaled_linear";
       cfg.beta_start = 0.00085; cfg.beta_end = 0.012;
       mt_scheduler s;
       mt_scheduler_init(&s, &cfg);            // validates the config
       mt_scheduler_set_timesteps(&s, 30);
       // latents = randn(...) * s.init_noise_sigma
       for (i = 0; i < s.num_inference_steps; i++) {
           double t = s.timesteps[i];
           mt_scheduler_scale_model_input(&s, &x_in, &latents, t);
           ... model(x_in, t) -> eps ...
           mt_scheduler_step(&s, &latents, &eps, t, &latents, &gen, 1);
       }
       mt_scheduler_free(&s);

   Image-to-image: mt_scheduler_img2img_timesteps() gives the first index and
   the count of the timesteps to run for a strength (as diffusers' pipelines'
   get_timesteps) and sets the begin index; mt_scheduler_add_noise() noises
   the image latents at the first of them.

   Not covered: custom timestep/sigma lists, Euler's s_churn (always 0),
   exponential/beta/Lu sigmas, rescale_betas_zero_snr, trained_betas, DPM's
   variance_type and lambda_min_clipped, sde-dpmsolver (non ++). */

typedef enum mt_scheduler_kind {
    MT_SCHEDULER_NONE = 0,              /* not set: mt_scheduler_init refuses it */
    MT_SCHEDULER_EULER,                 /* EulerDiscreteScheduler */
    MT_SCHEDULER_EULER_ANCESTRAL,       /* EulerAncestralDiscreteScheduler */
    MT_SCHEDULER_DDIM,                  /* DDIMScheduler */
    MT_SCHEDULER_DPMSOLVER_MULTISTEP,   /* DPMSolverMultistepScheduler */
    MT_SCHEDULER_KIND_COUNT
} mt_scheduler_kind;

/* Boolean options where zero means the scheduler's own default. */
typedef enum mt_sched_flag { MT_SCHED_DEFAULT = 0, MT_SCHED_TRUE = 1, MT_SCHED_FALSE = -1 } mt_sched_flag;

/* Immutable configuration. Every field left zero (NULL for names) takes
   diffusers' default for the chosen kind; names are diffusers' config values
   and an unknown one is an error. Options that do not apply to the kind are
   ignored, as diffusers' from_config ignores them. */
typedef struct mt_scheduler_config {
    mt_scheduler_kind kind;
    int num_train_timesteps;        /* 0 -> 1000 */
    double beta_start;              /* 0 -> 0.0001 */
    double beta_end;                /* 0 -> 0.02 */
    const char *beta_schedule;      /* NULL -> "linear"; "scaled_linear", "squaredcos_cap_v2" */
    const char *prediction_type;    /* NULL -> "epsilon"; "v_prediction", "sample" (not Euler ancestral) */
    const char *timestep_spacing;   /* NULL -> "linspace" ("leading" for DDIM); "leading", "trailing" */
    int steps_offset;               /* 0 */
    mt_sched_flag use_karras_sigmas;    /* Euler, DPM: default false */
    const char *final_sigmas_type;  /* Euler, DPM: NULL -> "zero"; "sigma_min" */
    /* DDIM */
    mt_sched_flag set_alpha_to_one; /* default true */
    mt_sched_flag clip_sample;      /* default true */
    double clip_sample_range;       /* 0 -> 1.0 */
    /* DDIM, DPM: dynamic thresholding of the predicted sample */
    mt_sched_flag thresholding;     /* default false */
    double dynamic_thresholding_ratio;  /* 0 -> 0.995 */
    double sample_max_value;        /* 0 -> 1.0 */
    /* DPM-Solver multistep */
    int solver_order;               /* 0 -> 2; 1, 2 or 3 */
    const char *algorithm_type;     /* NULL -> "dpmsolver++"; "dpmsolver", "sde-dpmsolver++" */
    const char *solver_type;        /* NULL -> "midpoint"; "heun" */
    mt_sched_flag lower_order_final;    /* default true */
    mt_sched_flag euler_at_final;       /* default false */
} mt_scheduler_config;

#define MT_SCHEDULER_MAX_ORDER 3

/* Run state made from a config. Fields are readable; change them only
   through the calls below (eta excepted). */
typedef struct mt_scheduler {
    mt_scheduler_config config;     /* resolved: defaults filled, names point to static strings */
    int num_train_timesteps;
    float *alphas_cumprod;          /* [num_train_timesteps], float32 as diffusers computes it */
    float final_alpha_cumprod;      /* DDIM: alpha_prod at the step after the last */
    /* set by mt_scheduler_set_timesteps */
    int num_inference_steps;        /* entries in timesteps */
    float *timesteps;               /* [num_inference_steps], descending (integers except Euler linspace/Karras) */
    float *sigmas;                  /* [num_inference_steps + 1] (Euler, Euler a, DPM), NULL for DDIM */
    float init_noise_sigma;         /* scale of the initial noise */
    /* progress */
    int step_index;                 /* -1 until the first scale_model_input / step */
    int begin_index;                /* -1 unless set (image-to-image) */
    double eta;                     /* DDIM: eta of step() (0 = deterministic); caller may set */
    int lower_order_nums;           /* DPM: steps taken so far, up to solver_order */
    mt_tensor model_outputs[MT_SCHEDULER_MAX_ORDER]; /* DPM: converted outputs, newest last */
    int kind_opts[8];               /* private: resolved option codes */
} mt_scheduler;

/* "EulerDiscreteScheduler", ... */
MTDEF const char *mt_scheduler_kind_name(mt_scheduler_kind kind);
/* Accepts diffusers' class names and the short names "euler", "euler_a",
   "ddim", "dpm" (alias "dpm++2m"); unknown names are an error. */
MTDEF mt_status mt_scheduler_kind_from_name(const char *name, mt_scheduler_kind *kind);

/* Validates `config` and computes the training schedule into `s` (which
   must not hold a live scheduler: free it first). On failure `s` is left
   empty (mt_scheduler_free is still safe). `config` is only read. */
MTDEF mt_status mt_scheduler_init(mt_scheduler *s, const mt_scheduler_config *config);
MTDEF void mt_scheduler_free(mt_scheduler *s);
/* scheduler.set_timesteps(n): timesteps, sigmas, init_noise_sigma; resets
   the step index, the begin index and the DPM history. */
MTDEF mt_status mt_scheduler_set_timesteps(mt_scheduler *s, int num_inference_steps);
/* scheduler.set_begin_index(i) */
MTDEF mt_status mt_scheduler_set_begin_index(mt_scheduler *s, int begin_index);
/* Image-to-image as diffusers' pipelines do it (get_timesteps): after
   set_timesteps(n), init = min(int(n * strength), n), t_start = n - init;
   the steps to run are timesteps[t_start ...] (*count = n - t_start of
   them) and the begin index becomes t_start. strength in [0, 1]. */
MTDEF mt_status mt_scheduler_img2img_timesteps(mt_scheduler *s, double strength, int *t_start, int *count);
/* scheduler.scale_model_input(sample, t): sample / sqrt(sigma^2 + 1) for
   Euler and Euler ancestral, a copy otherwise. out may be sample. */
MTDEF mt_status mt_scheduler_scale_model_input(mt_scheduler *s, mt_tensor *out, const mt_tensor *sample,
                                               double timestep);
/* scheduler.step(model_output, t, sample, generator=...).prev_sample.
   Noise (Euler ancestral, DDIM with eta > 0, sde-dpmsolver++) is drawn as
   diffusers' randn_tensor: with one generator over the whole shape, with
   n_gens == batch one per batch item; gens may be NULL when no noise is
   needed. prev_sample may be sample or model_output. */
MTDEF mt_status mt_scheduler_step(mt_scheduler *s, mt_tensor *prev_sample, const mt_tensor *model_output,
                                  double timestep, const mt_tensor *sample, mt_generator *gens, int n_gens);
/* scheduler.add_noise(original, noise, [t]): the same timestep for every
   batch item. out may be original or noise. */
MTDEF mt_status mt_scheduler_add_noise(mt_scheduler *s, mt_tensor *out, const mt_tensor *original,
                                       const mt_tensor *noise, double timestep);
/* DDIM's _get_variance(t, prev_t) (float32) */
MTDEF mt_status mt_scheduler_ddim_variance(const mt_scheduler *s, int timestep, int prev_timestep, float *variance);

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

/* torch.linspace(start, end, n, dtype=float32) on the CPU as PyTorch 1.13's
   AVX2 kernel computes it (RangeFactoriesKernel.cpp): float step; each block
   of 8 starts at start + step * i (end - step * (n - 1 - i) past halfway),
   fused multiply-add, and the lanes add k * step to that base unfused; the
   last n % 16 values are computed one by one with the fused form. */
static void mt__torch_linspace(float *out, double start_d, double end_d, int64_t n) {
    float start = (float)start_d, end = (float)end_d, step;
    int64_t half = n / 2, i = 0, v, k;
    if (n == 1) {
        out[0] = start;
        return;
    }
    step = (end - start) / (float)(n - 1);
    for (; i <= n - 16; i += 16) {
        for (v = 0; v < 2; v++) {
            int64_t idx = i + 8 * v;
            float base = idx < half ? fmaf(step, (float)idx, start) : fmaf(-step, (float)(n - idx - 1), end);
            for (k = 0; k < 8; k++) out[idx + k] = base + (float)k * step;
        }
    }
    for (; i < n; i++) out[i] = i < half ? fmaf(step, (float)i, start) : fmaf(-step, (float)(n - i - 1), end);
}

MTDEF mt_status mt_linspace(mt_tensor *out, double start, double end, int64_t n) {
    mt_status s;
    if (n < 0) return MT__FAIL(MT_ERR_ARGUMENT, "number of points %lld is negative", (long long)n);
    s = mt__prepare_out("mt_linspace", out, MT_F32, 1, &n);
    if (s != MT_OK) return s;
    if (n > 0) mt__torch_linspace((float *)out->data, start, end, n);
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
#include <sched.h>
#include <unistd.h>

typedef struct mt__pool_job {
    mt_parallel_fn fn;
    void *ctx;
    int64_t n, chunk, nchunks;
    int64_t next;     /* atomic: next chunk to claim */
    int64_t done;     /* atomic: chunks finished */
    int active;       /* atomic: workers inside the job (joining is under mt__pool_mu) */
} mt__pool_job;

static pthread_mutex_t mt__pool_run = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t mt__pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mt__pool_wake = PTHREAD_COND_INITIALIZER;
static pthread_cond_t mt__pool_idle = PTHREAD_COND_INITIALIZER;
static pthread_t *mt__pool_threads;         /* under mt__pool_run */
static int mt__pool_nworkers;               /* under mt__pool_run */
static int mt__pool_atexit_set;             /* under mt__pool_run */
static int mt__pool_stop;                   /* written under mt__pool_mu, atomic */
static unsigned long mt__pool_gen;          /* written under mt__pool_mu, atomic: job number */
static mt__pool_job *mt__pool_job_slot;     /* under mt__pool_mu */
static int mt__pool_sleepers;               /* under mt__pool_mu: workers in cond_wait */

/* Spins before sleeping (a worker between jobs, the caller waiting for the
   workers): back-to-back parallel calls, such as the layers of a network,
   then hand over without waiting for the scheduler to wake a thread, which
   takes milliseconds on a loaded machine, and without a wake-up call, which
   can make the scheduler put the woken thread on the caller's core. The
   spin yields the core every few steps, so a spinning thread never keeps a
   runnable one waiting. About 1 ms. */
#define MT__POOL_SPIN 20000

static void mt__cpu_relax(int step) {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
    __asm__ __volatile__("pause");
#elif defined(__aarch64__) && defined(__GNUC__)
    __asm__ __volatile__("yield");
#endif
    if ((step & 31) == 31) sched_yield();
}

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
    for (;;) {
        mt__pool_job *job;
        int64_t mine;
        int spin;
        for (spin = 0; spin < MT__POOL_SPIN; spin++) {
            if (__atomic_load_n(&mt__pool_gen, __ATOMIC_ACQUIRE) != seen ||
                __atomic_load_n(&mt__pool_stop, __ATOMIC_ACQUIRE))
                break;
            mt__cpu_relax(spin);
        }
        pthread_mutex_lock(&mt__pool_mu);
        for (;;) {
            if (mt__pool_stop) break;
            if (mt__pool_job_slot && mt__pool_gen != seen) break;
            seen = mt__pool_gen; /* a job that ended before we looked */
            mt__pool_sleepers++;
            pthread_cond_wait(&mt__pool_wake, &mt__pool_mu);
            mt__pool_sleepers--;
        }
        if (mt__pool_stop) {
            pthread_mutex_unlock(&mt__pool_mu);
            break;
        }
        seen = mt__pool_gen;
        job = mt__pool_job_slot;
        __atomic_add_fetch(&job->active, 1, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&mt__pool_mu);
        mine = mt__run_chunks(job->fn, job->ctx, job->n, job->chunk, job->nchunks, &job->next);
        /* no lock on the way out (a thread blocked on a lock can wait long
           for a core on a busy machine); the job may be gone once active
           drops to 0, so only globals are touched after that */
        __atomic_add_fetch(&job->done, mine, __ATOMIC_RELEASE);
        if (__atomic_sub_fetch(&job->active, 1, __ATOMIC_ACQ_REL) == 0) {
            pthread_mutex_lock(&mt__pool_mu);
            pthread_cond_signal(&mt__pool_idle);
            pthread_mutex_unlock(&mt__pool_mu);
        }
    }
    return NULL;
}

/* Stops every worker; the caller holds mt__pool_run. */
static void mt__pool_stop_workers(void) {
    int i;
    if (!mt__pool_nworkers) return;
    pthread_mutex_lock(&mt__pool_mu);
    __atomic_store_n(&mt__pool_stop, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&mt__pool_wake);
    pthread_mutex_unlock(&mt__pool_mu);
    for (i = 0; i < mt__pool_nworkers; i++) pthread_join(mt__pool_threads[i], NULL);
    MT_FREE(mt__pool_threads);
    mt__pool_threads = NULL;
    mt__pool_nworkers = 0;
    pthread_mutex_lock(&mt__pool_mu);
    __atomic_store_n(&mt__pool_stop, 0, __ATOMIC_RELEASE);
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
    gen = __atomic_load_n(&mt__pool_gen, __ATOMIC_ACQUIRE);
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
    int threads, spin;
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
    __atomic_add_fetch(&mt__pool_gen, 1, __ATOMIC_RELEASE);
    if (mt__pool_sleepers) pthread_cond_broadcast(&mt__pool_wake); /* spinning workers see gen */
    pthread_mutex_unlock(&mt__pool_mu);
    mine = mt__run_chunks(fn, ctx, n, job.chunk, job.nchunks, &job.next);
    __atomic_add_fetch(&job.done, mine, __ATOMIC_RELEASE);
    for (spin = 0; spin < MT__POOL_SPIN; spin++) {
        if (__atomic_load_n(&job.done, __ATOMIC_ACQUIRE) == job.nchunks &&
            __atomic_load_n(&job.active, __ATOMIC_ACQUIRE) == 0)
            break;
        mt__cpu_relax(spin);
    }
    pthread_mutex_lock(&mt__pool_mu);
    while (__atomic_load_n(&job.active, __ATOMIC_ACQUIRE) > 0 ||
           __atomic_load_n(&job.done, __ATOMIC_ACQUIRE) < job.nchunks)
        pthread_cond_wait(&mt__pool_idle, &mt__pool_mu);
    mt__pool_job_slot = NULL;
    pthread_mutex_unlock(&mt__pool_mu);
    mt__in_parallel = 0;
    pthread_mutex_unlock(&mt__pool_run);
}

#endif

/* ======================================================================
   IMPLEMENTATION SECTION random
   ====================================================================== */

/* mt19937 as PyTorch's at::mt19937 keeps it (ATen/core/MT19937RNGEngine.h):
   the state is refilled ("twisted") lazily when `left` drops to zero. */
#define MT__MT_M 397
#define MT__MT_MATRIX_A 0x9908b0dfu
#define MT__MT_UMASK 0x80000000u
#define MT__MT_LMASK 0x7fffffffu
/* the seed of a torch.Generator() that was never seeded (c10 default_rng_seed_val) */
#define MT__DEFAULT_SEED 67280421310721ull

MTDEF void mt_generator_seed(mt_generator *g, uint64_t seed) {
    int j;
    MT_ASSERT(g);
    g->seed = seed;
    g->seeded = 1;
    g->state[0] = (uint32_t)(seed & 0xffffffffu);
    for (j = 1; j < MT_MT19937_N; j++)
        g->state[j] = 1812433253u * (g->state[j - 1] ^ (g->state[j - 1] >> 30)) + (uint32_t)j;
    g->left = 1;
    g->next = 0;
    g->has_next_double_normal = 0;
    g->next_double_normal = 0.0;
    g->has_next_float_normal = 0;
    g->next_float_normal = 0.0f;
}

static uint32_t mt__mt_twist(uint32_t u, uint32_t v) {
    return (((u & MT__MT_UMASK) | (v & MT__MT_LMASK)) >> 1) ^ ((v & 1u) ? MT__MT_MATRIX_A : 0u);
}

static void mt__mt_refill(mt_generator *g) {
    uint32_t *s = g->state;
    int k;
    for (k = 0; k < MT_MT19937_N - MT__MT_M; k++) s[k] = s[k + MT__MT_M] ^ mt__mt_twist(s[k], s[k + 1]);
    for (; k < MT_MT19937_N - 1; k++) s[k] = s[k + MT__MT_M - MT_MT19937_N] ^ mt__mt_twist(s[k], s[k + 1]);
    s[k] = s[k + MT__MT_M - MT_MT19937_N] ^ mt__mt_twist(s[k], s[0]);
    g->left = MT_MT19937_N;
    g->next = 0;
}

/* A zeroed (never seeded) generator behaves as torch.Generator(): it seeds
   itself with PyTorch's default seed on first use. */
static void mt__gen_ready(mt_generator *g) {
    if (!g->seeded) mt_generator_seed(g, MT__DEFAULT_SEED);
}

static int mt__gen_valid(const mt_generator *g) {
    return !g->seeded || (g->left > 0 && g->left <= MT_MT19937_N && g->next <= (uint32_t)MT_MT19937_N);
}

static uint32_t mt__gen_u32(mt_generator *g) {
    uint32_t y;
    if (--g->left == 0) mt__mt_refill(g);
    y = g->state[g->next++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

static uint64_t mt__gen_u64(mt_generator *g) {
    uint64_t hi = mt__gen_u32(g);
    uint64_t lo = mt__gen_u32(g);
    return (hi << 32) | lo;
}

MTDEF uint32_t mt_generator_random(mt_generator *g) {
    MT_ASSERT(g && mt__gen_valid(g));
    mt__gen_ready(g);
    return mt__gen_u32(g);
}

MTDEF uint64_t mt_generator_random64(mt_generator *g) {
    MT_ASSERT(g && mt__gen_valid(g));
    mt__gen_ready(g);
    return mt__gen_u64(g);
}

/* uniform_real_distribution<float>(0, 1): 24 bits scaled by 2^-24 */
static float mt__gen_uniform_f(mt_generator *g) {
    return (float)(mt__gen_u32(g) & 0xffffffu) * (1.0f / 16777216.0f);
}

/* uniform_real_distribution<double>(0, 1): 53 bits of a 64-bit word */
static double mt__gen_uniform_d(mt_generator *g) {
    return (double)(mt__gen_u64(g) & ((UINT64_C(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

/* normal_distribution<double>: Box-Muller on two double uniforms, the sine
   sample cached in the generator for the next draw. */
static double mt__gen_normal_d(mt_generator *g, double mean, double std) {
    double u1, u2, r, theta;
    if (g->has_next_double_normal) {
        g->has_next_double_normal = 0;
        return fma(g->next_double_normal, std, mean);
    }
    u1 = mt__gen_uniform_d(g);
    u2 = mt__gen_uniform_d(g);
    r = sqrt(-2.0 * log(1.0 - u2));
    theta = 2.0 * 3.14159265358979323846 * u1;
    g->next_double_normal = r * sin(theta);
    g->has_next_double_normal = 1;
    return fma(r * cos(theta), std, mean);
}

/* fmaf(a, b, c), correctly rounded, without relying on a fast libm fmaf:
   a * b is exact in double, so (double)a * b + c rounds once to double and
   once more to float; the second rounding can only go wrong when the double
   lands exactly on a float midpoint (the 29 low mantissa bits 1000...0) or
   outside the normal float range, and then the libm fmaf decides. */
static float mt__fmaf(float a, float b, float c) {
#if defined(FP_FAST_FMAF) || defined(__FMA__)
    return fmaf(a, b, c);
#else
    double d = (double)a * (double)b + (double)c, ad = fabs(d);
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    if ((u & 0x1fffffffu) == 0x10000000u || (ad != 0.0 && (ad < 1.1754943508222875e-38 || ad > 3.4e38)))
        return fmaf(a, b, c);
    return (float)d;
#endif
}

/* Single-precision log and sin/cos as PyTorch's AVX2 normal kernel evaluates
   them (the Cephes polynomials, ATen/native/cpu/avx_mathfun.h): every step
   is one rounded float operation, in the same order, so the scalar result
   matches a vector lane. Arguments here are in (0, 1] (log) and [0, 2*pi)
   (sincos). */
static float mt__cephes_logf(float x) {
    uint32_t bits;
    float e, z, y, t;
    int below;
    if (!(x > 0.0f)) return x == 0.0f ? -INFINITY : NAN;
    if (x < 1.17549435e-38f) x = 1.17549435e-38f; /* no subnormals */
    bits = mt__f32_bits(x);
    e = (float)((int)(bits >> 23) - 127);
    e = e + 1.0f;
    x = mt__bits_f32((bits & ~0x7f800000u) | 0x3f000000u); /* mantissa in [0.5, 1) */
    below = x < (float)0.707106781186547524;
    t = below ? x : 0.0f;
    x = x - 1.0f;
    e = e - (below ? 1.0f : 0.0f);
    x = x + t;
    z = x * x;
    y = mt__fmaf((float)7.0376836292E-2, x, (float)-1.1514610310E-1);
    y = mt__fmaf(y, x, (float)1.1676998740E-1);
    y = mt__fmaf(y, x, (float)-1.2420140846E-1);
    y = mt__fmaf(y, x, (float)1.4249322787E-1);
    y = mt__fmaf(y, x, (float)-1.6668057665E-1);
    y = mt__fmaf(y, x, (float)2.0000714765E-1);
    y = mt__fmaf(y, x, (float)-2.4999993993E-1);
    y = mt__fmaf(y, x, (float)3.3333331174E-1);
    y = y * x;
    y = mt__fmaf(y, z, e * (float)-2.12194440e-4);
    y = mt__fmaf(z, -0.5f, y);
    return mt__fmaf(e, (float)0.693359375, x + y);
}

static void mt__cephes_sincosf(float x, float *s, float *c) {
    uint32_t sign_sin = mt__f32_bits(x) & 0x80000000u, sign_cos;
    float y, z, p1, p2, ps, pc;
    int32_t j;
    x = fabsf(x);
    y = x * (float)1.27323954473516; /* 4 / pi */
    j = (int32_t)y;
    j = (j + 1) & ~1;
    y = (float)j;
    sign_sin ^= (uint32_t)(j & 4) << 29;
    sign_cos = (uint32_t)(~(j - 2) & 4) << 29;
    /* x - y * pi/4 in three pieces */
    x = mt__fmaf(y, (float)-0.78515625, x);
    x = mt__fmaf(y, (float)-2.4187564849853515625e-4, x);
    x = mt__fmaf(y, (float)-3.77489497744594108e-8, x);
    z = x * x;
    p1 = mt__fmaf((float)2.443315711809948E-005, z, (float)-1.388731625493765E-003); /* cos */
    p1 = mt__fmaf(p1, z, (float)4.166664568298827E-002);
    p1 = p1 * z;
    p1 = mt__fmaf(p1, z, -(z * 0.5f));
    p1 = p1 + 1.0f;
    p2 = mt__fmaf((float)-1.9515295891E-4, z, (float)8.3321608736E-3); /* sin */
    p2 = mt__fmaf(p2, z, (float)-1.6666654611E-1);
    p2 = p2 * z;
    p2 = mt__fmaf(p2, x, x);
    if ((j & 2) == 0) {
        ps = 0.0f + p2;
        pc = p1 + 0.0f;
    } else {
        ps = p1 + 0.0f;
        pc = 0.0f + p2;
    }
    *s = mt__bits_f32(mt__f32_bits(ps) ^ sign_sin);
    *c = mt__bits_f32(mt__f32_bits(pc) ^ sign_cos);
}

/* Box-Muller on 16 uniforms: pairs (j, j + 8), as PyTorch's normal_fill_16 */
static void mt__normal_fill16(float *d, float mean, float std) {
    int j;
    for (j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j], u2 = d[j + 8], radius, theta, s, c;
        radius = sqrtf(-2.0f * mt__cephes_logf(u1));
        theta = (float)(2.0 * 3.14159265358979323846) * u2;
        mt__cephes_sincosf(theta, &s, &c);
        d[j] = mt__fmaf(radius * c, std, mean);
        d[j + 8] = mt__fmaf(radius * s, std, mean);
    }
}

/* torch's normal_ on a contiguous float32 tensor of n elements */
static void mt__normal_fill(mt_generator *g, float *d, int64_t n, double mean, double std) {
    int64_t i;
    if (n >= 16) {
        float fm = (float)mean, fs = (float)std;
        for (i = 0; i < n; i++) d[i] = mt__gen_uniform_f(g);
        for (i = 0; i + 16 <= n; i += 16) mt__normal_fill16(d + i, fm, fs);
        if (n % 16) {
            /* the tail: the last 16 values are drawn again and transformed */
            float *t = d + n - 16;
            for (i = 0; i < 16; i++) t[i] = mt__gen_uniform_f(g);
            mt__normal_fill16(t, fm, fs);
        }
    } else {
        for (i = 0; i < n; i++) d[i] = (float)mt__gen_normal_d(g, mean, std);
    }
}

enum { MT__RAND_NORMAL, MT__RAND_UNIFORM, MT__RAND_INT };

typedef struct mt__rand_args {
    int kind;
    double a, b;        /* mean/std, from/to */
    int64_t low;        /* randint */
    uint64_t range;
} mt__rand_args;

static void mt__rand_fill(mt_generator *g, float *d, int64_t n, const mt__rand_args *a) {
    int64_t i;
    if (a->kind == MT__RAND_NORMAL) {
        mt__normal_fill(g, d, n, a->a, a->b);
    } else if (a->kind == MT__RAND_UNIFORM) {
        float from = (float)a->a, to = (float)a->b, span = to - from;
        for (i = 0; i < n; i++) d[i] = mt__fmaf(mt__gen_uniform_f(g), span, from);
    } else {
        for (i = 0; i < n; i++) d[i] = (float)((int64_t)(mt__gen_u32(g) % a->range) + a->low);
    }
}

/* Shared driver: checks, prepares `out`, fills it in logical order through a
   contiguous buffer when `out` is strided. `gens` has `n_gens` generators;
   with more than one, slice i of dim 0 is drawn from gens[i]. */
static mt_status mt__rand_run(const char *func, mt_tensor *out, mt_generator *gens, int n_gens, int ndim,
                              const int64_t *shape, const mt__rand_args *a) {
    mt_tensor tmp = {MT_F32, 0, {0}, {0}, NULL, NULL};
    int was_empty, i;
    int64_t n, per;
    float *d;
    mt_status s;
    if (!out) return mt__fail(MT_ERR_ARGUMENT, func, "output tensor is NULL");
    if (!gens) return mt__fail(MT_ERR_ARGUMENT, func, "generator is NULL");
    for (i = 0; i < n_gens; i++)
        if (!mt__gen_valid(&gens[i]))
            return mt__fail(MT_ERR_ARGUMENT, func, "generator %d has a corrupt state (left=%d, next=%u)", i,
                            gens[i].left, (unsigned)gens[i].next);
    s = mt__check_shape(func, ndim, shape, &n);
    if (s != MT_OK) return s;
    was_empty = out->data == NULL;
    s = mt__prepare_out(func, out, MT_F32, ndim, shape);
    if (s != MT_OK) return s;
    if (mt_is_contiguous(out)) {
        d = (float *)out->data;
    } else {
        s = mt__prepare_out(func, &tmp, MT_F32, ndim, shape);
        if (s != MT_OK) {
            if (was_empty) mt_release(out);
            return s;
        }
        d = (float *)tmp.data;
    }
    per = n_gens > 1 ? (shape[0] ? n / shape[0] : 0) : n;
    for (i = 0; i < n_gens; i++) {
        mt__gen_ready(&gens[i]);
        mt__rand_fill(&gens[i], d + (int64_t)i * per, per, a);
    }
    if (tmp.data) {
        s = mt_copy(out, &tmp);
        mt_release(&tmp);
    }
    return s;
}

MTDEF mt_status mt_normal(mt_tensor *out, mt_generator *g, double mean, double std, int ndim, const int64_t *shape) {
    mt__rand_args a;
    if (!(std >= 0.0) || isinf(std) || !isfinite(mean))
        return MT__FAIL(MT_ERR_ARGUMENT, "std must be finite and >= 0 and mean finite (mean=%g, std=%g)", mean, std);
    memset(&a, 0, sizeof a);
    a.kind = MT__RAND_NORMAL;
    a.a = mean;
    a.b = std;
    return mt__rand_run("mt_normal", out, g, 1, ndim, shape, &a);
}

MTDEF mt_status mt_randn(mt_tensor *out, mt_generator *g, int ndim, const int64_t *shape) {
    mt__rand_args a;
    memset(&a, 0, sizeof a);
    a.kind = MT__RAND_NORMAL;
    a.a = 0.0;
    a.b = 1.0;
    return mt__rand_run("mt_randn", out, g, 1, ndim, shape, &a);
}

MTDEF mt_status mt_uniform(mt_tensor *out, mt_generator *g, double from, double to, int ndim, const int64_t *shape) {
    mt__rand_args a;
    if (!(from <= to) || !isfinite(from) || !isfinite(to) || !isfinite((double)((float)to - (float)from)))
        return MT__FAIL(MT_ERR_ARGUMENT, "need finite from <= to in float32 range (from=%g, to=%g)", from, to);
    memset(&a, 0, sizeof a);
    a.kind = MT__RAND_UNIFORM;
    a.a = from;
    a.b = to;
    return mt__rand_run("mt_uniform", out, g, 1, ndim, shape, &a);
}

MTDEF mt_status mt_rand(mt_tensor *out, mt_generator *g, int ndim, const int64_t *shape) {
    mt__rand_args a;
    memset(&a, 0, sizeof a);
    a.kind = MT__RAND_UNIFORM;
    a.a = 0.0;
    a.b = 1.0;
    return mt__rand_run("mt_rand", out, g, 1, ndim, shape, &a);
}

MTDEF mt_status mt_randint(mt_tensor *out, mt_generator *g, int64_t low, int64_t high, int ndim,
                           const int64_t *shape) {
    mt__rand_args a;
    const int64_t lim = (int64_t)1 << 24;
    if (low >= high)
        return MT__FAIL(MT_ERR_ARGUMENT, "low %lld must be below high %lld", (long long)low, (long long)high);
    if (low < -lim || high - 1 > lim)
        return MT__FAIL(MT_ERR_ARGUMENT, "range [%lld, %lld) is not exact in float32 (bounds must be within +-2^24)",
                        (long long)low, (long long)high);
    memset(&a, 0, sizeof a);
    a.kind = MT__RAND_INT;
    a.low = low;
    a.range = (uint64_t)(high - low);
    return mt__rand_run("mt_randint", out, g, 1, ndim, shape, &a);
}

MTDEF mt_status mt_randn_batch(mt_tensor *out, mt_generator *gens, int n_gens, int ndim, const int64_t *shape) {
    mt__rand_args a;
    if (ndim < 1 || !shape) return MT__FAIL(MT_ERR_SHAPE, "shape needs a batch dimension (ndim = %d)", ndim);
    if (n_gens < 1 || (int64_t)n_gens != shape[0])
        return MT__FAIL(MT_ERR_ARGUMENT, "%d generators for a batch of %lld: need one per batch item", n_gens,
                        (long long)shape[0]);
    memset(&a, 0, sizeof a);
    a.kind = MT__RAND_NORMAL;
    a.a = 0.0;
    a.b = 1.0;
    return mt__rand_run("mt_randn_batch", out, gens, n_gens, ndim, shape, &a);
}

/* ======================================================================
   IMPLEMENTATION SECTION ops
   ====================================================================== */

/* ---- shared helpers -------------------------------------------------- */

/* Byte range [*lo, *hi) touched by a tensor (strides are never negative). */
static void mt__extent(const mt_tensor *t, uintptr_t *lo, uintptr_t *hi) {
    int64_t last = 0;
    int i;
    *lo = (uintptr_t)t->data;
    for (i = 0; i < t->ndim; i++) {
        if (t->shape[i] == 0) {
            *hi = *lo;
            return;
        }
        last += (t->shape[i] - 1) * t->stride[i];
    }
    *hi = *lo + (uintptr_t)((last + 1) * (int64_t)mt_dtype_size(t->dtype));
}

static int mt__overlap(const mt_tensor *a, const mt_tensor *b) {
    uintptr_t alo, ahi, blo, bhi;
    mt__extent(a, &alo, &ahi);
    mt__extent(b, &blo, &bhi);
    return alo < bhi && blo < ahi;
}

/* 1 when some dim of size > 1 has stride 0: writing it would race. */
static int mt__is_expanded(const mt_tensor *t) {
    int i;
    for (i = 0; i < t->ndim; i++)
        if (t->shape[i] > 1 && t->stride[i] == 0) return 1;
    return 0;
}

/* Drops dims of size 1 and merges neighbours that are contiguous with each
   other in every operand (row-major order of the index space is kept). */
static int mt__coalesce(int ndim, int64_t *shape, int nops, int64_t (*stride)[MT_MAX_DIMS]) {
    int i, k, n = 0;
    for (i = 0; i < ndim; i++) {
        if (shape[i] == 1) continue;
        shape[n] = shape[i];
        for (k = 0; k < nops; k++) stride[k][n] = stride[k][i];
        n++;
    }
    ndim = n;
    if (ndim < 2) return ndim;
    n = 0; /* index of the last kept dim */
    for (i = 1; i < ndim; i++) {
        int ok = 1;
        for (k = 0; k < nops; k++)
            if (stride[k][n] != stride[k][i] * shape[i]) ok = 0;
        if (ok) {
            shape[n] *= shape[i];
            for (k = 0; k < nops; k++) stride[k][n] = stride[k][i];
        } else {
            n++;
            shape[n] = shape[i];
            for (k = 0; k < nops; k++) stride[k][n] = stride[k][i];
        }
    }
    return n + 1;
}

static mt_status mt__check_f32(const char *func, const mt_tensor *t, const char *name) {
    if (!t) return mt__fail(MT_ERR_ARGUMENT, func, "%s is NULL", name);
    if (!t->data) return mt__fail(MT_ERR_ARGUMENT, func, "%s is empty (no data)", name);
    if (t->dtype != MT_F32)
        return mt__fail(MT_ERR_DTYPE, func, "%s is %s; this kernel computes in float32 (convert with mt_to_dtype)",
                        name, mt_dtype_name(t->dtype));
    return MT_OK;
}

static int mt__dim_fmt(char *buf, size_t size, const mt_tensor *t) {
    return mt__shape_fmt(buf, size, t->ndim, t->shape);
}

/* ---- element-wise engine --------------------------------------------- */

enum {
    /* binary: out, a, b */
    MT__EW_ADD, MT__EW_SUB, MT__EW_MUL, MT__EW_DIV, MT__EW_AXPBY, MT__EW_LERP,
    /* ternary: out, x, y, z */
    MT__EW_WHERE, MT__EW_LERPT,
    /* unary with parameters: out, a */
    MT__EW_ADDS, MT__EW_MULS, MT__EW_DIVS, MT__EW_CLAMP,
    /* unary */
    MT__EW_NEG, MT__EW_ABS, MT__EW_SQUARE, MT__EW_EXP, MT__EW_LOG, MT__EW_SQRT, MT__EW_RSQRT, MT__EW_SIN,
    MT__EW_COS, MT__EW_TANH, MT__EW_SIGMOID, MT__EW_SILU, MT__EW_GELU, MT__EW_GELU_TANH
};

#define MT__EW_CHUNK 16384 /* elements per work item along a long row */
#define MT__EW_GRAIN 32768 /* elements per task at least */

typedef struct mt__ew {
    int op, nops;    /* nops = 1 (out) + inputs */
    float p0, p1;    /* scalar parameters */
    char *base[4];   /* operand 0 is the output */
    int64_t esize[4];
    int cond_i64;    /* where: the condition is int64 */
    mt__rows rows;
    int64_t chunk, nchunk;
} mt__ew;

/* Loops for one row of n elements; x, y are the operands, EXPR the result.
   Unit-stride and broadcast-scalar rows go in blocks of MT__EW_VB: every
   load of a block happens before its stores, so an output that is also an
   input needs no alias check and compilers vectorise the block even at -O2
   (GCC's cheap cost model refuses the plain loop). */
#define MT__EW_VB 16

#define MT__EW_BLOCKS(LOAD, STORE_EXPR)                                 \
    for (i = 0; i + MT__EW_VB <= n; i += MT__EW_VB) {                   \
        float t_[MT__EW_VB];                                            \
        int k_;                                                         \
        for (k_ = 0; k_ < MT__EW_VB; k_++) {                            \
            LOAD(i + k_);                                               \
            t_[k_] = (STORE_EXPR);                                      \
        }                                                               \
        for (k_ = 0; k_ < MT__EW_VB; k_++) o[i + k_] = t_[k_];          \
    }                                                                   \
    for (; i < n; i++) {                                                \
        LOAD(i);                                                        \
        o[i] = (STORE_EXPR);                                            \
    }

#define MT__LD_A(j) float x = a[j]
#define MT__LD_AB(j) float x = a[j], y = b[j]
#define MT__LD_A0(j) float y = yb, x = a[j]
#define MT__LD_0B(j) float x = xb, y = b[j]
#define MT__LD_CXY(j) float cv = c[j], x = ta[j], y = tb[j]
#define MT__LD_ABW(j) float x = a[j], y = b[j], wv = w[j]

#define MT__EW_UNARY(EXPR)                                              \
    do {                                                                \
        if (so == 1 && sa == 1) {                                       \
            MT__EW_BLOCKS(MT__LD_A, EXPR)                               \
        } else {                                                        \
            for (i = 0; i < n; i++) {                                   \
                float x = a[i * sa];                                    \
                o[i * so] = (EXPR);                                     \
            }                                                           \
        }                                                               \
    } while (0)

#define MT__EW_BINARY(EXPR)                                             \
    do {                                                                \
        if (so == 1 && sa == 1 && sb == 1) {                            \
            MT__EW_BLOCKS(MT__LD_AB, EXPR)                              \
        } else if (so == 1 && sa == 1 && sb == 0) {                     \
            float yb = b[0];                                            \
            MT__EW_BLOCKS(MT__LD_A0, EXPR)                              \
        } else if (so == 1 && sa == 0 && sb == 1) {                     \
            float xb = a[0];                                            \
            MT__EW_BLOCKS(MT__LD_0B, EXPR)                              \
        } else {                                                        \
            for (i = 0; i < n; i++) {                                   \
                float x = a[i * sa], y = b[i * sb];                     \
                o[i * so] = (EXPR);                                     \
            }                                                           \
        }                                                               \
    } while (0)

/* torch.lerp as PyTorch 1.13 computes it on CPU (lerp_vec): one fused
   multiply-add from the nearer end point */
static float mt__lerpf(float x, float y, float w) {
    return fabsf(w) < 0.5f ? fmaf(w, y - x, x) : fmaf(w - 1.0f, y - x, y);
}

/* torch.clamp: min(max(x, lo), hi); a NaN x fails both tests and stays */
static float mt__clampf(float x, float lo, float hi) {
    float y = x < lo ? lo : x;
    return y > hi ? hi : y;
}

static void mt__ew_row(const mt__ew *e, char *const *p, const int64_t *st, int64_t n) {
    float *o = (float *)p[0];
    const float *a = (const float *)p[1];
    const float *b = e->nops > 2 ? (const float *)p[2] : NULL;
    int64_t so = st[0], sa = st[1], sb = e->nops > 2 ? st[2] : 0, i;
    float p0 = e->p0, p1 = e->p1;
    switch (e->op) {
    case MT__EW_ADD: MT__EW_BINARY(x + y); break;
    case MT__EW_SUB: MT__EW_BINARY(x - y); break;
    case MT__EW_MUL: MT__EW_BINARY(x * y); break;
    case MT__EW_DIV: MT__EW_BINARY(x / y); break;
    case MT__EW_AXPBY: MT__EW_BINARY(p0 * x + p1 * y); break;
    case MT__EW_LERP: MT__EW_BINARY(mt__lerpf(x, y, p0)); break;
    case MT__EW_WHERE: {
        /* operands: cond, a, b */
        const float *ta = (const float *)p[2], *tb = (const float *)p[3];
        int64_t sc = st[1], sta = st[2], stb = st[3];
        if (e->cond_i64) {
            const int64_t *c = (const int64_t *)p[1];
            for (i = 0; i < n; i++) o[i * so] = c[i * sc] != 0 ? ta[i * sta] : tb[i * stb];
        } else {
            const float *c = (const float *)p[1];
            if (so == 1 && sc == 1 && sta == 1 && stb == 1) {
                MT__EW_BLOCKS(MT__LD_CXY, cv != 0.0f ? x : y)
            } else {
                for (i = 0; i < n; i++) o[i * so] = c[i * sc] != 0.0f ? ta[i * sta] : tb[i * stb];
            }
        }
        break;
    }
    case MT__EW_LERPT: {
        const float *w = (const float *)p[3];
        int64_t sw = st[3];
        if (so == 1 && sa == 1 && sb == 1 && sw == 1) {
            MT__EW_BLOCKS(MT__LD_ABW, mt__lerpf(x, y, wv))
        } else {
            for (i = 0; i < n; i++) o[i * so] = mt__lerpf(a[i * sa], b[i * sb], w[i * sw]);
        }
        break;
    }
    case MT__EW_ADDS: MT__EW_UNARY(x + p0); break;
    case MT__EW_MULS: MT__EW_UNARY(x * p0); break;
    case MT__EW_DIVS: MT__EW_UNARY(x / p0); break;
    case MT__EW_CLAMP: MT__EW_UNARY(mt__clampf(x, p0, p1)); break;
    case MT__EW_NEG: MT__EW_UNARY(-x); break;
    case MT__EW_ABS: MT__EW_UNARY(fabsf(x)); break;
    case MT__EW_SQUARE: MT__EW_UNARY(x * x); break;
    case MT__EW_EXP: MT__EW_UNARY(expf(x)); break;
    case MT__EW_LOG: MT__EW_UNARY(logf(x)); break;
    case MT__EW_SQRT: MT__EW_UNARY(sqrtf(x)); break;
    case MT__EW_RSQRT: MT__EW_UNARY(1.0f / sqrtf(x)); break;
    case MT__EW_SIN: MT__EW_UNARY(sinf(x)); break;
    case MT__EW_COS: MT__EW_UNARY(cosf(x)); break;
    case MT__EW_TANH: MT__EW_UNARY(tanhf(x)); break;
    case MT__EW_SIGMOID: MT__EW_UNARY(1.0f / (1.0f + expf(-x))); break;
    case MT__EW_SILU: MT__EW_UNARY(x / (1.0f + expf(-x))); break;
    case MT__EW_GELU: MT__EW_UNARY(x * 0.5f * (1.0f + erff(x * 0.70710678118654752f))); break;
    case MT__EW_GELU_TANH:
        /* 0.5 * (1 + tanh(k)) = 1 / (1 + exp(-2k)) exactly: one expf instead
           of tanhf (4x cheaper with glibc), and no cancellation in 1 + tanh
           for negative x. k as torch: sqrt(2 / pi) * (x + 0.044715 x^3) */
        MT__EW_UNARY(x / (1.0f + expf(-2.0f * (0.79788456080286536f * (x + 0.044715f * (x * x * x))))));
        break;
    default: break;
    }
}

static void mt__ew_task(void *ctx, int64_t begin, int64_t end) {
    const mt__ew *e = (const mt__ew *)ctx;
    int64_t u, k;
    for (u = begin; u < end; u++) {
        int64_t r = u / e->nchunk, j0 = (u % e->nchunk) * e->chunk, n = e->rows.len - j0, off[4];
        char *p[4];
        if (n > e->chunk) n = e->chunk;
        mt__rows_offsets(&e->rows, r, off);
        for (k = 0; k < e->nops; k++) p[k] = e->base[k] + (off[k] + j0 * e->rows.inner[k]) * e->esize[k];
        mt__ew_row(e, p, e->rows.inner, n);
    }
}

/* Runs element-wise op `op` over `nin` inputs (broadcast together) into out,
   following the output convention. names[] name the inputs in messages. */
static mt_status mt__ew_apply(const char *func, int op, float p0, float p1, mt_tensor *out, int nin,
                              const mt_tensor *const *in, const char *const *names) {
    mt_tensor tmp[3];
    const mt_tensor *src[3];
    int64_t shape[MT_MAX_DIMS], stride[4][MT_MAX_DIMS];
    const int64_t *strides[4];
    int ndim = 0, i, k, cnd;
    int64_t numel, grain, units;
    mt_status s;
    mt__ew e;
    if (!out) return mt__fail(MT_ERR_ARGUMENT, func, "output tensor is NULL");
    for (k = 0; k < nin; k++) {
        if (op == MT__EW_WHERE && k == 0 && in[0] && in[0]->data && in[0]->dtype == MT_I64) continue;
        s = mt__check_f32(func, in[k], names[k]);
        if (s != MT_OK) return s;
    }
    /* broadcast shape, right-aligned */
    for (k = 0; k < nin; k++)
        if (in[k]->ndim > ndim) ndim = in[k]->ndim;
    for (i = 0; i < ndim; i++) {
        int64_t size = 1;
        for (k = 0; k < nin; k++) {
            int j = i - (ndim - in[k]->ndim);
            int64_t sk = j >= 0 ? in[k]->shape[j] : 1;
            if (sk == 1) continue;
            if (size != 1 && size != sk) {
                char msg[400], sh[160];
                size_t len = 0;
                int q;
                msg[0] = '\0';
                for (q = 0; q < nin; q++) {
                    mt__dim_fmt(sh, sizeof sh, in[q]);
                    len += (size_t)snprintf(msg + len, len < sizeof msg ? sizeof msg - len : 0, "%s%s %s",
                                            q ? (q == nin - 1 ? " and " : ", ") : "", names[q], sh);
                    if (len >= sizeof msg) len = sizeof msg - 1;
                }
                return mt__fail(MT_ERR_SHAPE, func, "shapes do not broadcast: %s (dim %d of the result: %lld vs %lld)",
                                msg, i - ndim, (long long)size, (long long)sk);
            }
            size = sk;
        }
        shape[i] = size;
    }
    for (k = 0; k < nin; k++) {
        src[k] = in[k];
        memset(&tmp[k], 0, sizeof tmp[k]);
    }
    if (out->data) {
        s = mt__prepare_out(func, out, MT_F32, ndim, shape);
        if (s != MT_OK) return s;
        if (mt__is_expanded(out))
            return mt__fail(MT_ERR_ARGUMENT, func, "output is an expanded view (a stride is 0); it cannot be written");
        /* inputs overlapping the output other than element for element are
           copied first, so no element is read after it was overwritten */
        for (k = 0; k < nin; k++) {
            int64_t bs[MT_MAX_DIMS];
            int same = in[k]->data == out->data && in[k]->dtype == out->dtype;
            if (!mt__overlap(out, in[k])) continue;
            if (same && mt__broadcast_strides(in[k], ndim, shape, bs)) {
                for (i = 0; i < ndim; i++)
                    if (shape[i] > 1 && bs[i] != out->stride[i]) same = 0;
                if (same) continue;
            }
            s = mt_clone(&tmp[k], in[k]);
            if (s != MT_OK) {
                for (i = 0; i < k; i++) mt_release(&tmp[i]);
                return s;
            }
            src[k] = &tmp[k];
        }
    } else {
        s = mt__prepare_out(func, out, MT_F32, ndim, shape);
        if (s != MT_OK) return s;
    }
    numel = mt_numel(out);
    if (numel > 0) {
        for (i = 0; i < ndim; i++) stride[0][i] = out->stride[i];
        for (k = 0; k < nin; k++) mt__broadcast_strides(src[k], ndim, shape, stride[k + 1]);
        cnd = mt__coalesce(ndim, shape, nin + 1, stride);
        for (k = 0; k <= nin; k++) strides[k] = stride[k];
        memset(&e, 0, sizeof e);
        e.op = op;
        e.nops = nin + 1;
        e.p0 = p0;
        e.p1 = p1;
        e.base[0] = (char *)out->data;
        e.esize[0] = 4;
        for (k = 0; k < nin; k++) {
            e.base[k + 1] = (char *)src[k]->data;
            e.esize[k + 1] = (int64_t)mt_dtype_size(src[k]->dtype);
        }
        e.cond_i64 = op == MT__EW_WHERE && src[0]->dtype == MT_I64;
        mt__rows_init(&e.rows, cnd, shape, nin + 1, strides);
        e.chunk = e.rows.len < MT__EW_CHUNK ? (e.rows.len > 0 ? e.rows.len : 1) : MT__EW_CHUNK;
        e.nchunk = (e.rows.len + e.chunk - 1) / e.chunk;
        units = e.rows.count * e.nchunk;
        grain = MT__EW_GRAIN / e.chunk;
        mt_parallel_for(units, grain > 0 ? grain : 1, mt__ew_task, &e);
    }
    for (k = 0; k < nin; k++) mt_release(&tmp[k]);
    return MT_OK;
}

static mt_status mt__ew_binary(const char *func, int op, float p0, float p1, mt_tensor *out, const mt_tensor *a,
                               const mt_tensor *b) {
    const mt_tensor *in[2];
    static const char *const names[2] = {"a", "b"};
    in[0] = a;
    in[1] = b;
    return mt__ew_apply(func, op, p0, p1, out, 2, in, names);
}

static mt_status mt__ew_unary(const char *func, int op, float p0, float p1, mt_tensor *out, const mt_tensor *a) {
    const mt_tensor *in[1];
    static const char *const names[1] = {"a"};
    in[0] = a;
    return mt__ew_apply(func, op, p0, p1, out, 1, in, names);
}

MTDEF mt_status mt_add(mt_tensor *out, const mt_tensor *a, const mt_tensor *b) {
    return mt__ew_binary("mt_add", MT__EW_ADD, 0, 0, out, a, b);
}
MTDEF mt_status mt_sub(mt_tensor *out, const mt_tensor *a, const mt_tensor *b) {
    return mt__ew_binary("mt_sub", MT__EW_SUB, 0, 0, out, a, b);
}
MTDEF mt_status mt_mul(mt_tensor *out, const mt_tensor *a, const mt_tensor *b) {
    return mt__ew_binary("mt_mul", MT__EW_MUL, 0, 0, out, a, b);
}
MTDEF mt_status mt_div(mt_tensor *out, const mt_tensor *a, const mt_tensor *b) {
    return mt__ew_binary("mt_div", MT__EW_DIV, 0, 0, out, a, b);
}
MTDEF mt_status mt_axpby(mt_tensor *out, float alpha, const mt_tensor *a, float beta, const mt_tensor *b) {
    return mt__ew_binary("mt_axpby", MT__EW_AXPBY, alpha, beta, out, a, b);
}
MTDEF mt_status mt_lerp(mt_tensor *out, const mt_tensor *a, const mt_tensor *b, float w) {
    return mt__ew_binary("mt_lerp", MT__EW_LERP, w, 0, out, a, b);
}
MTDEF mt_status mt_where(mt_tensor *out, const mt_tensor *cond, const mt_tensor *a, const mt_tensor *b) {
    const mt_tensor *in[3];
    static const char *const names[3] = {"cond", "a", "b"};
    in[0] = cond;
    in[1] = a;
    in[2] = b;
    if (cond && cond->data && cond->dtype != MT_F32 && cond->dtype != MT_I64)
        return MT__FAIL(MT_ERR_DTYPE, "cond is %s; it must be float32 or int64", mt_dtype_name(cond->dtype));
    return mt__ew_apply("mt_where", MT__EW_WHERE, 0, 0, out, 3, in, names);
}
MTDEF mt_status mt_lerp_tensor(mt_tensor *out, const mt_tensor *a, const mt_tensor *b, const mt_tensor *w) {
    const mt_tensor *in[3];
    static const char *const names[3] = {"a", "b", "w"};
    in[0] = a;
    in[1] = b;
    in[2] = w;
    return mt__ew_apply("mt_lerp_tensor", MT__EW_LERPT, 0, 0, out, 3, in, names);
}
MTDEF mt_status mt_add_scalar(mt_tensor *out, const mt_tensor *a, float s) {
    return mt__ew_unary("mt_add_scalar", MT__EW_ADDS, s, 0, out, a);
}
MTDEF mt_status mt_mul_scalar(mt_tensor *out, const mt_tensor *a, float s) {
    return mt__ew_unary("mt_mul_scalar", MT__EW_MULS, s, 0, out, a);
}
MTDEF mt_status mt_div_scalar(mt_tensor *out, const mt_tensor *a, float s) {
    return mt__ew_unary("mt_div_scalar", MT__EW_DIVS, s, 0, out, a);
}
MTDEF mt_status mt_clamp(mt_tensor *out, const mt_tensor *a, float lo, float hi) {
    if (isnan(lo) || isnan(hi)) return MT__FAIL(MT_ERR_ARGUMENT, "bounds must not be NaN (lo=%g hi=%g)", lo, hi);
    return mt__ew_unary("mt_clamp", MT__EW_CLAMP, lo, hi, out, a);
}

#define MT__UNARY_DEF(name, op) \
    MTDEF mt_status name(mt_tensor *out, const mt_tensor *a) { return mt__ew_unary(#name, op, 0, 0, out, a); }
MT__UNARY_DEF(mt_neg, MT__EW_NEG)
MT__UNARY_DEF(mt_abs, MT__EW_ABS)
MT__UNARY_DEF(mt_square, MT__EW_SQUARE)
MT__UNARY_DEF(mt_exp, MT__EW_EXP)
MT__UNARY_DEF(mt_log, MT__EW_LOG)
MT__UNARY_DEF(mt_sqrt, MT__EW_SQRT)
MT__UNARY_DEF(mt_rsqrt, MT__EW_RSQRT)
MT__UNARY_DEF(mt_sin, MT__EW_SIN)
MT__UNARY_DEF(mt_cos, MT__EW_COS)
MT__UNARY_DEF(mt_tanh, MT__EW_TANH)
MT__UNARY_DEF(mt_sigmoid, MT__EW_SIGMOID)
MT__UNARY_DEF(mt_silu, MT__EW_SILU)
MT__UNARY_DEF(mt_gelu, MT__EW_GELU)
MT__UNARY_DEF(mt_gelu_tanh, MT__EW_GELU_TANH)
#undef MT__UNARY_DEF

/* ---- line-wise geometry (reductions, softmax) ------------------------- */

#define MT__RED_BLOCK 4096 /* fixed summation block along a line (multiple of 8) */
#define MT__LINE_GROUP 256 /* neighbouring lines handled together */

/* A line-wise operation along dim d of `a`: the other dims (dropped when of
   size 1, merged when contiguous) are walked as rows of rows.len lines;
   operand 0 is `a`, operand 1 (when nops == 2) a tensor of a's shape with
   strides ostride. Within a row, line j starts rows.inner[k] * j further. */
typedef struct mt__lines {
    int64_t n;       /* line length */
    int64_t step[2]; /* stride along a line, per operand */
    int64_t ngroup;  /* groups of up to MT__LINE_GROUP lines per row */
    mt__rows rows;
} mt__lines;

static void mt__lines_init(mt__lines *g, const mt_tensor *a, int d, int nops, const int64_t *ostride) {
    int64_t shape[MT_MAX_DIMS], stride[4][MT_MAX_DIMS];
    const int64_t *strides[2];
    int i, n = 0, cnd;
    for (i = 0; i < a->ndim; i++) {
        if (i == d) continue;
        shape[n] = a->shape[i];
        stride[0][n] = a->stride[i];
        stride[1][n] = nops > 1 ? ostride[i] : 0;
        n++;
    }
    g->n = d >= 0 ? a->shape[d] : 1;
    g->step[0] = d >= 0 ? a->stride[d] : 0;
    g->step[1] = d >= 0 && nops > 1 ? ostride[d] : 0;
    cnd = mt__coalesce(n, shape, nops, stride);
    strides[0] = stride[0];
    strides[1] = stride[1];
    mt__rows_init(&g->rows, cnd, shape, nops, strides);
    g->ngroup = (g->rows.len + MT__LINE_GROUP - 1) / MT__LINE_GROUP;
}

/* ---- reductions ------------------------------------------------------ */

enum { MT__R_SUM, MT__R_MEAN, MT__R_VAR, MT__R_STD, MT__R_MAX, MT__R_MIN, MT__R_ARGMAX, MT__R_ARGMIN };

typedef struct mt__red {
    int pass;            /* 0: sum of x, 1: sum of (x - mean)^2, 2: max, 3: min */
    const float *x;
    mt__lines g;
    int64_t nb;          /* blocks per line */
    double *part;        /* [M * nb] block results */
    int64_t *pidx;       /* [M * nb] block arg-extremes (passes 2, 3) */
    double *mean;        /* [M] means (written after pass 0, read by pass 1) */
    /* finishing */
    int kind, correction;
    void *dst;           /* contiguous output, M elements */
} mt__red;

static double mt__tree8(const double *l) { return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7])); }

/* v beats best: greater (smaller for min), or the first NaN */
#define MT__BEATS(v, best, max) (((max) ? (v) > (best) : (v) < (best)) || ((v) != (v) && (best) == (best)))

/* l[j] += p[j] (or (p[j] - mu[j])^2) for j < cnt, in blocks of 16 that
   compilers vectorise at -O2 */
static void mt__acc_lines(double *l, const float *p, const double *mu, int64_t cnt) {
    int64_t j = 0;
    int k;
    if (!mu) {
        for (; j + 16 <= cnt; j += 16)
            for (k = 0; k < 16; k++) l[j + k] += (double)p[j + k];
        for (; j < cnt; j++) l[j] += (double)p[j];
    } else {
        for (; j + 16 <= cnt; j += 16)
            for (k = 0; k < 16; k++) {
                double dv = (double)p[j + k] - mu[j + k];
                l[j + k] += dv * dv;
            }
        for (; j < cnt; j++) {
            double dv = (double)p[j] - mu[j];
            l[j] += dv * dv;
        }
    }
}

static void mt__red_task(void *ctx, int64_t begin, int64_t end) {
    const mt__red *e = (const mt__red *)ctx;
    const mt__lines *g = &e->g;
    int64_t L = g->rows.len, si = g->rows.inner[0], sr = g->step[0], nb = e->nb, u;
    for (u = begin; u < end; u++) {
        int64_t b = u % nb, t = u / nb, grp = t % g->ngroup, row = t / g->ngroup;
        int64_t j0 = grp * MT__LINE_GROUP, cnt = L - j0, r0 = b * MT__RED_BLOCK, r1 = r0 + MT__RED_BLOCK;
        int64_t off, m0 = row * L + j0, j, r;
        const float *x;
        int column;
        if (cnt > MT__LINE_GROUP) cnt = MT__LINE_GROUP;
        if (r1 > g->n) r1 = g->n;
        mt__rows_offsets(&g->rows, row, &off);
        x = e->x + off + j0 * si;
        /* column order (lines side by side in memory): sweep r outside */
        column = si == 1 && sr != 1 && cnt > 1;
        if (e->pass >= 2) {
            int mx = e->pass == 2;
            if (column) {
                float best[MT__LINE_GROUP];
                int64_t bi[MT__LINE_GROUP];
                for (j = 0; j < cnt; j++) {
                    best[j] = x[r0 * sr + j];
                    bi[j] = r0;
                }
                for (r = r0 + 1; r < r1; r++) {
                    const float *p = x + r * sr;
                    for (j = 0; j < cnt; j++) {
                        float v = p[j];
                        if (MT__BEATS(v, best[j], mx)) {
                            best[j] = v;
                            bi[j] = r;
                        }
                    }
                }
                for (j = 0; j < cnt; j++) {
                    e->part[(m0 + j) * nb + b] = best[j];
                    e->pidx[(m0 + j) * nb + b] = bi[j];
                }
            } else {
                for (j = 0; j < cnt; j++) {
                    const float *p = x + j * si;
                    float best = p[r0 * sr];
                    int64_t bi = r0;
                    for (r = r0 + 1; r < r1; r++) {
                        float v = p[r * sr];
                        if (MT__BEATS(v, best, mx)) {
                            best = v;
                            bi = r;
                        }
                    }
                    e->part[(m0 + j) * nb + b] = best;
                    e->pidx[(m0 + j) * nb + b] = bi;
                }
            }
        } else if (column) {
            /* lane k of line j collects the elements r with r % 8 == k */
            double l[8][MT__LINE_GROUP];
            int k;
            for (k = 0; k < 8; k++)
                for (j = 0; j < cnt; j++) l[k][j] = 0.0;
            for (r = r0; r < r1; r++) mt__acc_lines(l[r & 7], x + r * sr, e->pass ? e->mean + m0 : NULL, cnt);
            for (j = 0; j < cnt; j++) {
                double lj[8];
                for (k = 0; k < 8; k++) lj[k] = l[k][j];
                e->part[(m0 + j) * nb + b] = mt__tree8(lj);
            }
        } else {
            for (j = 0; j < cnt; j++) {
                const float *p = x + j * si;
                double l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                if (e->pass == 0) {
                    if (sr == 1) {
                        for (r = r0; r + 8 <= r1; r += 8) {
                            l[0] += (double)p[r];
                            l[1] += (double)p[r + 1];
                            l[2] += (double)p[r + 2];
                            l[3] += (double)p[r + 3];
                            l[4] += (double)p[r + 4];
                            l[5] += (double)p[r + 5];
                            l[6] += (double)p[r + 6];
                            l[7] += (double)p[r + 7];
                        }
                        for (; r < r1; r++) l[r & 7] += (double)p[r];
                    } else {
                        for (r = r0; r < r1; r++) l[r & 7] += (double)p[r * sr];
                    }
                } else {
                    double mu = e->mean[m0 + j];
                    for (r = r0; r < r1; r++) {
                        double dv = (double)p[r * sr] - mu;
                        l[r & 7] += dv * dv;
                    }
                }
                e->part[(m0 + j) * nb + b] = mt__tree8(l);
            }
        }
    }
}

/* Combines the blocks of outputs [begin, end) and writes the results. */
static void mt__red_finish(void *ctx, int64_t begin, int64_t end) {
    const mt__red *e = (const mt__red *)ctx;
    int64_t m, b, nb = e->nb, n = e->g.n;
    for (m = begin; m < end; m++) {
        const double *pm = e->part + m * nb;
        if (e->kind >= MT__R_MAX) {
            int mx = e->kind == MT__R_MAX || e->kind == MT__R_ARGMAX;
            double best = pm[0];
            int64_t bi = e->pidx[m * nb];
            for (b = 1; b < nb; b++) {
                if (MT__BEATS(pm[b], best, mx)) {
                    best = pm[b];
                    bi = e->pidx[m * nb + b];
                }
            }
            if (e->kind == MT__R_MAX || e->kind == MT__R_MIN)
                ((float *)e->dst)[m] = (float)best;
            else
                ((int64_t *)e->dst)[m] = bi;
        } else {
            double total = pm[0], v;
            for (b = 1; b < nb; b++) total += pm[b];
            if (e->pass == 0 && e->kind != MT__R_SUM) {
                /* a mean: the output itself, or the input of the second pass */
                v = n > 0 ? total / (double)n : (double)NAN;
                if (e->kind == MT__R_MEAN)
                    ((float *)e->dst)[m] = (float)v;
                else
                    e->mean[m] = v;
                continue;
            }
            if (e->kind == MT__R_SUM) {
                v = total;
            } else {
                int64_t div = n > e->correction ? n - e->correction : 0;
                v = div > 0 ? total / (double)div : (total > 0 ? (double)INFINITY : (double)NAN);
                if (n == 0) v = NAN;
                if (e->kind == MT__R_STD) v = sqrt(v);
            }
            ((float *)e->dst)[m] = (float)v;
        }
    }
}

static mt_status mt__reduce(const char *func, int kind, mt_tensor *out, const mt_tensor *a, int dim, int keepdim,
                            int correction) {
    int64_t oshape[MT_MAX_DIMS], M, n, units, work, grain;
    int ondim = 0, d = 0, i, all, allocated = 0, extreme = kind >= MT__R_MAX;
    mt_dtype odt = (kind == MT__R_ARGMAX || kind == MT__R_ARGMIN) ? MT_I64 : MT_F32;
    mt_tensor src, tmp, flat, *target;
    mt_status s;
    mt__red e;
    double *mean = NULL;
    s = mt__check_f32(func, a, "a");
    if (s != MT_OK) return s;
    if (!out) return mt__fail(MT_ERR_ARGUMENT, func, "output tensor is NULL");
    all = dim == MT_DIM_ALL || a->ndim == 0;
    if (dim != MT_DIM_ALL) {
        d = mt__norm_dim(dim, a->ndim);
        if (a->ndim == 0 ? (dim != 0 && dim != -1) : (d < 0 || d >= a->ndim))
            return mt__fail(MT_ERR_ARGUMENT, func, "dim %d out of range for %d dims", dim, a->ndim);
    }
    if (correction < 0) return mt__fail(MT_ERR_ARGUMENT, func, "correction %d is negative", correction);
    for (i = 0; i < a->ndim; i++) {
        if (all || i == d) {
            if (keepdim) oshape[ondim++] = 1;
        } else {
            oshape[ondim++] = a->shape[i];
        }
    }
    n = all ? mt_numel(a) : a->shape[d];
    if (extreme && n == 0) {
        char sh[160];
        mt__dim_fmt(sh, sizeof sh, a);
        if (all) return mt__fail(MT_ERR_SHAPE, func, "cannot reduce the empty tensor %s", sh);
        return mt__fail(MT_ERR_SHAPE, func, "cannot reduce over dim %d of size 0 (input %s)", dim, sh);
    }
    memset(&src, 0, sizeof src);
    memset(&tmp, 0, sizeof tmp);
    memset(&e, 0, sizeof e);
    if (out->data) {
        s = mt__prepare_out(func, out, odt, ondim, oshape);
        if (s != MT_OK) return s;
        target = out;
        if (!mt_is_contiguous(out) || mt__overlap(out, a)) {
            s = mt__prepare_out(func, &tmp, odt, ondim, oshape);
            if (s != MT_OK) return s;
            target = &tmp;
        }
    } else {
        s = mt__prepare_out(func, out, odt, ondim, oshape);
        if (s != MT_OK) return s;
        allocated = 1;
        target = out;
    }
    M = mt_numel(target);
    if (M == 0) goto done;
    /* the whole tensor is one line in row-major order */
    if (all) {
        s = mt_contiguous(&src, a);
        if (s != MT_OK) goto fail;
        flat = src;
        flat.ndim = 1;
        flat.shape[0] = n;
        flat.stride[0] = 1;
        d = 0;
    } else {
        flat = *a;
    }
    e.x = (const float *)flat.data;
    mt__lines_init(&e.g, &flat, d, 1, NULL);
    e.nb = n > 0 ? (n + MT__RED_BLOCK - 1) / MT__RED_BLOCK : 1;
    e.kind = kind;
    e.correction = correction;
    e.dst = target->data;
    e.part = (double *)MT_MALLOC((size_t)(M * e.nb) * sizeof(double));
    if (extreme) e.pidx = (int64_t *)MT_MALLOC((size_t)(M * e.nb) * sizeof(int64_t));
    if (kind == MT__R_VAR || kind == MT__R_STD) mean = (double *)MT_MALLOC((size_t)M * sizeof(double));
    if (!e.part || (extreme && !e.pidx) || ((kind == MT__R_VAR || kind == MT__R_STD) && !mean)) {
        s = mt__fail(MT_ERR_MEMORY, func, "cannot allocate %lld partial results", (long long)(M * e.nb));
        goto fail;
    }
    e.mean = mean;
    units = e.g.rows.count * e.g.ngroup * e.nb;
    work = (n < MT__RED_BLOCK ? (n > 0 ? n : 1) : MT__RED_BLOCK) *
           (e.g.rows.len < MT__LINE_GROUP ? e.g.rows.len : MT__LINE_GROUP);
    grain = MT__EW_GRAIN / work;
    if (grain < 1) grain = 1;
    e.pass = kind == MT__R_MAX || kind == MT__R_ARGMAX ? 2 : (extreme ? 3 : 0);
    mt_parallel_for(units, grain, mt__red_task, &e);
    mt_parallel_for(M, 4096, mt__red_finish, &e);
    if (kind == MT__R_VAR || kind == MT__R_STD) {
        e.pass = 1;
        mt_parallel_for(units, grain, mt__red_task, &e);
        mt_parallel_for(M, 4096, mt__red_finish, &e);
    }
    MT_FREE(e.part);
    MT_FREE(e.pidx);
    MT_FREE(mean);
    mt_release(&src);
done:
    if (target == &tmp) {
        s = mt_copy(out, &tmp);
        mt_release(&tmp);
        return s;
    }
    return MT_OK;
fail:
    MT_FREE(e.part);
    MT_FREE(e.pidx);
    MT_FREE(mean);
    mt_release(&src);
    mt_release(&tmp);
    if (allocated) mt_release(out);
    return s;
}

MTDEF mt_status mt_sum(mt_tensor *out, const mt_tensor *a, int dim, int keepdim) {
    return mt__reduce("mt_sum", MT__R_SUM, out, a, dim, keepdim, 0);
}
MTDEF mt_status mt_mean(mt_tensor *out, const mt_tensor *a, int dim, int keepdim) {
    return mt__reduce("mt_mean", MT__R_MEAN, out, a, dim, keepdim, 0);
}
MTDEF mt_status mt_var(mt_tensor *out, const mt_tensor *a, int dim, int correction, int keepdim) {
    return mt__reduce("mt_var", MT__R_VAR, out, a, dim, keepdim, correction);
}
MTDEF mt_status mt_std(mt_tensor *out, const mt_tensor *a, int dim, int correction, int keepdim) {
    return mt__reduce("mt_std", MT__R_STD, out, a, dim, keepdim, correction);
}
MTDEF mt_status mt_max(mt_tensor *out, const mt_tensor *a, int dim, int keepdim) {
    return mt__reduce("mt_max", MT__R_MAX, out, a, dim, keepdim, 0);
}
MTDEF mt_status mt_min(mt_tensor *out, const mt_tensor *a, int dim, int keepdim) {
    return mt__reduce("mt_min", MT__R_MIN, out, a, dim, keepdim, 0);
}
MTDEF mt_status mt_argmax(mt_tensor *out, const mt_tensor *a, int dim, int keepdim) {
    return mt__reduce("mt_argmax", MT__R_ARGMAX, out, a, dim, keepdim, 0);
}
MTDEF mt_status mt_argmin(mt_tensor *out, const mt_tensor *a, int dim, int keepdim) {
    return mt__reduce("mt_argmin", MT__R_ARGMIN, out, a, dim, keepdim, 0);
}

/* ---- softmax --------------------------------------------------------- */

typedef struct mt__smx {
    int log;
    const float *x;
    float *y;
    mt__lines g;
} mt__smx;

static void mt__smx_task(void *ctx, int64_t begin, int64_t end) {
    const mt__smx *e = (const mt__smx *)ctx;
    const mt__lines *g = &e->g;
    int64_t L = g->rows.len, si = g->rows.inner[0], so = g->rows.inner[1];
    int64_t sr = g->step[0], sy = g->step[1], n = g->n, u, j, r;
    for (u = begin; u < end; u++) {
        int64_t grp = u % g->ngroup, row = u / g->ngroup, j0 = grp * MT__LINE_GROUP, cnt = L - j0, off[2];
        const float *x;
        float *y;
        if (cnt > MT__LINE_GROUP) cnt = MT__LINE_GROUP;
        mt__rows_offsets(&g->rows, row, off);
        x = e->x + off[0] + j0 * si;
        y = e->y + off[1] + j0 * so;
        if (si == 1 && so == 1 && cnt > 1) {
            /* neighbouring lines are adjacent in memory: sweep r outside */
            float mx[MT__LINE_GROUP], f[MT__LINE_GROUP];
            double sum[MT__LINE_GROUP];
            for (j = 0; j < cnt; j++) {
                mx[j] = -INFINITY;
                sum[j] = 0.0;
            }
            for (r = 0; r < n; r++) {
                const float *p = x + r * sr;
                for (j = 0; j < cnt; j++)
                    if (p[j] > mx[j] || p[j] != p[j]) mx[j] = p[j];
            }
            if (!e->log) {
                for (r = 0; r < n; r++) {
                    const float *p = x + r * sr;
                    float *q = y + r * sy;
                    for (j = 0; j < cnt; j++) {
                        float ev = expf(p[j] - mx[j]);
                        q[j] = ev;
                        sum[j] += (double)ev;
                    }
                }
                for (j = 0; j < cnt; j++) f[j] = (float)(1.0 / sum[j]);
                for (r = 0; r < n; r++) {
                    float *q = y + r * sy;
                    for (j = 0; j < cnt; j++) q[j] *= f[j];
                }
            } else {
                for (r = 0; r < n; r++) {
                    const float *p = x + r * sr;
                    for (j = 0; j < cnt; j++) sum[j] += (double)expf(p[j] - mx[j]);
                }
                for (j = 0; j < cnt; j++) f[j] = (float)log(sum[j]);
                for (r = 0; r < n; r++) {
                    const float *p = x + r * sr;
                    float *q = y + r * sy;
                    for (j = 0; j < cnt; j++) q[j] = (p[j] - mx[j]) - f[j];
                }
            }
        } else {
            for (j = 0; j < cnt; j++) {
                const float *p = x + j * si;
                float *q = y + j * so, mx = -INFINITY, f;
                double sum = 0.0;
                for (r = 0; r < n; r++) {
                    float v = p[r * sr];
                    if (v > mx || v != v) mx = v;
                }
                if (!e->log) {
                    for (r = 0; r < n; r++) {
                        float ev = expf(p[r * sr] - mx);
                        q[r * sy] = ev;
                        sum += (double)ev;
                    }
                    f = (float)(1.0 / sum);
                    for (r = 0; r < n; r++) q[r * sy] *= f;
                } else {
                    for (r = 0; r < n; r++) sum += (double)expf(p[r * sr] - mx);
                    f = (float)log(sum);
                    for (r = 0; r < n; r++) q[r * sy] = (p[r * sr] - mx) - f;
                }
            }
        }
    }
}

static mt_status mt__softmax(const char *func, int lg, mt_tensor *out, const mt_tensor *a, int dim) {
    mt_tensor tmp;
    const mt_tensor *src = a;
    int d, i;
    int64_t grain, work;
    mt_status s;
    mt__smx e;
    s = mt__check_f32(func, a, "a");
    if (s != MT_OK) return s;
    if (!out) return mt__fail(MT_ERR_ARGUMENT, func, "output tensor is NULL");
    d = mt__norm_dim(dim, a->ndim);
    if (a->ndim == 0 ? (dim != 0 && dim != -1) : (d < 0 || d >= a->ndim))
        return mt__fail(MT_ERR_ARGUMENT, func, "dim %d out of range for %d dims", dim, a->ndim);
    if (a->ndim == 0) d = -1;
    memset(&tmp, 0, sizeof tmp);
    if (out->data) {
        int same;
        s = mt__prepare_out(func, out, MT_F32, a->ndim, a->shape);
        if (s != MT_OK) return s;
        if (mt__is_expanded(out))
            return mt__fail(MT_ERR_ARGUMENT, func, "output is an expanded view (a stride is 0); it cannot be written");
        same = out->data == a->data;
        for (i = 0; i < a->ndim; i++)
            if (a->shape[i] > 1 && a->stride[i] != out->stride[i]) same = 0;
        if (!same && mt__overlap(out, a)) {
            s = mt_clone(&tmp, a);
            if (s != MT_OK) return s;
            src = &tmp;
        }
    } else {
        s = mt__prepare_out(func, out, MT_F32, a->ndim, a->shape);
        if (s != MT_OK) return s;
    }
    if (mt_numel(out) > 0) {
        memset(&e, 0, sizeof e);
        e.log = lg;
        e.x = (const float *)src->data;
        e.y = (float *)out->data;
        mt__lines_init(&e.g, src, d, 2, out->stride);
        work = (e.g.n > 0 ? e.g.n : 1) * (e.g.rows.len < MT__LINE_GROUP ? e.g.rows.len : MT__LINE_GROUP) * 4;
        grain = MT__EW_GRAIN / work;
        mt_parallel_for(e.g.rows.count * e.g.ngroup, grain > 0 ? grain : 1, mt__smx_task, &e);
    }
    mt_release(&tmp);
    return MT_OK;
}

MTDEF mt_status mt_softmax(mt_tensor *out, const mt_tensor *a, int dim) {
    return mt__softmax("mt_softmax", 0, out, a, dim);
}
MTDEF mt_status mt_log_softmax(mt_tensor *out, const mt_tensor *a, int dim) {
    return mt__softmax("mt_log_softmax", 1, out, a, dim);
}

/* ---- printing -------------------------------------------------------- */

/* Follows torch/_tensor_str.py (PyTorch 1.13) with the default print
   options: precision 4, threshold 1000, edgeitems 3, linewidth 80. */
#define MT__PRINT_EDGE 3
#define MT__PRINT_THRESHOLD 1000
#define MT__PRINT_LINEWIDTH 80

typedef struct mt__sink {
    FILE *f;
    char *buf;
    size_t size, len, col; /* col: characters since the last newline */
    int err;
} mt__sink;

static void mt__put(mt__sink *s, const char *str, size_t n) {
    size_t i;
    if (s->f) {
        if (n && fwrite(str, 1, n, s->f) != n) s->err = 1;
    } else if (s->buf && s->size > 0 && s->len < s->size - 1) {
        size_t room = s->size - 1 - s->len;
        memcpy(s->buf + s->len, str, n < room ? n : room);
    }
    s->len += n;
    for (i = 0; i < n; i++) s->col = str[i] == '\n' ? 0 : s->col + 1;
}

static void mt__puts(mt__sink *s, const char *str) { mt__put(s, str, strlen(str)); }

static void mt__put_spaces(mt__sink *s, int64_t n) {
    static const char sp[] = "                                ";
    while (n > 0) {
        int64_t k = n < 32 ? n : 32;
        mt__put(s, sp, (size_t)k);
        n -= k;
    }
}

typedef struct mt__pfmt {
    int is_float, int_mode, sci;
    int width;
    /* statistics of the nonzero finite values */
    int64_t count;
    double amin, amax;
} mt__pfmt;

/* Formats one value as _Formatter.format does, without the padding. */
static int mt__pfmt_value(const mt__pfmt *f, const mt_tensor *t, int64_t off, char *buf, size_t size) {
    const char *p = (const char *)t->data + off * (int64_t)mt_dtype_size(t->dtype);
    double v;
    if (!f->is_float) {
        int64_t iv;
        memcpy(&iv, p, sizeof iv);
        return snprintf(buf, size, "%lld", (long long)iv);
    }
    v = mt__load(p, t->dtype);
    if (isnan(v)) return snprintf(buf, size, "nan"); /* also for a negative NaN, as Python */
    if (f->sci) return snprintf(buf, size, "%.4e", v);
    if (f->int_mode) return snprintf(buf, size, isinf(v) ? "%.0f" : "%.0f.", v);
    return snprintf(buf, size, "%.4f", v);
}

/* Visits the elements that get printed (all, or 3 at each edge of every
   dim longer than 6 when summarising) for the formatter's statistics
   (pass 0) and widths (pass 1). */
static void mt__pfmt_scan(mt__pfmt *f, const mt_tensor *t, int dim, int64_t off, int summarize, int pass) {
    int64_t i, n;
    if (dim == t->ndim) {
        char buf[400];
        if (!f->is_float) {
            int w = mt__pfmt_value(f, t, off, buf, sizeof buf);
            if (w > f->width) f->width = w;
            return;
        }
        {
            double v = mt__load((const char *)t->data + off * (int64_t)mt_dtype_size(t->dtype), t->dtype);
            if (!isfinite(v) || v == 0) return;
            if (pass == 0) {
                double av = fabs(v);
                if (f->count == 0 || av < f->amin) f->amin = av;
                if (f->count == 0 || av > f->amax) f->amax = av;
                if (v != ceil(v)) f->int_mode = 0;
                f->count++;
            } else {
                /* in int mode "%.0f." counts the '.' as torch's len + 1 */
                int w = mt__pfmt_value(f, t, off, buf, sizeof buf);
                if (w > f->width) f->width = w;
            }
        }
        return;
    }
    n = t->shape[dim];
    for (i = 0; i < n; i++) {
        if (summarize && n > 2 * MT__PRINT_EDGE && i == MT__PRINT_EDGE) i = n - MT__PRINT_EDGE;
        mt__pfmt_scan(f, t, dim + 1, off + i * t->stride[dim], summarize, pass);
    }
}

static void mt__put_value(mt__sink *s, const mt__pfmt *f, const mt_tensor *t, int64_t off) {
    char buf[400];
    int w = mt__pfmt_value(f, t, off, buf, sizeof buf);
    if (w < 0) w = 0;
    if ((size_t)w >= sizeof buf) w = (int)sizeof buf - 1;
    mt__put_spaces(s, f->width - w);
    mt__put(s, buf, (size_t)w);
}

static void mt__print_rec(mt__sink *s, const mt__pfmt *f, const mt_tensor *t, int dim, int64_t off, int indent,
                          int summarize) {
    int rem = t->ndim - dim;
    int64_t n, k, count, i;
    int skip;
    if (rem == 0) {
        mt__put_value(s, f, t, off);
        return;
    }
    n = t->shape[dim];
    skip = summarize && n > 2 * MT__PRINT_EDGE;
    count = skip ? 2 * MT__PRINT_EDGE + 1 : n;
    mt__put(s, "[", 1);
    if (rem == 1) {
        int64_t per_line = (MT__PRINT_LINEWIDTH - indent) / (f->width + 2);
        if (per_line < 1) per_line = 1;
        for (k = 0; k < count; k++) {
            if (k > 0) {
                if (k % per_line == 0) {
                    mt__put(s, ",\n", 2);
                    mt__put_spaces(s, indent + 1);
                } else {
                    mt__put(s, ", ", 2);
                }
            }
            if (skip && k == MT__PRINT_EDGE) {
                mt__put(s, " ...", 4);
                continue;
            }
            i = skip && k > MT__PRINT_EDGE ? n - count + k : k;
            mt__put_value(s, f, t, off + i * t->stride[dim]);
        }
    } else {
        for (k = 0; k < count; k++) {
            if (k > 0) {
                int q;
                mt__put(s, ",", 1);
                for (q = 0; q < rem - 1; q++) mt__put(s, "\n", 1);
                mt__put_spaces(s, indent + 1);
            }
            if (skip && k == MT__PRINT_EDGE) {
                mt__put(s, "...", 3);
                continue;
            }
            i = skip && k > MT__PRINT_EDGE ? n - count + k : k;
            mt__print_rec(s, f, t, dim + 1, off + i * t->stride[dim], indent + 1, summarize);
        }
    }
    mt__put(s, "]", 1);
}

static void mt__print_tensor(mt__sink *s, const mt_tensor *t) {
    char suffix[2][200];
    int nsuffix = 0, i;
    const int indent = 7; /* strlen("tensor(") */
    mt__puts(s, "tensor(");
    if (!t->data || mt_numel(t) == 0) {
        mt__puts(s, "[]");
        if (t->data && t->ndim != 1) {
            size_t len = (size_t)snprintf(suffix[nsuffix], sizeof suffix[0], "size=(");
            for (i = 0; i < t->ndim && len < sizeof suffix[0]; i++)
                len += (size_t)snprintf(suffix[nsuffix] + len, sizeof suffix[0] - len, "%s%lld", i ? ", " : "",
                                        (long long)t->shape[i]);
            if (len < sizeof suffix[0]) snprintf(suffix[nsuffix] + len, sizeof suffix[0] - len, ")");
            nsuffix++;
        }
        if (t->data && t->dtype != MT_F32)
            snprintf(suffix[nsuffix++], sizeof suffix[0], "dtype=torch.%s", mt_dtype_name(t->dtype));
    } else {
        mt__pfmt f;
        int summarize = mt_numel(t) > MT__PRINT_THRESHOLD;
        memset(&f, 0, sizeof f);
        f.is_float = t->dtype != MT_I64;
        f.int_mode = 1;
        f.width = 1;
        if (f.is_float) {
            mt__pfmt_scan(&f, t, 0, 0, summarize, 0);
            if (f.count > 0) {
                if (f.int_mode)
                    f.sci = f.amax / f.amin > 1000.0 || f.amax > 1.0e8;
                else
                    f.sci = f.amax / f.amin > 1000.0 || f.amax > 1.0e8 || f.amin < 1.0e-4;
                mt__pfmt_scan(&f, t, 0, 0, summarize, 1);
            }
        } else {
            mt__pfmt_scan(&f, t, 0, 0, summarize, 0);
        }
        mt__print_rec(s, &f, t, 0, 0, indent, summarize);
        if (t->dtype != MT_F32 && t->dtype != MT_I64)
            snprintf(suffix[nsuffix++], sizeof suffix[0], "dtype=torch.%s", mt_dtype_name(t->dtype));
    }
    {
        /* _add_suffixes: wrap before a suffix that would pass the line width */
        size_t last = s->col + 2;
        for (i = 0; i < nsuffix; i++) {
            size_t sl = strlen(suffix[i]);
            if (last + sl + 2 > MT__PRINT_LINEWIDTH) {
                mt__put(s, ",\n", 2);
                mt__put_spaces(s, indent);
                last = (size_t)indent + sl;
            } else {
                mt__put(s, ", ", 2);
                last += sl + 2;
            }
            mt__put(s, suffix[i], sl);
        }
    }
    mt__put(s, ")", 1);
}

MTDEF int mt_format(const mt_tensor *t, char *buf, size_t size) {
    mt__sink s;
    memset(&s, 0, sizeof s);
    s.buf = buf;
    s.size = buf ? size : 0;
    if (!t) {
        mt__puts(&s, "(null)");
    } else {
        mt__print_tensor(&s, t);
    }
    if (buf && size > 0) buf[s.len < size ? s.len : size - 1] = '\0';
    return (int)s.len;
}

MTDEF mt_status mt_print(FILE *f, const mt_tensor *t) {
    mt__sink s;
    if (!f || !t) return MT__FAIL(MT_ERR_ARGUMENT, "%s is NULL", f ? "tensor" : "file");
    memset(&s, 0, sizeof s);
    s.f = f;
    mt__print_tensor(&s, t);
    mt__put(&s, "\n", 1);
    if (s.err || ferror(f)) return MT__FAIL(MT_ERR_IO, "cannot write to the stream");
    return MT_OK;
}

#undef MT__BEATS
#undef MT__EW_BLOCKS
#undef MT__EW_UNARY
#undef MT__EW_BINARY
#undef MT__LD_A
#undef MT__LD_AB
#undef MT__LD_A0
#undef MT__LD_0B
#undef MT__LD_CXY
#undef MT__LD_ABW

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
#if defined(__cplusplus) && !defined(__clang__)
/* g++ 12 reports _mm512_undefined_ps() (a self-initialised variable inside
   many AVX-512 intrinsics) as maybe-uninitialized; popped at the end of
   this section */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define MT__NN_DIAG_PUSHED 1
#endif
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
    double flops = 2.0 * (double)g->m * (double)g->n * (double)g->k * (double)g->nbatch, best = -1, wa, wb;
    if (threads > 1 && flops >= 2e6) want = flops >= 1e8 ? 2 * (int64_t)threads : threads;
    per = mt__ceil_div(want, g->nbatch);
    /* a tile packs its A rows (m x k) and B columns (k x n): splitting rows
       duplicates B packing, splitting columns duplicates A packing, and a
       transposing pack (depth-contiguous source) costs about twice a copy */
    wa = g->a_cs == 1 ? 2.0 : 1.0;
    wb = g->conv || (g->b_rs == 1 && g->b_cs != 1) ? 2.0 : 1.0;
    for (tm = 1; tm <= mt__min64(per, mp); tm++) {
        int64_t tn = mt__min64(mt__ceil_div(per, tm), np);
        double cost = (double)tm * (double)g->n * wb + (double)tn * (double)g->m * wa;
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

#if defined(MT__NN_DIAG_PUSHED)
#pragma GCC diagnostic pop
#endif

/* ======================================================================
   IMPLEMENTATION SECTION schedulers
   ====================================================================== */

/* Sources: diffusers src/diffusers/schedulers/scheduling_euler_discrete.py,
   scheduling_euler_ancestral_discrete.py, scheduling_ddim.py and
   scheduling_dpmsolver_multistep.py (0.40.0.dev0, commit 58eb52c080).
   Where diffusers computes with numpy float64 this code uses double; where
   it computes with torch float32 tensors it uses float, one rounded
   operation per torch operation, in torch's order. */

enum { MT__SO_BETA, MT__SO_PRED, MT__SO_SPACING, MT__SO_FINAL, MT__SO_ALGO, MT__SO_SOLVER, MT__SO_REQ_STEPS };
enum { MT__BETA_LINEAR, MT__BETA_SCALED, MT__BETA_COS };
enum { MT__PRED_EPS, MT__PRED_V, MT__PRED_SAMPLE };
enum { MT__SPACE_LINSPACE, MT__SPACE_LEADING, MT__SPACE_TRAILING };
enum { MT__FINAL_ZERO, MT__FINAL_SIGMA_MIN };
enum { MT__ALGO_DPMPP, MT__ALGO_DPM, MT__ALGO_SDE_DPMPP };
enum { MT__SOLVER_MIDPOINT, MT__SOLVER_HEUN };

static const char *const mt__sched_beta_names[] = {"linear", "scaled_linear", "squaredcos_cap_v2", NULL};
static const char *const mt__sched_pred_names[] = {"epsilon", "v_prediction", "sample", NULL};
static const char *const mt__sched_spacing_names[] = {"linspace", "leading", "trailing", NULL};
static const char *const mt__sched_final_names[] = {"zero", "sigma_min", NULL};
static const char *const mt__sched_algo_names[] = {"dpmsolver++", "dpmsolver", "sde-dpmsolver++", NULL};
static const char *const mt__sched_solver_names[] = {"midpoint", "heun", NULL};

static const char *const mt__sched_kind_names[] = {"(none)", "EulerDiscreteScheduler",
                                                   "EulerAncestralDiscreteScheduler", "DDIMScheduler",
                                                   "DPMSolverMultistepScheduler"};

MTDEF const char *mt_scheduler_kind_name(mt_scheduler_kind kind) {
    return (unsigned)kind < MT_SCHEDULER_KIND_COUNT ? mt__sched_kind_names[kind] : "unknown";
}

MTDEF mt_status mt_scheduler_kind_from_name(const char *name, mt_scheduler_kind *kind) {
    static const struct {
        const char *name;
        mt_scheduler_kind kind;
    } table[] = {{"EulerDiscreteScheduler", MT_SCHEDULER_EULER},
                 {"euler", MT_SCHEDULER_EULER},
                 {"EulerAncestralDiscreteScheduler", MT_SCHEDULER_EULER_ANCESTRAL},
                 {"euler_a", MT_SCHEDULER_EULER_ANCESTRAL},
                 {"DDIMScheduler", MT_SCHEDULER_DDIM},
                 {"ddim", MT_SCHEDULER_DDIM},
                 {"DPMSolverMultistepScheduler", MT_SCHEDULER_DPMSOLVER_MULTISTEP},
                 {"dpm", MT_SCHEDULER_DPMSOLVER_MULTISTEP},
                 {"dpm++2m", MT_SCHEDULER_DPMSOLVER_MULTISTEP}};
    size_t i;
    if (!name || !kind) return MT__FAIL(MT_ERR_ARGUMENT, "name or result is NULL");
    for (i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (strcmp(name, table[i].name) == 0) {
            *kind = table[i].kind;
            return MT_OK;
        }
    }
    return MT__FAIL(MT_ERR_ARGUMENT,
                    "unknown scheduler '%s' (expected euler, euler_a, ddim, dpm, dpm++2m or a diffusers class name: "
                    "EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, DDIMScheduler, "
                    "DPMSolverMultistepScheduler)",
                    name);
}

/* Looks `value` up in a NULL-terminated list; NULL picks `def`. */
static mt_status mt__sched_pick(const char *field, const char *value, const char *const *names, int def,
                                const char **resolved, int *code) {
    int i;
    char expected[160];
    size_t n = 0;
    if (!value) {
        *code = def;
        *resolved = names[def];
        return MT_OK;
    }
    for (i = 0; names[i]; i++) {
        if (strcmp(value, names[i]) == 0) {
            *code = i;
            *resolved = names[i];
            return MT_OK;
        }
    }
    expected[0] = '\0';
    for (i = 0; names[i]; i++) {
        int w = snprintf(expected + n, sizeof expected - n, "%s\"%s\"", i ? (names[i + 1] ? ", " : " or ") : "",
                         names[i]);
        if (w > 0 && (size_t)w < sizeof expected - n) n += (size_t)w;
    }
    return mt__fail(MT_ERR_ARGUMENT, "mt_scheduler_init", "unknown %s \"%s\" (expected %s)", field, value, expected);
}

static int mt__sched_flag(mt_sched_flag f, int def) { return f == MT_SCHED_DEFAULT ? def : f == MT_SCHED_TRUE; }

/* numpy.linspace(start, stop, num) in float64 */
static void mt__np_linspace(double *out, double start, double stop, int num) {
    int i;
    if (num == 1) {
        out[0] = start;
        return;
    }
    for (i = 0; i < num; i++) out[i] = (double)i * ((stop - start) / (double)(num - 1)) + start;
    out[num - 1] = stop;
}

/* numpy.arange(start, stop, step) in float64: length ceil((stop - start) /
   step), values start + i * ((start + step) - start). Returns the length. */
static int mt__np_arange(double *out, double start, double stop, double step, int cap) {
    double len = ceil((stop - start) / step), delta = (start + step) - start;
    int n = len > 0 ? (int)len : 0, i;
    if (n > cap) n = cap;
    for (i = 0; i < n; i++) out[i] = i == 0 ? start : (i == 1 ? start + step : start + (double)i * delta);
    return n;
}

/* numpy.interp(x, arange(len(fp)), fp) */
static double mt__np_interp(double x, const float *fp, int n) {
    int j;
    double slope;
    if (x <= 0.0) return fp[0];
    if (x >= (double)(n - 1)) return fp[n - 1];
    j = (int)floor(x);
    slope = ((double)fp[j + 1] - (double)fp[j]) / 1.0;
    return slope * (x - (double)j) + (double)fp[j];
}

/* diffusers' _sigma_to_t: position of log(sigma) in the increasing float32
   table log_sigmas, linearly interpolated. As numpy 1.x evaluates it: the
   float64 log(sigma) meets float32 arrays and is demoted to float32
   (value-based casting), so the comparisons and the weight are float32;
   only the final blend of the two indices is float64. */
static double mt__sched_sigma_to_t(double sigma, const float *log_sigmas, int n) {
    float ls = (float)log(sigma > 1e-10 ? sigma : 1e-10), low, high, w;
    int lo = -1, i;
    for (i = 0; i < n; i++)
        if (ls - log_sigmas[i] >= 0.0f) lo = i;
    if (lo < 0) lo = 0;
    if (lo > n - 2) lo = n - 2;
    low = log_sigmas[lo];
    high = log_sigmas[lo + 1];
    w = (low - ls) / (low - high);
    if (w < 0.0f) w = 0.0f;
    if (w > 1.0f) w = 1.0f;
    return (double)(1.0f - w) * (double)lo + (double)w * (double)(lo + 1);
}

/* Karras et al. (2022) sigmas between sigma_max and sigma_min, rho = 7 */
static void mt__sched_karras(double *out, double sigma_min, double sigma_max, int n) {
    double min_inv = pow(sigma_min, 1.0 / 7.0), max_inv = pow(sigma_max, 1.0 / 7.0);
    int i;
    mt__np_linspace(out, 0.0, 1.0, n);
    for (i = 0; i < n; i++) out[i] = pow(max_inv + out[i] * (min_inv - max_inv), 7.0);
}

static float mt__sched_train_sigma(const mt_scheduler *s, int j) {
    float a = s->alphas_cumprod[j];
    return sqrtf((1.0f - a) / a);
}

MTDEF void mt_scheduler_free(mt_scheduler *s) {
    int i;
    if (!s) return;
    MT_FREE(s->alphas_cumprod);
    MT_FREE(s->timesteps);
    MT_FREE(s->sigmas);
    for (i = 0; i < MT_SCHEDULER_MAX_ORDER; i++) mt_release(&s->model_outputs[i]);
    memset(s, 0, sizeof *s);
    s->step_index = -1;
    s->begin_index = -1;
}

static void mt__sched_reset_run(mt_scheduler *s) {
    int i;
    s->step_index = -1;
    s->begin_index = -1;
    s->lower_order_nums = 0;
    for (i = 0; i < MT_SCHEDULER_MAX_ORDER; i++) mt_release(&s->model_outputs[i]);
}

MTDEF mt_status mt_scheduler_init(mt_scheduler *s, const mt_scheduler_config *config) {
    mt_scheduler_config c;
    mt_status st;
    int n, j, *o;
    float *betas;
    double acc;
    if (!s) return MT__FAIL(MT_ERR_ARGUMENT, "scheduler is NULL");
    memset(s, 0, sizeof *s);
    s->step_index = -1;
    s->begin_index = -1;
    if (!config) return MT__FAIL(MT_ERR_ARGUMENT, "config is NULL");
    c = *config;
    o = s->kind_opts;
    if (c.kind <= MT_SCHEDULER_NONE || c.kind >= MT_SCHEDULER_KIND_COUNT)
        return MT__FAIL(MT_ERR_ARGUMENT, "config.kind %d is not a scheduler (set MT_SCHEDULER_EULER, ...)",
                        (int)c.kind);
    if (c.num_train_timesteps == 0) c.num_train_timesteps = 1000;
    if (c.num_train_timesteps < 2 || c.num_train_timesteps > 1000000)
        return MT__FAIL(MT_ERR_ARGUMENT, "num_train_timesteps %d outside [2, 1000000]", c.num_train_timesteps);
    if (c.beta_start == 0) c.beta_start = 0.0001;
    if (c.beta_end == 0) c.beta_end = 0.02;
    if (!(c.beta_start > 0 && c.beta_start < 1) || !(c.beta_end > 0 && c.beta_end < 1))
        return MT__FAIL(MT_ERR_ARGUMENT, "beta_start %g and beta_end %g must lie in (0, 1)", c.beta_start, c.beta_end);
    if (c.steps_offset < 0 || c.steps_offset >= c.num_train_timesteps)
        return MT__FAIL(MT_ERR_ARGUMENT, "steps_offset %d outside [0, %d)", c.steps_offset, c.num_train_timesteps);
    if ((st = mt__sched_pick("beta_schedule", c.beta_schedule, mt__sched_beta_names, 0, &c.beta_schedule,
                             &o[MT__SO_BETA])) != MT_OK ||
        (st = mt__sched_pick("prediction_type", c.prediction_type, mt__sched_pred_names, 0, &c.prediction_type,
                             &o[MT__SO_PRED])) != MT_OK ||
        (st = mt__sched_pick("timestep_spacing", c.timestep_spacing, mt__sched_spacing_names,
                             c.kind == MT_SCHEDULER_DDIM ? MT__SPACE_LEADING : MT__SPACE_LINSPACE,
                             &c.timestep_spacing, &o[MT__SO_SPACING])) != MT_OK ||
        (st = mt__sched_pick("final_sigmas_type", c.final_sigmas_type, mt__sched_final_names, 0,
                             &c.final_sigmas_type, &o[MT__SO_FINAL])) != MT_OK ||
        (st = mt__sched_pick("algorithm_type", c.algorithm_type, mt__sched_algo_names, 0, &c.algorithm_type,
                             &o[MT__SO_ALGO])) != MT_OK ||
        (st = mt__sched_pick("solver_type", c.solver_type, mt__sched_solver_names, 0, &c.solver_type,
                             &o[MT__SO_SOLVER])) != MT_OK)
        return st;
    if (c.kind == MT_SCHEDULER_EULER_ANCESTRAL && o[MT__SO_PRED] == MT__PRED_SAMPLE)
        return MT__FAIL(MT_ERR_UNSUPPORTED, "prediction_type \"sample\" is not implemented by %s (as in diffusers)",
                        mt_scheduler_kind_name(c.kind));
    c.use_karras_sigmas = mt__sched_flag(c.use_karras_sigmas, 0) ? MT_SCHED_TRUE : MT_SCHED_FALSE;
    c.set_alpha_to_one = mt__sched_flag(c.set_alpha_to_one, 1) ? MT_SCHED_TRUE : MT_SCHED_FALSE;
    c.clip_sample = mt__sched_flag(c.clip_sample, 1) ? MT_SCHED_TRUE : MT_SCHED_FALSE;
    c.thresholding = mt__sched_flag(c.thresholding, 0) ? MT_SCHED_TRUE : MT_SCHED_FALSE;
    c.lower_order_final = mt__sched_flag(c.lower_order_final, 1) ? MT_SCHED_TRUE : MT_SCHED_FALSE;
    c.euler_at_final = mt__sched_flag(c.euler_at_final, 0) ? MT_SCHED_TRUE : MT_SCHED_FALSE;
    if (c.clip_sample_range == 0) c.clip_sample_range = 1.0;
    if (c.dynamic_thresholding_ratio == 0) c.dynamic_thresholding_ratio = 0.995;
    if (c.sample_max_value == 0) c.sample_max_value = 1.0;
    if (c.solver_order == 0) c.solver_order = 2;
    if (!(c.clip_sample_range > 0) || !(c.dynamic_thresholding_ratio > 0 && c.dynamic_thresholding_ratio <= 1) ||
        !(c.sample_max_value > 0))
        return MT__FAIL(MT_ERR_ARGUMENT,
                        "clip_sample_range %g and sample_max_value %g must be > 0, dynamic_thresholding_ratio %g in "
                        "(0, 1]",
                        c.clip_sample_range, c.sample_max_value, c.dynamic_thresholding_ratio);
    if (c.kind == MT_SCHEDULER_DPMSOLVER_MULTISTEP) {
        if (c.solver_order < 1 || c.solver_order > MT_SCHEDULER_MAX_ORDER)
            return MT__FAIL(MT_ERR_ARGUMENT, "solver_order %d outside [1, %d]", c.solver_order, MT_SCHEDULER_MAX_ORDER);
        if (o[MT__SO_ALGO] == MT__ALGO_DPM && o[MT__SO_FINAL] == MT__FINAL_ZERO)
            return MT__FAIL(MT_ERR_ARGUMENT,
                            "final_sigmas_type \"zero\" is not supported for algorithm_type \"dpmsolver\"; "
                            "choose \"sigma_min\" (as diffusers)");
    }

    n = c.num_train_timesteps;
    s->alphas_cumprod = (float *)MT_MALLOC((size_t)n * sizeof(float));
    betas = (float *)MT_MALLOC((size_t)n * sizeof(float));
    if (!s->alphas_cumprod || !betas) {
        MT_FREE(betas);
        mt_scheduler_free(s);
        return MT__FAIL(MT_ERR_MEMORY, "cannot allocate the schedule of %d timesteps", n);
    }
    if (o[MT__SO_BETA] == MT__BETA_LINEAR) {
        mt__torch_linspace(betas, c.beta_start, c.beta_end, n);
    } else if (o[MT__SO_BETA] == MT__BETA_SCALED) {
        mt__torch_linspace(betas, pow(c.beta_start, 0.5), pow(c.beta_end, 0.5), n);
        for (j = 0; j < n; j++) betas[j] = betas[j] * betas[j];
    } else {
        /* betas_for_alpha_bar, cosine: float64, then a float32 tensor */
        for (j = 0; j < n; j++) {
            double t1 = (double)j / n, t2 = (double)(j + 1) / n;
            double a1 = cos((t1 + 0.008) / 1.008 * 3.14159265358979323846 / 2);
            double a2 = cos((t2 + 0.008) / 1.008 * 3.14159265358979323846 / 2);
            double b = 1 - (a2 * a2) / (a1 * a1);
            betas[j] = (float)(b < 0.999 ? b : 0.999);
        }
    }
    /* alphas = 1 - betas (float32); torch.cumprod accumulates in double */
    for (acc = 1.0, j = 0; j < n; j++) {
        float beta = betas[j];
        if (!(beta >= 0.0f && beta < 1.0f)) {
            MT_FREE(betas);
            mt_scheduler_free(s);
            return MT__FAIL(MT_ERR_ARGUMENT, "the %s schedule from %g to %g gives beta[%d] = %g outside [0, 1)",
                            c.beta_schedule, c.beta_start, c.beta_end, j, (double)beta);
        }
        acc *= (double)(1.0f - beta);
        s->alphas_cumprod[j] = (float)acc;
    }
    MT_FREE(betas);
    s->config = c;
    s->num_train_timesteps = n;
    s->final_alpha_cumprod = c.set_alpha_to_one == MT_SCHED_TRUE ? 1.0f : s->alphas_cumprod[0];
    s->eta = 0.0;
    if (c.kind == MT_SCHEDULER_EULER || c.kind == MT_SCHEDULER_EULER_ANCESTRAL) {
        /* before set_timesteps diffusers' sigmas are the training sigmas */
        float mx = mt__sched_train_sigma(s, n - 1);
        s->init_noise_sigma = o[MT__SO_SPACING] == MT__SPACE_LEADING ? sqrtf(mx * mx + 1.0f) : mx;
    } else {
        s->init_noise_sigma = 1.0f;
    }
    return MT_OK;
}

MTDEF mt_status mt_scheduler_set_timesteps(mt_scheduler *s, int num_inference_steps) {
    int N, n = num_inference_steps, L = 0, i, kind, spacing;
    double *ts = NULL, *sg = NULL;
    float *log_sigmas = NULL, *train = NULL;
    if (!s || !s->alphas_cumprod) return MT__FAIL(MT_ERR_ARGUMENT, "scheduler is not initialised");
    N = s->num_train_timesteps;
    kind = s->config.kind;
    spacing = s->kind_opts[MT__SO_SPACING];
    if (n < 1 || n > N)
        return MT__FAIL(MT_ERR_ARGUMENT, "num_inference_steps %d outside [1, num_train_timesteps = %d]", n, N);
    ts = (double *)MT_MALLOC((size_t)(N + 2) * sizeof(double));
    sg = (double *)MT_MALLOC((size_t)(N + 2) * sizeof(double));
    train = (float *)MT_MALLOC((size_t)N * sizeof(float));
    log_sigmas = (float *)MT_MALLOC((size_t)N * sizeof(float));
    if (!ts || !sg || !train || !log_sigmas) {
        MT_FREE(ts);
        MT_FREE(sg);
        MT_FREE(train);
        MT_FREE(log_sigmas);
        return MT__FAIL(MT_ERR_MEMORY, "cannot allocate %d timesteps", n);
    }
    for (i = 0; i < N; i++) {
        train[i] = mt__sched_train_sigma(s, i);
        log_sigmas[i] = logf(train[i]);
    }

    /* timesteps, descending */
    if (kind == MT_SCHEDULER_DPMSOLVER_MULTISTEP) {
        int last = N; /* lambda_min_clipped = -inf */
        if (spacing == MT__SPACE_LINSPACE) {
            mt__np_linspace(sg, 0.0, (double)(last - 1), n + 1);
            for (i = 0; i < n; i++) ts[i] = rint(sg[n - i]);
        } else if (spacing == MT__SPACE_LEADING) {
            int ratio = last / (n + 1);
            for (i = 0; i < n; i++) ts[i] = (double)((n - i) * ratio + s->config.steps_offset);
        } else {
            L = mt__np_arange(ts, (double)last, 0.0, -((double)N / n), N + 1);
            for (i = 0; i < L; i++) ts[i] = rint(ts[i]) - 1;
        }
    } else if (kind == MT_SCHEDULER_DDIM) {
        if (spacing == MT__SPACE_LINSPACE) {
            mt__np_linspace(sg, 0.0, (double)(N - 1), n);
            for (i = 0; i < n; i++) ts[i] = rint(sg[n - 1 - i]);
        } else if (spacing == MT__SPACE_LEADING) {
            int ratio = N / n;
            for (i = 0; i < n; i++) ts[i] = (double)((n - 1 - i) * ratio + s->config.steps_offset);
        } else {
            L = mt__np_arange(ts, (double)N, 0.0, -((double)N / n), N + 1);
            for (i = 0; i < L; i++) ts[i] = rint(ts[i]) - 1;
        }
    } else {
        /* Euler, Euler ancestral: float32 timesteps */
        if (spacing == MT__SPACE_LINSPACE) {
            mt__np_linspace(sg, 0.0, (double)(N - 1), n);
            for (i = 0; i < n; i++) ts[i] = (float)sg[n - 1 - i];
        } else if (spacing == MT__SPACE_LEADING) {
            int ratio = N / n;
            for (i = 0; i < n; i++) ts[i] = (float)((n - 1 - i) * ratio) + (float)s->config.steps_offset;
        } else {
            L = mt__np_arange(ts, (double)N, 0.0, -((double)N / n), N + 1);
            for (i = 0; i < L; i++) ts[i] = (float)rint(ts[i]) - 1.0f;
        }
    }
    if (spacing != MT__SPACE_TRAILING) L = n;
    if (kind == MT_SCHEDULER_DDIM) {
        for (i = 0; i < L; i++) {
            if (ts[i] > N - 1 || ts[i] < 0) {
                double bad = ts[i];
                MT_FREE(ts);
                MT_FREE(sg);
                MT_FREE(train);
                MT_FREE(log_sigmas);
                return MT__FAIL(MT_ERR_ARGUMENT, "timestep %g (steps_offset %d) is outside [0, %d)", bad,
                                s->config.steps_offset, N);
            }
        }
    }

    /* sigmas (not DDIM) */
    if (kind != MT_SCHEDULER_DDIM) {
        int karras = s->config.use_karras_sigmas == MT_SCHED_TRUE && kind != MT_SCHEDULER_EULER_ANCESTRAL;
        for (i = 0; i < L; i++) sg[i] = mt__np_interp(ts[i], train, N);
        if (karras && kind == MT_SCHEDULER_EULER) {
            double smin = sg[L - 1], smax = sg[0];
            L = n;
            mt__sched_karras(sg, smin, smax, L);
            for (i = 0; i < L; i++) ts[i] = (float)mt__sched_sigma_to_t(sg[i], log_sigmas, N);
        } else if (karras) {
            L = n;
            mt__sched_karras(sg, (double)train[0], (double)train[N - 1], L);
            for (i = 0; i < L; i++) {
                double t = mt__sched_sigma_to_t(sg[i], log_sigmas, N);
                ts[i] = s->kind_opts[MT__SO_BETA] == MT__BETA_COS ? trunc(t) : rint(t);
            }
        }
        if (kind == MT_SCHEDULER_EULER_ANCESTRAL || s->kind_opts[MT__SO_FINAL] == MT__FINAL_ZERO)
            sg[L] = 0.0;
        else
            sg[L] = (double)mt__sched_train_sigma(s, 0);
    }

    MT_FREE(s->timesteps);
    MT_FREE(s->sigmas);
    s->timesteps = (float *)MT_MALLOC((size_t)(L > 0 ? L : 1) * sizeof(float));
    s->sigmas = kind != MT_SCHEDULER_DDIM ? (float *)MT_MALLOC((size_t)(L + 1) * sizeof(float)) : NULL;
    if (!s->timesteps || (kind != MT_SCHEDULER_DDIM && !s->sigmas)) {
        MT_FREE(s->timesteps);
        MT_FREE(s->sigmas);
        s->timesteps = s->sigmas = NULL;
        s->num_inference_steps = 0;
        MT_FREE(ts);
        MT_FREE(sg);
        MT_FREE(train);
        MT_FREE(log_sigmas);
        return MT__FAIL(MT_ERR_MEMORY, "cannot allocate %d timesteps", L);
    }
    for (i = 0; i < L; i++) s->timesteps[i] = (float)ts[i];
    s->num_inference_steps = L;
    if (s->sigmas) {
        float mx = 0.0f;
        for (i = 0; i <= L; i++) {
            s->sigmas[i] = (float)sg[i];
            if (s->sigmas[i] > mx) mx = s->sigmas[i];
        }
        if (kind == MT_SCHEDULER_DPMSOLVER_MULTISTEP)
            s->init_noise_sigma = 1.0f;
        else
            s->init_noise_sigma = spacing == MT__SPACE_LEADING ? sqrtf(mx * mx + 1.0f) : mx;
    }
    s->kind_opts[MT__SO_REQ_STEPS] = n;
    mt__sched_reset_run(s);
    MT_FREE(ts);
    MT_FREE(sg);
    MT_FREE(train);
    MT_FREE(log_sigmas);
    return MT_OK;
}

MTDEF mt_status mt_scheduler_set_begin_index(mt_scheduler *s, int begin_index) {
    if (!s || !s->timesteps) return MT__FAIL(MT_ERR_ARGUMENT, "call mt_scheduler_set_timesteps first");
    if (begin_index < 0 || begin_index > s->num_inference_steps)
        return MT__FAIL(MT_ERR_ARGUMENT, "begin index %d outside [0, %d]", begin_index, s->num_inference_steps);
    s->begin_index = begin_index;
    return MT_OK;
}

MTDEF mt_status mt_scheduler_img2img_timesteps(mt_scheduler *s, double strength, int *t_start, int *count) {
    int n, init, start;
    if (!s || !s->timesteps) return MT__FAIL(MT_ERR_ARGUMENT, "call mt_scheduler_set_timesteps first");
    if (!(strength >= 0.0 && strength <= 1.0))
        return MT__FAIL(MT_ERR_ARGUMENT, "strength %g outside [0, 1]", strength);
    n = s->num_inference_steps;
    init = (int)((double)n * strength);
    if (init > n) init = n;
    start = n - init > 0 ? n - init : 0;
    s->begin_index = start;
    if (t_start) *t_start = start;
    if (count) *count = n - start;
    return MT_OK;
}

MTDEF mt_status mt_scheduler_ddim_variance(const mt_scheduler *s, int timestep, int prev_timestep, float *variance) {
    float apt, aptp, bpt, bptp;
    if (!s || !s->alphas_cumprod || !variance) return MT__FAIL(MT_ERR_ARGUMENT, "scheduler or result is NULL");
    if (timestep < 0 || timestep >= s->num_train_timesteps || prev_timestep >= s->num_train_timesteps)
        return MT__FAIL(MT_ERR_ARGUMENT, "timesteps %d, %d outside [0, %d)", timestep, prev_timestep,
                        s->num_train_timesteps);
    apt = s->alphas_cumprod[timestep];
    aptp = prev_timestep >= 0 ? s->alphas_cumprod[prev_timestep] : s->final_alpha_cumprod;
    bpt = 1.0f - apt;
    bptp = 1.0f - aptp;
    *variance = bptp / bpt * (1.0f - apt / aptp);
    return MT_OK;
}

/* index_for_timestep: the first match, the second when there are several
   (so image-to-image starting mid-schedule takes the right one); DPM falls
   back to the last index when nothing matches. */
static mt_status mt__sched_index_for(const char *func, const mt_scheduler *s, double timestep, int *index) {
    int i, count = 0, first = -1, second = -1;
    float t = (float)timestep;
    for (i = 0; i < s->num_inference_steps; i++) {
        if (s->timesteps[i] == t) {
            if (count == 0) first = i;
            if (count == 1) second = i;
            count++;
        }
    }
    if (count == 0) {
        if (s->config.kind == MT_SCHEDULER_DPMSOLVER_MULTISTEP) {
            *index = s->num_inference_steps - 1;
            return MT_OK;
        }
        return mt__fail(MT_ERR_ARGUMENT, func, "timestep %g is not one of the scheduler's %d timesteps", timestep,
                        s->num_inference_steps);
    }
    *index = count > 1 ? second : first;
    return MT_OK;
}

static mt_status mt__sched_init_step(const char *func, mt_scheduler *s, double timestep) {
    if (s->step_index >= 0) return MT_OK;
    if (s->begin_index >= 0) {
        s->step_index = s->begin_index;
        return MT_OK;
    }
    return mt__sched_index_for(func, s, timestep, &s->step_index);
}

/* Output of an element-wise scheduler op: written in place when `out` is
   contiguous (it may alias an input: element i is read before it is
   written), through a temporary when it is a strided view. */
typedef struct mt__sched_out {
    mt_tensor tmp;
    float *dst;
    int allocated;
} mt__sched_out;

static mt_status mt__sched_out_begin(const char *func, mt_tensor *out, const mt_tensor *like, mt__sched_out *o) {
    mt_status st;
    memset(o, 0, sizeof *o);
    if (!out) return mt__fail(MT_ERR_ARGUMENT, func, "output tensor is NULL");
    o->allocated = out->data == NULL;
    st = mt__prepare_out(func, out, MT_F32, like->ndim, like->shape);
    if (st != MT_OK) return st;
    if (mt_is_contiguous(out)) {
        o->dst = (float *)out->data;
        return MT_OK;
    }
    st = mt__prepare_out(func, &o->tmp, MT_F32, like->ndim, like->shape);
    if (st != MT_OK) {
        if (o->allocated) mt_release(out);
        return st;
    }
    o->dst = (float *)o->tmp.data;
    return MT_OK;
}

static mt_status mt__sched_out_end(mt_tensor *out, mt__sched_out *o, mt_status st) {
    if (st == MT_OK && o->tmp.data) st = mt_copy(out, &o->tmp);
    mt_release(&o->tmp);
    if (st != MT_OK && o->allocated) mt_release(out);
    return st;
}

/* Contiguous float32 views of the inputs (shared when already contiguous). */
static mt_status mt__sched_inputs(const char *func, const mt_tensor *a, const mt_tensor *b, mt_tensor *ca,
                                  mt_tensor *cb) {
    mt_status st;
    if (!a || !a->data || (b && !b->data)) return mt__fail(MT_ERR_ARGUMENT, func, "input tensor is NULL or empty");
    if (a->dtype != MT_F32 || (b && b->dtype != MT_F32))
        return mt__fail(MT_ERR_DTYPE, func, "inputs must be float32 (got %s%s%s)", mt_dtype_name(a->dtype),
                        b ? ", " : "", b ? mt_dtype_name(b->dtype) : "");
    if (b && !mt_same_shape(a, b)) {
        char sa[160], sb[160];
        mt__shape_fmt(sa, sizeof sa, a->ndim, a->shape);
        mt__shape_fmt(sb, sizeof sb, b->ndim, b->shape);
        return mt__fail(MT_ERR_SHAPE, func, "input shapes differ: %s and %s", sa, sb);
    }
    st = mt_contiguous(ca, a);
    if (st == MT_OK && b) st = mt_contiguous(cb, b);
    if (st != MT_OK) {
        mt_release(ca);
        mt_release(cb);
    }
    return st;
}

MTDEF mt_status mt_scheduler_scale_model_input(mt_scheduler *s, mt_tensor *out, const mt_tensor *sample,
                                               double timestep) {
    mt_tensor cs = {MT_F32, 0, {0}, {0}, NULL, NULL};
    mt__sched_out o;
    mt_status st;
    int64_t i, n;
    float c = 1.0f;
    const float *x;
    if (!s || !s->alphas_cumprod) return MT__FAIL(MT_ERR_ARGUMENT, "scheduler is not initialised");
    if ((st = mt__sched_inputs("mt_scheduler_scale_model_input", sample, NULL, &cs, NULL)) != MT_OK) return st;
    if (s->config.kind == MT_SCHEDULER_EULER || s->config.kind == MT_SCHEDULER_EULER_ANCESTRAL) {
        float sigma;
        if (!s->timesteps) {
            mt_release(&cs);
            return MT__FAIL(MT_ERR_ARGUMENT, "call mt_scheduler_set_timesteps first");
        }
        st = mt__sched_init_step("mt_scheduler_scale_model_input", s, timestep);
        if (st == MT_OK && s->step_index >= s->num_inference_steps)
            st = MT__FAIL(MT_ERR_ARGUMENT, "all %d steps are done", s->num_inference_steps);
        if (st != MT_OK) {
            mt_release(&cs);
            return st;
        }
        sigma = s->sigmas[s->step_index];
        c = sqrtf(sigma * sigma + 1.0f);
    }
    if ((st = mt__sched_out_begin("mt_scheduler_scale_model_input", out, &cs, &o)) != MT_OK) {
        mt_release(&cs);
        return st;
    }
    n = mt_numel(&cs);
    x = (const float *)cs.data;
    if (c != 1.0f)
        for (i = 0; i < n; i++) o.dst[i] = x[i] / c;
    else if (o.dst != x)
        memcpy(o.dst, x, (size_t)n * sizeof(float));
    mt_release(&cs);
    return mt__sched_out_end(out, &o, MT_OK);
}

static int mt__sched_cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Dynamic thresholding (Imagen): per batch item, s = the `ratio` quantile of
   |x| (torch.quantile, linear), clamped to [1, max]; x = clamp(x, -s, s) / s. */
static mt_status mt__sched_threshold(const mt_scheduler *s, float *x, const mt_tensor *like) {
    int64_t b, i, batch = like->ndim > 0 ? like->shape[0] : 1, row;
    float *tmp;
    float q = (float)s->config.dynamic_thresholding_ratio, mx = (float)s->config.sample_max_value;
    if (batch == 0) return MT_OK;
    row = mt_numel(like) / batch;
    if (row == 0) return MT_OK;
    tmp = (float *)MT_MALLOC((size_t)row * sizeof(float));
    if (!tmp) return MT__FAIL(MT_ERR_MEMORY, "cannot allocate %lld floats for thresholding", (long long)row);
    for (b = 0; b < batch; b++) {
        float *r = x + b * row, rank, w, lo, hi, th;
        int64_t below, above;
        for (i = 0; i < row; i++) tmp[i] = fabsf(r[i]);
        qsort(tmp, (size_t)row, sizeof(float), mt__sched_cmp_float);
        rank = q * (float)(row - 1);
        below = (int64_t)rank;
        above = (int64_t)ceilf(rank);
        if (above > row - 1) above = row - 1;
        w = rank - (float)below;
        lo = tmp[below];
        hi = tmp[above];
        th = w < 0.5f ? lo + w * (hi - lo) : hi - (hi - lo) * (1.0f - w);
        th = th < 1.0f ? 1.0f : th;
        th = th > mx ? mx : th;
        for (i = 0; i < row; i++) {
            float v = r[i] < -th ? -th : r[i];
            v = v > th ? th : v;
            r[i] = v / th;
        }
    }
    MT_FREE(tmp);
    return MT_OK;
}

/* Draws the step noise as diffusers' randn_tensor. */
static mt_status mt__sched_noise(const char *func, mt_tensor *noise, const mt_tensor *like, mt_generator *gens,
                                 int n_gens) {
    if (!gens || n_gens < 1)
        return mt__fail(MT_ERR_ARGUMENT, func, "this step draws noise: pass a generator (got %s, %d)",
                        gens ? "generators" : "NULL", n_gens);
    if (n_gens == 1) return mt_randn(noise, gens, like->ndim, like->shape);
    return mt_randn_batch(noise, gens, n_gens, like->ndim, like->shape);
}

static void mt__dpm_alpha_sigma(float sigma, float *alpha_t, float *sigma_t) {
    *alpha_t = 1.0f / sqrtf(sigma * sigma + 1.0f);
    *sigma_t = sigma * *alpha_t;
}

static float mt__dpm_lambda(float alpha_t, float sigma_t) { return logf(alpha_t) - logf(sigma_t); }

static mt_status mt__sched_step_dpm(mt_scheduler *s, float *dst, const float *m, const float *x, int64_t n,
                                    const float *noise, const mt_tensor *like) {
    int order = s->config.solver_order, L = s->num_inference_steps, i = s->step_index, k, algo, heun, pred;
    int lower_final, lower_second, use;
    float sig = s->sigmas[i], alpha_s0, sigma_s0, alpha_t, sigma_t, *x0, lt, ls0, h;
    mt_tensor conv = {MT_F32, 0, {0}, {0}, NULL, NULL};
    const float *m0, *m1, *m2;
    mt_status st;
    int64_t j;
    algo = s->kind_opts[MT__SO_ALGO];
    heun = s->kind_opts[MT__SO_SOLVER] == MT__SOLVER_HEUN;
    pred = s->kind_opts[MT__SO_PRED];
    lower_final = i == L - 1 && (s->config.euler_at_final == MT_SCHED_TRUE ||
                                 (s->config.lower_order_final == MT_SCHED_TRUE && L < 15) ||
                                 s->kind_opts[MT__SO_FINAL] == MT__FINAL_ZERO);
    lower_second = i == L - 2 && s->config.lower_order_final == MT_SCHED_TRUE && L < 15;

    /* convert_model_output: x0 (dpmsolver++) or epsilon (dpmsolver) */
    st = mt__prepare_out("mt_scheduler_step", &conv, MT_F32, like->ndim, like->shape);
    if (st != MT_OK) return st;
    x0 = (float *)conv.data;
    mt__dpm_alpha_sigma(sig, &alpha_s0, &sigma_s0);
    if (algo != MT__ALGO_DPM) {
        if (pred == MT__PRED_EPS)
            for (j = 0; j < n; j++) x0[j] = (x[j] - sigma_s0 * m[j]) / alpha_s0;
        else if (pred == MT__PRED_SAMPLE)
            memcpy(x0, m, (size_t)n * sizeof(float));
        else
            for (j = 0; j < n; j++) x0[j] = alpha_s0 * x[j] - sigma_s0 * m[j];
        if (s->config.thresholding == MT_SCHED_TRUE && (st = mt__sched_threshold(s, x0, like)) != MT_OK) {
            mt_release(&conv);
            return st;
        }
    } else {
        if (pred == MT__PRED_EPS)
            memcpy(x0, m, (size_t)n * sizeof(float));
        else if (pred == MT__PRED_SAMPLE)
            for (j = 0; j < n; j++) x0[j] = (x[j] - alpha_s0 * m[j]) / sigma_s0;
        else
            for (j = 0; j < n; j++) x0[j] = alpha_s0 * m[j] + sigma_s0 * x[j];
        if (s->config.thresholding == MT_SCHED_TRUE) {
            for (j = 0; j < n; j++) x0[j] = (x[j] - sigma_s0 * x0[j]) / alpha_s0;
            if ((st = mt__sched_threshold(s, x0, like)) != MT_OK) {
                mt_release(&conv);
                return st;
            }
            for (j = 0; j < n; j++) x0[j] = (x[j] - alpha_s0 * x0[j]) / sigma_s0;
        }
    }
    /* history: newest last */
    mt_release(&s->model_outputs[0]);
    for (k = 0; k + 1 < order; k++) mt_move(&s->model_outputs[k], &s->model_outputs[k + 1]);
    mt_move(&s->model_outputs[order - 1], &conv);

    mt__dpm_alpha_sigma(s->sigmas[i + 1], &alpha_t, &sigma_t);
    lt = mt__dpm_lambda(alpha_t, sigma_t);
    ls0 = mt__dpm_lambda(alpha_s0, sigma_s0);
    h = lt - ls0;
    if (order == 1 || s->lower_order_nums < 1 || lower_final)
        use = 1;
    else if (order == 2 || s->lower_order_nums < 2 || lower_second)
        use = 2;
    else
        use = 3;
    m0 = (const float *)s->model_outputs[order - 1].data;
    m1 = use >= 2 ? (const float *)s->model_outputs[order - 2].data : NULL;
    m2 = use >= 3 ? (const float *)s->model_outputs[order - 3].data : NULL;
    if (use == 1) {
        if (algo == MT__ALGO_DPMPP) {
            float a = sigma_t / sigma_s0, b = alpha_t * (expf(-h) - 1.0f);
            for (j = 0; j < n; j++) dst[j] = a * x[j] - b * m0[j];
        } else if (algo == MT__ALGO_DPM) {
            float a = alpha_t / alpha_s0, b = sigma_t * (expf(h) - 1.0f);
            for (j = 0; j < n; j++) dst[j] = a * x[j] - b * m0[j];
        } else {
            float a = sigma_t / sigma_s0 * expf(-h), b = alpha_t * (1.0f - expf(-2.0f * h));
            float c = sigma_t * sqrtf(1.0f - expf(-2.0f * h));
            for (j = 0; j < n; j++) dst[j] = (a * x[j] + b * m0[j]) + c * noise[j];
        }
    } else {
        float sig1 = s->sigmas[i - 1], alpha_s1, sigma_s1, ls1, h0, r0, ir0;
        mt__dpm_alpha_sigma(sig1, &alpha_s1, &sigma_s1);
        ls1 = mt__dpm_lambda(alpha_s1, sigma_s1);
        h0 = ls0 - ls1;
        r0 = h0 / h;
        ir0 = 1.0f / r0;
        if (use == 2) {
            if (algo == MT__ALGO_DPMPP) {
                float a = sigma_t / sigma_s0, b = alpha_t * (expf(-h) - 1.0f);
                float c = heun ? alpha_t * ((expf(-h) - 1.0f) / h + 1.0f) : 0.5f * (alpha_t * (expf(-h) - 1.0f));
                for (j = 0; j < n; j++) {
                    float d1 = ir0 * (m0[j] - m1[j]);
                    dst[j] = heun ? (a * x[j] - b * m0[j]) + c * d1 : (a * x[j] - b * m0[j]) - c * d1;
                }
            } else if (algo == MT__ALGO_DPM) {
                float a = alpha_t / alpha_s0, b = sigma_t * (expf(h) - 1.0f);
                float c = heun ? sigma_t * ((expf(h) - 1.0f) / h - 1.0f) : 0.5f * (sigma_t * (expf(h) - 1.0f));
                for (j = 0; j < n; j++) {
                    float d1 = ir0 * (m0[j] - m1[j]);
                    dst[j] = (a * x[j] - b * m0[j]) - c * d1;
                }
            } else {
                float a = sigma_t / sigma_s0 * expf(-h), b = alpha_t * (1.0f - expf(-2.0f * h));
                float c = heun ? alpha_t * ((1.0f - expf(-2.0f * h)) / (-2.0f * h) + 1.0f)
                               : 0.5f * (alpha_t * (1.0f - expf(-2.0f * h)));
                float e = sigma_t * sqrtf(1.0f - expf(-2.0f * h));
                for (j = 0; j < n; j++) {
                    float d1 = ir0 * (m0[j] - m1[j]);
                    dst[j] = ((a * x[j] + b * m0[j]) + c * d1) + e * noise[j];
                }
            }
        } else {
            float sig2 = s->sigmas[i - 2], alpha_s2, sigma_s2, ls2, h1, r1, ir1, f1, f2;
            mt__dpm_alpha_sigma(sig2, &alpha_s2, &sigma_s2);
            ls2 = mt__dpm_lambda(alpha_s2, sigma_s2);
            h1 = ls1 - ls2;
            r1 = h1 / h;
            ir1 = 1.0f / r1;
            f1 = r0 / (r0 + r1);
            f2 = 1.0f / (r0 + r1);
            if (algo == MT__ALGO_DPMPP) {
                float a = sigma_t / sigma_s0, b = alpha_t * (expf(-h) - 1.0f);
                float c = alpha_t * ((expf(-h) - 1.0f) / h + 1.0f);
                float d = alpha_t * ((expf(-h) - 1.0f + h) / (h * h) - 0.5f);
                for (j = 0; j < n; j++) {
                    float d10 = ir0 * (m0[j] - m1[j]), d11 = ir1 * (m1[j] - m2[j]);
                    float d1 = d10 + f1 * (d10 - d11), d2 = f2 * (d10 - d11);
                    dst[j] = ((a * x[j] - b * m0[j]) + c * d1) - d * d2;
                }
            } else if (algo == MT__ALGO_DPM) {
                float a = alpha_t / alpha_s0, b = sigma_t * (expf(h) - 1.0f);
                float c = sigma_t * ((expf(h) - 1.0f) / h - 1.0f);
                float d = sigma_t * ((expf(h) - 1.0f - h) / (h * h) - 0.5f);
                for (j = 0; j < n; j++) {
                    float d10 = ir0 * (m0[j] - m1[j]), d11 = ir1 * (m1[j] - m2[j]);
                    float d1 = d10 + f1 * (d10 - d11), d2 = f2 * (d10 - d11);
                    dst[j] = ((a * x[j] - b * m0[j]) - c * d1) - d * d2;
                }
            } else {
                float a = sigma_t / sigma_s0 * expf(-h), b = alpha_t * (1.0f - expf(-2.0f * h));
                float c = alpha_t * ((1.0f - expf(-2.0f * h)) / (-2.0f * h) + 1.0f);
                float d = alpha_t * ((1.0f - expf(-2.0f * h) - 2.0f * h) / ((2.0f * h) * (2.0f * h)) - 0.5f);
                float e = sigma_t * sqrtf(1.0f - expf(-2.0f * h));
                for (j = 0; j < n; j++) {
                    float d10 = ir0 * (m0[j] - m1[j]), d11 = ir1 * (m1[j] - m2[j]);
                    float d1 = d10 + f1 * (d10 - d11), d2 = f2 * (d10 - d11);
                    dst[j] = (((a * x[j] + b * m0[j]) + c * d1) + d * d2) + e * noise[j];
                }
            }
        }
    }
    if (s->lower_order_nums < order) s->lower_order_nums++;
    return MT_OK;
}

MTDEF mt_status mt_scheduler_step(mt_scheduler *s, mt_tensor *prev_sample, const mt_tensor *model_output,
                                  double timestep, const mt_tensor *sample, mt_generator *gens, int n_gens) {
    static const char *func = "mt_scheduler_step";
    mt_tensor cm = {MT_F32, 0, {0}, {0}, NULL, NULL}, cx = cm, noise = cm;
    mt__sched_out o;
    mt_status st;
    int kind, pred, need_noise, ti = 0;
    int64_t n, j;
    const float *m, *x, *z = NULL;
    if (!s || !s->alphas_cumprod) return MT__FAIL(MT_ERR_ARGUMENT, "scheduler is not initialised");
    if (!s->timesteps) return MT__FAIL(MT_ERR_ARGUMENT, "call mt_scheduler_set_timesteps first");
    kind = s->config.kind;
    pred = s->kind_opts[MT__SO_PRED];
    if ((st = mt__sched_inputs(func, model_output, sample, &cm, &cx)) != MT_OK) return st;
    if (kind == MT_SCHEDULER_DDIM) {
        ti = (int)timestep;
        if ((double)ti != timestep || ti < 0 || ti >= s->num_train_timesteps)
            st = MT__FAIL(MT_ERR_ARGUMENT, "DDIM timestep %g is not an integer in [0, %d)", timestep,
                          s->num_train_timesteps);
        if (!(s->eta >= 0.0))
            st = MT__FAIL(MT_ERR_ARGUMENT, "eta %g must be >= 0", s->eta);
    } else {
        st = mt__sched_init_step(func, s, timestep);
        if (st == MT_OK && s->step_index >= s->num_inference_steps)
            st = MT__FAIL(MT_ERR_ARGUMENT, "all %d steps are done (call mt_scheduler_set_timesteps to start again)",
                          s->num_inference_steps);
    }
    need_noise = kind == MT_SCHEDULER_EULER_ANCESTRAL || (kind == MT_SCHEDULER_DDIM && s->eta > 0) ||
                 (kind == MT_SCHEDULER_DPMSOLVER_MULTISTEP && s->kind_opts[MT__SO_ALGO] == MT__ALGO_SDE_DPMPP);
    if (st == MT_OK && need_noise) {
        if (!gens || n_gens < 1)
            st = MT__FAIL(MT_ERR_ARGUMENT, "%s draws noise at each step: pass a generator",
                          mt_scheduler_kind_name((mt_scheduler_kind)kind));
        else if (n_gens > 1 && (cx.ndim == 0 || cx.shape[0] != n_gens))
            st = MT__FAIL(MT_ERR_ARGUMENT, "%d generators for a batch of %lld: need 1 or one per batch item", n_gens,
                          cx.ndim ? (long long)cx.shape[0] : 0LL);
    }
    if (st == MT_OK) st = mt__sched_out_begin(func, prev_sample, &cx, &o);
    if (st != MT_OK) {
        mt_release(&cm);
        mt_release(&cx);
        return st;
    }
    n = mt_numel(&cx);
    m = (const float *)cm.data;
    x = (const float *)cx.data;
    /* the noise is drawn first; the updates below read only their own element */
    if (need_noise && (st = mt__sched_noise(func, &noise, &cx, gens, n_gens)) == MT_OK) z = (const float *)noise.data;

    if (st != MT_OK) {
        /* nothing more */
    } else if (kind == MT_SCHEDULER_EULER || kind == MT_SCHEDULER_EULER_ANCESTRAL) {
        int i = s->step_index;
        float sigma = s->sigmas[i], next = s->sigmas[i + 1];
        float c1 = -sigma / sqrtf(sigma * sigma + 1.0f), c2 = sigma * sigma + 1.0f;
        if (kind == MT_SCHEDULER_EULER) {
            float sigma_hat = sigma * (0.0f + 1.0f), dt = next - sigma_hat;
            for (j = 0; j < n; j++) {
                float p = pred == MT__PRED_EPS ? x[j] - sigma_hat * m[j]
                                               : (pred == MT__PRED_V ? m[j] * c1 + x[j] / c2 : m[j]);
                float d = (x[j] - p) / sigma_hat;
                o.dst[j] = x[j] + d * dt;
            }
        } else {
            float up = sqrtf(next * next * (sigma * sigma - next * next) / (sigma * sigma));
            float down = sqrtf(next * next - up * up), dt = down - sigma;
            for (j = 0; j < n; j++) {
                float p = pred == MT__PRED_EPS ? x[j] - sigma * m[j] : m[j] * c1 + x[j] / c2;
                float d = (x[j] - p) / sigma;
                float v = x[j] + d * dt;
                o.dst[j] = v + z[j] * up;
            }
        }
        s->step_index++;
    } else if (kind == MT_SCHEDULER_DDIM) {
        int prev_t = ti - s->num_train_timesteps / s->kind_opts[MT__SO_REQ_STEPS];
        float apt = s->alphas_cumprod[ti];
        float aptp = prev_t >= 0 ? s->alphas_cumprod[prev_t] : s->final_alpha_cumprod;
        float bpt = 1.0f - apt, sa = sqrtf(apt), sb = sqrtf(bpt), var, std, dir, sap = sqrtf(aptp);
        float range = (float)s->config.clip_sample_range;
        int clip = s->config.clip_sample == MT_SCHED_TRUE, thr = s->config.thresholding == MT_SCHED_TRUE;
        mt_tensor x0t = {MT_F32, 0, {0}, {0}, NULL, NULL};
        float *x0 = NULL;
        var = (1.0f - aptp) / bpt * (1.0f - apt / aptp);
        std = (float)s->eta * sqrtf(var);
        dir = sqrtf(1.0f - aptp - std * std);
        if (thr) {
            st = mt__prepare_out(func, &x0t, MT_F32, cx.ndim, cx.shape);
            if (st == MT_OK) {
                x0 = (float *)x0t.data;
                for (j = 0; j < n; j++)
                    x0[j] = pred == MT__PRED_EPS ? (x[j] - sb * m[j]) / sa
                                                 : (pred == MT__PRED_SAMPLE ? m[j] : sa * x[j] - sb * m[j]);
                st = mt__sched_threshold(s, x0, &cx);
            }
        }
        if (st == MT_OK) {
            for (j = 0; j < n; j++) {
                float p, e, v;
                if (pred == MT__PRED_EPS) {
                    p = (x[j] - sb * m[j]) / sa;
                    e = m[j];
                } else if (pred == MT__PRED_SAMPLE) {
                    p = m[j];
                    e = (x[j] - sa * p) / sb;
                } else {
                    p = sa * x[j] - sb * m[j];
                    e = sa * m[j] + sb * x[j];
                }
                if (thr)
                    p = x0[j];
                else if (clip)
                    p = p < -range ? -range : (p > range ? range : p);
                v = sap * p + dir * e;
                o.dst[j] = z ? v + std * z[j] : v;
            }
        }
        mt_release(&x0t);
        if (st == MT_OK) {
            /* DDIM steps by timestep value; the index only counts steps */
            if (s->step_index < 0) s->step_index = s->begin_index >= 0 ? s->begin_index : 0;
            s->step_index++;
        }
    } else {
        st = mt__sched_step_dpm(s, o.dst, m, x, n, z, &cx);
        if (st == MT_OK) s->step_index++;
    }
    mt_release(&noise);
    mt_release(&cm);
    mt_release(&cx);
    return mt__sched_out_end(prev_sample, &o, st);
}

MTDEF mt_status mt_scheduler_add_noise(mt_scheduler *s, mt_tensor *out, const mt_tensor *original,
                                       const mt_tensor *noise, double timestep) {
    static const char *func = "mt_scheduler_add_noise";
    mt_tensor cx = {MT_F32, 0, {0}, {0}, NULL, NULL}, cz = cx;
    mt__sched_out o;
    mt_status st;
    float a, b;
    int64_t n, j;
    const float *x, *z;
    if (!s || !s->alphas_cumprod) return MT__FAIL(MT_ERR_ARGUMENT, "scheduler is not initialised");
    if (s->config.kind == MT_SCHEDULER_DDIM) {
        int ti = (int)timestep;
        if ((double)ti != timestep || ti < 0 || ti >= s->num_train_timesteps)
            return MT__FAIL(MT_ERR_ARGUMENT, "DDIM timestep %g is not an integer in [0, %d)", timestep,
                            s->num_train_timesteps);
        a = sqrtf(s->alphas_cumprod[ti]);
        b = sqrtf(1.0f - s->alphas_cumprod[ti]);
    } else {
        int idx = 0;
        float sigma;
        if (!s->timesteps) return MT__FAIL(MT_ERR_ARGUMENT, "call mt_scheduler_set_timesteps first");
        if (s->begin_index < 0) {
            if ((st = mt__sched_index_for(func, s, timestep, &idx)) != MT_OK) return st;
        } else {
            idx = s->step_index >= 0 ? s->step_index : s->begin_index;
        }
        if (idx > s->num_inference_steps) idx = s->num_inference_steps;
        sigma = s->sigmas[idx];
        if (s->config.kind == MT_SCHEDULER_DPMSOLVER_MULTISTEP) {
            mt__dpm_alpha_sigma(sigma, &a, &b);
        } else {
            a = 1.0f; /* x + noise * sigma */
            b = sigma;
        }
    }
    if ((st = mt__sched_inputs(func, original, noise, &cx, &cz)) != MT_OK) return st;
    if ((st = mt__sched_out_begin(func, out, &cx, &o)) != MT_OK) {
        mt_release(&cx);
        mt_release(&cz);
        return st;
    }
    n = mt_numel(&cx);
    x = (const float *)cx.data;
    z = (const float *)cz.data;
    if (s->config.kind == MT_SCHEDULER_EULER || s->config.kind == MT_SCHEDULER_EULER_ANCESTRAL)
        for (j = 0; j < n; j++) o.dst[j] = x[j] + z[j] * b;
    else
        for (j = 0; j < n; j++) o.dst[j] = a * x[j] + b * z[j];
    mt_release(&cx);
    mt_release(&cz);
    return mt__sched_out_end(out, &o, MT_OK);
}

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
/* stb_image 2.27 decodes into buffers it never clears: a JPEG whose scans
   do not cover the frame (no scan at all, a component no scan names, a
   restart interval cut short) left heap bytes in the pixels. Its
   allocations are zeroed, so such parts decode as zeros. */
static void *mt__stbi_malloc(size_t n) {
    void *p = MT_MALLOC(n);
    if (p) memset(p, 0, n);
    return p;
}
#define STBI_MALLOC(sz) mt__stbi_malloc(sz)
#define STBI_REALLOC(p, sz) MT_REALLOC(p, sz)
#define STBI_FREE(p) MT_FREE(p)
/* stb_image_write 1.16 compresses PNG data with a zlib encoder that asserts
   (and, without assertions, writes through NULL) when an allocation fails,
   and stbi_write_png_to_mem leaks the compressed data when its own last
   allocation fails. PNG data is compressed here instead: LZ77 with hash
   chains into one fixed-Huffman DEFLATE block (RFC 1950/1951), or stored
   blocks when that is smaller, with every allocation checked; the result is
   remembered until stb frees it, so mt_image_save_png frees it if stb
   loses it. */
static MT__THREAD_LOCAL unsigned char *mt__zlib_result;

typedef struct mt__bitsink {
    unsigned char *p;
    size_t n;
    uint32_t acc;
    int cnt;
} mt__bitsink;

/* Appends the n low bits of v, least significant first (n <= 16). */
static void mt__bits_put(mt__bitsink *b, uint32_t v, int n) {
    b->acc |= v << b->cnt;
    b->cnt += n;
    while (b->cnt >= 8) {
        b->p[b->n++] = (unsigned char)b->acc;
        b->acc >>= 8;
        b->cnt -= 8;
    }
}

/* A Huffman code is sent most significant bit first. */
static void mt__bits_code(mt__bitsink *b, uint32_t code, int n) {
    uint32_t r = 0;
    int i;
    for (i = 0; i < n; i++) r |= ((code >> i) & 1u) << (n - 1 - i);
    mt__bits_put(b, r, n);
}

/* Literal/length symbol in the fixed code (RFC 1951, 3.2.6). */
static void mt__deflate_symbol(mt__bitsink *b, int sym) {
    if (sym < 144) mt__bits_code(b, 0x30u + (uint32_t)sym, 8);
    else if (sym < 256) mt__bits_code(b, 0x190u + (uint32_t)(sym - 144), 9);
    else if (sym < 280) mt__bits_code(b, (uint32_t)(sym - 256), 7);
    else mt__bits_code(b, 0xc0u + (uint32_t)(sym - 280), 8);
}

static void mt__deflate_match(mt__bitsink *b, int len, int dist) {
    static const unsigned short lbase[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                             31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
    static const unsigned char lextra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                             2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
    static const unsigned short dbase[30] = {1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,    49,    65,    97,    129,
                                             193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
    int c = 28, d = 29;
    while (lbase[c] > len) c--;
    while (dbase[d] > dist) d--;
    mt__deflate_symbol(b, 257 + c);
    if (lextra[c]) mt__bits_put(b, (uint32_t)(len - lbase[c]), lextra[c]);
    mt__bits_code(b, (uint32_t)d, 5);
    if (d >= 4) mt__bits_put(b, (uint32_t)(dist - dbase[d]), (d - 2) / 2);
}

#define MT__ZWINDOW 32768
#define MT__ZHASH_BITS 13
#define MT__ZCHAIN 64

static uint32_t mt__zhash(const unsigned char *p) {
    return (((uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]) * 2654435761u) >> (32 - MT__ZHASH_BITS);
}

static void mt__zinsert(int32_t *head, int32_t *prev, const unsigned char *data, int i) {
    uint32_t h = mt__zhash(data + i);
    prev[i & (MT__ZWINDOW - 1)] = head[h];
    head[h] = i;
}

/* The zlib stream of data[0, len), in a buffer of MT_MALLOC; NULL when out
   of memory (nothing is left allocated). */
static unsigned char *mt__zlib_compress(unsigned char *data, int len, int *out_len, int quality) {
    size_t nblocks = (size_t)len / 65535 + 1, stored = 2 + (size_t)len + 5 * nblocks + 4;
    size_t fixed = 2 + ((size_t)len * 9 + 10) / 8 + 1 + 4, cap = stored > fixed ? stored : fixed;
    uint32_t s1 = 1, s2 = 0;
    int32_t *head, *prev;
    mt__bitsink b;
    int i, j;
    (void)quality;
    b.p = (unsigned char *)MT_MALLOC(cap);
    head = (int32_t *)MT_MALLOC(sizeof(int32_t) * ((1u << MT__ZHASH_BITS) + MT__ZWINDOW));
    if (!b.p || !head) {
        MT_FREE(b.p);
        MT_FREE(head);
        return NULL;
    }
    prev = head + (1u << MT__ZHASH_BITS);
    for (i = 0; i < (1 << MT__ZHASH_BITS); i++) head[i] = -1;
    b.n = 0;
    b.acc = 0;
    b.cnt = 0;
    b.p[b.n++] = 0x78; /* deflate, 32 KiB window */
    b.p[b.n++] = 0x01; /* fastest level; 0x7801 is a multiple of 31 */
    mt__bits_put(&b, 1, 1); /* the final block */
    mt__bits_put(&b, 1, 2); /* fixed Huffman codes */
    i = 0;
    while (i < len) {
        int best = 0, dist = 0;
        if (len - i >= 3) {
            int cand = head[mt__zhash(data + i)], chain = MT__ZCHAIN, max = len - i < 258 ? len - i : 258;
            while (cand >= 0 && i - cand <= MT__ZWINDOW && chain-- > 0) {
                int l = 0;
                while (l < max && data[cand + l] == data[i + l]) l++;
                if (l > best) {
                    best = l;
                    dist = i - cand;
                    if (l == max) break;
                }
                cand = prev[cand & (MT__ZWINDOW - 1)];
            }
            mt__zinsert(head, prev, data, i);
        }
        if (best >= 3) {
            mt__deflate_match(&b, best, dist);
            for (j = 1; j < best && len - (i + j) >= 3; j++) mt__zinsert(head, prev, data, i + j);
            i += best;
        } else {
            mt__deflate_symbol(&b, data[i]);
            i++;
        }
    }
    mt__deflate_symbol(&b, 256);
    if (b.cnt) mt__bits_put(&b, 0, 8 - b.cnt);
    MT_FREE(head);
    if (b.n + 4 > stored) { /* stored blocks are smaller */
        b.n = 2;
        for (i = 0; i == 0 || i < len; i += j) {
            j = len - i < 65535 ? len - i : 65535;
            b.p[b.n++] = (unsigned char)(i + j == len);
            b.p[b.n++] = (unsigned char)j;
            b.p[b.n++] = (unsigned char)(j >> 8);
            b.p[b.n++] = (unsigned char)~(unsigned)j;
            b.p[b.n++] = (unsigned char)(~(unsigned)j >> 8);
            memcpy(b.p + b.n, data + i, (size_t)j);
            b.n += (size_t)j;
            if (j == 0) break;
        }
    }
    for (i = 0; i < len; i++) { /* Adler-32 */
        s1 += data[i];
        s2 += s1;
        if ((i & 4095) == 4095) {
            s1 %= 65521;
            s2 %= 65521;
        }
    }
    s1 %= 65521;
    s2 %= 65521;
    b.p[b.n++] = (unsigned char)(s2 >> 8);
    b.p[b.n++] = (unsigned char)s2;
    b.p[b.n++] = (unsigned char)(s1 >> 8);
    b.p[b.n++] = (unsigned char)s1;
    *out_len = (int)b.n;
    mt__zlib_result = b.p;
    return b.p;
}

static void mt__stbiw_free(void *p) {
    if (p && p == (void *)mt__zlib_result) mt__zlib_result = NULL;
    MT_FREE(p);
}
#define STBIW_ZLIB_COMPRESS mt__zlib_compress
#define STBIW_MALLOC(sz) MT_MALLOC(sz)
#define STBIW_REALLOC(p, sz) MT_REALLOC(p, sz)
#define STBIW_FREE(p) mt__stbiw_free(p)
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

/* A failed stbi_info (loading = 0) or stbi_load (1): out of memory or a bad
   file. stb_image says "outofmem", except when the allocation of its JPEG
   decoder fails while stbi_load tells the format (a file that starts with
   a JPEG SOI marker is a JPEG to it unless that allocation fails): it then
   tries the other formats and says "unknown image type". stbi_info fails
   the same way on a damaged JPEG header, so there it stays a bad file. */
static mt_status mt__stbi_fail(const char *func, const char *label, const unsigned char *p, size_t n, int loading,
                               const char *what) {
    const char *r = mt__stbi_reason();
    size_t i = 0;
    while (i < n && p[i] == 0xFF) i++;
    if (strcmp(r, "outofmem") == 0 ||
        (loading && strcmp(r, "unknown image type") == 0 && i > 0 && i < n && p[i] == 0xD8))
        return mt__fail(MT_ERR_MEMORY, func, "cannot decode %s: out of memory", label);
    return mt__fail(MT_ERR_FORMAT, func, "cannot decode %s: %s (stb_image: %s)", label, what, r);
}

/* Debian's stb_image (2.27) trusts a JPEG's Huffman tables; upstream 2.28
   fixed it. A table of more than 256 codes overflows the decoder's arrays,
   and a scan may use a table never defined (uninitialized memory, then an
   out-of-bounds read or a failed STBI_ASSERT). A frame component may also
   name a quantization table no DQT defined (stb_image 2.27 then multiplies
   by uninitialized heap memory). This walk follows the marker
   parsing of stb_image (stray bytes skipped, segments by length, entropy-coded
   data up to the next marker that is not a restart) and refuses such files
   before stb_image sees them. NULL = nothing found. */
static const char *mt__jpeg_precheck(const unsigned char *p, size_t n) {
    size_t i = 1;
    unsigned defined = 0; /* bit tc * 4 + th */
    unsigned quant = 0, frame_quant = 0; /* DQT tables defined; tables the frame's components use */
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
        } else if (m == 0xDB) { /* DQT: tables until the length is used up, as stb reads it */
            long left = (long)len - 2;
            size_t k = i + 2;
            while (left > 0 && k < n) {
                if ((p[k] & 15) <= 3) quant |= 1u << (p[k] & 15);
                left -= (p[k] >> 4) ? 129 : 65;
                k += (p[k] >> 4) ? 129 : 65;
            }
        } else if (m == 0xC0 || m == 0xC1 || m == 0xC2) {
            size_t k = i + 7, nf = i + 7 < n ? p[i + 7] : 0, c;
            progressive = m == 0xC2;
            for (c = 0; c < nf && k + 3 + 3 * c < n; c++)
                if (p[k + 3 + 3 * c] <= 3) frame_quant |= 1u << p[k + 3 + 3 * c];
        } else if (m == 0xDA) { /* SOS: every table the scan decodes with must exist */
            if (frame_quant & ~quant) return "a JPEG frame uses an undefined quantization table";
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
   allocate up to 2 GB before it notices; an empty first IDAT chunk makes it
   offset a null pointer (undefined behaviour). Both are refused here.
   NULL = fine. */
static const char *mt__png_precheck(const unsigned char *p, size_t n) {
    size_t i = 8;
    int idat = 0;
    if (n < 8 || memcmp(p, "\x89PNG\r\n\x1a\n", 8) != 0) return NULL;
    while (n - i >= 8) { /* a chunk header: length, type */
        uint32_t len = ((uint32_t)p[i] << 24) | ((uint32_t)p[i + 1] << 16) | ((uint32_t)p[i + 2] << 8) | p[i + 3];
        if (len > n - i - 8) return "a PNG chunk runs past the end of the file";
        if (!idat && memcmp(p + i + 4, "IDAT", 4) == 0) {
            if (len == 0) return "the first IDAT chunk is empty (not supported)";
            idat = 1;
        }
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
#ifndef MT_NO_STB_IMPLEMENTATION
    MT_FREE(mt__zlib_result); /* compressed data stb lost on a failed allocation */
    mt__zlib_result = NULL;
#endif
    if (fclose(sink.f) != 0 && !sink.err) sink.err = errno ? errno : EIO;
    if (!ok || sink.err) {
        remove(path);
        if (!ok) return MT__FAIL(MT_ERR_MEMORY, "cannot encode %s: out of memory", label);
        return MT__FAIL(MT_ERR_IO, "cannot write %s: %s", label, strerror(sink.err));
    }
    return MT_OK;
}

/* stb_image (Debian's 2.27) reads the palette entry of every index
   byte from a 256-entry stack array without checking the index against the
   PLTE length: a PNG whose pixels use indices past its palette would decode
   to bytes of the stack. Such a file is decoded from a copy whose first
   PLTE is padded to 256 black entries (those pixels come out black,
   opaque). Returns 1 with the copy, 0 when none is needed (including files
   stb_image refuses anyway), -1 when out of memory. */
static uint32_t mt__png_crc(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
    size_t i;
    int k;
    for (i = 0; i < n; i++) {
        c ^= p[i];
        for (k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

static int mt__png_pad_palette(const unsigned char *p, size_t n, unsigned char **copy, size_t *copy_n) {
    size_t i = 8, at = 0;
    uint32_t plte = 0;
    if (n < 8 || memcmp(p, "\x89PNG\r\n\x1a\n", 8) != 0) return 0;
    while (n - i >= 12) {
        uint32_t len = ((uint32_t)p[i] << 24) | ((uint32_t)p[i + 1] << 16) | ((uint32_t)p[i + 2] << 8) | p[i + 3];
        if (len > n - i - 12) return 0;
        if (!at && memcmp(p + i + 4, "PLTE", 4) == 0) {
            if (len >= 768 || len % 3 != 0) return 0;
            at = i;
            plte = len;
        } else if (at && memcmp(p + i + 4, "tRNS", 4) == 0 && len > plte / 3) {
            return 0; /* stb_image refuses it ("bad tRNS len") */
        } else if (memcmp(p + i + 4, "IEND", 4) == 0) {
            break;
        }
        i += 12 + (size_t)len;
    }
    if (!at) return 0;
    {
        size_t tail = at + 12 + plte, m = n + (768 - plte);
        unsigned char *q = (unsigned char *)MT_MALLOC(m), *c;
        uint32_t crc;
        if (!q) return -1;
        memcpy(q, p, at + 8 + plte);
        c = q + at;
        c[0] = 0;
        c[1] = 0;
        c[2] = 0x03;
        c[3] = 0x00; /* 768 */
        memset(c + 8 + plte, 0, 768 - plte);
        crc = mt__png_crc(c + 4, 4 + 768);
        c[776] = (unsigned char)(crc >> 24);
        c[777] = (unsigned char)(crc >> 16);
        c[778] = (unsigned char)(crc >> 8);
        c[779] = (unsigned char)crc;
        memcpy(c + 780, p + tail, n - tail);
        *copy = q;
        *copy_n = m;
        return 1;
    }
}

static mt_status mt__image_decode_bytes(const char *func, const char *label, mt_tensor *out, const unsigned char *buf,
                                        size_t size, int channels, mt_image_range range);

static mt_status mt__image_decode(const char *func, const char *label, mt_tensor *out, const unsigned char *buf,
                                  size_t size, int channels, mt_image_range range) {
    unsigned char *copy = NULL;
    size_t copy_n = 0;
    mt_status s;
    int pad = mt__png_pad_palette(buf, size, &copy, &copy_n);
    if (pad < 0) return mt__fail(MT_ERR_MEMORY, func, "cannot decode %s: out of memory", label);
    s = mt__image_decode_bytes(func, label, out, pad ? copy : buf, pad ? copy_n : size, channels, range);
    MT_FREE(copy);
    return s;
}

static mt_status mt__image_decode_bytes(const char *func, const char *label, mt_tensor *out, const unsigned char *buf,
                                        size_t size, int channels, mt_image_range range) {
    int w, h, comp, c, own = 0;
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
        return mt__stbi_fail(func, label, buf, size, 0, "not a PNG or JPEG image, or a damaged one");
    if ((int64_t)w * h > MT_IMAGE_MAX_PIXELS)
        return mt__fail(MT_ERR_UNSUPPORTED, func, "%s is %d x %d pixels, over the limit of %lld (MT_IMAGE_MAX_PIXELS)",
                        label, w, h, (long long)MT_IMAGE_MAX_PIXELS);
    c = channels ? channels : comp;
    if (stbi_is_16_bit_from_memory(buf, (int)size)) {
        /* stb_image's own 16-to-8-bit step leaks the image when it runs out
           of memory: load 16 bits and keep the high byte here, as it does */
        stbi_us *p16 = stbi_load_16_from_memory(buf, (int)size, &w, &h, &comp, c);
        size_t i, n = (size_t)w * (size_t)h * (size_t)c;
        if (!p16) return mt__stbi_fail(func, label, buf, size, 1, "damaged or unsupported image");
        pix = (unsigned char *)MT_MALLOC(n ? n : 1);
        if (pix)
            for (i = 0; i < n; i++) pix[i] = (unsigned char)(p16[i] >> 8);
        stbi_image_free(p16);
        if (!pix) return mt__fail(MT_ERR_MEMORY, func, "cannot decode %s: out of memory", label);
        own = 1;
    } else {
        pix = stbi_load_from_memory(buf, (int)size, &w, &h, &comp, c);
    }
    if (!pix) return mt__stbi_fail(func, label, buf, size, 1, "damaged or unsupported image");
    shape[0] = 1;
    shape[1] = c;
    shape[2] = h;
    shape[3] = w;
    memset(&t, 0, sizeof t);
    s = mt__prepare_out(func, &t, MT_F32, 4, shape);
    if (s != MT_OK) {
        if (own) MT_FREE(pix);
        else stbi_image_free(pix);
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
    if (own) MT_FREE(pix);
    else stbi_image_free(pix);
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
