"""Test-wide settings: private qfuse and Triton caches, deterministic fp fusion."""
import os
import tempfile

_TMP = tempfile.mkdtemp(prefix="qfuse-tests-")
os.environ.setdefault("QFUSE_CACHE_DIR", os.path.join(_TMP, "qfuse"))
os.environ.setdefault("TRITON_CACHE_DIR", os.path.join(_TMP, "triton"))
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "0")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seeded_torch():
    """Every test starts from torch's seed 0: a test's random data must not depend on
    which tests ran before it in the process (an unseeded draw made one agreement test
    pass alone and fail in a whole-suite run)."""
    import torch
    torch.manual_seed(0)
    yield
