from pathlib import Path

import numpy as np
import pytest

TITANIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "titanic.csv"


@pytest.fixture(scope="session")
def titanic():
    if not TITANIC.exists():
        pytest.skip(f"the Titanic data is not beside the checkout ({TITANIC.name} under ../shared/data)")
    from fastmlp.data import titanic as load
    return load(TITANIC)


@pytest.fixture
def small_data():
    rs = np.random.default_rng(0)
    X = rs.normal(size=(60, 5))
    return X, rs
