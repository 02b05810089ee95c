/*
 * crnn_capi.h - use the C core of an installed crnn Python package from another Python C
 * extension, without linking to crnn (the way NumPy's import_array() works).
 *
 * The crnn package's extension module, crnn._core, exports a table of function pointers to its
 * C core as the capsule `crnn._core._C_API`. This header (header-only; it includes Python.h and
 * crnn.h) declares that table and import_crnn(), which imports crnn, checks the table against
 * this header and stores it in a static pointer. Afterwards the functions of crnn.h are called by
 * their usual names: macros here map them to the table.
 *
 *     #define PY_SSIZE_T_CLEAN
 *     #include <Python.h>
 *     #include "crnn_capi.h"            // -I "$(python -c 'import crnn; print(crnn.get_include())')"
 *
 *     PyMODINIT_FUNC PyInit_mymod(void)
 *     {
 *         if (import_crnn() < 0) return NULL;   // Python exception set
 *         ...
 *     }
 *     ... crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, ...);   // == crnn_capi->rnn_create(...)
 *     ... crnn_rnn_forward(rnn, ...);                       // no GIL needed, see crnn.h
 *
 * Nothing else is needed to build: no crnn library, no BLAS. At run time the capsule's functions
 * live in crnn._core, which stays loaded for the life of the process once imported, so the
 * pointers and every handle they create stay valid; handles must be freed with
 * crnn_rnn_free() (crnn_capi->rnn_free) of the same table.
 *
 * Extensions of several C files: every file that calls crnn defines CRNN_CAPI_UNIQUE_SYMBOL to
 * one name (e.g. `#define CRNN_CAPI_UNIQUE_SYMBOL mymod_crnn_capi`) before including this header,
 * and every file except the one that calls import_crnn() also defines CRNN_CAPI_NO_IMPORT
 * (NumPy's PY_ARRAY_UNIQUE_SYMBOL / NO_IMPORT_ARRAY scheme). Define CRNN_CAPI_NO_MACROS to keep
 * the crnn_* names unmapped and call `crnn_capi->rnn_forward(...)` explicitly.
 *
 * Cython: `cdef extern from "crnn_capi.h": int import_crnn() except -1`, call import_crnn() at
 * module level, and the functions cimported from crnn.crnn (crnn/crnn.pxd) go through the table.
 *
 * Compatibility: the table only grows. New entries are appended and CRNN_CAPI_VERSION is
 * incremented; api_version and struct_size, the first two fields, never move. import_crnn()
 * accepts any installed crnn whose table is at least as new as this header and whose core has
 * the same CRNN_VERSION_MAJOR (crnn.h's ABI promise), so an extension built against an older
 * crnn keeps working with a newer one of the same major version.
 */
#ifndef CRNN_CAPI_H
#define CRNN_CAPI_H

#include <Python.h>

#include "crnn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Version of the table layout below; incremented whenever entries are appended. */
#define CRNN_CAPI_VERSION 2
/* Full name of the capsule: module crnn._core, attribute _C_API. */
#define CRNN_CAPI_CAPSULE_NAME "crnn._core._C_API"

typedef struct crnn_capi_table {
    /* Never moved: checked by import_crnn() before anything else is read. */
    unsigned api_version; /* the provider's CRNN_CAPI_VERSION */
    size_t struct_size;   /* sizeof(crnn_capi_table) in the provider */
    /* CRNN_CAPI_VERSION 1: every function of crnn.h, same signatures and contracts. */
    unsigned (*version)(void);
    const char *(*status_string)(int status);
    int (*rnn_create)(crnn_rnn_t **out, crnn_dtype dtype, int64_t input_size, int64_t num_layers,
                      const crnn_layer_desc *layers, const crnn_weights *weights);
    void (*rnn_free)(crnn_rnn_t *rnn);
    int (*rnn_workspace_size)(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps,
                              size_t *size);
    int (*rnn_forward)(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps, const void *x,
                       const int64_t *lengths, const void *const *h0, void *y,
                       void *const *h_n, void *workspace, size_t workspace_size);
    int (*rnn_info)(const crnn_rnn_t *rnn, crnn_dtype *dtype, int64_t *input_size,
                    int64_t *num_layers, crnn_layer_desc *layers_out, int64_t layers_capacity);
    int (*set_num_threads)(int n);
    int (*get_num_threads)(void);
    int (*set_blas_threads)(int n);
    int (*get_blas_threads)(void);
    /* CRNN_CAPI_VERSION 2 (crnn 0.2): the cell kinds and the dense layer. */
    int (*rnn_create2)(crnn_rnn_t **out, crnn_dtype dtype, int64_t input_size,
                       int64_t num_layers, const crnn_layer_desc2 *layers,
                       const crnn_weights2 *weights);
    int (*rnn_forward2)(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps, const void *x,
                        const int64_t *lengths, const void *const *h0, const void *const *c0,
                        void *y, void *const *h_n, void *const *c_n, void *workspace,
                        size_t workspace_size);
    int (*rnn_info2)(const crnn_rnn_t *rnn, crnn_dtype *dtype, int64_t *input_size,
                     int64_t *num_layers, crnn_layer_desc2 *layers_out, int64_t layers_capacity);
    int (*dense_forward)(crnn_dtype dtype, int64_t rows, int64_t input_size, int64_t units,
                         const void *x, const void *kernel, const void *bias,
                         crnn_activation activation, void *y);
} crnn_capi_table;

/* crnn._core itself defines CRNN_CAPI_PROVIDER: it only needs the struct. */
#ifndef CRNN_CAPI_PROVIDER

#ifdef CRNN_CAPI_UNIQUE_SYMBOL
#  define crnn_capi CRNN_CAPI_UNIQUE_SYMBOL
#endif

/* A file may include this header without calling everything in it: no unused warnings. */
#if defined(__GNUC__) || defined(__clang__)
#  define CRNN_CAPI_MAYBE_UNUSED __attribute__((unused))
#else
#  define CRNN_CAPI_MAYBE_UNUSED
#endif

#if defined(CRNN_CAPI_UNIQUE_SYMBOL) && defined(CRNN_CAPI_NO_IMPORT)
extern const crnn_capi_table *crnn_capi;
#else
#  ifdef CRNN_CAPI_UNIQUE_SYMBOL
const crnn_capi_table *crnn_capi = NULL;
#  else
static CRNN_CAPI_MAYBE_UNUSED const crnn_capi_table *crnn_capi = NULL;
#  endif

/*! import_crnn() :
 *  Import crnn (and so crnn._core, which loads its private BLAS), fetch the capsule
 *  `crnn._core._C_API` and check it: api_version >= CRNN_CAPI_VERSION, struct_size large enough
 *  for this header's table, and the core's major version equal to this header's
 *  CRNN_VERSION_MAJOR. On success sets `crnn_capi` and returns 0. Call it with the GIL held,
 *  typically from the module's PyInit function; calling it again is cheap.
 *  @return 0, or -1 with ImportError set (or whatever importing crnn raised). */
static CRNN_CAPI_MAYBE_UNUSED int import_crnn(void)
{
    const crnn_capi_table *table;
    unsigned core_version;
    if (crnn_capi != NULL) return 0;
    table = (const crnn_capi_table *)PyCapsule_Import(CRNN_CAPI_CAPSULE_NAME, 0);
    if (table == NULL) {
        /* crnn imported (else ImportError stands) but has no valid capsule: say so plainly. */
        if (!PyErr_ExceptionMatches(PyExc_ImportError)) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ImportError,
                            "crnn C-API: crnn._core has no valid capsule " CRNN_CAPI_CAPSULE_NAME
                            " (crnn too old or broken?); reinstall crnn");
        }
        return -1;
    }
    if (table->api_version < CRNN_CAPI_VERSION ||
        table->struct_size < sizeof(crnn_capi_table)) {
        PyErr_Format(PyExc_ImportError,
                     "crnn C-API: the installed crnn provides table version %u (%zu bytes), "
                     "this extension was built for version %d (%zu bytes); upgrade crnn",
                     table->api_version, table->struct_size, CRNN_CAPI_VERSION,
                     sizeof(crnn_capi_table));
        return -1;
    }
    core_version = table->version();
    if (core_version / 10000 != CRNN_VERSION_MAJOR) {
        PyErr_Format(PyExc_ImportError,
                     "crnn C-API: the installed crnn core is version %u.%u.%u, this extension "
                     "was built against crnn.h %d.%d.%d (major versions differ); rebuild it",
                     core_version / 10000, core_version / 100 % 100, core_version % 100,
                     CRNN_VERSION_MAJOR, CRNN_VERSION_MINOR, CRNN_VERSION_PATCH);
        return -1;
    }
    crnn_capi = table;
    return 0;
}
#endif /* defining crnn_capi and import_crnn() */

#ifndef CRNN_CAPI_NO_MACROS
/* The crnn.h names, through the table (valid after a successful import_crnn()). */
#  define crnn_version (*crnn_capi->version)
#  define crnn_status_string (*crnn_capi->status_string)
#  define crnn_rnn_create (*crnn_capi->rnn_create)
#  define crnn_rnn_free (*crnn_capi->rnn_free)
#  define crnn_rnn_workspace_size (*crnn_capi->rnn_workspace_size)
#  define crnn_rnn_forward (*crnn_capi->rnn_forward)
#  define crnn_rnn_info (*crnn_capi->rnn_info)
#  define crnn_set_num_threads (*crnn_capi->set_num_threads)
#  define crnn_get_num_threads (*crnn_capi->get_num_threads)
#  define crnn_set_blas_threads (*crnn_capi->set_blas_threads)
#  define crnn_get_blas_threads (*crnn_capi->get_blas_threads)
#  define crnn_rnn_create2 (*crnn_capi->rnn_create2)
#  define crnn_rnn_forward2 (*crnn_capi->rnn_forward2)
#  define crnn_rnn_info2 (*crnn_capi->rnn_info2)
#  define crnn_dense_forward (*crnn_capi->dense_forward)
#endif

#endif /* !CRNN_CAPI_PROVIDER */

#ifdef __cplusplus
}
#endif
#endif /* CRNN_CAPI_H */
