/* rnn_f64.c - float64 instance of rnn_template.h. */
#include <string.h>

#include "blas.h"
#include "internal.h"
#include "vmath.h"

#define REAL double
#define FN(name) name##_f64
#define GEMM crnn__gemm_f64
#define GEMV_T crnn__gemv_t_f64
#define VTANH crnn__tanh_f64
#define VSIGMOID crnn__sigmoid_f64
#define VFMA __builtin_fma
#include "rnn_template.h"
