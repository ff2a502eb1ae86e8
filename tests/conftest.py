import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_SILENT", "true")

ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    env = os.environ.get("FINSAE_DATA_DIR")
    p = Path(env) if env else (ROOT / ".." / "shared" / "data").resolve()
    return p if (p / "financial_phrasebank").is_dir() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    p = shared_data_dir()
    if p is None:
        pytest.skip("real data not found: set FINSAE_DATA_DIR or place ../shared/data")
    return p


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT
