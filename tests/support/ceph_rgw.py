"""A throw-away single-node Ceph with its S3 gateway (radosgw) on 127.0.0.1, for the S3 tests.

One monitor, one memstore OSD and radosgw, no manager (S3 does not need one); about 3-6 s to
start. The settings that matter: `paxos_propose_interval` 0.05 s (the default 1 s makes start-up
about 13 s while radosgw creates its pools), pool size 1 on one OSD, and `osd_fast_shutdown` off
(memstore only persists on a clean unmount). The daemons detach, so they are stopped by the PIDs
they write, in the order radosgw, OSD, monitor.

Debian's packages: ceph-mon, ceph-osd, radosgw, ceph-common (the Makefile installs them). Without
them the tests skip, except under CI, where a missing binary is a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.availability import unavailable
from tests.support.ports import free_ports

BINARIES = (
    "ceph-mon",
    "ceph-osd",
    "radosgw",
    "radosgw-admin",
    "ceph",
    "ceph-authtool",
    "monmaptool",
)
ACCESS_KEY = "POLICYENGINETESTKEY0"
SECRET_KEY = "policyengine-test-secret-0000000000000000"


@dataclass(frozen=True)
class RadosGateway:
    endpoint_url: str
    access_key: str
    secret_key: str
    state_dir: Path

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
            "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
        }


def require_ceph() -> None:
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        message = f"Ceph binaries missing: {', '.join(missing)} (make installs them)"
        unavailable(message)


def _run(*args: str, conf: Path, timeout: float = 60) -> str:
    result = subprocess.run(
        [*args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "CEPH_CONF": str(conf)},
    )
    if result.returncode != 0:
        # A daemon that fails to start says why only in its log (a port taken, a bad keyring).
        logs = sorted((conf.parent / "log").glob("*.log"), key=lambda log: log.stat().st_mtime)
        tail = logs[-1].read_text(errors="replace").splitlines()[-8:] if logs else []
        raise RuntimeError(
            f"{' '.join(args)} exited {result.returncode}: {result.stderr.strip()[-2000:]}"
            + ("\nlast lines of " + str(logs[-1]) + ":\n" + "\n".join(tail) if tail else "")
        )
    return result.stdout


def _config(state: Path, fsid: str, mon_v2_port: int, mon_v1_port: int, rgw_port: int) -> str:
    return f"""[global]
fsid = {fsid}
mon_host = [v2:127.0.0.1:{mon_v2_port},v1:127.0.0.1:{mon_v1_port}]
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_ipv6 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
run_dir = {state}/run
crash_dir = {state}/crash
pid_file = {state}/run/$name.pid
admin_socket = {state}/run/$name.asok
log_file = {state}/log/$name.log
mon_cluster_log_file = {state}/log/cluster.log
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
mon_max_pg_per_osd = 1000
mon_data_avail_warn = 2
mon_data_avail_crit = 1
mon_osd_full_ratio = .99
mon_osd_nearfull_ratio = .99
mon_osd_backfillfull_ratio = .99
osd_failsafe_full_ratio = .99

[mon]
mon_data = {state}/mon.$id
paxos_propose_interval = 0.05

[osd]
osd_data = {state}/osd.$id
osd_objectstore = memstore
osd_fast_shutdown = false
memstore_device_bytes = 536870912

[client]
keyring = {state}/keyring

[client.rgw.a]
rgw_data = {state}/rgw.a
rgw_frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw_thread_pool_size = 16
rgw_init_timeout = 60
rgw_dns_name = localhost
"""


def _wait(condition: object, deadline: float, what: str) -> None:
    assert callable(condition)
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the gateway is serving
    except OSError:
        return False


def stop(state: Path) -> None:
    """Kill every daemon of `state` by its PID file: radosgw, then the OSD, then the monitor."""
    run = state / "run"
    for pattern in ("client.rgw.*.pid", "osd.*.pid", "mon.*.pid"):
        for pid_file in sorted(run.glob(pattern)):
            try:
                pid = int(pid_file.read_text().strip())
            except (OSError, ValueError):
                continue
            # The cluster is thrown away: no clean unmount needed, so no 10 s OSD shutdown.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextmanager
def running_gateway(state: Path) -> Iterator[RadosGateway]:
    require_ceph()
    for folder in ("run", "log", "mon.a", "osd.0", "rgw.a", "crash"):
        (state / folder).mkdir(parents=True, exist_ok=True)
    mon_v2_port, mon_v1_port, rgw_port = free_ports(3)
    conf = state / "ceph.conf"
    conf.write_text(_config(state, str(uuid.uuid4()), mon_v2_port, mon_v1_port, rgw_port))
    try:
        _start(state, conf, rgw_port)
        yield RadosGateway(f"http://127.0.0.1:{rgw_port}", ACCESS_KEY, SECRET_KEY, state)
    finally:
        stop(state)


def restart_gateway(gateway: RadosGateway) -> None:
    """Start radosgw again after a test stopped it (the data is kept by the OSD)."""
    conf = gateway.state_dir / "ceph.conf"
    _run("radosgw", "-c", str(conf), "-n", "client.rgw.a", conf=conf)
    deadline = time.monotonic() + 30
    _wait(lambda: _answers(gateway.endpoint_url + "/"), deadline, "radosgw to answer again")


def stop_gateway(gateway: RadosGateway) -> None:
    """Stop only radosgw: S3 becomes unreachable while Ceph keeps the data."""
    for pid_file in (gateway.state_dir / "run").glob("client.rgw.*.pid"):
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        pid_file.unlink(missing_ok=True)


def _start(state: Path, conf: Path, rgw_port: int) -> None:
    c = str(conf)
    deadline = time.monotonic() + 90
    mon_keyring, keyring = state / "mon.keyring", state / "keyring"
    _run(
        "ceph-authtool",
        "--create-keyring",
        str(mon_keyring),
        "--gen-key",
        "-n",
        "mon.",
        "--cap",
        "mon",
        "allow *",
        conf=conf,
    )
    _run(
        "ceph-authtool",
        "--create-keyring",
        str(keyring),
        "--gen-key",
        "-n",
        "client.admin",
        "--cap",
        "mon",
        "allow *",
        "--cap",
        "osd",
        "allow *",
        "--cap",
        "mgr",
        "allow *",
        conf=conf,
    )
    _run("ceph-authtool", str(mon_keyring), "--import-keyring", str(keyring), conf=conf)
    fsid = next(
        line.split("=", 1)[1].strip()
        for line in conf.read_text().splitlines()
        if line.startswith("fsid")
    )
    mon_host = next(
        line.split("=", 1)[1].strip()
        for line in conf.read_text().splitlines()
        if line.startswith("mon_host")
    )
    _run(
        "monmaptool",
        "--create",
        "--fsid",
        fsid,
        "--enable-all-features",
        "--set-min-mon-release",
        "pacific",
        "--addv",
        "a",
        mon_host,
        str(state / "monmap"),
        conf=conf,
    )
    _run(
        "ceph-mon",
        "-c",
        c,
        "--mkfs",
        "-i",
        "a",
        "--monmap",
        str(state / "monmap"),
        "--keyring",
        str(mon_keyring),
        conf=conf,
    )
    _run("ceph-mon", "-c", c, "-i", "a", conf=conf)
    _run("ceph", "-c", c, "--connect-timeout", "30", "mon", "stat", conf=conf)

    osd_uuid = str(uuid.uuid4())
    osd_key = _run("ceph-authtool", "--gen-print-key", conf=conf).strip()
    secret = state / "osd.0" / "new.json"
    secret.write_text(json.dumps({"cephx_secret": osd_key}))
    osd_id = _run("ceph", "-c", c, "osd", "new", osd_uuid, "-i", str(secret), conf=conf).strip()
    secret.unlink()
    (state / f"osd.{osd_id}").mkdir(exist_ok=True)
    (state / f"osd.{osd_id}" / "keyring").write_text(f"[osd.{osd_id}]\n\tkey = {osd_key}\n")
    _run(
        "ceph-osd",
        "-c",
        c,
        "-i",
        osd_id,
        "--mkfs",
        "--osd-uuid",
        osd_uuid,
        "--key",
        osd_key,
        conf=conf,
    )
    _run("ceph-osd", "-c", c, "-i", osd_id, conf=conf)

    def osd_up() -> bool:
        dump = json.loads(_run("ceph", "-c", c, "osd", "dump", "-f", "json", conf=conf))
        return bool(dump["osds"]) and all(o["up"] for o in dump["osds"])

    _wait(osd_up, deadline, "the OSD to come up")
    with keyring.open("a") as handle:
        handle.write(
            _run(
                "ceph",
                "-c",
                c,
                "auth",
                "get-or-create",
                "client.rgw.a",
                "mon",
                "allow rw",
                "osd",
                "allow rwx",
                "mgr",
                "allow rw",
                conf=conf,
            )
        )
    _run("radosgw", "-c", c, "-n", "client.rgw.a", conf=conf)
    _wait(lambda: _answers(f"http://127.0.0.1:{rgw_port}/"), deadline, "radosgw to answer")
    _run(
        "radosgw-admin",
        "-c",
        c,
        "user",
        "create",
        "--uid=policyengine",
        "--display-name=tests",
        f"--access-key={ACCESS_KEY}",
        f"--secret-key={SECRET_KEY}",
        conf=conf,
    )
