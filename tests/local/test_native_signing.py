"""``signing: auto`` with each supported Prometheus: its own sigv4 block when the binary can
sign (Debian 13's 2.53), the proxy when it cannot (Debian 12's 2.42); either way the
samples are accepted by the verifying data plane (RemoteWriteFlowing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.prombins import PromBin
from tests.harness.stack import Stack
from tests.harness.wait import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.prometheus]


def flowing(st: Stack) -> bool:
    c = st.ampd.condition("RemoteWriteFlowing")
    return c is not None and c["status"] == "True"


def test_auto_signs_natively_only_with_a_prometheus_that_can_sign(
    tmp_path: Path, prometheus_bin: PromBin
) -> None:
    with Stack(tmp_path) as st:
        assert st.dataplane is not None
        # a natively signing Prometheus signs with the keys of the environment ampd gives it
        st.static_keys["AKIDNATIVETEST0001"] = "native-secret"
        st.ampd.extra_env.update(
            AWS_ACCESS_KEY_ID="AKIDNATIVETEST0001", AWS_SECRET_ACCESS_KEY="native-secret"
        )
        state = st.state(signing="auto")
        state["prometheus"]["binary"] = str(prometheus_bin.binary)
        assert state["prometheus"]["remote_write"]["signing"] == "auto"
        st.ampd.write_state(state)
        st.ampd.start()
        wait_for(lambda: flowing(st), 90, what="RemoteWriteFlowing=True")
        generated = (st.ampd.state_dir / "generated" / "prometheus.yml").read_text()
        proxy = st.ampd.resource("process", "sigv4-proxy")
        if prometheus_bin.can_sign:
            assert "sigv4:" in generated
            assert 'region: "eu-west-1"' in generated
            assert proxy is None  # proxy.enabled is auto: nothing goes through it
            assert "AKIDNATIVETEST0001" in st.dataplane.accepted_key_ids
        else:
            assert "sigv4:" not in generated
            assert proxy is not None and proxy["health"] == "Healthy"
        assert st.dataplane.accepted > 0
        assert st.dataplane.rejected.get("missing_auth", 0) == 0
