/* crnn_embed_demo.c - a Python C extension that uses crnn's C core through the installed crnn
 * package (crnn_capi.h + import_crnn()), without linking to crnn or to a BLAS.
 *
 * Build:  python setup.py build_ext --inplace     (setup.py: include_dirs=[crnn.get_include()])
 *
 * It works on any buffer-protocol object (NumPy arrays): C-contiguous float32 ('f') or float64
 * ('d') data, int64 lengths. Two entry points:
 *
 *   forward(x, layers, y=None, h_n=None, h0=None, lengths=None)
 *       one crnn_rnn_forward() call over the whole (B, T, D) sequence, GIL released;
 *   stream(x, layers, y, h_n=None, h0=None)
 *       a C loop that feeds one timestep at a time, carrying every layer's state from step to
 *       step (h_n of step t is h0 of step t + 1), the way a streaming audio or sensor pipeline
 *       would; no Python, no allocation per step (one workspace sized for T = 1, reused).
 *
 * `layers` is a list of (activation, direction, [(kernel, recurrent_kernel, bias_or_None), ...])
 * with the crnn.h enum values (activation 0..3 = tanh, relu, sigmoid, linear; direction 0..2 =
 * forward, reverse, bidirectional) and one weight triple per direction, Keras layouts. y, h_n
 * and h0 are caller-allocated outputs/inputs: y (B, T, units_last * dirs_last); h_n and h0 lists
 * of (B, units) buffers, one per (layer, direction), h0 entries may be None.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

#include "crnn_capi.h" /* crnn.h + the capsule import; crnn_* calls go through crnn_capi */

#define MAX_LAYERS 8
#define MAX_ENTRIES (2 * MAX_LAYERS)

/* Buffers held while the core reads or writes them; released together. */
typedef struct {
    Py_buffer views[4 * MAX_ENTRIES + 4];
    int n;
} held_views;

static void release_views(held_views *h)
{
    while (h->n > 0) PyBuffer_Release(&h->views[--h->n]);
}

/* Get a C-contiguous buffer of `ndim` dims and format `fmt` ("f", "d" or "q"); shape entries
 * >= 0 in `expect` must match. Returns its data pointer, or NULL with an exception set. */
static void *get_buffer(held_views *h, PyObject *obj, const char *name, int writable, int ndim,
                        const char *fmt, const Py_ssize_t *expect, Py_ssize_t *shape_out)
{
    Py_buffer *v = &h->views[h->n];
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0), i;
    if (h->n >= (int)(sizeof(h->views) / sizeof(h->views[0]))) {
        PyErr_SetString(PyExc_ValueError, "too many buffers");
        return NULL;
    }
    if (PyObject_GetBuffer(obj, v, flags) < 0) {
        PyErr_Format(PyExc_TypeError, "%s: expected a C-contiguous%s buffer", name,
                     writable ? " writable" : "");
        return NULL;
    }
    h->n++;
    if (v->ndim != ndim) {
        PyErr_Format(PyExc_ValueError, "%s: got %d dimensions, expected %d", name, v->ndim, ndim);
        return NULL;
    }
    {
        /* NumPy exports native types as "f", "d", "q" or "l" (int64 on LP64) */
        const char *f = v->format ? v->format : "B";
        if (f[0] == '=' || f[0] == '<' || f[0] == '@') ++f;
        if (strcmp(fmt, "q") == 0 ? !((f[0] == 'q' || f[0] == 'l') && f[1] == 0 && v->itemsize == 8)
                                  : strcmp(f, fmt) != 0) {
            PyErr_Format(PyExc_TypeError, "%s: got format '%s', expected '%s'", name,
                         v->format ? v->format : "B", fmt);
            return NULL;
        }
    }
    for (i = 0; i < ndim; ++i) {
        if (expect && expect[i] >= 0 && v->shape[i] != expect[i]) {
            PyErr_Format(PyExc_ValueError, "%s: got size %zd in dimension %d, expected %zd", name,
                         v->shape[i], i, expect[i]);
            return NULL;
        }
        if (shape_out) shape_out[i] = v->shape[i];
    }
    return v->buf;
}

typedef struct {
    crnn_dtype dtype;
    const char *fmt;
    int64_t num_layers, num_entries, out_width;
    crnn_layer_desc layers[MAX_LAYERS];
    crnn_weights weights[MAX_ENTRIES];
    int64_t units[MAX_ENTRIES];
} stack_spec;

/* Parse `layers` into descriptors and weight pointers (views kept in `h`). */
static int parse_stack(PyObject *layers, int64_t input_size, held_views *h, stack_spec *s)
{
    Py_ssize_t nl, l, d;
    int64_t in = input_size;
    int e = 0;
    if (!PyList_Check(layers) || (nl = PyList_GET_SIZE(layers)) < 1 || nl > MAX_LAYERS) {
        PyErr_Format(PyExc_ValueError, "layers: expected a list of 1..%d layers", MAX_LAYERS);
        return -1;
    }
    s->num_layers = nl;
    for (l = 0; l < nl; ++l) {
        int act, dir;
        PyObject *wlist;
        Py_ssize_t ndir;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(layers, l), "iiO!;layers[i]: (activation, "
                              "direction, [weights per direction])", &act, &dir, &PyList_Type,
                              &wlist))
            return -1;
        ndir = dir == CRNN_DIRECTION_BIDIRECTIONAL ? 2 : 1;
        if (PyList_GET_SIZE(wlist) != ndir) {
            PyErr_Format(PyExc_ValueError, "layers[%zd]: got %zd weight triples, expected %zd",
                         l, PyList_GET_SIZE(wlist), ndir);
            return -1;
        }
        /* crnn_rnn_create() checks the enums; the shapes are ours to check. */
        s->layers[l].activation = (crnn_activation)act;
        s->layers[l].direction = (crnn_direction)dir;
        for (d = 0; d < ndir; ++d, ++e) {
            PyObject *k, *r, *b;
            Py_ssize_t rshape[2], kexp[2], bexp[1];
            if (!PyArg_ParseTuple(PyList_GET_ITEM(wlist, d), "OOO;(kernel, recurrent, bias)",
                                  &k, &r, &b))
                return -1;
            if (!(s->weights[e].recurrent_kernel = get_buffer(h, r, "recurrent_kernel", 0, 2,
                                                              s->fmt, NULL, rshape)))
                return -1;
            if (rshape[0] != rshape[1] || (d == 1 && rshape[0] != s->units[e - 1])) {
                PyErr_Format(PyExc_ValueError, "layers[%zd]: bad recurrent_kernel shape", l);
                return -1;
            }
            s->units[e] = rshape[0];
            kexp[0] = (Py_ssize_t)in;
            kexp[1] = rshape[0];
            bexp[0] = rshape[0];
            if (!(s->weights[e].kernel = get_buffer(h, k, "kernel", 0, 2, s->fmt, kexp, NULL)))
                return -1;
            s->weights[e].bias = NULL;
            if (b != Py_None && !(s->weights[e].bias = get_buffer(h, b, "bias", 0, 1, s->fmt,
                                                                  bexp, NULL)))
                return -1;
        }
        s->layers[l].units = s->units[e - 1];
        in = s->units[e - 1] * ndir;
    }
    s->num_entries = e;
    s->out_width = in;
    return 0;
}

static PyObject *status_error(int status, const char *what)
{
    PyErr_Format(status == CRNN_ERR_OUT_OF_MEMORY ? PyExc_MemoryError : PyExc_ValueError,
                 "%s: %s (crnn status %d)", what, crnn_status_string(status), status);
    return NULL;
}

/* Parse the common arguments: x, layers, y, h_n, h0 (and their shapes). */
typedef struct {
    held_views h;
    stack_spec s;
    int64_t B, T, D;
    const void *x;
    void *y;
    void *hn[MAX_ENTRIES];
    const void *h0[MAX_ENTRIES];
    int any_hn, any_h0;
} call_args;

static int parse_call(call_args *a, PyObject *x, PyObject *layers, PyObject *y, PyObject *hn,
                      PyObject *h0)
{
    Py_ssize_t xs[3], ys[3], hs[2];
    Py_buffer probe;
    int e;
    memset(a, 0, sizeof(*a));
    /* dtype from x's format */
    if (PyObject_GetBuffer(x, &probe, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) return -1;
    a->s.fmt = probe.format && strchr(probe.format, 'd') ? "d" : "f";
    PyBuffer_Release(&probe);
    a->s.dtype = a->s.fmt[0] == 'd' ? CRNN_DTYPE_FLOAT64 : CRNN_DTYPE_FLOAT32;
    if (!(a->x = get_buffer(&a->h, x, "x", 0, 3, a->s.fmt, NULL, xs))) return -1;
    a->B = xs[0];
    a->T = xs[1];
    a->D = xs[2];
    if (parse_stack(layers, a->D, &a->h, &a->s) < 0) return -1;
    if (y != Py_None) {
        ys[0] = xs[0];
        ys[1] = xs[1];
        ys[2] = (Py_ssize_t)a->s.out_width;
        if (!(a->y = get_buffer(&a->h, y, "y", 1, 3, a->s.fmt, ys, NULL))) return -1;
    }
    if (hn != Py_None || h0 != Py_None) {
        PyObject *lists[2] = {hn, h0};
        int which;
        for (which = 0; which < 2; ++which) {
            PyObject *list = lists[which];
            if (list == Py_None) continue;
            if (!PyList_Check(list) || PyList_GET_SIZE(list) != a->s.num_entries) {
                PyErr_Format(PyExc_ValueError, "%s: expected a list of %d arrays (one per layer "
                             "and direction)", which ? "h0" : "h_n", (int)a->s.num_entries);
                return -1;
            }
            for (e = 0; e < a->s.num_entries; ++e) {
                PyObject *item = PyList_GET_ITEM(list, e);
                void *p;
                if (item == Py_None) continue;
                hs[0] = xs[0];
                hs[1] = (Py_ssize_t)a->s.units[e];
                p = get_buffer(&a->h, item, which ? "h0[e]" : "h_n[e]", !which, 2, a->s.fmt, hs,
                               NULL);
                if (!p) return -1;
                if (which) {
                    a->h0[e] = p;
                    a->any_h0 = 1;
                } else {
                    a->hn[e] = p;
                    a->any_hn = 1;
                }
            }
        }
    }
    return 0;
}

static PyObject *demo_forward(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"x", "layers", "y", "h_n", "h0", "lengths", NULL};
    PyObject *x, *layers, *y = Py_None, *hn = Py_None, *h0 = Py_None, *lengths = Py_None;
    call_args a;
    const int64_t *lp = NULL;
    crnn_rnn_t *rnn = NULL;
    int status;
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|OOOO", kwlist, &x, &layers, &y, &hn, &h0,
                                     &lengths))
        return NULL;
    if (parse_call(&a, x, layers, y, hn, h0) < 0) goto fail;
    if (lengths != Py_None) {
        Py_ssize_t ls[1];
        ls[0] = (Py_ssize_t)a.B;
        if (!(lp = get_buffer(&a.h, lengths, "lengths", 0, 1, "q", ls, NULL))) goto fail;
    }
    Py_BEGIN_ALLOW_THREADS
    status = crnn_rnn_create(&rnn, a.s.dtype, a.D, a.s.num_layers, a.s.layers, a.s.weights);
    if (status == CRNN_OK)
        status = crnn_rnn_forward(rnn, a.B, a.T, a.x, lp, a.any_h0 ? a.h0 : NULL, a.y,
                                  a.any_hn ? a.hn : NULL, NULL, 0);
    crnn_rnn_free(rnn);
    Py_END_ALLOW_THREADS
    release_views(&a.h);
    if (status != CRNN_OK) return status_error(status, "forward");
    Py_RETURN_NONE;
fail:
    release_views(&a.h);
    return NULL;
}

/* The streaming loop: everything below runs without the GIL and allocates only before it. */
static int stream_loop(const call_args *a, const crnn_rnn_t *rnn)
{
    const size_t es = a->s.dtype == CRNN_DTYPE_FLOAT32 ? sizeof(float) : sizeof(double);
    const int64_t B = a->B, T = a->T, D = a->D, W = a->s.out_width, ne = a->s.num_entries;
    size_t ws_size = 0, state_elems = 0;
    char *frame = NULL, *ystep = NULL, *states = NULL, *ws = NULL;
    void *cur[MAX_ENTRIES], *next[MAX_ENTRIES];
    int64_t t, b, e;
    int status;

    status = crnn_rnn_workspace_size(rnn, B, 1, &ws_size);
    if (status != CRNN_OK) return status;
    for (e = 0; e < ne; ++e) state_elems += (size_t)(B * a->s.units[e]);
    frame = (char *)malloc((size_t)(B * D) * es);       /* x[:, t, :] gathered */
    ystep = (char *)malloc((size_t)(B * W) * es);       /* the step's output (B, 1, W) */
    states = (char *)malloc(2 * state_elems * es + 1);  /* ping-pong carried states */
    ws = (char *)malloc(ws_size ? ws_size : 1);
    if (!frame || !ystep || !states || !ws) {
        status = CRNN_ERR_OUT_OF_MEMORY;
        goto done;
    }
    {
        char *p = states;
        for (e = 0; e < ne; ++e) {
            const size_t n = (size_t)(B * a->s.units[e]) * es;
            cur[e] = p;
            next[e] = p + state_elems * es;
            if (a->h0[e]) memcpy(cur[e], a->h0[e], n);
            else memset(cur[e], 0, n);
            p += n;
        }
    }
    for (t = 0; t < T; ++t) {
        for (b = 0; b < B; ++b)
            memcpy(frame + (size_t)(b * D) * es, (const char *)a->x + (size_t)((b * T + t) * D) * es,
                   (size_t)D * es);
        /* h0 of this step = h_n of the previous one; inputs and outputs never overlap */
        status = crnn_rnn_forward(rnn, B, 1, frame, NULL, (const void *const *)cur, ystep, next,
                                  ws, ws_size);
        if (status != CRNN_OK) goto done;
        if (a->y)
            for (b = 0; b < B; ++b)
                memcpy((char *)a->y + (size_t)((b * T + t) * W) * es, ystep + (size_t)(b * W) * es,
                       (size_t)W * es);
        for (e = 0; e < ne; ++e) {
            void *tmp = cur[e];
            cur[e] = next[e];
            next[e] = tmp;
        }
    }
    for (e = 0; e < ne; ++e)
        if (a->hn[e]) memcpy(a->hn[e], cur[e], (size_t)(B * a->s.units[e]) * es);
done:
    free(frame);
    free(ystep);
    free(states);
    free(ws);
    return status;
}

static PyObject *demo_stream(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"x", "layers", "y", "h_n", "h0", NULL};
    PyObject *x, *layers, *y = Py_None, *hn = Py_None, *h0 = Py_None;
    call_args a;
    crnn_rnn_t *rnn = NULL;
    int status, l;
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|OOO", kwlist, &x, &layers, &y, &hn, &h0))
        return NULL;
    if (parse_call(&a, x, layers, y, hn, h0) < 0) goto fail;
    for (l = 0; l < a.s.num_layers; ++l) {
        if (a.s.layers[l].direction != CRNN_DIRECTION_FORWARD) {
            PyErr_SetString(PyExc_ValueError, "stream: every layer must run forward (direction 0)");
            goto fail;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    status = crnn_rnn_create(&rnn, a.s.dtype, a.D, a.s.num_layers, a.s.layers, a.s.weights);
    if (status == CRNN_OK) status = stream_loop(&a, rnn);
    crnn_rnn_free(rnn);
    Py_END_ALLOW_THREADS
    release_views(&a.h);
    if (status != CRNN_OK) return status_error(status, "stream");
    Py_RETURN_NONE;
fail:
    release_views(&a.h);
    return NULL;
}

static PyObject *demo_core_version(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyLong_FromUnsignedLong(crnn_version());
}

static PyObject *demo_status_string(PyObject *self, PyObject *arg)
{
    long code = PyLong_AsLong(arg);
    (void)self;
    if (code == -1 && PyErr_Occurred()) return NULL;
    return PyUnicode_FromString(crnn_status_string((int)code));
}

static PyMethodDef demo_methods[] = {
    {"forward", (PyCFunction)(void (*)(void))demo_forward, METH_VARARGS | METH_KEYWORDS,
     "forward(x, layers, y=None, h_n=None, h0=None, lengths=None): one crnn_rnn_forward call."},
    {"stream", (PyCFunction)(void (*)(void))demo_stream, METH_VARARGS | METH_KEYWORDS,
     "stream(x, layers, y, h_n=None, h0=None): one timestep per crnn_rnn_forward call, state "
     "carried in C."},
    {"core_version", demo_core_version, METH_NOARGS, "crnn_version() of the installed core."},
    {"status_string", demo_status_string, METH_O, "crnn_status_string(code)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef demo_module = {PyModuleDef_HEAD_INIT, "crnn_embed_demo",
                                         "crnn's C core from another C extension.", -1,
                                         demo_methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit_crnn_embed_demo(void)
{
    PyObject *m;
    if (import_crnn() < 0) return NULL; /* imports crnn, fetches and checks the capsule */
    m = PyModule_Create(&demo_module);
    if (m && PyModule_AddIntConstant(m, "CAPI_VERSION", (long)crnn_capi->api_version) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
