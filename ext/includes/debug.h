/* EF_DEBUG is set by setup.py; release builds compile `if EF_DEBUG:` away. */
#ifndef EF_DEBUG
#define EF_DEBUG 0
#endif
