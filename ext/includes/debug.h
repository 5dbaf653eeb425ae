/* EF_DEBUG is set by setup.py; release builds compile `if EF_DEBUG:` away. */
#ifndef EF_DEBUG
#define EF_DEBUG 0
#endif

/* Live-object counting for EF_DEBUG builds (uvloop's loop.pyx DEBUG
 * counters, done without touching the counted classes).
 *
 * ef_debug_track(type) wraps that type's tp_alloc and tp_dealloc slots: an
 * instance is counted when it is allocated and uncounted when it is really
 * freed, so an object kept alive by a forgotten reference or a reference
 * cycle shows up. Only called when EF_DEBUG is on: release builds keep the
 * slots Cython wrote, at no cost.
 *
 * Cython's `X.__new__(X)` calls X's tp_new function directly, but that
 * function allocates through `t->tp_alloc`, and Python frees through
 * `Py_TYPE(o)->tp_dealloc`: both go through the slots of the object's own
 * type. So track leaf types; a subclass's instances are counted under the
 * subclass only if it is tracked itself. */
#include <Python.h>

#define EF_DEBUG_MAX_TYPES 32

typedef struct {
    PyTypeObject *type;
    allocfunc alloc;
    destructor dealloc;
    Py_ssize_t live;
} ef_tracked_type;

static ef_tracked_type ef_tracked[EF_DEBUG_MAX_TYPES];
static int ef_tracked_len = 0;

static ef_tracked_type *ef_tracked_find(PyTypeObject *t) {
    int i;
    for (i = 0; i < ef_tracked_len; i++)
        if (ef_tracked[i].type == t)
            return &ef_tracked[i];
    return NULL;
}

static PyObject *ef_tracked_alloc(PyTypeObject *t, Py_ssize_t n) {
    ef_tracked_type *e = ef_tracked_find(t);
    PyObject *o;
    if (e == NULL)      /* a Python subclass inherited the slot: not counted */
        return PyType_GenericAlloc(t, n);
    o = e->alloc(t, n);
    if (o != NULL)
        e->live++;
    return o;
}

static void ef_tracked_dealloc(PyObject *o) {
    PyTypeObject *t = Py_TYPE(o);
    ef_tracked_type *e = ef_tracked_find(t);
    if (e != NULL) {
        e->live--;
        e->dealloc(o);
        return;
    }
    /* A subclass freeing through its tracked base's slot: not counted. */
    for (t = t->tp_base; t != NULL; t = t->tp_base) {
        e = ef_tracked_find(t);
        if (e != NULL) {
            e->dealloc(o);
            return;
        }
    }
    Py_FatalError("ef_tracked_dealloc: untracked type");
}

/* Start counting instances of `t`; 0 on success, -1 when the table is full. */
static int ef_debug_track(PyTypeObject *t) {
    ef_tracked_type *e;
    if (ef_tracked_find(t) != NULL)
        return 0;
    if (ef_tracked_len == EF_DEBUG_MAX_TYPES)
        return -1;
    e = &ef_tracked[ef_tracked_len++];
    e->type = t;
    e->alloc = t->tp_alloc;
    e->dealloc = t->tp_dealloc;
    e->live = 0;
    t->tp_alloc = ef_tracked_alloc;
    t->tp_dealloc = ef_tracked_dealloc;
    return 0;
}

static Py_ssize_t ef_debug_live(PyTypeObject *t) {
    ef_tracked_type *e = ef_tracked_find(t);
    return e != NULL ? e->live : -1;
}
