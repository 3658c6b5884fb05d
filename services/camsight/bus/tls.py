"""TLS towards NATS: the client context from ``nats.tls``, and which TLS failures are final.

Decision 0082.

A certificate the client cannot trust, or a server that wants a client
certificate the client does not send, will not get better by retrying: the
connection is refused with one line naming the setting to fix (a
:class:`~camsight.config.ConfigError`, so ``camsight serve`` exits 2), instead of a
service that stays not-ready while nats-py logs the same handshake error at every
reconnect. Unreadable files are refused the same way before any connection.
"""

from __future__ import annotations

import ssl

from camsight.config import ConfigError, NatsSettings
from camsight.naming import redact_uri


def context(cfg: NatsSettings) -> ssl.SSLContext | None:
    """The client's TLS context; None without ``nats.tls`` (TLS then only if a tls:// URL asks)."""
    tls = cfg.tls
    if tls is None:
        return None
    if bool(tls.cert_file) != bool(tls.key_file):
        raise ConfigError("nats.tls: cert_file and key_file go together (the client certificate and its key)")
    try:
        ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"nats.tls.ca_file: cannot load {tls.ca_file}: {_reason(exc)}") from None
    if tls.cert_file and tls.key_file:
        try:
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        except (OSError, ssl.SSLError) as exc:
            why = _reason(exc)
            raise ConfigError(
                f"nats.tls.cert_file: cannot load {tls.cert_file} with {tls.key_file}: {why}"
            ) from None
    return ctx


def refusal(exc: BaseException, cfg: NatsSettings) -> ConfigError | None:
    """The one-line error for a TLS failure no retry can mend; None for any other error."""
    servers = ", ".join(redact_uri(s) for s in cfg.servers)
    if isinstance(exc, ssl.SSLCertVerificationError):
        trusted = (
            f"nats.tls.ca_file ({cfg.tls.ca_file})" if cfg.tls and cfg.tls.ca_file else "the system's CAs"
        )
        why = exc.verify_message or _reason(exc)
        return ConfigError(f"nats.tls: the certificate of {servers} is not trusted by {trusted}: {why}")
    if isinstance(exc, ssl.SSLError) and "CERTIFICATE_REQUIRED" in str(exc):
        return ConfigError(
            f"nats.tls: {servers} requires a client certificate: set nats.tls.cert_file and nats.tls.key_file"
        )
    if isinstance(exc, ssl.SSLError) and ("UNKNOWN_CA" in str(exc) or "BAD_CERTIFICATE" in str(exc)):
        return ConfigError(f"nats.tls: {servers} does not accept the client certificate nats.tls.cert_file")
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).replace("_", " ").lower()
    return getattr(exc, "strerror", None) or str(exc)
