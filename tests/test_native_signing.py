"""``signing: auto`` picks Prometheus' own sigv4 block when the binary can sign (Debian
13's 2.53) and the proxy when it cannot (Debian 12's 2.42); both verified by evidence."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.harness.fixtures_local import wait_for
from tests.harness.stack import Stack

NATIVE = Path(
    os.environ.get("AMPD_TEST_PROMETHEUS_NATIVE")
    or "/var/cache/ampd-test/prometheus-trixie/root/usr/bin/prometheus"
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/usr/bin/prometheus").exists(), reason="needs prometheus"),
]


def flowing(st: Stack) -> bool:
    c = st.ampd.condition("RemoteWriteFlowing")
    return c is not None and c["status"] == "True"


@pytest.mark.skipif(
    not NATIVE.exists(),
    reason=f"no Prometheus that can sign at {NATIVE} (scripts/fetch-prometheus-native "
    "fetches Debian 13's 2.53 from the Debian archive)",
)
def test_native_sigv4_with_a_prometheus_that_can_sign(tmp_path: Path) -> None:
    with Stack(tmp_path) as st:
        assert st.dataplane is not None
        st.static_keys["AKIDNATIVETEST0001"] = "native-secret"
        st.ampd.extra_env.update(
            AWS_ACCESS_KEY_ID="AKIDNATIVETEST0001", AWS_SECRET_ACCESS_KEY="native-secret"
        )
        state = st.state()
        state["prometheus"]["binary"] = str(NATIVE)
        del state["proxy"]
        st.ampd.write_state(state)
        st.ampd.start()
        wait_for("RemoteWriteFlowing=True", lambda: flowing(st), timeout=90)
        generated = (st.ampd.state_dir / "generated" / "prometheus.yml").read_text()
        assert "sigv4:" in generated
        assert 'region: "eu-west-1"' in generated
        assert st.ampd.resource("process", "sigv4-proxy") is None
        assert "AKIDNATIVETEST0001" in st.dataplane.accepted_key_ids
        assert st.dataplane.rejected["missing_auth"] == 0


def test_auto_picks_the_proxy_for_a_prometheus_that_cannot_sign(tmp_path: Path) -> None:
    with Stack(tmp_path) as st:
        st.ampd.write_state(st.state())  # /usr/bin/prometheus is Debian 12's 2.42
        st.ampd.start()
        wait_for("RemoteWriteFlowing=True", lambda: flowing(st), timeout=90)
        generated = (st.ampd.state_dir / "generated" / "prometheus.yml").read_text()
        assert "sigv4:" not in generated
        proxy = st.ampd.resource("process", "sigv4-proxy")
        assert proxy is not None and proxy["health"] == "Healthy"
