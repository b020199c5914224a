"""Test-wide settings: private qfuse and Triton caches, deterministic fp fusion."""
import os
import tempfile

_TMP = tempfile.mkdtemp(prefix="qfuse-tests-")
os.environ.setdefault("QFUSE_CACHE_DIR", os.path.join(_TMP, "qfuse"))
os.environ.setdefault("TRITON_CACHE_DIR", os.path.join(_TMP, "triton"))
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "0")
