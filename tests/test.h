/* tests/test.h - the checks every test binary uses.

   CHECK(cond, ...)           one check; the message (printf format) names it
   CHECK_NEAR(a, b, tol, ...) |a - b| <= tol
   CHECK_STR(got, want, ...)  strings equal; on failure prints both
   test_finish()              prints "N passed, N failed" and returns the
                              process exit code (0 only when nothing failed)

   Each check prints one line: "ok   message" or "FAIL message (file:line)".
   Set TEST_QUIET=1 in the environment to print only failures and the total. */
#ifndef MODULAR_TEST_H
#define MODULAR_TEST_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test__passed, test__failed, test__quiet = -1;

static int test__is_quiet(void) {
    if (test__quiet < 0) {
        const char *q = getenv("TEST_QUIET");
        test__quiet = q && *q && *q != '0';
    }
    return test__quiet;
}

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static int test__check(int ok, const char *file, int line, const char *fmt, ...) {
    va_list ap;
    if (ok)
        test__passed++;
    else
        test__failed++;
    if (ok && test__is_quiet()) return ok;
    printf(ok ? "ok   " : "FAIL ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (!ok) printf(" (%s:%d)", file, line);
    printf("\n");
    fflush(stdout);
    return ok;
}

#define CHECK(cond, ...) test__check(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

#define CHECK_NEAR(a, b, tol, ...)                                                              \
    do {                                                                                        \
        double test__a = (double)(a), test__b = (double)(b);                                    \
        if (!test__check(fabs(test__a - test__b) <= (tol), __FILE__, __LINE__, __VA_ARGS__))   \
            printf("     got %.9g, want %.9g, tolerance %g\n", test__a, test__b, (double)(tol)); \
    } while (0)

#define CHECK_STR(got, want, ...)                                                              \
    do {                                                                                       \
        const char *test__g = (got), *test__w = (want);                                        \
        int test__ok = test__g && test__w && strcmp(test__g, test__w) == 0;                    \
        if (!test__check(test__ok, __FILE__, __LINE__, __VA_ARGS__))                           \
            printf("---- got:\n%s\n---- want:\n%s\n----\n", test__g ? test__g : "(null)",       \
                   test__w ? test__w : "(null)");                                              \
    } while (0)

static int test_finish(void) {
    printf("%d passed, %d failed\n", test__passed, test__failed);
    return test__failed ? 1 : 0;
}

#endif

/* (POSIX; define _POSIX_C_SOURCE 200809L first.)
   Runs fn with stdout going to a temporary file and returns what it printed
   (malloc'd, NUL-terminated; NULL on failure). *rc gets fn's return value. */
#if defined(_POSIX_C_SOURCE) && _POSIX_C_SOURCE >= 200112L
#include <unistd.h>
static inline char *test_capture(int (*fn)(void), int *rc) {
    FILE *tmp = tmpfile();
    int saved;
    long n;
    char *buf;
    if (!tmp) return NULL;
    fflush(stdout);
    saved = dup(1);
    dup2(fileno(tmp), 1);
    *rc = fn();
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    n = ftell(tmp);
    buf = (char *)malloc((size_t)(n > 0 ? n : 0) + 1);
    if (buf) {
        rewind(tmp);
        n = (long)fread(buf, 1, (size_t)(n > 0 ? n : 0), tmp);
        buf[n > 0 ? n : 0] = '\0';
    }
    fclose(tmp);
    return buf;
}
#endif

/* Joins NULL-terminated parts (long expected texts are split to stay under
   the string-literal length C99 guarantees). Free the result. */
static inline char *test_join(const char *const *parts) {
    size_t n = 0, i;
    char *s;
    for (i = 0; parts[i]; i++) n += strlen(parts[i]);
    s = (char *)malloc(n + 1);
    if (!s) return NULL;
    s[0] = '\0';
    for (i = 0; parts[i]; i++) strcat(s, parts[i]);
    return s;
}
