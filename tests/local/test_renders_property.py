"""Valid means renders: every state that ``ampd validate`` accepts renders to a
prometheus.yml that ``promtool check config`` (``--agent`` in agent mode) accepts, with each
supported Prometheus found (tests/harness/prombins.py), and to Grafana files that the
Grafana stand-in loads (its provisioning interpolation and data source checks).

The states are drawn around what gets rendered: label values, data source names, dashboard
paths and target hosts with emoji, YAML 1.1 line breaks, control characters, quotes and
``$``-expressions; job names that include the built-in ones. Seeded (derandomized unless
AMPD_FUZZ_SEED is set) and 150 examples (AMPD_RENDER_EXAMPLES), ~20 s.

The edge cases found this way have their own tests below.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampd.cli import main
from ampd.engine.facts import Facts
from ampd.errors import SpecError
from ampd.gateways.files import FileWriter
from ampd.gateways.grafana import ensure_admin_password
from ampd.local.render.context import RenderContext, WorkspaceFacts
from ampd.local.render.effective import effective_spec, render_context
from ampd.local.render.files import render_all
from ampd.source.specfile import load_and_check
from tests.harness import prombins
from tests.harness.fuzzgen import dump, fuzz_settings, run_timed
from tests.harness.grafana_standin import ProvisioningError, Standin

EXAMPLES = int(os.environ.get("AMPD_RENDER_EXAMPLES", "150"))
BASE = "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1"
WS = WorkspaceFacts("ws-1", "eu-west-1", f"{BASE}/api/v1/remote_write", f"{BASE}/api/v1/query")

EXOTIC = [
    "🙂",
    "\U0001d518",  # MATHEMATICAL FRAKTUR CAPITAL U
    "\u2028",
    "\x85",
    "\x00",
    "\x7f",
    "\ufeff",
    "\t",
    "\n",
    "$",
    "$$",
    "$HOME",
    "${PATH}",
    "$__env{HOME}",
    "$__file{/var/lib/ampd/grafana-secrets/admin-password}",
    "\\",
    '"',
    "'",
    "#",
    ": ",
    "- ",
    "{{",
    "%}",
    "é",
    "中",
    " ",
]
TEXT = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=12),
    st.lists(st.sampled_from(EXOTIC), max_size=6).map("".join),
)
NAME = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,8}", fullmatch=True)
DURATION = st.builds(
    lambda n, unit: f"{n}{unit}", st.integers(1, 120), st.sampled_from(["ms", "s", "m", "h"])
)
HOST = st.one_of(
    st.sampled_from(["127.0.0.1", "localhost", "[::1]", "node-1.example"]), TEXT.filter(bool)
)
TARGET = st.builds(lambda h, p: f"{h}:{p}", HOST, st.integers(1, 65535))
JOB = st.fixed_dictionaries(
    {
        "job": NAME,
        "targets": st.lists(TARGET, min_size=1, max_size=3),
    },
    optional={
        "metrics_path": TEXT.map(lambda t: "/" + t),
        "interval": DURATION,
        "scheme": st.sampled_from(["http", "https"]),
        "labels": st.dictionaries(NAME, TEXT, max_size=3),
        "sample_limit": st.integers(0, 2**32 - 1),
        "label_limit": st.integers(0, 2**32 - 1),
        "label_value_length_limit": st.integers(0, 2**32 - 1),
    },
)


@st.composite
def states(draw: st.DrawFn, where: Path) -> dict[str, Any]:
    mode = draw(st.sampled_from(["agent", "server"]))
    prom: dict[str, Any] = {
        "mode": mode,
        "scrape_interval": draw(DURATION),
        "external_labels": draw(st.dictionaries(NAME, TEXT, max_size=3)),
        "scrape_configs": draw(st.lists(JOB, max_size=4, unique_by=lambda j: str(j["job"]))),
        "remote_write": draw(
            st.sampled_from([None, {}, {"signing": "native"}, {"signing": "proxy"}])
        ),
    }
    if prom["scrape_configs"] and draw(st.integers(0, 9)) == 0:
        # a built-in job's name now and then: validate must refuse it
        prom["scrape_configs"][0]["job"] = draw(st.sampled_from(["prometheus", "ampd"]))
    if mode == "server" and draw(st.booleans()):
        prom["retention"] = draw(DURATION)
    doc: dict[str, Any] = {
        "version": 1,
        "workspace": {"alias": draw(TEXT.filter(lambda t: 1 <= len(t) <= 100))},
        "prometheus": prom,
        "metrics": {"enabled": draw(st.booleans()), "scrape": draw(st.booleans())},
    }
    if draw(st.integers(0, 3)):
        doc["proxy"] = {}
    if draw(st.booleans()):
        dashboards = draw(st.lists(TEXT.filter(lambda t: "\x00" not in t), max_size=2))
        for d in dashboards:  # the dashboard paths must exist
            try:
                (where / "dash" / d).mkdir(parents=True, exist_ok=True)
            except (OSError, ValueError):
                continue
        doc["grafana"] = {
            "enabled": True,
            "datasource": {
                "name": draw(TEXT.filter(bool)),
                "via": draw(st.sampled_from(["direct", "proxy"])),
            },
            "dashboards": [str(where / "dash" / d) for d in dashboards],
        }
    return doc


def validated(doc: dict[str, Any], path: Path) -> Any:
    path.write_text(dump(doc), encoding="utf-8")
    try:
        return load_and_check(path, run_promtool=False).spec
    except SpecError:
        return None


def rendered(spec: Any, out: Path, *, can_sign: bool, grafana_major: int | None) -> None:
    facts = Facts(workspace=None, grafana_major=grafana_major)
    ctx = render_context(spec, facts, source=out / "state.yml", state_dir=out, python="python3")
    ctx = RenderContext(**{**ctx.__dict__, "workspace": WS, "prometheus_can_sign": can_sign})
    for r in render_all(effective_spec(spec, ctx), ctx):
        f = out / "generated" / r.name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(r.data)


def promtool_accepts(generated: Path, agent: bool) -> None:
    for binary in prombins.discover():
        argv = [str(binary.promtool), "check", "config", *(["--agent"] if agent else [])]
        res = subprocess.run(
            [*argv, str(generated / "prometheus.yml")],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        text = (generated / "prometheus.yml").read_text()
        assert res.returncode == 0, f"{binary}: {res.stdout}{res.stderr}\n{text}"


def grafana_accepts(state_dir: Path) -> None:
    ensure_admin_password(state_dir, FileWriter())
    standin = Standin(state_dir / "generated" / "grafana" / "grafana.ini")
    try:
        standin.load_datasources()
        standin.load_dashboards()
    except ProvisioningError as e:
        raise AssertionError(f"the Grafana stand-in refused it: {e}") from None


def test_every_valid_state_renders_to_files_prometheus_and_grafana_accept(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    assert prombins.discover(), "no Prometheus to check with"
    where = tmp_path_factory.mktemp("render-property")
    counts = {"valid": 0, "invalid": 0}

    @fuzz_settings(EXAMPLES)
    @given(
        doc=states(where),
        can_sign=st.booleans(),
        grafana_major=st.sampled_from([None, 11, 12]),
    )
    def check(doc: dict[str, Any], can_sign: bool, grafana_major: int | None) -> None:
        spec = validated(doc, where / "state.yml")
        if spec is None:
            counts["invalid"] += 1
            return
        counts["valid"] += 1
        out = where / f"case-{counts['valid']}"
        rendered(spec, out, can_sign=can_sign, grafana_major=grafana_major)
        generated = out / "generated"
        promtool_accepts(generated, agent=spec.prometheus.mode == "agent")
        if (generated / "grafana").is_dir():
            grafana_accepts(out)

    wall, cpu = run_timed(check)
    print(f"render property: {counts} in {wall:.1f} s wall, {cpu:.1f} s CPU")
    # the strategies aim at valid states: most cases must reach the renderers
    assert counts["valid"] >= EXAMPLES // 2, counts


@pytest.mark.parametrize(
    ("body", "where", "message"),
    [
        pytest.param(
            "  scrape_configs:\n    - job: prometheus\n      targets: ['h:1']\n",
            "5:12: prometheus.scrape_configs[0].job",
            "'prometheus' is the name of a job ampd adds itself",
            id="job-prometheus",
        ),
        pytest.param(
            "  scrape_configs:\n    - job: app\n      targets: ['h:1']\n"
            "    - job: ampd\n      targets: ['h:2']\n",
            "7:12: prometheus.scrape_configs[1].job",
            "'ampd' is the name of a job ampd adds itself",
            id="job-ampd",
        ),
        pytest.param(
            '  external_labels:\n    team: "x\\ud83d\\ude42"\n',
            "5:11: prometheus.external_labels.team",
            "contains U+D83D, half of a UTF-16 surrogate pair",
            id="surrogate-escape",
        ),
        pytest.param(
            "  scrape_configs:\n    - job: app\n      targets: ['h:1', 'h/x:2']\n",
            "6:24: prometheus.scrape_configs[0].targets[1]",
            "target 'h/x:2': a host name has no '/'",
            id="target-with-slash",
        ),
    ],
)
def test_validate_refuses_what_would_not_render(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, where: str, message: str
) -> None:
    path = tmp_path / "state.yml"
    path.write_text("version: 1\nprometheus:\n  remote_write: null\n" + body)
    assert main(["validate", "--no-promtool", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:{where}: {message}" in err, err


def test_an_emoji_label_and_data_source_name_render_as_utf8_and_load(tmp_path: Path) -> None:
    """Written as UTF-8, not as a \\ud83d\\ude42 pair (which promtool refused)."""
    path = tmp_path / "state.yml"
    path.write_text(
        "version: 1\nworkspace: {alias: a}\n"
        "prometheus:\n  external_labels: {team: 'ops 🙂'}\n"
        "  scrape_configs: [{job: app, targets: ['h:1'], labels: {who: '\U0001d518\u2028'}}]\n"
        "proxy: {}\n"
        "grafana: {enabled: true, datasource: {name: 'AMP 🙂'}}\n"
    )
    spec = validated_file(path)
    rendered(spec, tmp_path, can_sign=False, grafana_major=12)
    generated = tmp_path / "generated"
    assert 'team: "ops 🙂"' in (generated / "prometheus.yml").read_text()
    promtool_accepts(generated, agent=True)
    grafana_accepts(tmp_path)
    ds = (generated / "grafana/provisioning/datasources/ampd.yaml").read_text()
    assert '"AMP 🙂"' in ds


def validated_file(path: Path) -> Any:
    return load_and_check(path, run_promtool=False).spec
