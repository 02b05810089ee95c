/* cpu.h - internal: what the machine crnn runs on offers, read once per process. */
#ifndef CRNN_CPU_H
#define CRNN_CPU_H

#include <stddef.h>

/* A fact read once and cached in a static (-1: not yet): racing first callers find the same
 * value, each stores it. No atomics without GCC's builtins (no pool there either). */
#if defined(__GNUC__)
#  define CRNN__LOAD(p) __atomic_load_n(p, __ATOMIC_ACQUIRE)
#  define CRNN__STORE(p, v) __atomic_store_n(p, v, __ATOMIC_RELEASE)
#else
#  define CRNN__LOAD(p) (*(p))
#  define CRNN__STORE(p, v) (*(p) = (v))
#endif

/* Instruction sets with kernels of their own (kernels.h), best last. */
typedef enum { CRNN__ISA_BASE = 0, CRNN__ISA_AVX2 = 1, CRNN__ISA_AVX512 = 2 } crnn__isa_level;

/* The kernels' instruction set: the best this CPU and OS support, or less if the environment
 * variable CRNN_ISA asks for it ("avx512", "avx2", "base"; read once, at first use). */
crnn__isa_level crnn__isa(void);
/* Whether CRNN_ISA is set to none of the names crnn__isa knows ("avx512", "avx2", "base" or
 * "sse2"; an empty value counts as unset): the CPU's best is then kept. */
int crnn__isa_env_ignored(void);

/* Whether a batch of one's product sums each column the same way whatever the width of the row
 * tile it lies in (kernels.h, row_tile): tiles of at most 4 vectors (AVX-512, SSE2) sum even and
 * odd k apart. AVX2's whole-panel tiles of 8 vectors sum one chain a vector, but the part of such
 * a tile left at the edge of a units slice cut inside the panel, 4 vectors or fewer, sums even
 * and odd k apart (summed as the whole tile, one chain a vector, its few chains cost AVX2 GRU
 * (1,1000,32,64) 0.89x). Only where the tiles agree does a batch of one move its slice edges off
 * the panels' (crnn__row_edge), and keep one thread's bits. */
static inline int crnn__row_tiles_alike(void) { return crnn__isa() != CRNN__ISA_AVX2; }
const char *crnn__isa_name(void);

/* How the recurrent product runs where the kernel has panels: 1 crnn's panel kernel (default),
 * 0 the BLAS (environment variable CRNN_RECURRENT=blas, for comparisons; read once). */
int crnn__use_panels(void);

/* Data cache sizes in bytes of levels 1 and 2 (per core), read once, at first use: the
 * environment variable CRNN_L1_BYTES / CRNN_L2_BYTES where it holds a size in range (bytes, or
 * with a K or M suffix: 48K, 2M; L1 8 KiB-16 MiB, L2 64 KiB-1 GiB), else the OS's, else
 * conservative defaults (32 KiB, 512 KiB). They size the kernel's blocks and choose the plans,
 * and so the bits of a result: a fixed setting gives the same bits on every run. */
size_t crnn__l1_bytes(void);
size_t crnn__l2_bytes(void);

/* Where a level's size came from (level 1 or 2), and whether its environment variable is set
 * but unusable (not a size, or out of range: the OS's size or the default stands). */
typedef enum {
    CRNN__CACHE_FROM_OS = 0,      /* the OS */
    CRNN__CACHE_FROM_DEFAULT = 1, /* the default: neither the variable nor the OS says */
    CRNN__CACHE_FROM_ENV = 2      /* the environment variable */
} crnn__cache_from;
crnn__cache_from crnn__cache_source(int level);
int crnn__cache_env_ignored(int level);
/* The environment variable that sets a level's size ("CRNN_L1_BYTES", "CRNN_L2_BYTES"). */
const char *crnn__cache_env_name(int level);
/* The sizes a level takes, from its variable or the OS: [*lo, *hi] bytes. */
void crnn__cache_limits(int level, size_t *lo, size_t *hi);

#endif
