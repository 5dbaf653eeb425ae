# Keep-capacity list emptying (pylist.h).

cdef extern from "pylist.h":
    void ef_list_clear(list l)
