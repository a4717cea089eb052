"""Every stamp of these tests, in process or not, checks its journal tracking at each save."""

import pytest

from stampsim.state import Store


@pytest.fixture(autouse=True)
def _check_journal_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    # A change the Tables did not note would be lost from the journal: fail loudly (a
    # stamp process answers 500). The environment carries it to ``StampProcess``es.
    monkeypatch.setattr(Store, "CHECK_TRACKING", True)
    monkeypatch.setenv("STAMPSIM_CHECK_JOURNAL", "1")
