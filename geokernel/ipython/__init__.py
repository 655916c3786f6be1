"""IPython behind geokernel's interpreter interface.

Nothing is imported here: `ipython.info` must stay importable without IPython (the kernel
answers kernel_info before IPython is loaded); the interpreter lives in `ipython.interpreter`.
"""
