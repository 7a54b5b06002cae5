"""The botocore exceptions that mean "the endpoint could not be reached", shared by the
AWS side's gateway and the remote state sources."""

from __future__ import annotations


def network_errors() -> tuple[type[Exception], ...]:
    """botocore's "the endpoint could not be reached" exceptions (refused, reset, timed out,
    DNS, proxy); loaded with botocore, not at import."""
    import botocore.exceptions as bx  # noqa: PLC0415 (lazy, see AwsBase.__init__)

    return (
        bx.EndpointConnectionError,
        bx.ConnectTimeoutError,
        bx.ConnectionClosedError,
        bx.ReadTimeoutError,
        bx.ProxyConnectionError,
        bx.HTTPClientError,
    )
