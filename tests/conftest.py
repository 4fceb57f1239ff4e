import pytest
import torch

# Small problems run faster on one thread, and tests never fight each other for cores.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    for item in items:                       # browser tests are slow too: the fast lane leaves them out
        if "ui" in item.keywords:
            item.add_marker(pytest.mark.slow)
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="CUDA is not available")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _aot_cache(tmp_path_factory):
    """compile = auto's packages go to a temporary folder, never the user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("EFFGAN_CACHE_DIR", str(tmp_path_factory.mktemp("aot")))
    yield
    mp.undo()
