import os
import sys

# `python -m geokernel` puts the current folder first on sys.path; the kernel's own imports must
# not find a user's file of the same name there (the interpreter puts '' back where IPython's
# kernel app does: see geokernel.ipython.profile.put_cwd_on_path)
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from geokernel.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
