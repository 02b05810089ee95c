/* blas.h - internal: the few BLAS operations the core uses, row-major, 32-bit BLAS integers.
 * Implemented only in blas_shim.c, the one file that names the BLAS library. Callers guarantee
 * every dimension and leading dimension fits in an int (see CRNN__BLAS_INT_MAX). */
#ifndef CRNN_BLAS_H
#define CRNN_BLAS_H

#include <limits.h>

#ifndef CRNN__BLAS_INT_MAX /* overridable so tests can reach the limits with small arrays */
#  define CRNN__BLAS_INT_MAX INT_MAX
#endif

/* C(M,N) = alpha * A(M,K) @ B(K,N) + beta * C, all row-major, no transposes. */
void crnn__gemm_f32(int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                    int ldb, float beta, float *C, int ldc);
void crnn__gemm_f64(int M, int N, int K, double alpha, const double *A, int lda, const double *B,
                    int ldb, double beta, double *C, int ldc);

/* y(N) = alpha * A(M,N)^T @ x(M) + beta * y, A row-major: y = x @ A for a row vector x. */
void crnn__gemv_t_f32(int M, int N, float alpha, const float *A, int lda, const float *x,
                      float beta, float *y);
void crnn__gemv_t_f64(int M, int N, double alpha, const double *A, int lda, const double *x,
                      double beta, double *y);

void crnn__blas_set_threads(int n);
int crnn__blas_get_threads(void);

#endif
