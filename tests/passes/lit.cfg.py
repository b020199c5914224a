"""lit configuration of the golden IR tests: one folder per pass, one ``.mlir`` per case.

Each test's RUN lines call ``%qfuse-opt`` (``qfuse opt``: parse, run the named passes,
print) and pipe the output into ``FileCheck`` (the Python port on PyPI, ``filecheck``).
Both run under the Python that runs lit, so the venv needs nothing on PATH.
``test_lit.py`` beside this file runs the suite under pytest (and so ``make test``);
by hand::

    .venv/bin/lit -v tests/passes                     # all of them
    .venv/bin/lit -v tests/passes/qf-fuse/scale-of.mlir
"""
import os
import shlex
import sys
import tempfile

import lit.formats

config.name = "qfuse-passes"                                       # noqa: F821 (lit's global)
config.test_format = lit.formats.ShTest(execute_external=False)    # noqa: F821
config.suffixes = [".mlir"]                                        # noqa: F821
config.test_source_root = os.path.dirname(__file__)                # noqa: F821
# lit keeps its timing file and %t files in the exec root: not in the source tree
config.test_exec_root = os.path.join(tempfile.gettempdir(), "qfuse-lit")   # noqa: F821
python = shlex.quote(sys.executable)
config.substitutions.append(("%qfuse-opt", f"{python} -m qfuse.cli opt"))   # noqa: F821
config.substitutions.append(("FileCheck", f"{python} -m filecheck"))       # noqa: F821
config.environment["QFUSE_DEBUG"] = ""                                      # noqa: F821
