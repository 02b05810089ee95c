/* rnn_f32.c - float32 instance of rnn_template.h. */
#include <math.h>
#include <string.h>

#include "blas.h"
#include "internal.h"

#define REAL float
#define FN(name) name##_f32
#define GEMM crnn__gemm_f32
#define GEMV_T crnn__gemv_t_f32
#define TANH tanhf
#define EXP expf
#include "rnn_template.h"
