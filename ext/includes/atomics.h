/* Cluster-wide circuit-breaker counts live in shared memory and are touched by
 * every worker process: relaxed atomics are enough, they only bound counts. */
#include <stdint.h>
static inline int64_t ef_atomic_add(int64_t *p, int64_t v) {
    return __atomic_add_fetch(p, v, __ATOMIC_RELAXED);
}
static inline int64_t ef_atomic_load(int64_t *p) {
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}
