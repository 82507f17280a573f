"""How every Kafka client of the project connects: the aiokafka keyword arguments from Settings."""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka.helpers import create_ssl_context

from sla_stream.settings import Settings, SettingsError


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """``bootstrap_servers`` and the security keyword arguments for an aiokafka client.

    The result holds the SASL password in the clear (aiokafka needs it so): pass it on,
    never log it.
    """
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.security_protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    if settings.security_protocol.startswith("SASL_"):
        assert settings.sasl_password is not None  # load_settings requires one with SASL
        kwargs["sasl_mechanism"] = settings.sasl_mechanism
        kwargs["sasl_plain_username"] = settings.sasl_username
        kwargs["sasl_plain_password"] = settings.sasl_password.value
    return kwargs


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL (``None`` for the other protocols)."""
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    # Without a password OpenSSL would prompt for one on the terminal if the key needs it.
    password = settings.ssl_key_password.value if settings.ssl_key_password else _no_password
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=settings.ssl_cafile or None,
            certfile=settings.ssl_certfile or None,
            keyfile=settings.ssl_keyfile or None,
            password=password,
        )
    except (OSError, ssl.SSLError) as exc:
        # Neither names the password; an SSLError may name neither file.
        files = ", ".join(f for f in (settings.ssl_cafile, settings.ssl_certfile, settings.ssl_keyfile) if f)
        hint = " (is the key's password, ssl_key_password, right?)" if settings.ssl_certfile else ""
        raise SettingsError(
            f"TLS: cannot load {files or 'the system CA certificates'}: {exc}{hint}"
        ) from None
    context.check_hostname = settings.ssl_check_hostname
    return context


def _no_password() -> str:
    return ""
