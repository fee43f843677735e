/* The reproducibility manifest: what a run was made with, as one JSON
 * object (jansson), keys in this order:
 *
 *   nabla        NB_VERSION_STRING
 *   compiler     "gcc 12.2.0", "clang Debian Clang 14.0.6", ... (__VERSION__)
 *   build_type   CMAKE_BUILD_TYPE, and c_flags: CMAKE_C_FLAGS and the build
 *                type's flags (passed by the root CMakeLists.txt as
 *                NB_BUILD_TYPE / NB_BUILD_FLAGS on this file alone; the
 *                project's own options -std=c11 -fno-math-errno and warnings
 *                come on top)
 *   sanitize     true in a NABLA_SANITIZE build (ASan + UBSan)
 *   openmp       _OPENMP (the spec date), 0 without
 *   blas         openblas_get_config() ("OpenBLAS 0.3.21 DYNAMIC_ARCH ...");
 *                blas_core: openblas_get_corename(); blas_threads:
 *                openblas_get_num_threads() (nabla pins it to 1)
 *   threads      nb_get_num_threads(ctx)
 *   seed         the run's seed (a decimal string above 2^63 - 1; null when
 *                unknown, as in a checkpoint written outside nb_train)
 *   host         gethostname
 *   os           {sysname, release, version, machine} from uname
 *   time         UTC, ISO 8601 ("2026-12-01T09:14:03Z")
 *   config       the config text, or null
 *
 * The build links OpenBLAS by construction (CMake's BLA_VENDOR OpenBLAS,
 * REQUIRED, and src/core/ctx.c calls openblas_set_num_threads), so its
 * query functions are called directly.
 *
 * Strings that are not valid UTF-8 (a config file in Latin-1, say) have
 * their bad bytes replaced by '?', since JSON text is UTF-8. The result is
 * copied into a block from the context's allocator hook, so nb_free_string
 * (nb__heap_free) frees it; jansson's own memory is malloc's. */
#include "train/manifest.h"

#include <cblas.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#ifndef NB_BUILD_TYPE
#define NB_BUILD_TYPE ""
#endif
#ifndef NB_BUILD_FLAGS
#define NB_BUILD_FLAGS ""
#endif
#ifndef NB_BUILD_SANITIZE
#define NB_BUILD_SANITIZE 0
#endif

#if defined(__clang__)
#define NB__COMPILER "clang " __VERSION__
#elif defined(__GNUC__)
#define NB__COMPILER "gcc " __VERSION__
#elif defined(__VERSION__)
#define NB__COMPILER __VERSION__
#else
#define NB__COMPILER "unknown"
#endif

/* Length of the valid UTF-8 sequence at s (1-4), 0 if invalid. */
static int utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    int n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (int i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

/* A JSON string of s (NULL: null), bad UTF-8 bytes replaced by '?'. NULL
 * only when jansson's allocation fails. */
static json_t *jstr(const char *s)
{
    if (!s)
        return json_null();
    json_t *j = json_string(s);
    if (j)
        return j;
    size_t n = strlen(s);
    char *c = malloc(n + 1);
    if (!c)
        return NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    while (*p) {
        int k = utf8_len(p);
        if (k == 0) {
            c[o++] = '?';
            p++;
        } else {
            memcpy(c + o, p, (size_t)k);
            o += (size_t)k;
            p += k;
        }
    }
    c[o] = '\0';
    j = json_string(c);
    free(c);
    return j;
}

/* Sets key to v (stolen); false when v is NULL or the set fails. */
static bool put(json_t *o, const char *key, json_t *v)
{
    return v && json_object_set_new(o, key, v) == 0;
}

char *nb__manifest_json(nb_ctx *ctx, bool has_seed, uint64_t seed, const char *config_text)
{
    if (!ctx)
        return NULL;
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    host[sizeof host - 1] = '\0';
    struct utsname u;
    bool have_uname = uname(&u) == 0;
    char when[32] = "";
    time_t now = time(NULL);
    struct tm tm;
    if (now != (time_t)-1 && gmtime_r(&now, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *seed_j;
    if (!has_seed)
        seed_j = json_null();
    else if (seed <= (uint64_t)INT64_MAX)
        seed_j = json_integer((json_int_t)seed);
    else {
        char b[24];
        snprintf(b, sizeof b, "%llu", (unsigned long long)seed);
        seed_j = json_string(b);
    }
#ifdef _OPENMP
    json_int_t openmp = _OPENMP;
#else
    json_int_t openmp = 0;
#endif
    /* root takes its own references to os and seed_j; ours go at the end */
    json_t *root = json_object(), *os = have_uname ? json_object() : json_null();
    bool ok = root && os && seed_j;
    if (ok && have_uname)
        ok = put(os, "sysname", jstr(u.sysname)) && put(os, "release", jstr(u.release)) &&
             put(os, "version", jstr(u.version)) && put(os, "machine", jstr(u.machine));
    ok = ok && put(root, "nabla", json_string(NB_VERSION_STRING)) &&
         put(root, "compiler", jstr(NB__COMPILER)) && put(root, "build_type", jstr(NB_BUILD_TYPE)) &&
         put(root, "c_flags", jstr(NB_BUILD_FLAGS)) &&
         put(root, "sanitize", json_boolean(NB_BUILD_SANITIZE)) &&
         put(root, "openmp", json_integer(openmp)) &&
         put(root, "blas", jstr(openblas_get_config())) &&
         put(root, "blas_core", jstr(openblas_get_corename())) &&
         put(root, "blas_threads", json_integer(openblas_get_num_threads())) &&
         put(root, "threads", json_integer(nb_get_num_threads(ctx))) &&
         put(root, "seed", json_incref(seed_j)) && put(root, "host", jstr(host)) &&
         put(root, "os", json_incref(os)) && put(root, "time", jstr(when)) &&
         put(root, "config", jstr(config_text));
    json_decref(os);
    json_decref(seed_j);
    char *text = ok ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    if (!text) {
        nb__err(ctx, NB_ERR_NOMEM, "manifest: out of memory building the JSON");
        return NULL;
    }
    size_t n = strlen(text);
    char *out = nb__heap_alloc(ctx, n + 1);
    if (out)
        memcpy(out, text, n + 1);
    else
        nb__err(ctx, NB_ERR_NOMEM, "manifest: allocator failed");
    free(text);
    return out;
}

char *nb_manifest_json(nb_ctx *ctx, uint64_t seed, const char *config_text)
{
    return nb__manifest_json(ctx, true, seed, config_text);
}
