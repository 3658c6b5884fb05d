"""API errors: one exception type carrying the gRPC status code.

Query logic raises :class:`ApiError`; the gRPC layer turns it into a status,
the CLI's local mode into a one-line message. INVALID_ARGUMENT messages start
with the field's name so clients can point at it.
"""

from __future__ import annotations

import grpc


class ApiError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(field: str, problem: str) -> ApiError:
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {problem}")


def not_found(what: str) -> ApiError:
    return ApiError(grpc.StatusCode.NOT_FOUND, f"{what} not found")


def unavailable(problem: str) -> ApiError:
    return ApiError(grpc.StatusCode.UNAVAILABLE, problem)
