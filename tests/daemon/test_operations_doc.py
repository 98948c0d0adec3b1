"""docs/operations.md states what the daemon really does: every option's flag, environment
variable and default, every [cluster] default, every metric and every log event."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import pytest

from daemon.cluster.config import ClusterConfig
from daemon.cluster.metrics import ClusterMetrics
from daemon.config import (
    HEARTBEAT_RANGE_S,
    OPTIONS,
    RESULT_OVERHEAD_BYTES,
    ConfigError,
    DaemonConfig,
    QuotaLimits,
    env_name,
    flag_name,
    load_config,
)
from daemon.logs import close_handlers, setup_logging
from daemon.metrics import Metrics
from daemon.quotas import QuotaBook
from daemon.scheduler import Scheduler, SchedulerLimits
from daemon.server import CANCEL_WAIT_S
from shared_protocol import SIGNATURE, Generate, QuotaExceeded
from shared_protocol.addresses import is_loopback
from shared_protocol.keys import ARTIST_NAME, generate_keypair
from shared_protocol.messages import Error
from tests.support import DaemonProcess, TestEngine, make_config, read_log, run_daemon
from tests.support.clock import ManualClock
from tests.support.wire import Peer

REPO = Path(__file__).resolve().parents[2]
GUIDE = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
# A log call's event name: log.info("event", ...), also with the name on the next line.
_LOG_EVENT = re.compile(r"log\.(?:debug|info|warning|error|exception)\(\s*\"([a-z_]+)\"")


def _rows() -> dict[str, list[str]]:
    """The guide's table rows keyed by their first cell's `name` (several names: each)."""
    rows = {}
    for line in GUIDE.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and cells:
            for name in re.findall(r"`([a-z_]+)`", cells[0]):
                rows.setdefault(name, cells)
    return rows


def _documented(value: object, cell: str) -> bool:
    """Whether a default in a table cell says ``value`` (``none``/``off``/``unset`` = None)."""
    text = cell.strip('`"')
    if value is None or value == ():
        return text in ("none", "off", "unset") or text.startswith("`1`, unset")
    if isinstance(value, bool):
        return text == str(value).lower()
    if isinstance(value, int | float):
        return float(text) == float(value)
    if isinstance(value, tuple):
        return text == ",".join(value)
    return text == str(value)


def test_every_option_row_has_its_flag_environment_variable_and_default() -> None:
    rows = _rows()
    defaults = DaemonConfig()
    for option in OPTIONS:
        flag, env, default = rows[option.name][1:4]
        assert (flag, env) == (f"`{flag_name(option.name)}`", f"`{env_name(option.name)}`")
        if option.name in ("data_dir", "log_dir", "state_dir"):
            continue  # derived from the environment: stated in words
        assert _documented(getattr(defaults, option.name), default), (option.name, default)


def test_every_cluster_key_and_default_is_documented() -> None:
    rows = _rows()
    defaults = ClusterConfig()
    for key in fields(ClusterConfig):
        cells = rows[key.name]
        default = cells[1]
        if key.name in ("min_replicas", "max_replicas"):
            first, second = (d.strip(" `") for d in default.split(","))
            default = first if key.name == "min_replicas" else second
        assert _documented(getattr(defaults, key.name), default), (key.name, default)


def test_every_metric_is_documented() -> None:
    metrics = Metrics(("cpu", "cuda:0"))
    ClusterMetrics(metrics)
    for family in metrics.families:
        assert f"`{family.name}`" in GUIDE, family.name


def test_every_log_event_is_documented() -> None:
    events = {
        event
        for source in (REPO / "daemon").rglob("*.py")
        for event in _LOG_EVENT.findall(source.read_text(encoding="utf-8"))
    }
    assert {"started", "job_finished", "replica_lost", "device_failed"} <= events  # the scan works
    missing = sorted(e for e in events if f"`{e}`" not in GUIDE)
    assert not missing, missing


def _refused_option(config: DaemonConfig) -> str:
    """The option named when the daemon refuses to start with ``config``, in the reply's field
    and in the words the operator reads (``error: OPTION: ...``)."""
    with pytest.raises(ConfigError) as refused, run_daemon(config):
        pass
    option = str(refused.value.details["field"])
    assert refused.value.message.startswith((f"{option}:", f"{option} ")), refused.value.message
    return option


def test_a_key_file_that_cannot_be_used_stops_the_daemon_naming_its_option(
    tmp_path: Path,
) -> None:
    assert "`allowed_keys_dir` that cannot be used" in " ".join(GUIDE.split())
    keys = tmp_path / "keys"
    generate_keypair(keys, "server")
    generate_keypair(keys, "alice")
    curve = {"server_secret_key": keys / "server.key_secret", "allowed_keys_dir": keys}
    missing = {**curve, "server_secret_key": keys / "nobody.key_secret"}
    public_only = {**curve, "server_secret_key": keys / "server.key"}
    no_dir = {**curve, "allowed_keys_dir": tmp_path / "absent"}
    assert _refused_option(make_config(tmp_path, **missing)) == "server_secret_key"
    assert _refused_option(make_config(tmp_path, **public_only)) == "server_secret_key"
    assert _refused_option(make_config(tmp_path, **no_dir)) == "allowed_keys_dir"
    (keys / "bad name.key").write_bytes((keys / "alice.key").read_bytes())
    assert _refused_option(make_config(tmp_path, **curve)) == "allowed_keys_dir"


def test_a_metrics_port_in_use_stops_the_daemon_naming_metrics_bind(tmp_path: Path) -> None:
    assert "`metrics_bind` address that is already in use" in " ".join(GUIDE.split())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = make_config(tmp_path, metrics_bind=f"127.0.0.1:{port}")
        assert _refused_option(config) == "metrics_bind"


def test_a_bind_in_use_stops_the_daemon_naming_bind(tmp_path: Path) -> None:
    assert "a\n`bind` or `metrics_bind` address that is already in use" in GUIDE
    with run_daemon(make_config(tmp_path / "first")) as first:
        assert _refused_option(make_config(tmp_path / "second", bind=first.address)) == "bind"


def _keygen(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "daemon", "keygen", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_keygen_exit_codes_are_the_documented_ones(tmp_path: Path) -> None:
    (line,) = [line for line in GUIDE.splitlines() if line.startswith("| `python -m daemon keygen")]
    row = [cell.strip() for cell in line.strip("|").split("|")]
    assert ARTIST_NAME.pattern in row[1]
    assert row[2] == (
        "0; 2 for `artist` without NAME; 1 for a NAME that breaks the rule or whose key files "
        "exist already"
    )
    assert _keygen("artist", "alice", "--dir", str(tmp_path)).returncode == 0
    public = (tmp_path / "alice.key").read_bytes()
    again = _keygen("artist", "alice", "--dir", str(tmp_path))
    assert again.returncode == 1 and "already exists" in again.stderr
    assert (tmp_path / "alice.key").read_bytes() == public  # never overwritten
    assert _keygen("artist", "bad name", "--dir", str(tmp_path)).returncode == 1
    assert _keygen("artist", "--dir", str(tmp_path)).returncode == 2


def test_the_loopback_binds_are_the_documented_ones() -> None:
    text = " ".join(GUIDE.split())
    assert "`tcp://` to an address in 127.0.0.0/8 or `[::1]`" in text
    local = ["tcp://127.0.0.1:7878", "tcp://127.8.9.10:7878", "tcp://[::1]:7878"]
    local += [f"tcp://{name}:7878" for name in ("localhost", "localhost.localdomain")]
    local += ["tcp://ip6-localhost:7878", "ipc:///tmp/hy-motion", "inproc://hy-motion"]
    remote = ["tcp://*:7878", "tcp://0.0.0.0:7878", "tcp://eth0:7878", "tcp://render-box:7878"]
    assert all(map(is_loopback, local)) and not any(map(is_loopback, remote))


def test_the_queue_estimate_is_the_documented_one() -> None:
    text = " ".join(GUIDE.split())
    assert "2 s until the first batch has run), and never under 0.1 s" in text
    scheduler = Scheduler(SchedulerLimits(max_queue=8, max_per_artist=8, workers=2))
    assert scheduler.wait_s(0) == 2.0  # the running batch, before any batch time is known
    assert scheduler.wait_s(2) == 4.0  # two batches on each of the two devices
    for _ in range(50):
        scheduler.record_batch(0.001)
    assert scheduler.wait_s(0) == 0.1


def test_an_empty_metrics_bind_is_off_and_an_empty_device_list_is_refused(tmp_path: Path) -> None:
    text = " ".join(GUIDE.split())
    assert "an empty value, e.g. `HYMOTION_METRICS_BIND=`, is off too" in text
    assert "`devices` must name at least one device" in text
    config = load_config(None, {"HYMOTION_METRICS_BIND": ""}, {})
    assert config.metrics_bind is None
    with pytest.raises(ConfigError) as refused:
        load_config(None, {"HYMOTION_DEVICES": " , "}, {})
    assert refused.value.details["field"] == "devices"


def test_file_values_are_toml_values_and_the_drain_wait_is_the_documented_one(
    tmp_path: Path,
) -> None:
    text = " ".join(GUIDE.split())
    assert f"waits at most {CANCEL_WAIT_S:g} s more for it to stop" in text
    assert "In the file, values are TOML's own: a boolean is `true`/`false`" in text
    config = tmp_path / "daemon.toml"
    config.write_text('log_stderr = false\ndevices = ["cpu"]\n')
    assert load_config(config, {}, {}).log_stderr is False
    config.write_text('log_stderr = "no"\n')
    with pytest.raises(ConfigError, match="log_stderr"):
        load_config(config, {}, {})


def test_the_largest_result_fits_what_a_client_accepts_header_included(tmp_path: Path) -> None:
    assert "plus 64 KiB for the rest of the message" in " ".join(GUIDE.split())
    assert RESULT_OVERHEAD_BYTES == 64 * 1024
    make_config(tmp_path, max_candidates=44, max_timeline_s=120.0)  # the documented figures
    make_config(tmp_path, max_candidates=14, max_timeline_s=380.0)
    # 79 x 2029 frames x 628 bytes is 548 bytes under 96 MiB: no room for the header
    with pytest.raises(ConfigError) as refused:
        make_config(tmp_path, max_candidates=79, max_timeline_s=2029 / 30)
    assert refused.value.details["field"] == "max_timeline_s"


def test_a_log_line_leaves_out_fields_that_do_not_apply(tmp_path: Path) -> None:
    assert "is left out rather than written as `null`" in " ".join(GUIDE.split())
    log, handlers = setup_logging("info", False, tmp_path, "hymotion.test.logdoc")
    try:
        log.info("job_finished", job_id="j1", outcome="ok", reason=None, code=None)
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.error("internal_error", exc=True, log_id="abc")
    finally:
        close_handlers("hymotion.test.logdoc", handlers)
    finished, failed = read_log(tmp_path / "daemon.log")
    assert set(finished) == {"ts", "level", "event", "job_id", "outcome"}
    assert finished["level"] == "info" and failed["level"] == "error"
    assert "RuntimeError: boom" in failed["traceback"]


@pytest.mark.parametrize("seconds", [0.0, 0.0004, 1e6])
def test_a_heartbeat_outside_its_documented_range_is_refused(
    tmp_path: Path, seconds: float
) -> None:
    low, high = HEARTBEAT_RANGE_S
    assert f"`heartbeat_s` is {low:g} to {high:g} s" in " ".join(GUIDE.split())
    with pytest.raises(ConfigError) as refused:  # 0.0004 s was heartbeats off, 1e6 a traceback
        make_config(tmp_path, heartbeat_s=seconds)
    assert refused.value.details["field"] == "heartbeat_s"


@pytest.mark.parametrize("option", ["reconnect_grace_s", "batch_window_s", "grace_period_s"])
@pytest.mark.parametrize("text", ["inf", "nan"])
def test_a_number_that_is_not_finite_is_refused(option: str, text: str) -> None:
    assert "Every number must be finite (`inf` and `nan` are refused)" in " ".join(GUIDE.split())
    with pytest.raises(ConfigError) as refused:  # inf in welcome.limits broke every hello
        load_config(None, {env_name(option): text}, {})
    assert refused.value.details["field"] == option


def test_a_directory_the_daemon_cannot_write_stops_it_naming_the_option(tmp_path: Path) -> None:
    text = " ".join(GUIDE.split())
    assert "a `log_dir` (when `log_file` is on) or `state_dir` the daemon cannot create" in text
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")  # refused even to root, unlike a permission
    assert _refused_option(make_config(tmp_path, log_dir=blocker / "logs")) == "log_dir"
    # Before: the daemon started, then every generate failed with `internal` (quota usage).
    assert _refused_option(make_config(tmp_path, state_dir=blocker / "state")) == "state_dir"


def test_a_failed_quota_save_never_fails_the_job(tmp_path: Path) -> None:
    assert "each failed save is logged as `quota_usage_unsaved` with the reason" in " ".join(
        GUIDE.split()
    )
    unsaved: list[str] = []
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    clock = ManualClock()
    book = QuotaBook(lambda artist: QuotaLimits(jobs_per_hour=2), blocker / "usage.json",
                     clock.call_later, monotonic=clock, on_unsaved=unsaved.append)  # fmt: skip
    book.charge_job("alice")  # was an OSError: the client got `internal`, the job still ran
    book.charge_job("alice")  # within the save interval: saved with the next save
    assert len(unsaved) == 1 and "a-file" in unsaved[0]
    book.save()
    assert len(unsaved) == 2
    with pytest.raises(QuotaExceeded):  # still counted in memory
        book.check("alice")


def test_admin_and_quota_names_that_no_artist_can_have_stop_the_daemon(tmp_path: Path) -> None:
    text = " ".join(GUIDE.split())
    assert "names in `admins` and of `[quotas.artists.NAME]` tables follow the artist-name" in text
    with pytest.raises(ConfigError) as refused:
        load_config(None, {"HYMOTION_ADMINS": "boss, Jane Doe"}, {})
    assert refused.value.details["field"] == "admins"
    config = tmp_path / "daemon.toml"
    config.write_text('[quotas.artists."jane doe"]\njobs_per_hour = 1\n')
    with pytest.raises(ConfigError) as refused:
        load_config(config, {}, {})
    assert refused.value.details["field"] == "quotas.artists.jane doe"
    config.write_text('admins = ["boss"]\n[quotas.artists."jane.doe"]\njobs_per_hour = 1\n')
    assert load_config(config, {}, {}).admins == ("boss",)


def test_every_unlabelled_metric_has_a_sample_from_the_first_scrape(tmp_path: Path) -> None:
    assert "Unlabelled metrics are served from the start (0" in " ".join(GUIDE.split())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with run_daemon(make_config(tmp_path, metrics_bind=f"127.0.0.1:{port}")) as daemon:
        assert daemon.address  # nothing asked of it yet: the first scrape of a fresh daemon
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            text = reply.read().decode()
    samples = {line.split(" ")[0] for line in text.splitlines() if not line.startswith("#")}
    unlabelled = [f for f in Metrics(("cpu",)).families if not f.labelnames]
    assert unlabelled
    for family in unlabelled:
        name = f"{family.name}_count" if family.kind == "histogram" else family.name
        assert name in samples, family.name


def test_a_command_line_that_cannot_be_read_exits_2() -> None:
    text = " ".join(GUIDE.split())
    assert "prints the usage and exits 2, for every command" in text
    unreadable = [["keygen", "artist", "-alice", "--dir", "x"], ["bench-protocol", "--bogus"]]
    for args in unreadable:
        command = [sys.executable, "-m", "daemon", *args]
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and "usage:" in done.stderr, (args, done.stderr)


def test_a_bad_value_from_a_flag_or_the_environment_names_its_option() -> None:
    assert "stops the daemon before it serves anything,\nwith the option named" in GUIDE
    cases = [({"HYMOTION_MAX_QUEUE": "abc"}, {}, "HYMOTION_MAX_QUEUE (max_queue): 'abc' is not")]
    cases += [({}, {"heartbeat_s": "1,5"}, "--heartbeat-s (heartbeat_s): '1,5' is not a number")]
    for environ, flags, said in cases:
        with pytest.raises(ConfigError) as refused:
            load_config(None, environ, flags)
        assert said in refused.value.message, refused.value.message
    text = " ".join(GUIDE.split())
    assert "another `HYMOTION_*` name, a misspelt one too, is not an option and is ignored" in text
    assert load_config(None, {"HYMOTION_MAX_QEUE": "abc"}, {}) == load_config(None, {}, {})


def test_a_refused_generate_is_logged_as_rejected_without_a_job(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    text = " ".join(GUIDE.split())
    assert "`rejected` (a generate refused with `busy` or `quota_exceeded`: `artist`," in text
    assert "are answered but not logged" in text
    with run_daemon(make_config(tmp_path, max_per_artist=1), [TestEngine(step_s=0.05)]) as daemon:
        alice = peers(daemon.address)
        alice.hello("alice")
        alice.until_running(alice.send(Generate(prompt="walk", duration_s=1.0), "gen-1"))
        refused = alice.send(Generate(prompt="run", duration_s=1.0), "gen-2")
        alice.recv_until(Error, re=refused)
    (rejected,) = [
        e for e in read_log(tmp_path / "logs" / "daemon.log") if e["event"] == "rejected"
    ]
    assert set(rejected) == {"ts", "level", "event", "artist", "request_id", "reason"}
    assert (rejected["request_id"], rejected["reason"]) == ("gen-2", "artist_limit")


def test_the_log_level_is_read_in_any_case() -> None:
    assert "`debug`, `info`, `warning` or `error`, in any case" in GUIDE
    assert load_config(None, {"HYMOTION_LOG_LEVEL": "WARNING"}, {}).log_level == "WARNING"
    with pytest.raises(ConfigError) as refused:
        load_config(None, {"HYMOTION_LOG_LEVEL": "trace"}, {})
    assert refused.value.details["field"] == "log_level"


@pytest.mark.slow
def test_a_second_sigint_exits_at_once_with_code_130(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    assert "**A second SIGINT** exits at once (code 130), without draining." in GUIDE
    daemon = DaemonProcess(tmp_path, ["--step-s", "0.05", "--grace-period-s", "600"]).start()
    try:
        alice = peers(daemon.address)
        alice.hello("alice")
        alice.until_running(alice.send(Generate(prompt="walk", duration_s=1.0, steps=200)))
        daemon.signal(signal.SIGINT)  # a drain that would wait for the 10-s job
        deadline = time.monotonic() + 30  # signals sent back to back merge into one
        while not any(e["event"] == "shutdown_begin" for e in daemon.log_events()):
            assert time.monotonic() < deadline, "the first SIGINT began no drain"
            time.sleep(0.05)
        daemon.signal(signal.SIGINT)
        assert daemon.wait(30) == 130
    finally:
        daemon.kill()


@pytest.mark.parametrize(
    ("listed", "repeated"), [("cpu,cpu", "cpu"), ("cuda:0,cuda:1,cuda", "cuda")]
)
def test_a_device_listed_twice_is_refused_naming_it(listed: str, repeated: str) -> None:
    assert "A device may be listed only once" in " ".join(GUIDE.split())
    # Two workers of one name: status, metrics, logs and device failures mixed them up.
    with pytest.raises(ConfigError) as refused:
        load_config(None, {"HYMOTION_DEVICES": listed}, {})
    assert refused.value.details["field"] == "devices"
    assert f"devices lists {repeated} " in refused.value.message


def test_every_refused_message_of_the_protocol_is_logged_as_malformed(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    text = " ".join(GUIDE.split())
    assert "`malformed` (a message with `HYMP/` in frame 0 refused before it could be read" in text
    with run_daemon(make_config(tmp_path)) as daemon:  # make_config logs at debug level
        peer = peers(daemon.address)
        peer.send_raw([b"GARBAGE", b"{}"])  # not this protocol: counted, not logged
        peer.send_raw([b"HYMP/2", b"{}"])  # was answered but never logged
        peer.recv()
        peer.send_raw([SIGNATURE, b'{"id": "bad-1", "v": "1.1"}'])
        peer.recv()
    logged = [e for e in read_log(tmp_path / "logs" / "daemon.log") if e["event"] == "malformed"]
    assert [e.get("request_id") for e in logged] == [None, "bad-1"], logged
    assert "HYMP/2" in logged[0]["reason"]


def test_an_empty_path_option_means_its_default(tmp_path: Path) -> None:
    text = " ".join(GUIDE.split())
    assert 'An empty path (`HYMOTION_LOG_DIR=`, `--log-dir ""`, `log_dir = ""`)' in text
    config = tmp_path / "daemon.toml"
    config.write_text('log_dir = "/var/log/hy-motion"\nstate_dir = ""\n')
    empty = {env_name(name): "" for name in ("log_dir", "server_secret_key", "allowed_keys_dir")}
    loaded = load_config(config, empty, {"data_dir": ""})
    # Before: Path("") is the working directory: logs went there, and CURVE was switched on
    # with "." as its key file.
    assert (loaded.log_dir, loaded.state_dir, loaded.curve) == (None, None, False)
    assert loaded.data_dir == DaemonConfig().data_dir


@pytest.mark.slow
def test_sighup_reloads_only_the_allow_list(tmp_path: Path, peers: Callable[..., Peer]) -> None:
    text = " ".join(GUIDE.split())
    assert "and nothing else: the configuration file and the other options are read only" in text
    config = tmp_path / "daemon.toml"
    config.write_text("max_per_artist = 1\n")
    daemon = DaemonProcess(tmp_path, ["--config", str(config), "--step-s", "0.05"]).start()
    try:
        config.write_text("max_per_artist = 5\n")
        daemon.signal(signal.SIGHUP)  # without CURVE: nothing to reload, and the daemon lives on
        alice = peers(daemon.address)
        alice.hello("alice")
        alice.until_running(alice.send(Generate(prompt="walk", duration_s=1.0), "gen-1"))
        _, refused = alice.recv_until(Error, re=alice.send(Generate(prompt="run", duration_s=1.0)))
        assert isinstance(refused, Error)
        assert refused.details["reason"] == "artist_limit"  # the file's new value was not read
    finally:
        daemon.kill()
