/* tests/alloc_fail.h - an allocator that counts, and fails on request.

   Include it before the implementations of modular_tensor.h and modular.h:
   it defines MOD_MALLOC / MOD_REALLOC / MOD_FREE and MT_MALLOC / MT_REALLOC /
   MT_FREE, so every allocation the two libraries make goes through it.

       af_arm(k, 0)   the k-th allocation from now fails (k = 1: the next);
                      later ones succeed again
       af_arm(k, 1)   the k-th and every later allocation fail
       af_disarm()    no more failures
       af_count       allocations attempted since the last af_arm / af_disarm
       af_failures    failures injected since then
       af_live        blocks allocated and not yet freed (a leak check: it
                      must come back to where it was)

   The counters are atomic, so allocations from worker threads are counted
   too. A realloc of NULL counts as an allocation; a realloc that fails leaves
   its block allocated, as realloc does. */
#ifndef MODULAR_ALLOC_FAIL_H
#define MODULAR_ALLOC_FAIL_H

#include <stdlib.h>

static long af_count, af_failures, af_live;
static long af_fail_at;   /* 0: never */
static int af_persistent;

static inline int af__fail_now(void) {
    long n = __atomic_add_fetch(&af_count, 1, __ATOMIC_RELAXED);
    long at = __atomic_load_n(&af_fail_at, __ATOMIC_RELAXED);
    if (at > 0 && (n == at || (af_persistent && n > at))) {
        __atomic_add_fetch(&af_failures, 1, __ATOMIC_RELAXED);
        return 1;
    }
    return 0;
}

static inline void *af_malloc(size_t n) {
    void *p;
    if (af__fail_now()) return NULL;
    p = malloc(n);
    if (p) __atomic_add_fetch(&af_live, 1, __ATOMIC_RELAXED);
    return p;
}

static inline void *af_realloc(void *old, size_t n) {
    void *p;
    if (af__fail_now()) return NULL;
    p = realloc(old, n);
    if (p && !old) __atomic_add_fetch(&af_live, 1, __ATOMIC_RELAXED);
    return p;
}

static inline void af_free(void *p) {
    if (!p) return;
    __atomic_sub_fetch(&af_live, 1, __ATOMIC_RELAXED);
    free(p);
}

static inline void af_arm(long k, int persistent) {
    __atomic_store_n(&af_count, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&af_failures, 0, __ATOMIC_RELAXED);
    af_persistent = persistent;
    __atomic_store_n(&af_fail_at, k, __ATOMIC_RELAXED);
}

static inline void af_disarm(void) { af_arm(0, 0); }

static inline long af_live_now(void) { return __atomic_load_n(&af_live, __ATOMIC_RELAXED); }

#define MOD_MALLOC(sz) af_malloc(sz)
#define MOD_REALLOC(p, sz) af_realloc(p, sz)
#define MOD_FREE(p) af_free(p)
#define MT_MALLOC(sz) af_malloc(sz)
#define MT_REALLOC(p, sz) af_realloc(p, sz)
#define MT_FREE(p) af_free(p)

#endif

/* ---- sweeping a whole program -------------------------------------------

   With tests/test.h included first (and _POSIX_C_SOURCE for dup2), a program
   fn (a main: returns 0 on success, prints its output) is run once cleanly,
   counting its N allocations, then once for every k in 1..N with allocation
   k failing (once; and again with every allocation from k on failing), its
   standard output captured and standard error discarded. Each run must free
   everything it allocated; a run in which a failure was injected must show
   it (a non-zero return or an output other than the clean run's); and the
   clean run after each one must give the clean output again. AF_STRIDE=n in
   the environment tries every n-th k only (every 7th under valgrind, when
   MT_VALGRIND is set). AF_VERBOSE=1 lists each k that leaks or fails
   silently. */
#if defined(MODULAR_TEST_H) && defined(_POSIX_C_SOURCE) && _POSIX_C_SOURCE >= 200112L
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Runs fn with stdout captured (malloc'd text) and stderr discarded. */
static inline char *af_capture(int (*fn)(void), int *rc) {
    int saved_err, devnull;
    char *out;
    fflush(stderr);
    saved_err = dup(2);
    devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) {
        dup2(devnull, 2);
        close(devnull);
    }
    out = test_capture(fn, rc);
    fflush(stderr);
    if (saved_err >= 0) {
        dup2(saved_err, 2);
        close(saved_err);
    }
    return out;
}

/* Every k, or every AF_STRIDE-th (environment), or every 7th under valgrind. */
static inline long af_stride(void) {
    const char *v = getenv("MT_VALGRIND"), *s = getenv("AF_STRIDE");
    if (s && atol(s) > 1) return atol(s);
    return v && *v && *v != '0' ? 7 : 1;
}

/* Returns N, the allocations of a clean run. */
static inline long af_sweep(const char *name, int (*fn)(void)) {
    long n, k, live0, stride = af_stride();
    long leaks = 0, silent = 0, broken = 0, tried = 0, first_leak = 0, first_silent = 0, first_broken = 0;
    int rc, mode, verbose = getenv("AF_VERBOSE") != NULL;
    char *ref, *got;
    af_disarm();
    ref = af_capture(fn, &rc); /* a first run may set up lasting things (the thread pool) */
    free(ref);
    live0 = af_live_now();
    af_disarm();
    ref = af_capture(fn, &rc);
    n = __atomic_load_n(&af_count, __ATOMIC_RELAXED);
    CHECK(rc == 0 && ref && af_live_now() == live0, "%s: a clean run works and frees everything (%ld allocations)", name, n);
    if (!ref) return 0;
    for (mode = 0; mode < 2; mode++) {
        for (k = 1; k <= n; k += stride) {
            long injected;
            af_arm(k, mode);
            got = af_capture(fn, &rc);
            injected = __atomic_load_n(&af_failures, __ATOMIC_RELAXED);
            af_disarm();
            tried++;
            if (af_live_now() != live0) {
                if (!leaks++) first_leak = k;
                if (verbose) printf("  %s: k = %ld%s leaks %ld blocks\n", name, k, mode ? "+" : "", af_live_now() - live0);
                live0 = af_live_now();
            }
            if (injected && rc == 0 && got && strcmp(got, ref) == 0) {
                if (!silent++) first_silent = k;
                if (verbose) printf("  %s: k = %ld%s fails silently\n", name, k, mode ? "+" : "");
            }
            free(got);
            got = af_capture(fn, &rc);
            if ((rc != 0 || !got || strcmp(got, ref) != 0) && !broken++) first_broken = k;
            free(got);
        }
        CHECK(leaks == 0, "%s: no leak when allocation k fails%s (first at k = %ld, %ld runs)", name,
              mode ? " and every one after" : "", first_leak, leaks);
        CHECK(silent == 0, "%s: every injected failure%s shows (first silent at k = %ld, %ld runs)", name,
              mode ? " (from k on)" : "", first_silent, silent);
        CHECK(broken == 0, "%s: the clean run after each failure%s works (first broken after k = %ld)", name,
              mode ? " (from k on)" : "", first_broken);
        leaks = silent = broken = 0;
    }
    printf("%s: %ld allocations, %ld failing runs", name, n, tried);
    if (stride > 1) printf(" (every %ldth k)", stride);
    printf("\n");
    free(ref);
    return n;
}
#endif
