/* kernels_isa.h - one instruction set's kernels: kernels.h and the cells' element-wise parts.
 * Included by rnn_template.h once per instruction set, with KFN(name), KVBYTES and KMR defined
 * (see kernels.h); undefines them. */

#include "kernels.h"
#define CRNN__CELL_POST 1
#include "cell_lstm.h"
#include "cell_gru.h"
#undef CRNN__CELL_POST
#undef KMULADD2
#undef KPAIR_BLOCKS
#undef KFN
#undef KVBYTES
#undef KMR
#undef KRV
#undef KRW
