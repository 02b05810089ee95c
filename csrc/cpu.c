/* cpu.c - the instruction set and cache sizes of the machine (see cpu.h), read once. */
#if defined(__linux__)
#  define _GNU_SOURCE
#endif
#include <stdlib.h>
#include <string.h>
#if !defined(_WIN32)
#  include <unistd.h>
#endif

#include "cpu.h"

#if defined(__GNUC__)
#  define CRNN__LOAD(p) __atomic_load_n(p, __ATOMIC_ACQUIRE)
#  define CRNN__STORE(p, v) __atomic_store_n(p, v, __ATOMIC_RELEASE)
#else
#  define CRNN__LOAD(p) (*(p))
#  define CRNN__STORE(p, v) (*(p) = (v))
#endif

static crnn__isa_level crnn__detect_isa(void)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(CRNN_NO_CLONES)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("fma"))
        return CRNN__ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CRNN__ISA_AVX2;
#endif
    return CRNN__ISA_BASE;
}

static int crnn__isa_cached = -1;

crnn__isa_level crnn__isa(void)
{
    int isa = CRNN__LOAD(&crnn__isa_cached);
    if (isa < 0) {
        const char *want = getenv("CRNN_ISA");
        isa = (int)crnn__detect_isa();
        if (want && (!strcmp(want, "base") || !strcmp(want, "sse2"))) isa = CRNN__ISA_BASE;
        else if (want && !strcmp(want, "avx2") && isa > CRNN__ISA_AVX2) isa = CRNN__ISA_AVX2;
        CRNN__STORE(&crnn__isa_cached, isa);
    }
    return (crnn__isa_level)isa;
}

const char *crnn__isa_name(void)
{
    switch (crnn__isa()) {
    case CRNN__ISA_AVX512: return "avx512";
    case CRNN__ISA_AVX2: return "avx2";
    default: return "base";
    }
}

static int crnn__panels_cached = -1;

int crnn__use_panels(void)
{
    int v = CRNN__LOAD(&crnn__panels_cached);
    if (v < 0) {
        const char *want = getenv("CRNN_RECURRENT");
        v = !(want && !strcmp(want, "blas"));
        CRNN__STORE(&crnn__panels_cached, v);
    }
    return v;
}

static size_t crnn__sysconf_size(int level)
{
    long v = -1;
#if defined(__linux__) && defined(_SC_LEVEL1_DCACHE_SIZE)
    v = sysconf(level == 1 ? _SC_LEVEL1_DCACHE_SIZE : _SC_LEVEL2_CACHE_SIZE);
#else
    (void)level;
#endif
    return v > 0 ? (size_t)v : 0;
}

static size_t crnn__l1_cached = 0, crnn__l2_cached = 0;

/* The size the OS reports for a cache level, read once; `fallback` if it reports nothing
 * plausible (outside [lo, hi]). */
static size_t crnn__cache_bytes(size_t *cached, int level, size_t lo, size_t hi, size_t fallback)
{
    size_t v = CRNN__LOAD(cached);
    if (!v) {
        v = crnn__sysconf_size(level);
        if (v < lo || v > hi) v = fallback;
        CRNN__STORE(cached, v);
    }
    return v;
}

size_t crnn__l1_bytes(void)
{
    return crnn__cache_bytes(&crnn__l1_cached, 1, 8192, (size_t)1 << 24, 32768);
}

size_t crnn__l2_bytes(void)
{
    return crnn__cache_bytes(&crnn__l2_cached, 2, 65536, (size_t)1 << 30, 524288);
}
