"""VMware's simulator (vcsim) for the esx plugin's tests, built from Debian's packages.

Debian ships govmomi's ``simulator`` library (golang-github-vmware-govmomi-dev) but no vcsim
program: :func:`vcsim_binary` builds the small Go main in ``vcsim/main.go`` with Debian's Go,
offline (``GO111MODULE=off GOPROXY=off GOPATH=<tmp>:/usr/share/gocode``), once per govmomi
version and main.go, and keeps it under ``$XDG_CACHE_HOME/encompass/vcsim``. :func:`start_vcsim`
runs it on 127.0.0.1 with a free port and a self-signed certificate made for the run; the
datastores it makes live under the run's directory, removed with it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs

from encompass_core.config import Config, Section

MAIN = Path(__file__).resolve().parent / "vcsim" / "main.go"
GOCODE = Path("/usr/share/gocode")
GOVMOMI = GOCODE / "src/github.com/vmware/govmomi/simulator"
BUILD_TIMEOUT = 600
START_TIMEOUT = 60
USER, PASSWORD = "user", "pass"  # what vcsim accepts


class VcsimUnavailable(Exception):
    """vcsim cannot be built here (no Go, no govmomi sources): the tests say how to get them."""


def _cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "encompass" / "vcsim"


def _govmomi_version() -> str:
    done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "golang-github-vmware-govmomi-dev"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "unknown"


def vcsim_binary() -> Path:
    """The vcsim program, built once per govmomi version and main.go (about a minute)."""
    if shutil.which("go") is None or not GOVMOMI.is_dir():
        raise VcsimUnavailable("vcsim needs Debian's golang-go and golang-github-vmware-govmomi-dev "
                               "(./setup_plugins esx --test installs them)")
    key = hashlib.sha256(MAIN.read_bytes()).hexdigest()[:12]
    target = _cache_dir() / f"{_govmomi_version()}-{key}" / "vcsim"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; the others use its result
        if target.exists():
            return target
        with tempfile.TemporaryDirectory(prefix="vcsim-build-") as gopath:
            source = Path(gopath) / "src" / "vcsim"
            source.mkdir(parents=True)
            shutil.copy(MAIN, source / "main.go")
            env = {**os.environ, "GO111MODULE": "off", "GOPROXY": "off", "GOFLAGS": "",
                   "GOPATH": f"{gopath}:{GOCODE}", "GOCACHE": str(target.parent / "go-build")}
            partial = target.with_name("vcsim.partial")
            done = subprocess.run(["go", "build", "-o", str(partial), "."], cwd=source, env=env,
                                  capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
            if done.returncode != 0:
                raise VcsimUnavailable(f"building vcsim failed: {done.stderr.strip()[-2000:]}")
            shutil.rmtree(target.parent / "go-build", ignore_errors=True)
            partial.rename(target)
    for stale in target.parent.parent.iterdir():  # builds of older sources
        if stale != target.parent and (stale / "vcsim").exists():
            shutil.rmtree(stale, ignore_errors=True)
    return target


def make_certificate(folder: Path, name: str = "vcsim") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (also its own CA): ``(certificate, key)``."""
    cert, key = folder / f"{name}.pem", folder / f"{name}-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


@attrs.define
class Vcsim:
    """A running vcsim: where it listens, the certificate to trust, how to stop it."""

    process: subprocess.Popen
    host: str
    port: int
    ca_file: Path
    folder: Path

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}/sdk"

    def settings(self, **more: object) -> dict[str, object]:
        """A ``[platforms.X]`` or ``[pools.X]`` table for it (password from $VCSIM_PASSWORD)."""
        return {"driver": "esx", "host": self.host, "port": self.port, "user": USER,
                "password_env": "VCSIM_PASSWORD", "ca_file": str(self.ca_file), **more}

    def crash(self) -> None:
        """SIGKILL, as a crash or a pulled cable would end it (calls in flight get no answer)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        """SIGTERM (vcsim removes its datastores' folders), then SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def start_vcsim(folder: Path, machines: int = 2, extra: Mapping[str, object] | None = None
                ) -> Iterator[Vcsim]:
    """Run vcsim (``machines`` VMs per resource pool) until the block ends. ``extra`` holds
    more flags of main.go (``{"slow": "PowerOnVM_Task=30000"}``: answer that method late)."""
    binary = vcsim_binary()
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = make_certificate(folder)
    args = [str(binary), "-l", "127.0.0.1:0", "-cert", str(cert), "-key", str(key),
            "-vm", str(machines)]
    for flag, value in (extra or {}).items():
        args += [f"-{flag}", str(value)]
    env = {**os.environ, "TMPDIR": str(folder)}  # its datastores' folders go there
    log = open(folder / "vcsim.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, env=env,
                               start_new_session=True)
    server = None
    try:
        line = process.stdout.readline().decode().strip()  # printed once it listens
        if not line.startswith("https://"):
            process.wait(timeout=5)
            raise RuntimeError(f"vcsim did not start: {(folder / 'vcsim.log').read_text()[-2000:]}")
        address = urlsplit(line)
        server = Vcsim(process, address.hostname, address.port, cert, folder)
        yield server
    finally:
        if server is not None:
            server.stop()
        elif process.poll() is None:
            process.kill()
            process.wait()
        log.close()


def make_config(folder: Path, pools: dict | None = None, platforms: dict | None = None) -> Config:
    return Config(path=folder / "encompass.toml", defaults={},
                  pools={name: Section(name, "esx", settings) for name, settings in (pools or {}).items()},
                  platforms={name: Section(name, "esx", settings)
                             for name, settings in (platforms or {}).items()})


def platform_driver(folder: Path, settings: dict, name: str = "vc") -> Any:
    """An esx platform driver for ``settings`` (a vcsim's, say)."""
    from encompass_esx.platform import EsxPlatformDriver

    config = make_config(folder, platforms={name: settings})
    return EsxPlatformDriver(config.platforms[name], config)


def pool_driver(folder: Path, settings: dict, name: str = "ds0") -> Any:
    """An esx storage driver for ``settings``."""
    from encompass_esx.storage import EsxStorageDriver

    config = make_config(folder, pools={name: settings})
    return EsxStorageDriver(config.pools[name], config)
