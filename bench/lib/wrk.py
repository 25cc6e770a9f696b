"""The 360 under wrk: finding or building wrk, its Lua script of random reads, and its figures."""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from lib.processes import (
    MachineCpu,
    ServerProcess,
    process_tree_cpu_seconds,
)

# wrk calls request() once per request (with -t1, in one Lua state) and done() once at the
# end; done prints one JSON line the benchmark parses. Latencies are in microseconds.
LUA = """
local ids = {%(ids)s}
local n = 0
wrk.headers["X-API-Key"] = "%(key)s"
request = function()
  n = n + 1
  return wrk.format("GET", "/v1/customers/" .. ids[n %% #ids + 1] .. "/360")
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,"max_us":%%d,'
    .. '"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def ensure_wrk() -> str:
    """The path of ``wrk``; installs the Debian package first when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is not installed: running `apt-get install -y wrk` (Debian package)", flush=True)
    install = ["apt-get", "install", "-y", "--no-install-recommends", "wrk"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(install, env=env, check=False).returncode != 0:
        # A fresh machine has no package lists yet.
        subprocess.run(["apt-get", "update"], env=env, check=True)
        subprocess.run(install, env=env, check=True)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is still not on PATH after apt-get install")
    return found


def write_lua(path: Path, ids: list[str], key: str) -> Path:
    path.write_text(LUA % {"ids": ",".join(json.dumps(i) for i in ids), "key": key})
    return path


@dataclass
class Target:
    name: str
    server: ServerProcess
    db_pid: int | None = None  # the database server, whose CPU is reported too


@dataclass
class WrkRun:
    target: str
    round: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: Counter[str]
    server_cpu: float  # CPU seconds of the uvicorn process over the run
    db_cpu: float | None
    wrk_cpu: float
    machine_busy: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def row(self) -> list[object]:
        per_request = 1000 / self.requests if self.requests else 0.0
        return [
            f"{self.target} #{self.round}",
            self.requests,
            self.errors.total(),
            self.rate,
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            f"{100 * self.server_cpu / self.seconds:.0f}%",
            f"{self.server_cpu * per_request:.3f}",
            "-" if self.db_cpu is None else f"{self.db_cpu * per_request:.3f}",
            f"{100 * self.wrk_cpu / self.seconds:.0f}%",
            f"{100 * self.machine_busy:.0f}%",
        ]


HEADERS = [
    "target",
    "requests",
    "errors",
    "req/s",
    "p50 ms",
    "p99 ms",
    "max ms",
    "server CPU",
    "server ms/req",
    "db ms/req",
    "wrk CPU",
    "machine busy",
]


def run_wrk(
    wrk: str, target: Target, script: Path, args: argparse.Namespace, seconds: int, number: int
) -> WrkRun:
    """One ``wrk -t1`` run against a target, with the CPU of everything involved."""
    db_pid = target.db_pid
    server_cpu = process_tree_cpu_seconds(target.server.pid)
    db_cpu = process_tree_cpu_seconds(db_pid) if db_pid else None
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    machine = MachineCpu()
    command = [wrk, "-t1", f"-c{args.connections}", f"-d{seconds}s", "--timeout", "10s"]
    command += ["-s", str(script), target.server.base_url]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    machine_busy = machine.busy_share()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = process_tree_cpu_seconds(target.server.pid) - server_cpu
    if db_pid and db_cpu is not None:
        db_cpu = process_tree_cpu_seconds(db_pid) - db_cpu
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("WRK_RESULT ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    data = json.loads(lines[-1].removeprefix("WRK_RESULT "))
    errors = Counter({k: data[k] for k in ("connect", "read", "write", "status", "timeout")})
    return WrkRun(
        target.name,
        number,
        data["requests"],
        data["duration_us"] / 1e6,
        data["p50_us"] / 1000,
        data["p99_us"] / 1000,
        data["max_us"] / 1000,
        +errors,
        server_cpu,
        db_cpu,
        after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime,
        machine_busy,
    )
