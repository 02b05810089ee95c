/* blas_shim.c - the only file that names the BLAS library.
 *
 * Default: OpenBLAS from the scipy-openblas32 wheel, whose symbols all carry a `scipy_` prefix
 * that its cblas.h does not map (CRNN_BLAS_SCIPY_OPENBLAS, set by setup.py). Without that macro
 * the plain CBLAS names are used (a system OpenBLAS for the standalone csrc/ build). Compile with
 * -Werror=implicit-function-declaration so an unmapped name can never bind to another BLAS. */
#include <cblas.h>
#include <string.h>

#include "blas.h"
#include "cpu.h"

#ifdef CRNN_BLAS_SCIPY_OPENBLAS
#  define CRNN__CBLAS(name) scipy_cblas_##name
#  define CRNN__SET_THREADS scipy_openblas_set_num_threads
#  define CRNN__GET_THREADS scipy_openblas_get_num_threads
#else
#  define CRNN__CBLAS(name) cblas_##name
#  define CRNN__SET_THREADS openblas_set_num_threads
#  define CRNN__GET_THREADS openblas_get_num_threads
#endif

#ifdef CRNN_BLAS_SCIPY_OPENBLAS
#  define CRNN__CORENAME scipy_openblas_get_corename
#else
#  define CRNN__CORENAME openblas_get_corename
#endif

/* OpenBLAS runs a GEMM with M * N * K <= 1e6 through a direct "small matrix" kernel where the
 * core it picked has one (SkylakeX, and Cooperlake and SapphireRapids, which take SkylakeX's
 * kernels: its kernel/x86_64/KERNEL.SKYLAKEX; every other x86-64 core, Haswell and Zen among
 * them, has none), and a larger one through its packing engine, which copies all of B and
 * zeroes C (beta = 0) for every call. So crnn cuts a GEMM into tiles that each stay under that
 * bound, where the small kernel measures faster:
 * - Few rows (a recurrent step through the BLAS, a pipeline's chunk, a batch of one's projection
 *   of up to ~120 steps): column blocks, all rows. Measured (SkylakeX, one thread) 8 x 384 x 384
 *   at 50 GFLOP/s in one call, at 103 in blocks; a batch of one's input projection, 100 steps of
 *   128 inputs, 64-column blocks against one call in whole calls (2-vCPU Xeon, in one process):
 *   one call took 1.10-1.23x the time (float64 1.13-1.21x). Blocks narrower than 64 columns lose
 *   again, so those shapes keep the one call.
 * - More rows, float32, where the call's input rows take at most CRNN__TILE_INPUT_BYTES (M * K
 *   floats: a row split's projection of tens of rows, D up to a few hundred): tiles of 64-column
 *   blocks and the most rows, a multiple of 4 (the small kernel's rows at a time), that stay
 *   under the bound. Against one call, in whole calls (2-vCPU Xeon, 2 threads, in one process;
 *   the projection alone in brackets): LSTM (16,50,128,128) 0.96x (0.92x), GRU 0.95x (0.90x),
 *   SimpleRNN 0.88x (0.82x), LSTM (12,25,300,176) 0.94x (0.91x), GRU 0.96x (0.94x), LSTM
 *   (8,20,300,128) 0.91x (0.89x), GRU (48,35,64,320) 0.97x (0.83x). Past that size the packing
 *   pays for itself: (32,50,128,256) 1.01x LSTM, 0.98x GRU (input rows of 400 KiB), LSTM
 *   (16,50,256,128) 1.05x (the same), (16,20,512,128) 1.06x, (64,20,512,1024) 1.47x, GRU
 *   (256,100,256,512) 1.05x. Float64's tiles measured 1.04-1.07x the projection's time: none.
 * Without the small kernel, blocks only add calls that each pack their part of B (Haswell's
 * kernels, OPENBLAS_CORETYPE=Haswell: a batch of one's projection of 100 steps 0.91-0.94x the
 * time in one call, in whole calls; 1.05-1.6x at 4 to 32 rows alone): one call there.
 * Each tile is a GEMM of its own. The tiles depend on the shape and the core only, so every call
 * of a shape gives the same bits (tiles and one call differ in the last bits where the kernels
 * sum in another order: float32 at K = 512 with SkylakeX's, not at 128 to 300; with Haswell's at
 * 128). */
#define CRNN__SMALL_MNK 1.0e6
#define CRNN__MIN_BLOCK 64
#define CRNN__TILE_INPUT_BYTES (256 * 1024)

/* Whether OpenBLAS's kernels for this CPU (or OPENBLAS_CORETYPE) include the small-matrix
 * kernel, asked once (CRNN__LOAD). */
static int crnn__small_kernel(void)
{
    static int known = -1;
    int v = CRNN__LOAD(&known);
    if (v < 0) {
        const char *core = CRNN__CORENAME();
        v = core && (!strcmp(core, "SkylakeX") || !strcmp(core, "Cooperlake") ||
                     !strcmp(core, "SapphireRapids"));
        CRNN__STORE(&known, v);
    }
    return v;
}

/* The tiles of C(M, N) = A(M, K) @ B(K, N) with elements of `es` bytes: *rows x *cols. */
static void crnn__gemm_tiles(int M, int N, int K, size_t es, int *rows, int *cols)
{
    const double mk = (double)M * (double)K;
    int block;
    *rows = M;
    *cols = N;
    if (mk * (double)N <= CRNN__SMALL_MNK || !crnn__small_kernel()) return;
    if (es == sizeof(float) && mk * (double)es <= CRNN__TILE_INPUT_BYTES) {
        const int r = (int)(CRNN__SMALL_MNK / (CRNN__MIN_BLOCK * (double)K)) / 4 * 4;
        if (r >= 4 && r < M) *rows = r;
    }
    block = (int)(CRNN__SMALL_MNK / ((double)*rows * (double)K)) / 16 * 16;
    if (block >= CRNN__MIN_BLOCK) *cols = block;
}

void crnn__gemm_f32(int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                    int ldb, float beta, float *C, int ldc)
{
    int rows, cols, r, c;
    crnn__gemm_tiles(M, N, K, sizeof(float), &rows, &cols);
    for (r = 0; r < M; r += rows)
        for (c = 0; c < N; c += cols)
            CRNN__CBLAS(sgemm)(CblasRowMajor, CblasNoTrans, CblasNoTrans,
                               M - r < rows ? M - r : rows, N - c < cols ? N - c : cols, K, alpha,
                               A + (size_t)r * (size_t)lda, lda, B + c, ldb, beta,
                               C + (size_t)r * (size_t)ldc + c, ldc);
}

void crnn__gemm_f64(int M, int N, int K, double alpha, const double *A, int lda, const double *B,
                    int ldb, double beta, double *C, int ldc)
{
    int rows, cols, r, c;
    crnn__gemm_tiles(M, N, K, sizeof(double), &rows, &cols);
    for (r = 0; r < M; r += rows)
        for (c = 0; c < N; c += cols)
            CRNN__CBLAS(dgemm)(CblasRowMajor, CblasNoTrans, CblasNoTrans,
                               M - r < rows ? M - r : rows, N - c < cols ? N - c : cols, K, alpha,
                               A + (size_t)r * (size_t)lda, lda, B + c, ldb, beta,
                               C + (size_t)r * (size_t)ldc + c, ldc);
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
