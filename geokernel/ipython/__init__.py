"""IPython behind geokernel's interpreter interface."""
from .interpreter import IPythonInterpreter

__all__ = ["IPythonInterpreter"]
