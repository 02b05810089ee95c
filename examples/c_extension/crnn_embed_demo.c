/* crnn_embed_demo.c - a Python C extension that uses crnn's C core through the installed crnn
 * package (crnn_capi.h + import_crnn()), without linking to crnn or to a BLAS.
 *
 * Build:  python setup.py build_ext --inplace     (setup.py: include_dirs=[crnn.get_include()])
 *
 * It works on any buffer-protocol object (NumPy arrays): C-contiguous float32 ('f') or float64
 * ('d') data, int64 lengths. Entry points:
 *
 *   forward(x, layers, y=None, h_n=None, h0=None, lengths=None)
 *       SimpleRNN stacks through 0.1's API: one crnn_rnn_forward() call over the whole
 *       (B, T, D) sequence, GIL released;
 *   forward2(x, layers, y=None, h_n=None, c_n=None, h0=None, c0=None, lengths=None)
 *       stacks of any cells (LSTM, GRU, SimpleRNN, mixed) through crnn_rnn_create2() and one
 *       crnn_rnn_forward2() call, with the LSTM cell states c0 / c_n;
 *   stream(x, layers, y, h_n=None, h0=None)
 *   stream2(x, layers, y, h_n=None, c_n=None, h0=None, c0=None)
 *       a C loop that feeds one timestep at a time, carrying every layer's state from step to
 *       step (h_n, and an LSTM's c_n, of step t are h0 and c0 of step t + 1), the way a
 *       streaming audio or sensor pipeline would; no Python, no allocation per step (one
 *       workspace sized for T = 1, reused).
 *
 * `layers`, with the crnn.h enum values (activation 0..4 = tanh, relu, sigmoid, linear,
 * hard_sigmoid; direction 0..2 = forward, reverse, bidirectional; cell 0..2 = SimpleRNN, LSTM,
 * GRU) and one weight tuple per direction, Keras layouts and gate orders (G gates):
 *   forward / stream:   a list of (activation, direction,
 *                       [(kernel (D, H), recurrent_kernel (H, H), bias (H,) or None), ...]);
 *   forward2 / stream2: a list of (cell, activation, recurrent_activation, direction,
 *                       reset_after, [(kernel (D, G*H), recurrent_kernel (H, G*H),
 *                       bias (G*H,) or None, recurrent_bias (G*H,) or None), ...]).
 * y, h_n, c_n, h0 and c0 are caller-allocated outputs/inputs: y (B, T, units_last * dirs_last);
 * the others lists of (B, units) buffers, one per (layer, direction), any entry may be None
 * (c0 / c_n entries of layers without a cell state are ignored).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

#include "crnn_capi.h" /* crnn.h + the capsule import; crnn_* calls go through crnn_capi */

#define MAX_LAYERS 8
#define MAX_ENTRIES (2 * MAX_LAYERS)

/* Buffers held while the core reads or writes them; released together. */
typedef struct {
    Py_buffer views[8 * MAX_ENTRIES + 4];
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

/* A parsed stack. `v2`: `layers` was given in forward2's format, and layers2 / weights2 describe
 * it (crnn_rnn_create2); else layers / weights (crnn_rnn_create, SimpleRNN only). */
typedef struct {
    crnn_dtype dtype;
    const char *fmt;
    int v2;
    int64_t num_layers, num_entries, out_width;
    crnn_layer_desc layers[MAX_LAYERS];
    crnn_weights weights[MAX_ENTRIES];
    crnn_layer_desc2 layers2[MAX_LAYERS];
    crnn_weights2 weights2[MAX_ENTRIES];
    int64_t units[MAX_ENTRIES];
    int has_c[MAX_ENTRIES]; /* the entry's layer is an LSTM: it carries a cell state */
} stack_spec;

static int gates_of(crnn_cell cell)
{
    return cell == CRNN_CELL_LSTM ? 4 : cell == CRNN_CELL_GRU ? 3 : 1;
}

/* One direction's weight tuple: (kernel, recurrent_kernel, bias[, recurrent_bias]) of a layer of
 * G gates reading `in` features; sets *units on the first direction, checks it on the second. */
static int parse_weights(held_views *h, PyObject *tuple, const char *fmt, int64_t in, int G, int v2,
                         Py_ssize_t l, int64_t *units, const void **p)
{
    PyObject *obj[4] = {NULL, NULL, Py_None, Py_None};
    Py_ssize_t rshape[2], kexp[2], bexp[1];
    if (v2 ? !PyArg_ParseTuple(tuple, "OOOO;(kernel, recurrent_kernel, bias, recurrent_bias)",
                               &obj[0], &obj[1], &obj[2], &obj[3])
           : !PyArg_ParseTuple(tuple, "OOO;(kernel, recurrent_kernel, bias)", &obj[0], &obj[1],
                               &obj[2]))
        return -1;
    if (!(p[1] = get_buffer(h, obj[1], "recurrent_kernel", 0, 2, fmt, NULL, rshape))) return -1;
    if (rshape[1] != G * rshape[0] || (*units >= 0 && rshape[0] != *units)) {
        PyErr_Format(PyExc_ValueError, "layers[%zd]: recurrent_kernel of shape (%zd, %zd), "
                     "expected (units, %d * units), the same units in both directions", l,
                     rshape[0], rshape[1], G);
        return -1;
    }
    *units = rshape[0];
    kexp[0] = (Py_ssize_t)in;
    kexp[1] = bexp[0] = rshape[1];
    if (!(p[0] = get_buffer(h, obj[0], "kernel", 0, 2, fmt, kexp, NULL))) return -1;
    p[2] = p[3] = NULL;
    if (obj[2] != Py_None && !(p[2] = get_buffer(h, obj[2], "bias", 0, 1, fmt, bexp, NULL)))
        return -1;
    if (obj[3] != Py_None &&
        !(p[3] = get_buffer(h, obj[3], "recurrent_bias", 0, 1, fmt, bexp, NULL)))
        return -1;
    return 0;
}

/* Parse `layers` (0.1's format, or forward2's when s->v2) into descriptors and weight pointers
 * (views kept in `h`). */
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
        int cell = CRNN_CELL_SIMPLE, act, ract = 0, dir, reset_after = 0;
        int64_t units = -1;
        PyObject *wlist;
        Py_ssize_t ndir;
        if (s->v2 ? !PyArg_ParseTuple(PyList_GET_ITEM(layers, l), "iiiiiO!;layers[i]: (cell, "
                                      "activation, recurrent_activation, direction, reset_after, "
                                      "[weights per direction])", &cell, &act, &ract, &dir,
                                      &reset_after, &PyList_Type, &wlist)
                  : !PyArg_ParseTuple(PyList_GET_ITEM(layers, l), "iiO!;layers[i]: (activation, "
                                      "direction, [weights per direction])", &act, &dir,
                                      &PyList_Type, &wlist))
            return -1;
        ndir = dir == CRNN_DIRECTION_BIDIRECTIONAL ? 2 : 1;
        if (PyList_GET_SIZE(wlist) != ndir) {
            PyErr_Format(PyExc_ValueError, "layers[%zd]: got %zd weight tuples, expected %zd",
                         l, PyList_GET_SIZE(wlist), ndir);
            return -1;
        }
        /* crnn_rnn_create() / create2() check the enums; the shapes are ours to check. */
        for (d = 0; d < ndir; ++d, ++e) {
            const void *p[4];
            if (parse_weights(h, PyList_GET_ITEM(wlist, d), s->fmt, in,
                              gates_of((crnn_cell)cell), s->v2, l, &units, p) < 0)
                return -1;
            s->units[e] = units;
            s->has_c[e] = cell == CRNN_CELL_LSTM;
            s->weights[e].kernel = s->weights2[e].kernel = p[0];
            s->weights[e].recurrent_kernel = s->weights2[e].recurrent_kernel = p[1];
            s->weights[e].bias = s->weights2[e].bias = p[2];
            s->weights2[e].recurrent_bias = p[3];
        }
        s->layers[l].units = s->layers2[l].units = units;
        s->layers[l].activation = s->layers2[l].activation = (crnn_activation)act;
        s->layers[l].direction = s->layers2[l].direction = (crnn_direction)dir;
        s->layers2[l].cell = (crnn_cell)cell;
        s->layers2[l].recurrent_activation = (crnn_activation)ract;
        s->layers2[l].reset_after = reset_after;
        in = units * ndir;
    }
    s->num_entries = e;
    s->out_width = in;
    return 0;
}

/* The handle for a parsed stack, by the API its format belongs to. GIL not needed. */
static int create_stack(const stack_spec *s, int64_t input_size, crnn_rnn_t **rnn)
{
    if (s->v2)
        return crnn_rnn_create2(rnn, s->dtype, input_size, s->num_layers, s->layers2, s->weights2);
    return crnn_rnn_create(rnn, s->dtype, input_size, s->num_layers, s->layers, s->weights);
}

static PyObject *status_error(int status, const char *what)
{
    PyErr_Format(status == CRNN_ERR_OUT_OF_MEMORY ? PyExc_MemoryError : PyExc_ValueError,
                 "%s: %s (crnn status %d)", what, crnn_status_string(status), status);
    return NULL;
}

/* Parse the common arguments: x, layers, y and the state lists h_n, c_n, h0, c0 (and their
 * shapes); v2: `layers` in forward2's format. */
typedef struct {
    held_views h;
    stack_spec s;
    int64_t B, T, D;
    const void *x;
    void *y;
    void *hn[MAX_ENTRIES], *cn[MAX_ENTRIES];
    const void *h0[MAX_ENTRIES], *c0[MAX_ENTRIES];
    int any_hn, any_cn, any_h0, any_c0;
} call_args;

static int parse_call(call_args *a, int v2, PyObject *x, PyObject *layers, PyObject *y,
                      PyObject *hn, PyObject *cn, PyObject *h0, PyObject *c0)
{
    static const char *const names[4] = {"h_n", "c_n", "h0", "c0"};
    Py_ssize_t xs[3], ys[3], hs[2];
    Py_buffer probe;
    int e;
    memset(a, 0, sizeof(*a));
    a->s.v2 = v2;
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
    {
        /* outputs h_n, c_n (writable), inputs h0, c0 */
        PyObject *lists[4] = {hn, cn, h0, c0};
        void **outs[2] = {a->hn, a->cn};
        const void **ins[2] = {a->h0, a->c0};
        int *any[4] = {&a->any_hn, &a->any_cn, &a->any_h0, &a->any_c0};
        int which;
        for (which = 0; which < 4; ++which) {
            PyObject *list = lists[which];
            if (list == Py_None) continue;
            if (!PyList_Check(list) || PyList_GET_SIZE(list) != a->s.num_entries) {
                PyErr_Format(PyExc_ValueError, "%s: expected a list of %d arrays (one per layer "
                             "and direction)", names[which], (int)a->s.num_entries);
                return -1;
            }
            for (e = 0; e < a->s.num_entries; ++e) {
                PyObject *item = PyList_GET_ITEM(list, e);
                void *p;
                if (item == Py_None) continue;
                hs[0] = xs[0];
                hs[1] = (Py_ssize_t)a->s.units[e];
                p = get_buffer(&a->h, item, names[which], which < 2, 2, a->s.fmt, hs, NULL);
                if (!p) return -1;
                if (which < 2) outs[which][e] = p;
                else ins[which - 2][e] = p;
                *any[which] = 1;
            }
        }
    }
    return 0;
}

/* forward() and forward2(): one call over the whole sequence. */
static PyObject *run_forward(PyObject *args, PyObject *kwargs, int v2)
{
    static char *kwlist[] = {"x", "layers", "y", "h_n", "h0", "lengths", NULL};
    static char *kwlist2[] = {"x", "layers", "y", "h_n", "c_n", "h0", "c0", "lengths", NULL};
    PyObject *x, *layers, *y = Py_None, *hn = Py_None, *cn = Py_None, *h0 = Py_None,
                          *c0 = Py_None, *lengths = Py_None;
    call_args a;
    const int64_t *lp = NULL;
    crnn_rnn_t *rnn = NULL;
    int status;
    if (v2 ? !PyArg_ParseTupleAndKeywords(args, kwargs, "OO|OOOOOO", kwlist2, &x, &layers, &y,
                                          &hn, &cn, &h0, &c0, &lengths)
           : !PyArg_ParseTupleAndKeywords(args, kwargs, "OO|OOOO", kwlist, &x, &layers, &y, &hn,
                                          &h0, &lengths))
        return NULL;
    if (parse_call(&a, v2, x, layers, y, hn, cn, h0, c0) < 0) goto fail;
    if (lengths != Py_None) {
        Py_ssize_t ls[1];
        ls[0] = (Py_ssize_t)a.B;
        if (!(lp = get_buffer(&a.h, lengths, "lengths", 0, 1, "q", ls, NULL))) goto fail;
    }
    Py_BEGIN_ALLOW_THREADS
    status = create_stack(&a.s, a.D, &rnn);
    if (status == CRNN_OK && v2)
        status = crnn_rnn_forward2(rnn, a.B, a.T, a.x, lp, a.any_h0 ? a.h0 : NULL,
                                   a.any_c0 ? a.c0 : NULL, a.y, a.any_hn ? a.hn : NULL,
                                   a.any_cn ? a.cn : NULL, NULL, 0);
    else if (status == CRNN_OK)
        status = crnn_rnn_forward(rnn, a.B, a.T, a.x, lp, a.any_h0 ? a.h0 : NULL, a.y,
                                  a.any_hn ? a.hn : NULL, NULL, 0);
    crnn_rnn_free(rnn);
    Py_END_ALLOW_THREADS
    release_views(&a.h);
    if (status != CRNN_OK) return status_error(status, v2 ? "forward2" : "forward");
    Py_RETURN_NONE;
fail:
    release_views(&a.h);
    return NULL;
}

static PyObject *demo_forward(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)self;
    return run_forward(args, kwargs, 0);
}

static PyObject *demo_forward2(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)self;
    return run_forward(args, kwargs, 1);
}

/* The streaming loop: everything below runs without the GIL and allocates only before it. Each
 * entry's h (and an LSTM entry's c) lives in two buffers, `cur` the state before the step and
 * `next` the state after it, swapped after every step. */
static int stream_loop(const call_args *a, const crnn_rnn_t *rnn)
{
    const size_t es = a->s.dtype == CRNN_DTYPE_FLOAT32 ? sizeof(float) : sizeof(double);
    const int64_t B = a->B, T = a->T, D = a->D, W = a->s.out_width, ne = a->s.num_entries;
    size_t ws_size = 0, state_elems = 0;
    char *frame = NULL, *ystep = NULL, *states = NULL, *ws = NULL;
    void *cur[2][MAX_ENTRIES], *next[2][MAX_ENTRIES]; /* [0]: h, [1]: c (NULL: none) */
    int64_t t, b, e;
    int status, k;

    status = crnn_rnn_workspace_size(rnn, B, 1, &ws_size);
    if (status != CRNN_OK) return status;
    for (e = 0; e < ne; ++e) state_elems += (size_t)(B * a->s.units[e]) * (a->s.has_c[e] ? 2 : 1);
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
        for (e = 0; e < ne; ++e)
            for (k = 0; k < 2; ++k) {
                const size_t n = (size_t)(B * a->s.units[e]) * es;
                const void *init = k ? a->c0[e] : a->h0[e];
                cur[k][e] = next[k][e] = NULL;
                if (k == 1 && !a->s.has_c[e]) continue;
                cur[k][e] = p;
                next[k][e] = p + state_elems * es;
                if (init) memcpy(cur[k][e], init, n);
                else memset(cur[k][e], 0, n);
                p += n;
            }
    }
    for (t = 0; t < T; ++t) {
        for (b = 0; b < B; ++b)
            memcpy(frame + (size_t)(b * D) * es, (const char *)a->x + (size_t)((b * T + t) * D) * es,
                   (size_t)D * es);
        /* this step's initial states are the previous step's final ones; inputs and outputs
         * never overlap */
        status = a->s.v2 ? crnn_rnn_forward2(rnn, B, 1, frame, NULL, (const void *const *)cur[0],
                                             (const void *const *)cur[1], ystep, next[0], next[1],
                                             ws, ws_size)
                         : crnn_rnn_forward(rnn, B, 1, frame, NULL, (const void *const *)cur[0],
                                            ystep, next[0], ws, ws_size);
        if (status != CRNN_OK) goto done;
        if (a->y)
            for (b = 0; b < B; ++b)
                memcpy((char *)a->y + (size_t)((b * T + t) * W) * es, ystep + (size_t)(b * W) * es,
                       (size_t)W * es);
        for (k = 0; k < 2; ++k)
            for (e = 0; e < ne; ++e) {
                void *tmp = cur[k][e];
                cur[k][e] = next[k][e];
                next[k][e] = tmp;
            }
    }
    for (e = 0; e < ne; ++e) {
        const size_t n = (size_t)(B * a->s.units[e]) * es;
        if (a->hn[e]) memcpy(a->hn[e], cur[0][e], n);
        if (a->cn[e] && cur[1][e]) memcpy(a->cn[e], cur[1][e], n);
    }
done:
    free(frame);
    free(ystep);
    free(states);
    free(ws);
    return status;
}

/* stream() and stream2(). */
static PyObject *run_stream(PyObject *args, PyObject *kwargs, int v2)
{
    static char *kwlist[] = {"x", "layers", "y", "h_n", "h0", NULL};
    static char *kwlist2[] = {"x", "layers", "y", "h_n", "c_n", "h0", "c0", NULL};
    PyObject *x, *layers, *y = Py_None, *hn = Py_None, *cn = Py_None, *h0 = Py_None,
                          *c0 = Py_None;
    call_args a;
    crnn_rnn_t *rnn = NULL;
    int status, l;
    if (v2 ? !PyArg_ParseTupleAndKeywords(args, kwargs, "OO|OOOOO", kwlist2, &x, &layers, &y,
                                          &hn, &cn, &h0, &c0)
           : !PyArg_ParseTupleAndKeywords(args, kwargs, "OO|OOO", kwlist, &x, &layers, &y, &hn,
                                          &h0))
        return NULL;
    if (parse_call(&a, v2, x, layers, y, hn, cn, h0, c0) < 0) goto fail;
    for (l = 0; l < a.s.num_layers; ++l) {
        if (a.s.layers[l].direction != CRNN_DIRECTION_FORWARD) {
            PyErr_Format(PyExc_ValueError, "%s: every layer must run forward (direction 0)",
                         v2 ? "stream2" : "stream");
            goto fail;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    status = create_stack(&a.s, a.D, &rnn);
    if (status == CRNN_OK) status = stream_loop(&a, rnn);
    crnn_rnn_free(rnn);
    Py_END_ALLOW_THREADS
    release_views(&a.h);
    if (status != CRNN_OK) return status_error(status, v2 ? "stream2" : "stream");
    Py_RETURN_NONE;
fail:
    release_views(&a.h);
    return NULL;
}

static PyObject *demo_stream(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)self;
    return run_stream(args, kwargs, 0);
}

static PyObject *demo_stream2(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)self;
    return run_stream(args, kwargs, 1);
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
    {"forward2", (PyCFunction)(void (*)(void))demo_forward2, METH_VARARGS | METH_KEYWORDS,
     "forward2(x, layers, y=None, h_n=None, c_n=None, h0=None, c0=None, lengths=None): any "
     "cells, one crnn_rnn_forward2 call."},
    {"stream", (PyCFunction)(void (*)(void))demo_stream, METH_VARARGS | METH_KEYWORDS,
     "stream(x, layers, y, h_n=None, h0=None): one timestep per crnn_rnn_forward call, state "
     "carried in C."},
    {"stream2", (PyCFunction)(void (*)(void))demo_stream2, METH_VARARGS | METH_KEYWORDS,
     "stream2(x, layers, y, h_n=None, c_n=None, h0=None, c0=None): any cells, one timestep per "
     "crnn_rnn_forward2 call, h and c carried in C."},
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
