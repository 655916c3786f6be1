"""`python -m geokernel.pool CONTROL_FD`: run a zygote (started by the provisioner)."""
import os
import sys

# as `python -m geokernel` (geokernel/__main__.py): the start folder is not on the kernel's path
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from geokernel.pool.zygote import main  # noqa: E402

main()
