# The live lists that drain and shutdown walk: a listener's connections
# (ActiveTcpConnection) and an HTTP connection manager config's managers.
# Intrusive and doubly linked through each node's live_prev/live_next: O(1)
# in and out, nothing hashed or allocated per connection. A list is held by
# its head, and these return the new head.

ctypedef fused _LiveNode:
    ActiveTcpConnection
    HttpConnectionManagerImpl


cdef inline _LiveNode live_list_push(_LiveNode head, _LiveNode n):
    """n in front of the list at `head`."""
    n.live_prev = None
    n.live_next = head
    if head is not None:
        head.live_prev = n
    return n


cdef inline _LiveNode live_list_remove(_LiveNode head, _LiveNode n):
    """n out of the list at `head` (nothing happens when it is not in it)."""
    if n.live_prev is None:
        if head is n:
            head = n.live_next
    else:
        n.live_prev.live_next = n.live_next
    if n.live_next is not None:
        n.live_next.live_prev = n.live_prev
    n.live_prev = n.live_next = None
    return head


cdef list live_list_items(_LiveNode head):
    """The nodes, as a list that stays valid while they leave the list."""
    cdef list out = []
    while head is not None:
        out.append(head)
        head = head.live_next
    return out
