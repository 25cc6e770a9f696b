"""How the services reach a secured Kafka (MSK, Confluent Cloud, Aiven): TLS and SASL.

`KafkaSecurity` holds the settings, checks that they fit together, and turns them into the
keyword arguments every aiokafka client takes (producer, consumer, admin), so that each client
a service creates connects the same way.

Decisions:
- SASL mechanisms: PLAIN and SCRAM-SHA-256/512, which the managed services offer with a user
  name and password. OAUTHBEARER (MSK IAM, Confluent OAuth) needs a token provider per cloud
  and GSSAPI needs Kerberos: neither is supported, and both are refused rather than ignored.
- No CA file means the system's trusted CAs: managed brokers present publicly trusted
  certificates. A CA file replaces them (a private CA, e.g. Strimzi's cluster CA).
- Hostnames are always verified (aiokafka's own context helper does the same).
- Production refuses PLAIN over SASL_PLAINTEXT, the one setup that sends a password in clear.
  PLAINTEXT itself stays allowed: compose's single broker lives on a private network, and in a
  cluster a service mesh may already wrap every connection in mutual TLS.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import SecretStr


class KafkaSecurityProtocol(StrEnum):
    """Kafka's ``security.protocol``: TLS or not, SASL or not."""

    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class KafkaSaslMechanism(StrEnum):
    """The SASL mechanisms supported: a user name and a password."""

    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


_TLS = {KafkaSecurityProtocol.SSL, KafkaSecurityProtocol.SASL_SSL}
_SASL = {KafkaSecurityProtocol.SASL_PLAINTEXT, KafkaSecurityProtocol.SASL_SSL}


@dataclass(frozen=True)
class KafkaSecurity:
    """TLS and SASL settings of a Kafka connection (the default: plaintext, no login)."""

    protocol: KafkaSecurityProtocol = KafkaSecurityProtocol.PLAINTEXT
    sasl_mechanism: KafkaSaslMechanism | None = None
    sasl_username: SecretStr | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_file: Path | None = None
    ssl_cert_file: Path | None = None
    ssl_key_file: Path | None = None
    ssl_key_password: SecretStr | None = None

    @property
    def uses_tls(self) -> bool:
        """Whether connections are encrypted."""
        return self.protocol in _TLS

    @property
    def uses_sasl(self) -> bool:
        """Whether clients log in with SASL."""
        return self.protocol in _SASL

    def check(self, *, production: bool) -> None:
        """Raise ``ValueError`` naming every setting that does not fit; load the TLS files."""
        problems = self._problems(production=production)
        if problems:
            raise ValueError("; ".join(problems))
        if self.uses_tls:
            self.ssl_context()

    def _problems(self, *, production: bool) -> list[str]:
        problems: list[str] = []
        sasl = {
            "kafka_sasl_mechanism": self.sasl_mechanism,
            "kafka_sasl_username": _text(self.sasl_username),
            "kafka_sasl_password": _text(self.sasl_password),
        }
        tls = {
            "kafka_ssl_ca_file": self.ssl_ca_file,
            "kafka_ssl_cert_file": self.ssl_cert_file,
            "kafka_ssl_key_file": self.ssl_key_file,
            "kafka_ssl_key_password": _text(self.ssl_key_password),
        }
        if self.uses_sasl:
            problems += [
                f"{name} is required with {self.protocol}" for name, v in sasl.items() if not v
            ]
        else:
            problems += [
                f"{name} is used only with SASL_PLAINTEXT or SASL_SSL, not {self.protocol}"
                for name, value in sasl.items()
                if value
            ]
        if self.uses_tls:
            if self.ssl_key_file and not self.ssl_cert_file:
                problems.append("kafka_ssl_key_file needs kafka_ssl_cert_file")
            if tls["kafka_ssl_key_password"] and not self.ssl_cert_file:
                problems.append("kafka_ssl_key_password needs kafka_ssl_cert_file")
        else:
            problems += [
                f"{name} is used only with SSL or SASL_SSL, not {self.protocol}"
                for name, value in tls.items()
                if value
            ]
        if (
            production
            and self.protocol is KafkaSecurityProtocol.SASL_PLAINTEXT
            and self.sasl_mechanism is KafkaSaslMechanism.PLAIN
        ):
            problems.append(
                "PLAIN over SASL_PLAINTEXT sends the Kafka password in clear: use SASL_SSL "
                "(or a SCRAM mechanism) in production"
            )
        return problems

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that verifies the broker (and presents our certificate, if set)."""
        try:
            context = ssl.create_default_context(
                ssl.Purpose.SERVER_AUTH,
                cafile=str(self.ssl_ca_file) if self.ssl_ca_file else None,
            )
        except (OSError, ssl.SSLError) as error:
            raise ValueError(f"kafka_ssl_ca_file {self.ssl_ca_file}: {error}") from error
        if self.ssl_cert_file is not None:
            try:
                context.load_cert_chain(
                    self.ssl_cert_file,
                    self.ssl_key_file,
                    password=_text(self.ssl_key_password) or None,
                )
            except (OSError, ssl.SSLError) as error:
                # One error for certificate, key and password: OpenSSL cannot tell which is off.
                raise ValueError(
                    f"kafka_ssl_cert_file {self.ssl_cert_file} with kafka_ssl_key_file "
                    f"{self.ssl_key_file} (and its password, if any) cannot be loaded: {error}"
                ) from error
        return context

    def client_options(self) -> dict[str, Any]:
        """The keyword arguments that give an aiokafka client this security."""
        options: dict[str, Any] = {"security_protocol": self.protocol.value}
        if self.uses_tls:
            options["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            assert self.sasl_mechanism is not None  # check() ran when the settings were read
            options["sasl_mechanism"] = self.sasl_mechanism.value
            options["sasl_plain_username"] = _text(self.sasl_username)
            options["sasl_plain_password"] = _text(self.sasl_password)
        return options


PLAINTEXT = KafkaSecurity()


def _text(secret: SecretStr | None) -> str:
    return secret.get_secret_value() if secret is not None else ""
