"""Kafka TLS and SASL settings: validated together at start, and given to every Kafka client.

The embedded broker (Tansu 0.6.0) cannot serve TLS or check SASL itself: its ``--cert`` and
``--key`` flags refuse each other and ``--cert`` alone still serves plaintext, and SCRAM users
can be created only on a broker that does not ask for them. So the TLS tests put a TLS
terminator in front of it (as a load balancer in front of Kafka does): a relay on loopback that
requires a client certificate signed by the test CA and passes the bytes on to the broker. The
Kafka protocol is spoken by the real broker; SASL is checked as far as the client's options.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import SecretStr, ValidationError
from sqlalchemy import Column, Integer, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import ActivityRecorded, CloudEvent, build_event, encode_event
from crm_shared import (
    KafkaSecurity,
    ServiceMetrics,
    ServiceSettings,
    Subscription,
    create_engine,
    ensure_topics,
    new_metadata,
    plumbing_tables,
    run_service,
)
from crm_shared.testing import EmbeddedBroker, free_loopback_port

START = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
CLIENT_NAME = "profile-service"


# --- certificates: a real CA, a server certificate for 127.0.0.1, client certificates ---


@dataclass(frozen=True)
class Pki:
    """PEM files in a folder: a CA, a server and a client certificate signed by it."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    encrypted_client_key: Path
    key_password: str
    other_ca: Path  # a CA that signed nothing here


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _sign(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    usage: x509.ObjectIdentifier | None = None,
) -> x509.Certificate:
    now = datetime.now(UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is None:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey, password: str | None = None) -> Path:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return path


def _write_cert(path: Path, certificate: x509.Certificate) -> Path:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca_key, other_ca_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = _sign("test CA", ca_key, None)
    server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(2))
    issuer = (ca.subject, ca_key)
    return Pki(
        ca=_write_cert(folder / "ca.pem", ca),
        server_cert=_write_cert(
            folder / "server.pem",
            _sign("broker", server_key, issuer, usage=ExtendedKeyUsageOID.SERVER_AUTH),
        ),
        server_key=_write_key(folder / "server.key", server_key),
        client_cert=_write_cert(
            folder / "client.pem",
            _sign(CLIENT_NAME, client_key, issuer, usage=ExtendedKeyUsageOID.CLIENT_AUTH),
        ),
        client_key=_write_key(folder / "client.key", client_key),
        encrypted_client_key=_write_key(folder / "client-encrypted.key", client_key, "k3y-pass"),
        key_password="k3y-pass",
        other_ca=_write_cert(folder / "other-ca.pem", _sign("other CA", other_ca_key, None)),
    )


def tls(pki: Pki, **overrides: Any) -> dict[str, Any]:
    """Settings values for mutual TLS with the test PKI."""
    return {
        "kafka_security_protocol": "SSL",
        "kafka_ssl_ca_file": pki.ca,
        "kafka_ssl_cert_file": pki.client_cert,
        "kafka_ssl_key_file": pki.client_key,
        **overrides,
    }


def sasl(**overrides: Any) -> dict[str, Any]:
    """Settings values for SCRAM over TLS with the system's trusted CAs."""
    return {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "crm-profile",
        "kafka_sasl_password": "a-long-password",
        **overrides,
    }


# --- settings: validated together ---


def test_plaintext_is_the_default_and_needs_nothing() -> None:
    settings = ServiceSettings()
    assert settings.kafka_security == KafkaSecurity()
    assert settings.kafka_security.client_options() == {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "kafka_sasl_mechanism"),
        (sasl(kafka_sasl_username=None), "kafka_sasl_username"),
        (sasl(kafka_sasl_password=None), "kafka_sasl_password"),
        (sasl(kafka_sasl_password=""), "kafka_sasl_password"),
        (sasl(kafka_sasl_mechanism="GSSAPI"), "kafka_sasl_mechanism"),
        (sasl(kafka_sasl_mechanism="OAUTHBEARER"), "kafka_sasl_mechanism"),
        (sasl(kafka_security_protocol="SSL"), "only with SASL_PLAINTEXT or SASL_SSL"),
        ({"kafka_sasl_password": "x"}, "only with SASL_PLAINTEXT or SASL_SSL"),
        ({"kafka_security_protocol": "TLS"}, "kafka_security_protocol"),
    ],
)
def test_sasl_settings_must_fit_together(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ServiceSettings(**values)


@pytest.mark.parametrize(
    "login",
    [{"kafka_security_protocol": "PLAINTEXT"}, sasl(kafka_security_protocol="SASL_PLAINTEXT")],
    ids=["PLAINTEXT", "SASL_PLAINTEXT"],
)
def test_tls_files_are_refused_without_tls(pki: Pki, login: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="only with SSL or SASL_SSL"):
        ServiceSettings(**{**tls(pki), **login})


def test_tls_files_must_exist_load_and_match(pki: Pki, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    cases = [
        (tls(pki, kafka_ssl_ca_file=tmp_path / "missing.pem"), "kafka_ssl_ca_file"),
        (tls(pki, kafka_ssl_ca_file=garbage), "kafka_ssl_ca_file"),
        (tls(pki, kafka_ssl_cert_file=garbage), "kafka_ssl_cert_file"),
        (tls(pki, kafka_ssl_key_file=pki.server_key), "kafka_ssl_cert_file"),  # not its key
        (tls(pki, kafka_ssl_cert_file=None), "kafka_ssl_key_file needs kafka_ssl_cert_file"),
        (tls(pki, kafka_ssl_key_file=pki.encrypted_client_key), "kafka_ssl_cert_file"),
        (
            tls(pki, kafka_ssl_key_file=pki.encrypted_client_key, kafka_ssl_key_password="no"),
            "kafka_ssl_cert_file",
        ),
        (
            tls(pki, kafka_ssl_cert_file=None, kafka_ssl_key_file=None, kafka_ssl_key_password="x"),
            "kafka_ssl_key_password needs",
        ),
    ]
    for values, message in cases:
        with pytest.raises(ValidationError, match=message):
            ServiceSettings(**values)
    encrypted = ServiceSettings(
        **tls(
            pki,
            kafka_ssl_key_file=pki.encrypted_client_key,
            kafka_ssl_key_password=pki.key_password,
        )
    )
    assert isinstance(encrypted.kafka_security.client_options()["ssl_context"], ssl.SSLContext)


def test_empty_values_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    # Compose and ConfigMaps pass an unset optional setting as an empty string.
    for name in ("SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD", "SSL_CA_FILE"):
        monkeypatch.setenv(f"CRM_KAFKA_{name}", "")
    monkeypatch.setenv("CRM_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    assert ServiceSettings().kafka_security == KafkaSecurity()


def test_production_refuses_a_plain_password_in_clear() -> None:
    production = {
        "environment": "production",
        "database_url": "postgresql+asyncpg://u:p@db/crm",
        "api_keys": [{"name": "k", "key_sha256": "0" * 64, "scopes": ["read"]}],
    }
    plain_in_clear = sasl(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN")
    with pytest.raises(ValidationError, match="PLAIN over SASL_PLAINTEXT"):
        ServiceSettings(**production, **plain_in_clear)
    # Development may (a local broker), and SCRAM never sends the password itself.
    assert ServiceSettings(**plain_in_clear).kafka_security.protocol == "SASL_PLAINTEXT"
    scram = sasl(kafka_security_protocol="SASL_PLAINTEXT")
    assert ServiceSettings(**production, **scram).environment == "production"
    # PLAINTEXT stays allowed: a broker on a private network or behind a mesh's mTLS.
    assert ServiceSettings(**production).kafka_security.protocol == "PLAINTEXT"


def test_secrets_stay_out_of_the_settings_repr() -> None:
    settings = ServiceSettings(**sasl())
    assert isinstance(settings.kafka_sasl_password, SecretStr)
    assert "a-long-password" not in repr(settings)
    assert "crm-profile" not in repr(settings)


# --- the client options: one place builds them for every client ---


def test_sasl_ssl_options_carry_the_mechanism_credentials_and_a_verifying_context() -> None:
    options = ServiceSettings(**sasl()).kafka_security.client_options()
    context = options.pop("ssl_context")
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "crm-profile",
        "sasl_plain_password": "a-long-password",
    }
    # No CA file: the system's trusted CAs, as managed Kafka (MSK, Confluent Cloud) needs.
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_sasl_plaintext_options_have_no_tls() -> None:
    options = ServiceSettings(
        **sasl(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="SCRAM-SHA-256")
    ).kafka_security.client_options()
    assert options == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "crm-profile",
        "sasl_plain_password": "a-long-password",
    }


def test_the_ssl_context_trusts_exactly_the_given_ca(pki: Pki) -> None:
    context = ServiceSettings(**tls(pki)).kafka_security.client_options()["ssl_context"]
    (authority,) = context.get_ca_certs()
    assert dict(pair[0] for pair in authority["subject"]) == {"commonName": "test CA"}
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


# --- a real broker behind a TLS terminator that demands the client certificate ---


@dataclass
class TlsRelay:
    """TLS on a loopback port, plaintext to the broker: records who connected."""

    broker_port: int
    context: ssl.SSLContext
    port: int = field(default_factory=free_loopback_port)
    clients: list[str] = field(default_factory=list)  # the client certificates' common names
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert")
        self.clients.append(dict(pair[0] for pair in peer["subject"])["commonName"])
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.broker_port
        )
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )

    def _track(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[TlsRelay]:
        server = await asyncio.start_server(self._track, "127.0.0.1", self.port, ssl=self.context)
        try:
            yield self
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()


def _server_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki.ca)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: no client certificate, no connection
    return context


@pytest.fixture
def broker_behind_tls(tmp_path: Path) -> Iterator[tuple[EmbeddedBroker, int]]:
    """The embedded broker, advertising the relay's port so every connection goes through it."""
    relay_port = free_loopback_port()
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log", advertised_port=relay_port)
    broker.start()
    yield broker, relay_port
    broker.stop()


@pytest.fixture
async def relay(pki: Pki, broker_behind_tls: tuple[EmbeddedBroker, int]) -> AsyncIterator[TlsRelay]:
    broker, relay_port = broker_behind_tls
    assert broker.port is not None
    relay = TlsRelay(broker_port=broker.port, context=_server_context(pki), port=relay_port)
    async with relay.running():
        yield relay


METADATA = new_metadata()
TABLES = plumbing_tables(METADATA)
APPLIED = Table(
    "applied",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),
)


async def record(session: AsyncSession, events: Sequence[CloudEvent]) -> None:
    await session.execute(insert(APPLIED), [{"event_id": event.id} for event in events])


@pytest.mark.kafka
async def test_a_service_runs_over_mutual_tls(pki: Pki, relay: TlsRelay, tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'tls.db'}"
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(METADATA.create_all)
    await engine.dispose()
    topic = f"test.tls.{uuid.uuid4().hex[:8]}"
    settings = ServiceSettings(
        **tls(pki),
        service_name="tls-test",
        environment="test",
        database_url=database_url,
        kafka_bootstrap_servers=f"127.0.0.1:{relay.port}",
        kafka_session_timeout_ms=6_000,
        kafka_rebalance_timeout_ms=2_000,
    )
    event = build_event(
        ActivityRecorded(
            customer_id="c-1", activity_id="a-1", activity_type="page_view", occurred_at=START
        ),
        source="/tests",
        time=START,
    )
    async with run_service(
        settings,
        TABLES,
        ServiceMetrics(),
        produces=[topic],
        subscriptions=[Subscription("tls", [topic], record)],
    ) as runtime:
        assert runtime.producer is not None
        assert await runtime.is_broker_ready()
        await runtime.producer.send_and_wait(topic, encode_event(event), key=b"c-1")
        deadline = asyncio.get_running_loop().time() + 30
        while await _applied(runtime.sessions) < 1:
            assert asyncio.get_running_loop().time() < deadline, "the event was not consumed"
            await asyncio.sleep(0.05)
    # The admin client (topics), the producer and the consumer all came through the relay, each
    # with the service's client certificate.
    assert len(relay.clients) >= 3
    assert set(relay.clients) == {CLIENT_NAME}


async def _applied(sessions: Any) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(APPLIED)) or 0)


@pytest.mark.kafka
@pytest.mark.parametrize(
    "wrong",
    [
        lambda pki: {"kafka_ssl_cert_file": None, "kafka_ssl_key_file": None},
        lambda pki: {"kafka_ssl_ca_file": pki.other_ca},  # does not trust the broker
    ],
    ids=["no-client-certificate", "untrusted-broker"],
)
async def test_a_client_the_tls_setup_refuses_gets_no_topics(
    pki: Pki, relay: TlsRelay, wrong: Callable[[Pki], dict[str, Any]]
) -> None:
    security = ServiceSettings(**tls(pki, **wrong(pki))).kafka_security
    with pytest.raises(KafkaError):
        await ensure_topics(
            f"127.0.0.1:{relay.port}",
            ["test.refused"],
            partitions=1,
            security=security,
            timeout=1.0,
        )
    assert relay.clients == []
