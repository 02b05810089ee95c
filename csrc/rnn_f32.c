/* rnn_f32.c - float32 instance of rnn_template.h. */
#include <string.h>

#include "blas.h"
#include "internal.h"
#include "vmath.h"

#define REAL float
#define FN(name) name##_f32
#define GEMM crnn__gemm_f32
#define GEMV_T crnn__gemv_t_f32
#define VTANH crnn__tanh_f32
#define VSIGMOID crnn__sigmoid_f32
#define VFMA __builtin_fmaf
#include "rnn_template.h"
