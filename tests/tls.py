"""TLS for the test PostgreSQL server: a CA and a server certificate made with `cryptography`,
turned on in the running server (ssl is reloadable). The certificate names what an RDS one does
for an instance: `*.<random>.<region>.rds.amazonaws.com` (here moto's `aaaaaaaaaa` label), plus
a plain test name."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.postgres import PgServer

SERVER_NAME = "db.dbplatform.test"
MOTO_RDS_NAMES = "*.aaaaaaaaaa.us-east-1.rds.amazonaws.com"
_DONE: dict[int, dict[str, Path]] = {}


def _ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def enable_tls(server: PgServer) -> dict[str, Path]:
    """TLS on in `server` (once per server); returns {"ca": its CA file, "other": a foreign CA}."""
    if server.pid in _DONE:
        return _DONE[server.pid]
    ca_key, ca = _ca("dbplatform test CA")
    _, other = _ca("someone else's CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME), x509.DNSName(MOTO_RDS_NAMES)]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    owner = server.datadir.stat()
    files = {
        "server.crt": _pem(cert),
        "server.key": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    }
    for name, data in files.items():
        path = server.datadir / name
        path.write_bytes(data)
        os.chmod(path, 0o600)  # PostgreSQL refuses a key others can read
        os.chown(path, owner.st_uid, owner.st_gid)
    with server.connect() as conn:
        conn.execute("ALTER SYSTEM SET ssl = on")
        conn.execute("SELECT pg_reload_conf()")
    # beside the cluster, in the folder tests/postgres.py removes with it (a folder of its own
    # in /tmp was left behind by every worker of every run)
    client = Path(tempfile.mkdtemp(prefix="tls-", dir=server.datadir.parent))
    (client / "ca.pem").write_bytes(_pem(ca))
    (client / "other.pem").write_bytes(_pem(other))
    _DONE[server.pid] = {"ca": client / "ca.pem", "other": client / "other.pem"}
    return _DONE[server.pid]
