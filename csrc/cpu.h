/* cpu.h - internal: what the machine crnn runs on offers, read once per process. */
#ifndef CRNN_CPU_H
#define CRNN_CPU_H

#include <stddef.h>

/* Instruction sets with kernels of their own (kernels.h), best last. */
typedef enum { CRNN__ISA_BASE = 0, CRNN__ISA_AVX2 = 1, CRNN__ISA_AVX512 = 2 } crnn__isa_level;

/* The kernels' instruction set: the best this CPU and OS support, or less if the environment
 * variable CRNN_ISA asks for it ("avx512", "avx2", "base"; read once, at first use). */
crnn__isa_level crnn__isa(void);
const char *crnn__isa_name(void);

/* How the recurrent product runs where the kernel has panels: 1 crnn's panel kernel (default),
 * 0 the BLAS (environment variable CRNN_RECURRENT=blas, for comparisons; read once). */
int crnn__use_panels(void);

/* Data cache sizes in bytes of levels 1 and 2 (per core), from the OS; conservative defaults
 * (32 KiB, 512 KiB) where it does not say. */
size_t crnn__l1_bytes(void);
size_t crnn__l2_bytes(void);

#endif
