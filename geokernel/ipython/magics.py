"""The magics a kernel adds to IPython's, as ipykernel 7 has them (so `%lsmagic` lists the same
and notebooks that use them behave the same): `%edit` asks the frontend to open the file (an
`edit_magic` payload: a kernel cannot run a terminal editor), `%clear`, `%less`/`%more`/`%man`
through the pager payload, `%connect_info`, `%qtconsole`, `%autosave` (`%subshell` is in subshell_magic.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from IPython.core import page
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class


def _runtime_dir() -> str | None:
    try:
        from jupyter_core.paths import jupyter_runtime_dir
    except ImportError:
        return None
    return jupyter_runtime_dir()


@magics_class
class KernelMagics(Magics):
    @property
    def connection_file(self) -> str | None:
        """The kernel's connection file (cli.py records it on the kernel)."""
        return getattr(self.shell.kernel, "connection_file", None)

    @line_magic
    def edit(self, parameter_s="", last_call=None):
        """Open a file, an object's source or history lines in the frontend's editor.

        Usage: %edit [-n LINE] [-p] [-r] [args], as IPython's %edit; the frontend opens the
        file (nothing is run when it is closed: the kernel cannot know)."""
        from IPython.core.magics.code import CodeMagics, MacroToEdit

        last_call = last_call or ["", ""]
        opts, args = self.parse_options(parameter_s, "prn:")
        try:
            filename, lineno, _ = CodeMagics._find_edit_target(self.shell, args, opts, last_call)
        except MacroToEdit:
            print("Macro editing not yet implemented in 2-process model.")
            return
        self.shell.payload_manager.write_payload(
            {"source": "edit_magic", "filename": str(Path(filename).resolve()),
             "line_number": lineno})

    @line_magic
    def clear(self, arg_s):
        """Clear the terminal."""
        self.shell.system("clear")

    @line_magic
    def less(self, arg_s):
        """Show a file through the pager. Files ending in .py are syntax-highlighted."""
        if not arg_s:
            raise UsageError("Missing filename.")
        if arg_s.endswith(".py"):
            from IPython.utils import openpy

            text = self.shell.pycolorize(openpy.read_py_file(arg_s, skip_encoding_cookie=False))
        else:
            with open(arg_s) as f:
                text = f.read()
        page.page(text)

    more = line_magic("more")(less)

    @line_magic
    def man(self, arg_s):
        """Find the man page for the given command and display in pager."""
        page.page(self.shell.getoutput(f"man {arg_s} | col -b", split=False))

    @line_magic
    def connect_info(self, arg_s):
        """Print the kernel's connection information (its connection file) and how another
        client connects to it: `jupyter <app> --existing <file>`."""
        path = self.connection_file
        try:
            with open(path) as f:
                info = json.dumps(json.load(f), indent=2)
        except Exception as e:  # no file (a launcher passed none) or unreadable
            import warnings

            warnings.warn(f"Could not get connection info: {e!r}", stacklevel=2)
            return
        shown = Path(path).name if _runtime_dir() == str(Path(path).resolve().parent) else path
        print(info + "\n")
        print("Paste the above JSON into a file, and connect with:\n"
              "    $> jupyter <app> --existing <file>\n"
              "or, if you are local, you can connect with just:\n"
              f"    $> jupyter <app> --existing {shown}\n"
              "or even just:\n"
              "    $> jupyter <app> --existing\n"
              "if this is the most recent Jupyter kernel you have started.")

    @line_magic
    def qtconsole(self, arg_s):
        """Open a qtconsole connected to this kernel (when qtconsole is installed)."""
        from IPython.utils.process import arg_split

        if not self.connection_file:
            import warnings

            warnings.warn("Could not start qtconsole: no connection file", stacklevel=2)
            return
        # like any program the kernel starts for the user's desktop, its messages go nowhere
        # near the cell (ipykernel's go to the server's terminal)
        subprocess.Popen([sys.executable, "-c", "from qtconsole import qtconsoleapp; "
                          "qtconsoleapp.main()", "--existing", self.connection_file,
                          *arg_split(arg_s, os.name == "posix")],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)

    @line_magic
    def autosave(self, arg_s):
        """Set the autosave interval in the notebook (in seconds); 0 disables it. Only the
        classic notebook acts on it."""
        from IPython.display import Javascript, display

        try:
            interval = int(arg_s)
        except ValueError as e:
            raise UsageError(f"%autosave requires an integer, got {arg_s!r}") from e
        display(Javascript(f"IPython.notebook.set_autosave_interval({1000 * interval})"),
                include=["application/javascript"])
        print(f"Autosaving every {interval} seconds" if interval else "Autosave disabled")
