"""A pure-Python ZMTP 3.x server (NULL mechanism) over gevent sockets.

It exists so the kernel can run in literally one OS thread: libzmq always starts an I/O
thread and a reaper. `framing` is sans-IO; `peer` and `sockets` add gevent I/O.
Importing this package imports neither zmq nor gevent (the submodules do what they need).
"""
