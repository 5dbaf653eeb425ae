/* Emptying a list that is filled again soon (a connection's callbacks, its
 * read filters, the loop's deferred objects): `del l[:]` builds a slice and
 * frees the item array, so the next append allocates it again. This keeps
 * the array. The size drops before each reference is let go, so code that
 * a decref runs sees a consistent list. */
#include <Python.h>

static inline void ef_list_clear(PyObject *l) {
    Py_ssize_t n = PyList_GET_SIZE(l);
    while (n > 0) {
        PyObject *o = PyList_GET_ITEM(l, --n);
        Py_SET_SIZE(l, n);
        Py_DECREF(o);
    }
}
