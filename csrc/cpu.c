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

size_t crnn__l1_bytes(void)
{
    size_t v = CRNN__LOAD(&crnn__l1_cached);
    if (!v) {
        v = crnn__sysconf_size(1);
        if (v < 8192 || v > ((size_t)1 << 24)) v = 32768;
        CRNN__STORE(&crnn__l1_cached, v);
    }
    return v;
}

size_t crnn__l2_bytes(void)
{
    size_t v = CRNN__LOAD(&crnn__l2_cached);
    if (!v) {
        v = crnn__sysconf_size(2);
        if (v < 65536 || v > ((size_t)1 << 30)) v = 524288;
        CRNN__STORE(&crnn__l2_cached, v);
    }
    return v;
}
