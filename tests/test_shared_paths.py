"""The real-data helpers skip where ../shared is absent, but fail under CI (CI=true), so a CI
run cannot pass by skipping every real-data test."""

import pytest
from tests.conftest import shared_path, shared_weights


@pytest.mark.parametrize("helper", [shared_path, shared_weights])
def test_missing_shared_files_skip_locally_and_fail_under_ci(helper, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not found at .*no-such-file"):
        helper("no-such-file")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        helper("no-such-file")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="not found at .*no-such-file.*CI=true"):
        helper("no-such-file")
