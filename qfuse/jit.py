"""``import qfuse.jit`` installs the .qp import hook (see :mod:`qfuse.runtime.import_hook`)."""
from .runtime.import_hook import install_import_hook, uninstall_import_hook

install_import_hook()

__all__ = ["install_import_hook", "uninstall_import_hook"]
