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

/* The level CRNN_ISA names ("avx512", "avx2", "base" or "sse2"); -1 where it names none, -2
 * where it is unset or empty. */
static int crnn__isa_asked(void)
{
    const char *want = getenv("CRNN_ISA");
    if (!want || !*want) return -2;
    if (!strcmp(want, "avx512")) return CRNN__ISA_AVX512;
    if (!strcmp(want, "avx2")) return CRNN__ISA_AVX2;
    if (!strcmp(want, "base") || !strcmp(want, "sse2")) return CRNN__ISA_BASE;
    return -1;
}

crnn__isa_level crnn__isa(void)
{
    int isa = CRNN__LOAD(&crnn__isa_cached);
    if (isa < 0) {
        const int asked = crnn__isa_asked();
        isa = (int)crnn__detect_isa();
        if (asked >= 0 && asked < isa) isa = asked; /* less than the CPU's best only */
        CRNN__STORE(&crnn__isa_cached, isa);
    }
    return (crnn__isa_level)isa;
}

int crnn__isa_env_ignored(void) { return crnn__isa_asked() == -1; }

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

/* A size as the environment variables spell it: decimal digits, then nothing, K or M (KiB,
 * MiB; either case, an optional "iB" or "B" after). 0 if it is not one. */
static size_t crnn__parse_size(const char *s)
{
    size_t v = 0, mult = 1;
    const size_t cap = (size_t)1 << 40;
    if (!s || *s < '0' || *s > '9') return 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (size_t)(*s++ - '0');
        if (v > cap) return 0;
    }
    if (*s == 'k' || *s == 'K') mult = (size_t)1 << 10, ++s;
    else if (*s == 'm' || *s == 'M') mult = (size_t)1 << 20, ++s;
    if (mult > 1 && (s[0] == 'i' || s[0] == 'I') && (s[1] == 'b' || s[1] == 'B')) s += 2;
    else if (mult > 1 && (s[0] == 'b' || s[0] == 'B')) s += 1;
    return *s ? 0 : v * mult;
}

typedef struct {
    size_t bytes;  /* 0 until read */
    int from;      /* crnn__cache_from */
    int ignored;   /* the environment variable is set but unusable */
} crnn__cache_level;

static crnn__cache_level crnn__caches[2];

/* The variables that set levels 1 and 2, and the sizes taken from them or the OS. */
static const char *const crnn__cache_env[2] = {"CRNN_L1_BYTES", "CRNN_L2_BYTES"};
static const size_t crnn__cache_lo[2] = {8192, 65536};
static const size_t crnn__cache_hi[2] = {(size_t)1 << 24, (size_t)1 << 30};

/* Level 1 or 2, read once: the environment variable if usable (within [lo, hi]), else the OS's
 * size if plausible (within the same range), else `fallback`. Concurrent first reads compute
 * and store the same answer. An empty variable counts as unset. */
static const crnn__cache_level *crnn__cache(int level)
{
    const size_t *lo = crnn__cache_lo, *hi = crnn__cache_hi;
    static const size_t fallback[2] = {32768, 524288};
    crnn__cache_level *c = &crnn__caches[level - 1];
    if (!CRNN__LOAD(&c->bytes)) {
        const int i = level - 1;
        const char *want = getenv(crnn__cache_env[i]);
        const size_t asked = crnn__parse_size(want);
        size_t v;
        int from, ignored = 0;
        if (asked >= lo[i] && asked <= hi[i]) {
            v = asked;
            from = CRNN__CACHE_FROM_ENV;
        } else {
            v = crnn__sysconf_size(level);
            from = CRNN__CACHE_FROM_OS;
            if (v < lo[i] || v > hi[i]) v = fallback[i], from = CRNN__CACHE_FROM_DEFAULT;
            ignored = want && *want;
        }
        CRNN__STORE(&c->from, from);
        CRNN__STORE(&c->ignored, ignored);
        CRNN__STORE(&c->bytes, v);
    }
    return c;
}

size_t crnn__l1_bytes(void) { return CRNN__LOAD(&crnn__cache(1)->bytes); }

size_t crnn__l2_bytes(void) { return CRNN__LOAD(&crnn__cache(2)->bytes); }

crnn__cache_from crnn__cache_source(int level)
{
    return (crnn__cache_from)CRNN__LOAD(&crnn__cache(level == 1 ? 1 : 2)->from);
}

int crnn__cache_env_ignored(int level)
{
    return CRNN__LOAD(&crnn__cache(level == 1 ? 1 : 2)->ignored);
}

const char *crnn__cache_env_name(int level) { return crnn__cache_env[level == 1 ? 0 : 1]; }

void crnn__cache_limits(int level, size_t *lo, size_t *hi)
{
    *lo = crnn__cache_lo[level == 1 ? 0 : 1];
    *hi = crnn__cache_hi[level == 1 ? 0 : 1];
}
