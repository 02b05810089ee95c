/* rnn_f64.c - float64 instance of rnn_template.h. */
#include <math.h>
#include <string.h>

#include "blas.h"
#include "internal.h"

#define REAL double
#define FN(name) name##_f64
#define GEMM crnn__gemm_f64
#define GEMV_T crnn__gemv_t_f64
#define TANH tanh
#define EXP exp
#include "rnn_template.h"
