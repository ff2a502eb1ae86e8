import os
import tempfile
from pathlib import Path

import pytest
from ci_rules import skip_or_fail_without_data

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_SILENT", "true")
# fp32 model forwards on every CPU (finsae.precision): the suite's bit-identity checks hold on bf16 machines too
os.environ.setdefault("FINSAE_CPU_BF16", "0")
# Hydra run folders of every test (and of the train.py subprocesses they start) go to a temp dir, never to the
# checkout's outputs/ or multirun/.
os.environ["FINSAE_OUTPUTS"] = tempfile.mkdtemp(prefix="finsae-test-outputs-")
# the built-in corpora's disk cache (finsae.data.corpus) likewise: shared by this worker's train.py subprocesses
os.environ["FINSAE_CORPUS_CACHE"] = tempfile.mkdtemp(prefix="finsae-test-corpora-")

ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    env = os.environ.get("FINSAE_DATA_DIR")
    p = Path(env) if env else (ROOT / ".." / "shared" / "data").resolve()
    return p if (p / "financial_phrasebank").is_dir() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    p = shared_data_dir()
    if p is None:
        skip_or_fail_without_data("real data not found: set FINSAE_DATA_DIR or place ../shared/data")
    return p


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT
