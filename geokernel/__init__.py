"""geokernel: a single-threaded Jupyter kernel for Python on gevent greenlets."""
__version__ = "0.1.0"
