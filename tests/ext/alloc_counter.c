/* Counts every Python object allocation made while counting is on.
 *
 * Wraps the MEM and OBJ allocator domains (every PyObject_Malloc/PyMem_Malloc,
 * calloc and realloc: bytes, ints, str, bound methods, extension-type
 * instances ...) and the tp_dealloc of the types CPython serves from free
 * lists without calling the allocator (tuple, list, dict, float): a temporary
 * one of those is counted when it dies. Both domains are used with the GIL
 * held, so plain counters suffice.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyMemAllocatorEx orig_mem, orig_obj;
static int installed, counting;
static unsigned long long n_alloc, n_freelist;

#define N_FREELIST_TYPES 4
static PyTypeObject *freelist_types[N_FREELIST_TYPES];
static destructor orig_dealloc[N_FREELIST_TYPES];

static void *c_malloc(void *ctx, size_t size) {
    PyMemAllocatorEx *a = (PyMemAllocatorEx *)ctx;
    n_alloc += counting;
    return a->malloc(a->ctx, size);
}

static void *c_calloc(void *ctx, size_t nelem, size_t elsize) {
    PyMemAllocatorEx *a = (PyMemAllocatorEx *)ctx;
    n_alloc += counting;
    return a->calloc(a->ctx, nelem, elsize);
}

static void *c_realloc(void *ctx, void *ptr, size_t size) {
    PyMemAllocatorEx *a = (PyMemAllocatorEx *)ctx;
    n_alloc += counting;
    return a->realloc(a->ctx, ptr, size);
}

static void c_free(void *ctx, void *ptr) {
    PyMemAllocatorEx *a = (PyMemAllocatorEx *)ctx;
    a->free(a->ctx, ptr);
}

#define DEALLOC(i) \
    static void dealloc_##i(PyObject *op) { n_freelist += counting; orig_dealloc[i](op); }
DEALLOC(0)
DEALLOC(1)
DEALLOC(2)
DEALLOC(3)
static destructor wrappers[N_FREELIST_TYPES] = {dealloc_0, dealloc_1, dealloc_2, dealloc_3};

static PyObject *install(PyObject *self, PyObject *unused) {
    if (!installed) {
        PyMemAllocatorEx mem = {&orig_mem, c_malloc, c_calloc, c_realloc, c_free};
        PyMemAllocatorEx obj = {&orig_obj, c_malloc, c_calloc, c_realloc, c_free};
        PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &orig_mem);
        PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &orig_obj);
        PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &mem);
        PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &obj);
        freelist_types[0] = &PyTuple_Type;
        freelist_types[1] = &PyList_Type;
        freelist_types[2] = &PyDict_Type;
        freelist_types[3] = &PyFloat_Type;
        for (int i = 0; i < N_FREELIST_TYPES; i++) {
            orig_dealloc[i] = freelist_types[i]->tp_dealloc;
            freelist_types[i]->tp_dealloc = wrappers[i];
        }
        installed = 1;
    }
    Py_RETURN_NONE;
}

static PyObject *uninstall(PyObject *self, PyObject *unused) {
    if (installed) {
        counting = 0;
        /* Blocks keep working: the wrappers only forwarded to these. */
        PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &orig_mem);
        PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &orig_obj);
        for (int i = 0; i < N_FREELIST_TYPES; i++)
            freelist_types[i]->tp_dealloc = orig_dealloc[i];
        installed = 0;
    }
    Py_RETURN_NONE;
}

static PyObject *start(PyObject *self, PyObject *unused) {
    counting = 1;
    Py_RETURN_NONE;
}

static PyObject *stop(PyObject *self, PyObject *unused) {
    counting = 0;
    Py_RETURN_NONE;
}

static PyObject *counts(PyObject *self, PyObject *unused) {
    int was = counting;
    counting = 0;
    PyObject *r = Py_BuildValue("(KK)", n_alloc, n_freelist);
    counting = was;
    return r;
}

static PyMethodDef methods[] = {
    {"install", install, METH_NOARGS, "Wrap the allocators and the free-list types' dealloc."},
    {"uninstall", uninstall, METH_NOARGS, "Restore them."},
    {"start", start, METH_NOARGS, "Count from now on."},
    {"stop", stop, METH_NOARGS, "Stop counting."},
    {"counts", counts, METH_NOARGS, "(allocator calls, free-list objects freed) while counting."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "alloc_counter", NULL, -1, methods};

PyMODINIT_FUNC PyInit_alloc_counter(void) { return PyModule_Create(&module); }
