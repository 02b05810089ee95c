/* blas_shim.c - the only file that names the BLAS library.
 *
 * Default: OpenBLAS from the scipy-openblas32 wheel, whose symbols all carry a `scipy_` prefix
 * that its cblas.h does not map (CRNN_BLAS_SCIPY_OPENBLAS, set by setup.py). Without that macro
 * the plain CBLAS names are used (a system OpenBLAS for the standalone csrc/ build). Compile with
 * -Werror=implicit-function-declaration so an unmapped name can never bind to another BLAS. */
#include <cblas.h>

#include "blas.h"

#ifdef CRNN_BLAS_SCIPY_OPENBLAS
#  define CRNN__CBLAS(name) scipy_cblas_##name
#  define CRNN__SET_THREADS scipy_openblas_set_num_threads
#  define CRNN__GET_THREADS scipy_openblas_get_num_threads
#else
#  define CRNN__CBLAS(name) cblas_##name
#  define CRNN__SET_THREADS openblas_set_num_threads
#  define CRNN__GET_THREADS openblas_get_num_threads
#endif

/* OpenBLAS runs a GEMM with M * N * K <= 1e6 through a direct "small matrix" kernel and a larger
 * one through its packing engine, which copies all of B for every call. A recurrent step is a
 * few rows times a large B (the recurrent kernel), so past that bound it spends more time packing
 * than multiplying: measured (SkylakeX, one thread) 8 x 384 x 384 at 50 GFLOP/s in one call, at
 * 103 in column blocks that each stay under the bound. Blocks narrower than 64 columns lose
 * again, so those shapes keep the one call. Column blocks are independent, so the result only
 * depends on the shape. */
#define CRNN__SMALL_MNK 1.0e6
#define CRNN__MIN_BLOCK 64

static int crnn__gemm_block(int M, int N, int K)
{
    double mnk = (double)M * (double)N * (double)K;
    int block;
    if (mnk <= CRNN__SMALL_MNK) return N;
    block = (int)(CRNN__SMALL_MNK / ((double)M * (double)K)) / 16 * 16;
    return block >= CRNN__MIN_BLOCK ? block : N;
}

void crnn__gemm_f32(int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                    int ldb, float beta, float *C, int ldc)
{
    const int block = crnn__gemm_block(M, N, K);
    int c;
    for (c = 0; c < N; c += block)
        CRNN__CBLAS(sgemm)(CblasRowMajor, CblasNoTrans, CblasNoTrans, M,
                           N - c < block ? N - c : block, K, alpha, A, lda, B + c, ldb, beta,
                           C + c, ldc);
}

void crnn__gemm_f64(int M, int N, int K, double alpha, const double *A, int lda, const double *B,
                    int ldb, double beta, double *C, int ldc)
{
    const int block = crnn__gemm_block(M, N, K);
    int c;
    for (c = 0; c < N; c += block)
        CRNN__CBLAS(dgemm)(CblasRowMajor, CblasNoTrans, CblasNoTrans, M,
                           N - c < block ? N - c : block, K, alpha, A, lda, B + c, ldb, beta,
                           C + c, ldc);
}

void crnn__gemv_t_f32(int M, int N, float alpha, const float *A, int lda, const float *x,
                      float beta, float *y)
{
    CRNN__CBLAS(sgemv)(CblasRowMajor, CblasTrans, M, N, alpha, A, lda, x, 1, beta, y, 1);
}

void crnn__gemv_t_f64(int M, int N, double alpha, const double *A, int lda, const double *x,
                      double beta, double *y)
{
    CRNN__CBLAS(dgemv)(CblasRowMajor, CblasTrans, M, N, alpha, A, lda, x, 1, beta, y, 1);
}

void crnn__blas_set_threads(int n) { CRNN__SET_THREADS(n); }

int crnn__blas_get_threads(void) { return CRNN__GET_THREADS(); }
