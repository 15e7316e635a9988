"""AMT over HTTPS (port 16993's protocol): the PCs' certificate is checked against the platform's
ca_file; one the client cannot trust is one line, and verify_tls = false accepts it."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from amt_testing import PASSWORD, USER, platform_driver, settings
from encompass_amt.lab.responder import AmtLab, AmtPc

from encompass_core.errors import DriverError


def self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (apt-get install openssl)")
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_lab(tmp_path):
    cert, key = self_signed(tmp_path, "amt-pc")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with AmtLab([AmtPc("pc1")], USER, PASSWORD, tls=context) as lab:
        yield lab, cert


def test_the_pcs_certificate_is_checked_against_the_ca_file(tls_lab, tmp_path):
    lab, cert = tls_lab
    trusted = platform_driver(tmp_path, settings(lab, tls=True, ca_file=str(cert)))
    assert [machine.name for machine in trusted.discover()] == ["pc1"]
    assert trusted.endpoints[0].url.startswith("https://127.0.0.1:")

    stranger, _ = self_signed(tmp_path, "another-ca")
    refused = platform_driver(tmp_path, settings(lab, tls=True, ca_file=str(stranger)))
    with pytest.raises(DriverError) as failed:
        refused.discover()
    message = str(failed.value)
    assert "TLS failed" in message and "ca_file" in message and "\n" not in message

    unchecked = platform_driver(tmp_path, settings(lab, tls=True, verify_tls=False))
    assert [machine.name for machine in unchecked.discover()] == ["pc1"]


def test_plain_http_to_an_https_pc_is_one_line(tls_lab, tmp_path):
    lab, _ = tls_lab
    with pytest.raises(DriverError) as failed:
        platform_driver(tmp_path, settings(lab, timeout=2.0)).discover()
    message = str(failed.value)
    assert "platform 'pcs'" in message and "tls = true" in message and "\n" not in message
